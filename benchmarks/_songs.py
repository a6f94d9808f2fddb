"""Test material for benchmarks: a real song from the data folder, cut to length."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

DATA_DIR = Path(os.environ.get("AUTOMIX_DATA", Path.home() / ".cache" / "automix-data"))


def real_songs(min_seconds: float, count: int, skip: int = 0) -> list[Path]:
    """Mixes in the data folder at least ``min_seconds`` long (sorted by name)."""
    out = []
    for path in sorted((DATA_DIR / "mixes").glob("*.flac")):
        if sf.info(path).duration >= min_seconds:
            out.append(path)
    return out[skip:skip + count]


def cut(path: Path, seconds: float, dest: Path) -> Path:
    """Write the first ``seconds`` of ``path`` to ``dest`` as 16-bit WAV."""
    x, sr = sf.read(path, frames=int(seconds * sf.info(path).samplerate), always_2d=True)
    sf.write(dest, x, sr, subtype="PCM_16")
    return dest


def synthetic_song(seconds: float, dest: Path, sample_rate: int = 44100, seed: int = 0) -> Path:
    """Fallback when no data folder exists: noise and tones with a music-like spectrum (the
    noise drawn from ``seed``)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    x = np.cumsum(rng.standard_normal((2, n)), axis=1)
    x -= np.convolve(x[0], np.ones(64) / 64, "same")[None]
    x = 0.02 * x / np.abs(x).max() + 0.2 * np.sin(2 * np.pi * 110 * t)[None]
    sf.write(dest, (0.5 * x / np.abs(x).max()).T, sample_rate, subtype="PCM_16")
    return dest
