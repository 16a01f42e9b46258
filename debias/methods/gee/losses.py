"""Loss math for GEE (group-entropy equalization), in plain torch.

GEE pushes a model to be *equally uncertain* about every demographic group: for each group ``g`` we
measure the token-weighted mean predictive entropy ``H_g`` over all scored tokens of that group's
samples in one optimizer step, and minimise

    L = H̄ + λ · Σ_g (H_g − H̄)²        (norm="l2")
    L = H̄ + λ · Σ_g |H_g − H̄|         (norm="l1")

where ``H̄ = (1/G) Σ_g H_g`` is the *unweighted* mean of the group means.

Two-group identity. With groups f and m, H̄ = (H_f + H_m)/2, hence H_f − H̄ = (H_f − H_m)/2 and
H_m − H̄ = −(H_f − H_m)/2, so Σ_g (H_g − H̄)² = 2·(H_f − H_m)²/4 = (H_f − H_m)²/2. The l2 penalty is
therefore just half the squared entropy gap between the two groups.

Data flow for one optimizer step (possibly many micro-batches and processes):

1. ``masked_entropy_sums`` → per-sample entropy sums and scored-token counts.
2. ``group_entropy_stats`` → per-group sums/counts; accumulate these over micro-batches and
   all-reduce (SUM) them across processes. Sums and counts are additive; means are not, which is
   why means are only formed once, at step level.
3. ``group_means`` → ``H_g = S_g / N_g`` (raises if a group saw no tokens).
4. ``gee_loss`` / ``gap_loss`` on the group means.

Exact gradients with micro-batches. The step loss depends on the *whole step's* group means, but
the forward runs per micro-batch. Because ``H_g = S_g / N_g`` with ``S_g = Σ_micro S_g^micro`` and
``N_g`` independent of the parameters, ``dL/dθ = Σ_g (∂L/∂H_g / N_g) · Σ_micro dS_g^micro/dθ``.
So the recipe (``GeeRecipe.compute_gradients``) forwards every micro-batch keeping its group sums'
graph, forms the step-level sums/counts (all-reduced across processes) from their detached values,
gets ``c = surrogate_coefficients(step_sums, step_counts, loss_fn)`` and runs ONE backward of
``surrogate_loss(Σ_micro S^micro, c) = Σ_g c_g · S_g``. The gradient is exactly the full-batch
gradient (the surrogate's *value* is not the loss; the loss is logged separately).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch.autograd.function import once_differentiable

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "annealed_lambda",
    "gap_loss",
    "gap_reached",
    "gee_loss",
    "group_entropy_stats",
    "group_means",
    "logit_mask_from_token_mask",
    "masked_entropy_sums",
    "max_gap",
    "surrogate_coefficients",
    "surrogate_loss",
    "token_entropy",
]

# Rows of [chunk, V] are processed at a time. With V ≈ 150k and fp32 one chunk of 512 rows is ~300 MB
# per temporary, small next to the logits tensor itself yet large enough to keep kernels efficient.
DEFAULT_CHUNK_SIZE = 512

Norm = Literal["l2", "l1"]


# --------------------------------------------------------------------------------------------------
# Token entropy
# --------------------------------------------------------------------------------------------------


def logit_mask_from_token_mask(token_mask: torch.Tensor) -> torch.Tensor:
    """Turn a mask over *tokens* into a mask over the *logit positions* that predict them.

    Causal LMs emit at position ``t`` the distribution over token ``t + 1``, so scoring the tokens
    selected by ``token_mask`` means scoring logit positions shifted one to the left; the final
    logit position predicts nothing in the sequence and is never scored. Keeping this shift in one
    place avoids off-by-one disagreements between callers.
    """
    token_mask = token_mask != 0
    out = torch.zeros_like(token_mask)
    out[:, :-1] = token_mask[:, 1:]
    return out


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Entropy is a sum over the whole vocabulary; bf16/fp16 accumulation loses too much precision
    # for a quantity whose *differences* between groups are the training signal.
    return torch.promote_types(dtype, torch.float32)


def _entropy_terms(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (p, log p) for a chunk of tempered logits, the only per-chunk [n, V] temporaries."""
    logp = torch.log_softmax(z, dim=-1)
    return logp.exp(), logp


