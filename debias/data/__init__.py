"""Training data for debiasing: group-labelled prompts, counterfactual pairs, balancing and batching.

- ``templates.generate``: the project's own paired prompts (never benchmark text), train and held-out.
- ``varied_templates.generate``: the same gender subjects in many registers and sentence shapes, paired.
- ``user_prompts.load_prompts`` / ``balance``: a user's JSONL/CSV/parquet prompts, grouped by detection.
- ``counterfactual``: whole-word, case-preserving group swaps that turn one-group texts into pairs.
- ``sampler.GroupBalancedBatches``: resumable batches with equal examples per group.

Group labels are plain strings; gender is the default lexicon, not a built-in assumption.
"""

from debias.data.counterfactual import GENDER_SWAP_MAP, counterfactual_pairs, gender_swap, swap
from debias.data.detect import detect_group, matched_groups
from debias.data.examples import GroupedExample
from debias.data.lexicons import GENDER, MIXED, NEUTRAL, Lexicon, validate_lexicon
from debias.data.sampler import GroupBalancedBatches
from debias.data.templates import (
    GENDER_TERMS,
    HELDOUT_TEMPLATES,
    ROLES,
    TRAIN_TEMPLATES,
    GroupTerms,
    generate,
)
from debias.data.user_prompts import balance, group_counts, load_prompts

__all__ = [
    "GENDER",
    "GENDER_SWAP_MAP",
    "GENDER_TERMS",
    "HELDOUT_TEMPLATES",
    "MIXED",
    "NEUTRAL",
    "ROLES",
    "TRAIN_TEMPLATES",
    "GroupBalancedBatches",
    "GroupTerms",
    "GroupedExample",
    "Lexicon",
    "balance",
    "counterfactual_pairs",
    "detect_group",
    "gender_swap",
    "generate",
    "group_counts",
    "load_prompts",
    "matched_groups",
    "swap",
    "validate_lexicon",
]
