"""The retention anchor: KL(base ‖ tuned) on neutral text, a term any LoRA method can add to its loss.

A debiasing objective only says what should change; left alone it also moves everything it does not
mention (PCGU lost LMS about 1:1 with the SS it gained). The anchor says what should *not* change: on
text that has nothing to do with the bias being removed, the tuned model's next-token distributions
should stay the base model's, ``KL(p_base(·|x<t) ‖ p_tuned(·|x<t))`` averaged over the text's tokens.

- The base is the same peft model with its adapter disabled: no second copy of the weights, and the
  KL is exactly 0 at initialisation (LoRA's B starts at zero), so the anchor never pulls a fresh
  adapter anywhere; its gradient is ``-Σ_v p_base(v) ∇ log p_tuned(v)``, zero at the start.
- The neutral text needs no external corpus: GSM8K *train* solutions and MMLU *dev* questions (read
  and sha256-checked through the benchmark data layer), never the items the retention tasks score
  (GSM8K test, MMLU test); or a user's file of texts. One seeded order, cycled; its position is part
  of a checkpoint, so a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from debias import training
from debias.data.sampler import SeededCycle

BUILTIN = "gsm8k_mmlu"
#: the same texts with GSM8K's calculator annotations kept (``<<48/2=24>>``), in ``gee_gsm8k_ppl``'s own
#: form: what the perplexity guard and the GSM8K budget score. The held-out side is the same items.
BUILTIN_ANNOTATED = "gsm8k_mmlu_annotated"
BUILTINS = (BUILTIN, BUILTIN_ANNOTATED)
#: how a text longer than the anchor's token limit is cut: "head" keeps its first ``max_tokens`` (the
#: default, what every earlier run did); "chunks" cuts it into consecutive ``max_tokens`` pieces, each
#: its own row. With 64 tokens "head" sees mostly GSM8K *questions* (median 56 tokens of a 141-token
#: text; 12 % of solution tokens); "chunks" reads every token at the same cost per step. Measured on
#: Gemma-3-270M (README, leaderboard row dpo-gnorm-warmup40-chunks), reading the solutions did not hold
#: GSM8K perplexity better: coverage is not what limits the anchor there.
CROPS = ("head", "chunks")


@dataclass
class AnchorOptions:
    """The anchor's flags, for a method config that adds them by inheriting (GEE, PCGU): off by default
    there, so those methods' earlier runs and rows keep their meaning. (DPO's and equalisation's configs
    spell the same fields with weight 0.3, their measured default.)"""

    anchor_weight: float = 0.0  # weight of KL(base ‖ tuned) on neutral text; 0 switches the anchor off
    anchor_text: str = BUILTIN  # "gsm8k_mmlu", "gsm8k_mmlu_annotated" or a file of texts
    anchor_batch_size: int = 4
    anchor_max_tokens: int = 64
    anchor_crop: str = "head"  # "head": each text's first anchor_max_tokens; "chunks": all of it
    anchor_probe_batches: int = 16  # held-out anchor text (every 10th text) probed after training

    def check_anchor(self) -> None:
        if self.anchor_weight < 0:
            raise ValueError(f"anchor_weight must be >= 0, got {self.anchor_weight}")
        if self.anchor_batch_size < 1 or self.anchor_probe_batches < 1:
            raise ValueError("anchor_batch_size and anchor_probe_batches must be >= 1")
        check_crop(self.anchor_crop)


def gsm8k_mmlu_texts(keep_annotations: bool = False) -> list[str]:
    """GSM8K train question + solution, and MMLU dev questions with their four options, as plain text.

    The task layer owns the reading: ``gee_neutral_ppl_select`` scores the held-out side of this list."""
    from harness_tasks.retention import utils

    return utils.neutral_texts(keep_annotations=keep_annotations)


def load_texts(spec: str) -> list[str]:
    """``gsm8k_mmlu`` / ``gsm8k_mmlu_annotated`` (built-in neutral text) or a user file (text lines;
    JSONL/CSV/parquet ``text``)."""
    if spec in BUILTINS:
        return gsm8k_mmlu_texts(keep_annotations=spec == BUILTIN_ANNOTATED)
    path = Path(spec)
    if path.suffix in (".txt", ""):
        try:
            raw = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: cannot read the anchor text ({err})") from None
        texts = [line for line in raw.splitlines() if line.strip()]
    else:
        from debias.data.user_prompts import read_records, record_text

        texts = [record_text(path, where, rec, "text") for where, rec in read_records(path, ("text",))]
    if not texts:
        raise ValueError(f"{path}: no anchor text (one text per line, or records with a 'text' field)")
    return texts


def kl_base_tuned(base_logits: torch.Tensor, tuned_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked positions of ``KL(softmax(base) ‖ softmax(tuned))`` (nats per token).

    ``base_logits``/``tuned_logits``: (batch, positions, vocab); ``mask``: (batch, positions), 1 where the
    position's prediction counts. Computed in float32 at least: a bf16 KL of near-equal distributions is
    mostly rounding error.
    """
    dtype = torch.promote_types(tuned_logits.dtype, torch.float32)
    base = torch.log_softmax(base_logits.to(dtype), dim=-1)
    tuned = torch.log_softmax(tuned_logits.to(dtype), dim=-1)
    per_position = (base.exp() * (base - tuned)).sum(-1)
    weights = mask.to(per_position.dtype)
    return (per_position * weights).sum() / weights.sum().clamp(min=1.0)


