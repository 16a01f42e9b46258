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
