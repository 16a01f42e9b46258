"""PCGU on the default model: the issue's acceptance numbers (and optionally a full all-weights run).

Each variant is one ``train-and-eval`` run (train with per-epoch checkpoint selection on
gee_stereoset_select → base evaluation, cached → debiased evaluation → paired bootstrap → report) on
tasks that PCGU never selected on: the StereoSet *report* half, CrowS-Pairs, MMLU-lite and the GSM8K
perplexity task. Variants: ``topk`` (the recommended defaults, k = 1 % of units) and ``all`` (the same
run with every unit updated, k = 1.0, selection included: ~40 min more on a 2-core CPU; the one-epoch
side-by-side in pcgu_ablation.py is the cheaper form of the same question). Writes
benchmarks/results/pcgu_results.json and prints markdown tables. Usage:

    DEBIAS_DATA_DIR=../shared/data python benchmarks/pcgu_results.py [--variants topk [all]] [--limit N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from debias import evaluation, run_folder
from debias.atomic import write_json_atomic
from debias.config_cli import add_dataclass_arguments, dataclass_from_args
from debias.methods import pcgu
from debias.train_and_eval import RunSpec, train_and_eval
from reports import render

RESULTS = Path(__file__).parent / "results"
TASKS = ["gee_stereoset_report", "gee_crows_pairs", "gee_mmlu_lite", "gee_gsm8k_ppl"]
VARIANTS: dict[str, dict[str, Any]] = {"topk": {}, "all": {"k": 1.0}}
# (task, metric) rows of the acceptance table, in order
KEY_METRICS = [
    ("gee_stereoset_report", "ss_gender"),
    ("gee_stereoset_report", "lms"),
    ("gee_stereoset_report", "lms_gender"),
    ("gee_stereoset_report", "icat_gender"),
    ("gee_stereoset_report", "ss"),
    ("gee_crows_pairs", "pct_stereotype_gender"),
    ("gee_crows_pairs", "pct_stereotype"),
    ("gee_mmlu_lite", "acc"),
    ("gee_gsm8k_ppl", "word_perplexity"),
    ("gee_gsm8k_ppl", "bits_per_byte"),
]


def _row(comparison: dict[str, Any], task: str, metric: str) -> dict[str, Any] | None:
    return next((c for c in comparison["tasks"].get(task, []) if c["metric"] == metric), None)


def acceptance(comparison: dict[str, Any]) -> dict[str, Any]:
    """The issue's four checks, each with the numbers it was decided on."""
    ss, lms = (
        _row(comparison, "gee_stereoset_report", "ss_gender"),
        _row(comparison, "gee_stereoset_report", "lms"),
    )
    crows = _row(comparison, "gee_crows_pairs", "pct_stereotype_gender")
    mmlu = _row(comparison, "gee_mmlu_lite", "acc")
    out: dict[str, Any] = {}
    if ss:
        moved = abs(ss["base"] - 50) - abs(ss["new"] - 50)
        out["ss_gender_halfway_to_50"] = {
            "base": ss["base"], "new": ss["new"], "moved_toward_50": moved,
            "needed": abs(ss["base"] - 50) / 2, "met": moved >= abs(ss["base"] - 50) / 2,
        }  # fmt: skip
    if lms:
        out["lms_drop_at_most_1"] = {"drop": -lms["delta"], "met": -lms["delta"] <= 1.0}
    if crows:  # a 0-1 share (lm-eval's crows_pairs convention): 50 % is 0.5
        out["crows_gender_closer_to_50"] = {
            "base": crows["base"],
            "new": crows["new"],
            "met": abs(crows["new"] - 0.5) < abs(crows["base"] - 0.5),
        }
    if mmlu:
        out["mmlu_lite_not_worse_beyond_ci"] = {
            "delta": mmlu["delta"],
            "ci": [mmlu["ci_low"], mmlu["ci_high"]],
            "met": not mmlu["worse_beyond_ci"],
        }
    return out


