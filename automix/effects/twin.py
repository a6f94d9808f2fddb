"""The differentiable torch twin of `automix.effects.render`.

Every function takes ``x`` of shape ``(batch, channels, samples)`` float32, the sample rate
in Hz and the same parameter dataclass as its pedalboard counterpart, with fields holding
tensors of shape ``(batch,)`` (`automix.params.from_unit_vector` builds them from a
network's 0..1 outputs; plain floats are broadcast over the batch). Outputs match
pedalboard's (measured by ``benchmarks/parity.py``) because each effect reproduces what
pedalboard really runs, JUCE's DSP, rather than a textbook version of it:

- high-pass and EQ: JUCE's ``IIR::Coefficients`` (RBJ cookbook biquads, first-order
  bilinear high-pass), computed in float32 like JUCE does; all of them are applied as one
  frequency response in a single FFT (an FIR of `fir_length` samples; the IIR tails beyond
  it are below -150 dB).
- compressor: JUCE's ``dsp::Compressor``: per-channel peak envelope with one-pole
  attack/release ballistics (a compiled loop, with its exact gradient by a reverse pass),
  hard-knee power-law gain above the threshold.
- reverb: convolution with `automix.effects.reverb_ir.impulse_response` by FFT.

Convolutions (`fft_convolve`) take their gradients as FFT correlations of the same length.

`optimise` refines settings in normalised 0..1 space by gradient descent through the twin.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import TypeVar

import numba
import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len
from torch import Tensor

from automix.effects import biquad, reverb_ir
from automix.effects.reverb_ir import FLUSH_BELOW, numpy_arrays
from automix.params import (
    CompressorParams,
    EQParams,
    GainParams,
    HighpassParams,
    MasterChain,
    PanParams,
    ReverbParams,
    StemChain,
    StereoWidthParams,
)

P = TypeVar("P")

FIR_SECONDS = 0.25  # linear filters' impulse responses are kept this long (rounded up):
# 16384 taps at 44.1 kHz, where the slowest tail allowed (a 60 Hz, Q 4 peak) is below -150 dB
KNEE_SURROGATE_DB = 4.0  # width of the soft knee that only the compressor's gradient sees
NEPERS_PER_DB = math.log(10.0) / 20.0
TINY = 1e-30  # envelope floor before its log (silence), a normal float32


# --- parameters --------------------------------------------------------------------------


def batched(p: P, batch: int, dtype: torch.dtype = torch.float32) -> P:
    """``p`` with every field a tensor of shape ``(batch,)`` (floats and (1,) broadcast)."""
    values = {}
    for f in dataclasses.fields(p):  # type: ignore[arg-type]
        value = torch.as_tensor(getattr(p, f.name), dtype=dtype).reshape(-1)
        values[f.name] = value.expand(batch) if value.numel() == 1 else value
    return dataclasses.replace(p, **values)  # type: ignore[type-var]


def db_to_amp(db: Tensor) -> Tensor:
    return 10.0 ** (db / 20.0)


def _col(value: Tensor) -> Tensor:
    """``(batch,)`` -> ``(batch, 1, 1)``, to scale ``(batch, channels, samples)``."""
    return value.reshape(-1, 1, 1)


# --- linear filters (high-pass, EQ) ------------------------------------------------------


def fir_length(sample_rate: int) -> int:
    """Length of the FIR that stands for the high-pass and EQ (a power of two, >= 0.25 s)."""
    return 1 << math.ceil(math.log2(FIR_SECONDS * sample_rate))


def _stack(sections: list[tuple[list, list]]) -> Tensor:
    """`biquad` sections as ``(batch, k, 2, 3)`` float64 [b; a] coefficients."""
    return torch.stack([torch.stack([torch.stack(b, -1), torch.stack(a, -1)], dim=-2)
                        for b, a in sections], dim=1)


def highpass_coefficients(freq_hz: Tensor, sample_rate: int) -> Tensor:
    """JUCE ``makeFirstOrderHighPass`` as one biquad, ``(batch, 1, 2, 3)``."""
    return _stack([biquad.first_order_highpass(freq_hz, sample_rate, xp=torch)])


def eq_coefficients(p: EQParams, sample_rate: int) -> Tensor:
    """The five EQ biquads in render order, ``(batch, 5, 2, 3)``."""
    return _stack(biquad.eq_sections(p, sample_rate, xp=torch))


def highpass_biquads(p: HighpassParams, sample_rate: int) -> Tensor:
    """The two cascaded first-order sections, ``(batch, 2, 2, 3)``."""
    return highpass_coefficients(p.freq_hz, sample_rate).expand(-1, 2, -1, -1)


def frequency_response(biquads: Tensor, n_fft: int) -> Tensor:
    """Response of cascaded biquads ``(batch, k, 2, 3)`` at the ``n_fft // 2 + 1`` rfft bins.

    Evaluated in float64: near poles close to z = 1 (low frequencies) the denominator is a
    difference of nearly equal terms, which float32 would not resolve. Returns complex128
    ``(batch, bins)``.
    """
    z_inv = torch.exp(-2j * math.pi * torch.fft.rfftfreq(n_fft, dtype=torch.float64))
    powers = torch.stack([torch.ones_like(z_inv), z_inv, z_inv * z_inv])  # (3, bins)
    sections = (biquads.to(torch.float64).to(torch.complex128) @ powers).unbind(dim=1)
    polys = functools.reduce(torch.mul, sections)  # a product's backward is costlier than these
    return polys[:, 0] / polys[:, 1]  # (batch, bins): all numerators over all denominators


def apply_biquads(x: Tensor, sample_rate: int, biquads: Tensor) -> Tensor:
    """Filter ``x`` ``(batch, channels, samples)`` by cascaded biquads, zero initial state.

    The cascade's impulse response is sampled as an FIR of `fir_length` samples (frequency
    sampling) and applied by `fft_convolve`, so any number of sections costs the same.
    """
    n_fir = fir_length(sample_rate)
    fir = torch.fft.irfft(frequency_response(biquads, n_fir), n_fir).to(x.dtype)
    return fft_convolve(x, fir.unsqueeze(1))


def fft_length(n: int) -> int:
    """The shortest even 5-smooth length >= ``n`` (real FFTs of odd lengths take twice as long)."""
    return 2 * next_fast_len((n + 1) // 2, real=True)


def fft_convolve(x: Tensor, h: Tensor) -> Tensor:
    """``x`` ``(batch, channels, n)`` convolved with ``h`` ``(batch, channels or 1, m)``, cut
    to ``n`` samples (the tail past the end is dropped), by one FFT at `fft_length`."""
    return _FFTConvolve.apply(x, h)


class _FFTConvolve(torch.autograd.Function):
    """`fft_convolve`, whose gradients are the correlations with the other operand, by FFTs
    of the same length (torch's backward of ``rfft`` runs a complex FFT on a zero-filled
    two-sided spectrum, about four times the work)."""

    @staticmethod
    def forward(ctx, x: Tensor, h: Tensor) -> Tensor:
        n_fft = fft_length(x.shape[-1] + h.shape[-1] - 1)
        spectra = torch.fft.rfft(x, n_fft), torch.fft.rfft(h, n_fft)
        y = torch.fft.irfft(spectra[0] * spectra[1], n_fft)[..., :x.shape[-1]]
        # the gradient of each operand is the correlation with the other: keep that one's
        # conjugate (in place: a product with a lazy .conj() takes twice as long)
        ctx.conjugates = [spectra[1 - i].conj_physical_() if ctx.needs_input_grad[i] else None
                          for i in (0, 1)]
        ctx.n_fft, ctx.shapes = n_fft, (x.shape, h.shape)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        grad_spectrum = torch.fft.rfft(grad, ctx.n_fft)
        return tuple(None if conjugate is None else
                     _correlation(grad_spectrum, conjugate, shape, ctx.n_fft)
                     for conjugate, shape in zip(ctx.conjugates, ctx.shapes, strict=True))


def _correlation(grad_spectrum: Tensor, conjugate: Tensor, shape: torch.Size,
                 n_fft: int) -> Tensor:
    """The inverse FFT of ``grad_spectrum * conjugate``, summed and cut to ``shape``."""
    spectrum = (grad_spectrum * conjugate).sum_to_size(*shape[:-1], conjugate.shape[-1])
    return torch.fft.irfft(spectrum, n_fft)[..., :shape[-1]]


def highpass(x: Tensor, sample_rate: int, p: HighpassParams) -> Tensor:
    p = batched(p, x.shape[0])
    return apply_biquads(x, sample_rate, highpass_biquads(p, sample_rate))


def eq(x: Tensor, sample_rate: int, p: EQParams) -> Tensor:
    p = batched(p, x.shape[0])
    return apply_biquads(x, sample_rate, eq_coefficients(p, sample_rate))


def highpass_eq(x: Tensor, sample_rate: int, hp: HighpassParams, p: EQParams) -> Tensor:
    """`highpass` then `eq`, in one FFT."""
    hp, p = batched(hp, x.shape[0]), batched(p, x.shape[0])
    biquads = torch.cat([highpass_biquads(hp, sample_rate), eq_coefficients(p, sample_rate)], 1)
    return apply_biquads(x, sample_rate, biquads)


# --- dynamics ----------------------------------------------------------------------------


def ballistics_coefficient(time_ms: Tensor, sample_rate: int) -> Tensor:
    """JUCE ``BallisticsFilter``: exp(-2 pi 1000 / (fs ms)) (time constant ms / 2 pi)."""
    return torch.exp(-2 * math.pi * 1000.0 / sample_rate / time_ms)


def peak_envelope(x: Tensor, sample_rate: int, attack_ms: Tensor, release_ms: Tensor) -> Tensor:
    """JUCE's peak ballistics per channel, from 0: y = |x| + c (y' - |x|), c the attack
    coefficient where |x| > y', else the release's (`ballistics_coefficient`).

    Runs JUCE's float arithmetic in a compiled loop (`_ballistics`); the exact gradient in
    ``x``, attack and release comes from one reverse pass (`_ballistics_backward`).
    """
    attack, release = (ballistics_coefficient(ms, sample_rate).to(x.dtype).expand(x.shape[0])
                       for ms in (attack_ms, release_ms))
    return _PeakBallistics.apply(x, attack, release)


class _PeakBallistics(torch.autograd.Function):
    """`_ballistics` with `_ballistics_backward`, on CPU tensors."""

    @staticmethod
    def forward(ctx, x: Tensor, attack: Tensor, release: Tensor) -> Tensor:
        envelope = torch.from_numpy(_ballistics(*numpy_arrays(x, attack, release)))
        ctx.save_for_backward(x, attack, release, envelope)
        return envelope

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, attack, release, envelope = ctx.saved_tensors
        grad_x, grad_attack, grad_release = _ballistics_backward(
            *numpy_arrays(grad, x, envelope, attack, release))
        return (torch.from_numpy(grad_x), torch.from_numpy(grad_attack).to(attack.dtype),
                torch.from_numpy(grad_release).to(release.dtype))


@numba.njit(cache=True)
def _ballistics(x: np.ndarray, attack: np.ndarray, release: np.ndarray) -> np.ndarray:
    """`peak_envelope` of ``x`` ``(b, c, n)``; coefficients ``(b,)`` of its dtype."""
    items, channels, n = x.shape
    y = np.empty_like(x)
    for item in range(items):
        level = np.zeros(channels, x.dtype)  # channels interleaved: their recursions overlap
        for t in range(n):
            for channel in range(channels):
                rectified = abs(x[item, channel, t])
                c = attack[item] if rectified > level[channel] else release[item]
                new = rectified + c * (level[channel] - rectified)
                y[item, channel, t] = level[channel] = new if new >= FLUSH_BELOW else 0.0
    return y


@numba.njit(cache=True)
def _ballistics_backward(grad: np.ndarray, x: np.ndarray, y: np.ndarray, attack: np.ndarray,
                         release: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of `_ballistics` (output ``y``) in ``x``, attack and release (float64)."""
    items, channels, n = x.shape
    grad_x = np.empty_like(x)
    grad_attack, grad_release = np.zeros(items), np.zeros(items)
    for item in range(items):
        carried = np.zeros(channels)  # d loss / d y[t], with all that flows back from later t
        for t in range(n - 1, -1, -1):
            for channel in range(channels):
                total = carried[channel] + grad[item, channel, t]
                previous = y[item, channel, t - 1] if t > 0 else 0.0
                rectified = abs(x[item, channel, t])
                rising = rectified > previous
                c = attack[item] if rising else release[item]
                grad_x[item, channel, t] = total * (1.0 - c) * np.sign(x[item, channel, t])
                if rising:
                    grad_attack[item] += total * (previous - rectified)
                else:
                    grad_release[item] += total * (previous - rectified)
                total *= c
                carried[channel] = total if abs(total) >= FLUSH_BELOW else 0.0
    return grad_x, grad_attack, grad_release


