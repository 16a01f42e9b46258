"""The main job: train an adapter, select it, evaluate base and debiased on one suite, compare, report.

A run folder (``debias.run_folder``) is a sequence of phases, each finished by an atomic write and
recorded in ``run.json``:

    train     -> checkpoints/, metrics.jsonl, config.json   (the method's Recipe; resumable)
    select    -> selection.json, adapter/                    (debias.selection, the same for every method)
    base      -> results/base.json, samples/base/<task>.json   (from the cache when the key matches)
    debiased  -> results/debiased.json, samples/debiased/<task>.json
    compare   -> results/comparison.json                       (paired bootstrap CIs per metric)
    report    -> report.html                                   (the renderer the caller passes in)

Running the same command again skips the finished phases and resumes the interrupted one, so Ctrl-C at
any point leaves a folder that one more invocation completes. A folder started with other settings is
refused rather than silently mixed.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from debias import evaluation, launch, models, pipeline, probe, run_folder, selection
from debias.atomic import write_json_atomic
from debias.methods import recipe_class
from debias.methods.recipe import PPL_TASK, SELECTION_ONLY, Recipe, config_defaults, selection_settings
from debias.run_folder import RunFolder, RunState

PHASES = ("train", "select", "base", "debiased", "compare", "probe", "report")
# held out whatever the method selects on: StereoSet's report half (selection reads the select half),
# CrowS-Pairs, Winogender, and the cheap retention checks (what did it cost)
DEFAULT_SUITE = "gee_heldout"
# --quick: the same suite on QUICK_LIMIT documents per benchmark (a group's leaf tasks share them:
# MMLU-lite's 57 subjects get 1 each), a short training run and fewer bootstrap resamples; a smoke test
# of the whole pipeline in about two minutes, not a measurement (100 documents took 5 min: issue 16).
QUICK_LIMIT = 16
QUICK_ITERS = 200

Renderer = Callable[[list[Path], Path], Path]


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


def make_recipe(method: str, cfg: Any, out: Path | RunFolder, resume: bool = False) -> Recipe:
    return recipe_class(method)(cfg, out, resume)


def train_adapter(
    method: str, cfg: Any, out: Path | RunFolder, resume: bool = False, stop_after: int | None = None
) -> dict[str, Any]:
    """Train and select: what ``cli train`` runs, and phases 1-2 of the main job. Returns the summary."""
    with run_folder.exclusive(Path(out), f"train --method {method}"):
        recipe = train_phase(method, cfg, out, resume, stop_after)
        return select_phase(recipe)


def train_phase(
    method: str, cfg: Any, out: Path | RunFolder, resume: bool = False, stop_after: int | None = None
) -> Recipe:
    settings = selection_settings(cfg)
    task = settings.task
    if task:  # fail before training (minutes) rather than after it
        evaluation.check_task_names([task] + ([PPL_TASK] if settings.ppl_guard else []))
    recipe = make_recipe(method, cfg, out, resume)
    if task:  # a recipe that selects as it trains (DPO's overshoot guard) scores through this
        recipe.scorer = selection.Scorer(recipe, models.reference(cfg.model))
    recipe.setup()
    if stop_after is not None:
        recipe.train(stop_after=stop_after)  # type: ignore[call-arg]  (GEE's interruption hook)
    else:
        recipe.train()
    return recipe


def select_phase(recipe: Recipe) -> dict[str, Any]:
    """Selection runs on the main process only (multi-process training); the others wait for it."""
    summary: dict[str, Any] = {}
    if recipe.is_main_process:
        summary = selection.select(recipe, models.reference(recipe.cfg.model))
    recipe.wait_for_everyone()
    if not summary:
        summary = run_folder.read_json(recipe.folder.config).get("training") or {}
    return summary


def train_and_eval(
    spec: RunSpec,
    cfg: Any,
    out: Path,
    progress: Progress | None = None,
    render: Renderer | None = None,
) -> Path:
    """Run (or resume) every phase in ``out``; returns the report's path (``render`` writes it)."""
    if launch.world_size() > 1:
        raise ValueError(
            "train-and-eval runs in one process; under accelerate launch run `cli.py train` "
            "(data-parallel training) or `cli.py eval` (data-parallel evaluation)"
        )
    with run_folder.exclusive(out, f"train-and-eval --method {spec.method}"):
        return _train_and_eval(spec, cfg, out, progress, render)


