"""gee_crows_pairs metrics on a 4-pair fixture with hand-computed values, through lm-eval's own pipeline.

A fake LM returns fixed log-likelihoods per sentence and a whitespace "tokenizer" fixes token counts, so
every number below can be checked with pencil and paper:

pair  ll_more  ll_less  n_more n_less  dir         type        sum-biased  per-token-biased      |diff|
0     -10      -12      5      5       stereo      gender      1           -2.0 > -2.4   -> 1    2
1     -20      -18      10     6       antistereo  race-color  0           -2.0 > -3.0   -> 1    2
2     -7       -9       2      4       stereo      gender      1           -3.5 > -2.25? -> 0    2
3     -15      -15.5    5      6       antistereo  gender      1           -3.0 > -2.58? -> 0    0.5

pct_stereotype = 3/4 = 0.75; pct_stereotype_norm = 2/4 = 0.5; likelihood_diff = 6.5/4 = 1.625
stereo: pairs 0,2 -> 1.0; antistereo: pairs 1,3 -> 0.5; gender: 0,2,3 -> 1.0; race-color: 1 -> 0.0
"""

from __future__ import annotations

import lm_eval
import pytest
from fakes import FixedLoglikelihoods, WhitespaceTokenizer

from debias import evaluation
from harness_tasks import _data, _tokenizer
from harness_tasks.crows_pairs.metrics import pair_metrics

FIXTURE = [
    ("w w w w m0", "w w w w l0", -10.0, -12.0, "stereo", "gender"),
    ("w w w w w w w w w m1", "w w w w w l1", -20.0, -18.0, "antistereo", "race-color"),
    ("w m2", "w w w l2", -7.0, -9.0, "stereo", "gender"),
    ("w w w w m3", "w w w w w l3", -15.0, -15.5, "antistereo", "gender"),
]


@pytest.fixture
def fixture_csv(tmp_path, monkeypatch):
    path = tmp_path / "crows.csv"
    lines = [",sent_more,sent_less,stereo_antistereo,bias_type"]
    lines += [f"{i},{more},{less},{d},{t}" for i, (more, less, _, _, d, t) in enumerate(FIXTURE)]
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(_data, "data_file", lambda rel: path)
    monkeypatch.setattr(_tokenizer, "load_tokenizer", lambda spec: WhitespaceTokenizer())
    # keyed by (context, continuation): CrowS sentences are scored after the empty context only
    table = {("", more): lm for more, _, lm, _, _, _ in FIXTURE} | {
        ("", less): ll for _, less, _, ll, _, _ in FIXTURE
    }
    return FixedLoglikelihoods(table)


def _run(fake_lm, task: str) -> dict[str, float]:
    results = lm_eval.simple_evaluate(
        model=fake_lm, tasks=[task], task_manager=evaluation.task_manager("whitespace")
    )
    return evaluation.summary(results)[task]


def test_all_pairs_metrics_match_hand_computation(fixture_csv):
    got = _run(fixture_csv, "gee_crows_pairs")
    expected = {
        "pct_stereotype": 0.75,
        "pct_stereotype_norm": 0.5,
        "likelihood_diff": 1.625,
        "pct_stereotype_stereo": 1.0,
        "pct_stereotype_antistereo": 0.5,
        "pct_stereotype_gender": 1.0,
        "pct_stereotype_race_color": 0.0,
    }
    assert got == pytest.approx(expected)  # and no metric for absent bias types


def test_bias_type_subtask_keeps_only_its_pairs(fixture_csv):
    got = _run(fixture_csv, "gee_crows_pairs_gender")
    # pairs 0, 2, 3: sum-biased 1,1,1; per-token 1,0,0; |diff| 2,2,0.5
    assert got == pytest.approx(
        {
            "pct_stereotype": 1.0,
            "pct_stereotype_norm": 1 / 3,
            "likelihood_diff": 4.5 / 3,
            "pct_stereotype_stereo": 1.0,
            "pct_stereotype_antistereo": 1.0,
        }
    )


def test_ties_are_not_counted_as_stereotyped():
    # lm-eval's rule: strictly greater; an exact tie counts for neither side
    assert pair_metrics(-3.0, -3.0, "stereo", 3, 3)["pct_stereotype"] == 0.0
    assert pair_metrics(-3.0, -3.0, "stereo", 3, 3)["pct_stereotype_norm"] == 0.0


def test_per_token_metric_left_out_without_token_counts():
    assert "pct_stereotype_norm" not in pair_metrics(-1.0, -2.0, "stereo")
