"""Style-transfer benchmark (DeepAFx-ST protocol) on held-out real songs.

For every song of the eval split (`automix.training.data.is_eval_song`: never seen in training),
segment A is degraded with random settings (EQ, gain, compression, width) rendered by
pedalboard; each system gets the degraded A and segment B of the same production (a
different time) as the reference, and its output is scored against the original A after
loudness-matching it to A.

Systems: identity (the degraded input), the DSP matcher (`automix.mastering.match.dsp_match`), the
network alone, the network plus refinement through the twin, and Matchering 2.0. One more row
is a ceiling, not a system: the exact inverse of the degradation's EQ and width (it knows the
settings; the compressor it cannot undo), i.e. the best any prediction of this chain can do.

Run::

    python benchmarks/style_transfer.py --data /work/data --segment-s 10 [--songs N] [--bands]

Lower is better for every metric; the table ends with each system's ratio to Matchering and
to the DSP matcher (below 1: better than that baseline).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from automix import analysis, loudness
from automix.effects import render
from automix.model import features, predict
from automix.params import (
    CompressorParams,
    EQParams,
    GainParams,
    HighpassParams,
    MasterChain,
    StereoWidthParams,
    ranges,
)
from automix.training import data

METRICS = ("logmel_db", "mrstft", "tonal_db", "tonal_side_db", "plr_err_db", "crest_err_db",
           "width_err", "seconds")


def degradation(rng: np.random.Generator, level_dbfs: float) -> tuple[MasterChain, float]:
    """Random settings to degrade a segment at RMS ``level_dbfs``: the chain and a gain in dB.

    EQ: every band, frequency log-uniform over its range, Q 0.5 to 2, gain N(0, 4 dB) clipped
    to ±10 dB; compressor half of the time (threshold 12 dB below to 8 dB above the RMS,
    ratio 1.5 to 6, attack 1 to 50 ms, release 30 to 500 ms); width 60 to 140 %; gain -12 to
    +6 dB; high-pass at its lowest (10 Hz).
    """
    eq = {}
    for name, r in ranges(EQParams).items():
        if name.endswith("_freq_hz"):
            eq[name] = float(r.denormalize(rng.uniform()))
        elif name.endswith("_q"):
            eq[name] = float(0.5 * 4.0 ** rng.uniform())
        else:
            eq[name] = float(np.clip(4.0 * rng.standard_normal(), -10, 10))
    comp = CompressorParams()
    if rng.uniform() < 0.5:
        comp = CompressorParams(threshold_db=float(level_dbfs + rng.uniform(-12, 8)),
                                ratio=float(1.5 * 4.0 ** rng.uniform()),
                                attack_ms=float(50.0 ** rng.uniform()),
                                release_ms=float(30 * (500 / 30) ** rng.uniform()))
    chain = MasterChain(highpass=HighpassParams(freq_hz=10.0), eq=EQParams(**eq),
                        compressor=comp,
                        width=StereoWidthParams(width_pct=float(rng.uniform(60, 140))))
    return chain, float(rng.uniform(-12, 6))


def inverse(chain: MasterChain) -> MasterChain:
    """The exact inverse of ``chain``'s EQ (RBJ sections of opposite gain at the same frequency
    and Q cancel) and width; no compressor (it has none)."""
    eq = {name: -value if name.endswith("_gain_db") else value
          for name, value in vars(chain.eq).items()}
    return MasterChain(eq=EQParams(**eq),
                       width=StereoWidthParams(width_pct=1e4 / chain.width.width_pct))


def segments(samples: np.ndarray, sample_rate: int,
             seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The loudest ``seconds`` of the first half (A) and of the second half (B)."""
    n = int(seconds * sample_rate)
    half = samples.shape[1] // 2
    a = predict.loud_excerpts(samples[:, :half], n, 1)[0]
    b = predict.loud_excerpts(samples[:, half:], n, 1)[0]
    return a, b


def match_loudness(x: np.ndarray, target_lufs: float, sample_rate: int) -> np.ndarray:
    return (x * 10 ** ((target_lufs - loudness.integrated_lufs(x, sample_rate)) / 20)).astype(
        np.float32)


