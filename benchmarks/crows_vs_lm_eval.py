"""gee_crows_pairs vs lm-eval's built-in crows_pairs scoring, on the same 1508 pairs and model.

Evaluates both tasks on the full original CrowS-Pairs file in one process (after a short warm-up), each
timed on its own, and writes benchmarks/results/crows_vs_lm_eval.json. Usage:

    DEBIAS_DATA_DIR=../shared/data python benchmarks/crows_vs_lm_eval.py [--model smollm2-135m] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lm_eval
import torch
from lm_eval.models.huggingface import HFLM

from debias import evaluation, models
from debias.atomic import write_json_atomic
from harness_tasks.crows_pairs.lm_eval_reference import REFERENCE_TASK, builtin_crows_config

OUT = Path(__file__).parent / "results" / "crows_vs_lm_eval.json"


def timed_eval(lm, task, manager, limit):
    start = time.perf_counter()
    results = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=manager, limit=limit)
    return evaluation.summary(results), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    model, tokenizer = models.load(args.model)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size)
    manager = evaluation.task_manager(str(models.resolve(args.model)))
    timed_eval(lm, "gee_crows_pairs", manager, 16)  # warm-up: imports, allocator, dataset load paths
    ours, ours_s = timed_eval(lm, "gee_crows_pairs", manager, args.limit)
    ref, ref_s = timed_eval(lm, builtin_crows_config(), manager, args.limit)
    ours, ref = ours["gee_crows_pairs"], ref[REFERENCE_TASK]
    report = {
        "model": args.model,
        "limit": args.limit,
        "pairs": 1508 if args.limit is None else args.limit,
        "gee_crows_pairs": ours,
        "lm_eval_builtin": ref,
        "pct_stereotype_diff_points": 100 * abs(ours["pct_stereotype"] - ref["pct_stereotype"]),
        "wall_s": {"gee_crows_pairs": round(ours_s, 2), "lm_eval_builtin": round(ref_s, 2)},
        "time_ratio_ours_over_builtin": round(ours_s / ref_s, 3),
        "torch_threads": torch.get_num_threads(),
        "libraries": evaluation.library_versions(),
    }
    write_json_atomic(OUT, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
