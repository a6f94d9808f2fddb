"""Process memory settings (automix.memory): measured in fresh processes, where they apply."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from automix import memory

# Allocate 64 MB after (or without) a 128 MB prefault and count the page faults it costs.
_FAULTS = """
import resource, sys
from automix import memory
memory.keep_freed_memory()
thread = memory.prefault(int(sys.argv[1]))
if thread is not None:
    thread.join()
import numpy as np
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = np.ones(16 << 20, dtype=np.float32)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults_of_64mb(prefault_bytes: int) -> int:
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}  # as the commands run
    out = subprocess.run([sys.executable, "-c", _FAULTS, str(prefault_bytes)], check=True,
                         capture_output=True, text=True, env=env)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_a_prefaulted_heap_serves_the_next_arrays_without_page_faults() -> None:
    pages = (64 << 20) // 4096
    assert _faults_of_64mb(0) > pages // 2  # a fresh array faults in every page it touches
    assert _faults_of_64mb(128 << 20) < pages // 20


def test_prefault_is_sized_by_the_file_and_skips_large_or_missing_ones(tmp_path: Path) -> None:
    small = tmp_path / "small.wav"
    small.write_bytes(b"\0" * 1000)
    assert memory.prefault_bytes(small) == memory.PREFAULT_PER_FILE_BYTE * 1000
    big = tmp_path / "big.wav"
    with big.open("wb") as f:
        f.truncate(memory.PREFAULT_MAX_FILE_BYTES // 2)
    assert memory.prefault_bytes(big) == memory.PREFAULT_MAX_BYTES
    with big.open("wb") as f:
        f.truncate(memory.PREFAULT_MAX_FILE_BYTES + 1)
    assert memory.prefault_bytes(big) == 0
    assert memory.prefault_bytes(tmp_path / "missing.wav") == 0
