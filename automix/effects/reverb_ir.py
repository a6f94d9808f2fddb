"""The reverb's impulse response: seeded stereo noise shaped by `ReverbParams` (torch).

One function builds it for both renderers: the twin convolves with it in torch and
`render` hands the same array to ``pedalboard.Convolution``, so they hear the same room.
Every step is differentiable in the parameters (the decay envelope, the low-pass, the
fractional pre-delay and the width), except where the response is cut off, after its
RT60, which only decides the length.

The response is normalised so that its louder channel has unit energy (L2 norm 1): with
it, a white input comes out of the reverb at the same RMS, so ``wet_db`` is the energy
gain of the return and is applied outside the convolution.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
import torch
from torch import Tensor

from automix.params import ReverbParams, ranges

NOISE_SEED = 1_234_567  # fixed: the same parameters always give the same room
TAIL_MARGIN_SAMPLES = 64  # kept after the RT60 so the low-pass tail is not cut abruptly
DECAY_60DB = math.log(1000.0)  # RT60: the amplitude falls by 1000 (60 dB) over decay_s
FLUSH_BELOW = float(np.finfo(np.float32).tiny)  # compiled recursions (here and in the twin)
# flush smaller values to 0: decaying into denormals, they would run over ten times slower


def length_samples(sample_rate: int, p: ReverbParams) -> int:
    """Samples in the response: the longest pre-delay + RT60 in the batch, plus a margin."""
    seconds = (_field(p.predelay_ms) / 1000.0 + _field(p.decay_s)).max().detach()
    return math.ceil(float(seconds) * sample_rate) + TAIL_MARGIN_SAMPLES


@functools.lru_cache(maxsize=4)
def _noise(sample_rate: int) -> Tensor:
    """Seeded mid and side noise ``(2, samples)``, long enough for the longest room.

    Generated once at full length and sliced, so a response's samples do not depend on
    how long it is (or on the other rooms in its batch).
    """
    longest = ReverbParams(**{name: r.max for name, r in ranges(ReverbParams).items()})
    generator = torch.Generator().manual_seed(NOISE_SEED)
    return torch.randn(2, length_samples(sample_rate, longest), generator=generator)


def impulse_response(sample_rate: int, p: ReverbParams, samples: int | None = None) -> Tensor:
    """The stereo impulse response of a batch of rooms.

    Parameters
    ----------
    sample_rate : int
        Hz.
    p : ReverbParams
        Fields are tensors of shape ``(batch,)`` (or ``(1,)``); ``wet_db`` is not used here.
    samples : int, optional
        Return only the first ``samples`` (all a convolution cut to that length uses); the
        normalisation is still the whole response's.

    Returns
    -------
    Tensor
        ``(batch, 2, samples)`` float32 (by default `length_samples` long), the louder
        channel of each room at L2 norm 1. Left is mid + w * side and right is
        mid - w * side (w = ``width_pct / 100``), so 0 % gives identical channels and
        100 % uncorrelated ones. The noise decays by 60 dB over ``decay_s``, is low-passed
        by a one-pole filter at ``damping_hz``, then delayed by ``predelay_ms`` (linear
        interpolation between samples): both linear and alike for the two channels, so
        they are applied to the mid and side rooms (`_LowpassDelay`), which are mixed
        after the cut, with the channels' energies from their Gram matrix.
    """
    decay_s, damping_hz, predelay_ms, width_pct = torch.broadcast_tensors(
        *(_field(v).reshape(-1) for v in (p.decay_s, p.damping_hz, p.predelay_ms, p.width_pct)))
    n = length_samples(sample_rate, p)
    time_s = torch.arange(n, dtype=torch.float32) / sample_rate
    envelope = (torch.exp(-DECAY_60DB * time_s / decay_s.reshape(-1, 1, 1))
                * (time_s < decay_s.reshape(-1, 1, 1)))
    mid_side = _LowpassDelay.apply(_noise(sample_rate)[:, :n] * envelope,
                                   torch.exp(-2 * math.pi * damping_hz / sample_rate),
                                   predelay_ms * sample_rate / 1000)
    gram = mid_side @ mid_side.transpose(1, 2)  # (b, 2, 2): [[m.m, m.s], [m.s, s.s]]
    width = (width_pct / 100.0).reshape(-1, 1)
    # |m +- w s|^2 = m.m + w^2 s.s +- 2 w m.s: the louder channel adds 2 w |m.s|
    energy = gram[:, :1, 0] + width**2 * gram[:, 1:, 1] + 2 * width * gram[:, :1, 1].abs()
    mid, side = (mid_side[..., :samples] / energy.sqrt().unsqueeze(-1)).unbind(1)
    return torch.stack([mid + width * side, mid - width * side], dim=1)


def _field(value: float | Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=torch.float32)


class _LowpassDelay(torch.autograd.Function):
    """``x`` ``(b, c, n)`` through the one-pole low-pass y[t] = (1 - a) x[t] + a y[t-1], then
    delayed (linear interpolation between the two nearest whole samples, so differentiable
    in the delay), keeping length n; pole a and delay in samples are ``(b,)``.

    Compiled loops (`_lowpass_delay`, `_lowpass_delay_backward`) in float64: exact, and
    the response is exactly silent until its pre-delay.
    """

    @staticmethod
    def forward(ctx, x: Tensor, pole: Tensor, delay: Tensor) -> Tensor:
        ctx.save_for_backward(x, pole, delay)
        out, low = _lowpass_delay(*numpy_arrays(x, pole, delay))
        ctx.low = torch.from_numpy(low)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, pole, delay = ctx.saved_tensors
        grad_x, grad_pole, grad_delay = _lowpass_delay_backward(
            *numpy_arrays(grad, ctx.low, x, pole, delay))
        return (torch.from_numpy(grad_x), torch.from_numpy(grad_pole).to(pole.dtype),
                torch.from_numpy(grad_delay).to(delay.dtype))


def numpy_arrays(*tensors: Tensor) -> tuple[np.ndarray, ...]:
    """CPU tensors as contiguous numpy arrays, for compiled loops (these and the twin's)."""
    return tuple(t.detach().contiguous().numpy() for t in tensors)


@numba.njit(cache=True)
def _lowpass_delay(x: np.ndarray, pole: np.ndarray,
                   delay: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_LowpassDelay`'s output, and the low-passed signal before its delay."""
    items, channels, n = x.shape
    out, low = np.empty_like(x), np.zeros_like(x)
    for item in range(items):
        whole = min(int(math.floor(delay[item])), n)
        frac = delay[item] - whole
        out[item, :, :whole] = 0.0
        level = np.zeros(channels)  # channels interleaved: their recursions overlap
        for t in range(n - whole):
            for channel in range(channels):
                new = (1.0 - pole[item]) * x[item, channel, t] + pole[item] * level[channel]
                new = new if abs(new) >= FLUSH_BELOW else 0.0
                out[item, channel, t + whole] = (1.0 - frac) * new + frac * level[channel]
                low[item, channel, t] = level[channel] = new
    return out, low


@numba.njit(cache=True)
def _lowpass_delay_backward(grad: np.ndarray, low: np.ndarray, x: np.ndarray, pole: np.ndarray,
                            delay: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of `_lowpass_delay` in ``x``, pole and delay (float64), by the reverse pass."""
    items, channels, n = x.shape
    grad_x = np.zeros_like(x)
    grad_pole, grad_delay = np.zeros(items), np.zeros(items)
    for item in range(items):
        whole = min(int(math.floor(delay[item])), n)
        frac = delay[item] - whole
        carried = np.zeros(channels)  # d loss / d low[t], with all that flows back from later t
        for t in range(n - whole - 1, -1, -1):
            for channel in range(channels):
                here = grad[item, channel, t + whole]  # low[t] reaches out[t + whole] and
                after = grad[item, channel, t + whole + 1] if t + whole + 1 < n else 0.0  # next
                previous = low[item, channel, t - 1] if t > 0 else 0.0
                grad_delay[item] += here * (previous - low[item, channel, t])
                total = (1.0 - frac) * here + frac * after + pole[item] * carried[channel]
                total = total if abs(total) >= FLUSH_BELOW else 0.0
                grad_x[item, channel, t] = (1.0 - pole[item]) * total
                grad_pole[item] += total * (previous - x[item, channel, t])
                carried[channel] = total
    return grad_x, grad_pole, grad_delay
