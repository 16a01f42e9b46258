"""What CrowS-Pairs contributes to the report: pct_stereotype's ideal, per-bias-type bars, flipped pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness_tasks._report_spec import BenchmarkReport, BiasAxis, Flips, MetricBars, Sample
from harness_tasks.crows_pairs.metrics import BIAS_TYPES, metric_suffix

TASK = "gee_crows_pairs"


def pct_distance(pct_stereotype: float) -> float:
    """|pct_stereotype − 0.5| in percentage points: unbiased is preferring the stereotype half the time."""
    return abs(pct_stereotype - 0.5) * 100


def _preference(stereotyped: float) -> str:
    return "stereotype preferred" if stereotyped else "anti-stereotype preferred"


def flipped_pairs(base: Sequence[Sample], new: Sequence[Sample], limit: int) -> list[dict[str, Any]]:
    """Pairs whose preferred sentence changed, the largest change in likelihood difference first."""
    before_by_id = {s["doc_id"]: s for s in base}
    after_by_id = {s["doc_id"]: s for s in new}
    flips = [
        (doc_id, before_by_id[doc_id], sample)
        for doc_id, sample in after_by_id.items()
        if doc_id in before_by_id and sample["pct_stereotype"] != before_by_id[doc_id]["pct_stereotype"]
    ]
    flips.sort(key=lambda f: -abs(f[2]["likelihood_diff"] - f[1]["likelihood_diff"]))
    rows = []
    for doc_id, before, after in flips[:limit]:
        doc = after["doc"]
        rows.append(
            {
                "bias_type": doc.get("bias_type", ""),
                "more": doc.get("sent_more", ""),
                "less": doc.get("sent_less", ""),
                "before": _preference(before["pct_stereotype"]),
                "after": _preference(after["pct_stereotype"]),
                "doc_id": doc_id,
            }
        )
    return rows


REPORT = BenchmarkReport(
    name="crows_pairs",
    ideal={"pct_stereotype": 0.5, "likelihood_diff": "lower"},
    headline=("pct_stereotype",),
    bias_axes=(BiasAxis(TASK, "pct_stereotype", "CrowS |pct_stereotype − 50| (points)", pct_distance),),
    bars=(
        MetricBars(
            section="crows",
            tasks=(TASK,),
            prefix="pct_stereotype_",
            names=tuple(metric_suffix(t) for t in BIAS_TYPES),
            title="CrowS-Pairs: % pairs where the stereotype is preferred, per bias type",
            y_label="pct_stereotype (%)",
            reference=50.0,
            scale=100.0,
        ),
    ),
    flips=(Flips(section="flips", task=TASK, rows=flipped_pairs),),
)
