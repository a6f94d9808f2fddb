"""Mastering: analyse -> suggest -> render -> finalise -> verify.

The chain is `params.MasterChain` (high-pass, EQ, compressor, width) rendered by pedalboard,
then a gain to the delivery target's loudness and a true-peak limiter. Settings are suggested
by the DSP matcher here (``method="dsp"``, the baseline) or by the analysis network
(``method="network"``, see `automix.model`).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from automix import __version__, analysis, loudness, presets
from automix.audio import (
    Audio,
    BackgroundWriter,
    all_or_nothing,
    check_format,
    check_writable,
    load,
    write_text_atomic,
)
from automix.effects import biquad, render
from automix.effects.limiter import (
    COARSE_FACTOR,
    LimiterGain,
    apply_gain_curve,
    block_reduce,
    residue_trim_db,
    trim_residue,
)
from automix.errors import AudioInputError, OutputError, SettingsError
from automix.params import (
    CompressorParams,
    EQParams,
    HighpassParams,
    LimiterParams,
    MasterChain,
    StereoWidthParams,
    as_dict,
    as_real,
    ranges,
    validate,
    validate_chain,
)
from automix.presets import Target

LOUDNESS_TOLERANCE_LU = 0.1  # a rendered master this close to the target is done
PREDICTION_TOLERANCE_LU = 0.02  # the gain search's aim, on its prediction
MAX_GAIN_PASSES = 10  # predictions per search on the coarse model (~0.03 s each, 3-min song)
MAX_EXACT_CURVES = 3  # full-rate limiter curves per search (~0.15 s each)
MAX_RENDERS = 3
EXCERPT_S = 10.0  # the compressor is chosen on the loudest excerpt of this length
MAX_EQ_MOVE_DB = 6.0  # the tonal-balance difference is followed at most this far (mastering moves)
EQ_GAIN_PENALTY = 0.02  # ridge on EQ gains: prefer the smallest moves that fit
# (ratio, threshold relative to the excerpt's loudness in LU, attack ms), gentlest first.
# JUCE's attack time constant is ms / 2 pi: "10 ms" reacts in about 1.6 ms.
COMPRESSOR_LADDER = ((1.5, 4.0, 30.0), (2.0, 2.0, 20.0), (2.0, -2.0, 20.0), (3.0, -4.0, 10.0),
                     (4.0, -8.0, 10.0), (6.0, -12.0, 5.0))
SCALAR_BOUNDS = {"gain_db": (-70.0, 40.0), "target_lufs": (-70.0, 0.0)}  # settings-file checks


@dataclass(frozen=True)
class Reference:
    """What the input is moved toward: a genre preset or a reference track's analysis.

    ``features`` has the layout of `analysis.Analysis.to_dict`.
    """

    name: str
    kind: str  # "preset" or "file"
    features: dict[str, Any]
    target: Target  # the loudness/ceiling used when the user names no --target
    sources: tuple[Path, ...] = ()  # the audio behind it (for previews and the network)


DEFAULT_CEILING_DBTP = -1.0
MAX_CHANNELS = 2  # songs and reference files are mono or stereo (see `check_channels`)


def check_channels(path: Path, channels: int) -> None:
    """`AudioInputError` for more than `MAX_CHANNELS` channels.

    Folding a surround production to stereo changes it, so automix refuses rather than
    guesses; the user downmixes with the intent they have.
    """
    if channels > MAX_CHANNELS:
        raise AudioInputError(f"{path}: {channels} channels: automix masters mono or stereo; "
                              "downmix to stereo first")


def resolve_reference(spec: str, *, ceiling_dbtp: float | None = None,
                      analysed: analysis.Analysis | None = None) -> Reference:
    """A genre preset by name, else an audio file by path (analysed here, unless
    ``analysed`` is that file's analysis, already made)."""
    names = [g.name for g in presets.list_genres()]
    if spec in names:
        profile = presets.load_genre(spec)
        root = presets.PRESETS_DIR.parent
        sources = tuple(p for p in (root / s for s in profile.sources) if p.exists())
        return Reference(spec, "preset", profile.features, presets.load_target(profile.target),
                         sources)
    path = Path(spec)
    if not path.exists():
        raise SettingsError(f"unknown reference {spec!r}: not a preset ({', '.join(names)}) "
                            "and no such file")
    key = _file_identity(path)
    if key not in _analysed_references:
        if analysed is None:
            ref = load(path)
            check_channels(path, ref.channels)
            analysed = analysis.analyze(ref.samples, ref.sample_rate)
        if len(_analysed_references) >= MAX_ANALYSED_REFERENCES:
            del _analysed_references[next(iter(_analysed_references))]
        _analysed_references[key] = analysed.to_dict()
    features = copy.deepcopy(_analysed_references[key])
    ceiling = DEFAULT_CEILING_DBTP if ceiling_dbtp is None else ceiling_dbtp
    target = Target(name=f"reference loudness ({path.name})",
                    integrated_lufs=round(features["integrated_lufs"], 2), ceiling_dbtp=ceiling,
                    description="the reference's own integrated loudness")
    return Reference(path.stem, "file", features, target, (path,))


# Reference files this process has analysed, by `_file_identity`: a batch worker masters many
# songs against one reference, and analyses it once.
_analysed_references: dict[tuple[str, int, int], dict[str, Any]] = {}
MAX_ANALYSED_REFERENCES = 8


def _file_identity(path: Path) -> tuple[str, int, int]:
    """Resolved path, size and modification time: a file changed in place is a new one."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def resolve_target(name: str | None, reference: Reference, *,
                   ceiling_dbtp: float | None = None) -> Target:
    """The named delivery target, else the reference's; ``ceiling_dbtp`` overrides either."""
    target = presets.load_target(name) if name else reference.target
    if ceiling_dbtp is not None:
        if not -9.0 <= ceiling_dbtp <= 0.0:
            raise SettingsError(f"--ceiling must be in [-9, 0] dBTP; got {ceiling_dbtp:g}")
        target = replace(target, ceiling_dbtp=ceiling_dbtp)
    return target


# What each --amount module scales toward its neutral value (the table's default), in the
# table's 0..1 space; frequencies, Qs and times are kept so that a band keeps its place.
AMOUNT_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "eq": (("highpass", "freq_hz"),) + tuple(
        ("eq", n) for n in ranges(EQParams) if n.endswith("_gain_db")),
    "dynamics": (("compressor", "threshold_db"), ("compressor", "ratio"),
                 ("compressor", "makeup_db")),
    "width": (("width", "width_pct"), ("pan", "pan")),  # a mix: stems also move to centre
}


