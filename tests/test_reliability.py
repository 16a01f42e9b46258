"""Every input tried bad, every fault injected (issue 15); each passing case is a row of docs/reliability.md.

Bad input: hypothesis builds malformed files of each kind for every place a file enters, and the CLI must
answer with one line ``error: <file>: ...`` and exit status 2 (no traceback, nothing written). Faults:
NaN losses and weights, SIGTERM mid-training, ``kill -9`` mid-write, two processes on one run folder,
pickle files where only safetensors are loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cli

REPO = Path(__file__).resolve().parent.parent
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))

# --------------------------------------------------------------------------- malformed record files
# (what the CLI is asked, one valid record, the fields it requires)
RECORD_INPUTS = {
    "dpo pairs (--pairs)": (
        ["train", "--method", "dpo", "--select-task", "", "--pairs"],
        {"prompt": "Someone said", "chosen": " yes", "rejected": " no"},
        ("chosen", "rejected"),
    ),
    "equalize pairs (--pairs)": (
        ["train", "--method", "equalize", "--select-task", "", "--pairs"],
        {"prompt": "Someone said", "chosen": " yes", "rejected": " no"},
        ("chosen", "rejected"),
    ),
    "pcgu pairs (--pairs)": (
        ["train", "--method", "pcgu", "--select-task", "", "--pairs"],
        {"prefix": "Someone said", "advantaged": " yes", "disadvantaged": " no"},
        ("prefix", "advantaged", "disadvantaged"),
    ),
    "gee prompts (--data)": (
        ["train", "--method", "gee", "--mode", "rollout", "--data"],
        {"text": "My sister said that"},
        ("text",),
    ),
}

WRONG_VALUES = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def bad_record_file(draw, valid: dict, required: tuple[str, ...]) -> tuple[str, bytes | None]:
    """(kind of damage, file bytes; None = a directory where the file should be)."""
    kind = draw(
        st.sampled_from(
            [
                "empty file",
                "undecodable bytes",
                "truncated JSON",
                "wrong type",
                "missing field",
                "empty string",
                "not an object",
                "huge line",
                "directory",
            ]
        )  # fmt: skip
    )
    good = json.dumps(valid)
    lines = draw(st.integers(0, 3))  # bad record after this many good ones: the error names its line
    head = (good + "\n") * lines
    field = draw(st.sampled_from(required))
    if kind == "empty file":
        return kind, b""
    if kind == "undecodable bytes":
        junk = draw(st.binary(min_size=1, max_size=8))
        return kind, head.encode() + b'{"' + field.encode() + b'": "\xff\xfe' + junk + b'"}\n'
    if kind == "truncated JSON":
        cut = draw(st.integers(1, len(good) - 2))
        return kind, (head + good[:cut] + "\n").encode()
    if kind == "wrong type":
        return kind, (head + json.dumps({**valid, field: draw(WRONG_VALUES)}) + "\n").encode()
    if kind == "missing field":
        return kind, (head + json.dumps({k: v for k, v in valid.items() if k != field}) + "\n").encode()
    if kind == "empty string":
        blank = draw(st.sampled_from(["", " ", "\t", "  \n"[:2]]))
        return kind, (head + json.dumps({**valid, field: blank}) + "\n").encode()
    if kind == "not an object":
        return kind, (head + json.dumps(draw(st.lists(st.integers(), max_size=2))) + "\n").encode()
    if kind == "huge line":
        return kind, head.encode() + b'{"' + field.encode() + b'": "' + b"x" * 3_000_000 + b"\n"
    return kind, None


def _bad_file(path: Path, content: bytes | None) -> Path:
    """``content`` written to ``path``, or a directory there when ``content`` is None."""
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    return path


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(argv)
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, path: Path) -> str:
    assert code == 2, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {path}"), last
    return last


@pytest.mark.parametrize("where", list(RECORD_INPUTS))
def test_malformed_record_files_are_one_line_errors(where, capsys, reliability):
    argv, valid, required = RECORD_INPUTS[where]

    @SETTINGS
    @given(case=bad_record_file(valid, required))
    def check(case):
        kind, content = case
        with tempfile.TemporaryDirectory() as tmp:
            path, out = _bad_file(Path(tmp) / "input.jsonl", content), Path(tmp) / "run"
            code, err = run_cli([*argv, str(path), "--out", str(out)], capsys)
            line = assert_one_line_error(code, err, path)
            assert not out.exists(), "nothing may be written for bad input"
            reliability(where, kind, line.replace(str(path), "FILE"))

    check()


# --------------------------------------------------------------------------- YAML configs


@st.composite
def bad_yaml(draw) -> tuple[str, bytes | None]:
    kind = draw(
        st.sampled_from(
            [
                "truncated YAML",
                "wrong type",
                "unknown field",
                "not a mapping",
                "undecodable bytes",
                "directory",
            ]
        )  # fmt: skip
    )
    if kind == "truncated YAML":
        return kind, draw(st.sampled_from([b"steps: [1, 2\n", b"lr: {a: 1\n", b'pairs: "builtin\n']))
    if kind == "wrong type":
        field, value = draw(
            st.sampled_from(
                [
                    ("steps", '"many"'),
                    ("lr", "fast"),
                    ("steps", "2.5"),
                    ("length_normalize", "3"),
                    ("lora_targets", "7"),
                    ("loss", "huber"),
                    ("batch_size", "true"),
                ]
            )  # fmt: skip
        )
        return kind, f"seed: 1\n{field}: {value}\n".encode()
    if kind == "unknown field":
        return kind, f"seed: 1\n{draw(st.sampled_from(['stepz', 'learning_rate', 'x']))}: 3\n".encode()
    if kind == "not a mapping":
        return kind, draw(st.sampled_from([b"- 1\n- 2\n", b"just text\n", b"42\n"]))
    if kind == "undecodable bytes":
        return kind, b"steps: \xff\xfe\n"
    return kind, None


def test_malformed_yaml_configs_are_one_line_errors(capsys, reliability):
    @SETTINGS
    @given(case=bad_yaml())
    def check(case):
        kind, content = case
        with tempfile.TemporaryDirectory() as tmp:
            path, out = _bad_file(Path(tmp) / "config.yaml", content), Path(tmp) / "run"
            argv = ["train", "--method", "equalize", "--config", str(path), "--out", str(out)]
            code, err = run_cli(argv, capsys)
            line = assert_one_line_error(code, err, path)
            assert not out.exists()
            reliability("method config (--config YAML)", kind, line.replace(str(path), "FILE"))

    check()


# --------------------------------------------------------------------------- run folders given to report


def _fake_run(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"phases": {}, "spec": {}}))
    (folder / "config.json").write_text(json.dumps({"method": "gee", "config": {}}))
    results = folder / "results"
    results.mkdir()
    for name in ("base", "debiased"):
        (results / f"{name}.json").write_text(json.dumps({"results": {}}))
    (results / "comparison.json").write_text(json.dumps({"tasks": {}}))


REPORT_DAMAGE = {
    "run.json truncated": ("run.json", b'{"phases": {'),
    "run.json a list": ("run.json", b"[1, 2]"),
    "run.json without phases": ("run.json", b'{"spec": {}}'),
    "config.json undecodable": ("config.json", b'{"method": "\xff"}'),
    "comparison.json missing": ("results/comparison.json", None),
    "comparison.json tasks not an object": ("results/comparison.json", b'{"tasks": [1]}'),
    "base results a directory": ("results/base.json", "dir"),
    "metrics.jsonl bad line": ("metrics.jsonl", b'{"step": 1}\n{"step": \n'),
    "selection.json a string": ("selection.json", b'"chosen"'),
}


@pytest.mark.parametrize("fault", list(REPORT_DAMAGE))
def test_damaged_run_folders_given_to_report_are_one_line_errors(fault, tmp_path, capsys, reliability):
    name, content = REPORT_DAMAGE[fault]
    run = tmp_path / "run"
    _fake_run(run)
    target = run / name
    if content is None:
        target.unlink()
    elif content == "dir":
        target.unlink()
        target.mkdir()
    else:
        target.write_bytes(content)
    code, err = run_cli(["report", str(run), "--out", str(tmp_path / "r.html")], capsys)
    line = assert_one_line_error(code, err, target)
    assert not (tmp_path / "r.html").exists()
    reliability("run folder (report RUN)", fault, line.replace(str(run), "RUN"))


def test_a_file_where_the_run_folder_should_be(tmp_path, capsys, reliability):
    path = tmp_path / "run"
    path.write_text("not a folder")
    code, err = run_cli(["report", str(path)], capsys)
    line = assert_one_line_error(code, err, path)
    reliability("run folder (report RUN)", "a file instead of a folder", line.replace(str(path), "RUN"))


@pytest.mark.parametrize("command", ["report", "train-and-eval"])
def test_a_symlink_out_of_the_run_folder_is_refused(command, tmp_path, capsys, reliability):
    """``results/`` links to a folder elsewhere: nothing is read from or written through it."""
    run, outside = tmp_path / "run", tmp_path / "elsewhere"
    _fake_run(run)
    shutil.move(run / "results", outside)
    (run / "results").symlink_to(outside)
    before = sorted(p.name for p in outside.iterdir())
    argv = ["report", str(run), "--out", str(tmp_path / "r.html")]
    if command == "train-and-eval":
        argv = ["train-and-eval", "--method", "equalize", "--out", str(run), "--quick"]
    code, err = run_cli(argv, capsys)
    line = assert_one_line_error(code, err, run / "results")
    assert "outside the run folder" in line, line
    assert sorted(p.name for p in outside.iterdir()) == before and not (tmp_path / "r.html").exists()
    reliability(
        f"run folder ({command} {'RUN' if command == 'report' else '--out RUN'})",
        "a symlink inside it leading out of it",
        line.replace(str(run), "RUN").replace(str(outside), "ELSEWHERE"),
    )


@pytest.mark.parametrize("name", ["../escaped", "..", "a/b", ""])
def test_names_from_files_cannot_leave_the_run_folder(name, tmp_path, reliability):
    """A task name in a result file (``samples`` key) or a checkpoint name that is not a plain name."""
    from debias import run_folder

    folder = run_folder.RunFolder(tmp_path / "run")
    with pytest.raises(run_folder.RunFolderError, match="not a plain file name") as caught:
        folder.write_results({"results": {}, "samples": {name: []}}, "base")
    with pytest.raises(run_folder.RunFolderError, match="not a plain file name"):
        folder.checkpoint(name)
    assert not list(tmp_path.rglob("*.json")), "nothing was written anywhere"
    reliability(
        "result files and checkpoint names (run_folder)",
        f"a task or checkpoint name {name!r}",
        "error: " + str(caught.value).replace(str(tmp_path / "run"), "RUN"),
    )


# --------------------------------------------------------------------------- adapters and model folders

ADAPTER_DAMAGE = {
    "adapter_config.json truncated": b'{"peft_type": "LORA", ',
    "adapter_config.json without peft_type": b'{"r": 8}',
    "adapter_config.json undecodable": b'{"peft_type": "\xff"}',
    "weights missing": None,
    "weights only as a pickle (.bin)": "pickle",
}


@pytest.mark.parametrize("command", ["eval", "merge"])
@pytest.mark.parametrize("fault", list(ADAPTER_DAMAGE))
def test_bad_adapters_fail_before_the_model_loads(command, fault, tmp_path, capsys, reliability, monkeypatch):
    from debias import models

    def no_model(*args, **kwargs):
        raise AssertionError("the adapter must be checked before the model is loaded")

    monkeypatch.setattr(models, "load", no_model)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    content = ADAPTER_DAMAGE[fault]
    config = adapter / "adapter_config.json"
    if isinstance(content, bytes):
        config.write_bytes(content)
        (adapter / "adapter_model.safetensors").write_bytes(b"")
    else:
        config.write_text(json.dumps({"peft_type": "LORA"}))
        if content == "pickle":
            torch.save({"w": torch.zeros(1)}, adapter / "adapter_model.bin")
    argv = [command, "--adapter", str(adapter), "--out", str(tmp_path / "out")]
    code, err = run_cli(argv, capsys)
    line = assert_one_line_error(code, err, adapter)
    assert not (tmp_path / "out").exists()
    reliability(f"adapter ({command} --adapter)", fault, line.replace(str(adapter), "ADAPTER"))


def test_model_folder_with_pickle_weights_is_refused_unless_allowed(tmp_path, capsys, reliability):
    from debias import untrusted

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    code, err = run_cli(["model-path", str(folder)], capsys)
    line = assert_one_line_error(code, err, folder)
    assert "pickle" in line and "--allow-pickle" in line
    reliability(
        "model folder (--model DIR)", "weights only as a pickle (.bin)", line.replace(str(folder), "DIR")
    )
    try:
        assert cli.main(["--allow-pickle", "model-path", str(folder)]) == 0
    finally:
        untrusted.allow_pickle(False)
    reliability("model folder (--model DIR)", "the same with --allow-pickle", "accepted (exit 0)")


def test_checkpoint_state_is_read_without_arbitrary_unpickling(tmp_path, reliability):
    """A state.pt carrying an arbitrary object (what a malicious run folder would hold) is refused."""
    from debias import training, untrusted

    path = tmp_path / "state.pt"
    torch.save({"step": 1, "payload": Path("/")}, path)  # any non-tensor class stands in for an exploit
    with pytest.raises(untrusted.PickleRefused, match="state.pt: holds objects beyond tensors"):
        training._load_state(path)
    reliability(
        "run folder checkpoint (--resume)",
        "state.pt with a non-tensor object",
        "refused: holds objects beyond tensors",
    )


# --------------------------------------------------------------------------- numerical faults


def test_non_finite_guard_by_hand():
    from debias.training import NonFiniteGuard, TrainingDiverged

    guard = NonFiniteGuard(limit=3)
    assert guard.allow(1, 0.5, 1.0)
    assert not guard.allow(2, float("nan"), 1.0)
    assert not guard.allow(3, 0.1, float("inf"))
    assert guard.allow(4, 0.1, 0.2) and guard.consecutive == 0 and guard.skipped == 2
    assert not guard.allow(5, float("nan"), 0.0) and not guard.allow(6, float("-inf"), 0.0)
    with pytest.raises(TrainingDiverged, match="step 7: 3 consecutive"):
        guard.allow(7, float("nan"), float("nan"))


def test_a_nan_adapter_is_never_saved(tmp_path, reliability):
    from test_pcgu import tiny_llama

    from debias import training

    model = training.add_lora(tiny_llama(), 2, 4, 0.0, ("q_proj",))
    optimizer, scheduler = training.optimizer_and_schedule(model, 1e-3, 0.0, 0, 2)
    name, param = next((n, p) for n, p in model.named_parameters() if p.requires_grad)
    with torch.no_grad():
        param[0, 0] = float("nan")
    with pytest.raises(training.TrainingDiverged, match="NaN/inf"):
        training.save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {})
    assert list(tmp_path.iterdir()) == []
    reliability("checkpoint write", "a NaN in an adapter weight", "refused, nothing written")


EQUALIZE_TINY = dict(
    steps=4, batch_size=2, check_every=2, heldout_max_pairs=4, anchor_batch_size=1, anchor_max_tokens=16,
    anchor_probe_batches=1, max_pairs=16, select_task="",
)  # fmt: skip


def test_equalize_skips_nan_steps_and_stops_after_too_many(
    tmp_path, smollm2, data_dir, monkeypatch, reliability
):
    from debias import training
    from debias.methods.equalize import losses
    from debias.methods.equalize.recipe import EqualizeConfig
    from debias.train_and_eval import train_adapter

    real = losses.equalize_loss
    calls = {"n": 0}

    def poisoned(delta, kind="sym_kl"):
        calls["n"] += 1
        out = real(delta, kind)
        return out * float("nan") if calls["n"] in bad_calls else out

    monkeypatch.setattr(losses, "equalize_loss", poisoned)
    bad_calls = {2}  # the second training step's loss is NaN
    run = tmp_path / "skip"
    train_adapter("equalize", EqualizeConfig(**EQUALIZE_TINY), run)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [bool(line.get("skipped")) for line in lines] == [False, True, False, False]
    from safetensors.torch import load_file

    assert all(
        torch.isfinite(t).all()
        for t in load_file(str(run / "adapter" / "adapter_model.safetensors")).values()
    )
    reliability(
        "training (equalize)",
        "NaN loss on one step",
        "update skipped and logged (skipped: true); run finishes",
    )

    calls["n"] = 0
    bad_calls = set(range(1, 100))
    monkeypatch.setattr(training, "MAX_BAD_STEPS", 2)
    with pytest.raises(training.TrainingDiverged, match="step 2: 2 consecutive"):
        train_adapter("equalize", EqualizeConfig(**EQUALIZE_TINY), tmp_path / "stop")
    reliability(
        "training (equalize)",
        "NaN loss on every step",
        "stops after MAX_BAD_STEPS in a row: 'training stopped at step N'",
    )


def test_gee_skips_a_step_whose_gradient_is_nan(tmp_path, smollm2, data_dir, monkeypatch, reliability):
    from debias.methods import gee
    from debias.methods.gee import losses

    real = losses.surrogate_loss
    calls = {"n": 0}

    def poisoned(sums, coefficients):
        calls["n"] += 1
        out = real(sums, coefficients)
        return out * float("nan") if calls["n"] == 1 else out

    monkeypatch.setattr(losses, "surrogate_loss", poisoned)
    cfg = gee.GeeConfig(
        loss="l2", steps=2, per_group=2, micro_batch_size=2, warmup_steps=1, probe_max_examples=8,
        checkpoint_every=50, select_task="",
    )  # fmt: skip
    recipe = gee.GeeRecipe(cfg, tmp_path / "run")
    recipe.setup()
    before = {n: p.detach().clone() for n, p in recipe.model.named_parameters() if p.requires_grad}
    first = recipe.train_step(next(recipe.batches))
    assert first.get("skipped") is True
    after = {n: p.detach() for n, p in recipe.model.named_parameters() if p.requires_grad}
    assert all(torch.equal(before[n], after[n]) for n in before), "a skipped step changes no weight"
    second = recipe.train_step(next(recipe.batches))
    assert not second.get("skipped")
    reliability(
        "training (gee)", "NaN gradient on one step", "update skipped (weights unchanged), next step trains"
    )


def test_dpo_skips_a_nan_step_and_stops_after_too_many(tmp_path, smollm2, data_dir, monkeypatch, reliability):
    """TRL's loop gets the same guard: a NaN step changes no weight (nor AdamW's moments), is logged."""
    from safetensors.torch import load_file
    from trl import DPOTrainer

    from debias import training
    from debias.methods.dpo.recipe import DpoConfig
    from debias.train_and_eval import train_adapter

    real = DPOTrainer.compute_loss
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        out = real(self, *args, **kwargs)
        return out * float("nan") if calls["n"] in bad_calls else out

    monkeypatch.setattr(DPOTrainer, "compute_loss", poisoned)
    # no rate calibration: its gradient-norm measurement would take the poisoned first call
    cfg = DpoConfig(
        steps=3,
        check_every=1,
        batch_size=2,
        max_pairs=8,
        heldout_max_pairs=4,
        select_task="",
        lr_ref_grad_norm=0.0,
    )
    bad_calls = {1}  # the first step's loss is NaN: its checkpoint must equal the untrained adapter
    run = tmp_path / "skip"
    train_adapter("dpo", cfg, run)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "loss" in line]
    assert [bool(line.get("skipped")) for line in steps] == [True, False, False]
    first = load_file(str(run / "checkpoints" / "checkpoint-1" / "adapter_model.safetensors"))
    lora_b = [t for name, t in first.items() if "lora_B" in name]
    assert lora_b and all(torch.count_nonzero(t) == 0 for t in lora_b), "LoRA B starts at 0 and stays there"
    last = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert all(torch.isfinite(t).all() for t in last.values())
    assert any(torch.count_nonzero(t) > 0 for name, t in last.items() if "lora_B" in name)
    reliability(
        "training (dpo)", "NaN loss on one step", "update skipped (weights and moments unchanged), logged"
    )

    calls["n"] = 0
    bad_calls = set(range(1, 100))
    monkeypatch.setattr(training, "MAX_BAD_STEPS", 2)
    with pytest.raises(training.TrainingDiverged, match="step 2: 2 consecutive"):
        train_adapter("dpo", cfg, tmp_path / "stop")
    reliability(
        "training (dpo)",
        "NaN loss on every step",
        "stops after MAX_BAD_STEPS in a row: 'training stopped at step N'",
    )


# ------------------------------------------------------------------ processes: signals, kill -9, locks


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}


GEE_TINY = dict(
    steps=6, per_group=2, micro_batch_size=2, warmup_steps=1, probe_max_examples=8, checkpoint_every=3,
    stop_examples=8,
)  # fmt: skip
SIGNAL_CASES = {
    "equalize": (
        "debias.methods.equalize.recipe",
        "EqualizeConfig",
        dict(EQUALIZE_TINY, steps=6, check_every=3),
    ),
    "gee": ("debias.methods.gee.recipe", "GeeConfig", GEE_TINY),
}


def _whole_run_and_cli(method, module, config_name, cfg, tmp_path):
    """Train the uninterrupted run in-process; return it, the cut run's folder and its ``cli.py`` argv."""
    import importlib

    from debias.train_and_eval import train_adapter

    config_class = getattr(importlib.import_module(module), config_name)
    whole = tmp_path / "whole"
    train_adapter(method, config_class(**cfg), whole)
    cut = tmp_path / "cut"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in cfg.items()]
    argv = [sys.executable, str(REPO / "cli.py"), "train", "--method", method, "--out", str(cut), *flags]
    return whole, cut, argv