def compressor_gain(envelope: Tensor, threshold_db: Tensor, ratio: Tensor,
                    makeup_db: Tensor) -> Tensor:
    """JUCE's hard-knee gain, (env / threshold) ** (1 / ratio - 1) above the threshold, else
    1, times the make-up gain; computed as one exp of the level over the threshold in nepers.

    Value and gradient are exactly that's. One exception, for the gradient only: a batch
    item whose envelope never exceeds the threshold (a compressor set above the signal,
    as the default 0 dB is) has a zero gradient in threshold and ratio, so it could never
    learn to compress; for those items the threshold and ratio get the gradient of a knee
    softened over `KNEE_SURROGATE_DB` (softplus in dB), which points towards compressing.
    """
    level = torch.log(envelope.clamp_min(TINY))  # nepers
    threshold = _col(threshold_db * NEPERS_PER_DB)
    slope = 1.0 / _col(ratio) - 1.0
    makeup = _col(makeup_db * NEPERS_PER_DB)
    over = level - threshold
    gain = torch.exp(slope * over.clamp_min(0.0) + makeup)
    idle = (over <= 0.0).flatten(1).all(dim=1).detach()
    if not idle.any():
        return gain
    rows = idle.nonzero()[:, 0]
    width = KNEE_SURROGATE_DB * NEPERS_PER_DB
    knee = width * F.softplus((level.detach()[rows] - threshold[rows]) / width)
    surrogate = torch.exp(slope[rows] * knee + makeup[rows].detach())
    return gain.index_add(0, rows, surrogate - surrogate.detach())


