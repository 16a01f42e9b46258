"""DPO on chosen/rejected bias pairs: ``recipe`` (config, TRL-based ``DpoRecipe``, overshoot guard) and
``pairs`` (the built-in set and user pair files)."""

from debias.data.preference_pairs import PreferencePair, builtin, load, read_pairs
from debias.methods.dpo.recipe import DpoConfig, DpoRecipe, crossed, dpo_loss, reward_stats

__all__ = [
    "DpoConfig",
    "DpoRecipe",
    "PreferencePair",
    "builtin",
    "crossed",
    "dpo_loss",
    "load",
    "read_pairs",
    "reward_stats",
]
