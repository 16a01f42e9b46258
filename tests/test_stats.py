"""Paired bootstrap and metric directions, on fixtures small enough to enumerate by hand."""

from __future__ import annotations

import statistics

import pytest

from debias.stats import badness, direction, paired_bootstrap


def test_directions_follow_metric_definitions():
    assert direction("ss") == 50.0 and direction("ss_gender") == 50.0
    assert direction("pct_stereotype_norm") == 0.5
    assert direction("lms_intrasentence") == "higher" and direction("acc") == "higher"
    assert direction("stereotype_corr") == 0.0
    assert direction("pronoun_entropy") is None
    assert badness("ss", 58.0) == 8.0 and badness("ss", 44.0) == 6.0
    assert badness("lms", 90.0) == -90.0


def test_two_document_bootstrap_matches_enumeration():
    # base per-doc values [0, 1], debiased [1, 1], metric = mean. A resample of 2 docs is
    # (0,0): 1 - 0 = 1 | (1,1): 1 - 1 = 0 | (0,1),(1,0): 1 - 0.5 = 0.5, with probabilities 1/4, 1/4, 1/2.
    # So the 2.5th percentile of the delta is 0 and the 97.5th is 1 (each tail holds 25 % > 2.5 %).
    result = paired_bootstrap(statistics.fmean, [0.0, 1.0], [1.0, 1.0], "acc", iters=2000, seed=3)
    assert result.base == 0.5 and result.new == 1.0 and result.delta == 0.5
    assert (result.ci_low, result.ci_high) == (0.0, 1.0)
    assert result.improved is True and result.worse_beyond_ci is False


def test_identical_runs_have_a_zero_interval():
    items = [0.0, 1.0, 1.0, 0.0, 1.0]
    result = paired_bootstrap(statistics.fmean, items, items, "pct_stereotype", iters=200)
    assert (result.delta, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.worse_beyond_ci is False and result.improved is False


def test_a_clearly_worse_run_is_flagged():
    base = [1.0, 0.0] * 20  # pct_stereotype 0.5: ideal
    new = [1.0] * 40  # pct_stereotype 1.0: every pair stereotyped
    result = paired_bootstrap(statistics.fmean, base, new, "pct_stereotype", iters=300)
    assert result.worse_beyond_ci is True and result.improved is False


def test_mismatched_documents_are_an_error():
    with pytest.raises(ValueError, match="2 documents"):
        paired_bootstrap(statistics.fmean, [1.0, 0.0], [1.0], "acc")


def test_a_clearly_better_run_is_flagged_better_beyond_ci():
    base = [1.0] * 40  # every pair stereotyped
    new = [1.0, 0.0] * 20  # half: pct_stereotype at the ideal 0.5
    result = paired_bootstrap(statistics.fmean, base, new, "pct_stereotype", iters=300)
    assert result.better_beyond_ci is True and result.worse_beyond_ci is False and result.improved is True
    same = paired_bootstrap(statistics.fmean, base, base, "pct_stereotype", iters=50)
    assert same.better_beyond_ci is False
