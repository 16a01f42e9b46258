"""Counterfactual swapping (he↔she, his↔her, man↔woman, names ...) to turn one-group texts into paired groups.

A counterfactual pair is the same text about two groups; its continuation is identical on both sides, so
a model that treats the groups alike scores the continuation alike. Swaps are whole-word and keep the
original's capitalization (He→She, HE→SHE).

The one genuinely ambiguous English swap is female "her", which is either possessive ("her car" → "his
car") or object ("saw her" → "saw him"); male "his" has the mirror problem ("his car" → "her car", "it is
his" → "it is hers"). Without a parser we use one small documented rule, ``followed_by_possessed``: the
word is possessive when the next word follows after whitespace only and is not a function word (article,
preposition, conjunction, pronoun, adverb or auxiliary from ``NOT_POSSESSED``). It gets the common cases
right ("her car", "her own", "saw her.", "gave her the keys", "met her yesterday") and is wrong for
bare-noun objects ("gave her flowers" → "gave his flowers"), which template text avoids.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from functools import lru_cache

from debias.data.detect import word_pattern
from debias.data.examples import GroupedExample
from debias.data.lexicons import GENDER_SWAP_PAIRS

# Replacement for one matched word: a fixed lowercase word, or a rule given the text after the match.
Replacement = str | Callable[[str], str]

_FUNCTION_WORDS = """
    a an the this that these those some any every each no all both either neither another such
    my your our their his her its whose what which who whom how why where when whether
    i you he she it we they me him us them myself yourself himself herself itself ourselves themselves
    to at in on for with from by of about into onto over under after before during since until through
    across around along behind beside between near off out up down away back again as like than past
    and or but so nor yet because if while though although unless
    very too also now then there here today tonight yesterday tomorrow home later soon always never
    often once twice well much more most less least only just still already even ever not
    is was were are be been being am will would can could should shall might must may
    do does did had has have"""
NOT_POSSESSED: frozenset[str] = frozenset(_FUNCTION_WORDS.split())

_NEXT_WORD = re.compile(r"\s+(\w[\w'-]*)")


def followed_by_possessed(rest: str) -> bool:
    """Whether the word before ``rest`` is used as a possessive determiner (see the module docstring)."""
    match = _NEXT_WORD.match(rest)
    return match is not None and match.group(1).lower() not in NOT_POSSESSED


def _her_to_male(rest: str) -> str:
    return "his" if followed_by_possessed(rest) else "him"


def _his_to_female(rest: str) -> str:
    return "her" if followed_by_possessed(rest) else "hers"


def _build_gender_map() -> dict[str, Replacement]:
    table: dict[str, Replacement] = {}
    for male, female in GENDER_SWAP_PAIRS:
        table.setdefault(male, female)  # first pair wins: his→her, mr→ms, dad→mom
        table.setdefault(female, male)
    table["her"] = _her_to_male
    table["his"] = _his_to_female
    return table


GENDER_SWAP_MAP: dict[str, Replacement] = _build_gender_map()


def match_case(source: str, replacement: str) -> str:
    """``replacement`` written in ``source``'s case: HE→SHE, He→She, he→she (mixed case: as given)."""
    if source.isupper() and len(source) > 1:
        return replacement.upper()
    if source.islower():
        return replacement.lower()
    if source[:1].isupper() and source[1:].islower() or len(source) == 1:
        return replacement[:1].upper() + replacement[1:]
    return replacement


@lru_cache(maxsize=32)
def _compiled(keys: frozenset[str]) -> re.Pattern[str]:
    return word_pattern(keys)


def swap(text: str, mapping: Mapping[str, Replacement]) -> str:
    """``text`` with every whole-word key of ``mapping`` replaced, in the matched word's case.

    Keys match case-insensitively; a value is the lowercase replacement or a rule called with the text
    after the match (how "her" picks "his" or "him"). All replacements are made in one pass, so he→she and
    she→he in one mapping swap rather than undo each other.
    """
    if not mapping:
        return text
    table = {" ".join(k.lower().split()): v for k, v in mapping.items()}
    pattern = _compiled(frozenset(table))

    def _replace(match: re.Match[str]) -> str:
        word = match.group(0)
        value = table[" ".join(word.lower().split())]
        chosen = value(text[match.end() :]) if callable(value) else value
        return match_case(word, chosen)

    return pattern.sub(_replace, text)


def gender_swap(text: str) -> str:
    """``text`` with male and female words (pronouns, nouns, titles, paired names) exchanged."""
    return swap(text, GENDER_SWAP_MAP)


def _pair_id(example: GroupedExample) -> str:
    digest = hashlib.sha1(f"{example.prompt}\0{example.continuation}".encode()).hexdigest()[:12]
    return f"cf:{digest}"


def counterfactual_pairs(
    examples: Iterable[GroupedExample],
    from_group: str,
    to_group: str,
    swap_fn: Callable[[str], str] = gender_swap,
) -> list[GroupedExample]:
    """Each ``from_group`` example followed by its ``to_group`` counterfactual; both share one ``pair_id``.

    Only the prompt is swapped; the continuation must be group-neutral (unchanged by ``swap_fn``) so the
    pair's scored text is identical on both sides, and the prompt must change (else the "pair" would be
    one text under two labels). Either problem raises ``ValueError`` naming the example rather than
    producing a silently wrong pair. Examples of other groups are ignored; an example without a
    ``pair_id`` gets one derived from its text.
    """
    if from_group == to_group:
        raise ValueError(f"from_group and to_group are both {from_group!r}")
    out: list[GroupedExample] = []
    seen: set[str] = set()
    for example in examples:
        if example.group != from_group:
            continue
        pair_id = example.pair_id or _pair_id(example)
        if pair_id in seen:
            raise ValueError(f"pair_id {pair_id!r} occurs on two {from_group!r} examples; ids must be unique")
        seen.add(pair_id)
        if swap_fn(example.continuation) != example.continuation:
            raise ValueError(
                f"example {pair_id!r}: the continuation {example.continuation!r} contains group words; "
                "counterfactual pairs need a group-neutral continuation"
            )
        swapped = swap_fn(example.prompt)
        if swapped == example.prompt:
            raise ValueError(f"example {pair_id!r}: swapping left the prompt unchanged ({example.prompt!r})")
        original = replace(example, pair_id=pair_id)
        out.append(original)
        out.append(replace(original, prompt=swapped, group=to_group))
    if not out:
        raise ValueError(f"no examples of group {from_group!r} to build counterfactual pairs from")
    return out
