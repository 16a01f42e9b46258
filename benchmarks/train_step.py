"""GEE training-step cost, measured side by side in one process.

1. Step time: a GEE step (entropy of every scored token, group sums, exact surrogate backward) vs a plain
   cross-entropy LoRA step on the same batch and model, interleaved (gee, ce, gee, ce, ...) after a
   warm-up; the overhead uses the medians.
2. Peak memory of the entropy + its backward on a long-sequence batch of logits: the chunked
   ``losses.masked_entropy_sums`` vs a naive ``-(softmax * log_softmax).sum(-1)``. Each variant runs in a
   fresh subprocess and reports its peak RSS above the RSS it had with the logits already allocated.

Writes benchmarks/results/train_step.json. Usage: python benchmarks/train_step.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

OUT = Path(__file__).parent / "results" / "train_step.json"


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def memory_probe(variant: str, batch: int, seq: int, vocab: int) -> None:
    """Run in a subprocess: entropy + backward on [batch, seq, vocab] logits, print peak RSS growth."""
    from debias.methods.gee import losses

    torch.manual_seed(0)
    logits = torch.randn(batch, seq, vocab, requires_grad=True)
    mask = torch.ones(batch, seq, dtype=torch.bool)
    base = _rss_mb()
    if variant == "chunked":
        sums, _ = losses.masked_entropy_sums(logits, mask)
        total = sums.sum()
    else:
        logp = torch.log_softmax(logits, dim=-1)
        total = -(logp.exp() * logp).sum(-1)[mask].sum()
    total.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"variant": variant, "peak_above_logits_mb": round(peak - base, 1)}))


def step_times(repeats: int, per_group: int) -> dict:
    from debias import training
    from debias.methods import gee

    cfg = gee.GeeConfig(per_group=per_group, micro_batch_size=2 * per_group, probe_max_examples=2)
    recipe = gee.GeeRecipe(cfg, Path("/tmp/bench-train-step"))
    recipe.setup()
    examples = next(recipe.batches)
    batch = gee.teacher_forced_batch(recipe.tokenizer, examples, recipe.group_index)
    model = recipe.model

    def gee_step() -> None:
        recipe.train_step(examples)

    ce_optimizer, _ = training.optimizer_and_schedule(model, cfg.lr, 0.0, 0, 10)

    def ce_step() -> None:
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        labels = batch.input_ids[:, 1:].masked_fill(batch.score_mask[:, 1:] == 0, -100)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), labels.flatten(), ignore_index=-100
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        ce_optimizer.step()
        ce_optimizer.zero_grad(set_to_none=True)

    times: dict[str, list[float]] = {"gee": [], "ce": []}
    gee_step(), ce_step()  # warm-up
    for _ in range(repeats):
        for name, fn in (("gee", gee_step), ("ce", ce_step)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    gee_s, ce_s = statistics.median(times["gee"]), statistics.median(times["ce"])
    return {
        "examples_per_step": len(examples),
        "tokens_per_step": int(batch.attention_mask.sum()),
        "scored_tokens": int(batch.score_mask.sum()),
        "gee_step_s": [round(t, 3) for t in times["gee"]],
        "ce_step_s": [round(t, 3) for t in times["ce"]],
        "gee_over_ce": round(gee_s / ce_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--per-group", type=int, default=8)
    parser.add_argument("--memory-shape", type=int, nargs=3, default=[4, 1024, 49152], help="batch seq vocab")
    parser.add_argument("--memory-probe", choices=["chunked", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        memory_probe(args.memory_probe, *args.memory_shape)
        return

    memory = {}
    for variant in ("chunked", "naive"):
        cmd = [
            sys.executable,
            __file__,
            "--memory-probe",
            variant,
            "--memory-shape",
            *map(str, args.memory_shape),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        memory[variant] = json.loads(out)["peak_above_logits_mb"]
    report = {
        "step_time": step_times(args.repeats, args.per_group),
        "entropy_memory": {
            "logits_shape": args.memory_shape,
            "logits_mb": round(
                4 * args.memory_shape[0] * args.memory_shape[1] * args.memory_shape[2] / 2**20, 1
            ),
            "peak_above_logits_mb": memory,
            "naive_over_chunked": round(memory["naive"] / memory["chunked"], 2),
        },
        "torch_threads": torch.get_num_threads(),
    }
    from debias.atomic import write_json_atomic

    write_json_atomic(OUT, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
