"""Production features in torch: what training and refinement hear of a production.

`production_features` turns audio into one vector per item, built so that a genre preset can
be the plain mean of several tracks' vectors:

* 64-band log-mel (20 Hz to 16 kHz) of mid and of side: mean and the 10th/50th/90th
  percentiles over time, in dB relative to the excerpt's overall level;
* short-term level (400 ms windows of mid) percentiles in dB relative to the overall level;
* crest factor in dB (sample peak over RMS);
* stereo width in dB (side energy over mid energy).

Every feature is gain invariant: the excerpt is scaled to unit RMS first. Absolute level is a
convention of the chain instead (see `automix.model.network.CHAIN_INPUT_RMS_DB`).

The definition's constants and the mel filterbank live in `automix.model.features_np`, whose
numpy `production_features` gives the same vector for inference without torch.
"""

from __future__ import annotations

import numpy as np
import torch

from automix.model import features_np
from automix.model.features_np import (  # noqa: F401  (the feature definition, re-exported)
    CREST,
    FLOOR_DB,
    LEVEL_PERCENTILES,
    LEVELS,
    MEL_FMAX_HZ,
    MEL_FMIN_HZ,
    MEL_STATS,
    MID_MEAN,
    N_FEATURES,
    N_MELS,
    PERCENTILES,
    SHORT_TERM_S,
    SIDE_MEAN,
    STATS_PER_BAND,
    WIDTH,
    fft_size,
)


def _mel_basis(sample_rate: int, n_fft: int) -> torch.Tensor:
    """`features_np.mel_basis` as a tensor, (N_MELS, n_fft // 2 + 1)."""
    return torch.from_numpy(features_np.mel_basis(sample_rate, n_fft).copy())


def mid_side(x: torch.Tensor) -> torch.Tensor:
    """(batch, channels, samples) -> (batch, 2, samples) mid and side; mono has zero side."""
    if x.shape[1] == 1:
        return torch.cat([x, torch.zeros_like(x)], dim=1)
    left, right = x[:, 0], x[:, 1]
    return torch.stack([0.5 * (left + right), 0.5 * (left - right)], dim=1)


def unit_rms(x: torch.Tensor) -> torch.Tensor:
    """Scale each item to a mean square of 1 over channels and time."""
    ms = x.pow(2).mean(dim=(1, 2), keepdim=True)
    return x / (ms + 1e-12).sqrt()


def to_db(power: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(power + 10.0 ** (FLOOR_DB / 10.0))


def log_mel_db(ms: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Log-mel power of each channel, (batch, ch, samples) -> (batch, ch, N_MELS, frames) dB."""
    n_fft = fft_size(sample_rate)
    b, c, n = ms.shape
    window = torch.hann_window(n_fft, device=ms.device, dtype=ms.dtype)
    spec = torch.stft(ms.reshape(b * c, n), n_fft, hop_length=n_fft // 2, window=window,
                      center=True, return_complex=True)
    power = spec.real.pow(2) + spec.imag.pow(2)
    # Normalised so that a unit-RMS signal reads about 0 dB summed over the bands.
    power = power * (2.0 / window.pow(2).sum())
    mel = torch.matmul(_mel_basis(sample_rate, n_fft).to(ms), power)
    return to_db(mel).reshape(b, c, N_MELS, -1)


def short_term_levels_db(mid: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mean-square level of 400 ms windows (hop 100 ms), (batch, samples) -> (batch, windows) dB."""
    win = int(SHORT_TERM_S * sample_rate)
    hop = win // 4
    if mid.shape[-1] < win:
        return to_db(mid.pow(2).mean(dim=-1, keepdim=True))
    frames = mid.pow(2).unfold(-1, win, hop)
    return to_db(frames.mean(dim=-1))


def production_features(x: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The production-feature vector of each item.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, channels, samples), channels 1 or 2
    sample_rate : int, Hz

    Returns
    -------
    torch.Tensor, shape (batch, N_FEATURES): mid then side mel statistics (per statistic, all
    bands), level percentiles, crest (dB), width (dB). Gain invariant, differentiable.
    """
    ms = mid_side(unit_rms(x))
    mel = log_mel_db(ms, sample_rate)  # (b, 2, mels, frames)
    q = torch.tensor(PERCENTILES, dtype=mel.dtype, device=mel.device)
    stats = torch.cat([mel.mean(dim=-1, keepdim=True),
                       torch.quantile(mel, q, dim=-1).permute(1, 2, 3, 0)], dim=-1)
    mel_part = stats.permute(0, 1, 3, 2).reshape(x.shape[0], -1)  # (b, 2*stats*mels)
    levels = short_term_levels_db(ms[:, 0], sample_rate)
    lq = torch.tensor(LEVEL_PERCENTILES, dtype=mel.dtype, device=mel.device)
    level_part = torch.quantile(levels, lq, dim=-1).T
    unit = unit_rms(x)
    crest = 20.0 * torch.log10(unit.abs().amax(dim=(1, 2)) + 1e-6)
    width = to_db(ms[:, 1].pow(2).mean(-1)) - to_db(ms[:, 0].pow(2).mean(-1))
    return torch.cat([mel_part, level_part, crest[:, None], width[:, None]], dim=1)


def features_from_numpy(samples: np.ndarray, sample_rate: int) -> torch.Tensor:
    """`production_features` of one ``(channels, samples)`` array, shape (N_FEATURES,)."""
    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]
    with torch.no_grad():
        return production_features(x, sample_rate)[0]


def _centred(v: torch.Tensor, s: slice) -> torch.Tensor:
    return v[..., s] - v[..., s].mean(dim=-1, keepdim=True)


def tonal_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Tonal balance only: mean absolute difference (dB) of the level-centred mean log-mel of
    mid, plus 0.3 times that of side. (..., N_FEATURES) -> (...,)."""
    mid = (_centred(a, MID_MEAN) - _centred(b, MID_MEAN)).abs().mean(-1)
    side = (_centred(a, SIDE_MEAN) - _centred(b, SIDE_MEAN)).abs().mean(-1)
    return mid + 0.3 * side


def feature_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A production distance between feature vectors (..., N_FEATURES) -> (...,), in dB-ish units.

    Tonal balance (mean log-mel of mid, and of side, each with its overall level removed so
    width is counted once), width, crest and level distribution, each a mean absolute
    difference in dB, weighted so tonal balance leads.
    """
    mel_stats = (a[..., MEL_STATS] - b[..., MEL_STATS]).abs().mean(-1)
    levels = (a[..., LEVELS] - b[..., LEVELS]).abs().mean(-1)
    crest = (a[..., CREST] - b[..., CREST]).abs()
    width = (a[..., WIDTH] - b[..., WIDTH]).abs()
    return tonal_distance(a, b) + 0.3 * (mel_stats + levels + crest) + 0.5 * width
