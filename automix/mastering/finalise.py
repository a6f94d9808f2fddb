"""Finalising a master: the gain to the delivery loudness, the true-peak limiter, the verify.

`finalise` renders the chain once, searches the gain on a prediction (the limited loudness
from the chain's K-weighted power times the limiter's gain curve squared, `gain_for_loudness`),
applies gain and limiter, analyses the result, and searches again without the prediction's
bias when the result misses the target (at most `MAX_RENDERS` renders). `render_master`
renders stored settings exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from automix import analysis, loudness
from automix.audio import Audio, BackgroundWriter
from automix.effects import render
from automix.effects.limiter import (
    COARSE_FACTOR,
    LimiterGain,
    apply_gain_curve,
    block_reduce,
    residue_trim_db,
    trim_residue,
)
from automix.params import LimiterParams, MasterChain
from automix.presets import Target
from automix.settings import MasterSettings

LOUDNESS_TOLERANCE_LU = 0.1  # a rendered master this close to the target is done
PREDICTION_TOLERANCE_LU = 0.02  # the gain search's aim, on its prediction
GAIN_SEARCH_DB = 150.0  # the gain search stays within +-this: far past any real song's need
MAX_GAIN_PASSES = 10  # predictions per search on the coarse model (~0.03 s each, 3-min song)
MAX_EXACT_CURVES = 3  # full-rate limiter curves per search (~0.15 s each)
MAX_RENDERS = 3


def render_master(audio: Audio, settings: MasterSettings) -> Audio:
    """Render settings exactly: chain, gain, true-peak limiter."""
    chained, curve = chained_and_curve(audio, settings)
    return Audio(apply_gain_curve(chained, curve, audio.sample_rate, settings.limiter),
                 audio.sample_rate)


def chained_and_curve(audio: Audio, settings: MasterSettings) -> tuple[np.ndarray, np.ndarray]:
    """The chain's output (channels, samples) and the gain-and-limiter curve (samples,) that
    settings render with."""
    chained = render.master_chain(audio.samples, audio.sample_rate, settings.chain)
    envelope = loudness.true_peak_envelope(chained, audio.sample_rate)
    return chained, gain_curve(LimiterGain(envelope, audio.sample_rate, settings.limiter),
                                settings.gain_db)


def limited_and_measured(chained: np.ndarray, curve: np.ndarray, sample_rate: int,
                          limiter: LimiterParams, writer: BackgroundWriter | None
                          ) -> tuple[Audio, analysis.Analysis]:
    """``chained`` under the gain ``curve``, analysed, with `apply_gain_curve`'s residue trim
    taken from the true peak that analysis measures (no second measurement); a ``writer``
    writes it meanwhile."""
    out = Audio(chained * curve[None, :], sample_rate)
    if writer is not None:
        writer.write(out)
    measured = analysis.analyze(out.samples, sample_rate)
    if residue_trim_db(measured.true_peak_dbtp, limiter) < 0:
        if writer is not None:
            writer.discard()  # before `out` changes
        trim_residue(out.samples, measured.true_peak_dbtp, limiter)
        measured = analysis.analyze(out.samples, sample_rate)
        if writer is not None:
            writer.write(out)
    return out, measured


def gain_curve(limiter: LimiterGain, gain_db: float) -> np.ndarray:
    """The gain then the limiter's, per sample, shape (samples,); ``limiter`` holds the
    chain's true-peak envelope."""
    gain = np.float32(10 ** (gain_db / 20))
    curve = limiter(gain)
    curve *= gain
    return curve


def capped_gain_db(target: Target, chain_peak_dbtp: float) -> float | None:
    """The largest gain at which the limiter takes at most ``target.max_limiting_db`` off the
    chain's loudest true peak (``chain_peak_dbtp``); None when the target has no such cap."""
    if target.max_limiting_db is None:
        return None
    return round(target.ceiling_dbtp + target.max_limiting_db - chain_peak_dbtp, 4)


