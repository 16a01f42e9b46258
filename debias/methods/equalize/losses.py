"""The equalisation losses, as pure functions of the pair log-ratio ``Δ = log p(stereo) − log p(anti)``.

Both are zero exactly when the two continuations are equally likely and grow with ``|Δ|`` in either
direction, so unlike a preference loss (DPO) they have no reason to flip a bias: the optimum is the
tie, not the reverse preference.

- ``sym_kl``: the symmetric KL between the pair's two-outcome distribution ``q = (σ(Δ), 1 − σ(Δ))``
  (the two continuations' probabilities renormalised over the pair) and the even split ``u = (½, ½)``:
  ``KL(q‖u) + KL(u‖q) = Σ_i (q_i − u_i)(log q_i − log u_i) = (σ(Δ) − ½)·Δ``. Near the tie it is
  ``Δ²/4``; far from it, it grows like ``|Δ|/2`` — a bounded gradient, so a few extreme pairs cannot
  dominate a batch. This is BiasEdit's symmetric-KL objective (arXiv 2503.08588) on sequence pairs.
- ``squared``: ``Δ²``, the squared log-ratio (unbounded gradient; the first trial's loss).

``counterfactual_jsd`` is the other half of the recipe, after Auto-Debias (Guo et al., ACL 2022, which
matched a masked LM's [MASK] distributions across demographic words): for two prompts that differ only
in the group of their subject ("People often describe the woman as" / "... the man as"), the
Jensen–Shannon divergence between the two next-token distributions. Where the pair losses equalise the
attributes someone listed, this equalises every attribute the model might say next, and it pulls both
distributions toward their mixture, so words neither prompt makes likely (StereoSet's unrelated
options) stay unlikely. It is zero exactly when the group makes no difference to the next token.
``mixture_kl`` gives both prompts a fixed target instead: the *base* model's average of the two
distributions, ``KL(M⁰‖P_a) + KL(M⁰‖P_b)`` with ``M⁰ = (P⁰_a + P⁰_b)/2``. JSD is satisfied by any
common distribution (the two could drift together anywhere); the mixture target says which one — what
the base model would say about a person of either group — so the term anchors as it equalises.

Both pair losses say only how the pair's probability should be *split*, not how much of it there should be.
``mass_loss`` pins the pair's total to the base model's, ``(log(p_a + p_b) − log(p⁰_a + p⁰_b))²``, so
equalising has to move probability from one continuation to the other; the hope was that this would
spare a language-modelling score (StereoSet's LMS). Measured on the default model (README, "pair-mass
trial"): without it the pairs' total probability *rises* (+1.6 nats), and with it StereoSet SS does
not move at all, so it is off by default.
"""

from __future__ import annotations

import torch

# the pair loss itself lives with the tie term (a core module any method can use); re-exported here
from debias.tie import Loss, equalize_loss


def mass_loss(
    logp_a: torch.Tensor, logp_b: torch.Tensor, base_a: torch.Tensor, base_b: torch.Tensor
) -> torch.Tensor:
    """Per pair: the squared change of the pair's log total probability from the base model's."""
    return (torch.logaddexp(logp_a, logp_b) - torch.logaddexp(base_a, base_b)).square()


def counterfactual_jsd(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Per row: JSD(softmax(a), softmax(b)) in nats, ``½ KL(P‖M) + ½ KL(Q‖M)`` with ``M = (P + Q)/2``.

    ``logits_*``: (rows, vocab). Float32 at least: a low-precision JSD of near-equal distributions is
    mostly rounding error. Bounded by log 2.
    """
    dtype = torch.promote_types(logits_a.dtype, torch.float32)
    log_p = torch.log_softmax(logits_a.to(dtype), dim=-1)
    log_q = torch.log_softmax(logits_b.to(dtype), dim=-1)
    log_m = torch.logaddexp(log_p, log_q) - torch.log(torch.tensor(2.0, dtype=dtype))
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(-1)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(-1)
    return 0.5 * (kl_pm + kl_qm)


def mixture_kl(base_a: torch.Tensor, base_b: torch.Tensor, logits_a: torch.Tensor, logits_b: torch.Tensor):
    """Per row: ``KL(M⁰‖softmax(a)) + KL(M⁰‖softmax(b))``, ``M⁰`` the mean of the base rows' softmaxes.

    ``base_*`` carry no gradient (the base model's logits); the result is 0 exactly when both tuned
    distributions equal the base mixture.
    """
    dtype = torch.promote_types(logits_a.dtype, torch.float32)
    log2 = torch.log(torch.tensor(2.0, dtype=dtype))
    log_m = (
        torch.logaddexp(
            torch.log_softmax(base_a.to(dtype), dim=-1), torch.log_softmax(base_b.to(dtype), dim=-1)
        )
        - log2
    )
    m = log_m.exp()
    kl_a = (m * (log_m - torch.log_softmax(logits_a.to(dtype), dim=-1))).sum(-1)
    kl_b = (m * (log_m - torch.log_softmax(logits_b.to(dtype), dim=-1))).sum(-1)
    return kl_a + kl_b


__all__ = ["Loss", "counterfactual_jsd", "equalize_loss", "mass_loss", "mixture_kl"]
