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
    return out["hf"], out["gee-hf"], tokenizer


def test_every_request_scores_as_with_hflm(both):
    """Log-likelihood requests (several choices sharing a context included) and perplexity windows:
    each request's log-probability to 1e-4 per scored token and its greedy flag equal. In float32 the
    prefix-sharing trees change the kernels' summation order, so rounding differs (a single token by up
    to ~2e-5; a summed log-probability of -143 has a float32 step of 1.5e-5 on its own); that the
    trees compute the same function is tested in float64 below."""
    hf, ours, tokenizer = both
    compared, worst = 0, 0.0
    for task, rows in hf["samples"].items():
        for a, b in zip(rows, ours["samples"][task], strict=True):
            assert a["doc_id"] == b["doc_id"]
            for args, (x,), (y,) in zip(a["arguments"], a["resps"], b["resps"], strict=True):
                scored = args[1] if isinstance(x, list | tuple) else args[0]  # continuation / document
                tokens = max(1, len(tokenizer(scored, add_special_tokens=False)["input_ids"]))
                if isinstance(x, list | tuple):
                    assert x[1] == y[1], (task, x, y)
                    x, y = x[0], y[0]
                assert abs(x - y) <= 1e-4 * tokens, (task, x, y, tokens)
                worst = max(worst, abs(x - y) / tokens)
                compared += 1
    assert compared >= 4 * len(TASKS)
    print(f"largest difference per scored token: {worst:.2e}")


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_prefix_trees_give_hflm_s_numbers_exactly_in_float64(smollm2, data_dir, attention):
    """The same comparison with the model in float64, where rounding is ~1e-15: what remains would be
    a wrong mask, position or row (those move a log-probability by 1e-3 and more). Both mask formats:
    SDPA's boolean, eager's additive (eager runs its softmax in float32, hence its 1e-5)."""
    from debias import evaluation, models

    model, tokenizer = models.load("smollm2-135m")
    model = model.double()
    model.set_attn_implementation(attention)
    path = str(models.resolve("smollm2-135m"))
    out = {}
    for scorer in ("hf", "gee-hf"):
        request = evaluation.EvalRequest(tasks=TASKS, limit=3, batch_size=4, scorer=scorer)
        out[scorer] = evaluation.evaluate(model, tokenizer, request, path)
    compared = 0
    for task, rows in out["hf"]["samples"].items():
        for a, b in zip(rows, out["gee-hf"]["samples"][task], strict=True):
            for (x,), (y,) in zip(a["resps"], b["resps"], strict=True):
                if isinstance(x, list | tuple):
                    assert x[1] == y[1], (task, x, y)
                    x, y = x[0], y[0]
                assert abs(x - y) <= (1e-9 if attention == "sdpa" else 1e-5), (task, attention, x, y)
                compared += 1
    assert compared >= 3 * len(TASKS)


def test_metrics_agree(both):
    """Rates (SS, pct_stereotype, accuracy) must not move: one flipped document moves a rate by 100/N,
    far beyond the tolerance. Metrics built from differences of log-probabilities (CrowS'
    likelihood_diff, Winogender's log-odds and their stderrs) carry the float32 rounding above: 1e-4
    absolute or 1e-5 relative."""
    hf, ours, _ = both
    assert hf["results"].keys() == ours["results"].keys()
    for task, metrics in hf["results"].items():
        for name, value in metrics.items():
            other = ours["results"][task][name]
            if isinstance(value, float) and not math.isnan(value):
                assert other == pytest.approx(value, rel=1e-5, abs=1e-4), (task, name)
    assert ours["provenance"]["scorer"] == "gee-hf" and hf["provenance"]["scorer"] == "hf"


def test_the_scorer_is_an_lm_eval_model():
    """Users pass it to lm-eval by name (``python -m debias.lm_eval --model gee-hf ...``)."""
    from lm_eval.api.registry import get_model

    from debias.scorer import ScoredPositionsLM

    assert get_model("gee-hf") is ScoredPositionsLM
