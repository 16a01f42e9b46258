"""lm-eval's HF model with the LM head computed only where a request is scored (issue 16).

``HFLM._loglikelihood_tokens`` right-pads each batch, runs the LM head and a full-vocabulary
log-softmax at every position (context, continuation and padding alike), then keeps the continuation's
rows. The head is ~21 % of the default model's FLOPs and the log-softmax over ``[batch, length, vocab]``
is pure memory traffic, so most of that work is discarded. This scorer gives the same answers —
``(sum of the continuation's log-probs, whether greedy decoding reproduces it)`` per request, in request
order — with less work:

- each distinct model input is run once (requests that share it, e.g. a multiple-choice question's
  one-token answers, read their rows from the same forward);
- the model gets exactly HFLM's input (right-padded, no mask) and a boolean ``logits_to_keep`` mask,
  so it applies its head (softcapping included, where a model has one) at the scored positions only;
- inputs that share a prefix are packed into one row as a tree (``debias.prefix_tree``): each shared
  token is run once, with position ids = depth and a mask showing each node its ancestors only, so every
  logit is the one its sequence alone gives (~30 % fewer tokens on ``gee_heldout``). Needs SDPA or eager
  attention (the mask is passed as a 4-D tensor); ``share_prefixes=False`` (a model arg) turns it off;
- the log-softmax runs over those rows only, in float32.

Results agree with ``HFLM`` to float32 rounding (tested on the real model: every request's
log-probability to 1e-5, greedy flags equal).
Registered as lm-eval model ``gee-hf``: ``python -m debias.lm_eval --model gee-hf --model_args
pretrained=PATH ...`` runs lm-eval's own CLI with it. Anything else (seq2seq, ``batch_size=auto``, a
continuation longer than the model's window) goes to ``HFLM``'s own implementation.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from debias import prefix_tree

Request = tuple[object, list[int], list[int]]


@register_model("gee-hf")
class ScoredPositionsLM(HFLM):
    """``HFLM`` whose log-likelihood scoring computes the head only at the scored positions."""

    def __init__(self, *args, share_prefixes: bool | str = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # lm-eval passes --model_args values as strings
        self.share_prefixes = str(share_prefixes).lower() not in ("false", "0", "no")

    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[tuple[float, bool]]:
        batch_size = override_bs or self.batch_size
        if self.backend != "causal" or not isinstance(batch_size, int):
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        inputs: dict[tuple[int, ...], list[int]] = defaultdict(list)  # model input -> its requests
        for index, (_, context, continuation) in enumerate(requests):
            whole = (context + continuation)[-(self.max_length + 1) :]
            if not continuation or len(continuation) >= len(whole):  # truncated into the continuation
                return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
            inputs[tuple(whole[:-1])].append(index)
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        with tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="Scoring") as bar:
            if self.share_prefixes and self._mask_kind() is not None:
                # largest trees first, as HFLM orders sequences: little padding, memory peaks at the start
                trees = sorted(prefix_tree.pack(inputs), key=lambda t: (-len(t), t.tokens))
                batches = [trees[i : i + batch_size] for i in range(0, len(trees), batch_size)]
                scored = (self._score_trees(chunk, inputs, requests) for chunk in batches)
            else:
                order = sorted(inputs, key=lambda seq: (-len(seq), seq))
                batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
                scored = (self._score_batch(chunk, inputs, requests) for chunk in batches)
            for answered in scored:
                for index, answer in answered:
                    answers[index] = answer
                    bar.update(1)
        for index, (key, _, _) in enumerate(requests):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, answers[index])
        return answers  # type: ignore[return-value]

    def _mask_kind(self) -> str | None:
        """The mask format the model's attention takes (``None``: no custom 4-D mask, no trees)."""
        kind = getattr(self.model.config, "_attn_implementation", None)
        return kind if kind in ("sdpa", "eager") else None

    @torch.no_grad()
    def _score_trees(self, trees, inputs, requests):
        width = max(len(t) for t in trees)
        ids = torch.full((len(trees), width), self._pad_id(), dtype=torch.long)
        positions = torch.zeros((len(trees), width), dtype=torch.long)
        keep = torch.zeros((len(trees), width), dtype=torch.bool)  # the nodes some request scores
        for row, tree in enumerate(trees):
            ids[row, : len(tree)] = torch.tensor(tree.tokens)
            positions[row, : len(tree)] = torch.tensor(tree.depth)
            for seq, path in tree.paths.items():
                n = max(len(requests[i][2]) for i in inputs[seq])
                keep[row, path[len(seq) - n :]] = True
        logits = self.model(
            ids.to(self.device),
            attention_mask=self._tree_masks(trees, width),
            position_ids=positions.to(self.device),
            logits_to_keep=keep.to(self.device),
        ).logits  # [kept nodes, vocab], row-major
        logprobs, greedy = _logprobs(logits)
        flat = (keep.flatten().cumsum(0) - 1).view_as(keep)  # (row, node) -> its row in ``logits``
        for row, tree in enumerate(trees):
            for seq, path in tree.paths.items():
                for index in inputs[seq]:
                    continuation = requests[index][2]
                    rows = flat[row, path[len(seq) - len(continuation) :]].to(logprobs.device)
                    yield index, _answer(logprobs, greedy, rows, continuation)

    def _tree_masks(self, trees, width: int):
        """The trees' 4-D mask in the attention's format; a model with sliding-window layers (Gemma 3)
        gets a dict by layer type, its sliding layers' mask limited to the window."""
        config = self.model.config
        window = getattr(config, "sliding_window", None)
        layer_types = getattr(config, "layer_types", None) or []
        visible = prefix_tree.attention_mask(trees, width)
        full = self._as_attention_mask(visible)
        if window is None:
            return full
        sliding = self._as_attention_mask(visible & prefix_tree.window_band(trees, width, window))
        if "sliding_attention" in layer_types:
            return {"full_attention": full, "sliding_attention": sliding}
        return sliding  # every layer slides

    def _as_attention_mask(self, visible: torch.Tensor) -> torch.Tensor:
        if self._mask_kind() == "sdpa":
            return visible.to(self.device)
        dtype = next(self.model.parameters()).dtype  # eager adds the mask to the scores
        additive = torch.zeros(visible.shape, dtype=dtype)
        additive.masked_fill_(~visible, torch.finfo(dtype).min)
        return additive.to(self.device)

    @torch.no_grad()
    def _score_batch(self, chunk, inputs, requests):
        width = len(chunk[0])
        ids = torch.full((len(chunk), width), self._pad_id(), dtype=torch.long)
        keep = torch.zeros((len(chunk), width), dtype=torch.bool)  # the positions some request scores
        spans = []
        for row, seq in enumerate(chunk):
            ids[row, : len(seq)] = torch.tensor(seq)  # right-padded, no mask: HFLM's exact model input
            n = max(len(requests[i][2]) for i in inputs[seq])
            keep[row, len(seq) - n : len(seq)] = True
            spans.append(n)
        logits = self._logits(ids.to(self.device), keep.to(self.device))  # [kept positions, vocab]
        logprobs, greedy = _logprobs(logits)
        end = 0
        for row, seq in enumerate(chunk):
            end += spans[row]  # this row's kept positions end here (row-major order)
            for index in inputs[seq]:
                continuation = requests[index][2]
                yield index, _answer(logprobs, greedy, slice(end - len(continuation), end), continuation)

    def _logits(self, ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The head's output at the ``keep`` positions only, flattened row by row (``logits_to_keep`` with
        a boolean mask); an architecture without that argument runs the head everywhere."""
        try:
            return self.model(ids, logits_to_keep=keep).logits
        except TypeError:
            return self.model(ids).logits[keep]

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else (self.tokenizer.eos_token_id or 0)


def _logprobs(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-softmax over the vocabulary in at least float32 (a float64 model keeps float64), and the argmax."""
    logprobs = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    return logprobs, logprobs.argmax(dim=-1)


def _answer(
    logprobs: torch.Tensor, greedy: torch.Tensor, rows, continuation: list[int]
) -> tuple[float, bool]:
    """lm-eval's answer for one request: its summed log-probability, and whether greedy decoding
    reproduces it; ``rows`` index the positions that predict the continuation's tokens."""
    target = torch.tensor(continuation, device=logprobs.device)
    picked = logprobs[rows].gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return float(picked.sum()), bool((greedy[rows] == target).all())
