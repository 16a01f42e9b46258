"""Build the one-file HTML report from run folders (``train-and-eval`` output): data -> context -> Jinja.

Everything shown is read from the run folders (results, per-sample logs, comparison with bootstrap CIs,
training metrics, provenance); nothing is recomputed here except chart geometry, so the report and the
JSON files can never disagree. Several runs of the same base model render side by side.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from debias import evaluation, stats
from harness_tasks.winogender import metrics as winogender_metrics
from reports import charts

# (task, metric, how to turn it into "distance from unbiased", label) for the trade-off chart
BIAS_AXES = [
    ("gee_stereoset", "ss", lambda v: abs(v - 50.0), "StereoSet |SS − 50|"),
    ("gee_stereoset_report", "ss", lambda v: abs(v - 50.0), "StereoSet report half |SS − 50|"),
    (
        "gee_crows_pairs",
        "pct_stereotype",
        lambda v: abs(v - 0.5) * 100,
        "CrowS |pct_stereotype − 50| (points)",
    ),
]
RETENTION_AXES = [
    ("gee_stereoset", "lms", "StereoSet LMS"),
    ("gee_stereoset_report", "lms", "StereoSet report half LMS"),
    ("gee_mmlu", "acc", "MMLU acc"),
    ("gee_mmlu_lite", "acc", "MMLU-lite acc"),
    ("gee_gsm8k", "exact_match,strict-match", "GSM8K exact match"),
    ("gee_gsm8k_lite", "exact_match,strict-match", "GSM8K-lite exact match"),
]
CURVES = [
    ("loss", "loss"),
    ("gap", "entropy gap (nats)"),
    ("lambda", "λ"),
    ("mean_entropy", "mean entropy (nats)"),
    ("reward_accuracy", "reward accuracy"),
    ("logprob_gap", "log p(advantaged) − log p(disadvantaged)"),
    ("advantaged_preferred", "share of pairs preferring the advantaged target"),
]
HEADLINE = ("ss", "lms", "icat", "pct_stereotype", "stereotype_corr", "entropy_gap", "acc", "exact_match")
SECTIONS = (
    "headline",
    "tradeoff",
    "winogender",
    "crows",
    "stereoset",
    "entropy",
    "training",
    "examples",
    "provenance",
)


class ReportError(ValueError):
    """A run folder that cannot be reported (missing or unreadable file): one line naming the file."""


@dataclass
class Run:
    name: str
    path: Path
    run: dict[str, Any]
    config: dict[str, Any]
    base: dict[str, Any]
    debiased: dict[str, Any]
    comparison: dict[str, Any]
    curves: list[dict[str, Any]]

    @property
    def training(self) -> dict[str, Any]:
        return self.config.get("training") or {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: missing (is this a finished train-and-eval run folder?)") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _samples(path: Path, which: str, task: str) -> list[dict[str, Any]]:
    file = path / "samples" / which / f"{task}.json"
    return _read_json(file) if file.is_file() else []


def load_run(path: Path) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: not a run folder")
    curves = []
    metrics_file = path / "metrics.jsonl"
    if metrics_file.is_file():
        for number, line in enumerate(metrics_file.read_text().splitlines(), 1):
            try:
                curves.append(json.loads(line))
            except json.JSONDecodeError:
                raise ReportError(f"{metrics_file}:{number}: not a JSON line") from None
    return Run(
        name=path.name,
        path=path,
        run=_read_json(path / "run.json"),
        config=_read_json(path / "config.json"),
        base=_read_json(path / "results" / "base.json"),
        debiased=_read_json(path / "results" / "debiased.json"),
        comparison=_read_json(path / "results" / "comparison.json"),
        curves=curves,
    )


def _verdict(row: dict[str, Any]) -> tuple[str, str]:
    """(css class, text): is Δ an improvement, and is it beyond the 95 % CI?"""
    if row.get("improved") is None:
        return "neutral", "no ideal direction"
    if row.get("delta") == 0:
        return "neutral", "unchanged"
    if row.get("better_beyond_ci"):
        return "better", "better (beyond CI)"
    if row.get("worse_beyond_ci"):
        return "worse", "worse (beyond CI)"
    return ("better-ns" if row["improved"] else "worse-ns"), (
        "better, within CI" if row["improved"] else "worse, within CI"
    )


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def _signed(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+.{digits}g}"


def headline_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per (task, metric) of the first run's comparison; each run's value, Δ, CI and verdict."""
    first = runs[0]
    rows = []
    for task, comparisons in first.comparison["tasks"].items():
        for c in comparisons:
            cells = []
            for run in runs:
                other = next(
                    (x for x in run.comparison["tasks"].get(task, []) if x["metric"] == c["metric"]), None
                )
                if other is None:
                    cells.append(None)
                    continue
                css, text = _verdict(other)
                cells.append(
                    {
                        "value": _num(other["new"]),
                        "delta": _signed(other["delta"]),
                        "ci": f"[{_signed(other['ci_low'])}, {_signed(other['ci_high'])}]",
                        "css": css,
                        "verdict": text,
                    }
                )
            metric = c["metric"]
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "key": metric in HEADLINE or metric.split(",")[0] in HEADLINE,
                    "ideal": _ideal_text(metric),
                    "base": _num(c["base"]),
                    "n": c["n"],
                    "cells": cells,
                }
            )
    return rows


