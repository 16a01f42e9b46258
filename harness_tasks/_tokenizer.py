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
