"""Wall time of a task suite on the default model, against the compute floor and lm-eval's crows scoring.

Three measurements in one process, on one model instance:
1. the suite (default ``gee_bias``) through ``debias.evaluation.evaluate`` — what users run;
2. the compute floor: one batched no-grad forward pass over exactly the token sequences the suite's
   log-likelihood requests need (encoded as lm-eval's HFLM encodes them, de-duplicated, sorted by length,
   same batch size) — nothing a faster harness could skip;
3. ``gee_crows_pairs`` vs lm-eval's built-in crows_pairs scoring on the same 1508 pairs, interleaved
   (ours, theirs, ours, theirs ...) so machine noise hits both alike; the ratio uses the medians.

Writes benchmarks/results/eval_suite.json. Usage:
    DEBIAS_DATA_DIR=../shared/data python benchmarks/eval_suite.py [--suite gee_bias] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import lm_eval
import torch
from lm_eval.models.huggingface import HFLM

from debias import evaluation, models, pipeline
from debias.atomic import write_json_atomic
from harness_tasks.crows_pairs.lm_eval_reference import builtin_crows_config

OUT = Path(__file__).parent / "results" / "eval_suite.json"


def encoded_requests(
    lm: HFLM, instances: list, kind: str = "loglikelihood"
) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) token ids of each log-likelihood request, as HFLM itself encodes them.

    lm-eval has no public encode-only entry point: ``TemplateLM.loglikelihood`` encodes each request
    (empty context -> ``prefix_token_id``, else ``_encode_pair``) and hands the encodings straight to
    ``_loglikelihood_tokens``, the scorer. So this calls ``loglikelihood`` itself with that one method
    replaced, on this instance and for this call only, by a recorder that scores nothing. ``kind``
    ``loglikelihood_rolling`` records the windows HFLM cuts a perplexity document into, the same way.
    """
    captured: list[tuple[list[int], list[int]]] = []

    def record(requests, **_):
        captured.extend((context_enc, continuation_enc) for _, context_enc, continuation_enc in requests)
        return [(0.0, False)] * len(requests)

    lm._loglikelihood_tokens = record  # an instance attribute shadows HFLM's method
    try:
        getattr(lm, kind)(instances, disable_tqdm=True)
    finally:
        del lm._loglikelihood_tokens
    return captured


def suite_encoded(lm: HFLM, manager, tasks: list, limit: int | None) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) ids of every log-likelihood request of ``tasks``, as HFLM encodes them."""
    loaded = manager.load(tasks)["tasks"]
    by_kind: dict[str, list] = {"loglikelihood": [], "loglikelihood_rolling": []}
    for task in loaded.values():
        task.build_all_requests(limit=limit, rank=0, world_size=1)
        for inst in task.instances:
            if inst.request_type not in by_kind:
                raise SystemExit(f"{task.config.task}: floor only covers log-likelihood requests")
            by_kind[inst.request_type].append(inst)
    return [pair for kind, items in by_kind.items() if items for pair in encoded_requests(lm, items, kind)]


def suite_sequences(lm: HFLM, manager, tasks: list, limit: int | None) -> list[list[int]]:
    """Model inputs of every log-likelihood request of ``tasks``, exactly as HFLM builds them."""
    encoded = suite_encoded(lm, manager, tasks, limit)
    # the input HFLM._loglikelihood_tokens feeds the model: truncated from the left, last token dropped
    sequences = {tuple((ctx + cont)[-(lm.max_length + 1) :][:-1]) for ctx, cont in encoded}
    return sorted((list(s) for s in sequences), key=len, reverse=True)


def forward_floor(model, sequences: list[list[int]], batch_size: int, pad_id: int, device=None) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(sequences), batch_size):
            chunk = sequences[i : i + batch_size]
            width = max(len(s) for s in chunk)
            batch = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            for row, seq in enumerate(chunk):
                batch[row, : len(seq)] = torch.tensor(seq)
            model(batch if device is None else batch.to(device, non_blocking=True))
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--suite", default="gee_bias")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved crows timing pairs")
    args = parser.parse_args()

    model, tokenizer = models.load(args.model)
    path = str(models.resolve(args.model))
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size)
    manager = evaluation.task_manager(path)
    request = evaluation.EvalRequest(tasks=[args.suite], limit=args.limit, batch_size=args.batch_size)

    evaluation.evaluate(model, tokenizer, evaluation.EvalRequest(tasks=["gee_crows_pairs"], limit=8), path)
    results, suite_s = timed(lambda: pipeline.evaluate_spec(args.model, request))
    # the timed run doubles as the cached base evaluation that debiasing comparisons reuse
    pipeline.store_base_results(args.model, request, results)
    sequences = suite_sequences(lm, manager, [args.suite], args.limit)
    floor_s = forward_floor(model, sequences, args.batch_size, tokenizer.pad_token_id or 0)

    ours, theirs = [], []
    for _ in range(args.repeats):
        for name, task, sink in (
            ("ours", "gee_crows_pairs", ours),
            ("theirs", builtin_crows_config(), theirs),
        ):
            _, seconds = timed(
                lambda task=task: lm_eval.simple_evaluate(
                    model=lm, tasks=[task], task_manager=manager, limit=args.limit
                )
            )
            sink.append(seconds)
            print(f"crows timing {name}: {seconds:.1f} s", flush=True)

    report = {
        "model": args.model,
        "suite": args.suite,
        "limit": args.limit,
        "batch_size": args.batch_size,
        "suite_wall_s": round(suite_s, 1),
        "floor": {
            "sequences": len(sequences),
            "tokens": sum(len(s) for s in sequences),
            "wall_s": round(floor_s, 1),
        },
        "suite_over_floor": round(suite_s / floor_s, 2),
        "crows_wall_s": {
            "gee_crows_pairs": [round(s, 1) for s in ours],
            "lm_eval_builtin": [round(s, 1) for s in theirs],
        },
        "crows_ratio_ours_over_builtin": round(statistics.median(ours) / statistics.median(theirs), 3),
        "metrics": evaluation.summary(results),
        "data_sha256": results["provenance"]["data_sha256"],
        "torch_threads": torch.get_num_threads(),
        "libraries": evaluation.library_versions(),
    }
    write_json_atomic(OUT, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
