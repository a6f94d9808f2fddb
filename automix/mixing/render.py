"""Rendering a mix: each stem through its chain, summed, with the shared reverb bus.

Stereo stems keep their image: the pair runs through the effects in one pass (every effect
here processes channels independently) and each channel is panned with an offset of -1
(left) and +1 (right) (`effects.render.balance`), so ``pan`` acts as a balance control and 0
leaves a stereo stem as it was. Mono stems (or stereo files with identical channels) are
panned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pedalboard as pb
import soundfile as sf

from automix.effects import render
from automix.mixing.stems import READ_BLOCK, THREADS, Stem
from automix.params import ReverbParams, SendParams, StemChain, ranges

SEND_OFF_DB = ranges(SendParams)["send_db"].min  # a send at the floor feeds no reverb
RENDER_THREADS = THREADS
RENDER_BLOCK = READ_BLOCK  # frames per block of `render_blocks`: each plugin's pass over a
# block finds it still in cache (`render.chunks_through`)


def render_dry(samples: np.ndarray, is_stereo: bool, sample_rate: int,
               chain: StemChain) -> np.ndarray:
    """A stem's ``samples`` (channels, samples) through its chain, ``(2, samples)`` float32.

    A stereo stem runs through the effects as a pair in one pass (they process channels
    independently) and is balanced (`render.balance`); a mono one is panned.
    """
    plugins = render.stem_plugins(chain)
    return _through(samples, is_stereo, sample_rate, chain,
                    lambda y: render.process(plugins, y, sample_rate))


def _through(samples: np.ndarray, is_stereo: bool, sample_rate: int, chain: StemChain,
             effects: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The stem path `render_dry` and `_StemRender` share: a mono stem folded to one
    channel, its gain, ``effects`` (its plug-ins, run whole or a block at a time), then
    balanced (stereo) or panned (mono) to ``(2, samples)``."""
    x = samples if is_stereo else samples.mean(axis=0, keepdims=True)
    y = effects(render.gain(x, sample_rate, chain.gain))
    if is_stereo:
        return render.balance(y, sample_rate, chain.pan)
    return render.pan(y, sample_rate, chain.pan)


def render_stem(stem: Stem, sample_rate: int,
                chain: StemChain) -> tuple[np.ndarray, np.ndarray]:
    """One stem through its chain: (dry, send), each ``(2, samples)`` float32."""
    dry = render_dry(stem.read(), stem.is_stereo, sample_rate, chain)
    return dry, dry * np.float32(render.db_to_amp(chain.send.send_db))


def sends_reverb(chain: StemChain) -> bool:
    """Whether a stem feeds the reverb bus: its send is above the range's floor (-60 dB,
    which is off)."""
    return chain.send.send_db > SEND_OFF_DB


class _StemRender:
    """`render_dry` of one stem, block by block: its plugins keep their state from one block
    to the next (``reset=False``), so the blocks join into the whole render (to float
    rounding)."""

    def __init__(self, stem: Stem, sample_rate: int, chain: StemChain, block: int) -> None:
        self.stem, self.sample_rate, self.chain = stem, sample_rate, chain
        plugins = render.stem_plugins(chain)
        self._board = pb.Pedalboard(plugins) if plugins else None
        self._blocks = stem.blocks(block)
        self._started = False

    def next(self) -> np.ndarray:
        """The next block of the stem through its chain, ``(2, n)`` float32."""
        return _through(next(self._blocks), self.stem.is_stereo, self.sample_rate, self.chain,
                        self._effects)

    def _effects(self, y: np.ndarray) -> np.ndarray:
        if self._board is not None:
            y = self._board(np.ascontiguousarray(y), float(self.sample_rate),
                            reset=not self._started)
        self._started = True
        return y


def render_blocks(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
                  reverb: ReverbParams, *, block: int | None = None
                  ) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
    """The mix bus block by block: for each ``block`` frames in turn, the summed bus
    ``(2, n)`` (dry stems plus the reverb return of their sends) and each stem's dry block.

    Every stem is read (`Stem.blocks`) and run through its chain one block at a time, the
    stems of a block in threads (pedalboard releases the GIL), so memory holds a block per
    stem, whatever the stems' length; the sum runs in stem order. The room
    (`render.ReverbReturn`) runs only when some stem sends to it. ``block`` defaults to
    `RENDER_BLOCK`."""
    block = block or RENDER_BLOCK
    renders = [_StemRender(s, sample_rate, chains[s.name], block) for s in stems]
    amps = [np.float32(render.db_to_amp(chains[s.name].send.send_db))
            if sends_reverb(chains[s.name]) else None for s in stems]
    room = (render.ReverbReturn(sample_rate, reverb)
            if any(a is not None for a in amps) else None)
    with ThreadPoolExecutor(max_workers=RENDER_THREADS) as pool:
        for start in range(0, stems[0].frames, block):
            drys = list(pool.map(_StemRender.next, renders))
            bus = np.zeros((2, min(block, stems[0].frames - start)), np.float32)
            sends = np.zeros_like(bus) if room is not None else None
            for dry, amp in zip(drys, amps, strict=True):
                bus += dry
                if sends is not None and amp is not None:
                    sends += dry * amp
            if room is not None:
                bus += room(sends)
            yield bus, drys


def render_mix(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
               reverb: ReverbParams, *, keep: bool = True
               ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The summed mix bus ``(2, samples)`` (`render_blocks`, joined) and each processed dry
    stem (none unless ``keep``)."""
    bus = np.empty((2, stems[0].frames), np.float32)
    kept: list[list[np.ndarray]] = [[] for _ in stems]
    start = 0
    for block, drys in render_blocks(stems, sample_rate, chains, reverb):
        bus[:, start : start + block.shape[1]] = block
        start += block.shape[1]
        if keep:
            for parts, dry in zip(kept, drys, strict=True):
                parts.append(dry)
    return bus, [np.concatenate(parts, axis=1) for parts in kept] if keep else []


def render_mix_to(path: Path, stems: list[Stem], sample_rate: int,
                  chains: dict[str, StemChain], reverb: ReverbParams) -> None:
    """`render_blocks`' bus written to ``path`` (32-bit float WAV) block by block: a mix of
    any length in the memory of a block per stem."""
    with sf.SoundFile(str(path), "w", sample_rate, 2, subtype="FLOAT", format="WAV") as f:
        for block, _ in render_blocks(stems, sample_rate, chains, reverb):
            f.write(block.T)
