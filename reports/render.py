"""Build the one-file HTML report from run folders (``train-and-eval`` output): data -> context -> Jinja.

Everything shown is read from the run folders (results, per-sample logs, comparison with bootstrap CIs,
training metrics, provenance); nothing is recomputed here except chart geometry, so the report and the
JSON files can never disagree. Several runs of the same base model render side by side.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from debias import run_folder
from debias.atomic import write_text_atomic
from debias.run_folder import Run, RunFolderError
from harness_tasks import report_facts
from harness_tasks._report_spec import Flips, GroupScatter, MetricBars
from reports import charts

CURVES = [
    ("loss", "loss"),
    ("gap", "entropy gap (nats)"),
    ("lambda", "λ"),
    ("mean_entropy", "mean entropy (nats)"),
    ("reward_accuracy", "reward accuracy"),
    ("reward_margin", "reward margin (chosen − rejected)"),
    ("heldout_reward_accuracy", "held-out pairs: reward accuracy"),
    ("select_ss", "selection split SS (overshoot guard; 50 = unbiased)"),
    ("select_lms", "selection split LMS (overshoot guard)"),
    ("logprob_gap", "log p(advantaged) − log p(disadvantaged)"),
    ("advantaged_preferred", "share of pairs preferring the advantaged target"),
]
SECTIONS = (
    "headline",
    "tradeoff",
    "winogender",
    "crows",
    "stereoset",
    "bbq",
    "entropy",
    "training",
    "examples",
    "generations",
    "provenance",
)


ReportError = RunFolderError  # the name cli.py and older callers catch


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
                    "key": report_facts.is_headline(metric),
                    "ideal": _ideal_text(metric),
                    "base": _num(c["base"]),
                    "n": c["n"],
                    "cells": cells,
                }
            )
    return rows


def _ideal_text(metric: str) -> str:
    ideal = report_facts.direction(metric.split(",")[0])
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
    value = run_folder.summary(results).get(task, {}).get(metric)
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def tradeoff_charts(runs: list[Run]):
    base = runs[0].base
    out = []
    for bias in report_facts.BIAS_AXES:
        for retention in report_facts.RETENTION_AXES:
            points = [("base", base)] + [(run.name, run.debiased) for run in runs]
            xs = [_value(res, bias.task, bias.metric) for _, res in points]
            ys = [_value(res, retention.task, retention.metric) for _, res in points]
            if any(v is None for v in xs + ys):
                continue
            series = [
                charts.Series(name, [y], x=[bias.distance(x)], labels=[name], color=charts.PALETTE[i])
                for i, ((name, _), x, y) in enumerate(zip(points, xs, ys, strict=True))
            ]
            out.append(
                charts.scatter(
                    series,
                    f"{bias.label} vs {retention.label}",
                    f"{bias.label} (lower = less biased)",
                    f"{retention.label} (higher = better)",
                    label_points=True,
                )
            )
    return out


def pareto_points(runs: list[Run]) -> list[dict[str, Any]]:
    """Per run: the share of bias removed and of capability lost, averaged over the axes every run has.

    Bias: for each bias axis, ``(d_base − d_run) / d_base`` with ``d`` the distance from unbiased (so
    removing all of it is 100 %, a flip past the ideal counts by how far it lands). Retention: for each
    retention axis, ``(r_base − r_run) / r_base``. Shares make SS points and accuracy points comparable;
    a run is on the Pareto front if no other run removes at least as much bias for at most its cost.
    """
    base = runs[0].base

    def present(task: str, metric: str) -> bool:
        return all(_value(res, task, metric) is not None for res in [base, *(r.debiased for r in runs)])

    bias_axes = [a for a in report_facts.BIAS_AXES if present(a.task, a.metric)]
    retention_axes = [a for a in report_facts.RETENTION_AXES if present(a.task, a.metric)]
    if not bias_axes or not retention_axes:
        return []
    points = []
    for run in runs:
        removed = []
        for axis in bias_axes:
            d_base = axis.distance(_value(base, axis.task, axis.metric))
            d_run = axis.distance(_value(run.debiased, axis.task, axis.metric))
            if d_base:  # an axis the base was already unbiased on has no share to remove
                removed.append((d_base - d_run) / d_base * 100)
        lost = [
            (_value(base, a.task, a.metric) - _value(run.debiased, a.task, a.metric))
            / abs(_value(base, a.task, a.metric))
            * 100
            for a in retention_axes
            if _value(base, a.task, a.metric)
        ]
        points.append(
            {
                "run": run.name,
                "bias_removed": sum(removed) / len(removed),
                "retention_lost": sum(lost) / len(lost),
            }
        )
    for p in points:
        p["front"] = not any(
            q["bias_removed"] >= p["bias_removed"]
            and q["retention_lost"] <= p["retention_lost"]
            and (q["bias_removed"], q["retention_lost"]) != (p["bias_removed"], p["retention_lost"])
            for q in points
        )
    axes = {
        "bias": [a.label for a in bias_axes],
        "retention": [a.label for a in retention_axes],
    }
    for p in points:
        p["axes"] = axes
    return points


def pareto_chart(runs: list[Run]):
    points = pareto_points(runs)
    if not points:
        return None
    series = [charts.Series("base", [0.0], x=[0.0], labels=["base"], color=charts.PALETTE[0])]
    for i, p in enumerate(points, start=1):
        label = p["run"] + (" (front)" if p["front"] else "")
        series.append(
            charts.Series(
                p["run"],
                [p["retention_lost"]],
                x=[p["bias_removed"]],
                labels=[label],
                color=charts.PALETTE[i % len(charts.PALETTE)],
            )
        )
    return charts.scatter(
        series,
        "Bias removed vs capability lost (every run)",
        "bias removed toward the ideal (% of the base's distance, mean over bias axes)",
        "capability lost (% of the base's value, mean over retention axes)",
        label_points=True,
        reference_y=0.0,
    )


def group_scatter(runs: list[Run], spec: GroupScatter):
    """Per-group (y, x) points of base and each run, fitted lines; the groups the first run moved most."""
    series, changes = [], []
    base_samples = runs[0].folder.samples("base", spec.task)
    if not base_samples:
        return None, []
    base_points = spec.points(base_samples)
    sources = [("base", base_points)]
    for run in runs:
        samples = run.folder.samples("debiased", spec.task)
        if samples:
            sources.append((run.name, spec.points(samples)))
    for i, (name, points) in enumerate(sources):
        labels = sorted(points)
        series.append(
            charts.Series(
                name,
                [points[g][0] for g in labels],
                x=[points[g][1] for g in labels],
                labels=labels,
                color=charts.PALETTE[i],
            )
        )
    if len(sources) > 1:
        last_name, last = sources[1]
        moved = sorted(set(base_points) & set(last), key=lambda g: -abs(last[g][0] - base_points[g][0]))
        for group in moved[: spec.moved]:
            changes.append(
                {
                    "label": group,
                    "x": _num(base_points[group][1], 3),
                    "base": _num(base_points[group][0], 3),
                    "new": _num(last[group][0], 3),
                    "run": last_name,
                }
            )
    chart = charts.scatter(
        series, spec.title, spec.x_label, spec.y_label, fit=spec.fit, reference_y=spec.reference_y
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


def metric_bars(runs: list[Run], spec: MetricBars):
    """Per-group bars of the first of ``spec.tasks`` that any run compared (else the first listed)."""
    task = next((t for t in spec.tasks if any(t in run.comparison["tasks"] for run in runs)), spec.tasks[0])
    return _metric_bars(
        runs,
        task,
        spec.prefix,
        list(spec.names),
        spec.title.format(task=task),
        spec.y_label,
        spec.reference,
        scale=spec.scale,
    )


def entropy_chart(runs: list[Run]):
    """Group entropies on the held-out probe, before and after training (methods that record a probe)."""
    categories, series = None, []
    before = runs[0].training.get("probe_before")
    if not before or "entropy" not in before:  # another method's probe (equalisation: pair log-ratios)
        return None
    categories = list(before["entropy"])
    series.append(
        charts.Series("before", [before["entropy"][g] for g in categories], color=charts.PALETTE[0])
    )
    for i, run in enumerate(runs, 1):
        after = run.training.get("probe_after")
        if after and set(after.get("entropy", {})) == set(categories):
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


def flips(runs: list[Run], spec: Flips) -> list[dict[str, Any]]:
    """Examples whose outcome changed, per run, the most-changed first: what debiasing actually did."""
    base = runs[0].folder.samples("base", spec.task)
    out = []
    for run in runs:
        new = run.folder.samples("debiased", spec.task)
        out += [{"run": run.name, **row} for row in spec.rows(base, new, spec.limit)]
    return out


def benchmark_sections(runs: list[Run]) -> dict[str, Any]:
    """The template variables of every benchmark-specific section, as the registry declares them."""
    out: dict[str, Any] = {}
    for scatter in report_facts.SCATTERS:
        out[scatter.section], out[f"{scatter.section}_changes"] = group_scatter(runs, scatter)
    for bars in report_facts.BARS:
        out[bars.section] = metric_bars(runs, bars)
    for spec in report_facts.FLIPS:
        out[spec.section] = flips(runs, spec)
    return out


def generation_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """Per run and prompt: the base model's and the adapter's greedy and sampled continuations."""
    rows = []
    for run in runs:
        by_prompt: dict[str, dict[str, str]] = {}
        for g in run.generations:
            side = "base" if g.get("model") == "base" else "debiased"
            by_prompt.setdefault(g.get("prompt", ""), {})[f"{side}_{g.get('mode')}"] = g.get("text", "")
        for prompt, texts in by_prompt.items():
            rows.append({"run": run.name, "prompt": prompt, **texts})
    return rows


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
            out.append(
                f"{run.name}: {task} was used in training or checkpoint selection, so its numbers are not "
                "held out."
            )
        chosen_on = (run.selection or {}).get("task")
        if chosen_on:
            reported = sorted(run.comparison["tasks"])
            overlap = [t for t in reported if t == chosen_on or t == chosen_on.rsplit("_", 1)[0]]
            out.append(
                f"{run.name}: the checkpoint was chosen on {chosen_on} ({run.selection.get('metric')}); "
                + (
                    f"reported here and not held out: {', '.join(overlap)}."
                    if overlap
                    else "none of the benchmarks reported here was used for the choice."
                )
            )
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
    runs = [run_folder.load(Path(p)) for p in run_dirs]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):  # two folders with the same name in different places
        for i, run in enumerate(runs):
            run.name = f"{run.name} ({i + 1})"
    return {
        "title": "Bias report: " + ", ".join(r.name for r in runs),
        "runs": runs,
        "summaries": [{"name": r.name, **_summary_counts(r)} for r in runs],
        "training_summaries": [{"name": r.name, **_training_text(r)} for r in runs],
        "rows": headline_rows(runs),
        "tradeoff": tradeoff_charts(runs),
        "pareto": pareto_chart(runs),
        "pareto_points": pareto_points(runs),
        **benchmark_sections(runs),
        "entropy": entropy_chart(runs),
        "training": training_charts(runs),
        "generations": generation_rows(runs),
        "provenance": [provenance(r) for r in runs],
        "base_model": runs[0].base.get("provenance", {}).get("model", {}),
        "warnings": warnings(runs),
        "sections": SECTIONS,
    }


def _training_text(run: Run) -> dict[str, str]:
    t = run.training
    out = {"steps": str(t.get("steps", "?"))}
    before, after = t.get("probe_before") or {}, t.get("probe_after") or {}
    # each method's probe has its own quantities: GEE's group entropies, equalisation's pair log-ratios
    if "gap" in before and "gap" in after:
        out["gap"] = f"{before['gap']:.4f} → {after['gap']:.4f} nats"
        out["entropy"] = f"{before['mean_entropy']:.3f} → {after['mean_entropy']:.3f} nats"
    independent = t.get("independent_probe_before"), t.get("independent_probe_after")
    if all(independent):
        out["independent_gap"] = f"{independent[0]['gap']:.4f} → {independent[1]['gap']:.4f} nats"
    if "mean_abs_delta" in before and "mean_abs_delta" in after:
        out["pair_delta"] = f"{before['mean_abs_delta']:.3f} → {after['mean_abs_delta']:.3f} nats"
    if "heldout_anchor_kl" in after:
        out["anchor_kl"] = f"{after['heldout_anchor_kl']:.4f} nats/token"
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
    write_text_atomic(out, html)
    return out
