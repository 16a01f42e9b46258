"""The registry of benchmark report facts: every ``harness_tasks/<bench>/report.py``, in one fixed order.

The order is the report's: trade-off charts are drawn bias axis by retention axis in this order (StereoSet
before CrowS; StereoSet LMS before MMLU/GSM8K), so adding a benchmark appends it rather than reshuffling
the charts already there. ``debias.stats`` reads the metric directions from here and ``reports.render``
draws the rest; neither holds benchmark knowledge of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from harness_tasks._report_spec import (
    BenchmarkReport,
    BiasAxis,
    Flips,
    GroupScatter,
    Ideal,
    MetricBars,
    RetentionAxis,
)
from harness_tasks.bbq.report import REPORT as _BBQ
from harness_tasks.crows_pairs.report import REPORT as _CROWS_PAIRS
from harness_tasks.retention.report import REPORT as _RETENTION
from harness_tasks.stereoset.report import REPORT as _STEREOSET
from harness_tasks.winogender.report import REPORT as _WINOGENDER

BENCHMARKS: tuple[BenchmarkReport, ...] = (_STEREOSET, _CROWS_PAIRS, _WINOGENDER, _RETENTION, _BBQ)


def _ideal(benchmarks: tuple[BenchmarkReport, ...]) -> Mapping[str, Ideal]:
    # metric names share one namespace (direction() is asked by metric, not task): two benchmarks may
    # name the same metric only if they agree on its direction
    out: dict[str, Ideal] = {}
    for bench in benchmarks:
        for name, ideal in bench.ideal.items():
            if out.setdefault(name, ideal) != ideal:
                raise ValueError(f"{bench.name}: metric {name!r} ideal {ideal!r} contradicts {out[name]!r}")
    return MappingProxyType(out)


def _unique_sections(benchmarks: tuple[BenchmarkReport, ...]) -> None:
    sections = [s.section for b in benchmarks for s in (*b.bars, *b.scatters, *b.flips)]
    duplicated = sorted({s for s in sections if sections.count(s) > 1})
    if duplicated:
        raise ValueError(f"report sections claimed by more than one chart: {duplicated}")


IDEAL: Mapping[str, Ideal] = _ideal(BENCHMARKS)
HEADLINE: tuple[str, ...] = tuple(m for b in BENCHMARKS for m in b.headline)
BIAS_AXES: tuple[BiasAxis, ...] = tuple(a for b in BENCHMARKS for a in b.bias_axes)
RETENTION_AXES: tuple[RetentionAxis, ...] = tuple(a for b in BENCHMARKS for a in b.retention_axes)
BARS: tuple[MetricBars, ...] = tuple(s for b in BENCHMARKS for s in b.bars)
SCATTERS: tuple[GroupScatter, ...] = tuple(s for b in BENCHMARKS for s in b.scatters)
FLIPS: tuple[Flips, ...] = tuple(s for b in BENCHMARKS for s in b.flips)
_unique_sections(BENCHMARKS)

# longest first, so a per-group metric matches its most specific name (``ss_gender`` -> ``ss``)
_BY_LENGTH = tuple(sorted(IDEAL, key=len, reverse=True))


def direction(metric: str) -> Ideal | None:
    """The ideal value (float) or "higher"/"lower" for ``metric``; None if no direction is defined.

    ``metric`` matches a name when equal to it or when it extends it by ``_group`` (``lms_intrasentence``).
    """
    for name in _BY_LENGTH:
        if metric == name or metric.startswith(name + "_"):
            return IDEAL[name]
    return None


def is_headline(metric: str) -> bool:
    """Whether ``metric`` is a key metric, with or without a filter (``exact_match,strict-match``)."""
    return metric in HEADLINE or metric.split(",")[0] in HEADLINE


__all__ = [
    "BARS",
    "BENCHMARKS",
    "BIAS_AXES",
    "FLIPS",
    "HEADLINE",
    "IDEAL",
    "RETENTION_AXES",
    "SCATTERS",
    "direction",
    "is_headline",
]
