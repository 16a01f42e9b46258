"""The main job: train an adapter, evaluate base and debiased on one suite, compare, write the report.

A run folder is a sequence of phases, each finished by an atomic write, recorded in ``run.json``:

    train     -> adapter/, config.json, metrics.jsonl (the method's own checkpoints make it resumable)
    base      -> results/base.json, samples/base/<task>.json   (from the cache when the key matches)
    debiased  -> results/debiased.json, samples/debiased/<task>.json
    compare   -> results/comparison.json                       (paired bootstrap CIs per metric)
    report    -> report.html

Running the same command again skips the finished phases and resumes the interrupted one, so Ctrl-C at
any point leaves a folder that one more invocation completes. A folder started with other settings is
refused rather than silently mixed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from debias import evaluation, pipeline, training

PHASES = ("train", "base", "debiased", "compare", "report")
DEFAULT_SUITE = "gee_bias"
# --quick: the same suite on the first QUICK_LIMIT documents of each task, a short training run and
# fewer bootstrap resamples; a smoke test of the whole pipeline in minutes, not a measurement.
QUICK_LIMIT = 100
QUICK_ITERS = 200


@dataclass
class RunSpec:
    """Everything that decides a run's numbers besides the method config (which config.json records)."""

    method: str
    tasks: list[str] = field(default_factory=lambda: [DEFAULT_SUITE])
    limit: int | float | None = None
    eval_seed: int = 1234
    batch_size: int = 16
    iters: int = 1000
    quick: bool = False


class Progress:
    """Phase-level progress on stderr: what runs, how far through the job, and an ETA when one is known.

    The work inside a phase reports itself (lm-eval's and the trainer's own progress bars).
    """

    def __init__(self, total: int = len(PHASES), stream=sys.stderr) -> None:
        self.total, self.stream, self.started = total, stream, time.perf_counter()

    def phase(self, index: int, name: str, what: str, eta_s: float | None = None) -> None:
        elapsed = time.perf_counter() - self.started
        eta = f", about {_duration(eta_s)} for this phase" if eta_s else ""
        print(f"[{index}/{self.total}] {name}: {what} (elapsed {_duration(elapsed)}{eta})", file=self.stream)

    def note(self, text: str) -> None:
        print(f"      {text}", file=self.stream)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class RunState:
    """``run.json``: the spec the folder was started with and the wall time of each finished phase."""

    def __init__(self, out: Path, spec: RunSpec, method_config: dict[str, Any]) -> None:
        self.path = out / "run.json"
        wanted = {"spec": dataclasses.asdict(spec), "method_config": method_config}
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())
            old = {"spec": self.data.get("spec"), "method_config": self.data.get("method_config")}
            if old != json.loads(json.dumps(wanted)):
                raise ValueError(
                    f"{out} holds a run started with other settings ({_difference(old, wanted)}); "
                    "use another --out, or the same settings to resume it"
                )
        else:
            self.data = {**wanted, "phases": {}}
            self.save()

    def done(self, phase: str) -> bool:
        return phase in self.data["phases"]

    def finish(self, phase: str, wall_s: float, **extra: Any) -> None:
        self.data["phases"][phase] = {"wall_s": round(wall_s, 1), **extra}
        self.save()

    def save(self) -> None:
        evaluation.write_json_atomic(self.path, self.data)


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    new = json.loads(json.dumps(new))
    changed = []
    for section in ("spec", "method_config"):
        changed += training.settings_difference(old.get(section) or {}, new.get(section) or {})
    return "; ".join(changed[:4]) or "unreadable run.json"


def split_samples(results: dict[str, Any], out: Path, which: str) -> None:
    """Write ``results/<which>.json`` (metrics + provenance) and ``samples/<which>/<task>.json``."""
    evaluation.write_results(results, out / "results" / f"{which}.json", out / "samples" / which)


def load_with_samples(out: Path, which: str) -> dict[str, Any]:
    results = json.loads((out / "results" / f"{which}.json").read_text())
    folder = out / "samples" / which
    results["samples"] = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    return results


