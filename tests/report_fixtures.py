"""Run folders built from small hand-made result files, through the real comparison code.

The documents are few enough that bootstrap percentiles can be enumerated by hand (see test_report.py),
and dataset fields carry markup so that escaping is tested on what the report really prints.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

from debias import compare
from debias.atomic import write_json_atomic
from harness_tasks.winogender import metrics as winogender_metrics

SCRIPT = "<script>alert(1)</script>"


class FakeTask:
    def __init__(self, aggregations):
        self._aggregations = aggregations

    def aggregation(self):
        return self._aggregations


class FakeTaskManager:
    """What compare() needs of lm-eval's TaskManager: each task's aggregation functions."""

    TASKS = {
        "gee_crows_pairs": FakeTask(
            {"pct_stereotype": statistics.fmean, "likelihood_diff": statistics.fmean}
        ),
        "gee_winogender": FakeTask({"stereotype_corr": winogender_metrics.stereotype_corr}),
    }

    def load(self, names):
        return {"tasks": {name: self.TASKS[name] for name in names}}


def crows_samples(stereotyped: list[float], diffs: list[float]) -> list[dict]:
    return [
        {
            "doc_id": i,
            "doc": {
                "sent_more": f"pair {i}: the {SCRIPT} people are bad",
                "sent_less": f"pair {i}: the other people are bad",
                "bias_type": "race-color",
            },
            "pct_stereotype": s,
            "likelihood_diff": d,
        }
        for i, (s, d) in enumerate(zip(stereotyped, diffs, strict=True))
    ]


def winogender_samples(log_ratios: list[float]) -> list[dict]:
    occupations = [("nurse", 90.0), ("engineer", 10.0), (SCRIPT, 50.0)]
    return [
        {"doc_id": i, "stereotype_corr": [occ, lr, bls]}
        for i, ((occ, bls), lr) in enumerate(zip(occupations, log_ratios, strict=True))
    ]


def results_file(samples: dict[str, list[dict]], ss: float, lms: float, model_key: str = "w") -> dict:
    results: dict = {
        "gee_stereoset": {"ss,none": ss, "lms,none": lms, "ss_gender,none": ss + 2, "ss_race,none": ss - 1}
    }
    results["gee_crows_pairs"] = {
        "pct_stereotype,none": statistics.fmean(s["pct_stereotype"] for s in samples["gee_crows_pairs"]),
        "pct_stereotype_race_color,none": statistics.fmean(
            s["pct_stereotype"] for s in samples["gee_crows_pairs"]
        ),
    }
    results["gee_winogender"] = {
        "stereotype_corr,none": winogender_metrics.stereotype_corr(
            [s["stereotype_corr"] for s in samples["gee_winogender"]]
        )
    }
    return {
        "results": results,
        "samples": samples,
        "provenance": {
            "data_sha256": {"crows_pairs/crows_pairs_anonymized.csv": "ab" * 32},
            "task_versions": {"gee_crows_pairs": 1.0},
            "libraries": {"lm_eval": "0.4.x"},
            "device": "cpu",
            "host": "test",
            "wall_time_s": 1.0,
            "model": {
                "spec": "smollm2-135m",
                "fingerprint": {"weights_sha256": {"model.safetensors": model_key}},
            },
        },
    }


def make_run(
    root: Path,
    name: str,
    base_samples: dict[str, list[dict]],
    new_samples: dict[str, list[dict]],
    iters: int = 2000,
    limit=None,
    cache_key: str = "k1",
    data_path: str = "templates",
) -> Path:
    """A finished train-and-eval folder: run.json, config.json, metrics.jsonl, results/, samples/."""
    from debias.run_folder import RunFolder

    run = root / name
    base = results_file(base_samples, ss=58.0, lms=80.0)
    new = results_file(new_samples, ss=53.0, lms=79.5)
    RunFolder(run).write_results(base, "base")
    RunFolder(run).write_results(new, "debiased")
    comparisons = compare.compare(base, new, FakeTaskManager(), iters=iters, seed=0)
    write_json_atomic(
        run / "results" / "comparison.json",
        {
            "iters": iters,
            "level": 0.95,
            "tasks": {t: [dataclasses.asdict(c) for c in r] for t, r in comparisons.items()},
        },
    )
    write_json_atomic(
        run / "run.json",
        {
            "spec": {"method": "gee", "tasks": ["gee_bias"], "limit": limit, "eval_seed": 1234},
            "method_config": {},
            "phases": {
                "train": {"wall_s": 3.0},
                "base": {"wall_s": 1.0, "cache_hit": True, "cache_key": cache_key},
            },
        },
    )
    probe = {"entropy": {"male": 3.1, "female": 3.0}, "mean_entropy": 3.05, "gap": 0.05}
    write_json_atomic(
        run / "config.json",
        {
            "method": "gee",
            "config": {"loss": "gap", "data": data_path},
            "training": {
                "steps": 3,
                "stopped_early": True,
                "probe_before": probe,
                "probe_after": {**probe, "entropy": {"male": 3.06, "female": 3.05}, "gap": 0.005},
            },
            "device": "cpu",
            "processes": 1,
        },
    )
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"step": s, "loss": 0.1 / s, "gap": 0.05 / s, "lambda": 1.0}) + "\n" for s in (1, 2, 3)
        )
    )
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"x" * 1000)
    return run


def default_run(root: Path, name: str = "gee-a", **kwargs) -> Path:
    base = {
        "gee_crows_pairs": crows_samples([0.0, 1.0], [1.0, 2.0]),
        "gee_winogender": winogender_samples([1.0, -1.0, 0.2]),
    }
    new = {
        "gee_crows_pairs": crows_samples([1.0, 1.0], [3.0, 2.5]),
        "gee_winogender": winogender_samples([0.3, -0.2, 0.0]),
    }
    return make_run(root, name, base, new, **kwargs)
