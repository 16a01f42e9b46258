"""Which process of a distributed launch this is, read where every launcher writes it.

``accelerate launch`` and ``torchrun`` both set ``WORLD_SIZE`` and ``RANK`` for each process, and
accelerate's ``PartialState`` reads the same two variables; reading them here (rather than building a
``PartialState``) answers "am I one of several processes, and which" without starting a process group,
so the run-folder lock and the main job's refusal can ask before anything is loaded. Every place that
needs the answer asks this module, so the three never disagree.
"""

from __future__ import annotations

import os


def world_size() -> int:
    """How many processes the launch started (1 outside a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1") or "1")


def rank() -> int:
    """This process's global rank (0 outside a launcher)."""
    return int(os.environ.get("RANK", "0") or "0")


def is_secondary() -> bool:
    """True for every process of a multi-process launch except rank 0 (the one that writes)."""
    return world_size() > 1 and rank() != 0


__all__ = ["is_secondary", "rank", "world_size"]