def split_texts(texts: Sequence[str], spec: str) -> tuple[list[str], list[str]]:
    """(training texts, held-out texts): every 10th text is held out, so the anchor probe never reads
    what the anchor trains on. Fewer than two texts leave one side empty: refused."""
    from harness_tasks.retention.utils import neutral_split

    train, heldout = neutral_split(texts)
    if not (train and heldout):
        raise ValueError(f"{spec}: the anchor needs at least two texts")
    return train, heldout


def not_held_out(weight: float, spec: str) -> list[str]:
    """What a run using the anchor can no longer call held out (the run's warnings and report say it)."""
    if weight > 0 and spec in BUILTINS:
        return [
            "gee_gsm8k_ppl shares the anchor text's distribution (the anchor reads GSM8K train "
            "solutions; the task scores test solutions)"
        ]
    return []


def check_crop(crop: str) -> None:
    if crop not in CROPS:
        raise ValueError(f"anchor crop must be one of {', '.join(CROPS)}, got {crop!r}")


def cut(ids: list[int], max_tokens: int, crop: str) -> list[list[int]]:
    """One text's token ids as anchor rows: its head, or all of it in consecutive ``max_tokens`` pieces."""
    if crop == "head":
        return [ids[:max_tokens]]
    return [ids[i : i + max_tokens] for i in range(0, len(ids), max_tokens)]


@dataclass
class AnchorBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def prediction_mask(self) -> torch.Tensor:
        """Positions whose next token is real text: every non-pad position but each row's last."""
        mask = self.attention_mask.clone()
        mask[:, :-1] = mask[:, :-1] * self.attention_mask[:, 1:]
        mask[:, -1] = 0
        return mask


