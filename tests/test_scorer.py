"""The scored-positions scorer (``debias.scorer``) against lm-eval's own HFLM on the real default model."""

from __future__ import annotations

import math

import pytest

TASKS = [
    "gee_crows_pairs",
    "gee_winogender",
    "gee_stereoset_report",
    "gee_mmlu_lite_sociology",
    "gee_gsm8k_ppl",
]


@pytest.fixture(scope="module")
def both(smollm2, data_dir):
    from debias import evaluation, models

    model, tokenizer = models.load("smollm2-135m")
    path = str(models.resolve("smollm2-135m"))
    out = {}
    for scorer in ("hf", "gee-hf"):
        request = evaluation.EvalRequest(tasks=TASKS, limit=4, batch_size=4, scorer=scorer)
        out[scorer] = evaluation.evaluate(model, tokenizer, request, path)
    return out["hf"], out["gee-hf"]


def test_every_request_scores_as_with_hflm(both):
    """Log-likelihood requests (several choices sharing a context included) and perplexity windows:
    each request's log-probability to 1e-5 and its greedy flag equal."""
    hf, ours = both
    compared = 0
    for task, rows in hf["samples"].items():
        for a, b in zip(rows, ours["samples"][task], strict=True):
            assert a["doc_id"] == b["doc_id"]
            for (x,), (y,) in zip(a["resps"], b["resps"], strict=True):
                if isinstance(x, list | tuple):
                    assert y[0] == pytest.approx(x[0], abs=1e-5) and x[1] == y[1], (task, x, y)
                else:  # a document's summed log-likelihood over its windows
                    assert y == pytest.approx(x, abs=1e-5), (task, x, y)
                compared += 1
    assert compared >= 4 * len(TASKS)


def test_metrics_are_identical(both):
    hf, ours = both
    assert hf["results"].keys() == ours["results"].keys()
    for task, metrics in hf["results"].items():
        for name, value in metrics.items():
            other = ours["results"][task][name]
            if isinstance(value, float) and not math.isnan(value):
                assert other == pytest.approx(value, rel=1e-6, abs=1e-9), (task, name)
    assert ours["provenance"]["scorer"] == "gee-hf" and hf["provenance"]["scorer"] == "hf"


def test_the_scorer_is_an_lm_eval_model():
    """Users pass it to lm-eval by name (``python -m debias.lm_eval --model gee-hf ...``)."""
    from lm_eval.api.registry import get_model

    from debias.scorer import ScoredPositionsLM

    assert get_model("gee-hf") is ScoredPositionsLM
