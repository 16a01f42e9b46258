"""Stand-ins for a model and tokenizer, so lm-eval's real pipeline computes numbers checkable by hand."""

from __future__ import annotations

from lm_eval.api.model import LM


class FixedLoglikelihoods(LM):
    """Answers each (context, continuation) request from a table; an unexpected request is a KeyError."""

    def __init__(self, table: dict[tuple[str, str], float]):
        super().__init__()
        self.table = table
        self.seen: list[tuple[str, str]] = []

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        self.seen += [req.args for req in requests]
        return [(self.table[req.args], False) for req in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


class WhitespaceTokenizer:
    """One token per whitespace-separated word: token counts become word counts."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
        return text.split()
