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

Request = tuple[object, list[int], list[int]]


@register_model("gee-hf")
class ScoredPositionsLM(HFLM):
    """``HFLM`` whose log-likelihood scoring computes the head only at the scored positions."""

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
        # longest first, as HFLM orders them: a batch's padding is small and memory peaks at the start
        order = sorted(inputs, key=lambda seq: (-len(seq), seq))
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        with tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="Scoring") as bar:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                for index, answer in self._score_batch(chunk, inputs, requests):
                    answers[index] = answer
                    bar.update(1)
        for index, (key, _, _) in enumerate(requests):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, answers[index])
        return answers  # type: ignore[return-value]

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
        logprobs = F.log_softmax(logits.float(), dim=-1)
        greedy = logprobs.argmax(dim=-1)
        end = 0
        for row, seq in enumerate(chunk):
            end += spans[row]  # this row's kept positions end here (row-major order)
            for index in inputs[seq]:
                continuation = requests[index][2]
                n = len(continuation)
                target = torch.tensor(continuation, device=logprobs.device)
                picked = logprobs[end - n : end].gather(-1, target.unsqueeze(-1)).squeeze(-1)
                yield index, (float(picked.sum()), bool((greedy[end - n : end] == target).all()))

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
