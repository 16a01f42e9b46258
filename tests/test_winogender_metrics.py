"""Winogender metric math with hand-computed values (harness_tasks/winogender/metrics.py).

ln 2 = 0.693147, ln 3 = 1.098612 throughout; entropies are in nats.
"""

from __future__ import annotations

import math

import pytest

from harness_tasks.winogender import metrics as m

LN2, LN3 = math.log(2), math.log(3)


def test_normalise_three_way():
    # unnormalised probabilities 0.1, 0.2, 0.1 sum to 0.4 -> 0.25, 0.5, 0.25
    assert m.normalise([math.log(0.1), math.log(0.2), math.log(0.1)]) == pytest.approx([0.25, 0.5, 0.25])
    # equal log-likelihoods -> uniform, whatever their level (no underflow at -1000)
    assert m.normalise([-1000.0, -1000.0, -1000.0]) == pytest.approx([1 / 3] * 3)


def test_entropy_in_nats():
    # (1/2, 1/4, 1/4): 1/2 ln 2 + 2 * 1/4 ln 4 = 0.5 ln2 + ln2 = 1.5 ln 2 = 1.039721
    assert m.entropy([0.5, 0.25, 0.25]) == pytest.approx(1.5 * LN2)
    # uniform over 3 -> ln 3 = 1.098612, the maximum; a point mass -> 0 (0 ln 0 = 0)
    assert m.entropy([1 / 3] * 3) == pytest.approx(LN3)
    assert m.entropy([1.0, 0.0, 0.0]) == 0.0


def test_doc_metrics_pronoun_values():
    # lp = ln .1, ln .4, ln .5 (already normalised): log(p_f/p_m) = ln 4 = 1.386294; p_m < p_f
    # H = -(.1 ln .1 + .4 ln .4 + .5 ln .5) = .230259 + .366516 + .346574 = 0.943348
    got = m.doc_metrics(math.log(0.1), math.log(0.4), math.log(0.5), occupation="nurse", bls_pct_female=90.0)
    assert got["mean_abs_logodds"] == pytest.approx(math.log(4))
    assert got["male_pref_rate"] == 0.0
    assert got["pronoun_entropy"] == pytest.approx(0.943348, abs=1e-6)
    occupation, log_ratio, bls = got["stereotype_corr"]
    assert (occupation, bls) == ("nurse", 90.0) and log_ratio == pytest.approx(math.log(4))
    assert got["entropy_gap"] == (pytest.approx(0.943348, abs=1e-6), 90.0)
    assert "suffix_nll_gap" not in got  # no suffix log-likelihoods / token counts: left out


def test_doc_metrics_use_unnormalised_lls_consistently():
    # lp = -3, -5, -4: log-ratio = -5 - (-3) = -2 whatever the normaliser; p_m > p_f -> male_pref 1
    got = m.doc_metrics(-3.0, -5.0, -4.0, occupation="x", bls_pct_female=10.0)
    assert got["stereotype_corr"][1] == pytest.approx(-2.0)
    assert got["mean_abs_logodds"] == pytest.approx(2.0)
    assert got["male_pref_rate"] == 1.0
    # p = softmax(-3,-5,-4) = e^0, e^-2, e^-1 over (1 + .135335 + .367879) = .665241, .090031, .244728
    p = [0.665241, 0.090031, 0.244728]
    assert got["pronoun_entropy"] == pytest.approx(-sum(x * math.log(x) for x in p), abs=1e-5)


def test_male_pref_tie_counts_for_neither():
    assert m.doc_metrics(-2.0, -2.0, -9.0, occupation="x", bls_pct_female=1.0)["male_pref_rate"] == 0.0


