"""Style-transfer benchmark on the held-out packages: same-song, cross-song and preset protocols.

The truth is the composer's own master; the input is that master degraded by random EQ
(±6 dB), gain and side gain; each system moves the input toward a reference, and its output
is scored against the truth (lower is better).

Songs: every production of the evaluation packages (``split == "eval"`` in the data folder's
``manifest.csv``; while the folder is still being built, ``mixes/*.flac`` and
`automix.training.recipe.read_sources` stand in for it) at least 2.5 segments long, sorted by
id, at most ``--songs`` per package. Per song, A is the loudest ``--segment-s`` seconds of
the first half; the input is A through 5 EQ bands of `params.EQParams`' layout (each
frequency log-uniform over its band's range, Q 0.5 to 2, gain uniform ±6 dB), a side gain
uniform ±6 dB (mid/side width 100·10^(g/20) %) and a gain uniform -12 to +6 dB; no
compressor. The degradation is seeded by ``--seed`` and the song's id, so every system and
protocol sees the same input.

Protocols (the reference each system gets):

* same-song: B, the loudest segment of the second half of the same song;
* cross-song: the same kind of segment of another song of the same package (the next one by
  id among the package's eligible songs, wrapping);
* preset: the package's genre preset (``genre`` column; ``presets/genres/<genre>.json``).

B is written to a temporary WAV and every protocol's reference is made by
`automix.references.resolve`, exactly as the CLI makes it: a file's analysis (DSP matcher) and
audio (network), or for a preset its features (DSP matcher) and the mean of its source files'
feature vectors (network). Matchering gets B, or the preset's first source file.

Systems: identity (the degraded input); the DSP matcher and the network (``--refine``: also
the network plus refinement through the twin, ``--refine-steps``), each the whole master
pipeline (`automix.mastering.pipeline.master`: chain, loudness to the reference's target,
limiter), i.e. what a user gets; Matchering 2.0 (``--no-matchering`` to skip it, skipped with
a note when not installed); and the ceiling, not a system: the exact inverse of the EQ and
width (no gain), the best any chain can do.

Metrics (`METRICS`), after matching each output's loudness to A's: log-mel distance (dB),
multi-resolution STFT loss, mid and side tonal-balance error (dB), |PLR| and |crest| error
(dB), |width| error; plus ``loudness_err_lu``, |LUFS(out) - LUFS(A)| before the matching
(informative only: the pipeline aims at the reference's target, the preset's delivery target
for the preset protocol, not at A), and ``seconds``, each system's wall time.

Output: one table per protocol (mean over songs) with its wall time; a summary of log-mel and
tonal error as ratios to identity per protocol; PASS/FAIL for the goals of issue #15 (the
default, i.e. the network: log-mel and tonal ≤ 0.8 × identity on cross-song and on preset;
on same-song no worse than the DSP matcher on any metric but ``seconds`` and
``loudness_err_lu``). ``--json FILE`` writes every per-song row; ``--bands`` prints each
system's RMS tonal error per third-octave band.

``--learning-curve W25 W50 W100`` scores only identity and the network with each weight file
on the cross-song protocol and prints fraction, log-mel, tonal and their ratios to identity
(the fractions are ``--fractions``, default 0.25 0.5 1).

``--weights PATH`` chooses the network's weights: the benchmark points
`automix.model.predict.DEFAULT_WEIGHTS` at it (what `network_match` loads).

Run::

    python benchmarks/style_transfer.py --data /work/data [--songs 2] [--no-matchering]
        [--refine] [--weights W] [--json rows.json] [--bands]
    python benchmarks/style_transfer.py --learning-curve W25 W50 W100 --songs 4
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from automix import analysis, loudness, references
from automix.audio import Audio
from automix.effects import render
from automix.mastering import pipeline
from automix.model import features, predict
from automix.params import (
    EQParams,
    GainParams,
    MasterChain,
    StereoWidthParams,
    ranges,
)
from automix.presets import Target
from automix.training import recipe

METRICS = ("logmel_db", "mrstft", "tonal_db", "tonal_side_db", "plr_err_db", "crest_err_db",
           "width_err", "loudness_err_lu", "seconds")
PROTOCOLS = ("same-song", "cross-song", "preset")
CEILING = "ceiling"
EQ_DB = 6.0  # degradation: EQ gains uniform within ±this
SIDE_DB = 6.0  # side gain uniform within ±this
GAIN_DB = (-12.0, 6.0)
GOAL_RATIO = 0.8  # issue #15: log-mel and tonal at most this times identity's
NOT_COMPARED = ("seconds", "loudness_err_lu")  # left out of "no worse than DSP"


# --- songs --------------------------------------------------------------------------------


@dataclass
class Song:
    id: str
    package: str
    genre: str
    path: Path


def eval_songs(data_dir: Path, min_seconds: float, per_package: int | None,
               packages: list[str] | None = None) -> tuple[list[Song], list[Song]]:
    """The evaluation packages' songs (or ``packages``') of at least ``min_seconds``, sorted
    by id: at most ``per_package`` of each (all when None), and all of them (cross-song
    partners)."""
    def wanted(package: str, split: str) -> bool:
        return package in packages if packages else split == "eval"

    rows = [r for r in recipe.read_manifest(data_dir) if wanted(r["package"], r["split"])]
    if not rows:  # the folder is still being built: the file names and sources.tsv
        sources = {s.package: s for s in recipe.read_sources() if wanted(s.package, s.split)}
        for path in sorted((data_dir / "mixes").glob("*.flac")):
            package = path.stem.split("__")[0]
            if package in sources:
                rows.append({"id": path.stem, "package": package,
                             "genre": sources[package].genre})
    songs = []
    for r in sorted(rows, key=lambda r: r["id"]):
        path = data_dir / "mixes" / f"{r['id']}.flac"
        if path.exists() and sf.info(path).duration >= min_seconds:
            songs.append(Song(r["id"], r["package"], r["genre"], path))
    if per_package is None:
        return songs, songs
    kept: dict[str, list[Song]] = {}
    for s in songs:
        kept.setdefault(s.package, []).append(s)
    return [s for group in kept.values() for s in group[:per_package]], songs


def cross_partner(song: Song, eligible: list[Song]) -> Song | None:
    """The next song of the same package by id (wrapping), or None when it has no other."""
    group = [s for s in eligible if s.package == song.package]
    if len(group) < 2:
        return None
    return group[(group.index(next(s for s in group if s.id == song.id)) + 1) % len(group)]


def read_stereo(path: Path) -> tuple[np.ndarray, int]:
    samples, sr = sf.read(path, dtype="float32", always_2d=True)
    samples = np.ascontiguousarray(samples.T[:2])
    if samples.shape[0] == 1:
        samples = np.repeat(samples, 2, axis=0)
    return samples, sr


def segments(samples: np.ndarray, sample_rate: int,
             seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The loudest ``seconds`` of the first half (A) and of the second half (B)."""
    n = int(seconds * sample_rate)
    half = samples.shape[1] // 2
    a = predict.loud_excerpts(samples[:, :half], n, 1)[0]
    b = predict.loud_excerpts(samples[:, half:], n, 1)[0]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


