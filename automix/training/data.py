"""Training data: the song splits and segment caching.

A song is held out for evaluation when the hash of its name says so (`song_percentile`: the
master network's `is_eval_song`, the stem network's `is_held_out` and `is_validation`), so
the trainers and the benchmarks agree without sharing a list. Training reads a cache of
short segments, decoded once from ``DIR/mixes/*.flac`` (and ``DIR/multitracks/<song>/master.flac``
or ``mix_sum.flac`` where present): several loud-enough segments per song, float16, so that
two different times of one production can be paired on every step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

EVAL_PERCENT = 10  # share of songs held out from training, by hash of the song name
HELD_OUT_PERCENT = 20  # the stem model: benchmarks/mixing.py scores the songs below this
VALIDATION_PERCENT = 15  # the stem model: the next songs by hash choose the kept weights


def song_name(path: str | Path) -> str:
    """The song a file belongs to: the file stem, or the folder name inside ``multitracks``."""
    p = Path(path)
    return p.parent.name if p.parent.parent.name == "multitracks" else p.stem


def song_percentile(name: str) -> int:
    """Where a song falls in 0..99 by the sha1 of its name: stable across runs and machines,
    the one rule every train/held-out split here uses."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:4], "big") % 100


def is_eval_song(name: str) -> bool:
    """True for the held-out songs (about `EVAL_PERCENT` %)."""
    return song_percentile(name) < EVAL_PERCENT


def is_held_out(name: str) -> bool:
    """True for the songs benchmarks/mixing.py scores: the stem model never trains on them."""
    return song_percentile(name) < HELD_OUT_PERCENT


def is_validation(name: str) -> bool:
    """True for the songs whose loss chooses the stem model's kept weights (not fitted, not
    held out)."""
    return 0 <= song_percentile(name) - HELD_OUT_PERCENT < VALIDATION_PERCENT


def split_of(name: str) -> str:
    """"held_out", "validation" or "train": a multitrack song's split by the rules above."""
    if is_held_out(name):
        return "held_out"
    return "validation" if is_validation(name) else "train"


def production_files(data_dir: str | Path) -> list[Path]:
    """One file per production: every mix, and each multitrack's master (or mix sum)."""
    root = Path(data_dir)
    files = sorted((root / "mixes").glob("*.flac"))
    for song in sorted((root / "multitracks").glob("*")):
        if not (song / "meta.json").exists():  # still being built
            continue
        for name in ("master.flac", "mix_sum.flac"):
            if (song / name).exists():
                files.append(song / name)
                break
    return files


def split_files(data_dir: str | Path, *, eval_split: bool) -> list[Path]:
    """The production files of the training split (``eval_split=False``) or the eval split."""
    return [f for f in production_files(data_dir) if is_eval_song(song_name(f)) == eval_split]


def read_segments(path: str | Path, *, segment_s: float, count: int, sample_rate: int,
                  min_rel_db: float = -12.0) -> np.ndarray:
    """Read ``count`` stereo segments spread over a file, skipping quiet passages.

    Candidates are taken at evenly spaced times over the middle 90 % of the file; those whose
    RMS is more than ``min_rel_db`` below the loudest candidate are dropped, and the rest are
    thinned to ``count``. Mono files are duplicated to two channels. The file must be at
    ``sample_rate`` (the cache does not resample).

    Returns
    -------
    np.ndarray, shape (n, 2, segment_samples), float32, n <= count (0 for a silent file)
    """
    with sf.SoundFile(str(path)) as f:
        if f.samplerate != sample_rate:
            raise ValueError(f"{path}: {f.samplerate} Hz, expected {sample_rate} Hz")
        n = round(segment_s * sample_rate)
        total = f.frames
        if total < n:
            return np.zeros((0, 2, n), np.float32)
        starts = np.linspace(0.05 * total, max(0.95 * total - n, 0.05 * total), 3 * count)
        segs = []
        for s in starts.astype(int):
            f.seek(int(min(s, total - n)))
            x = f.read(n, dtype="float32", always_2d=True).T
            segs.append(np.repeat(x, 2, axis=0)[:2] if x.shape[0] == 1 else x[:2])
    segs_arr = np.stack(segs)
    rms_db = 10 * np.log10(np.mean(segs_arr**2, axis=(1, 2)) + 1e-12)
    keep = np.flatnonzero(rms_db > rms_db.max() + min_rel_db)
    if rms_db.max() < -70:
        return np.zeros((0, 2, n), np.float32)
    pick = keep[np.linspace(0, len(keep) - 1, min(count, len(keep))).round().astype(int)]
    return segs_arr[np.unique(pick)]


@dataclass
class SegmentCache:
    """Segments of many songs: ``audio[i]`` belongs to song ``song_index[i]``.

    Attributes
    ----------
    audio : np.ndarray, shape (n, 2, segment_samples), float16
    song_index : np.ndarray, shape (n,), int
    songs : list of str
    sample_rate : int, Hz
    """

    audio: np.ndarray
    song_index: np.ndarray
    songs: list[str]
    sample_rate: int

    def save(self, path: str | Path) -> None:
        np.savez(path, audio=self.audio, song_index=self.song_index,
                 songs=np.array(self.songs), sample_rate=self.sample_rate)

    @classmethod
    def load(cls, path: str | Path) -> SegmentCache:
        z = np.load(path)
        return cls(z["audio"], z["song_index"], [str(s) for s in z["songs"]],
                   int(z["sample_rate"]))


def build_cache(files: list[Path], *, segment_s: float, per_song: int,
                sample_rate: int = 44100) -> SegmentCache:
    """Decode ``per_song`` segments of every file into a `SegmentCache` (songs with < 2 dropped)."""
    audio, index, songs = [], [], []
    for f in files:
        segs = read_segments(f, segment_s=segment_s, count=per_song, sample_rate=sample_rate)
        if len(segs) >= 2:
            audio.append(segs.astype(np.float16))
            index.append(np.full(len(segs), len(songs)))
            songs.append(song_name(f))
    return SegmentCache(np.concatenate(audio), np.concatenate(index), songs, sample_rate)


def synthetic_cache(*, songs: int, per_song: int, segment_s: float, sample_rate: int,
                    seed: int) -> SegmentCache:
    """Songs of random coloured noise with decaying tone bursts, for the tiny config and tests.

    Each song has its own spectral tilt and stereo width so that examples differ the way
    productions do.
    """
    rng = np.random.default_rng(seed)
    n = round(segment_s * sample_rate)
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    audio, index = [], []
    for k in range(songs):
        tilt_db_oct = rng.uniform(-6, 0)
        shape = (np.maximum(freqs, 20.0) / 1000.0) ** (tilt_db_oct / 6.02)
        width = rng.uniform(0.1, 0.6)
        for _ in range(per_song):
            spec = rng.standard_normal((2, len(freqs))) + 1j * rng.standard_normal((2, len(freqs)))
            noise = np.fft.irfft(spec * shape, n=n)
            mid, side = noise[0], noise[1] * width
            t = np.arange(n) / sample_rate
            env = 0.3 + np.exp(-((t * rng.uniform(1, 4)) % 1.0) * 8)
            x = np.stack([mid + side, mid - side]) * env
            x = 0.1 * x / np.sqrt(np.mean(x**2))
            audio.append(x.astype(np.float16))
            index.append(k)
    return SegmentCache(np.stack(audio), np.array(index), [f"synthetic{k}" for k in range(songs)],
                        sample_rate)