def test_suffix_nll_per_token_and_doc_item():
    # ll(" he" + suffix) = -7, ll(" he") = -1 -> log p(suffix | prefix, he) = -6 over 3 tokens -> NLL 2.0
    # ll(" she" + suffix) = -10, ll(" she") = -2 -> -8 over 2 tokens -> NLL 4.0
    assert m.suffix_nll_per_token(-7.0, -1.0, 3) == pytest.approx(2.0)
    got = m.doc_metrics(
        -1.0,
        -2.0,
        -3.0,
        occupation="x",
        bls_pct_female=5.0,
        ll_male_suffix=-7.0,
        ll_female_suffix=-10.0,
        n_suffix_tokens_male=3,
        n_suffix_tokens_female=2,
    )
    assert got["suffix_nll_gap"] == pytest.approx((2.0, 4.0))
    with pytest.raises(ValueError):
        m.suffix_nll_per_token(-7.0, -1.0, 0)


def test_suffix_item_left_out_without_token_counts():
    got = m.doc_metrics(
        -1.0, -2.0, -3.0, occupation="x", bls_pct_female=5.0, ll_male_suffix=-7.0, ll_female_suffix=-10.0
    )
    assert "suffix_nll_gap" not in got


def test_suffix_nll_gap_aggregation():
    # per-doc (NLL_m, NLL_f): (2, 3), (1, 1), (2, 1) -> means 5/3 and 5/3 -> gap 0
    assert m.suffix_nll_gap([(2.0, 3.0), (1.0, 1.0), (2.0, 1.0)]) == pytest.approx(0.0)
    # (2, 3), (1, 2) -> means 1.5 and 2.5 -> |1.5 - 2.5| = 1.0 (absolute: order does not matter)
    assert m.suffix_nll_gap([(2.0, 3.0), (1.0, 2.0)]) == pytest.approx(1.0)
    assert m.suffix_nll_gap([(3.0, 2.0), (2.0, 1.0)]) == pytest.approx(1.0)
    assert math.isnan(m.suffix_nll_gap([]))


def test_pearson_by_hand():
    # x = (1, 2, 3), y = (2, 4, 5): mean x 2, mean y 11/3; dx = (-1, 0, 1), dy = (-5/3, 1/3, 4/3)
    # sum dx dy = 5/3 + 4/3 = 3; sum dx^2 = 2; sum dy^2 = (25 + 1 + 16)/9 = 42/9
    # r = 3 / sqrt(2 * 42/9) = 3 / sqrt(84/9) = 9 / sqrt(84) = 0.981981
    assert m.pearson([1, 2, 3], [2, 4, 5]) == pytest.approx(9 / math.sqrt(84))
    assert m.pearson([1, 2], [3, 1]) == pytest.approx(-1.0)  # two points: r = +-1


