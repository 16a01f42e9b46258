"""Run the harness tasks on a model already in memory (base or PEFT-wrapped) and record provenance.

This is lm-eval's own ``simple_evaluate`` over its ``HFLM`` wrapper; the only additions are pointing the
task manager at our task folder, passing the tokenizer to tasks that normalise per token, and writing a
result file that says exactly what was measured (model hash, data sha256s, task versions, libraries).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from debias import launch, memory
from debias.run_folder import summary  # noqa: F401  (re-exported: how callers read a results dict)

LIBRARIES = ("lm_eval", "torch", "transformers", "peft", "accelerate", "datasets")


@dataclass
class EvalRequest:
    tasks: list[str]
    limit: int | float | None = None
    batch_size: int | str = 16
    seed: int = 1234
    log_samples: bool = True
    # "gee-hf" (debias.scorer: the LM head only where requests are scored) or "hf" (lm-eval's HFLM)
    scorer: str = "gee-hf"
    extra_metadata: dict[str, Any] = field(default_factory=dict)
    # what an int ``limit`` counts: "task" -- documents of every leaf task (lm-eval's meaning; a group of
    # 57 MMLU subjects then runs 57 x limit); "benchmark" -- documents per benchmark (a suite's member),
    # shared by its leaf tasks, ceil(limit / leaves) each from the start of each (--quick's budget)
    limit_scope: str = "task"


def tasks_dir() -> Path:
    import harness_tasks

    return Path(harness_tasks.__file__).resolve().parent


def task_manager(
    tokenizer_path: str | None = None, extra: dict[str, Any] | None = None, tasks: list | None = None
):
    """A TaskManager over our task folder; lm-eval's own tasks are indexed only when ``tasks`` needs them.

    Indexing lm-eval's thousands of built-in task files takes ~25 s on a small CPU, which would dominate
    every short evaluation; tasks given as config dicts never need the index.
    """
    from lm_eval.tasks import TaskManager

    meta = dict(extra or {})
    if tokenizer_path:
        meta["tokenizer"] = tokenizer_path
    ours = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=meta)
    names = [t for t in (tasks or []) if isinstance(t, str)]
    if all(name in ours.all_tasks for name in names):
        return ours
    return TaskManager(include_path=str(tasks_dir()), metadata=meta)


def check_task_names(tasks: list[str]) -> None:
    """Fail before any work starts (training takes minutes) when a task or suite name does not exist."""
    manager = task_manager(tasks=tasks)
    unknown = [name for name in tasks if name not in manager.all_tasks]
    if unknown:
        raise ValueError(
            f"unknown task or suite {', '.join(map(repr, unknown))}: see the README's task table "
            "(e.g. gee_bias, gee_crows_pairs) or lm-eval's task list"
        )


def evaluate(model, tokenizer, request: EvalRequest, tokenizer_path: str | None = None) -> dict[str, Any]:
    """Evaluate ``model`` on ``request.tasks``; returns lm-eval's results dict plus a ``provenance`` entry."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from harness_tasks import _data

    if request.scorer == "gee-hf":
        from debias.scorer import ScoredPositionsLM as HFLM  # noqa: N814  (a drop-in subclass)
    elif request.scorer != "hf":
        raise ValueError(f"unknown scorer {request.scorer!r}; expected 'gee-hf' or 'hf'")
    if request.limit_scope not in ("task", "benchmark"):
        raise ValueError(f"unknown limit_scope {request.limit_scope!r}; expected 'task' or 'benchmark'")
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=request.batch_size)
    _join_processes(lm, model)
    started = time.time()
    manager = task_manager(
        tokenizer_path or tokenizer.name_or_path, request.extra_metadata, tasks=request.tasks
    )
    tasks: list = list(request.tasks)
    limit, samples = request.limit, None
    if request.limit_scope == "benchmark" and isinstance(limit, int):
        # the tasks are built once, for their document counts and then for the evaluation itself
        # (lm-eval takes built Task / Group objects; building gee_heldout's 64 tasks costs ~3 s)
        built = built_tasks(manager, request.tasks)
        samples = benchmark_samples(built, limit, suite_names())
        if all(item is not None for item in built):
            without_unsampled(built, samples)
            tasks = built
        limit = None  # lm-eval takes a limit or per-task document indices, not both
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        limit=limit,
        samples=samples,
        log_samples=request.log_samples,
        random_seed=request.seed,
        numpy_random_seed=request.seed,
        torch_random_seed=request.seed,
        fewshot_random_seed=request.seed,
    )
    memory.release_freed_memory()  # the evaluation's batches are gone; so is their heap
    if results is None:  # not the main process of an `accelerate launch`
        return {}
    results["provenance"] = {
        "data_sha256": _data.used_files(),
        "task_versions": results.get("versions", {}),
        "limit": request.limit,
        "limit_scope": request.limit_scope,
        "seed": request.seed,
        "libraries": library_versions(),
        "device": str(next(model.parameters()).device),
        "host": platform.node(),
        "wall_time_s": round(time.time() - started, 2),
        "processes": getattr(lm, "processes", 1),
        "scorer": request.scorer,
    }
    return results


