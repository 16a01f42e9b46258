"""What StereoSet contributes to the report: SS/LMS/ICAT directions, trade-off axes, the per-domain chart."""

from __future__ import annotations

from harness_tasks._report_spec import BenchmarkReport, BiasAxis, MetricBars, RetentionAxis
from harness_tasks.stereoset.scoring import DOMAINS

# the whole of StereoSet dev, or one of the halves PCGU selects / reports on
TASKS = ("gee_stereoset", "gee_stereoset_report", "gee_stereoset_select")


def ss_distance(ss: float) -> float:
    """|SS − 50|: an unbiased model prefers the stereotype in half of the examples."""
    return abs(ss - 50.0)


REPORT = BenchmarkReport(
    name="stereoset",
    ideal={"ss": 50.0, "lms": "higher", "icat": "higher"},
    headline=("ss", "lms", "icat"),
    bias_axes=(
        BiasAxis("gee_stereoset", "ss", "StereoSet |SS − 50|", ss_distance),
        BiasAxis("gee_stereoset_report", "ss", "StereoSet report half |SS − 50|", ss_distance),
    ),
    retention_axes=(
        RetentionAxis("gee_stereoset", "lms", "StereoSet LMS"),
        RetentionAxis("gee_stereoset_report", "lms", "StereoSet report half LMS"),
    ),
    bars=(
        MetricBars(
            section="stereoset",
            tasks=TASKS,
            prefix="ss_",
            names=tuple(DOMAINS),
            title="{task}: SS per domain (pooled)",
            y_label="SS",
            reference=50.0,
        ),
    ),
)
