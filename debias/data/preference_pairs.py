"""Preference pairs (DPO, equalisation): the built-in set (``debias.data.bias_pairs``) or a user's file.

A user's file holds one pair per record, in the common format: JSONL lines
``{"prompt"?: str, "chosen": str, "rejected": str, "meta"?: {"bias_type": str, ...}}`` (``prompt`` empty
when absent), or CSV / parquet with the same columns (``meta`` as a JSON object string, or a plain
``bias_type`` column). ``chosen`` and ``rejected`` are continuations of ``prompt`` and are kept exactly
(a leading space is part of them). Every problem is one line naming the file, the line or row and the
field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debias.data import bias_pairs, gender_components, role_pairs, varied_pairs
from debias.data.user_prompts import read_records, record_text

BUILTIN = "builtin"
VARIED = "varied"  # the wider set: more shapes, both directions, more subjects (debias.data.varied_pairs)
ROLES = "roles"  # role -> pronoun pairs, on roles Winogender never names (debias.data.role_pairs)
#: gender's role behaviours and physical characteristics (debias.data.gender_components)
GENDER_COMPONENTS = "gender-components"
#: the project's own sets by name; a spec may join several with "+" ("builtin+roles": both, concatenated)
SETS = {BUILTIN: bias_pairs, VARIED: varied_pairs, ROLES: role_pairs, GENDER_COMPONENTS: gender_components}


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    bias_type: str = "unspecified"


def builtin(split: str, kind: str = BUILTIN) -> list[PreferencePair]:
    return [PreferencePair(p.prompt, p.chosen, p.rejected, p.bias_type) for p in SETS[kind].generate(split)]


def builtin_parts(spec: str) -> list[str] | None:
    """The project's sets a spec names ("builtin", "varied", "roles", "gender-components", or several
    joined by "+"), or None for a file."""
    parts = spec.split("+")
    return parts if all(part in SETS for part in parts) else None


def load(spec: str, split: str = "train") -> list[PreferencePair]:
    """The project's pairs by name (``split`` train / heldout; "a+b": both sets, in that order) or a pair
    file (all of it)."""
    parts = builtin_parts(spec)
    if parts is not None:
        return [pair for part in parts for pair in builtin(split, part)]
    return read_pairs(Path(spec))


def subset(pairs: list, size: int | None, seed: int) -> list:
    """A fixed, seeded sample of ``size`` pairs (all of them when ``size`` is None or larger)."""
    if size is None or len(pairs) <= size:
        return pairs
    import random

    return random.Random(seed).sample(pairs, size)


def fingerprint(spec: str) -> str:
    """Which pairs a run trained on: each built-in set's content hash, or the file's sha256."""
    parts = builtin_parts(spec)
    if parts is not None:
        return "+".join(f"{part}:{SETS[part].fingerprint()}" for part in parts)
    import hashlib

    return f"sha256:{hashlib.sha256(Path(spec).read_bytes()).hexdigest()[:16]}"


def _optional_text(path: Path, where: str, record: dict[str, Any], field: str) -> str:
    value = record.get(field)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{path}: {where}: field {field!r} must be text, got {type(value).__name__}")
    return value


def _bias_type(path: Path, where: str, record: dict[str, Any]) -> str:
    meta = record.get("meta")
    if isinstance(meta, str) and meta.strip():  # CSV / parquet: a JSON object in a cell
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: {where}: field 'meta' is not a JSON object ({err.msg})") from None
    if meta is not None and not isinstance(meta, dict | str):
        raise ValueError(f"{path}: {where}: field 'meta' must be an object, got {type(meta).__name__}")
    value = (meta or {}).get("bias_type") if isinstance(meta, dict) else None
    if value is None:
        value = _optional_text(path, where, record, "bias_type") or None
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"{path}: {where}: field 'meta.bias_type' must be non-empty text")
    return value.strip() if value else "unspecified"


def read_pairs(path: Path) -> list[PreferencePair]:
    pairs = []
    for where, record in read_records(path, ("chosen", "rejected")):
        record = dict(record)
        prompt = _optional_text(path, where, record, "prompt")
        chosen = record_text(path, where, record, "chosen", strip=False)
        rejected = record_text(path, where, record, "rejected", strip=False)
        if chosen.strip() == rejected.strip():
            raise ValueError(f"{path}: {where}: fields 'chosen' and 'rejected': the same text ({chosen!r})")
        pairs.append(PreferencePair(prompt, chosen, rejected, _bias_type(path, where, record)))
    if not pairs:
        raise ValueError(f"{path}: no pairs (a file of {{prompt, chosen, rejected}} records)")
    return pairs
