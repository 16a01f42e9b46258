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

# Which way is better, per metric name (prefix match on the part before any per-group suffix).
IDEAL: dict[str, float | str] = {
    "pct_stereotype": 0.5,
    "ss": 50.0,
    "stereotype_corr": 0.0,
    "mean_abs_logodds": 0.0,
    "male_pref_rate": 0.5,
    "entropy_gap": 0.0,
    "suffix_nll_gap": 0.0,
    "lms": "higher",
    "icat": "higher",
    "acc": "higher",
    "exact_match": "higher",
    "likelihood_diff": "lower",
}


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


def direction(metric: str) -> float | str | None:
    """The ideal value (float) or "higher"/"lower" for ``metric``; None if no direction is defined."""
    for name in sorted(IDEAL, key=len, reverse=True):
        if metric == name or metric.startswith(name + "_"):
            return IDEAL[name]
    return None


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
    """CI of badness(new) − badness(base) in the metric's own units, by resampling documents jointly.

    ``delta`` and its interval are reported as new − base of the metric itself; ``worse_beyond_ci`` asks
    whether, in the metric's better direction, the whole interval of the *badness* change lies above 0.
    """
    if len(base_items) != len(new_items):
        raise ValueError(f"{metric}: base has {len(base_items)} documents, debiased {len(new_items)}")
    n = len(base_items)
    base_value, new_value = float(aggregate(list(base_items))), float(aggregate(list(new_items)))
    rng = np.random.default_rng(seed)
    deltas, bad_deltas = [], []
    for _ in range(iters):
        idx = rng.integers(0, n, size=n)
        b = float(aggregate([base_items[i] for i in idx]))
        w = float(aggregate([new_items[i] for i in idx]))
        deltas.append(w - b)
        bb, bw = badness(metric, b), badness(metric, w)
        if bb is not None and bw is not None:
            bad_deltas.append(bw - bb)
    tail = (1 - level) / 2 * 100
    finite = [d for d in deltas if not math.isnan(d)]
    low, high = np.percentile(finite, [tail, 100 - tail]) if finite else (math.nan, math.nan)
    bad_base, bad_new = badness(metric, base_value), badness(metric, new_value)
    improved = None if bad_base is None or bad_new is None else bad_new < bad_base
    worse = bool(bad_deltas) and float(np.percentile(bad_deltas, tail)) > 0
    return Comparison(
        metric, base_value, new_value, new_value - base_value, float(low), float(high), n, improved, worse
    )
