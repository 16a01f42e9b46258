"""lm-eval glue for the gee_bbq tasks: read and join the upstream files, choose the lite subset, score.

Each document is one BBQ example, multiple choice over its three answers in the file's order, with
lm-eval's built-in ``bbq`` prompt (``{context}\\n\\nQ: {question}\\nA:`` and `` <answer>``) so that the
log-likelihoods are comparable with it. ``target_loc`` and ``label_type`` come from the authors'
``additional_metadata.csv``, joined on (category, question_index, example_id); the 16 examples without a
``target_loc`` are dropped, as the authors' script does. Every metric is computed by
``metrics.all_metric_values`` from the per-example record ``process_results`` emits under every metric key.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

# Module attributes, not bound names: lm-eval imports this file under its own module name, and tests swap
# the data files through this module.
from harness_tasks import _data
from harness_tasks._aggregation import JointAggregation
from harness_tasks._data import DataFileError
from harness_tasks.bbq import metrics

METADATA_FILE = "bbq/additional_metadata.csv"
ANSWERS = ("ans0", "ans1", "ans2")
POLARITIES = ("neg", "nonneg")
CONDITIONS = ("ambig", "disambig")
LABEL_TYPES = ("label", "name")
# gee_bbq_lite: this many examples from every (reporting category, context condition, polarity) cell.
LITE_PER_CELL = 8


def category_file(category: str) -> str:
    return f"bbq/{category}.jsonl"


def _fail(path: Path, line: int, field: str, problem: str) -> DataFileError:
    return DataFileError(f"{path}:{line}: field '{field}' {problem}")


def read_examples(path: Path, category: str) -> list[dict[str, Any]]:
    """One category's JSONL, each example checked for the fields the scores depend on."""
    examples = []
    with open(path, encoding="utf-8") as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataFileError(f"{path}:{line}: not a JSON object ({exc.msg})") from None
            examples.append(_check_example(row, path, line, category))
    return examples


