"""BBQ's report facts: directions by metric name do not leak into or out of other benchmarks' names."""

from __future__ import annotations

from harness_tasks import report_facts
from harness_tasks.bbq import metrics
from harness_tasks.bbq.report import REPORT


def test_every_bbq_metric_has_its_own_direction():
    for name in metrics.ALL_METRICS:
        expected = "higher" if name.startswith(("bbq_acc_amb", "bbq_acc_dis")) else 0.0
        assert report_facts.direction(name) == expected, name


def test_other_benchmarks_directions_are_unchanged():
    before = {"acc": "higher", "acc_norm": "higher", "ss": 50.0, "ss_gender": 50.0, "pct_stereotype": 0.5}
    for name, ideal in before.items():
        assert report_facts.direction(name) == ideal
    # no other benchmark's name is a prefix of a bbq metric (direction() matches "<name>_...")
    others = [n for b in report_facts.BENCHMARKS if b is not REPORT for n in b.ideal]
    assert not [o for o in others for m in metrics.ALL_METRICS if m == o or m.startswith(o + "_")]


def test_bbq_is_registered_with_per_category_bars():
    assert REPORT in report_facts.BENCHMARKS
    assert set(REPORT.headline) <= set(metrics.OVERALL_METRICS)
    for bars in REPORT.bars:
        assert bars.names == metrics.CATEGORIES
        assert all(f"{bars.prefix}{n}" in metrics.CATEGORY_METRICS for n in bars.names)
