"""ZamEQ2's filters as formulas, and the fit of two ZamEQ2s to automix's high-pass and EQ.

ZamEQ2 (zam-plugins 4.1, Debian's) runs a low shelf, a high shelf and two peaks, in that
order, then its master gain. Its designs differ from automix's JUCE biquads:

- shelves are RBJ shelves with the *slope* parameter fixed at 0.707 (automix's have Q 0.707,
  which is slope 1): a gentler transition;
- peaks are Orfanidis' digital peaking filters (a prescribed Nyquist gain), their bandwidth in
  octaves turned into a width ``f / (fs q)`` with ``q = 2^(1/bw) / (2^bw - 1)``; at the same
  centre and gain they are narrower or wider than RBJ's by several dB at the skirts;
- there is no high-pass: a deep low shelf (down to -50 dB) stands in for it, a second-order
  slope like automix's two first-order sections.

So the mapping is a fit, not a copy: the magnitude of two ZamEQ2s in series (four shelves,
four peaks) is fitted by least squares, in dB over 30 Hz-16 kHz, to automix's summed
high-pass and EQ response (`target_db`), from a start that puts each automix band on its
nearest Zam band. The formulas below were checked against the plug-in's measured impulse
responses (within 0.01 dB, `tests/test_zam.py`); the plug-in takes its controls as
normalised values that are linear in the plain value (see `automix.plugins.zam.configure`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from automix.effects import biquad
from automix.params import MasterChain

FIT_BAND_HZ = (30.0, 16000.0)  # where the EQ has to match (issue #19)
FIT_POINTS = 240  # log-spaced frequencies of the fit and of the error
EQ_TOLERANCE_DB = 0.5  # the goal: max |Zam - automix| over FIT_BAND_HZ
SHELF_SLOPE = 0.707  # ZamEQ2's fixed shelf slope
MIN_GAIN_DB = 1e-3  # Orfanidis' peak is 0/0 at exactly 0 dB: unused bands sit here
SPARE_ROUNDS = 2  # refits with the spare bands put on the worst misses
RESTARTS = 8  # perturbed restarts when the fit still misses by over half the tolerance
RESTART_SEED = 19
MINIMAX_ROUNDS = 4  # Lawson reweightings after each least-squares fit
FREQ_ROAM = 3.0  # how far (x or /) a fitted band may move from the automix band it stands for
# The controls of ZamEQ2 4.1 (plain-value bounds, as the plug-in reports them)
GAIN_DB = (-50.0, 20.0)
FREQ_HZ = (20.0, 14000.0)
BANDWIDTH = (0.1, 6.0)
MASTER_DB = (-12.0, 12.0)
BAND_KEYS = ("l", "h", "1", "2")  # ZamEQ2's band suffixes: low shelf, high shelf, peaks


def fit_freqs_hz() -> np.ndarray:
    return np.geomspace(*FIT_BAND_HZ, FIT_POINTS)


def target_db(chain: MasterChain, freqs_hz: np.ndarray, sample_rate: float) -> np.ndarray:
    """automix's high-pass (two first-order sections) and EQ, summed, in dB at ``freqs_hz``."""
    hp = biquad.first_order_highpass(chain.highpass.freq_hz, sample_rate)
    return biquad.magnitude_db([hp, hp] + biquad.eq_sections(chain.eq, sample_rate), freqs_hz,
                               sample_rate)


def _safe_gain(gain_db: float) -> float:
    return gain_db if abs(gain_db) >= MIN_GAIN_DB else math.copysign(MIN_GAIN_DB, gain_db or 1)


def peak(freq_hz: float, gain_db: float, bandwidth: float, sample_rate: float
         ) -> tuple[list, list]:
    """ZamEQ2's peak (Orfanidis, DC gain 1, bandwidth gain sqrt(G))."""
    q = 2.0 ** (1.0 / bandwidth) / (2.0 ** bandwidth - 1.0)
    g = 10.0 ** (_safe_gain(gain_db) / 20.0)
    gb, fc = math.sqrt(g), freq_hz / sample_rate
    w0, dw = 2.0 * math.pi * fc, fc / q
    f = abs(g * g - gb * gb)
    g00, f00 = abs(g * g - 1.0), abs(gb * gb - 1.0)
    pi2 = (w0 * w0 - math.pi ** 2) ** 2
    g1 = math.sqrt((pi2 + g * g * f00 * math.pi ** 2 * dw * dw / f)
                   / (pi2 + f00 * math.pi ** 2 * dw * dw / f))
    g01, g11 = abs(g * g - g1), abs(g * g - g1 * g1)
    f01, f11 = abs(gb * gb - g1), abs(gb * gb - g1 * g1)
    w2 = math.sqrt(g11 / g00) * math.tan(w0 / 2.0) ** 2
    dww = (1.0 + math.sqrt(f00 / f11) * w2) * math.tan(dw / 2.0)
    c = f11 * dww * dww - 2.0 * w2 * (f01 - math.sqrt(f00 * f11))
    d = 2.0 * w2 * (g01 - math.sqrt(g00 * g11))
    a, b = math.sqrt((c + d) / f), math.sqrt((g * g * c + gb * gb * d) / f)
    n = 1.0 + w2 + a
    return ([(g1 + w2 + b) / n, -2.0 * (g1 - w2) / n, (g1 - b + w2) / n],
            [1.0, -2.0 * (1.0 - w2) / n, (1.0 + w2 - a) / n])


