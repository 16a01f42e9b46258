"""DPO on chosen/rejected bias pairs, trained as a LoRA adapter, with an overshoot guard.

Training is TRL's ``DPOTrainer`` (sigmoid DPO; ``sft_weight`` adds TRL's "sft" NLL term on the chosen
side as a retention anchor; ``length_normalize`` uses its per-token "sigmoid_norm"); the reference is the
same peft model with the adapter disabled (no second copy of the weights), its log-probs computed in each
step for that step's pairs only: precomputing them for the whole pair set (TRL's option) would have cost
Gemma-3-270M about 18 minutes before the first step (70 batches at ~15.5 s, timed over the first two),
for 4,480 pairs of which a 120-step run sees 1,920 and a guarded one far fewer, and again on every
resume. What TRL does not do, the recipe adds around it, each through the
Trainer's own hooks:

- the project's ``metrics.jsonl`` (a callback on every log: loss, reward accuracy and margin, chosen
  and rejected rewards, lr, tokens/s) and, at every check, the held-out pairs' reward accuracy overall
  and per bias type (TRL only logs batch means, so per-type accuracy is measured on the held-out split);
- the overshoot guard: every ``check_every`` steps the Trainer writes a resumable checkpoint
  (``checkpoints/checkpoint-N``: adapter, optimizer, scheduler, RNG, data position) and the recipe
  scores it on the selection split through ``self.scorer`` (given by the orchestration, cached in
  ``selection.json``); training stops once SS has crossed 50 by more than ``overshoot_margin``; the
  shared select phase then keeps the checkpoint nearest 50 within the LMS budget;
- exact resume: the Trainer's own ``resume_from_checkpoint`` from the latest *complete* checkpoint,
  after the run folder's config check; a run the guard already stopped is not trained further. The
  Trainer writes a checkpoint's files in place, one after another, so a kill mid-save leaves a folder
  that looks like a checkpoint: a marker (``COMPLETE``, written atomically once ``on_save`` reports the
  checkpoint whole) is what makes one count, and a folder without it is removed on resume;
- the non-finite guard (``training.NonFiniteGuard``, as for every method): a step whose loss or
  gradient is NaN/inf has its gradients dropped before the optimizer sees them (AdamW leaves a
  parameter without a gradient untouched, moments included), is logged ``skipped: true``, and
  ``MAX_BAD_STEPS`` in a row stop training with ``TrainingDiverged``; no adapter holding NaN/inf is
  written (``training.check_finite`` before the last save). The guard's count of bad steps in a row
  restarts on resume (the Trainer's checkpoint has no slot for it): at worst a few more skips.
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import TrainerCallback

from debias import anchor as anchor_text
from debias import memory, models, run_folder, training
from debias import tie as tie_term
from debias.data import preference_pairs as pair_data
from debias.methods.recipe import PPL_KEY, Candidate, Recipe, selection_settings
from debias.models import DEFAULT_MODEL


@dataclass
class DpoConfig:
    """Every field is a flag of ``cli.py train --method dpo`` (underscores → dashes)."""

    #: runs recorded before ``lr_ref_grad_norm`` existed trained without the calibration (0), which was
    #: also its default until 2026-12-06 (``recipe.config_defaults``)
    BEFORE_THE_FIELD: ClassVar[dict[str, Any]] = {"lr_ref_grad_norm": 0.0}

    model: str = DEFAULT_MODEL
    # the project's pairs by name (builtin: debias/data/bias_pairs.py; varied; roles; several joined with
    # "+") or a JSONL/CSV/parquet file
    pairs: str = "builtin"
    heldout_pairs: str = "builtin"  # pairs for held-out reward accuracy ("builtin": the held-out frames)
    heldout_max_pairs: int | None = 512  # a fixed, seeded subset of those, scored at every check
    max_pairs: int | None = None  # train on a fixed, seeded subset (None: every pair)
    beta: float = 0.1
    sft_weight: float = 0.0  # weight of an NLL term on the chosen continuation (retention anchor)
    # weight of KL(base ‖ tuned) on neutral text (debias.anchor, as equalisation's); 0 switches it off.
    # 0.3, 120 steps, checks every 20, a 40-step warm-up, the rate calibration at 0.25, rate 1e-3 and LoRA
    # on the MLP projections only: the leaderboard's default row, dpo-mlp-lr1e-3-every20 (README, "The
    # method leaderboard": within both budgets on both models' select halves, nearest 50 on SmolLM2's)
    anchor_weight: float = 0.3
    anchor_text: str = anchor_text.BUILTIN
    anchor_batch_size: int = 4
    anchor_max_tokens: int = 64
    anchor_crop: str = "head"  # "head": each text's first anchor_max_tokens; "chunks": all of it
    length_normalize: bool = False  # per-token log-ratios (TRL's sigmoid_norm) instead of sums
    # pairs to be made equally likely rather than preferred (debias.tie: equalisation's symmetric KL on
    # their log-ratio, added to the loss with tie_weight; tie_batch_size pairs a step), named as ``pairs``
    # ("roles": the role -> pronoun pairs, where the unbiased answer is either pronoun, not the other
    # one); "" switches it off. tie_weight is relative: the term is scaled so that its gradient norm at
    # the adapter's initialisation is tie_weight x DPO's (both measured on seeded batches before step 1).
    # A raw weight does not carry across models or pair sets: on Gemma-3-270M the role pairs' tie gradient
    # at raw weight 0.1 was ~12x DPO's (7.6 vs 0.61), took over the clipped update and raised the
    # anchor's KL 40-fold by step 20 (README, "Tie pairs")
    tie_pairs: str = ""
    tie_weight: float = 0.25
    tie_batch_size: int = 4
    lr: float = 1e-3
    # > 0: ``lr`` is the rate for a model whose DPO gradient norm at the adapter's initialisation is this
    # (measured on a seeded sample of training batches before step 1); a model whose pair log-ratios
    # respond more strongly (a larger norm) trains at lr x this / its norm, never above lr. 0: off
    lr_ref_grad_norm: float = 0.25
    batch_size: int = 16
    steps: int = 120
    warmup_steps: int = 40
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = training.MLP_LORA_TARGETS
    check_every: int = 20  # a checkpoint (and a selection-split score) every this many steps
    # overshoot guard and selection (debias.selection): keep |select_metric - 50| smallest within the
    # LMS budget; stop once select_metric has crossed 50 by more than overshoot_margin
    select_task: str = "gee_stereoset_select"
    select_metric: str = "ss"
    max_lms_drop: float = 1.0
    # ... and whose word perplexity on held-out neutral text rose at most this much (0.03: 3 %; < 0: off)
    max_ppl_rise: float = 0.03
    overshoot_margin: float = 1.0
    # ... and once a check is this many times over its retention budgets (LMS drop, perplexity rise): a
    # later, further-trained checkpoint would not be kept either (0: never)
    stop_over_budget: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        for name in ("batch_size", "steps", "check_every", "tie_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.beta <= 0 or self.lr <= 0:
            raise ValueError("beta and lr must be positive")
        non_negative = (
            "sft_weight", "anchor_weight", "overshoot_margin", "stop_over_budget", "lr_ref_grad_norm",
            "tie_weight",
        )  # fmt: skip
        if negative := [name for name in non_negative if getattr(self, name) < 0]:
            raise ValueError(f"{', '.join(negative)} must be >= 0")
        anchor_text.check_crop(self.anchor_crop)


# --------------------------------------------------------------------------------------------------
# the math, for held-out scoring and tests (training uses TRL's implementation of the same loss)


def dpo_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Per-pair sigmoid DPO loss ``−log σ(β·((c − c_ref) − (r − r_ref)))`` from sequence log-probs."""
    return -torch.nn.functional.logsigmoid(beta * ((chosen - ref_chosen) - (rejected - ref_rejected)))