class _MaskedEntropy(torch.autograd.Function):
    """Entropy of selected rows of a [N, V] logit matrix, chunked in forward *and* backward.

    Plain autograd would keep log p and p for every chunk alive until backward, i.e. two extra
    copies of the scored [N, V] block, which defeats the point of chunking. Here only the logits
    (which the model graph holds anyway) and the [N] entropies are saved; backward recomputes each
    chunk and uses the closed form ∂H/∂z_j = −p_j (log p_j + H).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        flat_logits: torch.Tensor,
        rows: torch.Tensor,
        temperature: float,
        chunk_size: int,
    ) -> torch.Tensor:
        dtype = _compute_dtype(flat_logits.dtype)
        out = torch.empty(rows.numel(), dtype=dtype, device=flat_logits.device)
        for start in range(0, rows.numel(), chunk_size):
            r = rows[start : start + chunk_size]
            z = flat_logits.index_select(0, r).to(dtype) / temperature
            p, logp = _entropy_terms(z)
            # p == 0 only where a logit is -inf (e.g. banned tokens); 0·log 0 := 0, not NaN.
            out[start : start + r.numel()] = -(p * logp).masked_fill_(p == 0, 0.0).sum(dim=-1)
        ctx.save_for_backward(flat_logits, rows, out)
        ctx.temperature = temperature
        ctx.chunk_size = chunk_size
        return out

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, None, None, None]:
        flat_logits, rows, ent = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        temperature: float = ctx.temperature
        chunk_size: int = ctx.chunk_size
        dtype = ent.dtype
        grad = torch.zeros_like(flat_logits)
        for start in range(0, rows.numel(), chunk_size):
            r = rows[start : start + chunk_size]
            sl = slice(start, start + r.numel())
            z = flat_logits.index_select(0, r).to(dtype) / temperature
            p, logp = _entropy_terms(z)
            g = (logp + ent[sl, None]).mul_(p).masked_fill_(p == 0, 0.0)
            g.mul_(grad_out[sl, None].to(dtype) * (-1.0 / temperature))
            # Rows are unique (they come from a mask), so copy instead of accumulate.
            grad.index_copy_(0, r, g.to(grad.dtype))
        return grad, None, None, None


def _scored_entropies(
    logits: torch.Tensor, mask: torch.Tensor, temperature: float, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropies of the scored positions only, plus their flat indices into [B*T]."""
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, T, V], got shape {tuple(logits.shape)}")
    if tuple(mask.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"mask shape {tuple(mask.shape)} must equal logits[:2] {tuple(logits.shape[:2])}")
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    b, t, v = logits.shape
    # Gathering masked rows first means padding never reaches the softmax, whatever side it is on.
    rows = (mask != 0).reshape(-1).nonzero().squeeze(1)
    ent = _MaskedEntropy.apply(logits.reshape(b * t, v), rows, float(temperature), int(chunk_size))
    return ent, rows


