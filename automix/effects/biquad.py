"""Filter coefficients as pedalboard (JUCE ``IIR::Coefficients``) computes them.

Written once over an array namespace ``xp`` (``numpy`` or ``torch``) so the DSP matcher's EQ
fit (numpy) and the differentiable twin (torch) share the formulas. Parameters may be floats
or arrays/tensors of shape ``(batch,)``; each function returns ``(b, a)``: two lists of three
coefficients, normalised so that ``a[0] == 1``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from automix.params import SHELF_Q, EQParams


def _normalise(b: list, a: list) -> tuple[list, list]:
    return [x / a[0] for x in b], [1.0 + 0.0 * a[0], a[1] / a[0], a[2] / a[0]]


def peak(freq_hz: Any, gain_db: Any, q: Any, sample_rate: float, xp: Any = np) -> tuple[list, list]:
    """JUCE ``makePeakFilter`` (RBJ peaking EQ, A = 10^(gain/40))."""
    a_lin = 10.0 ** (gain_db / 40.0)
    omega = 2.0 * math.pi * freq_hz / sample_rate
    alpha = xp.sin(omega) / (2.0 * q)
    c2 = -2.0 * xp.cos(omega)
    return _normalise([1.0 + alpha * a_lin, c2, 1.0 - alpha * a_lin],
                      [1.0 + alpha / a_lin, c2, 1.0 - alpha / a_lin])


def shelf(freq_hz: Any, gain_db: Any, sample_rate: float, *, high: bool, q: float = SHELF_Q,
          xp: Any = np) -> tuple[list, list]:
    """JUCE ``makeLowShelf`` / ``makeHighShelf`` (RBJ shelves with a Q)."""
    a_lin = 10.0 ** (gain_db / 40.0)
    am1, ap1 = a_lin - 1.0, a_lin + 1.0
    omega = 2.0 * math.pi * freq_hz / sample_rate
    cos_o = xp.cos(omega)
    beta = xp.sin(omega) * xp.sqrt(a_lin) / q
    s = -1.0 if high else 1.0  # the high shelf mirrors the signs of the terms
    b = [a_lin * (ap1 - s * am1 * cos_o + beta), 2.0 * s * a_lin * (am1 - s * ap1 * cos_o),
         a_lin * (ap1 - s * am1 * cos_o - beta)]
    a = [ap1 + s * am1 * cos_o + beta, -2.0 * s * (am1 + s * ap1 * cos_o),
         ap1 + s * am1 * cos_o - beta]
    return _normalise(b, a)


def first_order_highpass(freq_hz: Any, sample_rate: float, xp: Any = np) -> tuple[list, list]:
    """JUCE ``makeFirstOrderHighPass`` (bilinear transform), as a biquad with b2 = a2 = 0."""
    n = xp.tan(math.pi * freq_hz / sample_rate)
    zero = 0.0 * n
    return _normalise([1.0 + zero, -1.0 + zero, zero], [n + 1.0, n - 1.0, zero])


def eq_sections(p: EQParams, sample_rate: float, xp: Any = np) -> list[tuple[list, list]]:
    """The five EQ sections in render order: low shelf, peaks 1-3, high shelf."""
    return [
        shelf(p.low_shelf_freq_hz, p.low_shelf_gain_db, sample_rate, high=False, xp=xp),
        peak(p.peak1_freq_hz, p.peak1_gain_db, p.peak1_q, sample_rate, xp=xp),
        peak(p.peak2_freq_hz, p.peak2_gain_db, p.peak2_q, sample_rate, xp=xp),
        peak(p.peak3_freq_hz, p.peak3_gain_db, p.peak3_q, sample_rate, xp=xp),
        shelf(p.high_shelf_freq_hz, p.high_shelf_gain_db, sample_rate, high=True, xp=xp),
    ]


def magnitude_db(sections: list[tuple[list, list]], freqs_hz: Any, sample_rate: float,
                 xp: Any = np) -> Any:
    """Summed magnitude response in dB of cascaded sections at ``freqs_hz``.

    Coefficients of shape ``(batch,)`` broadcast against ``freqs_hz`` when given as
    ``(batch, 1)``; real arithmetic only, so it is differentiable in torch.
    """
    w = 2.0 * math.pi * freqs_hz / sample_rate
    c1, s1, c2, s2 = xp.cos(w), xp.sin(w), xp.cos(2 * w), xp.sin(2 * w)
    total = 0.0
    for b, a in sections:
        num = (b[0] + b[1] * c1 + b[2] * c2) ** 2 + (b[1] * s1 + b[2] * s2) ** 2
        den = (a[0] + a[1] * c1 + a[2] * c2) ** 2 + (a[1] * s1 + a[2] * s2) ** 2
        total = total + 10.0 * xp.log10(num / den)
    return total