def _check_example(row: Any, path: Path, line: int, category: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataFileError(f"{path}:{line}: not a JSON object")
    for field in ("context", "question", *ANSWERS):
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise _fail(path, line, field, "is missing or empty")
    if row.get("category") != category:
        raise _fail(path, line, "category", f"is {row.get('category')!r}, expected {category!r}")
    if not isinstance(row.get("example_id"), int) or isinstance(row.get("example_id"), bool):
        raise _fail(path, line, "example_id", f"is {row.get('example_id')!r}, expected an integer")
    if not str(row.get("question_index", "")).strip():
        raise _fail(path, line, "question_index", "is missing or empty")
    if row.get("question_polarity") not in POLARITIES:
        raise _fail(
            path, line, "question_polarity", f"is {row.get('question_polarity')!r}, not in {POLARITIES}"
        )
    if row.get("context_condition") not in CONDITIONS:
        raise _fail(
            path, line, "context_condition", f"is {row.get('context_condition')!r}, not in {CONDITIONS}"
        )
    if row.get("label") not in (0, 1, 2) or isinstance(row.get("label"), bool):
        raise _fail(path, line, "label", f"is {row.get('label')!r}, expected 0, 1 or 2")
    info = row.get("answer_info")
    if not isinstance(info, dict) or any(
        not isinstance(info.get(a), list) or len(info[a]) != 2 for a in ANSWERS
    ):
        raise _fail(path, line, "answer_info", "must give [text, group tag] for ans0, ans1 and ans2")
    unknown = [i for i, a in enumerate(ANSWERS) if info[a][1] == "unknown"]
    if len(unknown) != 1:
        raise _fail(path, line, "answer_info", f"tags {len(unknown)} answers 'unknown', expected exactly one")
    if row["context_condition"] == "ambig" and row["label"] != unknown[0]:
        raise _fail(path, line, "label", "of an ambiguous context must be the UNKNOWN answer")
    groups = (row.get("additional_metadata") or {}).get("stereotyped_groups")
    return {
        "category": category,
        "example_id": row["example_id"],
        "question_index": str(row["question_index"]),
        "question_polarity": row["question_polarity"],
        "context_condition": row["context_condition"],
        "context": row["context"],
        "question": row["question"],
        **{a: row[a] for a in ANSWERS},
        "label": row["label"],
        "unknown_loc": unknown[0],
        "answer_info": {a: [str(x) for x in info[a]] for a in ANSWERS},
        "stereotyped_groups": [str(g) for g in groups] if isinstance(groups, list) else [],
    }


def read_metadata(path: Path) -> dict[tuple[str, str, int], tuple[int | None, str]]:
    """(category, question_index, example_id) -> (target_loc or None for NA, label_type).

    The file repeats 64 Gender_identity records verbatim; identical repeats are one record (the authors'
    R ``merge`` would count those examples twice), differing ones are an error.
    """
    out: dict[tuple[str, str, int], tuple[int | None, str]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [
            c
            for c in ("category", "question_index", "example_id", "target_loc", "label_type")
            if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise DataFileError(f"{path}: missing column(s) {', '.join(missing)}")
        line = reader.line_num + 1
        for row in reader:
            try:
                example_id = int(row["example_id"])
            except ValueError:
                raise _fail(
                    path, line, "example_id", f"is {row['example_id']!r}, expected an integer"
                ) from None
            target = row["target_loc"].strip()
            if target not in ("0", "1", "2", "NA"):
                raise _fail(path, line, "target_loc", f"is {target!r}, expected 0, 1, 2 or NA")
            if row["label_type"] not in LABEL_TYPES:
                raise _fail(path, line, "label_type", f"is {row['label_type']!r}, not in {LABEL_TYPES}")
            key = (row["category"], row["question_index"].strip(), example_id)
            value = (None if target == "NA" else int(target), row["label_type"])
            if out.setdefault(key, value) != value:
                raise _fail(path, line, "target_loc", f"contradicts an earlier record for {key}")
            line = reader.line_num + 1
    return out


@cache
def _joined(paths: tuple[tuple[str, str], ...], metadata_path: str) -> tuple[dict[str, Any], ...]:
    """Every example with target_loc and label_type, the NA ones dropped; cached across the subtasks."""
    meta = read_metadata(Path(metadata_path))
    docs = []
    for category, path in paths:
        for ex in read_examples(Path(path), category):
            key = (category, ex["question_index"], ex["example_id"])
            if key not in meta:
                raise DataFileError(f"{metadata_path}: no record for {key} of {path}")
            target_loc, label_type = meta[key]
            if target_loc is None:
                continue  # the authors' "16 examples need to be removed"
            if target_loc == ex["unknown_loc"]:
                raise DataFileError(f"{metadata_path}: target_loc of {key} is the UNKNOWN answer")
            label = metrics.category_label(category, label_type)
            docs.append(
                ex
                | {"target_loc": target_loc, "label_type": label_type, "category_slug": metrics.slug(label)}
            )
    return tuple(docs)


def all_examples() -> list[dict[str, Any]]:
    """The 58,476 scored examples of the 11 files (sha256-checked), in file order."""
    paths = tuple((c, str(_data.data_file(category_file(c)))) for c in metrics.FILE_CATEGORIES)
    return [dict(d) for d in _joined(paths, str(_data.data_file(METADATA_FILE)))]


def lite_key(doc: dict[str, Any]) -> str:
    """A fixed hash of the example's identity: the lite subset depends on nothing but the data."""
    ident = f"bbq-lite:{doc['category']}:{doc['question_index']}:{doc['example_id']}"
    return hashlib.sha256(ident.encode("utf-8")).hexdigest()


def lite_subset(docs: Sequence[dict[str, Any]], per_cell: int = LITE_PER_CELL) -> list[dict[str, Any]]:
    """The ``per_cell`` lowest-hash examples of every (category, condition, polarity) cell, in data order."""
    cells: dict[tuple[str, str, str], list[tuple[str, int]]] = {}
    for i, doc in enumerate(docs):
        cell = (doc["category_slug"], doc["context_condition"], doc["question_polarity"])
        cells.setdefault(cell, []).append((lite_key(doc), i))
    keep = sorted(i for members in cells.values() for _, i in sorted(members)[:per_cell])
    return [docs[i] for i in keep]


def _features():
    import datasets

    text = datasets.Value("string")
    return datasets.Features(
        {
            "category": text,
            "category_slug": text,
            "example_id": datasets.Value("int64"),
            "question_index": text,
            "question_polarity": text,
            "context_condition": text,
            "context": text,
            "question": text,
            **{a: text for a in ANSWERS},
            "label": datasets.Value("int64"),
            "unknown_loc": datasets.Value("int64"),
            "target_loc": datasets.Value("int64"),
            "label_type": text,
            "answer_info": {a: datasets.Sequence(text) for a in ANSWERS},
            "stereotyped_groups": datasets.Sequence(text),
        }
    )


def load_dataset(category: str | None = None, lite: bool = False, **_metadata: Any):
    """``custom_dataset`` hook: one reporting category (slug), the lite subset, or everything."""
    import datasets

    if category is not None and category not in metrics.CATEGORIES:
        raise DataFileError(f"unknown BBQ category {category!r}; known: {', '.join(metrics.CATEGORIES)}")
    docs = all_examples()
    if lite:
        docs = lite_subset(docs)
    if category is not None:
        docs = [d for d in docs if d["category_slug"] == category]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs, features=_features())})


