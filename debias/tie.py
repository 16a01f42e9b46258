"""The tie term: pairs whose two continuations should end up equally likely, a term any LoRA method can add.

A preference loss (DPO) has no optimum short of the reverse preference: on the role → pronoun pairs
(``debias.data.role_pairs``) it pushes "he" after "nanny" until the stereotype is flipped, and measured
on both models that cost StereoSet LMS and, on Gemma-3-270M, neutral perplexity (README, "Role → pronoun
pairs"; the training text is full of pronouns that refer to people). For a pronoun after a job title the
unbiased answer is not the other pronoun but either: the tie term is equalisation's symmetric KL
(``equalize_loss``, BiasEdit's objective) on ``Δ = log p(chosen) − log p(rejected)``, zero at the tie,
growing like ``|Δ|/2`` far from it, so it stops pulling once the pair is even and never rewards a flip.

Its pairs are drawn in one seeded order, a batch per step, positioned by the step (``seek``), so a
resumed run reads the same pairs, exactly as the retention anchor's texts. Both continuations of a batch
are scored in one forward pass through the tuned model (the graph is kept): summed log-probabilities of
the continuation tokens, which for the role pairs differ in the pronoun and in what follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from debias import training
from debias.data.sampler import SeededCycle

Loss = Literal["sym_kl", "squared"]


def equalize_loss(delta: torch.Tensor, kind: Loss = "sym_kl") -> torch.Tensor:
    """Per pair: ``sym_kl`` — KL(q‖u) + KL(u‖q) between the pair's renormalised two-outcome distribution
    ``q = (σ(Δ), 1 − σ(Δ))`` and the even split ``u``, which is ``(σ(Δ) − ½)·Δ`` — or ``squared``, ``Δ²``."""
    if kind == "sym_kl":
        return (torch.sigmoid(delta) - 0.5) * delta
    if kind == "squared":
        return delta.square()
    raise ValueError(f"unknown equalisation loss {kind!r}; expected 'sym_kl' or 'squared'")


class TieTerm:
    """Batches of (prompt, a, b) continuation pairs and the tie loss on them."""

    def __init__(self, tokenizer, pairs: Sequence[Any], batch_size: int, seed: int) -> None:
        """``pairs``: objects with ``prompt``, ``chosen`` and ``rejected`` (which is which does not matter:
        the loss is symmetric)."""
        if batch_size < 1:
            raise ValueError(f"tie batch size must be >= 1, got {batch_size}")
        if not pairs:
            raise ValueError("the tie term has no pairs")
        self.tokenizer, self.batch_size = tokenizer, batch_size
        self.rows = [_encode(tokenizer, p.prompt, p.chosen, p.rejected) for p in pairs]
        self.cycle = SeededCycle(len(self.rows), seed)

    def seek(self, batches: int) -> None:
        """Position the order after ``batches`` batches (a loop that knows its step, not the order)."""
        self.cycle.seek(batches * self.batch_size)

    def next_batch(self) -> list[tuple[list[int], tuple[int, int], list[int], tuple[int, int]]]:
        return [self.rows[i] for i in self.cycle.take(self.batch_size)]

    def loss(self, model, batch, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean tie loss with the tuned model's graph, the pairs' mean |Δ| detached)."""
        delta = log_ratios(model, batch, self.tokenizer.pad_token_id, device)
        return equalize_loss(delta).mean(), delta.detach().abs().mean()


def _encode(tokenizer, prompt: str, a: str, b: str):
    """Each side as (token ids, (start, end) of its continuation): the prompt tokenized once, then the
    continuation on its own, as the DPO trainer tokenizes a pair."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    rows = []
    for continuation in (a, b):
        c = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not c:
            raise ValueError(f"tie pair {prompt!r}: an empty continuation")
        rows += [p + c, (len(p), len(p) + len(c))]
    return tuple(rows)


def log_ratios(model, batch, pad_id: int, device) -> torch.Tensor:
    """Per pair ``log p(a | prompt) − log p(b | prompt)``, summed over each continuation's tokens."""
    sequences = [row for pair in batch for row in (pair[0], pair[2])]
    spans = [span for pair in batch for span in (pair[1], pair[3])]
    ids, attn, _ = training.pad(sequences, pad_id)
    ids, attn = ids.to(device), attn.to(device)
    logits = model(input_ids=ids, attention_mask=attn).logits
    logp = training.span_logprobs(logits, ids, spans).view(-1, 2)
    return logp[:, 0] - logp[:, 1]


@torch.no_grad()
def mean_abs_log_ratio(model, term: TieTerm, batch_size: int = 32) -> float:
    """Mean |Δ| over every pair of ``term`` (no gradient): how far from even the pairs are."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    pad_id, total = term.tokenizer.pad_token_id, 0.0
    for i in range(0, len(term.rows), batch_size):
        total += float(log_ratios(model, term.rows[i : i + batch_size], pad_id, device).abs().sum())
    model.train(was_training)
    return total / len(term.rows)


__all__ = ["Loss", "TieTerm", "equalize_loss", "log_ratios", "mean_abs_log_ratio"]