def _sigterm_once(argv, ready) -> tuple[int, str]:
    """Start ``argv``, send SIGTERM as soon as ``ready()`` (or after 300 s), return (exit status, stderr)."""
    child = subprocess.Popen(argv, env=_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and child.poll() is None and not ready():
        time.sleep(0.02)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=300)
    return child.returncode, err


def _resume_matches(argv, whole, cut, weights: str) -> None:
    """``--resume`` the cut run; its adapter must equal the uninterrupted run's."""
    from safetensors.torch import load_file

    resumed = subprocess.run([*argv, "--resume"], env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    a = load_file(str(whole / "adapter" / weights))
    b = load_file(str(cut / "adapter" / weights))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize("method", list(SIGNAL_CASES))
def test_sigterm_during_training_checkpoints_and_resume_matches(
    method, tmp_path, smollm2, data_dir, reliability
):
    """A real ``cli.py train`` gets SIGTERM mid-run; resumed, it ends with the uninterrupted adapter."""
    module, config_name, cfg = SIGNAL_CASES[method]
    whole, cut, argv = _whole_run_and_cli(method, module, config_name, cfg, tmp_path)
    metrics = cut / "metrics.jsonl"
    code, err = _sigterm_once(argv, lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 1)
    assert code == 130, err
    assert "checkpoint saved" in err
    stopped_at = len(metrics.read_text().splitlines())
    assert stopped_at < cfg["steps"], "the signal arrived before the run finished"
    _resume_matches(argv, whole, cut, "adapter_model.safetensors")
    reliability(
        f"training (cli train, {method})",
        f"SIGTERM after step {stopped_at}",
        "exit 130, checkpoint written; --resume ends with the uninterrupted run's adapter",
    )


PCGU_PAIRS = [
    {"prefix": "My sister is very", "advantaged": " gentle", "disadvantaged": " aggressive"},
    {"prefix": "My brother is very", "advantaged": " aggressive", "disadvantaged": " gentle"},
    {"prefix": "The nurse said that", "advantaged": " she", "disadvantaged": " he"},
    {"prefix": "The engineer said that", "advantaged": " he", "disadvantaged": " she"},
]
KEPT_CASES = {  # methods that keep their last whole checkpoint on a signal and redo the rest on --resume
    "dpo": (
        "debias.methods.dpo.recipe",
        "DpoConfig",
        dict(steps=8, check_every=2, batch_size=2, max_pairs=8, heldout_max_pairs=4, select_task=""),
        "checkpoints/checkpoint-2/COMPLETE",
        "adapter_model.safetensors",
    ),
    "pcgu": (
        "debias.methods.pcgu.recipe",
        "PcguConfig",
        dict(k=64, lr=1e-3, batch_size=2, epochs=6, select_task=""),
        "checkpoints/epoch-1/sparse_adapter.json",
        "sparse_adapter.safetensors",
    ),
}


@pytest.mark.parametrize("method", list(KEPT_CASES))
def test_sigterm_keeps_the_last_checkpoint_and_resume_matches(
    method, tmp_path, smollm2, data_dir, reliability
):
    """A real ``cli.py train`` (TRL's loop / PCGU's epochs) gets SIGTERM after its first checkpoint;
    it exits 130 naming what it kept, and ``--resume`` ends with the uninterrupted run's adapter. For
    DPO a half-written checkpoint folder (what a kill inside the Trainer's save leaves) is also planted:
    resume must ignore and remove it rather than load it."""
    module, config_name, cfg, first_checkpoint, weights = KEPT_CASES[method]
    if method == "pcgu":
        pairs = tmp_path / "pairs.jsonl"
        pairs.write_text("".join(json.dumps(p) + "\n" for p in PCGU_PAIRS))
        cfg = {**cfg, "pairs": str(pairs)}
    whole, cut, argv = _whole_run_and_cli(method, module, config_name, cfg, tmp_path)
    code, err = _sigterm_once(argv, lambda: (cut / first_checkpoint).is_file())
    assert code == 130, err
    assert "interrupted:" in err and "--resume" in err
    assert not (cut / "adapter").exists(), "the signal arrived before the run finished"
    if method == "dpo":
        partial = cut / "checkpoints" / "checkpoint-6"
        partial.mkdir(exist_ok=True)
        (partial / "adapter_config.json").write_text('{"peft_type": "LO')  # cut off mid-write
    _resume_matches(argv, whole, cut, weights)
    reliability(
        f"training (cli train, {method})",
        "SIGTERM after the first checkpoint"
        + (" + a half-written checkpoint planted" if method == "dpo" else ""),
        "exit 130 naming the checkpoint kept; --resume redoes the rest and ends with the uninterrupted "
        "run's adapter",
    )


WRITER = """
import sys, json
from harness_tasks._io import write_json_atomic
path = sys.argv[1]
for i in range(10**9):
    write_json_atomic(path, {"version": i, "payload": "x" * (i % 7 + 1) * 200000})
"""


def test_kill_9_during_writes_never_leaves_a_partial_file(tmp_path, reliability):
    """A child rewrites a 0.2-1.4 MB JSON file in a loop; SIGKILL at random moments, 25 times."""
    import random

    target = tmp_path / "results.json"
    rng = random.Random(0)
    versions = set()
    for _ in range(25):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], env=_env())
        time.sleep(rng.uniform(0.3, 0.9))
        child.kill()
        child.wait()
        if target.exists():
            data = json.loads(target.read_text())  # never a prefix: always a whole file
            assert set(data) == {"version", "payload"}
            versions.add(data["version"])
    assert len(versions) > 1, "the kills landed after several complete writes"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "results.json"]
    assert all(name.startswith(".results.json.") for name in leftovers)  # temp files, never the target
    reliability(
        "any atomic write (results, caches, run.json, adapters)",
        "kill -9 at 25 random moments mid-write",
        "target always loads whole (old or new version); only hidden temp files remain",
    )


