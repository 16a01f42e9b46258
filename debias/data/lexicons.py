"""Whole-word lists that say which group a text is about, and the word pairs that swap one group for another.

A lexicon is a plain ``dict`` of group name → words (``Lexicon``), so race, age or any other attribute works
the same way as gender: pass your own dict wherever ``GENDER`` is the default. Words are matched whole and
case-insensitively; an entry may hold spaces, hyphens or apostrophes ("senior citizen", "ma'am").

The gender lists are built from ``GENDER_SWAP_PAIRS`` so every gendered word the detector knows also has a
counterpart that ``gender_swap`` can put in its place: detection and counterfactual swapping never disagree.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

Lexicon = dict[str, frozenset[str]]

# Labels ``detect_group`` returns when no group, or more than one, is found; a lexicon may not use them.
NEUTRAL = "neutral"
MIXED = "mixed"
RESERVED_GROUPS = frozenset({NEUTRAL, MIXED})

# Common US first names (most frequent in census/SSA lists), paired by index for counterfactual swaps.
# Names that are also everyday words (Will, Mark, Bill, Grace, Hope, June ...) are left out on purpose:
# matching is case-insensitive, and "will" must not make a sentence male.
MALE_NAMES: tuple[str, ...] = (
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles",
    "Christopher", "Daniel", "Matthew", "Anthony", "Steven", "Paul", "Andrew", "Joshua", "Kenneth", "Kevin",
)  # fmt: skip
FEMALE_NAMES: tuple[str, ...] = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
    "Nancy", "Lisa", "Margaret", "Sandra", "Ashley", "Kimberly", "Emily", "Donna", "Michelle", "Laura",
)  # fmt: skip

# (male, female) word pairs, lowercase. A word may appear in several pairs (his/her and his/hers, mr/ms and
# mr/mrs): the first pair decides the male→female direction, and ``counterfactual.GENDER_SWAP_MAP`` settles
# the ambiguous female "her" with a context rule. Occupational words that are often used for anyone
# (actor, waiter, host) are not listed, so they neither label a text nor get swapped.
GENDER_SWAP_PAIRS: tuple[tuple[str, str], ...] = (
    ("he", "she"), ("him", "her"), ("his", "her"), ("his", "hers"), ("himself", "herself"),
    ("man", "woman"), ("men", "women"), ("boy", "girl"), ("boys", "girls"),
    ("father", "mother"), ("fathers", "mothers"), ("son", "daughter"), ("sons", "daughters"),
    ("brother", "sister"), ("brothers", "sisters"), ("husband", "wife"), ("husbands", "wives"),
    ("uncle", "aunt"), ("uncles", "aunts"), ("nephew", "niece"), ("nephews", "nieces"),
    ("king", "queen"), ("kings", "queens"), ("prince", "princess"), ("princes", "princesses"),
    ("gentleman", "lady"), ("gentlemen", "ladies"), ("sir", "madam"), ("sir", "ma'am"),
    ("mr", "ms"), ("mr", "mrs"), ("dad", "mom"), ("dads", "moms"), ("dad", "mum"), ("daddy", "mommy"),
    ("grandfather", "grandmother"), ("grandfathers", "grandmothers"), ("grandpa", "grandma"),
    ("grandson", "granddaughter"), ("grandsons", "granddaughters"),
    ("stepfather", "stepmother"), ("stepson", "stepdaughter"),
    ("boyfriend", "girlfriend"), ("boyfriends", "girlfriends"), ("groom", "bride"),
    ("fiance", "fiancee"), ("male", "female"), ("males", "females"),
    ("businessman", "businesswoman"), ("businessmen", "businesswomen"),
    ("chairman", "chairwoman"), ("spokesman", "spokeswoman"),
    ("policeman", "policewoman"), ("policemen", "policewomen"),
) + tuple((m.lower(), f.lower()) for m, f in zip(MALE_NAMES, FEMALE_NAMES, strict=True))  # fmt: skip

GENDER: Lexicon = {
    "male": frozenset(m for m, _ in GENDER_SWAP_PAIRS),
    "female": frozenset(f for _, f in GENDER_SWAP_PAIRS),
}


def validate_lexicon(lexicon: Mapping[str, Collection[str]]) -> Lexicon:
    """Normalized copy of ``lexicon`` (lowercase, stripped words), or a ``ValueError`` naming the problem.

    Checked up front because a bad lexicon fails silently otherwise: a word listed under two groups would
    make every text containing it "mixed", and a group named "neutral" could not be told from no match.
    """
    if not lexicon:
        raise ValueError("lexicon is empty: it needs at least one group with words")
    owner: dict[str, str] = {}
    normalized: Lexicon = {}
    for group, words in lexicon.items():
        if not isinstance(group, str) or not group.strip():
            raise ValueError(f"lexicon group names must be non-empty strings, got {group!r}")
        if group in RESERVED_GROUPS:
            raise ValueError(f"lexicon group name {group!r} is reserved for detection results")
        if isinstance(words, str):
            raise ValueError(f"lexicon group {group!r}: words must be a collection, not one string")
        clean = frozenset(" ".join(str(w).lower().split()) for w in words)
        if not clean or "" in clean:
            raise ValueError(f"lexicon group {group!r} has no words or an empty word")
        for word in clean:
            if word in owner:
                raise ValueError(f"lexicon word {word!r} is listed under both {owner[word]!r} and {group!r}")
            owner[word] = group
        normalized[group] = clean
    return normalized