def _train_and_eval(
    spec: RunSpec, cfg: Any, out: Path, progress: Progress | None, render: Renderer | None
) -> Path:
    progress = progress or Progress()
    evaluation.check_task_names(list(spec.tasks))
    make_recipe(spec.method, cfg, out).validate()  # bad input files: one line, nothing written
    folder = RunFolder(out)
    folder.path.mkdir(parents=True, exist_ok=True)
    may_change = recipe_class(spec.method).may_change_on_resume()
    state = RunState(
        folder,
        dataclasses.asdict(spec),
        run_folder.jsonable(dataclasses.asdict(cfg)),
        may_change,
        config_defaults(cfg),
    )
    reselect = state.done("select") and bool(set(state.changed) & set(SELECTION_ONLY))
    request = evaluation.EvalRequest(
        tasks=list(spec.tasks),
        limit=spec.limit,
        batch_size=spec.batch_size,
        seed=spec.eval_seed,
        limit_scope="benchmark" if spec.quick else "task",
    )
    model_spec = cfg.model

    # 1. train (the method's recipe; its checkpoints make it resumable)
    if state.done("train"):
        progress.phase(1, "train", "finished earlier, skipped")
    else:
        resume = folder.has_checkpoints()
        progress.phase(
            1, "train", f"{spec.method} adapter" + (" (resuming from checkpoint)" if resume else "")
        )
        started = time.perf_counter()
        train_phase(spec.method, cfg, folder, resume=resume)
        state.finish("train", time.perf_counter() - started, steps=_steps(folder))

    # 2. select: score the candidates on the selection split, keep one as adapter/. A finished run whose
    # selection budgets changed is selected again (only missing scores are computed); the evaluations
    # after it are redone only when the kept checkpoint changed.
    previous = state.data["phases"].pop("select") if reselect else None
    if state.done("select"):
        progress.phase(2, "select", "finished earlier, skipped")
    else:
        task = selection_settings(cfg).task
        what = f"scoring checkpoints on {task}" if task else "keeping the last checkpoint"
        progress.phase(2, "select", what)
        started = time.perf_counter()
        summary = select_phase(make_recipe(spec.method, cfg, folder, resume=True))
        chosen = {k: v for k, v in summary.items() if k.startswith("chosen_")}
        state.finish("select", time.perf_counter() - started, **chosen)
        if previous is not None:
            kept = {k: v for k, v in previous.items() if k.startswith("chosen_")}
            same = kept == chosen
            progress.note(
                f"selected again ({', '.join(state.changed)} changed): "
                + (
                    "the same checkpoint, evaluations kept"
                    if same
                    else f"{kept} -> {chosen}, evaluations redone"
                )
            )
            if not same:
                for phase in ("debiased", "compare", "probe", "report"):
                    state.data["phases"].pop(phase, None)
                state.save()

    # 3. base evaluation (cached across runs of the same model, tasks, limit, seed and task files)
    cache_path = pipeline.base_cache_path(model_spec, request)
    if state.done("base"):
        progress.phase(3, "base", "finished earlier, skipped")
    else:
        hit = cache_path.is_file()
        progress.phase(
            3, "base", f"evaluating {model_spec} on {','.join(spec.tasks)}" + (" (cached)" if hit else "")
        )
        started = time.perf_counter()
        base, hit = pipeline.base_results(model_spec, request)
        folder.write_results(base, "base")
        state.finish("base", time.perf_counter() - started, cache_hit=hit, cache_key=cache_path.stem)
    base_eval_s = folder.read_results("base")["provenance"].get("wall_time_s")

    # 4. debiased evaluation: the same request, the adapter merged into the same base weights
    if state.done("debiased"):
        progress.phase(4, "debiased", "finished earlier, skipped")
    else:
        progress.phase(4, "debiased", f"evaluating {model_spec} + adapter", eta_s=base_eval_s)
        started = time.perf_counter()
        debiased = pipeline.evaluate_spec(model_spec, request, adapter=folder.adapter)
        folder.write_results(debiased, "debiased")
        state.finish("debiased", time.perf_counter() - started)

    # 5. compare: paired bootstrap over documents, each metric recomputed by its task's own aggregation
    if state.done("compare"):
        progress.phase(5, "compare", "finished earlier, skipped")
    else:
        progress.phase(5, "compare", f"paired bootstrap, {spec.iters} resamples per metric")
        started = time.perf_counter()
        comparison = compare_run(folder, model_spec, spec)
        write_json_atomic(folder.results_file("comparison"), comparison)
        state.finish("compare", time.perf_counter() - started)

    # 6. probe: what base and debiased write for the project's bias-probing prompts
    if state.done("probe"):
        progress.phase(6, "probe", "finished earlier, skipped")
    else:
        # a subset run is a smoke test: a few prompts show the pipeline works
        small = spec.quick or spec.limit is not None
        prompts = probe.QUICK_PROMPTS if small else probe.DEFAULT_PROMPTS
        progress.phase(6, "probe", f"generating for {len(prompts)} prompts, base and adapter")
        started = time.perf_counter()
        tokens = probe.QUICK_MAX_NEW_TOKENS if small else probe.DEFAULT_MAX_NEW_TOKENS
        generate_examples(model_spec, folder, prompts, tokens)
        state.finish("probe", time.perf_counter() - started)

    # 7. report (always re-rendered: cheap, and picks up template changes)
    if render is None:
        progress.phase(7, "report", "no renderer given, skipped")
        return folder.report
    progress.phase(7, "report", "rendering report.html")
    started = time.perf_counter()
    report = render([folder.path], folder.report)
    state.finish("report", time.perf_counter() - started)
    total = sum(p["wall_s"] for p in state.data["phases"].values())
    progress.note(f"done: {report} (phases: {_phase_times(state)}; total {_duration(total)})")
    return report


def generate_examples(model_spec: str, folder: RunFolder, prompts, max_new_tokens: int) -> None:
    generations = probe.Probe(model_spec, [folder.adapter], max_new_tokens=max_new_tokens).run(prompts)
    probe.write_jsonl(generations, folder.generations)


def _steps(folder: RunFolder) -> Any:
    record = run_folder.read_json(folder.config) if folder.config.is_file() else {}
    return (record.get("training") or {}).get("steps")


def _phase_times(state: RunState) -> str:
    return ", ".join(f"{name} {_duration(p['wall_s'])}" for name, p in state.data["phases"].items())


def compare_run(folder: RunFolder, model_spec: str, spec: RunSpec) -> dict[str, Any]:
    from debias import compare

    base = folder.read_results("base", with_samples=True)
    debiased = folder.read_results("debiased", with_samples=True)
    # loading a task (for its aggregation functions) runs its dataset loader, which needs the tokenizer
    manager = evaluation.task_manager(str(models.resolve(model_spec)), tasks=list(spec.tasks))
    comparisons = compare.compare(base, debiased, manager, iters=spec.iters, seed=spec.eval_seed)
    return {
        "iters": spec.iters,
        "level": 0.95,
        "tasks": {task: [dataclasses.asdict(c) for c in rows] for task, rows in comparisons.items()},
    }
