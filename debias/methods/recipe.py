"""The one shape every debiasing method has: a config dataclass and a ``Recipe`` (after torchtune).

    recipe = Recipe(cfg, out, resume)
    recipe.setup()             # model, data, optimizer; on resume: check config.json, load checkpoint
    summary = recipe.train()   # writes checkpoints/<unit>-N/ and metrics.jsonl; returns its summary
    recipe.candidates()        # the checkpoints model selection may keep, in training order

Model selection (score candidates on the selection split, keep one as ``adapter/``) is not part of a
recipe: ``debias.selection`` does it the same way for every method, so no method needs the evaluation
pipeline and every method's choice is recorded alike in ``selection.json``.

A config that wants selection declares ``select_task``, ``select_metric``, ``max_lms_drop`` and
``max_ppl_rise`` fields; ``select_task = ""`` keeps the last candidate.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from debias import evaluation, run_folder
from debias.models import ModelRef
from debias.run_folder import RunFolder


@dataclass(frozen=True)
class Candidate:
    """A checkpoint selection may keep: ``label`` is its epoch or step number, ``path`` an adapter folder."""

    label: str
    path: Path


class Recipe(ABC):
    method: ClassVar[str]
    #: what one candidate checkpoint is ("epoch", "step"): selection.json names its entries after it
    unit: ClassVar[str]
    #: --quick overrides (a few steps, small probes): exercises the whole pipeline in minutes
    quick: ClassVar[dict[str, Any]] = {}
    #: config fields a resumed run may change (PCGU: more epochs); any other change is refused
    resume_may_change: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: Any, out: Path | RunFolder, resume: bool = False) -> None:
        self.cfg = cfg
        self.folder = out if isinstance(out, RunFolder) else RunFolder(out)
        self.resume = resume
        # set by the orchestration when the config selects: candidate -> its selection-split metrics
        # (cached in selection.json), for recipes whose training depends on them; a method never
        # imports the evaluation pipeline itself
        self.scorer: Callable[[Candidate], dict[str, float]] | None = None

    def validate(self) -> None:  # noqa: B027  (most methods have no input file to check)
        """Read and check the method's input files (one-line errors) before the run folder is written."""

    @abstractmethod
    def setup(self) -> None:
        """Load model and data; on ``resume`` refuse other settings (``check_resume``) and restore state."""

    @abstractmethod
    def train(self) -> dict[str, Any]:
        """Train to the end (or from the restored state), write checkpoints; return the training summary."""

    @abstractmethod
    def candidates(self) -> list[Candidate]:
        """Finished checkpoints, in training order; read from the run folder, so it works after a restart."""

    def adapter_summary(self, adapter: Path) -> dict[str, Any]:
        """What the kept adapter is (sizes, units): merged into the training summary after selection."""
        return {"adapter_bytes": sum(p.stat().st_size for p in Path(adapter).rglob("*") if p.is_file())}

    def not_held_out(self) -> list[str]:
        """Benchmarks (or parts of them) the method's training data or stopping rule looked at."""
        return []

    @property
    def is_main_process(self) -> bool:
        """Multi-process recipes: only the main process selects and writes the run folder's files."""
        return True

    def wait_for_everyone(self) -> None:  # noqa: B027  (a no-op unless the recipe runs on several processes)
        """Multi-process recipes: a barrier after the main process's selection."""

    # ---------------------------------------------------------------- shared pieces
    @classmethod
    def may_change_on_resume(cls) -> tuple[str, ...]:
        """The config fields a resumed run may change: the method's own and the selection budgets."""
        return cls.resume_may_change + SELECTION_ONLY

    def check_resume(self) -> None:
        if self.resume:
            self.folder.check_resume(
                self.method, self.config_dict(), self.may_change_on_resume(), config_defaults(self.cfg)
            )

    def config_dict(self) -> dict[str, Any]:
        return run_folder.jsonable(dataclasses.asdict(self.cfg))

    def write_config(
        self, model: ModelRef, training: dict[str, Any] | None, device: str, processes: int = 1
    ) -> None:
        """``config.json``: the resolved config next to the adapter, so any run is reproducible from it."""
        self.folder.write_config(
            {
                "method": self.method,
                "config": self.config_dict(),
                "model": {"spec": model.spec, "fingerprint": model.fingerprint},
                "training": training,
                "processes": processes,
                "device": device,
                "libraries": evaluation.library_versions(),
            }
        )


def config_defaults(cfg: Any) -> dict[str, Any]:
    """What a run whose record predates a field ran with, recorded as ``config_dict`` records a config
    (after ``__post_init__``'s normalisation): the config class's defaults, except where a field's default
    changed after it was added (the class's ``BEFORE_THE_FIELD``: the value runs had before the field)."""
    cls = type(cfg)
    return run_folder.jsonable({**dataclasses.asdict(cls()), **getattr(cls, "BEFORE_THE_FIELD", {})})


#: the selection's perplexity guard: a lm-eval task over held-out neutral text, and the metric it keeps
PPL_TASK = "gee_neutral_ppl_select"
PPL_KEY = "neutral_word_perplexity"
#: the guard task's ``metadata.version``, recorded in selection.json: a score of another version was taken
#: on other text (1: annotation-stripped GSM8K; 2: gee_gsm8k_ppl's own form), so it is measured again
PPL_TASK_VERSION = 2
#: settings that only change which checkpoint is kept, never the training: a resumed run may change them
SELECTION_ONLY = ("max_ppl_rise",)


class SelectionSettings(NamedTuple):
    task: str  # "" keeps the last candidate
    metric: str
    max_lms_drop: float
    max_ppl_rise: float  # < 0: no perplexity guard

    @property
    def ppl_guard(self) -> bool:
        return bool(self.task) and self.max_ppl_rise >= 0

    def costs(self, base: Mapping[str, float], scores: Mapping[str, float]) -> tuple[float, float]:
        """(LMS drop, relative neutral-perplexity rise) of a candidate against the base; the rise is 0
        without the guard."""
        rise = scores[PPL_KEY] / base[PPL_KEY] - 1.0 if self.ppl_guard else 0.0
        return base["lms"] - scores["lms"], rise

    def overrun(self, base: Mapping[str, float], scores: Mapping[str, float]) -> float:
        """How far over its retention budgets a candidate is: max(drop / budget, rise / budget); <= 1 is
        within both (a zero budget counts any cost as far over)."""
        drop, rise = self.costs(base, scores)
        ratios = [_ratio(drop, self.max_lms_drop)]
        if self.ppl_guard:
            ratios.append(_ratio(rise, self.max_ppl_rise))
        return max(ratios)

    def budgets(self) -> str:
        text = f"LMS drop <= {self.max_lms_drop:g}"
        return text + (f" and neutral perplexity rise <= {self.max_ppl_rise:.0%}" if self.ppl_guard else "")


def _ratio(cost: float, budget: float) -> float:
    if cost <= 0:
        return 0.0
    return cost / budget if budget > 0 else float("inf")


def selection_settings(cfg: Any) -> SelectionSettings:
    """A config's selection settings; a config without the fields does no selection."""
    return SelectionSettings(
        getattr(cfg, "select_task", "") or "",
        getattr(cfg, "select_metric", "ss_gender"),
        float(getattr(cfg, "max_lms_drop", 1.0)),
        float(getattr(cfg, "max_ppl_rise", -1.0)),
    )