HOLDER = """
import sys, time
from debias import run_folder
with run_folder.exclusive(sys.argv[1], "train-and-eval --method gee"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_process_on_the_same_run_folder_is_refused(tmp_path, capsys, reliability):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code, err = run_cli(["train-and-eval", "--method", "equalize", "--out", str(run), "--quick"], capsys)
        assert code == 2 and "Traceback" not in err, err
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"error: {run}: in use by train-and-eval --method gee (pid {holder.pid})"), (
            line
        )
        assert not run.exists(), "the refused process wrote nothing"
        reliability(
            "run folder (train-and-eval --out)",
            "a second process on a folder in use",
            line.replace(str(run), "RUN"),
        )
    finally:
        holder.kill()
        holder.wait()
    # the kernel drops the lock with the killed holder: a rerun is not blocked by a stale lock
    from debias import run_folder

    with run_folder.exclusive(run):
        pass
    reliability(
        "run folder (train-and-eval --out)",
        "the holder killed with kill -9",
        "lock released; the next run proceeds",
    )


def test_bad_benchmark_file_is_one_line(tmp_path, capsys, monkeypatch, reliability, data_dir):
    """A truncated, undecodable CrowS-Pairs CSV in the data folder: one line naming it."""
    # --data-dir travels in the environment (lm-eval runs the tasks): restore it for the other tests
    monkeypatch.setenv("DEBIAS_DATA_DIR", str(data_dir))
    bad = tmp_path / "data"
    shutil.copytree(data_dir / "crows_pairs", bad / "crows_pairs")
    csv = next((bad / "crows_pairs").glob("*.csv"))
    csv.write_bytes(csv.read_bytes()[:5000] + b"\xff\xfe\n")
    code, err = run_cli(
        ["eval", "--tasks", "gee_crows_pairs", "--limit", "4", "--data-dir", str(bad)], capsys
    )
    assert code == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: {csv}"), line
    reliability(
        "benchmark data (--data-dir)",
        "undecodable bytes in the CrowS-Pairs CSV",
        line.replace(str(csv), "FILE"),
    )


# ------------------------------------------------------------------ concurrency: shared caches

RESOLVER = """
import json, os, sys, time
from debias import models

