"""GEE on the default model: held-out entropy gap and every gee_bias metric, before vs after.

For each configuration (the recommended defaults = pure-gap mode, and the L2 mode) this is one
``train-and-eval`` run in runs/gee-<name>/ (train → select → base evaluation, cached → debiased
evaluation → paired bootstrap → report.html; rerunning resumes or just re-reads it). Writes
benchmarks/results/gee_<name>.json and prints a markdown table. Usage:

    DEBIAS_DATA_DIR=../shared/data python benchmarks/gee_results.py [--suite gee_bias] [--limit N]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from debias import evaluation, run_folder
from debias.atomic import write_json_atomic
from debias.methods import gee
from debias.train_and_eval import RunSpec, train_and_eval
from reports import render

RESULTS = Path(__file__).parent / "results"
CONFIGS = {"gap": {"loss": "gap"}, "l2": {"loss": "l2"}}


def table(comparison: dict[str, Any]) -> str:
    lines = [
        "| task | metric | base | debiased | Δ | 95 % CI of Δ | better? | worse beyond CI? |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for task, rows in comparison["tasks"].items():
        for c in rows:
            better = "—" if c["improved"] is None else ("yes" if c["improved"] else "no")
            worse = "**yes**" if c["worse_beyond_ci"] else "no"
            lines.append(
                f"| {task} | {c['metric']} | {c['base']:.4g} | {c['new']:.4g} | {c['delta']:+.3g} | "
                f"[{c['ci_low']:+.3g}, {c['ci_high']:+.3g}] | {better} | {worse} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", default="gee_bias")
    parser.add_argument("--limit", type=int, help="documents per task (a smoke test, not a measurement)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--iters", type=int, default=1000, help="bootstrap resamples per metric")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="where the run folders go")
    args = parser.parse_args()

    smoke = args.limit is not None
    for name in args.configs:
        cfg = gee.GeeConfig(**CONFIGS[name], **(gee.GeeRecipe.quick if smoke else {}))
        run = args.runs / (f"gee-{name}-smoke" if smoke else f"gee-{name}")
        spec = RunSpec(method="gee", tasks=[args.suite], limit=args.limit, iters=args.iters)
        started = time.perf_counter()
        train_and_eval(spec, cfg, run, render=render.write_report)
        folder = run_folder.load(run)
        training, comparison, phases = folder.training, folder.comparison, folder.run["phases"]
        report = {
            "config": dataclasses.asdict(cfg),
            "suite": args.suite,
            "limit": args.limit,
            "run": str(run),
            "probe_before": training["probe_before"],
            "probe_after": training["probe_after"],
            "heldout_gap_reduction": training["gap_reduction"],
            "heldout_relative_gap": [training["relative_gap_before"], training["relative_gap_after"]],
            "steps": training["steps"],
            "stopped_early": training["stopped_early"],
            "comparisons": comparison["tasks"],
            "any_metric_worse_beyond_ci": [
                f"{t}/{c['metric']}"
                for t, rows in comparison["tasks"].items()
                for c in rows
                if c["worse_beyond_ci"]
            ],
            "wall_s": {
                **{phase: p["wall_s"] for phase, p in phases.items()},
                "base_cache_hit": phases.get("base", {}).get("cache_hit"),
                "this_invocation": round(time.perf_counter() - started, 1),
            },
            "data_sha256": folder.debiased["provenance"]["data_sha256"],
            "libraries": evaluation.library_versions(),
        }
        out_file = RESULTS / (f"gee_{name}_smoke.json" if smoke else f"gee_{name}.json")
        write_json_atomic(out_file, report)
        print(
            f"## GEE {name}: held-out gap {training['probe_before']['gap']:.4f} -> "
            f"{training['probe_after']['gap']:.4f} ({100 * training['gap_reduction']:.1f} % lower)"
        )
        print(table(comparison))


if __name__ == "__main__":
    main()