# --- degradation --------------------------------------------------------------------------


def degradation(rng: np.random.Generator) -> tuple[MasterChain, float]:
    """Random EQ (5 bands, frequency log-uniform over each range, Q 0.5-2, gain ±6 dB) and
    side gain (±6 dB) as a chain without compressor, and a gain in dB (-12 to +6)."""
    eq = {}
    for name, r in ranges(EQParams).items():
        if name.endswith("_freq_hz"):
            eq[name] = float(r.denormalize(rng.uniform()))  # the frequency ranges are "log"
        elif name.endswith("_q"):
            eq[name] = float(0.5 * 4.0 ** rng.uniform())
        else:
            eq[name] = float(rng.uniform(-EQ_DB, EQ_DB))
    side_db = float(rng.uniform(-SIDE_DB, SIDE_DB))
    chain = MasterChain(eq=EQParams(**eq),
                        width=StereoWidthParams(width_pct=100.0 * 10 ** (side_db / 20)))
    return chain, float(rng.uniform(*GAIN_DB))


def inverse(chain: MasterChain) -> MasterChain:
    """The exact inverse of ``chain``'s EQ (RBJ sections of opposite gain at the same frequency
    and Q cancel) and width; no gain."""
    eq = {name: -value if name.endswith("_gain_db") else value
          for name, value in vars(chain.eq).items()}
    return MasterChain(eq=EQParams(**eq),
                       width=StereoWidthParams(width_pct=1e4 / chain.width.width_pct))


