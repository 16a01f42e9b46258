"""Contrastive pairs about gendered *traits* for PCGU, in both directions.

``attribute_pair_rows``: a gendered subject, then two traits ("My sister is very" → " gentle" /
" aggressive"): the direction StereoSet scores (p(attribute | group)). ``trait_pair_rows``: a trait,
then two gendered words ("The most gentle person in the room was a" → " woman" / " man").

Which side is "advantaged" (stereotype-consistent) comes from a stated source: the masculine and
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


# (female, male) subject phrases for the other direction: the group word sits in the prefix and the
# two targets are a feminine and a masculine BSRI trait, as StereoSet scores p(attribute | group).
SUBJECTS: tuple[tuple[str, str], ...] = (
    ("My sister", "My brother"), ("The woman next door", "The man next door"), ("Our mother", "Our father"),
    ("The girl in my class", "The boy in my class"), ("My aunt", "My uncle"),
    ("The new waitress", "The new waiter"),
)  # fmt: skip
ATTRIBUTE_PREFIXES: tuple[str, ...] = ("{subject} is very", "Everyone thinks {subject_lower} is")


def attribute_pair_rows() -> list[tuple[str, str, str]]:
    """(prefix, advantaged, disadvantaged): a gendered subject, then its BSRI-consistent trait vs the other.

    Feminine and masculine traits are paired by position (yielding / self-reliant, cheerful / independent,
    ...), so every trait is advantaged after one gender and disadvantaged after the other.
    """
    rows = []
    for feminine, masculine in zip(BSRI_FEMININE, BSRI_MASCULINE, strict=False):
        for female, male in SUBJECTS:
            for template in ATTRIBUTE_PREFIXES:
                for subject, adv, dis in ((female, feminine, masculine), (male, masculine, feminine)):
                    prefix = template.format(subject=subject, subject_lower=subject[0].lower() + subject[1:])
                    rows.append((prefix, f" {adv}", f" {dis}"))
    return rows
