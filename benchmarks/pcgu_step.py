"""PCGU on the default model: vectorized unit importance + selection vs the per-unit Python loop, and the
time of one PCGU step (two backward passes, selection, masked update).

Both selections run on the same real gradients (one batch of the project's occupation pairs) and must
choose the same units. Writes benchmarks/results/pcgu_step.json. Usage:

    DEBIAS_DATA_DIR=../shared/data python benchmarks/pcgu_step.py [--aggregation input] [--k 0.01]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from pcgu_reference import naive_select_units

from debias import evaluation, models
from debias.atomic import write_json_atomic
from debias.methods import pcgu
from debias.methods.pcgu import partition

OUT = Path(__file__).parent / "results" / "pcgu_step.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aggregation", default="input", choices=["input", "output"])
    parser.add_argument("--k", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model, tokenizer = models.load(models.DEFAULT_MODEL)
    cfg = pcgu.PcguConfig(aggregation=args.aggregation, k=args.k, batch_size=args.batch_size)
    trainer = pcgu.PcguTrainer(cfg, model, tokenizer)
    batch = pcgu.occupation_pairs()[: args.batch_size]
    prefixes = [p.prefix for p in batch]
    lp_a = pcgu.target_logprobs(model, tokenizer, prefixes, [p.advantaged for p in batch])
    lp_d = pcgu.target_logprobs(model, tokenizer, prefixes, [p.disadvantaged for p in batch])
    ga = dict(zip([u.name for u in trainer.units], pcgu.param_grads(lp_a.sum(), trainer.params), strict=True))
    gd = dict(zip([u.name for u in trainer.units], pcgu.param_grads(lp_d.sum(), trainer.params), strict=True))

    fast_s, slow_s = [], []
    for _ in range(args.repeats):  # interleaved, so machine noise hits both alike; medians compared
        start = time.perf_counter()
        fast = partition.select_units(trainer.units, ga, gd, args.k)
        fast_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        slow = naive_select_units(trainer.units, ga, gd, args.k)
        slow_s.append(time.perf_counter() - start)
    same = fast.keys() == slow.keys() and all(torch.equal(fast[n], slow[n]) for n in fast)

    step_s = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        trainer.step(batch, reselect=True)
        step_s.append(time.perf_counter() - start)

    units = sum(u.count for u in trainer.units)
    report = {
        "model": models.DEFAULT_MODEL,
        "aggregation": args.aggregation,
        "k": args.k,
        "units": units,
        "selected_units": sum(len(v) for v in fast.values()),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vectorized_select_s": round(statistics.median(fast_s), 3),
        "naive_loop_select_s": round(statistics.median(slow_s), 3),
        "speedup": round(statistics.median(slow_s) / statistics.median(fast_s), 1),
        "repeats": args.repeats,
        "same_selection": same,
        "pcgu_step_s": round(statistics.median(step_s), 3),
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "libraries": evaluation.library_versions(),
    }
    write_json_atomic(OUT, report)
    print(report)


if __name__ == "__main__":
    main()
