"""How closely the torch twin reproduces the pedalboard renderer, and how fast it trains.

    AUTOMIX_DATA=/work/data python benchmarks/parity.py [--settings 20] [--excerpts 4]

For every effect, settings are drawn uniformly over each parameter's whole range (in the
normalised 0..1 space of `automix.params`) and both renderers process the same audio: 3 s
excerpts of real mixes from ``$AUTOMIX_DATA/mixes`` (seeded noise with a note when absent).
Metrics and their bounds (from the issue):

- linear filters (high-pass, EQ): max |dB| difference between the twin's and pedalboard's
  magnitude responses over 20 Hz - 20 kHz (bound 0.05 dB), measured with white noise (H1
  cross-spectral estimate) and with a 65536-sample impulse; plus the worst sample error on
  music relative to the peak. (*) The impulse measurement includes pedalboard's own float32
  round-off: its filters are bit-exact float32 TDF-II biquads with the very coefficients the
  twin uses (checked by simulation), which deviate from their exact response by up to
  ~0.06 dB near low, narrow, deep cuts; the noise measurement averages that out.
- compressor: short-term level, the RMS in 50 ms windows (hop 25 ms) in dB, of both
  outputs; the 95th percentile of |difference| over windows above -80 dBFS (bound 0.5 dB).
- reverb return: SNR of the twin against pedalboard, 10 log10(sum ref^2 / sum err^2)
  (bound 40 dB).
- chains: log-mel distance, the mean over channels, frames and bands of
  |log10(mel_twin + 1e-8) - log10(mel_pb + 1e-8)| with a 128-band power mel spectrogram
  (librosa, n_fft 2048, hop 512) (bound 0.05).
- gain, pan, width: worst sample error.

Timing: one forward + backward (gradient to the 0..1 settings) of the whole master chain,
and of a stem chain feeding the reverb, for a batch of 16 stereo 3 s clips at 44.1 kHz,
with 1 and 2 threads (torch and numba); the median of 5 steps after a warm-up (bound 1 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import librosa
import numba
import numpy as np
import scipy.signal
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _songs import DATA_DIR, real_songs

from automix.effects import render, twin
from automix.params import (
    CompressorParams,
    EQParams,
    GainParams,
    HighpassParams,
    MasterChain,
    PanParams,
    ReverbParams,
    StemChain,
    StereoWidthParams,
    flat_ranges,
    from_unit_vector,
)

SAMPLE_RATE = 44100
SECONDS = 3.0
TIMED_STEPS = 5
STEP_BOUND_S = 1.0
IMPULSE_SAMPLES = 1 << 16
BAND_HZ = (20.0, 20000.0)
EPS_MEL = 1e-8


def excerpts(count: int) -> tuple[list[np.ndarray], str]:
    """``count`` 3 s stereo excerpts from the middle of real mixes, or seeded noise."""
    songs = real_songs(min_seconds=4 * SECONDS, count=count * 7)[::7]
    if not songs:
        rng = np.random.default_rng(0)
        n = int(SECONDS * SAMPLE_RATE)
        return ([(0.1 * rng.standard_normal((2, n))).astype(np.float32) for _ in range(count)],
                f"seeded white noise (no mixes under {DATA_DIR})")
    out = []
    for path in songs:
        info = sf.info(path)
        start = int(info.frames // 2)
        x, sr = sf.read(path, start=start, frames=int(SECONDS * info.samplerate),
                        dtype="float32", always_2d=True)
        if sr != SAMPLE_RATE:
            x = librosa.resample(x.T, orig_sr=sr, target_sr=SAMPLE_RATE).T
        out.append(np.ascontiguousarray(x.T[:2]))
    return out, f"{len(out)} real mixes: " + ", ".join(p.stem for p in songs)


def draw(cls: type, rng: np.random.Generator) -> object:
    """Random settings, uniform over each parameter's whole range (0..1 space)."""
    return from_unit_vector(cls, rng.uniform(size=len(flat_ranges(cls))))


def run_twin(fn: Callable, x: np.ndarray, sample_rate: int, p: object) -> np.ndarray:
    with torch.no_grad():
        return fn(torch.from_numpy(x)[None], sample_rate, p)[0].numpy()


# --- metrics -----------------------------------------------------------------------------