def train_and_eval(spec: RunSpec, cfg: Any, out: Path, progress: Progress | None = None) -> Path:
    """Run (or resume) every phase in ``out``; returns the report's path."""
    from debias.methods import method_module

    progress = progress or Progress()
    evaluation.check_task_names(list(spec.tasks))
    out.mkdir(parents=True, exist_ok=True)
    method_config = json.loads(json.dumps(dataclasses.asdict(cfg), default=list))
    state = RunState(out, spec, method_config)
    request = evaluation.EvalRequest(
        tasks=list(spec.tasks), limit=spec.limit, batch_size=spec.batch_size, seed=spec.eval_seed
    )
    model_spec = cfg.model

    # 1. train
    if state.done("train"):
        progress.phase(1, "train", "finished earlier, skipped")
    else:
        # every method keeps its checkpoints there (GEE: step-N, PCGU: epoch-N)
        checkpoints = out / training.CHECKPOINTS
        resume = checkpoints.is_dir() and any(checkpoints.iterdir())
        progress.phase(
            1, "train", f"{spec.method} adapter" + (" (resuming from checkpoint)" if resume else "")
        )
        started = time.perf_counter()
        summary = method_module(spec.method).train(cfg, out, resume=resume)
        state.finish("train", time.perf_counter() - started, steps=summary.get("steps"))

    # 2. base evaluation (cached across runs of the same model, tasks, limit, seed and task files)
    cache_path = pipeline.base_cache_path(model_spec, request)
    if state.done("base"):
        progress.phase(2, "base", "finished earlier, skipped")
    else:
        hit = cache_path.is_file()
        progress.phase(
            2, "base", f"evaluating {model_spec} on {','.join(spec.tasks)}" + (" (cached)" if hit else "")
        )
        started = time.perf_counter()
        base, hit = pipeline.base_results(model_spec, request)
        split_samples(base, out, "base")
        state.finish("base", time.perf_counter() - started, cache_hit=hit, cache_key=cache_path.stem)
    base_eval_s = json.loads((out / "results" / "base.json").read_text())["provenance"].get("wall_time_s")

    # 3. debiased evaluation: the same request, the adapter merged into the same base weights
    if state.done("debiased"):
        progress.phase(3, "debiased", "finished earlier, skipped")
    else:
        progress.phase(3, "debiased", f"evaluating {model_spec} + adapter", eta_s=base_eval_s)
        started = time.perf_counter()
        debiased = pipeline.evaluate_spec(model_spec, request, adapter=out / "adapter")
        split_samples(debiased, out, "debiased")
        state.finish("debiased", time.perf_counter() - started)

    # 4. compare: paired bootstrap over documents, each metric recomputed by its task's own aggregation
    if state.done("compare"):
        progress.phase(4, "compare", "finished earlier, skipped")
    else:
        progress.phase(4, "compare", f"paired bootstrap, {spec.iters} resamples per metric")
        started = time.perf_counter()
        comparison = compare_run(out, model_spec, spec)
        evaluation.write_json_atomic(out / "results" / "comparison.json", comparison)
        state.finish("compare", time.perf_counter() - started)

    # 5. report (always re-rendered: cheap, and picks up template changes)
    from reports import render

    progress.phase(5, "report", "rendering report.html")
    started = time.perf_counter()
    report = render.write_report([out], out / "report.html")
    state.finish("report", time.perf_counter() - started)
    total = sum(p["wall_s"] for p in state.data["phases"].values())
    progress.note(f"done: {report} (phases: {_phase_times(state)}; total {_duration(total)})")
    return report


def _phase_times(state: RunState) -> str:
    return ", ".join(f"{name} {_duration(p['wall_s'])}" for name, p in state.data["phases"].items())


def compare_run(out: Path, model_spec: str, spec: RunSpec) -> dict[str, Any]:
    from debias import compare, models

    base, debiased = load_with_samples(out, "base"), load_with_samples(out, "debiased")
    # loading a task (for its aggregation functions) runs its dataset loader, which needs the tokenizer
    manager = evaluation.task_manager(str(models.resolve(model_spec)), tasks=list(spec.tasks))
    comparisons = compare.compare(base, debiased, manager, iters=spec.iters, seed=spec.eval_seed)
    return {
        "iters": spec.iters,
        "level": 0.95,
        "tasks": {task: [dataclasses.asdict(c) for c in rows] for task, rows in comparisons.items()},
    }
