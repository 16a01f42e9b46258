"""Confidence intervals for "base vs debiased" from lm-eval's per-sample logs.

lm-eval reports a standard error only for mean-type metrics; StereoSet's SS/ICAT or Winogender's
correlation are corpus-level aggregations with none. A paired bootstrap covers them all the same way:
resample documents (the same indices for both runs, since both saw the same documents), recompute each
metric with the task's *own* aggregation function, and take percentiles of the difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness_tasks import report_facts


@dataclass(frozen=True)
class Comparison:
    metric: str
    base: float
    new: float
    delta: float
    ci_low: float
    ci_high: float
    n: int
    improved: bool | None  # None: the metric has no better direction (e.g. pronoun_entropy)
    worse_beyond_ci: bool
    better_beyond_ci: bool = False


def direction(metric: str) -> float | str | None:
    """The ideal value (float) or "higher"/"lower" for ``metric``; None if no direction is defined.

    The directions are benchmark facts, declared in each ``harness_tasks/<bench>/report.py``.
    """
    return report_facts.direction(metric)


def badness(metric: str, value: float) -> float | None:
    """A number that grows as ``value`` gets worse, so deltas of any metric compare the same way."""
    ideal = direction(metric)
    if ideal is None or value is None or math.isnan(value):
        return None
    if ideal == "higher":
        return -value
    if ideal == "lower":
        return value
    return abs(value - float(ideal))


def paired_bootstrap(
    aggregate: Callable[[list[Any]], float],
    base_items: Sequence[Any],
    new_items: Sequence[Any],
    metric: str,
    iters: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Comparison:
    """CI of new − base for one metric, by resampling documents jointly (see ``paired_bootstrap_joint``)."""
    (result,) = paired_bootstrap_joint(
        lambda items: {metric: aggregate(items)}, base_items, new_items, [metric], iters, seed, level
    )
    return result


def paired_bootstrap_joint(
    aggregate_all: Callable[[list[Any]], dict[str, float]],
    base_items: Sequence[Any],
    new_items: Sequence[Any],
    metrics: Sequence[str],
    iters: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    prepare: Callable[[Sequence[Any]], Sequence[Any]] | None = None,
) -> list[Comparison]:
    """CIs for several metrics that one aggregation computes together (StereoSet's 45 from one scoring).

    Every metric sees the same resampled documents, and the aggregation runs once per resample instead of
    once per metric and resample. ``prepare`` converts the items once up front. ``delta`` and its
    interval are new − base of the metric itself;
    ``worse_beyond_ci`` asks whether, in the metric's better direction, the whole interval of the
    *badness* change lies above 0 (``better_beyond_ci``: below 0).
    """
    if len(base_items) != len(new_items):
        raise ValueError(f"{metrics[0]}: base has {len(base_items)} documents, debiased {len(new_items)}")
    if prepare is not None:  # per-item conversion done once, not once per resample
        base_items, new_items = prepare(base_items), prepare(new_items)
    n = len(base_items)
    base_all, new_all = aggregate_all(list(base_items)), aggregate_all(list(new_items))
    rng = np.random.default_rng(seed)
    deltas: dict[str, list[float]] = {m: [] for m in metrics}
    bad_deltas: dict[str, list[float]] = {m: [] for m in metrics}
    for _ in range(iters):
        idx = rng.integers(0, n, size=n)
        b_all = aggregate_all([base_items[i] for i in idx])
        w_all = aggregate_all([new_items[i] for i in idx])
        for m in metrics:
            b, w = float(b_all[m]), float(w_all[m])
            deltas[m].append(w - b)
            bb, bw = badness(m, b), badness(m, w)
            if bb is not None and bw is not None:
                bad_deltas[m].append(bw - bb)
    tail = (1 - level) / 2 * 100
    out = []
    for m in metrics:
        base_value, new_value = float(base_all[m]), float(new_all[m])
        finite = [d for d in deltas[m] if not math.isnan(d)]
        low, high = np.percentile(finite, [tail, 100 - tail]) if finite else (math.nan, math.nan)
        bad_base, bad_new = badness(m, base_value), badness(m, new_value)
        improved = None if bad_base is None or bad_new is None else bad_new < bad_base
        worse = bool(bad_deltas[m]) and float(np.percentile(bad_deltas[m], tail)) > 0
        better = bool(bad_deltas[m]) and float(np.percentile(bad_deltas[m], 100 - tail)) < 0
        out.append(
            Comparison(
                m,
                base_value,
                new_value,
                new_value - base_value,
                float(low),
                float(high),
                n,
                improved,
                worse,
                better,
            )
        )
    return out
