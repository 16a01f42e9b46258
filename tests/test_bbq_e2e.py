"""gee_bbq_lite on the real default model: the lm_eval command line and Python agree; lm-eval's scoring.

The run is short (``LIMIT`` documents, three requests each); the whole lite set and lm-eval's built-in
task on the same items are measured by ``benchmarks/bbq_vs_lm_eval.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from debias import evaluation
from harness_tasks.bbq import metrics

REPO = Path(__file__).resolve().parent.parent
LIMIT = 8


@pytest.fixture(scope="module")
def python_results(smollm2):
    model, tokenizer, path = smollm2
    request = evaluation.EvalRequest(tasks=["gee_bbq_lite"], limit=LIMIT, batch_size=8)
    return evaluation.evaluate(model, tokenizer, request, tokenizer_path=str(path))


def test_each_sample_record_follows_from_its_loglikelihoods(python_results):
    samples = python_results["samples"]["gee_bbq_lite"]
    assert len(samples) == LIMIT
    for sample in samples:
        lls = [r[0][0] for r in sample["resps"]]
        record = sample["bbq_s_dis"]
        assert record["pred"] == int(np.argmax(lls))
        answers = [sample["doc"][f"ans{i}"] for i in range(3)]
        assert record["pred_norm"] == int(
            np.argmax([ll / len(a) for ll, a in zip(lls, answers, strict=True)])
        )
        assert sample["doc"]["answer_info"][f"ans{record['unknown_loc']}"][1] == "unknown"
    values = metrics.all_metric_values([s["bbq_s_dis"] for s in samples])
    summary = evaluation.summary(python_results)["gee_bbq_lite"]
    assert summary == pytest.approx({m: values[m] for m in metrics.ALL_METRICS}, nan_ok=True)
    assert python_results["provenance"]["data_sha256"]["bbq/additional_metadata.csv"].startswith("f3670841")


def _cli(tmp_path, *model_flags: str) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        *model_flags,
        "--include_path",
        str(REPO / "harness_tasks"),
        "--tasks",
        "gee_bbq_lite",
        "--limit",
        str(LIMIT),
        "--device",
        "cpu",
        "--batch_size",
        "8",
        "--output_path",
        str(tmp_path),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp_path, env=os.environ.copy())
    (result_file,) = tmp_path.rglob("results_*.json")
    return json.loads(result_file.read_text())


def test_lm_eval_command_line_runs_the_lite_task(tmp_path):
    """``lm_eval --include_path harness_tasks --tasks gee_bbq_lite`` on lm-eval's weightless dummy model."""
    results = _cli(tmp_path, "--model", "dummy")
    assert set(evaluation.summary(results)["gee_bbq_lite"]) == set(metrics.ALL_METRICS)
    assert results["n-samples"]["gee_bbq_lite"]["effective"] == LIMIT


@pytest.mark.slow  # ~35 s on two shared cores: the model is loaded a second time, in the subprocess
def test_lm_eval_command_line_gives_same_numbers(smollm2, python_results, tmp_path):
    _, _, path = smollm2
    results = _cli(tmp_path, "--model", "hf", "--model_args", f"pretrained={path}")
    cli = evaluation.summary(results)["gee_bbq_lite"]
    ours = evaluation.summary(python_results)["gee_bbq_lite"]
    assert set(cli) == set(ours) == set(metrics.ALL_METRICS)
    assert cli == pytest.approx(ours, abs=1e-6, nan_ok=True)
