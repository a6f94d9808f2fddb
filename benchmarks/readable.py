"""Readable settings (#15 point 5) on the committed real excerpts, before and after a change.

For every excerpt of ``reference_tracks/`` and ``examples/`` mastered by the DSP matcher toward
the presets pop, orchestral and rock and toward another excerpt (the next one in the list) as
a file reference, it counts

- stops: EQ gains at the +-6 dB stops (|g| >= 5.95 dB), and those of them the data does not
  demand (`automix.mastering.readable.STOP_DEMAND_DB`);
- fights: pairs of EQ bands within a third of an octave with gains of opposite sign;
- narrowed: widths below 75 % where the reference is not clearly narrower;
- rate: suggestions that differ between the excerpt at 44.1 kHz and resampled to 96 kHz
  (any gain by more than 0.5 dB or any frequency by more than 5 %);

and the DSP matcher's tonal error on a self-transfer: each excerpt's first half, degraded with
a seeded random EQ (five bands, +-6 dB, random frequencies and Qs), is mastered toward its
second half; the mean of `analysis.tonal_balance_error_db` between the master's and the clean
first half's tonal balance.

Run::

    python benchmarks/readable.py [--against REV]

``--against REV`` also runs ``automix/mastering/match.py`` as it was at git revision REV (with the
rest of the package as it is now). The compressor is not chosen (it does not move EQ or width):
`choose_compressor` is replaced by the neutral compressor in both.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soxr

from automix import analysis
from automix.audio import Audio, load
from automix.effects import render
from automix.mastering import readable
from automix.params import CompressorParams, EQParams, MasterChain, as_dict, ranges
from automix.references import resolve

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("pop", "orchestral", "rock")
STOP_DB = 5.95


def excerpts() -> list[Path]:
    return sorted(ROOT.glob("reference_tracks/*/*.flac")) + sorted(ROOT.glob("examples/*.flac"))


def load_match(rev: str | None):
    """``automix.mastering.match`` now, or its source at ``rev``, with no compressor search."""
    if rev is None:
        from automix.mastering import match as module
    else:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:automix/mastering/match.py"],
            check=True, capture_output=True, text=True).stdout
        path = Path(tempfile.mkdtemp()) / "match_rev.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"match_{rev}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    module.choose_compressor = lambda *args, **kwargs: CompressorParams()
    return module


def suggest(module, audio: Audio, features: analysis.Analysis, reference) -> MasterChain:
    return module.dsp_match(audio, features, reference, reference.target)


def counts(chain: MasterChain, features: analysis.Analysis, reference) -> dict[str, int]:
    eq = chain.eq
    bands = readable.eq_bands(eq)
    diff = readable.tonal_difference(features, reference.features)
    stops = [b for b in bands if abs(b.gain_db) >= STOP_DB]
    undemanded = [b for b in stops if not readable.stop_demanded(b, diff)]
    return {"gains": len(bands), "stops": len(stops), "undemanded": len(undemanded),
            "fights": len(readable.fights(eq)),
            "narrowed": int(not readable.width_allowed(
                chain.width.width_pct, features.width, reference.features.width,
                single_production=reference.kind == "file"))}


def differs(a: MasterChain, b: MasterChain) -> bool:
    da, db = as_dict(a.eq), as_dict(b.eq)
    for k in da:
        if k.endswith("gain_db") and abs(da[k] - db[k]) > 0.5:
            return True
        if k.endswith("freq_hz") and abs(da[k] / db[k] - 1) > 0.05:
            return True
    return abs(a.highpass.freq_hz / b.highpass.freq_hz - 1) > 0.05


def random_eq(rng: np.random.Generator) -> EQParams:
    """Gains uniform in +-6 dB, frequencies and Qs uniform over their ranges (0..1 space)."""
    return EQParams(**{k: float(rng.uniform(-6, 6)) if k.endswith("gain_db")
                       else r.denormalize(float(rng.uniform()))
                       for k, r in ranges(EQParams).items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", help="git revision of automix/mastering/match.py to compare")
    args = parser.parse_args()
    systems = {"now": load_match(None)}
    if args.against:
        systems = {args.against: load_match(args.against), **systems}
    files = excerpts()
    songs = {}
    for path in files:
        audio = load(path)
        hi = soxr.resample(audio.samples.T, audio.sample_rate, 96000).T.astype(np.float32)
        high = Audio(np.ascontiguousarray(hi), 96000)
        songs[path] = [(a, analysis.analyze(a.samples, a.sample_rate)) for a in (audio, high)]
    refs = {p: resolve(p, None)[0] for p in PRESETS}
    rows = {}
    for name, module in systems.items():
        total = {"gains": 0, "stops": 0, "undemanded": 0, "fights": 0, "narrowed": 0,
                 "rate": 0, "pairs": 0}
        for i, path in enumerate(files):
            other = files[(i + 1) % len(files)]
            references = [refs[p] for p in PRESETS] + [resolve(str(other), None)[0]]
            for ref in references:
                chains = [suggest(module, a, f, ref) for a, f in songs[path]]
                for key, n in counts(chains[0], songs[path][0][1], ref).items():
                    total[key] += n
                total["rate"] += differs(*chains)
                total["pairs"] += 1
        # self-transfer: degraded first half toward the second half
        rng = np.random.default_rng(0)
        errors = []
        for path in files:
            audio = songs[path][0][0]
            half = audio.samples.shape[1] // 2
            clean = Audio(audio.samples[:, :half], audio.sample_rate)
            degraded = Audio(render.master_chain(clean.samples, clean.sample_rate,
                                                 MasterChain(eq=random_eq(rng))),
                             clean.sample_rate)
            second = analysis.analyze(audio.samples[:, half:], audio.sample_rate).rounded()
            ref = resolve(str(path), None, analysed=second)[0]
            features = analysis.analyze(degraded.samples, degraded.sample_rate)
            chain = suggest(module, degraded, features, ref)
            out = render.master_chain(degraded.samples, degraded.sample_rate, chain)
            errors.append(analysis.tonal_balance_error_db(
                analysis.analyze(out, degraded.sample_rate),
                analysis.analyze(clean.samples, clean.sample_rate)))
        total["tonal_error_db"] = float(np.mean(errors))
        rows[name] = total
    keys = ["pairs", "gains", "stops", "undemanded", "fights", "narrowed", "rate",
            "tonal_error_db"]
    print(f"{'match.py':>10} " + " ".join(f"{k:>14}" for k in keys))
    for name, total in rows.items():
        print(f"{name[:10]:>10} " + " ".join(
            f"{total[k]:>14.2f}" if isinstance(total[k], float) else f"{total[k]:>14d}"
            for k in keys))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
