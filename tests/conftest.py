"""Shared fixtures: seeded synthetic signals and the real-music folder (when built)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("AUTOMIX_DATA", Path.home() / ".cache" / "automix-data"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def pink_noise(rng: np.random.Generator, channels: int, samples: int) -> np.ndarray:
    """Pink-ish noise (-3 dB/octave) of shape (channels, samples), float32, RMS about 0.1."""
    spectrum = rng.standard_normal((channels, samples // 2 + 1)) + 1j * rng.standard_normal(
        (channels, samples // 2 + 1))
    f = np.arange(samples // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / np.sqrt(f), n=samples, axis=-1)
    x /= np.sqrt(np.mean(x**2))
    return (0.1 * x).astype(np.float32)


def music_like(rng: np.random.Generator, sample_rate: int, seconds: float) -> np.ndarray:
    """A stereo test signal with music's traits: pink noise bed, decaying drum hits, a bass
    line and partly-correlated channels. Shape (2, samples), float32."""
    n = int(sample_rate * seconds)
    t = np.arange(n) / sample_rate
    bed = pink_noise(rng, 2, n)
    bed[1] = 0.7 * bed[0] + 0.3 * bed[1]
    hits = np.zeros(n)
    for start in np.arange(0, seconds, 0.5):
        i = int(start * sample_rate)
        k = np.arange(n - i)
        hits[i:] += np.exp(-k / (0.03 * sample_rate)) * rng.standard_normal(n - i) * 0.6
    bass = 0.25 * np.sin(2 * np.pi * 55 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    x = bed + hits[None] + bass[None]
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def excerpt_files() -> list[Path]:
    """Committed real-music excerpts (reference tracks and the shipped example)."""
    return sorted(ROOT.glob("reference_tracks/*/*.flac")) + sorted(ROOT.glob("examples/*.flac"))


def wav_bytes(seconds: float, seed: int = 3, sample_rate: int = 44100) -> bytes:
    """A 16-bit WAV file of `music_like` audio, as bytes (for uploads)."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, music_like(np.random.default_rng(seed), sample_rate, seconds).T, sample_rate,
             format="WAV", subtype="PCM_16")
    return buf.getvalue()
