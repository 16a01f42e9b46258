"""Shared fixtures: the real benchmark data (via DEBIAS_DATA_DIR) and the real default model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _default_data_dir() -> None:
    """CI sets DEBIAS_DATA_DIR=../shared/data; default to that layout so a bare `pytest` works too."""
    if not os.environ.get("DEBIAS_DATA_DIR"):
        candidate = REPO.parent / "shared" / "data"
        if candidate.is_dir():
            os.environ["DEBIAS_DATA_DIR"] = str(candidate)
    elif not Path(os.environ["DEBIAS_DATA_DIR"]).is_absolute():
        os.environ["DEBIAS_DATA_DIR"] = str((REPO / os.environ["DEBIAS_DATA_DIR"]).resolve())


_default_data_dir()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("DEBIAS_DATA_DIR", "")).resolve()
    if not (path / "crows_pairs").is_dir():
        pytest.fail(f"benchmark data not found at DEBIAS_DATA_DIR={path!s}; point it at shared/data")
    return path


@pytest.fixture(scope="session")
def smollm2():
    """The real default model (SmolLM2-135M-Instruct), converted once into the cache."""
    from debias import models

    model, tokenizer = models.load(models.DEFAULT_MODEL)
    return model, tokenizer, models.resolve(models.DEFAULT_MODEL)


# ------------------------------------------------------------------ the reliability table (issue 15)
# Tests of bad input and injected faults record what they tried and what they observed; with
# DEBIAS_RELIABILITY_TABLE=docs/reliability.md the rows of the tests that passed become that file, so
# the table is produced by the tests, never written by hand.
_RELIABILITY: list[dict[str, str]] = []


@pytest.fixture
def reliability(request):
    def record(where: str, fault: str, outcome: str) -> None:
        _RELIABILITY.append({"where": where, "fault": fault, "outcome": outcome, "test": request.node.nodeid})

    return record


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    target = os.environ.get("DEBIAS_RELIABILITY_TABLE")
    if not target or not _RELIABILITY:
        return
    from reliability_table import render

    from harness_tasks._io import write_text_atomic

    path = Path(target) if Path(target).is_absolute() else REPO / target
    write_text_atomic(path, render(_RELIABILITY, session.testsfailed))
