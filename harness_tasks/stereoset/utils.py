"""lm-eval glue for the gee_stereoset tasks: load dev.json locally, score sentences, aggregate officially.

Each document is one StereoSet example with its three sentences in the fixed order stereotype,
anti-stereotype, unrelated (lm-eval ``multiple_choice``, one log-likelihood request per sentence). A
sentence's score is its mean per-token log-likelihood (the log of the geometric-mean token probability),
so the number of tokens lm-eval scores for each sentence is computed here with the evaluated model's
tokenizer and stored in the document.

Every reported number comes from ``scoring.aggregate``, the official-equivalent StereoSet scorer:
``process_results`` returns the example's record (split, bias type, target, the three scores) under every
metric key, and each metric's aggregation function rebuilds the ``ExampleScores`` and picks its number
from ``aggregate``'s result.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

# Module attributes, not bound names: lm-eval imports this file under its own module name, and tests swap
# the data file and tokenizer through these modules.
from harness_tasks import _data, _tokenizer
from harness_tasks._aggregation import JointAggregation
from harness_tasks._data import DataFileError
from harness_tasks.stereoset import scoring

STEREOSET_FILE = "stereoset/dev.json"
# Choice order of every document; index 0 is also the (meaningless) lm-eval target.
CHOICE_LABELS = scoring.GOLD_LABELS  # ("stereotype", "anti-stereotype", "unrelated")
SCORE_FIELDS = ("stereotype", "anti_stereotype", "unrelated")
SCORES = {"ss": "SS Score", "lms": "LM Score", "icat": "ICAT Score"}


def _metric_table() -> dict[str, tuple[str, str | None, str | None]]:
    """metric name -> (score, split or None for all, domain or None for all), in report order.

    ``ss`` / ``lms`` / ``icat``: the task's overall, pooled over its examples (targets merged across
    splits). ``<score>_<domain>``: the task's examples of one domain, pooled the same way.
    ``<score>_<split>`` and ``<score>_<split>_<domain>``: the official per-split numbers (gee_stereoset).
    """
    table: dict[str, tuple[str, str | None, str | None]] = {}
    for split in (None, *scoring.SPLITS):
        for domain in (None, *scoring.DOMAINS):
            for score in SCORES:
                name = "_".join(part for part in (score, split, domain) if part)
                table[name] = (score, split, domain)
    return table


METRICS = _metric_table()
# A one-split task reports the split-free metrics: its overall and domains are the split's official ones.
SPLIT_TASK_METRICS = tuple(name for name, (_, split, _) in METRICS.items() if split is None)
POOLED_TASK_METRICS = tuple(METRICS)

NO_TOKENIZER = (
    "the gee_stereoset tasks score each sentence by its mean per-token log-likelihood and need the model's "
    "tokenizer: pass --model_args pretrained=<model> on the lm_eval command line, or "
    "metadata={'tokenizer': <name or path>} to lm-eval's TaskManager (debias.evaluation does this)"
)


def continuation_token_count(tokenizer, context: str, continuation: str) -> int:
    """Tokens lm-eval scores for ``continuation`` after ``context`` (``_tokenizer.continuation_tokens``)."""
    return len(_tokenizer.continuation_tokens(tokenizer, context, continuation))


def read_examples(path) -> list[dict[str, Any]]:
    """dev.json -> one document per example (intrasentence first), validated by ``scoring.load_examples``."""
    try:
        records = scoring.load_examples(path)
    except ValueError as exc:
        raise DataFileError(str(exc)) from None
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)["data"]
    texts: dict[str, str] = {}
    contexts: dict[tuple[str, str], str] = {}
    for split in scoring.SPLITS:
        for entry in data.get(split, []):
            contexts[(split, entry["id"])] = entry["context"]
            for sentence in entry["sentences"]:
                texts[sentence["id"]] = sentence["sentence"]
    docs = []
    for record in records:
        ids = [record["sentence_ids"][label] for label in CHOICE_LABELS]
        docs.append(
            {
                "id": record["id"],
                "split": record["split"],
                "bias_type": record["bias_type"],
                "target": record["target"],
                "context": contexts[(record["split"], record["id"])],
                "sentences": [texts[i] for i in ids],
                "sentence_ids": ids,
            }
        )
    return docs


HALVES = ("select", "report")


def target_half(target: str) -> str:
    """Which half a target term belongs to, by a fixed hash: "select" (model selection) or "report".

    Splitting by target term (not by example) keeps every term's examples on one side, so a method tuned
    on the selection half is reported on terms it was never selected on (PCGU's model selection).
    """
    digest = hashlib.sha256(target.strip().lower().encode("utf-8")).digest()
    return HALVES[digest[0] % 2]


def load_dataset(
    split: str | None = None, half: str | None = None, domain: str | None = None, **metadata: Any
):
    """``custom_dataset`` hook: lm-eval passes the task metadata (incl. model args) as keywords.

    ``domain`` keeps one bias type (e.g. gender): a quarter of the examples, for quick checks of a
    gender-targeted method; the overall metrics of such a task are that domain's.
    """
    import datasets

    if split is not None and split not in scoring.SPLITS:
        raise DataFileError(f"unknown StereoSet split {split!r}; known: {', '.join(scoring.SPLITS)}")
    if half is not None and half not in HALVES:
        raise DataFileError(f"unknown StereoSet half {half!r}; known: {', '.join(HALVES)}")
    if domain is not None and domain not in scoring.DOMAINS:
        raise DataFileError(f"unknown StereoSet domain {domain!r}; known: {', '.join(scoring.DOMAINS)}")
    spec = _tokenizer.tokenizer_spec(metadata)
    if spec is None:
        raise DataFileError(NO_TOKENIZER)
    docs = read_examples(_data.data_file(STEREOSET_FILE))
    if split is not None:
        docs = [doc for doc in docs if doc["split"] == split]
    if half is not None:
        docs = [doc for doc in docs if target_half(doc["target"]) == half]
    if domain is not None:
        docs = [doc for doc in docs if doc["bias_type"] == domain]
    tokenizer = _tokenizer.load_tokenizer(spec)
    for doc in docs:
        context = doc_to_text(doc)
        doc["n_tokens"] = [continuation_token_count(tokenizer, context, c) for c in doc_to_choice(doc)]
        if min(doc["n_tokens"]) < 1:
            raise DataFileError(f"{STEREOSET_FILE}: a sentence of example {doc['id']!r} has no tokens")
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "split": datasets.Value("string"),
            "bias_type": datasets.Value("string"),
            "target": datasets.Value("string"),
            "context": datasets.Value("string"),
            "sentences": datasets.Sequence(datasets.Value("string")),
            "sentence_ids": datasets.Sequence(datasets.Value("string")),
            "n_tokens": datasets.Sequence(datasets.Value("int64")),
        }
    )
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs, features=features)})


def doc_to_text(doc: dict) -> str:
    """Intrasentence: the empty context (scored after the BOS/prefix token). Intersentence: the context."""
    return doc["context"] if doc["split"] == "intersentence" else ""


def doc_to_choice(doc: dict) -> list[str]:
    """The three sentences; an intersentence candidate follows its context after one space."""
    prefix = " " if doc["split"] == "intersentence" else ""
    return [prefix + sentence for sentence in doc["sentences"]]


def example_record(doc: dict, results: Sequence) -> dict[str, Any]:
    """The per-example record every metric carries: ExampleScores fields, scores = mean token log-prob."""
    record: dict[str, Any] = {"split": doc["split"], "bias_type": doc["bias_type"], "target": doc["target"]}
    for field, (ll, _), n_tokens in zip(SCORE_FIELDS, results, doc["n_tokens"], strict=True):
        record[field] = ll / n_tokens
    return record


def process_results(doc: dict, results: Sequence) -> dict[str, dict[str, Any]]:
    """gee_stereoset (both splits): the record under every pooled-task metric key."""
    record = example_record(doc, results)
    return dict.fromkeys(POOLED_TASK_METRICS, record)


def process_results_split(doc: dict, results: Sequence) -> dict[str, dict[str, Any]]:
    record = example_record(doc, results)
    return dict.fromkeys(SPLIT_TASK_METRICS, record)


def metric_value(name: str, records: Sequence[dict[str, Any]]) -> float:
    """Metric ``name`` of ``records`` on the official 0-100 scale, via ``scoring.aggregate``.

    NaN when the records hold no example of the metric's split or domain (e.g. a ``--limit`` subset).
    """
    score, split, domain = METRICS[name]
    examples = [scoring.ExampleScores(**record) for record in records]
    if split is None and domain is not None:
        # The domain's examples, pooled like the overall; in a one-split task this is exactly the
        # official per-domain number of that split (same examples, same per-target order).
        examples = [ex for ex in examples if ex.bias_type == domain]
    if not examples:
        return math.nan
    result = scoring.aggregate(examples)
    if split is None:
        node = result["overall"]
    else:
        node = result.get(split, {}).get("overall" if domain is None else domain)
    return node[SCORES[score]] if node else math.nan


def as_examples(records: Sequence[dict[str, Any] | scoring.ExampleScores]) -> list[scoring.ExampleScores]:
    return [r if isinstance(r, scoring.ExampleScores) else scoring.ExampleScores(**r) for r in records]


def all_metric_values(records: Sequence[dict[str, Any] | scoring.ExampleScores]) -> dict[str, float]:
    """Every metric of ``records`` at once: one official scoring of all records plus one per domain.

    Equal to ``metric_value(name, records)`` for every name; a bootstrap over 45 metrics calls this once
    per resample (on records already converted by ``as_examples``) instead of scoring 45 times.
    """
    examples = as_examples(records)
    overall = scoring.aggregate(examples) if examples else {}
    by_domain = {}
    for domain in scoring.DOMAINS:
        subset = [ex for ex in examples if ex.bias_type == domain]
        # a domain pooled over splits is the overall of its own examples (what metric_value computes)
        by_domain[domain] = scoring.score_pooled(subset) if subset else None
    values = {}
    for name, (score, split, domain) in METRICS.items():
        if split is None:
            node = overall.get("overall") if domain is None else by_domain[domain]
        else:
            node = overall.get(split, {}).get("overall" if domain is None else domain)
        values[name] = node[SCORES[score]] if node else math.nan
    return values


class MetricAggregation(JointAggregation):
    """lm-eval aggregation of one metric: ``metric_value(name, records)``.

    A callable object rather than a closure so that lm-eval, which records each aggregation in the result
    file's task config (source code of functions, ``str`` of other callables), records which metric it is.
    (Not a dataclass: lm-eval executes this file before registering it in ``sys.modules``.)
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, records: Sequence[dict[str, Any]]) -> float:
        return metric_value(self.name, records)

    # The declared hook (harness_tasks._aggregation): one scoring computes this metric and its siblings.
    joint = staticmethod(all_metric_values)
    prepare = staticmethod(as_examples)

    def __str__(self) -> str:
        score, split, domain = METRICS[self.name]
        scope = f"split={split or 'all of the task (pooled)'}, domain={domain or 'all'}"
        return f"harness_tasks.stereoset.utils.agg_{self.name}: scoring.aggregate {SCORES[score]}, {scope}"


# One aggregation per metric, named agg_<metric> (what the task YAMLs reference).
globals().update({f"agg_{name}": MetricAggregation(name) for name in METRICS})
