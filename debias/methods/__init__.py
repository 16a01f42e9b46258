"""Debiasing methods: each is a package ``debias/methods/<name>/`` with a config dataclass and a
``Recipe`` subclass (``debias.methods.recipe``); registered here, every command picks it up.

The registry names modules as strings so that importing it loads no method (and no torch).
"""

from __future__ import annotations

import importlib

from debias.methods.recipe import Recipe

# method -> (module, config class, recipe class)
METHODS: dict[str, tuple[str, str, str]] = {
    "gee": ("debias.methods.gee.recipe", "GeeConfig", "GeeRecipe"),
    "pcgu": ("debias.methods.pcgu.recipe", "PcguConfig", "PcguRecipe"),
    "dpo": ("debias.methods.dpo.recipe", "DpoConfig", "DpoRecipe"),
    "equalize": ("debias.methods.equalize.recipe", "EqualizeConfig", "EqualizeRecipe"),
    "project": ("debias.methods.project.recipe", "ProjectConfig", "ProjectRecipe"),
}

# What `train` / `train-and-eval` run without --method: the leaderboard's default row, within both retention
# budgets on both models' select halves and then nearest SS 50 on the default model's (README, "The method
# leaderboard"; benchmarks/leaderboard.py default_row).
DEFAULT_METHOD = "dpo"


def _entry(method: str) -> tuple[str, str, str]:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(sorted(METHODS))}")
    return METHODS[method]


def config_class(method: str) -> type:
    module, config, _ = _entry(method)
    return getattr(importlib.import_module(module), config)


def recipe_class(method: str) -> type[Recipe]:
    module, _, recipe = _entry(method)
    return getattr(importlib.import_module(module), recipe)
