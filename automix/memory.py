"""Process-wide memory settings for work on long arrays (a master allocates and frees arrays
of tens of MB).

On the machines automix is measured on, first touches of fresh pages dominate kernel time:
numpy's huge-page advice makes each page fault wait for memory compaction (640 MB of fresh
arrays: 1.15 s with it, 0.20 s without, where transparent huge pages are "madvise"), and
glibc hands every freed block over 128 kB back to the kernel, so the next array of that
size faults again (a 3-min stereo Welch pass: 0.33 s instead of 0.15 s).
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import os

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt's parameter numbers (glibc's malloc.h)


def skip_huge_page_advice() -> None:
    """Turn numpy's huge-page advice off for numpy imported after this, here and in the
    processes this one starts, unless the user set NUMPY_MADVISE_HUGEPAGE."""
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")


def keep_freed_memory() -> None:
    """Have glibc serve every allocation from its heap and keep freed memory for reuse, not
    give it back to the kernel: for processes that run jobs, not for long-lived servers.
    Does nothing off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)


def skip_exit_collection() -> None:
    """Have the interpreter's last garbage collections, at exit, skip every object alive
    then (`gc.freeze` from an atexit handler, which runs before them): they would visit the
    whole heap of a finished command (0.05-0.1 s of a master) for memory the OS is about to
    take back. Objects are still freed by reference counting; only cycles are left as is.
    Registered once however often it is called (tests run many commands in one process)."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
