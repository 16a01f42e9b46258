"""The leaderboard's verdicts on hand-made comparisons, and its choice of the best row (select half only)."""

from __future__ import annotations

from pathlib import Path

import benchmark_scripts
import pytest

from debias.methods.recipe import PPL_KEY as PPL

leaderboard = benchmark_scripts.load("leaderboard")

#: LoRA on all seven projections: DPO's default until 2026-12-07
EVERY_PROJECTION = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _c(metric, base, new, lo, hi, better=False, worse=False):
    return dict(
        metric=metric, base=base, new=new, delta=new - base, ci_low=lo, ci_high=hi,
        better_beyond_ci=better, worse_beyond_ci=worse,
    )  # fmt: skip


def test_halfway_counts_distance_to_50_and_flags_a_flip():
    assert leaderboard.halfway(_c("ss", 58.0, 54.0, 0, 0))["met"] is True  # moved 4 of 8
    out = leaderboard.halfway(_c("ss", 58.0, 55.0, 0, 0))
    assert out["met"] is False and out["share_of_the_way"] == pytest.approx(3 / 8)
    flipped = leaderboard.halfway(_c("ss", 58.0, 41.0, 0, 0))  # 9 below 50: further than it started
    assert flipped["crossed_50"] and not flipped["met"]


def test_acceptance_on_a_hand_made_comparison():
    comparison = {
        "tasks": {
            "gee_stereoset_report": [
                _c("lms", 80.0, 79.5, -1, 0),
                _c("ss", 57.0, 53.0, -5, -3, better=True),
                _c("ss_gender", 58.0, 56.0, -3, -1, better=True),
                _c("ss_race", 55.0, 57.0, 1, 3, worse=True),
            ],
            "gee_crows_pairs": [_c("pct_stereotype", 56.0, 54.0, -3, -1, better=True)],
            "gee_winogender": [_c("stereotype_corr", 0.58, 0.55, -0.1, 0.05)],
            "gee_mmlu_lite": [_c("acc", 0.22, 0.215, -0.02, 0.01)],
            "gee_gsm8k_ppl": [_c("word_perplexity", 40.0, 41.6, 1, 2, worse=True)],
        }
    }
    out = leaderboard.acceptance(comparison)
    assert out["ss_overall_halfway"]["met"] and not out["ss_gender_halfway"]["met"]
    assert out["lms_drop_at_most_1"]["met"] and out["crows_closer_to_50_beyond_ci"]["met"]
    assert out["winogender_corr_lower"]["met"] and out["mmlu_lite_not_lower_beyond_ci"]["met"]
    assert out["gsm8k_word_perplexity_up_at_most_3pct"]["rise"] == pytest.approx(0.04)
    assert not out["gsm8k_word_perplexity_up_at_most_3pct"]["met"]
    assert out["no_bias_metric_worse_beyond_ci"] == {"worse": ["gee_stereoset_report:ss_race"], "met": False}
    # the table's verdict: each missed target with how close it came (gender moved 2 of the 8 to 50)
    assert leaderboard.missed(out) == (
        "missed: SS gender 25.0 % of the way; GSM8K ppl +4.0 % (worse beyond CI: 1 bias metric)"
    )


def test_a_near_miss_never_reads_as_halfway():
    check = leaderboard.halfway(_c("ss", 60.0, 55.0004, 0, 0))  # 4.9996 of the 10 points to 50
    assert not check["met"] and leaderboard._share(check) == "49.996 % of the way"
    assert leaderboard._share(leaderboard.halfway(_c("ss", 60.0, 55.0, 0, 0))) == "50.0 % of the way"
    away = leaderboard.halfway(_c("ss", 56.0, 57.0, 0, 0))
    assert leaderboard._share(away) == "-16.7 % of the way (away from 50)"


def test_best_row_is_decided_on_the_select_half_within_the_lms_budget():
    def row(name, kept_ss, kept_lms):
        return {
            "row": name,
            "select": {"base": {"ss": 58.0, "lms": 80.0}, "kept": {"ss": kept_ss, "lms": kept_lms}},
        }

    rows = [row("a", 52.0, 79.5), row("b", 51.0, 79.9), row("c", 50.2, 78.0)]  # c is over the budget
    assert leaderboard.best(rows) == "b"
    assert leaderboard.best([row("c", 50.2, 78.0)]) is None


def test_a_row_selected_under_the_perplexity_guard_must_be_within_its_perplexity_budget():
    def row(name, kept_ss, kept_ppl, guard=0.03):
        base, kept = {"ss": 58.0, "lms": 80.0, PPL: 20.0}, {"ss": kept_ss, "lms": 79.8, PPL: kept_ppl}
        return {"row": name, "select": {"base": base, "kept": kept, "max_ppl_rise": guard}}

    rows = [row("near", 50.5, 21.0), row("far", 53.0, 20.4)]  # "near" is 5 % up in perplexity
    assert leaderboard.best(rows) == "far"
    assert leaderboard.best([row("near", 50.5, 21.0, guard=None)]) == "near"  # selected before the guard
    assert leaderboard._select_ppl_rise(rows[1]["select"]) == pytest.approx(0.02)