def parse_amounts(text: str | None) -> dict[str, float]:
    """Parse ``--amount``: one number for every module, or ``eq=0.5,dynamics=1,width=0``."""
    amounts = dict.fromkeys(AMOUNT_FIELDS, 1.0)
    if text is None or not text.strip():
        return amounts
    allowed = ", ".join(AMOUNT_FIELDS)
    items = [s.strip() for s in text.split(",") if s.strip()]
    if len(items) == 1 and "=" not in items[0]:
        return dict.fromkeys(AMOUNT_FIELDS, _amount_value(items[0], "--amount"))
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise SettingsError(f"--amount: expected MODULE=VALUE, got {item!r} "
                                f"(modules: {allowed})")
        if key not in AMOUNT_FIELDS:
            raise SettingsError(f"--amount: unknown module {key!r}; allowed: {allowed}")
        amounts[key] = _amount_value(value, f"--amount {key}")
    return amounts


def _amount_value(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{where}: expected a number in [0, 1], got {text.strip()!r}") from None
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"{where}={value:g} is out of range [0, 1]")
    return value


def scale_chain(chain: Any, amounts: dict[str, float]) -> Any:
    """Move each module's settings toward neutral: 1 keeps them, 0 makes the module neutral.

    Works on any chain dataclass (`MasterChain`, `StemChain`); groups it lacks are skipped.
    """
    groups = {f.name: getattr(chain, f.name) for f in fields(chain)}
    for module, amount in amounts.items():
        for group, name in AMOUNT_FIELDS[module]:
            if group not in groups:
                continue
            r = ranges(groups[group])[name]
            u0, u = r.normalize(r.default), r.normalize(getattr(groups[group], name))
            value = round(float(r.denormalize(u0 + amount * (u - u0))), 3)
            groups[group] = replace(groups[group], **{name: value})
    return type(chain)(**groups)


@dataclass(frozen=True)
class MasterSettings:
    """Everything needed to re-render a master exactly, in real units."""

    chain: MasterChain = MasterChain()
    gain_db: float = 0.0
    limiter: LimiterParams = LimiterParams()
    target_lufs: float = -14.0

    def to_dict(self) -> dict[str, Any]:
        return {"chain": as_dict(self.chain), "gain_db": round(self.gain_db, 4),
                "limiter": as_dict(self.limiter), "target_lufs": self.target_lufs}

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "settings") -> MasterSettings:
        """Validate a settings mapping (unknown keys, types and ranges give `SettingsError`)."""
        if not isinstance(data, dict):
            raise SettingsError(f"{where}: expected a JSON object")
        allowed = {"chain", "gain_db", "limiter", "target_lufs"}
        unknown = sorted(set(data) - allowed, key=str)
        if unknown:
            raise SettingsError(f"{where}: unknown key {unknown[0]!r}; allowed: "
                                f"{', '.join(sorted(allowed))}")
        for key, (low, high) in SCALAR_BOUNDS.items():
            value = data.get(key, getattr(cls, key))
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(as_real(value)) or not low <= value <= high:
                raise SettingsError(f"{where}.{key}: expected a number in [{low:g}, {high:g}], "
                                    f"got {value!r}")
        return cls(chain=validate_chain(MasterChain, data.get("chain", {}), where=f"{where}.chain"),
                   gain_db=float(data.get("gain_db", cls.gain_db)),
                   limiter=validate(LimiterParams, data.get("limiter", {}),
                                    where=f"{where}.limiter"),
                   target_lufs=float(data.get("target_lufs", cls.target_lufs)))


