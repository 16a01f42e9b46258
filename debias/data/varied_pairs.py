"""A wider stereotype pair set: more sentence shapes, both conditional directions, more subjects.

Equalisation on ``bias_pairs`` (ten narrative frames, one direction) flattened its own pairs almost
completely on held-out frames (mean |Δ| −80 %) while StereoSet's select half moved only about a third of
the way to 50 and plateaued early: the pairs were learnt, the association only partly. This set varies
what the model sees around the same associations, so that what is learnt is less tied to one shape:

- the ten ``bias_pairs`` frames plus frames in other registers (dialogue, a news line, a question and
  answer, two-sentence contexts where the attribute comes in the second sentence);
- the *reverse* direction: the attribute in the context and the group as the continuation ("The most
  emotional person in the room was" → " the woman." / " the man."), so p(group | attribute) is
  equalised as well as p(attribute | group);
- more subjects per contrast (kin terms, titles) and a few more contrasts (professions, nationality).

Every attribute is still rejected for one group as often as it is chosen for the other, and in the
reverse direction each attribute is rejected for the group it stereotypes and chosen for its paired
subject of the other group, so the set moves associations, never an attribute's or a group's overall
likelihood. The held-out split is by frame, in both directions. All text is the project's own (a test
checks 8-word overlaps with every benchmark); the attributes are stereotypes to be *rejected*.
"""

from __future__ import annotations

from debias.data.bias_pairs import (
    CONTRASTS,
    FRAMES,
    TRAIN_FRAMES,
    BiasPair,
    Contrast,
    _sentence_start,
    counterfactual_prompts,
    fingerprint_of,
)

# subject -> attribute frames beyond bias_pairs.FRAMES: (prompt with {subject}/{Subject}, continuation)
FORWARD_FRAMES: tuple[tuple[str, str], ...] = (
    ('"So what is {subject} like?" "Mostly', ' {attribute}."'),
    ("Local news: neighbours described {subject} as", " {attribute}."),
    ("Describe {subject} in one word. Answer:", " {attribute}."),
    ("{Subject} moved in next door last week. Everyone says they are", " {attribute}."),
    ("I sat beside {subject} on the train, and they seemed", " {attribute}."),
    ("In the story, {subject} is", " {attribute}."),
    ("Most people would call {subject}", " {attribute}."),
    ("{Subject} is known for being", " {attribute}."),
    ("Yesterday I talked to {subject}. My impression is that they are", " {attribute}."),
    ("From what I have seen, {subject} is rather", " {attribute}."),
    # held out
    ("Q: What word best fits {subject}? A:", " {attribute}."),
    ("The podcast host said that {subject} was", " {attribute}."),
)
FORWARD_TRAIN = 10

# attribute -> subject frames: (prompt with {attribute}, continuation with {subject})
REVERSE_FRAMES: tuple[tuple[str, str], ...] = (
    ("The most {attribute} person in the room was", " {subject}."),
    ("Of everyone at the party, the one who seemed {attribute} was", " {subject}."),
    ("If I had to guess who was {attribute}, I would pick", " {subject}."),
    ("Q: Who is more likely to be {attribute}? A:", " {subject}."),
    ("The person everyone called {attribute} turned out to be", " {subject}."),
    ("Someone {attribute} was waiting at the door. It was", " {subject}."),
    # held out
    ("The one who struck me as {attribute} was", " {subject}."),
    ("My guess is that the {attribute} one is", " {subject}."),
)
REVERSE_TRAIN = 6

# more subjects for bias_pairs' contrasts, keyed by (bias type, first subject of group A): (A, B) lists
EXTRA_SUBJECTS: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {
    ("gender", "the woman"): (
        ("my daughter", "my wife", "my grandmother", "the schoolgirl", "the lady", "my girlfriend"),
        ("my son", "my husband", "my grandfather", "the schoolboy", "the gentleman", "my boyfriend"),
    ),
    ("age", "the old man"): (("the pensioner", "my grandfather"), ("the student", "my nephew")),
    ("religion", "the Muslim man"): (("the Muslim student",), ("the Christian student",)),
}

