"""Model selection, the same for every method: score a recipe's candidate checkpoints on the selection
split, keep one as ``adapter/``, record every score and the reason in ``selection.json``.

The rule (the PCGU paper's): among candidates whose LMS on the selection split is at most
``max_lms_drop`` below the base model's, keep the one whose ``metric`` is nearest 50; if none qualifies,
keep the one that lost the least LMS and say so. The selection split (``gee_stereoset_select``) is never
reported: the report half and the other benchmarks stay held out.

Scores are written after every candidate (``Scorer``), so an interrupted selection resumes where it
stopped and a recipe that scored checkpoints while training (DPO's guard) is not scored twice.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

from debias import evaluation, models, pipeline, run_folder
from debias.atomic import atomic_dir, write_json_atomic
from debias.methods.recipe import Candidate, Recipe, selection_settings


def choose(
    base: Mapping[str, float],
    scored: Mapping[Any, Mapping[str, float]],
    metric: str,
    max_lms_drop: float,
    unit: str = "epoch",
) -> tuple[Any, str]:
    """(label, why): the candidate with |metric − 50| smallest among those within the LMS budget.

    When no candidate stays within the budget the one that lost the least LMS is kept, and ``why`` says
    so: the run still produces an adapter, and the caller records the warning next to it.
    """
    if not scored:
        raise ValueError("no checkpoint to choose from")
    drops = {label: base["lms"] - m["lms"] for label, m in scored.items()}
    eligible = [label for label in scored if drops[label] <= max_lms_drop]
    if eligible:
        best = min(eligible, key=lambda label: abs(scored[label][metric] - 50.0))
        return best, (
            f"{unit} {best}: |{metric} - 50| = {abs(scored[best][metric] - 50.0):.2f}, the smallest among "
            f"{len(eligible)} of {len(scored)} checkpoints with LMS drop <= {max_lms_drop:g} "
            f"(this one {drops[best]:.2f})"
        )
    best = min(scored, key=lambda label: drops[label])
    return best, (
        f"no checkpoint kept the LMS drop <= {max_lms_drop:g}; kept {unit} {best}, the smallest drop "
        f"({drops[best]:.2f})"
    )


def selection_metrics(results: dict[str, Any], task: str, metric: str) -> dict[str, float]:
    values = evaluation.summary(results).get(task, {})
    missing = [name for name in (metric, "lms") if name not in values]
    if missing:
        raise ValueError(f"selection task {task!r} reports no {', '.join(missing)} (a StereoSet task does)")
    return {name: float(values[name]) for name in sorted(values) if name.startswith(("ss", "lms", "icat"))}


def request_for(recipe: Recipe) -> evaluation.EvalRequest:
    task, _, _ = selection_settings(recipe.cfg)
    return evaluation.EvalRequest(tasks=[task], seed=getattr(recipe.cfg, "seed", 0))


def score(model: models.ModelRef, candidate: Candidate, request: evaluation.EvalRequest) -> dict[str, Any]:
    """The base model with ``candidate`` merged, evaluated on the selection request."""
    base, tokenizer = models.load(str(model.path))
    merged = pipeline.with_adapter(base, candidate.path, model.weights_sha256)
    return evaluation.evaluate(merged, tokenizer, request, tokenizer_path=str(model.path))


class Scorer:
    """Scores one candidate on the selection split, once: what a recipe calls during training.

    The orchestration hands it to a recipe (``recipe.scorer``) whose training needs the selection
    score as it goes (DPO's overshoot guard stops once SS has crossed 50); the scores land in
    ``selection.json``, where the select phase finds them and scores only what is missing.
    """

    def __init__(self, recipe: Recipe, model: models.ModelRef) -> None:
        self.recipe, self.model = recipe, model
        self.task, self.metric, _ = selection_settings(recipe.cfg)
        self._base: dict[str, float] | None = None

    @property
    def base(self) -> dict[str, float]:
        if self._base is None:
            results, _ = pipeline.base_results(self.model.spec, request_for(self.recipe))
            self._base = selection_metrics(results, self.task, self.metric)
        return self._base

    def scored(self) -> dict[str, dict[str, float]]:
        """{label: metrics} already in selection.json (for this task and metric)."""
        folder = self.recipe.folder
        record = run_folder.read_json(folder.selection) if folder.selection.is_file() else {}
        if (record.get("task"), record.get("metric")) != (self.task, self.metric):
            return {}
        return dict(record.get(f"{self.recipe.unit}s", {}))

    def __call__(self, candidate: Candidate) -> dict[str, float]:
        scores = self.scored()
        if candidate.label not in scores:
            scores[candidate.label] = selection_metrics(
                score(self.model, candidate, request_for(self.recipe)), self.task, self.metric
            )
            record = {"task": self.task, "metric": self.metric, "base": self.base}
            write_json_atomic(self.recipe.folder.selection, {**record, f"{self.recipe.unit}s": scores})
        return scores[candidate.label]


def select(recipe: Recipe, model: models.ModelRef) -> dict[str, Any]:
    """Score (or reuse the scores of) every candidate, keep one as ``adapter/``; returns the summary.

    The training summary in ``config.json`` gains the choice, the reason, the adapter's size and what
    is no longer held out.
    """
    folder = recipe.folder
    task, metric, max_lms_drop = selection_settings(recipe.cfg)
    candidates = recipe.candidates()
    if not candidates:
        raise ValueError(f"{folder.path}: training left no checkpoint to keep")
    unit, key = recipe.unit, f"{recipe.unit}s"
    selection: dict[str, Any] = {"task": task, "metric": metric, key: {}}
    if task:
        # the Scorer reuses what training already scored (DPO's guard) and saves each new score
        scorer = Scorer(recipe, model)
        selection[key] = {candidate.label: scorer(candidate) for candidate in candidates}
        selection["base"] = scorer.base
        chosen, why = choose(scorer.base, selection[key], metric, max_lms_drop, unit)
    else:
        chosen, why = candidates[-1].label, f"no selection task: the last {unit}"
    selection.update({f"chosen_{unit}": _label_value(chosen), "why": why, "max_lms_drop": max_lms_drop})
    write_json_atomic(folder.selection, selection)
    source = next(c.path for c in candidates if c.label == chosen)
    with atomic_dir(folder.adapter) as tmp:
        for item in pipeline.adapter_files(source):  # a trainer's checkpoint also holds optimizer state
            shutil.copy2(item, tmp / item.name)
    record = run_folder.read_json(folder.config)
    summary = dict(record.get("training") or {})
    summary.update({f"chosen_{unit}": _label_value(chosen), "selection": why})
    summary.update(recipe.adapter_summary(folder.adapter))
    summary["not_held_out"] = recipe.not_held_out() + (
        [f"{task} and the tasks that contain its documents (checkpoint selection; the rest is held out)"]
        if task
        else []
    )
    folder.write_config({**record, "training": summary})
    return summary


def _label_value(label: str) -> int | str:
    """Epoch and step labels are numbers: recorded as such (``chosen_epoch: 2``)."""
    return int(label) if label.isdigit() else label
