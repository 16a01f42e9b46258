"""The project's only write-then-rename, and where its caches live.

It sits at the bottom of the import graph (in the task package, which imports nothing of ``debias``)
because the tasks write files too: benchmark data fetched into the cache. ``debias.atomic`` re-exports
it for the rest of the project.

Every file write goes to a temp file in the destination folder, is flushed and fsync'd, then renamed
over the destination: a reader (or a process started after a crash, Ctrl-C or ``kill -9``) sees the old
file or the complete new one, never a prefix of it. A failed write removes its temp file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

CACHE_ENV = "DEBIAS_CACHE"


def cache_root() -> Path:
    """Where converted checkpoints, cached base results and fetched data live (``DEBIAS_CACHE``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("debias-harness"))


@contextmanager
def atomic_file(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Yield a handle on a temp file beside ``path``; on success it is fsync'd and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        binary = "b" in mode
        try:
            with os.fdopen(fd, mode, encoding=None if binary else encoding) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # a full disk surfaces here (write, flush or fsync): say which file
            raise _naming(exc, path) from exc
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _naming(exc: OSError, path: Path) -> OSError:
    """The same error, naming the file the user asked for rather than its hidden temp file (or none)."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as fh:
        fh.write(text)


def write_json_atomic(path: Path, payload: Any, compact: bool = False) -> None:
    """``compact`` drops the indentation: per-sample logs are read by programs, and indenting a 70 MB
    log adds a third to its size."""
    with atomic_file(path) as fh:
        json.dump(payload, fh, indent=None if compact else 2, default=str)
        fh.write("\n")


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temp folder beside ``final``; on success it replaces ``final`` in one rename, else vanishes.

    The temp folder is on the same filesystem, so the rename is atomic: readers see either the old
    folder, no folder, or the complete new one. Ctrl-C or a crash mid-write leaves only a hidden temp
    name, which is removed on the way out.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
