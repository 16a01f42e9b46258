"""GEE: group-entropy equalization, trained as a LoRA adapter.

Entropy minimisation makes a model more confident; done naively it can make it more confident about
some groups than others and so amplify stereotypes. GEE minimises the mean token entropy *and* the
spread of the per-group entropies (``L = H̄ + λ·Σ_g (H_g − H̄)²``, or L1), or in "gap" mode only the spread,
stopping once the gap is small enough. See ``debias/losses.py`` for the math. ``anchor_weight`` > 0 adds
the retention anchor (``debias.anchor``: KL(base ‖ tuned) on neutral text, the base being the adapter
disabled) to every step's loss; off by default, so GEE's measured rows keep their meaning.

One optimizer step = one group-balanced batch (``per_group`` examples of every group), split across
processes and micro-batches. Group entropies are *step-level* quantities: every micro-batch's group sums
keep their graph, the sums/counts are all-reduced across processes, and one backward of the exact
surrogate ``Σ_g c_g·S_g`` (``c_g = ∂L/∂H_g / N_g``) gives every process the gradient of the step loss.
Gradients are then summed across processes with ``accelerator.reduce``: LoRA gradients are small, and
doing it explicitly (instead of DDP) keeps one forward-many/backward-once step legal.
"""

from __future__ import annotations

import dataclasses
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from debias import anchor as anchor_text
from debias import memory, models, training
from debias.data import independent_probe
from debias.methods.gee import losses
from debias.methods.recipe import Candidate, Recipe
from debias.models import DEFAULT_MODEL

Mode = Literal["teacher-forced", "rollout"]
Loss = Literal["l2", "l1", "gap"]
BUILTIN_DATA = ("templates", "varied")  # --data values that name a built-in, paired prompt set, not a file


