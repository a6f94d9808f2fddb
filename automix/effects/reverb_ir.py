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

import torch
from scipy.fft import next_fast_len
from torch import Tensor

from automix.params import ReverbParams, ranges

NOISE_SEED = 1_234_567  # fixed: the same parameters always give the same room
TAIL_MARGIN_SAMPLES = 64  # kept after the RT60 so the low-pass tail is not cut abruptly
LOWPASS_PAD_SAMPLES = 1024  # the damping filter's tail fits in this (pole <= 0.87 at 44.1 kHz)
DECAY_60DB = math.log(1000.0)  # RT60: the amplitude falls by 1000 (60 dB) over decay_s


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


def impulse_response(sample_rate: int, p: ReverbParams) -> Tensor:
    """The stereo impulse response of a batch of rooms.

    Parameters
    ----------
    sample_rate : int
        Hz.
    p : ReverbParams
        Fields are tensors of shape ``(batch,)`` (or ``(1,)``); ``wet_db`` is not used here.

    Returns
    -------
    Tensor
        ``(batch, 2, samples)`` float32, the louder channel of each room at L2 norm 1.
        Left is mid + w * side and right is mid - w * side (w = ``width_pct / 100``), so
        0 % gives identical channels and 100 % uncorrelated ones. The noise decays by
        60 dB over ``decay_s``, is low-passed by a one-pole filter at ``damping_hz``, then
        delayed by ``predelay_ms`` (linear interpolation between samples).
    """
    n = length_samples(sample_rate, p)
    mid, side = _noise(sample_rate)[:, :n]
    width = (_field(p.width_pct) / 100.0).reshape(-1, 1, 1)
    stereo = torch.stack([mid + width[:, 0] * side, mid - width[:, 0] * side], dim=1)

    time_s = torch.arange(n, dtype=torch.float32) / sample_rate
    decay_s = _field(p.decay_s).reshape(-1, 1, 1)
    envelope = torch.exp(-DECAY_60DB * time_s / decay_s) * (time_s < decay_s)
    tail = _one_pole_lowpass(stereo * envelope, sample_rate,
                             _field(p.damping_hz).reshape(-1, 1, 1))
    ir = _fractional_delay(tail, _field(p.predelay_ms).reshape(-1) * sample_rate / 1000)
    return ir / ir.norm(dim=-1).amax(dim=-1).reshape(-1, 1, 1)


def _field(value: float | Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=torch.float32)


def _one_pole_lowpass(x: Tensor, sample_rate: int, cutoff_hz: Tensor) -> Tensor:
    """y[n] = (1 - a) x[n] + a y[n-1], a = exp(-2 pi fc / fs), on ``x`` ``(b, c, n)``.

    Applied as the filter's frequency response on a zero-padded FFT: the pole is at most
    exp(-2 pi 1000 / fs), so the tail past `LOWPASS_PAD_SAMPLES` is below 1e-12 and the
    result equals the recursion to float precision, for a fraction of its cost.
    ``cutoff_hz`` is ``(b, 1, 1)``.
    """
    n = x.shape[-1]
    n_fft = next_fast_len(n + LOWPASS_PAD_SAMPLES, real=True)
    pole = torch.exp(-2 * math.pi * cutoff_hz / sample_rate)
    z_inv = torch.exp(-2j * math.pi * torch.fft.rfftfreq(n_fft))
    response = (1 - pole) / (1 - pole * z_inv)
    return torch.fft.irfft(torch.fft.rfft(x, n_fft) * response, n_fft)[..., :n]


def _fractional_delay(x: Tensor, delay_samples: Tensor) -> Tensor:
    """Delay each item of ``x`` ``(b, c, n)`` by ``delay_samples[b]``, keeping length ``n``.

    Linear interpolation between the two nearest whole-sample shifts keeps the result
    differentiable in the delay.
    """
    delay_samples = delay_samples.expand(x.shape[0])
    whole = delay_samples.detach().floor()
    frac = (delay_samples - whole).reshape(-1, 1, 1)
    n = x.shape[-1]
    shifted = torch.stack([
        torch.nn.functional.pad(item, (k, 0))[..., :n]
        for item, k in zip(x, whole.long().tolist(), strict=True)
    ])
    return (1 - frac) * shifted + frac * torch.nn.functional.pad(shifted, (1, 0))[..., :n]