def build(tmp):
    with open(sys.argv[1], "a") as log:  # one line per build that actually ran
        log.write(f"{os.getpid()}\\n")
    time.sleep(1.0)  # long enough that the other process arrives while this one builds
    (tmp / "weights.bin").write_bytes(os.urandom(1 << 20))
    (tmp / models.SOURCE_FILE).write_text(json.dumps({"builder": os.getpid()}))

print(models._cached_conversion("tiny-model", build))
"""


def test_two_processes_resolving_one_model_build_it_once(tmp_path, reliability):
    """Both start with an empty cache at once: one converts, the other waits and shares its folder."""
    env = {**_env(), "DEBIAS_CACHE": str(tmp_path / "cache")}
    builds = tmp_path / "builds.log"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RESOLVER, str(builds)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    paths = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert paths[0] == paths[1] and Path(paths[0]).is_dir()
    assert len(builds.read_text().split()) == 1, "exactly one process converted the model"
    folder = Path(paths[0])
    source = json.loads((folder / "debias_source.json").read_text())
    assert (folder / "weights.bin").stat().st_size == 1 << 20 and source["builder"] > 0
    assert [p.name for p in folder.parent.iterdir() if not p.name.startswith(".")] == ["tiny-model"]
    reliability(
        "model cache (models.resolve)",
        "two processes resolve the same model at once, cache empty",
        "one converts, the other waits on the lock and gets the same complete folder",
    )


CACHE_WRITER = """
import sys
from debias import evaluation, pipeline
request = evaluation.EvalRequest(tasks=["gee_crows_pairs"], limit=4)
for i in range(int(sys.argv[2])):
    pipeline.store_base_results("smollm2-135m", request, {"writer": sys.argv[1], "i": i, "pad": "x" * 300000})
