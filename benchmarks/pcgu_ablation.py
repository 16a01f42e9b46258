"""PCGU's central claim, tested here: updating only the top-k partitioned units keeps LM ability better
than updating every weight with the same gradient step.

Both arms take the same pairs, learning rate, batches and number of steps (one epoch); the partitioned arm
is epoch 1 of the recommended run (runs/pcgu-topk, from pcgu_results.py), the other arm the same
config with k = 1.0 (every unit that has a gradient). Each is scored on the StereoSet *select* half (SS
gender, LMS: the numbers model selection sees) and on gee_gsm8k_ppl (perplexity of ordinary text).
Writes benchmarks/results/pcgu_ablation.json and prints a markdown table. Usage (after pcgu_results.py):

    DEBIAS_DATA_DIR=../shared/data python benchmarks/pcgu_ablation.py
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from debias import evaluation, pipeline, run_folder, sparse_adapter
from debias.atomic import write_json_atomic
from debias.methods import pcgu
from debias.run_folder import RunFolder
from debias.train_and_eval import train_adapter

RESULTS = Path(__file__).parent / "results"
SELECT, PPL = "gee_stereoset_select", "gee_gsm8k_ppl"
SHOWN = [(SELECT, "ss_gender"), (SELECT, "lms"), (SELECT, "lms_gender"), (SELECT, "ss"),
         (PPL, "word_perplexity"), (PPL, "bits_per_byte")]  # fmt: skip


def scores(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {task: values for task, values in evaluation.summary(results).items() if task in (SELECT, PPL)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topk-run", type=Path, default=Path("runs/pcgu-topk"))
    parser.add_argument("--out", type=Path, default=Path("runs/pcgu-all-epoch1"))
    args = parser.parse_args()

    topk, out = RunFolder(args.topk_run), RunFolder(args.out)
    topk_cfg = pcgu.PcguConfig(**run_folder.read_json(topk.config)["config"])
    candidates = pcgu.PcguRecipe(topk_cfg, topk).candidates()  # read from the folder; no setup needed
    if not candidates:
        raise SystemExit(f"{topk.path}: no finished epoch checkpoint (run pcgu_results.py first)")
    first = candidates[0]  # epoch 1: the same pairs, batches and steps as the one-epoch arm below
    checkpoint = first.path
    all_cfg = dataclasses.replace(topk_cfg, k=1.0, epochs=1, select_task="")
    started = time.perf_counter()
    if not sparse_adapter.is_sparse_adapter(out.adapter):  # no selection task: keeps the last epoch
        train_adapter("pcgu", all_cfg, out, resume=out.has_checkpoints())
    train_s = time.perf_counter() - started

    arms: dict[str, dict[str, Any]] = {}
    base_select, _ = pipeline.base_results(
        topk_cfg.model, evaluation.EvalRequest(tasks=[SELECT], seed=topk_cfg.seed)
    )
    base_ppl, _ = pipeline.base_results(topk_cfg.model, evaluation.EvalRequest(tasks=[PPL]))
    arms["base"] = {**scores(base_select), **scores(base_ppl)}
    # the partitioned arm's select-half scores are the ones its own model selection recorded for epoch 1
    selection = run_folder.read_json(topk.selection)
    topk_ppl = pipeline.evaluate_spec(topk_cfg.model, evaluation.EvalRequest(tasks=[PPL]), adapter=checkpoint)
    arms["top-k (k = 1 %)"] = {
        SELECT: selection[f"{pcgu.PcguRecipe.unit}s"][first.label],
        **scores(topk_ppl),
    }
    all_results = pipeline.evaluate_spec(
        topk_cfg.model,
        evaluation.EvalRequest(tasks=[SELECT, PPL], seed=topk_cfg.seed),
        adapter=out.adapter,
    )
    arms["all weights (k = 1.0)"] = scores(all_results)
    units = {
        "top-k (k = 1 %)": sparse_adapter.units(checkpoint),
        "all weights (k = 1.0)": sparse_adapter.units(out.adapter),
    }
    sizes = {
        "top-k (k = 1 %)": sparse_adapter.size(checkpoint),
        "all weights (k = 1.0)": sparse_adapter.size(out.adapter),
    }
    payload = {
        "config": dataclasses.asdict(all_cfg) | {"k": "1.0 (all) vs " + str(topk_cfg.k)},
        "steps": run_folder.read_json(out.config)["training"]["steps"],
        "arms": arms,
        "changed_units": units,
        "adapter_bytes": sizes,
        "all_weights_train_s": round(train_s, 1),
        "libraries": evaluation.library_versions(),
    }
    write_json_atomic(RESULTS / "pcgu_ablation.json", payload)
    names = list(arms)
    print("| task | metric | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for task, metric in SHOWN:
        cells = [arms[n].get(task, {}).get(metric) for n in names]
        print(
            f"| {task} | {metric} | " + " | ".join("n/a" if c is None else f"{c:.4g}" for c in cells) + " |"
        )


if __name__ == "__main__":
    main()