@dataclass
class MasterResult:
    audio: Audio
    settings: MasterSettings
    method: str
    input: analysis.Analysis
    output: analysis.Analysis
    reference: Reference
    target: Target
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        ref_tonal = _bands(self.reference.features)
        return {
            "method": self.method,
            "reference": {"name": self.reference.name, "kind": self.reference.kind,
                          "features": self.reference.features},
            "target": as_dict(self.target),
            "settings": self.settings.to_dict(),
            "measurements": {"input": self.input.to_dict(), "output": self.output.to_dict()},
            "tonal_balance_error_db": {
                "input": round(_tonal_error(self.input.to_dict(), ref_tonal), 3),
                "output": round(_tonal_error(self.output.to_dict(), ref_tonal), 3),
            },
            "warnings": [{"code": w.code, "message": w.message} for w in self.input.warnings],
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
        }


# --- the DSP matcher (baseline) -------------------------------------------------------------


def _bands(features: dict[str, Any]) -> np.ndarray:
    mid = features["bands"]["mid_db"]
    return np.array([np.nan if v is None else v for v in mid], dtype=np.float64)


def _tonal_error(features: dict[str, Any], ref_mid: np.ndarray) -> float:
    """RMS dB difference over bands valid in both, after removing the mean offset."""
    diff = _bands(features) - ref_mid
    diff = diff[np.isfinite(diff)]
    return float(np.sqrt(np.mean((diff - diff.mean()) ** 2))) if diff.size else float("nan")


def fit_eq(input_features: dict[str, Any], reference_features: dict[str, Any],
           sample_rate: int) -> tuple[HighpassParams, EQParams]:
    """Fit the high-pass and the five EQ bands to the mid tonal-balance difference
    (reference - input).

    Least squares over every parameter within its range (in the table's 0..1 space, so
    frequencies and Qs move geometrically) plus a free level offset (the loudness stage sets
    the level), with a small ridge on the gains. The difference is smoothed over three bands
    and held to +-`MAX_EQ_MOVE_DB`.
    """
    centers = np.asarray(analysis.BAND_CENTERS_HZ, dtype=np.float64)
    diff = _bands(reference_features) - _bands(input_features)
    valid = np.isfinite(diff) & (centers < 0.45 * sample_rate)
    if valid.sum() < 4:
        return HighpassParams(), EQParams()
    target = np.convolve(np.where(valid, diff, 0.0), np.ones(3), "same") / np.maximum(
        np.convolve(valid.astype(float), np.ones(3), "same"), 1e-9)
    target = np.clip(target, -MAX_EQ_MOVE_DB, MAX_EQ_MOVE_DB)[valid]
    freqs = centers[valid]
    # The extremes count less: sub-bass is noisy in short excerpts, and lossy-coded references
    # are often low-passed above 12-16 kHz (an encoder's choice, not the producer's).
    weights = np.where(freqs > 11000, 0.25, np.where(freqs < 40, 0.5, 1.0))
    hp_range = ranges(HighpassParams)["freq_hz"]
    eq_ranges = ranges(EQParams)
    names = list(eq_ranges)
    gain_idx = [i for i, n in enumerate(names) if n.endswith("gain_db")]

    def unpack(v: np.ndarray) -> tuple[HighpassParams, EQParams]:
        """Parameters of shape v.shape[:-1] + (1,) from normalised vectors (..., n)."""
        return (HighpassParams(freq_hz=hp_range.denormalize(v[..., :1])),
                EQParams(**{n: eq_ranges[n].denormalize(v[..., 1 + i:2 + i])
                            for i, n in enumerate(names)}))

    def residuals(v: np.ndarray) -> np.ndarray:
        """Weighted errors and gain penalties, (k, bands + gains), of vectors (k, n)."""
        hp, eq = unpack(v)
        smooth = biquad.SMOOTH
        highpass = biquad.first_order_highpass(hp.freq_hz, sample_rate, xp=smooth)
        cascade = biquad.stack_sections([highpass, highpass,
                                         biquad.eq_cascade(eq, sample_rate, xp=smooth)])
        resp = biquad.magnitude_db([cascade], freqs, sample_rate)
        gains = np.concatenate([getattr(eq, names[i]) for i in gain_idx], axis=-1)
        return np.concatenate([weights * (resp + v[..., -1:] - target), EQ_GAIN_PENALTY * gains],
                              axis=-1)

    v0 = np.array([0.0] + [eq_ranges[n].normalize(eq_ranges[n].default) for n in names] + [0.0])
    # Gains are bounded to +-MAX_EQ_MOVE_DB (a mastering move), the rest to their full range.
    gain_lo = {n: eq_ranges[n].normalize(-MAX_EQ_MOVE_DB) for n in names if n.endswith("gain_db")}
    gain_hi = {n: eq_ranges[n].normalize(MAX_EQ_MOVE_DB) for n in names if n.endswith("gain_db")}
    lower = np.r_[0.0, [gain_lo.get(n, 0.0) for n in names], -30.0]
    upper = np.r_[1.0, [gain_hi.get(n, 1.0) for n in names], 30.0]
    # The fit has local minima: it starts from the defaults, and from the best gains for the
    # default frequencies and Qs; the lower cost wins.
    held = np.array([False] + [not n.endswith("gain_db") for n in names] + [False])
    gains_first = bounded_least_squares(residuals, v0, np.where(held, v0, lower),
                                        np.where(held, v0, upper))
    fits = [bounded_least_squares(residuals, start, lower, upper) for start in (v0, gains_first)]
    costs = [float(np.sum(residuals(v[None]) ** 2)) for v in fits]
    hp, eq = unpack(fits[int(np.argmin(costs))])
    hp = HighpassParams(freq_hz=float(hp.freq_hz[0]))
    eq = EQParams(**{k: float(v[0]) for k, v in as_dict(eq).items()})
    return _round_params(hp), _round_params(eq)


