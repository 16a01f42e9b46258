"""Soak: does a long run leak? 200 training steps and 3 evaluations on the default model, RSS every step.

The method is the leaderboard's equalisation recipe (LoRA + retention anchor, its defaults except the
step count; no checks, so nothing but training steps and the evaluations runs). RSS is read from
/proc/self/statm after every step and after each evaluation (``gee_crows_pairs``, ``--limit`` items,
between steps 50/100/150). Growth = (largest RSS after warm-up − RSS at the end of warm-up) / that RSS;
the target is ≤ 5 %. Also reported: the same growth measured from just after the first evaluation
(the first evaluation loads lm-eval's tasks and datasets once; a leak would keep growing after it).
Not in CI (about 20 minutes here).

``--warmup-eval N`` (declared 2026-12-05, before any run with it, after a run without it showed the
first evaluation raising RSS once by ~130 MB and the level staying flat after it): the warm-up ends
with one small evaluation (N CrowS-Pairs items), so every kind of work the loop does — training steps
and an evaluation, with the modules and task objects it loads once — has run before the reference RSS
is read. Same target, same measure (largest RSS after the warm-up vs RSS at its end); 0 (the default)
keeps the original design.

Writes benchmarks/results/soak.json and benchmarks/results/soak.svg (the RSS curve, linked from
benchmarks/README.md). Usage:

    DEBIAS_DATA_DIR=../shared/data python benchmarks/soak.py [--steps 200] [--warmup 20] [--limit 200]
    python benchmarks/soak.py --summarize   # recompute the figures and the SVG from results/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

from debias.atomic import write_json_atomic, write_text_atomic

RESULTS = Path(__file__).parent / "results"


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def svg(samples: list[dict], warmup: int, width: int = 640, height: int = 240) -> str:
    """The RSS curve as a standalone SVG (steps on x, MB on y; evaluations marked)."""
    xs = [s["step"] for s in samples]
    ys = [s["rss_mb"] for s in samples]
    lo, hi = min(ys) * 0.98, max(ys) * 1.02
    pad = 40

    def x(v: float) -> float:
        return pad + (v - min(xs)) / max(max(xs) - min(xs), 1) * (width - 2 * pad)

    def y(v: float) -> float:
        return height - pad - (v - lo) / max(hi - lo, 1e-9) * (height - 2 * pad)

    points = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(xs, ys, strict=True))
    marks = "".join(
        f'<circle cx="{x(s["step"]):.1f}" cy="{y(s["rss_mb"]):.1f}" r="3" fill="#c0392b"/>'
        for s in samples
        if s["event"] == "eval"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11" '
        'font-family="sans-serif">'
        f'<rect width="{width}" height="{height}" fill="white"/>'
        f'<line x1="{x(warmup):.1f}" y1="{pad}" x2="{x(warmup):.1f}" y2="{height - pad}" stroke="#bbb" '
        'stroke-dasharray="4"/>'
        f'<polyline fill="none" stroke="#2c3e50" stroke-width="1.5" points="{points}"/>{marks}'
        f'<text x="{pad}" y="{pad - 10}">RSS (MB): {lo / 0.98:.0f} to {hi / 1.02:.0f}; dashed: end of '
        "warm-up; red: after an evaluation</text>"
        f'<text x="{pad}" y="{height - 12}">training step 0 to {max(xs)}</text>'
        "</svg>\n"
    )


def growth_figures(samples: list[dict], warmup: int) -> dict:
    """Growth from the end of warm-up (the target) and from just after the first evaluation."""
    # the reference is the last sample of the warm-up: its last step, or the evaluation that ends it
    at_warmup = [s["rss_mb"] for s in samples if s["step"] == warmup and s["event"] != "eval"][-1]
    after = max(s["rss_mb"] for s in samples if s["step"] > warmup)
    first_eval = next(i for i, s in enumerate(samples) if s["event"] == "eval")
    at_first_eval = samples[first_eval]["rss_mb"]
    after_first_eval = max(s["rss_mb"] for s in samples[first_eval + 1 :])
    # RSS between evaluations: the median shows the level a leak would raise; the maximum also holds
    # per-step transient peaks (a long batch's activations, returned to the allocator after the step)
    bounds = [warmup, *sorted({s["step"] for s in samples if s["event"] == "eval"}), samples[-1]["step"]]
    windows = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        values = [s["rss_mb"] for s in samples if s["event"] == "train" and lo < s["step"] <= hi]
        if values:
            windows.append(
                {"steps": [lo + 1, hi], "median_mb": statistics.median(values), "max_mb": max(values)}
            )
    return {
        "windows": windows,
        "median_growth_after_first_eval": windows[-1]["median_mb"] / windows[1]["median_mb"] - 1.0
        if len(windows) > 1
        else None,
        "rss_mb_at_warmup": at_warmup,
        "rss_mb_max_after_warmup": after,
        "rss_mb_final": samples[-1]["rss_mb"],
        "growth_after_warmup": after / at_warmup - 1.0,
        "rss_mb_after_first_eval": at_first_eval,
        "rss_mb_max_after_first_eval": after_first_eval,
        "growth_after_first_eval": after_first_eval / at_first_eval - 1.0,
    }


def summarize() -> None:
    result = json.loads((RESULTS / "soak.json").read_text())
    result.update(growth_figures(result["samples"], result["warmup"]))
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from gpu_train import device_name  # the CPU model and its vector ISA

    result["machine"]["cpu"] = device_name(torch.device("cpu"))
    result["met"] = result["growth_after_warmup"] <= result["target_growth"]
    write_json_atomic(RESULTS / "soak.json", result)
    write_text_atomic(RESULTS / "soak.svg", svg(result["samples"], result["warmup"]))
    print(
        f"RSS {result['rss_mb_at_warmup']:.0f} MB at step {result['warmup']} -> max "
        f"{result['rss_mb_max_after_warmup']:.0f} MB after it ({result['growth_after_warmup']:+.1%}; target "
        f"<= +5 %); after the first evaluation {result['rss_mb_after_first_eval']:.0f} -> max "
        f"{result['rss_mb_max_after_first_eval']:.0f} MB ({result['growth_after_first_eval']:+.1%}); "
        + "median RSS "
        + " / ".join(f"{w['median_mb']:.0f}" for w in result["windows"])
        + f" MB between evaluations ({result['median_growth_after_first_eval']:+.1%} after the first)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--limit", type=int, default=200, help="CrowS-Pairs items per evaluation")
    parser.add_argument(
        "--warmup-eval", type=int, default=0, help="CrowS-Pairs items of one evaluation ending the warm-up"
    )
    parser.add_argument("--summarize", action="store_true", help="only recompute from results/soak.json")
    args = parser.parse_args()
    if args.summarize:
        return summarize()

    from debias import evaluation, memory
    from debias.methods.equalize.recipe import EqualizeConfig, EqualizeRecipe

    cfg = EqualizeConfig(steps=args.steps, check_every=10**9, select_task="")
    evals_at = {args.steps // 4, args.steps // 2, 3 * args.steps // 4}
    samples: list[dict] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = EqualizeRecipe(cfg, Path(tmp) / "run")
        recipe.setup()
        samples.append({"step": 0, "event": "setup", "rss_mb": rss_mb()})
        for step in range(1, args.steps + 1):
            recipe.train_step()
            memory.release_freed_memory()  # what every recipe's loop does after a step
            recipe.step = step
            samples.append({"step": step, "event": "train", "rss_mb": rss_mb()})
            limit = args.limit if step in evals_at else args.warmup_eval if step == args.warmup else 0
            if limit:
                recipe.model.eval()
                request = evaluation.EvalRequest(tasks=["gee_crows_pairs"], limit=limit, log_samples=True)
                evaluation.evaluate(recipe.model, recipe.tokenizer, request)
                recipe.model.train()
                event = "eval" if step in evals_at else "warmup_eval"
                samples.append({"step": step, "event": event, "rss_mb": rss_mb()})
            if step % 20 == 0:
                print(f"step {step}: RSS {samples[-1]['rss_mb']:.0f} MB", flush=True)
    figures = growth_figures(samples, args.warmup)
    result = {
        "what": __doc__.splitlines()[0],
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "steps": args.steps,
        "warmup": args.warmup,
        "warmup_eval": args.warmup_eval,
        "evaluations": sorted(evals_at),
        "eval_limit": args.limit,
        **figures,
        "target_growth": 0.05,
        "met": figures["growth_after_warmup"] <= 0.05,
        "wall_s": round(time.perf_counter() - started, 1),
        "samples": samples,
    }
    write_json_atomic(RESULTS / "soak.json", result)
    summarize()


if __name__ == "__main__":
    main()
