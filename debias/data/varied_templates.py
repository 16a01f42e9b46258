"""A second set of GEE training prompts: many registers and sentence shapes, counterfactually paired.

``templates`` has one register (a person, a job, a neutral continuation); a model trained only on it may
equalise the group entropies of that shape and little else. These templates put the same gender subjects
into chat lines, emails, forum posts, reviews, sports reports, recipes, diaries, school reports, formal
notices, travel logs, support tickets, social media, verse, history, children's stories, screenplays,
exam questions and more, with the subject at the start, in the middle, in a question, in quoted speech
or after a heading.

Every sentence was written for this project (``tests/test_data_builders.py`` checks that no text shares
an 8-word window with any benchmark or with the independent probe). The subjects are the template
generator's gender subjects (``templates.GENDER_TERMS``), slot *i* of each group the same kind of person;
a template takes only the slots that are grammatical where its subject stands (no "Dear he,"). Each
continuation is group-neutral: no gender words and nothing referring back to the subject by pronoun.
Every fifth template is held out (GEE's stop split); the rest are for training.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from debias.data.bias_pairs import _sentence_start
from debias.data.examples import GroupedExample
from debias.data.templates import GENDER_TERMS, _check_terms

Split = Literal["train", "heldout"]
# Which subject slots a template takes: "any" (the subject stands where a pronoun fits: every slot),
# "noun" (every slot but the pronoun, e.g. after a preposition), "name" (first names only: greetings,
# signatures, sign-ins).
Kind = Literal["any", "noun", "name"]

HELDOUT_EVERY = 5  # every fifth template (the 5th, 10th, ...) is held out


@dataclass(frozen=True)
class VariedTemplate:
    """A prompt with ``{subject}``/``{Subject}`` (capitalized at a sentence start) and its continuation."""

    template_id: str
    register: str
    kind: Kind
    prompt: str
    continuation: str


_ROWS: tuple[tuple[str, Kind, str, str], ...] = (
    (
        "chat",
        "name",
        "[10:42] {Subject}: is the planning meeting still on for this afternoon?\n[10:43] Reply:",
        " yes, same room as last week, and bring the printed slides.",
    ),
    (
        "text message",
        "any",
        'Text received at 7:15 pm: "Running late, {subject} just called to say the bridge is shut, so',
        ' dinner starts at eight instead of half past seven."',
    ),
    (
        "dialogue",
        "noun",
        '"Has anyone seen {subject} today?" asked the receptionist. "Not since '
        'breakfast," came the answer, "but',
        ' the blue car is still parked by the loading bay."',
    ),
    (
        "email",
        "name",
        "Subject: Quarterly budget\n\nHi {Subject},\n\nThanks for sending the "
        "spreadsheet. Before Friday, could you",
        " double-check the travel costs on the third tab?",
    ),
    (
        "email",
        "any",
        "Hello all,\n\nQuick update: {subject} will cover the front desk on Monday, so please",
        " forward any urgent calls to the main switchboard number.",
    ),
    (
        "email",
        "name",
        "Please find the signed lease attached.\n\nKind regards,\n{Subject}\n\nP.S. The spare keys are",
        " in the top drawer of the grey filing cabinet.",
    ),
    (
        "forum post",
        "any",
        "Re: Sourdough starter not rising\n\nSame thing happened at our place. {Subject} finally fixed it by",
        " moving the jar to a warmer shelf and feeding it twice a day.",
    ),
    (
        "forum post",
        "noun",
        "Posted by tidepool_88: any good mechanics near the ring road? The last "
        "garage overcharged {subject} and",
        " the brakes still squeak on cold mornings.",
    ),
    (
        "forum post",
        "any",
        "Thread: Best budget headphones?\n> {Subject} swears by the cheap wired ones.\nReply:",
        " honestly, for podcasts the difference is hard to hear.",
    ),
    (
        "product review",
        "any",
        "Four stars. Bought this kettle as a gift; {subject} uses it every morning and reports that",
        " it boils quickly, although the lid is a little stiff.",
    ),
    (
        "product review",
        "noun",
        "Verified purchase. I got this tent for {subject} for a weekend trip, and",
        " it went up in ten minutes even in a strong wind.",
    ),
    (
        "restaurant review",
        "any",
        "Harbourside Bistro: we came for a birthday, and {subject} ordered the fish stew, which",
        " arrived piping hot and generously seasoned with saffron.",
    ),
    (
        "sports report",
        "any",
        "Match report: with the score level at the break, {subject} came off the bench, and",
        " the home side finally found some rhythm in midfield.",
    ),
    (
        "sports results",
        "name",
        "Results from Saturday's 10K fun run: first across the line was {Subject}, in a time of",
        " 38 minutes and 12 seconds, a new course record.",
    ),
    (
        "club newsletter",
        "any",
        "Chess club notes: in round four {subject} sacrificed a bishop early, and",
        " the position was wildly complicated by move twenty.",
    ),
    (
        "recipe",
        "any",
        "Lentil soup, the way {subject} makes it. Step one: rinse the lentils. Step two:",
        " simmer them with onion, carrot and a bay leaf for forty minutes.",
    ),
    (
        "instructions",
        "any",
        "Assembly notes for the bookshelf. Last time {subject} skipped step three, so this time remember to",
        " attach the back panel before standing the frame upright.",
    ),
    (
        "recipe",
        "noun",
        "A tip from {subject}: when the pancakes start to bubble,",
        " flip them once and give them one more minute on the heat.",
    ),
    (
        "diary",
        "any",
        "Dear diary, Tuesday. Rain again. {Subject} came round after work and",
        " we played three rounds of cards by the window.",
    ),
    (
        "diary",
        "noun",
        "March 3rd. Finally saw {subject} again at the station after six months apart.",
        " The train was forty minutes late, but nobody minded.",
    ),
    (
        "note to self",
        "any",
        "Note to self: {subject} is coming to stay next week, so before then",
        " fix the wobbly chair and buy some extra towels.",
    ),
    (
        "school report",
        "name",
        "End-of-term report, Year 8. {Subject} has made steady progress in mathematics this term and",
        " should now focus on showing working in written answers.",
    ),
    (
        "school report",
        "name",
        "Science teacher's comment: {Subject} asks thoughtful questions in class;",
        " homework is usually complete and handed in on time.",
    ),
    (
        "attendance record",
        "name",
        "Attendance record: {Subject} missed two days in November.",
        " All of the missed coursework has since been caught up.",
    ),
    (
        "legal notice",
        "noun",
        "NOTICE OF HEARING. The tenancy dispute between the landlord and {subject} will be heard",
        " at the county court on the fourteenth of June at ten o'clock.",
    ),
    (
        "meeting minutes",
        "any",
        "Minutes of the residents' association: {Subject} proposed that the garden budget be increased, and",
        " the motion was carried by nine votes to two.",
    ),
    (
        "contract",
        "noun",
        "This agreement is made between Northgate Lettings Ltd and {subject}, hereinafter",
        " called the Tenant, for the property set out in Schedule A.",
    ),
    (
        "travel log",
        "any",
        "Day 6, Lisbon. We took the old tram up the hill, and {subject}",
        " insisted on stopping at every viewpoint along the way.",
    ),
    (
        "travel log",
        "noun",
        "Travel log, somewhere past the border: the bus broke down, and the driver asked {subject} to",
        " hold the torch while the tyre was changed.",
    ),
    (
        "postcard",
        "any",
        "Postcard from the coast: the hotel is small but clean; {subject} has already found",
        " a bakery that sells warm cinnamon rolls at dawn.",
    ),
    (
        "support ticket",
        "name",
        "Ticket #48213, opened by {Subject}: laptop will not join the office Wi-Fi. Suggested fix:",
        " forget the network, restart the machine, and sign in again.",
    ),
    (
        "support chat",
        "any",
        "Support chat. Agent: Thanks for waiting. Customer: {Subject} already tried "
        "restarting the router, but",
        " the light on the front is still blinking orange.",
    ),
    (
        "known issue",
        "any",
        "Known issue: the printer on floor two jams whenever {subject} sends a double-sided job.",
        " Workaround: print single-sided until the new tray arrives.",
    ),
    (
        "social media",
        "any",
        "Can't believe it, {subject} just finished the city marathon in under four hours!!",
        " The whole street came out to cheer. #finishline",
    ),
    (
        "social media",
        "noun",
        "Happy birthday to {subject}! Another year of",
        " terrible puns, late-night snacks and surprisingly good advice.",
    ),
    (
        "social media",
        "name",
        "@{Subject} thanks for the book recommendation,",
        " finished it in two nights and now I need the sequel.",
    ),
    (
        "poem",
        "any",
        "In the orchard where the cold wind bends, {subject} walks",
        " among the pears and counts the falling leaves.",
    ),
    (
        "poem",
        "noun",
        "Ode to the night shift: for {subject}, and for every lamp still burning,",
        " the city hums a low and patient tune.",
    ),
    (
        "song lyric",
        "any",
        "Verse two: down by the harbour where the gulls complain, {subject} waits",
        " for the ferry in the silver rain.",
    ),
    (
        "history",
        "any",
        "In the winter of 1847 the canal froze solid, and {subject}",
        " crossed it on foot with a sack of flour for the village.",
    ),
    (
        "parish record",
        "noun",
        "Parish records from 1902 list {subject} among the founding members of",
        " the town's lending library and its brass band.",
    ),
    (
        "history",
        "any",
        "When the railway reached the valley in 1871, {subject} was in the crowd that",
        " watched the first engine steam into the new station.",
    ),
    (
        "children's story",
        "any",
        "Once upon a time, in a house made of gingerbread, {subject} found",
        " a tiny door behind the oven that led to a secret garden.",
    ),
    (
        "children's story",
        "noun",
        "The little dragon sneezed, and a puff of purple smoke covered {subject} from head to toe.",
        " Everyone laughed, even the dragon.",
    ),
    (
        "children's story",
        "any",
        '"Follow me!" squeaked the mouse, so {subject} tiptoed',
        " past the sleeping cat and into the pantry.",
    ),
    (
        "screenplay",
        "any",
        "INT. KITCHEN - NIGHT\n\nRain lashes the window. {Subject} enters, soaked,",
        " and drops a ring of keys on the counter.",
    ),
    (
        "screenplay",
        "name",
        "EXT. BUS STOP - DAWN\n\n{Subject} (checking a watch): Ten minutes late.\nSTRANGER:",
        " They always are on Sundays.",
    ),
    (
        "screenplay",
        "noun",
        "CUT TO: a crowded train platform. The camera finds {subject} in the crowd,",
        " clutching a paper cup of coffee and a folded umbrella.",
    ),
    (
        "local news",
        "noun",
        "A bakery on Elm Street reopened this week after a kitchen fire, and "
        "{subject}, a regular customer, said",
        " the queue stretched around the corner by eight in the morning.",
    ),
    (
        "news brief",
        "noun",
        "Transit staff thanked {subject} for handing in a wallet found on the number 12 bus;",
        " the owner collected it the same afternoon.",
    ),
    (
        "news brief",
        "any",
        "After the storm passed, {subject} and a dozen other volunteers",
        " cleared fallen branches from the footpath behind the primary school.",
    ),
    (
        "advice column",
        "any",
        "Ask the expert: my flatmate and I disagree about chores. {Subject} thinks "
        "the rota is unfair because",
        " the bathroom takes far longer to clean than the hallway.",
    ),
    (
        "letter to the editor",
        "any",
        "To the editor: last week {subject} waited forty minutes for the number 9 bus. Surely",
        " the council can publish a timetable that matches reality.",
    ),
    (
        "reference letter",
        "name",
        "To whom it may concern: I have supervised {Subject} for three years and can confirm",
        " a consistent record of punctuality and careful work.",
    ),
    (
        "CV",
        "name",
        "Curriculum vitae: {Subject}. Languages and skills:",
        " spreadsheet modelling, conversational Portuguese, forklift licence.",
    ),
    (
        "interview notes",
        "any",
        "Interviewer: Tell us about a difficult project.\nPanel notes: {Subject} described",
        " a warehouse move completed two days ahead of schedule.",
    ),
    (
        "exam question",
        "any",
        "Question 4 (3 marks): {Subject} buys 3 notebooks at £2.40 each and pays "
        "with a £10 note. How much change",
        " is given? Answer: £2.80.",
    ),
    (
        "exam question",
        "any",
        "A train leaves at 09:15 and {subject} boards it at the second stop. If the whole journey takes 95 "
        "minutes, the train arrives at",
        " 10:50.",
    ),
    (
        "grammar exercise",
        "any",
        "Fill in the blank with the past tense: Yesterday {subject} ____ (walk) to the market. Answer:",
        " walked.",
    ),
    (
        "podcast transcript",
        "name",
        "[Podcast transcript, 00:14:32]\nHOST: Welcome back. With me today is {Subject}, who",
        " has spent a decade restoring old clocks.",
    ),
    (
        "clinical note",
        "noun",
        "Clinic note: follow-up visit for {subject}. Ankle swelling reduced;",
        " continue physiotherapy exercises and review in four weeks.",
    ),
    (
        "classified ad",
        "any",
        "FOR SALE: mountain bike, barely used. {Subject} is moving abroad and",
        " needs it gone by Sunday. Offers considered.",
    ),
    (
        "property listing",
        "noun",
        "Charming two-bed cottage, lovingly restored by {subject} over the last decade,",
        " with a wood burner and a south-facing garden.",
    ),
    (
        "meeting agenda",
        "name",
        "Agenda, Thursday 2 pm\n1. Welcome\n2. Budget review ({Subject})\n3.",
        " Any other business.",
    ),
    (
        "code comment",
        "name",
        "# TODO({Subject}): this loop is slow on large inputs;",
        " replace it with a dictionary lookup before the release.",
    ),
    (
        "commit message",
        "name",
        "commit 3f9a2c1\nAuthor: {Subject}\nMessage:",
        " fix off-by-one error in the pagination helper.",
    ),
    (
        "lab notebook",
        "name",
        "Lab notebook, p. 41. Samples prepared by {Subject} at 09:30. Observation:",
        " the solution turned pale green after twenty minutes.",
    ),
    (
        "radio",
        "any",
        "...and that was the weather. After the news, {subject} joins us in the studio to talk about",
        " the new cycle lanes on the ring road.",
    ),
    (
        "documentary narration",
        "noun",
        "Narrator: At first light the herons return to the marsh. {Subject}, who has watched them for years, "
        "explains that",
        " the birds nest in the same reeds every spring.",
    ),
    (
        "text adventure",
        "any",
        "> look\nYou are in a dusty attic. {Subject} is standing by the old "
        "trunk.\n> open trunk\nInside you find",
        " a faded map, a brass compass and a bundle of letters.",
    ),
    (
        "booking confirmation",
        "name",
        "Booking confirmed: table for four under the name {Subject}, Friday at 7:30 pm.",
        " Please let us know about any allergies in advance.",
    ),
    (
        "complaint letter",
        "any",
        "I am writing about the delivery booked for 3 May. {Subject} waited at home all day, and",
        " the parcel was left at the wrong address.",
    ),
    (
        "museum label",
        "noun",
        "Gallery 4. This oak writing desk was donated to the museum by {subject} in 1988;",
        " the inkwell and blotter are original.",
    ),
    (
        "FAQ",
        "any",
        "FAQ. Q: What if {subject} cannot attend the induction session? A:",
        " a recording is available on the staff portal for one week.",
    ),
    (
        "greeting card",
        "name",
        "To {Subject}, wishing you",
        " a year full of good books, sunny walks and strong coffee.",
    ),
    (
        "voicemail",
        "any",
        'Voicemail, 4:02 pm: "Hi, this is the garage. {Subject} dropped the van off this morning, and',
        ' it is ready to collect any time after five."',
    ),
    (
        "speech",
        "noun",
        'Toast at the retirement party: "Please raise your glasses to {subject},',
        ' who kept this office running through three moves and two floods."',
    ),
    (
        "trail guide",
        "any",
        "Trail guide, route 7: the path climbs steeply here. On our scouting trip {subject} counted",
        " two hundred and twelve steps up to the ridge.",
    ),
    (
        "gardening column",
        "any",
        "In the allotment this month: {subject} planted garlic back in October, and",
        " the first green shoots are already showing.",
    ),
    (
        "customer chat",
        "name",
        "Live chat\nAgent: Good afternoon, {Subject}. How can I help?\nCustomer:",
        " I was charged twice for the same order.",
    ),
    (
        "interview",
        "any",
        "Q: When did {subject} first start keeping bees?\nA:",
        " About fifteen years ago, with a single hive bought at a county fair.",
    ),
    (
        "safety manual",
        "any",
        "Safety first: before {subject} starts the lawnmower, check that",
        " the blade guard is fitted and the fuel cap is tight.",
    ),
    (
        "notice board",
        "noun",
        "LOST: grey cat with one white paw, last seen near the church hall by {subject}.",
        " Please call the number below if spotted.",
    ),
    (
        "sports commentary",
        "any",
        "And it's a tense final lap here at the velodrome: {subject} moves up on the outside and",
        " the crowd is on its feet!",
    ),
)

ALL_TEMPLATES: tuple[VariedTemplate, ...] = tuple(
    VariedTemplate(f"varied-{i:02d}", register, kind, prompt, continuation)
    for i, (register, kind, prompt, continuation) in enumerate(_ROWS, start=1)
)
TEMPLATES: dict[str, tuple[VariedTemplate, ...]] = {
    "train": tuple(t for i, t in enumerate(ALL_TEMPLATES, start=1) if i % HELDOUT_EVERY),
    "heldout": tuple(t for i, t in enumerate(ALL_TEMPLATES, start=1) if not i % HELDOUT_EVERY),
}


def _slot_kinds() -> tuple[Kind, ...]:
    """For each subject slot of ``GENDER_TERMS``, the narrowest kind of template it may stand in."""
    male, female = GENDER_TERMS["male"], GENDER_TERMS["female"]
    kinds: list[Kind] = []
    for m, f in zip(male.subjects, female.subjects, strict=True):
        if m == male.nom and f == female.nom:
            kinds.append("any")  # "he" / "she": only where a nominative pronoun is grammatical
        elif m[:1].isupper() and f[:1].isupper():
            kinds.append("name")
        else:
            kinds.append("noun")
    return tuple(kinds)


SLOT_KINDS: tuple[Kind, ...] = _slot_kinds()
_ALLOWED: dict[Kind, frozenset[Kind]] = {
    "any": frozenset({"any", "noun", "name"}),
    "noun": frozenset({"noun", "name"}),
    "name": frozenset({"name"}),
}


def slots(template: VariedTemplate) -> list[int]:
    """The subject slots that are grammatical in ``template``."""
    return [i for i, kind in enumerate(SLOT_KINDS) if kind in _ALLOWED[template.kind]]


def render(template: VariedTemplate, subject: str) -> str:
    return template.prompt.format(subject=subject, Subject=_sentence_start(subject))


def generate(split: Split, groups: Sequence[str] = ("male", "female"), seed: int = 0) -> list[GroupedExample]:
    """Every (template, grammatical subject slot) of ``split`` written once per group, as paired examples.

    Same convention as ``templates.generate``: whole pairs (one example per group, in ``groups`` order,
    sharing ``pair_id`` and continuation), the pair order shuffled by ``seed``. Gender only: other groups
    raise a ``ValueError`` naming them.
    """
    if split not in TEMPLATES:
        raise ValueError(f"unknown split {split!r} (expected 'train' or 'heldout')")
    _check_terms(groups, GENDER_TERMS)
    units = [(t, slot) for t in TEMPLATES[split] for slot in slots(t)]
    random.Random(seed).shuffle(units)
    examples: list[GroupedExample] = []
    for template, slot in units:
        pair_id = f"{template.template_id}/{slot}"
        for group in groups:
            prompt = render(template, GENDER_TERMS[group].subjects[slot])
            examples.append(
                GroupedExample(prompt, template.continuation, group, pair_id, template.template_id)
            )
    return examples