def bounded_least_squares(residuals: Callable[[np.ndarray], np.ndarray], v0: np.ndarray,
                          lower: np.ndarray, upper: np.ndarray, *, iterations: int = 100,
                          step: float = 1e-6) -> np.ndarray:
    """Minimise ``sum(residuals(v) ** 2)`` over ``lower <= v <= upper`` from ``v0`` (n,).

    ``residuals`` maps a batch of vectors (k, n) to residuals (k, m): the forward-difference
    Jacobian is one call. Levenberg-Marquardt with an active set: parameters held at a bound
    by their gradient stay there for the step, the others move and are clipped to the box.
    Written out because importing `scipy.optimize` alone costs 0.4 s of a 2-s master; on the
    EQ fit of 16 real songs its final cost is 0.92x scipy's ``least_squares`` (geometric mean;
    both find local minima, each sometimes the better one).
    """
    v = np.clip(np.asarray(v0, dtype=np.float64), lower, upper)
    r = residuals(v[None])[0]
    cost, damping = float(r @ r), 1e-3
    for _ in range(iterations):
        h = np.where(v + step <= upper, step, -step)  # stay inside the box
        jac = ((residuals(v + np.diag(h)) - r) / h[:, None]).T
        gradient = jac.T @ r
        free = ~(((v <= lower) & (gradient > 0)) | ((v >= upper) & (gradient < 0)))
        normal = jac[:, free].T @ jac[:, free]
        scale = np.diag(normal) + 1e-12
        while damping < 1e10:
            trial = v.copy()
            trial[free] -= np.linalg.solve(normal + damping * np.diag(scale), gradient[free])
            trial = np.clip(trial, lower, upper)
            r_trial = residuals(trial[None])[0]
            cost_trial = float(r_trial @ r_trial)
            if cost_trial < cost:
                break
            damping *= 4.0
        else:
            break  # no step downhill: a (constrained) minimum
        done = cost - cost_trial < 1e-9 * cost
        v, r, cost, damping = trial, r_trial, cost_trial, max(damping / 3.0, 1e-9)
        if done:
            break
    return v


def _round_params(p: Any) -> Any:
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
        curve = _gain_curve(LimiterGain(envelope, sample_rate, limiter), gain_db)
        return (loudness.amp_to_db(np.max(envelope * curve))
                - loudness.integrated_lufs_of_power(power * np.square(curve), sample_rate)
                + excerpt_offset)

    with ThreadPoolExecutor(max_workers=2) as pool:  # pedalboard and numpy release the GIL
        plrs = list(pool.map(master_plr, candidates))
    errors = [abs(plr - reference_plr_db) + 0.5 * i / len(candidates)
              for i, plr in enumerate(plrs)]
    return candidates[int(np.argmin(errors))]


