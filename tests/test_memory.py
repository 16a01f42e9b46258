"""Freed heap memory goes back to the OS between steps (debias.memory), and every training loop asks."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import subprocess
import sys

import pytest

from debias import memory

CHILD = r"""
import ctypes, ctypes.util, resource
from debias import memory

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20

size = 64 * 1024  # below glibc's mmap threshold: these come from the heap
blocks = [libc.malloc(size) for _ in range(1600)]  # 100 MB
for b in blocks:
    ctypes.memset(b, 1, size)  # touched, so resident
for b in blocks[:-1]:  # the last one pins the heap's top: plain free() cannot shrink the heap
    libc.free(b)
before = rss_mb()
memory.release_freed_memory()
print(before, rss_mb())
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not ctypes.util.find_library("c"), reason="glibc only"
)
def test_release_gives_freed_heap_back():
    """100 MB freed below a live block stays resident after free(); the release returns it."""
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    before, after = map(float, out.stdout.split())
    assert before - after > 80, (before, after)


def test_release_is_safe_to_call_repeatedly():
    memory.release_freed_memory()
    memory.release_freed_memory()
    assert resource.getpagesize() > 0