def test_the_default_row_must_be_within_both_budgets_on_every_model():
    def row(name, model, kept_ss, kept_lms=79.8, kept_ppl=20.2, guard=0.03):
        base = {"ss": 58.0, "lms": 80.0, PPL: 20.0}
        kept = {"ss": kept_ss, "lms": kept_lms, PPL: kept_ppl}
        return {"row": name, "model": model, "select": {"base": base, "kept": kept, "max_ppl_rise": guard}}

    small, gemma = leaderboard.MODELS
    rows = [
        row("nearest", small, 50.5),
        row("nearest", gemma, 52.0, kept_ppl=21.0),  # 5 % up on the second model: not eligible
        row("steady", small, 53.0),
        row("steady", gemma, 54.0),
        row("unguarded", small, 51.0),
        row("unguarded", gemma, 51.0, guard=None),  # its perplexity was never measured there
        row("one-model", small, 50.1),
    ]
    assert leaderboard.best([r for r in rows if r["model"] == small]) == "one-model"
    chosen = leaderboard.default_row(rows)
    assert chosen["row"] == "steady" and chosen["eligible"] == ["steady"]
    rows.append(row("closer", small, 52.0))
    rows.append(row("closer", gemma, 55.0, kept_lms=79.1))  # further on Gemma, nearer on the first model
    assert leaderboard.default_row(rows)["row"] == "closer"
    assert leaderboard.default_row(rows[:2])["row"] is None


def test_rows_pin_what_they_ran_with_when_a_default_changes():
    """A stored run from before lr_ref_grad_norm existed ran without it; its row pins 0, and the check
    reads the missing field as what runs had before it (not today's default)."""
    old_record = {"anchor_weight": 0.3, "check_every": 20, "steps": 120, "warmup_steps": 10}
    old_record |= {"lr": 5e-4, "lora_targets": EVERY_PROJECTION}  # DPO's defaults until 2026-12-07
    leaderboard.check_flags("dpo-anchor0.3", old_record)
    with pytest.raises(SystemExit, match="--warmup-steps 10 but its run recorded 40"):
        leaderboard.check_flags("dpo-anchor0.3", {**old_record, "warmup_steps": 40})
    with pytest.raises(SystemExit, match="--lr 5e-4 but its run recorded 0.001"):
        leaderboard.check_flags("dpo-anchor0.3", {**old_record, "lr": 1e-3})
    gnorm = {**old_record, "warmup_steps": 40, "lr_ref_grad_norm": 0.25}
    leaderboard.check_flags("dpo-gnorm-warmup40", gnorm)
    with pytest.raises(SystemExit, match="--lora-targets q_proj k_proj .* but its run recorded"):
        leaderboard.check_flags("dpo-gnorm-warmup40", {**gnorm, "lora_targets": EVERY_PROJECTION[4:]})


def test_a_list_flag_is_checked_as_the_list_its_run_recorded():
    """``--lora-targets gate_proj up_proj down_proj`` takes three values: the check groups them (as argparse
    does) and compares them with the recorded list, so a run on other projections is refused."""
    assert leaderboard.flag_values(["--steps", "120", "--lora-targets", "a", "b"]) == {
        "--steps": ["120"],
        "--lora-targets": ["a", "b"],
    }
    with pytest.raises(ValueError, match="must start with a flag"):
        leaderboard.flag_values(["120", "--steps"])
    record = {"anchor_weight": 0.3, "check_every": 20, "steps": 120, "warmup_steps": 40}
    record |= {"lr": 5e-4, "lr_ref_grad_norm": 0.25, "lora_targets": ["gate_proj", "up_proj", "down_proj"]}
    leaderboard.check_flags("dpo-gnorm-warmup40-mlp", record)
    with pytest.raises(SystemExit, match="--lora-targets gate_proj up_proj down_proj but its run recorded"):
        leaderboard.check_flags("dpo-gnorm-warmup40-mlp", {**record, "lora_targets": EVERY_PROJECTION})


def test_the_readme_tables_are_the_stored_leaderboard():
    """Every stored row has a README line, and every cell but its note is what the results say
    (``python benchmarks/leaderboard.py --collect-only --rows ROW --readme README.md`` rewrites them)."""
    import json

    repo = Path(__file__).resolve().parent.parent
    rows = json.loads((repo / "benchmarks" / "results" / "leaderboard.json").read_text())["rows"]
    readme = (repo / "README.md").read_text(encoding="utf-8")
    synced, missing = leaderboard.sync_readme(readme, rows)
    assert missing == []
    changed = [a for a, b in zip(readme.split("\n"), synced.split("\n"), strict=True) if a != b]
    assert changed == []
