"""Hand-computed tests for debias.methods.gee.losses (pure math, CPU, fast)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from debias.methods.gee.losses import (
    annealed_lambda,
    gap_loss,
    gap_reached,
    gee_loss,
    group_entropy_stats,
    group_means,
    logit_mask_from_token_mask,
    masked_entropy_sums,
    max_gap,
    surrogate_coefficients,
    surrogate_loss,
    token_entropy,
)

LN2 = math.log(2.0)
LN3 = math.log(3.0)
LN4 = math.log(4.0)


def naive_entropy(logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Unchunked plain-autograd reference: [B, T], zero where unscored."""
    logp = torch.log_softmax(logits.to(torch.float64) / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1) * (mask != 0)


# ------------------------------------------------------------------------------------------------
# token entropy: hand values
# ------------------------------------------------------------------------------------------------


def test_uniform_entropy_is_log_v() -> None:
    # all-equal logits over V=4 → p = 1/4 each → H = -4 · (1/4) ln(1/4) = ln 4 ≈ 1.386294
    logits = torch.zeros(1, 1, 4)
    h = token_entropy(logits, torch.ones(1, 1, dtype=torch.bool))
    assert h.item() == pytest.approx(LN4, abs=1e-6)


def test_one_hot_logits_entropy_is_zero() -> None:
    # logits [100, 0, 0, 0]: p_others = e^-100 / (1 + 3e^-100) ≈ 3.7e-44 → H ≈ 3·e^-100·100 ≈ 1e-41 ≈ 0
    logits = torch.tensor([[[100.0, 0.0, 0.0, 0.0]]])
    h = token_entropy(logits, torch.ones(1, 1))
    assert h.item() == pytest.approx(0.0, abs=1e-6)


def test_two_class_temperature_by_hand() -> None:
    logits = torch.tensor([[[LN3, 0.0]]], dtype=torch.float64)
    mask = torch.ones(1, 1)
    # T=1: p = softmax([ln 3, 0]) = [3/4, 1/4]
    #   H = -(3/4 ln 3/4 + 1/4 ln 1/4) = ln 4 - (3/4) ln 3 = 1.386294 - 0.823959 = 0.562335
    h1 = token_entropy(logits, mask, temperature=1.0).item()
    assert h1 == pytest.approx(LN4 - 0.75 * LN3, abs=1e-9)
    assert h1 == pytest.approx(0.562335, abs=1e-6)
    # T=2: z = [ln 3 / 2, 0] = [ln √3, 0] → p = [√3, 1] / (1 + √3) = [0.633975, 0.366025]
    #   H = -(0.633975 · ln 0.633975 + 0.366025 · ln 0.366025)
    #     = -(0.633975 · -0.455746 + 0.366025 · -1.005053) = 0.288932 + 0.367875 = 0.656806
    h2 = token_entropy(logits, mask, temperature=2.0).item()
    s3 = math.sqrt(3.0)
    p = s3 / (1 + s3)
    assert h2 == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)), abs=1e-9)
    assert h2 == pytest.approx(0.656806, abs=1e-6)
    # Higher temperature flattens the distribution → more entropy, bounded by ln 2 = 0.693147.
    assert h1 < h2 < LN2


def test_neg_inf_logit_contributes_zero_not_nan() -> None:
    # [0, 0, -inf] → p = [1/2, 1/2, 0]; 0·log 0 := 0 → H = ln 2; gradient must stay finite too.
    logits = torch.tensor([[[0.0, 0.0, -math.inf]]], requires_grad=True)
    h = token_entropy(logits, torch.ones(1, 1))
    assert h.item() == pytest.approx(LN2, abs=1e-6)
    h.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_low_precision_logits_computed_in_float32() -> None:
    logits = torch.zeros(1, 2, 4, dtype=torch.bfloat16)
    h = token_entropy(logits, torch.ones(1, 2))
    assert h.dtype == torch.float32
    assert torch.allclose(h, torch.full((1, 2), LN4))


def test_sums_and_counts_by_hand() -> None:
    # sample 0: positions 0,1 scored, both uniform over V=4  → sum = 2 ln 4, count 2
    # sample 1: position 2 scored, logits [ln 3, 0, -inf, -inf] → p = [3/4, 1/4, 0, 0]
    #           → sum = ln 4 - (3/4) ln 3, count 1
    logits = torch.zeros(2, 3, 4, dtype=torch.float64)
    logits[1, 2] = torch.tensor([LN3, 0.0, -math.inf, -math.inf], dtype=torch.float64)
    logits[1, 0] = torch.tensor([5.0, -3.0, 1.0, 2.0])  # unscored: must not matter
    mask = torch.tensor([[1, 1, 0], [0, 0, 1]])
    sums, counts = masked_entropy_sums(logits, mask)
    assert sums.tolist() == pytest.approx([2 * LN4, LN4 - 0.75 * LN3], abs=1e-9)
    assert counts.tolist() == [2, 1]
    assert counts.dtype == torch.long


