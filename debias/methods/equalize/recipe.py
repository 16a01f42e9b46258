"""Equalisation: a stereotype and its counterpart made equally likely, with a retention anchor (LoRA).

For each of the project's contrastive pairs (the same context, continued with a group's stereotype or
with its counterpart; ``debias.data.bias_pairs``, ten bias types, both directions) the loss pushes the
pair's log-ratio ``Δ = log p(stereotype) − log p(counterpart)`` to zero (``losses.equalize_loss``),
after BiasEdit (arXiv 2503.08588). BiasEdit showed the cost of doing only that — without its retention
term it lost 52–62 LMS points — so the recipe adds ``anchor_weight · KL(base ‖ tuned)`` on neutral text
(``debias.anchor``), the base being the adapter disabled, and optionally ``mass_weight`` times
``losses.mass_loss``: the pair's total probability kept at the base model's (the adapter disabled,
no gradient), so a tie is reached by moving probability between the two continuations (off by
default: with it StereoSet SS does not move; README). ``cf_weight`` adds a counterfactual term on
prompts that differ only in the subject's group (``varied_pairs.prompt_pairs``): the two next-token
distributions made equal (``cf_loss`` "jsd") or both pulled to the base model's average of the two
("base_mixture"); off by default (measured on the select half: README, "counterfactual term").

The adapter is LoRA on the MLP projections of the last ``lora_last_layers`` decoder layers (BiasEdit
edits late MLPs; configurable). Every ``check_every`` steps a resumable checkpoint is written and the
held-out pairs (other sentence frames) and held-out anchor text are probed; the shared select phase
then keeps the checkpoint whose ``select_metric`` on ``gee_stereoset_select`` is nearest 50 within the
LMS budget. Single process; gradients are summed across processes if launched on several.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from debias import anchor as anchor_text
from debias import memory, models, training
from debias.data import preference_pairs, varied_pairs
from debias.data.sampler import SeededCycle
from debias.methods.equalize import losses
from debias.methods.recipe import Candidate, Recipe
from debias.models import DEFAULT_MODEL


@dataclass
class EqualizeConfig:
    """Every field is a flag of ``cli.py train --method equalize`` (underscores → dashes)."""

    model: str = DEFAULT_MODEL
    # "varied" (debias/data/varied_pairs.py; the leaderboard's best row), "builtin" (bias_pairs.py only)
    # or a JSONL/CSV/parquet pair file
    pairs: str = "varied"
    bias_types: tuple[str, ...] = ()  # train only on these bias types (empty: all)
    heldout_pairs: str = "builtin"  # pairs probed at every check ("builtin": the held-out frames)
    heldout_max_pairs: int | None = 512
    max_pairs: int | None = None  # train on a fixed, seeded subset (None: every pair)
    loss: losses.Loss = "sym_kl"
    length_normalize: bool = False  # per-token mean log-probs instead of sums
    # weight of KL(base ‖ tuned) on neutral text; 0 switches the anchor off. 0.3 with 120 steps: the
    # leaderboard's best row on the select half (benchmarks/leaderboard.py, row equalize-anchor0.3)
    anchor_weight: float = 0.3
    anchor_text: str = anchor_text.BUILTIN  # "gsm8k_mmlu" or a file of texts
    anchor_batch_size: int = 4  # 4 texts x 64 tokens a step: the anchor costs about one extra forward
    anchor_max_tokens: int = 64
    anchor_crop: str = "head"  # "head": each text's first anchor_max_tokens; "chunks": all of it
    anchor_probe_batches: int = 16  # held-out anchor text (every 10th text) probed at every check
    mass_weight: float = 0.0  # weight of the pair-mass term (losses.mass_loss); 0 switches it off
    pair_weight: float = 1.0  # weight of the pair equalisation loss; 0 trains on the other terms only
    # weight of the counterfactual distribution-matching term (losses.counterfactual_jsd) on
    # varied_pairs.prompt_pairs: the next-token distribution after a subject of either group made equal
    cf_weight: float = 0.0
    # "jsd": the two distributions made equal; "base_mixture": both pulled to the base model's average of
    # the two (losses.mixture_kl), a target that also anchors
    cf_loss: str = "jsd"
    cf_batch_size: int = 16  # counterfactual prompt pairs per step
    lr: float = 1e-3
    batch_size: int = 16  # pairs per step
    steps: int = 120
    warmup_steps: int = 10
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = training.MLP_LORA_TARGETS
    lora_last_layers: int = 10  # adapters on the last N decoder layers only (0: every layer)
    check_every: int = 40  # a checkpoint (a selection candidate) every this many steps, and the last
    select_task: str = "gee_stereoset_select"
    select_metric: str = "ss"
    max_lms_drop: float = 1.0
    # ... and whose word perplexity on held-out neutral text rose at most this much (0.03: 3 %; < 0: off)
    max_ppl_rise: float = 0.03
    seed: int = 0

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        self.bias_types = tuple(self.bias_types)
        for name in (
            "batch_size",
            "steps",
            "check_every",
            "anchor_batch_size",
            "anchor_probe_batches",
            "cf_batch_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if min(self.anchor_weight, self.mass_weight, self.pair_weight, self.cf_weight) < 0:
            raise ValueError("anchor_weight, mass_weight, pair_weight and cf_weight must be >= 0")
        if self.lora_last_layers < 0:
            raise ValueError(f"lora_last_layers must be >= 0, got {self.lora_last_layers}")
        if self.pair_weight == 0 and self.cf_weight == 0:
            raise ValueError("pair_weight and cf_weight are both 0: nothing to debias with")
        anchor_text.check_crop(self.anchor_crop)
        if self.cf_loss not in ("jsd", "base_mixture"):
            raise ValueError(f"cf_loss must be 'jsd' or 'base_mixture', got {self.cf_loss!r}")
        if self.loss not in ("sym_kl", "squared"):
            raise ValueError(f"loss must be 'sym_kl' or 'squared', got {self.loss!r}")


def pair_batch(tokenizer, pairs: Sequence[preference_pairs.PreferencePair]):
    """Rows ``[prompt + rejected, prompt + chosen]`` per pair (2·len rows), right-padded, with scored spans.

    Prompt and continuation are tokenized apart and joined, so the scored tokens are exactly the
    continuation's (continuations start with a space: no token straddles the boundary).
    """
    rows, spans = [], []
    for pair in pairs:
        prompt = tokenizer.encode(pair.prompt, add_special_tokens=False) if pair.prompt else []
        if not prompt and tokenizer.bos_token_id is not None:
            prompt = [tokenizer.bos_token_id]  # something to predict the first token from
        for continuation in (pair.rejected, pair.chosen):
            cont = tokenizer.encode(continuation, add_special_tokens=False)
            rows.append(prompt + cont)
            spans.append((len(prompt), len(prompt) + len(cont)))
    ids, attn, _ = training.pad(rows, tokenizer.pad_token_id)
    return ids, attn, spans


def pair_logprobs(
    model, tokenizer, pairs, length_normalize: bool, device
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(log p(rejected), log p(chosen)) per pair, with graph when gradients are on; tokens read."""
    ids, attn, spans = pair_batch(tokenizer, pairs)
    ids, attn = ids.to(device), attn.to(device)
    logits = model(input_ids=ids, attention_mask=attn).logits
    seq = training.span_logprobs(logits, ids, spans, length_normalize)
    return seq[0::2], seq[1::2], int(attn.sum())


