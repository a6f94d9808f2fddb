"""automix's master chain on the Zam plug-ins (Debian's ``zam-plugins``, VST3).

`build` maps `MasterSettings` onto, in chain order: two ZamEQ2s (high-pass and the five-band
EQ, fitted: `automix.plugins.zam_eq`), ZamCompX2 (compressor and make-up), stereo width (no
Zam plug-in does mid/side width: the render applies automix's own matrix and the sheet names
the setting for the DAW's), and ZaMaximX2 (the gain to the target and the limiter). `fit`,
given the song, also fits what differs from automix's own render, on that song:

- ZamCompX2 detects in dB per sample, smooths the gain reduction (not the level) and links
  the channels (their average), where JUCE's compressor follows each channel's level: at the
  same threshold it compresses less. Its threshold is moved until its output reads the
  loudness of automix's compressor output (`COMPRESSOR_TOLERANCE_LU`).
- ZaMaximX2 is a sample-peak limiter with a 480-sample look-ahead, not a true-peak one, and
  its gain is ``ceiling - threshold``: its threshold is moved until the master reads the
  loudness of automix's master, its ceiling lowered by the true-peak overshoot measured, and
  its release shortened where more gain stops adding loudness.
- At very loud targets ZaMaximX2 alone stops short (its loudness flattens some 0.8 LU under
  automix's at -7 LUFS, whatever its release): ZamAutoSat, a fixed soft saturator, goes in
  before it, driven by the compressor's make-up (`SATURATOR_DRIVES_DB`), the way a mastering
  engineer puts a clipper before the limiter. Only then: elsewhere the chain has no saturator.

`render` runs a `ZamChain` through the real plug-ins with pedalboard; `preset_bytes` gives a
plug-in's ``.vstpreset`` (the state DPF plug-ins take back in any VST3 host) and `sheet` the
readable sheet (`automix.export` writes them).
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from automix import loudness
from automix.errors import PluginError
from automix.params import CompressorParams, LimiterParams
from automix.plugins import zam_eq
from automix.settings import MasterSettings

VST3_DIR_ENV = "AUTOMIX_VST3_DIR"  # where the Zam plug-ins are looked for
VST3_DIR = "/usr/lib/vst3"  # Debian's zam-plugins puts them here
EQ, COMPRESSOR, LIMITER = "ZamEQ2", "ZamCompX2", "ZaMaximX2"
SATURATOR = "ZamAutoSat"  # mono, no controls: its drive is the level going in
PLUGINS = (EQ, COMPRESSOR, SATURATOR, LIMITER)
MONO_PLUGINS = (EQ, SATURATOR)  # one instance per channel
COMPRESSOR_TOLERANCE_LU = 0.05  # the compressor fit stops this close to automix's loudness
LOUDNESS_TOLERANCE_LU = 0.1  # the limiter fit stops this close (the goal is 0.3)
# What the Zam chain promises against automix's own render; past these it says so.
EQ_BOUND_DB = 0.5  # EQ magnitude over 30 Hz-16 kHz
LOUDNESS_BOUND_LU = 0.3  # the master's integrated loudness
TRUE_PEAK_MARGIN_DB = 0.05  # what the fitted ceiling keeps below automix's, after overshoot
MAX_FIT_RENDERS = 5  # renders of the compressor fit
MAX_LIMITER_RENDERS = 10  # renders of the limiter fit (gain, ceiling and release)
SATURATOR_DRIVES_DB = (0.0, 3.0, 6.0)  # tried in turn when the limiter alone falls short
FLAT_LU_PER_DB = 0.35  # below this much loudness per dB of gain the limiter's release shortens
# ZaMaximX2 4.1's ranges: its threshold sets the gain (ceiling - threshold)
LIMITER_THRESHOLD_DB = (-30.0, 0.0)
LIMITER_RELEASE_MS = (1.0, 100.0)
COMPRESSOR_MAKEUP_DB = (0.0, 30.0)
DEFAULT_STATE_RATE = 48000  # the rate of the silence that commits a preset's values


@dataclass(frozen=True)
class ZamPreset:
    """One plug-in instance: which plug-in, its file label, what it does in the chain, and
    its controls by the plug-in's parameter names (units in the names)."""

    plugin: str
    label: str
    role: str
    controls: dict[str, float]


