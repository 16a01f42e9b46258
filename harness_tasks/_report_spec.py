"""What a benchmark contributes to the HTML report, as plain data: the report's only view of a benchmark.

Each benchmark folder has a ``report.py`` with one ``REPORT = BenchmarkReport(...)``; ``report_facts``
collects them in a fixed order and ``reports.render`` draws whatever they describe. Keeping these facts
(which value is unbiased, which metrics are headline, which per-group metrics to chart) beside the task
definitions means a benchmark is added or changed in one folder, and the renderer holds no benchmark
knowledge. Stdlib only, like the rest of ``harness_tasks``: nothing here may import ``debias`` or
``reports``, so a spec carries data and pure functions, never chart code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# The unbiased value of a metric (e.g. SS -> 50), or which way is better when there is none.
Ideal = float | Literal["higher", "lower"]
Sample = dict[str, Any]  # one row of lm-eval's per-sample log (``samples/<which>/<task>.json``)


@dataclass(frozen=True)
class BiasAxis:
    """A bias metric for the x axis of the bias-vs-retention charts.

    ``distance`` maps a value to "how far from unbiased" (lower = less biased), so metrics whose ideal is
    a midpoint (SS 50, pct_stereotype 0.5) read the same way as metrics whose ideal is 0.
    """

    task: str
    metric: str
    label: str
    distance: Callable[[float], float]


@dataclass(frozen=True)
class RetentionAxis:
    """A capability metric (higher = better) for the y axis of the bias-vs-retention charts."""

    task: str
    metric: str
    label: str


@dataclass(frozen=True)
class MetricBars:
    """Grouped bars of one task's per-group metrics ``prefix + name``: base, and each run with its CI.

    ``tasks`` lists interchangeable tasks that report the same metrics (the whole StereoSet dev set, or one
    of its halves): the first present in any run's comparison is drawn, else ``tasks[0]``. ``title`` may
    name it as ``{task}``. Values are multiplied by ``scale`` (fractions shown as percent).
    ``section`` is the report section (template variable) the chart goes to.
    """

    section: str
    tasks: tuple[str, ...]
    prefix: str
    names: tuple[str, ...]
    title: str
    y_label: str
    reference: float
    scale: float = 1.0


@dataclass(frozen=True)
class GroupScatter:
    """One point per group (e.g. occupation) from a task's per-sample log: y = the model, x = the world.

    ``points`` turns the samples of one evaluation into ``{label: (y, x)}``; the renderer plots base and
    each run, with a least-squares line per series when ``fit``, and a reference line at ``reference_y``
    (the unbiased value). The ``moved`` groups whose y changed most between base and the first run are
    listed under the chart (``<section>_changes``), so the reader sees what debiasing moved.
    """

    section: str
    task: str
    points: Callable[[Sequence[Sample]], dict[str, tuple[float, float]]]
    title: str
    x_label: str
    y_label: str
    fit: bool = True
    reference_y: float | None = None
    moved: int = 8


@dataclass(frozen=True)
class Flips:
    """Examples whose outcome changed between base and a run: what debiasing did, one example at a time.

    ``rows(base_samples, new_samples, limit)`` returns at most ``limit`` table rows for one run (the most
    changed first); the renderer adds the run's name as ``run``.
    """

    section: str
    task: str
    rows: Callable[[Sequence[Sample], Sequence[Sample], int], list[dict[str, Any]]]
    limit: int = 6


@dataclass(frozen=True)
class BenchmarkReport:
    """Everything one benchmark folder tells the report (``REPORT`` in ``harness_tasks/<bench>/report.py``).

    ``ideal`` is keyed by metric name and matched by prefix on per-group metrics (``ss`` covers
    ``ss_gender``); ``headline`` names the metrics shown in the key-metrics table.
    """

    name: str
    ideal: Mapping[str, Ideal] = field(default_factory=dict)
    headline: tuple[str, ...] = ()
    bias_axes: tuple[BiasAxis, ...] = ()
    retention_axes: tuple[RetentionAxis, ...] = ()
    bars: tuple[MetricBars, ...] = ()
    scatters: tuple[GroupScatter, ...] = ()
    flips: tuple[Flips, ...] = ()
