"""Features of a production: loudness, dynamics, stereo image, tonal balance, and warnings.

`analyze` is the one description of an input or a reference that the mastering matcher,
presets, benchmarks and the network share. Tonal balance is third-octave band power of the
mid (and side) signal, in dB relative to the production's integrated loudness, so that a gain
change leaves it unchanged and two productions at different levels compare band by band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from automix import loudness
from automix.loudness import amp_to_db

# ISO 266 nominal third-octave centres (labels); band edges use the exact base-2 centres.
# fmt: off
BAND_CENTERS_HZ = np.array([
    31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800,
    1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000,
])
# fmt: on
_EXACT_CENTERS_HZ = 1000.0 * 2.0 ** (np.arange(-15, 13) / 3.0)
BAND_EDGES_HZ = np.stack([_EXACT_CENTERS_HZ * 2 ** (-1 / 6), _EXACT_CENTERS_HZ * 2 ** (1 / 6)])
BAND_MAX_FRACTION_OF_NYQUIST = 0.9  # bands reaching above this are NaN (anti-alias roll-off)
WELCH_SEGMENT_AT_44K = 8192  # 5.4 Hz bins; scaled with the sample rate to a power of two
WELCH_FRAMES_PER_FFT = 16  # frames transformed at once: stays in cache
_MOMENT_BLOCK = 1 << 16  # samples per block of `Moments.of`: converted to float64 in cache
BAND_POWER_FLOOR_DB = -200.0  # empty bands, before loudness normalisation
TONAL_ERROR_RANGE_DB = 60.0  # tonal_balance_error_db ignores bands this far below b's loudest

CLIP_LEVEL = 0.999  # |x| at or above this counts as full scale
CLIP_RUN_SAMPLES = 3  # a clip is a run of at least this many full-scale samples
CLIP_RUNS_ALLOWED = 3  # W01 when there are more clips than this
LIMITED_PLR_DB = 8.0  # W02 when the peak-to-loudness ratio is below this ...
LIMITED_CREST_DB = 6.0  # ... or the crest factor is below this ...
LIMITED_CEILING_DBFS = -1.0  # ... with the sample peak at or above this
TRUE_PEAK_MAX_DBTP = 0.0  # W03 above this
DC_OFFSET_MAX = 0.01  # W04 when a channel's mean is larger (linear, full scale = 1)
MONO_WIDTH_MAX = 1e-3  # W05 when side RMS / mid RMS is at most this (side 60 dB down)
QUIET_LUFS = -40.0  # W06 below this
INTER_SAMPLE_PEAK_DB = 1.0  # W07 when the true peak exceeds the sample peak by more
PHASE_CORRELATION_MAX = -0.3  # W09 when L and R correlate below this ...
# ... and the side is 6 dB or more over the mid: the channels cancel. No finished mix of the
# data folder comes near (204 mixes, widest 1.46); 13 of the 23 reference excerpts pass it
# with one channel inverted (the others are wide productions, which inverted stay ambiguous).
PHASE_WIDTH_MIN = 2.0
# The reverb measure (`reverb_tail_db`): energy 80-300 ms after a note's onset over the energy
# of its first 50 ms. Onsets are rises of the 5-ms frame energy of at least `ONSET_RISE_DB`
# over the previous 15 ms, within `ONSET_RANGE_DB` of the loudest frame, `ONSET_GAP_MS` apart.
REVERB_EARLY_MS = (0.0, 50.0)
REVERB_LATE_MS = (80.0, 300.0)
ONSET_FRAME_MS = 5.0
ONSET_RISE_DB = 6.0
ONSET_RANGE_DB = 40.0
ONSET_GAP_MS = 100.0
# Width is capped here (side 12 dB above mid): past it the number says only that the channels
# cancel (W09), and L = -R would otherwise read infinite, or millions after quantisation.
WIDTH_MAX = 4.0


@dataclass(frozen=True)
class AudioWarning:
    """A property of an input worth telling the user: a numbered code and one sentence."""

    code: str
    message: str


@dataclass(frozen=True)
class Analysis:
    """What `analyze` measures in a production.

    Attributes
    ----------
    sample_rate : int, Hz
    channels : int
    duration_s : float
    integrated_lufs : float, ITU-R BS.1770-4, LUFS (-120 for silence)
    loudness_range_lu : float, EBU Tech 3342, LU
    true_peak_dbtp : float, 4x oversampled, dBTP
    sample_peak_dbfs : float, dBFS
    rms_dbfs : float, over all channels, dBFS
    crest_db : float, sample peak minus RMS, dB
    plr_db : float, true peak minus integrated loudness (peak-to-loudness ratio), dB
    width : float, side RMS / mid RMS with mid = (L+R)/2, side = (L-R)/2; 0 for mono,
        1 for independent channels of equal level, at most `WIDTH_MAX` (L = -R)
    correlation : float, Pearson correlation of L and R, -1..1; 1 for mono
    tonal_mid_db, tonal_side_db : tuple of float, one per `BAND_CENTERS_HZ`
        Band power in dB relative to the integrated loudness (see `tonal_balance_db`);
        NaN for bands above 0.9 x Nyquist.
    warnings : tuple of AudioWarning
    """

    sample_rate: int
    channels: int
    duration_s: float
    integrated_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    rms_dbfs: float
    crest_db: float
    plr_db: float
    width: float
    correlation: float
    tonal_mid_db: tuple[float, ...]
    tonal_side_db: tuple[float, ...]
    warnings: tuple[AudioWarning, ...]

    def to_dict(self, *, digits: int | None = 2) -> dict:
        """JSON-able form: floats rounded to ``digits`` decimals (None: as they are), NaN and
        infinities as None."""
        def number(value: float) -> float | None:
            if not math.isfinite(value):
                return None
            return float(value) if digits is None else round(float(value), digits)

        return {
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            **{name: number(getattr(self, name)) for name in _SCALARS},
            "bands": {
                "centers_hz": [float(f) for f in BAND_CENTERS_HZ],
                "mid_db": [number(v) for v in self.tonal_mid_db],
                "side_db": [number(v) for v in self.tonal_side_db],
            },
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Analysis:
        """The inverse of `to_dict` (None read as NaN): a sidecar's or a preset's features."""
        def number(value: float | None) -> float:
            return math.nan if value is None else float(value)

        bands = data["bands"]
        return cls(
            sample_rate=int(data["sample_rate"]), channels=int(data["channels"]),
            **{name: number(data[name]) for name in _SCALARS},
            tonal_mid_db=tuple(number(v) for v in bands["mid_db"]),
            tonal_side_db=tuple(number(v) for v in bands["side_db"]),
            warnings=tuple(AudioWarning(w["code"], w["message"])
                           for w in data.get("warnings", ())))

    def rounded(self) -> Analysis:
        """At the sidecar's precision (0.01): what a suggestion is made from, so that the
        measurements a sidecar shows reproduce it."""
        return Analysis.from_dict(self.to_dict())


_SCALARS = ("duration_s", "integrated_lufs", "loudness_range_lu", "true_peak_dbtp",
            "sample_peak_dbfs", "rms_dbfs", "crest_db", "plr_db", "width", "correlation")


def band_values(values: Sequence[float | None]) -> np.ndarray:
    """Per-band values as a float64 array, None (a band not measured) as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def welch_segment(sample_rate: int) -> int:
    """Welch segment length: 8192 at 44.1 kHz, the nearest power of two at other rates."""
    return 2 ** round(math.log2(WELCH_SEGMENT_AT_44K * sample_rate / 44100))