@dataclass(frozen=True)
class ZamChain:
    """The master chain on Zam plug-ins at one sample rate; ``notes`` say what was fitted or
    approximated, for the sheet."""

    eq: tuple[ZamPreset, ZamPreset]
    compressor: ZamPreset
    width_pct: float
    limiter: ZamPreset
    sample_rate: int
    notes: tuple[str, ...] = ()
    saturator: ZamPreset | None = None  # between width and limiter, at very loud targets

    @property
    def presets(self) -> list[ZamPreset]:
        """The plug-ins in chain order (width, a DAW setting, goes before the first one after
        the compressor: `after_width`)."""
        return [*self.eq, self.compressor,
                *([self.saturator] if self.saturator is not None else []), self.limiter]

    def after_width(self, preset: ZamPreset) -> bool:
        """Whether ``preset`` is the first plug-in after the stereo width."""
        return preset is (self.saturator if self.saturator is not None else self.limiter)


@dataclass(frozen=True)
class ModuleErrors:
    """How far the Zam chain lands from automix's own render, per module: the EQ's largest
    magnitude error in dB over 30 Hz-16 kHz (measured through the plug-ins), the compressor
    output's loudness difference in LU and the RMS of its 400-ms level differences in dB (the
    knee, ballistics and channel link showing through; None without a song, or with the
    compressor off), and the master's loudness difference in LU and its true peak against the
    ceiling (None without a song)."""

    eq_max_db: float
    compressor_lu: float | None = None
    compressor_short_term_db: float | None = None
    master_lu: float | None = None
    true_peak_dbtp: float | None = None
    ceiling_dbtp: float | None = None


# --- the plug-ins -----------------------------------------------------------------------------


def vst3_dir() -> Path:
    return Path(os.environ.get(VST3_DIR_ENV, VST3_DIR))


def missing() -> list[str]:
    """The Zam plug-ins this machine lacks (none: all there)."""
    return [name for name in PLUGINS if not (vst3_dir() / f"{name}.vst3").exists()]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """DPF plug-ins print to the C stdout and stderr (noise, and warnings when an instance is
    deleted): keep them off ours, so that JSON on stdout stays clean. Python's own errors are
    exceptions, not prints: nothing of ours is lost."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def load_vst3(path: Path) -> Any:
    """``path`` loaded by pedalboard, quietly, with the caller's floating-point environment
    kept. Loading a DPF plug-in turns on flush-to-zero and denormals-are-zero in the loading
    thread and leaves them on: every later subnormal float in that thread would silently
    become zero (numpy's, hypothesis's, the caller's own maths). pedalboard wants plug-ins
    loaded on the main thread, so the environment is saved and restored around the load."""
    import pedalboard as pb

    with _float_environment_kept(), quiet():
        return pb.load_plugin(str(path))


@contextlib.contextmanager
def _float_environment_kept() -> Iterator[None]:
    """C's fegetenv before and fesetenv after (on x86-64 the SSE control register, FTZ and
    DAZ included); a no-op where the C maths library cannot be found."""
    import ctypes
    import ctypes.util

    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        saved = ctypes.create_string_buffer(256)  # fenv_t is 32 bytes on x86-64 glibc
        kept = libm.fegetenv(saved) == 0
    except (OSError, AttributeError):
        kept = False
    try:
        yield
    finally:
        if kept:
            libm.fesetenv(saved)


def load(name: str) -> Any:
    """A fresh instance of the Zam plug-in ``name``; `PluginError` when it is not installed."""
    path = vst3_dir() / f"{name}.vst3"
    if not path.exists():
        raise PluginError(f"{path}: not installed; install Debian's zam-plugins "
                          f"(apt-get install zam-plugins) or set {VST3_DIR_ENV}")
    try:
        return load_vst3(path)
    except Exception as exc:  # noqa: BLE001 - any load failure is the same user error
        raise PluginError(f"{path}: cannot load ({str(exc).splitlines()[0]})") from None


def configure(plugin: Any, controls: dict[str, float]) -> dict[str, float]:
    """Set ``controls`` on ``plugin`` through their normalised values (DPF maps them linearly
    to the plain value; pedalboard's setter by plain value rounds some to a 1000th of the
    range), clipped to the plug-in's ranges; returns the values the plug-in now holds."""
    held = {}
    for name, value in controls.items():
        parameter = plugin.parameters[name]
        low, high = parameter.min_value, parameter.max_value
        parameter.raw_value = min(max((value - low) / (high - low), 0.0), 1.0)
        held[name] = float(getattr(plugin, name))
    return held


