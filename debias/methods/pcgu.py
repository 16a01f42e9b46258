"""PCGU for causal LMs: partitioned contrastive gradient unlearning (Yu et al., Findings of ACL 2023).

The paper's masked-LM recipe, ported: a pair is a shared prefix and two targets that differ in the group
word ("The nurse said that" → " she" / " he"). For each batch, the gradients of log p(advantaged | prefix)
and log p(disadvantaged | prefix) are taken separately; every weight unit (a logical row or column, see
``debias.partition``) gets the cosine of its two gradient slices; the k units where the two point most
apart are the ones that tell the groups apart, and only they take an SGD step (lower the advantaged
log-prob by default). Only the touched slices are saved (``debias.sparse_adapter``).
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from debias import partition, sparse_adapter, training
from debias.models import DEFAULT_MODEL

Update = Literal["advantaged", "disadvantaged", "dynamic"]

# The project's own prefixes (none from Winogender, StereoSet or CrowS-Pairs); {occupation} is filled in.
PREFIXES: tuple[str, ...] = (
    "The {occupation} said that",
    "I asked the {occupation} whether",
    "After the meeting, the {occupation} told everyone that",
    "The {occupation} finished the shift early because",
    "Everyone agreed that the {occupation} did a good job, so",
    "When the {occupation} arrived at work,",
    "The {occupation} called the office and said",
    "Before lunch, the {occupation} mentioned that",
)
PRONOUNS = {"female": " she", "male": " he"}


@dataclass
class PcguConfig:
    model: str = DEFAULT_MODEL
    # Generated sets, joined by "+", or a JSONL file of {"prefix", "advantaged", "disadvantaged"}:
    # "attributes": a gendered subject, then a feminine vs a masculine trait ("My sister is very" ->
    #   " gentle" / " aggressive"), direction from the Bem Sex-Role Inventory; the default, because
    #   StereoSet scores p(attribute | group) and only this direction moved its gender SS without the
    #   embeddings (benchmarks/README.md);
    # "traits": a trait, then a gendered word ("The most gentle person ... was a" -> " woman" / " man");
    # "occupations": the project's prefixes x occupations, a pronoun as target, direction from % female
    #   in Winogender's BLS table (read and sha256-checked through harness_tasks._data).
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

    def __post_init__(self) -> None:
        if self.k <= 0:
            raise ValueError(f"k must be > 0 (a fraction <= 1 or a count > 1), got {self.k}")
        if self.update not in ("advantaged", "disadvantaged", "dynamic"):
            raise ValueError(f"update must be advantaged, disadvantaged or dynamic, not {self.update!r}")


QUICK = {"epochs": 1, "select_task": ""}


@dataclass(frozen=True)
class Pair:
    prefix: str
    advantaged: str
    disadvantaged: str


def occupation_pairs() -> list[Pair]:
    """Prefixes x occupations; the advantaged pronoun is the occupation's majority gender (BLS % female)."""
    from harness_tasks import _data
    from harness_tasks.winogender.utils import read_stats

    stats = read_stats(_data.data_file("winogender/occupations-stats.tsv"))
    pairs = []
    for occupation, row in sorted(stats.items()):
        female_majority = float(row["bls_pct_female"]) > 50.0
        adv, dis = ("female", "male") if female_majority else ("male", "female")
        for prefix in PREFIXES:
            pairs.append(Pair(prefix.format(occupation=occupation), PRONOUNS[adv], PRONOUNS[dis]))
    return pairs


def trait_pairs() -> list[Pair]:
    """Trait prefixes x gendered words; the advantaged word is the trait's BSRI gender (data.trait_pairs)."""
    from debias.data.trait_pairs import trait_pair_rows

    return [Pair(*row) for row in trait_pair_rows()]


def attribute_pairs() -> list[Pair]:
    """Gendered subjects x BSRI traits as targets (data.trait_pairs.attribute_pair_rows)."""
    from debias.data.trait_pairs import attribute_pair_rows

    return [Pair(*row) for row in attribute_pair_rows()]


