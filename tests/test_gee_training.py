"""GEE training on the real default model: artefacts, exact step statistics, resume, two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from debias.methods import gee
from debias.methods.gee import losses
from debias.train_and_eval import train_adapter

REPO = Path(__file__).resolve().parent.parent
TINY = dict(
    loss="l2",
    steps=2,
    per_group=2,
    micro_batch_size=2,
    warmup_steps=1,
    probe_max_examples=8,
    checkpoint_every=50,
)


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("gee") / "run"
    train_adapter("gee", gee.GeeConfig(**TINY), run)
    return run


def test_run_folder_has_adapter_config_and_metrics(tiny_run):
    assert (tiny_run / "adapter" / "adapter_config.json").is_file()
    adapter_config = json.loads((tiny_run / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["peft_type"] == "LORA" and set(adapter_config["target_modules"]) >= {
        "q_proj",
        "down_proj",
    }
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["config"]["steps"] == 2 and config["training"]["probe_after"]["examples"] > 0
    lines = _lines(tiny_run)
    assert [m["step"] for m in lines] == [1, 2]
    for m in lines:
        assert set(m["entropy"]) == {"male", "female"} and m["tokens_per_s"] > 0 and m["lr"] > 0
        assert m["gap"] == pytest.approx(abs(m["entropy"]["male"] - m["entropy"]["female"]) / 2, abs=1e-6)


def test_step_statistics_equal_a_direct_full_batch_computation(tmp_path):
    """The logged group entropies of step 1 (two micro-batches) = a one-shot computation on the same batch."""
    cfg = gee.GeeConfig(**{**TINY, "steps": 1})
    recipe = gee.GeeRecipe(cfg, tmp_path / "run")
    recipe.setup()
    examples = next(recipe.batches)
    batch = gee.teacher_forced_batch(recipe.tokenizer, examples, recipe.group_index)
    with torch.no_grad():
        sums, counts = gee.group_sums(recipe.model, batch, 2, cfg)
    expected = losses.group_means(sums, counts)
    metrics = recipe.train_step(examples)
    assert metrics["entropy"]["male"] == pytest.approx(float(expected[0]), abs=1e-5)
    assert metrics["entropy"]["female"] == pytest.approx(float(expected[1]), abs=1e-5)


def test_micro_batching_does_not_change_the_gradient(tmp_path):
    """The same step with 1 or 4 examples per micro-batch gives the same gradient (exact surrogate)."""
    grads = []
    for micro in (1, 4):
        recipe = gee.GeeRecipe(gee.GeeConfig(**{**TINY, "micro_batch_size": micro}), tmp_path / f"m{micro}")
        recipe.setup()
        recipe.compute_gradients(next(recipe.batches))
        grads.append(torch.cat([p.grad.flatten() for p in recipe.trainable]))
    assert grads[0].abs().max() > 0
    # float32 sums run in a different order for other batch shapes and thread counts (CI measured
    # elementwise differences up to ~5e-7 of the gradient scale), so compare the relative norm of the
    # difference rather than near-zero entries one by one.
    relative = float((grads[0] - grads[1]).norm() / grads[1].norm())
    assert relative < 1e-5, relative


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, tiny_run):
    run = tmp_path / "resumed"
    cfg = gee.GeeConfig(**TINY)
    with pytest.raises(KeyboardInterrupt):
        train_adapter("gee", cfg, run, stop_after=1)
    assert [m["step"] for m in _lines(run)] == [1]
    train_adapter("gee", cfg, run, resume=True)
    assert [m["step"] for m in _lines(run)] == [1, 2]
    for a, b in zip(_lines(run), _lines(tiny_run), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6) and a["entropy"] == pytest.approx(
            b["entropy"], abs=1e-6
        )
    uninterrupted = _adapter(tiny_run)
    for name, tensor in _adapter(run).items():
        torch.testing.assert_close(tensor, uninterrupted[name], atol=1e-6, rtol=1e-5)


def test_two_processes_give_the_same_group_statistics(tmp_path, tiny_run):
    run = tmp_path / "two"
    flags = [
        "--loss",
        "l2",
        "--steps",
        "2",
        "--per-group",
        "2",
        "--micro-batch-size",
        "2",
        "--warmup-steps",
        "1",
    ]
    flags += ["--probe-max-examples", "8", "--checkpoint-every", "50"]
    # accelerate's --cpu launcher starts ONE process unless given an MPI hostfile; its torchrun-based
    # launcher starts two CPU processes (gloo), which the recipe's Accelerator(cpu=True) joins.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd = [*launch, str(REPO / "cli.py"), "train", "--method", "gee", "--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd + flags, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "config.json").read_text())["processes"] == 2, proc.stderr[-3000:]
    for two, one in zip(_lines(run), _lines(tiny_run), strict=True):
        assert two["entropy"] == pytest.approx(one["entropy"], abs=1e-5)
        assert two["loss"] == pytest.approx(one["loss"], abs=1e-5)
        assert two["tokens"] == one["tokens"]


def test_config_rejects_a_single_group():
    with pytest.raises(ValueError, match="at least two"):
        gee.GeeConfig(groups=("male",))


def test_varied_data_trains_and_stops_on_varied_templates_and_reports_the_template_probe(tmp_path):
    """--data varied: train and stop split from debias.data.varied_templates, the reported probe unchanged
    (built without the model: ``_examples`` needs only the config)."""
    from debias.data import GroupBalancedBatches, generate, varied_templates

    cfg = gee.GeeConfig(**{**TINY, "data": "varied", "stop_examples": 11})
    train, probe, stop = gee.GeeRecipe(cfg, tmp_path / "run")._examples()
    assert train == varied_templates.generate("train", seed=cfg.seed)
    assert stop == varied_templates.generate("heldout", seed=cfg.seed)[:10]  # whole pairs
    assert probe == generate("heldout", seed=cfg.seed)[:8]
    batch = next(GroupBalancedBatches(train, ["male", "female"], 2, seed=0, paired=True))
    assert [e.pair_id for e in batch[:2]] == [e.pair_id for e in batch[2:]]
    with pytest.raises(ValueError, match="male and female"):
        gee.GeeConfig(data="varied", groups=("young", "old"))


def test_counterfactual_balance_pairs_one_sided_user_prompts(tmp_path):
    """--balance counterfactual: every male and female prompt with its swapped twin, exactly paired."""
    from debias.data import GroupBalancedBatches, load_prompts
    from debias.methods.gee.recipe import counterfactual_examples

    path = tmp_path / "prompts.jsonl"
    rows = [
        {"text": "He fixed the car", "continuation": " in an hour."},
        {"text": "She wrote the report", "continuation": " before noon."},
        {"text": "My brother cooked dinner", "continuation": " for everyone."},
        {"text": "The weather was mild", "continuation": " all day."},  # neutral: dropped
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples = counterfactual_examples(load_prompts(path), ("male", "female"), str(path))
    by_group = {g: sorted(e.prompt for e in examples if e.group == g) for g in ("male", "female")}
    assert by_group == {
        "male": ["He fixed the car", "He wrote the report", "My brother cooked dinner"],
        "female": ["My sister cooked dinner", "She fixed the car", "She wrote the report"],
    }
    batches = GroupBalancedBatches(examples, ["male", "female"], per_group=3, seed=0, paired=True)
    batch = next(batches)
    male, female = batch[:3], batch[3:]
    assert [e.pair_id for e in male] == [e.pair_id for e in female]
    assert all(m.continuation == f.continuation for m, f in zip(male, female, strict=True))
    with pytest.raises(ValueError, match="groups must be male and female"):
        counterfactual_examples(examples, ("young", "old"), str(path))


def test_second_probe_written_apart_from_the_templates_is_reported(tiny_run):
    summary = json.loads((tiny_run / "config.json").read_text())["training"]
    before, after = summary["independent_probe_before"], summary["independent_probe_after"]
    assert before["examples"] == after["examples"] == 8  # capped by probe_max_examples, whole pairs
    assert set(before["entropy"]) == {"male", "female"}
    assert summary["independent_gap_reduction"] == pytest.approx(1 - after["gap"] / before["gap"])


ANCHORED = {**TINY, "anchor_weight": 0.5, "anchor_batch_size": 2, "anchor_max_tokens": 16}
ANCHORED |= {"anchor_probe_batches": 1}


def _anchor_file(tmp_path: Path) -> str:
    """Twenty neutral lines (the built-in GSM8K/MMLU text is tokenised whole: slow for a unit test)."""
    path = tmp_path / "neutral.txt"
    path.write_text("".join(f"Step {i}: add {i} and {i + 2} to get {2 * i + 2} apples.\n" for i in range(20)))
    return str(path)


def test_a_bad_anchor_file_fails_in_validate_before_the_run_folder_exists(tmp_path):
    from debias.train_and_eval import make_recipe

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    out = tmp_path / "run"
    recipe = make_recipe("gee", gee.GeeConfig(**ANCHORED, anchor_text=str(bad)), out)
    with pytest.raises(ValueError, match=r"bad.txt: cannot read the anchor text"):
        recipe.validate()
    assert not out.exists()


def test_anchor_adds_the_kl_and_resumes_in_the_same_text_order(tmp_path, tiny_run):
    """With the anchor on: its KL is logged (0 at step 1, LoRA starts as the identity), counted in the
    loss, probed on held-out text after training; a run interrupted after step 1 and resumed ends equal,
    the anchor's batches included; without it GEE's own steps are unchanged."""
    cfg = gee.GeeConfig(**ANCHORED, anchor_text=_anchor_file(tmp_path))
    whole = tmp_path / "whole"
    summary = train_adapter("gee", cfg, whole)
    lines = _lines(whole)
    assert lines[0]["anchor_kl"] == pytest.approx(0.0, abs=1e-6) and lines[-1]["anchor_kl"] > 0
    assert summary["heldout_anchor_kl"] > 0
    plain = _lines(tiny_run)  # the same run without the anchor
    # step 1's KL gradient is 0, so both runs take the same first step; from step 2 the anchor counts
    assert plain[0]["loss"] == pytest.approx(lines[0]["loss"], abs=1e-6) and "anchor_kl" not in plain[0]
    assert plain[1]["entropy"] != pytest.approx(lines[1]["entropy"], abs=1e-9)
    for m in lines:  # l2 loss H̄ + λ·Σ_g (H_g − H̄)², plus the anchor's weighted KL
        h = list(m["entropy"].values())
        own = m["mean_entropy"] + m["lambda"] * sum((x - m["mean_entropy"]) ** 2 for x in h)
        assert m["loss"] == pytest.approx(own + 0.5 * m["anchor_kl"], abs=1e-5)
    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train_adapter("gee", cfg, resumed, stop_after=1)
    train_adapter("gee", cfg, resumed, resume=True)
    for a, b in zip(_lines(resumed), lines, strict=True):
        assert a["anchor_kl"] == pytest.approx(b["anchor_kl"], abs=1e-7)
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    expected = _adapter(whole)
    for name, tensor in _adapter(resumed).items():
        torch.testing.assert_close(tensor, expected[name], atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="anchor_weight must be >= 0"):
        gee.GeeConfig(anchor_weight=-1)