def finalise(audio: Audio, chain: MasterChain, target: Target,
             release_ms: float = LimiterParams().release_ms, *,
             writer: BackgroundWriter | None = None
             ) -> tuple[MasterSettings, Audio, analysis.Analysis]:
    """Find the gain that lands the limited result on the target loudness; render it and
    analyse the result.

    The gain is searched on a prediction (`gain_for_loudness`); the rendered result is
    analysed, and when it misses the target by more than `LOUDNESS_TOLERANCE_LU` the search
    runs again with the prediction's bias removed. A target with ``max_limiting_db`` (a
    reference file's) stops at `capped_gain_db`: the master is then quieter than the target.
    A ``writer`` writes each rendered result while it is analysed (the last one is the
    answer: the caller commits it).
    """
    sample_rate = audio.sample_rate
    chained = render.master_chain(audio.samples, sample_rate, chain)
    limiter = LimiterParams(ceiling_dbtp=target.ceiling_dbtp, release_ms=release_ms)
    with ThreadPoolExecutor(max_workers=1) as pool:  # BLAS and pedalboard side by side
        envelope = pool.submit(loudness.true_peak_envelope, chained, sample_rate)
        power = loudness.weighted_power(chained, sample_rate)
        envelope = envelope.result()
    gain_db = target.integrated_lufs - loudness.integrated_lufs_of_power(power, sample_rate)
    curves = LimiterGain(envelope, sample_rate, limiter)
    cap = capped_gain_db(target, loudness.amp_to_db(float(np.max(envelope))))
    bias = 0.0
    for _ in range(MAX_RENDERS):
        gain_db, curve, predicted = gain_for_loudness(curves, power, sample_rate,
                                                       target.integrated_lufs - bias, gain_db)
        capped = cap is not None and gain_db > cap
        if capped:
            gain_db, curve = cap, gain_curve(curves, cap)
        out, measured = limited_and_measured(chained, curve, sample_rate, limiter, writer)
        if capped or abs(target.integrated_lufs - measured.integrated_lufs) \
                <= LOUDNESS_TOLERANCE_LU:
            break
        bias = measured.integrated_lufs - predicted
    settings = MasterSettings(chain=chain, gain_db=gain_db, limiter=limiter,
                              target_lufs=target.integrated_lufs)
    return settings, out, measured


def gain_for_loudness(limiter: LimiterGain, power: np.ndarray, sample_rate: int, lufs: float,
                       gain_db: float) -> tuple[float, np.ndarray, float]:
    """The gain in dB (rounded to 1e-4, as stored) at which the limited chain is predicted to
    read ``lufs``, searched from ``gain_db``; its `gain_curve`; and the prediction.

    The prediction renders nothing: next to the K-weighting filters the limiter's gain curve
    moves slowly, so the limited signal's weighted power is the chain's (``power``, see
    `loudness.weighted_power`) times the curve squared; off by 0.01-0.2 LU, more under heavy
    limiting. ``limiter`` holds the chain's true-peak envelope. Gains are tried on its
    `LimiterGain.coarse` model (an eighth of the work); the full-rate curve is computed for
    the gain found, and when its prediction misses by more than `PREDICTION_TOLERANCE_LU`
    the model's bias there is taken off and the search runs on.
    """
    coarse = limiter.coarse(COARSE_FACTOR)
    whole = power.size // COARSE_FACTOR
    pooled = block_reduce(power, COARSE_FACTOR, np.add)[:whole] / np.float32(COARSE_FACTOR)

    def coarse_lufs(gain_db: float) -> float:
        return _limited_lufs(gain_curve(coarse, gain_db)[:whole], pooled,
                             sample_rate / COARSE_FACTOR)

    bias = 0.0
    for _ in range(MAX_EXACT_CURVES):
        gain_db, modelled = _secant_search(coarse_lufs, lufs - bias, gain_db)
        curve = gain_curve(limiter, gain_db)
        predicted = _limited_lufs(curve, power, sample_rate)
        if abs(lufs - predicted) <= PREDICTION_TOLERANCE_LU:
            break
        bias = predicted - modelled
    return gain_db, curve, predicted


def _limited_lufs(curve: np.ndarray, power: np.ndarray, sample_rate: float) -> float:
    """Predicted integrated loudness of a chain with weighted ``power`` under a gain
    ``curve`` (both (samples,))."""
    limited_power = np.square(curve)
    limited_power *= power
    return loudness.integrated_lufs_of_power(limited_power, sample_rate)


def _secant_search(lufs_at: Callable[[float], float], lufs: float,
                   gain_db: float) -> tuple[float, float]:
    """The gain in dB (rounded to 1e-4) where ``lufs_at`` reads ``lufs`` within
    `PREDICTION_TOLERANCE_LU`, by secant steps from ``gain_db``, and its reading. Limiting
    only ever takes loudness away, so each dB of gain adds between 0 and 1 dB of loudness; a
    target the limiter cannot reach (the gain stops adding loudness) stops the search at
    +-`GAIN_SEARCH_DB` instead of running off to an overflow."""
    previous: tuple[float, float] | None = None
    for attempt in range(MAX_GAIN_PASSES):
        gain_db = round(gain_db, 4)
        predicted = lufs_at(gain_db)
        error = lufs - predicted
        if abs(error) <= PREDICTION_TOLERANCE_LU or attempt == MAX_GAIN_PASSES - 1:
            break
        slope = 1.0
        if previous is not None and previous[0] != gain_db:
            slope = (predicted - previous[1]) / (gain_db - previous[0])
        previous = (gain_db, predicted)
        gain_db = min(max(gain_db + error / min(max(slope, 0.1), 1.0), -GAIN_SEARCH_DB),
                      GAIN_SEARCH_DB)
    return gain_db, predicted