GENERATED_PAIRS = {"occupations": occupation_pairs, "traits": trait_pairs, "attributes": attribute_pairs}


def load_pairs(spec: str) -> list[Pair]:
    """``spec``: generated sets joined by "+" ("occupations", "occupations+traits", ...) or a JSONL path."""
    names = spec.split("+")
    if all(name in GENERATED_PAIRS for name in names):
        return [pair for name in names for pair in GENERATED_PAIRS[name]()]
    if not Path(spec).is_file():
        raise ValueError(f"--pairs {spec!r}: neither {' / '.join(GENERATED_PAIRS)} (joined by +) nor a file")
    return read_pairs(Path(spec))


def read_pairs(path: Path) -> list[Pair]:
    pairs = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.append(Pair(str(row["prefix"]), str(row["advantaged"]), str(row["disadvantaged"])))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{path}:{number}: expected {{prefix, advantaged, disadvantaged}} ({exc})"
            ) from None
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


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
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    device = next(model.parameters()).device
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    out = []
    for i, (start, end) in enumerate(spans):
        positions = torch.arange(start - 1, end - 1, device=device)
        tokens = ids[i, start:end].to(device)
        out.append(logprobs[i, positions, tokens].sum())
    return torch.stack(out)


def _grads(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    """d loss / d param for each param; zeros for parameters the loss does not reach."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


class PcguTrainer:
    def __init__(self, cfg: PcguConfig, model, tokenizer) -> None:
        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        for p in model.parameters():
            p.requires_grad_(True)
        self.units = partition.partition(model, cfg.aggregation)
        if not cfg.update_embeddings:
            embeddings = (model.get_input_embeddings(), model.get_output_embeddings())
            frozen = {id(m.weight) for m in embeddings if m is not None}
            self.units = [u for u in self.units if id(u.param) not in frozen]
        self.params = [u.param for u in self.units]
        self.changed: dict[str, set[int]] = {}
        self.selected: dict[str, torch.Tensor] | None = None

    def step(self, batch: list[Pair], reselect: bool) -> dict[str, Any]:
        cfg, units = self.cfg, self.units
        prefixes = [p.prefix for p in batch]
        lp_a = target_logprobs(self.model, self.tokenizer, prefixes, [p.advantaged for p in batch])
        lp_d = target_logprobs(self.model, self.tokenizer, prefixes, [p.disadvantaged for p in batch])
        ga = _grads(lp_a.sum(), self.params)
        gd = _grads(lp_d.sum(), self.params)
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
            direction = _grads((sign * (lp_a - lp_d)).sum(), self.params)
        with torch.no_grad():
            for unit, step in zip(units, direction, strict=True):
                indices = self.selected.get(unit.name)
                if indices is None:
                    continue
                unit.param.sub_(cfg.lr * step * partition.unit_mask(unit, indices))
                self.changed.setdefault(unit.name, set()).update(
                    [0] if unit.axis is None else indices.tolist()
                )
        gap = (lp_a - lp_d).detach()
        return {
            "logprob_gap": float(gap.mean()),  # mean log p(adv) − log p(dis) before the step
            "advantaged_preferred": float((gap > 0).float().mean()),
            "selected_units": sum(int(v.numel()) for v in self.selected.values()),
            "selected_params": len(self.selected),
        }

    def changed_slices(self) -> dict[str, tuple[int | None, torch.Tensor]]:
        axes = {u.name: u.axis for u in self.units}
        return {name: (axes[name], torch.tensor(sorted(idx))) for name, idx in self.changed.items()}


def epoch_batches(pairs: list[Pair], cfg: PcguConfig, epoch: int) -> list[list[Pair]]:
    """One epoch's batches, shuffled by the seed and the epoch number alone (so resuming repeats them)."""
    order = list(range(len(pairs)))
    random.Random(cfg.seed + epoch).shuffle(order)
    return [[pairs[i] for i in order[b : b + cfg.batch_size]] for b in range(0, len(order), cfg.batch_size)]


def choose_checkpoint(
    base: dict[str, float], epochs: dict[int, dict[str, float]], metric: str, max_lms_drop: float
) -> tuple[int, str]:
    """(epoch, why): the checkpoint with |metric − 50| smallest among those within the LMS budget.

    When no checkpoint stays within the budget the one that lost the least LMS is kept, and ``why`` says
    so: the run still produces an adapter, and the caller records the warning next to it.
    """
    if not epochs:
        raise ValueError("no checkpoint to choose from")
    drops = {e: base["lms"] - m["lms"] for e, m in epochs.items()}
    eligible = [e for e in sorted(epochs) if drops[e] <= max_lms_drop]
    if eligible:
        best = min(eligible, key=lambda e: abs(epochs[e][metric] - 50.0))
        return best, (
            f"epoch {best}: |{metric} - 50| = {abs(epochs[best][metric] - 50.0):.2f}, the smallest among "
            f"{len(eligible)} of {len(epochs)} checkpoints with LMS drop <= {max_lms_drop:g} "
            f"(this one {drops[best]:.2f})"
        )
    best = min(sorted(epochs), key=lambda e: drops[e])
    return best, (
        f"no checkpoint kept the LMS drop <= {max_lms_drop:g}; kept epoch {best}, the smallest drop "
        f"({drops[best]:.2f})"
    )


def _selection_metrics(results: dict[str, Any], task: str, metric: str) -> dict[str, float]:
    from debias import evaluation

    values = evaluation.summary(results).get(task, {})
    missing = [name for name in (metric, "lms") if name not in values]
    if missing:
        raise ValueError(f"selection task {task!r} reports no {', '.join(missing)} (a StereoSet task does)")
    return {name: float(values[name]) for name in sorted(values) if name.startswith(("ss", "lms", "icat"))}


def _epoch_checkpoint(out: Path, epoch: int) -> Path:
    return out / training.CHECKPOINTS / f"epoch-{epoch}"


def _completed_epochs(out: Path, epochs: int) -> int:
    done = 0
    for epoch in range(1, epochs + 1):
        if not sparse_adapter.is_sparse_adapter(_epoch_checkpoint(out, epoch)):
            break
        done = epoch
    return done


def train(cfg: PcguConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    """Epoch loop: a sparse checkpoint per epoch, each scored on the selection split; the chosen one
    becomes ``adapter/``.

    Resuming restarts at the first unfinished epoch from the last epoch's checkpoint: SGD keeps no state
    and each epoch's pair order comes from the seed, so the result equals an uninterrupted run.
    """
    from debias import evaluation, models, pipeline
    from debias.atomic import atomic_dir

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps(dataclasses.asdict(cfg)))
    state_file = out / "train_state.json"
    if cfg.select_task:
        evaluation.check_task_names([cfg.select_task])
    done = 0
    if resume and state_file.is_file():
        previous = json.loads(state_file.read_text())["config"]
        # more epochs may be asked of a run that stopped early; anything else would mix two runs
        changed = [c for c in training.settings_difference(previous, settings) if not c.startswith("epochs:")]
        if changed:
            raise ValueError(f"{out}: started with other settings ({'; '.join(changed)}); use another --out")
        done = _completed_epochs(out, cfg.epochs)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    path = models.resolve(cfg.model)
    model, tokenizer = models.load(cfg.model)
    fingerprint = models.model_fingerprint(path)
    pairs = load_pairs(cfg.pairs)
    trainer = PcguTrainer(cfg, model, tokenizer)
    base_info = {"base_model": cfg.model, "base_weights_sha256": fingerprint.get("weights_sha256")}
    selection: dict[str, Any] = {"task": cfg.select_task, "metric": cfg.select_metric, "epochs": {}}
    if done:
        last = _epoch_checkpoint(out, done)
        sparse_adapter.apply(model, last, fingerprint.get("weights_sha256"))
        for name, (_, indices) in sparse_adapter.slices(last).items():
            trainer.changed[name] = set(indices.tolist())
        if (out / "selection.json").is_file():
            kept = json.loads((out / "selection.json").read_text())
            selection["epochs"] = {k: v for k, v in kept.get("epochs", {}).items() if int(k) <= done}
    evaluation.write_json_atomic(state_file, {"config": settings})
    if cfg.select_task:
        request = evaluation.EvalRequest(tasks=[cfg.select_task], seed=cfg.seed)
        base_results, _ = pipeline.base_results(cfg.model, request)
        selection["base"] = _selection_metrics(base_results, cfg.select_task, cfg.select_metric)
    from tqdm.auto import tqdm

    batches_per_epoch = (len(pairs) + cfg.batch_size - 1) // cfg.batch_size
    bar = tqdm(
        total=cfg.epochs * batches_per_epoch, initial=done * batches_per_epoch, desc="PCGU", file=sys.stderr
    )
    step = done * batches_per_epoch
    log = training.MetricsLog(out / "metrics.jsonl", truncate_after_step=step if resume else None)
    for epoch in range(done + 1, cfg.epochs + 1):
        model.train()
        for b, batch in enumerate(epoch_batches(pairs, cfg, epoch)):
            started = time.perf_counter()
            metrics = trainer.step(batch, reselect=cfg.reselect == "batch" or b == 0)
            step += 1
            metrics.update(epoch=epoch, step=step, step_s=round(time.perf_counter() - started, 3))
            log.write(metrics)
            bar.update(1)
            bar.set_postfix(gap=f"{metrics['logprob_gap']:.3f}", units=metrics["selected_units"])
        if cfg.select_task:
            model.eval()
            scored = evaluation.evaluate(model, tokenizer, request, tokenizer_path=str(path))
            selection["epochs"][str(epoch)] = _selection_metrics(scored, cfg.select_task, cfg.select_metric)
            evaluation.write_json_atomic(out / "selection.json", selection)
        # the checkpoint last: its presence marks the epoch (and its selection score) as finished
        sparse_adapter.save(_epoch_checkpoint(out, epoch), model, trainer.changed_slices(), base_info)
    bar.close()
    if cfg.select_task:
        chosen, why = choose_checkpoint(
            selection["base"],
            {int(k): v for k, v in selection["epochs"].items()},
            cfg.select_metric,
            cfg.max_lms_drop,
        )
    else:
        chosen, why = cfg.epochs, "no selection task: the last epoch"
    selection.update(chosen_epoch=chosen, why=why, max_lms_drop=cfg.max_lms_drop)
    evaluation.write_json_atomic(out / "selection.json", selection)
    with atomic_dir(out / "adapter") as tmp:
        for item in _epoch_checkpoint(out, chosen).iterdir():
            shutil.copy2(item, tmp / item.name)
    size = sparse_adapter.size(out / "adapter")
    summary = {
        "method": "pcgu",
        "steps": step,
        "epochs": cfg.epochs,
        "chosen_epoch": chosen,
        "selection": why,
        "pairs": len(pairs),
        "changed_units": sparse_adapter.units(out / "adapter"),
        "total_units": sum(u.count for u in trainer.units),
        "adapter_bytes": size,
        # the pair directions come from Winogender's occupation statistics (not its sentences)
        "not_held_out": (
            ["gee_winogender (its BLS statistic chose the pair directions)"]
            if "occupations" in cfg.pairs.split("+")
            else []
        )
        + (
            [
                f"{cfg.select_task} and the same examples inside gee_stereoset (checkpoint selection; "
                "gee_stereoset_report is held out)"
            ]
            if cfg.select_task
            else []
        ),
    }
    evaluation.write_json_atomic(
        out / "config.json",
        {
            "method": "pcgu",
            "config": settings,
            "model": {"spec": cfg.model, "fingerprint": fingerprint},
            "training": summary,
            "device": str(next(model.parameters()).device),
            "processes": 1,
            "libraries": evaluation.library_versions(),
        },
    )
    return summary