def test_logit_mask_from_token_mask_shifts_left() -> None:
    # token t is predicted by logit t-1; the last logit predicts nothing.
    token_mask = torch.tensor([[0, 0, 1, 1, 0], [1, 1, 1, 1, 1]])
    expected = torch.tensor([[0, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(logit_mask_from_token_mask(token_mask), expected)


# ------------------------------------------------------------------------------------------------
# masking / padding
# ------------------------------------------------------------------------------------------------


def test_left_and_right_padding_agree_and_padding_is_never_counted() -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = [5, 2, 4]
    t_max, v = 6, 11
    seqs = [torch.randn(n, v, generator=gen) for n in lengths]
    right = torch.randn(3, t_max, v, generator=gen) * 50  # garbage at padding
    left = torch.randn(3, t_max, v, generator=gen) * 50
    right_mask = torch.zeros(3, t_max, dtype=torch.bool)
    left_mask = torch.zeros(3, t_max, dtype=torch.bool)
    for i, (s, n) in enumerate(zip(seqs, lengths, strict=True)):
        right[i, :n], right_mask[i, :n] = s, True
        left[i, t_max - n :], left_mask[i, t_max - n :] = s, True
    r_sums, r_counts = masked_entropy_sums(right, right_mask, chunk_size=3)
    l_sums, l_counts = masked_entropy_sums(left, left_mask, chunk_size=4)
    assert r_counts.tolist() == l_counts.tolist() == lengths
    assert torch.allclose(r_sums, l_sums, atol=1e-5)
    # padding positions are exactly zero in the per-token view and get no gradient
    right.requires_grad_(True)
    h = token_entropy(right, right_mask)
    assert (h[~right_mask] == 0).all()
    h.sum().backward()
    assert (right.grad[~right_mask] == 0).all()
    assert right.grad[right_mask].abs().sum() > 0


def test_empty_mask_gives_zero_sums_and_counts() -> None:
    logits = torch.randn(2, 3, 5, requires_grad=True)
    sums, counts = masked_entropy_sums(logits, torch.zeros(2, 3))
    assert sums.tolist() == [0.0, 0.0] and counts.tolist() == [0, 0]
    sums.sum().backward()
    assert (logits.grad == 0).all()


def test_shape_and_argument_validation() -> None:
    with pytest.raises(ValueError, match="mask shape"):
        token_entropy(torch.zeros(2, 3, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        token_entropy(torch.zeros(2, 3, 4), torch.ones(2, 3), temperature=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        token_entropy(torch.zeros(2, 3, 4), torch.ones(2, 3), chunk_size=0)


# ------------------------------------------------------------------------------------------------
# chunking and gradients
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 7, 1000])
def test_chunked_equals_unchunked_values_and_grads(chunk_size: int) -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 9, generator=gen, dtype=torch.float64) * 3
    mask = torch.rand(3, 4, generator=gen) > 0.4  # 7 scored positions with this seed
    assert 1 < int(mask.sum()) < 12
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    h = token_entropy(a, mask, temperature=0.7, chunk_size=chunk_size)
    ref = naive_entropy(b, mask, temperature=0.7)
    assert torch.allclose(h, ref, atol=1e-12)
    w = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    (h * w).sum().backward()
    (ref * w).sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-12)


def test_gradcheck_custom_backward() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 0, 1], [1, 1, 0]])
    assert torch.autograd.gradcheck(lambda x: token_entropy(x, mask, 1.3, 2), (logits,))
    assert torch.autograd.gradcheck(lambda x: masked_entropy_sums(x, mask, 0.5, 1)[0], (logits,))


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 3),
    t=st.integers(1, 5),
    v=st.integers(2, 6),
    chunk=st.integers(1, 20),
    temp=st.floats(0.25, 4.0),
    seed=st.integers(0, 2**16),
)
def test_property_chunked_matches_reference(
    b: int, t: int, v: int, chunk: int, temp: float, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=gen, dtype=torch.float64) * 4
    mask = torch.rand(b, t, generator=gen) > 0.5
    sums, counts = masked_entropy_sums(logits, mask, temp, chunk)
    ref = naive_entropy(logits, mask, temp)
    assert torch.allclose(sums, ref.sum(1), atol=1e-10)
    assert torch.equal(counts, mask.sum(1))


