"""What the harness loads from a user's files: tensors from safetensors, never a pickle unless asked.

A pickle (``pytorch_model.bin``, ``adapter_model.bin``, ``*.pt``) runs code when it is unpickled, so a
model folder, adapter or run folder someone sent you could execute anything the moment it loads.
safetensors holds only tensors. Pickle files are refused with one line unless the user says they trust
them (``cli.py --allow-pickle ...`` or ``DEBIAS_ALLOW_PICKLE=1``). The harness's own resumable state
(``checkpoints/*/state.pt``) is read with ``torch.load(weights_only=True)``, which unpickles only
tensors and plain containers.
"""

from __future__ import annotations

import os
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
_allowed = os.environ.get("DEBIAS_ALLOW_PICKLE") == "1"


class PickleRefused(ValueError):
    """A pickle file where only safetensors are loaded by default: one line naming it."""


def allow_pickle(on: bool = True) -> None:
    global _allowed
    _allowed = on


def pickle_allowed() -> bool:
    return _allowed


def check_weights_folder(folder: Path | str, what: str) -> None:
    """Refuse ``folder`` when its weights exist only as pickle files (and pickle is not allowed)."""
    folder = Path(folder)
    if _allowed or not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if pickles:
        raise PickleRefused(
            f"{pickles[0]}: {what} weights are a pickle file, which can run code when loaded; convert "
            "it to safetensors, or pass --allow-pickle if you trust its source"
        )


__all__ = ["PICKLE_SUFFIXES", "PickleRefused", "allow_pickle", "check_weights_folder", "pickle_allowed"]
