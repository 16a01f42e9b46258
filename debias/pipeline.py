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

from debias import evaluation, models, untrusted
from debias.atomic import atomic_dir, write_json_atomic


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _task_yaml_files(root: Path, names: list[str]) -> set[Path]:
    """The YAML files that define ``names`` (tasks, groups or tags), their members and their includes.

    A group's members and a task's ``include:`` chain are followed, so a suite's key covers every leaf
    task's definition, and nothing else: a new task elsewhere in ``harness_tasks/`` leaves it unchanged.
    (lm-eval's TaskManager index would name the defining files too, but indexes its thousands of built-in
    tasks first: seconds per key.)
    """
    from lm_eval.tasks._yaml_loader import load_yaml

    paths = [p.resolve() for p in root.rglob("*") if p.is_file() and p.name.endswith("yaml")]
    docs = {path: load_yaml(path, resolve_func=False, recursive=False) for path in paths}
    defines: dict[str, list[Path]] = {}
    for path, doc in docs.items():
        # a group's `task:` lists its members, it does not define them
        named = [doc.get("group"), None if "group" in doc else doc.get("task"), *_as_list(doc.get("tag"))]
        for name in named:
            if isinstance(name, str):
                defines.setdefault(name, []).append(path)
    files: set[Path] = set()
    pending, seen = list(names), set()

    def follow(doc: dict[str, Any], folder: Path) -> None:
        """Queue what ``doc`` (a file, or a group's inline member) includes and, as a group, its members."""
        for include in _as_list(doc.get("include")):
            if isinstance(include, str):
                add((folder / include).resolve())
        if "group" in doc or isinstance(doc.get("task"), list):
            for member in _as_list(doc.get("task")):
                if isinstance(member, dict):
                    follow(member, folder)
                else:
                    pending.append(member)
        elif isinstance(doc.get("task"), str):
            pending.append(doc["task"])

    def add(path: Path) -> None:
        if path in docs and path not in files:
            files.add(path)
            follow(docs[path], path.parent)

    while pending:
        name = pending.pop()
        if isinstance(name, str) and name not in seen:
            seen.add(name)
            for path in defines.get(name, []):
                add(path)
    return files


def _tasks_fingerprint(names: list[str]) -> str:
    """Hash of what defines the requested tasks: a changed definition invalidates the cache.

    Covers every Python module and JSON file under ``harness_tasks/`` (a task's utilities may import any
    of them, and the data manifest pins the files) plus the YAML that defines ``names`` and their members
    (``_task_yaml_files``). Adding a task does not change the key of the others, so it does not throw
    away base results that took minutes (a Gemma ``gee_heldout`` base is ~15 minutes on the CPU).
    """
    root = evaluation.tasks_dir()
    code = {p.resolve() for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".json")}
    digest = hashlib.sha256()
    for path in sorted(code | _task_yaml_files(root, names)):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def base_cache_key(model_spec: str, request: evaluation.EvalRequest) -> str:
    fingerprint = models.reference(model_spec).fingerprint
    key = {
        "weights": fingerprint.get("weights_sha256"),
        "tasks": sorted(request.tasks),
        "limit": request.limit,
        "seed": request.seed,
        "scorer": request.scorer,
        "lm_eval": importlib_metadata.version("lm-eval"),
        "task_files": _tasks_fingerprint(list(request.tasks)),
    }
    if request.limit_scope != "task":  # keys of runs from before the field existed stay valid
        key["limit_scope"] = request.limit_scope
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def cache_dir() -> Path:
    return models.cache_root() / "results"


def adapter_kind(adapter: str | Path) -> str:
    """The adapter's kind, sniffed from its folder: "sparse", "projection" or "peft"."""
    from debias import projection, sparse_adapter

    folder = Path(adapter)
    if sparse_adapter.is_sparse_adapter(folder):
        return "sparse"
    if projection.is_projection(folder):
        return "projection"
    if (folder / "adapter_config.json").is_file():
        _check_peft_folder(folder)
        return "peft"
    raise ValueError(
        f"{folder}: not an adapter folder: neither a peft adapter (adapter_config.json), a sparse "
        f"adapter ({sparse_adapter.CONFIG}) nor a projection ({projection.CONFIG})"
    )


def _check_peft_folder(folder: Path) -> None:
    """A peft folder that would fail (or load garbage) inside peft fails here, in one line, first."""
    path = folder / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: byte {err.start}: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(config, dict) or not isinstance(config.get("peft_type"), str):
        raise ValueError(f"{path}: field 'peft_type': missing (not a peft adapter config)")
    untrusted.check_weights_folder(folder, "adapter")
    if not any((folder / name).is_file() for name in ("adapter_model.safetensors", "adapter_model.bin")):
        raise ValueError(f"{folder}: no adapter_model.safetensors beside adapter_config.json")


def adapter_files(adapter: str | Path) -> list[Path]:
    """The files that make up the adapter in ``adapter`` (a checkpoint folder may hold more)."""
    from debias import projection, sparse_adapter

    folder = Path(adapter)
    kind = adapter_kind(folder)
    if kind == "sparse":
        return list(sparse_adapter.files(folder))
    if kind == "projection":
        return list(projection.files(folder))
    names = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
    return [folder / name for name in names if (folder / name).is_file()]


def with_adapter(model, adapter: str | Path, expected_weights: dict[str, str] | None = None):
    """Base model with an adapter merged into its weights: a peft (LoRA) folder or a sparse PCGU one.

    An unmerged LoRA adds two small matmuls to every adapted projection, which roughly halved evaluation
    throughput on the CPU; merged, the forward pass costs what the base model's does.
    """
    from debias import projection, sparse_adapter

    kind = adapter_kind(adapter)
    if kind == "sparse":
        return sparse_adapter.apply(model, Path(adapter), expected_weights).eval()
    if kind == "projection":
        return projection.apply(model, Path(adapter), expected_weights).eval()
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()


def merge(model_spec: str, adapter: str | Path, out: str | Path) -> Path:
    """Write base + adapter as a plain transformers checkpoint (loadable without this project or peft)."""
    adapter_kind(adapter)  # a folder that is no adapter fails before the model loads
    ref = models.reference(model_spec)
    model, tokenizer = models.load(str(ref.path))
    merged = with_adapter(model, adapter, ref.weights_sha256)
    with atomic_dir(Path(out)) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out)


def evaluate_spec(model_spec: str, request: evaluation.EvalRequest, adapter: str | Path | None = None):
    """Load ``model_spec`` (+ optional adapter) and evaluate it; results include samples."""
    ref = models.reference(model_spec)
    if adapter is not None:
        adapter_kind(adapter)  # a folder that is no adapter fails before the model loads
    model, tokenizer = models.load(str(ref.path))
    if adapter is not None:
        model = with_adapter(model, adapter, ref.weights_sha256)
    results = evaluation.evaluate(model, tokenizer, request, tokenizer_path=str(ref.path))
    if not results:  # another process of an `accelerate launch`: lm-eval returns results on rank 0 only
        return results
    results["provenance"]["model"] = {
        "spec": model_spec,
        "adapter": str(adapter) if adapter else None,
        "fingerprint": ref.fingerprint,
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
    store_base_results(model_spec, request, evaluate_spec(model_spec, request))
    return json.loads(path.read_text()), False


def store_base_results(model_spec: str, request: evaluation.EvalRequest, results: dict[str, Any]) -> Path:
    """Cache a base evaluation under its key: the one writer of the cache (a timed benchmark run of the
    same request is as good as the main job's own)."""
    path = base_cache_path(model_spec, request)
    write_json_atomic(path, results)
    return path
