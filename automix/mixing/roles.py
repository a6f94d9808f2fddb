"""Roles: what each stem is (vocals, drums, bass, ...) and where each role starts in a mix.

A role is read from the file name when a keyword says it plainly (`role_from_name`: "vocals",
"kick", "bass", ...), else guessed from the audio (`role_from_audio`). `ROLE_DEFAULTS` holds
each role's starting level, high-pass, pan spread, reverb send and compressor.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


@dataclass(frozen=True)
class RoleDefaults:
    """Where a role starts: level relative to the others (LU), high-pass (Hz), how far mono
    stems of it are spread from the centre, reverb send (dB), and its compressor as (ratio,
    threshold above the stem's balanced loudness in LU, attack ms, release ms) or None."""

    level_lu: float
    highpass_hz: float
    pan_spread: float
    send_db: float
    compressor: tuple[float, float, float, float] | None


# Sends: only vocals get the room by default. Stems bounced from a production usually carry
# their own ambience, and on held-out real multitracks the former sends (-16 to -28 dB on every
# role but bass) put the mix 1.5 dB further (log-mel) from the real one. The refinement
# (`refine`) can still move a send that is on.
ROLE_DEFAULTS: dict[str, RoleDefaults] = {
    "vocals": RoleDefaults(3.0, 90.0, 0.0, -22.0, (3.0, 4.0, 5.0, 120.0)),
    "drums": RoleDefaults(1.0, 30.0, 0.0, -60.0, (2.0, 8.0, 20.0, 120.0)),
    "bass": RoleDefaults(1.0, 30.0, 0.0, -60.0, (4.0, 3.0, 10.0, 150.0)),
    "guitar": RoleDefaults(0.0, 80.0, 0.5, -60.0, (2.0, 5.0, 10.0, 150.0)),
    "keys": RoleDefaults(-1.0, 60.0, 0.35, -60.0, None),
    "synth": RoleDefaults(-1.0, 50.0, 0.35, -60.0, None),
    "strings": RoleDefaults(-2.0, 60.0, 0.5, -60.0, None),
    "brass": RoleDefaults(-1.0, 80.0, 0.4, -60.0, (2.0, 5.0, 10.0, 150.0)),
    "other": RoleDefaults(-1.0, 40.0, 0.3, -60.0, None),
}

