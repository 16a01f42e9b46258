"""What the retention anchor sees of GSM8K, and what a debiased adapter costs on GSM8K's own format.

Two measurements, on GSM8K *train* only (never the test items ``gee_gsm8k_ppl`` scores):

1. Coverage (tokenizer only): of each anchor text (GSM8K train question + solution, calculator
   annotations removed), how much of the solution the anchor reads when it keeps each text's first
   ``--max-tokens`` tokens (``--anchor-crop head``, the default) — the question comes first.
2. Cost (``--adapter DIR``): the word perplexity of the base model and of base + adapter on ``--n``
   GSM8K texts of the anchor's held-out side, picked as the perplexity guard picks (``stable_subset``;
   64 holds the guard's 63 GSM8K texts), once as
   the guard scores them (annotations removed) and once as ``gee_gsm8k_ppl`` formats its documents
   (annotations kept, ``<<48/2=24>>``), and how much of the raw form's extra NLL falls inside the
   annotations. One full-text forward per text (no rolling windows; every text is well inside the
   context), the first token conditioned on BOS, so the numbers sit near, not on, lm-eval's.

    DEBIAS_DATA_DIR=../shared/data python benchmarks/anchor_coverage.py --model gemma3-270m \\
        [--adapter runs/leaderboard/gemma3-270m/dpo-gnorm-warmup40/adapter] [--n 64]
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics

import torch

from debias import models
from harness_tasks.retention import utils


def coverage(tokenizer, questions: list[str], texts: list[str], max_tokens: int) -> dict[str, float]:
    """``texts``: the anchor's texts, each ``question`` + newline + solution."""
    question = [len(tokenizer.encode(q + "\n", add_special_tokens=False)) for q in questions]
    full = [len(tokenizer.encode(t, add_special_tokens=False)) for t in texts]
    solution_seen = [max(0, min(max_tokens, f) - q) for q, f in zip(question, full, strict=True)]
    return {
        "median_question_tokens": statistics.median(question),
        "median_text_tokens": statistics.median(full),
        "solution_share_of_anchor_tokens": sum(solution_seen) / sum(min(max_tokens, f) for f in full),
        "solution_tokens_seen": sum(solution_seen) / sum(f - q for q, f in zip(question, full, strict=True)),
    }


def token_nll(model, tokenizer, text: str, adapter_on: bool) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([[bos] + encoded["input_ids"]])
    with torch.no_grad():
        if adapter_on:
            logits = model(ids).logits
        else:
            with model.disable_adapter():
                logits = model(ids).logits
    logprobs = torch.log_softmax(logits[0, :-1].float(), -1)
    return -logprobs.gather(1, ids[0, 1:, None])[:, 0], encoded["offset_mapping"]


def cost(model, tokenizer, texts: list[tuple[str, str]]) -> dict[str, float]:
    """``texts``: (as ``gee_gsm8k_ppl`` formats it, as the anchor and the guard read it) per problem."""
    nll: dict[str, float] = {}
    words = {"raw": 0, "clean": 0}
    for raw, clean_text in texts:
        spans = [m.span() for m in utils._CALCULATOR.finditer(raw)]  # the calculator annotations
        words["raw"] += len(raw.split())
        words["clean"] += len(clean_text.split())
        for side, adapter_on in (("base", False), ("tuned", True)):
            per_token, offsets = token_nll(model, tokenizer, raw, adapter_on)
            inside = torch.tensor([any(s <= o[0] < e for s, e in spans) for o in offsets])
            clean, _ = token_nll(model, tokenizer, clean_text, adapter_on)
            for key, value in (
                ("raw", per_token.sum()),
                ("raw_annotations", per_token[inside].sum()),
                ("clean", clean.sum()),
            ):
                nll[f"{side}_{key}"] = nll.get(f"{side}_{key}", 0.0) + float(value)
    out: dict[str, float] = {}
    for form in ("clean", "raw"):
        base = math.exp(nll[f"base_{form}"] / words[form])
        tuned = math.exp(nll[f"tuned_{form}"] / words[form])
        out[f"{form}_word_ppl_base"], out[f"{form}_word_ppl_tuned"] = base, tuned
        out[f"{form}_rise"] = tuned / base - 1
    out["raw_extra_nll"] = nll["tuned_raw"] - nll["base_raw"]
    out["raw_extra_nll_in_annotations"] = nll["tuned_raw_annotations"] - nll["base_raw_annotations"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=models.DEFAULT_MODEL)
    parser.add_argument("--adapter", help="a LoRA adapter folder: also measure its cost on both forms")
    parser.add_argument("--max-tokens", type=int, default=64, help="the anchor's token limit")
    parser.add_argument("--n", type=int, default=64, help="guard texts (GSM8K train, held-out side)")
    args = parser.parse_args()
    torch.manual_seed(0)
    machine = f"{platform.machine()} {platform.processor() or ''}".strip()
    print(f"machine: {machine}, torch threads {torch.get_num_threads()}")
    train = utils.gsm8k_rows("train")
    clean = utils.neutral_texts()[: len(train)]  # the anchor's text list starts with GSM8K train, in order
    raw = [utils.gsm8k_solution_text(row) for row in train]
    questions = [row["question"] for row in train]
    (anchor_questions, _), (anchor_clean, heldout_clean) = map(utils.neutral_split, (questions, clean))
    model, tokenizer = models.load(args.model)
    for key, value in coverage(tokenizer, anchor_questions, anchor_clean, args.max_tokens).items():
        print(f"coverage {key}: {value:.3f}")
    if args.adapter:
        from peft import PeftModel

        heldout = list(zip(utils.neutral_split(raw)[1], heldout_clean, strict=True))
        picked = utils.stable_subset([{"text": text} for text in heldout_clean], args.n)
        model = PeftModel.from_pretrained(model, args.adapter).eval()
        for key, value in cost(model, tokenizer, [heldout[i] for i in picked]).items():
            print(f"cost {key}: {value:.4f}")


if __name__ == "__main__":
    main()
