"""PCGU, partitioned contrastive gradient unlearning: ``recipe`` (config, trainer, ``PcguRecipe``),
``partition`` (weight units and their selection), ``pairs`` (training pairs)."""

from debias.methods.pcgu.pairs import (
    GENERATED_PAIRS,
    PREFIXES,
    PRONOUNS,
    Pair,
    attribute_pairs,
    load_pairs,
    occupation_pairs,
    read_pairs,
    trait_pairs,
)
from debias.methods.pcgu.recipe import (
    PcguConfig,
    PcguRecipe,
    PcguTrainer,
    epoch_batches,
    param_grads,
    target_logprobs,
)

__all__ = [
    "GENERATED_PAIRS",
    "PREFIXES",
    "PRONOUNS",
    "Pair",
    "PcguConfig",
    "PcguRecipe",
    "PcguTrainer",
    "attribute_pairs",
    "epoch_batches",
    "load_pairs",
    "occupation_pairs",
    "param_grads",
    "read_pairs",
    "target_logprobs",
    "trait_pairs",
]
