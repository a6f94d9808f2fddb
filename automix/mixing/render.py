"""Rendering a mix: each stem through its chain, summed, with the shared reverb bus.

Stereo stems keep their image: the pair runs through the effects in one pass (every effect
here processes channels independently) and each channel is panned with an offset of -1
(left) and +1 (right) (`effects.render.balance`), so ``pan`` acts as a balance control and 0
leaves a stereo stem as it was. Mono stems (or stereo files with identical channels) are
panned.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from automix.effects import render
from automix.mixing.stems import Stem
from automix.params import ReverbParams, SendParams, StemChain, ranges

SEND_OFF_DB = ranges(SendParams)["send_db"].min  # a send at the floor feeds no reverb
RENDER_THREADS = min(4, os.cpu_count() or 1)


def render_dry(samples: np.ndarray, is_stereo: bool, sample_rate: int,
               chain: StemChain) -> np.ndarray:
    """A stem's ``samples`` (channels, samples) through its chain, ``(2, samples)`` float32.

    A stereo stem runs through the effects as a pair in one pass (they process channels
    independently) and is balanced (`render.balance`); a mono one is panned.
    """
    x = samples if is_stereo else samples.mean(axis=0, keepdims=True)
    y = render.process(render.stem_plugins(chain), render.gain(x, sample_rate, chain.gain),
                       sample_rate)
    if is_stereo:
        return render.balance(y, sample_rate, chain.pan)
    return render.pan(y, sample_rate, chain.pan)


def render_stem(stem: Stem, sample_rate: int,
                chain: StemChain) -> tuple[np.ndarray, np.ndarray]:
    """One stem through its chain: (dry, send), each ``(2, samples)`` float32."""
    dry = render_dry(stem.samples, stem.is_stereo, sample_rate, chain)
    return dry, dry * np.float32(render.db_to_amp(chain.send.send_db))


def sends_reverb(chain: StemChain) -> bool:
    """Whether a stem feeds the reverb bus: its send is above the range's floor (-60 dB,
    which is off)."""
    return chain.send.send_db > SEND_OFF_DB


def render_mix(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
               reverb: ReverbParams, *, keep: bool = True
               ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The summed mix bus ``(2, samples)`` (dry stems plus the reverb return of their sends)
    and each processed dry stem (none unless ``keep``). Stems are rendered in threads
    (pedalboard releases the GIL), `RENDER_THREADS` at a time, each added to the bus (and the
    send bus) as soon as its group is done, so that without ``keep`` at most that many
    processed stems are held at once; the sum runs in stem order either way (the same bus).
    The room is convolved only when some stem sends to it."""
    def one(stem: Stem) -> np.ndarray:
        return render_dry(stem.samples, stem.is_stereo, sample_rate, chains[stem.name])

    bus = np.zeros((2, stems[0].samples.shape[1]), np.float32)
    sends = np.zeros_like(bus) if any(sends_reverb(chains[s.name]) for s in stems) else None
    kept = []
    with ThreadPoolExecutor(max_workers=RENDER_THREADS) as pool:
        for first in range(0, len(stems), RENDER_THREADS):
            group = stems[first : first + RENDER_THREADS]
            for stem, dry in zip(group, pool.map(one, group), strict=True):
                bus += dry
                chain = chains[stem.name]
                if sends is not None and sends_reverb(chain):
                    sends += dry * np.float32(render.db_to_amp(chain.send.send_db))
                if keep:
                    kept.append(dry)
    if sends is not None:
        bus += render.reverb_return(sends, sample_rate, reverb)
    return bus, kept
