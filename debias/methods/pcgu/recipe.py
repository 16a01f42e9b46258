"""PCGU for causal LMs: partitioned contrastive gradient unlearning (Yu et al., Findings of ACL 2023).

The paper's masked-LM recipe, ported: a pair is a shared prefix and two targets that differ in the group
word ("The nurse said that" → " she" / " he"). For each batch, the gradients of log p(advantaged | prefix)
and log p(disadvantaged | prefix) are taken separately; every weight unit (a logical row or column, see
``partition``) gets the cosine of its two gradient slices; the k units where the two point most
apart are the ones that tell the groups apart, and only they take an SGD step (lower the advantaged
log-prob by default). Only the touched slices are saved (``debias.sparse_adapter``), one checkpoint per
epoch; the paper's per-epoch model selection is the shared ``debias.selection`` step.

``anchor_weight`` > 0 adds the retention anchor (``debias.anchor``, KL(base ‖ tuned) on neutral text) with
its gradient restricted to the same selected units: the step becomes ``direction + w·B·∇KL`` on those units
only, so the anchor pulls back what PCGU moves and touches nothing else. PCGU edits the weights themselves
(no adapter to disable), so the base logits come from the original values of the unit parameters, kept
aside at the start and swapped in for the base forward (a pointer swap, no copy). ``B`` (the batch size)
is there because PCGU's direction *sums* its pairs' gradients where DPO and equalisation average theirs:
one weight then means the same balance of debiasing and retention in every method.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from debias import anchor as anchor_text
from debias import memory, models, sparse_adapter, training
from debias.methods.pcgu import partition
from debias.methods.pcgu.pairs import Pair, load_pairs
from debias.methods.recipe import Candidate, Recipe
from debias.models import DEFAULT_MODEL

Update = Literal["advantaged", "disadvantaged", "dynamic"]


@dataclass
class PcguConfig(anchor_text.AnchorOptions):
    model: str = DEFAULT_MODEL
    # Generated sets, joined by "+", or a JSONL file of {"prefix", "advantaged", "disadvantaged"}:
    # "attributes": a gendered subject, then a feminine vs a masculine trait ("My sister is very" ->
    #   " gentle" / " aggressive"), direction from the Bem Sex-Role Inventory; the default, because
    #   StereoSet scores p(attribute | group) and only this direction moved its gender SS without the
    #   embeddings (benchmarks/README.md);
    # "traits": a trait, then a gendered word ("The most gentle person ... was a" -> " woman" / " man");
    # "occupations": the project's prefixes x occupations, a pronoun as target, direction from % female
    #   in Winogender's BLS table (read and sha256-checked through harness_tasks._data);
    # "bias_types": the ten bias types' contrasts of debias/data/bias_pairs.py (race, religion, age ...),
    #   the stereotype advantaged, both directions.
    pairs: str = "attributes"
    aggregation: partition.Aggregation = "input"
    # units to update per selection: a fraction (<= 1; 1.0 = every unit, no partitioning) or a count (> 1)
    k: float = 0.01
    update: Update = "advantaged"
    # The token embedding / LM head rows of the target words (" she", " man" ...) have nearly opposed
    # gradients, so top-k picks them first; changing them moves those words in *every* context.
    update_embeddings: bool = False
    reselect: Literal["batch", "epoch"] = "batch"
    lr: float = 1e-3
    batch_size: int = 16
    epochs: int = 3
    seed: int = 0
    # Model selection (the paper's recipe): evaluate every epoch's checkpoint on a split that is never
    # reported, keep the one with |select_metric - 50| smallest among those whose LMS on that split is
    # at most max_lms_drop below the base model's. "" skips selection and keeps the last epoch.
    select_task: str = "gee_stereoset_select"
    select_metric: str = "ss_gender"
    max_lms_drop: float = 1.0
    # ... and whose word perplexity on held-out neutral text rose at most this much (0.03: 3 %; < 0: off)
    max_ppl_rise: float = 0.03
    # where the anchor's gradient may act: "step", the units this step selected; "changed", every unit
    # any step has changed so far (the adapter's support, so it stays as sparse): with "step" a unit moved
    # early and not selected again is never pulled back (measured: README, PCGU's anchor)
    anchor_units: Literal["step", "changed"] = "step"

    def __post_init__(self) -> None:
        if self.anchor_units not in ("step", "changed"):
            raise ValueError(f"anchor_units must be step or changed, not {self.anchor_units!r}")
        if self.k <= 0:
            raise ValueError(f"k must be > 0 (a fraction <= 1 or a count > 1), got {self.k}")
        if self.update not in ("advantaged", "disadvantaged", "dynamic"):
            raise ValueError(f"update must be advantaged, disadvantaged or dynamic, not {self.update!r}")
        self.check_anchor()


def target_logprobs(model, tokenizer, prefixes: list[str], targets: list[str]) -> torch.Tensor:
    """log p(target | prefix) per row, summed over the target's tokens (right padding)."""
    rows, spans = [], []
    for prefix, target in zip(prefixes, targets, strict=True):
        p = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        t = tokenizer(target, add_special_tokens=False)["input_ids"]
        if not p or not t:
            raise ValueError(f"empty prefix or target in pair {prefix!r} -> {target!r}")
        rows.append(p + t)
        spans.append((len(p), len(p) + len(t)))
    ids, mask, _ = training.pad(rows, pad_id=0)  # right padding: no real position attends to a pad
    device = next(model.parameters()).device
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    out = []
    for i, (start, end) in enumerate(spans):
        positions = torch.arange(start - 1, end - 1, device=device)
        tokens = ids[i, start:end].to(device)
        out.append(logprobs[i, positions, tokens].sum())
    return torch.stack(out)


