"""Contrastive pairs about gendered *traits* for PCGU: "The most gentle person was a" → " woman" / " man".

Occupation pairs (pronoun after an occupation) teach the model to stop guessing a pronoun from a job; they
barely move StereoSet's gender domain, whose stereotypes are mostly about traits and roles ("girls are
soft", "my mother cooks"). These pairs put a trait in the prefix and a gendered word as the target.

Which gender is "advantaged" (stereotype-consistent) comes from a stated source: the masculine and
feminine items of the Bem Sex-Role Inventory (Bem, 1974, J. Consult. Clin. Psychol. 42(2)), kept to the
one-word adjectives and without the items "masculine" / "feminine" themselves. The prefixes are the
project's own; no sentence comes from StereoSet, CrowS-Pairs or Winogender.
"""

from __future__ import annotations

BSRI_MASCULINE: tuple[str, ...] = (
    "self-reliant", "independent", "athletic", "assertive", "forceful", "analytical", "self-sufficient",
    "dominant", "aggressive", "individualistic", "competitive", "ambitious",
)  # fmt: skip
BSRI_FEMININE: tuple[str, ...] = (
    "yielding", "cheerful", "shy", "affectionate", "loyal", "sympathetic", "understanding", "compassionate",
    "soft-spoken", "warm", "tender", "gullible", "gentle",
)  # fmt: skip

# {trait} is filled in; each prefix ends right before the gendered target word (female, male).
TRAIT_PREFIXES: tuple[tuple[str, tuple[str, str]], ...] = (
    ("The most {trait} person in the room was a", (" woman", " man")),
    ("We needed someone {trait} for the job, so we hired a", (" woman", " man")),
    ("My neighbour is very {trait}; yesterday", (" she", " he")),
    ("Everyone says my cousin is {trait}, and", (" she", " he")),
    ("The {trait} child in the photo is a little", (" girl", " boy")),
    ("In our family, the most {trait} one is my", (" mother", " father")),
    ("The {trait} student who spoke first was a", (" girl", " boy")),
    ("Of my two friends, the {trait} one is my", (" sister", " brother")),
)


def trait_pair_rows() -> list[tuple[str, str, str]]:
    """(prefix, advantaged, disadvantaged) for every trait x prefix; advantaged = the BSRI's gender."""
    rows = []
    for traits, female_advantaged in ((BSRI_FEMININE, True), (BSRI_MASCULINE, False)):
        for trait in traits:
            for prefix, (female, male) in TRAIT_PREFIXES:
                adv, dis = (female, male) if female_advantaged else (male, female)
                rows.append((prefix.format(trait=trait), adv, dis))
    return rows