def eq_and_width(samples: np.ndarray, sample_rate: int, chain: MasterChain) -> np.ndarray:
    """``chain``'s EQ and width only: the degradation and the ceiling have no high-pass (even
    at 10 Hz it moves the peaks of a song with subsonic content by ~0.5 dB of PLR)."""
    return render.stereo_width(render.eq(samples, sample_rate, chain.eq), sample_rate,
                               chain.width)


def song_seed(seed: int, song_id: str) -> list[int]:
    return [seed, *song_id.encode()]


# --- scores -------------------------------------------------------------------------------


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
    A's (dB), both after matching its loudness to A's (``loudness_err_lu``: before)."""
    n = min(out.shape[1], a.shape[1])
    out, a = np.ascontiguousarray(out[:, :n], dtype=np.float32), a[:, :n]
    loudness_err = abs(loudness.integrated_lufs(out, sample_rate) - a_an.integrated_lufs)
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
        "loudness_err_lu": float(loudness_err),
    }, bands


# --- systems ------------------------------------------------------------------------------


@dataclass
class Case:
    """One song under one protocol: the degraded input and the reference, as each system
    takes it."""

    x: np.ndarray
    sample_rate: int
    reference: references.Reference  # from references.resolve, as the CLI makes it
    target: Target
    reference_path: Path  # the file Matchering gets
    ceiling: MasterChain


def set_weights(path: str | Path) -> None:
    """Point the network's default weights (what `network_match` loads) at ``path``."""
    predict.DEFAULT_WEIGHTS = Path(path)
    clear = getattr(predict.load_model, "cache_clear", None)
    if clear:
        clear()


def pipeline_system(method: str, refine_steps: int = 0, refine_seconds: float = 8.0,
                    weights: str | Path | None = None) -> Callable[[Case], np.ndarray]:
    def run(case: Case) -> np.ndarray:
        if weights is not None:
            set_weights(weights)
        result = pipeline.master(Audio(case.x, case.sample_rate), case.reference, case.target,
                                 method=method, refine_steps=refine_steps,
                                 refine_seconds=refine_seconds)
        return result.audio.samples

    return run


def matchering(case: Case) -> np.ndarray:
    import matchering as mg

    with tempfile.TemporaryDirectory() as tmp:
        target, out = Path(tmp) / "target.wav", Path(tmp) / "out.wav"
        sf.write(target, case.x.T, case.sample_rate, subtype="FLOAT")
        mg.log(lambda *_: None)
        mg.process(target=str(target), reference=str(case.reference_path),
                   results=[mg.pcm24(str(out))])
        y, _ = sf.read(out, dtype="float32", always_2d=True)
    return np.ascontiguousarray(y.T)


def systems_for(args: argparse.Namespace) -> dict[str, Callable[[Case], np.ndarray]]:
    systems: dict[str, Callable[[Case], np.ndarray]] = {
        "identity": lambda case: case.x,
        "dsp": pipeline_system("dsp"),
        "network": pipeline_system("network"),
    }
    if args.refine:
        systems["network+refine"] = pipeline_system("network", args.refine_steps,
                                                    args.refine_seconds)
    if not args.no_matchering:
        if importlib.util.find_spec("matchering") is None:
            print("note: Matchering skipped (not installed; pip install matchering==2.0.6)")
        else:
            systems["matchering"] = matchering
    systems[CEILING] = lambda case: eq_and_width(case.x, case.sample_rate, case.ceiling)
    return systems


# --- the run ------------------------------------------------------------------------------