METHODS = ("dsp", "network")
# Inference-time refinement through the twin (network method): off by default, because on the
# held-out style-transfer benchmark it made results worse (the reference is another part of
# the song, whose features differ from the target's); --refine-steps turns it on.
REFINE_STEPS = 0
REFINE_SECONDS = 8.0  # its time budget


def suggest_chain(audio: Audio, input_analysis: analysis.Analysis, reference: Reference,
                  target: Target, *, method: str = "dsp", refine_steps: int = REFINE_STEPS,
                  refine_seconds: float = REFINE_SECONDS) -> MasterChain:
    """The master chain from the DSP matcher or the network (+ refinement through the twin)."""
    if method == "dsp":
        return dsp_match(audio, input_analysis, reference, target)
    if method == "network":
        return network_match(audio, reference, refine_steps=refine_steps,
                             refine_seconds=refine_seconds)
    raise SettingsError(f"unknown method {method!r}; choose {', '.join(METHODS)}")


def network_match(audio: Audio, reference: Reference, *, refine_steps: int = REFINE_STEPS,
                  refine_seconds: float = REFINE_SECONDS) -> MasterChain:
    """The analysis network's settings, refined for at most ``refine_steps`` steps and
    ``refine_seconds`` through the twin toward the reference's production features.

    The reference is heard through its audio: the reference file, or a preset's reference
    tracks (their feature vectors are averaged).
    """
    if not reference.sources:
        raise SettingsError(f"reference {reference.name!r} has no audio for the network; "
                            "use --method dsp")
    import torch

    from automix.model import predict

    torch.set_num_threads(1)  # one thread per job: two are 10x slower on a busy 2-core box
    model = predict.load_model()
    refs = [load(p) for p in reference.sources]
    ref_features = predict.reference_features_from_audio([(r.samples, r.sample_rate)
                                                          for r in refs])
    chain = predict.predict_master_chain(model, audio.samples, audio.sample_rate, ref_features)
    if refine_steps > 0:
        chain = predict.refine(model, audio.samples, audio.sample_rate, ref_features, init=chain,
                               steps=refine_steps, time_budget_s=refine_seconds)
    return replace(chain, **{g: _round_params(getattr(chain, g))
                             for g in ("highpass", "eq", "compressor", "width")})


def dsp_match(audio: Audio, input_analysis: analysis.Analysis, reference: Reference,
              target: Target) -> MasterChain:
    """The baseline matcher: high-pass and EQ from the tonal-balance difference, compressor
    from the peak-to-loudness difference, width from the width ratio."""
    in_feat = input_analysis.to_dict()
    ref = reference.features
    highpass, eq = fit_eq(in_feat, ref, audio.sample_rate)
    width_pct = 100.0
    if audio.channels == 2 and input_analysis.width > 0.02 and ref.get("width"):
        width_pct = float(np.clip(100.0 * ref["width"] / input_analysis.width, 50.0, 150.0))
    chain = MasterChain(highpass=highpass, eq=eq,
                        width=StereoWidthParams(width_pct=round(width_pct, 1)))
    start, end = analysis.loudest_excerpt(audio.samples, audio.sample_rate, EXCERPT_S)
    comp = choose_compressor(audio.samples[:, start:end], audio.sample_rate, chain,
                             float(ref["plr_db"]), target, input_analysis.integrated_lufs)
    return replace(chain, compressor=comp)


# --- render and finalise ----------------------------------------------------------------------


def render_master(audio: Audio, settings: MasterSettings) -> Audio:
    """Render settings exactly: chain, gain, true-peak limiter."""
    chained, curve = _chained_and_curve(audio, settings)
    return Audio(apply_gain_curve(chained, curve, audio.sample_rate, settings.limiter),
                 audio.sample_rate)


def _chained_and_curve(audio: Audio, settings: MasterSettings) -> tuple[np.ndarray, np.ndarray]:
    """The chain's output (channels, samples) and the gain-and-limiter curve (samples,) that
    settings render with."""
    chained = render.master_chain(audio.samples, audio.sample_rate, settings.chain)
    envelope = loudness.true_peak_envelope(chained, audio.sample_rate)
    return chained, _gain_curve(LimiterGain(envelope, audio.sample_rate, settings.limiter),
                                settings.gain_db)


