"""Data-parallel evaluation: ``accelerate launch`` with 2 CPU processes (gloo) as the CI proxy for GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_two_processes_give_the_single_process_metrics(tmp_path, smollm2, data_dir):
    """Each process scores half the requests, rank 0 gathers and writes: the same numbers as one process."""
    eval_args = ["eval", "--tasks", "gee_crows_pairs,gee_winogender", "--limit", "12", "--batch-size", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEBIAS_DATA_DIR": str(data_dir)}
    one = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *eval_args, "--out", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    config = REPO / "configs" / "accelerate" / "cpu_2proc.yaml"  # the documented launch config
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    two = subprocess.run(
        [*launch, str(REPO / "cli.py"), *eval_args, "--out", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "results.json").read_text())
    b = json.loads((tmp_path / "two" / "results.json").read_text())
    assert a["provenance"]["processes"] == 1 and b["provenance"]["processes"] == 2
    # rates are counts, so equal; log-likelihood sums differ in the last float32 bits (other batch mates)
    for task, metrics in a["results"].items():
        for name, value in metrics.items():
            if isinstance(value, float) and "stderr" not in name:
                assert b["results"][task][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (task, name)
    # the printed table comes once (rank 0), not once per process
    printed = [
        line for line in two.stdout.splitlines() if line.startswith("gee_crows_pairs\tpct_stereotype\t")
    ]
    assert len(printed) == 1, two.stdout
    samples = json.loads((tmp_path / "two" / "samples" / "gee_crows_pairs.json").read_text())
    assert len(samples) == 12


def test_train_and_eval_under_a_launcher_is_one_line(tmp_path, monkeypatch, capsys):
    import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["train-and-eval", "--out", str(tmp_path / "run"), "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: train-and-eval runs in one process"), err
    assert not (tmp_path / "run").exists()
