"""Mastering long files in bounded memory: every pass reads, processes and writes blocks.

The whole-array path (`pipeline.InMemory`) holds several float32 copies of a song; an hour of
48 kHz stereo is 1.4 GB per copy. Here the same pipeline (`pipeline.run`: analyse -> suggest
-> finalise -> render -> verify) runs on stages (`Streamed`) that read blocks of `BLOCK_S`
seconds, so memory does not grow with the
duration. Each stage keeps exactly the state the whole-array code implies:

- loudness: the K-weighting filters' state and the 100 ms hop energies (a few numbers per
  second), gated at the end exactly as `automix.loudness` gates them;
- true peak, limiter: a tail of the previous block (the interpolator's taps, the limiter's
  lookahead) and the release smoother's state, on the same 32-sample grid as the whole array;
- tonal balance: Welch power sums, with the frames that straddle two blocks;
- the pedalboard chain: the same plugin objects called with ``reset=False``.

Renders match `finalise.render_master` to float rounding (the block edges are exact, not
approximated). `automix.files` takes this path for a file longer than
`STREAMING_MIN_SAMPLES`.

Passes over a file: analyse; chain loudness (the gain); chain + limiter, measured (the gain
loop and the limiter's residue trim; repeated when the loudness misses); the write; and the
verification of the written file, whose analysis is the report's output measurement.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pedalboard as pb
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view

from automix import analysis, loudness
from automix.analysis import Analysis
from automix.audio import (
    BIT_DEPTHS,
    FORMATS,
    MIN_DURATION_S,
    Audio,
    atomic_path,
    checked_peak,
    quiet_decoders,
    tpdf_dither,
)
from automix.effects import render
from automix.effects.limiter import (
    RELEASE_BLOCK,
    attack_gain,
    block_minima,
    interpolate_blocks,
    lookahead_window,
    one_pole,
    release_coefficient,
    required_gain,
    residue_trim_db,
)
from automix.errors import AudioInputError, first_line
from automix.mastering.finalise import LOUDNESS_TOLERANCE_LU, MAX_RENDERS, capped_gain_db
from automix.mastering.match import EXCERPT_S, suggest_chain
from automix.mastering.pipeline import MasterResult, run
from automix.params import LimiterParams, MasterChain
from automix.presets import Target
from automix.settings import MASTER_METHOD, Amounts, MasterSettings, Reference

STREAMING_MIN_SAMPLES = 20 * 60 * 48000 * 2  # frames x channels: 20 min of 48 kHz stereo
BLOCK_S = 10.0  # seconds per block: a few MB per array, and few enough Python-level steps
MIN_LAST_BLOCK = 4096  # a shorter final piece joins the block before it (no 1-sample calls)
_TRUE_PEAK_GRID = 32  # true_peak_envelope works on rows of 32 samples: keep windows on them


def is_long(path: str | os.PathLike) -> bool:
    """Whether ``path`` has more than `STREAMING_MIN_SAMPLES` (frames x channels); False for
    anything soundfile cannot read (the whole-array loader then says why)."""
    try:
        with quiet_decoders():
            info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError):
        return False
    return info.frames * info.channels > STREAMING_MIN_SAMPLES


def block_samples(block_s: float, sample_rate: int) -> int:
    """Samples per block: ``block_s`` rounded to the limiter's and true-peak grid (32)."""
    return RELEASE_BLOCK * max(1, round(block_s * sample_rate / RELEASE_BLOCK))


# --- reading ----------------------------------------------------------------------------------


def _open(path: Path) -> sf.SoundFile:
    if not path.exists():
        raise AudioInputError(f"{path}: no such file")
    if path.is_dir():
        raise AudioInputError(f"{path}: is a folder, not an audio file")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as exc:
        raise AudioInputError(f"{path}: not a readable audio file ({first_line(exc)})") from None


def file_format_of(path: Path) -> tuple[int, int, int]:
    """(sample_rate, channels, frames) of an audio file; `AudioInputError` when unreadable or
    shorter than one loudness block."""
    with _open(path) as f:
        sample_rate, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
    if frames / sample_rate < MIN_DURATION_S:
        raise AudioInputError(f"{path}: too short ({frames / sample_rate * 1000:.0f} ms; "
                              f"at least {MIN_DURATION_S * 1000:.0f} ms)")
    return sample_rate, channels, frames


