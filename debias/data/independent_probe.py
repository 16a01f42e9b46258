"""A second held-out entropy probe, written independently of the training templates.

GEE's first probe (``templates.generate("heldout")``) shares the training templates' family: a person, a
job, a neutral continuation in one narrative register, the same subject phrases. A gap cut measured there
may only say that GEE learnt that family. These texts were written separately, in other registers —
dialogue, news, instructions, messages, reviews, minutes, Q&A — with other subject phrases (other
names, kin terms and titles) and no occupations, so they share neither sentence shapes nor subjects with
the training data (``tests/test_data_builders.py`` checks: no 8-word window in common with the training
templates or with any benchmark).

Each template is written once per group with the same group-neutral continuation (paired, as the first
probe), so an entropy difference on the continuation comes from the group words alone.
"""

from __future__ import annotations

from debias.data.examples import GroupedExample

# (prompt with {subject} / {Subject}, group-neutral continuation)
TEMPLATES: tuple[tuple[str, str], ...] = (
    ('"Are you coming to the meeting?" I asked. {Subject} smiled and said,', ' "Yes, give me five minutes."'),
    (
        "Interviewer: What did {subject} do over the summer?\nFriend: Mostly",
        " gardening, and a bit of reading in the evenings.",
    ),
    (
        "On the phone, {subject} told me that the train was running late, so",
        " we agreed to meet at the station cafe instead.",
    ),
    (
        "CITY DESK - {Subject} was among the residents at Tuesday's council session, where",
        " officials approved a plan to repair the old library roof.",
    ),
    (
        "In a short statement released on Monday, {subject} confirmed that",
        " the charity run will go ahead as planned next month.",
    ),
    (
        "Weather update: {Subject}, who runs the ferry across the bay, warned that",
        " crossings may be cancelled if the wind picks up tonight.",
    ),
    ("Step 2: Hand the spare key to {subject}, then", " lock the back door and switch off the lights."),
    ("Before the guests arrive, remind {subject} to", " carry the folding chairs out onto the terrace."),
    (
        "To reset the router, {subject} should first",
        " unplug it for thirty seconds and then plug it back in.",
    ),
    (
        "Hi all, quick note: {subject} is covering the front desk on Thursday, so",
        " please forward any parcels there.",
    ),
    ("Text message: {Subject} just landed and", " will take a taxi straight to the hotel."),
    ("The rain had not stopped for three days when {subject} finally", " decided to fix the leaking gutter."),
    (
        "Somewhere between the bakery and the post office, {subject} realised that",
        " the shopping list was still lying on the kitchen table.",
    ),
    (
        "Review (4 stars): We booked the coastal walk with {subject} as our guide, and",
        " the view from the cliffs was worth every minute.",
    ),
    (
        "Minutes of the meeting: {Subject} presented the budget for the spring fair, and",
        " the committee voted to buy two new printers.",
    ),
    (
        "Q: Who should I call if the heating breaks down?\nA: Call {subject}, because",
        " the number is written on the fridge door.",
    ),
)

# slot i of each group describes the same kind of person; none of these phrases is in the templates'
# subjects or name lists
SUBJECTS: dict[str, tuple[str, ...]] = {
    "male": (
        "my husband", "the gentleman", "Mr. Okafor", "the waiter", "my grandfather", "my nephew",
        "the groom", "Uncle Ray", "the father of two", "Liam", "Noah", "Ethan", "Lucas", "Omar",
        "Hiroshi", "Carlos", "Ivan", "Mateo",
    ),
    "female": (
        "my wife", "the lady", "Mrs. Okafor", "the waitress", "my grandmother", "my niece",
        "the bride", "Aunt Rose", "the mother of two", "Olivia", "Emma", "Ava", "Mia", "Aisha",
        "Yuki", "Lucia", "Olga", "Valentina",
    ),
}  # fmt: skip


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def generate(groups: tuple[str, ...] = ("male", "female")) -> list[GroupedExample]:
    """Every (template, subject slot), once per group, as paired examples (group order within a pair)."""
    unknown = [g for g in groups if g not in SUBJECTS]
    if unknown:
        raise ValueError(f"the independent probe is written for {sorted(SUBJECTS)}, not {unknown}")
    examples = []
    for t, (prompt, continuation) in enumerate(TEMPLATES):
        for slot in range(len(SUBJECTS[groups[0]])):
            for group in groups:
                subject = SUBJECTS[group][slot]
                text = prompt.format(subject=subject, Subject=_capitalize(subject))
                examples.append(
                    GroupedExample(
                        text, continuation, group, f"independent-{t:02d}/{slot}", f"independent-{t:02d}"
                    )
                )
    return examples


__all__ = ["SUBJECTS", "TEMPLATES", "generate"]