def instance(preset: ZamPreset) -> Any:
    plugin = load(preset.plugin)
    configure(plugin, preset.controls)
    return plugin


def with_instance(preset: ZamPreset, use: Any) -> Any:
    """``use(plugin)`` on a fresh instance set to ``preset``, the instance made and deleted
    quietly (see `quiet`)."""
    with quiet():
        plugin = instance(preset)
        try:
            return use(plugin)
        finally:
            del plugin
            gc.collect()  # pedalboard's plug-in objects sit in reference cycles


def held(preset: ZamPreset) -> ZamPreset:
    """``preset`` with the values the plug-in actually holds (clipped, float32)."""
    values = with_instance(preset, lambda plugin: {  # in the plug-in's order
        name: float(getattr(plugin, name)) for name in plugin.parameters
        if name in preset.controls})
    return replace(preset, controls=values)


# --- mapping ----------------------------------------------------------------------------------


def eq_presets(settings: MasterSettings, sample_rate: int) -> tuple[ZamPreset, ZamPreset]:
    first, second = zam_eq.fit(settings.chain, sample_rate)
    return (held(ZamPreset(EQ, "eq-a", "EQ: low shelf, high shelf, peaks 1-2", first)),
            held(ZamPreset(EQ, "eq-b", "high-pass (deep low shelf), peak 3, spare bands",
                           second)))


def compressor_controls(p: CompressorParams, extra_makeup_db: float = 0.0) -> dict[str, float]:
    """automix's compressor on ZamCompX2: hard knee, no slew, the channels' average detected
    (ZamCompX2 cannot detect them apart); ratio 1 leaves it an identity."""
    return {"threshold_db": p.threshold_db, "ratio": p.ratio, "attack_ms": p.attack_ms,
            "release_ms": min(p.release_ms, 500.0), "knee_db": 0.0, "slew": 1.0,
            "stereo_detection": 0.0, "sidechain": 0.0,
            "makeup_db": min(p.makeup_db + extra_makeup_db, COMPRESSOR_MAKEUP_DB[1])}


def limiter_controls(gain_db: float, limiter: LimiterParams, ceiling_db: float
                     ) -> tuple[dict[str, float], float]:
    """ZaMaximX2's controls for a gain then a limit at ``ceiling_db``, and the gain in dB it
    cannot carry (its threshold spans `LIMITER_THRESHOLD_DB`): more gain goes to the
    compressor's make-up; less than the ceiling lowers the output ceiling instead (it then
    limits only over 0 dBFS, whose output is under the ceiling anyway)."""
    release = min(max(limiter.release_ms, LIMITER_RELEASE_MS[0]), LIMITER_RELEASE_MS[1])
    threshold = ceiling_db - gain_db
    if threshold > LIMITER_THRESHOLD_DB[1]:
        return {"threshold_db": 0.0, "output_ceiling_db": max(gain_db, -30.0),
                "release_ms": release}, 0.0
    extra = max(LIMITER_THRESHOLD_DB[0] - threshold, 0.0)
    return {"threshold_db": max(threshold, LIMITER_THRESHOLD_DB[0]),
            "output_ceiling_db": ceiling_db, "release_ms": release}, extra