def reward_stats(
    chosen: Sequence[float],
    rejected: Sequence[float],
    ref_chosen: Sequence[float],
    ref_rejected: Sequence[float],
    beta: float,
    bias_types: Sequence[str],
) -> dict[str, Any]:
    """Implicit rewards ``β·(log π − log π_ref)``: accuracy (chosen > rejected), margin, per bias type."""
    rows = []
    for c, r, rc, rr, kind in zip(chosen, rejected, ref_chosen, ref_rejected, bias_types, strict=True):
        rc_reward, rr_reward = beta * (c - rc), beta * (r - rr)
        rows.append((kind, rc_reward, rr_reward))
    if not rows:
        raise ValueError("no pairs to score")
    by_type: dict[str, list[bool]] = defaultdict(list)
    for kind, a, b in rows:
        by_type[kind].append(a > b)
    return {
        "reward_accuracy": sum(a > b for _, a, b in rows) / len(rows),
        "reward_margin": sum(a - b for _, a, b in rows) / len(rows),
        "chosen_reward": sum(a for _, a, _ in rows) / len(rows),
        "rejected_reward": sum(b for _, _, b in rows) / len(rows),
        "accuracy_by_bias_type": {k: sum(v) / len(v) for k, v in sorted(by_type.items())},
        "pairs": len(rows),
    }


