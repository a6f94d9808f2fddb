"""Live mastering: stored settings applied block by block, at a fixed latency.

`LiveMaster` renders a `settings.MasterSettings` the way `finalise.render_master` renders it
offline (the same pedalboard chain, the same fixed gain, the same true-peak limiter), but from
blocks of any size as they arrive, as a plug-in host or an audio callback hands them over.
Nothing is searched: the gain is the settings' ``gain_db``, so the output is the offline render
delayed by `LiveMaster.latency` samples, whatever the block sizes (to float rounding, and the
filters' flush below). `automix.live_io` feeds it from files, pipes and audio devices.

The chain (high-pass, EQ, compressor, width) has no latency: the same plugin objects run every
block with ``reset=False``. The limiter is `streaming.StreamingLimiter`, the offline limiter cut
into hops of `HOP` samples: each hop is limited once the lookahead its attack needs (1.5 ms
ramp each side, the true-peak interpolator's taps and the next 32-sample release block) has
arrived. A hop's output is ready ``HOP + lookahead - 1`` samples after its first input at the
latest; the output queue starts with that many samples of silence, so every block returns as
many samples as it brought and the delay never changes. At 48 kHz that is 439 samples
(9.1 ms); at 44.1 kHz 427 (9.7 ms).

The chain's filters are JUCE's, which flush a state under 1e-8 to zero at the end of each
block; the offline render's blocks end every 8192 samples, a live stream's wherever its blocks
do, so where a state is that small at a block end the two differ by about 1e-6 before the gain
(3e-5 after +30 dB on real songs; docs/benchmarks.md#live).

Only the residue trim of the offline limiter is missing: it depends on the whole output's
true peak. The limiter aims 0.1 dB under the ceiling, so it is 0 dB on real songs; when it is
not, the live output is louder than the offline file by that trim (at most a few hundredths
of a dB).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pedalboard as pb

from automix import loudness
from automix.effects import render
from automix.effects.limiter import RELEASE_BLOCK, lookahead_window
from automix.errors import AudioInputError
from automix.mastering.streaming import StreamingLimiter
from automix.settings import MasterSettings

HOP = 256  # samples per limiter step: the latency's main part, and its cost per call
MIN_BLOCK, MAX_BLOCK = 64, 2048  # block sizes the command accepts (the class takes any)


def latency_samples(sample_rate: int, hop: int = HOP) -> int:
    """The fixed delay of `LiveMaster` in samples: a hop plus the limiter's lookahead, less
    one (see the module's docstring)."""
    reach = 2 * (lookahead_window(sample_rate) - 1)
    return hop + RELEASE_BLOCK + reach + loudness.TRUE_PEAK_TAPS // 2 - 1


class LiveMaster:
    """A master's settings as a block processor.

    >>> live = LiveMaster(settings, sample_rate=48000, channels=2)
    >>> out = live.process(block)      # (channels, n) float32 in, (channels, n) out
    >>> tail = live.flush()            # the last `latency` samples, at the end of a stream

    ``out`` is the offline render (`finalise.render_master` before its residue trim) delayed
    by ``live.latency`` samples; the first ``latency`` samples out are silence.
    """

    def __init__(self, settings: MasterSettings, sample_rate: int, channels: int = 2, *,
                 hop: int = HOP) -> None:
        if sample_rate <= 0:
            raise AudioInputError(f"sample rate must be positive, got {sample_rate}")
        if channels not in (1, 2):
            raise AudioInputError(f"live mastering takes mono or stereo, got {channels} channels")
        self.settings, self.sample_rate, self.channels = settings, int(sample_rate), channels
        chain = settings.chain
        self._board = pb.Pedalboard(render.highpass_plugins(chain.highpass)
                                    + render.eq_plugins(chain.eq)
                                    + render.compressor_plugins(chain.compressor))
        # pedalboard prepares its plugins for the largest block seen so far and resets them when
        # a larger one comes: prime them with silence (their state stays at rest) at
        # `MAX_BLOCK` and never hand them more at once
        self._board(np.zeros((channels, MAX_BLOCK), np.float32), float(self.sample_rate))
        self._gain = np.float32(10 ** (settings.gain_db / 20))
        self._limiter = StreamingLimiter(self.sample_rate, settings.limiter, hop=hop)
        self.latency = latency_samples(self.sample_rate, hop)
        self._queue: deque[np.ndarray] = deque([np.zeros((channels, self.latency), np.float32)])
        self._queued = self.latency

    @property
    def latency_ms(self) -> float:
        return 1e3 * self.latency / self.sample_rate

    def process(self, block: np.ndarray) -> np.ndarray:
        """One block in, shape (channels, n), any n; the same number of samples out."""
        x = np.ascontiguousarray(block, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise AudioInputError(f"expected a block of shape ({self.channels}, n), "
                                  f"got {x.shape}")
        n = x.shape[1]
        if n == 0:
            return x.copy()
        self._push(self._limiter.push(self._chained(x)))
        return self._pop(n)

    def flush(self) -> np.ndarray:
        """The end of the stream: the last `latency` samples still inside (the processor is
        spent afterwards)."""
        self._push(self._limiter.finish())
        return self._pop(self._queued)

    def _chained(self, x: np.ndarray) -> np.ndarray:
        rate = float(self.sample_rate)
        if x.shape[1] <= MAX_BLOCK:  # a host's block: one call
            y = self._board(x, rate, reset=False)
        else:
            y = np.concatenate([self._board(x[:, i:i + MAX_BLOCK], rate, reset=False)
                                for i in range(0, x.shape[1], MAX_BLOCK)], axis=1)
        y = render.stereo_width(y, self.sample_rate, self.settings.chain.width)
        return y * self._gain

    def _push(self, pieces: list[np.ndarray]) -> None:
        for piece in pieces:
            self._queue.append(piece)
            self._queued += piece.shape[1]

    def _pop(self, n: int) -> np.ndarray:
        parts, need = [], n
        while need:
            head = self._queue[0]
            if head.shape[1] <= need:
                parts.append(self._queue.popleft())
                need -= head.shape[1]
            else:
                parts.append(head[:, :need])
                self._queue[0] = head[:, need:]
                need = 0
        self._queued -= n
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return out.astype(np.float32, copy=False)


def render_blocks(live: LiveMaster, samples: np.ndarray, sizes: list[int]) -> np.ndarray:
    """``samples`` (channels, n) through ``live`` in blocks cycling through ``sizes``, then
    flushed: the stream as a host would hear it (``latency`` samples of silence first)."""
    out, start, i = [], 0, 0
    while start < samples.shape[1]:
        size = sizes[i % len(sizes)]
        out.append(live.process(samples[:, start:start + size]))
        start, i = start + size, i + 1
    out.append(live.flush())
    return np.concatenate(out, axis=1)
