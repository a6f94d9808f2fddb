"""Peak memory of `automix master` on long files: the goal is at most 2 GiB for an hour.

Writes a synthetic, music-like stereo 48 kHz 24-bit WAV of each length in 30-s pieces (so
the generator stays small; an hour is about 1 GB on disk, removed afterwards), masters it with
``automix master FILE -r pop -o OUT --force`` in its own process, and prints wall time and
peak RSS (``os.wait4``'s ``ru_maxrss``) with the output's loudness and true peak, read back
in blocks. Inputs longer than `streaming.STREAMING_MIN_SAMPLES` stream by themselves; the
"forced" rows run shorter files through the streaming path too, for comparison. Usage::

    python benchmarks/memory.py [--minutes 3 60] [--folder /tmp]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.mastering import streaming

SAMPLE_RATE = 48000
PIECE_S = 30.0
GOAL_MIB = 2048
FORCE_STREAMING = ("import sys; from automix.mastering import streaming; "
                   "streaming.STREAMING_MIN_SAMPLES = 0; from automix.cli import app; "
                   "sys.argv[0] = 'automix'; app()")


def piece(rng: np.random.Generator, level_db: float) -> np.ndarray:
    """30 s of a music-like stereo signal: pink bed, drum hits, a bass line; (samples, 2)."""
    n = int(PIECE_S * SAMPLE_RATE)
    f = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0)
    spectrum = rng.standard_normal((2, f.size)) + 1j * rng.standard_normal((2, f.size))
    bed = np.fft.irfft(spectrum / np.sqrt(f), n=n)
    bed[1] = 0.7 * bed[0] + 0.3 * bed[1]
    bed *= 0.1 / np.sqrt(np.mean(bed**2))
    hits = np.zeros(n)
    hits[:: SAMPLE_RATE // 2] = 1.0
    burst = rng.standard_normal(SAMPLE_RATE // 5) * np.exp(-np.arange(SAMPLE_RATE // 5)
                                                            / (0.03 * SAMPLE_RATE))
    hits = np.fft.irfft(np.fft.rfft(hits) * np.fft.rfft(burst, n), n)
    t = np.arange(n) / SAMPLE_RATE
    x = bed + 0.5 * hits + 0.2 * np.sin(2 * np.pi * 55 * t)
    return (10 ** (level_db / 20) * 0.5 * x / np.abs(x).max()).T.astype(np.float32)


def write_song(path: Path, minutes: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with sf.SoundFile(path, "w", SAMPLE_RATE, 2, subtype="PCM_24") as f:
        for i in range(round(minutes * 60 / PIECE_S)):
            f.write(piece(rng, level_db=-6.0 if i % 4 == 1 else 0.0))  # quieter verses
    return path


def run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process; exits when it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"{' '.join(cmd[-6:])} failed: {proc.stderr.read().decode()[-800:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[3.0, 60.0])
    ap.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="automix-memory-", dir=args.folder))
    rows = []
    try:
        for minutes in args.minutes:
            song = write_song(tmp / f"song_{minutes:g}min.wav", minutes)
            long = streaming.is_long(song)
            modes = [("streamed" if long else "whole array", [sys.executable, "-m", "automix"])]
            if not long:
                modes.append(("streamed (forced)", [sys.executable, "-c", FORCE_STREAMING]))
            for mode, prefix in modes:
                out = tmp / "master.wav"
                wall, rss = run(prefix + ["master", str(song), "-r", "pop", "-o", str(out),
                                          "--force"])
                result, _ = streaming.analyze_file(out, excerpt_s=10.0)
                rows.append((minutes, mode, wall, rss, result.integrated_lufs,
                             result.true_peak_dbtp))
            song.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nautomix master -r pop (-14 LUFS, -1 dBTP); stereo {SAMPLE_RATE} Hz 24-bit WAV; "
          f"goal: peak RSS <= {GOAL_MIB} MiB for 60 min")
    print("| minutes | path | wall s | x real time | peak RSS MiB | <= 2 GiB | output LUFS "
          "| output dBTP |")
    print("|---|---|---|---|---|---|---|---|")
    for minutes, mode, wall, rss, lufs, peak in rows:
        print(f"| {minutes:g} | {mode} | {wall:.1f} | {minutes * 60 / wall:.0f} | {rss:.0f} "
              f"| {'yes' if rss <= GOAL_MIB else 'NO'} | {lufs:.2f} | {peak:.2f} |")


if __name__ == "__main__":
    main()
