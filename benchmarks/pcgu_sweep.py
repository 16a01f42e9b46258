"""PCGU design sweep: one epoch per configuration, scored on the gender examples of StereoSet's select half.

How the defaults (pair set, learning rate, frozen embeddings) were chosen: each configuration trains one
epoch from the base model (``PcguRecipe`` itself, in a temporary run folder: seeded shuffle, per-batch
reselection, no model selection) and is scored on the 196 gender examples of gee_stereoset_select
(~25 s; the report half is never used here), plus the mean log-prob gap of its own training pairs.
Every configuration is deterministic (a repeated configuration gave identical numbers). Usage, one JSON
object per configuration:

    DEBIAS_DATA_DIR=../shared/data python benchmarks/pcgu_sweep.py '{"pairs": "attributes", "lr": 1e-3}' ...

Prints one JSON line per configuration (the first line: the base model) and appends them to
benchmarks/results/pcgu_sweep.jsonl.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from lm_eval.tasks._yaml_loader import load_yaml

from debias import evaluation, models
from debias.methods import pcgu

RESULTS = Path(__file__).parent / "results"


def select_gender_task() -> dict:
    """gee_stereoset_select restricted to the gender domain, as an lm-eval task config dict."""
    config = dict(load_yaml(evaluation.tasks_dir() / "stereoset" / "gee_stereoset_select.yaml"))
    config["task"] = "pcgu_sweep_select_gender"
    config["dataset_kwargs"] = {"half": "select", "domain": "gender"}
    return config


def pair_gap(model, tokenizer, pairs: list[pcgu.Pair]) -> tuple[float, float]:
    """(mean log p(adv) − log p(dis), share of pairs preferring the advantaged target)."""
    gaps = []
    with torch.no_grad():
        for i in range(0, len(pairs), 32):
            batch = pairs[i : i + 32]
            prefixes = [p.prefix for p in batch]
            adv = pcgu.target_logprobs(model, tokenizer, prefixes, [p.advantaged for p in batch])
            dis = pcgu.target_logprobs(model, tokenizer, prefixes, [p.disadvantaged for p in batch])
            gaps.append(adv - dis)
    gap = torch.cat(gaps)
    return float(gap.mean()), float((gap > 0).float().mean())


def run(overrides: dict | None) -> dict:
    # the sweep scores the trained model itself: no per-epoch model selection
    cfg = pcgu.PcguConfig(**{"epochs": 1, **(overrides or {}), "select_task": ""})
    path = models.resolve(cfg.model)
    with tempfile.TemporaryDirectory(prefix="pcgu-sweep-") as out:
        if overrides is None:  # the base model: nothing to train
            model, tokenizer = models.load(cfg.model)
            pairs = pcgu.load_pairs(cfg.pairs)
            train_s = 0.0
        else:
            recipe = pcgu.PcguRecipe(cfg, Path(out))
            recipe.setup()
            started = time.perf_counter()
            recipe.train()  # the model is trained in place (and its epoch checkpoint written to ``out``)
            train_s = time.perf_counter() - started
            model, tokenizer, pairs = recipe.model, recipe.tokenizer, recipe.pairs
    model.eval()
    gap = pair_gap(model, tokenizer, pairs)
    request = evaluation.EvalRequest(tasks=[select_gender_task()], log_samples=False)
    values = next(
        iter(evaluation.summary(evaluation.evaluate(model, tokenizer, request, str(path))).values())
    )
    return {
        "config": overrides,  # None: the base model
        "train_s": round(train_s, 1),
        "gap_pairs": cfg.pairs,  # the pair set the gap below is measured on
        "pair_logprob_gap": gap[0],
        "pairs_preferring_advantaged": gap[1],
        "ss_gender": values["ss"],  # the task holds gender examples only: its overall is gender's
        "lms_gender": values["lms"],
    }


def main() -> None:
    configs = [json.loads(arg) for arg in sys.argv[1:]]
    RESULTS.mkdir(exist_ok=True)
    for overrides in [None, *configs]:
        row = run(overrides)
        print(json.dumps(row), flush=True)
        with open(RESULTS / "pcgu_sweep.jsonl", "a") as log:
            log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
