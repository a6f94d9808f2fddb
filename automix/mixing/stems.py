"""Stems: loading a folder of them, and measuring them as they play.

A stems folder holds 2 to `MAX_STEMS` audio files, one per instrument. They are brought to
one sample rate (the most common one; others are resampled) and one length (shorter ones
are padded with silence); both are reported as warnings. Each stem gets a role, read from
its file name when a keyword says it plainly ("vocals", "kick", "bass", ...), otherwise
guessed from the audio (`role_from_audio`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from automix import analysis, loudness
from automix.analysis import AudioWarning
from automix.audio import READ_EXTENSIONS, load
from automix.errors import AudioInputError
from automix.mixing.roles import role_from_audio, role_from_name

MIN_STEMS = 2
MAX_STEMS = 32
STEREO_SIDE_RATIO = 1e-3  # a stem whose side RMS / mid RMS is below this is treated as mono
LOUDNESS_EXCERPT_S = 30.0  # a stem's loudness is measured on at most this much of its active part
ACTIVE_RANGE_DB = 50.0  # half-second hops within this of a stem's loudest count as active

@dataclass(frozen=True)
class Stem:
    """One stem of a mix.

    Attributes
    ----------
    name : str, the file name (the key of its settings)
    samples : np.ndarray, shape (channels, samples), float32, channels 1 or 2
    role : str, one of `ROLES`
    role_source : str, "name" or "audio"
    """

    name: str
    samples: np.ndarray
    role: str
    role_source: str

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
    warnings : list of AudioWarning (S01 resampled, S02 padded)

    Raises
    ------
    AudioInputError
        When ``folder`` is not a folder, or holds fewer than 2 or more than 32 audio files,
        or a file cannot be read.
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
    loaded = [load(f) for f in files]
    for f, a in zip(files, loaded, strict=True):
        if a.channels > 2:
            raise AudioInputError(f"{f}: {a.channels} channels; stems are mono or stereo")
    rates = Counter(a.sample_rate for a in loaded)
    sample_rate = max(rates, key=lambda r: (rates[r], r))
    warnings: list[AudioWarning] = []
    arrays = []
    for f, a in zip(files, loaded, strict=True):
        x = a.samples
        if a.sample_rate != sample_rate:
            ratio = Fraction(sample_rate, a.sample_rate)
            x = resample_poly(x, ratio.numerator, ratio.denominator, axis=1).astype(np.float32)
            warnings.append(AudioWarning("S01-resampled", f"{f.name}: resampled from "
                                         f"{a.sample_rate} Hz to {sample_rate} Hz"))
        arrays.append(x)
    length = max(x.shape[1] for x in arrays)
    stems = []
    for f, x in zip(files, arrays, strict=True):
        if x.shape[1] < length:
            short_s = (length - x.shape[1]) / sample_rate
            warnings.append(AudioWarning("S02-padded", f"{f.name}: {short_s:.2f} s shorter than "
                                         "the longest stem; padded with silence"))
            x = np.pad(x, ((0, 0), (0, length - x.shape[1])))
        role = role_from_name(f.name)
        stems.append(Stem(f.name, np.ascontiguousarray(x, dtype=np.float32),
                          role or role_from_audio(x, sample_rate),
                          "name" if role else "audio"))
    return stems, sample_rate, warnings



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


