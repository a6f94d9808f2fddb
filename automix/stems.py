"""Stems: loading a folder of them, and telling what each one is (its role).

A stems folder holds 2 to `MAX_STEMS` audio files, one per instrument. They are brought to
one sample rate (the most common one; others are resampled) and one length (shorter ones
are padded with silence); both are reported as warnings. Each stem gets a role, read from
its file name when a keyword says it plainly ("vocals", "kick", "bass", ...), otherwise
guessed from the audio (`role_from_audio`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from automix.analysis import AudioWarning
from automix.audio import READ_EXTENSIONS, load
from automix.errors import AudioInputError

MIN_STEMS = 2
MAX_STEMS = 32
STEREO_SIDE_RATIO = 1e-3  # a stem whose side RMS / mid RMS is below this is treated as mono

ROLES = ("vocals", "drums", "bass", "guitar", "keys", "synth", "strings", "brass", "other")
# Keywords per role, tried in this order on the name's lower-case words (drums first, so that
# "bassdrum" and "bass drum" are drums, not bass). Keywords of 5 letters or more match anywhere
# in a word ("loudsnare"), of 3-4 letters at a word's start ("kick2"), shorter ones whole words.
ROLE_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("drums", ("bassdrum", "bdrum", "bd", "kick", "kik", "snare", "snr", "hihat", "hh", "hat",
               "cymbal", "crash", "ride", "tom", "drum", "perc", "clap", "rim", "sidestick",
               "conga", "bongo", "shaker", "tamb", "beat", "loop", "overhead", "oh")),
    ("vocals", ("vocal", "vox", "voice", "sing", "choir", "lead vocal", "bv", "bgv", "adlib")),
    ("bass", ("bass", "sub", "808")),
    ("guitar", ("guitar", "gtr", "gt")),
    ("keys", ("piano", "pinao", "keys", "key", "rhodes", "organ", "epiano", "wurli", "clav",
              "harpsichord", "vibes", "marimba", "xylo")),
    ("strings", ("string", "violin", "viola", "cello", "orch")),
    ("brass", ("horn", "trumpet", "trombone", "brass", "sax", "flute", "clarinet", "oboe",
               "flj00te")),
    ("synth", ("synth", "pad", "arp", "lead", "saw", "pluck", "bell", "sid", "fm")),
)


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


def _words(name: str) -> list[str]:
    """Lower-case words of a file name without its extension and track number."""
    stem = Path(name).stem.lower()
    stem = re.sub(r"([a-z])([0-9])", r"\1 \2", stem)
    return [w for w in re.split(r"[^a-z0-9]+", stem) if w and not w.isdigit()]


def _matches(keyword: str, word: str) -> bool:
    if len(keyword) >= 5:
        return keyword in word
    if len(keyword) >= 3:
        return word.startswith(keyword)
    return word == keyword


def role_from_name(name: str) -> str | None:
    """The role a file name states plainly, else None.

    >>> role_from_name("03_Lead Vocals.wav"), role_from_name("bassdrum01.flac")
    ('vocals', 'drums')
    """
    words = _words(name)
    text = " ".join(words)
    for role, keywords in ROLE_KEYWORDS:
        for keyword in keywords:
            if " " in keyword:
                if keyword in text:
                    return role
            elif any(_matches(keyword, w) for w in words):
                return role
    return None


def role_from_audio(samples: np.ndarray, sample_rate: int) -> str:
    """Guess a role from the sound: "bass" when most energy is below 150 Hz, "drums" when it
    is percussive (short loud bursts: a high ratio of peak to median short-term energy over
    a broad spectrum), else "other".

    Parameters
    ----------
    samples : np.ndarray, shape (channels, samples)
    sample_rate : int, Hz
    """
    mono = samples.mean(axis=0).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(mono.size, 1.0 / sample_rate)
    total = spectrum.sum() + 1e-20
    low_share = spectrum[freqs < 150.0].sum() / total
    if low_share > 0.6:
        return "bass"
    hop = max(1, int(0.02 * sample_rate))  # 20-ms frames
    frames = mono[: mono.size // hop * hop].reshape(-1, hop)
    energy = np.mean(frames**2, axis=1)
    active = energy[energy > 1e-9]
    if active.size < 4:
        return "other"
    spikiness_db = 10 * math.log10(np.percentile(active, 98) / np.percentile(active, 50))
    flatness = np.exp(np.mean(np.log(spectrum[1:] + 1e-20))) / np.mean(spectrum[1:] + 1e-20)
    if spikiness_db > 15.0 and flatness > 1e-3:
        return "drums"
    return "other"


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
