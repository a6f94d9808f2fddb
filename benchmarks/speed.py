"""Whole-process speed of `automix master` against Matchering 2.0 and the I/O floor.

Every system runs as its own process on the same 3-minute song (and, with a reference file,
the same 3-minute reference), in the same run, a few times; the table prints the median wall
time, peak RSS and ratios, and the network method's cost over the DSP matcher's. Usage::

    python benchmarks/speed.py [--song SONG] [--seconds 180] [--repeats 3] [--against REV]

``--against REV`` adds the automix rows as of git revision REV (checked out in a temporary
worktree), run in the same round-robin: a change measured against the code before it.

Needs `pip install -e ".[bench]"` for Matchering (skipped with a note when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _songs import cut, real_songs, synthetic_song  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLOOR = ("import soundfile as sf, sys; x, sr = sf.read(sys.argv[1], dtype='float32'); "
         "sf.write(sys.argv[2], x * 0.5, sr, subtype='PCM_24')")
METHODS = ("dsp", "network")  # of `automix master`, each row measured with both
MATCHERING = ("import matchering as mg, sys; mg.log(lambda *a: None); "
              "mg.process(target=sys.argv[1], reference=sys.argv[3], "
              "results=[mg.pcm24(sys.argv[2])])")


def system_name(method: str, label: str, suffix: str) -> str:
    """The table's row for `automix master` with ``method`` toward reference ``label``."""
    return f"automix master --method {method} --reference {label}{suffix}"


def run(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB and exit code of one process run in ``cwd`` (where
    `python -m automix` finds its package)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code:
        sys.stderr.write(f"{' '.join(cmd[:4])}... failed: {proc.stderr.read().decode()[-500:]}\n")
    return wall, usage.ru_maxrss / 1024, code


def prepared(make, *args, **kwargs) -> Path:
    """``make(*args, **kwargs)`` (a song writer) run in a fresh process: Linux children inherit
    their parent's peak RSS, so the parent must never hold a decoded song itself."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(make, *args, **kwargs).result()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--song", type=Path)
    ap.add_argument("--reference", type=Path)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--against", metavar="REV", help="also time automix as of this git revision")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="automix-speed-"))
    songs = real_songs(args.seconds, 2)
    if args.song:
        song = prepared(cut, args.song, args.seconds, tmp / "song.wav")
    elif songs:
        song = prepared(cut, songs[0], args.seconds, tmp / "song.wav")
    else:
        print("no data folder: using a synthetic song")
        song = prepared(synthetic_song, args.seconds, tmp / "song.wav")
    # A reference is a whole song, as a user would give it: as long as the song here.
    if args.reference:
        ref = args.reference.resolve()
    else:
        ref = (prepared(cut, songs[1], args.seconds, tmp / "ref.wav") if len(songs) > 1
               else prepared(synthetic_song, args.seconds, tmp / "ref.wav", seed=1))
    py = sys.executable
    trees, against = {"": ROOT}, tmp / "against"
    if args.against:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                        str(against), args.against], check=True)
        trees[f" @{args.against}"] = against
    systems = {"floor (read + write 24-bit)": ([py, "-c", FLOOR, str(song),
                                                 str(tmp / "floor.wav")], ROOT)}
    for i, (suffix, tree) in enumerate(trees.items()):
        for method in METHODS:
            for label, reference in (("pop", "pop"), ("FILE", str(ref))):
                out = tmp / f"{method}-{label}{i}.wav"
                systems[system_name(method, label, suffix)] = (
                    [py, "-m", "automix", "master", str(song), "-r", reference, "-o", str(out),
                     "--force", "--method", method], tree)
    systems["matchering 2.0 (reference FILE)"] = (
        [py, "-c", MATCHERING, str(song), str(tmp / "m.wav"), str(ref)], ROOT)
    try:
        import matchering  # noqa: F401
    except ImportError:
        print("matchering not installed (pip install -e '.[bench]'): its row is skipped")
        systems.pop("matchering 2.0 (reference FILE)")
    # Round-robin: every system once per repeat, so that a machine whose speed drifts during
    # the run (a shared host) slows every system alike and the ratios stay fair.
    runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in systems}
    stages: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
    try:
        for _ in range(args.repeats):
            for name, (cmd, cwd) in systems.items():
                runs[name].append(run(cmd, cwd))
                sidecar = (Path(cmd[cmd.index("-o") + 1]).with_suffix(".json") if "-o" in cmd
                           else None)
                if sidecar is not None and runs[name][-1][2] == 0:
                    stages[name].append(json.loads(sidecar.read_text())["timings_s"])
    finally:
        if args.against:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(against)], check=False)
    results = {}
    for name, rs in runs.items():
        ok = [r for r in rs if r[2] == 0]
        results[name] = (statistics.median(r[0] for r in ok) if ok else float("nan"),
                         max(r[1] for r in rs))
    base = results.get("matchering 2.0 (reference FILE)", (float("nan"),))[0]
    floor = results["floor (read + write 24-bit)"][0]
    print(f"\nsong: {args.seconds:.0f} s, {args.repeats} runs each (round-robin), median wall time")
    print("| system | seconds | peak RSS MiB | x Matchering time | x floor |")
    print("|---|---|---|---|---|")
    for name, (wall, rss) in results.items():
        print(f"| {name} | {wall:.2f} | {rss:.0f} | {wall / base:.2f} | {wall / floor:.1f} |")
    print("\ngoal: automix at most 0.33 x Matchering's time")
    print("\nnetwork / dsp (goal: at most 1.15 x in time and in memory):")
    for suffix in trees:
        for label in ("pop", "FILE"):
            (dt, dm), (nt, nm) = (results[system_name(m, label, suffix)] for m in METHODS)
            print(f"- --reference {label}{suffix}: time {nt / dt:.2f} x, peak RSS {nm / dm:.2f} x")
    print("\nautomix's stages in the process (sidecar timings_s, median seconds); the rest of the"
          "\nwall time is starting Python, imports, writing the sidecar and exiting:")
    for name, timings in stages.items():
        if timings:
            medians = {k: statistics.median(t[k] for t in timings) for k in timings[0]}
            rest = results[name][0] - sum(medians.values())
            print(f"- {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in medians.items())
                  + f", rest {rest:.2f}")


if __name__ == "__main__":
    main()