def log_mel_distance_db(x: np.ndarray, y: np.ndarray, sample_rate: int) -> float:
    """Mean absolute difference of 64-band log-mel (L and R, -80 dB floor under the peak)."""
    lx = features.log_mel_db(torch.from_numpy(x)[None], sample_rate)
    ly = features.log_mel_db(torch.from_numpy(y)[None], sample_rate)
    floor = ly.max() - 80.0
    return float((lx.clamp_min(floor) - ly.clamp_min(floor)).abs().mean())


def scores(out: np.ndarray, a: np.ndarray, a_an: analysis.Analysis, sample_rate: int,
           stft: Callable) -> tuple[dict[str, float], np.ndarray]:
    """The metrics of ``out`` against A, and per third-octave band its mid tonal balance minus
    A's (dB), both after matching its loudness to A's."""
    out = match_loudness(out, a_an.integrated_lufs, sample_rate)
    o_an = analysis.analyze(out, sample_rate)
    with torch.no_grad():
        mr = float(stft(torch.from_numpy(out)[None], torch.from_numpy(a)[None]))
    bands = np.asarray(o_an.tonal_mid_db) - np.asarray(a_an.tonal_mid_db)
    return {
        "logmel_db": log_mel_distance_db(out, a, sample_rate),
        "mrstft": mr,
        "tonal_db": analysis.tonal_balance_error_db(o_an, a_an),
        "tonal_side_db": analysis.tonal_balance_error_db(o_an, a_an, side=True),
        "plr_err_db": abs(o_an.plr_db - a_an.plr_db),
        "crest_err_db": abs(o_an.crest_db - a_an.crest_db),
        "width_err": abs(o_an.width - a_an.width),
    }, bands


CEILING = "ceiling: exact EQ + width inverse"


def matchering(x: np.ndarray, reference: np.ndarray, sample_rate: int) -> np.ndarray:
    import matchering as mg

    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / name for name in ("target.wav", "reference.wav", "out.wav")]
        sf.write(paths[0], x.T, sample_rate, subtype="FLOAT")
        sf.write(paths[1], reference.T, sample_rate, subtype="FLOAT")
        mg.process(target=str(paths[0]), reference=str(paths[1]),
                   results=[mg.pcm24(str(paths[2]))])
        out, _ = sf.read(paths[2], dtype="float32", always_2d=True)
    return np.ascontiguousarray(out.T)


