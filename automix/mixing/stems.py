"""Stems: loading a folder of them, and measuring them as they play.

A stems folder holds 2 to `MAX_STEMS` audio files, one per instrument. They are brought to
one sample rate (the most common one; others are resampled) and one length (shorter ones
are padded with silence); both are reported as warnings. Each stem gets a role, read from
its file name when a keyword says it plainly ("vocals", "kick", "bass", ...), otherwise
guessed from the audio (`role_from_audio`).

A stem that is silent or nearly so (quieter than `SILENT_STEM_LUFS` as it plays: an empty or
bleed-only track) or shorter than one loudness block (`audio.MIN_DURATION_S`) is kept and
marked ``silent`` (warning S03): the mix passes it through at unit gain and leaves it out of
the network and the balance fit. A stem clipped in its file gets W01 naming it. A folder
whose every stem is silent is refused.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from automix import analysis, loudness
from automix.analysis import CLIP_RUN_SAMPLES, CLIP_RUNS_ALLOWED, AudioWarning
from automix.audio import MIN_DURATION_S, READ_EXTENSIONS, load
from automix.errors import AudioInputError
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

@dataclass(frozen=True)
class Stem:
    """One stem of a mix.

    Attributes
    ----------
    name : str, the file name (the key of its settings)
    samples : np.ndarray, shape (channels, samples), float32, channels 1 or 2
    role : str, one of `ROLES`
    role_source : str, "name", "audio" or "user" (``--role``, `with_roles`)
    silent : bool, quieter than `SILENT_STEM_LUFS` or shorter than a loudness block: passed
        through at unit gain, left out of the network and the balance fit
    """

    name: str
    samples: np.ndarray
    role: str
    role_source: str
    silent: bool = False

    @cached_property
    def is_stereo(self) -> bool:
        """True when the two channels differ (a panned or stereo source); measured once."""
        if self.samples.shape[0] < 2:
            return False
        mid = 0.5 * (self.samples[0] + self.samples[1])
        side = 0.5 * (self.samples[0] - self.samples[1])
        return float(np.sqrt(np.mean(side**2))) > STEREO_SIDE_RATIO * max(
            float(np.sqrt(np.mean(mid**2))), 1e-12)


def audio_files(folder: Path) -> list[Path]:
    """The audio files directly inside ``folder`` (by extension, not hidden), sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in READ_EXTENSIONS)


