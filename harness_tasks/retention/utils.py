"""lm-eval glue for the retention tasks: MMLU and GSM8K from the local upstream files, in the HF schema.

lm-eval's built-in ``mmlu_*`` and ``gsm8k`` configs read ``cais/mmlu`` and ``openai/gsm8k`` from the
hub. Our generated configs (see ``generate.py``) keep every prompt, filter and metric field of those
configs and swap only the data source for ``custom_dataset`` hooks below, which turn the sha256-checked
upstream files into exactly the rows the built-in templates expect:

- MMLU (``cais/mmlu``): ``question`` str, ``subject`` str, ``choices`` [4 x str], ``answer`` ClassLabel A-D
  (an int 0-3 in each row);
- GSM8K (``openai/gsm8k``, config ``main``): ``question`` str, ``answer`` str (the worked solution ending
  in ``#### <number>``).

The ``lite`` variants keep a fixed subset of the test split: the ``k`` rows whose content hashes lowest
(``stable_subset``), in file order. Few-shot splits are never subset.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Module attribute, not a bound name: lm-eval imports this file under its own module name, and tests swap
# the data files through ``_data.data_file``.
from harness_tasks import _data
from harness_tasks._data import DataFileError

MMLU_LETTERS = ("A", "B", "C", "D")
# HF split name -> upstream folder (MMLU) / file (GSM8K)
MMLU_SPLIT_FOLDERS = {"test": "test", "dev": "dev", "validation": "val"}
GSM8K_SPLIT_FILES = {"test": "gsm8k/test.jsonl", "train": "gsm8k/train.jsonl"}
_CALCULATOR = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations: not natural text
NEUTRAL_HELDOUT_EVERY = 10  # every 10th neutral text is held out of the anchor's training


def mmlu_subjects() -> list[str]:
    """The 57 subjects, as named by the upstream test files the data manifest knows."""
    prefix, suffix = "mmlu/test/", "_test.csv"
    return sorted(
        rel[len(prefix) : -len(suffix)]
        for rel in _data.manifest()["files"]
        if rel.startswith(prefix) and rel.endswith(suffix)
    )


def read_mmlu_csv(path: Path, subject: str) -> list[dict[str, Any]]:
    """One upstream MMLU CSV (no header; ``question, A, B, C, D, answer-letter``) as ``cais/mmlu`` rows.

    Parsed with ``csv`` on the raw text (``newline=""``) as the HF loading script did, so quoted fields
    keep their embedded newlines byte for byte; answers A-D become 0-3.
    """
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for record, fields in enumerate(csv.reader(fh), start=1):
            if len(fields) != 6:
                raise DataFileError(f"{path}: record {record} has {len(fields)} fields, expected 6")
            if fields[5] not in MMLU_LETTERS:
                raise DataFileError(
                    f"{path}: record {record}: answer is {fields[5]!r}, expected one of A, B, C, D"
                )
            rows.append(
                {
                    "question": fields[0],
                    "subject": subject,
                    "choices": fields[1:5],
                    "answer": MMLU_LETTERS.index(fields[5]),
                }
            )
    if not rows:
        raise DataFileError(f"{path}: no records")
    return rows


def read_gsm8k_jsonl(path: Path) -> list[dict[str, str]]:
    """The upstream GSM8K JSON Lines file as ``openai/gsm8k`` (``main``) rows."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFileError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
            if not (isinstance(row, dict) and set(row) == {"question", "answer"}):
                raise DataFileError(f"{path}:{line_no}: expected exactly the keys 'question' and 'answer'")
            if "####" not in row["answer"]:
                raise DataFileError(f"{path}:{line_no}: answer has no '#### <final answer>' line")
            rows.append({"question": row["question"], "answer": row["answer"]})
    return rows


def stable_subset(rows: list[dict[str, Any]], k: int) -> list[int]:
    """Indices of the ``k`` rows whose sha256 (of the row as canonical JSON) is lowest, in file order.

    A content hash rather than the first ``k`` rows: upstream files are ordered by source (neighbouring
    questions often share a passage, exam or topic), so a prefix is not a fair sample, while the lowest
    hashes are a uniform sample that does not depend on row order, Python's hash seed, or lm-eval's seed.
    Ties (identical rows) are broken by position.
    """
    if k < 1:
        raise ValueError(f"subset size must be at least 1, got {k}")
    digests = [
        hashlib.sha256(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
        for row in rows
    ]
    chosen = sorted(range(len(rows)), key=lambda i: (digests[i], i))[:k]
    return sorted(chosen)


def _subset(rows: list[dict[str, Any]], k: int | None) -> list[dict[str, Any]]:
    return rows if k is None else [rows[i] for i in stable_subset(rows, k)]


def mmlu_rows(subject: str, split: str = "test", lite_k: int | None = None) -> list[dict[str, Any]]:
    if subject not in mmlu_subjects():
        raise DataFileError(f"unknown MMLU subject {subject!r}")
    if split not in MMLU_SPLIT_FOLDERS:
        raise DataFileError(f"unknown MMLU split {split!r}; known: {', '.join(MMLU_SPLIT_FOLDERS)}")
    folder = MMLU_SPLIT_FOLDERS[split]
    rows = read_mmlu_csv(_data.data_file(f"mmlu/{folder}/{subject}_{folder}.csv"), subject)
    return _subset(rows, lite_k) if split == "test" else rows


def gsm8k_rows(split: str = "test", lite_n: int | None = None) -> list[dict[str, str]]:
    if split not in GSM8K_SPLIT_FILES:
        raise DataFileError(f"unknown GSM8K split {split!r}; known: {', '.join(GSM8K_SPLIT_FILES)}")
    rows = read_gsm8k_jsonl(_data.data_file(GSM8K_SPLIT_FILES[split]))
    return _subset(rows, lite_n) if split == "test" else rows


def _mmlu_features():
    import datasets

    return datasets.Features(
        {
            "question": datasets.Value("string"),
            "subject": datasets.Value("string"),
            "choices": datasets.Sequence(datasets.Value("string")),
            "answer": datasets.ClassLabel(names=list(MMLU_LETTERS)),
        }
    )


def _gsm8k_features():
    import datasets

    return datasets.Features({"question": datasets.Value("string"), "answer": datasets.Value("string")})


def load_mmlu(subject: str, splits: list[str], lite_k: int | None = None, **_metadata: Any):
    """``custom_dataset`` hook of ``gee_mmlu[_lite]_<subject>``; lm-eval adds the task metadata."""
    import datasets

    features = _mmlu_features()
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_list(mmlu_rows(subject, split, lite_k), features=features)
            for split in splits
        }
    )


