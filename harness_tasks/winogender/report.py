"""What Winogender contributes to the report: its metrics' ideals and the occupation scatter."""

from __future__ import annotations

from collections.abc import Sequence

from harness_tasks._report_spec import BenchmarkReport, GroupScatter, Sample
from harness_tasks.winogender.metrics import per_occupation_log_ratio

TASK = "gee_winogender"


def occupation_points(samples: Sequence[Sample]) -> dict[str, tuple[float, float]]:
    """{occupation: (mean log(p_female / p_male), BLS % female)} from the task's per-sample log."""
    return per_occupation_log_ratio([s["stereotype_corr"] for s in samples])


REPORT = BenchmarkReport(
    name="winogender",
    ideal={
        "stereotype_corr": 0.0,
        "mean_abs_logodds": 0.0,
        "male_pref_rate": 0.5,
        "entropy_gap": 0.0,
        "suffix_nll_gap": 0.0,
    },
    headline=("stereotype_corr", "entropy_gap"),
    scatters=(
        GroupScatter(
            section="winogender",
            task=TASK,
            points=occupation_points,
            title="Winogender: pronoun preference vs occupation statistics",
            x_label="BLS % female in the occupation",
            y_label="mean log(p_female / p_male)",
            fit=True,
            reference_y=0.0,  # no preference for either pronoun
        ),
    ),
)