@dataclass
class GeeConfig(anchor_text.AnchorOptions):
    """Every field is a command-line flag of ``cli.py train --method gee`` (underscores → dashes); the
    anchor's (``anchor_weight`` …) come from ``AnchorOptions``."""

    model: str = DEFAULT_MODEL
    mode: Mode = "teacher-forced"
    loss: Loss = "gap"  # recommended: the l2/l1 modes also lower every entropy (see README, measured)
    lam: float = 1.0  # λ0, weight of the group-spread term (l2/l1)
    anneal: bool = True  # λ_t = λ0 · gap_t / gap_1, clipped to [lam_min, lam_max] (see _step_lambda)
    anneal_ema: float = 0.7  # smoothing of the step gap gap_t used for annealing
    lam_min: float = 0.1
    lam_max: float = 10.0
    target_gap: float = 0.01  # gap mode: stop once the held-out stop-split gap max_g |H_g − H̄| ≤ this ...
    stop_check_every: int = 5  # ... checked every this many steps
    stop_examples: int = 256  # held-out examples for that check, disjoint from the reported probe
    temperature: float = 1.0  # softmax temperature of the entropy
    groups: tuple[str, ...] = ("male", "female")
    # "templates" (the project's generator), "varied" (its gender subjects in many registers, from
    # debias.data.varied_templates; stop split from its held-out templates, reported probe unchanged) or a
    # JSONL/CSV/parquet of prompts
    data: str = "templates"
    text_field: str = "text"
    group_field: str | None = None
    # user prompts: downsample / reweight the detected groups, or "counterfactual": pair every male and
    # female prompt with its gender-swapped twin (debias.data.counterfactual), so each step compares the
    # same texts about both groups, as the template data does
    balance: Literal["downsample", "reweight", "counterfactual"] = "downsample"
    per_group: int = 8  # examples of each group per optimizer step
    micro_batch_size: int = 16
    steps: int = 40
    lr: float = 5e-4
    warmup_steps: int = 4
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = training.DEFAULT_LORA_TARGETS
    gen_temperature: float = 0.5  # rollout sampling
    top_p: float = 0.95
    max_new_tokens: int = 24
    chunk_size: int = losses.DEFAULT_CHUNK_SIZE
    checkpoint_every: int = 20
    mixed_precision: Literal["no", "bf16"] = "no"
    log_with: str | None = None  # an accelerate tracker ("tensorboard", "wandb") when installed
    probe_batch_size: int = 32
    probe_max_examples: int | None = 512  # held-out probe examples (paired; None: all 19k)
    seed: int = 0
    # Model selection among the checkpoints (every checkpoint_every steps and the last), shared with every
    # method (debias.selection): "" keeps the last, which is what GEE's own stopping rule chose.
    select_task: str = ""
    select_metric: str = "ss_gender"
    max_lms_drop: float = 1.0
    # ... and whose word perplexity on held-out neutral text rose at most this much (0.03: 3 %; < 0: off)
    max_ppl_rise: float = 0.03

    def __post_init__(self) -> None:
        self.groups = tuple(self.groups)
        self.lora_targets = tuple(self.lora_targets)
        if len(self.groups) < 2:
            raise ValueError(
                f"groups: GEE equalises entropy across groups and needs at least two, got {self.groups}"
            )
        for name in (
            "per_group",
            "micro_batch_size",
            "steps",
            "max_new_tokens",
            "checkpoint_every",
            "stop_check_every",
            "stop_examples",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.temperature <= 0 or self.lr <= 0:
            raise ValueError("temperature and lr must be positive")
        self.check_anchor()
        if self.data == "varied" and set(self.groups) != {"male", "female"}:
            raise ValueError(
                f"data 'varied' has gender subjects only: groups must be male and female, not {self.groups}"
            )


def counterfactual_examples(examples, groups, source: str) -> list:
    """Each male and each female prompt with its gender-swapped twin: exact pairs from one-sided text.

    The swap is a gender swap, so the groups must be male and female; a prompt the swap does not change
    or a continuation with gender words is refused (``counterfactual_pairs`` names it).
    """
    from debias.data import counterfactual_pairs

    if set(groups) != {"male", "female"}:
        raise ValueError(
            f"--balance counterfactual swaps gender words: groups must be male and female, not {groups}"
        )
    present = {ex.group for ex in examples}
    pairs = []
    for a, b in ((groups[0], groups[1]), (groups[1], groups[0])):
        if a in present:
            pairs += counterfactual_pairs(examples, a, b)
    if not pairs:
        raise ValueError(f"{source}: no {' or '.join(groups)} prompts to pair")
    return pairs


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    score_mask: torch.Tensor  # over tokens: which tokens' predictions are scored
    group_ids: torch.Tensor
    weights: torch.Tensor

    def to(self, device) -> Batch:
        return Batch(*(t.to(device) for t in dataclasses.astuple(self)))


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding, as ``generate`` uses, so rollout scoring sees the same inputs."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def teacher_forced_batch(tokenizer, examples, group_index: dict[str, int]) -> Batch:
    """Prompt + continuation, right-padded; only continuation tokens are scored.

    Prompt and continuation are tokenized separately and concatenated so the scored span is exactly the
    continuation's tokens (continuations start with a space, so no token straddles the boundary).
    """
    rows, masks = [], []
    for ex in examples:
        prompt = tokenizer.encode(ex.prompt)
        cont = tokenizer.encode(ex.continuation, add_special_tokens=False)
        if not cont:
            raise ValueError(f"teacher-forced mode needs a continuation; example {ex.pair_id!r} has none")
        rows.append(prompt + cont)
        masks.append([0] * len(prompt) + [1] * len(cont))
    ids, attn, score = training.pad(rows, tokenizer.pad_token_id, marks=masks)
    return Batch(ids, attn, score, *_group_tensors(examples, group_index))


def _group_tensors(examples, group_index: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    groups = torch.tensor([group_index[ex.group] for ex in examples])
    weights = torch.tensor([float(ex.weight) for ex in examples])
    return groups, weights


@torch.no_grad()
def rollout_batch(model, tokenizer, examples, group_index, cfg: GeeConfig, device) -> Batch:
    """Sample continuations from the current model (adapter active); score the generated tokens.

    Tokens after the first end-of-sequence are padding and never scored; the EOS itself is (stopping is
    one of the model's predictions).
    """
    prompts = [tokenizer.encode(ex.prompt) for ex in examples]
    ids, attn, _ = training.pad(prompts, tokenizer.pad_token_id, left=True)
    width = ids.shape[1]
    out = model.generate(
        input_ids=ids.to(device),
        attention_mask=attn.to(device),
        do_sample=True,
        temperature=cfg.gen_temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
    ).cpu()
    generated = out[:, width:]
    eos = torch.tensor(_eos_ids(model, tokenizer))
    is_eos = torch.isin(generated, eos)
    after_eos = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    gen_mask = (~after_eos).long()
    full_attn = torch.cat([attn, gen_mask], dim=1)
    score = torch.cat([torch.zeros_like(attn), gen_mask], dim=1)
    return Batch(out, full_attn, score, *_group_tensors(examples, group_index))


def _eos_ids(model, tokenizer) -> list[int]:
    eos = getattr(model.generation_config, "eos_token_id", None) or tokenizer.eos_token_id
    return list(eos) if isinstance(eos, list | tuple) else [eos]


def group_sums(model, batch: Batch, num_groups: int, cfg: GeeConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group (weighted) entropy sums — with graph — and token counts for one micro-batch."""
    logits = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=_positions(batch.attention_mask),
    ).logits
    logit_mask = losses.logit_mask_from_token_mask(batch.score_mask)
    sums, counts = losses.masked_entropy_sums(logits, logit_mask, cfg.temperature, cfg.chunk_size)
    sums = sums * batch.weights.to(sums.dtype)
    counts = counts.to(sums.dtype) * batch.weights.to(sums.dtype)
    return losses.group_entropy_stats(sums, counts, batch.group_ids, num_groups)


@torch.no_grad()
def entropy_probe(model, tokenizer, examples, cfg: GeeConfig, device) -> dict[str, Any]:
    """Full-vocabulary mean token entropy per group on held-out texts: the quantity GEE trains."""
    groups, batch_size = cfg.groups, cfg.probe_batch_size
    index = {g: i for i, g in enumerate(groups)}
    examples = [ex for ex in examples if ex.group in index]
    total_sums = torch.zeros(len(groups), dtype=torch.float64)
    total_counts = torch.zeros(len(groups), dtype=torch.float64)
    was_training = model.training
    model.eval()
    for i in range(0, len(examples), batch_size):
        batch = teacher_forced_batch(tokenizer, examples[i : i + batch_size], index).to(device)
        s, c = group_sums(model, batch, len(groups), cfg)
        total_sums += s.double().cpu()
        total_counts += c.double().cpu()
    model.train(was_training)
    means = losses.group_means(total_sums, total_counts, list(groups))
    return {
        "entropy": {g: float(means[i]) for i, g in enumerate(groups)},
        "mean_entropy": float(means.mean()),
        "gap": float(losses.max_gap(means)),
        "tokens": {g: int(total_counts[i]) for i, g in enumerate(groups)},
        "examples": len(examples),
    }


class GeeRecipe(Recipe):
    """Setup, train, checkpoint: everything GEE training does, top to bottom."""

    method = "gee"
    unit = "step"
    quick = {"steps": 5, "probe_max_examples": 64, "stop_examples": 64}

    # ------------------------------------------------------------------ setup
    def validate(self) -> None:
        self.anchor_train, self.anchor_heldout = anchor_text.texts_for_config(self.cfg)  # bad file: one line

    def setup(self) -> None:
        from accelerate import Accelerator

        cfg = self.cfg
        self.validate()
        self.check_resume()
        self.accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            cpu=not torch.cuda.is_available(),
            log_with=cfg.log_with,
            project_dir=str(self.folder.path),
        )
        # The same seed on every process: peft draws LoRA-A at random, and replicas must start identical.
        training.set_seed(cfg.seed)
        self.model_ref = models.reference(cfg.model)
        base, self.tokenizer = models.load(str(self.model_ref.path))
        self.model = training.add_lora(base, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
        self.model.to(self.accelerator.device)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer, self.scheduler = training.optimizer_and_schedule(
            self.model, cfg.lr, cfg.weight_decay, cfg.warmup_steps, cfg.steps
        )
        self.group_index = {g: i for i, g in enumerate(cfg.groups)}
        self.train_examples, self.heldout, self.stop_split = self._examples()
        self.anchor, self.anchor_probe = anchor_text.anchors_for_config(
            self.tokenizer, self.anchor_train, self.anchor_heldout, cfg
        )
        from debias.data import GroupBalancedBatches

        self.batches = GroupBalancedBatches(
            self.train_examples,
            list(cfg.groups),
            cfg.per_group,
            cfg.seed,
            paired=cfg.data in BUILTIN_DATA or cfg.balance == "counterfactual",
        )
        self.step, self.gap_1, self.gap_ema = 0, None, None
        self.guard = training.NonFiniteGuard(training.MAX_BAD_STEPS)
        self.probe_before = self.independent_before = None
        checkpoint = training.latest_checkpoint(self.folder.checkpoints) if self.resume else None
        if checkpoint is not None:
            self.step, extra = training.load_checkpoint(
                checkpoint, self.model, self.optimizer, self.scheduler
            )
            self.batches.load_state_dict(extra["sampler"])
            self.guard.load_state_dict(extra.get("guard"))
            self.gap_1, self.gap_ema = extra["gap_1"], extra["gap_ema"]
            if self.anchor is not None:
                self.anchor.load_state_dict(extra["anchor"])
            self.probe_before = extra.get("probe_before")
            self.independent_before = extra.get("independent_before")
        self.log = training.MetricsLog(
            self.folder.metrics, truncate_after_step=self.step if checkpoint else None
        )
        if cfg.log_with:
            self.accelerator.init_trackers("gee", config=self.config_dict())
        if self.probe_before is None:
            self.probe_before = self.probe()
        if self.independent_before is None and self.independent:
            self.independent_before = self.probe(self.independent)
        self._write_config(training_summary=None)

    def _examples(self):
        from debias.data import balance, generate, load_prompts, varied_templates

        cfg = self.cfg
        if cfg.data == "templates":
            train = generate("train", groups=cfg.groups, seed=cfg.seed)
        elif cfg.data == "varied":
            train = varied_templates.generate("train", groups=cfg.groups, seed=cfg.seed)
        else:
            train = load_prompts(Path(cfg.data), text_field=cfg.text_field, group_field=cfg.group_field)
            if cfg.balance == "counterfactual":
                train = counterfactual_examples(train, cfg.groups, cfg.data)
            else:
                train = balance(train, list(cfg.groups), mode=cfg.balance, seed=cfg.seed)
            if cfg.mode == "teacher-forced" and not all(ex.continuation for ex in train):
                raise ValueError(
                    f"{cfg.data}: user prompts have no continuation to score; use --mode rollout"
                )
        # One seeded shuffle of the held-out pairs: the first slice is the reported probe, the next the
        # gap-mode stop split, so stopping never selects on the number we report.
        heldout = generate("heldout", groups=cfg.groups, seed=cfg.seed)
        n_probe = len(heldout) if cfg.probe_max_examples is None else cfg.probe_max_examples
        n_probe -= n_probe % len(cfg.groups)
        n_stop = cfg.stop_examples - cfg.stop_examples % len(cfg.groups)
        stop = heldout[n_probe : n_probe + n_stop]
        if cfg.data == "varied":
            # stop on the varied set's own held-out templates (pairs already in a seeded order); the
            # reported probe stays the template probe above, so numbers compare across --data values
            stop = varied_templates.generate("heldout", groups=cfg.groups, seed=cfg.seed)[:n_stop]
        # the second probe, written apart from the templates (other registers and subjects): gender only;
        # capped like the first, by whole pairs in a seeded order
        independent = []
        if set(cfg.groups) <= set(independent_probe.SUBJECTS):
            independent = independent_probe.generate(tuple(cfg.groups))
            k = len(cfg.groups)
            pairs = [independent[i : i + k] for i in range(0, len(independent), k)]
            random.Random(cfg.seed).shuffle(pairs)
            if cfg.probe_max_examples is not None:
                pairs = pairs[: max(cfg.probe_max_examples // k, 1)]
            independent = [ex for pair in pairs for ex in pair]
        self.independent = independent
        return train, heldout[:n_probe], stop

    # ------------------------------------------------------------------ one step
    def _step_lambda(self, gap: float) -> float:
        """λ_t = λ0 · gap_t / gap_1: weight the spread term more while the gap is still large.

        gap_1 is the held-out probe gap before training and gap_t an EMA of the step gaps: one step's
        gap comes from a few examples and is too noisy either to anchor or to drive λ (a single lucky
        first step would pin λ at its clip limit for the whole run).
        """
        cfg = self.cfg
        if self.gap_1 is None:
            self.gap_1 = self.probe_before["gap"]
        self.gap_ema = (
            gap if self.gap_ema is None else cfg.anneal_ema * self.gap_ema + (1 - cfg.anneal_ema) * gap
        )
        if not cfg.anneal:
            return cfg.lam
        return losses.annealed_lambda(cfg.lam, self.gap_ema, self.gap_1, cfg.lam_min, cfg.lam_max)

    def train_step(self, examples) -> dict[str, Any]:
        metrics = self.compute_gradients(examples)
        metrics.update(self.apply_update(metrics["loss"]))
        return metrics

    def compute_gradients(self, examples) -> dict[str, Any]:
        """Forward every micro-batch, form the step-level group entropies, backprop the exact surrogate.

        On return every trainable parameter's ``.grad`` holds the gradient of the step loss, summed over
        processes, identical on every process.
        """
        cfg, acc = self.cfg, self.accelerator
        local = examples[acc.process_index :: acc.num_processes]
        G = len(cfg.groups)
        sums_with_graph = []
        counts = torch.zeros(G, dtype=torch.float32, device=acc.device)
        tokens = 0
        for i in range(0, len(local), cfg.micro_batch_size):
            chunk = local[i : i + cfg.micro_batch_size]
            if cfg.mode == "rollout":
                batch = rollout_batch(self.model, self.tokenizer, chunk, self.group_index, cfg, acc.device)
            else:
                batch = teacher_forced_batch(self.tokenizer, chunk, self.group_index)
            batch = batch.to(acc.device)
            tokens += int(batch.attention_mask.sum())
            with acc.autocast():
                s, c = group_sums(self.model, batch, G, cfg)
            sums_with_graph.append(s.float())
            counts += c.float()
        local_sums = (
            torch.stack(sums_with_graph).sum(0) if sums_with_graph else torch.zeros(G, device=acc.device)
        )
        step_sums = acc.reduce(local_sums.detach().clone(), reduction="sum")
        step_counts = acc.reduce(counts.clone(), reduction="sum")
        means = losses.group_means(step_sums, step_counts, list(cfg.groups))
        gap = float(losses.max_gap(means))
        lam = self._step_lambda(gap) if cfg.loss != "gap" else 0.0
        if cfg.loss == "gap":
            loss_fn = losses.gap_loss
            loss_value = float(losses.gap_loss(means))
        else:

            def loss_fn(h):
                return losses.gee_loss(h, lam, cfg.loss)

            loss_value = float(loss_fn(means)[0])
        coefficients = losses.surrogate_coefficients(step_sums, step_counts, loss_fn, list(cfg.groups))
        if sums_with_graph:
            acc.backward(losses.surrogate_loss(local_sums, coefficients))
        record: dict[str, Any] = {}
        if self.anchor is not None:
            # every process reads the whole anchor batch (4 short texts: small beside the group batch) and
            # backpropagates 1/processes of it, so the summed gradient is exactly the one-process one
            with acc.autocast():
                kl, anchor_tokens = anchor_text.anchor_loss(self.model, self.anchor.next_batch(), acc.device)
            acc.backward(cfg.anchor_weight * kl / acc.num_processes)
            record["anchor_kl"] = float(kl.detach())
            loss_value += cfg.anchor_weight * record["anchor_kl"]
            tokens += anchor_tokens if acc.is_main_process else 0
        if acc.num_processes > 1:
            for p in self.trainable:
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                p.grad = acc.reduce(grad, reduction="sum")
        tokens = int(acc.reduce(torch.tensor(tokens, device=acc.device), reduction="sum"))
        return {
            "loss": loss_value,
            "mean_entropy": float(means.mean()),
            "entropy": {g: float(means[i]) for i, g in enumerate(cfg.groups)},
            "gap": gap,
            "lambda": lam,
            "tokens": tokens,
            **record,
        }

    def apply_update(self, loss: float = 0.0) -> dict[str, Any]:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.trainable, self.cfg.max_grad_norm))
        lr = self.scheduler.get_last_lr()[0]
        record: dict[str, Any] = {"lr": lr, "grad_norm": grad_norm}
        if self.guard.allow(self.step + 1, loss, grad_norm):
            self.optimizer.step()
        else:  # a non-finite loss or gradient would poison the adapter: the update is skipped
            record["skipped"] = True
        training.advance_schedule(self.scheduler)
        self.optimizer.zero_grad(set_to_none=True)
        return record

    # ------------------------------------------------------------------ loop
    def train(self, stop_after: int | None = None) -> dict[str, Any]:
        """Run to ``cfg.steps`` (or gap-mode early stop). ``stop_after`` simulates an interruption.

        Every ``checkpoint_every`` steps and at the end a checkpoint is written; the last one is the
        trained adapter (``candidates``), the others are what model selection may choose from.
        """
        from tqdm.auto import tqdm

        cfg, acc = self.cfg, self.accelerator
        throughput = training.Throughput()
        bar = tqdm(
            total=cfg.steps, initial=self.step, desc="GEE", disable=not acc.is_main_process, file=sys.stderr
        )
        stopped_early = False
        try:
            with training.Interrupts() as interrupts:
                while self.step < cfg.steps:
                    metrics = self.train_step(next(self.batches))
                    self.step += 1
                    metrics["step"] = self.step
                    metrics["tokens_per_s"] = round(throughput.lap(metrics["tokens"]), 1)
                    if cfg.loss == "gap" and self.step % cfg.stop_check_every == 0:
                        stop = entropy_probe(self.model, self.tokenizer, self.stop_split, cfg, acc.device)
                        metrics["stop_split_gap"] = stop["gap"]
                        means = torch.tensor([stop["entropy"][g] for g in cfg.groups], dtype=torch.float64)
                        stopped_early = losses.gap_reached(means, cfg.target_gap)
                    if acc.is_main_process:
                        self.log.write(metrics)
                    if cfg.log_with:
                        acc.log(_flat(metrics), step=self.step)
                    memory.release_freed_memory()
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{metrics['loss']:.4f}",
                        gap=f"{metrics['gap']:.4f}",
                        lam=f"{metrics['lambda']:.2f}",
                    )
                    if stopped_early:
                        break
                    if stop_after is not None and self.step >= stop_after:
                        raise training.StepBoundaryInterrupt("stop_after")  # checkpointed below, as a signal
                    if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                        self.checkpoint()  # the last step's checkpoint is written once, after the loop
                    interrupts.check()
        except training.StepBoundaryInterrupt:
            self.checkpoint()
            bar.close()
            raise
        bar.close()
        self.checkpoint()
        return self.finish(stopped_early)

    def checkpoint(self) -> None:
        if self.accelerator.is_main_process:
            extra = {
                "sampler": self.batches.state_dict(),
                "guard": self.guard.state_dict(),
                "gap_1": self.gap_1,
                "gap_ema": self.gap_ema,
                "anchor": self.anchor.state_dict() if self.anchor is not None else None,
                "probe_before": self.probe_before,
                "independent_before": self.independent_before,
            }
            training.save_checkpoint(
                self.folder.checkpoints, self.step, self.model, self.optimizer, self.scheduler, extra
            )
        self.accelerator.wait_for_everyone()

    def candidates(self) -> list[Candidate]:
        return [
            Candidate(str(int(path.name.split("-")[1])), path / "adapter")
            for path in training.step_checkpoints(self.folder.checkpoints)
        ]

    @property
    def is_main_process(self) -> bool:
        accelerator = getattr(self, "accelerator", None)  # None: not set up (a later, selection-only run)
        return accelerator is None or accelerator.is_main_process

    def wait_for_everyone(self) -> None:
        if getattr(self, "accelerator", None) is not None:
            self.accelerator.wait_for_everyone()

    def not_held_out(self) -> list[str]:
        return anchor_text.not_held_out(self.cfg.anchor_weight, self.cfg.anchor_text)

    def probe(self, examples=None) -> dict[str, Any]:
        examples = self.heldout if examples is None else examples
        return entropy_probe(self.model, self.tokenizer, examples, self.cfg, self.accelerator.device)

    def _write_config(self, training_summary: dict[str, Any] | None) -> None:
        if self.accelerator.is_main_process:
            self.write_config(
                self.model_ref, training_summary, str(self.accelerator.device), self.accelerator.num_processes
            )

    def finish(self, stopped_early: bool) -> dict[str, Any]:
        probe_after = self.probe()
        summary = {
            "method": "gee",
            "steps": self.step,
            "stopped_early": stopped_early,
            "probe_before": self.probe_before,
            "probe_after": probe_after,
            "gap_reduction": 1.0 - probe_after["gap"] / self.probe_before["gap"]
            if self.probe_before["gap"]
            else math.nan,
            # the gap relative to the mean entropy: an absolute gap also shrinks when all entropies do
            "relative_gap_before": self.probe_before["gap"] / self.probe_before["mean_entropy"],
            "relative_gap_after": probe_after["gap"] / probe_after["mean_entropy"],
        }
        if self.anchor_probe is not None:  # KL(base ‖ tuned) on held-out neutral text (0 before training)
            summary["heldout_anchor_kl"] = anchor_text.mean_kl(
                self.model, self.anchor_probe, self.cfg.anchor_probe_batches, self.accelerator.device
            )
        if self.independent:
            after = self.probe(self.independent)
            before = self.independent_before
            summary.update(
                {
                    "independent_probe_before": before,
                    "independent_probe_after": after,
                    "independent_gap_reduction": 1.0 - after["gap"] / before["gap"]
                    if before["gap"]
                    else math.nan,
                }
            )
        self._write_config(training_summary=summary)
        if self.cfg.log_with:
            self.accelerator.end_training()
        return summary


def _flat(metrics: dict[str, Any]) -> dict[str, float]:
    flat = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            flat.update({f"{k}/{g}": x for g, x in v.items()})
        else:
            flat[k] = v
    return flat


__all__ = ["GeeConfig", "GeeRecipe", "entropy_probe", "group_sums", "rollout_batch", "teacher_forced_batch"]