def load_stems(folder: str | Path) -> tuple[list[Stem], int, list[AudioWarning]]:
    """Read every stem in ``folder`` at one sample rate and one length.

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
    loaded = [load(f, min_duration_s=0.0, allow_silence=True) for f in files]
    for f, a in zip(files, loaded, strict=True):
        if a.channels > 2:
            raise AudioInputError(f"{f}: {a.channels} channels; stems are mono or stereo")
    rates = Counter(a.sample_rate for a in loaded)
    sample_rate = max(rates, key=lambda r: (rates[r], r))
    warnings: list[AudioWarning] = []
    arrays: list[np.ndarray | None] = []  # None: digital silence (no resampling needed)
    short, channels = [], []
    for f, a in zip(files, loaded, strict=True):
        short.append(a.duration_s < MIN_DURATION_S)
        channels.append(a.channels)
        clips = analysis.count_clips(a.samples)
        if clips > CLIP_RUNS_ALLOWED:
            warnings.append(AudioWarning("W01-clipping", f"{f.name}: {clips} runs of "
                                         f"{CLIP_RUN_SAMPLES} or more samples sit at full "
                                         "scale: the stem is clipped"))
        if not np.any(a.samples):
            arrays.append(None)
            continue
        x = a.samples
        if a.sample_rate != sample_rate:
            ratio = Fraction(sample_rate, a.sample_rate)
            x = resample_poly(x, ratio.numerator, ratio.denominator, axis=1).astype(np.float32)
            warnings.append(AudioWarning("S01-resampled", f"{f.name}: resampled from "
                                         f"{a.sample_rate} Hz to {sample_rate} Hz"))
        arrays.append(x)
    del loaded
    all_silent = AudioInputError(f"{root}: every stem is silent (quieter than "
                                 f"{SILENT_STEM_LUFS:.0f} LUFS) or shorter than "
                                 f"{MIN_DURATION_S * 1000:.0f} ms; nothing to mix")
    lengths = [x.shape[1] for x in arrays if x is not None]
    if not lengths:
        raise all_silent
    length = max(lengths)
    stems = []
    for f, x, is_short, n in zip(files, arrays, short, channels, strict=True):
        if x is None:
            role = role_from_name(f.name)
            stems.append(Stem(f.name, np.zeros((n, length), np.float32), role or "other",
                              "name" if role else "audio", silent=True))
            continue
        if x.shape[1] < length:
            short_s = (length - x.shape[1]) / sample_rate
            warnings.append(AudioWarning("S02-padded", f"{f.name}: {short_s:.2f} s shorter than "
                                         "the longest stem; padded with silence"))
            x = np.pad(x, ((0, 0), (0, length - x.shape[1])))
        x = np.ascontiguousarray(x, dtype=np.float32)
        role = role_from_name(f.name)
        quiet = is_short or length < MIN_DURATION_S * sample_rate or (
            stem_loudness_lufs(Stem(f.name, x, "other", "audio"), sample_rate)
            < SILENT_STEM_LUFS)
        stems.append(Stem(f.name, x, role or ("other" if quiet else role_from_audio(
            active_excerpt(x, sample_rate, ROLE_EXCERPT_S), sample_rate)),
                          "name" if role else "audio", silent=quiet))
    for stem, is_short in zip(stems, short, strict=True):
        if stem.silent:
            why = (f"shorter than a {MIN_DURATION_S * 1000:.0f} ms loudness block" if is_short
                   else f"silent (quieter than {SILENT_STEM_LUFS:.0f} LUFS)")
            warnings.append(AudioWarning("S03-silent", f"{stem.name}: {why}; passed through "
                                         "at unit gain, left out of the balance"))
    if all(s.silent for s in stems):
        raise all_silent
    return stems, sample_rate, warnings


def sounding(stems: list[Stem]) -> list[Stem]:
    """The stems that take part in the balance: those not `Stem.silent`."""
    return [s for s in stems if not s.silent]


def stem_loudness_lufs(stem: Stem, sample_rate: int) -> float:
    """Integrated loudness of a stem as it will sound panned to the centre of a stereo mix,
    measured on at most `LOUDNESS_EXCERPT_S` of its active part (`active_excerpt`)."""
    played = as_played(stem)
    return loudness.integrated_lufs(active_excerpt(played, sample_rate, LOUDNESS_EXCERPT_S),
                                    sample_rate)


def active_excerpt(samples: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """At most ``seconds`` of where ``samples`` (channels, samples) plays, for measuring it.

    The signal is cut into half-second hops; hops within `ACTIVE_RANGE_DB` of the loudest
    are active, and when they last longer than ``seconds`` an evenly spaced subset of them
    is kept. Returns the kept hops joined, in order (the whole signal when it is no longer
    than ``seconds`` or has no complete hop). Gated loudness ignores the silent parts anyway,
    so this estimates it from a fraction of the samples.
    """
    hop = sample_rate // 2
    n_hops = samples.shape[1] // hop
    if samples.shape[1] <= seconds * sample_rate or n_hops == 0:
        return samples
    framed = samples[:, : n_hops * hop].reshape(samples.shape[0], n_hops, hop)
    energy = np.einsum("cij,cij->i", framed, framed, dtype=np.float64)
    active = np.flatnonzero(energy >= energy.max() * 10 ** (-ACTIVE_RANGE_DB / 10))
    keep = max(1, int(seconds * sample_rate) // hop)
    if active.size > keep:
        active = active[np.linspace(0, active.size - 1, keep).round().astype(int)]
    return framed[:, active].reshape(samples.shape[0], -1)


def as_played(stem: Stem, start: int = 0, end: int | None = None) -> np.ndarray:
    """The stem (samples ``start:end``) as its pan law plays it at the centre: stereo kept,
    mono at -3 dB per side."""
    if stem.is_stereo:
        return stem.samples[:, start:end]
    mono = stem.samples[:, start:end].mean(axis=0)
    return np.stack([mono, mono]) * np.float32(math.sqrt(0.5))



def loudest_excerpt(stems: list[Stem], sample_rate: int, seconds: float) -> tuple[int, int]:
    """Start and end sample of the loudest ``seconds`` of the stems' sum, taking the stems
    as uncorrelated (their half-second energies add), without forming the sum."""
    hop = sample_rate // 2
    total = stems[0].samples.shape[1]
    n_hops = total // hop
    energy = np.zeros(n_hops)
    for stem in stems:
        framed = stem.samples[:, : n_hops * hop].reshape(stem.samples.shape[0], n_hops, hop)
        energy += np.einsum("cij,cij->i", framed, framed, dtype=np.float64) * (
            1.0 if stem.is_stereo else 1.0 / stem.samples.shape[0])
    return analysis.loudest_span(energy, hop, total, int(seconds * sample_rate))


def with_roles(stems: list[Stem], roles: dict[str, str]) -> list[Stem]:
    """``stems`` with the roles the user gave (``--role NAME=ROLE``, a settings file's
    ``roles``: `roles.user_role`), their source "user"; names that match no stem are left."""
    out = []
    for stem in stems:
        role = user_role(stem.name, roles)
        out.append(stem if role is None else replace(stem, role=role, role_source="user"))
    return out
