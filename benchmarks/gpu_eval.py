"""Held-out suite throughput on a 7B-class model, against a raw batched forward over the same tokens.

The model is randomly initialised with a real 7B-class shape (``gpu_train.SHAPES``; the GPU machine
cannot download weights), bf16, SDPA attention, TF32. Its tokenizer is the default model's (the 7B
tokenizers are not on the machine either): every token id is valid in the larger vocabulary, so the
token counts and shapes are the suite's own and only the scores are meaningless. Two measurements, one
process, one model instance:

1. the suite (default ``gee_heldout``) through ``debias.evaluation.evaluate``, what users run;
2. a raw no-grad batched forward over exactly the token sequences the suite's requests feed the model
   (log-likelihood and perplexity windows, as HFLM encodes them, de-duplicated, sorted by length, same
   batch size) — the floor the harness is measured against (target: suite ≤ 1.2 × floor).

Usage (GPU): DEBIAS_DATA_DIR=../shared/data python benchmarks/gpu_eval.py --shape llama3-8b --batch-size 64
       (CPU check): ... --shape tiny --limit 8 --batch-size 8
Writes benchmarks/results/gpu_eval-<shape>-<device>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import gpu_train  # noqa: E402  (a sibling script, not a package)
from eval_suite import forward_floor, suite_sequences  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> dict:
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from debias import evaluation, models
    from debias.atomic import write_json_atomic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(gpu_train.SHAPES), default="llama3-8b")
    parser.add_argument("--suite", default="gee_heldout")
    parser.add_argument("--limit", type=int, help="documents per task (default: all)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the default model's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats()
    tokenizer_path = args.tokenizer or str(models.resolve(models.DEFAULT_MODEL))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    model, config = gpu_train.build_model(
        args.shape, dtype, device, grad_ckpt=False, lora_r=0, min_vocab=len(tokenizer)
    )
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    request = evaluation.EvalRequest(tasks=[args.suite], limit=args.limit, batch_size=args.batch_size)
    evaluation.evaluate(
        model, tokenizer, evaluation.EvalRequest(tasks=["gee_crows_pairs"], limit=4), tokenizer_path
    )  # warm-up: kernels, task loading
    gpu_train._sync(device)
    start = time.perf_counter()
    evaluation.evaluate(model, tokenizer, request, tokenizer_path)
    gpu_train._sync(device)
    suite_s = time.perf_counter() - start

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size)
    manager = evaluation.task_manager(tokenizer_path, tasks=[args.suite])
    sequences = suite_sequences(lm, manager, [args.suite], args.limit)
    gpu_train._sync(device)
    floor_s = forward_floor(model, sequences, args.batch_size, tokenizer.pad_token_id, device)
    tokens = sum(len(s) for s in sequences)
    result = {
        "what": "held-out suite vs a raw batched forward over the same tokens, randomly initialised model",
        "shape": args.shape,
        "device": gpu_train.device_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "suite": args.suite,
        "limit": args.limit,
        "batch_size": args.batch_size,
        "suite_wall_s": suite_s,
        "floor_wall_s": floor_s,
        "suite_over_floor": suite_s / floor_s,
        "sequences": len(sequences),
        "tokens": tokens,
        "floor_tokens_per_s": tokens / floor_s,
        "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None,
    }
    out = Path(args.out) if args.out else RESULTS / f"gpu_eval-{args.shape}-{device.type}.json"
    write_json_atomic(out, result)
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()})
    return result


if __name__ == "__main__":
    main()