def crossed(base: float, value: float, margin: float) -> bool:
    """Whether ``value`` lies on the other side of 50 from ``base`` by more than ``margin``."""
    return (base - 50.0) * (value - 50.0) < 0 and abs(value - 50.0) > margin


@torch.no_grad()
def completion_logps(
    model, tokenizer, prompts: Sequence[str], completions: Sequence[str], batch_size: int = 32
):
    """Summed log p(completion + EOS | prompt) per pair, tokenized as TRL does (prompt, then completion)."""
    out: list[float] = []
    device = next(model.parameters()).device
    for i in range(0, len(prompts), batch_size):
        rows, spans = [], []
        for prompt, completion in zip(
            prompts[i : i + batch_size], completions[i : i + batch_size], strict=True
        ):
            p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            rows.append(p + c)
            spans.append((len(p), len(p) + len(c)))
        ids, attn, _ = training.pad(rows, tokenizer.pad_token_id)
        ids, attn = ids.to(device), attn.to(device)
        logits = model(input_ids=ids, attention_mask=attn).logits
        out.extend(training.span_logprobs(logits, ids, spans).tolist())
    return out


# --------------------------------------------------------------------------------------------------


class DpoRecipe(Recipe):
    method = "dpo"
    unit = "step"
    # the over-budget stop may be set on a run that predates it: it only ever stops training sooner
    resume_may_change = ("stop_over_budget",)
    # a smoke run: 4 steps of 4 pairs from a fixed 16
    quick = {
        "steps": 4,
        "check_every": 2,
        "select_task": "",
        "heldout_max_pairs": 16,
        "batch_size": 4,
        "max_pairs": 16,
    }

    def validate(self) -> None:
        cfg = self.cfg
        self.train_pairs = pair_data.subset(pair_data.load(cfg.pairs, "train"), cfg.max_pairs, cfg.seed)
        heldout = pair_data.load(cfg.heldout_pairs, "heldout")
        self.heldout = pair_data.subset(heldout, cfg.heldout_max_pairs, cfg.seed)
        # the held-out pairs' log-probs under the reference (adapter disabled) never change: computed once
        self._heldout_reference: tuple[list[float], list[float]] | None = None
        # the tie term's pairs: its training split, and its held-out split for the checks' |log-ratio| (a
        # pair file has no split: the checks then read the pairs it trains on, as --heldout-pairs FILE does)
        self.tie_train = pair_data.load(cfg.tie_pairs, "train") if cfg.tie_pairs else []
        self.tie_heldout = pair_data.load(cfg.tie_pairs, "heldout") if cfg.tie_pairs else []
        self._tie_heldout_base: float | None = None
        self.anchor_texts = anchor_text.texts_for_config(cfg)[0]  # the same training part as equalisation's

    def setup(self) -> None:
        cfg = self.cfg
        self.validate()  # bad pair files fail before anything is written
        self.check_resume()
        # what an earlier run of this folder recorded about its training (a finished run resumed keeps it)
        previous = run_folder.read_json(self.folder.config) if self.folder.config.is_file() else {}
        self.previous_training: dict[str, Any] = (previous.get("training") or {}) if self.resume else {}
        self.folder.path.mkdir(parents=True, exist_ok=True)
        self.model_ref = models.reference(cfg.model)
        training.set_seed(cfg.seed)
        self.model, self.tokenizer = models.load(str(self.model_ref.path))
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.write_config(self.model_ref, None, _device())

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_folders(self) -> list[Path]:
        folder = self.folder.checkpoints
        found = (
            [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
            if folder.is_dir()
            else []
        )
        return sorted(found, key=_step)

    def _checkpoints(self) -> list[Path]:
        """The Trainer's complete ``checkpoint-N`` folders (marked ``COMPLETE``), in step order."""
        return [p for p in self._checkpoint_folders() if (p / COMPLETE).is_file()]

    def candidates(self) -> list[Candidate]:
        return [
            Candidate(str(_step(p)), p) for p in self._checkpoints() if (p / "adapter_config.json").is_file()
        ]

    def stop_reason(self, label: str, scores: dict[str, float]) -> str | None:
        """Why the guard stops at this check: SS crossed 50 by more than the margin, or the checkpoint is
        ``stop_over_budget`` times over its retention budgets; None to go on."""
        cfg, base = self.cfg, self.scorer.base  # type: ignore[union-attr]
        value = scores[cfg.select_metric]
        if crossed(base[cfg.select_metric], value, cfg.overshoot_margin):
            return (
                f"step {label}: {cfg.select_metric} {value:.2f} crossed 50 (base "
                f"{base[cfg.select_metric]:.2f}) by more than {cfg.overshoot_margin:g}"
            )
        settings = selection_settings(cfg)
        if settings.ppl_guard and PPL_KEY not in scores:  # scored before the guard: crossing only
            return None
        overrun = settings.overrun(base, scores)
        if cfg.stop_over_budget > 0 and overrun > cfg.stop_over_budget:
            drop, rise = settings.costs(base, scores)
            return (
                f"step {label}: {overrun:.1f}x its retention budget ({settings.budgets()}; LMS drop "
                f"{drop:.2f}, perplexity rise {rise:.1%}), more than {cfg.stop_over_budget:g}x"
            )
        return None

    def _guard_stopped(self) -> str | None:
        """Why an earlier run of this folder stopped, if it did."""
        if self.scorer is None:
            return None
        for label, scores in sorted(self.scorer.scored().items(), key=lambda kv: int(kv[0])):
            if self.cfg.select_metric in scores and (reason := self.stop_reason(label, scores)):
                return reason
        return None

    # ------------------------------------------------------------------ train
    def train(self) -> dict[str, Any]:
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer

        cfg = self.cfg
        stopped = self._guard_stopped() if self.resume else None
        if self.resume:  # what a kill during a save left behind; steps after the last whole one are redone
            import shutil

            for partial in set(self._checkpoint_folders()) - set(self._checkpoints()):
                shutil.rmtree(partial)
        found = self._checkpoints()
        latest = found[-1] if self.resume and found else None
        # a finished run resumed (the main job adopting a `train` folder, a rerun after select failed):
        # the Trainer, handed a checkpoint at max_steps, trains one more step at rate 0 and saves it as a
        # new checkpoint, a spurious candidate; nothing is left to train, so it is not called
        finished = latest is not None and _step(latest) >= cfg.steps
        dataset = Dataset.from_list(
            [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in self.train_pairs]
        )
        loss_type = ["sigmoid_norm" if cfg.length_normalize else "sigmoid"]
        weights = [1.0]
        if cfg.sft_weight > 0:
            loss_type.append("sft")
            weights.append(cfg.sft_weight)
        args = DPOConfig(
            output_dir=str(self.folder.checkpoints),
            max_steps=cfg.steps,
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=1,  # the non-finite guard checks each training step's gradient
            learning_rate=cfg.lr,
            lr_scheduler_type="linear",
            warmup_steps=cfg.warmup_steps,
            weight_decay=cfg.weight_decay,
            max_grad_norm=cfg.max_grad_norm,
            beta=cfg.beta,
            loss_type=loss_type,
            loss_weights=weights,
            logging_steps=1,
            save_strategy="steps",
            save_steps=cfg.check_every,
            report_to=[],
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            gradient_checkpointing=False,
            precompute_ref_log_probs=False,  # per step, for the pairs it trains on (module docstring)
            seed=cfg.seed,
            data_seed=cfg.seed,
            dataloader_num_workers=0,
            disable_tqdm=False,
        )
        peft_config = training.lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
        log = training.MetricsLog(self.folder.metrics, truncate_after_step=_step(latest) if latest else None)
        self.guard = training.NonFiniteGuard(training.MAX_BAD_STEPS)
        self.skipped_steps: set[int] = set()
        self.anchor = None
        self.anchor_kl: dict[int, float] = {}  # step -> the anchor's KL, for metrics.jsonl
        if cfg.anchor_weight > 0:
            self.anchor = anchor_text.RetentionAnchor.for_config(self.tokenizer, self.anchor_texts, cfg)
        self.tie: tie_term.TieTerm | None = None
        self.tie_heldout_term: tie_term.TieTerm | None = None
        # step -> the tie batch's loss and mean |log-ratio|, for metrics.jsonl
        self.tie_abs: dict[int, tuple[float, float]] = {}
        self.tie_scale = 0.0  # the tie loss's multiplier: tie_weight x DPO's / the tie's initial grad norm
        if cfg.tie_pairs and cfg.tie_weight > 0:
            self.tie = tie_term.TieTerm(self.tokenizer, self.tie_train, cfg.tie_batch_size, cfg.seed)
        if cfg.tie_pairs and self.tie_heldout:
            self.tie_heldout_term = tie_term.TieTerm(self.tokenizer, self.tie_heldout, 1, cfg.seed)
        trainer = _guarded(DPOTrainer, self)(
            model=self.model,
            args=args,
            train_dataset=dataset,
            processing_class=self.tokenizer,
            peft_config=peft_config,
            callbacks=[
                _MetricsCallback(log, self.skipped_steps, self.anchor_kl, self.tie_abs),
                _GuardCallback(self, log),
                _ReleaseMemoryCallback(),
            ],
        )
        self.trainer = trainer
        self.policy = trainer.model
        self.guard_stop: str | None = stopped
        trained = stopped is None and not finished
        self.lr_calibration: dict[str, float] | None = None
        if not trained:  # finished or stopped by the guard: the calibration the run trained with, as recorded
            self.lr_calibration = self.previous_training.get("lr_calibration")
        # measured before the optimizer exists (the Trainer builds it in train()); seeded batches at the
        # adapter's initialisation, so a finished run whose record lost it measures the same number again
        if stopped is None and cfg.lr_ref_grad_norm > 0 and self.lr_calibration is None:
            norm = initial_grad_norm(trainer, LR_CALIBRATION_BATCHES, cfg.batch_size, cfg.seed)
            scale = lr_scale(norm, cfg.lr_ref_grad_norm)
            trainer.args.learning_rate = lr = cfg.lr * scale
            self.lr_calibration = {"initial_grad_norm": norm, "lr_scale": scale, "lr": lr}
            print(
                f"DPO: initial gradient norm {norm:.3f} (reference {cfg.lr_ref_grad_norm:g}): "
                f"lr {cfg.lr:g} x {scale:.3f} = {lr:.3g}",
                file=sys.stderr,
            )
        self.tie_calibration: dict[str, float] | None = None
        if not trained:
            self.tie_calibration = self.previous_training.get("tie_calibration")
        # measured like the rate's: at the adapter's initialisation, before the Trainer loads a checkpoint
        elif self.tie is not None:
            dpo_norm = (self.lr_calibration or {}).get("initial_grad_norm") or initial_grad_norm(
                trainer, LR_CALIBRATION_BATCHES, cfg.batch_size, cfg.seed
            )
            tie_norm = initial_tie_grad_norm(
                self.policy, self.tie, LR_CALIBRATION_BATCHES, trainer.args.device
            )
            self.tie_scale = cfg.tie_weight * dpo_norm / tie_norm if tie_norm > 0 else 0.0
            self.tie_calibration = {
                "dpo_grad_norm": dpo_norm,
                "tie_grad_norm": tie_norm,
                "scale": self.tie_scale,
            }
            print(
                f"DPO: tie term's initial gradient norm {tie_norm:.3f}, DPO's {dpo_norm:.3f}: loss x "
                f"{self.tie_scale:.4g} (tie weight {cfg.tie_weight:g} of DPO's)",
                file=sys.stderr,
            )
        if trained:
            print(f"DPO: {len(self.train_pairs)} pairs, {cfg.steps} steps", file=sys.stderr)
            trainer.train(resume_from_checkpoint=str(latest) if latest else None)
        else:  # the guard stopped an earlier run, or it finished: restore its last adapter for scoring
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(self.policy, load_file(str(latest / "adapter_model.safetensors")))
        step = trainer.state.global_step if trained else _step(latest)
        last = self.folder.checkpoints / f"checkpoint-{step}"
        if trained and not (last / COMPLETE).is_file():
            training.check_finite(self.policy, last)
            trainer.save_model(str(last))
            _mark_complete(last)  # the last step, when it is not a multiple of check_every
        summary = {
            "method": "dpo",
            "steps": step,
            "pairs": len(self.train_pairs),
            "pair_set": pair_data.fingerprint(cfg.pairs),
            "tie_pair_set": pair_data.fingerprint(cfg.tie_pairs) if cfg.tie_pairs else None,
            "tie_pairs": len(self.tie_train),
            "stopped_early": self.guard_stop is not None,
            "guard": self.guard_stop or "not triggered",
            "skipped_steps": len(self.skipped_steps),
            "lr_calibration": self.lr_calibration,
            "tie_calibration": self.tie_calibration,
            # the last trained step's; each checkpoint's (the kept one's too) is in metrics.jsonl
            "heldout_at_last_step": self.heldout_scores(),
        }
        self.write_config(self.model_ref, summary, _device())
        return summary

    def not_held_out(self) -> list[str]:
        return anchor_text.not_held_out(self.cfg.anchor_weight, self.cfg.anchor_text)

    def heldout_scores(self) -> dict[str, Any]:
        """Reward accuracy / margin on the held-out pairs: the current adapter vs the adapter disabled
        (whose log-probs never change: computed at the first check only)."""
        model = self.policy
        was_training = model.training
        model.eval()
        prompts = [p.prompt for p in self.heldout]
        chosen = completion_logps(model, self.tokenizer, prompts, [p.chosen for p in self.heldout])
        rejected = completion_logps(model, self.tokenizer, prompts, [p.rejected for p in self.heldout])
        if self._heldout_reference is None:
            with model.disable_adapter():
                self._heldout_reference = (
                    completion_logps(model, self.tokenizer, prompts, [p.chosen for p in self.heldout]),
                    completion_logps(model, self.tokenizer, prompts, [p.rejected for p in self.heldout]),
                )
        ref_chosen, ref_rejected = self._heldout_reference
        scores = reward_stats(
            chosen, rejected, ref_chosen, ref_rejected, self.cfg.beta, [p.bias_type for p in self.heldout]
        )
        if self.tie_heldout_term is not None:  # how far from even the tie term's held-out pairs are
            if self._tie_heldout_base is None:
                with model.disable_adapter():
                    self._tie_heldout_base = tie_term.mean_abs_log_ratio(model, self.tie_heldout_term)
            scores["tie_abs_log_ratio"] = tie_term.mean_abs_log_ratio(model, self.tie_heldout_term)
            scores["tie_abs_log_ratio_base"] = self._tie_heldout_base
        model.train(was_training)
        return scores


#: training batches whose gradient norm at initialisation sets the rate (``lr_ref_grad_norm``)
LR_CALIBRATION_BATCHES = 4


def lr_scale(norm: float, reference: float) -> float:
    """``reference / norm``, at most 1: with Adam every coordinate moves about lr per step whatever its
    gradient, so what one step changes in the model's outputs grows with the gradient's size; a model
    whose initial gradient is k times the reference's trains at 1/k of the rate. Never above 1: a flat
    start is no evidence that a larger rate is safe."""
    if not (norm > 0 and math.isfinite(norm)):
        raise ValueError(f"initial gradient norm must be positive and finite, got {norm}")
    return min(1.0, reference / norm)


def initial_grad_norm(trainer, batches: int, batch_size: int, seed: int) -> float:
    """Mean pre-clip norm of the DPO loss's gradient at the adapter's initialisation, over ``batches``
    batches drawn (with their own seeded generator: the training's data order is untouched) from the
    trainer's tokenized pairs. Computed with the model in eval mode, where the recipe adds no anchor (its
    KL's gradient is zero at initialisation anyway) and TRL's logged training metrics stay untouched."""
    model, data = trainer.model, trainer.train_dataset
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    order = order[: batches * batch_size].tolist()

    def losses():
        for i in range(0, len(order), batch_size):
            batch = trainer.data_collator([data[j] for j in order[i : i + batch_size]])
            yield trainer.compute_loss(model, trainer._prepare_inputs(batch))

    try:
        return _mean_grad_norm_in_eval(model, losses())
    finally:
        trainer._metrics["eval"].clear()  # TRL's eval-mode batch metrics: never logged


def initial_tie_grad_norm(model, term: tie_term.TieTerm, batches: int, device) -> float:
    """Mean norm of the tie loss's gradient over the term's first ``batches`` batches, in eval mode (the
    recipe adds nothing there); the term's order is positioned by the step in training, so drawing here
    changes nothing it will read."""

    def losses():
        for k in range(batches):
            term.seek(k)
            yield term.loss(model, term.next_batch(), device)[0]

    return _mean_grad_norm_in_eval(model, losses())


def _mean_grad_norm_in_eval(model, losses) -> float:
    """Mean pre-clip gradient norm of each loss ``losses`` yields (built lazily, one at a time), with the
    model in eval mode and its gradients cleared after each; the mode is restored."""
    was_training = model.training
    model.eval()
    norms: list[float] = []
    try:
        for loss in losses:
            loss.backward()
            norms.append(_grad_norm([p for p in model.parameters() if p.grad is not None]))
            model.zero_grad(set_to_none=True)
    finally:
        model.train(was_training)
    return sum(norms) / len(norms)


def _grad_norm(parameters: Sequence[torch.nn.Parameter]) -> float:
    """The global L2 norm of ``parameters``' gradients (each has one), before any clipping."""
    grads = [p.grad.detach().float().norm() for p in parameters]
    return float(torch.stack(grads).norm()) if grads else 0.0


COMPLETE = "COMPLETE"  # a checkpoint folder's last file: written only once the Trainer's save returned


def _mark_complete(checkpoint: Path) -> None:
    from debias.atomic import write_text_atomic

    write_text_atomic(checkpoint / COMPLETE, "")


def _guarded(trainer_class, recipe: DpoRecipe):
    """``trainer_class`` whose training step drops a non-finite update (see the module docstring).

    The check sits in ``training_step`` (after backward, before clipping and the optimizer step) rather
    than in a callback because only there are the loss and the gradients both at hand; it is exact
    because the recipe never accumulates gradients over several training steps.
    """

    class GuardedTrainer(trainer_class):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            """TRL's loss, plus the retention anchor's KL and the tie term while training (each when on)."""
            result = super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
            if (recipe.anchor is None and recipe.tie is None) or not model.training:
                return result
            step = self.state.global_step + 1
            extra = torch.zeros((), device=self.args.device)
            # each term's batch is a function of the step, so a resumed run reads the same texts and pairs
            if recipe.anchor is not None:
                recipe.anchor.seek(self.state.global_step)
                kl, _ = anchor_text.anchor_loss(model, recipe.anchor.next_batch(), self.args.device)
                recipe.anchor_kl[step] = float(kl.detach())
                extra = extra + recipe.cfg.anchor_weight * kl
            if recipe.tie is not None:
                recipe.tie.seek(self.state.global_step)
                tie, abs_delta = recipe.tie.loss(model, recipe.tie.next_batch(), self.args.device)
                recipe.tie_abs[step] = (float(tie.detach()), float(abs_delta))
                extra = extra + recipe.tie_scale * tie
            if return_outputs:
                loss, outputs = result
                return loss + extra, outputs
            return result + extra

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            trainable = [p for p in model.parameters() if p.requires_grad and p.grad is not None]
            grad_norm = _grad_norm(trainable)
            step = self.state.global_step + 1
            if not recipe.guard.allow(step, float(loss), grad_norm):
                for p in trainable:
                    p.grad = None  # the optimizer skips these parameters: no weight or moment changes
                recipe.skipped_steps.add(step)
            return loss

    return GuardedTrainer


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.rsplit("-", 1)[1])


