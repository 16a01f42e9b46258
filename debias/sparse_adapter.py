"""PCGU's artefact: only the rows/columns training changed, in safetensors, plus the base model they fit.

Layout of an adapter folder:
    sparse_adapter.json         {"format": "debias-sparse-v1", "base_model": spec,
                                 "base_weights_sha256": {...},
                                 "params": {name: {"axis": 0 | 1 | null, "units": n}}, "bytes": ...}
    sparse_adapter.safetensors  "<name>::indices" (int64) and "<name>::values" (the trained slices)

The names are our own: peft recognises a folder by ``adapter_config.json``, and a sparse adapter under
that name made peft's tools try (and fail) to load it. Folders written before the rename
(``adapter_config.json`` with this format + ``adapter.safetensors``) are still read.

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
CONFIG = "sparse_adapter.json"
WEIGHTS = "sparse_adapter.safetensors"
_LEGACY = ("adapter_config.json", "adapter.safetensors")  # written before the rename


def _files(folder: Path) -> tuple[Path, Path] | None:
    """(config, weights) of a sparse adapter folder, new names first; None if it holds none."""
    for config, weights in ((CONFIG, WEIGHTS), _LEGACY):
        path = Path(folder) / config
        if path.is_file():
            try:
                if json.loads(path.read_text()).get("format") == FORMAT:
                    return path, Path(folder) / weights
            except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                return None
    return None


def files(folder: Path) -> tuple[Path, Path]:
    """(config, weights) of the sparse adapter in ``folder``."""
    found = _files(folder)
    if found is None:
        raise ValueError(f"{folder}: not a sparse (PCGU) adapter folder ({CONFIG} with format {FORMAT})")
    return found


def is_sparse_adapter(folder: Path) -> bool:
    return _files(folder) is not None


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
        if not torch.isfinite(values).all():  # it would load as a valid adapter
            raise ValueError(f"{folder}: not written: the changed units of {name} hold NaN/inf")
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
    files = _files(folder)
    if files is None:
        raise ValueError(f"{folder}: not a sparse (PCGU) adapter folder ({CONFIG} with format {FORMAT})")
    config_file, weights_file = files
    config = json.loads(config_file.read_text())
    recorded = config.get("base_weights_sha256")
    if expected_weights and recorded and recorded != expected_weights:
        raise ValueError(f"{folder}: trained on base weights {recorded}, not this model's {expected_weights}")
    tensors = load_file(str(weights_file))
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


def _read(folder: Path) -> tuple[dict[str, Any], Path]:
    config, weights = files(folder)
    return json.loads(config.read_text()), weights


def slices(folder: Path) -> dict[str, tuple[int | None, torch.Tensor]]:
    """{name: (axis, unit indices)} of an adapter: what ``save`` was given, to resume a run from it."""
    config, weights = _read(folder)
    tensors = load_file(str(weights))
    return {name: (spec["axis"], tensors[f"{name}::indices"]) for name, spec in config["params"].items()}


def size(folder: Path) -> int:
    return _read(folder)[1].stat().st_size


def units(folder: Path) -> int:
    """Changed units (rows, columns or whole 1-D parameters) the adapter holds."""
    config, _ = _read(folder)
    return sum(int(spec["units"]) for spec in config["params"].values())