print(pipeline.base_cache_path("smollm2-135m", request))
"""


def test_two_processes_writing_one_base_cache_entry(tmp_path, reliability):
    """Two writers rewrite the same cache entry 40 times each while this process keeps reading it."""
    env = {**_env(), "DEBIAS_CACHE": str(tmp_path / "cache")}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", CACHE_WRITER, name, "40"], env=env, stdout=subprocess.PIPE, text=True
        )
        for name in ("a", "b")
    ]
    seen: set[str] = set()
    reads = 0
    while any(w.poll() is None for w in writers):
        for entry in (tmp_path / "cache" / "results").glob("base-*.json"):
            try:
                data = json.loads(entry.read_text())
            except FileNotFoundError:
                continue
            assert set(data) == {"writer", "i", "pad"} and len(data["pad"]) == 300000
            seen.add(data["writer"])
            reads += 1
    outputs = [w.communicate()[0].strip() for w in writers]
    assert all(w.returncode == 0 for w in writers) and outputs[0] == outputs[1]
    final = json.loads(Path(outputs[0]).read_text())
    assert final["i"] == 39 and final["writer"] in ("a", "b")
    leftovers = [p.name for p in Path(outputs[0]).parent.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers
    reliability(
        "base-results cache (pipeline.store_base_results)",
        "two processes write the same entry at once (40 writes each), a third reads throughout",
        f"every one of {reads} reads was a whole entry; the last complete write wins; no temp files left",
    )


# ------------------------------------------------------------------ a full disk


@contextlib.contextmanager
def _small_disk(tmp_path: Path, how: str):
    """A folder whose filesystem fills up: a real 256 kB tmpfs, or a write hook raising ENOSPC."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if how == "tmpfs":
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
        )
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); the hook case runs")
        try:
            yield folder, None
        finally:
            subprocess.run(["umount", str(folder)], check=False)
    else:
        yield folder, "hook"