def response_error_db(render_fn: Callable, twin_fn: Callable, p: object) -> float:
    """Max |dB| between the two magnitude responses measured with one impulse."""
    impulse = np.zeros((1, IMPULSE_SAMPLES), np.float32)
    impulse[0, 0] = 1.0
    freqs = np.fft.rfftfreq(IMPULSE_SAMPLES, 1 / SAMPLE_RATE)
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    ref = np.abs(np.fft.rfft(render_fn(impulse, SAMPLE_RATE, p)[0].astype(np.float64)))
    got = np.abs(np.fft.rfft(run_twin(twin_fn, impulse, SAMPLE_RATE, p)[0].astype(np.float64)))
    return float(np.abs(20 * np.log10(got[band] / ref[band])).max())


def response_error_noise_db(render_fn: Callable, twin_fn: Callable, p: object) -> float:
    """Max |dB| between the two transfer functions measured with 12 s of white noise.

    H1 = cross-spectrum(input, output) / input power (Welch, 32768-point segments, 1.3 Hz
    resolution); the same estimator on both outputs, so its bias cancels, while
    pedalboard's float32 round-off noise (uncorrelated with the input) averages out.
    """
    noise = (0.1 * np.random.default_rng(5).standard_normal((1, 1 << 19))).astype(np.float32)
    freqs, ref = scipy.signal.csd(noise[0], render_fn(noise, SAMPLE_RATE, p)[0], fs=SAMPLE_RATE,
                                  nperseg=1 << 15)
    _, got = scipy.signal.csd(noise[0], run_twin(twin_fn, noise, SAMPLE_RATE, p)[0],
                              fs=SAMPLE_RATE, nperseg=1 << 15)
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    return float(np.abs(20 * np.log10(np.abs(got[band]) / np.abs(ref[band]))).max())


def short_term_db(x: np.ndarray) -> np.ndarray:
    window, hop = int(0.05 * SAMPLE_RATE), int(0.025 * SAMPLE_RATE)
    frames = np.lib.stride_tricks.sliding_window_view(x, window, axis=-1)[..., ::hop, :]
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=-1) + 1e-20)


def short_term_p95_db(ref: np.ndarray, got: np.ndarray) -> float:
    level_ref, level_got = short_term_db(ref), short_term_db(got)
    loud = level_ref > -80.0
    return float(np.percentile(np.abs(level_got - level_ref)[loud], 95)) if loud.any() else 0.0


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2)
                               / max(np.sum((got - ref).astype(np.float64) ** 2), 1e-30)))


def log_mel_distance(ref: np.ndarray, got: np.ndarray) -> float:
    def log_mel(x: np.ndarray) -> np.ndarray:
        mel = librosa.feature.melspectrogram(y=x, sr=SAMPLE_RATE, n_fft=2048, hop_length=512,
                                             n_mels=128, power=2.0)
        return np.log10(mel + EPS_MEL)
    return float(np.mean(np.abs(log_mel(got) - log_mel(ref))))


def relative_error(ref: np.ndarray, got: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12))


# --- the table ---------------------------------------------------------------------------


def parity_rows(clips: list[np.ndarray], settings: int, rng: np.random.Generator) -> list[tuple]:
    """(effect, metric, median, worst, bound, ok) per effect."""
    rows = []

    def add(effect: str, metric: str, values: list[float], bound: float, higher: bool) -> None:
        worst = min(values) if higher else max(values)
        ok = worst >= bound if higher else worst <= bound
        rows.append((effect, metric, float(np.median(values)), worst,
                     f"{'>=' if higher else '<='} {bound:g}", "ok" if ok else "FAIL"))

    def on_music(render_fn: Callable, twin_fn: Callable, cls: type,
                 metric: Callable) -> list[float]:
        values = []
        for i in range(settings):
            p = draw(cls, rng)
            x = clips[i % len(clips)]
            values.append(metric(render_fn(x, SAMPLE_RATE, p),
                                 run_twin(twin_fn, x, SAMPLE_RATE, p)))
        return values

    for name, cls, render_fn, twin_fn in (
        ("highpass", HighpassParams, render.highpass, twin.highpass),
        ("eq", EQParams, render.eq, twin.eq),
    ):
        drawn = [draw(cls, rng) for _ in range(settings)]
        add(name, "max |dB| response error, noise H1",
            [response_error_noise_db(render_fn, twin_fn, p) for p in drawn], 0.05, higher=False)
        add(name, "max |dB| response error, impulse *",
            [response_error_db(render_fn, twin_fn, p) for p in drawn], 0.05, higher=False)
        add(name, "max |error| / peak on music",
            on_music(render_fn, twin_fn, cls, relative_error), 1e-3, higher=False)

    add("compressor", "p95 |dB| 50 ms RMS level error",
        on_music(render.compressor, twin.compressor, CompressorParams, short_term_p95_db),
        0.5, higher=False)
    add("compressor", "max |error| / peak",
        on_music(render.compressor, twin.compressor, CompressorParams, relative_error),
        1e-3, higher=False)
    add("reverb (return)", "SNR dB",
        on_music(render.reverb_return, twin.reverb_return, ReverbParams, snr_db),
        40.0, higher=True)
    add("reverb (dry+wet)", "SNR dB",
        on_music(render.reverb, twin.reverb, ReverbParams, snr_db), 40.0, higher=True)
    for name, cls, render_fn, twin_fn in (
        ("gain", GainParams, render.gain, twin.gain),
        ("pan", PanParams, render.pan, twin.pan),
        ("width", StereoWidthParams, render.stereo_width, twin.stereo_width),
    ):
        add(name, "max |error| / peak", on_music(render_fn, twin_fn, cls, relative_error),
            1e-5, higher=False)

    add("master chain", "log-mel distance",
        on_music(render.master_chain, twin.master_chain, MasterChain, log_mel_distance),
        0.05, higher=False)
    add("master chain", "max |error| / peak",
        on_music(render.master_chain, twin.master_chain, MasterChain, relative_error),
        1e-3, higher=False)

    def stem_then_reverb(backend: object) -> Callable:
        def fn(x: object, sr: int, p: tuple) -> object:
            dry, send = backend.stem_chain(x, sr, p[0])
            return dry + backend.reverb_return(send, sr, p[1])
        return fn

    values = []
    for i in range(settings):
        p = (draw(StemChain, rng), draw(ReverbParams, rng))
        x = clips[i % len(clips)]
        values.append(log_mel_distance(stem_then_reverb(render)(x, SAMPLE_RATE, p),
                                       run_twin(stem_then_reverb(twin), x, SAMPLE_RATE, p)))
    add("stem chain + reverb", "log-mel distance", values, 0.05, higher=False)
    return rows


