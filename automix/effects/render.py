"""Render effects with pedalboard (and numpy for the matrix-only ones).

Every function takes ``samples`` of shape ``(channels, samples)`` float32, the sample rate in
Hz, and one parameter dataclass from `automix.params` holding plain floats; it returns a new
array of the same layout. Plugins are built here, per call, because pedalboard objects cannot
be pickled: settings travel, plugins do not.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pedalboard as pb

from automix.params import (
    SHELF_Q,
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

CONVOLUTION_NORM = 0.125  # pedalboard.Convolution rescales a response to this L2 norm
CHUNK = 1 << 17  # samples per pedalboard call: see `chunks_through`


def db_to_amp(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def highpass_plugins(p: HighpassParams) -> list[pb.Plugin]:
    return [pb.HighpassFilter(cutoff_frequency_hz=p.freq_hz) for _ in range(2)]


def eq_plugins(p: EQParams) -> list[pb.Plugin]:
    return [
        pb.LowShelfFilter(cutoff_frequency_hz=p.low_shelf_freq_hz, gain_db=p.low_shelf_gain_db,
                          q=SHELF_Q),
        pb.PeakFilter(cutoff_frequency_hz=p.peak1_freq_hz, gain_db=p.peak1_gain_db, q=p.peak1_q),
        pb.PeakFilter(cutoff_frequency_hz=p.peak2_freq_hz, gain_db=p.peak2_gain_db, q=p.peak2_q),
        pb.PeakFilter(cutoff_frequency_hz=p.peak3_freq_hz, gain_db=p.peak3_gain_db, q=p.peak3_q),
        pb.HighShelfFilter(cutoff_frequency_hz=p.high_shelf_freq_hz,
                           gain_db=p.high_shelf_gain_db, q=SHELF_Q),
    ]


def compressor_plugins(p: CompressorParams) -> list[pb.Plugin]:
    """The compressor and its make-up gain, less either where it is an identity, bit for bit:
    at ratio 1 JUCE's gain is ``x ** 0``, exactly 1, and 0 dB of make-up multiplies by 1
    (a master's compressor is often off: this saves its per-sample envelope pass)."""
    plugins: list[pb.Plugin] = []
    if p.ratio != 1.0:
        plugins.append(pb.Compressor(threshold_db=p.threshold_db, ratio=p.ratio,
                                     attack_ms=p.attack_ms, release_ms=p.release_ms))
    if p.makeup_db != 0.0:
        plugins.append(pb.Gain(gain_db=p.makeup_db))
    return plugins


def _run(plugins: list[pb.Plugin], samples: np.ndarray, sample_rate: int, *,
         threads: bool = True) -> np.ndarray:
    """Run plugins over each channel in its own thread (pedalboard releases the GIL).

    Valid because every plugin used here processes channels independently (JUCE's compressor
    has an unlinked detector per channel). A fresh board per channel keeps state apart.
    """
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if not plugins:
        return samples.copy()
    out = np.empty_like(samples)
    if not threads or samples.shape[0] == 1 or samples.shape[1] < 1 << 16:
        _run_in_chunks(pb.Pedalboard(plugins), samples, out, sample_rate)
        return out
    boards = [pb.Pedalboard(plugins)] + [
        pb.Pedalboard(_clone(plugins)) for _ in range(samples.shape[0] - 1)
    ]
    with ThreadPoolExecutor(max_workers=min(len(boards), os.cpu_count() or 1)) as pool:
        list(pool.map(lambda c: _run_in_chunks(boards[c], samples[c:c + 1], out[c:c + 1],
                                               sample_rate), range(len(boards))))
    return out


def _run_in_chunks(board: pb.Pedalboard, x: np.ndarray, out: np.ndarray,
                   sample_rate: int) -> None:
    """``board`` over ``x`` (channels, samples) into ``out`` (see `chunks_through`)."""
    for where, y in chunks_through(board, x, sample_rate):
        out[:, where] = y


def chunks_through(board: pb.Pedalboard, x: np.ndarray,
                   sample_rate: int) -> Iterator[tuple[slice, np.ndarray]]:
    """``board`` over ``x`` (channels, samples), `CHUNK` samples at a time with the plugins'
    state carried over: each chunk's place in ``x`` and its output. Bit-identical to one call,
    and twice as fast on a long signal (each plugin's pass over a chunk finds it still in
    cache), with nothing of the signal's size allocated."""
    for start in range(0, x.shape[1], CHUNK):
        where = slice(start, start + CHUNK)
        yield where, board(x[:, where], float(sample_rate), reset=start == 0)


def _clone(plugins: list[pb.Plugin]) -> list[pb.Plugin]:
    """New, independent plugin objects with the same parameters."""
    out = []
    for p in plugins:
        cls = type(p)
        if isinstance(p, pb.Compressor):
            out.append(cls(threshold_db=p.threshold_db, ratio=p.ratio, attack_ms=p.attack_ms,
                           release_ms=p.release_ms))
        elif isinstance(p, pb.Gain):
            out.append(cls(gain_db=p.gain_db))
        elif isinstance(p, (pb.LowShelfFilter, pb.HighShelfFilter, pb.PeakFilter)):
            out.append(cls(cutoff_frequency_hz=p.cutoff_frequency_hz, gain_db=p.gain_db, q=p.q))
        else:
            out.append(cls(cutoff_frequency_hz=p.cutoff_frequency_hz))
    return out


def highpass(samples: np.ndarray, sample_rate: int, p: HighpassParams) -> np.ndarray:
    return _run(highpass_plugins(p), samples, sample_rate)


def eq(samples: np.ndarray, sample_rate: int, p: EQParams) -> np.ndarray:
    return _run(eq_plugins(p), samples, sample_rate)


def compressor(samples: np.ndarray, sample_rate: int, p: CompressorParams) -> np.ndarray:
    return _run(compressor_plugins(p), samples, sample_rate)


def gain(samples: np.ndarray, sample_rate: int, p: GainParams) -> np.ndarray:
    return (samples * np.float32(db_to_amp(p.gain_db))).astype(np.float32, copy=False)


def stereo_width(samples: np.ndarray, sample_rate: int, p: StereoWidthParams) -> np.ndarray:
    """Scale the side signal by ``width_pct / 100``; mono input and 100 % are unchanged."""
    if samples.shape[0] != 2 or p.width_pct == 100.0:
        return samples
    # L' = mid + w side, R' = mid - w side, as one 2x2 matrix product
    same, cross = 0.5 * (1.0 + p.width_pct / 100.0), 0.5 * (1.0 - p.width_pct / 100.0)
    return np.array([[same, cross], [cross, same]], dtype=np.float32) @ samples


def pan(samples: np.ndarray, sample_rate: int, p: PanParams) -> np.ndarray:
    """Constant-power pan to stereo; a stereo input is down-mixed to mono first."""
    mono = samples.mean(axis=0, dtype=np.float32)
    angle = (p.pan + 1.0) * np.pi / 4.0
    out = np.empty((2, mono.size), np.float32)
    np.multiply(mono, np.float32(np.cos(angle)), out=out[0])  # float32 throughout: no
    np.multiply(mono, np.float32(np.sin(angle)), out=out[1])  # float64 copies of a stem
    return out


def master_chain(samples: np.ndarray, sample_rate: int, chain: MasterChain) -> np.ndarray:
    """High-pass, EQ and compressor in one pedalboard pass, then mid/side width."""
    plugins = (highpass_plugins(chain.highpass) + eq_plugins(chain.eq)
               + compressor_plugins(chain.compressor))
    out = _run(plugins, samples, sample_rate)
    return stereo_width(out, sample_rate, chain.width)


def stem_plugins(chain: StemChain) -> list[pb.Plugin]:
    """A stem chain's high-pass, EQ and compressor (with make-up) as one plugin list, less
    the ones that are identities: EQ sections at 0 dB, and those `compressor_plugins` leaves
    out (what `stem_chain` renders, up to float rounding, in fewer passes)."""
    eq = [plugin for plugin in eq_plugins(chain.eq) if plugin.gain_db != 0.0]
    return highpass_plugins(chain.highpass) + eq + compressor_plugins(chain.compressor)


def process(plugins: list[pb.Plugin], samples: np.ndarray, sample_rate: int, *,
            threads: bool = True) -> np.ndarray:
    """Run ``plugins`` over every channel of ``samples`` (channels, samples) independently,
    long signals one thread per channel unless ``threads`` is false (a caller that runs
    several at once); returns a new float32 array of the same shape."""
    return _run(plugins, samples, sample_rate, threads=threads)


def balance(samples: np.ndarray, sample_rate: int, p: PanParams) -> np.ndarray:
    """Balance of a stereo signal (2, samples): each channel is panned by the constant-power
    law, left from ``pan - 1`` and right from ``pan + 1`` (clipped to -1..1), and the two are
    summed; 0 leaves the pair as it is, +1 puts both channels on the right at -3 dB each.
    Equals `pan` of each channel alone, summed."""
    left_angle = (min(max(p.pan - 1.0, -1.0), 1.0) + 1.0) * np.pi / 4.0
    right_angle = (min(max(p.pan + 1.0, -1.0), 1.0) + 1.0) * np.pi / 4.0
    mix = np.array([[np.cos(left_angle), np.cos(right_angle)],
                    [np.sin(left_angle), np.sin(right_angle)]], dtype=np.float32)
    mix[np.abs(mix) < 1e-7] = 0.0  # cos(pi / 2) is 6e-17, not 0: keep silent channels silent
    return mix @ np.asarray(samples, dtype=np.float32)


def stem_chain(samples: np.ndarray, sample_rate: int,
               chain: StemChain) -> tuple[np.ndarray, np.ndarray]:
    """Gain, high-pass, EQ, compressor, pan: returns (dry stereo, reverb send)."""
    y = gain(samples, sample_rate, chain.gain)
    plugins = (highpass_plugins(chain.highpass) + eq_plugins(chain.eq)
               + compressor_plugins(chain.compressor))
    dry = pan(_run(plugins, y, sample_rate), sample_rate, chain.pan)
    return dry, (dry * np.float32(db_to_amp(chain.send.send_db))).astype(np.float32)


def reverb_return(samples: np.ndarray, sample_rate: int, p: ReverbParams) -> np.ndarray:
    """The wet signal only (for a send bus), stereo, as long as ``samples``: `ReverbReturn`
    over the whole signal at once."""
    return ReverbReturn(sample_rate, p)(samples)


class ReverbReturn:
    """`reverb_return` block by block: call it on consecutive blocks of a send bus; the
    room's tail carries over (the same as one call, to float rounding).

    The room is `automix.effects.reverb_ir.impulse_response`, the one the twin uses.
    pedalboard.Convolution rescales any response to an L2 norm of 0.125 (its louder
    channel); ours has norm 1, so the return is scaled by ``wet / 0.125``. Left is
    convolved with the left response and right with the right; mono is used for both.
    """

    def __init__(self, sample_rate: int, p: ReverbParams) -> None:
        import torch  # only reverb needs it: mastering renders without importing torch

        from automix.effects import reverb_ir

        with torch.no_grad():
            ir = reverb_ir.impulse_response(sample_rate, p)[0].numpy()
        self.sample_rate = sample_rate
        self.scale = np.float32(db_to_amp(p.wet_db) / CONVOLUTION_NORM)
        self._room = pb.Convolution(ir, mix=1.0, sample_rate=float(sample_rate))
        self._started = False

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        stereo = np.ascontiguousarray(np.broadcast_to(samples, (2, samples.shape[-1])),
                                      dtype=np.float32)
        wet = self._room(stereo, float(self.sample_rate), reset=not self._started)
        self._started = True
        return (wet * self.scale).astype(np.float32)


def reverb(samples: np.ndarray, sample_rate: int, p: ReverbParams) -> np.ndarray:
    """Dry plus `reverb_return`, stereo."""
    dry = np.broadcast_to(samples, (2, samples.shape[-1]))
    return (dry + reverb_return(samples, sample_rate, p)).astype(np.float32)
