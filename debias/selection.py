"""Model selection, the same for every method: score a recipe's candidate checkpoints on the selection
split, keep one as ``adapter/``, record every score and the reason in ``selection.json``.

The rule (the PCGU paper's, plus a perplexity guard): among candidates whose LMS on the selection split
is at most ``max_lms_drop`` below the base model's and whose word perplexity on held-out neutral text
(``gee_neutral_ppl_select``: GSM8K train / MMLU dev texts no anchor trains on) rose at most
``max_ppl_rise``, keep the one whose ``metric`` is nearest 50; if none qualifies, keep the one least over
budget and say so. The LMS of StereoSet's candidates alone missed what DPO cost Gemma-3-270M: select LMS
-0.88 within budget, GSM8K perplexity +12 %. The selection split (``gee_stereoset_select``) is never
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
from debias.methods.recipe import (
    PPL_KEY,
    PPL_TASK,
    PPL_TASK_VERSION,
    Candidate,
    Recipe,
    SelectionSettings,
    selection_settings,
)

PPL_GUARD_NOTE = (
    "gee_gsm8k_ppl shares the distribution of the perplexity guard's text (checkpoint selection reads "
    "held-out GSM8K train solutions; the task scores test solutions)"
)


def choose(
    base: Mapping[str, float],
    scored: Mapping[Any, Mapping[str, float]],
    settings: SelectionSettings,
    unit: str = "epoch",
) -> tuple[Any, str]:
    """(label, why): the candidate with |metric − 50| smallest among those within the retention budgets.

    When no candidate stays within them the one least over budget (``SelectionSettings.overrun``) is
    kept, and ``why`` says so: the run still produces an adapter, and the caller records the warning next
    to it.
    """
    if not scored:
        raise ValueError("no checkpoint to choose from")
    metric = settings.metric
    overrun = {label: settings.overrun(base, m) for label, m in scored.items()}
    eligible = [label for label in scored if overrun[label] <= 1.0]

    def cost(label: Any) -> str:
        drop, rise = settings.costs(base, scored[label])
        return f"LMS drop {drop:.2f}" + (f", perplexity rise {rise:.1%}" if settings.ppl_guard else "")

    if eligible:
        best = min(eligible, key=lambda label: abs(scored[label][metric] - 50.0))
        return best, (
            f"{unit} {best}: |{metric} - 50| = {abs(scored[best][metric] - 50.0):.2f}, the smallest among "
            f"{len(eligible)} of {len(scored)} checkpoints with {settings.budgets()} (this one {cost(best)})"
        )
    best = min(scored, key=lambda label: overrun[label])
    return best, (
        f"no checkpoint kept {settings.budgets()}; kept {unit} {best}, the least over budget ({cost(best)})"
    )


def selection_metrics(results: dict[str, Any], task: str, metric: str) -> dict[str, float]:
    """The selection split's StereoSet scores, and the guard's neutral perplexity when ``results`` has it."""
    summary = evaluation.summary(results)
    metrics: dict[str, float] = {}
    if task in summary:
        values = summary[task]
        missing = [name for name in (metric, "lms") if name not in values]
        if missing:
            raise ValueError(
                f"selection task {task!r} reports no {', '.join(missing)} (a StereoSet task does)"
            )
        metrics.update(
            {name: float(values[name]) for name in sorted(values) if name.startswith(("ss", "lms", "icat"))}
        )
    if PPL_TASK in summary:
        metrics[PPL_KEY] = float(summary[PPL_TASK]["word_perplexity"])
    return metrics


def score(model: models.ModelRef, candidate: Candidate, request: evaluation.EvalRequest) -> dict[str, Any]:
    """The base model with ``candidate`` merged, evaluated on the selection request."""
    base, tokenizer = models.load(str(model.path))
    merged = pipeline.with_adapter(base, candidate.path, model.weights_sha256)
    return evaluation.evaluate(merged, tokenizer, request, tokenizer_path=str(model.path))


def selection_header(task: str | None, metric: str) -> dict[str, Any]:
    """What every write of ``selection.json`` starts with: which split and metric the scores are on, and
    which text the perplexity guard read (``Scorer.scored`` drops perplexities of another version), so
    the two writers cannot drift apart."""
    return {"task": task, "metric": metric, "ppl_guard_version": PPL_TASK_VERSION}


class Scorer:
    """Scores one candidate on the selection split (and the perplexity guard's text), once: what a recipe
    calls during training.

    The orchestration hands it to a recipe (``recipe.scorer``) whose training needs the selection
    score as it goes (DPO's overshoot guard stops once SS has crossed 50); the scores land in
    ``selection.json``, where the select phase finds them and scores only what is missing (a run scored
    before the perplexity guard existed gains only the perplexity).
    """

    def __init__(self, recipe: Recipe, model: models.ModelRef) -> None:
        self.recipe, self.model = recipe, model
        self.settings = selection_settings(recipe.cfg)
        self.task, self.metric = self.settings.task, self.settings.metric
        self._base: dict[str, float] | None = None

    def _missing(self, metrics: Mapping[str, float]) -> list[str]:
        """The tasks whose metrics ``metrics`` lacks."""
        wanted = [(self.task, self.metric)] + ([(PPL_TASK, PPL_KEY)] if self.settings.ppl_guard else [])
        return [task for task, key in wanted if key not in metrics]

    @property
    def base(self) -> dict[str, float]:
        if self._base is None:
            self._base = {}
            # one task per request: the base cache holds each part on its own key, so switching the guard
            # on or off reuses the other part
            for task in self._missing({}):
                request = evaluation.EvalRequest(tasks=[task], seed=getattr(self.recipe.cfg, "seed", 0))
                results, _ = pipeline.base_results(self.model.spec, request)
                self._base.update(selection_metrics(results, self.task, self.metric))
        return self._base

    def scored(self) -> dict[str, dict[str, float]]:
        """{label: metrics} already in selection.json (for this task and metric)."""
        folder = self.recipe.folder
        record = run_folder.read_json(folder.selection) if folder.selection.is_file() else {}
        if (record.get("task"), record.get("metric")) != (self.task, self.metric):
            return {}
        scores = dict(record.get(f"{self.recipe.unit}s", {}))
        if record.get("ppl_guard_version", 1) != PPL_TASK_VERSION:  # the guard read other text then
            scores = {label: {k: v for k, v in m.items() if k != PPL_KEY} for label, m in scores.items()}
        return scores

    def __call__(self, candidate: Candidate) -> dict[str, float]:
        scores = self.scored()
        known = dict(scores.get(candidate.label, {}))
        missing = self._missing(known)
        if missing:  # one merge of the adapter, one evaluation of every missing part
            request = evaluation.EvalRequest(tasks=missing, seed=getattr(self.recipe.cfg, "seed", 0))
            known.update(selection_metrics(score(self.model, candidate, request), self.task, self.metric))
            scores[candidate.label] = known
            record = {**selection_header(self.task, self.metric), "base": self.base}
            write_json_atomic(self.recipe.folder.selection, {**record, f"{self.recipe.unit}s": scores})
        return known


def select(recipe: Recipe, model: models.ModelRef) -> dict[str, Any]:
    """Score (or reuse the scores of) every candidate, keep one as ``adapter/``; returns the summary.

    The training summary in ``config.json`` gains the choice, the reason, the adapter's size and what
    is no longer held out.
    """
    folder = recipe.folder
    settings = selection_settings(recipe.cfg)
    task, metric = settings.task, settings.metric
    candidates = recipe.candidates()
    if not candidates:
        raise ValueError(f"{folder.path}: training left no checkpoint to keep")
    unit, key = recipe.unit, f"{recipe.unit}s"
    selection: dict[str, Any] = {**selection_header(task, metric), key: {}}
    if task:
        # the Scorer reuses what training already scored (DPO's guard) and saves each new score
        scorer = Scorer(recipe, model)
        selection[key] = {candidate.label: scorer(candidate) for candidate in candidates}
        selection["base"] = scorer.base
        chosen, why = choose(scorer.base, selection[key], settings, unit)
    else:
        chosen, why = candidates[-1].label, f"no selection task: the last {unit}"
    selection.update(
        {f"chosen_{unit}": _label_value(chosen), "why": why, "max_lms_drop": settings.max_lms_drop}
    )
    if settings.ppl_guard:
        selection["max_ppl_rise"] = settings.max_ppl_rise
    write_json_atomic(folder.selection, selection)
    source = next(c.path for c in candidates if c.label == chosen)
    with atomic_dir(folder.adapter) as tmp:
        for item in pipeline.adapter_files(source):  # a trainer's checkpoint also holds optimizer state
            shutil.copy2(item, tmp / item.name)
    record = run_folder.read_json(folder.config)
    summary = dict(record.get("training") or {})
    summary.update({f"chosen_{unit}": _label_value(chosen), "selection": why})
    summary.update(recipe.adapter_summary(folder.adapter))
    summary["not_held_out"] = recipe.not_held_out()
    if task:
        summary["not_held_out"].append(
            f"{task} and the tasks that contain its documents (checkpoint selection; the rest is held out)"
        )
    if settings.ppl_guard:
        summary["not_held_out"].append(PPL_GUARD_NOTE)
    # the config as selected: a finished run selected again under other budgets records the new ones
    folder.write_config({**record, "config": recipe.config_dict(), "training": summary})
    return summary


def _label_value(label: str) -> int | str:
    """Epoch and step labels are numbers: recorded as such (``chosen_epoch: 2``)."""
    return int(label) if label.isdigit() else label