def shelf(freq_hz: float, gain_db: float, sample_rate: float, *, high: bool
          ) -> tuple[list, list]:
    """ZamEQ2's shelves: RBJ with slope `SHELF_SLOPE`."""
    amp = math.sqrt(10.0 ** (gain_db / 20.0))
    w0 = 2.0 * math.pi * freq_hz / sample_rate
    alpha = math.sin(w0) / 2.0 * math.sqrt((amp + 1.0 / amp) * (1.0 / SHELF_SLOPE - 1.0) + 2.0)
    s = -1.0 if high else 1.0  # the high shelf flips the sign of every cos term
    cos, beta = math.cos(w0), 2.0 * math.sqrt(amp) * alpha
    b = [amp * ((amp + 1) - s * (amp - 1) * cos + beta),
         s * 2 * amp * ((amp - 1) - s * (amp + 1) * cos),
         amp * ((amp + 1) - s * (amp - 1) * cos - beta)]
    a = [(amp + 1) + s * (amp - 1) * cos + beta, -s * 2 * ((amp - 1) + s * (amp + 1) * cos),
         (amp + 1) + s * (amp - 1) * cos - beta]
    return [x / a[0] for x in b], [x / a[0] for x in a]


def sections(controls: dict[str, float], sample_rate: float) -> list[tuple[list, list]]:
    """One ZamEQ2's sections, in its order (low shelf, high shelf, peak 1, peak 2), from its
    controls by parameter name (``boost_cut_l_db``, ``frequency_l_hz``, ...)."""
    return [
        shelf(controls["frequency_l_hz"], controls["boost_cut_l_db"], sample_rate, high=False),
        shelf(controls["frequency_h_hz"], controls["boost_cut_h_db"], sample_rate, high=True),
        peak(controls["frequency_1_hz"], controls["boost_cut_1_db"], controls["bandwidth_1"],
             sample_rate),
        peak(controls["frequency_2_hz"], controls["boost_cut_2_db"], controls["bandwidth_2"],
             sample_rate),
    ]


def response_db(instances: list[dict[str, float]], freqs_hz: np.ndarray,
                sample_rate: float) -> np.ndarray:
    """Magnitude in dB of ZamEQ2s in series (their master gains included)."""
    secs = [s for controls in instances for s in sections(controls, sample_rate)]
    return (biquad.magnitude_db(secs, freqs_hz, sample_rate)
            + sum(controls["master_gain_db"] for controls in instances))


def bandwidth_of_q(q: float) -> float:
    """The ZamEQ2 bandwidth (octaves) whose ``2^(1/bw) / (2^bw - 1)`` is ``q``."""
    lo, hi = BANDWIDTH
    for _ in range(60):  # the map falls monotonically with bw: bisect
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if 2.0 ** (1.0 / mid) / (2.0 ** mid - 1.0) > q else (lo, mid)
    return math.sqrt(lo * hi)


@dataclass(frozen=True)
class _Band:
    """One fitted band: which instance and band key, its kind, and where it starts."""

    instance: int
    key: str
    freq_hz: float
    gain_db: float
    bandwidth: float | None = None  # peaks only


def _start(chain: MasterChain, sample_rate: float) -> list[_Band]:
    """Each automix band on its nearest Zam band; the high-pass on the second low shelf
    (a deep cut a little above its -6 dB point). Peak widths start where Orfanidis' and RBJ's
    half-gain widths agree (found by measurement: RBJ's Q over 2 pi, since ZamEQ2 reads its
    width in cycles where radians are meant)."""
    eq, hp_hz = chain.eq, chain.highpass.freq_hz
    hp_on = hp_hz > FIT_BAND_HZ[0] / 4.0  # below, its effect in the band is a fraction of a dB
    return [
        _Band(0, "l", eq.low_shelf_freq_hz, eq.low_shelf_gain_db),
        _Band(0, "h", eq.high_shelf_freq_hz, eq.high_shelf_gain_db),
        _Band(0, "1", eq.peak1_freq_hz, eq.peak1_gain_db, bandwidth_of_q(eq.peak1_q / 2 / math.pi)),
        _Band(0, "2", eq.peak2_freq_hz, eq.peak2_gain_db, bandwidth_of_q(eq.peak2_q / 2 / math.pi)),
        _Band(1, "l", max(hp_hz * 1.2, FREQ_HZ[0]), -24.0 if hp_on else -1.0),
        _Band(1, "h", min(12000.0, FREQ_HZ[1]), MIN_GAIN_DB),
        _Band(1, "1", eq.peak3_freq_hz, eq.peak3_gain_db, bandwidth_of_q(eq.peak3_q / 2 / math.pi)),
        _Band(1, "2", 1000.0, MIN_GAIN_DB, 1.0),
    ]


