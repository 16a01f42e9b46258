"""How far a PCGU adapter moved the units it changed, relative to the base weights.

PCGU's update is ``lr`` times the raw gradient of the selected units (no per-model normalisation), so
the same ``--lr`` can mean very different steps on two models. This reads a sparse adapter (its stored
trained slices) and the base model's weights and prints, over every changed unit (row or column), the
relative change ``‖trained − base‖ / ‖base‖``: the median of each parameter's median, and the largest.

    python benchmarks/pcgu_update_size.py --model gemma3-270m \\
        --adapter runs/leaderboard/gemma3-270m/pcgu/checkpoints/epoch-1
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open

from debias import sparse_adapter


def relative_changes(adapter: Path, base_tensor: Callable[[str], torch.Tensor]) -> dict[str, list[float]]:
    """{parameter: each changed unit's ‖trained − base‖ / ‖base‖}; ``base_tensor(name)``: a base weight."""
    config_file, weights_file = sparse_adapter.files(adapter)
    config = json.loads(config_file.read_text())
    out: dict[str, list[float]] = {}
    with safe_open(str(weights_file), "pt") as stored:
        for name, spec in config["params"].items():
            values = stored.get_tensor(f"{name}::values").double()
            base = base_tensor(name).double()
            axis = spec["axis"]
            if axis is None:  # a whole 1-D parameter is one unit
                base, values = base.reshape(1, -1), values.reshape(1, -1)
            else:
                base = base.index_select(axis, stored.get_tensor(f"{name}::indices")).movedim(axis, 0)
                values = values.movedim(axis, 0)
            change = (values - base).flatten(1).norm(dim=1) / base.flatten(1).norm(dim=1).clamp_min(1e-12)
            out[name] = change.tolist()
    return out


def summary(changes: dict[str, list[float]]) -> dict[str, float]:
    every = [c for unit_changes in changes.values() for c in unit_changes]
    return {
        "parameters": len(changes),
        "units": len(every),
        "median_of_parameter_medians": statistics.median(statistics.median(c) for c in changes.values()),
        "median_unit": statistics.median(every),
        "largest_unit": max(every),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--adapter", type=Path, required=True, help="a sparse (PCGU) adapter folder")
    args = parser.parse_args()
    from debias import models

    folder = models.resolve(args.model)
    weights = sorted(folder.glob("*.safetensors"))
    owner = {}  # weight name -> the open file holding it (a checkpoint may be sharded)
    for path in weights:
        handle = safe_open(str(path), "pt")
        owner.update(dict.fromkeys(handle.keys(), handle))

    def base_tensor(name: str) -> torch.Tensor:
        if name not in owner:
            raise SystemExit(f"{folder}: no weight named {name!r}")
        return owner[name].get_tensor(name)

    result = summary(relative_changes(args.adapter, base_tensor))
    print(json.dumps({"model": args.model, "adapter": str(args.adapter), **result}, indent=2))


if __name__ == "__main__":
    main()