def dsp_system() -> Callable | None:
    """The lead's DSP matcher, or None when `automix.mastering.match.dsp_match` is missing."""
    try:
        from automix.audio import Audio
        from automix.mastering.match import dsp_match
        from automix.presets import Target
        from automix.settings import Reference
    except ImportError:
        return None

    def run(x: np.ndarray, b: np.ndarray, sample_rate: int) -> np.ndarray:
        ref_features = analysis.analyze(b, sample_rate).rounded()
        target = Target(name="reference", integrated_lufs=ref_features.integrated_lufs,
                        ceiling_dbtp=-1.0, description="benchmark")
        reference = Reference("B", "file", ref_features, target)
        chain = dsp_match(Audio(x, sample_rate), analysis.analyze(x, sample_rate), reference,
                          target)
        return render.master_chain(x, sample_rate, chain)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/work/data")
    parser.add_argument("--songs", type=int, default=None, help="at most this many (all)")
    parser.add_argument("--segment-s", type=float, default=10.0)
    parser.add_argument("--refine-steps", type=int, default=40)
    parser.add_argument("--refine-budget-s", type=float, default=15.0)
    parser.add_argument("--refine-anchor", type=float, default=20.0,
                        help="weight that keeps refinement near the network's settings")
    parser.add_argument("--refine-lr", type=float, default=0.02)
    parser.add_argument("--refine-tonal-only", action="store_true",
                        help="refine the EQ gains toward the tonal balance only")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-matchering", action="store_true")
    parser.add_argument("--json", default=None, help="write per-song scores here")
    parser.add_argument("--bands", action="store_true",
                        help="also print each system's RMS tonal error per third-octave band")
    args = parser.parse_args()
    torch.set_num_threads(2)
    import auraloss

    stft = auraloss.freq.MultiResolutionSTFTLoss()
    model = predict.load_model(args.weights)
    dsp = dsp_system()

    def network(x: np.ndarray, b: np.ndarray, sr: int) -> np.ndarray:
        ref = predict.file_features(b, sr, segment_s=model.segment_s)
        return render.master_chain(x, sr, predict.predict_master_chain(model, x, sr, ref))

    def network_refined(x: np.ndarray, b: np.ndarray, sr: int) -> np.ndarray:
        ref = predict.file_features(b, sr, segment_s=model.segment_s)
        init = predict.predict_master_chain(model, x, sr, ref)
        chain = predict.refine(model, x, sr, ref, init, steps=args.refine_steps,
                               time_budget_s=args.refine_budget_s,
                               anchor_weight=args.refine_anchor, lr=args.refine_lr,
                               tonal_only=args.refine_tonal_only)
        return render.master_chain(x, sr, chain)

    systems: dict[str, Callable | None] = {
        "identity": lambda x, b, sr: x,
        "dsp": dsp,
        "network": network,
        "network+refine": network_refined,
        "matchering": None if args.no_matchering else matchering,
    }
    files = data.split_files(args.data, eval_split=True)
    files = [f for f in files if sf.info(f).duration >= 2.5 * args.segment_s][:args.songs]
    rows: dict[str, list[dict[str, float]]] = {k: [] for k, v in systems.items() if v}
    rows[CEILING] = []
    band_errors: dict[str, list[np.ndarray]] = {k: [] for k in rows}
    for k, path in enumerate(files):
        samples, sr = sf.read(path, dtype="float32", always_2d=True)
        samples = np.ascontiguousarray(samples.T[:2])
        if samples.shape[0] == 1:
            samples = np.repeat(samples, 2, axis=0)
        a, b = segments(samples, sr, args.segment_s)
        rng = np.random.default_rng([args.seed, k])
        chain, gain_db = degradation(rng, loudness.amp_to_db(float(np.sqrt(np.mean(a**2)))))
        x = render.gain(render.master_chain(a, sr, chain), sr, GainParams(gain_db=gain_db))
        a_an = analysis.analyze(a, sr)
        ceiling = inverse(chain)
        for name in rows:
            t0 = time.perf_counter()
            out = (render.master_chain(x, sr, ceiling) if name == CEILING
                   else systems[name](x, b, sr))
            seconds = time.perf_counter() - t0
            metrics, bands = scores(out, a, a_an, sr, stft)
            rows[name].append({**metrics, "seconds": seconds})
            band_errors[name].append(bands)
        print(f"{k + 1}/{len(files)} {path.stem}: " + ", ".join(
            f"{n} {r[-1]['logmel_db']:.2f}" for n, r in rows.items()), flush=True)
    print_table(rows, len(files), args.segment_s)
    if args.bands:
        print_bands(band_errors)
    if args.json:
        Path(args.json).write_text(json.dumps({"songs": [f.stem for f in files], "rows": rows},
                                              indent=1))


def print_table(rows: dict[str, list[dict[str, float]]], songs: int, segment_s: float) -> None:
    means = {name: {m: float(np.nanmean([r[m] for r in rs])) for m in METRICS}
             for name, rs in rows.items()}
    print(f"\nstyle transfer, {songs} held-out songs, {segment_s:g}-s segments "
          "(mean; lower is better)")
    print("| system | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    for name, m in means.items():
        print(f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in METRICS) + " |")
    for base in ("matchering", "dsp"):
        if base not in means:
            print(f"\nratios vs {base}: n/a")
            continue
        print(f"\nratio vs {base} (system / {base})")
        print("| system | " + " | ".join(METRICS) + " |")
        print("|---" * (len(METRICS) + 1) + "|")
        for name, m in means.items():
            cells = [m[k] / means[base][k] if means[base][k] else math.nan for k in METRICS]
            print(f"| {name} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


def print_bands(band_errors: dict[str, list[np.ndarray]]) -> None:
    """RMS over songs of each band's tonal error: where in frequency each system misses."""
    centres = analysis.BAND_CENTERS_HZ
    print("\nRMS tonal error per third-octave band (dB, over songs)")
    print("| system | " + " | ".join(f"{c:g}" for c in centres) + " |")
    print("|---" * (len(centres) + 1) + "|")
    for name, errors in band_errors.items():
        rms = np.sqrt(np.nanmean(np.square(errors), axis=0))
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in rms) + " |")


if __name__ == "__main__":
    main()
