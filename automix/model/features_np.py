"""Production features in numpy: what the network hears of a production, for inference.

The same vector as `automix.model.features.production_features` (the torch version that
training and refinement differentiate through), computed without torch or librosa so that
`automix master --method network` starts as fast as the DSP matcher. The feature definition,
its constants and the mel filterbank live here, once; the torch module imports them.

* 64-band log-mel (20 Hz to 16 kHz) of mid and of side: mean and the 10th/50th/90th
  percentiles over time, in dB relative to the excerpt's overall level;
* short-term level (400 ms windows of mid) percentiles in dB relative to the overall level;
* crest factor in dB (sample peak over RMS);
* stereo width in dB (side energy over mid energy).
"""

from __future__ import annotations

import functools

import numpy as np

N_MELS = 64
MEL_FMIN_HZ = 20.0
MEL_FMAX_HZ = 16000.0
PERCENTILES = (0.1, 0.5, 0.9)
LEVEL_PERCENTILES = (0.1, 0.5, 0.9, 0.95)
SHORT_TERM_S = 0.4
FLOOR_DB = -100.0
STATS_PER_BAND = 1 + len(PERCENTILES)
N_FEATURES = 2 * N_MELS * STATS_PER_BAND + len(LEVEL_PERCENTILES) + 2

# Slices of the feature vector, for losses and reading.
MID_MEAN = slice(0, N_MELS)
SIDE_MEAN = slice(N_MELS * STATS_PER_BAND, N_MELS * STATS_PER_BAND + N_MELS)
MEL_STATS = slice(0, 2 * N_MELS * STATS_PER_BAND)
LEVELS = slice(2 * N_MELS * STATS_PER_BAND, 2 * N_MELS * STATS_PER_BAND + len(LEVEL_PERCENTILES))
CREST = N_FEATURES - 2
WIDTH = N_FEATURES - 1

# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
_MEL_LINEAR_HZ = 200.0 / 3.0  # Hz per mel below the break
_MEL_BREAK_HZ = 1000.0
_MEL_BREAK = _MEL_BREAK_HZ / _MEL_LINEAR_HZ  # 15 mels
_MEL_LOG_STEP = np.log(6.4) / 27.0  # natural-log Hz per mel above the break


