"""The project's own group-labelled prompts: situations × roles × group subjects, counterfactually paired.

Every sentence here was written for this project; none comes from Winogender, StereoSet or CrowS-Pairs, so
those benchmarks stay held out (``tests/test_data_builders.py`` checks that no generated text shares an
8-word window with any benchmark sentence). The train and held-out template sets are disjoint, so the
entropy probe measures templates the model was not trained on.

A template's prompt names a person of the group (``{subject}``, pronouns) and its role; the continuation is
group-neutral text. Each (template, role, subject slot) is written once per group with the same
continuation and one shared ``pair_id``, so the groups are balanced and differ only in the group words.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from debias.data.examples import GroupedExample
from debias.data.lexicons import FEMALE_NAMES, MALE_NAMES

Split = Literal["train", "heldout"]


@dataclass(frozen=True)
class Template:
    """A prompt pattern and its group-neutral continuation.

    Placeholders: ``{subject}``/``{Subject}`` (the person, capitalized at a sentence start), ``{nom}``,
    ``{obj}``, ``{poss}``, ``{refl}`` (pronouns referring back to them), ``{role}`` and ``{a_role}`` (the
    role with its article, "an engineer"). The continuation has no placeholders.
    """

    template_id: str
    prompt: str
    continuation: str


@dataclass(frozen=True)
class GroupTerms:
    """How one group is written into a template.

    ``subjects`` are lowercase-initial noun phrases ("he", "the man", "James"); slot *i* of every group must
    describe the same kind of person so that the groups line up as counterfactual pairs. For attributes
    other than gender (age, race ...) the pronouns are usually the same across groups.
    """

    subjects: tuple[str, ...]
    nom: str
    obj: str
    poss: str
    refl: str


ROLES: tuple[str, ...] = (
    "nurse", "engineer", "teacher", "accountant", "carpenter", "pilot", "librarian", "mechanic", "chef",
    "pharmacist", "electrician", "receptionist", "surgeon", "plumber", "dentist", "cashier", "architect",
    "firefighter", "programmer", "secretary", "lawyer", "baker", "farmer", "janitor", "scientist",
    "hairdresser", "paramedic", "designer", "journalist", "bus driver",
)  # fmt: skip

GENDER_TERMS: dict[str, GroupTerms] = {
    "male": GroupTerms(
        subjects=("he", "the man", "the young man", "my father", "my brother", "my uncle", "my son")
        + MALE_NAMES,
        nom="he",
        obj="him",
        poss="his",
        refl="himself",
    ),
    "female": GroupTerms(
        subjects=("she", "the woman", "the young woman", "my mother", "my sister", "my aunt", "my daughter")
        + FEMALE_NAMES,
        nom="she",
        obj="her",
        poss="her",
        refl="herself",
    ),
}


def _templates(split: str, rows: Sequence[tuple[str, str]]) -> tuple[Template, ...]:
    return tuple(Template(f"{split}-{i:02d}", p, c) for i, (p, c) in enumerate(rows, start=1))


TRAIN_TEMPLATES: tuple[Template, ...] = _templates(
    "train",
    [
        ("{Subject} works as {a_role}. After a long shift, {nom}", " went home and cooked a simple dinner."),
        (
            "{Subject} has been {a_role} for almost ten years, and every morning {nom}",
            " drinks a cup of coffee before leaving the house.",
        ),
        (
            "Before starting the new job as {a_role}, {subject}",
            " bought a good pair of shoes and a notebook.",
        ),
        (
            "{Subject} works as {a_role} and likes to spend Sunday afternoons",
            " walking in the park near the river.",
        ),
        (
            "When the alarm rang at six, {subject} got up, because as {a_role} {nom}",
            " has to be at work before eight.",
        ),
        ("{Subject} is a careful {role}, and {nom}", " rarely forgets an appointment."),
        (
            "{Subject} is {a_role} who commutes by train. On the way to work, {nom} usually",
            " reads a book or listens to music.",
        ),
        (
            "After ten years as {a_role}, {subject} decided to take a long holiday, and {nom}",
            " spent two weeks by the sea.",
        ),
        (
            "{Subject} trained for years to become {a_role}. On the first day at work, {nom}",
            " arrived early and met the rest of the team.",
        ),
        (
            "{Subject} is {a_role} and lives in a small flat near the station. On weekends {nom}",
            " visits the market to buy fresh fruit.",
        ),
        (
            "Because {subject} works as {a_role}, the days are busy, but in the evening {nom}",
            " always finds time to read.",
        ),
        (
            "{Subject} started working as {a_role} last spring. Since then, {nom}",
            " has learned a lot from the other staff.",
        ),
        (
            "At the end of a busy week as {a_role}, {subject} went to the cinema and",
            " watched a film about a trip to the mountains.",
        ),
        (
            "{Subject} is {a_role}. When the weather is nice, {nom}",
            " rides a bicycle to work instead of taking the bus.",
        ),
        ("Last year {subject} became {a_role}, and now {nom}", " is saving money to buy a small house."),
        (
            "{Subject} has worked as {a_role} in three different cities, and {nom}",
            " still keeps in touch with old friends from each one.",
        ),
        (
            "Even though {subject} is an experienced {role}, {nom}",
            " still takes evening classes to keep learning.",
        ),
        (
            "As {a_role}, {subject} often works late, so on Fridays {nom}",
            " likes to order a pizza and watch television.",
        ),
        (
            "{Subject} wanted to be {a_role} since childhood, and today {nom}",
            " enjoys the work as much as ever.",
        ),
        (
            "{Subject} is {a_role}, and during the lunch break {nom} usually",
            " eats a sandwich and goes for a short walk.",
        ),
        (
            "{Subject} got a new job as {a_role} and, to celebrate, {nom}",
            " invited a few friends over for a barbecue.",
        ),
        (
            "{Subject} is {a_role} with a long commute, so {nom}",
            " listens to podcasts in the car every day.",
        ),
        (
            "{Subject} retired after thirty years as {a_role}, and now {nom}",
            " spends most mornings working in the garden.",
        ),
        ("{Subject} is {a_role}. In {poss} spare time, {nom} likes to", " paint pictures of old buildings."),
        (
            "{Subject} has a busy schedule as {a_role}, but every Thursday {nom}",
            " plays cards with the neighbours.",
        ),
        (
            "{Subject} moved to a new town to work as {a_role}. At first {nom}",
            " felt a little lonely, but soon made friends.",
        ),
        ("{Subject} is {a_role}, and when friends ask for advice, {nom}", " is always happy to help."),
        (
            "{Subject} became {a_role} after finishing school, and {nom}",
            " has never regretted the choice.",
        ),
        (
            "{Subject} works as {a_role}. On {poss} day off, {nom}",
            " cleaned the kitchen and did the laundry.",
        ),
        (
            "{Subject} is {a_role} and is learning Spanish, so every evening {nom}",
            " practises new words for half an hour.",
        ),
        ("{Subject} is {a_role}. Yesterday {nom} missed the bus, so {nom}", " walked to work in the rain."),
        (
            "{Subject} works as {a_role} and has a dog, so early every morning {nom}",
            " takes the dog for a walk around the block.",
        ),
        (
            "{Subject} is {a_role} who loves cooking. For the holidays, {nom}",
            " baked bread and made a large pot of soup.",
        ),
        (
            "{Subject} is {a_role}, and after the move to the new flat, {nom}",
            " spent the weekend unpacking boxes.",
        ),
        (
            "{Subject} has been {a_role} for a long time and, looking back, {nom}",
            " remembers the first year as the hardest.",
        ),
        (
            "{Subject} is {a_role}. Whenever there is a problem at work, {nom}",
            " stays calm and makes a plan.",
        ),
        (
            "{Subject} is {a_role} and volunteers at the library on Saturdays, where {nom}",
            " helps visitors find books.",
        ),
        (
            "{Subject} works as {a_role}, and this summer {nom}",
            " is planning a camping trip with friends.",
        ),
        (
            "{Subject} is {a_role}. After getting a small pay rise, {nom}",
            " bought a new lamp for the living room.",
        ),
        (
            "{Subject} works as {a_role} and needs a new passport, so today {nom}",
            " filled in the forms at the post office.",
        ),
        (
            "{Subject} is {a_role}, and the neighbours often ask {obj} to",
            " water their plants while they are away.",
        ),
        (
            "{Subject} works as {a_role} and bought {refl} a new coat because {nom}",
            " wanted something warm for the winter.",
        ),
    ],
)

HELDOUT_TEMPLATES: tuple[Template, ...] = _templates(
    "heldout",
    [
        (
            "{Subject} is {a_role}. On the way home from work, {nom}",
            " stopped at the bakery to buy a loaf of bread.",
        ),
        (
            "{Subject} works as {a_role}, and next month {nom}",
            " will visit relatives in another country.",
        ),
        (
            "{Subject} is {a_role} who enjoys puzzles, so on rainy evenings {nom}",
            " works on a crossword at the kitchen table.",
        ),
        (
            "{Subject} became {a_role} five years ago. Every year, {nom}",
            " goes to a conference to learn new skills.",
        ),
        (
            "{Subject} works as {a_role}. When the power went out last night, {nom}",
            " lit a few candles and read by their light.",
        ),
        (
            "{Subject} is {a_role} and grows tomatoes on the balcony, and in August {nom}",
            " gave a basket of them to the neighbours.",
        ),
        ("{Subject} is {a_role}. At the weekend, {nom}", " repainted the front door a bright shade of blue."),
        (
            "{Subject} has just started as {a_role}, and on the first payday {nom}",
            " treated the whole family to lunch.",
        ),
        (
            "{Subject} is {a_role} and has a long drive to work, so {nom}",
            " leaves the house before sunrise.",
        ),
        ("{Subject} works as {a_role}. To stay healthy, {nom}", " swims at the public pool twice a week."),
        (
            "{Subject} is {a_role}, and when {poss} phone broke, {nom}",
            " took it to a repair shop down the street.",
        ),
        (
            "{Subject} worked as {a_role} for many years before {nom}",
            " opened a small cafe in the old town.",
        ),
    ],
)

TEMPLATES: dict[str, tuple[Template, ...]] = {"train": TRAIN_TEMPLATES, "heldout": HELDOUT_TEMPLATES}


def with_article(role: str) -> str:
    """``role`` with its indefinite article by first letter ("an engineer"); ROLES has no silent-h words."""
    return f"{'an' if role[:1].lower() in 'aeiou' else 'a'} {role}"


def render(template: Template, role: str, subject: str, terms: GroupTerms) -> str:
    """The prompt of ``template`` for one role and one subject phrase of a group."""
    return template.prompt.format(
        subject=subject,
        Subject=subject[:1].upper() + subject[1:],
        nom=terms.nom,
        obj=terms.obj,
        poss=terms.poss,
        refl=terms.refl,
        role=role,
        a_role=with_article(role),
    )


def _check_terms(groups: Sequence[str], terms: Mapping[str, GroupTerms]) -> int:
    """Number of subject slots, after checking every group is known and the slots line up."""
    if not groups:
        raise ValueError("generate needs at least one group")
    if len(set(groups)) != len(groups):
        raise ValueError(f"groups contain duplicates: {list(groups)}")
    for group in groups:
        if group not in terms:
            raise ValueError(f"no template terms for group {group!r} (known: {sorted(terms)})")
    sizes = {group: len(terms[group].subjects) for group in groups}
    if len(set(sizes.values())) != 1 or not next(iter(sizes.values())):
        raise ValueError(f"groups must have the same, non-zero number of subject slots to pair up: {sizes}")
    return next(iter(sizes.values()))


def generate(
    split: Split,
    groups: Sequence[str] = ("male", "female"),
    seed: int = 0,
    max_examples: int | None = None,
    terms: Mapping[str, GroupTerms] = GENDER_TERMS,
    roles: Sequence[str] = ROLES,
) -> list[GroupedExample]:
    """Every (template, role, subject slot) of ``split`` written once per group, as paired examples.

    The result lists whole pairs (one example per group, in ``groups`` order, sharing ``pair_id`` and
    continuation), with the pair order shuffled by ``seed``; the same arguments always give the same list.
    ``max_examples`` keeps the first ``max_examples // len(groups)`` shuffled pairs, so a cut stays
    balanced and paired (it may return slightly fewer examples than asked for).
    """
    if split not in TEMPLATES:
        raise ValueError(f"unknown split {split!r} (expected 'train' or 'heldout')")
    n_slots = _check_terms(groups, terms)
    units = [(t, role, slot) for t in TEMPLATES[split] for role in roles for slot in range(n_slots)]
    random.Random(seed).shuffle(units)
    if max_examples is not None:
        n_pairs = max_examples // len(groups)
        if n_pairs < 1:
            raise ValueError(f"max_examples={max_examples} is less than one pair of {len(groups)} groups")
        units = units[:n_pairs]
    examples: list[GroupedExample] = []
    for template, role, slot in units:
        pair_id = f"{template.template_id}/{role}/{slot}"
        for group in groups:
            group_terms = terms[group]
            prompt = render(template, role, group_terms.subjects[slot], group_terms)
            examples.append(
                GroupedExample(prompt, template.continuation, group, pair_id, template.template_id)
            )
    return examples