def step_seconds(threads: int, chain: str, batch: int = 16) -> tuple[float, float]:
    """Median wall and CPU seconds of forward + backward through a chain, ``batch`` clips.

    The CPU time (all threads of this process) tells what the step costs when other
    processes share the cores.
    """
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(batch, 2, int(SECONDS * SAMPLE_RATE), generator=generator)
    n_master, n_stem = len(flat_ranges(MasterChain)), len(flat_ranges(StemChain))
    n_reverb = len(flat_ranges(ReverbParams))

    def step() -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        if chain == "master":
            u = torch.rand(batch, n_master, generator=generator).requires_grad_(True)
            y = twin.master_chain(x, SAMPLE_RATE, from_unit_vector(MasterChain, u))
        else:
            u = torch.rand(batch, n_stem + n_reverb, generator=generator).requires_grad_(True)
            dry, send = twin.stem_chain(x, SAMPLE_RATE,
                                        from_unit_vector(StemChain, u[:, :n_stem]))
            y = dry + twin.reverb_return(send, SAMPLE_RATE,
                                         from_unit_vector(ReverbParams, u[:, n_stem:]))
        y.square().mean().backward()
        return time.perf_counter() - start, time.process_time() - cpu

    step()
    wall, cpu = np.median([step() for _ in range(TIMED_STEPS)], axis=0)
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=int, default=20, help="random settings per effect")
    parser.add_argument("--excerpts", type=int, default=4, help="music excerpts")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    numba.set_num_threads(1)

    clips, source = excerpts(args.excerpts)
    print(f"audio: {source}; {args.settings} random settings per effect, "
          f"{SECONDS:g} s at {SAMPLE_RATE} Hz\n")
    rows = parity_rows(clips, args.settings, np.random.default_rng(0))
    print(f"{'effect':20s} {'metric':38s} {'median':>9s} {'worst':>9s}  bound")
    for effect, metric, median, worst, bound, ok in rows:
        print(f"{effect:20s} {metric:38s} {median:9.3g} {worst:9.3g}  {bound:8s} {ok}")

    if not args.no_timing:
        print(f"\nforward + backward, batch 16 x 2 ch x {SECONDS:g} s at {SAMPLE_RATE} Hz, median "
              f"of {TIMED_STEPS} steps (load average before: {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores)")
        for chain, name in (("master", "master chain"), ("stem+reverb", "stem chain + reverb")):
            for threads in (1, 2):
                wall, cpu = step_seconds(threads, chain)
                print(f"  {name:20s} {threads} thread(s): {wall:5.2f} s/step wall, {cpu:5.2f} s "
                      f"CPU  <= {STEP_BOUND_S:g} s {'ok' if wall <= STEP_BOUND_S else 'FAIL'}")


if __name__ == "__main__":
    main()
