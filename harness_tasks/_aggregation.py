"""The one hook a task's aggregation may offer beyond lm-eval's contract: computing its siblings jointly.

lm-eval aggregates each metric separately. A corpus-level score such as StereoSet's comes with 45
sibling metrics that one scoring pass computes together; a bootstrap that re-ran the scorer once per
metric and resample would take 45 times as long. An aggregation that subclasses ``JointAggregation``
says so, and ``debias.compare`` then resamples all metrics sharing one ``joint`` function together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class JointAggregation:
    """An lm-eval aggregation (``__call__(items) -> float``) that can also compute every sibling.

    Subclasses set ``joint`` (items -> {metric: value}, for all metrics sharing it; each metric's value
    equals its own ``__call__``) and may set ``prepare`` (items -> items, a per-item conversion done
    once before resampling). Both are plain functions (staticmethods), so metrics built from the same
    function are recognised as siblings.
    """

    @staticmethod
    def joint(items: Sequence[Any]) -> dict[str, float]:
        raise NotImplementedError

    @staticmethod
    def prepare(items: Sequence[Any]) -> Sequence[Any]:
        return items

    def __call__(self, items: Sequence[Any]) -> float:
        raise NotImplementedError


def joint_hook(aggregate: Any) -> tuple[Any, Any] | None:
    """(joint, prepare) of an aggregation that declares the hook, else None."""
    if isinstance(aggregate, JointAggregation):
        return aggregate.joint, aggregate.prepare
    return None