def fft_size(sample_rate: int) -> int:
    """About 46 ms: 2048 points at 44.1 and 48 kHz, 1024 at 22.05 kHz."""
    return int(2 ** round(np.log2(0.0464 * sample_rate)))


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel of frequencies in Hz (any shape)."""
    hz = np.asarray(hz, dtype=np.float64)
    log_part = _MEL_BREAK + np.log(np.maximum(hz, _MEL_BREAK_HZ) / _MEL_BREAK_HZ) / _MEL_LOG_STEP
    return np.where(hz >= _MEL_BREAK_HZ, log_part, hz / _MEL_LINEAR_HZ)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Frequencies in Hz of Slaney mels (any shape); the inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    log_part = _MEL_BREAK_HZ * np.exp(_MEL_LOG_STEP * (np.maximum(mel, _MEL_BREAK) - _MEL_BREAK))
    return np.where(mel >= _MEL_BREAK, log_part, mel * _MEL_LINEAR_HZ)


@functools.lru_cache(maxsize=8)
def mel_basis(sample_rate: int, n_fft: int) -> np.ndarray:
    """Triangular mel filterbank, shape (N_MELS, n_fft // 2 + 1), float32, read-only.

    `N_MELS` bands evenly spaced in Slaney mels from `MEL_FMIN_HZ` to `MEL_FMAX_HZ` (or
    Nyquist), each a triangle of peak 1 over the FFT bins (no area normalisation): the same
    as ``librosa.filters.mel(sr, n_fft, n_mels=N_MELS, fmin, fmax, norm=None)``.
    """
    fmax = min(MEL_FMAX_HZ, sample_rate / 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(MEL_FMIN_HZ), hz_to_mel(fmax), N_MELS + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]  # (N_MELS + 2, bins)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    basis = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    basis.flags.writeable = False
    return basis


def mid_side(x: np.ndarray) -> np.ndarray:
    """(batch, channels, samples) -> (batch, 2, samples) mid and side; mono has zero side."""
    if x.shape[1] == 1:
        return np.concatenate([x, np.zeros_like(x)], axis=1)
    left, right = x[:, 0], x[:, 1]
    return np.stack([0.5 * (left + right), 0.5 * (left - right)], axis=1)


def unit_rms(x: np.ndarray) -> np.ndarray:
    """Scale each item of (batch, channels, samples) to a mean square of 1 over channels and
    time."""
    ms = np.mean(x**2, axis=(1, 2), keepdims=True)
    return x / np.sqrt(ms + 1e-12)


def to_db(power: np.ndarray) -> np.ndarray:
    """Power (any shape) in dB, floored at `FLOOR_DB`."""
    return 10.0 * np.log10(power + 10.0 ** (FLOOR_DB / 10.0))


def stft_power(x: np.ndarray, n_fft: int) -> np.ndarray:
    """Power spectrogram (rows, samples) -> (rows, n_fft // 2 + 1, frames), as ``torch.stft``
    with a periodic Hann window, hop ``n_fft // 2``, ``center=True`` (reflect padding),
    normalised by ``2 / sum(window ** 2)`` so a unit-RMS signal reads about 0 dB in total."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(x, [(0, 0), (n_fft // 2, n_fft // 2)], mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::n_fft // 2]
    spec = np.fft.rfft(frames * window, axis=-1)  # (rows, frames, bins)
    power = spec.real**2 + spec.imag**2
    return np.swapaxes(power, 1, 2) * (2.0 / np.sum(window**2))


def log_mel_db(ms: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-mel power of each channel, (batch, ch, samples) -> (batch, ch, N_MELS, frames) dB."""
    n_fft = fft_size(sample_rate)
    b, c, n = ms.shape
    power = stft_power(ms.reshape(b * c, n), n_fft)
    mel = np.matmul(mel_basis(sample_rate, n_fft).astype(power.dtype), power)
    return to_db(mel).reshape(b, c, N_MELS, -1)


def short_term_levels_db(mid: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean-square level of 400 ms windows (hop 100 ms), (batch, samples) -> (batch, windows) dB."""
    win = int(SHORT_TERM_S * sample_rate)
    if mid.shape[-1] < win:
        return to_db(np.mean(mid**2, axis=-1, keepdims=True))
    frames = np.lib.stride_tricks.sliding_window_view(mid**2, win, axis=-1)[:, ::win // 4]
    return to_db(frames.mean(axis=-1))


def production_features(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """The production-feature vector of each item (float64 arithmetic).

    Parameters
    ----------
    x : np.ndarray, shape (batch, channels, samples), channels 1 or 2
    sample_rate : int, Hz

    Returns
    -------
    np.ndarray, shape (batch, N_FEATURES), float64: mid then side mel statistics (per
    statistic, all bands), level percentiles, crest (dB), width (dB). Gain invariant.
    """
    unit = unit_rms(np.asarray(x, dtype=np.float64))
    ms = mid_side(unit)
    mel = log_mel_db(ms, sample_rate)  # (b, 2, mels, frames)
    stats = np.concatenate([mel.mean(axis=-1)[None], np.quantile(mel, PERCENTILES, axis=-1)])
    mel_part = stats.transpose(1, 2, 0, 3).reshape(x.shape[0], -1)  # (b, 2*stats*mels)
    levels = short_term_levels_db(ms[:, 0], sample_rate)
    level_part = np.quantile(levels, LEVEL_PERCENTILES, axis=-1).T
    crest = 20.0 * np.log10(np.abs(unit).max(axis=(1, 2)) + 1e-6)
    width = to_db(np.mean(ms[:, 1] ** 2, axis=-1)) - to_db(np.mean(ms[:, 0] ** 2, axis=-1))
    return np.concatenate([mel_part, level_part, crest[:, None], width[:, None]], axis=1)
