"""lm-eval's built-in ``crows_pairs_english`` task, re-pointed at the original 1508-pair file.

The built-in task reads the revised multilingual CrowS-Pairs from the hub; this keeps everything else of
it (its YAML, ``doc_to_choice``, ``process_results``) and swaps only the data, so comparing it with
``gee_crows_pairs`` in one run checks our scoring against lm-eval's on identical pairs and model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REFERENCE_TASK = "lm_eval_builtin_crows_pairs_on_original"


def _original_pairs(**_metadata: Any):
    import datasets

    from harness_tasks._data import data_file
    from harness_tasks.crows_pairs.utils import CROWS_FILE, read_pairs

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(read_pairs(data_file(CROWS_FILE)))})


def builtin_crows_config() -> dict[str, Any]:
    import lm_eval.tasks
    from lm_eval.tasks._yaml_loader import load_yaml

    yaml_path = Path(lm_eval.tasks.__file__).parent / "crows_pairs" / "crows_pairs_english.yaml"
    config = load_yaml(yaml_path)
    config.pop("tag", None)
    config.update(task=REFERENCE_TASK, dataset_path="", dataset_name="", custom_dataset=_original_pairs)
    return config
