"""The one record every training-data builder produces, so trainers need to know only this shape."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupedExample:
    """One group-labelled training text.

    ``prompt`` is what rollout mode conditions on; ``prompt + continuation`` is the teacher-forced text and
    only the continuation's tokens are scored (the trainer tokenizes, so the split is kept as text here).
    Counterfactual versions of one text share ``pair_id`` and have identical ``continuation`` text, so any
    difference the model shows on the continuation comes from the group words in the prompt alone.
    ``weight`` lets balancing re-weight instead of throwing data away.
    """

    prompt: str
    continuation: str
    group: str
    pair_id: str
    template_id: str
    weight: float = 1.0

    @property
    def text(self) -> str:
        """The teacher-forced text (prompt followed by continuation)."""
        return self.prompt + self.continuation
