"""Stems: loading a folder of them, and measuring them as they play.

A stems folder holds 2 to `MAX_STEMS` audio files, one per instrument. They are brought to
one sample rate (the most common one; others are resampled) and one length (shorter ones
are padded with silence); both are reported as warnings. Each file is read once, measuring its
`Profile` (hop energies) from which every excerpt is chosen; a large folder's stems stay in
their files (`StemFile`), read by span and block, so memory does not grow with the stems.
Each stem gets a role, read from its file name when a keyword says it plainly ("vocals",
"kick", "bass", ...), otherwise guessed from the audio (`role_from_audio`).

A stem that is silent or nearly so (quieter than `SILENT_STEM_LUFS` as it plays: an empty or
bleed-only track) or shorter than one loudness block (`audio.MIN_DURATION_S`) is kept and
marked ``silent`` (warning S03): the mix passes it through at unit gain and leaves it out of
the network and the balance fit. A stem clipped in its file gets W01 naming it. A folder
whose every stem is silent is refused.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from automix import analysis, loudness
from automix.analysis import CLIP_RUN_SAMPLES, CLIP_RUNS_ALLOWED, AudioWarning
from automix.audio import (
    MIN_DURATION_S,
    READ_EXTENSIONS,
    checked_peak,
    load,
    quiet_decoders,
)
from automix.errors import AudioInputError, first_line
from automix.mastering.streaming import ClipCounter
from automix.mixing.roles import role_from_audio, role_from_name, user_role

MIN_STEMS = 2
MAX_STEMS = 32
STEREO_SIDE_RATIO = 1e-3  # a stem whose side RMS / mid RMS is below this is treated as mono
LOUDNESS_EXCERPT_S = 30.0  # a stem's loudness is measured on at most this much of its active part
ROLE_EXCERPT_S = 30.0  # a stem's role is heard on at most this much of its active part (the
# whole stem's FFT took 88 of 117 s on 21 stems of 6.5 min: issue #16)
ACTIVE_RANGE_DB = 50.0  # half-second hops within this of a stem's loudest count as active
SILENT_STEM_LUFS = -60.0  # stems quieter than this as they play are silent (S03): unit gain,
# not balanced; the one rule for "silent" in mixing (`load_stems`, `balance`)

HOP_S = 0.5  # stems are measured in hops of this long (`Profile`, `active_excerpt`)
READ_BLOCK = 1 << 17  # frames read at a time from a stem's file (the render's block too)
THREADS = min(4, os.cpu_count() or 1)  # stems read, measured or rendered at once
# (libsndfile, numpy and pedalboard release the GIL)
STEMS_IN_MEMORY_MIB = 512  # a folder whose stems decode to at most this much is held in
# memory (read once: 8 stereo stems of 3 min are 484 MiB); a larger one is read from its
# files (`StemFile`) as the mix goes, so memory does not grow with the stems


@dataclass(frozen=True)
class Profile:
    """What one pass over a stem measures, enough to pick every excerpt without the samples.

    Attributes
    ----------
    hop : int, samples per hop (``sample_rate // 2``)
    raw : np.ndarray, (hops,) float64: every channel's summed energy in each hop, the last
        hop partial when the stem's length is not a multiple of ``hop``
    mid : np.ndarray, (hops,) float64: the mid signal's (channel mean's) energy in each hop
    stereo : bool, the two channels differ (`Stem.is_stereo`)
    """

    hop: int
    raw: np.ndarray
    mid: np.ndarray
    stereo: bool

    def fitted(self, frames: int) -> Profile:
        """The profile of the signal cut or padded with silence to ``frames``."""
        n = -(-frames // self.hop)
        return replace(self, raw=_fit(self.raw, n), mid=_fit(self.mid, n))

    def played(self, stereo: bool) -> np.ndarray:
        """Energy per hop as the stem plays (`as_played`): stereo as it is, mono its mid."""
        return self.raw if stereo else self.mid


def _sounds_stereo(mid_energy: float, side_energy: float, frames: int) -> bool:
    """The one rule for a stereo stem: side RMS over `STEREO_SIDE_RATIO` of mid RMS, from the
    two signals' summed squares over ``frames`` samples."""
    return math.sqrt(max(side_energy, 0.0) / frames) > STEREO_SIDE_RATIO * max(
        math.sqrt(max(mid_energy, 0.0) / frames), 1e-12)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if x.size >= n else np.pad(x, (0, n - x.size))


