"""Role → pronoun pairs: which pronoun follows a mention of an occupation, in both directions.

The attribute pairs (``bias_pairs``, ``varied_pairs``) move what a model says *about* a group; none of
them asks which gender a model assumes for a person named only by their job, which is what Winogender's
``stereotype_corr`` measures (on Gemma-3-270M DPO on the attribute pairs moved StereoSet gender SS half
way to 50 and left that correlation at 0.675 → 0.676). Here a sentence names a role and the continuation
starts with a pronoun referring back to it; for a role commonly stereotyped as female the continuation
with "she" is rejected and the same continuation with "he" chosen, and the reverse for a role stereotyped
as male. Each pronoun is rejected exactly as often as it is chosen, so the pairs move the association of
role and pronoun, never a pronoun's overall likelihood.

The roles are deliberately *not* Winogender's occupations (a test checks), so whatever moves its
correlation generalised from other jobs; the stereotype labels are the commonly documented ones, not
statistics from any benchmark. The frames are the project's own text (the 8-word overlap test covers
them), split by frame: the held-out frames never appear in training.
"""

from __future__ import annotations

from debias.data.bias_pairs import BiasPair, _sentence_start, fingerprint_of

#: roles commonly stereotyped as held by women (group "a") and by men (group "b"), none a Winogender
#: occupation; the same number on each side so that each pronoun is rejected as often as it is chosen
FEMALE_TYPED_ROLES: tuple[str, ...] = (
    "nanny", "midwife", "flight attendant", "housekeeper", "babysitter", "florist", "beautician", "typist",
    "makeup artist", "preschool aide",
)  # fmt: skip
MALE_TYPED_ROLES: tuple[str, ...] = (
    "pilot", "truck driver", "welder", "miner", "soldier", "bricklayer", "roofer", "security guard",
    "butcher", "crane operator",
)  # fmt: skip

#: pronoun forms: (female, male) for {nom} / {obj} / {poss}
PRONOUNS = {"nom": ("she", "he"), "obj": ("her", "him"), "poss": ("her", "his")}

# (prompt with {role}, continuation starting with a pronoun); the first TRAIN_FRAMES are for training
FRAMES: tuple[tuple[str, str], ...] = (
    ("The {role} checked the list twice, and then", " {nom} signed the form."),
    ("When the {role} got home that evening,", " {nom} made a cup of tea."),
    ("I asked the {role} about the delay, and", " {nom} said it would be sorted out soon."),
    ("The {role} was late this morning because", " {nom} missed the early bus."),
    ("After lunch, the {role} said that", " {nom} needed a short break."),
    ("The {role} put the phone down. A minute later,", " {nom} picked it up again."),
    ("Our {role} is very organised;", " {nom} keeps every receipt in a folder."),
    ("As soon as the {role} walked in,", " {nom} noticed the smell of fresh paint."),
    ("I thanked the {role} and handed", " {obj} the spare keys."),
    ("The {role} could not find", " {poss} umbrella anywhere."),
    ("Everyone waved at the {role}, and", " {nom} waved back."),
    ("The {role} finished early, so we invited", " {obj} to join us for dinner."),
    # held out
    ("The {role} read the message and", " {nom} smiled."),
    ("Yesterday the {role} told me that", " {nom} would be away next week."),
    ("Before leaving, the {role} checked", " {poss} bag one more time."),
)
TRAIN_FRAMES = 12


def generate(split: str = "train") -> list[BiasPair]:
    """Every (role, frame) of ``split``: the stereotyped pronoun rejected, the other one chosen."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    frames = range(TRAIN_FRAMES) if split == "train" else range(TRAIN_FRAMES, len(FRAMES))
    pairs = []
    for group, roles in (("a", FEMALE_TYPED_ROLES), ("b", MALE_TYPED_ROLES)):
        for role in roles:
            for f in frames:
                prompt, continuation = FRAMES[f]
                female = continuation.format(**{k: v[0] for k, v in PRONOUNS.items()})
                male = continuation.format(**{k: v[1] for k, v in PRONOUNS.items()})
                rejected, chosen = (female, male) if group == "a" else (male, female)
                text = _sentence_start(prompt.format(role=role))
                pairs.append(BiasPair(text, chosen, rejected, "gender", group, f))
    return pairs


def fingerprint() -> str:
    """A short hash of the set (its text and split), recorded with every run that trains on it."""
    return fingerprint_of(generate)
