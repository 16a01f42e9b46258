"""GEE, group-entropy equalisation: ``recipe`` (config + ``GeeRecipe``) and ``losses`` (the math)."""

from debias.methods.gee.recipe import (
    Batch,
    GeeConfig,
    GeeRecipe,
    entropy_probe,
    group_sums,
    rollout_batch,
    teacher_forced_batch,
)

__all__ = [
    "Batch",
    "GeeConfig",
    "GeeRecipe",
    "entropy_probe",
    "group_sums",
    "rollout_batch",
    "teacher_forced_batch",
]