def _controls(bands: list[_Band], master_db: float) -> list[dict[str, float]]:
    count = 1 + max(band.instance for band in bands)
    instances: list[dict[str, float]] = [{"master_gain_db": 0.0, "peaks_on": 0.0}
                                         for _ in range(count)]
    for band in bands:
        c = instances[band.instance]
        c[f"boost_cut_{band.key}_db"] = band.gain_db
        c[f"frequency_{band.key}_hz"] = band.freq_hz
        if band.bandwidth is not None:
            c[f"bandwidth_{band.key}"] = band.bandwidth
    for controls in instances:  # the first takes what it can, the next the rest
        controls["master_gain_db"] = float(np.clip(master_db, *MASTER_DB))
        master_db -= controls["master_gain_db"]
    return instances


def fit(chain: MasterChain, sample_rate: float) -> list[dict[str, float]]:
    """The controls of two ZamEQ2s in series whose magnitude matches automix's high-pass and
    EQ over `FIT_BAND_HZ`: least squares in dB with a minimax polish, from `_start`; while
    the worst error is over a quarter of `EQ_TOLERANCE_DB`, the spare bands (those `_start`
    leaves at 0 dB) are put on the worst misses and the fit runs again; still over half of
    it, up to `RESTARTS` fits from seeded perturbations of the best (the landscape has local
    minima where bands trade roles). The best is kept; the result is deterministic."""
    freqs = fit_freqs_hz()
    want = target_db(chain, freqs, sample_rate)
    best, err = _fit_with_spares(_start(chain, sample_rate), freqs, want, sample_rate)
    rng = np.random.default_rng(RESTART_SEED)
    for _ in range(RESTARTS):
        if err <= EQ_TOLERANCE_DB / 2:
            break
        moved = [_Band(b.instance, b.key,
                       float(np.clip(b.freq_hz * math.exp(rng.normal(0.0, 0.4)), *FREQ_HZ)),
                       float(np.clip(b.gain_db + rng.normal(0.0, 2.0), *GAIN_DB)),
                       None if b.bandwidth is None else
                       float(np.clip(b.bandwidth * math.exp(rng.normal(0.0, 0.3)), *BANDWIDTH)))
                 for b in best]
        bands, moved_err = _fit_from(moved, freqs, want, sample_rate)
        if moved_err < err:
            best, err = bands, moved_err
    return _controls(best, _master(best, freqs, want, sample_rate))


def _fit_with_spares(bands: list[_Band], freqs: np.ndarray, want: np.ndarray,
                     sample_rate: float) -> tuple[list[_Band], float]:
    """`_fit_from` ``bands``, then again with the spare bands on the worst misses (see `fit`);
    the best bands and their worst error."""
    spares = [i for i, band in enumerate(bands) if abs(band.gain_db) <= MIN_GAIN_DB]
    best, best_err = bands, math.inf
    for _ in range(1 + SPARE_ROUNDS):
        bands, err = _fit_from(bands, freqs, want, sample_rate)
        if err < best_err:
            best, best_err = bands, err
        if best_err <= EQ_TOLERANCE_DB / 4:
            break
        miss = want - response_db(_controls(best, 0.0), freqs, sample_rate)
        miss -= np.median(miss)
        bands = list(best)
        taken: list[float] = []
        for i in spares:
            order = np.argsort(-np.abs(miss))
            k = next((k for k in order if all(abs(math.log2(freqs[k] / t)) > 1 for t in taken)),
                     order[0])
            taken.append(float(freqs[k]))
            bw = 1.0 if bands[i].bandwidth is not None else None
            bands[i] = _Band(bands[i].instance, bands[i].key, float(freqs[k]),
                             float(np.clip(miss[k], -12, 12)), bw)
    return best, best_err


def _master(bands: list[_Band], freqs: np.ndarray, want: np.ndarray, sample_rate: float
            ) -> float:
    """The master gain that centres the error of ``bands`` (within ZamEQ2's range)."""
    err = want - response_db(_controls(bands, 0.0), freqs, sample_rate)
    count = 1 + max(band.instance for band in bands)
    return float(np.clip((err.max() + err.min()) / 2, count * MASTER_DB[0],
                         count * MASTER_DB[1]))


