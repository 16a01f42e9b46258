"""The evaluated model's tokenizer, for metrics that are normalised per token.

lm-eval hands a task's ``custom_dataset`` the task metadata, which on the command line includes the
``--model_args`` (so ``pretrained=...``) and from Python whatever the caller put in ``metadata``; this is
the same route lm-eval's own RULER tasks use to size prompts. Without either, per-token metrics are left
out (never guessed).
"""

from __future__ import annotations

from functools import cache
from typing import Any


def tokenizer_spec(metadata: dict[str, Any]) -> str | None:
    spec = metadata.get("tokenizer") or metadata.get("pretrained")
    return spec if isinstance(spec, str) and spec else None


@cache
def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec)


def count_tokens(tokenizer, text: str) -> int:
    """Tokens lm-eval scores for ``text`` as a continuation of an empty context (no special tokens)."""
    return len(tokenizer.encode(text, add_special_tokens=False))


def continuation_tokens(tokenizer, context: str, continuation: str) -> list:
    """The tokens lm-eval scores for ``continuation`` after ``context`` (``LM.loglikelihood`` with its
    ``_encode_pair`` split), so a task can normalise by exactly that count.

    An empty context is replaced by the BOS/EOS token and the continuation encoded alone. Otherwise
    trailing spaces of the context move into the continuation, context + continuation and the context
    alone are encoded, and the tokens past the context's length are scored (a whitespace-only context
    therefore scores the encoding of the spaces + continuation).
    """
    if not context:
        return list(tokenizer.encode(continuation, add_special_tokens=False))
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    return list(whole[len(tokenizer.encode(context, add_special_tokens=False)) :])
