"""DPO: the loss and rewards by hand, pair files tried bad, the built-in pairs, the overshoot guard, and
short real runs (training, probe) on the default model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from debias import selection
from debias.data import bias_pairs, preference_pairs
from debias.methods import dpo
from debias.methods.dpo.recipe import DpoConfig, DpoRecipe, _GuardCallback
from debias.methods.recipe import PPL_KEY as PPL
from debias.methods.recipe import Candidate, SelectionSettings

GUARDED = SelectionSettings("gee_stereoset_select", "ss", max_lms_drop=1.0, max_ppl_rise=0.03)
UNGUARDED = GUARDED._replace(max_ppl_rise=-1.0)

REPO = Path(__file__).resolve().parent.parent


def test_loss_at_initialisation_is_ln2_with_zero_margin():
    logp = torch.tensor([-12.5, -3.0])
    loss = dpo.dpo_loss(logp, logp - 1.0, logp, logp - 1.0, beta=0.1)  # policy == reference
    assert torch.allclose(loss, torch.full((2,), math.log(2.0)))
    stats = dpo.reward_stats([-12.5], [-13.5], [-12.5], [-13.5], 0.1, ["gender"])
    assert stats["reward_margin"] == 0.0 and stats["reward_accuracy"] == 0.0  # a tie is not "chosen wins"


def test_loss_and_rewards_on_a_hand_made_batch():
    # pair 1: chosen gained 2 nats, rejected lost 1 -> rewards 0.2 / -0.1, margin 0.3, correct
    # pair 2: chosen lost 1, rejected gained 1 -> rewards -0.1 / 0.1, margin -0.2, wrong
    # pair 3: both unchanged -> 0 / 0, margin 0, not counted as correct
    chosen, rejected = [-8.0, -11.0, -5.0], [-11.0, -9.0, -6.0]
    ref_chosen, ref_rejected = [-10.0, -10.0, -5.0], [-10.0, -10.0, -6.0]
    stats = dpo.reward_stats(chosen, rejected, ref_chosen, ref_rejected, 0.1, ["age", "age", "race"])
    assert stats["reward_accuracy"] == pytest.approx(1 / 3)
    assert stats["reward_margin"] == pytest.approx((0.3 - 0.2 + 0.0) / 3)
    assert stats["chosen_reward"] == pytest.approx((0.2 - 0.1 + 0.0) / 3)
    assert stats["rejected_reward"] == pytest.approx((-0.1 + 0.1 + 0.0) / 3)
    assert stats["accuracy_by_bias_type"] == {"age": 0.5, "race": 0.0}
    loss = dpo.dpo_loss(*(torch.tensor(x) for x in (chosen, rejected, ref_chosen, ref_rejected)), beta=0.1)
    expected = [-math.log(1 / (1 + math.exp(-m))) for m in (0.3, -0.2, 0.0)]
    assert loss.tolist() == pytest.approx(expected)


# ------------------------------------------------------------------------------------------------ pairs


def _write(tmp_path, name, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


GOOD = (
    '{"prompt": "My aunt is", "chosen": " kind.", "rejected": " shrill.", "meta": {"bias_type": "gender"}}\n'
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json}\n", r"line 1: invalid JSON"),
        (GOOD + '{"prompt": "x", "rejected": " b"}\n', r"line 2: missing field 'chosen'"),
        ('{"chosen": "  ", "rejected": " b"}\n', r"line 1: field 'chosen' is empty"),
        ('{"chosen": 3, "rejected": " b"}\n', r"line 1: field 'chosen' must be text, got int"),
        ('{"prompt": ["a"], "chosen": " a", "rejected": " b"}\n', r"line 1: field 'prompt' must be text"),
        ('{"chosen": " same", "rejected": "same "}\n', r"line 1: fields 'chosen' and 'rejected': the same"),
        ('{"chosen": " a", "rejected": " b", "meta": 5}\n', r"line 1: field 'meta' must be an object"),
        (GOOD + b'{"chosen": "\xff", "rejected": " b"}\n'.decode("latin-1"), "placeholder"),
        ("\n\n", r"no pairs"),
        ("[1, 2]\n", r"line 1: expected a JSON object"),
    ],
)
def test_bad_pair_files_are_one_line_errors(tmp_path, content, message):
    if message == "placeholder":  # undecodable bytes on line 2
        path = _write(tmp_path, "p.jsonl", GOOD.encode() + b'{"chosen": "\xff", "rejected": " b"}\n')
        message = r"line 2: not UTF-8 text"
    else:
        path = _write(tmp_path, "p.jsonl", content)
    with pytest.raises(ValueError, match=message) as err:
        dpo.read_pairs(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_pair_files_in_every_format(tmp_path):
    import pandas as pd

    rows = [
        {"prompt": "My aunt is", "chosen": " kind.", "rejected": " shrill.", "bias_type": "gender"},
        {
            "prompt": "",
            "chosen": "Old people are sharp.",
            "rejected": "Old people are slow.",
            "bias_type": "age",
        },
    ]
    jsonl = _write(tmp_path, "p.jsonl", GOOD + '{"chosen": "A.", "rejected": "B."}\n')
    pairs = dpo.read_pairs(jsonl)
    assert pairs[0] == dpo.PreferencePair("My aunt is", " kind.", " shrill.", "gender")
    assert pairs[1] == dpo.PreferencePair("", "A.", "B.", "unspecified")  # prompt empty when absent
    pd.DataFrame(rows).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "p.parquet")
    for name in ("p.csv", "p.parquet"):
        got = dpo.read_pairs(tmp_path / name)
        assert [(p.prompt, p.chosen, p.bias_type) for p in got] == [
            ("My aunt is", " kind.", "gender"),
            ("", "Old people are sharp.", "age"),
        ], name
    pd.DataFrame([{"prompt": "x", "chosen": "a"}]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="no column 'rejected'"):
        dpo.read_pairs(tmp_path / "bad.csv")


def test_cli_refuses_a_bad_pair_file_in_one_line_and_writes_nothing(tmp_path, capsys):
    import cli

    bad = _write(tmp_path, "p.jsonl", '{"chosen": " a", "rejected": " a"}\n')
    for command, flag in (("train", "--pairs"), ("train-and-eval", "--pairs"), ("train", "--tie-pairs")):
        out = tmp_path / f"run-{command}{flag}"
        argv = [command, "--method", "dpo", "--out", str(out), flag, str(bad), "--select-task", ""]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"error: {bad}:line 1".replace(":line", ": line")), err
        assert not out.exists()


def test_builtin_pairs_cover_every_bias_type_in_both_directions():
    train, heldout = bias_pairs.generate("train"), bias_pairs.generate("heldout")
    assert {p.bias_type for p in train} == set(bias_pairs.BIAS_TYPES) == {p.bias_type for p in heldout}
    assert {p.frame for p in train}.isdisjoint({p.frame for p in heldout})
    # every attribute is rejected after one group exactly as often as it is chosen after the other
    for contrast in bias_pairs.CONTRASTS:
        for x, _ in contrast.attributes:
            rejected_a = sum(
                p.group == "a" and p.rejected.strip(" .") == x
                for p in train
                if p.bias_type == contrast.bias_type
            )
            chosen_b = sum(
                p.group == "b" and p.chosen.strip(" .") == x
                for p in train
                if p.bias_type == contrast.bias_type
            )
            assert rejected_a == chosen_b > 0, (contrast.bias_type, x)
    assert all(p.chosen != p.rejected for p in train + heldout)


@pytest.mark.parametrize("name", sorted(preference_pairs.SETS))
def test_every_named_pair_set_shares_no_8_words_with_the_benchmarks(data_dir, name):
    """Every set ``--pairs`` / ``--tie-pairs`` can name (a new one is covered by being named)."""
    from benchmark_text import benchmark_8grams, pair_8grams

    benchmark = benchmark_8grams(data_dir)
    generate = preference_pairs.SETS[name].generate
    assert not pair_8grams(generate("train") + generate("heldout")) & benchmark


# ------------------------------------------------------------------------------------------------ guard


def test_guard_stops_after_ss_crosses_50_and_selection_keeps_the_nearest_within_budget(tmp_path):
    """A synthetic select-half trajectory: the guard stops at step 100, selection keeps step 50."""
    base = {"ss": 60.0, "lms": 80.0, PPL: 20.0}
    trajectory = {
        25: {"ss": 57.0, "lms": 80.2, PPL: 20.1},
        50: {"ss": 52.5, "lms": 79.6, PPL: 20.4},  # nearest 50 within the 1-point LMS budget and 3 % ppl
        75: {"ss": 50.4, "lms": 78.1, PPL: 20.4},  # nearer, but 1.9 LMS points lost
        100: {"ss": 47.0, "lms": 79.5, PPL: 20.5},  # crossed 50 by 3 > margin 1: stop here
        125: {"ss": 44.0, "lms": 79.0, PPL: 20.5},  # never reached
    }
    cfg = DpoConfig(check_every=25, overshoot_margin=1.0)
    recipe = DpoRecipe(cfg, tmp_path)
    recipe.heldout_scores = lambda: {
        "reward_accuracy": 1.0,
        "reward_margin": 0.1,
        "accuracy_by_bias_type": {},
    }
    scored = {}

    def scorer(candidate: Candidate):
        scored[candidate.label] = trajectory[int(candidate.label)]
        return scored[candidate.label]

    recipe.scorer = _FakeScorer(base, scorer)
    recipe.guard_stop = None
    lines = []
    callback = _GuardCallback(recipe, types.SimpleNamespace(write=lines.append))
    stopped_at = None
    for step in sorted(trajectory):
        control = types.SimpleNamespace(should_training_stop=False)
        state = types.SimpleNamespace(global_step=step, is_world_process_zero=True)
        callback.on_save(None, state, control)
        if control.should_training_stop:
            stopped_at = step
            break
    assert stopped_at == 100 and "crossed 50" in recipe.guard_stop
    assert [line["step"] for line in lines] == [25, 50, 75, 100] and lines[1]["select_ss"] == 52.5
    chosen, why = selection.choose(base, {str(k): v for k, v in scored.items()}, GUARDED, "step")
    assert chosen == "50" and "3 of 4" in why and "perplexity rise 2.0%" in why


def _run_guard(recipe, trajectory):
    """Feed a synthetic select-half trajectory through the guard callback: (stopped at, log lines, scored)."""
    scored = {}

    def scorer(candidate: Candidate):
        scored[candidate.label] = trajectory[int(candidate.label)]
        return scored[candidate.label]

    recipe.scorer = _FakeScorer(recipe.scorer.base, scorer)
    recipe.guard_stop = None
    lines = []
    callback = _GuardCallback(recipe, types.SimpleNamespace(write=lines.append))
    for step in sorted(trajectory):
        control = types.SimpleNamespace(should_training_stop=False)
        callback.on_save(None, types.SimpleNamespace(global_step=step, is_world_process_zero=True), control)
        if control.should_training_stop:
            return step, lines, scored
    return None, lines, scored


def test_guard_stops_far_over_the_retention_budget_and_selection_skips_a_perplexity_overrun(tmp_path):
    """SS never crosses 50, but perplexity climbs: the nearer-50 step 50 is over the 3 % perplexity
    budget (not kept), step 75 is 2.5x over it (training stops there)."""
    base = {"ss": 60.0, "lms": 80.0, PPL: 20.0}
    trajectory = {
        25: {"ss": 56.0, "lms": 79.9, PPL: 20.2},  # +1 %: within both budgets
        50: {"ss": 53.0, "lms": 79.8, PPL: 20.8},  # +4 %: over the perplexity budget, 1.33x
        75: {"ss": 51.0, "lms": 79.7, PPL: 21.5},  # +7.5 %: 2.5x over, > stop_over_budget 2
        100: {"ss": 50.0, "lms": 79.6, PPL: 22.0},  # never reached
    }
    recipe = DpoRecipe(DpoConfig(check_every=25, stop_over_budget=2.0), tmp_path)
    recipe.heldout_scores = lambda: {
        "reward_accuracy": 1.0,
        "reward_margin": 0.1,
        "accuracy_by_bias_type": {},
    }
    recipe.scorer = _FakeScorer(base, None)
    stopped_at, lines, scored = _run_guard(recipe, trajectory)
    assert stopped_at == 75 and "2.5x its retention budget" in recipe.guard_stop
    assert lines[1]["select_" + PPL] == 20.8
    chosen, why = selection.choose(base, scored, GUARDED, "step")
    assert chosen == "25" and "1 of 3" in why
    # without the perplexity guard the nearest-50 step wins, and the stop needs LMS alone
    assert selection.choose(base, scored, UNGUARDED, "step")[0] == "75"
    recipe = DpoRecipe(DpoConfig(check_every=25, max_ppl_rise=-1.0), tmp_path)
    recipe.heldout_scores = lambda: {
        "reward_accuracy": 1.0,
        "reward_margin": 0.1,
        "accuracy_by_bias_type": {},
    }
    recipe.scorer = _FakeScorer(base, None)
    assert _run_guard(recipe, trajectory)[0] is None
    # nothing within budget: the least over budget is kept (step 50: 1.33x; step 75: 2.5x)
    chosen, why = selection.choose(base, {k: scored[k] for k in ("50", "75")}, GUARDED, "step")
    assert chosen == "50" and why.startswith(
        "no checkpoint kept LMS drop <= 1 and neutral perplexity rise <= 3%"
    )


class _FakeScorer:
    def __init__(self, base, fn):
        self.base, self.fn = base, fn

    def __call__(self, candidate):
        return self.fn(candidate)


def test_crossing_needs_the_other_side_by_more_than_the_margin():
    assert not dpo.crossed(60.0, 50.5, 1.0) and not dpo.crossed(60.0, 49.5, 1.0)
    assert dpo.crossed(60.0, 48.9, 1.0) and dpo.crossed(40.0, 51.5, 1.0) and not dpo.crossed(40.0, 45.0, 1.0)


# ------------------------------------------------------------------------------------------------ real runs

TINY = ["--steps", "2", "--check-every", "1", "--batch-size", "2", "--max-pairs", "8"]
TINY += ["--heldout-max-pairs", "8", "--select-task", "", "--lr", "1e-3"]


def test_two_step_run_on_the_default_model(tmp_path, smollm2, data_dir):
    import cli

    out = tmp_path / "dpo"
    anchored = ["--anchor-weight", "0.5", "--anchor-batch-size", "2", "--anchor-max-tokens", "32"]
    tied = ["--tie-pairs", "roles", "--tie-batch-size", "2"]
    assert cli.main(["train", "--method", "dpo", "--out", str(out), *TINY, *anchored, *tied]) == 0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "loss" in line]
    checks = [line for line in lines if line.get("check")]
    assert [s["step"] for s in steps] == [1, 2] and [c["step"] for c in checks] == [1, 2]
    # policy == reference at step 1: the DPO loss is ln 2 (the logged loss adds the tie term, scaled so its
    # initial gradient norm is tie_weight = 0.25 of DPO's) and the retention anchor's KL is 0
    tie_cal = json.loads((out / "config.json").read_text())["training"]["tie_calibration"]
    assert tie_cal["scale"] * tie_cal["tie_grad_norm"] == pytest.approx(0.25 * tie_cal["dpo_grad_norm"])
    assert steps[0]["tie_loss"] > 0 and tie_cal["tie_grad_norm"] > 0
    want = math.log(2.0) + tie_cal["scale"] * steps[0]["tie_loss"]
    assert steps[0]["loss"] == pytest.approx(want, abs=1e-3)
    assert steps[0]["anchor_kl"] == pytest.approx(0.0, abs=1e-6) and steps[1]["anchor_kl"] >= 0
    assert {"reward_accuracy", "reward_margin", "chosen_reward", "rejected_reward", "lr"} <= set(steps[0])
    assert 0.0 <= checks[-1]["heldout_reward_accuracy"] <= 1.0
    assert any(k.startswith("heldout_accuracy_") for k in checks[-1])
    # the tie term: its batch's |log-ratio| every step, the held-out role pairs' at every check vs the base
    assert all(s["tie_abs_log_ratio"] > 0 and s["tie_loss"] > 0 for s in steps)
    assert checks[0]["heldout_tie_abs_log_ratio_base"] == checks[1]["heldout_tie_abs_log_ratio_base"] > 0
    assert checks[1]["heldout_tie_abs_log_ratio"] != checks[1]["heldout_tie_abs_log_ratio_base"]
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["tie_pairs"] == 240 and config["training"]["tie_pair_set"].startswith("roles:")
    assert config["method"] == "dpo" and config["training"]["chosen_step"] == 2
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not (out / "adapter" / "optimizer.pt").exists()  # the adapter, not the trainer's state
    selection_record = json.loads((out / "selection.json").read_text())
    assert selection_record["chosen_step"] == 2 and selection_record["why"].startswith("no selection task")


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, smollm2, data_dir, monkeypatch):
    """A run killed after its step-2 checkpoint, resumed, ends with the uninterrupted run's adapter."""
    import shutil

    from safetensors.torch import load_file

    from debias.train_and_eval import train_adapter

    cfg = DpoConfig(
        steps=4,
        check_every=2,
        batch_size=2,
        max_pairs=16,  # ends mid-epoch, as real runs do (a finished run resumed then took one step more)
        heldout_max_pairs=4,
        select_task="",
        anchor_weight=0.5,  # the anchor's batches follow the step, so a resumed run reads the same ones
        anchor_batch_size=2,
        anchor_max_tokens=32,
        tie_pairs="roles",  # so are the tie term's pairs
        tie_batch_size=2,
    )
    whole = tmp_path / "whole"
    train_adapter("dpo", cfg, whole)
    cut = tmp_path / "cut"  # what a kill right after checkpoint-2 leaves behind
    shutil.copytree(whole, cut)
    for name in ("checkpoint-4", "../adapter", "../selection.json"):
        target = cut / "checkpoints" / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    train_adapter("dpo", cfg, cut, resume=True)
    a = load_file(str(whole / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(cut / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-7, msg=name)
    steps = [json.loads(line)["step"] for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert sorted(set(steps)) == [1, 2, 3, 4] and steps.count(3) == 1  # the redone steps logged once
    # a finished run resumed trains nothing more: no rate-0 step 5 saved as a spurious candidate
    before = json.loads((whole / "config.json").read_text())["training"]
    summary = train_adapter("dpo", cfg, whole, resume=True)
    assert summary["steps"] == 4 and not (whole / "checkpoints" / "checkpoint-5").exists()
    assert summary["lr_calibration"] == before["lr_calibration"] is not None  # as the run trained
    record = json.loads((whole / "config.json").read_text())
    (whole / "config.json").write_text(json.dumps({**record, "training": None}))  # a record that lost it
    again = train_adapter("dpo", cfg, whole, resume=True)["lr_calibration"]
    assert again["lr"] == pytest.approx(before["lr_calibration"]["lr"], rel=1e-6)  # measured again, same
    assert max(json.loads(line)["step"] for line in (whole / "metrics.jsonl").read_text().splitlines()) == 4
    c = load_file(str(whole / "adapter" / "adapter_model.safetensors"))
    assert all(torch.equal(a[name], c[name]) for name in a)
    with pytest.raises(ValueError, match=r"other settings \(lr: 0.001 -> 0.002\)"):
        train_adapter("dpo", DpoConfig(**{**cfg.__dict__, "lr": 2e-3}), cut, resume=True)
    # a run the guard stopped, resumed, trains nothing more and keeps the calibration it trained with
    monkeypatch.setattr(DpoRecipe, "_guard_stopped", lambda self: "SS crossed 50 (synthetic)")
    shutil.rmtree(cut / "checkpoints" / "checkpoint-4")
    stopped = train_adapter("dpo", cfg, cut, resume=True)
    assert stopped["steps"] == 2 and stopped["stopped_early"]
    assert stopped["lr_calibration"] == before["lr_calibration"]


def test_probe_batch_and_piped_interactive(tmp_path, smollm2):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The nurse said\nMy uncle is\n")
    out = tmp_path / "gen.jsonl"
    cmd = [sys.executable, str(REPO / "cli.py"), "probe", "--max-new-tokens", "4"]
    done = subprocess.run(
        [*cmd, "--prompts", str(prompts), "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["prompt"], r["model"], r["mode"]) for r in rows] == [
        (p, "base", m) for p in ("The nurse said", "My uncle is") for m in ("greedy", "sampled")
    ]
    again = subprocess.run(
        [*cmd, "--prompts", str(prompts), "--out", str(out)], capture_output=True, text=True
    )
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows  # fixed seed, same text
    assert again.returncode == 0
    piped = subprocess.run(
        [*cmd, "--interactive"], input="Hello there\n\nMy aunt\n", capture_output=True, text=True
    )
    assert piped.returncode == 0, piped.stderr[-2000:]
    answers = [line for line in piped.stdout.splitlines() if line.startswith("[base |")]
    assert len(answers) == 4 and "Traceback" not in piped.stderr


def test_a_check_scored_before_the_perplexity_guard_stops_only_on_crossing(tmp_path):
    """A run interrupted before the guard existed has checks without the perplexity: resuming it must not
    fail on them, and a crossed check still counts."""
    recipe = DpoRecipe(DpoConfig(check_every=25), tmp_path)
    recipe.scorer = _FakeScorer({"ss": 60.0, "lms": 80.0, PPL: 20.0}, None)
    assert recipe.stop_reason("25", {"ss": 55.0, "lms": 70.0}) is None
    assert "crossed 50" in recipe.stop_reason("50", {"ss": 47.0, "lms": 79.0})


# ------------------------------------------------------------------------------- lr from gradient norm


def test_lr_scale_divides_by_the_norm_ratio_and_never_raises_the_rate():
    assert dpo.recipe.lr_scale(0.7, 0.25) == pytest.approx(0.25 / 0.7)
    assert dpo.recipe.lr_scale(0.1, 0.25) == 1.0  # a flatter start than the reference: lr unchanged
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive and finite"):
            dpo.recipe.lr_scale(bad, 0.25)
    with pytest.raises(ValueError, match="lr_ref_grad_norm must be >= 0"):
        DpoConfig(lr_ref_grad_norm=-0.1)


def test_a_run_recorded_before_the_rate_calibration_existed_ran_without_it():
    """The default is the leaderboard's default row (calibration on, 40-step warm-up); a run folder whose
    record predates the field is read as having run without it, so resuming it under today's defaults is
    refused rather than silently mixing two rates."""
    from debias.methods.recipe import config_defaults

    cfg = DpoConfig()
    assert (cfg.lr_ref_grad_norm, cfg.warmup_steps, cfg.anchor_weight, cfg.steps) == (0.25, 40, 0.3, 120)
    assert (cfg.lr, cfg.lora_targets, cfg.check_every) == (1e-3, ("gate_proj", "up_proj", "down_proj"), 20)
    assert config_defaults(cfg)["lr_ref_grad_norm"] == 0.0 and config_defaults(cfg)["warmup_steps"] == 40


def test_initial_grad_norm_averages_seeded_batches_and_leaves_the_trainer_as_it_was():
    """A stand-in trainer whose loss is 0.5·(w·x)² per example: the gradient of a batch's mean loss is
    known in closed form, so the averaged norm is checked by hand."""
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    model = torch.nn.Module()
    model.w = w
    model.train()
    data = [{"x": torch.tensor([float(i), 1.0])} for i in range(6)]
    seen_modes = []

    def compute_loss(m, batch):
        seen_modes.append(m.training)
        return (0.5 * (batch["x"] @ m.w) ** 2).mean()

    trainer = types.SimpleNamespace(
        model=model,
        train_dataset=data,
        data_collator=lambda rows: {"x": torch.stack([r["x"] for r in rows])},
        compute_loss=compute_loss,
        _prepare_inputs=lambda batch: batch,
        _metrics={"eval": {"rewards/chosen": [0.1]}, "train": {"loss": [0.7]}},
    )
    norm = dpo.recipe.initial_grad_norm(trainer, batches=2, batch_size=3, seed=5)
    order = torch.randperm(6, generator=torch.Generator().manual_seed(5)).tolist()
    expected = []
    for chunk in (order[:3], order[3:]):
        x = torch.stack([data[i]["x"] for i in chunk])
        grad = ((x @ w.detach())[:, None] * x).mean(0)  # d/dw mean 0.5 (w·x)²
        expected.append(float(grad.norm()))
    assert norm == pytest.approx(sum(expected) / 2, rel=1e-6)
    assert seen_modes == [False, False] and model.training  # measured in eval mode, restored after
    assert w.grad is None  # no gradient left for the first optimizer step to see
    assert trainer._metrics == {"eval": {}, "train": {"loss": [0.7]}}  # training's logged metrics untouched


def test_lr_from_gradient_norm_on_the_default_model(tmp_path, smollm2, data_dir):
    """The measured norm sets the Trainer's rate (logged per step and in config.json) without moving
    the data order: both runs' first step sees the same batch (same gradient norm)."""
    import cli

    plain, scaled = tmp_path / "plain", tmp_path / "scaled"
    off = ["--anchor-weight", "0", "--lr-ref-grad-norm", "0"]
    assert cli.main(["train", "--method", "dpo", "--out", str(plain), *TINY, *off]) == 0
    flags = [*TINY, "--anchor-weight", "0", "--lr-ref-grad-norm", "0.01"]
    assert cli.main(["train", "--method", "dpo", "--out", str(scaled), *flags]) == 0
    calibration = json.loads((scaled / "config.json").read_text())["training"]["lr_calibration"]
    assert json.loads((plain / "config.json").read_text())["training"]["lr_calibration"] is None
    norm, scale = calibration["initial_grad_norm"], calibration["lr_scale"]
    assert (
        norm > 0.01
        and scale == pytest.approx(0.01 / norm)
        and calibration["lr"] == pytest.approx(1e-3 * scale)
    )

    def steps(folder):
        return [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]

    a, b = steps(plain), steps(scaled)
    assert a[0]["grad_norm"] == pytest.approx(b[0]["grad_norm"], rel=1e-5)  # the same first batch
    assert b[1]["lr"] == pytest.approx(a[1]["lr"] * scale, rel=1e-6)  # warm-up's 1/10 of the scaled rate
    assert 0.25 < norm / a[0]["grad_norm"] < 4  # the measurement and training see the same kind of batch