class Profiler:
    """`Profile`, block by block: `push` consecutive ``(channels, samples)`` blocks (each a
    multiple of ``hop`` long but the last), then `finish`."""

    def __init__(self, hop: int) -> None:
        self.hop = hop
        self._raw: list[np.ndarray] = []
        self._mid: list[np.ndarray] = []
        self._sums = np.zeros(2)  # the whole signal's mid and side energy
        self._frames = 0

    def push(self, x: np.ndarray) -> None:
        """Add the next block ``x`` (channels, samples): per hop, every channel's energy and,
        for a pair, the channels' product (mid and side energies follow from the two)."""
        complete = x.shape[1] // self.hop * self.hop
        for part in (x[:, :complete].reshape(x.shape[0], -1, self.hop),
                     x[:, complete:, None]):  # the partial last hop, if any
            if part.shape[1] * part.shape[2] == 0:
                continue
            if part.shape[2] != self.hop:
                part = part.reshape(x.shape[0], 1, -1)
            raw = np.einsum("cij,cij->i", part, part, dtype=np.float64)
            if x.shape[0] > 1:
                cross = np.einsum("ij,ij->i", part[0], part[1], dtype=np.float64)
                mid = 0.25 * (raw + 2.0 * cross)  # ((L + R) / 2)^2
                self._sums += (mid.sum(), 0.25 * float(np.sum(raw - 2.0 * cross)))
            else:
                mid = raw
            self._raw.append(raw)
            self._mid.append(mid)
        self._frames += x.shape[1]

    def finish(self) -> Profile:
        stereo = _sounds_stereo(*self._sums, max(self._frames, 1))
        empty = np.zeros(0)
        return Profile(self.hop, np.concatenate(self._raw) if self._raw else empty,
                       np.concatenate(self._mid) if self._mid else empty, stereo)


