"""Filter coefficients exactly as pedalboard (JUCE ``IIR::Coefficients<float>``) computes them.

Written once over an array namespace ``xp`` (``numpy`` or ``torch``) so that the DSP matcher's
EQ fit (numpy, no torch import) and the differentiable twin (torch) share one set of formulas.
JUCE computes coefficients in float32, where +, -, *, / and sqrt are correctly rounded (and
glibc's sinf, cosf, tanf and powf all but always are): doing each step in float64 and rounding
to float32 (`_ops`'s ``f32``) reproduces that bit for bit, which matters at 20-60 Hz where one
ulp in a coefficient moves the response by up to 0.05 dB.

``xp`` is ``numpy``, ``torch`` or `SMOOTH`. Parameters are floats or arrays/tensors of shape
``(batch,)``; each function returns
``(b, a)``: two lists of three float64 arrays/tensors, normalised so that ``a[0] == 1``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from automix.params import SHELF_Q, EQParams

SMOOTH = "smooth"  # xp for numpy in plain float64: smooth in the parameters, for fitting
_PI_F32 = float(np.float32(math.pi))
_F32_0_05 = float(np.float32(0.05))


def _ops(xp: Any) -> SimpleNamespace:
    """float64 math with float32 rounding for numpy or torch; `SMOOTH`: numpy, no rounding.

    Rounding makes the coefficients piecewise constant in the parameters, so a fit by finite
    differences must use `SMOOTH` (its responses differ from pedalboard's by < 0.05 dB).
    """
    if xp is np or xp == SMOOTH:
        f64 = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
        return SimpleNamespace(
            f64=f64,
            f32=(lambda x: np.asarray(x, dtype=np.float32).astype(np.float64)) if xp is np else f64,
            sin=np.sin, cos=np.cos, tan=np.tan, sqrt=np.sqrt,
            at_least=np.maximum)
    return SimpleNamespace(
        f64=lambda x: xp.as_tensor(x, dtype=xp.float64),
        f32=lambda x: x.to(xp.float32).to(xp.float64),
        sin=xp.sin, cos=xp.cos, tan=xp.tan, sqrt=xp.sqrt,
        at_least=lambda x, low: x.clamp_min(low))


def _normalise(o: SimpleNamespace, b: list, a: list) -> tuple[list, list]:
    """Scale by 1/a0 in float32, as JUCE does."""
    a0_inv = o.f32(1.0 / a[0])
    return [o.f32(c * a0_inv) for c in b], [1.0 + 0.0 * a0_inv] + [o.f32(c * a0_inv)
                                                                   for c in a[1:]]


def _omega(o: SimpleNamespace, freq_hz: Any, sample_rate: float) -> Any:
    """2 pi f / fs in float32, f limited to >= 2 Hz (JUCE)."""
    return o.f32(o.f32(2 * _PI_F32 * o.at_least(o.f32(o.f64(freq_hz)), 2.0)) / sample_rate)


def _sqrt_gain(o: SimpleNamespace, gain_db: Any) -> Any:
    """A = sqrt(10 ** (gain_db * 0.05)) in float32 (JUCE ``Decibels::decibelsToGain``)."""
    return o.f32(o.sqrt(o.f32(10.0 ** o.f32(o.f32(o.f64(gain_db)) * _F32_0_05))))


def peak(freq_hz: Any, gain_db: Any, q: Any, sample_rate: float, xp: Any = np) -> tuple[list, list]:
    """JUCE ``makePeakFilter`` (RBJ peaking EQ)."""
    o = _ops(xp)
    amp = _sqrt_gain(o, gain_db)
    omega = _omega(o, freq_hz, sample_rate)
    alpha = o.f32(o.f32(o.sin(omega)) / (o.f32(o.f64(q)) * 2))
    c2 = -2 * o.f32(o.cos(omega))
    alpha_a, alpha_over_a = o.f32(alpha * amp), o.f32(alpha / amp)
    return _normalise(o, [o.f32(1 + alpha_a), c2, o.f32(1 - alpha_a)],
                      [o.f32(1 + alpha_over_a), c2, o.f32(1 - alpha_over_a)])


def shelf(freq_hz: Any, gain_db: Any, sample_rate: float, *, high: bool | np.ndarray,
          q: float = SHELF_Q, xp: Any = np) -> tuple[list, list]:
    """JUCE ``makeLowShelf`` / ``makeHighShelf`` (RBJ shelves with a Q); numpy also takes
    ``high`` as a boolean array that broadcasts with the parameters (shelves of both kinds at
    once)."""
    o = _ops(xp)
    amp = _sqrt_gain(o, gain_db)
    am1, ap1 = o.f32(amp - 1), o.f32(amp + 1)
    omega = _omega(o, freq_hz, sample_rate)
    cos = o.f32(o.cos(omega))
    beta = o.f32(o.f32(o.f32(o.sin(omega)) * o.f32(o.sqrt(amp))) / float(np.float32(q)))
    am1_cos = o.f32(am1 * cos)
    # the high shelf flips the sign of every cos(omega) term
    s = (-1.0 if high else 1.0) if isinstance(high, bool) else np.where(high, -1.0, 1.0)
    sum_ = o.f32(ap1 - s * am1_cos)
    den = o.f32(ap1 + s * am1_cos)
    b = [o.f32(amp * o.f32(sum_ + beta)), o.f32(s * 2 * amp * o.f32(am1 - s * o.f32(ap1 * cos))),
         o.f32(amp * o.f32(sum_ - beta))]
    a = [o.f32(den + beta), o.f32(-s * 2 * o.f32(am1 + s * o.f32(ap1 * cos))), o.f32(den - beta)]
    return _normalise(o, b, a)


def first_order_highpass(freq_hz: Any, sample_rate: float, xp: Any = np) -> tuple[list, list]:
    """JUCE ``makeFirstOrderHighPass`` (bilinear), as a biquad with b2 = a2 = 0."""
    o = _ops(xp)
    n = o.f32(o.tan(o.f32(o.f32(_PI_F32 * o.f32(o.f64(freq_hz))) / sample_rate)))
    zero = 0.0 * n
    return _normalise(o, [1.0 + zero, -1.0 + zero, zero], [o.f32(n + 1), o.f32(n - 1), zero])


def eq_sections(p: EQParams, sample_rate: float, xp: Any = np) -> list[tuple[list, list]]:
    """The five EQ sections in render order: low shelf, peaks 1-3, high shelf."""
    return [
        shelf(p.low_shelf_freq_hz, p.low_shelf_gain_db, sample_rate, high=False, xp=xp),
        peak(p.peak1_freq_hz, p.peak1_gain_db, p.peak1_q, sample_rate, xp=xp),
        peak(p.peak2_freq_hz, p.peak2_gain_db, p.peak2_q, sample_rate, xp=xp),
        peak(p.peak3_freq_hz, p.peak3_gain_db, p.peak3_q, sample_rate, xp=xp),
        shelf(p.high_shelf_freq_hz, p.high_shelf_gain_db, sample_rate, high=True, xp=xp),
    ]


def eq_cascade(p: EQParams, sample_rate: float, xp: Any = np) -> tuple[list, list]:
    """`eq_sections` as one section of stacked coefficients (see `stack_sections`), each kind
    computed at once: shape (..., 5) for parameters of shape (..., 1) (numpy)."""
    def joined(names: list[str]) -> np.ndarray:
        return np.concatenate([getattr(p, name) for name in names], axis=-1)

    shelves = shelf(joined(["low_shelf_freq_hz", "high_shelf_freq_hz"]),
                    joined(["low_shelf_gain_db", "high_shelf_gain_db"]), sample_rate,
                    high=np.array([False, True]), xp=xp)
    peaks = peak(*(joined([f"peak{i}_{name}" for i in (1, 2, 3)])
                   for name in ("freq_hz", "gain_db", "q")), sample_rate, xp=xp)
    low, high = (tuple([c[..., i:i + 1] for c in coefs] for coefs in shelves) for i in (0, 1))
    return stack_sections([low, peaks, high])


def stack_sections(sections: list[tuple[list, list]]) -> tuple[list, list]:
    """Cascaded sections as one: each coefficient concatenated along a last axis of sections,
    in cascade order (numpy arrays of shape (..., 1) or (..., m), the same ``...``)."""
    return tuple([np.concatenate([section[which][k] for section in sections], axis=-1)
                  for k in range(3)] for which in (0, 1))


def magnitude_db(sections: list[tuple[list, list]], freqs_hz: np.ndarray,
                 sample_rate: float) -> np.ndarray:
    """Summed magnitude response in dB of cascaded sections at ``freqs_hz`` (numpy).

    Coefficients are scalars or arrays of shape (..., m): a last axis of ``m`` cascaded
    sections (`stack_sections`), summed in that order; the result has shape
    (..., freqs).
    """
    w = 2.0 * math.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate
    c1, s1, c2, s2 = np.cos(w), np.sin(w), np.cos(2 * w), np.sin(2 * w)
    total = np.zeros_like(w)
    for b, a in sections:
        b, a = ([np.atleast_1d(c)[..., np.newaxis] for c in coefs] for coefs in (b, a))
        num = (b[0] + b[1] * c1 + b[2] * c2) ** 2 + (b[1] * s1 + b[2] * s2) ** 2
        den = (a[0] + a[1] * c1 + a[2] * c2) ** 2 + (a[1] * s1 + a[2] * s2) ** 2
        for section_db in np.moveaxis(10.0 * np.log10(num / den), -2, 0):
            total = total + section_db
    return total
