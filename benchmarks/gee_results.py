"""GEE on the default model: held-out entropy gap and every gee_bias metric, before vs after.

For each configuration (the recommended defaults = pure-gap mode, and the L2 mode) it trains an adapter
(or reuses runs/<name>/ when --reuse and its adapter exists), evaluates base (cached) and debiased on
the suite with the same tasks/limits/seed, and compares every metric with a paired bootstrap over documents.
Writes benchmarks/results/gee_<name>.json and prints a markdown table. Usage:

    DEBIAS_DATA_DIR=../shared/data python benchmarks/gee_results.py [--suite gee_bias] [--limit N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from debias import compare, evaluation, models, pipeline
from debias.methods import gee

RESULTS = Path(__file__).parent / "results"
CONFIGS = {"gap": {"loss": "gap"}, "l2": {"loss": "l2"}}


def table(comparisons) -> str:
    lines = [
        "| task | metric | base | debiased | Δ | 95 % CI of Δ | better? | worse beyond CI? |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for task, rows in comparisons.items():
        for c in rows:
            better = "—" if c.improved is None else ("yes" if c.improved else "no")
            worse = "**yes**" if c.worse_beyond_ci else "no"
            lines.append(
                f"| {task} | {c.metric} | {c.base:.4g} | {c.new:.4g} | {c.delta:+.3g} | "
                f"[{c.ci_low:+.3g}, {c.ci_high:+.3g}] | {better} | {worse} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", default="gee_bias")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--reuse", action="store_true", help="reuse runs/gee-<name>/ adapter and results")
    parser.add_argument("--iters", type=int, default=1000, help="bootstrap resamples per metric")
    args = parser.parse_args()

    request = evaluation.EvalRequest(tasks=[args.suite], limit=args.limit)
    start = time.perf_counter()
    base, hit = pipeline.base_results(gee.GeeConfig().model, request)
    base_s = time.perf_counter() - start
    # loading a task (for its aggregation functions) runs its dataset loader, which needs the tokenizer
    manager = evaluation.task_manager(str(models.resolve(gee.GeeConfig().model)), tasks=[args.suite])
    for name in args.configs:
        cfg = gee.GeeConfig(**CONFIGS[name])
        run = Path("runs") / f"gee-{name}"
        start = time.perf_counter()
        if not (args.reuse and (run / "adapter" / "adapter_config.json").is_file()):
            gee.train(cfg, run)
        train_s = time.perf_counter() - start
        training = json.loads((run / "config.json").read_text())["training"]
        start = time.perf_counter()
        debiased_path = run / "results" / "debiased.json"
        if not (args.reuse and debiased_path.is_file()):
            evaluation.write_json_atomic(
                debiased_path, pipeline.evaluate_spec(cfg.model, request, run / "adapter")
            )
        debiased = json.loads(debiased_path.read_text())
        eval_s = time.perf_counter() - start
        comparisons = compare.compare(base, debiased, manager, iters=args.iters)
        report = {
            "config": dataclasses.asdict(cfg),
            "suite": args.suite,
            "limit": args.limit,
            "probe_before": training["probe_before"],
            "probe_after": training["probe_after"],
            "heldout_gap_reduction": training["gap_reduction"],
            "heldout_relative_gap": [training["relative_gap_before"], training["relative_gap_after"]],
            "steps": training["steps"],
            "stopped_early": training["stopped_early"],
            "comparisons": {t: [dataclasses.asdict(c) for c in rows] for t, rows in comparisons.items()},
            "any_metric_worse_beyond_ci": [
                f"{t}/{c.metric}" for t, rows in comparisons.items() for c in rows if c.worse_beyond_ci
            ],
            "wall_s": {
                "base_eval": round(base_s, 1),
                "base_cache_hit": hit,
                "train": round(train_s, 1),
                "debiased_eval": round(eval_s, 1),
            },
            "data_sha256": debiased["provenance"]["data_sha256"],
            "libraries": evaluation.library_versions(),
        }
        evaluation.write_json_atomic(RESULTS / f"gee_{name}.json", report)
        print(
            f"## GEE {name}: held-out gap {training['probe_before']['gap']:.4f} -> "
            f"{training['probe_after']['gap']:.4f} ({100 * training['gap_reduction']:.1f} % lower)"
        )
        print(table(comparisons))


if __name__ == "__main__":
    main()
