"""Every effect's parameters, defined once.

Each effect has one frozen dataclass whose fields carry their unit in the name and their
`Range` (min, max, default, lin/log scale) in the field metadata. The same dataclass drives
the pedalboard renderer, the differentiable torch twin, the network's 0..1 outputs, settings
files and their validation, and the parameter table (`markdown_table`: `automix params`,
docs/design.md).

Fields hold Python floats for rendering, or tensors of shape ``(batch,)`` inside the torch
twin; `Range.denormalize` and `Range.normalize` work on both.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from automix.errors import SettingsError

SHELF_Q = 1 / math.sqrt(2)  # shelves use a fixed, maximally flat slope


@dataclass(frozen=True)
class Range:
    """The allowed values of one parameter.

    ``scale`` "log" maps 0..1 geometrically (frequencies, times, ratios), "lin" linearly.
    """

    min: float
    max: float
    default: float
    scale: str = "lin"

    def denormalize(self, u: Any) -> Any:
        """Map ``u`` in 0..1 (float, array or tensor) to real units."""
        if self.scale == "log":
            return self.min * (self.max / self.min) ** u
        return self.min + (self.max - self.min) * u

    def normalize(self, value: Any) -> Any:
        """Map a value in real units to 0..1 (inverse of `denormalize`)."""
        if self.scale == "log":
            if hasattr(value, "log"):  # tensors
                return (value / self.min).log() / math.log(self.max / self.min)
            return math.log(value / self.min) / math.log(self.max / self.min)
        return (value - self.min) / (self.max - self.min)

    def clip(self, value: float) -> float:
        return min(max(value, self.min), self.max)


def param(min: float, max: float, default: float, scale: str = "lin") -> Any:
    """A dataclass field with its `Range` attached."""
    return field(default=default, metadata={"range": Range(min, max, default, scale)})


# --- effects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HighpassParams:
    """Two cascaded first-order high-pass filters (12 dB/octave, -6 dB at ``freq_hz``)."""

    freq_hz: float = param(10.0, 300.0, 10.0, "log")


@dataclass(frozen=True)
class EQParams:
    """Parametric EQ: low shelf, three peaks, high shelf (RBJ cookbook biquads)."""

    low_shelf_freq_hz: float = param(30.0, 400.0, 100.0, "log")
    low_shelf_gain_db: float = param(-12.0, 12.0, 0.0)
    peak1_freq_hz: float = param(60.0, 600.0, 250.0, "log")
    peak1_gain_db: float = param(-12.0, 12.0, 0.0)
    peak1_q: float = param(0.3, 4.0, 0.7, "log")
    peak2_freq_hz: float = param(400.0, 4000.0, 1200.0, "log")
    peak2_gain_db: float = param(-12.0, 12.0, 0.0)
    peak2_q: float = param(0.3, 4.0, 0.7, "log")
    peak3_freq_hz: float = param(2000.0, 12000.0, 5000.0, "log")
    peak3_gain_db: float = param(-12.0, 12.0, 0.0)
    peak3_q: float = param(0.3, 4.0, 0.7, "log")
    high_shelf_freq_hz: float = param(2000.0, 16000.0, 8000.0, "log")
    high_shelf_gain_db: float = param(-12.0, 12.0, 0.0)


@dataclass(frozen=True)
class CompressorParams:
    """JUCE/pedalboard compressor: hard knee, peak detector per channel, no lookahead."""

    threshold_db: float = param(-60.0, 0.0, 0.0)
    ratio: float = param(1.0, 20.0, 1.0, "log")
    attack_ms: float = param(0.1, 100.0, 10.0, "log")
    release_ms: float = param(10.0, 1000.0, 100.0, "log")
    makeup_db: float = param(0.0, 24.0, 0.0)


@dataclass(frozen=True)
class StereoWidthParams:
    """Mid/side width: the side signal is scaled by ``width_pct / 100``, mid untouched."""

    width_pct: float = param(0.0, 200.0, 100.0)


@dataclass(frozen=True)
class GainParams:
    gain_db: float = param(-48.0, 24.0, 0.0)


@dataclass(frozen=True)
class PanParams:
    """Constant-power pan (sin/cos law, -3 dB at centre); -1 is hard left, +1 hard right."""

    pan: float = param(-1.0, 1.0, 0.0)


@dataclass(frozen=True)
class ReverbParams:
    """A seeded, parametric stereo impulse response (exponentially decaying filtered noise)."""

    decay_s: float = param(0.1, 6.0, 1.2, "log")  # RT60
    predelay_ms: float = param(0.0, 100.0, 10.0)
    damping_hz: float = param(1000.0, 16000.0, 6000.0, "log")  # one-pole low-pass on the tail
    width_pct: float = param(0.0, 100.0, 100.0)  # 0: identical L/R tails, 100: independent
    wet_db: float = param(-60.0, 0.0, -60.0)  # level of the reverb return


@dataclass(frozen=True)
class LimiterParams:
    """True-peak limiter: nothing in the output exceeds ``ceiling_dbtp`` (4x oversampled)."""

    ceiling_dbtp: float = param(-9.0, 0.0, -1.0)
    release_ms: float = param(10.0, 500.0, 60.0, "log")


# The master's gain to its delivery loudness, before the limiter (settings files are checked
# against it; the gain search itself is unbounded).
MASTER_GAIN_DB = Range(-70.0, 40.0, 0.0)


@dataclass(frozen=True)
class SendParams:
    """Level sent from a stem to the shared reverb bus."""

    send_db: float = param(-60.0, 0.0, -60.0)


@dataclass(frozen=True)
class MasterChain:
    """What the mastering bus renders before the limiter, in order.

    Loudness (gain to target) and the true-peak limiter follow it; they are set from the
    delivery target, not predicted.
    """

    highpass: HighpassParams = HighpassParams()
    eq: EQParams = EQParams()
    compressor: CompressorParams = CompressorParams()
    width: StereoWidthParams = StereoWidthParams()


@dataclass(frozen=True)
class StemChain:
    """One stem in a mix, in order: gain, high-pass, EQ, compressor, pan; plus its reverb send."""

    gain: GainParams = GainParams()
    highpass: HighpassParams = HighpassParams()
    eq: EQParams = EQParams()
    compressor: CompressorParams = CompressorParams()
    pan: PanParams = PanParams()
    send: SendParams = SendParams()


EFFECTS: dict[str, type] = {
    "highpass": HighpassParams,
    "eq": EQParams,
    "compressor": CompressorParams,
    "width": StereoWidthParams,
    "gain": GainParams,
    "pan": PanParams,
    "reverb": ReverbParams,
    "limiter": LimiterParams,
    "send": SendParams,
}


# --- table helpers -------------------------------------------------------------------------


def ranges(cls_or_obj: Any) -> dict[str, Range]:
    """The `Range` of each field of an effect's dataclass, in field order."""
    return {f.name: f.metadata["range"] for f in fields(cls_or_obj) if "range" in f.metadata}