def load_gsm8k(splits: list[str], lite_n: int | None = None, **_metadata: Any):
    """``custom_dataset`` hook of ``gee_gsm8k[_lite]``; lm-eval adds the task metadata."""
    import datasets

    features = _gsm8k_features()
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_list(gsm8k_rows(split, lite_n), features=features) for split in splits}
    )


def gsm8k_solution_text(doc: dict[str, str]) -> str:
    """``gee_gsm8k_ppl``'s text: the problem and its worked solution, as one document."""
    return f"{doc['question']}\n{doc['answer']}"


def neutral_texts(keep_annotations: bool = False) -> list[str]:
    """Neutral text for the retention anchor and the selection's perplexity guard: GSM8K *train* question +
    solution, then MMLU *dev* questions with their four options.

    Never the items the retention tasks score (GSM8K test, MMLU test). Every ``NEUTRAL_HELDOUT_EVERY``-th
    text is held out of the anchor's training (``debias.anchor.split_texts``): ``gee_neutral_ppl_select``
    scores those. The anchor reads GSM8K with its calculator annotations removed (natural text); the guard
    keeps them (``keep_annotations``), formatted exactly as ``gee_gsm8k_ppl`` formats its test documents,
    because the guard stands in for that budget: on Gemma-3-270M the stripped form showed +2.2 % where the
    task's own form showed +3.5 % for the same adapter and texts (README, "Does the anchor read what
    GSM8K perplexity scores?"), so a guard reading the stripped form kept checkpoints the budget refuses.
    Both forms list the same rows in the same order, so the held-out side is the same items either way.
    """
    rows = gsm8k_rows("train")
    if keep_annotations:
        texts = [gsm8k_solution_text(row) for row in rows]
    else:
        texts = [row["question"] + "\n" + _CALCULATOR.sub("", row["answer"]) for row in rows]
    for subject in mmlu_subjects():
        for row in mmlu_rows(subject, "dev"):
            options = "\n".join(f"{k}. {o}" for k, o in zip(MMLU_LETTERS, row["choices"], strict=True))
            texts.append(row["question"] + "\n" + options)
    return texts


def neutral_split(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """(training side, held-out side) of a list of anchor texts: every ``NEUTRAL_HELDOUT_EVERY``-th text
    is held out."""
    train = [t for i, t in enumerate(texts) if i % NEUTRAL_HELDOUT_EVERY != 0]
    return train, [t for i, t in enumerate(texts) if i % NEUTRAL_HELDOUT_EVERY == 0]


def load_neutral_heldout(splits: list[str], n: int, keep_annotations: bool = False, **_metadata: Any):
    """``custom_dataset`` hook of ``gee_neutral_ppl_select``: ``n`` of the anchor's held-out neutral texts
    (the ``stable_subset``, so GSM8K and MMLU are both sampled), as rows with one ``text`` field."""
    import datasets

    rows = _subset([{"text": t} for t in neutral_split(neutral_texts(keep_annotations))[1]], n)
    features = datasets.Features({"text": datasets.Value("string")})
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_list(rows, features=features) for split in splits}
    )


def neutral_text(doc: dict[str, str]) -> str:
    return doc["text"]


def perplexity_results(doc: dict[str, str], results: Sequence[float]) -> dict[str, tuple[float, int]]:
    """(log-likelihood, size) per document, pooled by lm-eval's weighted perplexity / bits-per-byte."""
    (loglikelihood,) = results
    text = doc["text"] if "text" in doc else gsm8k_solution_text(doc)
    words, size = len(re.split(r"\s+", text.strip())), len(text.encode("utf-8"))
    return {
        "word_perplexity": (loglikelihood, words),
        "byte_perplexity": (loglikelihood, size),
        "bits_per_byte": (loglikelihood, size),
    }


def weighted_perplexity(items: Sequence[tuple[float, int]]) -> float:
    """lm-eval's weighted perplexity, but ``inf`` instead of an OverflowError for a broken model.

    A model damaged by training can reach a mean NLL above 709 nats per word, where ``math.exp`` raises;
    the evaluation must still finish and say "infinitely bad" rather than crash.
    """
    mean_nll = -sum(ll for ll, _ in items) / sum(n for _, n in items)
    return math.inf if mean_nll > 709 else math.exp(mean_nll)
