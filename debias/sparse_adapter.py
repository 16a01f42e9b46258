"""PCGU's artefact: only the rows/columns training changed, in safetensors, plus the base model they fit.

Layout of an adapter folder:
    adapter_config.json   {"format": "debias-sparse-v1", "base_model": spec, "base_weights_sha256": {...},
                           "params": {name: {"axis": 0 | 1 | null, "units": n}}, "bytes": ...}
    adapter.safetensors   "<name>::indices" (int64) and "<name>::values" (the trained slices)

The trained *values* of the changed slices are stored rather than their deltas: ``base + (trained − base)``
is not always bit-identical to ``trained`` in float32, and loading must reproduce the trained weights
exactly. The size is the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from debias.atomic import atomic_dir

FORMAT = "debias-sparse-v1"
CONFIG = "adapter_config.json"
WEIGHTS = "adapter.safetensors"


def is_sparse_adapter(folder: Path) -> bool:
    config = Path(folder) / CONFIG
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("format") == FORMAT
    except json.JSONDecodeError:
        return False


def save(
    folder: Path,
    model: torch.nn.Module,
    changed: dict[str, tuple[int | None, torch.Tensor]],
    base: dict[str, Any],
) -> int:
    """Write the changed slices of ``model``'s parameters; ``changed``: {name: (axis, unit indices)}.

    Returns the adapter's size in bytes.
    """
    params = dict(model.named_parameters())
    tensors: dict[str, torch.Tensor] = {}
    described: dict[str, Any] = {}
    for name, (axis, indices) in sorted(changed.items()):
        param = params[name].detach()
        indices = torch.as_tensor(indices, dtype=torch.int64).unique(sorted=True)
        values = param.clone() if axis is None else param.index_select(axis, indices)
        tensors[f"{name}::indices"] = indices.contiguous()
        tensors[f"{name}::values"] = values.contiguous().cpu()
        described[name] = {"axis": axis, "units": int(indices.numel()) if axis is not None else 1}
    with atomic_dir(Path(folder)) as tmp:
        save_file(tensors, str(tmp / WEIGHTS))
        size = (tmp / WEIGHTS).stat().st_size
        config = {"format": FORMAT, **base, "params": described, "bytes": size}
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return size


def apply(
    model: torch.nn.Module, folder: Path, expected_weights: dict[str, str] | None = None
) -> torch.nn.Module:
    """Write the adapter's slices into ``model`` in place (and return it).

    ``expected_weights`` (the base model's weight hashes) must match the adapter's, when both are known:
    slices trained on another base would silently produce a different model.
    """
    folder = Path(folder)
    if not is_sparse_adapter(folder):
        raise ValueError(f"{folder}: not a sparse (PCGU) adapter folder ({CONFIG} with format {FORMAT})")
    config = json.loads((folder / CONFIG).read_text())
    recorded = config.get("base_weights_sha256")
    if expected_weights and recorded and recorded != expected_weights:
        raise ValueError(f"{folder}: trained on base weights {recorded}, not this model's {expected_weights}")
    tensors = load_file(str(folder / WEIGHTS))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, spec in config["params"].items():
            if name not in params:
                raise ValueError(f"{folder}: parameter {name!r} is not in this model")
            param, axis = params[name], spec["axis"]
            values = tensors[f"{name}::values"].to(param.device, param.dtype)
            if axis is None:
                param.copy_(values)
            else:
                param.index_copy_(axis, tensors[f"{name}::indices"].to(param.device), values)
    return model


def slices(folder: Path) -> dict[str, tuple[int | None, torch.Tensor]]:
    """{name: (axis, unit indices)} of an adapter: what ``save`` was given, to resume a run from it."""
    config = json.loads((Path(folder) / CONFIG).read_text())
    tensors = load_file(str(Path(folder) / WEIGHTS))
    return {name: (spec["axis"], tensors[f"{name}::indices"]) for name, spec in config["params"].items()}


def size(folder: Path) -> int:
    return (Path(folder) / WEIGHTS).stat().st_size


def units(folder: Path) -> int:
    """Changed units (rows, columns or whole 1-D parameters) the adapter holds."""
    config = json.loads((Path(folder) / CONFIG).read_text())
    return sum(int(spec["units"]) for spec in config["params"].values())