def unit_of(name: str) -> str:
    """The unit spelled by a parameter name's suffix."""
    for suffix, unit in (("_db", "dB"), ("_dbtp", "dBTP"), ("_hz", "Hz"), ("_ms", "ms"),
                         ("_s", "s"), ("_pct", "%"), ("_lufs", "LUFS")):
        if name.endswith(suffix):
            return unit
    return ""


def flat_ranges(cls_or_obj: Any, prefix: str = "") -> dict[str, Range]:
    """Ranges of an effect or of a chain of effects, keyed "effect.param" for chains."""
    out: dict[str, Range] = {}
    for f in fields(cls_or_obj):
        if "range" in f.metadata:
            out[prefix + f.name] = f.metadata["range"]
        else:
            out.update(flat_ranges(f.default, prefix=f"{prefix}{f.name}."))
    return out


def from_unit_vector(cls: type, u: Any) -> Any:
    """Build an effect or a chain from normalised values ``u[..., i]`` in 0..1.

    ``u`` is an array or tensor whose last axis has one entry per parameter, in
    `flat_ranges` order; each field of the result is ``u[..., i]`` mapped through its
    `Range` (so fields are arrays/tensors of shape ``u.shape[:-1]``).
    """
    n = len(flat_ranges(cls))
    if u.shape[-1] != n:
        raise ValueError(f"{cls.__name__} needs {n} values, got {u.shape[-1]}")
    return _build(cls, u, 0)[0]