class _MetricsCallback(TrainerCallback):
    """TRL's per-step log as the project's metrics.jsonl lines (and tokens/s from its token count)."""

    NAMES = {
        "loss": "loss",
        "rewards/accuracies": "reward_accuracy",
        "rewards/margins": "reward_margin",
        "rewards/chosen": "chosen_reward",
        "rewards/rejected": "rejected_reward",
        "learning_rate": "lr",
        "grad_norm": "grad_norm",
    }

    def __init__(
        self,
        log: training.MetricsLog,
        skipped: set[int],
        anchor_kl: dict[int, float],
        tie_abs: dict[int, tuple[float, float]] | None = None,
    ) -> None:
        self.log, self.last, self.skipped, self.anchor_kl = log, None, skipped, anchor_kl
        self.tie_abs = tie_abs if tie_abs is not None else {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or not state.is_world_process_zero:
            return
        record: dict[str, Any] = {"step": state.global_step}
        if state.global_step in self.skipped:
            record["skipped"] = True
        if state.global_step in self.anchor_kl:
            record["anchor_kl"] = self.anchor_kl[state.global_step]
        if state.global_step in self.tie_abs:
            record["tie_loss"], record["tie_abs_log_ratio"] = self.tie_abs[state.global_step]
        record.update({ours: float(logs[theirs]) for theirs, ours in self.NAMES.items() if theirs in logs})
        now, tokens = time.perf_counter(), float(logs.get("num_tokens", 0.0))
        if self.last is not None and tokens > self.last[1]:
            record["tokens_per_s"] = round((tokens - self.last[1]) / max(now - self.last[0], 1e-9), 1)
        self.last = (now, tokens)
        self.log.write(record)


class _ReleaseMemoryCallback(TrainerCallback):
    """After every optimizer step, the freed heap back to the OS (``debias.memory``), as in every loop."""

    def on_step_end(self, args, state, control, **kwargs):
        memory.release_freed_memory()


class _GuardCallback(TrainerCallback):
    """After each checkpoint: held-out reward accuracy, the selection-split score, the stop decision."""

    def __init__(self, recipe: DpoRecipe, log: training.MetricsLog) -> None:
        self.recipe, self.log = recipe, log

    def on_save(self, args, state, control, **kwargs):
        recipe, cfg = self.recipe, self.recipe.cfg
        step = state.global_step
        if state.is_world_process_zero:
            _mark_complete(recipe.folder.checkpoints / f"checkpoint-{step}")
        record: dict[str, Any] = {"step": step, "check": True}
        heldout = recipe.heldout_scores()
        record["heldout_reward_accuracy"] = heldout["reward_accuracy"]
        record["heldout_reward_margin"] = heldout["reward_margin"]
        for key in ("tie_abs_log_ratio", "tie_abs_log_ratio_base"):
            if key in heldout:
                record[f"heldout_{key}"] = heldout[key]
        record.update({f"heldout_accuracy_{k}": v for k, v in heldout["accuracy_by_bias_type"].items()})
        if recipe.scorer is not None:
            path = recipe.folder.checkpoints / f"checkpoint-{step}"
            scores = recipe.scorer(Candidate(str(step), path))
            keep = (cfg.select_metric, "lms", PPL_KEY)
            record.update({f"select_{k}": v for k, v in scores.items() if k in keep})
            recipe.guard_stop = recipe.stop_reason(str(step), scores)
            if recipe.guard_stop is not None:
                control.should_training_stop = True
        if state.is_world_process_zero:
            self.log.write(record)
        return control


__all__ = [
    "DpoConfig",
    "DpoRecipe",
    "completion_logps",
    "crossed",
    "dpo_loss",
    "initial_grad_norm",
    "initial_tie_grad_norm",
    "lr_scale",
    "reward_stats",
]
