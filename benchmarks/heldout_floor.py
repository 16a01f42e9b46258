"""The held-out suite against its FLOP floor (issue 16: suite time / floor <= 1.5).

The floor is what no scorer could beat on this machine: the suite's *required* forward FLOPs divided by
the dense fp32 GEMM throughput measured in the same run (a large square matmul, best of five). Required
means each distinct model input the suite's log-likelihood requests need (as lm-eval's HFLM builds them:
truncated from the left, last token dropped), run once, and per position:

- body: 2 FLOPs per multiply-add of every decoder linear layer (2 * N_body per token) plus attention
  scores and mixing over the causal prefix (2 * 2 * n_heads * head_dim * (i + 1) per layer at position i);
- head: 2 * d * V only at the positions a request scores (a continuation's tokens; every token of a
  perplexity window) -- context and padding positions need no logits.

Norms, activations, softmax and the log-softmax are not counted (memory-bound, small), so the ratio is
conservative. The same run also times a raw batched no-grad forward over the same sequences
(``eval_suite.forward_floor``: the previous, FLOP-agnostic floor, which runs the head everywhere) and
the suite itself through ``debias.evaluation`` with the default scorer (``gee-hf``), and reports
suite / FLOP floor and suite / batched forward. Writes benchmarks/results/heldout_floor.json.

    DEBIAS_DATA_DIR=../shared/data python benchmarks/heldout_floor.py [--suite gee_heldout] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))

from eval_suite import forward_floor, suite_encoded  # noqa: E402
from gpu_train import device_name, measured_gemm_flops  # noqa: E402

OUT = Path(__file__).parent / "results" / "heldout_floor.json"
Inputs = dict[tuple[int, ...], set[int]]  # distinct model input -> the positions some request scores


def scored_inputs(
    encoded: list[tuple[list[int], list[int]]], max_length: int
) -> dict[tuple[int, ...], set[int]]:
    """Each distinct model input -> the positions whose logits some request reads.

    A request (context, continuation) feeds ``(context + continuation)[-(max_length + 1):][:-1]`` and
    reads the last ``len(continuation)`` positions of it (HFLM's ``_loglikelihood_tokens``).
    """
    inputs: dict[tuple[int, ...], set[int]] = {}
    for context, continuation in encoded:
        whole = (context + continuation)[-(max_length + 1) :]
        model_input = tuple(whole[:-1])
        n = len(model_input)
        scored = range(max(0, n - len(continuation)), n)
        inputs.setdefault(model_input, set()).update(scored)
    return inputs


def body_linear_params(model: nn.Module) -> int:
    """Weights of every linear layer the decoder runs per token, the LM head excluded."""
    head = model.get_output_embeddings()
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear) and m is not head)


def _flops(tokens: int, scored: int, prefix_pairs: int, *shape: int) -> dict[str, float]:
    """2 FLOPs per multiply-add: the body per token, attention per (query, visible key) pair per layer,
    the head per scored position. ``shape``: body params, layers, attention width, hidden, vocab."""
    body_params, layers, attn_width, hidden, vocab = shape
    body = 2.0 * body_params * tokens
    attention = 2.0 * 2.0 * attn_width * layers * prefix_pairs
    head = 2.0 * hidden * vocab * scored
    return {
        "tokens": tokens,
        "scored_positions": scored,
        "body": body,
        "attention": attention,
        "head": head,
        "total": body + attention + head,
    }


def required_flops(
    inputs: Inputs, body_params: int, layers: int, attn_width: int, hidden: int, vocab: int
) -> dict[str, float]:
    """Forward FLOPs: the body at every token, attention over the causal prefix, the head where scored."""
    tokens = sum(len(s) for s in inputs)
    # sum over positions of (i + 1) = n (n + 1) / 2 per sequence
    prefix_pairs = sum(len(s) * (len(s) + 1) // 2 for s in inputs)
    scored = sum(len(p) for p in inputs.values())
    flops = _flops(tokens, scored, prefix_pairs, body_params, layers, attn_width, hidden, vocab)
    return {**flops, "head_if_everywhere": 2.0 * hidden * vocab * tokens}


def shared_required_flops(
    inputs: Inputs, body_params: int, layers: int, attn_width: int, hidden: int, vocab: int
) -> dict[str, float]:
    """The stricter floor once inputs may share work: every distinct *prefix* run once (the suite's
    trie; what the scorer's prefix trees approach), attention over its depth, the head at each distinct
    scored prefix."""
    nodes: set[tuple[int, ...]] = set()
    scored: set[tuple[int, ...]] = set()
    for seq, positions in inputs.items():
        nodes.update(seq[: i + 1] for i in range(len(seq)))
        scored.update(seq[: i + 1] for i in positions)
    prefix_pairs = sum(len(node) for node in nodes)  # a node at depth i attends to i + 1 positions
    return _flops(len(nodes), len(scored), prefix_pairs, body_params, layers, attn_width, hidden, vocab)


def attention_width(config) -> int:
    """n_heads * head_dim (Gemma 3's head_dim is not hidden / heads)."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return config.num_attention_heads * head_dim


def suite_inputs(lm, manager, suite: str, limit: int | None) -> dict[tuple[int, ...], set[int]]:
    return scored_inputs(suite_encoded(lm, manager, [suite], limit), lm.max_length)


def main(argv: list[str] | None = None) -> dict:
    from lm_eval.models.huggingface import HFLM

    from debias import evaluation, models
    from debias.atomic import write_json_atomic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--suite", default="gee_heldout")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gemm-n", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--skip-forward", action="store_true", help="do not time the raw batched forward (saves its ~8 min)"
    )
    parser.add_argument(
        "--compare-with",
        type=Path,
        help="a results JSON (with samples) of the same suite from another scorer: report the differences",
    )
    args = parser.parse_args(argv)

    model, tokenizer = models.load(args.model)
    path = str(models.resolve(args.model))
    config = model.config
    gemm = measured_gemm_flops(torch.device("cpu"), torch.float32, args.gemm_n)

    evaluation.evaluate(model, tokenizer, evaluation.EvalRequest(tasks=["gee_crows_pairs"], limit=8), path)
    request = evaluation.EvalRequest(tasks=[args.suite], limit=args.limit, batch_size=args.batch_size)
    start = time.perf_counter()
    results = evaluation.evaluate(model, tokenizer, request, path)
    suite_s = time.perf_counter() - start
    print(f"suite {args.suite}: {suite_s:.1f} s", flush=True)

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size)
    inputs = suite_inputs(lm, evaluation.task_manager(path), args.suite, args.limit)
    shape = (
        body_linear_params(model),
        config.num_hidden_layers,
        attention_width(config),
        config.hidden_size,
        model.get_output_embeddings().weight.shape[0],
    )
    flops, shared = required_flops(inputs, *shape), shared_required_flops(inputs, *shape)
    sequences = sorted((list(s) for s in inputs), key=len, reverse=True)
    forward_s = (
        None
        if args.skip_forward
        else forward_floor(model, sequences, args.batch_size, tokenizer.pad_token_id or 0)
    )
    gemm_after = measured_gemm_flops(torch.device("cpu"), torch.float32, args.gemm_n)
    throughput = max(gemm, gemm_after)  # the machine's best, so the floor is the lowest defensible one
    floor_s = flops["total"] / throughput
    shared_floor_s = shared["total"] / throughput
    report = {
        "model": args.model,
        "suite": args.suite,
        "limit": args.limit,
        "batch_size": args.batch_size,
        "machine": {"cpu": device_name(torch.device("cpu")), "torch_threads": torch.get_num_threads()},
        "host": platform.node(),
        "gemm": {
            "n": args.gemm_n,
            "dtype": "float32",
            "gflops_before": gemm / 1e9,
            "gflops_after": gemm_after / 1e9,
        },
        "required": {"sequences": len(inputs), **flops},
        "flops_formula": (
            "2*N_body per token + 4*n_heads*head_dim*L*(i+1) at position i + 2*d*V per scored position"
        ),
        "required_shared_prefixes": shared,
        "floor_s": floor_s,
        "shared_prefix_floor_s": shared_floor_s,
        "suite_s": suite_s,
        "batched_forward_s": forward_s,
        "suite_over_floor": suite_s / floor_s,
        "suite_over_shared_prefix_floor": suite_s / shared_floor_s,
        "suite_over_batched_forward": suite_s / forward_s if forward_s else None,
        "batched_forward_over_floor": forward_s / floor_s if forward_s else None,
    }
    if args.compare_with:
        from scorer_speed import differences

        other = json.loads(args.compare_with.read_text())
        report["sameness"] = {"against": str(args.compare_with), **differences(other, results)}
    write_json_atomic(args.out, report)
    forward = ""
    if forward_s:
        forward = f"batched forward {forward_s:.1f} s (suite / forward {suite_s / forward_s:.2f})"
    print(
        f"floor {floor_s:.1f} s ({flops['total'] / 1e12:.2f} TFLOP at {throughput / 1e9:.1f} GFLOP/s); "
        f"suite {suite_s:.1f} s = {suite_s / floor_s:.2f} x floor, {suite_s / shared_floor_s:.2f} x the "
        f"shared-prefix floor ({shared['total'] / 1e12:.2f} TFLOP); {forward}; {report['machine']['cpu']}"
    )
    if "sameness" in report:
        print(f"sameness: {report['sameness']}")
    return report


if __name__ == "__main__":
    main()