def _limited_and_measured(chained: np.ndarray, curve: np.ndarray, sample_rate: int,
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


def _gain_curve(limiter: LimiterGain, gain_db: float) -> np.ndarray:
    """The gain then the limiter's, per sample, shape (samples,); ``limiter`` holds the
    chain's true-peak envelope."""
    gain = np.float32(10 ** (gain_db / 20))
    curve = limiter(gain)
    curve *= gain
    return curve


def finalise(audio: Audio, chain: MasterChain, target: Target,
             release_ms: float = LimiterParams().release_ms, *,
             writer: BackgroundWriter | None = None
             ) -> tuple[MasterSettings, Audio, analysis.Analysis]:
    """Find the gain that lands the limited result on the target loudness; render it and
    analyse the result.

    The gain is searched on a prediction (`_gain_for_loudness`); the rendered result is
    analysed, and when it misses the target by more than `LOUDNESS_TOLERANCE_LU` the search
    runs again with the prediction's bias removed. A ``writer`` writes each rendered result
    while it is analysed (the last one is the answer: the caller commits it).
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
    bias = 0.0
    for _ in range(MAX_RENDERS):
        gain_db, curve, predicted = _gain_for_loudness(curves, power, sample_rate,
                                                       target.integrated_lufs - bias, gain_db)
        out, measured = _limited_and_measured(chained, curve, sample_rate, limiter, writer)
        if abs(target.integrated_lufs - measured.integrated_lufs) <= LOUDNESS_TOLERANCE_LU:
            break
        bias = measured.integrated_lufs - predicted
    settings = MasterSettings(chain=chain, gain_db=gain_db, limiter=limiter,
                              target_lufs=target.integrated_lufs)
    return settings, out, measured


def _gain_for_loudness(limiter: LimiterGain, power: np.ndarray, sample_rate: int, lufs: float,
                       gain_db: float) -> tuple[float, np.ndarray, float]:
    """The gain in dB (rounded to 1e-4, as stored) at which the limited chain is predicted to
    read ``lufs``, searched from ``gain_db``; its `_gain_curve`; and the prediction.

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
        return _limited_lufs(_gain_curve(coarse, gain_db)[:whole], pooled,
                             sample_rate / COARSE_FACTOR)

    bias = 0.0
    for _ in range(MAX_EXACT_CURVES):
        gain_db, modelled = _secant_search(coarse_lufs, lufs - bias, gain_db)
        curve = _gain_curve(limiter, gain_db)
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
    only ever takes loudness away, so each dB of gain adds between 0 and 1 dB of loudness."""
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
        gain_db += error / min(max(slope, 0.1), 1.0)
    return gain_db, predicted


def master(audio: Audio, reference: Reference, target: Target, *, method: str = "dsp",
           settings: MasterSettings | None = None,
           amounts: dict[str, float] | None = None, refit_gain: bool = False,
           refine_steps: int = REFINE_STEPS,
           refine_seconds: float = REFINE_SECONDS,
           writer: BackgroundWriter | None = None,
           input_analysis: analysis.Analysis | None = None) -> MasterResult:
    """Master ``audio`` toward ``reference`` at ``target``; or render given ``settings``.

    ``amounts`` (see `parse_amounts`) scale the suggestion, or the given settings, toward
    neutral; the gain is then found again so the loudness target still holds. Given settings
    render exactly as stored, unless amounts scale them or ``refit_gain`` asks for the gain to
    be found again (after editing EQ or the target, say). A ``writer`` (see `finalise`)
    writes the result while it is measured. ``input_analysis`` is ``audio``'s, when the
    caller has made it.
    """
    scaled = amounts is not None and any(a != 1.0 for a in amounts.values())
    timings: dict[str, float] = {}
    if input_analysis is None:
        t0 = time.perf_counter()
        input_analysis = analysis.analyze(audio.samples, audio.sample_rate)
        timings["analyse"] = time.perf_counter() - t0
    if settings is not None and not (scaled or refit_gain):
        t0 = time.perf_counter()
        out, output_analysis = _limited_and_measured(
            *_chained_and_curve(audio, settings), audio.sample_rate, settings.limiter, writer)
        timings["render"] = time.perf_counter() - t0
        method = "settings"
    elif settings is not None:
        t0 = time.perf_counter()
        target = replace(target, integrated_lufs=settings.target_lufs,
                         ceiling_dbtp=settings.limiter.ceiling_dbtp)
        chain = scale_chain(settings.chain, amounts) if scaled else settings.chain
        settings, out, output_analysis = finalise(audio, chain, target,
                                                  settings.limiter.release_ms, writer=writer)
        timings["render"] = time.perf_counter() - t0
        method = "settings"
    else:
        t0 = time.perf_counter()
        chain = suggest_chain(audio, input_analysis, reference, target, method=method,
                              refine_steps=refine_steps, refine_seconds=refine_seconds)
        if scaled:
            chain = scale_chain(chain, amounts)
        timings["suggest"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        settings, out, output_analysis = finalise(audio, chain, target, writer=writer)
        timings["render"] = time.perf_counter() - t0  # with the analysis that verifies it
    return MasterResult(out, settings, method, input_analysis, output_analysis, reference, target,
                        timings)


# --- files: what the CLI, batch and the service run ------------------------------------------


def output_paths(input_path: Path, output: Path | None, file_format: str,
                 force: bool) -> tuple[Path, Path]:
    """The output audio path (default ``<input>_master.<fmt>`` beside the input) and its JSON
    sidecar; refuses the input itself, folders, and existing files without ``force``."""
    out = output if output is not None else input_path.with_name(
        f"{input_path.stem}_master.{file_format}")
    if out.exists() and input_path.exists() and out.resolve() == input_path.resolve():
        raise OutputError(f"{out}: refusing to write over the input")
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; give a file name")
    check_writable(out.parent)  # before any work, not after minutes of it
    sidecar = out.with_suffix(".json")
    for path in (out, sidecar):
        if path.exists() and not force:
            raise OutputError(f"{path}: exists; use --force to overwrite")
    return out, sidecar


def read_settings_document(path: Path) -> Any:
    """The settings mapping in a JSON or YAML file: the file itself, or what a document (from
    `suggest`, or a sidecar) holds under "settings"."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such settings file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read ({exc})") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same user error
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SettingsError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'} "
                            f"({first})") from None
    if isinstance(data, dict) and isinstance(data.get("settings"), dict):
        data = data["settings"]
    return data


