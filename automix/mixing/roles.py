"""Roles: what each stem is (vocals, drums, bass, ...) and where each role starts in a mix.

A role is read from the file name when a keyword says it plainly (`role_from_name`: "vocals",
"kick", "bass", GM names, abbreviations), else guessed from the audio (`role_from_audio`), unless
the user names it (``--role NAME=ROLE``). `ROLE_DEFAULTS` holds each role's starting level,
high-pass, pan spread, reverb send and compressor; `ROLE_SHARE_LU` the range of each role's
loudness against the rest of the mix that a suggested balance keeps to, unless the reference
clearly asks for more or less of a stem (`share_range_lu`); `pair_side` finds the
two sides of an L/R pair ("Gtr L", "Gtr R"), which are panned as a pair.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.fft import next_fast_len

from automix.errors import SettingsError

ROLES = ("vocals", "drums", "bass", "guitar", "keys", "synth", "strings", "brass", "other")
# Keywords per role (General-MIDI instrument names and the abbreviations of DAW track names),
# tried on the name's lower-case words, camelCase split ("AltoSax" -> "alto sax", "LdVox" ->
# "ld vox", "EGtr" -> "e gtr"). Two passes: first whole words and phrases, role by role in this
# order ("bassoon" is brass, "synth bass" bass, "bass drum" drums); then the same keywords
# inside words: those of 5 letters or more anywhere ("loudsnare"), of 3-4 letters at a word's
# start ("kick2"), shorter ones never. "backing" (a band's backing track) and "band" are named,
# as "other".
ROLE_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("drums", ("bassdrum", "bass drum", "bdrum", "bd", "kick", "kik", "kd", "snare", "snr", "sn",
               "sd", "hihat", "hi hat", "hh", "hat", "cymbal", "crash", "ride", "tom", "toms",
               "drum", "drums", "perc", "clap", "rim", "sidestick", "conga", "bongo", "shaker",
               "tamb", "beat", "loop", "overhead", "oh", "timpani", "taiko", "agogo", "woodblock",
               "cowbell", "steel drums", "room", "rooms")),
    ("vocals", ("vocal", "vocals", "vox", "voice", "sing", "choir", "lead vocal", "bv", "bgv",
                "adlib", "ldvox", "leadvox", "aahs", "oohs")),
    ("brass", ("bassoon",)),  # before "bass"
    ("bass", ("bass", "sub", "808", "contrabass", "synth bass", "bassline")),
    ("guitar", ("guitar", "gtr", "gt", "egtr", "agtr", "sitar", "banjo", "shamisen", "koto",
                "mandolin", "ukulele")),
    ("keys", ("piano", "pinao", "pno", "keys", "key", "kbd", "rhodes", "organ", "epiano", "ep",
              "wurli", "clav", "clavinet", "harpsichord", "vibes", "vibraphone", "marimba",
              "xylo", "celesta", "glockenspiel", "music box", "dulcimer", "accordion",
              "kalimba", "tubular bells")),
    ("strings", ("strings", "string", "violin", "vln", "viola", "vla", "cello", "vc",
                 "orch", "harp", "fiddle", "pizzicato", "tremolo")),
    ("brass", ("horn", "horns", "trumpet", "tpt", "trombone", "tbn", "tuba", "brass", "sax",
               "flute", "flj00te", "clarinet", "oboe", "piccolo", "recorder", "whistle",
               "ocarina", "shakuhachi", "harmonica", "bagpipe", "shanai", "bottle", "winds",
               "woodwinds")),
    ("synth", ("synth", "pad", "arp", "lead", "saw", "pluck", "bell", "sid", "fm", "square")),
    ("other", ("backing", "band", "fx", "sfx")),
)
# A name whose last word is one of these is one side of a pair ("Gtr L", "OH R", "Keys_Left").
PAIR_SIDES = {"l": -1.0, "left": -1.0, "r": 1.0, "right": 1.0}


def _words(name: str) -> list[str]:
    """Lower-case words of a file name without its extension and track number, camelCase
    split ("AltoSax" -> "alto", "sax"; "EGtr" -> "e", "gtr")."""
    stem = re.sub(r"([a-z])([A-Z])", r"\1 \2", Path(name).stem)
    stem = re.sub(r"([A-Z])([A-Z][a-z])", r"\1 \2", stem).lower()
    stem = re.sub(r"([a-z])([0-9])", r"\1 \2", stem)
    return [w for w in re.split(r"[^a-z0-9]+", stem) if w and not w.isdigit()]


def _inside(keyword: str, word: str) -> bool:
    if len(keyword) >= 5:
        return keyword in word
    if len(keyword) >= 3:
        return word.startswith(keyword)
    return False


def role_from_name(name: str) -> str | None:
    """The role a file name states plainly, else None.

    >>> role_from_name("03_Lead Vocals.wav"), role_from_name("bassdrum01.flac")
    ('vocals', 'drums')
    >>> role_from_name("AltoSax.wav"), role_from_name("PickBass.wav"), role_from_name("SN.wav")
    ('brass', 'bass', 'drums')
    """
    words = _words(name)
    text = f" {' '.join(words)} "
    for role, keywords in ROLE_KEYWORDS:
        if any(f" {k} " in text for k in keywords):
            return role
    for role, keywords in ROLE_KEYWORDS:
        if any(" " not in k and _inside(k, w) for k in keywords for w in words):
            return role
    return None


def pair_side(name: str) -> tuple[str, float] | None:
    """("name without its side", -1 or +1) when ``name`` is one side of an L/R pair ("Gtr L",
    "OH_R", "keys left"), else None."""
    words = _words(name)
    if len(words) < 2 or words[-1] not in PAIR_SIDES:
        return None
    return " ".join(words[:-1]), PAIR_SIDES[words[-1]]


def check_roles(roles: dict[str, str], where: str = "--role") -> dict[str, str]:
    """``roles`` (stem name -> role) when every role is one of `ROLES`, else `SettingsError`
    in one line naming the valid ones."""
    for name, role in roles.items():
        if role not in ROLES:
            raise SettingsError(f"{where} {name}={role}: unknown role {role!r}; valid roles: "
                                f"{', '.join(ROLES)}")
    return dict(roles)


def parse_roles(items: list[str] | None) -> dict[str, str]:
    """``--role NAME=ROLE`` options as a mapping (checked, `check_roles`); NAME is a stem's
    file name, with or without its extension."""
    roles = {}
    for item in items or []:
        name, sep, role = item.rpartition("=")
        if not sep or not name.strip():
            raise SettingsError(f"--role: expected NAME=ROLE, got {item!r} (roles: "
                                f"{', '.join(ROLES)})")
        roles[name.strip()] = role.strip().lower()
    return check_roles(roles)


def user_role(name: str, roles: dict[str, str]) -> str | None:
    """The role ``roles`` gives the stem file ``name`` (by its name or its name without the
    extension, either case), else None."""
    for key in (name, Path(name).stem):
        for given, role in roles.items():
            if given.lower() == key.lower():
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
    n_fft = next_fast_len(mono.size, real=True)  # never the slow path of an arbitrary length
    spectrum = np.abs(np.fft.rfft(mono, n_fft)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
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



# How loud a stem of each role may sit against the rest of the mix (the sum of every other
# stem, `balance.share_model`), in LU: (floor, ceiling). The ceiling is over the rest; the
# floor is under the stem's equal share (-10 log10(N - 1) among N equally loud stems), so
# that it scales with the stem count (a hi-hat among 14 stems sits far under the rest). The
# suggested balance
# (`balance.plausible_levels`) keeps to these whatever the network or the fit asked: a lead
# (vocals, a lead guitar, a solo horn) at most a few LU over the whole band, kick and bass
# never over the rest of it, nothing buried. Unconstrained, suggestions had put a lead guitar
# 6 LU over its band (from 5 LU under), a jazz song's kick and bass +10 dB over everything,
# and on the committed excerpts a piano 23 LU under a pad.
ROLE_SHARE_LU: dict[str, tuple[float, float]] = {
    "vocals": (-6.0, 3.0),
    "drums": (-15.0, 0.0),
    "bass": (-10.0, -1.0),
    "guitar": (-12.0, 3.0),
    "keys": (-12.0, 3.0),
    "synth": (-12.0, 3.0),
    "strings": (-12.0, 3.0),
    "brass": (-12.0, 3.0),
    "other": (-15.0, 3.0),
}


# Unless the reference clearly asks otherwise. A stem's ask (`balance.reference_asks_db`, dB) is
# how far the reference's band balance, in the stem's bands against the rest's, lies beyond
# the span of the genre presets' balances: 0 for any shipped preset. Past the threshold, the
# range moves by the excess, in the ask's direction (ceiling up for a positive ask, floor down
# for a negative one), up to the cap (`share_range_lu`).
ASK_THRESHOLD_DB = 3.0  # single productions stray this far past their genres without asking:
# the 23 committed reference excerpts on the tests' stems, 204 of 207 asks under 3 dB, at most
# 3.9 dB (a hip-hop track's bass)
MAX_ASK_WIDENING_LU = 6.0  # even asked, bass at most 5 LU over the rest, a lead 9 over the band


def share_range_lu(role: str, stem_count: int, ask_db: float = 0.0) -> tuple[float, float]:
    """The lowest and highest loudness (LU) a stem of ``role`` may have against the sum of
    the other ``stem_count - 1`` stems (`ROLE_SHARE_LU`), widened by what the reference asks
    of it (``ask_db``: past `ASK_THRESHOLD_DB`, the excess, at most `MAX_ASK_WIDENING_LU`).

    >>> share_range_lu("bass", 2), share_range_lu("bass", 2, 5.0), share_range_lu("bass", 2, -20)
    ((-10.0, -1.0), (-10.0, 1.0), (-16.0, -1.0))
    """
    floor, ceiling = ROLE_SHARE_LU[role]
    low = min(-10.0 * math.log10(max(stem_count - 1, 1)) + floor, ceiling)
    widening = min(max(abs(ask_db) - ASK_THRESHOLD_DB, 0.0), MAX_ASK_WIDENING_LU)
    return (low - widening, ceiling) if ask_db < 0.0 else (low, ceiling + widening)


PAIR_PAN = 1.0  # the two sides of an L/R pair ("OH L", "OH R") are panned this far out