def doc_to_text(doc: dict) -> str:
    """lm-eval's built-in bbq prompt."""
    return f"{doc['context']}\n\nQ: {doc['question']}\nA:"


def doc_to_choice(doc: dict) -> list[str]:
    """The three answers in the file's order (the UNKNOWN one wherever the file puts it)."""
    return [doc[a] for a in ANSWERS]


def example_record(doc: dict, results: Sequence) -> dict[str, Any]:
    """The per-example record every metric carries (the fields of ``metrics.Record``)."""
    lls = [ll for ll, _ in results]
    pred, pred_norm = metrics.predictions(lls, doc_to_choice(doc))
    return {
        "category": doc["category_slug"],
        "ambig": doc["context_condition"] == "ambig",
        "neg": doc["question_polarity"] == "neg",
        "label": doc["label"],
        "target_loc": doc["target_loc"],
        "unknown_loc": doc["unknown_loc"],
        "pred": pred,
        "pred_norm": pred_norm,
    }


def process_results(doc: dict, results: Sequence) -> dict[str, dict[str, Any]]:
    """One-category subtasks: the record under each overall metric."""
    return dict.fromkeys(metrics.OVERALL_METRICS, example_record(doc, results))


def process_results_all(doc: dict, results: Sequence) -> dict[str, dict[str, Any]]:
    """gee_bbq_lite: the record under the overall and the per-category metrics."""
    return dict.fromkeys(metrics.ALL_METRICS, example_record(doc, results))


class MetricAggregation(JointAggregation):
    """lm-eval aggregation of one metric; its siblings come from the same ``all_metric_values`` call.

    A callable object so that lm-eval, which records each aggregation in the result file's task config
    (``str`` of a callable), records which metric it is; the joint hook lets ``debias.compare`` score all
    of them once per bootstrap resample.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, records: Sequence[dict[str, Any]]) -> float:
        return metrics.all_metric_values(records)[self.name]

    joint = staticmethod(metrics.all_metric_values)
    prepare = staticmethod(metrics.as_records)

    def __str__(self) -> str:
        return f"harness_tasks.bbq.utils.agg_{self.name}: metrics.all_metric_values (authors' definitions)"


# One aggregation per metric, named agg_<metric> (what the task YAMLs reference).
globals().update({f"agg_{name}": MetricAggregation(name) for name in metrics.ALL_METRICS})
