"""Same output before and after a refactor: automix as of another revision, case by case.

Runs one list of command lines (master with a preset, a reference file, the network, amounts,
16-bit FLAC, suggested settings rendered back; mixes of a stems folder; error cases) in this
tree and in git revision REV (checked out in a temporary worktree), each case in its own fresh
folder, and compares what came out: every audio file byte for byte (sha256; in float WAVs
libsndfile stamps the PEAK chunk with the time of writing, and that stamp is masked); every JSON
or YAML sidecar and settings document as data, without ``timings_s`` and with the case folder's
path written as ``<case>``; the HTML reports as text (Matplotlib's random SVG ids and date
aside); each command's exit code, stdout and its ``error:``/``warning`` lines on stderr. Usage::

    python benchmarks/same_output.py --against REV [--keep DIR] [--long]

``--long`` adds a 21-minute synthetic song, which takes the streamed (block by block) path.
``--keep DIR`` leaves every case's folder in DIR (``a/`` this tree, ``b/`` REV). automix runs
only through its command line (``python -m automix`` with the tree as working directory and
PYTHONPATH), so the script holds across moves of modules. Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
SONG = ROOT / "examples" / "dirty_love.flac"
REFERENCE = ROOT / "reference_tracks" / "pop" / "supertux__tropicalbreeze.flac"
STEMS = {  # name in the stems folder: committed excerpt (bass made mono)
    "vocals": "folk/wesnoth__traveling_minstrels",
    "drums": "hiphop/lmms_capdan_reggaetry",
    "bass": "electronic/lmms_socceroos_progress",
    "keys": "ambient/singularity__nebula",
}
AUDIO = {".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3"}
DROPPED_KEYS = {"timings_s"}
LONG_SECONDS = 21 * 60  # over streaming's 20 minutes of 48 kHz stereo


@dataclass
class Case:
    """Commands run one after another in one folder; ``@name`` stands for ``<case>/name`` and
    ``inputs`` (name in the folder: file or folder in the shared inputs) are linked in first."""

    name: str
    inputs: dict[str, str]
    steps: list[list[str]]
    long: bool = False
    fails: bool = False  # an error case: every step should exit non-zero


CASES = [
    Case("master preset, preview, report", {"song.flac": "song.flac"},
         [["master", "@song.flac", "-r", "pop", "--preview", "--report", "@r.html"]]),
    Case("master reference file", {"song.flac": "song.flac", "ref.flac": "ref.flac"},
         [["master", "@song.flac", "-r", "@ref.flac", "-o", "@out.wav"]]),
    Case("master network", {"song.flac": "song.flac"},
         [["master", "@song.flac", "-r", "pop", "--method", "network", "-o", "@out.wav"]]),
    Case("master amount, 16-bit flac", {"song.flac": "song.flac"},
         [["master", "@song.flac", "-r", "rock", "--amount", "eq=0.5,dynamics=1,width=0",
           "--bit-depth", "16", "--format", "flac"]]),
    Case("master mono 48 kHz synthetic", {"mono.wav": "mono.wav"},
         [["master", "@mono.wav", "-r", "electronic", "--bit-depth", "32", "-o", "@out.wav"]]),
    Case("suggest yaml, master --settings", {"song.flac": "song.flac"},
         [["suggest", "@song.flac", "-r", "pop", "-o", "@s.yaml"],
          ["master", "@song.flac", "--settings", "@s.yaml", "-o", "@settings.wav"],
          ["master", "@song.flac", "--settings", "@s.yaml", "--refit-gain", "--target", "apple",
           "-o", "@refit.wav"]]),
    Case("mix network, stems out, preview", {"stems": "stems"},
         [["mix", "@stems", "-r", "pop", "--stems-out", "@P", "--preview", "--report",
           "@m.html"]]),
    Case("mix dsp", {"stems": "stems"},
         [["mix", "@stems", "-r", "pop", "--method", "dsp", "-o", "@mix.wav"]]),
    Case("suggest mix, mix --settings", {"stems": "stems"},
         [["suggest", "@stems", "-o", "@mix.json"],
          ["mix", "@stems", "--settings", "@mix.json", "-o", "@mixed.wav"]]),
    Case("error: missing input", {}, [["master", "@missing.flac"]], fails=True),
    Case("error: --ceiling 3", {"song.flac": "song.flac"},
         [["master", "@song.flac", "--ceiling", "3"]], fails=True),
    Case("error: unknown preset", {"song.flac": "song.flac"},
         [["master", "@song.flac", "-r", "nosuchpreset"]], fails=True),
    Case("error: --amount eq=2", {"song.flac": "song.flac"},
         [["master", "@song.flac", "--amount", "eq=2"]], fails=True),
    Case("error: mix of one stem", {"one/vocals.flac": "stems/vocals.flac"},
         [["mix", "@one", "-o", "@mix.wav"]], fails=True),
    Case("master 21 min synthetic (streamed)", {"long.wav": "long.wav"},
         [["master", "@long.wav", "-r", "pop", "-o", "@out.wav"]], long=True),
]


# --- inputs ------------------------------------------------------------------------------------

def make_inputs(folder: Path, long: bool) -> None:
    """The shared inputs: committed audio, a stems folder cut from committed excerpts, and
    synthetic audio from fixed seeds."""
    folder.mkdir(parents=True)
    shutil.copyfile(SONG, folder / "song.flac")
    shutil.copyfile(REFERENCE, folder / "ref.flac")
    (folder / "stems").mkdir()
    for name, excerpt in STEMS.items():
        path = ROOT / "reference_tracks" / f"{excerpt}.flac"
        x, sr = sf.read(path, dtype="float32", frames=8 * sf.info(path).samplerate)
        sf.write(folder / "stems" / f"{name}.flac", x.mean(axis=1) if name == "bass" else x, sr,
                 subtype="PCM_16")
    rng = np.random.default_rng(0)
    t = np.arange(12 * 48000) / 48000
    mono = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(folder / "mono.wav", mono.astype(np.float32), 48000, subtype="PCM_24")
    if long:
        long_song(folder / "long.wav", LONG_SECONDS)


def long_song(path: Path, seconds: int, sample_rate: int = 48000) -> None:
    """Stereo noise with a beat and a bass tone, written 10 s at a time (memory stays low)."""
    rng = np.random.default_rng(1)
    block = 10 * sample_rate
    with sf.SoundFile(path, "w", sample_rate, 2, "PCM_16") as f:
        for start in range(0, seconds * sample_rate, block):
            t = (start + np.arange(block)) / sample_rate
            beat = 0.4 + 0.6 * np.abs(np.sin(np.pi * 2 * t))  # two beats a second
            noise = rng.standard_normal((block, 2)).astype(np.float32)
            noise[:, 1] = 0.7 * noise[:, 1] + 0.3 * noise[:, 0]
            x = 0.08 * noise * beat[:, None] + 0.25 * np.sin(2 * np.pi * 55 * t)[:, None]
            f.write(x.astype(np.float32))


# --- running -----------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What one tree produced for one case: named items, compared in order."""

    items: dict[str, Any] = field(default_factory=dict)
    files: int = 0
    seconds: float = 0.0
    unexpected: list[str] = field(default_factory=list)  # steps that failed (or did not)
    masked: int = 0  # float WAVs whose PEAK timestamp was masked