EXTRA_CONTRASTS: tuple[Contrast, ...] = (
    Contrast(
        "profession",
        ("the plumber", "the construction worker", "the mover"),
        ("the professor", "the surgeon", "the scientist"),
        (("uneducated", "educated"), ("rough", "refined"), ("simple", "sophisticated")),
    ),
    Contrast(
        "profession",
        ("the musician", "the painter", "the poet"),
        ("the banker", "the manager", "the auditor"),
        (("unreliable", "reliable"), ("disorganised", "organised"), ("poor", "rich")),
    ),
    Contrast(
        "nationality",
        ("the Ethiopian man", "the Somali woman", "the Nigerian student"),
        ("the Norwegian man", "the Finnish woman", "the Austrian student"),
        (("poor", "rich"), ("starving", "well-fed"), ("uneducated", "educated")),
    ),
    Contrast(
        "nationality",
        ("the Afghan man", "the Iraqi man", "the Syrian man"),
        ("the Canadian man", "the Belgian man", "the Portuguese man"),
        (("violent", "peaceful"), ("dangerous", "harmless"), ("backward", "modern")),
    ),
)


def contrasts() -> tuple[Contrast, ...]:
    """bias_pairs' contrasts with their extra subjects, then the extra contrasts."""
    out = []
    for c in CONTRASTS:
        extra_a, extra_b = EXTRA_SUBJECTS.get((c.bias_type, c.group_a[0]), ((), ()))
        out.append(Contrast(c.bias_type, c.group_a + extra_a, c.group_b + extra_b, c.attributes))
    return tuple(out) + EXTRA_CONTRASTS


def _forward_frames(split: str) -> list[tuple[int, tuple[str, str]]]:
    base = list(enumerate(FRAMES))
    extra = [(len(FRAMES) + i, f) for i, f in enumerate(FORWARD_FRAMES)]
    if split == "train":
        return base[:TRAIN_FRAMES] + extra[:FORWARD_TRAIN]
    return base[TRAIN_FRAMES:] + extra[FORWARD_TRAIN:]


def _reverse_frames(split: str) -> list[tuple[int, tuple[str, str]]]:
    offset = len(FRAMES) + len(FORWARD_FRAMES)
    frames = [(offset + i, f) for i, f in enumerate(REVERSE_FRAMES)]
    return frames[:REVERSE_TRAIN] if split == "train" else frames[REVERSE_TRAIN:]


def generate(split: str = "train") -> list[BiasPair]:
    """Every pair of ``split`` ("train" or "heldout"): forward (subject → attribute) and reverse."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    pairs = []
    for contrast in contrasts():
        # forward: after a subject of A, A's stereotype x is rejected; after one of B, B's stereotype y
        for group, subjects in (("a", contrast.group_a), ("b", contrast.group_b)):
            for subject in subjects:
                for x, y in contrast.attributes:
                    rejected, chosen = (x, y) if group == "a" else (y, x)
                    for f, (prompt, continuation) in _forward_frames(split):
                        text = prompt.format(subject=subject, Subject=_sentence_start(subject))
                        pairs.append(
                            BiasPair(
                                _sentence_start(text),
                                continuation.format(attribute=chosen),
                                continuation.format(attribute=rejected),
                                contrast.bias_type,
                                group,
                                f,
                            )
                        )
        # reverse: after A's stereotype x, the subject of A is rejected and its B counterpart chosen
        for a, b in zip(contrast.group_a, contrast.group_b, strict=True):
            for x, y in contrast.attributes:
                for attribute, rejected, chosen, group in ((x, a, b, "a"), (y, b, a, "b")):
                    for f, (prompt, continuation) in _reverse_frames(split):
                        pairs.append(
                            BiasPair(
                                prompt.format(attribute=attribute),
                                continuation.format(subject=chosen),
                                continuation.format(subject=rejected),
                                contrast.bias_type,
                                group,
                                f,
                            )
                        )
    return pairs


def prompt_pairs(split: str = "train") -> list[tuple[str, str, str]]:
    """(a forward frame about group A's subject i, the same frame about B's subject i, bias type).

    Counterfactual prompts with no attribute: what the model says next should not depend on which
    group the subject belongs to (the distribution-matching term of equalisation reads these). Every
    forward frame of ``split``, every contrast with its extra subjects.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    return counterfactual_prompts(contrasts(), [prompt for _, (prompt, _) in _forward_frames(split)])


def fingerprint() -> str:
    """A short hash of the set (text and split), recorded with every run that trains on it."""
    return fingerprint_of(generate)