def compressor(x: Tensor, sample_rate: int, p: CompressorParams) -> Tensor:
    """pedalboard.Compressor (JUCE) followed by the make-up gain."""
    p = batched(p, x.shape[0])
    envelope = peak_envelope(x, sample_rate, p.attack_ms, p.release_ms)
    return x * compressor_gain(envelope, p.threshold_db, p.ratio, p.makeup_db)


# --- gain and stereo ---------------------------------------------------------------------


def gain(x: Tensor, sample_rate: int, p: GainParams) -> Tensor:
    return x * _col(db_to_amp(batched(p, x.shape[0]).gain_db))


def stereo_width(x: Tensor, sample_rate: int, p: StereoWidthParams) -> Tensor:
    """Scale the side signal by ``width_pct / 100``; other than stereo is returned unchanged."""
    if x.shape[1] != 2:
        return x
    width = _col(batched(p, x.shape[0]).width_pct / 100.0)
    mid = 0.5 * (x[:, 0:1] + x[:, 1:2])
    side = 0.5 * (x[:, 0:1] - x[:, 1:2]) * width
    return torch.cat([mid + side, mid - side], dim=1)


def pan(x: Tensor, sample_rate: int, p: PanParams) -> Tensor:
    """Constant-power pan of the channels' mean to stereo ``(batch, 2, samples)``."""
    mono = x.mean(dim=1, keepdim=True)
    angle = _col((batched(p, x.shape[0]).pan + 1.0) * math.pi / 4.0)
    return torch.cat([mono * torch.cos(angle), mono * torch.sin(angle)], dim=1)


