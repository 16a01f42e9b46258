"""Orchestration shared by train-and-eval and the benchmarks: cached base evaluation, debiased evaluation.

A base evaluation of the bias suite costs minutes on a CPU and is the same for every debiasing run of
the same model, so it is cached under a key covering everything that could change its numbers.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from debias import evaluation, models


def _tasks_fingerprint() -> str:
    """Hash of every task definition file (YAML, utils, manifest): a changed task invalidates the cache."""
    root = evaluation.tasks_dir()
    digest = hashlib.sha256()
    defining = (".py", ".yaml", "_yaml", ".json")  # not READMEs: documentation does not change numbers
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(defining)):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def base_cache_key(model_spec: str, request: evaluation.EvalRequest) -> str:
    fingerprint = models.model_fingerprint(models.resolve(model_spec))
    key = {
        "weights": fingerprint.get("weights_sha256"),
        "tasks": sorted(request.tasks),
        "limit": request.limit,
        "seed": request.seed,
        "lm_eval": importlib_metadata.version("lm-eval"),
        "task_files": _tasks_fingerprint(),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def cache_dir() -> Path:
    return models.cache_root() / "results"


def with_adapter(model, adapter: str | Path, expected_weights: dict[str, str] | None = None):
    """Base model with an adapter merged into its weights: a peft (LoRA) folder or a sparse PCGU one.

    An unmerged LoRA adds two small matmuls to every adapted projection, which roughly halved evaluation
    throughput on the CPU; merged, the forward pass costs what the base model's does.
    """
    from debias import sparse_adapter

    if sparse_adapter.is_sparse_adapter(Path(adapter)):
        return sparse_adapter.apply(model, Path(adapter), expected_weights).eval()
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ValueError(f"{adapter}: no adapter_config.json (not a peft or PCGU adapter folder)")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()


def merge(model_spec: str, adapter: str | Path, out: str | Path) -> Path:
    """Write base + adapter as a plain transformers checkpoint (loadable without this project or peft)."""
    from debias.atomic import atomic_dir

    path = models.resolve(model_spec)
    model, tokenizer = models.load(model_spec)
    weights = models.model_fingerprint(path).get("weights_sha256")
    merged = with_adapter(model, adapter, weights)
    with atomic_dir(Path(out)) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out)


def evaluate_spec(model_spec: str, request: evaluation.EvalRequest, adapter: str | Path | None = None):
    """Load ``model_spec`` (+ optional peft adapter) and evaluate it; results include samples."""
    path = models.resolve(model_spec)
    model, tokenizer = models.load(model_spec)
    if adapter is not None:
        model = with_adapter(model, adapter, models.model_fingerprint(path).get("weights_sha256"))
    results = evaluation.evaluate(model, tokenizer, request, tokenizer_path=str(path))
    results["provenance"]["model"] = {
        "spec": model_spec,
        "adapter": str(adapter) if adapter else None,
        "fingerprint": models.model_fingerprint(path),
    }
    return results


def base_cache_path(model_spec: str, request: evaluation.EvalRequest) -> Path:
    return cache_dir() / f"base-{base_cache_key(model_spec, request)}.json"


def base_results(model_spec: str, request: evaluation.EvalRequest) -> tuple[dict[str, Any], bool]:
    """(results, cache_hit): the base model's results, from the cache when the key matches.

    Results are always returned as read back from JSON, so a cache hit and a fresh run look the same
    to the code that compares them.
    """
    path = base_cache_path(model_spec, request)
    if path.is_file():
        return json.loads(path.read_text()), True
    evaluation.write_json_atomic(path, evaluate_spec(model_spec, request))
    return json.loads(path.read_text()), False
