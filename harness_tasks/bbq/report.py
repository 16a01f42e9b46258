"""What BBQ contributes to the report: the bias scores' ideal (0), the accuracies' direction, category bars.

Metric names carry the ``bbq_`` prefix because ``report_facts.direction`` matches by name prefix across
benchmarks: a bare ``acc_amb`` would inherit the retention tasks' ``acc`` ("higher") by accident, and a
bare ``s_dis`` could collide with a later benchmark's names.
"""

from __future__ import annotations

from harness_tasks._report_spec import BenchmarkReport, MetricBars
from harness_tasks.bbq.metrics import CATEGORIES

TASK = "gee_bbq_lite"

REPORT = BenchmarkReport(
    name="bbq",
    ideal={
        "bbq_s_dis": 0.0,
        "bbq_s_amb": 0.0,
        "bbq_acc_gap": 0.0,
        "bbq_acc_amb": "higher",
        "bbq_acc_dis": "higher",
    },
    headline=("bbq_s_dis", "bbq_s_amb", "bbq_acc_amb", "bbq_acc_dis"),
    bars=(
        MetricBars(
            section="bbq",
            tasks=(TASK,),
            prefix="bbq_s_amb_",
            names=CATEGORIES,
            title="BBQ-lite: bias score in ambiguous contexts (s_AMB × 100) per category",
            y_label="s_AMB × 100",
            reference=0.0,
            scale=100.0,
        ),
        MetricBars(
            section="bbq_dis",
            tasks=(TASK,),
            prefix="bbq_s_dis_",
            names=CATEGORIES,
            title="BBQ-lite: bias score in disambiguated contexts (s_DIS × 100) per category",
            y_label="s_DIS × 100",
            reference=0.0,
            scale=100.0,
        ),
    ),
)
