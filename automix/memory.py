"""Process-wide memory settings for work on long arrays (a master allocates and frees arrays
of tens of MB).

On the machines automix is measured on, first touches of fresh pages dominate kernel time:
numpy's huge-page advice makes each page fault wait for memory compaction (640 MB of fresh
arrays: 1.15 s with it, 0.20 s without, where transparent huge pages are "madvise"), and
glibc hands every freed block over 128 kB back to the kernel, so the next array of that
size faults again (a 3-min stereo Welch pass: 0.33 s instead of 0.15 s). The faults that
remain (about 120,000 per 3-min master, 0.35 s of kernel time) can be taken early: a master
spends its first 0.1 s importing numpy and pedalboard on one core, and a thread on the other
core can touch the heap the arrays will come from meanwhile (`prefault`).
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import os
import threading
from pathlib import Path

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # mallopt's numbers (malloc.h)
PREFAULT_PER_FILE_BYTE = 8  # `prefault_bytes`: 4x the float32 samples of a 16-bit WAV
PREFAULT_MAX_BYTES = 256 << 20  # what a thread touches in the 0.1 s of imports, about
PREFAULT_MAX_FILE_BYTES = 64 << 20  # larger files may be long ones, mastered in blocks

_libc: ctypes.CDLL | None = None  # set once the heap is kept (`keep_freed_memory`)


def skip_huge_page_advice() -> None:
    """Turn numpy's huge-page advice off for numpy imported after this, here and in the
    processes this one starts, unless the user set NUMPY_MADVISE_HUGEPAGE."""
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")


def keep_freed_memory() -> None:
    """Have glibc serve every allocation, from every thread, from one heap and keep freed
    memory for reuse, not give it back to the kernel: for processes that run jobs, not for
    long-lived servers. Does nothing off glibc."""
    global _libc
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    # worker threads' arrays too: they reuse what `prefault` touched. (Under it some runs, in
    # stretches of minutes, spend 0.4 s more user time in memory copies; see
    # docs/performance-notes.md.)
    libc.mallopt(_M_ARENA_MAX, 1)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    _libc = libc


def prefault(n_bytes: int) -> threading.Thread | None:
    """Start a thread that takes ``n_bytes`` from the heap, writes every page and frees
    them; with `keep_freed_memory` in force the pages stay mapped and the next arrays reuse
    them without page faults. Returns the thread, or None when there is nothing to do (no
    bytes, or the heap is not kept). ctypes releases the GIL for the call."""
    libc = _libc
    if libc is None or n_bytes <= 0:
        return None

    def touch() -> None:
        block = libc.malloc(n_bytes)
        if block:
            libc.memset(block, 0, n_bytes)
            libc.free(block)

    thread = threading.Thread(target=touch, name="automix-prefault", daemon=True)
    thread.start()
    return thread


def prefault_bytes(path: str | os.PathLike) -> int:
    """How much heap to `prefault` for mastering the file at ``path``: `PREFAULT_PER_FILE_BYTE`
    times its size, at most `PREFAULT_MAX_BYTES`; nothing for a file larger than
    `PREFAULT_MAX_FILE_BYTES` (a long file streams in bounded memory) or one that is not
    there (its error comes next)."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        return 0
    if size > PREFAULT_MAX_FILE_BYTES:
        return 0
    return min(PREFAULT_PER_FILE_BYTE * size, PREFAULT_MAX_BYTES)


def skip_exit_collection() -> None:
    """Have the interpreter's last garbage collections, at exit, skip every object alive
    then (`gc.freeze` from an atexit handler, which runs before them): they would visit the
    whole heap of a finished command (0.05-0.1 s of a master) for memory the OS is about to
    take back. Objects are still freed by reference counting; only cycles are left as is.
    Registered once however often it is called (tests run many commands in one process)."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
