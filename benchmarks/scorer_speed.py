"""The scored-positions scorer (``gee-hf``) against lm-eval's HFLM on a whole suite: time and sameness.

One process, one model instance; the two scorers run interleaved (hf, gee-hf, hf, gee-hf ... with
``--repeats``) so machine noise hits both alike; the ratio uses the medians. Every rate of the suite
must come out the same; log-probabilities agree to float32 rounding (the prefix trees change the
kernels' summation order: ~1e-5 per token, so a metric built on log-probability differences may move in
its 6th digit; metrics_differ lists any beyond 1e-6 relative). Writes benchmarks/results/scorer_speed.json.

    DEBIAS_DATA_DIR=../shared/data python benchmarks/scorer_speed.py [--suite gee_heldout] [--repeats 1]
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from gpu_train import device_name  # noqa: E402

OUT = Path(__file__).parent / "results" / "scorer_speed.json"


def differences(a: dict, b: dict) -> dict:
    """Largest per-request log-probability difference and the metrics that differ beyond 1e-6 relative."""
    worst, flags = 0.0, 0
    for task, rows in a["samples"].items():
        for x, y in zip(rows, b["samples"][task], strict=True):
            for (p,), (q,) in zip(x["resps"], y["resps"], strict=True):
                if isinstance(p, list | tuple):
                    worst, flags = max(worst, abs(p[0] - q[0])), flags + (p[1] != q[1])
                else:
                    worst = max(worst, abs(p - q))
    metrics = []
    for task, values in a["results"].items():
        for name, value in values.items():
            other = b["results"][task].get(name)
            both_nan = isinstance(value, float) and math.isnan(value) and math.isnan(other)
            if isinstance(value, float) and not both_nan and abs(other - value) > 1e-6 * max(1.0, abs(value)):
                metrics.append([task, name, value, other])
    return {"max_abs_logprob_diff": worst, "greedy_flags_differ": flags, "metrics_differ": metrics}


def main() -> None:
    from debias import evaluation, models
    from debias.atomic import write_json_atomic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="gee_heldout")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    model, tokenizer = models.load(models.DEFAULT_MODEL)
    path = str(models.resolve(models.DEFAULT_MODEL))
    warm = evaluation.EvalRequest(tasks=["gee_crows_pairs"], limit=8)
    evaluation.evaluate(model, tokenizer, warm, path)  # task loading, kernels
    times: dict[str, list[float]] = {"hf": [], "gee-hf": []}
    results: dict[str, dict] = {}
    for _ in range(args.repeats):
        for scorer in ("hf", "gee-hf"):
            request = evaluation.EvalRequest(
                tasks=[args.suite], limit=args.limit, batch_size=args.batch_size, scorer=scorer
            )
            start = time.perf_counter()
            results[scorer] = evaluation.evaluate(model, tokenizer, request, path)
            times[scorer].append(time.perf_counter() - start)
            print(f"{scorer}: {times[scorer][-1]:.1f} s", flush=True)
    hf, ours = statistics.median(times["hf"]), statistics.median(times["gee-hf"])
    report = {
        "suite": args.suite,
        "limit": args.limit,
        "batch_size": args.batch_size,
        "machine": {"cpu": device_name(torch.device("cpu")), "torch_threads": torch.get_num_threads()},
        "host": platform.node(),
        "wall_s": {k: [round(t, 1) for t in v] for k, v in times.items()},
        "gee_hf_over_hf": ours / hf,
        "sameness": differences(results["hf"], results["gee-hf"]),
    }
    write_json_atomic(OUT, report)
    print(f"gee-hf / hf = {ours:.1f} / {hf:.1f} s = {ours / hf:.3f}; sameness: {report['sameness']}")


if __name__ == "__main__":
    main()