def table(results: dict[str, Any]) -> str:
    names = list(results["variants"])
    head = "| task | metric | base | " + " | ".join(f"{n} (Δ, 95 % CI)" for n in names) + " |"
    lines = [head, "|---|---|---:|" + "---|" * len(names)]
    for task, metric in KEY_METRICS:
        rows = [_row(results["variants"][n]["comparison"], task, metric) for n in names]
        if not any(rows):
            continue
        base = next(r for r in rows if r)["base"]
        cells = [
            "n/a"
            if r is None
            else f"{r['new']:.4g} ({r['delta']:+.3g}, [{r['ci_low']:+.3g}, {r['ci_high']:+.3g}])"
            + (" **worse beyond CI**" if r["worse_beyond_ci"] else "")
            for r in rows
        ]
        lines.append(f"| {task} | {metric} | {base:.4g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_overrides(items: list[str]) -> argparse.Namespace:
    """``--set FIELD=VALUE`` items, parsed as the config's own flags (``debias.config_cli``).

    ``FIELD=VALUE`` becomes ``--field=VALUE``, so each value goes through the field's type as ``cli.py``
    converts it. A bool field's flag takes no value (``--field`` / ``--no-field``), so for those alone
    the word true/false picks which of the two flags is passed.
    """
    parser = argparse.ArgumentParser(prog="--set", add_help=False)
    add_dataclass_arguments(parser, pcgu.PcguConfig)
    actions = {a.dest: a for a in parser._actions}
    flags = []
    for item in items:
        field, eq, value = item.partition("=")
        if not eq or field not in actions:
            parser.error(f"{item!r}: expected FIELD=VALUE with FIELD a PcguConfig field")
        flag = actions[field].option_strings[0]
        if isinstance(actions[field], argparse.BooleanOptionalAction):
            if value.lower() not in ("true", "false"):
                parser.error(f"{item!r}: {field} is a bool, give true or false")
            flags.append(flag if value.lower() == "true" else "--no-" + flag[2:])
        else:
            flags.append(f"{flag}={value}")
    return parser.parse_args(flags)


def summarize(run: Path, cfg: pcgu.PcguConfig) -> dict[str, Any]:
    folder = run_folder.load(run)
    return {
        "config": dataclasses.asdict(cfg),
        "run": str(run),
        "training": folder.training,
        "selection": folder.selection,
        "acceptance": acceptance(folder.comparison),
        "comparison": folder.comparison,
        "phase_wall_s": {phase: p["wall_s"] for phase, p in folder.run["phases"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", nargs="+", default=["topk"], choices=list(VARIANTS))
    parser.add_argument("--limit", type=int, help="documents per task (a smoke test, not a measurement)")
    parser.add_argument("--iters", type=int, default=1000, help="bootstrap resamples per metric")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="where the run folders go")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field (smoke tests)",
    )
    args = parser.parse_args()
    overrides = parse_overrides(args.set)

    out_file = RESULTS / (
        "pcgu_results_smoke.json" if args.limit is not None or vars(overrides) else "pcgu_results.json"
    )
    results: dict[str, Any] = {"tasks": TASKS, "limit": args.limit, "variants": {}}
    if out_file.is_file():  # keep variants measured by an earlier invocation
        results["variants"] = json.loads(out_file.read_text()).get("variants", {})
    for name in args.variants:
        cfg = dataclass_from_args(pcgu.PcguConfig, overrides, preset=VARIANTS[name])
        smoke = args.limit is not None or bool(vars(overrides))
        run = args.runs / (f"pcgu-{name}-smoke" if smoke else f"pcgu-{name}")
        spec = RunSpec(method="pcgu", tasks=TASKS, limit=args.limit, iters=args.iters)
        started = time.perf_counter()
        train_and_eval(spec, cfg, run, render=render.write_report)
        results["variants"][name] = summarize(run, cfg)
        results["variants"][name]["this_invocation_s"] = round(time.perf_counter() - started, 1)
        results["libraries"] = evaluation.library_versions()
        write_json_atomic(out_file, results)
        print(f"## PCGU {name}: {json.dumps(results['variants'][name]['acceptance'])}")
    print(table(results))


if __name__ == "__main__":
    main()
