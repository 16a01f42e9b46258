"""PCGU's weight partition: which parameter slices form one "unit", and their gradient-similarity ranking.

A unit is one row (input aggregation: every weight feeding one output neuron) or one column (output
aggregation: every weight leaving one input) of a weight matrix in its *logical* [out, in] orientation,
or a whole 1-D parameter (norm scale, bias). Storage orientation differs by layer type: ``nn.Linear``
stores [out, in], GPT-2's ``Conv1D`` stores [in, out], ``nn.Embedding`` stores [vocab, dim] and acts as
a [dim, vocab] map from one-hot tokens. A weight shared by two modules (tied embedding / LM head) is one
parameter and is partitioned once, in the orientation of the ``Linear`` that uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Aggregation = Literal["input", "output"]


@dataclass(frozen=True)
class ParamUnits:
    """How one parameter splits into units: along stored ``axis`` (0 rows, 1 columns; None: whole)."""

    name: str
    param: nn.Parameter
    axis: int | None

    @property
    def count(self) -> int:
        return 1 if self.axis is None else self.param.shape[self.axis]


def _is_conv1d(module: nn.Module) -> bool:
    # transformers' GPT-2 style Conv1D (weight [in, out]); matched by name to avoid importing GPT-2 code
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _logical_out_axis(module: nn.Module) -> int | None:
    """Stored axis that indexes output features (the logical rows), for weight matrices we know."""
    if isinstance(module, nn.Linear):
        return 0
    if _is_conv1d(module):
        return 1
    if isinstance(module, nn.Embedding):
        return 1  # [vocab, dim]: dim is the output of the one-hot map
    return None


def partition(model: nn.Module, aggregation: Aggregation = "input") -> list[ParamUnits]:
    """Every trainable parameter once, with the stored axis its units run along."""
    if aggregation not in ("input", "output"):
        raise ValueError(f"aggregation must be 'input' or 'output', not {aggregation!r}")
    owner: dict[int, nn.Module] = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            previous = owner.get(id(param))
            # a tied weight is owned by an Embedding and a Linear: the Linear's orientation wins
            if previous is None or (isinstance(previous, nn.Embedding) and isinstance(module, nn.Linear)):
                owner[id(param)] = module
    units: list[ParamUnits] = []
    for name, param in model.named_parameters():  # named_parameters() yields a shared tensor once
        if not param.requires_grad:
            continue
        if param.dim() == 1:
            units.append(ParamUnits(name, param, None))
            continue
        if param.dim() != 2:
            raise ValueError(
                f"{name}: PCGU partitions 1-D and 2-D parameters, got shape {tuple(param.shape)}"
            )
        out_axis = _logical_out_axis(owner[id(param)])
        if out_axis is None:
            raise ValueError(f"{name}: unknown layer type {type(owner[id(param)]).__name__} for partitioning")
        # input aggregation: a unit is a logical row = all weights of one output feature
        units.append(ParamUnits(name, param, out_axis if aggregation == "input" else 1 - out_axis))
    return units


def unit_cosines(ga: torch.Tensor, gd: torch.Tensor, axis: int | None) -> torch.Tensor:
    """Cosine similarity of the two gradients per unit, vectorized over the units of one tensor.

    Units where either gradient is zero have no direction: they get +inf so they are never selected.
    """
    if axis is None:
        dims: tuple[int, ...] = tuple(range(ga.dim()))
        dot, na, nd = (ga * gd).sum(), ga.norm(), gd.norm()
        dot, na, nd = dot.reshape(1), na.reshape(1), nd.reshape(1)
    else:
        dims = (1 - axis,)
        dot = (ga * gd).sum(dim=dims)
        na = ga.norm(dim=dims[0])
        nd = gd.norm(dim=dims[0])
    denominator = na * nd
    cos = dot / denominator.clamp_min(torch.finfo(ga.dtype).tiny)
    return torch.where(denominator > 0, cos, torch.full_like(cos, math.inf))


def select_units(
    units: list[ParamUnits], grads_a: dict[str, torch.Tensor], grads_d: dict[str, torch.Tensor], k: float
) -> dict[str, torch.Tensor]:
    """{param name: indices of its selected units}: the global ``k`` lowest cosines over all units.

    ``k`` <= 1 is a fraction of all units (1.0: every unit with a gradient, the unpartitioned
    ablation), ``k`` > 1 a count.
    """
    cosines = [unit_cosines(grads_a[u.name], grads_d[u.name], u.axis) for u in units]
    flat = torch.cat(cosines)
    total = flat.numel()
    count = int(round(k * total)) if k <= 1 else int(k)
    count = max(0, min(count, int(torch.isfinite(flat).sum())))
    if count == 0:
        return {}
    chosen = torch.topk(flat, count, largest=False).indices
    selected: dict[str, torch.Tensor] = {}
    offset = 0
    for unit, cos in zip(units, cosines, strict=True):
        n = cos.numel()
        mine = chosen[(chosen >= offset) & (chosen < offset + n)] - offset
        if mine.numel():
            selected[unit.name] = torch.sort(mine).values
        offset += n
    return selected


def unit_mask(unit: ParamUnits, indices: torch.Tensor) -> torch.Tensor:
    """A 0/1 mask of the parameter's shape with the selected units set."""
    mask = torch.zeros_like(unit.param, dtype=torch.bool)
    if unit.axis is None:
        mask[...] = bool(indices.numel())
    elif unit.axis == 0:
        mask[indices] = True
    else:
        mask[:, indices] = True
    return mask