# ------------------------------------------------------------------------------------------------
# group statistics
# ------------------------------------------------------------------------------------------------


def test_group_means_across_micro_batches_are_token_weighted() -> None:
    sums = torch.tensor([1.0, 4.0, 9.0, 3.0])
    counts = torch.tensor([1, 2, 3, 1])
    groups = torch.tensor([0, 1, 0, 1])
    # group 0: samples 0,2 → S = 1 + 9 = 10, N = 1 + 3 = 4 → 2.5
    #          (the per-sample mean of means would be (1/1 + 9/3)/2 = 2.0, which is NOT what we want)
    # group 1: samples 1,3 → S = 4 + 3 = 7,  N = 2 + 1 = 3 → 7/3 ≈ 2.3333 (mean of means: 2.5)
    full_s, full_n = group_entropy_stats(sums, counts, groups, 2)
    assert full_s.tolist() == [10.0, 7.0] and full_n.tolist() == [4, 3]
    # micro-batch 1 = samples 0,1: g0 (S=1, N=1), g1 (S=4, N=2)
    # micro-batch 2 = samples 2,3: g0 (S=9, N=3), g1 (S=3, N=1)
    s1, n1 = group_entropy_stats(sums[:2], counts[:2], groups[:2], 2)
    s2, n2 = group_entropy_stats(sums[2:], counts[2:], groups[2:], 2)
    assert s1.tolist() == [1.0, 4.0] and n1.tolist() == [1, 2]
    assert s2.tolist() == [9.0, 3.0] and n2.tolist() == [3, 1]
    means = group_means(s1 + s2, n1 + n2)
    assert means.tolist() == pytest.approx([2.5, 7.0 / 3.0])
    assert torch.allclose(means, group_means(full_s, full_n))


def test_group_stats_micro_batch_missing_a_group_is_fine() -> None:
    # one micro-batch may lack a group entirely; only the step total must have tokens
    s, n = group_entropy_stats(torch.tensor([2.0, 4.0]), torch.tensor([1, 3]), torch.tensor([0, 0]), 3)
    assert s.tolist() == [6.0, 0.0, 0.0] and n.tolist() == [4, 0, 0]


def test_group_stats_rejects_out_of_range_ids() -> None:
    with pytest.raises(ValueError, match="group_ids"):
        group_entropy_stats(torch.ones(2), torch.ones(2), torch.tensor([0, 2]), 2)


def test_missing_group_raises_with_name() -> None:
    s, n = torch.tensor([3.0, 0.0]), torch.tensor([2, 0])
    with pytest.raises(ValueError, match="^group 'male' has no tokens in this optimizer step$"):
        group_means(s, n, ["female", "male"])
    with pytest.raises(ValueError, match="^group '1' has no tokens in this optimizer step$"):
        group_means(s, n)


# ------------------------------------------------------------------------------------------------
# losses
# ------------------------------------------------------------------------------------------------


def test_gee_loss_two_groups_by_hand() -> None:
    h = torch.tensor([1.0, 2.0])
    # H̄ = 1.5; deviations -0.5, +0.5
    # l2: 1.5 + 0.5 · (0.25 + 0.25) = 1.75
    loss, stats = gee_loss(h, 0.5, "l2")
    assert loss.item() == pytest.approx(1.75)
    assert stats == pytest.approx(
        {"mean_entropy": 1.5, "gap": 0.5, "variance": 0.5, "penalty": 0.5, "loss": 1.75}
    )
    # l1: 1.5 + 0.5 · (0.5 + 0.5) = 2.0
    loss, stats = gee_loss(h, 0.5, "l1")
    assert loss.item() == pytest.approx(2.0)
    assert stats["penalty"] == pytest.approx(1.0) and stats["variance"] == pytest.approx(0.5)