def token_entropy(
    logits: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Per-position predictive entropy ``H = −Σ_v p log p`` of ``softmax(logits / temperature)``.

    Convention: ``logits[:, t]`` is the distribution over token ``t + 1``, and ``mask[:, t]`` (bool
    or 0/1, shape [B, T]) marks which *logit positions* are scored. Build it from a token mask with
    :func:`logit_mask_from_token_mask`. Only the mask is consulted, so left and right padding behave
    identically. Returns [B, T], exactly zero (and gradient-free) at unscored positions; computed
    in float32 or wider regardless of the logits' dtype, differentiable w.r.t. ``logits``.
    """
    ent, rows = _scored_entropies(logits, mask, temperature, chunk_size)
    b, t = mask.shape
    out = torch.zeros(b * t, dtype=ent.dtype, device=ent.device)
    return out.index_copy(0, rows, ent).view(b, t)


def masked_entropy_sums(
    logits: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(entropy_sum [B], token_count [B] long)`` over scored positions.

    Sums and counts rather than means, because they stay additive across micro-batches and
    processes; the token-weighted group mean is formed only once the whole step is known. Same
    mask convention as :func:`token_entropy`.
    """
    ent, rows = _scored_entropies(logits, mask, temperature, chunk_size)
    b, t = mask.shape
    sums = torch.zeros(b, dtype=ent.dtype, device=ent.device).index_add(0, rows // t, ent)
    counts = (mask != 0).sum(dim=1, dtype=torch.long)
    return sums, counts


# --------------------------------------------------------------------------------------------------
# Group statistics
# --------------------------------------------------------------------------------------------------


def group_entropy_stats(
    entropy_sums: torch.Tensor,
    token_counts: torch.Tensor,
    group_ids: torch.Tensor,
    num_groups: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter per-sample sums/counts into per-group ``(group_sums [G], group_counts [G] long)``.

    The outputs are meant to be *added* across micro-batches and all-reduced (SUM) across
    processes before :func:`group_means`; ``group_sums`` stays differentiable w.r.t.
    ``entropy_sums`` so the same call also builds the per-micro-batch surrogate.
    """
    if (
        entropy_sums.dim() != 1
        or token_counts.shape != entropy_sums.shape
        or group_ids.shape != entropy_sums.shape
    ):
        raise ValueError(
            "entropy_sums, token_counts and group_ids must be 1-D of equal length, got "
            f"{tuple(entropy_sums.shape)}, {tuple(token_counts.shape)}, {tuple(group_ids.shape)}"
        )
    if num_groups < 1:
        raise ValueError(f"num_groups must be >= 1, got {num_groups}")
    group_ids = group_ids.long()
    # An out-of-range id would be a device-side assert on CUDA; fail loudly and readably instead.
    if group_ids.numel() and (int(group_ids.min()) < 0 or int(group_ids.max()) >= num_groups):
        raise ValueError(f"group_ids must lie in [0, {num_groups}), got {group_ids.tolist()}")
    sums = torch.zeros(num_groups, dtype=entropy_sums.dtype, device=entropy_sums.device)
    sums = sums.index_add(0, group_ids, entropy_sums)
    counts = torch.zeros(num_groups, dtype=torch.long, device=entropy_sums.device)
    counts = counts.index_add(0, group_ids, token_counts.long())
    return sums, counts


def group_means(
    group_sums: torch.Tensor,
    group_counts: torch.Tensor,
    group_names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Token-weighted mean entropy per group, ``S_g / N_g``.

    A group without tokens has no defined entropy; returning 0 would look like a perfectly
    confident group and silently distort both H̄ and the penalty, so it raises instead.
    """
    if group_sums.shape != group_counts.shape or group_sums.dim() != 1:
        raise ValueError(
            f"group_sums and group_counts must be 1-D of equal shape, got {tuple(group_sums.shape)} "
            f"and {tuple(group_counts.shape)}"
        )
    if group_names is not None and len(group_names) != group_sums.numel():
        raise ValueError(f"got {len(group_names)} group names for {group_sums.numel()} groups")
    empty = (group_counts <= 0).nonzero().flatten().tolist()
    if empty:
        g = empty[0]
        name = group_names[g] if group_names is not None else str(g)
        raise ValueError(f"group '{name}' has no tokens in this optimizer step")
    return group_sums / group_counts.to(group_sums.dtype)


# --------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------


def _check_means(group_means: torch.Tensor) -> None:
    if group_means.dim() != 1 or group_means.numel() < 1:
        raise ValueError(f"group_means must be a non-empty 1-D tensor, got shape {tuple(group_means.shape)}")


def max_gap(group_means: torch.Tensor) -> torch.Tensor:
    """``max_g |H_g − H̄|``: the worst group's distance from the across-group mean."""
    _check_means(group_means)
    return (group_means - group_means.mean()).abs().max()


def gee_loss(
    group_means: torch.Tensor, lam: float, norm: Norm = "l2"
) -> tuple[torch.Tensor, dict[str, float]]:
    """GEE objective ``H̄ + λ·penalty`` and float stats for logging.

    ``H̄`` is the unweighted mean over groups, not the token-weighted mean over all tokens: every
    group gets an equal say, so a group that happens to contribute more tokens cannot dominate the
    entropy target the others are pulled towards. ``penalty`` is ``Σ_g (H_g − H̄)²`` for ``l2`` and
    ``Σ_g |H_g − H̄|`` for ``l1``.

    Stats: ``mean_entropy`` (H̄), ``gap`` (max_g |H_g − H̄|), ``variance`` (Σ_g (H_g − H̄)², always
    the squared form so runs with different norms are comparable), ``penalty`` (the term actually
    used) and ``loss``.
    """
    _check_means(group_means)
    if not lam >= 0 or not math.isfinite(lam):
        raise ValueError(f"lam must be a non-negative finite number, got {lam}")
    h_bar = group_means.mean()
    dev = group_means - h_bar
    sq = (dev**2).sum()
    if norm == "l2":
        penalty = sq
    elif norm == "l1":
        penalty = dev.abs().sum()
    else:
        raise ValueError(f"norm must be 'l2' or 'l1', got {norm!r}")
    loss = h_bar + lam * penalty
    stats = {
        "mean_entropy": float(h_bar.detach()),
        "gap": float(dev.detach().abs().max()),
        "variance": float(sq.detach()),
        "penalty": float(penalty.detach()),
        "loss": float(loss.detach()),
    }
    return loss, stats


def gap_loss(group_means: torch.Tensor) -> torch.Tensor:
    """Pure-gap objective ``Σ_g (H_g − H̄)²``: equalise groups without also lowering entropy."""
    _check_means(group_means)
    return ((group_means - group_means.mean()) ** 2).sum()


def gap_reached(group_means: torch.Tensor, target_gap: float) -> bool:
    """Whether every group is within ``target_gap`` of H̄ (a stopping criterion for gap mode)."""
    return bool(max_gap(group_means.detach()) <= target_gap)


def annealed_lambda(lam0: float, gap_t: float, gap_1: float, lo: float, hi: float) -> float:
    """``λ_t = λ0 · gap_t / gap_1`` clipped to ``[lo, hi]``.

    The penalty weight shrinks as the gap closes relative to the first step, so late training is
    not dominated by a penalty that is already small. ``gap_1 == 0`` (groups already equal at step
    1) has no meaningful ratio; we follow the limit ``gap_1 → 0⁺``: if ``gap_t > 0`` the gap grew
    from nothing and the ratio is +∞, giving ``hi``; if ``gap_t == 0`` too (0/0) nothing changed,
    so the ratio is taken as 1, giving ``clip(λ0)``.
    """
    for name, val in (("lam0", lam0), ("gap_t", gap_t), ("gap_1", gap_1), ("lo", lo), ("hi", hi)):
        if not math.isfinite(val) or val < 0:
            raise ValueError(f"{name} must be a non-negative finite number, got {val}")
    if lo > hi:
        raise ValueError(f"lo ({lo}) must not exceed hi ({hi})")
    ratio = (math.inf if gap_t > 0 else 1.0) if gap_1 == 0 else gap_t / gap_1
    lam = 0.0 if lam0 == 0 else lam0 * ratio  # λ0 = 0 stays 0 (→ lo) rather than 0·∞ = NaN
    return float(min(max(lam, lo), hi))


# --------------------------------------------------------------------------------------------------
# Exact micro-batch gradients
# --------------------------------------------------------------------------------------------------


def surrogate_coefficients(
    group_sums: torch.Tensor,
    group_counts: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, object]],
    group_names: Sequence[str] | None = None,
) -> torch.Tensor:
    """``c_g = dL/dS_g = (∂L/∂H_g) / N_g`` at the step-level (all-reduced) sums and counts.

    ``loss_fn`` maps group means [G] to the scalar step loss (a ``(loss, stats)`` tuple, as from
    :func:`gee_loss`, is accepted). Differentiating w.r.t. the sums directly lets autograd apply the
    ``1/N_g`` factor; the inputs are detached, so this never touches the model graph.
    """
    sums = group_sums.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = loss_fn(group_means(sums, group_counts.detach(), group_names))
        loss = out[0] if isinstance(out, tuple) else out
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        (coeff,) = torch.autograd.grad(loss, sums, allow_unused=True)
    return torch.zeros_like(sums) if coeff is None else coeff.detach()


def surrogate_loss(micro_group_sums: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """``Σ_g c_g · S_g^micro``, whose gradients summed over *all* micro-batches equal dL/dθ.

    Do not divide it by the number of accumulation steps: the coefficients already carry the
    step-level ``1/N_g``. Under gradient-*averaging* data parallelism (e.g. DDP) multiply it by the
    world size, since the exact step gradient is the sum over every process's micro-batches.
    """
    if micro_group_sums.shape != coefficients.shape:
        raise ValueError(
            f"shape mismatch: sums {tuple(micro_group_sums.shape)} "
            f"vs coefficients {tuple(coefficients.shape)}"
        )
    return (micro_group_sums * coefficients.detach().to(micro_group_sums.dtype)).sum()