def build(settings: MasterSettings, sample_rate: int) -> ZamChain:
    """`MasterSettings` on Zam plug-ins at ``sample_rate``, without a song: the EQ fitted,
    the rest mapped as stated (see `fit` for the song)."""
    limiter, extra = limiter_controls(settings.gain_db, settings.limiter,
                                      settings.limiter.ceiling_dbtp)
    notes = (
        "EQ: two ZamEQ2s fitted to automix's high-pass and EQ (ZamEQ2 has no high-pass, "
        "different shelf slopes and peak designs)",
        f"fitted for a session at {sample_rate} Hz; for another rate export again "
        "(--sample-rate, or --song at that rate)",
        "width: no Zam plug-in does mid/side width; set the DAW's stereo width (mid/side) to "
        f"{settings.chain.width.width_pct:.0f} % between ZamCompX2 and ZaMaximX2",
        "limiter: ZaMaximX2 limits sample peaks, not true peaks; its gain is ceiling - "
        "threshold" + ("" if settings.limiter.release_ms <= LIMITER_RELEASE_MS[1] else
                       f"; its release stops at {LIMITER_RELEASE_MS[1]:g} ms"),
        "not fitted to a song: compressor and limiter as mapped; ZaMaximX2's true peak "
        "overshoots its ceiling (by up to 1.2 dB measured on real music under heavy "
        "limiting): export with --song to fit it, or lower output_ceiling_db by that much",
    )
    return ZamChain(
        eq=eq_presets(settings, sample_rate),
        compressor=held(ZamPreset(COMPRESSOR, "compressor", "compressor and make-up",
                                  compressor_controls(settings.chain.compressor, extra))),
        width_pct=settings.chain.width.width_pct,
        limiter=held(ZamPreset(LIMITER, "limiter", "gain to the target, limiter", limiter)),
        sample_rate=sample_rate, notes=notes)


# --- rendering --------------------------------------------------------------------------------


