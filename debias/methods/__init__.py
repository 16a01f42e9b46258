"""Debiasing methods: each module is one config dataclass plus a recipe that trains an adapter.

A method module provides ``<Name>Config`` (every field a CLI flag), ``train(cfg, out, resume)`` writing
``out/{adapter/, config.json, metrics.jsonl}``, and ``QUICK`` (config overrides for ``--quick`` runs).
New methods (PCGU, DPO) register here and every command picks them up.
"""

from __future__ import annotations

import importlib
from types import ModuleType

METHODS: dict[str, tuple[str, str]] = {
    "gee": ("debias.methods.gee", "GeeConfig"),
    "pcgu": ("debias.methods.pcgu", "PcguConfig"),
}


def method_module(method: str) -> ModuleType:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(sorted(METHODS))}")
    return importlib.import_module(METHODS[method][0])


def config_class(method: str) -> type:
    return getattr(method_module(method), METHODS[method][1])