def read_blocks(path: Path, block: int) -> Iterator[np.ndarray]:
    """The file as consecutive ``(channels, samples)`` float32 blocks of ``block`` samples
    (the last one up to ``block + MIN_LAST_BLOCK``); `AudioInputError` on NaN or infinity."""
    with _open(path) as f:
        while True:
            n = block if f.frames - f.tell() >= block + MIN_LAST_BLOCK else -1
            data = f.read(n, dtype="float32", always_2d=True)
            if data.shape[0] == 0:
                return
            x = np.ascontiguousarray(data.T)
            checked_peak(path, x)
            yield x
            if n < 0:
                return


def read_span(path: Path, start: int, stop: int) -> np.ndarray:
    """Samples ``start:stop`` of a file, ``(channels, samples)`` float32."""
    data, _ = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


# --- stream plumbing --------------------------------------------------------------------------


class Overlap:
    """Cut a stream of blocks into regions of ``hop`` samples, each handed over inside a window
    with ``before`` samples of the past and ``after`` of the future (fewer only at the
    stream's two ends, where a whole-array function would see its edges too).

    `push` and `finish` return ``(window, offset, count)``: the region is
    ``window[:, offset:offset + count]``; it starts at a multiple of ``hop`` in the stream.
    """

    def __init__(self, hop: int, before: int, after: int) -> None:
        self._hop, self._before, self._after = hop, before, after
        self._buffer: np.ndarray | None = None
        self._start = 0  # stream index of self._buffer[:, 0]
        self._done = 0  # stream index where the next region starts

    @property
    def _end(self) -> int:
        return self._start + (0 if self._buffer is None else self._buffer.shape[1])

    def push(self, x: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
        self._buffer = x if self._buffer is None else np.concatenate([self._buffer, x], axis=1)
        regions = []
        while self._end >= self._done + self._hop + self._after:
            regions.append(self._take(self._done + self._hop))
        keep = max(self._done - self._before, 0)
        self._buffer = self._buffer[:, keep - self._start:]
        self._start = keep
        return regions

    def finish(self) -> list[tuple[np.ndarray, int, int]]:
        regions = []
        while self._done < self._end:
            regions.append(self._take(min(self._done + self._hop, self._end)))
        return regions

    def _take(self, end: int) -> tuple[np.ndarray, int, int]:
        low = max(self._done - self._before, 0)
        high = min(end + self._after, self._end)
        window = self._buffer[:, low - self._start:high - self._start]
        region = (window, self._done - low, end - self._done)
        self._done = end
        return region


class HopSums:
    """Sums of a per-sample quantity over hops of ``hop`` samples (not necessarily whole),
    bounded at ``floor(k * hop)`` from the stream's start, as `loudness.hop_energy` cuts them."""

    def __init__(self, hop: float) -> None:
        self.hop = hop
        self._pending = np.zeros(0)
        self._hops = 0  # complete hops so far
        self._pos = 0  # samples pushed
        self._sums: list[np.ndarray] = []

    def push(self, values: np.ndarray) -> None:
        self._pending = np.concatenate([self._pending, values]) if self._pending.size else values
        self._pos += values.size
        hops = int(self._pos / self.hop)
        if hops == self._hops:
            return
        bounds = np.floor(np.arange(self._hops, hops + 1) * self.hop).astype(np.int64)
        bounds -= bounds[0]
        self._sums.append(np.add.reduceat(self._pending[: bounds[-1]], bounds[:-1]))
        self._pending = self._pending[bounds[-1]:]
        self._hops = hops

    def sums(self) -> np.ndarray:
        """The sum of every complete hop, shape (hops,)."""
        return np.concatenate(self._sums) if self._sums else np.zeros(0)

    def bounds(self) -> np.ndarray:
        """First sample of each hop, then the end of the last, shape (hops + 1,), int64."""
        return np.floor(np.arange(self._hops + 1) * self.hop).astype(np.int64)


# --- meters -----------------------------------------------------------------------------------


class LoudnessMeter:
    """Integrated loudness and loudness range of a stream, as `loudness.loudness_and_range`
    computes them on the whole array (the same float32 K-weighting, hops and gates)."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self._board = loudness.k_weighting_board(sample_rate)
        self._weights = loudness.channel_power_weights(channels, sample_rate)
        self._hops = HopSums(loudness.HOP_S * sample_rate)

    def push(self, x: np.ndarray) -> None:
        y = self._board(np.ascontiguousarray(x, dtype=np.float32), float(self.sample_rate),
                        reset=False)
        np.square(y, out=y)
        y *= self._weights
        self._hops.push(y.sum(axis=0))

    def _hop_energy(self, gain: float) -> tuple[np.ndarray, np.ndarray]:
        cumsum = np.concatenate([[0.0], np.cumsum(self._hops.sums(), dtype=np.float64)])
        return cumsum * gain**2, self._hops.bounds()

    def integrated_lufs(self, *, gain: float = 1.0) -> float:
        """LUFS of the stream, or of the stream times ``gain`` (linear)."""
        return loudness.integrated_of_hops(self._hop_energy(gain), self.sample_rate)

    def range_lu(self) -> float:
        return loudness.range_of_hops(self._hop_energy(1.0))


class TruePeakMeter:
    """The maximum of `loudness.true_peak_envelope` over a stream."""

    def __init__(self, sample_rate: int, hop: int) -> None:
        self.sample_rate = sample_rate
        half = loudness.TRUE_PEAK_TAPS // 2
        self._overlap = Overlap(hop, _TRUE_PEAK_GRID, half)
        self.peak = 0.0

    def push(self, x: np.ndarray) -> None:
        self._measure(self._overlap.push(x))

    def finish(self) -> None:
        self._measure(self._overlap.finish())

    def _measure(self, regions: list[tuple[np.ndarray, int, int]]) -> None:
        for window, offset, count in regions:
            envelope = loudness.true_peak_envelope(window, self.sample_rate)
            self.peak = max(self.peak, float(envelope[offset:offset + count].max()))

    @property
    def dbtp(self) -> float:
        return loudness.amp_to_db(np.float32(self.peak))  # float32, as true_peak_dbtp


class _Welch:
    """Welch power sums of several signals at once (rows of ``(signals, samples)`` blocks),
    with the frames that straddle blocks, as `analysis.tonal_balance_db` frames a whole array."""

    def __init__(self, sample_rate: int, signals: int, total: int) -> None:
        self.sample_rate = sample_rate
        segment = min(analysis.welch_segment(sample_rate), total)
        self._window = analysis.welch_window(segment)
        self._step = analysis.welch_step(segment)
        self._tail = np.zeros((signals, 0), dtype=np.float32)
        self._power = np.zeros((signals, segment // 2 + 1))
        self._frames = 0

    def push(self, x: np.ndarray) -> None:
        buffer = np.concatenate([self._tail, x], axis=1)
        segment = self._window.size
        if buffer.shape[1] < segment:
            self._tail = buffer
            return
        n = (buffer.shape[1] - segment) // self._step + 1
        frames = sliding_window_view(buffer, segment, axis=-1)[:, :: self._step][:, :n]
        for row, signal_frames in enumerate(frames):
            self._power[row] += analysis.welch_power(signal_frames, self._window)
        self._frames += n
        self._tail = buffer[:, n * self._step:]

    def bands_db(self, row: int, loudness_lufs: float) -> tuple[float, ...]:
        freqs_hz, psd = analysis.welch_psd_from_power(self._power[row], self._frames,
                                                      self._window, self.sample_rate)
        return tuple(analysis.band_power_db(freqs_hz, psd, self.sample_rate,
                                            loudness_lufs).tolist())


class ClipCounter:
    """Runs of at least `analysis.CLIP_RUN_SAMPLES` full-scale samples per channel, across
    block edges."""

    def __init__(self, channels: int) -> None:
        self.clips = 0
        self._run = np.zeros(channels, dtype=np.int64)  # full-scale samples ending the last block

    def push(self, x: np.ndarray, peak: float) -> None:
        """Count the clips in ``x``, whose largest absolute value is ``peak``."""
        if peak < analysis.CLIP_LEVEL:
            self._close_all()
            return
        for c, channel in enumerate(x):
            full = np.flatnonzero(np.abs(channel) >= analysis.CLIP_LEVEL)
            if full.size == 0:
                self._close(c)
                continue
            breaks = np.flatnonzero(np.diff(full) != 1) + 1
            starts = full[np.concatenate([[0], breaks])]
            lengths = np.diff(np.concatenate([[0], breaks, [full.size]]))
            open_run = starts[-1] + lengths[-1] == channel.size  # continues in the next block
            if starts[0] == 0:
                lengths[0] += self._run[c]
            else:
                self._close(c)
            self._run[c] = lengths[-1] if open_run else 0
            counted = lengths[:-1] if open_run else lengths
            self.clips += int(np.count_nonzero(counted >= analysis.CLIP_RUN_SAMPLES))

    def _close(self, c: int) -> None:
        self.clips += int(self._run[c] >= analysis.CLIP_RUN_SAMPLES)
        self._run[c] = 0

    def _close_all(self) -> None:
        for c in range(self._run.size):
            self._close(c)

    def finish(self) -> int:
        self._close_all()
        return self.clips


class StreamAnalyzer:
    """`analysis.analyze`, block by block: push ``(channels, samples)`` blocks, then `finish`.

    Parameters
    ----------
    sample_rate : int, Hz
    channels : int
    total : int
        Samples the stream will have (sets the Welch segment of very short streams).
    hop : int
        Samples per true-peak region (a multiple of 32; the block size suits).
    """

    def __init__(self, sample_rate: int, channels: int, total: int, hop: int) -> None:
        self.sample_rate, self.channels = sample_rate, channels
        self._loudness = LoudnessMeter(sample_rate, channels)
        self._true_peak = TruePeakMeter(sample_rate, hop)
        self._welch = _Welch(sample_rate, 2, total)
        self._moments = analysis.Moments(channels)
        self._clips = ClipCounter(channels)
        self._excerpt = HopSums(sample_rate // 2)  # the hops of `analysis.loudest_excerpt`
        self._peak = 0.0

    def push(self, x: np.ndarray) -> None:
        self._loudness.push(x)
        self._true_peak.push(x)
        self._moments.push(x)
        peak = max(float(x.max()), -float(x.min()))
        self._peak = max(self._peak, peak)
        self._clips.push(x, peak)
        self._excerpt.push(np.einsum("cj,cj->j", x, x, dtype=np.float64))
        if self.channels == 1:
            self._welch.push(np.stack([x[0], np.zeros_like(x[0])]))
        else:
            self._welch.push(np.stack([0.5 * (x[0] + x[1]), 0.5 * (x[0] - x[1])]))

    def finish(self) -> Analysis:
        """The `Analysis` of everything pushed (warnings included)."""
        n = self._moments.n
        if n == 0 or self._peak == 0.0:
            raise AudioInputError("is digital silence" if n else "has no samples")
        self._true_peak.finish()
        integrated = self._loudness.integrated_lufs()
        true_peak = self._true_peak.dbtp
        sample_peak = loudness.amp_to_db(np.float32(self._peak))  # float32, as analyze
        rms = loudness.amp_to_db(self._moments.overall_rms())
        width = analysis.width_ratio(*self._moments.mid_side_rms())
        measured = Analysis(
            sample_rate=int(self.sample_rate),
            channels=self.channels,
            duration_s=n / self.sample_rate,
            integrated_lufs=integrated,
            loudness_range_lu=self._loudness.range_lu(),
            true_peak_dbtp=true_peak,
            sample_peak_dbfs=sample_peak,
            rms_dbfs=rms,
            crest_db=sample_peak - rms,
            plr_db=true_peak - integrated,
            width=width,
            correlation=1.0 if self.channels == 1 else self._moments.correlation(),
            tonal_mid_db=self._welch.bands_db(0, integrated),
            tonal_side_db=self._welch.bands_db(1, integrated),
            warnings=(),
        )
        return replace(measured, warnings=analysis.input_warnings(
            measured, self._clips.finish(), np.abs(self._moments.mean)))

    def loudest_excerpt(self, seconds: float) -> tuple[int, int]:
        """`analysis.loudest_excerpt` of the stream pushed so far."""
        return analysis.loudest_span(self._excerpt.sums(), int(self._excerpt.hop), self._moments.n,
                                     int(seconds * self.sample_rate))


def analyze_file(path: str | os.PathLike, *, excerpt_s: float,
                 block_s: float = BLOCK_S) -> tuple[Analysis, tuple[int, int]]:
    """`analysis.analyze` of a file, read in blocks, and its loudest ``excerpt_s`` seconds
    (start, end sample), as `analysis.loudest_excerpt` finds them."""
    path = Path(path)
    sample_rate, channels, frames = file_format_of(path)
    block = block_samples(block_s, sample_rate)
    analyzer = StreamAnalyzer(sample_rate, channels, frames, block)
    for x in read_blocks(path, block):
        analyzer.push(x)
    try:
        result = analyzer.finish()
    except AudioInputError as exc:
        raise AudioInputError(f"{path}: {exc}") from None
    return result, analyzer.loudest_excerpt(excerpt_s)


# --- rendering --------------------------------------------------------------------------------


class StreamingLimiter:
    """`limiter.true_peak_limit` before its residue trim, block by block.

    Each region is limited inside a window holding the lookahead the attack needs on both
    sides, and the next release block; the release smoother's state carries over. Output
    lags input by up to one block plus the lookahead; `finish` returns the rest.
    """

    def __init__(self, sample_rate: int, p: LimiterParams, *, hop: int) -> None:
        if hop % RELEASE_BLOCK:
            raise ValueError(f"hop must be a multiple of {RELEASE_BLOCK}, got {hop}")
        self.sample_rate, self.p = sample_rate, p
        reach = 2 * (lookahead_window(sample_rate) - 1)  # see attack_gain
        half = loudness.TRUE_PEAK_TAPS // 2
        before = -(-(reach + half) // RELEASE_BLOCK) * RELEASE_BLOCK  # keep the 32-sample grid
        self._overlap = Overlap(hop, before, RELEASE_BLOCK + reach + half)
        self._alpha = release_coefficient(sample_rate, p)
        self._state: float | None = None  # the smoother's last output (from block 0's value)

    def push(self, x: np.ndarray) -> list[np.ndarray]:
        return [self._limit(*region) for region in self._overlap.push(x)]

    def finish(self) -> list[np.ndarray]:
        return [self._limit(*region) for region in self._overlap.finish()]

    def _limit(self, window: np.ndarray, offset: int, count: int) -> np.ndarray:
        envelope = loudness.true_peak_envelope(window, self.sample_rate)
        attack = attack_gain(required_gain(envelope, self.p), self.sample_rate)
        # the region's release blocks, and the next one (the ramp's end) when there is one
        attack = attack[offset:min(offset + count + RELEASE_BLOCK, attack.size)]
        log_gain = np.log(block_minima(attack))
        own = -(-count // RELEASE_BLOCK)
        if self._state is None:
            self._state = float(log_gain[0])
        smoothed = one_pole(log_gain[:own], self._alpha, self._state)
        self._state = float(smoothed[-1])
        if log_gain.size > own:
            smoothed = np.concatenate([smoothed, one_pole(log_gain[own:], self._alpha,
                                                          self._state)])
        release = np.exp(np.minimum(log_gain, smoothed)).astype(np.float32)
        following = np.append(release[1:], release[-1])[:own]
        curve = interpolate_blocks(release[:own], following)
        gain = np.minimum(attack[:count], curve[:count])
        return window[:, offset:offset + count] * gain[None, :]


def chained_blocks(path: Path, chain: MasterChain, block: int) -> Iterator[np.ndarray]:
    """`render.master_chain` of a file, block by block (one set of plugins, never reset)."""
    sample_rate = file_format_of(path)[0]
    board = pb.Pedalboard(render.highpass_plugins(chain.highpass) + render.eq_plugins(chain.eq)
                          + render.compressor_plugins(chain.compressor))
    for x in read_blocks(path, block):
        y = board(x, float(sample_rate), reset=False)
        yield render.stereo_width(y, sample_rate, chain.width)


def rendered_blocks(path: Path, settings: MasterSettings, block: int, *,
                    trim_db: float = 0.0) -> Iterator[np.ndarray]:
    """`mastering.render_master` of a file, block by block, with the limiter's residue trim
    given (``trim_db``, from a measuring pass: it depends on the whole output)."""
    sample_rate = file_format_of(path)[0]
    limiter = StreamingLimiter(sample_rate, settings.limiter, hop=block)
    gain = np.float32(10 ** (settings.gain_db / 20))
    trim = np.float32(10.0 ** (trim_db / 20.0)) if trim_db < 0 else None
    for x in chained_blocks(path, settings.chain, block):
        for y in limiter.push(x * gain):
            yield y if trim is None else y * trim
    for y in limiter.finish():
        yield y if trim is None else y * trim


def metered(path: Path, blocks: Iterator[np.ndarray],
            block: int) -> tuple[LoudnessMeter, TruePeakMeter]:
    """A loudness meter and a (finished) true-peak meter over ``blocks`` of ``path``'s format."""
    sample_rate, channels, _ = file_format_of(path)
    level, peak = LoudnessMeter(sample_rate, channels), TruePeakMeter(sample_rate, block)
    for y in blocks:
        level.push(y)
        peak.push(y)
    peak.finish()
    return level, peak


def chain_loudness(path: Path, chain: MasterChain, block: int) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) of the chained file (before gain and
    limiter)."""
    level, peak = metered(path, chained_blocks(path, chain, block), block)
    return level.integrated_lufs(), peak.dbtp


def measure_render(path: Path, settings: MasterSettings, block: int) -> tuple[float, float]:
    """Render without writing: (loudness of the trimmed master in LUFS, residue trim in dB)."""
    level, peak = metered(path, rendered_blocks(path, settings, block), block)
    trim_db = residue_trim_db(peak.dbtp, settings.limiter)
    return level.integrated_lufs(gain=10.0 ** (trim_db / 20.0)), trim_db


def finalise_file(path: Path, chain: MasterChain, target: Target, release_ms: float,
                  block: int) -> tuple[MasterSettings, float | None]:
    """`finalise.finalise` over a file: the settings, and the residue trim they were measured
    with (None when the last gain correction has not been measured)."""
    limiter = LimiterParams(ceiling_dbtp=target.ceiling_dbtp, release_ms=release_ms)
    lufs, peak_dbtp = chain_loudness(path, chain, block)
    cap = capped_gain_db(target, peak_dbtp)
    gain_db = round(target.integrated_lufs - lufs, 4)
    for _ in range(MAX_RENDERS):
        if cap is not None and gain_db >= cap:
            gain_db = cap
        settings = MasterSettings(chain=chain, gain_db=gain_db, limiter=limiter,
                                  target_lufs=target.integrated_lufs)
        lufs, trim_db = measure_render(path, settings, block)
        error = target.integrated_lufs - lufs
        if abs(error) <= LOUDNESS_TOLERANCE_LU or (gain_db == cap and error > 0):
            return settings, trim_db
        gain_db = round(gain_db + error, 4)  # stored as rendered: re-rendering is exact
    return replace(settings, gain_db=gain_db), None


def write_blocks(dest: Path, blocks: Iterator[np.ndarray], sample_rate: int, channels: int, *,
                 bit_depth: int = 24, file_format: str = "wav",
                 block_s: float = BLOCK_S) -> tuple[Analysis, tuple[int, int]]:
    """Write blocks atomically, as `audio.save` writes an array (16-bit: TPDF dither, seeded
    per block); analyse the written file before it takes its name.

    Returns the written file's `Analysis` and its loudest `previews.PREVIEW_S` span.
    """
    from automix.audio import check_format
    from automix.previews import PREVIEW_S

    check_format(file_format, bit_depth)
    with atomic_path(dest) as tmp:
        with sf.SoundFile(tmp, "w", sample_rate, channels, subtype=BIT_DEPTHS[bit_depth],
                          format=FORMATS[file_format]) as f:
            for i, y in enumerate(blocks):
                f.write((tpdf_dither(y, 16, seed=i) if bit_depth == 16 else y).T)
        written = analyze_file(tmp, excerpt_s=PREVIEW_S, block_s=block_s)
    return written


# --- the pipeline's stages -------------------------------------------------------------------


class Streamed:
    """`pipeline.Stages` for a file too long to hold: every stage reads it in blocks of
    ``block_s``, and `render` writes the master to ``output_path`` block by block (16-bit:
    TPDF dither, seeded per block) and analyses the written file before it takes its name.

    Long files are suggested by the DSP matcher (the network hears excerpts anyway). After
    `render`, ``preview_span`` is the master's loudest `previews.PREVIEW_S` seconds.
    """

    def __init__(self, input_path: Path, output_path: Path, *, bit_depth: int = 24,
                 file_format: str = "wav", block_s: float | None = None) -> None:
        self.input_path, self.output_path = input_path, output_path
        self.bit_depth, self.file_format = bit_depth, file_format
        self.block_s = BLOCK_S if block_s is None else block_s
        self.timings_s: dict[str, float] = {}
        self.preview_span = (0, 0)
        self._excerpt = (0, 0)
        self._block = 0
        self._format = (0, 0)  # sample rate, channels
        self._finalised: tuple[MasterSettings, float | None] | None = None

    def analyse(self) -> Analysis:
        """The input's analysis (and its loudest `match.EXCERPT_S`, for the compressor)."""
        measured, self._excerpt = analyze_file(self.input_path, excerpt_s=EXCERPT_S,
                                               block_s=self.block_s)
        self._format = (measured.sample_rate, measured.channels)
        self._block = block_samples(self.block_s, measured.sample_rate)
        return measured

    def suggest(self, input_analysis: Analysis, reference: Reference, target: Target, *,
                method: str, refine_steps: int, refine_seconds: float
                ) -> tuple[MasterChain, str]:
        # Both methods hear the loudest excerpt: the DSP matcher picks its compressor there
        # (given only that excerpt it finds the same one), the network its loud excerpts.
        loudest = Audio(read_span(self.input_path, *self._excerpt), input_analysis.sample_rate)
        return suggest_chain(loudest, input_analysis, reference, target, method=method,
                             refine_steps=refine_steps, refine_seconds=refine_seconds)

    def finalise(self, chain: MasterChain, target: Target, release_ms: float
                 ) -> MasterSettings:
        self._finalised = finalise_file(self.input_path, chain, target, release_ms, self._block)
        return self._finalised[0]

    def render(self, settings: MasterSettings) -> tuple[Audio, Analysis]:
        """Writes the master; returns an empty `Audio` and the written file's analysis."""
        trim_db = None
        if self._finalised is not None and self._finalised[0] is settings:
            trim_db = self._finalised[1]
        if trim_db is None:
            trim_db = measure_render(self.input_path, settings, self._block)[1]
        sample_rate, channels = self._format
        t0 = time.perf_counter()
        written, self.preview_span = write_blocks(
            self.output_path, rendered_blocks(self.input_path, settings, self._block,
                                              trim_db=trim_db),
            sample_rate, channels, bit_depth=self.bit_depth, file_format=self.file_format,
            block_s=self.block_s)
        self.timings_s["write_verify"] = time.perf_counter() - t0
        return Audio(np.zeros((channels, 0), dtype=np.float32), sample_rate), written


def master_stream(input_path: Path, output_path: Path, reference: Reference, target: Target,
                  *, method: str = MASTER_METHOD, settings: MasterSettings | None = None,
                  amounts: Amounts | None = None, refit_gain: bool = False,
                  bit_depth: int = 24, file_format: str = "wav",
                  block_s: float | None = None) -> tuple[MasterResult, tuple[int, int]]:
    """`pipeline.run` on a file, in blocks, writing the master to ``output_path``.

    Returns
    -------
    result : pipeline.MasterResult
        Its ``audio`` is empty (the master is in ``output_path``); ``output`` is the analysis
        of the written file.
    preview_span : (start, end) sample of the master's loudest `previews.PREVIEW_S` seconds
    """
    stages = Streamed(input_path, output_path, bit_depth=bit_depth, file_format=file_format,
                      block_s=block_s)
    t0 = time.perf_counter()
    input_analysis = stages.analyse()
    analysed_s = time.perf_counter() - t0
    result = run(stages, input_analysis, reference, target, method=method, settings=settings,
                 amounts=amounts, refit_gain=refit_gain)
    result.timings_s = {"analyse": analysed_s, **result.timings_s}
    return result, stages.preview_span