def pair_deltas(model, tokenizer, pairs, length_normalize: bool, device) -> tuple[torch.Tensor, int]:
    """(``Δ = log p(rejected) − log p(chosen)`` per pair, with graph when gradients are on; tokens)."""
    rejected, chosen, tokens = pair_logprobs(model, tokenizer, pairs, length_normalize, device)
    return rejected - chosen, tokens


def last_token_logits(model, tokenizer, prompts: Sequence[str], device) -> torch.Tensor:
    """(rows, vocab): each prompt's next-token logits, with graph when gradients are on (right-padded)."""
    rows = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    ids, attn, _ = training.pad(rows, tokenizer.pad_token_id)
    ids, attn = ids.to(device), attn.to(device)
    last = attn.sum(-1) - 1
    logits = model(input_ids=ids, attention_mask=attn).logits  # the model's own head (softcaps included)
    return logits[torch.arange(len(rows), device=device), last]


def counterfactual_loss(
    model, tokenizer, prompt_pairs, kind: str, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per counterfactual prompt pair (a, b, bias type): (the training term, the JSD of the two
    next-token distributions). ``kind`` "jsd" or "base_mixture" (the base is the adapter disabled)."""
    prompts = [p[0] for p in prompt_pairs] + [p[1] for p in prompt_pairs]
    n = len(prompt_pairs)
    logits = last_token_logits(model, tokenizer, prompts, device)
    jsd = losses.counterfactual_jsd(logits[:n], logits[n:])
    if kind == "jsd":
        return jsd, jsd
    with torch.no_grad(), model.disable_adapter():
        base = last_token_logits(model, tokenizer, prompts, device)
    return losses.mixture_kl(base[:n], base[n:], logits[:n], logits[n:]), jsd


def delta_stats(deltas: Sequence[float], bias_types: Sequence[str]) -> dict[str, Any]:
    """Held-out summary: mean Δ (> 0: the stereotype is preferred), mean |Δ|, share preferring it."""
    if not deltas:
        raise ValueError("no pairs to probe")
    by_type: dict[str, list[float]] = defaultdict(list)
    for d, kind in zip(deltas, bias_types, strict=True):
        by_type[kind].append(d)
    n = len(deltas)
    return {
        "mean_delta": sum(deltas) / n,
        "mean_abs_delta": sum(abs(d) for d in deltas) / n,
        "stereotype_preferred": sum(d > 0 for d in deltas) / n,
        "mean_abs_delta_by_bias_type": {k: sum(map(abs, v)) / len(v) for k, v in sorted(by_type.items())},
        "pairs": n,
    }


class EqualizeRecipe(Recipe):
    method = "equalize"
    unit = "step"
    quick = {
        "steps": 4,
        "check_every": 2,
        "select_task": "",
        "heldout_max_pairs": 32,
        "batch_size": 4,
        "max_pairs": 64,
        "anchor_batch_size": 2,
        "anchor_probe_batches": 1,
        "anchor_max_tokens": 64,
    }

    # ------------------------------------------------------------------ data
    def validate(self) -> None:
        cfg = self.cfg
        train = preference_pairs.load(cfg.pairs, "train")
        if cfg.bias_types:
            known = {p.bias_type for p in train}
            unknown = sorted(set(cfg.bias_types) - known)
            if unknown:
                raise ValueError(
                    f"bias_types: {', '.join(unknown)} not in the pairs ({', '.join(sorted(known))})"
                )
            train = [p for p in train if p.bias_type in cfg.bias_types]
        self.train_pairs = preference_pairs.subset(train, cfg.max_pairs, cfg.seed)
        heldout = preference_pairs.load(cfg.heldout_pairs, "heldout")
        if cfg.bias_types:
            heldout = [p for p in heldout if p.bias_type in cfg.bias_types] or heldout
        self.heldout = preference_pairs.subset(heldout, cfg.heldout_max_pairs, cfg.seed)
        self.cf_train, self.cf_heldout = [], []
        if cfg.cf_weight > 0:
            wanted = set(cfg.bias_types)
            self.cf_train = [p for p in varied_pairs.prompt_pairs("train") if not wanted or p[2] in wanted]
            self.cf_heldout = preference_pairs.subset(
                [p for p in varied_pairs.prompt_pairs("heldout") if not wanted or p[2] in wanted],
                cfg.heldout_max_pairs,
                cfg.seed,
            )
            if not (self.cf_train and self.cf_heldout):
                raise ValueError(f"bias_types: no counterfactual prompts for {', '.join(cfg.bias_types)}")
        self.anchor_train, self.anchor_heldout = anchor_text.texts_for_config(cfg)

    def setup(self) -> None:
        from accelerate import Accelerator

        cfg = self.cfg
        self.validate()
        self.check_resume()
        self.folder.path.mkdir(parents=True, exist_ok=True)
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        training.set_seed(cfg.seed)
        self.model_ref = models.reference(cfg.model)
        base, self.tokenizer = models.load(str(self.model_ref.path))
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        layers = training.last_layers(base, cfg.lora_last_layers)
        self.model = training.add_lora(
            base, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets, layers
        )
        self.model.to(self.accelerator.device)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer, self.scheduler = training.optimizer_and_schedule(
            self.model, cfg.lr, cfg.weight_decay, cfg.warmup_steps, cfg.steps
        )
        self.sampler = SeededCycle(len(self.train_pairs), cfg.seed)
        self.cf_sampler = SeededCycle(len(self.cf_train), cfg.seed + 1) if self.cf_train else None
        self.guard = training.NonFiniteGuard(training.MAX_BAD_STEPS)
        self.anchor, self.anchor_probe = anchor_text.anchors_for_config(
            self.tokenizer, self.anchor_train, self.anchor_heldout, cfg
        )
        self.step, self.probe_before = 0, None
        self.heldout_base_mass: list[torch.Tensor] | None = None  # per probe chunk, set by the first probe
        checkpoint = training.latest_checkpoint(self.folder.checkpoints) if self.resume else None
        if checkpoint is not None:
            self.step, extra = training.load_checkpoint(
                checkpoint, self.model, self.optimizer, self.scheduler
            )
            self.sampler.load_state_dict(extra["sampler"])
            if self.cf_sampler is not None:
                self.cf_sampler.load_state_dict(extra["cf_sampler"])
            self.guard.load_state_dict(extra.get("guard"))
            if self.anchor is not None:
                self.anchor.load_state_dict(extra["anchor"])
            self.probe_before = extra["probe_before"]
        self.log = training.MetricsLog(
            self.folder.metrics, truncate_after_step=self.step if checkpoint else None
        )
        if self.probe_before is None:
            self.probe_before = self.probe()
        self.write_config(self.model_ref, None, str(self.accelerator.device), self.accelerator.num_processes)

    # ------------------------------------------------------------------ probes
    @torch.no_grad()
    def probe(self) -> dict[str, Any]:
        """Held-out pairs' Δ statistics and the held-out anchor KL (0 before training, by construction)."""
        cfg, device = self.cfg, self.accelerator.device
        was_training = self.model.training
        self.model.eval()
        chunks = [self.heldout[i : i + 32] for i in range(0, len(self.heldout), 32)]
        if self.heldout_base_mass is None:  # the base model's never changes: scored once
            with self.model.disable_adapter():
                self.heldout_base_mass = [
                    torch.logaddexp(
                        *pair_logprobs(self.model, self.tokenizer, c, cfg.length_normalize, device)[:2]
                    )
                    for c in chunks
                ]
        deltas: list[float] = []
        shifts: list[float] = []
        for chunk, base_mass in zip(chunks, self.heldout_base_mass, strict=True):
            rejected, chosen, _ = pair_logprobs(
                self.model, self.tokenizer, chunk, cfg.length_normalize, device
            )
            deltas += (rejected - chosen).tolist()
            shifts += (torch.logaddexp(rejected, chosen) - base_mass).tolist()
        self.model.train(was_training)
        stats = delta_stats(deltas, [p.bias_type for p in self.heldout])
        # how the pairs' total probability moved (nats; > 0: together the two became more likely)
        stats["mean_log_mass_shift"] = sum(shifts) / len(shifts)
        if self.cf_heldout:
            jsd = [
                float(v)
                for i in range(0, len(self.cf_heldout), 32)
                for v in counterfactual_loss(
                    self.model, self.tokenizer, self.cf_heldout[i : i + 32], "jsd", device
                )[1]
            ]
            stats["cf_jsd"] = sum(jsd) / len(jsd)
        if self.anchor_probe is not None:
            self.anchor_probe.load_state_dict({"epoch": 0, "position": 0})  # the same texts every time
            stats["heldout_anchor_kl"] = anchor_text.mean_kl(
                self.model, self.anchor_probe, cfg.anchor_probe_batches, device
            )
        return stats

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, Any]:
        cfg, acc = self.cfg, self.accelerator
        pairs = [self.train_pairs[i] for i in self.sampler.take(cfg.batch_size)]
        local = pairs[acc.process_index :: acc.num_processes]
        # with pair_weight 0 (and no mass term) the pairs still run, without graph: their Δ is logged
        with torch.set_grad_enabled(cfg.pair_weight > 0 or cfg.mass_weight > 0):
            rejected, chosen, tokens = pair_logprobs(
                self.model, self.tokenizer, local, cfg.length_normalize, acc.device
            )
        deltas = rejected - chosen
        equalize = losses.equalize_loss(deltas, cfg.loss).mean()
        loss = cfg.pair_weight * equalize
        record: dict[str, Any] = {
            "equalize_loss": float(equalize.detach()),
            "mean_delta": float(deltas.mean().detach()),
            "mean_abs_delta": float(deltas.abs().mean().detach()),
        }
        if self.cf_sampler is not None:
            cf_pairs = [self.cf_train[i] for i in self.cf_sampler.take(cfg.cf_batch_size)]
            cf_local = cf_pairs[acc.process_index :: acc.num_processes]
            term, jsd = counterfactual_loss(self.model, self.tokenizer, cf_local, cfg.cf_loss, acc.device)
            loss = loss + cfg.cf_weight * term.mean()
            record["cf_jsd"] = float(jsd.mean().detach())
            if cfg.cf_loss != "jsd":
                record["cf_loss"] = float(term.mean().detach())
        if cfg.mass_weight > 0:
            with torch.no_grad(), self.model.disable_adapter():
                base_rejected, base_chosen, _ = pair_logprobs(
                    self.model, self.tokenizer, local, cfg.length_normalize, acc.device
                )
            mass = losses.mass_loss(rejected, chosen, base_rejected, base_chosen).mean()
            loss = loss + cfg.mass_weight * mass
            record["mass_loss"] = float(mass.detach())
        if self.anchor is not None:
            kl, anchor_tokens = anchor_text.anchor_loss(self.model, self.anchor.next_batch(), acc.device)
            loss = loss + cfg.anchor_weight * kl
            record["anchor_kl"] = float(kl.detach())
            tokens += anchor_tokens
        acc.backward(loss)
        if acc.num_processes > 1:
            for p in self.trainable:
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                p.grad = acc.reduce(grad, reduction="mean")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.trainable, cfg.max_grad_norm))
        record.update(
            {"loss": float(loss.detach()), "lr": self.scheduler.get_last_lr()[0], "grad_norm": grad_norm}
        )
        if self.guard.allow(self.step + 1, float(loss.detach()), grad_norm):
            self.optimizer.step()
        else:  # a non-finite loss or gradient would poison the adapter: the update is skipped
            record["skipped"] = True
        training.advance_schedule(self.scheduler)
        self.optimizer.zero_grad(set_to_none=True)
        record["tokens"] = tokens
        return record

    # ------------------------------------------------------------------ loop
    def train(self, stop_after: int | None = None) -> dict[str, Any]:
        """Run to ``cfg.steps``; ``stop_after`` simulates an interruption (checkpoint, then re-raise)."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        anchor_state = "anchor KL weight " + (f"{cfg.anchor_weight:g}" if self.anchor else "0 (off)")
        if self.cf_sampler is not None:
            anchor_state += f", counterfactual JSD {cfg.cf_weight:g} ({len(self.cf_train)} prompt pairs)"
        print(f"equalize: {len(self.train_pairs)} pairs, {cfg.steps} steps, {anchor_state}", file=sys.stderr)
        bar = tqdm(total=cfg.steps, initial=self.step, desc="equalize", file=sys.stderr)
        throughput = training.Throughput()
        try:
            with training.Interrupts() as interrupts:
                while self.step < cfg.steps:
                    record = self.train_step()
                    self.step += 1
                    record["step"] = self.step
                    record["tokens_per_s"] = round(throughput.lap(record.pop("tokens")), 1)
                    if self.step % cfg.check_every == 0 or self.step == cfg.steps:
                        probe = self.probe()
                        record.update({"check": True, **_flat_probe(probe)})
                        self.checkpoint()
                    self.log.write(record)
                    memory.release_freed_memory()
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.4f}", delta=f"{record['mean_abs_delta']:.3f}")
                    if stop_after is not None and self.step >= stop_after:
                        raise training.StepBoundaryInterrupt("stop_after")
                    interrupts.check()
        except training.StepBoundaryInterrupt:
            if not any(c.label == str(self.step) for c in self.candidates()):
                self.checkpoint()
            bar.close()
            raise
        bar.close()
        probe_after = self.probe()
        summary = {
            "method": "equalize",
            "steps": self.step,
            "pairs": len(self.train_pairs),
            "pair_set": preference_pairs.fingerprint(self.cfg.pairs),
            "probe_before": self.probe_before,
            "probe_after": probe_after,
            "abs_delta_reduction": 1.0 - probe_after["mean_abs_delta"] / self.probe_before["mean_abs_delta"],
        }
        self.write_config(
            self.model_ref, summary, str(self.accelerator.device), self.accelerator.num_processes
        )
        return summary

    def checkpoint(self) -> None:
        extra = {
            "sampler": self.sampler.state_dict(),
            "cf_sampler": self.cf_sampler.state_dict() if self.cf_sampler is not None else None,
            "guard": self.guard.state_dict(),
            "anchor": self.anchor.state_dict() if self.anchor is not None else None,
            "probe_before": self.probe_before,
        }
        training.save_checkpoint(
            self.folder.checkpoints, self.step, self.model, self.optimizer, self.scheduler, extra
        )

    def candidates(self) -> list[Candidate]:
        return [
            Candidate(str(int(path.name.split("-")[1])), path / "adapter")
            for path in training.step_checkpoints(self.folder.checkpoints)
        ]

    def not_held_out(self) -> list[str]:
        return anchor_text.not_held_out(self.cfg.anchor_weight, self.cfg.anchor_text)


def _flat_probe(probe: dict[str, Any]) -> dict[str, Any]:
    flat = {f"heldout_{k}": v for k, v in probe.items() if not isinstance(v, dict) and k != "pairs"}
    flat = {k.replace("heldout_heldout_", "heldout_"): v for k, v in flat.items()}
    for kind, value in probe.get("mean_abs_delta_by_bias_type", {}).items():
        flat[f"heldout_abs_delta_{kind}"] = value
    return flat


__all__ = ["EqualizeConfig", "EqualizeRecipe", "delta_stats", "pair_batch", "pair_deltas", "pair_logprobs"]