def _ideal_text(metric: str) -> str:
    ideal = stats.direction(metric.split(",")[0])
    if ideal is None:
        return "—"
    if isinstance(ideal, str):
        return "↑" if ideal == "higher" else "↓"
    return f"→ {ideal:g}"


def _summary_counts(run: Run) -> dict[str, int]:
    rows = [c for task in run.comparison["tasks"].values() for c in task]
    return {
        "metrics": len(rows),
        "better_beyond_ci": sum(bool(c.get("better_beyond_ci")) for c in rows),
        "worse_beyond_ci": sum(bool(c.get("worse_beyond_ci")) for c in rows),
        "improved": sum(c.get("improved") is True for c in rows),
    }


def _value(results: dict[str, Any], task: str, metric: str) -> float | None:
    value = evaluation.summary(results).get(task, {}).get(metric)
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def tradeoff_charts(runs: list[Run]):
    base = runs[0].base
    out = []
    for b_task, b_metric, distance, b_label in BIAS_AXES:
        for r_task, r_metric, r_label in RETENTION_AXES:
            points = [("base", base)] + [(run.name, run.debiased) for run in runs]
            xs = [_value(res, b_task, b_metric) for _, res in points]
            ys = [_value(res, r_task, r_metric) for _, res in points]
            if any(v is None for v in xs + ys):
                continue
            series = [
                charts.Series(name, [y], x=[distance(x)], labels=[name], color=charts.PALETTE[i])
                for i, ((name, _), x, y) in enumerate(zip(points, xs, ys, strict=True))
            ]
            out.append(
                charts.scatter(
                    series,
                    f"{b_label} vs {r_label}",
                    f"{b_label} (lower = less biased)",
                    f"{r_label} (higher = better)",
                    label_points=True,
                )
            )
    return out


def winogender_chart(runs: list[Run]):
    """Per occupation log(p_female / p_male) vs BLS % female, base and each run, with fitted lines."""
    series, changes = [], []
    base_items = [s["stereotype_corr"] for s in _samples(runs[0].path, "base", "gee_winogender")]
    if not base_items:
        return None, []
    base_occ = winogender_metrics.per_occupation_log_ratio(base_items)
    sources = [("base", base_occ)]
    for run in runs:
        items = [s["stereotype_corr"] for s in _samples(run.path, "debiased", "gee_winogender")]
        if items:
            sources.append((run.name, winogender_metrics.per_occupation_log_ratio(items)))
    for i, (name, occ) in enumerate(sources):
        names = sorted(occ)
        series.append(
            charts.Series(
                name,
                [occ[o][0] for o in names],
                x=[occ[o][1] for o in names],
                labels=names,
                color=charts.PALETTE[i],
            )
        )
    if len(sources) > 1:
        last_name, last = sources[1]
        for occupation in sorted(set(base_occ) & set(last), key=lambda o: -abs(last[o][0] - base_occ[o][0]))[
            :8
        ]:
            changes.append(
                {
                    "occupation": occupation,
                    "bls": _num(base_occ[occupation][1], 3),
                    "base": _num(base_occ[occupation][0], 3),
                    "new": _num(last[occupation][0], 3),
                    "run": last_name,
                }
            )
    chart = charts.scatter(
        series,
        "Winogender: pronoun preference vs occupation statistics",
        "BLS % female in the occupation",
        "mean log(p_female / p_male)",
        fit=True,
        reference_y=0.0,
    )
    return chart, changes