def env_for(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMIX_")}
    return {**env, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def run_case(case: Case, tree: Path, folder: Path, inputs: Path) -> Outcome:
    folder.mkdir(parents=True)
    for name, source in case.inputs.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        link(inputs / source, folder / name)
    placed = {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}
    out, stdouts = Outcome(), {}
    t0 = time.perf_counter()
    for i, step in enumerate(case.steps, 1):
        argv = [str(folder / a[1:]) if a.startswith("@") else a for a in step]
        proc = subprocess.run([sys.executable, "-m", "automix", *argv], cwd=tree,
                              env=env_for(tree), capture_output=True, text=True)
        label = f"step {i} ({step[0]})"
        out.items[f"{label} exit code"] = proc.returncode
        if bool(proc.returncode) != case.fails:
            out.unexpected.append(f"{label} exit {proc.returncode}")
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        messages = [ln for ln in lines if ln.startswith(("error:", "warning"))]
        if proc.returncode and lines and lines[-1] not in messages:
            messages.append(lines[-1])  # a failure always shows its last line
        out.items[f"{label} stderr"] = [normalise_text(m, folder) for m in messages]
        stdouts[f"{label} stdout"] = normalise_text(proc.stdout, folder).splitlines()
    out.seconds = time.perf_counter() - t0
    # Documents before audio: where a sidecar differs, its first key says more than a hash.
    files = (p for p in folder.rglob("*") if p.is_file())
    for path in sorted(files, key=lambda p: (p.suffix.lower() in AUDIO, p)):
        rel = path.relative_to(folder)
        if rel not in placed:
            out.items[f"file {rel}"] = value = read_output(path, folder)
            out.files += 1
            out.masked += isinstance(value, str) and value.endswith(MASKED)
    out.items.update(stdouts)  # last: a file's differing key says more than a printed table
    return out


def link(source: Path, dest: Path) -> None:
    """Hard links where the file system allows (the 21-minute song is 240 MB), else copies."""
    if source.is_dir():
        dest.mkdir()
        for child in sorted(source.iterdir()):
            link(child, dest / child.name)
        return
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


# --- normalising -------------------------------------------------------------------------------

def normalise_text(text: str, folder: Path) -> str:
    return text.replace(str(folder), "<case>")


def normalise(value: Any, folder: Path) -> Any:
    """A parsed document with `DROPPED_KEYS` removed and paths into the case folder relative."""
    if isinstance(value, dict):
        return {k: normalise(v, folder) for k, v in value.items() if k not in DROPPED_KEYS}
    if isinstance(value, list):
        return [normalise(v, folder) for v in value]
    if isinstance(value, str):
        return normalise_text(value, folder)
    return value


SVG_DATE = re.compile(r"<dc:date>[^<]*</dc:date>")
SVG_ID = re.compile(r"\b[a-z][0-9a-f]{10}\b")  # Matplotlib's ids: salted with a random uuid


def normalise_html(text: str, folder: Path) -> list[str]:
    text = SVG_DATE.sub("<dc:date/>", normalise_text(text, folder))
    ids: dict[str, str] = {}
    text = SVG_ID.sub(lambda m: ids.setdefault(m.group(), f"id{len(ids)}"), text)
    return text.splitlines()


def read_output(path: Path, folder: Path) -> Any:
    """An output file as compared: a sha256 for audio and anything unknown, parsed data for
    JSON/YAML, lines for HTML."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return normalise(json.loads(path.read_text()), folder)
    if suffix in {".yaml", ".yml"}:
        return normalise(yaml.safe_load(path.read_text()), folder)
    if suffix in {".html", ".htm"}:
        return normalise_html(path.read_text(), folder)
    data = bytearray(path.read_bytes())
    masked = suffix == ".wav" and mask_peak_time(data)
    return "sha256 " + hashlib.sha256(data).hexdigest()[:16] + (MASKED if masked else "")


MASKED = " (PEAK time masked)"


def mask_peak_time(data: bytearray) -> bool:
    """Zero the timestamp in a WAV's PEAK chunk, in place; whether there was one. libsndfile
    writes that chunk into float WAVs (``--bit-depth 32``) with the time of writing, so two
    runs of the same code differ there (and only there) unless they fall in the same second."""
    if data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        return False
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        if data[pos:pos + 4] == b"PEAK" and size >= 8:
            data[pos + 12:pos + 16] = bytes(4)  # after the chunk header and the version
            return True
        if data[pos:pos + 4] == b"data":
            return False
        pos += 8 + size + (size & 1)
    return False


# --- comparing ---------------------------------------------------------------------------------

def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """Where two parsed values first differ (a key path, a line or the values), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{where}{key} only in {'this tree' if key in a else 'REV'}"
            found = first_difference(a[key], b[key], f"{where}{key}.")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = first_difference(x, y, f"{where}[{i}].")
            if found:
                return found
        return None if len(a) == len(b) else f"{where.rstrip('.')} length {len(a)} vs {len(b)}"
    if a == b and type(a) is type(b):
        return None
    if isinstance(a, str) and isinstance(b, str):  # from a little before the first change
        start = max(0, len(os.path.commonprefix([a, b])) - 20)
        a, b = a[start:], b[start:]
    shown = f"{short(a)} vs {short(b)}"
    return f"{where.rstrip('.')}: {shown}" if where else shown


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def compare(a: Outcome, b: Outcome) -> str:
    for key in list(a.items) + [k for k in b.items if k not in a.items]:
        if key not in a.items or key not in b.items:
            return f"DIFFERENT: {key} only in {'this tree' if key in a.items else 'REV'}"
        found = first_difference(a.items[key], b.items[key])
        if found:
            return f"DIFFERENT: {key}: {found}"
    return "same"


# --- main --------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", metavar="REV", required=True,
                    help="git revision to compare this tree with")
    ap.add_argument("--keep", metavar="DIR", type=Path,
                    help="leave the inputs and every case's outputs here")
    ap.add_argument("--long", action="store_true",
                    help="add the 21-minute synthetic song (the streamed path; slow)")
    args = ap.parse_args()
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        ap.error(f"--keep {args.keep}: not empty")
    scratch = Path(tempfile.mkdtemp(prefix="automix-same-"))
    work = args.keep.resolve() if args.keep else scratch / "work"
    against = scratch / "rev"
    cases = [c for c in CASES if args.long or not c.long]
    failed, masked = False, 0
    if subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                       str(against), args.against]).returncode:
        shutil.rmtree(scratch, ignore_errors=True)
        return 2
    try:
        rev = subprocess.run(["git", "-C", str(against), "rev-parse", "--short", "HEAD"],
                             check=True, capture_output=True, text=True).stdout.strip()
        print(f"this tree ({ROOT}) against {args.against} ({rev}); outputs in {work}")
        make_inputs(work / "inputs", args.long)
        print("| case | files compared | seconds (this tree / REV) | result |")
        print("|---|---|---|---|")
        for k, case in enumerate(cases):
            # Same-length folders for both trees, so that paths wrap alike in printed tables.
            slug = f"{k:02d}-" + re.sub(r"[^a-z0-9]+", "-", case.name.lower()).strip("-")
            a = run_case(case, ROOT, work / "a" / slug, work / "inputs")
            b = run_case(case, against, work / "b" / slug, work / "inputs")
            result = compare(a, b)
            failed |= result != "same"
            masked += a.masked + b.masked
            if a.unexpected:
                result += f" (but {', '.join(a.unexpected)} in this tree)"
            files = f"{a.files}" if a.files == b.files else f"{a.files} / {b.files}"
            print(f"| {case.name} | {files} | {a.seconds:.1f} / {b.seconds:.1f} | {result} |",
                  flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(against)],
                       check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    if masked:
        print(f"\n{masked} float WAV files: the write time in libsndfile's PEAK chunk masked")
    print("\nall the same" if not failed else "\nsome outputs DIFFER")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