@pytest.mark.parametrize("how", ["tmpfs", "hook"])
def test_a_full_disk_keeps_the_previous_file(how, tmp_path, capsys, monkeypatch, reliability):
    """``report`` writes a report onto a disk that fills up mid-write: one line, the old file intact."""
    import errno

    run = tmp_path / "run"
    _fake_run(run)
    with _small_disk(tmp_path, how) as (disk, hook):
        target = disk / "report.html"
        target.write_text("<p>the previous report</p>")
        if hook:  # the write hook: every write beyond the first 4 kB of a file fails as a full disk would
            real_fdopen = os.fdopen

            class Filling:
                def __init__(self, fh):
                    self.fh, self.written = fh, 0

                def write(self, data):
                    self.written += len(data)
                    if self.written > 4096:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    return self.fh.write(data)

                def __getattr__(self, name):
                    return getattr(self.fh, name)

                def __enter__(self):
                    return self

                def __exit__(self, *exc):
                    return self.fh.__exit__(*exc)

            monkeypatch.setattr(os, "fdopen", lambda *a, **k: Filling(real_fdopen(*a, **k)))
        else:  # fill the tmpfs so that the report cannot fit
            filler = disk / "filler"
            with open(filler, "wb", buffering=0) as fh:
                try:
                    while True:
                        fh.write(b"\0" * 4096)
                except OSError:
                    pass
            filler.write_bytes(filler.read_bytes()[:-4096])  # one 4 kB page free: less than one report
        code, err = run_cli(["report", str(run), "--out", str(target)], capsys)
        assert code == 1 and "Traceback" not in err, err
        line = err.strip().splitlines()[-1]
        assert line == f"error: {target}: No space left on device; the file was not replaced", line
        assert target.read_text() == "<p>the previous report</p>"
        assert not [p.name for p in disk.iterdir() if p.name.startswith(".")], "no temp file left"
    disk_kind = "a full 256 kB tmpfs" if how == "tmpfs" else "a write hook"
    reliability(
        f"any atomic write (report, results, caches): {disk_kind}",
        "disk full during the write",
        line.replace(str(target), "FILE") + "; previous file intact, no temp file left",
    )