def _metric_bars(
    runs: list[Run],
    task: str,
    prefix: str,
    names: list[str],
    title: str,
    y_label: str,
    reference: float,
    scale: float = 1.0,
):
    base = runs[0].base
    values = [_value(base, task, f"{prefix}{n}") for n in names]
    if all(v is None for v in values):
        return None
    series = [
        charts.Series("base", [v * scale if v is not None else None for v in values], color=charts.PALETTE[0])
    ]
    for i, run in enumerate(runs, 1):
        by_metric = {c["metric"]: c for c in run.comparison["tasks"].get(task, [])}
        vals, errs = [], []
        for n in names:
            c = by_metric.get(f"{prefix}{n}")
            if c is None:  # no per-sample comparison: the value alone, without an interval
                value = _value(run.debiased, task, f"{prefix}{n}")
                vals.append(value * scale if value is not None else None)
                errs.append(None)
                continue
            vals.append(c["new"] * scale)
            # the CI of Δ placed on the base value: where the debiased value could plausibly be
            errs.append((scale * (c["base"] + c["ci_low"]), scale * (c["base"] + c["ci_high"])))
        series.append(
            charts.Series(run.name, vals, errors=errs, color=charts.PALETTE[i % len(charts.PALETTE)])
        )
    return charts.bars(
        [n.replace("_", " ") for n in names],
        series,
        title,
        y_label,
        reference=reference,
        reference_label=f"unbiased = {reference:g}",
    )


def crows_chart(runs: list[Run]):
    from harness_tasks.crows_pairs.metrics import BIAS_TYPES, metric_suffix

    return _metric_bars(
        runs,
        "gee_crows_pairs",
        "pct_stereotype_",
        [metric_suffix(t) for t in BIAS_TYPES],
        "CrowS-Pairs: % pairs where the stereotype is preferred, per bias type",
        "pct_stereotype (%)",
        50.0,
        scale=100.0,
    )


# the whole of StereoSet dev, or one of the halves PCGU selects / reports on
STEREOSET_TASKS = ("gee_stereoset", "gee_stereoset_report", "gee_stereoset_select")


def stereoset_chart(runs: list[Run]):
    from harness_tasks.stereoset.scoring import DOMAINS

    task = next(
        (t for t in STEREOSET_TASKS if any(t in run.comparison["tasks"] for run in runs)), STEREOSET_TASKS[0]
    )
    return _metric_bars(runs, task, "ss_", list(DOMAINS), f"{task}: SS per domain (pooled)", "SS", 50.0)


def entropy_chart(runs: list[Run]):
    """Group entropies on the held-out probe, before and after training (methods that record a probe)."""
    categories, series = None, []
    before = runs[0].training.get("probe_before")
    if not before:
        return None
    categories = list(before["entropy"])
    series.append(
        charts.Series("before", [before["entropy"][g] for g in categories], color=charts.PALETTE[0])
    )
    for i, run in enumerate(runs, 1):
        after = run.training.get("probe_after")
        if after and set(after["entropy"]) == set(categories):
            series.append(
                charts.Series(
                    f"{run.name} after",
                    [after["entropy"][g] for g in categories],
                    color=charts.PALETTE[i % len(charts.PALETTE)],
                )
            )
    return charts.bars(categories, series, "Held-out probe: mean token entropy per group", "entropy (nats)")


def training_charts(runs: list[Run]):
    out = []
    for key, label in CURVES:
        series = []
        for i, run in enumerate(runs, 1):
            points = [(r.get("step"), r.get(key)) for r in run.curves if isinstance(r.get(key), int | float)]
            if points:
                series.append(
                    charts.Series(
                        run.name,
                        [y for _, y in points],
                        x=[x for x, _ in points],
                        color=charts.PALETTE[i % len(charts.PALETTE)],
                    )
                )
        if series:
            out.append(charts.lines(series, f"Training: {label}", "optimizer step", label))
    return out


def crows_flips(runs: list[Run], limit: int = 6) -> list[dict[str, Any]]:
    """CrowS pairs whose preferred sentence changed, the most-changed first: what debiasing actually did."""
    base = {s["doc_id"]: s for s in _samples(runs[0].path, "base", "gee_crows_pairs")}
    out = []
    for run in runs:
        new = {s["doc_id"]: s for s in _samples(run.path, "debiased", "gee_crows_pairs")}
        flips = [
            (doc_id, base[doc_id], sample)
            for doc_id, sample in new.items()
            if doc_id in base and sample["pct_stereotype"] != base[doc_id]["pct_stereotype"]
        ]
        flips.sort(key=lambda f: -abs(f[2]["likelihood_diff"] - f[1]["likelihood_diff"]))
        for doc_id, before, after in flips[:limit]:
            doc = after["doc"]
            out.append(
                {
                    "run": run.name,
                    "bias_type": doc.get("bias_type", ""),
                    "more": doc.get("sent_more", ""),
                    "less": doc.get("sent_less", ""),
                    "before": "stereotype preferred"
                    if before["pct_stereotype"]
                    else "anti-stereotype preferred",
                    "after": "stereotype preferred"
                    if after["pct_stereotype"]
                    else "anti-stereotype preferred",
                    "doc_id": doc_id,
                }
            )
    return out


