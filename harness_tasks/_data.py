"""Find the upstream benchmark files the tasks read, and prove they are the upstream files.

Files are looked up by their path in the upstream layout (``crows_pairs/crows_pairs_anonymized.csv``,
``stereoset/dev.json``, ``mmlu/test/anatomy_test.csv`` ...) under ``DEBIAS_DATA_DIR``. Every known file is
sha256-checked against ``data_manifest.json``, so a result can only ever be computed on the exact bytes the
manifest names. Without ``DEBIAS_DATA_DIR`` the file is fetched once from its pinned public source into the
cache (for users with a network); tests and CI always set the variable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.request
import zipfile
from functools import cache
from pathlib import Path

from harness_tasks import _io

DATA_ENV = "DEBIAS_DATA_DIR"
LAYOUT_HINT = "crows_pairs/, stereoset/, winogender/, mmlu/, gsm8k/, bbq/"
_MANIFEST_PATH = Path(__file__).with_name("data_manifest.json")

# Files resolved in this process, {relative path: sha256}: result files record exactly what was read.
USED_FILES: dict[str, str] = {}


class DataFileError(ValueError):
    """A benchmark file is missing, altered or malformed; the message names the file and what to do."""


@cache
def manifest() -> dict:
    return json.loads(_MANIFEST_PATH.read_text())


def data_dir() -> Path | None:
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser().resolve() if env else None


def set_data_dir(path: str | Path) -> None:
    """What ``--data-dir`` does: the tasks run inside lm-eval, so the choice travels in the environment.

    Checked here, before any model is loaded, so a typo costs a second rather than a model load.
    """
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_dir():
        raise DataFileError(f"--data-dir {resolved} is not a folder (it must hold {LAYOUT_HINT})")
    os.environ[DATA_ENV] = str(resolved)


def data_file(rel: str) -> Path:
    """Absolute path of upstream file ``rel``, checked against its known sha256."""
    expected = manifest()["files"].get(rel)
    root = data_dir()
    if root is not None:
        path = root / rel
        if not path.is_file():
            raise DataFileError(
                f"benchmark file not found: {path} "
                f"({DATA_ENV}={root} must be the folder holding {LAYOUT_HINT})"
            )
    else:
        path = _fetch_public(rel)
    if expected is not None:
        actual = _sha256(str(path), path.stat().st_mtime_ns, path.stat().st_size)
        if actual != expected:
            raise DataFileError(
                f"{path}: sha256 {actual[:16]}… differs from the upstream file's {expected[:16]}…; "
                "results on altered data would not be comparable"
            )
    USED_FILES[rel] = expected or _sha256(str(path), path.stat().st_mtime_ns, path.stat().st_size)
    return path


@cache
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    """Hash once per (path, mtime, size): the suite resolves the same files for every subtask."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _cache_dir() -> Path:
    return _io.cache_root() / "data"


def _fetch_public(rel: str) -> Path:
    """Download ``rel`` from its pinned public source into the cache (atomically), once."""
    dest = _cache_dir() / rel
    if dest.is_file():
        return dest
    benchmark, _, name = rel.partition("/")
    source = manifest()["sources"].get(benchmark)
    if source is None or rel not in manifest()["files"]:
        raise DataFileError(
            f"unknown benchmark file {rel}; set {DATA_ENV} to the folder holding {LAYOUT_HINT}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if "archive" in source:
            _fetch_archive(benchmark, source["archive"])
        else:
            # a benchmark whose files sit in several upstream folders maps each name to its path (bbq)
            _download(source["url"].format(name=source.get("paths", {}).get(name, name)), dest)
    except OSError as exc:
        raise DataFileError(
            f"{rel}: {DATA_ENV} is not set and the public copy could not be fetched ({exc}); "
            f"set {DATA_ENV} to the folder holding {LAYOUT_HINT}"
        ) from None
    return dest


def _download(url: str, dest: Path, sha256: str | None = None) -> None:
    digest = hashlib.sha256()
    with _io.atomic_file(dest, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
        while block := resp.read(1 << 20):
            digest.update(block)
            out.write(block)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DataFileError(f"{url}: downloaded file does not have the expected sha256")


def _fetch_archive(benchmark: str, archive: dict) -> None:
    """Unpack every manifest file of ``benchmark`` from its zip; each lands by atomic rename."""
    root = _cache_dir()
    zip_path = root / f"{benchmark}.zip"
    if not zip_path.is_file():
        _download(archive["url"], zip_path, archive["sha256"])
    with zipfile.ZipFile(zip_path) as zf:
        for rel in (r for r in manifest()["files"] if r.startswith(benchmark + "/")):
            dest = root / rel
            if dest.is_file():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            member = archive["prefix"] + rel.split("/", 1)[1]
            with _io.atomic_file(dest, "wb") as out, zf.open(member) as src:
                shutil.copyfileobj(src, out)


def used_files() -> dict[str, str]:
    """sha256 of every benchmark file read so far, for provenance in result files."""
    return dict(sorted(USED_FILES.items()))