def read_settings(path: Path) -> MasterSettings:
    """Read master settings (see `read_settings_document`)."""
    return MasterSettings.from_dict(read_settings_document(path), where=path.name)


def write_document(path: Path, document: dict[str, Any]) -> Path:
    """Write a JSON (or, by suffix, YAML) document atomically."""
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def _run(input_path: Path, reference: str, target: str | None, ceiling_dbtp: float | None,
         method: str, settings_path: Path | None, amounts: dict[str, float] | None,
         refit_gain: bool = False, refine_steps: int = REFINE_STEPS,
         refine_seconds: float = REFINE_SECONDS,
         writer: BackgroundWriter | None = None) -> tuple[Audio, MasterResult]:
    t0 = time.perf_counter()
    song, settings, ref_audio = _inputs(input_path, reference, settings_path)
    timings = {"read": time.perf_counter() - t0}
    input_analysis = ref_analysis = None
    if ref_audio is not None:  # a reference file to analyse: beside the song (analyze_many)
        t0 = time.perf_counter()
        input_analysis, ref_analysis = analysis.analyze_many(
            [(song.samples, song.sample_rate), (ref_audio.samples, ref_audio.sample_rate)])
        timings["analyse"] = time.perf_counter() - t0
        del ref_audio  # the master need not hold 64 MB of it for 3 min of stereo
    ref = resolve_reference(reference, ceiling_dbtp=ceiling_dbtp, analysed=ref_analysis)
    tgt = resolve_target(target, ref, ceiling_dbtp=ceiling_dbtp)
    result = master(song, ref, tgt, method=method, settings=settings, amounts=amounts,
                    refit_gain=refit_gain, refine_steps=refine_steps,
                    refine_seconds=refine_seconds, writer=writer,
                    input_analysis=input_analysis)
    result.timings_s = {**timings, **result.timings_s}
    return song, result


