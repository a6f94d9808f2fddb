"""Live mastering's speed per block size, on one core, against the offline render.

    AUTOMIX_DATA=/work/data python benchmarks/live.py [--songs 2] [--seconds 30] [--repeats 3]

Material: the example song (`examples/dirty_love.flac`, 25 s) and ``--songs`` real mixes
from ``$AUTOMIX_DATA/mixes`` (their first ``--seconds``; none without the data folder), all
resampled to ``--sample-rate`` (48 kHz: the rate the issue states the latency at). Each song
is rendered with the settings `automix.suggest` gives it toward the pop preset, so the
compressor and the limiter work as they do on real masters.

For every block size, `LiveMaster.process` runs over each song's pre-cut blocks (as a host's
callback hands them over), then `flush`; ``--repeats`` rounds, round-robin with the offline
one-shot render (`finalise.render_master` of the whole song) in the same rounds, medians
reported. Columns:

- x real time: seconds of audio per second of processing, over all songs, and its ratio to
  the offline render's;
- mean and p99 block: processing time per `process` call; "p99 / period" is the 99th
  percentile over the block's duration (a callback must stay under 1; the limiter runs on
  256-sample hops, so blocks under 256 alternate cheap and dear calls);
- latency: samples and ms at the benchmark's rate (fixed: it does not depend on the block);
- max |live - offline|: the live stream against the offline render delayed by the latency.

One thread (OMP/MKL/OpenBLAS threads 1, set before numpy loads; ``--cpu N`` pins it too).
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from math import gcd  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _songs import real_songs  # noqa: E402

import automix  # noqa: E402
from automix.audio import Audio, load  # noqa: E402
from automix.live import LiveMaster  # noqa: E402
from automix.mastering.finalise import render_master  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = (64, 128, 256, 512, 1024, 2048)


def pin(cpu: int | None) -> str:
    """Run on CPU ``cpu`` when given (on a busy shared box, pinning can make it wait for a
    neighbour on that CPU: one thread unpinned is the default); where it runs, in words."""
    if cpu is None:
        return "not pinned"
    try:
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError) as exc:
        return f"not pinned ({exc})"


def material(songs: int, seconds: float, sample_rate: int) -> list[tuple[str, Audio]]:
    paths = [ROOT / "examples" / "dirty_love.flac", *real_songs(seconds, songs)]
    out = []
    for path in paths:
        audio = load(path)
        x = audio.samples[:, :int(seconds * audio.sample_rate)]
        if audio.sample_rate != sample_rate:
            g = gcd(sample_rate, audio.sample_rate)
            x = scipy.signal.resample_poly(x, sample_rate // g, audio.sample_rate // g, axis=1)
        out.append((path.stem, Audio(np.ascontiguousarray(x, dtype=np.float32), sample_rate)))
    return out


def live_round(settings, song: Audio, block: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Seconds for the whole song, per-call seconds, and the stream (flush included)."""
    live = LiveMaster(settings, song.sample_rate, song.channels)
    blocks = [np.ascontiguousarray(song.samples[:, i:i + block])
              for i in range(0, song.samples.shape[1], block)]
    calls = np.empty(len(blocks))
    out = []
    clock = time.perf_counter
    t0 = clock()
    for i, x in enumerate(blocks):
        t = clock()
        out.append(live.process(x))
        calls[i] = clock() - t
    out.append(live.flush())
    total = clock() - t0
    return total, calls, np.concatenate(out, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=2, help="real mixes from $AUTOMIX_DATA")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample-rate", type=int, default=48000)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    args = parser.parse_args()
    where = pin(args.cpu)
    songs = material(args.songs, args.seconds, args.sample_rate)
    audio_s = sum(s.duration_s for _, s in songs)
    print(f"{len(songs)} songs ({', '.join(n for n, _ in songs)}), {audio_s:.0f} s at "
          f"{args.sample_rate} Hz; one thread, {where}; {args.repeats} rounds, medians")
    settings = [automix.suggest(song, "pop") for _, song in songs]
    offline = [render_master(song, s).samples for (_, song), s in zip(songs, settings,
                                                                      strict=True)]
    times: dict[object, list[float]] = {b: [] for b in ("offline", *BLOCKS)}
    calls: dict[int, list[np.ndarray]] = {b: [] for b in BLOCKS}
    error: dict[int, float] = dict.fromkeys(BLOCKS, 0.0)
    latency = LiveMaster(settings[0], args.sample_rate).latency
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for (_, song), s in zip(songs, settings, strict=True):
            render_master(song, s)
        times["offline"].append(time.perf_counter() - t0)
        for block in BLOCKS:
            total = 0.0
            for (_, song), s, ref in zip(songs, settings, offline, strict=True):
                seconds, per_call, stream = live_round(s, song, block)
                total += seconds
                calls[block].append(per_call)
                shifted = np.pad(ref, ((0, 0), (latency, 0)))
                error[block] = max(error[block], float(np.abs(stream - shifted).max()))
            times[block].append(total)
    offline_x = audio_s / statistics.median(times["offline"])
    print(f"\noffline one-shot render (render_master): {offline_x:.0f}x real time\n")
    print("| block | x real time | vs offline | mean block us | p99 block us | p99 / period "
          "| latency | max abs(live - offline) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for block in BLOCKS:
        x = audio_s / statistics.median(times[block])
        per_call = np.concatenate(calls[block]) * 1e6
        period = 1e6 * block / args.sample_rate
        p99 = float(np.percentile(per_call, 99))
        print(f"| {block} | {x:.1f}x | {x / offline_x:.2f} | {per_call.mean():.0f} | "
              f"{p99:.0f} | {p99 / period:.2f} | {latency} ({1e3 * latency / args.sample_rate:.1f}"
              f" ms) | {error[block]:.1e} |")


if __name__ == "__main__":
    main()