def provenance(run: Run) -> dict[str, Any]:
    prov = run.debiased.get("provenance", {})
    model = prov.get("model", {})
    adapter_dir = run.path / "adapter"
    adapter_bytes = (
        sum(p.stat().st_size for p in adapter_dir.rglob("*") if p.is_file()) if adapter_dir.is_dir() else 0
    )
    return {
        "name": run.name,
        "method": run.config.get("method"),
        "model_spec": model.get("spec"),
        "weights": (model.get("fingerprint") or {}).get("weights_sha256"),
        "adapter": str(adapter_dir),
        "adapter_mb": f"{adapter_bytes / 1e6:.2f}",
        "config": run.config.get("config", {}),
        "spec": run.run.get("spec", {}),
        "phases": run.run.get("phases", {}),
        "libraries": prov.get("libraries", {}),
        "device": f"train: {run.config.get('device', '?')} × {run.config.get('processes', 1)} process(es); "
        f"eval: {prov.get('device', '?')} on {prov.get('host', '?')}",
        "data": prov.get("data_sha256", {}),
        "task_versions": prov.get("task_versions", {}),
        "bootstrap": f"{run.comparison.get('iters')} paired resamples, "
        f"{100 * run.comparison.get('level', 0.95):g} % intervals",
    }


def warnings(runs: list[Run]) -> list[str]:
    out = []
    keys = {run.run.get("phases", {}).get("base", {}).get("cache_key") for run in runs}
    if len(keys) > 1:
        out.append(
            "The runs were evaluated against different base results (other model, tasks, limit or seed): "
            "each run's Δ is against its own base; the base column shows the first run's."
        )
    for run in runs:
        spec = run.run.get("spec", {})
        if spec.get("limit") is not None:
            out.append(
                f"{run.name}: a subset run (limit {spec['limit']} documents per task): confidence intervals "
                "are wide and metrics of absent splits/domains are n/a. Not a measurement to quote."
            )
        for task in run.training.get("not_held_out", []) or []:
            out.append(f"{run.name}: {task} was used in training, so its numbers are not held out.")
        nan = [
            f"{t}/{c['metric']}"
            for t, rows in run.comparison["tasks"].items()
            for c in rows
            if c["new"] is None or (isinstance(c["new"], float) and math.isnan(c["new"]))
        ]
        if nan:
            out.append(f"{run.name}: {len(nan)} metric(s) undefined on these documents (e.g. {nan[0]}).")
    return out


def build_context(run_dirs: list[Path]) -> dict[str, Any]:
    if not run_dirs:
        raise ReportError("no run folders given")
    runs = [load_run(Path(p)) for p in run_dirs]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):  # two folders with the same name in different places
        for i, run in enumerate(runs):
            run.name = f"{run.name} ({i + 1})"
    wino_chart, wino_changes = winogender_chart(runs)
    return {
        "title": "Bias report: " + ", ".join(r.name for r in runs),
        "runs": runs,
        "summaries": [{"name": r.name, **_summary_counts(r)} for r in runs],
        "training_summaries": [{"name": r.name, **_training_text(r)} for r in runs],
        "rows": headline_rows(runs),
        "tradeoff": tradeoff_charts(runs),
        "winogender": wino_chart,
        "winogender_changes": wino_changes,
        "crows": crows_chart(runs),
        "stereoset": stereoset_chart(runs),
        "entropy": entropy_chart(runs),
        "training": training_charts(runs),
        "flips": crows_flips(runs),
        "provenance": [provenance(r) for r in runs],
        "base_model": runs[0].base.get("provenance", {}).get("model", {}),
        "warnings": warnings(runs),
        "sections": SECTIONS,
    }


def _training_text(run: Run) -> dict[str, str]:
    t = run.training
    out = {"steps": str(t.get("steps", "?"))}
    if t.get("probe_before") and t.get("probe_after"):
        out["gap"] = f"{t['probe_before']['gap']:.4f} → {t['probe_after']['gap']:.4f} nats"
        out["entropy"] = (
            f"{t['probe_before']['mean_entropy']:.3f} → {t['probe_after']['mean_entropy']:.3f} nats"
        )
    if t.get("stopped_early") is not None:
        out["stopped_early"] = "yes" if t["stopped_early"] else "no"
    return out


def environment() -> Environment:
    # autoescape on for every template: dataset sentences, occupation names and user config values all end
    # up in the page, and any of them may contain markup
    return Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(run_dirs: list[Path]) -> str:
    return environment().get_template("report.html.j2").render(**build_context(run_dirs))


def write_report(run_dirs: list[Path], out: Path) -> Path:
    html = render(run_dirs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