def test_gee_loss_three_groups_by_hand() -> None:
    h = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    # H̄ = 7/3; deviations -4/3, -1/3, +5/3
    # Σ dev² = (16 + 1 + 25)/9 = 42/9 = 14/3; λ = 0.3 → l2: 7/3 + 0.3 · 14/3 = 7/3 + 1.4 = 3.7333…
    # Σ |dev| = (4 + 1 + 5)/3 = 10/3           → l1: 7/3 + 0.3 · 10/3 = 7/3 + 1 = 10/3
    # gap = max |dev| = 5/3
    loss, stats = gee_loss(h, 0.3, "l2")
    assert loss.item() == pytest.approx(7 / 3 + 1.4)
    assert stats["gap"] == pytest.approx(5 / 3) and stats["variance"] == pytest.approx(14 / 3)
    loss, _ = gee_loss(h, 0.3, "l1")
    assert loss.item() == pytest.approx(10 / 3)
    assert gap_loss(h).item() == pytest.approx(14 / 3)


def test_gee_loss_mean_is_unweighted_over_groups() -> None:
    # Token counts play no role once group means exist: H̄ of [0, 3] is 1.5 even if group 1 had 99% of tokens.
    loss, stats = gee_loss(group_means(torch.tensor([0.0, 297.0]), torch.tensor([1, 99])), 0.0)
    assert stats["mean_entropy"] == pytest.approx(1.5) and loss.item() == pytest.approx(1.5)


def test_gee_loss_gradients_by_hand() -> None:
    # l2: dL/dH_g = 1/G + 2λ (H_g − H̄) (the −Σ dev/G term vanishes since Σ dev = 0)
    #   H = [1, 2], λ = 0.5 → [0.5 + 1·(-0.5), 0.5 + 1·0.5] = [0, 1]
    h = torch.tensor([1.0, 2.0], requires_grad=True)
    gee_loss(h, 0.5)[0].backward()
    assert h.grad.tolist() == pytest.approx([0.0, 1.0])


def test_gee_loss_validation() -> None:
    with pytest.raises(ValueError, match="norm"):
        gee_loss(torch.tensor([1.0, 2.0]), 0.5, "l3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lam"):
        gee_loss(torch.tensor([1.0, 2.0]), -0.1)
    with pytest.raises(ValueError, match="non-empty"):
        gee_loss(torch.tensor([]), 0.1)


@settings(max_examples=50, deadline=None)
@given(
    hf=st.floats(-100, 100, allow_nan=False),
    hm=st.floats(-100, 100, allow_nan=False),
)
def test_property_two_group_identity(hf: float, hm: float) -> None:
    # Σ_g (H_g − H̄)² = (H_f − H_m)² / 2
    h = torch.tensor([hf, hm], dtype=torch.float64)
    assert gap_loss(h).item() == pytest.approx((hf - hm) ** 2 / 2, rel=1e-9, abs=1e-9)
    assert max_gap(h).item() == pytest.approx(abs(hf - hm) / 2, rel=1e-9, abs=1e-9)


def test_gap_loss_and_gap_reached() -> None:
    h = torch.tensor([1.0, 1.2, 1.6])
    # H̄ = 3.8/3 ≈ 1.2667; dev = (-0.8, -0.2, +1.0)/3 → gap = 1/3
    # Σ dev² = (0.64 + 0.04 + 1.00)/9 = 1.68/9 = 0.56/3 ≈ 0.18667
    assert gap_loss(h).item() == pytest.approx(0.56 / 3, abs=1e-6)
    assert max_gap(h).item() == pytest.approx(1 / 3, abs=1e-6)
    assert gap_reached(h, 0.34)
    assert not gap_reached(h, 0.33)
    assert gap_reached(torch.tensor([0.7, 0.7]), 0.0)


def test_annealed_lambda() -> None:
    # 1.0 · 0.5 / 2.0 = 0.25, inside [0.1, 2]
    assert annealed_lambda(1.0, 0.5, 2.0, 0.1, 2.0) == pytest.approx(0.25)
    # 0.25 clipped up to lo = 0.3
    assert annealed_lambda(1.0, 0.5, 2.0, 0.3, 2.0) == pytest.approx(0.3)
    # 1.0 · 4 / 1 = 4 clipped down to hi = 2
    assert annealed_lambda(1.0, 4.0, 1.0, 0.1, 2.0) == pytest.approx(2.0)
    # gap_1 == 0: gap grew from nothing → ratio +∞ → hi; 0/0 → ratio 1 → clip(λ0)
    assert annealed_lambda(1.0, 0.2, 0.0, 0.1, 2.0) == pytest.approx(2.0)
    assert annealed_lambda(1.0, 0.0, 0.0, 0.1, 2.0) == pytest.approx(1.0)
    assert annealed_lambda(5.0, 0.0, 0.0, 0.1, 2.0) == pytest.approx(2.0)
    # λ0 = 0 means "no penalty": 0 · ∞ is taken as 0, then clipped up to lo
    assert annealed_lambda(0.0, 0.2, 0.0, 0.1, 2.0) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="lo"):
        annealed_lambda(1.0, 0.5, 1.0, 2.0, 1.0)
    with pytest.raises(ValueError, match="gap_1"):
        annealed_lambda(1.0, 0.5, -1.0, 0.1, 1.0)


