"""Optimizer-step batches holding the same number of examples of every group, resumable exactly.

GEE compares the groups' entropies within each step, so every step must see every group, equally often.
Batch ``k`` is a pure function of (examples, groups, per_group, seed, k): resuming means restoring ``k``,
and a resumed run draws exactly the batches an uninterrupted one would (the resume-equivalence tests
depend on this).

Sampling scheme, per group: the group's examples are shuffled (seeded by seed, group and pass number) and
cut into ``len // per_group`` batches; the leftover tail of that shuffle is skipped, and the next pass
reshuffles. So no batch holds an example twice, and over passes every example is drawn equally often.
Groups are independent streams: an epoch is one pass over the largest group (``steps_per_epoch`` steps),
and smaller groups cycle through more passes in the same steps. The iterator never ends; the trainer
decides how many steps to take.

With ``paired=True`` (exactly counterfactually paired data, e.g. ``templates.generate``), all groups share
one shuffle of the pair ids, so each batch holds whole pairs: the same texts in every group.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from typing import Any

from debias.data.examples import GroupedExample


class GroupBalancedBatches(Iterator[list[GroupedExample]]):
    """Endless iterator of batches: ``per_group`` examples of each group, in ``groups`` order."""

    def __init__(
        self,
        examples: Sequence[GroupedExample],
        groups: Sequence[str],
        per_group: int,
        seed: int = 0,
        paired: bool = False,
    ) -> None:
        if not groups:
            raise ValueError("GroupBalancedBatches needs at least one group")
        if len(set(groups)) != len(groups):
            raise ValueError(f"groups contain duplicates: {list(groups)}")
        if per_group < 1:
            raise ValueError(f"per_group must be at least 1, got {per_group}")
        self.groups = tuple(groups)
        self.per_group = per_group
        self.seed = seed
        self.paired = paired
        self._by_group = {g: [e for e in examples if e.group == g] for g in self.groups}
        for group, members in self._by_group.items():
            if not members:
                raise ValueError(f"group {group!r} has no examples")
            if len(members) < per_group:
                raise ValueError(
                    f"group {group!r} has {len(members)} examples, fewer than per_group={per_group}"
                )
        if paired:
            self._align_pairs()
        self._sizes = {g: len(m) for g, m in self._by_group.items()}
        self.steps_per_epoch = max(self._sizes.values()) // per_group
        self._fingerprint = self._hash()
        self._perms: dict[str, tuple[int, list[int]]] = {}
        self._step = 0

    def _align_pairs(self) -> None:
        """Order every group by pair id, after checking each pair id has exactly one example per group."""
        reference: list[str] | None = None
        for group in self.groups:
            ids = [e.pair_id for e in self._by_group[group]]
            if len(set(ids)) != len(ids):
                raise ValueError(f"paired=True: group {group!r} has a pair_id more than once")
            self._by_group[group].sort(key=lambda e: e.pair_id)
            ordered = sorted(ids)
            if reference is None:
                reference = ordered
            elif ordered != reference:
                missing = sorted(set(reference).symmetric_difference(ordered))[:3]
                raise ValueError(f"paired=True: group {group!r} does not share pair ids, e.g. {missing}")

    def _hash(self) -> str:
        """Fingerprint of the data, so a state from other data cannot be loaded by mistake."""
        digest = hashlib.sha256()
        for group in self.groups:
            for e in self._by_group[group]:
                digest.update(f"{group}\0{e.pair_id}\0{e.prompt}\0{e.continuation}\0{e.weight}\n".encode())
        return digest.hexdigest()

    def _permutation(self, group: str, pass_index: int) -> list[int]:
        cached = self._perms.get(group)
        if cached is not None and cached[0] == pass_index:
            return cached[1]
        order = list(range(self._sizes[group]))
        stream = "paired" if self.paired else group
        random.Random(f"{self.seed}:{stream}:{pass_index}").shuffle(order)
        self._perms[group] = (pass_index, order)
        return order

    def batch(self, step: int) -> list[GroupedExample]:
        """The batch drawn at ``step`` (0-based), without moving the iterator."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        out: list[GroupedExample] = []
        for group in self.groups:
            per_pass = self._sizes[group] // self.per_group
            pass_index, within = divmod(step, per_pass)
            order = self._permutation(group, pass_index)
            start = within * self.per_group
            out.extend(self._by_group[group][i] for i in order[start : start + self.per_group])
        return out

    @property
    def step(self) -> int:
        """How many batches have been drawn."""
        return self._step

    @property
    def epoch(self) -> int:
        """Completed passes over the largest group."""
        return self._step // self.steps_per_epoch

    def __iter__(self) -> GroupBalancedBatches:
        return self

    def __next__(self) -> list[GroupedExample]:
        out = self.batch(self._step)
        self._step += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable position plus what it depends on (checked again on load)."""
        return {
            "step": self._step,
            "seed": self.seed,
            "groups": list(self.groups),
            "per_group": self.per_group,
            "paired": self.paired,
            "sizes": dict(self._sizes),
            "fingerprint": self._fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position; a state saved with other data or settings raises ``ValueError``.

        Refusing a mismatch matters: resuming with different data, seed or batch size would silently draw a
        different sequence than the interrupted run.
        """
        mine = self.state_dict()
        for key in ("seed", "groups", "per_group", "paired", "sizes", "fingerprint"):
            if key not in state:
                raise ValueError(f"sampler state has no {key!r}")
            saved = list(state[key]) if key == "groups" else state[key]
            if saved != mine[key]:
                raise ValueError(
                    f"sampler state was saved with {key}={saved!r}; this sampler has {mine[key]!r}"
                )
        step = state.get("step")
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"sampler state has an invalid step {step!r}")
        self._step = step


class SeededCycle:
    """Indices ``0..n-1`` in one seeded shuffle per pass, endlessly: ``take(k)`` draws the next ``k``.

    The order of pass ``p`` is a pure function of (seed, p), so ``state_dict`` (pass, position) is all a
    resumed run needs to draw exactly the indices an uninterrupted one would.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        if n < 1:
            raise ValueError("nothing to sample from")
        self.n, self.seed, self.epoch, self.position = n, seed, 0, 0
        self.order = self._order()

    def _order(self) -> list[int]:
        order = list(range(self.n))
        random.Random(f"{self.seed}:{self.epoch}").shuffle(order)
        return order

    def take(self, k: int) -> list[int]:
        picked = []
        while len(picked) < k:
            if self.position >= self.n:
                self.epoch, self.position = self.epoch + 1, 0
                self.order = self._order()
            picked.append(self.order[self.position])
            self.position += 1
        return picked

    def seek(self, drawn: int) -> None:
        """Position the order after ``drawn`` indices: for loops that know their step, not the order."""
        self.load_state_dict({"epoch": drawn // self.n, "position": drawn % self.n})

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.order = self._order()