def param_grads(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    """d loss / d param for each param; zeros for parameters the loss does not reach."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


class PcguTrainer:
    def __init__(
        self, cfg: PcguConfig, model, tokenizer, anchor: anchor_text.RetentionAnchor | None = None
    ) -> None:
        """``model`` must hold the base weights here: with an anchor they are kept aside as its base."""
        self.cfg, self.model, self.tokenizer, self.anchor = cfg, model, tokenizer, anchor
        for p in model.parameters():
            p.requires_grad_(True)
        self.units = partition.partition(model, cfg.aggregation)
        if not cfg.update_embeddings:
            embeddings = (model.get_input_embeddings(), model.get_output_embeddings())
            frozen = {id(m.weight) for m in embeddings if m is not None}
            self.units = [u for u in self.units if id(u.param) not in frozen]
        self.params = [u.param for u in self.units]
        # the base values of every parameter PCGU may edit (a model's worth of memory, only with an anchor)
        self.base_values = [p.detach().clone() for p in self.params] if anchor is not None else None
        self.changed: dict[str, set[int]] = {}
        self.selected: dict[str, torch.Tensor] | None = None
        self.guard = training.NonFiniteGuard(training.MAX_BAD_STEPS)
        self.steps_taken = 0

    @contextmanager
    def base_weights(self) -> Iterator[None]:
        """The base model for the length of the ``with``: each edited parameter's storage swapped for its
        kept-aside base values, then swapped back (no copy either way)."""
        if self.base_values is None:
            raise RuntimeError("base weights are kept only when the anchor is on")
        tuned = [p.data for p in self.params]
        for p, base in zip(self.params, self.base_values, strict=True):
            p.data = base
        try:
            yield
        finally:
            for p, values in zip(self.params, tuned, strict=True):
                p.data = values

    def anchor_gradients(self) -> tuple[list[torch.Tensor], float]:
        """(d KL / d param for each unit parameter, the KL) on the anchor's next batch."""
        device = next(self.model.parameters()).device
        kl, _ = anchor_text.anchor_loss(self.model, self.anchor.next_batch(), device, self.base_weights)
        return param_grads(kl, self.params), float(kl.detach())

    def step(self, batch: list[Pair], reselect: bool) -> dict[str, Any]:
        cfg, units = self.cfg, self.units
        prefixes = [p.prefix for p in batch]
        lp_a = target_logprobs(self.model, self.tokenizer, prefixes, [p.advantaged for p in batch])
        lp_d = target_logprobs(self.model, self.tokenizer, prefixes, [p.disadvantaged for p in batch])
        ga = param_grads(lp_a.sum(), self.params)
        gd = param_grads(lp_d.sum(), self.params)
        if reselect or self.selected is None:
            self.selected = partition.select_units(
                units,
                {u.name: g for u, g in zip(units, ga, strict=True)},
                {u.name: g for u, g in zip(units, gd, strict=True)},
                cfg.k,
            )
        if cfg.update == "advantaged":  # descend log p(advantaged)
            direction = ga
        elif cfg.update == "disadvantaged":  # ascend log p(disadvantaged)
            direction = [-g for g in gd]
        else:  # per pair: push the higher of the two down and the lower up
            sign = torch.sign(lp_a - lp_d).detach()
            direction = param_grads((sign * (lp_a - lp_d)).sum(), self.params)
        record: dict[str, Any] = {}
        pull: list[torch.Tensor] = []  # the anchor's step on every changed unit ("changed" mode)
        if self.anchor is not None:  # descend the KL too (masked below)
            anchor_grads, record["anchor_kl"] = self.anchor_gradients()
            scaled = [cfg.anchor_weight * len(batch) * g for g in anchor_grads]
            if cfg.anchor_units == "step":  # on the same selected units as the bias step
                direction = [d + a for d, a in zip(direction, scaled, strict=True)]
            else:
                pull = scaled
        self.steps_taken += 1
        gap = (lp_a - lp_d).detach()
        norm = float(torch.sqrt(sum(d.detach().float().square().sum() for d in [*direction, *pull])))
        if not self.guard.allow(self.steps_taken, float(gap.sum()), norm):
            return {
                "logprob_gap": float(gap.mean()),
                "advantaged_preferred": float((gap > 0).float().mean()),
                "selected_units": 0,
                "selected_params": 0,
                "skipped": True,
                **record,
            }
        with torch.no_grad():
            for unit, step in zip(units, direction, strict=True):
                indices = self.selected.get(unit.name)
                if indices is None:
                    continue
                unit.param.sub_(cfg.lr * step * partition.unit_mask(unit, indices))
                self.changed.setdefault(unit.name, set()).update(
                    [0] if unit.axis is None else indices.tolist()
                )
            for unit, anchor_step in zip(units, pull, strict=True) if pull else ():  # this step's too
                done = self.changed.get(unit.name)
                if done:
                    unit.param.sub_(
                        cfg.lr * anchor_step * partition.unit_mask(unit, torch.tensor(sorted(done)))
                    )
        return {
            "logprob_gap": float(gap.mean()),  # mean log p(adv) − log p(dis) before the step
            "advantaged_preferred": float((gap > 0).float().mean()),
            "selected_units": sum(int(v.numel()) for v in self.selected.values()),
            "selected_params": len(self.selected),
            **record,
        }

    def changed_slices(self) -> dict[str, tuple[int | None, torch.Tensor]]:
        axes = {u.name: u.axis for u in self.units}
        return {name: (axes[name], torch.tensor(sorted(idx))) for name, idx in self.changed.items()}


def epoch_batches(pairs: list[Pair], cfg: PcguConfig, epoch: int) -> list[list[Pair]]:
    """One epoch's batches, shuffled by the seed and the epoch number alone (so resuming repeats them)."""
    order = list(range(len(pairs)))
    random.Random(cfg.seed + epoch).shuffle(order)
    return [[pairs[i] for i in order[b : b + cfg.batch_size]] for b in range(0, len(order), cfg.batch_size)]


class PcguRecipe(Recipe):
    """Epoch loop: a sparse checkpoint per epoch (``checkpoints/epoch-N``), the candidates of selection.

    Resuming restarts at the first unfinished epoch from the last epoch's checkpoint: SGD keeps no state
    and each epoch's pair order comes from the seed, so the result equals an uninterrupted run.
    """

    method = "pcgu"
    unit = "epoch"
    quick = {"epochs": 1, "select_task": ""}
    resume_may_change = ("epochs",)  # more epochs may be asked of a run that stopped early

    def validate(self) -> None:
        load_pairs(self.cfg.pairs)  # a bad pair file fails before anything is written
        self.anchor_train, self.anchor_heldout = anchor_text.texts_for_config(self.cfg)

    def setup(self) -> None:
        cfg = self.cfg
        self.validate()
        self.check_resume()
        self.folder.path.mkdir(parents=True, exist_ok=True)
        self.done = self._completed_epochs() if self.resume else 0
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.model_ref = models.reference(cfg.model)
        self.model, self.tokenizer = models.load(str(self.model_ref.path))
        self.pairs = load_pairs(cfg.pairs)
        anchor, self.anchor_probe = anchor_text.anchors_for_config(
            self.tokenizer, self.anchor_train, self.anchor_heldout, cfg
        )
        self.trainer = PcguTrainer(cfg, self.model, self.tokenizer, anchor)  # before a resume applies epochs
        self.base_info = {"base_model": cfg.model, "base_weights_sha256": self.model_ref.weights_sha256}
        if self.done:
            last = self._checkpoint(self.done)
            sparse_adapter.apply(self.model, last, self.model_ref.weights_sha256)
            for name, (_, indices) in sparse_adapter.slices(last).items():
                self.trainer.changed[name] = set(indices.tolist())
        self.write_config(self.model_ref, None, self._device())

    def train(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        cfg, model = self.cfg, self.model
        batches_per_epoch = (len(self.pairs) + cfg.batch_size - 1) // cfg.batch_size
        bar = tqdm(
            total=cfg.epochs * batches_per_epoch,
            initial=self.done * batches_per_epoch,
            desc="PCGU",
            file=sys.stderr,
        )
        step = self.done * batches_per_epoch
        log = training.MetricsLog(self.folder.metrics, truncate_after_step=step if self.resume else None)
        for epoch in range(self.done + 1, cfg.epochs + 1):
            model.train()
            for b, batch in enumerate(epoch_batches(self.pairs, cfg, epoch)):
                started = time.perf_counter()
                if self.trainer.anchor is not None:
                    self.trainer.anchor.seek(step)  # one anchor batch a step: a resumed run reads the same
                metrics = self.trainer.step(batch, reselect=cfg.reselect == "batch" or b == 0)
                step += 1
                metrics.update(epoch=epoch, step=step, step_s=round(time.perf_counter() - started, 3))
                log.write(metrics)
                memory.release_freed_memory()
                bar.update(1)
                bar.set_postfix(gap=f"{metrics['logprob_gap']:.3f}", units=metrics["selected_units"])
            # the checkpoint last: its presence marks the epoch as finished
            sparse_adapter.save(self._checkpoint(epoch), model, self.trainer.changed_slices(), self.base_info)
        bar.close()
        model.eval()
        summary = {
            "method": "pcgu",
            "steps": step,
            "epochs": cfg.epochs,
            "pairs": len(self.pairs),
            "total_units": sum(u.count for u in self.trainer.units),
        }
        if self.anchor_probe is not None:  # KL(base ‖ tuned) on held-out neutral text (0 before training)
            summary["heldout_anchor_kl"] = anchor_text.mean_kl(
                model, self.anchor_probe, cfg.anchor_probe_batches, self._device(), self.trainer.base_weights
            )
        self.write_config(self.model_ref, summary, self._device())
        return summary

    def candidates(self) -> list[Candidate]:
        return [Candidate(str(e), self._checkpoint(e)) for e in range(1, self._completed_epochs() + 1)]

    def adapter_summary(self, adapter: Path) -> dict[str, Any]:
        return {"changed_units": sparse_adapter.units(adapter), "adapter_bytes": sparse_adapter.size(adapter)}

    def not_held_out(self) -> list[str]:
        notes = anchor_text.not_held_out(self.cfg.anchor_weight, self.cfg.anchor_text)
        # the pair directions come from Winogender's occupation statistics (not its sentences)
        if "occupations" in self.cfg.pairs.split("+"):
            notes.append("gee_winogender (its BLS statistic chose the pair directions)")
        return notes

    def _checkpoint(self, epoch: int) -> Path:
        return self.folder.checkpoint(f"epoch-{epoch}")

    def _completed_epochs(self) -> int:
        done = 0
        for epoch in range(1, self.cfg.epochs + 1):
            if not sparse_adapter.is_sparse_adapter(self._checkpoint(epoch)):
                break
            done = epoch
        return done

    def _device(self) -> str:
        return str(next(self.model.parameters()).device)
