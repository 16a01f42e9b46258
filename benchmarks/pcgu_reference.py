"""The per-unit Python loop that ``partition.select_units`` vectorizes: the reference its test and
``pcgu_step.py`` compare against (same units chosen), kept out of the package because nothing runs it
in production.
"""

from __future__ import annotations

import math

import torch


def naive_select_units(units, grads_a, grads_d, k: float) -> dict[str, torch.Tensor]:
    """{param name: unit indices}: the ``k`` lowest cosines (``k`` <= 1 a fraction, else a count)."""
    scored = []
    for unit in units:
        ga, gd = grads_a[unit.name], grads_d[unit.name]
        for i in range(unit.count):
            if unit.axis is None:
                a, d = ga.flatten(), gd.flatten()
            else:
                a, d = ga.select(unit.axis, i), gd.select(unit.axis, i)
            na, nd = float(a.norm()), float(d.norm())
            cos = float(a @ d) / (na * nd) if na > 0 and nd > 0 else math.inf
            scored.append((cos, unit.name, i))
    finite = sum(math.isfinite(c) for c, _, _ in scored)
    count = int(round(k * len(scored))) if k <= 1 else int(k)
    count = max(0, min(count, finite))
    out: dict[str, list[int]] = {}
    for _, name, i in sorted(scored, key=lambda t: t[0])[:count]:
        out.setdefault(name, []).append(i)
    return {name: torch.tensor(sorted(idx)) for name, idx in out.items()}