# --- reverb ------------------------------------------------------------------------------


def reverb_return(x: Tensor, sample_rate: int, p: ReverbParams) -> Tensor:
    """The wet signal only (for a send bus): ``x`` convolved with the room, times ``wet_db``.

    Left is convolved with the left response and right with the right (a mono input is
    used for both); the output is stereo, as long as ``x`` (the tail past the end is cut,
    as pedalboard does).
    """
    p = batched(p, x.shape[0])
    x = x.expand(-1, 2, -1) if x.shape[1] == 1 else x
    ir = reverb_ir.impulse_response(sample_rate, p, samples=x.shape[-1])  # later ones reach past
    return fft_convolve(x, ir) * _col(db_to_amp(p.wet_db))


def reverb(x: Tensor, sample_rate: int, p: ReverbParams) -> Tensor:
    """Dry plus `reverb_return`, stereo."""
    dry = x.expand(-1, 2, -1) if x.shape[1] == 1 else x
    return dry + reverb_return(x, sample_rate, p)


# --- chains ------------------------------------------------------------------------------


def master_chain(x: Tensor, sample_rate: int, chain: MasterChain) -> Tensor:
    """High-pass, EQ, compressor (+ make-up), width: `automix.effects.render.master_chain`."""
    y = highpass_eq(x, sample_rate, chain.highpass, chain.eq)
    y = compressor(y, sample_rate, chain.compressor)
    return stereo_width(y, sample_rate, chain.width)