def _build(cls: type, u: Any, i: int) -> tuple[Any, int]:
    kwargs = {}
    for f in fields(cls):
        if "range" in f.metadata:
            kwargs[f.name] = f.metadata["range"].denormalize(u[..., i])
            i += 1
        else:
            kwargs[f.name], i = _build(type(f.default), u, i)
    return cls(**kwargs), i


def to_unit_list(obj: Any) -> list[float]:
    """Normalised 0..1 values of an effect's or a chain's parameters, in `flat_ranges` order."""
    out: list[float] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if "range" in f.metadata:
            out.append(f.metadata["range"].normalize(value))
        else:
            out.extend(to_unit_list(value))
    return out


def as_real(value: float) -> float:
    """A number as a float; an int too large for one (JSON allows 1e400 written out) is
    infinite rather than an OverflowError."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def validate(cls: type, values: dict[str, Any], *, where: str) -> Any:
    """Build ``cls`` from a dict of real-unit values, refusing unknown, mistyped or out-of-range.

    Missing fields take their defaults. ``where`` names the place for the error message
    (e.g. "eq" or "stems.vocals.eq").
    """
    if not isinstance(values, dict):
        raise SettingsError(f"{where}: expected a mapping of parameters, "
                            f"got {type(values).__name__}")
    rs = ranges(cls)
    unknown = sorted(set(values) - set(rs), key=str)  # YAML keys may be numbers
    if unknown:
        raise SettingsError(
            f"{where}: unknown parameter {unknown[0]!r}; allowed: {', '.join(rs)}"
        )
    out = {}
    for name, value in values.items():
        r = rs[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{where}.{name}: expected a number, got {value!r}")
        if not math.isfinite(as_real(value)) or not (r.min <= value <= r.max):
            raise SettingsError(
                f"{where}.{name}={value} is out of range [{r.min:g}, {r.max:g}] "
                f"{unit_of(name)}".rstrip()
            )
        out[name] = float(value)
    return cls(**out)


def validate_chain(cls: type, values: dict[str, Any], *, where: str) -> Any:
    """Build a chain (e.g. `MasterChain`) from nested dicts of real-unit values; see `validate`."""
    if not isinstance(values, dict):
        raise SettingsError(f"{where}: expected a mapping, got {type(values).__name__}")
    groups = {f.name: type(f.default) for f in fields(cls)}
    unknown = sorted(set(values) - set(groups), key=str)
    if unknown:
        raise SettingsError(f"{where}: unknown section {unknown[0]!r}; "
                            f"allowed: {', '.join(groups)}")
    return cls(**{k: validate(groups[k], v, where=f"{where}.{k}") for k, v in values.items()})


def as_dict(obj: Any) -> dict[str, Any]:
    """Plain, JSON-able dict of a (possibly nested) settings dataclass."""
    return dataclasses.asdict(obj)


def iter_table() -> Iterator[tuple[str, str, Range]]:
    """(effect, parameter, range) for every parameter of every effect."""
    for effect, cls in EFFECTS.items():
        for name, r in ranges(cls).items():
            yield effect, name, r


def markdown_table() -> str:
    """The parameter table as Markdown (`automix params`, docs/design.md)."""
    rows = ["| effect | parameter | unit | min | max | default | scale |",
            "|---|---|---|---|---|---|---|"]
    for effect, name, r in iter_table():
        rows.append(f"| {effect} | `{name}` | {unit_of(name)} | {r.min:g} | {r.max:g} | "
                    f"{r.default:g} | {r.scale} |")
    return "\n".join(rows)