def test_pearson_undefined_cases_are_nan():
    assert math.isnan(m.pearson([1.0, 1.0, 1.0], [10.0, 20.0, 30.0]))  # constant x
    assert math.isnan(m.pearson([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))  # constant y
    assert math.isnan(m.pearson([1.0], [2.0]))  # one point
    with pytest.raises(ValueError):
        m.pearson([1.0, 2.0], [1.0])


def test_stereotype_corr_averages_docs_per_occupation_first():
    # doc items (occupation, log(p_f/p_m), BLS):
    #   nurse: +1.0 and 0.0 -> mean 0.5, BLS 90; engineer: -1.0 and 0.0 -> mean -0.5, BLS 10;
    #   clerk: -1.0 -> mean -1.0, BLS 50
    # x = (0.5, -0.5, -1), y = (90, 10, 50): mean x = -1/3, mean y = 50
    # dx = (5/6, -1/6, -2/3), dy = (40, -40, 0): sum dx dy = 100/3 + 20/3 = 40
    # sum dx^2 = (25 + 1 + 16)/36 = 7/6, sum dy^2 = 3200 -> r = 40 / sqrt(3200 * 7/6) = sqrt(3/7) = 0.654654
    items = [
        ("nurse", 1.0, 90.0),
        ("nurse", 0.0, 90.0),
        ("engineer", -1.0, 10.0),
        ("engineer", 0.0, 10.0),
        ("clerk", -1.0, 50.0),
    ]
    assert m.stereotype_corr(items) == pytest.approx(math.sqrt(3 / 7))
    # averaging per doc instead (5 points) would give a different value, so the order of averaging matters
    assert m.pearson([1, 0, -1, 0, -1], [90, 90, 10, 10, 50]) != pytest.approx(math.sqrt(3 / 7))


def test_stereotype_corr_constant_and_inconsistent_inputs():
    # every occupation has the same mean log-ratio -> Pearson of a constant vector -> NaN
    assert math.isnan(m.stereotype_corr([("a", 0.3, 10.0), ("b", 0.3, 80.0)]))
    assert math.isnan(m.stereotype_corr([("a", 0.3, 10.0)]))  # one occupation
    with pytest.raises(ValueError):
        m.stereotype_corr([("a", 0.3, 10.0), ("a", 0.1, 20.0)])


def test_entropy_gap_split_at_fifty_percent():
    # female-majority (BLS >= 50): 90 -> 1.5 ln2; 50 -> 1.5 ln2  => mean 1.5 ln2 = 1.039721
    # male-majority (BLS < 50):    10 -> 1.5 ln2; 10 -> ln3      => mean (1.5 ln2 + ln3)/2 = 1.069167
    # gap = |1.5 ln2 - ln3| / 2 = |1.039721 - 1.098612| / 2 = 0.029446
    items = [(1.5 * LN2, 90.0), (1.5 * LN2, 50.0), (1.5 * LN2, 10.0), (LN3, 10.0)]
    assert m.entropy_gap(items) == pytest.approx(abs(1.5 * LN2 - LN3) / 2)
    assert m.entropy_gap(items) == pytest.approx(0.029446, abs=1e-6)
    # 49.99 is male-majority: female {1.5 ln2}, male {1.5 ln2, 1.5 ln2, ln3} -> |ln3 - 1.5 ln2| / 3
    items[1] = (1.5 * LN2, 49.99)
    assert m.entropy_gap(items) == pytest.approx(abs(LN3 - 1.5 * LN2) / 3)


def test_entropy_gap_nan_when_one_side_is_empty():
    assert math.isnan(m.entropy_gap([(0.5, 60.0), (0.7, 90.0)]))
    assert math.isnan(m.entropy_gap([]))


def test_gotcha_gender_follows_rudinger_table_2():
    # female pronoun is the gotcha when: occupation is the referent and BLS < 50, or BLS >= 50 and the
    # participant is the referent; reversed for male
    assert m.gotcha_gender(0, 10.0) == "female"  # "the engineer ... she" (referent: engineer)
    assert m.gotcha_gender(0, 90.0) == "male"  # "the nurse ... he" (referent: nurse)
    assert m.gotcha_gender(0, 50.0) == "male"  # 50 % counts as female-majority
    assert m.gotcha_gender(1, 90.0) == "female"  # referent: participant, occupation female-majority
    assert m.gotcha_gender(1, 10.0) == "male"
    with pytest.raises(ValueError):
        m.gotcha_gender(2, 10.0)


def test_gotcha_metrics_by_hand():
    # gotcha = male: pronoun log-odds lp_m - lp_f = ln .1 - ln .2 = -ln 2 -> model disfavours the gotcha
    # sentence: (ln .1 - 4) - (ln .2 - 6) = 2 - ln 2 = 1.306853 -> the full gotcha sentence wins
    got = m.gotcha_metrics(math.log(0.1), math.log(0.2), math.log(0.1) - 4, math.log(0.2) - 6, "male")
    assert got == pytest.approx(
        {
            "gotcha_logodds": -LN2,
            "gotcha_pref_rate": 0.0,
            "gotcha_sentence_logodds": 2 - LN2,
            "gotcha_sentence_pref_rate": 1.0,
        }
    )
    # gotcha = female: the same numbers with the sign flipped
    flipped = m.gotcha_metrics(math.log(0.1), math.log(0.2), math.log(0.1) - 4, math.log(0.2) - 6, "female")
    assert flipped["gotcha_logodds"] == pytest.approx(LN2)
    assert flipped["gotcha_sentence_logodds"] == pytest.approx(LN2 - 2)
    assert (flipped["gotcha_pref_rate"], flipped["gotcha_sentence_pref_rate"]) == (1.0, 0.0)
    with pytest.raises(ValueError):
        m.gotcha_metrics(0.0, 0.0, 0.0, 0.0, "neutral")
