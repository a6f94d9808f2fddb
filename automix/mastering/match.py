"""Suggesting a master chain: the DSP matcher (the baseline) and the analysis network.

`suggest_chain` returns a `params.MasterChain` (high-pass, EQ, compressor, width) that moves
the input toward the reference: the DSP matcher fits the high-pass and EQ to the tonal-balance
difference (`fit_eq`), picks a compressor by rendering a ladder on the loudest excerpt
(`choose_compressor`) and scales the width by the ratio of widths (`dsp_match`); the network
predicts the chain from both productions' audio (`network_match`, `automix.model.predict`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from automix import analysis, loudness
from automix.analysis import Analysis
from automix.audio import Audio, load
from automix.effects import biquad, render
from automix.effects.limiter import LimiterGain
from automix.errors import SettingsError
from automix.mastering import readable
from automix.mastering.finalise import gain_curve
from automix.mastering.readable import MAX_EQ_MOVE_DB
from automix.params import (
    CompressorParams,
    EQParams,
    HighpassParams,
    LimiterParams,
    MasterChain,
    StereoWidthParams,
    as_dict,
    ranges,
)
from automix.presets import Target
from automix.settings import MASTER_METHOD, METHODS, REFINE_SECONDS, REFINE_STEPS, Reference
from automix.solvers import bounded_least_squares

EXCERPT_S = 10.0  # the compressor is chosen on the loudest excerpt of this length
FIT_SAMPLE_RATE = 96000  # the EQ fit's responses are computed at this rate, whatever the input's
EQ_KNEE_DB = 6.0  # the difference is followed as EQ_KNEE_DB * tanh(difference / EQ_KNEE_DB)
EQ_GAIN_PENALTY = 0.1  # ridge on EQ gains: prefer the smallest moves that fit
EQ_STOP_PENALTY = 0.6  # weight of the wall MAX_EQ_MOVE_DB * (gain / MAX_EQ_MOVE_DB) ** 6 (dB):
EQ_STOP_POWER = 6  # steep: 0.3 dB of residual at 4 dB, 3.6 dB at the stop
EQ_SHAPE_PRIOR = 10.0  # frequencies and Qs (0..1 space) are drawn this strongly to their defaults
# (stronger priors agree better across sample rates but follow moved bands worse:
# benchmarks/readable.py, 20 -> 4 of 92 disagreements but a larger self-transfer error)
# (ratio, threshold relative to the excerpt's loudness in LU, attack ms), gentlest first.
# JUCE's attack time constant is ms / 2 pi: "10 ms" reacts in about 1.6 ms.
COMPRESSOR_LADDER = ((1.5, 4.0, 30.0), (2.0, 2.0, 20.0), (2.0, -2.0, 20.0), (3.0, -4.0, 10.0),
                     (4.0, -8.0, 10.0), (6.0, -12.0, 5.0))


def fit_eq(input_features: Analysis, reference_features: Analysis,
           sample_rate: int) -> tuple[HighpassParams, EQParams]:
    """Fit the high-pass and the five EQ bands to the mid tonal-balance difference
    (reference - input), as `readable.tonal_difference` smooths it.

    Least squares over every parameter within its range (in the table's 0..1 space, so
    frequencies and Qs move geometrically) plus a free level offset (the loudness stage sets
    the level). Regularised so that a producer can read the result (`readable`):

    - the difference is followed through a soft knee (`EQ_KNEE_DB`), and gains pay a ridge
      (`EQ_GAIN_PENALTY`) and a wall that grows steeply toward the +-`MAX_EQ_MOVE_DB` stops
      (`EQ_STOP_PENALTY`): a gain reaches a stop only where the difference is far beyond it;
    - frequencies and Qs are drawn weakly toward their defaults (`EQ_SHAPE_PRIOR`), so that a
      band the data does not need stays where it was instead of wandering;
    - the responses are computed at `FIT_SAMPLE_RATE` whatever the input's rate (the same
      song at 44.1 and 96 kHz gets the same settings; the bands above 0.45 x the input's rate
      are left out);
    - bands that end up fighting (`readable.fights`) are merged (`readable.tidy_eq`) and the
      remaining gains refitted with frequencies and Qs held.
    """
    centers = np.asarray(analysis.BAND_CENTERS_HZ, dtype=np.float64)
    diff = readable.tonal_difference(input_features, reference_features)
    valid = np.isfinite(diff) & (centers < 0.45 * sample_rate)
    if valid.sum() < 4:
        return HighpassParams(), EQParams()
    target = EQ_KNEE_DB * np.tanh(diff[valid] / EQ_KNEE_DB)
    freqs = centers[valid]
    # The extremes count less: sub-bass is noisy in short excerpts, and lossy-coded references
    # are often low-passed above 12-16 kHz (an encoder's choice, not the producer's).
    weights = np.where(freqs > 11000, 0.25, np.where(freqs < 40, 0.5, 1.0))
    hp_range = ranges(HighpassParams)["freq_hz"]
    eq_ranges = ranges(EQParams)
    names = list(eq_ranges)
    is_gain = np.array([False] + [n.endswith("gain_db") for n in names] + [False])
    is_shape = np.array([True] + [not n.endswith("gain_db") for n in names] + [False])
    rate = FIT_SAMPLE_RATE

    def unpack(v: np.ndarray) -> tuple[HighpassParams, EQParams]:
        """Parameters of shape v.shape[:-1] + (1,) from normalised vectors (..., n)."""
        return (HighpassParams(freq_hz=hp_range.denormalize(v[..., :1])),
                EQParams(**{n: eq_ranges[n].denormalize(v[..., 1 + i:2 + i])
                            for i, n in enumerate(names)}))

    v0 = np.array([0.0] + [eq_ranges[n].normalize(eq_ranges[n].default) for n in names] + [0.0])

    def residuals(v: np.ndarray) -> np.ndarray:
        """Weighted errors and penalties, (k, bands + gains + gains + shapes), of vectors (k, n)."""
        hp, eq = unpack(v)
        smooth = biquad.SMOOTH
        highpass = biquad.first_order_highpass(hp.freq_hz, rate, xp=smooth)
        cascade = biquad.stack_sections([highpass, highpass,
                                         biquad.eq_cascade(eq, rate, xp=smooth)])
        resp = biquad.magnitude_db([cascade], freqs, rate)
        gains = np.concatenate([getattr(eq, n) for n in names if n.endswith("gain_db")],
                               axis=-1)
        wall = MAX_EQ_MOVE_DB * (gains / MAX_EQ_MOVE_DB) ** EQ_STOP_POWER
        return np.concatenate([weights * (resp + v[..., -1:] - target), EQ_GAIN_PENALTY * gains,
                               EQ_STOP_PENALTY * wall,
                               EQ_SHAPE_PRIOR * (v[..., is_shape] - v0[is_shape])], axis=-1)

    # Gains are bounded to +-MAX_EQ_MOVE_DB (a mastering move), the rest to their full range.
    gain_lo = {n: eq_ranges[n].normalize(-MAX_EQ_MOVE_DB) for n in names if n.endswith("gain_db")}
    gain_hi = {n: eq_ranges[n].normalize(MAX_EQ_MOVE_DB) for n in names if n.endswith("gain_db")}
    lower = np.r_[0.0, [gain_lo.get(n, 0.0) for n in names], -30.0]
    upper = np.r_[1.0, [gain_hi.get(n, 1.0) for n in names], 30.0]
    # The fit has local minima: it starts from the defaults, and from the best gains for the
    # default frequencies and Qs; the lower cost wins.
    gains_first = bounded_least_squares(residuals, v0, np.where(is_gain, lower, v0),
                                        np.where(is_gain, upper, v0))
    fits = [bounded_least_squares(residuals, start, lower, upper) for start in (v0, gains_first)]
    costs = [float(np.sum(residuals(v[None]) ** 2)) for v in fits]
    best = fits[int(np.argmin(costs))]
    hp, eq = unpack(best)
    eq = EQParams(**{k: float(v[0]) for k, v in as_dict(eq).items()})
    tidied = readable.tidy_eq(eq)
    if tidied != eq:  # refit the gains left, with the merged bands at 0 dB
        zero = np.array([False] + [n.endswith("gain_db") and getattr(tidied, n) == 0.0
                                   and getattr(eq, n) != 0.0 for n in names] + [False])
        zero_v = np.r_[0.0, [eq_ranges[n].normalize(0.0) if n.endswith("gain_db") else 0.0
                             for n in names], 0.0]
        start = np.where(zero, zero_v, best)
        free = is_gain & ~zero | (np.arange(best.size) == best.size - 1)
        best = bounded_least_squares(residuals, start, np.where(free, lower, start),
                                     np.where(free, upper, start))
        hp, eq = unpack(best)
        eq = EQParams(**{k: float(v[0]) for k, v in as_dict(eq).items()})
    hp = HighpassParams(freq_hz=float(hp.freq_hz[0]))
    return round_params(hp), readable.tidy_eq(round_params(eq))


def round_params(p: Any) -> Any:
    """Round real-unit values for display and files (0.01 dB, 0.1 Hz are far below audibility)."""
    return replace(p, **{k: round(float(v), 3) for k, v in as_dict(p).items()})


def choose_compressor(excerpt: np.ndarray, sample_rate: int, chain: MasterChain,
                      reference_plr_db: float, target: Target,
                      whole_lufs: float) -> CompressorParams:
    """Pick the compressor whose master has the peak-to-loudness ratio closest to the reference's.

    Each candidate is rendered on the loudest ``excerpt`` (channels, samples); its gain to
    ``target`` and the limiter are applied as `finalise` predicts them (the limiter's curve
    times the compressed excerpt's weighted power and true-peak envelope). The excerpt's PLR
    is shifted by how much louder the excerpt is than the whole song (``whole_lufs``). Ties
    within 0.5 dB go to the gentler setting.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:  # the excerpt's loudness beside the chain
        excerpt_lufs = pool.submit(loudness.integrated_lufs, excerpt, sample_rate)
        pre = render.master_chain(excerpt, sample_rate, chain)
        pre_power = loudness.weighted_power(pre, sample_rate)
        excerpt_offset = excerpt_lufs.result() - whole_lufs
    pre_lufs = loudness.integrated_lufs_of_power(pre_power, sample_rate)
    limiter = LimiterParams(ceiling_dbtp=target.ceiling_dbtp)
    candidates = [CompressorParams()] + [
        CompressorParams(threshold_db=round(max(-60.0, min(0.0, pre_lufs + offset)), 2),
                         ratio=ratio, attack_ms=attack_ms, release_ms=150.0)
        for ratio, offset, attack_ms in COMPRESSOR_LADDER
    ]

    def master_plr(comp: CompressorParams) -> float:
        # one thread per candidate; the one without plugins (ratio 1) is ``pre`` itself
        plugins = render.compressor_plugins(comp)
        y = render.process(plugins, pre, sample_rate, threads=False) if plugins else pre
        power = loudness.weighted_power(y, sample_rate) if plugins else pre_power
        envelope = loudness.true_peak_envelope(y, sample_rate)
        gain_db = (target.integrated_lufs + excerpt_offset
                   - loudness.integrated_lufs_of_power(power, sample_rate))
        curve = gain_curve(LimiterGain(envelope, sample_rate, limiter), gain_db)
        return (loudness.amp_to_db(np.max(envelope * curve))
                - loudness.integrated_lufs_of_power(power * np.square(curve), sample_rate)
                + excerpt_offset)

    with ThreadPoolExecutor(max_workers=2) as pool:  # pedalboard and numpy release the GIL
        plrs = list(pool.map(master_plr, candidates))
    errors = [abs(plr - reference_plr_db) + 0.5 * i / len(candidates)
              for i, plr in enumerate(plrs)]
    return candidates[int(np.argmin(errors))]


def suggest_chain(audio: Audio, input_analysis: analysis.Analysis, reference: Reference,
                  target: Target, *, method: str = MASTER_METHOD,
                  refine_steps: int = REFINE_STEPS,
                  refine_seconds: float = REFINE_SECONDS) -> tuple[MasterChain, str]:
    """The master chain from the DSP matcher or the network (+ refinement through the twin),
    and the method that made it: the network hears the reference's audio, so a reference
    known only by its features (one built in code from an analysis) goes to the DSP matcher."""
    if method == "network" and not reference.sources:
        method = "dsp"
    if method == "dsp":
        return dsp_match(audio, input_analysis, reference, target), method
    if method == "network":
        return network_match(audio, input_analysis, reference, refine_steps=refine_steps,
                             refine_seconds=refine_seconds), method
    raise SettingsError(f"unknown method {method!r}; choose {', '.join(METHODS)}")


def network_match(audio: Audio, input_analysis: analysis.Analysis, reference: Reference, *,
                  refine_steps: int = REFINE_STEPS,
                  refine_seconds: float = REFINE_SECONDS) -> MasterChain:
    """The analysis network's settings, refined for at most ``refine_steps`` steps and
    ``refine_seconds`` through the twin toward the reference's production features, held to
    the readability rules as the DSP matcher's are (`readable.tidy`).

    The reference is heard through its audio: the reference file, or a preset's reference
    tracks (their feature vectors are averaged).
    """
    if not reference.sources:
        raise SettingsError(f"reference {reference.name!r} has no audio for the network; "
                            "use --method dsp")
    from automix.model import predict

    model = predict.load_model()
    refs = [load(p) for p in reference.sources]
    ref_features = predict.reference_features_from_audio([(r.samples, r.sample_rate)
                                                          for r in refs])
    chain = predict.predict_master_chain(model, audio.samples, audio.sample_rate, ref_features)
    if refine_steps > 0:
        chain = predict.refine(model, audio.samples, audio.sample_rate, ref_features, init=chain,
                               steps=refine_steps, time_budget_s=refine_seconds)
    chain = readable.tidy(chain, input_width=input_analysis.width,
                          reference_width=reference.features.width,
                          single_production=reference.kind == "file")
    return replace(chain, **{g: round_params(getattr(chain, g))
                             for g in ("highpass", "eq", "compressor", "width")})


def match_tone(input_analysis: analysis.Analysis, reference: Reference, sample_rate: int,
               channels: int) -> MasterChain:
    """The DSP matcher's high-pass, EQ and width (no compressor): `fit_eq` and the width ratio,
    held to the readability rules (`readable.tidy`)."""
    ref = reference.features
    highpass, eq = fit_eq(input_analysis.rounded(), ref, sample_rate)
    width_pct = 100.0
    if channels == 2 and input_analysis.width > 0.02 and math.isfinite(ref.width) and ref.width:
        width_pct = 100.0 * ref.width / input_analysis.width
    return readable.tidy(MasterChain(highpass=highpass, eq=eq,
                                     width=StereoWidthParams(width_pct=width_pct)),
                         input_width=input_analysis.width, reference_width=ref.width,
                         single_production=reference.kind == "file")


def dsp_match(audio: Audio, input_analysis: analysis.Analysis, reference: Reference,
              target: Target) -> MasterChain:
    """The baseline matcher: high-pass and EQ from the tonal-balance difference, compressor
    from the peak-to-loudness difference, width from the width ratio; the chain keeps the
    readability rules (`readable.tidy`: EQ fights merged, width floor)."""
    ref = reference.features
    chain = match_tone(input_analysis, reference, audio.sample_rate, audio.channels)
    start, end = analysis.loudest_excerpt(audio.samples, audio.sample_rate, EXCERPT_S)
    comp = choose_compressor(audio.samples[:, start:end], audio.sample_rate, chain,
                             ref.plr_db, target, input_analysis.integrated_lufs)
    return replace(chain, compressor=comp)


