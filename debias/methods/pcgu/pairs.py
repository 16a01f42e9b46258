"""PCGU's training pairs: a prefix, the advantaged target and the disadvantaged one.

Generated from the project's own prefixes and word lists (never benchmark sentences), or read from a
user's JSONL file of ``{"prefix", "advantaged", "disadvantaged"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The project's own prefixes (none from Winogender, StereoSet or CrowS-Pairs); {occupation} is filled in.
PREFIXES: tuple[str, ...] = (
    "The {occupation} said that",
    "I asked the {occupation} whether",
    "After the meeting, the {occupation} told everyone that",
    "The {occupation} finished the shift early because",
    "Everyone agreed that the {occupation} did a good job, so",
    "When the {occupation} arrived at work,",
    "The {occupation} called the office and said",
    "Before lunch, the {occupation} mentioned that",
)
PRONOUNS = {"female": " she", "male": " he"}


@dataclass(frozen=True)
class Pair:
    prefix: str
    advantaged: str
    disadvantaged: str


def occupation_pairs() -> list[Pair]:
    """Prefixes x occupations; the advantaged pronoun is the occupation's majority gender (BLS % female)."""
    from harness_tasks.winogender import occupation_statistics

    pairs = []
    for occupation, row in sorted(occupation_statistics().items()):
        female_majority = float(row["bls_pct_female"]) > 50.0
        adv, dis = ("female", "male") if female_majority else ("male", "female")
        for prefix in PREFIXES:
            pairs.append(Pair(prefix.format(occupation=occupation), PRONOUNS[adv], PRONOUNS[dis]))
    return pairs


def trait_pairs() -> list[Pair]:
    """Trait prefixes x gendered words; the advantaged word is the trait's BSRI gender (data.trait_pairs)."""
    from debias.data.trait_pairs import trait_pair_rows

    return [Pair(*row) for row in trait_pair_rows()]


def attribute_pairs() -> list[Pair]:
    """Gendered subjects x BSRI traits as targets (data.trait_pairs.attribute_pair_rows)."""
    from debias.data.trait_pairs import attribute_pair_rows

    return [Pair(*row) for row in attribute_pair_rows()]


def bias_type_pairs() -> list[Pair]:
    """The ten-bias-type contrasts (debias.data.bias_pairs, train frames): the stereotype is advantaged.

    Every attribute is advantaged after a subject of one group and disadvantaged after the other's, so
    the partition finds units that separate the groups' associations, not the attributes' frequency.
    """
    from debias.data import bias_pairs

    return [Pair(p.prompt, p.rejected, p.chosen) for p in bias_pairs.generate("train")]


GENERATED_PAIRS = {
    "occupations": occupation_pairs,
    "traits": trait_pairs,
    "attributes": attribute_pairs,
    "bias_types": bias_type_pairs,
}


def load_pairs(spec: str) -> list[Pair]:
    """``spec``: generated sets joined by "+" ("occupations", "occupations+traits", ...) or a JSONL path."""
    names = spec.split("+")
    if all(name in GENERATED_PAIRS for name in names):
        return [pair for name in names for pair in GENERATED_PAIRS[name]()]
    if Path(spec).is_dir():
        raise ValueError(f"{spec}: is a directory, not a pair file")
    if not Path(spec).is_file():
        raise ValueError(f"--pairs {spec!r}: neither {' / '.join(GENERATED_PAIRS)} (joined by +) nor a file")
    return read_pairs(Path(spec))


def read_pairs(path: Path) -> list[Pair]:
    """Every ``{prefix, advantaged, disadvantaged}`` record of a JSONL/CSV/parquet file (one-line errors)."""
    from debias.data.user_prompts import read_records, record_text

    fields = ("prefix", "advantaged", "disadvantaged")
    pairs = []
    for where, record in read_records(path, fields):
        prefix = record_text(path, where, record, "prefix", strip=False)
        advantaged = record_text(path, where, record, "advantaged", strip=False)
        disadvantaged = record_text(path, where, record, "disadvantaged", strip=False)
        pairs.append(Pair(prefix, advantaged, disadvantaged))
    if not pairs:
        raise ValueError(f"{path}: no pairs (a file of {{prefix, advantaged, disadvantaged}} records)")
    return pairs