def run(args: argparse.Namespace, systems: dict[str, Callable[[Case], np.ndarray]],
        protocols: tuple[str, ...]) -> tuple[list[dict], dict[str, float], dict]:
    """Per-song rows ({protocol, song, system, metrics}), each protocol's wall time, and the
    band errors {protocol: {system: [bands]}}."""
    import auraloss

    stft = auraloss.freq.MultiResolutionSTFTLoss()
    songs, eligible = eval_songs(Path(args.data), 2.5 * args.segment_s, args.songs,
                                 args.packages)
    print(f"{len(songs)} songs: " + ", ".join(
        f"{p} {sum(s.package == p for s in songs)}" for p in sorted({s.package for s in songs})),
        flush=True)
    rows: list[dict] = []
    wall = dict.fromkeys(protocols, 0.0)
    bands: dict = {p: {name: [] for name in systems} for p in protocols}
    second_halves: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, song in enumerate(songs):
            samples, sr = read_stereo(song.path)
            a, b = segments(samples, sr, args.segment_s)
            second_halves[song.id] = b
            chain, gain_db = degradation(np.random.default_rng(song_seed(args.seed, song.id)))
            x = render.gain(eq_and_width(a, sr, chain), sr, GainParams(gain_db=gain_db))
            a_an = analysis.analyze(a, sr)
            for protocol in protocols:
                t0 = time.perf_counter()
                if protocol == "preset":
                    reference, target = references.resolve(song.genre, None)
                    ref_path = reference.sources[0]
                else:
                    if protocol == "same-song":
                        ref_b = b
                    else:
                        partner = cross_partner(song, eligible)
                        if partner is None:
                            print(f"  {song.id}: no other song in {song.package}; "
                                  "no cross-song row")
                            continue
                        if partner.id not in second_halves:
                            p_samples, p_sr = read_stereo(partner.path)
                            assert p_sr == sr, (partner.path, p_sr, sr)
                            second_halves[partner.id] = segments(p_samples, sr,
                                                                 args.segment_s)[1]
                        ref_b = second_halves[partner.id]
                    ref_path = Path(tmp) / f"{k}-{protocol}.wav"
                    sf.write(ref_path, ref_b.T, sr, subtype="FLOAT")
                    reference, target = references.resolve(str(ref_path), None)
                case = Case(x, sr, reference, target, Path(ref_path), inverse(chain))
                for name, system in systems.items():
                    t1 = time.perf_counter()
                    out = system(case)
                    seconds = time.perf_counter() - t1
                    metrics, band = scores(out, a, a_an, sr, stft)
                    rows.append({"protocol": protocol, "song": song.id, "system": name,
                                 **metrics, "seconds": seconds})
                    bands[protocol][name].append(band)
                wall[protocol] += time.perf_counter() - t0
                print(f"{k + 1}/{len(songs)} {song.id} {protocol}: " + ", ".join(
                    f"{r['system']} {r['logmel_db']:.2f}" for r in rows
                    if r["song"] == song.id and r["protocol"] == protocol), flush=True)
    return rows, wall, bands


def means(rows: list[dict], protocol: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["system"] for r in rows if r["protocol"] == protocol):
        rs = [r for r in rows if r["protocol"] == protocol and r["system"] == name]
        out[name] = {m: float(np.nanmean([r[m] for r in rs])) for m in METRICS}
        out[name]["songs"] = len(rs)
    return out