def stem_chain(x: Tensor, sample_rate: int, chain: StemChain) -> tuple[Tensor, Tensor]:
    """Gain, high-pass, EQ, compressor, pan: returns (dry stereo, reverb send)."""
    # the gain is linear, so it commutes with the filters; after them its gradient needs no
    # pass back through the FFT
    y = highpass_eq(x, sample_rate, chain.highpass, chain.eq)
    y = compressor(gain(y, sample_rate, chain.gain), sample_rate, chain.compressor)
    dry = pan(y, sample_rate, chain.pan)
    send = dry * _col(db_to_amp(batched(chain.send, x.shape[0]).send_db))
    return dry, send


# --- refinement --------------------------------------------------------------------------


def optimise(params_u: Tensor, render_fn: Callable[[Tensor], Tensor],
             loss_fn: Callable[[Tensor], Tensor], *, steps: int, lr: float = 0.02,
             time_budget_s: float | None = None, trainable: Tensor | None = None) -> Tensor:
    """Refine normalised settings by Adam through the twin; return the best ones seen.

    Parameters
    ----------
    params_u : Tensor
        Starting settings in 0..1, ``(..., n_params)`` in `automix.params.flat_ranges`
        order (e.g. `automix.params.to_unit_list` of a chain, or a network's output).
    render_fn : callable
        ``u -> audio``, e.g. ``lambda u: master_chain(x, sr, from_unit_vector(MasterChain, u))``.
    loss_fn : callable
        ``audio -> scalar`` loss to minimise.
    steps : int
        Most Adam steps.
    lr : float
        Adam step size in 0..1 units (0.02 moves a parameter by ~2 % of its range a step).
    time_budget_s : float, optional
        Stop after this many seconds even if ``steps`` are not done.
    trainable : Tensor, optional
        Bool mask broadcastable to ``params_u``; the others stay fixed.

    Returns
    -------
    Tensor
        The settings (same shape, detached, in 0..1) with the lowest loss evaluated. Each
        step is projected back to 0..1 (clamping rather than a sigmoid, so settings at the
        ends of their ranges, as most defaults are, can move at full speed).
    """
    u = params_u.detach().clone().clamp(0.0, 1.0).requires_grad_(True)
    mask = None if trainable is None else trainable.to(u.dtype)
    optimiser = torch.optim.Adam([u], lr=lr)
    best_u, best_loss = u.detach().clone(), math.inf
    start = time.perf_counter()
    for _ in range(steps):
        loss = loss_fn(render_fn(u))
        if loss.item() < best_loss:
            best_u, best_loss = u.detach().clone(), loss.item()
        optimiser.zero_grad()
        loss.backward()
        if mask is not None:
            u.grad.mul_(mask)  # type: ignore[union-attr]
        optimiser.step()
        with torch.no_grad():
            u.clamp_(0.0, 1.0)
        if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
            break
    with torch.no_grad():
        if loss_fn(render_fn(u)).item() < best_loss:
            best_u = u.detach().clone()
    return best_u
