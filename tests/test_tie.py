"""The tie term (debias.tie): its log-ratios against an independent per-sequence computation on the real
default model, zero loss and gradient at a tie, symmetry, and the step-positioned batch order."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from debias import tie
from debias.data import role_pairs


def _pair(prompt: str, a: str, b: str) -> SimpleNamespace:
    return SimpleNamespace(prompt=prompt, chosen=a, rejected=b)


def _continuation_logp(model, tokenizer, prompt: str, continuation: str) -> float:
    """log p(continuation | prompt) from one unpadded sequence: the full sequence's summed log-prob of
    the continuation's tokens, read position by position."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + c])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    return sum(float(logprobs[len(p) + i - 1, token]) for i, token in enumerate(c))


def test_equalize_loss_by_hand():
    # sym_kl = (σ(Δ) − ½)·Δ: at Δ = 2, (0.880797 − 0.5)·2 = 0.761594; even in Δ; 0 at the tie
    out = tie.equalize_loss(torch.tensor([2.0, -2.0, 0.0]))
    assert out.tolist() == pytest.approx([0.761594, 0.761594, 0.0], abs=1e-6)
    assert tie.equalize_loss(torch.tensor([3.0]), "squared").item() == 9.0


def test_log_ratios_match_unpadded_sequences_and_a_tie_pulls_nowhere(smollm2):
    model, tokenizer, _ = smollm2
    pairs = [
        _pair("The pilot checked the list twice, and then", " she signed the form.", " he signed the form."),
        _pair("When the florist got home that evening,", " he made tea.", " she made a cup of tea."),
        _pair("Our nanny is very organised;", " she keeps receipts.", " she keeps receipts."),  # a tie
    ]
    term = tie.TieTerm(tokenizer, pairs, batch_size=3, seed=0)
    with torch.no_grad():
        delta = tie.log_ratios(model, term.rows, tokenizer.pad_token_id, "cpu")
    for got, p in zip(delta.tolist(), pairs, strict=True):
        want = _continuation_logp(model, tokenizer, p.prompt, p.chosen) - _continuation_logp(
            model, tokenizer, p.prompt, p.rejected
        )
        assert got == pytest.approx(want, abs=2e-3)  # float32 padded batch vs float64 single rows
    assert delta[2].item() == 0.0
    # swapping a pair's sides negates its log-ratio; the loss is the same
    swapped = tie.TieTerm(tokenizer, [_pair(p.prompt, p.rejected, p.chosen) for p in pairs], 3, seed=0)
    with torch.no_grad():
        back = tie.log_ratios(model, swapped.rows, tokenizer.pad_token_id, "cpu")
    torch.testing.assert_close(back, -delta, rtol=0, atol=1e-4)
    # at a tie the term has no gradient at all
    tied = tie.TieTerm(tokenizer, [pairs[2]], 1, seed=0)
    loss, abs_delta = tied.loss(model, tied.rows, "cpu")
    model.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert loss.item() == 0.0 and abs_delta.item() == 0.0
    assert grads and all(float(g.abs().max()) == 0.0 for g in grads)
    model.zero_grad(set_to_none=True)
    # the mean |Δ| helper agrees with the batch
    assert tie.mean_abs_log_ratio(model, term, batch_size=2) == pytest.approx(
        float(delta.abs().mean()), abs=1e-4
    )


def test_seek_draws_what_an_uninterrupted_order_draws(smollm2):
    _, tokenizer, _ = smollm2
    pairs = role_pairs.generate("heldout")  # 60 pairs: a batch of 7 wraps into a second pass by step 9
    walked = tie.TieTerm(tokenizer, pairs, batch_size=7, seed=3)
    batches = [walked.next_batch() for _ in range(12)]
    jumped = tie.TieTerm(tokenizer, pairs, batch_size=7, seed=3)
    for step in (11, 0, 8, 9):
        jumped.seek(step)
        assert jumped.next_batch() == batches[step]
    assert walked.cycle.epoch == 1  # the walk did wrap into a second, reshuffled pass


def test_refuses_empty_input(smollm2):
    _, tokenizer, _ = smollm2
    with pytest.raises(ValueError, match="no pairs"):
        tie.TieTerm(tokenizer, [], 1, 0)
    with pytest.raises(ValueError, match="batch size"):
        tie.TieTerm(tokenizer, [_pair("a", " b", " c")], 0, 0)
    with pytest.raises(ValueError, match="empty continuation"):
        tie.TieTerm(tokenizer, [_pair("a", "", " c")], 1, 0)
