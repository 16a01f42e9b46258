"""Write-then-rename for folders, so no reader ever sees a half-written model, checkpoint or result."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temp folder beside ``final``; on success it replaces ``final`` in one rename, else vanishes.

    The temp folder is on the same filesystem, so the rename is atomic: readers see either the old
    folder, no folder, or the complete new one. Ctrl-C or a crash mid-write leaves only a hidden temp
    name, which is removed on the way out.
    """
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
