"""Loudness and peak measurement: ITU-R BS.1770-4, EBU R 128 and EBU Tech 3342.

Every function takes audio in automix's layout, ``(channels, samples)`` (a 1-D array is read
as mono), with ``sample_rate`` in Hz. Integrated loudness and loudness range share one
K-weighting pass (`loudness_and_range`). The K-weighting is the libebur128 design that
pyloudnorm calls "DeMan", run through pedalboard's filters (see `k_weighting_board`): the
tests hold this meter to pyloudnorm's within 0.005 LU, and not importing pyloudnorm and SciPy's
signal package at run time saves 0.8 s of every `automix master`. True peak uses a 4x
polyphase windowed-sinc interpolator evaluated as one matrix product per block of samples,
which keeps a 3-minute stereo file well under a second.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from functools import lru_cache

import numpy as np
import pedalboard as pb
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import ThreadpoolController

from automix.effects import render
from automix.errors import AudioInputError

LEVEL_FLOOR_DB = -120.0  # what silence reads, in dBFS, dBTP and LUFS
MAX_CHANNELS = 5  # BS.1770-4 weights are defined for L, R, C, Ls, Rs
# BS.1770-4 Table 3: channel weights G_i (L, R, C, Ls, Rs).
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
# K-weighting, BS.1770-4 §2.1, as libebur128 designs it at any rate (pyloudnorm's "DeMan"
# filters; at 48 kHz they reproduce the coefficients of Tables 1 and 2, so a 0 dBFS 1 kHz sine
# in one channel reads -3.01 LKFS): a high shelf, then a high-pass.
K_SHELF_HZ = 1681.9744509555319
K_SHELF_GAIN_DB = 3.99984385397
K_SHELF_Q = 0.7071752369554193
K_HIGHPASS_HZ = 38.13547087613982
K_HIGHPASS_Q = 0.5003270373253953
LOUDNESS_OFFSET_DB = -0.691  # BS.1770-4 eq. 2
GATING_BLOCK_S = 0.4  # BS.1770-4 §2.8: 400 ms blocks overlapping by 75 %
ABSOLUTE_GATE_LUFS = -70.0  # BS.1770-4 eq. 5
RELATIVE_GATE_LU = -10.0  # BS.1770-4 eq. 6
SHORT_TERM_BLOCK_S = 3.0  # EBU Tech 3342 §3: short-term loudness, 3 s window
HOP_S = 0.1  # both: 75 % overlap of 400 ms, and Tech 3342's >= 10 short-term values per second
LRA_RELATIVE_GATE_LU = -20.0  # EBU Tech 3342 §3
LRA_PERCENTILES = (10.0, 95.0)  # EBU Tech 3342 §3: LRA = L95 - L10
# True-peak interpolator: per phase, 16 taps of a Kaiser-windowed sinc. Its error is below
# 0.03 dB up to 0.4 fs (17.6 kHz at 44.1 kHz); the BS.1770-4 Annex 2 example uses 12 taps.
TRUE_PEAK_TAPS = 16
TRUE_PEAK_KAISER_BETA = 5.0
_TRUE_PEAK_BLOCK = 32  # output samples per row of the block matrix product
_TRUE_PEAK_ROWS = 1024  # rows per matrix product: a few hundred kB, stays in cache
_ONE_THREAD_ROWS = 48  # rows x channels: OpenBLAS threads sgemm from m*n*k = 2**18 (here ~58)


def db_to_amp(db: float | np.ndarray) -> float | np.ndarray:
    """Amplitude ratio of a level in dB (``10 ** (db / 20)``)."""
    amp = 10.0 ** (np.asarray(db, dtype=np.float64) / 20.0)
    return float(amp) if amp.ndim == 0 else amp


def amp_to_db(amp: float | np.ndarray, floor_db: float = LEVEL_FLOOR_DB) -> float | np.ndarray:
    """Level in dB of an amplitude ratio, ``20 log10 |amp|``, never below ``floor_db``."""
    floor = 10.0 ** (floor_db / 20.0)
    db = 20.0 * np.log10(np.maximum(np.abs(amp), floor))
    return float(db) if np.ndim(db) == 0 else db


def as_channels(samples: np.ndarray) -> np.ndarray:
    """Check a signal's layout and return it as ``(channels, samples)``.

    Parameters
    ----------
    samples : np.ndarray, shape (channels, samples) or (samples,)

    Returns
    -------
    np.ndarray, shape (channels, samples), C-contiguous, the input's float dtype (float32 if
    not float)

    Raises
    ------
    AudioInputError
        For an empty signal, more than 3 dimensions, more than five channels, or a layout
        that looks transposed (more channels than samples).
    """
    x = np.asarray(samples)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    if x.ndim == 1:
        x = x[np.newaxis]
    if x.ndim != 2 or x.size == 0:
        raise AudioInputError(f"expected audio of shape (channels, samples), got {x.shape}")
    if x.shape[0] > x.shape[1]:
        raise AudioInputError(
            f"expected audio of shape (channels, samples), got {x.shape}: transposed?"
        )
    if x.shape[0] > MAX_CHANNELS:
        raise AudioInputError(f"at most {MAX_CHANNELS} channels are supported, got {x.shape[0]}")
    # one memory layout for the many passes that follow (soundfile data arrives transposed)
    return np.ascontiguousarray(x)


def sample_peak_dbfs(samples: np.ndarray) -> float:
    """Largest absolute sample value over all channels, in dBFS."""
    return amp_to_db(np.max(np.abs(as_channels(samples))))


def k_weighting_board(sample_rate: int) -> pb.Pedalboard:
    """K-weighting as pedalboard filters (JUCE's, float32), up to the gain `k_weighting_gain`.

    The shelf is an RBJ high shelf: with the same Q and gain, its poles and zeros land on
    the BS.1770 shelf's when its prewarped frequency is the shelf's divided by sqrt(A)
    (A = 10 ** (gain_db / 40)). The high-pass's Q is 0.5 within 0.07 %: two first-order
    high-passes at its frequency (a Q of exactly 0.5, bilinear with the same prewarping).
    Responses agree with the libebur128 biquads within 0.01 dB from 20 Hz up (8-96 kHz).
    """
    amp = 10.0 ** (K_SHELF_GAIN_DB / 40.0)
    warped = math.tan(math.pi * K_SHELF_HZ / sample_rate) / math.sqrt(amp)
    shelf_hz = sample_rate / math.pi * math.atan(warped)
    return pb.Pedalboard(
        [pb.HighShelfFilter(cutoff_frequency_hz=shelf_hz, gain_db=K_SHELF_GAIN_DB, q=K_SHELF_Q)]
        + [pb.HighpassFilter(cutoff_frequency_hz=K_HIGHPASS_HZ) for _ in range(2)]
    )


def k_weighting_gain(sample_rate: int) -> float:
    """Amplitude gain of libebur128's high-pass over `k_weighting_board`'s: its numerator is
    (1, -2, 1), not normalised, so its pass band sits at 1 + K/Q + K^2 (0.04 dB at 48 kHz,
    as BS.1770-4 Table 2 has it), K = tan(pi f / fs)."""
    k = math.tan(math.pi * K_HIGHPASS_HZ / sample_rate)
    return 1.0 + k / K_HIGHPASS_Q + k * k


def channel_power_weights(channels: int, sample_rate: int) -> np.ndarray:
    """G_i times the squared `k_weighting_gain`, shape (channels, 1), float32: what the
    squared output of `k_weighting_board` is weighted by before summing channels."""
    weights = np.asarray(CHANNEL_WEIGHTS[:channels]) * k_weighting_gain(sample_rate) ** 2
    return weights.astype(np.float32)[:, np.newaxis]


def weighted_power(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Sum over channels of G_i times the squared K-weighted signal, shape (samples,), float32.

    Block mean squares are linear in this sum, so BS.1770-4 eq. 4's per-channel sums can be
    taken before blocking (`integrated_lufs_of_power`). Filtering in float32 moves loudness
    by less than 1e-4 LU.
    """
    x = as_channels(samples).astype(np.float32, copy=False)
    board = k_weighting_board(sample_rate)
    weights = channel_power_weights(x.shape[0], sample_rate)
    power = np.empty(x.shape[1], dtype=np.float32)
    for where, y in render.chunks_through(board, x, sample_rate):  # nothing else whole-size
        np.square(y, out=y)
        y *= weights
        np.sum(y, axis=0, out=power[where])
    return power


def hop_energy(power: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """`weighted_power` summed over consecutive 100 ms hops, from which every block is built.

    Returns
    -------
    energy_cumsum : np.ndarray, shape (hops + 1,), float64, starting at 0
    bounds : np.ndarray, shape (hops + 1,), int64, first sample of each hop, then the end of
        the last complete hop (a partial hop at the end is left out)
    """
    hop = HOP_S * sample_rate
    bounds = np.floor(np.arange(int(power.size / hop) + 1) * hop).astype(np.int64)
    energy = np.add.reduceat(power[: bounds[-1]], bounds[:-1]) if bounds.size > 1 else []
    return np.concatenate([[0.0], np.cumsum(energy, dtype=np.float64)]), bounds


def _block_power(hop_energy: tuple[np.ndarray, np.ndarray], block_s: float) -> np.ndarray:
    """Mean weighted power of every complete block of ``block_s``, one block per hop."""
    energy_cumsum, bounds = hop_energy
    hops = round(block_s / HOP_S)
    if bounds.size <= hops:
        return np.zeros(0)
    return (energy_cumsum[hops:] - energy_cumsum[:-hops]) / (bounds[hops:] - bounds[:-hops])


def _to_lkfs(mean_power: np.ndarray | float) -> np.ndarray | float:
    """BS.1770-4 eq. 2: loudness of a mean weighted power (-inf for zero power)."""
    with np.errstate(divide="ignore"):
        return LOUDNESS_OFFSET_DB + 10.0 * np.log10(mean_power)


def _gated_loudness(block_power: np.ndarray) -> float:
    """BS.1770-4 eqs. 5-7: two-stage gated loudness of 400 ms block powers, in LUFS."""
    gated = block_power[gate(block_power)]
    if gated.size == 0:
        return LEVEL_FLOOR_DB
    return max(float(_to_lkfs(np.mean(gated))), LEVEL_FLOOR_DB)


def gate(block_power: np.ndarray) -> np.ndarray:
    """BS.1770-4's two-stage gate: which 400 ms blocks (their mean weighted powers) integrated
    loudness averages; all False when none passes the absolute gate."""
    loudness = _to_lkfs(block_power)
    above_absolute = loudness > ABSOLUTE_GATE_LUFS
    if not above_absolute.any():
        return above_absolute
    relative_gate = _to_lkfs(np.mean(block_power[above_absolute])) + RELATIVE_GATE_LU
    return above_absolute & (loudness > relative_gate)


def gating_blocks(hops: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The 400 ms block powers (one per 100-ms hop) that integrated loudness is gated from,
    from `hop_energy`'s hops."""
    return _block_power(hops, GATING_BLOCK_S)


def _loudness_range(short_term_power: np.ndarray) -> float:
    """EBU Tech 3342 §3: spread of the gated short-term loudness distribution, in LU."""
    loudness = _to_lkfs(short_term_power)
    above = loudness >= ABSOLUTE_GATE_LUFS
    if not above.any():
        return 0.0
    # 20 LU under the loudness of the gated blocks' mean power (as libebur128): averaging
    # 10 ** (L / 10) instead would count BS.1770's -0.691 dB offset twice
    relative_gate = _to_lkfs(np.mean(short_term_power[above])) + LRA_RELATIVE_GATE_LU
    gated = loudness[above & (loudness >= relative_gate)]
    low, high = np.percentile(gated, LRA_PERCENTILES)
    return float(high - low)


def integrated_of_hops(hops: tuple[np.ndarray, np.ndarray], sample_rate: int) -> float:
    """Integrated loudness of `hop_energy`'s 100-ms hop energies (a stream's, say), LUFS."""
    block_power = gating_blocks(hops)
    if block_power.size == 0:
        raise AudioInputError(
            f"{hops[1][-1] / sample_rate:.3f} s of audio is shorter than one "
            f"{GATING_BLOCK_S} s loudness block"
        )
    return _gated_loudness(block_power)


def range_of_hops(hops: tuple[np.ndarray, np.ndarray]) -> float:
    """Loudness range of `hop_energy`'s 100-ms hop energies, LU."""
    short_term = _block_power(hops, SHORT_TERM_BLOCK_S)
    return _loudness_range(short_term) if short_term.size else 0.0


def integrated_lufs(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated (gated) loudness, ITU-R BS.1770-4, in LUFS.

    Parameters
    ----------
    samples : np.ndarray, shape (channels, samples) or (samples,)
        Channels in the order L, R, C, Ls, Rs.
    sample_rate : int, Hz

    Returns
    -------
    float
        LUFS; `LEVEL_FLOOR_DB` (-120) when no block passes the -70 LUFS absolute gate.

    Raises
    ------
    AudioInputError
        If the signal is shorter than one 400 ms gating block.
    """
    return integrated_lufs_of_power(weighted_power(samples, sample_rate), sample_rate)


def integrated_lufs_of_power(power: np.ndarray, sample_rate: int) -> float:
    """`integrated_lufs` from the signal's `weighted_power`, shape (samples,)."""
    return integrated_of_hops(hop_energy(power, sample_rate), sample_rate)


def loudness_range_lu(samples: np.ndarray, sample_rate: int) -> float:
    """Loudness range (LRA), EBU Tech 3342, in LU.

    Short-term loudness over 3 s windows every 100 ms, gated at -70 LUFS and 20 LU below
    their power mean; LRA is the 95th minus the 10th percentile. Signals shorter than 3 s or
    entirely below the absolute gate read 0.0.
    """
    return range_of_hops(hop_energy(weighted_power(samples, sample_rate), sample_rate))


def loudness_and_range(samples: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """`integrated_lufs` and `loudness_range_lu` from a single K-weighting pass."""
    hops = hop_energy(weighted_power(samples, sample_rate), sample_rate)
    return integrated_of_hops(hops, sample_rate), range_of_hops(hops)


@lru_cache(maxsize=8)
def _interpolation_matrix(oversample: int) -> np.ndarray:
    """Block matrix that maps samples to the ``oversample - 1`` in-between points.

    Phase p interpolates x at n + p/oversample from x[n - TAPS/2 + 1 .. n + TAPS/2] with a
    Kaiser-windowed sinc normalised to unit gain at DC. Row r of the result holds the taps
    that multiply input r of a window of ``_TRUE_PEAK_BLOCK + TRUE_PEAK_TAPS - 1`` samples;
    column ``p * _TRUE_PEAK_BLOCK + j`` gives phase p + 1 of output sample j of the block.

    Returns
    -------
    np.ndarray, shape (_TRUE_PEAK_BLOCK + TRUE_PEAK_TAPS - 1, (oversample - 1) * _TRUE_PEAK_BLOCK)
    """
    half = TRUE_PEAK_TAPS // 2
    offsets = np.arange(1 - half, half + 1)
    delays = np.arange(1, oversample) / oversample
    t = offsets[np.newaxis] - delays[:, np.newaxis]
    window = np.i0(TRUE_PEAK_KAISER_BETA * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None)))
    taps = np.sinc(t) * window
    taps /= taps.sum(axis=1, keepdims=True)
    block = _TRUE_PEAK_BLOCK
    matrix = np.zeros((block + TRUE_PEAK_TAPS - 1, oversample - 1, block), dtype=np.float32)
    for j in range(block):
        matrix[j : j + TRUE_PEAK_TAPS, :, j] = taps.T
    return matrix.reshape(block + TRUE_PEAK_TAPS - 1, -1)


@lru_cache(maxsize=1)
def _blas_threads() -> ThreadpoolController:
    return ThreadpoolController()


def true_peak_envelope(samples: np.ndarray, sample_rate: int, *, oversample: int = 4) -> np.ndarray:
    """Per-sample true peak: max |x| over channels and the oversampled points in [n, n+1).

    BS.1770-4 Annex 2 style: the signal is interpolated at ``oversample`` points per sample
    (phase 0 is the sample itself), and the envelope is never below the sample peak.

    Parameters
    ----------
    samples : np.ndarray, shape (channels, samples) or (samples,)
    sample_rate : int, Hz. The interpolator works in normalised frequency; 4x is what
        BS.1770-4 asks below 96 kHz and is kept at every rate.
    oversample : int, >= 1

    Returns
    -------
    np.ndarray, shape (samples,), float32, linear amplitude
    """
    if sample_rate <= 0:
        raise AudioInputError(f"sample rate must be positive, got {sample_rate}")
    if int(oversample) != oversample or oversample < 1:
        raise ValueError(f"oversample must be an integer >= 1, got {oversample}")
    x = as_channels(samples).astype(np.float32, copy=False)
    n = x.shape[1]
    block, before, after = _TRUE_PEAK_BLOCK, TRUE_PEAK_TAPS // 2 - 1, TRUE_PEAK_TAPS // 2
    rows = -(-n // block)
    envelope = np.empty(rows * block, dtype=np.float32)
    matrix = _interpolation_matrix(int(oversample)) if oversample > 1 else None
    # Many small products: BLAS threads only contend here (and with worker processes). A
    # live hop's few rows need no limit (BLAS keeps products that small on one thread), and
    # setting it costs 15 us a call.
    few = x.shape[0] * rows <= _ONE_THREAD_ROWS
    with nullcontext() if few else _blas_threads().limit(limits=1, user_api="blas"):
        for start in range(0, rows, _TRUE_PEAK_ROWS):
            stop = min(start + _TRUE_PEAK_ROWS, rows)
            peak = envelope[start * block: stop * block]
            # the rows' samples and the interpolator's reach, zero beyond the signal
            seg = _zero_extended(x, start * block - before, stop * block + after)
            np.max(np.abs(seg[:, before: before + peak.size]), axis=0, out=peak)
            if matrix is None:
                continue
            points = _interpolated(_block_windows(seg, stop - start, matrix.shape[0]), matrix)
            rows_peak = peak.reshape(-1, block)
            phases = points.reshape(x.shape[0], -1, oversample - 1, block).transpose(2, 0, 1, 3)
            for phase in phases:
                for channel in phase:
                    np.maximum(rows_peak, channel, out=rows_peak)
    return envelope[:n]


def _interpolated(windows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """|in-between points| of row windows (channels, rows, window) by `_interpolation_matrix`:
    shape (channels, rows, (oversample - 1) * `_TRUE_PEAK_BLOCK`), float32."""
    points = windows @ matrix
    return np.abs(points, out=points)


def _block_windows(seg: np.ndarray, rows: int, width: int) -> np.ndarray:
    """Windows of ``width`` samples every `_TRUE_PEAK_BLOCK` of a C-contiguous float32 ``seg``
    (channels, samples): shape (channels, rows, width), copied (sliding_window_view costs
    10 us a call, which counts on a live stream's hops of a few hundred samples)."""
    step = seg.strides[1]
    view = np.ndarray((seg.shape[0], rows, width), dtype=seg.dtype, buffer=seg,
                      strides=(seg.strides[0], _TRUE_PEAK_BLOCK * step, step))
    return view.copy()


def _zero_extended(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``x[:, start:stop]`` (channels, samples) with zeros where the range leaves ``x``."""
    out = np.zeros((x.shape[0], stop - start), dtype=x.dtype)
    lo, hi = max(start, 0), min(stop, x.shape[1])
    if hi > lo:
        out[:, lo - start: hi - start] = x[:, lo:hi]
    return out


def true_peak_dbtp(samples: np.ndarray, sample_rate: int, *, oversample: int = 4) -> float:
    """True peak level, BS.1770-4 Annex 2, in dBTP: the maximum of `true_peak_envelope`.

    Only where it can matter: an in-between point is a sum of taps times samples, so it is
    at most the two taps beside it times the larger of those two samples plus the other
    taps times the largest sample in the interpolator's reach (`_interpolation_bounds`).
    Rows of `_TRUE_PEAK_BLOCK` samples whose bound is under the largest point found so far
    cannot hold the maximum and are skipped; the rows with the highest bounds go first.
    On music that leaves 2-35 % of the rows to interpolate (the most for loud, limited
    masters); the result is the whole envelope's maximum, up to its last float32 bit (BLAS
    may round a row's products differently in a batch of another size: 1e-6 dB).

    Parameters
    ----------
    samples : np.ndarray, shape (channels, samples) or (samples,)
    sample_rate : int, Hz (see `true_peak_envelope`)
    oversample : int, >= 1

    Returns
    -------
    float, dBTP
    """
    if sample_rate <= 0:
        raise AudioInputError(f"sample rate must be positive, got {sample_rate}")
    if int(oversample) != oversample or oversample < 1:
        raise ValueError(f"oversample must be an integer >= 1, got {oversample}")
    x = as_channels(samples).astype(np.float32, copy=False)
    row_peaks = _row_peaks(x)
    peak = row_peaks.max()
    if oversample == 1:
        return amp_to_db(peak)
    matrix = _interpolation_matrix(int(oversample))
    bounds = _row_bounds(x, row_peaks, int(oversample))
    candidates = np.flatnonzero(bounds > peak)
    with _blas_threads().limit(limits=1, user_api="blas"):
        if candidates.size > _TRUE_PEAK_ROWS:  # the likeliest first: their peak rules out more
            first = np.argpartition(bounds[candidates], -_TRUE_PEAK_ROWS)[-_TRUE_PEAK_ROWS:]
            peak = max(peak, _interpolated_peak(x, candidates[first], matrix))
            candidates = np.delete(candidates, first)
            candidates = candidates[bounds[candidates] > peak]
        peak = max(peak, _interpolated_peak(x, candidates, matrix))
    return amp_to_db(peak)


def _interpolated_peak(x: np.ndarray, rows: np.ndarray, matrix: np.ndarray) -> np.float32:
    """Largest |in-between point| in ``rows`` (indices of `_TRUE_PEAK_BLOCK`-sample rows of
    ``x``, (channels, samples)); 0 for none."""
    peak = np.float32(0.0)
    for start in range(0, rows.size, _TRUE_PEAK_ROWS):
        windows = _row_windows(x, rows[start: start + _TRUE_PEAK_ROWS], matrix.shape[0])
        peak = max(peak, _interpolated(windows, matrix).max())
    return peak


def _row_peaks(x: np.ndarray) -> np.ndarray:
    """Largest |sample| over channels in each row of `_TRUE_PEAK_BLOCK` samples of ``x``
    (channels, samples), the last row zero-extended: shape (rows,), float32."""
    block, n = _TRUE_PEAK_BLOCK, x.shape[1]
    peaks = np.zeros(-(-n // block), dtype=np.float32)
    step = block * _TRUE_PEAK_ROWS  # a few hundred kB at a time: stays in cache
    for start in range(0, n, step):
        part = np.abs(x[:, start: start + step]).max(axis=0)
        whole = part.size // block * block
        rows = peaks[start // block: start // block + part.size // block]
        np.max(part[:whole].reshape(-1, block), axis=1, out=rows)
        if whole < part.size:
            peaks[-1] = part[whole:].max()
    return peaks


def _row_bounds(x: np.ndarray, row_peaks: np.ndarray, oversample: int) -> np.ndarray:
    """Upper bound on |in-between point| in each row of ``x`` (channels, samples), given its
    `_row_peaks`: shape (rows,), float64. The samples beside a row's points are the row's
    and the next row's first; the interpolator's reach lies within the row's neighbours."""
    beside = row_peaks.astype(np.float64)
    following = np.abs(x[:, _TRUE_PEAK_BLOCK::_TRUE_PEAK_BLOCK]).max(axis=0, initial=0.0)
    np.maximum(beside[: following.size], following, out=beside[: following.size])
    reach = beside.copy()
    np.maximum(reach[1:], row_peaks[:-1], out=reach[1:])
    np.maximum(reach[:-1], row_peaks[1:], out=reach[:-1])
    near, far = _interpolation_bounds(oversample)
    return np.max(near[:, np.newaxis] * beside + far[:, np.newaxis] * reach, axis=0)


@lru_cache(maxsize=8)
def _interpolation_bounds(oversample: int) -> tuple[np.ndarray, np.ndarray]:
    """Per phase, the sum of |taps| on the two samples beside the point and on the others,
    shape (oversample - 1,) each, with room for float32 rounding in the products (a bound a
    little high only interpolates a few more rows)."""
    taps = np.abs(_interpolation_matrix(oversample).astype(np.float64))
    columns = taps[:, ::_TRUE_PEAK_BLOCK]  # each phase's first point: x[n] is row TAPS/2 - 1
    near = columns[TRUE_PEAK_TAPS // 2 - 1] + columns[TRUE_PEAK_TAPS // 2]
    margin = 1.0 + 1e-4
    return near * margin, (columns.sum(axis=0) - near) * margin


def _row_windows(x: np.ndarray, rows: np.ndarray, width: int) -> np.ndarray:
    """The interpolator's input for each of ``rows`` (indices of `_TRUE_PEAK_BLOCK`-sample
    rows of ``x``, (channels, samples)), zero beyond the signal: shape (channels, rows,
    width), as `true_peak_envelope`'s block windows."""
    n = x.shape[1]
    starts = rows * _TRUE_PEAK_BLOCK - (TRUE_PEAK_TAPS // 2 - 1)
    inside = (starts >= 0) & (starts + width <= n)
    if n < width:
        windows = np.empty((x.shape[0], rows.size, width), dtype=x.dtype)
    else:
        windows = sliding_window_view(x, width, axis=-1)[:, np.clip(starts, 0, n - width)]
    for i in np.flatnonzero(~inside):  # the first row and the last few
        windows[:, i] = _zero_extended(x, starts[i], starts[i] + width)
    return windows