def _mid_side_psd(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-sided power spectral densities of mid (L + R) / 2 and side (L - R) / 2 (all mid
    for mono) by Welch's method: Hann, 50 % overlap, no detrending.

    Written out rather than `scipy.signal.welch`, which is several times slower on long files.
    Mid and side are formed over the span of a batch of frames at a time (each sample once,
    not once per overlapping frame), never as whole signals. Frames are transformed in
    float64 by `numpy.fft` (twice as fast as its float32 path; `scipy.fft` is faster still,
    but importing it costs 0.2 s of every master).

    Parameters
    ----------
    x : np.ndarray, shape (channels, samples), the first two channels taken as L and R

    Returns
    -------
    freqs_hz : np.ndarray, shape (bins,)
    mid_psd, side_psd : np.ndarray, shape (bins,), power per Hz (each sums to the mean square
        times the bin width)
    """
    segment = min(welch_segment(sample_rate), x.shape[1])
    window = welch_window(segment)
    step = welch_step(segment)
    n_frames = (x.shape[1] - segment) // step + 1
    power = np.zeros((2, segment // 2 + 1))
    for start in range(0, n_frames, WELCH_FRAMES_PER_FFT):
        count = min(WELCH_FRAMES_PER_FFT, n_frames - start)
        span = x[:2, start * step: (start + count - 1) * step + segment]
        signals = span if len(span) == 1 else (0.5 * (span[0] + span[1]),
                                                0.5 * (span[0] - span[1]))
        for row, signal in enumerate(signals):
            power[row] += welch_power(sliding_window_view(signal, segment)[::step], window)
    freqs_hz, mid_psd = welch_psd_from_power(power[0], n_frames, window, sample_rate)
    return freqs_hz, mid_psd, welch_psd_from_power(power[1], n_frames, window, sample_rate)[1]


def welch_window(segment: int) -> np.ndarray:
    """Periodic Hann window of ``segment`` samples, float64."""
    return np.hanning(segment + 1)[:-1]


def welch_step(segment: int) -> int:
    """Samples between Welch frames: 50 % overlap."""
    return max(segment // 2, 1)


def welch_power(frames: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Summed power spectrum of windowed ``frames`` (frames, segment): shape (segment // 2 + 1,)."""
    power = np.zeros(window.size // 2 + 1)
    for start in range(0, len(frames), WELCH_FRAMES_PER_FFT):
        spectrum = np.fft.rfft(frames[start : start + WELCH_FRAMES_PER_FFT] * window, axis=-1)
        power += np.sum(spectrum.real**2 + spectrum.imag**2, axis=0)
    return power


def welch_psd_from_power(
    power: np.ndarray, n_frames: int, window: np.ndarray, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided PSD (freqs_hz, power per Hz) from `welch_power` summed over ``n_frames``."""
    segment = window.size
    psd = power / (n_frames * sample_rate * np.sum(window**2))
    psd[1 : (segment + 1) // 2] *= 2.0  # fold negative frequencies; DC and Nyquist have none
    return np.fft.rfftfreq(segment, 1.0 / sample_rate), psd


def tonal_balance_db(
    samples_mono: np.ndarray, sample_rate: int, loudness_lufs: float
) -> np.ndarray:
    """Third-octave band power relative to a loudness.

    Band power integrates one Welch PSD between the band edges, interpolating the cumulative
    power inside bins so that bands narrower than a bin (31.5 Hz) still get their share.
    Pink noise reads flat; white noise rises 3 dB per octave.

    Parameters
    ----------
    samples_mono : np.ndarray, shape (samples,)
    sample_rate : int, Hz
    loudness_lufs : float
        Subtracted from every band: the production's integrated loudness, also for its side
        signal, so that side bands show the width per band.

    Returns
    -------
    np.ndarray, shape (len(BAND_CENTERS_HZ),), dB; NaN for bands above 0.9 x Nyquist
    """
    mono = np.asarray(samples_mono, dtype=np.float32)[np.newaxis]
    freqs_hz, psd, _ = _mid_side_psd(mono, sample_rate)
    return band_power_db(freqs_hz, psd, sample_rate, loudness_lufs)


def band_power_db(
    freqs_hz: np.ndarray, psd: np.ndarray, sample_rate: int, loudness_lufs: float
) -> np.ndarray:
    """`tonal_balance_db` from a Welch PSD (freqs_hz, power per Hz), shape (bands,)."""
    bin_hz = freqs_hz[1] - freqs_hz[0]
    # Bin k holds the power in [f_k - bin/2, f_k + bin/2].
    cumulative = np.concatenate([[0.0], np.cumsum(psd) * bin_hz])
    bin_edges_hz = np.concatenate([freqs_hz - bin_hz / 2, [freqs_hz[-1] + bin_hz / 2]])
    low, high = np.interp(BAND_EDGES_HZ, bin_edges_hz, cumulative)
    power_db = 10.0 * np.log10(np.maximum(high - low, 10.0 ** (BAND_POWER_FLOOR_DB / 10)))
    valid = BAND_EDGES_HZ[1] <= BAND_MAX_FRACTION_OF_NYQUIST * sample_rate / 2
    return np.where(valid, power_db - loudness_lufs, np.nan)


def band_matrix(freqs_hz: np.ndarray) -> np.ndarray:
    """(bands, bins): the share of each STFT bin inside each third-octave band of
    `BAND_EDGES_HZ` (bins narrower or wider than a band are split by overlap)."""
    width = freqs_hz[1] - freqs_hz[0]
    lo, hi = freqs_hz - width / 2, freqs_hz + width / 2
    band_lo, band_hi = BAND_EDGES_HZ[:, :, None]
    overlap = np.clip(np.minimum(hi, band_hi) - np.maximum(lo, band_lo), 0.0, None)
    return (overlap / width).astype(np.float32)


def tonal_balance_error_db(a: Analysis, b: Analysis, *, side: bool = False) -> float:
    """RMS difference in dB between two tonal balances, over the bands that matter in ``b``.

    Bands count when finite in both and within `TONAL_ERROR_RANGE_DB` of ``b``'s loudest band,
    so that empty bands (a band-limited reference, silence) do not dominate.

    Returns
    -------
    float, dB; NaN when no band counts
    """
    mine = np.asarray(a.tonal_side_db if side else a.tonal_mid_db)
    target = np.asarray(b.tonal_side_db if side else b.tonal_mid_db)
    finite = np.isfinite(mine) & np.isfinite(target)
    if not finite.any():
        return math.nan
    counted = finite & (target >= np.max(target[finite]) - TONAL_ERROR_RANGE_DB)
    return float(np.sqrt(np.mean((mine[counted] - target[counted]) ** 2)))


class Moments:
    """Channel means and the covariance matrix of a stream, merged block by block (Chan et al.:
    each block is centred on its own mean, so long streams lose no precision)."""

    def __init__(self, channels: int) -> None:
        self.n = 0
        self.mean = np.zeros(channels)
        self.scatter = np.zeros((channels, channels))  # sum of outer products of deviations

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """The moments of a whole array ``x`` (channels, samples), in blocks of `_MOMENT_BLOCK`."""
        moments = cls(x.shape[0])
        for start in range(0, x.shape[1], _MOMENT_BLOCK):
            moments.push(x[:, start:start + _MOMENT_BLOCK])
        return moments

    def push(self, x: np.ndarray) -> None:
        n = x.shape[1]
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=1)
        x64 -= mean[:, np.newaxis]
        delta = mean - self.mean
        total = self.n + n
        self.scatter += x64 @ x64.T + np.outer(delta, delta) * (self.n * n / total)
        self.mean += delta * n / total
        self.n = total

    def rms(self, weights: np.ndarray) -> float:
        """RMS of the weighted sum of channels ``weights @ x``."""
        mean = float(weights @ self.mean)
        return math.sqrt(max(float(weights @ self.scatter @ weights) / self.n + mean**2, 0.0))

    def overall_rms(self) -> float:
        """RMS over every sample of every channel."""
        power = np.trace(self.scatter) / self.n + np.sum(self.mean**2)
        return math.sqrt(max(float(power) / len(self.mean), 0.0))

    def mid_side_rms(self) -> tuple[float, float]:
        """RMS of mid (L + R) / 2 and side (L - R) / 2; a mono signal is all mid."""
        if len(self.mean) == 1:
            return self.rms(np.ones(1)), 0.0
        pair = np.zeros(len(self.mean))
        pair[:2] = 0.5
        mid_rms = self.rms(pair)
        pair[1] = -0.5
        return mid_rms, self.rms(pair)

    def correlation(self) -> float:
        """Pearson correlation of channels 0 and 1; 1 when both are constant, 0 when one is
        (as `analyze`)."""
        norm = math.sqrt(self.scatter[0, 0] * self.scatter[1, 1])
        if norm == 0.0:
            return 1.0 if self.scatter[0, 0] == self.scatter[1, 1] == 0.0 else 0.0
        return float(self.scatter[0, 1]) / norm


def count_clips(x: np.ndarray) -> int:
    """Runs of at least `CLIP_RUN_SAMPLES` consecutive full-scale samples, over all channels."""
    clips = 0
    for channel in x:
        full_scale = np.flatnonzero(np.abs(channel) >= CLIP_LEVEL)  # few, even when clipped
        run_bounds = np.flatnonzero(np.diff(full_scale) != 1) + 1
        run_lengths = np.diff(np.concatenate([[0], run_bounds, [full_scale.size]]))
        clips += np.count_nonzero(run_lengths >= CLIP_RUN_SAMPLES)
    return int(clips)


def input_warnings(a: Analysis, clips: int, dc_offsets: np.ndarray) -> tuple[AudioWarning, ...]:
    """The warnings W01..W07 and W09 from measurements ``a``, the number of clipped runs (see
    `CLIP_RUN_SAMPLES`) and the absolute mean of each channel, shape (channels,)."""
    overshoot_db = a.true_peak_dbtp - a.sample_peak_dbfs
    limited = a.plr_db < LIMITED_PLR_DB or (
        a.crest_db < LIMITED_CREST_DB and a.sample_peak_dbfs >= LIMITED_CEILING_DBFS
    )
    checks = (
        (
            clips > CLIP_RUNS_ALLOWED,
            "W01-clipping",
            (
                f"{clips} runs of {CLIP_RUN_SAMPLES} or more samples sit at full scale: "
                "the input is clipped."
            ),
        ),
        (
            limited,
            "W02-limited",
            (
                f"Peak-to-loudness ratio {a.plr_db:.1f} dB, crest factor {a.crest_db:.1f} dB: "
                "the input looks already limited, leaving little room for dynamics processing."
            ),
        ),
        (
            a.true_peak_dbtp > TRUE_PEAK_MAX_DBTP,
            "W03-true-peak-over",
            (
                f"True peak {a.true_peak_dbtp:+.2f} dBTP is above {TRUE_PEAK_MAX_DBTP:.0f} dBTP: "
                "converters and lossy encoders will clip it."
            ),
        ),
        (
            bool(np.any(dc_offsets > DC_OFFSET_MAX)),
            "W04-dc-offset",
            f"A DC offset of {np.max(dc_offsets):.3f} (full scale 1) wastes headroom.",
        ),
        (
            a.channels == 1 or a.width <= MONO_WIDTH_MAX,
            "W05-mono",
            (
                "The input is mono (one channel or identical channels): "
                "width settings have nothing to work on."
            ),
        ),
        (
            a.integrated_lufs < QUIET_LUFS,
            "W06-quiet",
            (
                f"Integrated loudness {a.integrated_lufs:.1f} LUFS is below {QUIET_LUFS:.0f} LUFS: "
                "the input is very quiet or nearly silent."
            ),
        ),
        (
            overshoot_db > INTER_SAMPLE_PEAK_DB,
            "W07-inter-sample-peaks",
            (
                f"Inter-sample peaks reach {overshoot_db:.1f} dB above the sample peak: "
                "sample-peak meters under-read this input."
            ),
        ),
        (
            a.correlation < PHASE_CORRELATION_MAX and a.width > PHASE_WIDTH_MIN,
            "W09-phase",
            (
                f"Left and right cancel (correlation {a.correlation:+.2f}, side "
                f"{amp_to_db(a.width):.0f} dB above mid): one channel looks polarity-inverted, "
                "and the mono sum loses most of the music; flip one channel before mastering."
            ),
        ),
    )
    return tuple(AudioWarning(code, message) for applies, code, message in checks if applies)


def width_ratio(mid_rms: float, side_rms: float) -> float:
    """Stereo width: side RMS / mid RMS, at most `WIDTH_MAX` (pure antiphase); 0 for silence
    or mono."""
    if side_rms <= 0.0:
        return 0.0
    return min(side_rms / mid_rms, WIDTH_MAX) if mid_rms > 0.0 else WIDTH_MAX


def analyze(samples: np.ndarray, sample_rate: int) -> Analysis:
    """Measure a production.

    Parameters
    ----------
    samples : np.ndarray, shape (channels, samples) or (samples,)
        The first two channels are taken as L and R for width, correlation and tonal balance.
    sample_rate : int, Hz

    Returns
    -------
    Analysis

    Raises
    ------
    AudioInputError
        For a malformed layout or a signal shorter than one 400 ms loudness block.
    """
    return analyze_many([(samples, sample_rate)])[0]


def analyze_many(signals: Sequence[tuple[np.ndarray, int]]) -> list[Analysis]:
    """`analyze` of each ``(samples, sample_rate)``, measured together.

    Every signal's K-weighted loudness, spectra, true peak and sample statistics are queued
    on two threads, the longer kinds first (pedalboard, BLAS and numpy release the GIL), so
    neither core waits long for the other's last task; two songs take 0.1 s less this way
    than one after the other. Errors are raised in the signals' order.
    """
    pairs = [(loudness.as_channels(s).astype(np.float32, copy=False), sample_rate)
             for s, sample_rate in signals]
    with ThreadPoolExecutor(max_workers=2) as pool:
        long = [[pool.submit(measure, x, sample_rate)
                 for measure in (loudness.loudness_and_range, _mid_side_psd)]
                for x, sample_rate in pairs]
        short = [[pool.submit(measure, x, sample_rate)
                  for measure in (loudness.true_peak_dbtp, _sample_statistics)]
                 for x, sample_rate in pairs]
        return [_analysis(x, sample_rate, *(task.result() for task in long[i] + short[i]))
                for i, (x, sample_rate) in enumerate(pairs)]


def _sample_statistics(x: np.ndarray, sample_rate: int) -> tuple[Moments, float, int]:
    """The `Moments` of ``x`` (channels, samples), its sample peak in dBFS and its clipped
    runs (counted only when the peak reaches `CLIP_LEVEL`)."""
    sample_peak = amp_to_db(np.float32(max(x.max(), -x.min())))  # no |x| copy
    clips = count_clips(x) if sample_peak >= amp_to_db(CLIP_LEVEL) else 0
    return Moments.of(x), sample_peak, clips


def _analysis(x: np.ndarray, sample_rate: int, levels: tuple[float, float],
              spectra: tuple[np.ndarray, np.ndarray, np.ndarray], true_peak: float,
              statistics: tuple[Moments, float, int]) -> Analysis:
    """`analyze`'s result from its measurements of ``x`` (channels, samples)."""
    integrated, loudness_range = levels
    freqs_hz, mid_psd, side_psd = spectra
    moments, sample_peak, clips = statistics
    rms = amp_to_db(moments.overall_rms())
    measured = Analysis(
        sample_rate=int(sample_rate),
        channels=x.shape[0],
        duration_s=x.shape[1] / sample_rate,
        integrated_lufs=integrated,
        loudness_range_lu=loudness_range,
        true_peak_dbtp=true_peak,
        sample_peak_dbfs=sample_peak,
        rms_dbfs=rms,
        crest_db=sample_peak - rms,
        plr_db=true_peak - integrated,
        width=width_ratio(*moments.mid_side_rms()),
        correlation=1.0 if x.shape[0] == 1 else moments.correlation(),
        tonal_mid_db=tuple(band_power_db(freqs_hz, mid_psd, sample_rate, integrated).tolist()),
        tonal_side_db=tuple(band_power_db(freqs_hz, side_psd, sample_rate, integrated).tolist()),
        warnings=(),
    )
    return replace(measured, warnings=input_warnings(measured, clips, np.abs(moments.mean)))


def onset_frames(energy: np.ndarray, *, frame_ms: float = ONSET_FRAME_MS,
                 rise_db: float = ONSET_RISE_DB, range_db: float = ONSET_RANGE_DB,
                 gap_ms: float = ONSET_GAP_MS) -> np.ndarray:
    """Onsets in a frame energy envelope: frames whose energy rises at least ``rise_db`` over
    the mean of the three frames before, within ``range_db`` of the loudest frame, and at
    least ``gap_ms`` after the previous onset.

    Parameters
    ----------
    energy : np.ndarray, shape (frames,), energy per frame of ``frame_ms``

    Returns
    -------
    np.ndarray of int, frame indices, increasing
    """
    db = 10.0 * np.log10(energy + 1e-12)
    if db.size < 4:
        return np.zeros(0, int)
    before = 10.0 * np.log10(np.convolve(energy, np.ones(3) / 3, "valid")[:-1] + 1e-12)
    rise = np.concatenate([np.full(3, -np.inf), db[3:] - before])
    candidates = np.flatnonzero((rise >= rise_db) & (db >= db.max() - range_db))
    gap = max(1, round(gap_ms / frame_ms))
    onsets: list[int] = []
    for k in candidates:
        if not onsets or k - onsets[-1] >= gap:
            onsets.append(int(k))
    return np.asarray(onsets, int)


def reverb_tail_db(samples: np.ndarray, sample_rate: int, *,
                   early_ms: tuple[float, float] = REVERB_EARLY_MS,
                   late_ms: tuple[float, float] = REVERB_LATE_MS) -> float:
    """How much a production rings after its notes: the energy in ``late_ms`` after each
    onset over the energy in ``early_ms`` after it (dB), averaged over the onsets
    (`onset_frames` of the channel-summed 5-ms frame energy).

    A dry percussive signal reads low (about -20 dB for a 30-ms decay); reverb raises it. In
    dense music the late window also holds the next notes, so compare two renders of the same
    notes rather than read the number alone.

    Parameters
    ----------
    samples : np.ndarray, shape (channels, samples) or (samples,)
    sample_rate : int, Hz

    Returns
    -------
    float, dB; NaN when no onset has its whole late window inside the signal
    """
    x = np.atleast_2d(samples).sum(axis=0, dtype=np.float64)  # no float64 copy of each channel
    hop = max(1, round(ONSET_FRAME_MS * sample_rate / 1000.0))
    n = x.size // hop
    energy = np.einsum("ij,ij->i", x[:n * hop].reshape(n, hop), x[:n * hop].reshape(n, hop))
    onsets = onset_frames(energy)
    early = [round(ms / ONSET_FRAME_MS) for ms in early_ms]
    late = [round(ms / ONSET_FRAME_MS) for ms in late_ms]
    onsets = onsets[onsets + late[1] <= n]
    if onsets.size == 0:
        return math.nan
    cumulative = np.concatenate([[0.0], np.cumsum(energy)])
    e_early = cumulative[onsets + early[1]] - cumulative[onsets + early[0]]
    e_late = cumulative[onsets + late[1]] - cumulative[onsets + late[0]]
    return float(np.mean(10.0 * np.log10((e_late + 1e-12) / (e_early + 1e-12))))


def loudest_excerpt(samples: np.ndarray, sample_rate: int, seconds: float) -> tuple[int, int]:
    """Start and end sample of the loudest ``seconds`` (by RMS over 0.5-s hops)."""
    n = int(seconds * sample_rate)
    hop = sample_rate // 2
    n_hops = samples.shape[1] // hop
    framed = samples[:, : n_hops * hop].reshape(samples.shape[0], n_hops, hop)
    blocks = np.einsum("cij,cij->i", framed, framed, dtype=np.float64)  # per hop
    return loudest_span(blocks, hop, samples.shape[1], n)


def loudest_span(hop_energy: np.ndarray, hop: int, total: int, n: int) -> tuple[int, int]:
    """Start and end sample of the loudest ``n`` samples of ``total``, given the energy of
    every complete ``hop`` (shape (total // hop,)); `loudest_excerpt` uses half-second hops."""
    if total <= n:
        return 0, total
    k = max(1, n // hop)
    sums = np.convolve(hop_energy, np.ones(k), "valid")
    start = min(int(np.argmax(sums)) * hop, total - n)
    return start, start + n