def _fit_from(start: list[_Band], freqs: np.ndarray, want: np.ndarray, sample_rate: float
              ) -> tuple[list[_Band], float]:
    """Least squares, then Lawson's reweighting toward minimax, from ``start``; the fitted
    bands and their worst error in dB (with the centring master gain)."""
    from scipy.optimize import least_squares

    lows, highs, x0 = [], [], []
    for band in start:
        # a band keeps its role (within `FREQ_ROAM` of its start); the spare ones roam
        roam = FREQ_ROAM if abs(band.gain_db) > MIN_GAIN_DB else FREQ_HZ[1] / FREQ_HZ[0]
        lows += [math.log(max(FREQ_HZ[0], band.freq_hz / roam)), GAIN_DB[0]]
        highs += [math.log(min(FREQ_HZ[1], band.freq_hz * roam)), GAIN_DB[1]]
        x0 += [math.log(band.freq_hz), band.gain_db]
        if band.bandwidth is not None:
            lows.append(math.log(BANDWIDTH[0]))
            highs.append(math.log(BANDWIDTH[1]))
            x0.append(math.log(band.bandwidth))
    count = 1 + max(band.instance for band in start)
    lows.append(count * MASTER_DB[0])
    highs.append(count * MASTER_DB[1])
    x0.append(0.0)
    x0 = np.clip(x0, np.array(lows) + 1e-9, np.array(highs) - 1e-9)

    def unpack(x: np.ndarray) -> list[_Band]:
        bands, i = [], 0
        for band in start:
            bw = math.exp(x[i + 2]) if band.bandwidth is not None else None
            bands.append(_Band(band.instance, band.key, math.exp(x[i]), float(x[i + 1]), bw))
            i += 3 if bw is not None else 2
        return bands

    def residual(x: np.ndarray) -> np.ndarray:
        return response_db(_controls(unpack(x), 0.0), freqs, sample_rate) + x[-1] - want

    x = least_squares(residual, x0, bounds=(lows, highs), x_scale="jac", max_nfev=300).x
    weights = np.ones_like(freqs)
    for _ in range(MINIMAX_ROUNDS):
        err = np.abs(residual(x))
        if err.max() <= EQ_TOLERANCE_DB / 4:
            break
        weights = weights * (err / err.mean() + 1e-3)
        weights /= weights.mean()
        w = np.sqrt(weights)
        x = least_squares(lambda v, w=w: w * residual(v), x, bounds=(lows, highs),
                          x_scale="jac", max_nfev=100).x
    bands = unpack(x)
    err = want - response_db(_controls(bands, 0.0), freqs, sample_rate)
    return bands, float((err.max() - err.min()) / 2)


def copied(chain: MasterChain) -> list[dict[str, float]]:
    """automix's bands copied onto two ZamEQ2s as they are, no fit (the baseline the fit is
    measured against): shelves and peaks at their frequency and gain, each peak's width from
    its Q as ZamEQ2 reads a Q, and no high-pass (ZamEQ2 has none)."""
    eq = chain.eq
    return [
        {"boost_cut_l_db": eq.low_shelf_gain_db, "frequency_l_hz": eq.low_shelf_freq_hz,
         "boost_cut_h_db": eq.high_shelf_gain_db, "frequency_h_hz": eq.high_shelf_freq_hz,
         "boost_cut_1_db": eq.peak1_gain_db, "frequency_1_hz": eq.peak1_freq_hz,
         "bandwidth_1": bandwidth_of_q(eq.peak1_q), "boost_cut_2_db": eq.peak2_gain_db,
         "frequency_2_hz": eq.peak2_freq_hz, "bandwidth_2": bandwidth_of_q(eq.peak2_q),
         "master_gain_db": 0.0},
        {"boost_cut_l_db": MIN_GAIN_DB, "frequency_l_hz": 30.0, "boost_cut_h_db": MIN_GAIN_DB,
         "frequency_h_hz": 12000.0, "boost_cut_1_db": eq.peak3_gain_db,
         "frequency_1_hz": eq.peak3_freq_hz, "bandwidth_1": bandwidth_of_q(eq.peak3_q),
         "boost_cut_2_db": MIN_GAIN_DB, "frequency_2_hz": 1000.0, "bandwidth_2": 1.0,
         "master_gain_db": 0.0},
    ]


def max_error_db(instances: list[dict[str, float]], chain: MasterChain,
                 sample_rate: float) -> float:
    """The largest |Zam - automix| in dB over `FIT_BAND_HZ`, by the formulas."""
    freqs = fit_freqs_hz()
    return float(np.max(np.abs(response_db(instances, freqs, sample_rate)
                               - target_db(chain, freqs, sample_rate))))