# ------------------------------------------------------------------------------------------------
# exact micro-batch gradients via the surrogate
# ------------------------------------------------------------------------------------------------


def test_surrogate_coefficients_by_hand() -> None:
    # S = [2, 6], N = [2, 3] → H = [1, 2]; l2 λ=0.5 → ∂L/∂H = [0, 1] (see gradients test)
    # c = ∂L/∂H / N = [0/2, 1/3]
    c = surrogate_coefficients(torch.tensor([2.0, 6.0]), torch.tensor([2, 3]), lambda h: gee_loss(h, 0.5))
    assert c.tolist() == pytest.approx([0.0, 1 / 3])
    assert not c.requires_grad
    with pytest.raises(ValueError, match="group 'b' has no tokens"):
        surrogate_coefficients(torch.ones(2), torch.tensor([1, 0]), gap_loss, ["a", "b"])


@pytest.mark.parametrize(
    "loss_fn",
    [lambda h: gee_loss(h, 0.7, "l2"), lambda h: gee_loss(h, 0.7, "l1"), gap_loss],
    ids=["gee_l2", "gee_l1", "gap"],
)
def test_surrogate_gradient_equals_full_batch_gradient(loss_fn: Callable[[torch.Tensor], object]) -> None:
    gen = torch.Generator().manual_seed(3)
    b, t, d, v, g = 6, 5, 4, 7, 3
    x = torch.randn(b, t, d, generator=gen, dtype=torch.float64)
    w0 = torch.randn(v, d, generator=gen, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 4, 3, 1, 5])
    mask = torch.arange(t)[None, :] < lengths[:, None]  # right padding, uneven lengths
    groups = torch.tensor([0, 1, 2, 0, 2, 1])
    # micro-batches deliberately uneven, and micro-batch 1 contains no group-1 sample
    micro = [slice(0, 1), slice(1, 4), slice(4, 6)]

    def stats(w: torch.Tensor, sl: slice) -> tuple[torch.Tensor, torch.Tensor]:
        sums, counts = masked_entropy_sums(x[sl] @ w.T, mask[sl], temperature=1.3, chunk_size=3)
        return group_entropy_stats(sums, counts, groups[sl], g)

    # reference: one full-batch loss, one backward
    w_full = w0.clone().requires_grad_(True)
    out = loss_fn(group_means(*stats(w_full, slice(None))))
    (out[0] if isinstance(out, tuple) else out).backward()

    # pass 1: step-level sums/counts without grad, accumulated over micro-batches
    with torch.no_grad():
        parts = [stats(w0, sl) for sl in micro]
    step_sums = sum(p[0] for p in parts)
    step_counts = sum(p[1] for p in parts)
    c = surrogate_coefficients(step_sums, step_counts, loss_fn)

    # pass 2: per-micro-batch backward of the surrogate, gradients accumulate
    w_micro = w0.clone().requires_grad_(True)
    for sl in micro:
        micro_sums, _ = stats(w_micro, sl)
        surrogate_loss(micro_sums, c).backward()

    assert w_full.grad is not None and w_micro.grad is not None
    assert w_full.grad.abs().max() > 1e-3  # non-trivial gradient
    assert torch.allclose(w_micro.grad, w_full.grad, atol=1e-6, rtol=0)


def test_naive_per_micro_batch_loss_is_not_exact() -> None:
    # Sanity check on the test above: averaging per-micro-batch losses gives a different gradient,
    # which is why the surrogate exists. H from S/N: micro A group0 (S=2,N=1) vs step (S=2+3, N=1+3).
    s_a, s_b = torch.tensor([2.0, 1.0], requires_grad=True), torch.tensor([3.0, 5.0], requires_grad=True)
    n_a, n_b = torch.tensor([1, 1]), torch.tensor([3, 5])
    gap_loss(group_means(s_a + s_b, n_a + n_b)).backward()
    exact = s_a.grad.clone()
    s_a.grad = None
    gap_loss(group_means(s_a, n_a)).backward()
    assert not torch.allclose(s_a.grad, exact)


def test_surrogate_loss_shape_check() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        surrogate_loss(torch.ones(2), torch.ones(3))
