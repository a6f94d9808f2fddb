"""A user's own chain (``master --chain``, issue #19 point 2) on the held-out protocols.

The songs, degradation, protocols (same-song, cross-song, preset) and metrics are those of
`benchmarks/style_transfer.py` (its `run`, `means` and `print_table`): a held-out song's
loudest segment degraded by random EQ, side gain and gain, moved toward a reference, scored
against the composer's own master. Systems: identity (the degraded input); automix's own
master (``--method dsp``, the whole pipeline); the user's chain ZamEQ2 + ZamCompX2 at the
plug-ins' defaults (no search: only the finalise to the target) and optimised for
``--chain-seconds`` (`automix.plugins.chain.master`, what ``master --chain`` runs: aimed at
automix's own master of the song); and the ceiling (the exact inverse of the degradation).
``seconds`` is each system's wall time (it includes ``to_reference_db``'s analysis);
``to_reference_db`` is the output's tonal-balance error to the reference as ``master`` reports
it (the style-transfer metrics score against the truth).

Run::

    AUTOMIX_DATA=/work/sdata python benchmarks/chain.py [--songs 3] [--chain-seconds 15]
        [--protocols same-song cross-song preset]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.style_transfer import (  # noqa: E402
    CEILING,
    PROTOCOLS,
    Case,
    eq_and_width,
    means,
    pipeline_system,
    print_table,
    run,
)

CHAIN = ("ZamEQ2", "ZamCompX2")


def with_splits() -> None:
    """A data folder built by ../shared/data/build.sh has no ``split`` or ``genre`` column:
    they are taken from the package's line in the sources (`recipe.read_sources`), so that
    `style_transfer.eval_songs` finds the held-out packages."""
    from automix.training import recipe

    read = recipe.read_manifest
    sources = {s.package: s for s in recipe.read_sources()}

    def read_manifest(data_dir: str | Path) -> list[dict]:
        rows = read(data_dir)
        for r in rows:
            source = sources.get(r["package"])
            r.setdefault("split", source.split if source else "")
            r.setdefault("genre", source.genre if source else "")
        return rows

    recipe.read_manifest = read_manifest


def chain_system(seconds: float) -> Callable[[Case], np.ndarray]:
    from automix.audio import Audio
    from automix.plugins import chain

    def system(case: Case) -> np.ndarray:
        result, _, stages = chain.master(Audio(case.x, case.sample_rate), case.reference,
                                         case.target, list(CHAIN), budget_s=seconds)
        chain.close(stages)
        return result.audio.samples

    return system


def scored(system: Callable[[Case], np.ndarray], errors: list[float]
           ) -> Callable[[Case], np.ndarray]:
    """``system``, also noting its output's tonal-balance error to the reference (what
    ``master`` reports and the chain's search aims at) in ``errors``."""
    from automix import analysis
    from automix.mastering.pipeline import tonal_error_db

    def run(case: Case) -> np.ndarray:
        out = system(case)
        ref_mid = np.asarray(case.reference.features.tonal_mid_db, dtype=np.float64)
        errors.append(tonal_error_db(analysis.analyze(out, case.sample_rate), ref_mid))
        return out

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get(
        "AUTOMIX_DATA", str(Path.home() / ".cache" / "automix-data")))
    parser.add_argument("--songs", type=int, default=3,
                        help="at most this many songs per eval package")
    parser.add_argument("--segment-s", type=float, default=10.0)
    parser.add_argument("--packages", nargs="+", default=None)
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    parser.add_argument("--chain-seconds", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    systems = {
        "identity": lambda case: case.x,
        "dsp": pipeline_system("dsp"),
        "zam-defaults": chain_system(0.0),
        f"zam-{args.chain_seconds:g}s": chain_system(args.chain_seconds),
        CEILING: lambda case: eq_and_width(case.x, case.sample_rate, case.ceiling),
    }
    with_splits()
    to_reference: list[float] = []  # per call, in the order `run` appends its rows
    protocols = tuple(args.protocols)
    rows, wall, _ = run(args, {name: scored(system, to_reference)
                               for name, system in systems.items()}, protocols)
    for row, error in zip(rows, to_reference, strict=True):
        row["to_reference_db"] = error
    for p in protocols:
        print_table(p, means(rows, p), wall[p], args.segment_s)
    print("\ntonal error to the truth / to the reference (dB, mean) and seconds per system:")
    print("| protocol | " + " | ".join(systems) + " |")
    print("|---|" + "---|" * len(systems))
    for p in protocols:
        m = means(rows, p)
        def mean(name: str, key: str, p: str = p) -> float:
            return float(np.mean([r[key] for r in rows
                                  if r["protocol"] == p and r["system"] == name]))

        print(f"| {p} | " + " | ".join(
            f"{m[name]['tonal_db']:.2f} / {mean(name, 'to_reference_db'):.2f} "
            f"({mean(name, 'seconds'):.1f} s)" for name in m) + " |")


if __name__ == "__main__":
    main()
