"""Load a user's own prompts (JSONL / CSV / parquet), label their groups, and balance the groups.

User texts become rollout-mode examples: the prompt is the text and the continuation is empty (the model
generates it during training). Without a group column the group comes from whole-word lexicon detection,
so texts naming no group come out "neutral" and texts naming several come out "mixed"; ``balance`` drops
those unless asked for them.

Malformed input raises a one-line ``ValueError`` naming the file, the line (JSONL/CSV) or row (parquet)
and the field, because a training run that silently skips rows trains on data nobody chose.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

from debias.data.detect import detect_group
from debias.data.examples import GroupedExample
from debias.data.lexicons import GENDER

log = logging.getLogger(__name__)

SUFFIXES = (".jsonl", ".csv", ".parquet")


def _records_jsonl(path: Path) -> Iterator[tuple[str, Mapping[str, object]]]:
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}: line {lineno}: not UTF-8 text (byte {err.start})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {lineno}: invalid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                kind = type(record).__name__
                raise ValueError(f"{path}: line {lineno}: expected a JSON object, got {kind}")
            yield f"line {lineno}", record


def _records_csv(path: Path, fields: Sequence[str]) -> Iterator[tuple[str, Mapping[str, object]]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: line {_line_of(path, err.start)}: not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    _check_columns(path, reader.fieldnames or [], fields)
    for row in reader:
        yield f"line {reader.line_num}", row


def _line_of(path: Path, offset: int) -> int:
    return path.read_bytes()[:offset].count(b"\n") + 1


def _records_parquet(path: Path, fields: Sequence[str]) -> Iterator[tuple[str, Mapping[str, object]]]:
    import pandas as pd  # only parquet needs it; pyarrow comes with it through `datasets`

    frame = pd.read_parquet(path)
    _check_columns(path, [str(c) for c in frame.columns], fields)
    frame = frame.astype(object)
    frame = frame.where(frame.notna(), None)  # pandas' NaN/NA/NaT all read as "empty"
    for index, row in enumerate(frame.to_dict(orient="records"), start=1):
        yield f"row {index}", row


def _check_columns(path: Path, columns: Sequence[str], fields: Sequence[str]) -> None:
    for field in fields:
        if field not in columns:
            listed = ", ".join(map(str, columns)) or "none"
            raise ValueError(f"{path}: no column {field!r} (columns: {listed})")


def read_records(path: Path, fields: Sequence[str]) -> Iterator[tuple[str, Mapping[str, object]]]:
    """(place, record) of every record of a ``.jsonl``/``.csv``/``.parquet`` file; ``fields`` must exist
    as columns (CSV, parquet). Bad bytes, bad JSON and missing columns are one-line errors."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unknown extension {path.suffix!r} (expected one of {', '.join(SUFFIXES)})")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    if suffix == ".jsonl":
        return _records_jsonl(path)
    if suffix == ".csv":
        return _records_csv(path, fields)
    return _records_parquet(path, fields)


def record_text(path: Path, where: str, record: Mapping[str, object], field: str, strip: bool = True) -> str:
    """The string in ``record[field]`` (stripped unless ``strip`` is False: a continuation's leading
    space is part of it), or a one-line error naming file, place and field."""
    if field not in record:
        raise ValueError(f"{path}: {where}: missing field {field!r}")
    value = record[field]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"{path}: {where}: field {field!r} is empty")
    if not isinstance(value, str):
        raise ValueError(f"{path}: {where}: field {field!r} must be text, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{path}: {where}: field {field!r} is empty")
    return value.strip() if strip else value


def load_prompts(
    path: str | Path,
    text_field: str = "text",
    group_field: str | None = None,
    lexicon: Mapping[str, Collection[str]] = GENDER,
) -> list[GroupedExample]:
    """Every record of a ``.jsonl``/``.csv``/``.parquet`` file as a rollout-mode ``GroupedExample``.

    The group is the record's ``group_field`` when given, else ``detect_group(text, lexicon)``. Each example
    gets ``pair_id`` "<file name>:<line or row>" so it can be traced back to its record.
    """
    path = Path(path)
    fields = [text_field] + ([group_field] if group_field else [])
    examples: list[GroupedExample] = []
    for where, record in read_records(path, fields):
        text = record_text(path, where, record, text_field)
        group = record_text(path, where, record, group_field) if group_field else detect_group(text, lexicon)
        pair_id = f"{path.name}:{where.split()[-1]}"
        examples.append(GroupedExample(text, "", group, pair_id, f"user:{path.name}"))
    if not examples:
        raise ValueError(f"{path}: no records")
    log.info("loaded %d prompts from %s: %s", len(examples), path, dict(group_counts(examples)))
    return examples


def group_counts(examples: Sequence[GroupedExample]) -> Counter[str]:
    """How many examples each group has."""
    return Counter(e.group for e in examples)


def balance(
    examples: Sequence[GroupedExample],
    groups: Sequence[str],
    mode: Literal["downsample", "reweight"] = "downsample",
    seed: int = 0,
) -> list[GroupedExample]:
    """The examples of ``groups`` (others, such as "neutral"/"mixed", dropped), balanced across groups.

    ``downsample`` keeps a seeded random ``min(count)`` examples of every group, in input order.
    ``reweight`` keeps everything and scales weights so every group's total weight is the same while the
    overall total is unchanged: weight *= total / (n_groups * group_total). A requested group without
    examples raises ``ValueError`` naming it: balancing against an empty group cannot be done silently.
    Counts before and after (and what was dropped) go to the ``debias.data.user_prompts`` logger.
    """
    if not groups:
        raise ValueError("balance needs at least one group")
    if len(set(groups)) != len(groups):
        raise ValueError(f"groups contain duplicates: {list(groups)}")
    if mode not in ("downsample", "reweight"):
        raise ValueError(f"unknown balance mode {mode!r} (expected 'downsample' or 'reweight')")
    counts = group_counts(examples)
    for group in groups:
        if counts[group] == 0:
            raise ValueError(f"group {group!r} has no examples (found: {dict(counts)})")
    wanted = set(groups)
    kept = [e for e in examples if e.group in wanted]
    dropped = {g: n for g, n in counts.items() if g not in wanted}
    if mode == "downsample":
        n = min(counts[g] for g in groups)
        rng = random.Random(seed)
        chosen: set[int] = set()
        for group in groups:
            indices = [i for i, e in enumerate(kept) if e.group == group]
            chosen.update(rng.sample(indices, n))
        result = [e for i, e in enumerate(kept) if i in chosen]
    else:
        totals = {g: sum(e.weight for e in kept if e.group == g) for g in groups}
        if any(t <= 0 for t in totals.values()):
            raise ValueError(f"every group needs a positive total weight to reweight: {totals}")
        grand = sum(totals.values())
        scale = {g: grand / (len(groups) * totals[g]) for g in groups}
        result = [replace(e, weight=e.weight * scale[e.group]) for e in kept]
    log.info(
        "balance(%s): before %s, after %s, dropped %s",
        mode,
        {g: counts[g] for g in groups},
        dict(group_counts(result)),
        dropped,
    )
    return result