def suite_names() -> set[str]:
    """The groups defined in harness_tasks/suites/: collections of benchmarks, not benchmarks."""
    import yaml

    names = set()
    for path in sorted((tasks_dir() / "suites").glob("*.yaml")):
        group = (yaml.safe_load(path.read_text()) or {}).get("group")
        if group:
            names.add(group)
    return names


def built_tasks(manager, names: list[str]) -> list:
    """The lm-eval Task or Group object of each name, built once (None for a name that is neither, e.g. a
    tag, which lm-eval then builds itself)."""
    loaded = manager.load(list(names))
    return [loaded["groups"].get(name) or loaded["tasks"].get(name) for name in names]


def benchmark_samples(built: list, limit: int, suites: set[str]) -> dict[str, list[int]]:
    """Per-leaf document indices that give each benchmark ``limit`` documents in all.

    ``built``: lm-eval Task / Group objects (``built_tasks``). A benchmark is each requested task or
    group, or, for a suite, each of its members. Its leaf tasks share the budget: ceil(limit / leaves)
    documents from the start of each (what ``limit`` would take from that leaf), so a one-task benchmark
    gets exactly its first ``limit`` documents; a benchmark with more leaves than ``limit`` (MMLU's 57
    subjects) gets one document from each of ``limit`` evenly spread leaves, and the others none
    (``without_unsampled`` then drops them from the evaluation).
    """

    def benchmarks(items):
        for item in items:
            if hasattr(item, "get_all_tasks") and item.name in suites:
                yield from benchmarks(list(item))
            else:
                yield item

    samples: dict[str, list[int]] = {}
    for benchmark in benchmarks(item for item in built if item is not None):
        members = benchmark.get_all_tasks() if hasattr(benchmark, "get_all_tasks") else [benchmark]
        if len(members) > limit:  # more leaves than documents: the first document of `limit` leaves, spread
            members = [members[(i * len(members)) // limit] for i in range(limit)]
        share = -(-limit // len(members))
        for task in members:
            samples[task.task_name] = list(range(min(share, len(task.eval_docs))))
    return samples


def without_unsampled(built: list, samples: dict[str, list[int]]) -> None:
    """Remove from the built groups the leaves ``samples`` gives no document (and groups left empty):
    lm-eval reads an absent or empty index list as "every document"."""

    def prune(group) -> None:
        for child in list(group):
            if hasattr(child, "get_all_tasks"):
                prune(child)
                if not len(child):
                    group.pop(child.name)
            elif child.task_name not in samples:
                group.pop(child.task_name)

    for item in built:
        if item is not None and hasattr(item, "get_all_tasks"):
            prune(item)


def _join_processes(lm, model) -> None:
    """Data-parallel evaluation under ``accelerate launch``.

    Each process scores every ``world``-th request and the scores are all-gathered back into request
    order, so lm-eval itself runs as one process on complete results; it returns them on the main
    process only (the others get ``{}``). lm-eval's own
    sharding is not used: it gathers per-sample metrics by the keys rank 0 happens to hold, which drops
    or crashes on per-subgroup metrics a shard lacks (CrowS-Pairs' pct_stereotype_<type>).
    """
    if launch.world_size() <= 1:
        return
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes join over gloo
    if model.device != state.device:
        model.to(state.device)
        lm._device = state.device
    rank, world = state.process_index, state.num_processes

    def sharded(method):
        def run(requests, disable_tqdm: bool = False):
            mine = method(requests[rank::world], disable_tqdm=disable_tqdm or rank != 0)
            gathered: list = [None] * world
            torch.distributed.all_gather_object(gathered, mine)
            out: list = [None] * len(requests)
            for r, part in enumerate(gathered):
                out[r::world] = part
            return out

        return run

    for name in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        setattr(lm, name, sharded(getattr(lm, name)))
    lm.processes = world


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name.replace("_", "-"))
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
