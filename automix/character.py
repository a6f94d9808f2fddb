"""Characters: named moves of a reference's target in real units (``--character warm:0.5,wide``).

Defined as data in ``presets/characters.json`` beside the genre presets: a tilt of the tonal
balance about `PIVOT_HZ` (dB per octave), an air shelf (dB at and above a frequency), offsets
of the crest and PLR targets (dB) and of the width (side/mid). Each is the move at amount 1; an
amount scales it. `apply` returns the reference with its features moved, so every matcher
follows the character without knowing about it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from automix import presets
from automix.analysis import BAND_CENTERS_HZ
from automix.errors import SettingsError
from automix.settings import Reference

PIVOT_HZ = 1000.0
AMOUNT_RANGE = (0.0, 2.0)
FIELDS = ("tilt_db_per_oct", "air_db", "air_hz", "crest_db", "plr_db", "width")


@dataclass(frozen=True)
class Character:
    """One character at amount 1 (see the module's docstring for each field's meaning)."""

    name: str
    description: str
    tilt_db_per_oct: float = 0.0
    air_db: float = 0.0
    air_hz: float = 8000.0
    crest_db: float = 0.0
    plr_db: float = 0.0
    width: float = 0.0

    def scaled(self, amount: float) -> Character:
        return replace(self, tilt_db_per_oct=self.tilt_db_per_oct * amount,
                       air_db=self.air_db * amount, crest_db=self.crest_db * amount,
                       plr_db=self.plr_db * amount, width=self.width * amount)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{k: round(getattr(self, k), 4) for k in FIELDS}}


def _path():
    return presets.PRESETS_DIR / "characters.json"


def list_characters() -> list[Character]:
    """Every character in ``presets/characters.json``, by name."""
    path = _path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["characters"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SettingsError(f"{path}: cannot read the characters") from None
    out = []
    for name, fields in sorted(data.items()):
        unknown = set(fields) - set(FIELDS) - {"description"}
        if unknown:
            raise SettingsError(f"{path}: {name}: unknown field(s) {', '.join(sorted(unknown))}")
        out.append(Character(name=name, **fields))
    return out


def parse(spec: str | None) -> tuple[Character, ...]:
    """``warm:0.5,wide`` as characters scaled by their amounts (default 1); a one-line
    `SettingsError` naming the valid characters for an unknown one."""
    if not spec:
        return ()
    known = {c.name: c for c in list_characters()}
    out = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        name, _, amount_text = item.partition(":")
        if name not in known:
            raise SettingsError(f"unknown character {name!r}; choose from "
                                f"{', '.join(known)}")
        try:
            amount = float(amount_text) if amount_text else 1.0
        except ValueError:
            amount = math.nan
        low, high = AMOUNT_RANGE
        if not low <= amount <= high:
            raise SettingsError(f"character {name}: amount must be a number in "
                                f"[{low:g}, {high:g}]; got {amount_text!r}")
        out.append(known[name].scaled(amount))
    return tuple(out)


def band_offsets_db(character: Character) -> np.ndarray:
    """The tonal move per `BAND_CENTERS_HZ` band, dB: the tilt about `PIVOT_HZ` plus the air
    shelf."""
    tilt = character.tilt_db_per_oct * np.log2(BAND_CENTERS_HZ / PIVOT_HZ)
    return tilt + np.where(BAND_CENTERS_HZ >= character.air_hz, character.air_db, 0.0)


def apply(reference: Reference, characters: tuple[Character, ...]) -> Reference:
    """``reference`` with its target features moved by each of ``characters`` in turn."""
    if not characters:
        return reference
    f = reference.features
    mid = np.asarray(f.tonal_mid_db, dtype=np.float64)
    side = np.asarray(f.tonal_side_db, dtype=np.float64)
    crest, plr, width = f.crest_db, f.plr_db, f.width
    for c in characters:
        offsets = band_offsets_db(c)
        mid, side = mid + offsets, side + offsets
        crest, plr, width = crest + c.crest_db, plr + c.plr_db, max(0.0, width + c.width)
    features = replace(f, tonal_mid_db=tuple(float(v) for v in mid),
                       tonal_side_db=tuple(float(v) for v in side),
                       crest_db=crest, plr_db=plr, width=width)
    label = ",".join(c.name for c in characters)
    return replace(reference, name=f"{reference.name} +{label}", features=features,
                   characters=characters)