def print_table(protocol: str, m: dict[str, dict[str, float]], wall_s: float,
                segment_s: float) -> None:
    songs = int(next(iter(m.values()))["songs"]) if m else 0
    print(f"\n{protocol}: {songs} songs, {segment_s:g}-s segments, {wall_s:.0f} s wall "
          "(mean; lower is better)")
    print("| system | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    for name, v in m.items():
        print(f"| {name} | " + " | ".join(f"{v[k]:.3f}" for k in METRICS) + " |")


def ratio(m: dict[str, dict[str, float]], name: str, metric: str, base: str = "identity"
          ) -> float:
    if name not in m or base not in m or not m[base][metric]:
        return math.nan
    return m[name][metric] / m[base][metric]


def print_summary(all_means: dict[str, dict[str, dict[str, float]]]) -> bool:
    """Ratios to identity (log-mel, tonal) per protocol and the goals' PASS/FAIL."""
    names = list(dict.fromkeys(n for m in all_means.values() for n in m))
    print("\nratio to identity (system / identity; below 1 is better)")
    cols = [f"{p} {k}" for p in all_means for k in ("logmel", "tonal")]
    print("| system | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name in names:
        cells = [ratio(m, name, metric) for m in all_means.values()
                 for metric in ("logmel_db", "tonal_db")]
        print(f"| {name} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    print("\ngoals (issue #15; the default is the network)")
    ok = True
    for protocol in ("cross-song", "preset"):
        if protocol not in all_means:
            continue
        for metric in ("logmel_db", "tonal_db"):
            r = ratio(all_means[protocol], "network", metric)
            passed = r <= GOAL_RATIO
            ok &= passed
            print(f"{'PASS' if passed else 'FAIL'}  {protocol} {metric}: network "
                  f"{r:.2f} x identity (goal <= {GOAL_RATIO})")
    m = all_means.get("same-song", {})
    if "network" in m and "dsp" in m:
        worse = [k for k in METRICS if k not in NOT_COMPARED
                 and m["network"][k] > m["dsp"][k]]
        ok &= not worse
        print(f"{'FAIL' if worse else 'PASS'}  same-song: network no worse than dsp on any "
              f"metric" + (f" (worse: {', '.join(worse)})" if worse else ""))
    return ok


def print_bands(bands: dict) -> None:
    """RMS over songs of each band's tonal error: where in frequency each system misses."""
    centres = analysis.BAND_CENTERS_HZ
    for protocol, by_system in bands.items():
        print(f"\n{protocol}: RMS tonal error per third-octave band (dB, over songs)")
        print("| system | " + " | ".join(f"{c:g}" for c in centres) + " |")
        print("|---" * (len(centres) + 1) + "|")
        for name, errors in by_system.items():
            if errors:
                rms = np.sqrt(np.nanmean(np.square(errors), axis=0))
                print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in rms) + " |")


def learning_curve(args: argparse.Namespace) -> None:
    weights = args.learning_curve
    fractions = args.fractions or [0.25, 0.5, 1.0][:len(weights)]
    if len(fractions) != len(weights):
        raise SystemExit("--fractions needs one value per weight file")
    if len(set(fractions)) != len(fractions):
        raise SystemExit("--fractions must differ")
    systems: dict[str, Callable[[Case], np.ndarray]] = {"identity": lambda case: case.x}
    for fraction, w in zip(fractions, weights, strict=True):
        systems[f"network@{fraction:g}"] = pipeline_system("network", weights=w)
    t0 = time.perf_counter()
    rows, wall, _ = run(args, systems, ("cross-song",))
    m = means(rows, "cross-song")
    print(f"\nlearning curve: network on cross-song, {time.perf_counter() - t0:.0f} s wall")
    print("| fraction | weights | logmel_db | tonal_db | logmel / identity | tonal / identity |")
    print("|---|---|---|---|---|---|")
    print(f"| - | identity | {m['identity']['logmel_db']:.3f} | "
          f"{m['identity']['tonal_db']:.3f} | 1.00 | 1.00 |")
    for fraction, w in zip(fractions, weights, strict=True):
        name = f"network@{fraction:g}"
        print(f"| {fraction:g} | {w} | {m[name]['logmel_db']:.3f} | {m[name]['tonal_db']:.3f} | "
              f"{ratio(m, name, 'logmel_db'):.2f} | {ratio(m, name, 'tonal_db'):.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get(
        "AUTOMIX_DATA", str(Path.home() / ".cache" / "automix-data")))
    parser.add_argument("--songs", type=int, default=None,
                        help="at most this many songs per eval package (all)")
    parser.add_argument("--segment-s", type=float, default=10.0)
    parser.add_argument("--packages", nargs="+", default=None,
                        help="score these packages instead of the eval split (development)")
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    parser.add_argument("--refine", action="store_true",
                        help="also score the network plus refinement through the twin")
    parser.add_argument("--refine-steps", type=int, default=40)
    parser.add_argument("--refine-seconds", type=float, default=15.0)
    parser.add_argument("--weights", default=None, help="the network's weights (packaged)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-matchering", action="store_true")
    parser.add_argument("--json", default=None, help="write per-song rows here")
    parser.add_argument("--bands", action="store_true",
                        help="also print each system's RMS tonal error per third-octave band")
    parser.add_argument("--learning-curve", nargs="+", metavar="WEIGHTS", default=None,
                        help="score the network with each weight file on cross-song only")
    parser.add_argument("--fractions", nargs="+", type=float, default=None,
                        help="training fraction of each --learning-curve file (0.25 0.5 1)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.weights:
        set_weights(args.weights)
    if args.learning_curve:
        learning_curve(args)
        return
    protocols = tuple(args.protocols)
    rows, wall, bands = run(args, systems_for(args), protocols)
    all_means = {p: means(rows, p) for p in protocols}
    for p in protocols:
        print_table(p, all_means[p], wall[p], args.segment_s)
    print_summary(all_means)
    if args.bands:
        print_bands(bands)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "wall_s": wall}, indent=1))


if __name__ == "__main__":
    main()
