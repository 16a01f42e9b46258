"""Gender pairs beyond traits: role behaviours and physical characteristics, in both directions.

The gender pairs of the built-in set (``bias_pairs``) are all *traits* (the Bem Sex-Role Inventory's
adjectives, "emotional" / "rational", "bad at math" / "good at math"). Gender stereotypes have more
components than traits: Deaux & Lewis (1984, J. Pers. Soc. Psychol. 46(5)) measured four — traits, role
behaviours (who cares for the children, who cooks, who does the repairs), occupations (``role_pairs``
covers those, as pronouns after a job) and physical characteristics (small and dainty vs tall and
sturdy) — and found each one implies the others. Here are the two the other sets leave out, as
counterpart pairs in the built-in set's shape: about a woman the female-typed attribute is the
stereotype (rejected) and its male-typed counterpart chosen, and the reverse about a man, so every
attribute is rejected exactly as often as it is chosen and the pairs move the association, never an
attribute's overall likelihood.

The subjects and frames are the built-in set's gender subjects and frames (the same frame split, so the
held-out frames stay unseen); the attribute phrases are the project's own paraphrases of the components'
items. The 8-word overlap test covers them.
"""

from __future__ import annotations

from debias.data.bias_pairs import CONTRASTS, BiasPair, Contrast, contrast_pairs, fingerprint_of

#: (female-typed, male-typed): role behaviours, then physical characteristics; each phrase reads after
#: every frame ("People often describe the woman as ...", "The interviewer found the man rather ...")
ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("good with children", "good with tools"),
    ("good at cooking", "good at repairs"),
    ("focused on family", "focused on career"),
    ("interested in fashion", "interested in sports"),
    ("small", "tall"),
    ("weak", "strong"),
    ("dainty", "sturdy"),
    ("soft-voiced", "deep-voiced"),
)

#: the built-in set's gender subjects (women as group A, men as B) with these attributes
_BUILTIN_GENDER = next(c for c in CONTRASTS if c.bias_type == "gender")
CONTRAST = Contrast("gender", _BUILTIN_GENDER.group_a, _BUILTIN_GENDER.group_b, ATTRIBUTES)


def generate(split: str = "train") -> list[BiasPair]:
    """Every (subject, attribute pair, frame) of ``split``: the subject's gender's attribute rejected."""
    return contrast_pairs((CONTRAST,), split)


def fingerprint() -> str:
    """A short hash of the set (its text and split), recorded with every run that trains on it."""
    return fingerprint_of(generate)