def _inputs(input_path: Path, reference: str, settings_path: Path | None
            ) -> tuple[Audio, MasterSettings | None, Audio | None]:
    """The song, loaded; the settings, read; and the reference file's content when it is a
    file this process has not analysed yet (else None). The reference is decoded beside the
    song (libsndfile releases the GIL), its errors still coming after the song's and the
    settings'."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        path = Path(reference)
        is_file = (reference not in [g.name for g in presets.list_genres()] and path.is_file())
        pending = (pool.submit(load, path)
                   if is_file and _file_identity(path) not in _analysed_references else None)
        song = load(input_path)
        check_channels(input_path, song.channels)
        settings = read_settings(settings_path) if settings_path else None
        if pending is None:
            return song, settings, None
        ref_audio = pending.result()
        check_channels(path, ref_audio.channels)
        return song, settings, ref_audio


def master_file(input_path: Path, *, reference: str = "pop", target: str | None = None,
                ceiling_dbtp: float | None = None, output: Path | None = None,
                file_format: str = "wav", bit_depth: int = 24, method: str = "dsp",
                settings_path: Path | None = None, amounts: dict[str, float] | None = None,
                force: bool = False, preview: bool = False,
                report_path: Path | None = None, refit_gain: bool = False,
                refine_steps: int = REFINE_STEPS,
                refine_seconds: float = REFINE_SECONDS) -> dict[str, Any]:
    """Master one file end to end; return the JSON report (also written as the sidecar).

    Writes the master, its sidecar, and optionally previews (folder ``<output>_preview``)
    and an HTML report. Nothing is written when anything before the write fails.
    """
    from automix import audio as audio_io

    check_format(file_format, bit_depth)
    out_path, sidecar = output_paths(input_path, output, file_format, force)
    if report_path is not None and report_path.exists():
        if input_path.exists() and report_path.resolve() == input_path.resolve():
            raise OutputError(f"{report_path}: refusing to write over the input")
        if not force:
            raise OutputError(f"{report_path}: exists; use --force to overwrite")
    from automix import streaming

    if streaming.is_long(input_path):  # hours of audio: blocks, in bounded memory
        return streaming.master_file(
            input_path, reference=reference, target=target, ceiling_dbtp=ceiling_dbtp,
            output=output, file_format=file_format, bit_depth=bit_depth, method=method,
            settings_path=settings_path, amounts=amounts, force=force, preview=preview,
            report_path=report_path, refit_gain=refit_gain)  # (refine: dsp only)
    # the master is written while it is measured (and discarded if anything fails first)
    writer = audio_io.BackgroundWriter(out_path, bit_depth=bit_depth, file_format=file_format)
    try:
        song, result = _run(input_path, reference, target, ceiling_dbtp, method, settings_path,
                            amounts, refit_gain, refine_steps, refine_seconds, writer)
    except BaseException:
        writer.discard()
        raise
    with all_or_nothing() as written:  # a failure below removes what this run wrote
        written.append(writer.commit() if writer.started else audio_io.save(
            out_path, result.audio, bit_depth=bit_depth, file_format=file_format))
        report = {"automix": __version__, "input": str(input_path), "output": str(out_path),
                  **result.to_dict()}
        write_extras(report, written, out_path=out_path, sidecar=sidecar,
                     reference=result.reference,
                     previews_of=(song, result.audio) if preview else None,
                     report_path=report_path)
    report["sidecar"] = str(sidecar)
    return report


def write_extras(report: dict[str, Any], written: list, *, out_path: Path, sidecar: Path,
                 reference: Reference, previews_of: tuple[Audio, Audio] | None = None,
                 report_path: Path | None = None) -> None:
    """After the master is written: previews (of ``previews_of``, before and after), the HTML
    report and the sidecar; each path is added to ``written`` (see `audio.all_or_nothing`)."""
    if previews_of is not None:
        from automix.previews import write_previews

        ref_audio = load(reference.sources[0]) if reference.sources else None
        folder = out_path.with_name(f"{out_path.stem}_preview")
        if not folder.is_dir():
            written.append(folder)
        previews = write_previews(folder, *previews_of, ref_audio)
        written.extend(previews.values())
        report["previews"] = {k: str(v) for k, v in previews.items()}
    if report_path is not None:
        from automix.report import render_html

        written.append(write_text_atomic(report_path, render_html(report)))
        report["report"] = str(report_path)
    write_document(sidecar, report)


def suggest_file(input_path: Path, output: Path, *, reference: str = "pop",
                 target: str | None = None, ceiling_dbtp: float | None = None,
                 method: str = "dsp", amounts: dict[str, float] | None = None,
                 force: bool = False, refine_steps: int = REFINE_STEPS,
                 refine_seconds: float = REFINE_SECONDS) -> dict[str, Any]:
    """Suggest settings (JSON or YAML by suffix) with the measurements that motivated them."""
    if output.exists() and not force:
        raise OutputError(f"{output}: exists; use --force to overwrite")
    if output.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise SettingsError(f"{output}: settings files end in .json, .yaml or .yml")
    _, result = _run(input_path, reference, target, ceiling_dbtp, method, None, amounts,
                     refine_steps=refine_steps, refine_seconds=refine_seconds)
    full = result.to_dict()
    ref = result.reference.features
    inp = full["measurements"]["input"]
    document = {
        "automix": __version__,
        "input": str(input_path),
        "method": result.method,
        "reference": {"name": result.reference.name, "kind": result.reference.kind},
        "target": full["target"],
        "settings": full["settings"],
        "motivation": {
            "eq": "fitted to the mid tonal-balance difference, reference minus input (dB)",
            "tonal_difference_db": {
                "centers_hz": inp["bands"]["centers_hz"],
                "difference_db": [None if a is None or b is None else round(b - a, 2)
                                  for a, b in zip(inp["bands"]["mid_db"],
                                                  ref["bands"]["mid_db"], strict=True)]},
            "dynamics": {"input_plr_db": inp["plr_db"], "reference_plr_db": ref["plr_db"]},
            "width": {"input": inp["width"], "reference": ref["width"]},
            "loudness": {"input_lufs": inp["integrated_lufs"],
                         "target_lufs": full["target"]["integrated_lufs"]},
        },
        "measurements": {"input": inp, "reference": ref},
        "expected_result": full["measurements"]["output"],
    }
    write_document(output, document)
    return document
