"""lm-eval glue for gee_crows_pairs: load the original 1508 pairs locally, score each pair."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

# Module attributes, not bound names: lm-eval imports this file under its own module name, and tests swap
# the data file and tokenizer through these modules.
from harness_tasks import _data, _tokenizer
from harness_tasks._data import DataFileError
from harness_tasks.crows_pairs.metrics import BIAS_TYPES, DIRECTIONS, pair_metrics

CROWS_FILE = "crows_pairs/crows_pairs_anonymized.csv"
REQUIRED_COLUMNS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")


def read_pairs(path: Path) -> list[dict[str, Any]]:
    """Parse the upstream CSV, refusing rows that would silently skew the rates."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFileError(f"{path}: missing column(s) {', '.join(missing)}")
        pairs = []
        for line, row in enumerate(reader, start=2):
            for field in REQUIRED_COLUMNS:
                if not (row.get(field) or "").strip():
                    raise DataFileError(f"{path}:{line}: empty field '{field}'")
            if row["stereo_antistereo"] not in DIRECTIONS:
                raise DataFileError(
                    f"{path}:{line}: field 'stereo_antistereo' is {row['stereo_antistereo']!r}, "
                    f"expected one of {DIRECTIONS}"
                )
            if row["bias_type"] not in BIAS_TYPES:
                raise DataFileError(
                    f"{path}:{line}: field 'bias_type' is {row['bias_type']!r}, not a known type"
                )
            pairs.append(
                {
                    "pair_id": len(pairs),
                    "sent_more": row["sent_more"],
                    "sent_less": row["sent_less"],
                    "direction": row["stereo_antistereo"],
                    "bias_type": row["bias_type"],
                }
            )
    return pairs


def load_dataset(bias_type: str | None = None, **metadata: Any):
    """``custom_dataset`` hook: lm-eval passes the task metadata (incl. model args) as keywords."""
    import datasets

    pairs = read_pairs(_data.data_file(CROWS_FILE))
    if bias_type is not None:
        if bias_type not in BIAS_TYPES:
            raise DataFileError(
                f"unknown CrowS-Pairs bias_type {bias_type!r}; known: {', '.join(BIAS_TYPES)}"
            )
        pairs = [p for p in pairs if p["bias_type"] == bias_type]
    spec = _tokenizer.tokenizer_spec(metadata)
    tokenizer = _tokenizer.load_tokenizer(spec) if spec else None
    for pair in pairs:
        for side in ("more", "less"):
            text = pair[f"sent_{side}"]
            pair[f"n_tokens_{side}"] = _tokenizer.count_tokens(tokenizer, text) if tokenizer else None
    features = datasets.Features(
        {
            "pair_id": datasets.Value("int64"),
            "sent_more": datasets.Value("string"),
            "sent_less": datasets.Value("string"),
            "direction": datasets.Value("string"),
            "bias_type": datasets.Value("string"),
            "n_tokens_more": datasets.Value("int64"),
            "n_tokens_less": datasets.Value("int64"),
        }
    )
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(pairs, features=features)})


def doc_to_choice(doc: dict) -> list[str]:
    return [doc["sent_more"], doc["sent_less"]]


def _metrics(doc: dict, results: list, by_type: bool) -> dict[str, float]:
    (ll_more, _), (ll_less, _) = results
    return pair_metrics(
        ll_more,
        ll_less,
        doc["direction"],
        doc["n_tokens_more"],
        doc["n_tokens_less"],
        doc["bias_type"] if by_type else None,
    )


def process_results(doc: dict, results: list) -> dict[str, float]:
    """All pairs: adds a per-bias-type breakdown (one pass gives every type's rate)."""
    return _metrics(doc, results, by_type=True)


def process_results_single_type(doc: dict, results: list) -> dict[str, float]:
    return _metrics(doc, results, by_type=False)
