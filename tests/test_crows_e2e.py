"""gee_crows_pairs on the real default model and data: Python path, lm_eval CLI, lm-eval's scoring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lm_eval
import pytest
from lm_eval.models.huggingface import HFLM

from debias import evaluation
from harness_tasks.crows_pairs.lm_eval_reference import REFERENCE_TASK, builtin_crows_config

REPO = Path(__file__).resolve().parent.parent
LIMIT = 12


@pytest.fixture(scope="module")
def python_results(smollm2):
    model, tokenizer, path = smollm2
    request = evaluation.EvalRequest(tasks=["gee_crows_pairs"], limit=LIMIT, batch_size=8)
    return evaluation.evaluate(model, tokenizer, request, tokenizer_path=str(path))


def test_limited_run_on_real_model(python_results):
    metrics = evaluation.summary(python_results)["gee_crows_pairs"]
    for name in ("pct_stereotype", "pct_stereotype_norm", "pct_stereotype_stereo"):
        assert 0.0 <= metrics[name] <= 1.0
    assert metrics["likelihood_diff"] > 0.0
    samples = python_results["samples"]["gee_crows_pairs"]
    assert len(samples) == LIMIT
    # each sample's stored log-likelihoods reproduce its own pct_stereotype value
    for sample in samples:
        (ll_more, _), (ll_less, _) = (r[0] for r in sample["resps"])
        assert sample["pct_stereotype"] == (1.0 if ll_more > ll_less else 0.0)
        assert sample["doc"]["n_tokens_more"] > 0
    provenance = python_results["provenance"]
    assert provenance["data_sha256"]["crows_pairs/crows_pairs_anonymized.csv"].startswith("dfb36986")
    assert provenance["task_versions"]["gee_crows_pairs"] == 1.0


def test_agrees_with_lm_eval_builtin_scoring_on_same_pairs(smollm2, python_results):
    model, tokenizer, path = smollm2
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8)
    ref = lm_eval.simple_evaluate(
        model=lm, tasks=[builtin_crows_config()], task_manager=evaluation.task_manager(str(path)), limit=LIMIT
    )
    ours = evaluation.summary(python_results)["gee_crows_pairs"]
    theirs = evaluation.summary(ref)[REFERENCE_TASK]
    assert ours["pct_stereotype"] == theirs["pct_stereotype"]
    assert ours["likelihood_diff"] == pytest.approx(theirs["likelihood_diff"], abs=1e-5)


def test_lm_eval_command_line_gives_same_numbers(smollm2, python_results, tmp_path):
    _, _, path = smollm2
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={path}",
        "--include_path",
        str(REPO / "harness_tasks"),
        "--tasks",
        "gee_crows_pairs",
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
    cli = evaluation.summary(json.loads(result_file.read_text()))["gee_crows_pairs"]
    ours = evaluation.summary(python_results)["gee_crows_pairs"]
    assert set(cli) == set(ours)  # incl. pct_stereotype_norm: the tokenizer arrived via --model_args
    assert cli == pytest.approx(ours, abs=1e-5)


@pytest.mark.slow
def test_full_crows_within_half_a_point_of_lm_eval(smollm2):
    model, tokenizer, path = smollm2
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=16)
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=["gee_crows_pairs", builtin_crows_config()],
        task_manager=evaluation.task_manager(str(path)),
    )
    summary = evaluation.summary(results)
    diff = abs(summary["gee_crows_pairs"]["pct_stereotype"] - summary[REFERENCE_TASK]["pct_stereotype"])
    assert 100 * diff <= 0.5
