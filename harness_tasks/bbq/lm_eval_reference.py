"""lm-eval's built-in ``bbq`` task (multiple choice), re-pointed at the local files and our examples.

The built-in task reads ``oskarvanderwal/bbq`` from the hub; this keeps everything else of it (its YAML,
``process_docs``, ``doc_to_choice`` with the ten UNKNOWN phrasings, ``process_results``, aggregations) and
swaps only the data for the same examples gee_bbq scores, so one run compares the two on identical items
and model (``benchmarks/bbq_vs_lm_eval.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REFERENCE_TASK = "lm_eval_builtin_bbq_on_gee_items"
_FIELDS = (
    "example_id",
    "question_index",
    "question_polarity",
    "context_condition",
    "category",
    "context",
    "question",
    "ans0",
    "ans1",
    "ans2",
    "label",
    "answer_info",
)


def builtin_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our documents in the upstream layout the built-in task reads (``additional_metadata`` nested)."""
    return [
        {f: d[f] for f in _FIELDS}
        | {"additional_metadata": {"stereotyped_groups": list(d["stereotyped_groups"])}}
        for d in docs
    ]


def builtin_bbq_config(lite: bool = True) -> dict[str, Any]:
    """The built-in ``bbq`` task config over the gee_bbq_lite examples (or all scored examples)."""
    import lm_eval.tasks
    from lm_eval.tasks._yaml_loader import load_yaml

    def _dataset(**_metadata: Any):
        import datasets

        from harness_tasks.bbq import utils

        docs = utils.all_examples()
        if lite:
            docs = utils.lite_subset(docs)
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(builtin_docs(docs))})

    yaml_path = Path(lm_eval.tasks.__file__).parent / "bbq" / "bbq_multiple_choice.yaml"
    config = load_yaml(yaml_path)
    config.pop("tag", None)
    config.update(task=REFERENCE_TASK, dataset_path="", dataset_name="", custom_dataset=_dataset)
    return config