class StemFile:
    """A stem's samples in its file, read on demand: ``(channels, frames)`` float32 like an
    array (``shape``, ``[:, start:end]``, ``np.asarray``), padded with silence past the file's
    end up to ``frames``. `load_stems` gives these, so that a folder of long stems is never
    held in memory: the mix reads excerpts for analysis and blocks for the render."""

    def __init__(self, path: Path, channels: int, frames: int) -> None:
        self.path, self.channels, self.frames = path, channels, frames
        self.dtype = np.dtype(np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        return self.channels, self.frames

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        start, stop, step = cols.indices(self.frames)
        if step != 1:
            raise IndexError("a stem file reads contiguous spans only")
        return self.read(start, stop)[rows]

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        x = self.read(0, self.frames)
        return x if dtype is None else x.astype(dtype)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` (zeros past the file's end), ``(channels, n)`` float32."""
        out = np.zeros((self.channels, max(stop - start, 0)), np.float32)
        with quiet_decoders(), sf.SoundFile(str(self.path)) as f:
            if start < f.frames and stop > start:
                f.seek(start)
                got = f.read(min(stop, f.frames) - start, dtype="float32", always_2d=True)
                out[:, : got.shape[0]] = got.T
        return out

    def blocks(self, block: int) -> Iterator[np.ndarray]:
        """The whole stem as consecutive blocks of ``block`` frames (the last one shorter),
        read from one open file."""
        with quiet_decoders(), sf.SoundFile(str(self.path)) as f:
            for start in range(0, self.frames, block):
                n = min(block, self.frames - start)
                out = np.zeros((self.channels, n), np.float32)
                got = f.read(n, dtype="float32", always_2d=True)
                out[:, : got.shape[0]] = got.T
                yield out


@dataclass(frozen=True)
class Stem:
    """One stem of a mix.

    Attributes
    ----------
    name : str, the file name (the key of its settings)
    samples : np.ndarray or StemFile, shape (channels, samples), float32, channels 1 or 2
        (`load_stems` gives a `StemFile`: read on demand; use `read` and `blocks`)
    role : str, one of `ROLES`
    role_source : str, "name", "audio" or "user" (``--role``, `with_roles`)
    silent : bool, quieter than `SILENT_STEM_LUFS` or shorter than a loudness block: passed
        through at unit gain, left out of the network and the balance fit
    """

    name: str
    samples: np.ndarray | StemFile
    role: str
    role_source: str
    silent: bool = False

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def frames(self) -> int:
        return int(self.samples.shape[1])

    def read(self, start: int = 0, end: int | None = None) -> np.ndarray:
        """Samples ``start:end``, ``(channels, n)`` float32 (from the file for a `StemFile`)."""
        return np.asarray(self.samples[:, start:end])

    def blocks(self, block: int) -> Iterator[np.ndarray]:
        """The whole stem as consecutive ``(channels, n)`` blocks of ``block`` frames."""
        if isinstance(self.samples, StemFile):
            yield from self.samples.blocks(block)
            return
        for start in range(0, self.frames, block):
            yield self.samples[:, start : start + block]

    def profile(self, sample_rate: int) -> Profile:
        """The stem's `Profile` in half-second hops at ``sample_rate``; measured once."""
        cache = self.__dict__.setdefault("_profiles", {})
        if sample_rate not in cache:
            profiler = Profiler(int(sample_rate * HOP_S))
            for x in self.blocks(profiler.hop * (READ_BLOCK // profiler.hop or 1)):
                profiler.push(x)
            cache[sample_rate] = profiler.finish()
        return cache[sample_rate]

    @cached_property
    def is_stereo(self) -> bool:
        """True when the two channels differ (a panned or stereo source); measured once."""
        cache = self.__dict__.get("_profiles")
        if cache:
            return next(iter(cache.values())).stereo
        if self.channels < 2:
            return False
        x = self.read()
        mid = 0.5 * (x[0] + x[1])
        side = 0.5 * (x[0] - x[1])
        return _sounds_stereo(float(np.sum(mid**2, dtype=np.float64)),
                              float(np.sum(side**2, dtype=np.float64)), x.shape[1])


def audio_files(folder: Path) -> list[Path]:
    """The audio files directly inside ``folder`` (by extension, not hidden), sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in READ_EXTENSIONS)


@dataclass
class _Scan:
    """One file as `load_stems` first reads it: its samples (a `StemFile`, or an array when
    it had to be resampled), its length and channels, clipped runs, and whether it is all
    zeros."""

    samples: np.ndarray | StemFile
    frames: int
    channels: int
    duration_s: float
    clips: int
    zeros: bool
    resampled_from: int | None = None
    profile: Profile | None = None  # measured while reading, at the mix's rate

    def stem(self, name: str, length: int, sample_rate: int, *, zeros: bool = False) -> Stem:
        """A stem of ``length`` frames from this scan (its `Profile` kept when measured)."""
        stem = Stem(name, _padded(self.samples, length, zeros=zeros), "other", "audio")
        if self.profile is not None:
            stem.__dict__["_profiles"] = {sample_rate: self.profile.fitted(length)}
        return stem


def _scan(path: Path, sample_rate: int, *, keep: bool) -> _Scan:
    """Read ``path`` once in blocks (checking it as `audio.load` does), measuring its
    `Profile`: at ``sample_rate`` its samples are kept (an array) when ``keep``, else it stays
    in its file (`StemFile`); at another rate it is loaded and resampled."""
    with quiet_decoders():
        rate = _file_rate(path)
    if rate != sample_rate:
        a = load(path, min_duration_s=0.0, allow_silence=True)
        clips = analysis.count_clips(a.samples)
        zeros = not np.any(a.samples)
        x = a.samples
        if not zeros:
            ratio = Fraction(sample_rate, a.sample_rate)
            x = resample_poly(x, ratio.numerator, ratio.denominator, axis=1).astype(np.float32)
        return _Scan(x, x.shape[1], a.channels, a.duration_s, clips, zeros, a.sample_rate)
    frames, peak = 0, 0.0
    profiler = Profiler(int(sample_rate * HOP_S))
    samples = np.empty((0, 0), np.float32)  # when ``keep``: filled block by block
    try:
        with quiet_decoders(), sf.SoundFile(str(path)) as f:
            channels = f.channels
            clips = ClipCounter(channels)
            block = profiler.hop * max(1, READ_BLOCK // profiler.hop)
            if keep:
                samples = np.empty((channels, max(f.frames, block)), np.float32)
            while len(got := f.read(block, dtype="float32", always_2d=True)):
                if keep:
                    if frames + len(got) > samples.shape[1]:  # the header said less
                        samples = np.concatenate([samples, np.empty_like(samples)], axis=1)
                    x = samples[:, frames : frames + len(got)]
                    x[:] = got.T
                else:
                    x = np.ascontiguousarray(got.T)
                block_peak = checked_peak(path, x)
                clips.push(x, block_peak)
                profiler.push(x)
                peak = max(peak, block_peak)
                frames += x.shape[1]
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError, EOFError) as exc:
        raise AudioInputError(f"{path}: not a readable audio file ({first_line(exc)})") from None
    if frames == 0:
        raise AudioInputError(f"{path}: has no samples")
    samples = samples[:, :frames] if keep else StemFile(path, channels, frames)
    return _Scan(samples, frames, channels, frames / rate, clips.finish(), peak == 0.0,
                 profile=profiler.finish())


def _decoded_bytes(files: list[Path]) -> int:
    """The float32 bytes of every file's samples, from their headers."""
    total = 0
    for f in files:
        with contextlib.suppress(sf.LibsndfileError, RuntimeError, ValueError, TypeError,
                                 OSError, EOFError), quiet_decoders():
            info = sf.info(str(f))
            total += 4 * int(info.frames) * int(info.channels)
    return total


def _file_rate(path: Path) -> int:
    """The sample rate in ``path``'s header; `AudioInputError` as `audio.load` words it."""
    if path.stat().st_size == 0:
        raise AudioInputError(f"{path}: file is empty")
    try:
        return int(sf.info(str(path)).samplerate)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError, EOFError) as exc:
        reason = first_line(exc)
        reason = "format not recognised" if "does not exist" in reason else reason
        raise AudioInputError(f"{path}: not a readable audio file ({reason})") from None


def load_stems(folder: str | Path) -> tuple[list[Stem], int, list[AudioWarning]]:
    """Find every stem in ``folder`` at one sample rate and one length, reading each once.

    Each file is read once, in blocks, measuring its `Profile` on the way. A folder whose
    stems decode to more than `STEMS_IN_MEMORY_MIB` stays in its files (`StemFile`: the mix
    reads excerpts and blocks of them), so memory does not grow with the stems' length or
    count; a smaller one is kept in memory (not read again). A stem that must be resampled is
    held in memory, resampled.

    Returns
    -------
    stems : list of Stem, sorted by file name
    sample_rate : int, Hz: the most common rate among the files (the highest on a tie)
    warnings : list of AudioWarning (S01 resampled, S02 padded, S03 silent, W01 a clipped
        stem)

    The length is the longest stem's, not counting stems of digital silence (cut or padded
    to it without a warning: nothing of them is lost).

    Raises
    ------
    AudioInputError
        When ``folder`` is not a folder, or holds fewer than 2 or more than 32 audio files,
        or a file cannot be read, or every stem is silent.
    """
    root = Path(folder)
    if not root.is_dir():
        raise AudioInputError(f"{root}: not a folder of stems")
    files = audio_files(root)
    if not files:
        raise AudioInputError(f"{root}: no audio files (expected {MIN_STEMS} to {MAX_STEMS} "
                              f"stems: {', '.join(READ_EXTENSIONS)})")
    if not MIN_STEMS <= len(files) <= MAX_STEMS:
        raise AudioInputError(f"{root}: {len(files)} stem(s); a mix needs {MIN_STEMS} to "
                              f"{MAX_STEMS}")
    rates = Counter(_file_rate(f) for f in files)
    sample_rate = max(rates, key=lambda r: (rates[r], r))
    keep = _decoded_bytes(files) <= STEMS_IN_MEMORY_MIB * 2**20
    with ThreadPoolExecutor(max_workers=THREADS) as pool:  # decoders release the GIL
        scans = list(pool.map(lambda f: _scan(f, sample_rate, keep=keep), files))
    for f, scan in zip(files, scans, strict=True):
        if scan.channels > 2:
            raise AudioInputError(f"{f}: {scan.channels} channels; stems are mono or stereo")
    warnings: list[AudioWarning] = []
    for f, scan in zip(files, scans, strict=True):
        if scan.clips > CLIP_RUNS_ALLOWED:
            warnings.append(AudioWarning("W01-clipping", f"{f.name}: {scan.clips} runs of "
                                         f"{CLIP_RUN_SAMPLES} or more samples sit at full "
                                         "scale: the stem is clipped"))
        if scan.resampled_from is not None and not scan.zeros:
            warnings.append(AudioWarning("S01-resampled", f"{f.name}: resampled from "
                                         f"{scan.resampled_from} Hz to {sample_rate} Hz"))
    all_silent = AudioInputError(f"{root}: every stem is silent (quieter than "
                                 f"{SILENT_STEM_LUFS:.0f} LUFS) or shorter than "
                                 f"{MIN_DURATION_S * 1000:.0f} ms; nothing to mix")
    lengths = [s.frames for s in scans if not s.zeros]
    if not lengths:
        raise all_silent
    length = max(lengths)
    for f, scan in zip(files, scans, strict=True):
        if not scan.zeros and scan.frames < length:
            short_s = (length - scan.frames) / sample_rate
            warnings.append(AudioWarning("S02-padded", f"{f.name}: {short_s:.2f} s shorter than "
                                         "the longest stem; padded with silence"))
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        stems = list(pool.map(lambda fs: _stem_of(fs[0].name, fs[1], length, sample_rate),
                              zip(files, scans, strict=True)))
    for stem, scan in zip(stems, scans, strict=True):
        if stem.silent:
            why = (f"shorter than a {MIN_DURATION_S * 1000:.0f} ms loudness block"
                   if scan.duration_s < MIN_DURATION_S
                   else f"silent (quieter than {SILENT_STEM_LUFS:.0f} LUFS)")
            warnings.append(AudioWarning("S03-silent", f"{stem.name}: {why}; passed through "
                                         "at unit gain, left out of the balance"))
    if all(s.silent for s in stems):
        raise all_silent
    return stems, sample_rate, warnings


def _stem_of(name: str, scan: _Scan, length: int, sample_rate: int) -> Stem:
    """The stem of a scanned file at ``length`` frames: its role from its name, else (unless
    it is silent) from its audio; silent when quieter than `SILENT_STEM_LUFS` or too short."""
    role = role_from_name(name)
    if scan.zeros:
        return replace_keeping_profile(scan.stem(name, length, sample_rate, zeros=True),
                                       role=role or "other",
                                       role_source="name" if role else "audio", silent=True)
    stem = scan.stem(name, length, sample_rate)
    quiet = scan.duration_s < MIN_DURATION_S or length < MIN_DURATION_S * sample_rate or (
        stem_loudness_lufs(stem, sample_rate) < SILENT_STEM_LUFS)
    guessed = "other" if role or quiet else role_from_audio(
        stem_excerpt(stem, sample_rate, ROLE_EXCERPT_S), sample_rate)
    return replace_keeping_profile(stem, role=role or guessed,
                                   role_source="name" if role else "audio", silent=quiet)


def _padded(samples: np.ndarray | StemFile, length: int, *, zeros: bool = False
            ) -> np.ndarray | StemFile:
    """``samples`` cut or padded with silence to ``length`` frames (a file: read so)."""
    if isinstance(samples, StemFile):
        return StemFile(samples.path, samples.channels, length)
    if zeros:  # a read-only view of one zero per channel: no memory
        return np.broadcast_to(np.zeros((samples.shape[0], 1), np.float32),
                               (samples.shape[0], length))
    x = samples[:, :length]
    if x.shape[1] < length:
        x = np.pad(x, ((0, 0), (0, length - x.shape[1])))
    return np.ascontiguousarray(x, dtype=np.float32)


def replace_keeping_profile(stem: Stem, **changes: object) -> Stem:
    """`dataclasses.replace` of ``stem`` that keeps what it has measured (its `Profile`s,
    loudness, stereo-ness): the samples are the same."""
    new = replace(stem, **changes)
    for key in ("_profiles", "_loudness", "is_stereo"):
        if key in stem.__dict__:
            new.__dict__[key] = stem.__dict__[key]
    return new


def sounding(stems: list[Stem]) -> list[Stem]:
    """The stems that take part in the balance: those not `Stem.silent`."""
    return [s for s in stems if not s.silent]


def stem_loudness_lufs(stem: Stem, sample_rate: int) -> float:
    """Integrated loudness of a stem as it will sound panned to the centre of a stereo mix,
    measured on at most `LOUDNESS_EXCERPT_S` of its active part (`stem_excerpt`); measured
    once per stem."""
    cache = stem.__dict__.setdefault("_loudness", {})
    if sample_rate not in cache:
        cache[sample_rate] = loudness.integrated_lufs(
            stem_excerpt(stem, sample_rate, LOUDNESS_EXCERPT_S, played=True), sample_rate)
    return cache[sample_rate]


def active_hops(energy: np.ndarray, hop: int, frames: int, sample_rate: int,
                seconds: float) -> np.ndarray | None:
    """Which complete hops of a signal of ``frames`` samples (``energy`` per hop, the last one
    possibly partial) `active_excerpt` keeps; None for the whole signal.

    Hops within `ACTIVE_RANGE_DB` of the loudest are active, and when they last longer than
    ``seconds`` an evenly spaced subset of them is kept (the whole signal when it is no longer
    than ``seconds`` or has no complete hop).
    """
    n_hops = frames // hop
    if frames <= seconds * sample_rate or n_hops == 0:
        return None
    energy = energy[:n_hops]
    active = np.flatnonzero(energy >= energy.max() * 10 ** (-ACTIVE_RANGE_DB / 10))
    keep = max(1, int(seconds * sample_rate) // hop)
    if active.size > keep:
        active = active[np.linspace(0, active.size - 1, keep).round().astype(int)]
    return active


def active_excerpt(samples: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """At most ``seconds`` of where ``samples`` (channels, samples) plays, for measuring it:
    the hops `active_hops` keeps, joined in order. Gated loudness ignores the silent parts
    anyway, so this estimates it from a fraction of the samples."""
    profiler = Profiler(int(sample_rate * HOP_S))
    profiler.push(samples)
    kept = active_hops(profiler.finish().raw, profiler.hop, samples.shape[1], sample_rate,
                       seconds)
    return samples if kept is None else _hops(samples, kept, profiler.hop)


def stem_excerpt(stem: Stem, sample_rate: int, seconds: float, *,
                 played: bool = False) -> np.ndarray:
    """`active_excerpt` of a stem (``played``: of `as_played`), chosen from its `Profile` and
    read hop by hop: never the whole stem when it is longer than ``seconds``."""
    profile = stem.profile(sample_rate)
    energy = profile.played(stem.is_stereo) if played else profile.raw
    kept = active_hops(energy, profile.hop, stem.frames, sample_rate, seconds)
    if kept is None:
        x = stem.read()
    elif isinstance(stem.samples, StemFile):
        runs = np.split(kept, np.flatnonzero(np.diff(kept) != 1) + 1)
        x = np.concatenate([stem.read(r[0] * profile.hop, (r[-1] + 1) * profile.hop)
                            for r in runs], axis=1)
    else:
        x = _hops(stem.samples, kept, profile.hop)
    return played_samples(x, stem.is_stereo) if played else x


def _hops(samples: np.ndarray, kept: np.ndarray, hop: int) -> np.ndarray:
    n_hops = samples.shape[1] // hop
    framed = samples[:, : n_hops * hop].reshape(samples.shape[0], n_hops, hop)
    return framed[:, kept].reshape(samples.shape[0], -1)


def as_played(stem: Stem, start: int = 0, end: int | None = None) -> np.ndarray:
    """The stem (samples ``start:end``) as its pan law plays it at the centre: stereo kept,
    mono at -3 dB per side."""
    return played_samples(stem.read(start, end), stem.is_stereo)


def played_samples(x: np.ndarray, stereo: bool) -> np.ndarray:
    """``x`` (channels, samples) as `as_played` plays it."""
    if stereo:
        return x
    mono = x.mean(axis=0)
    return np.stack([mono, mono]) * np.float32(math.sqrt(0.5))


def loudest_excerpt(stems: list[Stem], sample_rate: int, seconds: float) -> tuple[int, int]:
    """Start and end sample of the loudest ``seconds`` of the stems' sum, taking the stems
    as uncorrelated (their half-second energies add), from their `Profile`s, without forming
    the sum."""
    total = stems[0].frames
    energy = np.zeros(total // int(sample_rate * HOP_S))
    hop = int(sample_rate * HOP_S)
    for stem in stems:
        energy += stem.profile(sample_rate).raw[: energy.size] * (
            1.0 if stem.is_stereo else 1.0 / stem.channels)
    return analysis.loudest_span(energy, hop, total, int(seconds * sample_rate))


def with_roles(stems: list[Stem], roles: dict[str, str]) -> list[Stem]:
    """``stems`` with the roles the user gave (``--role NAME=ROLE``, a settings file's
    ``roles``: `roles.user_role`), their source "user"; names that match no stem are left."""
    out = []
    for stem in stems:
        role = user_role(stem.name, roles)
        out.append(stem if role is None else replace_keeping_profile(stem, role=role,
                                                                     role_source="user"))
    return out