def _per_channel(preset: ZamPreset, samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """A mono plug-in over each channel, one instance each."""
    return np.concatenate([with_instance(preset, lambda plugin, c=c: plugin(
        samples[c:c + 1], float(sample_rate))) for c in range(samples.shape[0])])


def _stereo(preset: ZamPreset, samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """A stereo plug-in; a mono signal goes through as two equal channels and comes back mono."""
    x = samples if samples.shape[0] == 2 else np.repeat(samples[:1], 2, axis=0)
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = with_instance(preset, lambda plugin: plugin(x, float(sample_rate)))
    return y if samples.shape[0] == 2 else y[:1]


def render_eq(chain: ZamChain, samples: np.ndarray, sample_rate: int) -> np.ndarray:
    y = np.ascontiguousarray(samples, dtype=np.float32)
    for preset in chain.eq:
        y = _per_channel(preset, y, sample_rate)
    return y


def render(chain: ZamChain, samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """``samples`` (channels, samples) through the Zam chain: EQs, compressor, width (automix's
    matrix), limiter."""
    from automix.effects.render import stereo_width
    from automix.params import StereoWidthParams

    y = _stereo(chain.compressor, render_eq(chain, samples, sample_rate), sample_rate)
    y = stereo_width(y, sample_rate, StereoWidthParams(width_pct=chain.width_pct))
    return _limited(chain.limiter, chain.saturator, y, sample_rate)


def _limited(limiter: ZamPreset, saturator: ZamPreset | None, samples: np.ndarray,
             sample_rate: int) -> np.ndarray:
    """The end of the chain: the saturator, if any, then the limiter."""
    if saturator is not None:
        samples = _per_channel(saturator, samples, sample_rate)
    return _stereo(limiter, samples, sample_rate)


def measured_eq_db(chain: ZamChain, freqs_hz: np.ndarray, length: int = 1 << 15) -> np.ndarray:
    """The two ZamEQ2s' magnitude in dB at ``freqs_hz``, measured: an impulse through the
    plug-ins, its spectrum at exactly those frequencies."""
    x = np.zeros((1, length), dtype=np.float32)
    x[0, 0] = 1.0
    y = render_eq(chain, x, chain.sample_rate)[0].astype(np.float64)
    n = np.arange(length)
    spectrum = np.concatenate([
        np.exp(-2j * np.pi * np.outer(part, n) / chain.sample_rate) @ y
        for part in np.array_split(np.asarray(freqs_hz, dtype=np.float64),
                                   max(1, len(freqs_hz) // 16))])
    return 20.0 * np.log10(np.abs(spectrum))


def eq_error_db(chain: ZamChain, settings: MasterSettings) -> float:
    """The largest |Zam - automix| in dB over 30 Hz-16 kHz, measured through the plug-ins."""
    freqs = zam_eq.fit_freqs_hz()
    want = zam_eq.target_db(settings.chain, freqs, chain.sample_rate)
    return float(np.max(np.abs(measured_eq_db(chain, freqs) - want)))


# --- fitting to a song ------------------------------------------------------------------------


@dataclass
class Fitted:
    """A chain fitted to a song: the chain, its render, and the module errors."""

    chain: ZamChain
    samples: np.ndarray
    errors: ModuleErrors
    renders: dict[str, int] = field(default_factory=dict)


def fit(settings: MasterSettings, samples: np.ndarray, sample_rate: int) -> Fitted:
    """`build`, then the compressor and limiter fitted on ``samples`` (the song the settings
    were made for) against automix's own render of it (`render_master`)."""
    from automix.audio import Audio
    from automix.effects import render as own
    from automix.mastering.finalise import render_master

    chain = build(settings, sample_rate)
    chain = replace(chain, compressor=held(replace(  # make-up for the gain: see _fit_limiter
        chain.compressor, controls=compressor_controls(settings.chain.compressor))))
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    renders = {}
    eq_out = render_eq(chain, samples, sample_rate)
    comp_lu = comp_short_db = None
    if settings.chain.compressor.ratio != 1.0:
        pre = own.process(own.highpass_plugins(settings.chain.highpass)
                          + own.eq_plugins(settings.chain.eq), samples, sample_rate)
        own_compressed = own.compressor(pre, sample_rate, settings.chain.compressor)
        want = loudness.integrated_lufs(own_compressed, sample_rate)
        compressor, comp_lu, renders["compressor"] = _fit_compressor(chain.compressor, eq_out,
                                                                     want, sample_rate)
        chain = replace(chain, compressor=compressor)
    ours = render_master(Audio(samples, sample_rate), settings).samples
    want_lufs = loudness.integrated_lufs(ours, sample_rate)
    compressed = _stereo(chain.compressor, eq_out, sample_rate)
    if comp_lu is not None:
        comp_short_db = short_term_difference_db(compressed, own_compressed, sample_rate)
    from automix.params import StereoWidthParams

    widened = own.stereo_width(compressed, sample_rate, StereoWidthParams(chain.width_pct))
    chain, out, lufs, peak, renders["limiter"] = _fit_end(chain, settings, widened, want_lufs,
                                                          sample_rate)
    notes = tuple(n for n in chain.notes if not n.startswith("not fitted")) + (
        f"fitted at {sample_rate} Hz on the song: compressor threshold "
        f"{chain.compressor.controls['threshold_db']:.2f} dB, limiter threshold "
        f"{chain.limiter.controls['threshold_db']:.2f} dB and ceiling "
        f"{chain.limiter.controls['output_ceiling_db']:.2f} dB",)
    chain = replace(chain, notes=notes)
    errors = ModuleErrors(eq_max_db=eq_error_db(chain, settings), compressor_lu=comp_lu,
                          compressor_short_term_db=comp_short_db, master_lu=lufs - want_lufs,
                          true_peak_dbtp=peak,
                          ceiling_dbtp=settings.limiter.ceiling_dbtp)
    return Fitted(chain, out, errors, renders)


def short_term_difference_db(a: np.ndarray, b: np.ndarray, sample_rate: int,
                             block_s: float = 0.4, floor_db: float = -50.0) -> float:
    """RMS over 400-ms blocks (100-ms hop) of the level of ``a`` over ``b`` in dB, blocks
    where ``b`` is over ``floor_db`` dBFS (both (channels, samples), the same length)."""
    block, hop = int(block_s * sample_rate), int(block_s * sample_rate / 4)
    starts = range(0, max(a.shape[1] - block, 0) + 1, hop)
    power = np.array([[np.mean(np.square(x[:, i:i + block], dtype=np.float64)) for x in (a, b)]
                      for i in starts])
    loud = power[:, 1] > 10.0 ** (floor_db / 10.0)
    if not loud.any():
        return 0.0
    diff = 10.0 * np.log10(np.maximum(power[loud, 0], 1e-20) / power[loud, 1])
    return float(np.sqrt(np.mean(np.square(diff))))


def _secant(value: float, error: float, previous: tuple[float, float] | None,
            bounds: tuple[float, float], default_slope: float) -> float:
    """The next value that should zero ``error`` (a secant step; ``default_slope`` error per
    unit until two points are known), within ``bounds``."""
    slope = default_slope
    if previous is not None and previous[0] != value:
        slope = (error - previous[1]) / (value - previous[0])
        if not math.isfinite(slope) or abs(slope) < 0.05 * abs(default_slope) \
                or slope * default_slope < 0:
            slope = default_slope
    return min(max(value - error / slope, bounds[0]), bounds[1])


def _fit_compressor(preset: ZamPreset, eq_out: np.ndarray, want_lufs: float,
                    sample_rate: int) -> tuple[ZamPreset, float, int]:
    """ZamCompX2's threshold moved until its output's loudness is ``want_lufs``; the
    preset, the loudness left over in LU, and the renders it took."""
    threshold = preset.controls["threshold_db"]
    previous, error = None, math.inf
    best = (math.inf, preset)
    n = 0
    while n < MAX_FIT_RENDERS:
        n += 1
        trial = held(replace(preset, controls={**preset.controls, "threshold_db": threshold}))
        error = loudness.integrated_lufs(_stereo(trial, eq_out, sample_rate),
                                         sample_rate) - want_lufs
        if abs(error) < abs(best[0]):
            best = (error, trial)
        if abs(error) <= COMPRESSOR_TOLERANCE_LU:
            break
        # a higher threshold compresses less: louder output, at most 1 LU per dB
        threshold, previous = _secant(threshold, error, previous, (-80.0, 0.0), 0.5), \
            (threshold, error)
    return best[1], best[0], n


def _fit_end(chain: ZamChain, settings: MasterSettings, widened: np.ndarray,
             want_lufs: float, sample_rate: int
             ) -> tuple[ZamChain, np.ndarray, float, float, int]:
    """The end of the chain fitted (`_fit_limiter`): ZaMaximX2 alone, and where it falls
    short of ``want_lufs``, ZamAutoSat before it at each of `SATURATOR_DRIVES_DB` in turn
    until one reaches it. The best fit, its output, loudness, true peak and all renders."""
    best, renders = _fit_limiter(chain, settings, widened, want_lufs, sample_rate)
    saturator = ZamPreset(SATURATOR, "saturator", "soft saturation before the limiter", {})
    for drive_db in SATURATOR_DRIVES_DB:
        if best[0] <= LOUDNESS_TOLERANCE_LU or best[1][2] > want_lufs:
            break
        trial, n = _fit_limiter(replace(chain, saturator=saturator), settings, widened,
                                want_lufs, sample_rate, drive_db=drive_db,
                                start=best[1][0].limiter.controls)
        renders += n
        if trial[0] < best[0]:
            best = trial
    fitted, out, lufs, peak = best[1]
    if fitted.saturator is not None:
        fitted = replace(fitted, notes=fitted.notes + (
            "saturation: ZaMaximX2 alone falls short of this loudness; ZamAutoSat (no "
            "controls, mono: one per channel) goes between the width and ZaMaximX2, driven by "
            "ZamCompX2's make-up",))
    return fitted, out, lufs, peak, renders


def _fit_limiter(chain: ZamChain, settings: MasterSettings, widened: np.ndarray,
                 want_lufs: float, sample_rate: int, drive_db: float = 0.0,
                 start: dict[str, float] | None = None
                 ) -> tuple[tuple[float, tuple[ZamChain, np.ndarray, float, float]], int]:
    """ZaMaximX2 fitted to automix's master of the song: its gain (the threshold) moved by
    secant steps until the master reads ``want_lufs``; its ceiling lowered by the true-peak
    overshoot over automix's ceiling (it limits sample peaks); its release shortened where
    more gain stops adding loudness (it takes more off than automix's limiter at the same
    release). ``drive_db`` more goes into the chain's saturator (on the compressor's
    make-up); ``start``, an earlier fit's ZaMaximX2 controls, gives the first ceiling and
    release. Returns the best try, (its miss: LU off plus ten times the dB over the
    ceiling, (the chain, its output, loudness, true peak)), and the renders."""
    ceiling_target = settings.limiter.ceiling_dbtp
    gain_db, ceiling = settings.gain_db, ceiling_target
    release = settings.limiter.release_ms
    if start is not None:
        ceiling, release = start["output_ceiling_db"], start["release_ms"]
    previous = None
    best: tuple[float, Any] | None = None
    n = 0
    while n < MAX_LIMITER_RENDERS:
        n += 1
        controls, extra = limiter_controls(gain_db, replace(settings.limiter, release_ms=release),
                                           ceiling)
        limiter = held(replace(chain.limiter, controls=controls))
        compressor = chain.compressor
        extra += drive_db
        if extra:  # gain past ZaMaximX2's threshold range, and drive: on the make-up
            makeup = compressor_controls(settings.chain.compressor, extra)["makeup_db"]
            compressor = held(replace(compressor, controls={**compressor.controls,
                                                             "makeup_db": makeup}))
        x = widened if extra == 0.0 else widened * np.float32(10 ** (extra / 20))
        out = _limited(limiter, chain.saturator, x, sample_rate)
        lufs = loudness.integrated_lufs(out, sample_rate)
        peak = loudness.true_peak_dbtp(out, sample_rate)
        over, error = peak - ceiling_target, lufs - want_lufs
        candidate = (abs(error) + 10 * max(over, 0.0),
                     (replace(chain, limiter=limiter, compressor=compressor), out, lufs, peak))
        if best is None or candidate[0] < best[0]:
            best = candidate
        if abs(error) <= LOUDNESS_TOLERANCE_LU and over <= 0:
            break
        if over > 0:
            ceiling = max(ceiling - over - TRUE_PEAK_MARGIN_DB, -30.0)
            previous = None  # another ceiling: another curve
            continue
        flat = previous is not None and previous[0] != gain_db \
            and (error - previous[1]) / (gain_db - previous[0]) < FLAT_LU_PER_DB
        if error < 0 and flat and release > LIMITER_RELEASE_MS[0]:
            release = max(min(release, LIMITER_RELEASE_MS[1]) / 3.0, LIMITER_RELEASE_MS[0])
            previous = None
            continue
        gain_db, previous = _secant(gain_db, error, previous, (-70.0, 70.0), 1.0), \
            (gain_db, error)
    return best, n


# --- writing ----------------------------------------------------------------------------------


UNITS = {"_db": "dB", "_hz": "Hz", "_ms": "ms"}


def unit_of(name: str) -> str:
    return next((unit for suffix, unit in UNITS.items() if name.endswith(suffix)), "")


def sheet_rows(chain: ZamChain) -> list[tuple[int, str, str, str, str]]:
    """(position, plug-in, parameter, value, unit) in chain order; width is a DAW setting."""
    rows = []
    position = 0
    for preset in chain.presets:
        if chain.after_width(preset):
            position += 1
            rows.append((position, "(DAW stereo width, mid/side)", "width",
                         f"{chain.width_pct:.0f}", "%"))
        position += 1
        if not preset.controls:
            rows.append((position, f"{preset.plugin} ({preset.label})", "(no controls)", "-",
                         ""))
        for name, value in preset.controls.items():
            rows.append((position, f"{preset.plugin} ({preset.label})", name,
                         f"{value:.2f}" if unit_of(name) else f"{value:g}", unit_of(name)))
    return rows


def misses(errors: ModuleErrors | None) -> list[str]:
    """One sentence per bound the fitted chain misses (EQ, loudness, true peak)."""
    if errors is None:
        return []
    out = []
    if errors.eq_max_db > EQ_BOUND_DB:
        out.append(f"the Zam EQ is {errors.eq_max_db:.2f} dB from automix's somewhere over "
                   f"30 Hz-16 kHz (bound {EQ_BOUND_DB:g} dB)")
    if errors.master_lu is not None and abs(errors.master_lu) > LOUDNESS_BOUND_LU:
        side = "under" if errors.master_lu < 0 else "over"
        reason = (": lower the target, or finish with automix's own master (at very loud "
                  "targets ZaMaximX2 takes more off, even after ZamAutoSat)"
                  if errors.master_lu < 0 else "")
        out.append(f"the Zam master is {abs(errors.master_lu):.2f} LU {side} automix's "
                   f"(bound {LOUDNESS_BOUND_LU:g} LU){reason}")
    if errors.true_peak_dbtp is not None and errors.ceiling_dbtp is not None \
            and errors.true_peak_dbtp > errors.ceiling_dbtp:
        out.append(f"the Zam master's true peak {errors.true_peak_dbtp:.2f} dBTP is over the "
                   f"{errors.ceiling_dbtp:g} dBTP ceiling")
    return out


def sheet(chain: ZamChain, errors: ModuleErrors | None) -> str:
    """The readable sheet: plug-in, parameter, value and unit in chain order, notes, errors."""
    lines = [f"# automix master chain on Zam plug-ins ({chain.sample_rate} Hz)", "",
             "| # | plug-in | parameter | value | unit |", "|---|---|---|---|---|"]
    lines += [f"| {p} | {plugin} | {name} | {value} | {unit} |"
              for p, plugin, name, value, unit in sheet_rows(chain)]
    lines += ["", "Load each `NN-<plug-in>-<label>.vstpreset` into its plug-in, in order; "
              + ("ZamEQ2 and ZamAutoSat are" if chain.saturator is not None else "ZamEQ2 is")
              + " mono: on a stereo track use one instance per channel (or the "
              "DAW's dual-mono mode) with the same preset.", "", "Notes:"]
    lines += [f"- {note}" for note in chain.notes]
    if errors is not None:
        lines += ["", "Against automix's own render:",
                  f"- EQ: largest magnitude error {errors.eq_max_db:.3f} dB over 30 Hz-16 kHz "
                  "(measured through the plug-ins)"]
        if errors.compressor_lu is not None:
            lines.append(f"- compressor output: {errors.compressor_lu:+.3f} LU, 400-ms levels "
                         f"within {errors.compressor_short_term_db:.2f} dB RMS")
        if errors.master_lu is not None:
            lines.append(f"- master: {errors.master_lu:+.3f} LU, true peak "
                         f"{errors.true_peak_dbtp:.2f} dBTP (ceiling {errors.ceiling_dbtp:g})")
        lines += [f"- **warning:** {miss}" for miss in misses(errors)]
    return "\n".join(lines) + "\n"


def preset_files(chain: ZamChain) -> list[tuple[str, ZamPreset]]:
    """The file name of each preset, in chain order (width, not a plug-in, is numbered too)."""
    names, position = [], 0
    for preset in chain.presets:
        position += 2 if chain.after_width(preset) else 1
        names.append((f"{position:02d}-{preset.plugin}-{preset.label}.vstpreset", preset))
    return names


def preset_bytes(preset: ZamPreset) -> bytes:
    """The plug-in's state as a ``.vstpreset`` file. DPF hands the new values to its
    processor, and so to its state, only when it processes: a short silence goes through
    first (without it the state holds the defaults)."""
    silence = np.zeros((1 if preset.plugin in MONO_PLUGINS else 2, 64), dtype=np.float32)

    def state(plugin: Any) -> bytes:
        plugin(silence, float(DEFAULT_STATE_RATE))
        return bytes(plugin.preset_data)

    return with_instance(preset, state)


def render_preset(path: Path, plugin: str, samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """``samples`` through a fresh ``plugin`` that loaded the ``.vstpreset`` at ``path`` (as a
    DAW would; pedalboard's own parameter read-out does not follow a loaded state for every
    plug-in, the processing does)."""
    with quiet():
        fresh = load(plugin)
        fresh.load_preset(str(path))
        out = fresh(np.ascontiguousarray(samples, dtype=np.float32), float(sample_rate))
        del fresh
        gc.collect()
    return out