class RetentionAnchor:
    """Batches of neutral text and the KL term on them; ``state_dict`` makes its order resumable."""

    def __init__(
        self,
        tokenizer,
        texts: Sequence[str],
        batch_size: int,
        max_tokens: int,
        seed: int,
        crop: str = "head",
    ) -> None:
        if batch_size < 1 or max_tokens < 2:
            raise ValueError("anchor batch size must be >= 1 and anchor max tokens >= 2")
        check_crop(crop)
        self.tokenizer, self.batch_size = tokenizer, batch_size
        self.rows = [
            piece
            for t in texts
            for piece in cut(tokenizer.encode(t, add_special_tokens=False), max_tokens, crop)
            if len(piece) >= 2
        ]
        if not self.rows:
            raise ValueError("the anchor text has no text of two tokens or more")
        self.cycle = SeededCycle(len(self.rows), seed)

    @classmethod
    def for_config(cls, tokenizer, texts: Sequence[str], cfg: Any) -> RetentionAnchor:
        """The anchor a method config asks for (its ``anchor_batch_size``, ``anchor_max_tokens``,
        ``anchor_crop`` and ``seed``)."""
        return cls(tokenizer, texts, cfg.anchor_batch_size, cfg.anchor_max_tokens, cfg.seed, cfg.anchor_crop)

    def next_batch(self) -> AnchorBatch:
        picked = [self.rows[i] for i in self.cycle.take(self.batch_size)]
        ids, attn, _ = training.pad(picked, self.tokenizer.pad_token_id)
        return AnchorBatch(ids, attn)

    def seek(self, batches: int) -> None:
        """Position the order after ``batches`` batches: for loops that know their step, not the order."""
        self.cycle.seek(batches * self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        return self.cycle.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cycle.load_state_dict(state)


#: what makes a model compute the base model's logits for the length of a ``with``
BaseContext = Callable[[], AbstractContextManager]


def texts_for_config(cfg: Any) -> tuple[list[str], list[str]]:
    """(training texts, held-out texts) of the anchor a method config asks for (``anchor_weight``,
    ``anchor_text``); both empty with the anchor off. Read in a recipe's ``validate``, so a bad anchor
    file fails before anything is written."""
    if cfg.anchor_weight <= 0:
        return [], []
    return split_texts(load_texts(cfg.anchor_text), cfg.anchor_text)


def anchors_for_config(
    tokenizer, train: Sequence[str], heldout: Sequence[str], cfg: Any
) -> tuple[RetentionAnchor | None, RetentionAnchor | None]:
    """(the training anchor, the held-out probe's), or (None, None) with the anchor off."""
    if cfg.anchor_weight <= 0:
        return None, None
    return RetentionAnchor.for_config(tokenizer, train, cfg), RetentionAnchor.for_config(
        tokenizer, heldout, cfg
    )


def anchor_loss(
    model, batch: AnchorBatch, device, base: BaseContext | None = None
) -> tuple[torch.Tensor, int]:
    """(KL(base ‖ tuned) with graph through the tuned side, tokens). The base is the adapter disabled, or,
    for a method that edits the weights themselves (PCGU), whatever ``base`` swaps in."""
    ids, attn = batch.input_ids.to(device), batch.attention_mask.to(device)
    with torch.no_grad(), (base or model.disable_adapter)():
        base_logits = model(input_ids=ids, attention_mask=attn).logits
    tuned_logits = model(input_ids=ids, attention_mask=attn).logits
    mask = batch.prediction_mask.to(device)
    return kl_base_tuned(base_logits, tuned_logits, mask), int(mask.sum())


@torch.no_grad()
def mean_kl(model, anchor: RetentionAnchor, batches: int, device, base: BaseContext | None = None) -> float:
    """The anchor KL over ``batches`` fixed batches (no gradient): a held-out retention probe."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    for _ in range(batches):
        kl, n = anchor_loss(model, anchor.next_batch(), device, base)
        total, tokens = total + float(kl) * n, tokens + n
    model.train(was_training)
    return total / max(tokens, 1)


__all__ = [
    "BUILTIN",
    "BUILTINS",
    "BUILTIN_ANNOTATED",
    "AnchorBatch",
    "AnchorOptions",
    "RetentionAnchor",
    "anchor_loss",
    "anchors_for_config",
    "gsm8k_mmlu_texts",
    "kl_base_tuned",
    "load_texts",
    "mean_kl",
    "not_held_out",
    "split_texts",
    "texts_for_config",
]
