"""Say which group a text is about by whole-word lexicon matches (male / female / neutral / mixed ...).

Whole words, because substring matching mislabels everyday text: "sheriff" contains "she", "Hermes" and
"other" contain "her". A match may be followed by an apostrophe suffix ("he's", "Mary's") and may sit next
to punctuation or hyphens ("step-father"), since those do not make a different word.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from functools import lru_cache

from debias.data.lexicons import GENDER, MIXED, NEUTRAL, validate_lexicon


def word_pattern(words: Collection[str]) -> re.Pattern[str]:
    """Case-insensitive regex matching any of ``words`` as a whole word (or whole multi-word phrase).

    The alternatives are merged into a character trie (``he(?:r(?:s|self)?|...)``) because Python's regex
    engine tries a flat alternation branch by branch at every position, which made detection ~10x slower.
    The look-arounds (no word character on either side) make matching whole-word while allowing "he's" and
    "step-father"; the greedy trie tries "hers" before "her", and backs off when the longer word is not whole.
    """
    normalized = {" ".join(w.lower().split()) for w in words} - {""}
    if not normalized:
        raise ValueError("cannot build a word pattern from an empty word list")
    trie: dict[str, dict] = {}
    for word in normalized:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a word
    return re.compile(rf"(?<!\w){_trie_regex(trie)}(?!\w)", re.IGNORECASE)


def _trie_regex(node: dict[str, dict]) -> str:
    """Regex for the words below ``node``; a word ending here makes the rest optional (longest wins)."""
    ends_here = "" in node
    branches = [
        (r"\s+" if char == " " else re.escape(char)) + _trie_regex(child)
        for char, child in sorted(node.items())
        if char
    ]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if ends_here:
        return f"(?:{body})?" if len(branches) > 1 or len(body) > 1 else f"{body}?"
    return body


@lru_cache(maxsize=32)
def _matcher(key: tuple[tuple[str, frozenset[str]], ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    """Compiled pattern and word → group table for one lexicon, built once per distinct lexicon."""
    lexicon = validate_lexicon(dict(key))
    owner = {word: group for group, words in lexicon.items() for word in words}
    return word_pattern(owner), owner


def _key(lexicon: Mapping[str, Collection[str]]) -> tuple[tuple[str, frozenset[str]], ...]:
    return tuple((g, w if isinstance(w, frozenset) else frozenset(w)) for g, w in lexicon.items())


def matched_groups(text: str, lexicon: Mapping[str, Collection[str]] = GENDER) -> frozenset[str]:
    """Every group of ``lexicon`` with at least one word occurring in ``text``."""
    pattern, owner = _matcher(_key(lexicon))
    return frozenset(owner[" ".join(m.group(0).lower().split())] for m in pattern.finditer(text))


def detect_group(text: str, lexicon: Mapping[str, Collection[str]] = GENDER) -> str:
    """The single group whose words occur in ``text``; ``"neutral"`` if none does, ``"mixed"`` if 2+ do."""
    groups = matched_groups(text, lexicon)
    if not groups:
        return NEUTRAL
    if len(groups) > 1:
        return MIXED
    return next(iter(groups))
