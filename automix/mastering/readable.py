"""Settings a producer can read (#15 point 5): the rules every suggested chain keeps.

- EQ: no two bands within a third of an octave with gains of opposite sign (`fights`);
  `tidy_eq` merges such a pair into the band with the larger move (the summed gain), the other
  goes to 0 dB.
- EQ gains sit at the +-`MAX_EQ_MOVE_DB` stops only when the data demands it (`stop_demanded`:
  the tonal difference reaches `STOP_DEMAND_DB` with the same sign near the band); the DSP
  matcher's fit keeps this through its penalty (`automix.mastering.match.fit_eq`).
- Width: narrowed by more than 25 % (below `WIDTH_FLOOR_PCT`) only when the reference is
  clearly narrower (`clearly_narrower`); `limit_width` states the rule once for both matchers.

`tidy` applies the EQ and width rules to a whole `MasterChain`; both matchers call it on
their chain (`automix.mastering.match.match_tone` and `network_match`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from automix import analysis
from automix.analysis import Analysis
from automix.params import EQParams, MasterChain, StereoWidthParams

MAX_EQ_MOVE_DB = 6.0  # EQ gains are bounded to +-this: a mastering move
STOP_DEMAND_DB = 8.0  # a gain at a stop is demanded by a tonal difference at least this large
NEIGHBOUR_OCTAVES = 1.0 / 3.0  # bands closer than this may not move in opposite directions
WIDTH_FLOOR_PCT = 75.0  # narrower than this only toward a clearly narrower reference
WIDTH_MIN_PCT, WIDTH_MAX_PCT = 50.0, 150.0  # the width the matchers suggest at most
CLEARLY_NARROWER_RATIO = 0.6  # reference width / input width below this: clearly narrower
NEAR_MONO_WIDTH = 0.05  # an input at most this wide (side 26 dB down) is near mono
BANDS = ("low_shelf", "peak1", "peak2", "peak3", "high_shelf")


@dataclass(frozen=True)
class Band:
    name: str  # one of `BANDS`
    freq_hz: float
    gain_db: float


def eq_bands(eq: EQParams) -> list[Band]:
    """The five EQ bands in render order."""
    return [Band(n, float(getattr(eq, f"{n}_freq_hz")), float(getattr(eq, f"{n}_gain_db")))
            for n in BANDS]


def fights(eq: EQParams) -> list[tuple[Band, Band]]:
    """Pairs of bands within `NEIGHBOUR_OCTAVES` of each other with gains of opposite sign."""
    bands = eq_bands(eq)
    return [(a, b) for i, a in enumerate(bands) for b in bands[i + 1:]
            if a.gain_db * b.gain_db < 0
            and abs(math.log2(a.freq_hz / b.freq_hz)) < NEIGHBOUR_OCTAVES]


def tidy_eq(eq: EQParams) -> EQParams:
    """``eq`` with every fighting pair (`fights`) merged: the band with the larger move keeps
    the pair's summed gain (what they do together at their shared frequency), the other goes to
    0 dB. Every gain is then held to +-`MAX_EQ_MOVE_DB` (a mastering move, whichever method
    suggested it)."""
    while pairs := fights(eq):
        a, b = max(pairs, key=lambda p: abs(p[0].gain_db) + abs(p[1].gain_db))
        keep, drop = (a, b) if abs(a.gain_db) >= abs(b.gain_db) else (b, a)
        eq = replace(eq, **{f"{keep.name}_gain_db": round(keep.gain_db + drop.gain_db, 3),
                            f"{drop.name}_gain_db": 0.0})
    return replace(eq, **{f"{band}_gain_db": float(np.clip(getattr(eq, f"{band}_gain_db"),
                                                           -MAX_EQ_MOVE_DB, MAX_EQ_MOVE_DB))
                          for band in BANDS})


def tonal_difference(input_features: Analysis, reference_features: Analysis) -> np.ndarray:
    """Reference minus input mid tonal balance, averaged over each band and its two neighbours
    (what the EQ fit follows, before it is held to +-`MAX_EQ_MOVE_DB`); NaN where unknown."""
    diff = (np.asarray(reference_features.tonal_mid_db, dtype=np.float64)
            - np.asarray(input_features.tonal_mid_db, dtype=np.float64))
    valid = np.isfinite(diff)
    total = np.convolve(np.where(valid, diff, 0.0), np.ones(3), "same")
    count = np.convolve(valid.astype(float), np.ones(3), "same")
    return np.where(valid, total / np.maximum(count, 1e-9), np.nan)


def stop_demanded(band: Band, difference: np.ndarray) -> bool:
    """Whether the tonal difference (`tonal_difference`) demands ``band``'s gain at a stop:
    it reaches `STOP_DEMAND_DB` with the gain's sign within an octave of the band's frequency
    (for a shelf, also anywhere beyond it on its side)."""
    centers = analysis.BAND_CENTERS_HZ
    octaves = np.log2(centers / band.freq_hz)
    near = np.abs(octaves) <= 1.0
    if band.name == "low_shelf":
        near |= octaves < 0
    elif band.name == "high_shelf":
        near |= octaves > 0
    signed = np.sign(band.gain_db) * difference[near]
    return bool(np.any(signed[np.isfinite(signed)] >= STOP_DEMAND_DB))


def clearly_narrower(input_width: float, reference_width: float, *,
                     single_production: bool = True) -> bool:
    """Whether a reference is clearly narrower than the input: a single production (a file; a
    genre preset's width is an average over productions, not a target for this song) less than
    `CLEARLY_NARROWER_RATIO` times as wide as an input that is not near mono."""
    return (single_production and input_width > NEAR_MONO_WIDTH
            and reference_width < CLEARLY_NARROWER_RATIO * input_width)


def limit_width(width_pct: float, input_width: float, reference_width: float, *,
                single_production: bool = True) -> float:
    """``width_pct`` held to `WIDTH_MIN_PCT`..`WIDTH_MAX_PCT`, and to at least `WIDTH_FLOOR_PCT`
    unless the reference is `clearly_narrower`."""
    floor = WIDTH_MIN_PCT if clearly_narrower(input_width, reference_width,
                                              single_production=single_production) \
        else WIDTH_FLOOR_PCT
    return float(np.clip(width_pct, floor, WIDTH_MAX_PCT))


def width_allowed(width_pct: float, input_width: float, reference_width: float, *,
                  single_production: bool = True) -> bool:
    """Whether ``width_pct`` keeps the width rule (`limit_width` leaves it as it is)."""
    return limit_width(width_pct, input_width, reference_width,
                       single_production=single_production) == width_pct


def tidy(chain: MasterChain, *, input_width: float, reference_width: float,
         single_production: bool = True) -> MasterChain:
    """``chain`` with its EQ fights merged (`tidy_eq`) and its width held by `limit_width`."""
    width = limit_width(chain.width.width_pct, input_width, reference_width,
                        single_production=single_production)
    return replace(chain, eq=tidy_eq(chain.eq),
                   width=StereoWidthParams(width_pct=round(width, 1)))
