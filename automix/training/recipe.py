"""The data recipe: build the folder of finished productions that `automix train` learns from.

Reads `sources.tsv` beside this file (Debian packages of freely licensed music, the files of
each, the genre preset that fits it, and whether it is a training or an evaluation package),
then for every package: ``apt-get download`` it (nothing is installed), unpack it with
``dpkg-deb -x``, decode every matching file that lasts at least `MIN_SECONDS` (members of zip
archives such as ``.pk3`` too), and write::

    DIR/mixes/<package>__<title>.flac    44.1 kHz stereo, 16-bit
    DIR/licenses/<package>.copyright     the package's Debian copyright file
    DIR/manifest.csv                     one row a production (see `MANIFEST_FIELDS`)

Run it as root on Debian 12 (it calls apt-get)::

    python -m automix.training.recipe DIR [--jobs 2] [--only PACKAGE ...]

It skips what exists, so a second run only finishes what the first left; files are written
atomically. The manifest's ``composer`` comes from the file's tags or, failing that, from the
copyright file's stanza for the file; ``licence`` from that stanza (Debian's DEP-5 format,
last matching ``Files:`` pattern wins).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SOURCES = Path(__file__).with_name("sources.tsv")
SAMPLE_RATE = 44100
MIN_SECONDS = 30.0  # shorter files of these packages are jingles and sound effects
AUDIO_SUFFIXES = (".ogg", ".opus", ".oga", ".flac", ".wav", ".mp3")
MANIFEST_FIELDS = ("id", "package", "title", "composer", "licence", "duration_s", "genre",
                   "split", "source")


@dataclass(frozen=True)
class Source:
    """One row of `sources.tsv`."""

    package: str
    files: str  # glob inside the package; "ARCHIVE!GLOB" for members of a zip
    genre: str
    split: str  # "train" or "eval"


def read_sources(path: Path = SOURCES) -> list[Source]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(Source(*line.split("\t")))
    return rows


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "untitled"


# --- Debian copyright files (DEP-5) -------------------------------------------------------


def copyright_stanzas(text: str) -> list[dict[str, str]]:
    """The paragraphs of a DEP-5 copyright file as field -> value (continuations joined)."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


def stanza_for(stanzas: list[dict[str, str]], path: str) -> dict[str, str]:
    """The stanza whose ``Files:`` pattern matches ``path`` last (DEP-5's rule); patterns are
    relative to the source tree, so they are matched against the end of the installed path."""
    found: dict[str, str] = {}
    for stanza in stanzas:
        for pattern in stanza.get("files", "").split():
            if pattern == "*" or fnmatch.fnmatch(path, "*" + pattern.lstrip("./")) \
                    or fnmatch.fnmatch(os.path.basename(path), pattern):
                found = stanza
    return found


def composer_of(copyright_field: str) -> str:
    """Names from a ``Copyright:`` value, years and e-mail addresses dropped."""
    text = re.sub(r"<[^>]*>|\(c\)|©|\d{4}(\s*[-,]\s*\d{4})*,?", "", copyright_field,
                  flags=re.I)
    return re.sub(r"\s+", " ", text).strip(" ,;")


# --- audio --------------------------------------------------------------------------------


def decode(data: bytes | Path) -> tuple[np.ndarray, int, dict[str, str]]:
    """Samples (channels, n) float32, the rate, and the tags of an audio file or its bytes."""
    handle = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with sf.SoundFile(handle) as f:
        tags = {k: v for k, v in f.copy_metadata().items() if v}
        x = f.read(dtype="float32", always_2d=True).T
        return x, f.samplerate, tags


def to_stereo_44k(x: np.ndarray, sample_rate: int) -> np.ndarray:
    import soxr

    x = np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x[:2]
    if sample_rate != SAMPLE_RATE:
        x = soxr.resample(x.T, sample_rate, SAMPLE_RATE, quality="HQ").T
    return np.ascontiguousarray(x, dtype=np.float32)


def write_flac(path: Path, x: np.ndarray, tags: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".part")
    with sf.SoundFile(tmp, "w", SAMPLE_RATE, x.shape[0], "PCM_16", format="FLAC") as f:
        for key in ("title", "artist", "copyright"):
            if tags.get(key):
                setattr(f, key, tags[key])
        f.write(np.clip(x, -1.0, 1.0).T)
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON, atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def quantised(x: np.ndarray) -> np.ndarray:
    """`x` as 16-bit PCM will store it, so that sums of stored stems are exact."""
    return np.round(np.clip(x, -1.0, 1.0) * 32768.0).clip(-32768, 32767).astype(np.float32) \
        / np.float32(32768.0)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """`x` (channels, m) cut or padded with silence to `n` samples."""
    return x[:, :n] if x.shape[1] >= n else np.pad(x, ((0, 0), (0, n - x.shape[1])))


def peak_db(x: np.ndarray) -> float:
    """The sample peak of `x` in dBFS, 0.01 dB (-200 for silence)."""
    return round(float(20 * np.log10(max(float(np.abs(x).max(initial=0.0)), 1e-10))), 2)


# --- multitracks ----------------------------------------------------------------------------


def multitrack_parser(description: str, *, only: str, choices: tuple[str, ...] | None = None,
                      max_seconds: float) -> argparse.ArgumentParser:
    """The command line of a multitrack renderer: DIR, --jobs, --only, --max-seconds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("out", type=Path, help="the data folder to build")
    parser.add_argument("--jobs", type=int, default=1, help="songs rendered in parallel")
    parser.add_argument("--only", nargs="*", choices=choices, help=only)
    parser.add_argument("--max-seconds", type=float, default=max_seconds,
                        help="cut longer songs here (default %(default)s)")
    return parser


def common_gain(peak: float, total: np.ndarray) -> float:
    """The one gain, only ever down, that keeps every file of a song under full scale (0.99):
    `peak` the highest sample peak of its renders, `total` (channels, n) its dry stems' sum."""
    return min(1.0, 0.99 / max(peak, float(np.abs(total).max(initial=0.0)), 1e-10))


def run_multitracks(build: Callable[..., dict[str, list[dict]]], args: argparse.Namespace
                    ) -> int:
    """Run a multitrack renderer's ``build`` with its command line's `args` (`multitrack_parser`
    and ``--cache``), print each package's songs (held out, minutes) and the total; the exit
    status: 0 when any song is built."""
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    done = build(args.out, jobs=args.jobs, only=args.only, max_seconds=args.max_seconds,
                 cache=args.cache)
    seconds, folder = time.perf_counter() - t0, args.out / "multitracks"
    songs = [m for metas in done.values() for m in metas]
    for package, metas in done.items():
        held = sum(m["split"] == "held_out" for m in metas)
        minutes = sum(m["duration_s"] for m in metas) / 60
        print(f"{package}: {len(metas)} songs ({held} held out), {minutes:.0f} min")
    print(f"{len(songs)} songs, {sum(m['split'] == 'held_out' for m in songs)} held out, "
          f"{seconds:.0f} s: {folder}")
    return 0 if songs else 1


def finished_songs(futures: dict[Future, str]) -> list[dict]:
    """The meta of each song the futures (future -> song name) render, in order; a song that
    fails is printed and left out (without its meta.json, the next run renders it again)."""
    done = []
    for future, name in futures.items():
        try:
            done.append(future.result())
        except (ValueError, OSError, EOFError, subprocess.SubprocessError) as exc:
            print(f"{name}: failed ({type(exc).__name__}: "
                  f"{str(exc).splitlines()[0] if str(exc) else ''})", file=sys.stderr)
            continue
        print(f"{name}: {len(done[-1]['stems'])} stems, {done[-1]['duration_s']:.0f} s",
              flush=True)
    return done


# --- packages -----------------------------------------------------------------------------


def apt_install(packages: tuple[str, ...], *, recommends: bool) -> None:
    """``apt-get install`` the Debian packages a renderer needs (root only)."""
    if os.geteuid() != 0:
        raise RuntimeError(f"apt-get install {' '.join(packages)} (as root): not installed")
    flags = [] if recommends else ["--no-install-recommends"]
    subprocess.run(["apt-get", "install", "-y", "-qq", *flags, *packages], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def fetch_package(package: str, cache: Path) -> Path:
    """``apt-get download`` and ``dpkg-deb -x`` a package into ``cache`` (once)."""
    root = cache / "pkgs" / package
    if (root / ".extracted").exists():
        return root
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        subprocess.run(["apt-get", "download", "-qq", package], cwd=debs, check=True)
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    (root / ".extracted").touch()
    return root


def copy_copyright(package: str, root: Path, out: Path) -> list[dict[str, str]]:
    """Copy an unpacked package's Debian copyright file to ``out/licenses/<package>.copyright``
    and return its DEP-5 stanzas (none when the package has no such file)."""
    copyright_file = root / "usr/share/doc" / package / "copyright"
    if not copyright_file.exists():
        return []
    (out / "licenses").mkdir(parents=True, exist_ok=True)
    (out / "licenses" / f"{package}.copyright").write_bytes(copyright_file.read_bytes())
    return copyright_stanzas(copyright_file.read_text(errors="replace"))


def members(source: Source, root: Path) -> list[tuple[str, bytes | Path]]:
    """(path for the manifest, the file or its bytes) of every file the row names."""
    if "!" in source.files:
        archive, pattern = source.files.split("!", 1)
        out = []
        for arch in sorted(root.glob(archive)):
            with zipfile.ZipFile(arch) as z:
                for name in sorted(z.namelist()):
                    if fnmatch.fnmatch(name, pattern) and name.lower().endswith(AUDIO_SUFFIXES):
                        out.append((f"{arch.relative_to(root)}!{name}", z.read(name)))
        return out
    return [(str(p.relative_to(root)), p) for p in sorted(root.glob(source.files))
            if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]


def build_package(source: Source, out: Path, cache: Path) -> tuple[list[dict], list[str]]:
    """Decode one package's productions into ``out/mixes``; their manifest rows and notes."""
    root = fetch_package(source.package, cache)
    stanzas = copy_copyright(source.package, root, out)
    rows, notes, seen = [], [], set()
    for path, data in members(source, root):
        stem = Path(path.split("!")[-1]).stem
        ident = f"{source.package}__{slug(stem)}"
        if ident in seen:
            ident = f"{source.package}__{slug(Path(path.split('!')[-1]).parent.name + '_' + stem)}"
        seen.add(ident)
        target = out / "mixes" / f"{ident}.flac"
        stanza = stanza_for(stanzas, path.split("!")[-1])
        try:
            if target.exists():
                info = sf.info(str(target))
                duration = info.frames / info.samplerate
                with sf.SoundFile(str(target)) as f:
                    tags = {k: v for k, v in f.copy_metadata().items() if v}
            else:
                x, sr, tags = decode(data if isinstance(data, bytes) else Path(data))
                duration = x.shape[1] / sr
                if duration < MIN_SECONDS:
                    continue
                tags = {"title": tags.get("title") or stem, "artist": tags.get("artist", ""),
                        "copyright": stanza.get("license", "")}
                write_flac(target, to_stereo_44k(x, sr), tags)
        except (RuntimeError, sf.LibsndfileError, ValueError) as exc:
            notes.append(f"{source.package}: {path}: skipped ({str(exc).splitlines()[0]})")
            continue
        rows.append({
            "id": ident, "package": source.package, "title": tags.get("title") or stem,
            "composer": tags.get("artist") or composer_of(stanza.get("copyright", "")),
            "licence": stanza.get("license", "").split(" ")[0],
            "duration_s": f"{duration:.1f}", "genre": source.genre, "split": source.split,
            "source": path,
        })
    return rows, notes


def write_manifest(rows: list[dict], path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, MANIFEST_FIELDS)
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: r["id"]))
    os.replace(tmp, path)


def read_manifest(data_dir: str | Path) -> list[dict]:
    """The rows of ``DIR/manifest.csv`` (empty when the folder has none)."""
    path = Path(data_dir) / "manifest.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def build(out: Path, *, jobs: int = 2, only: list[str] | None = None,
          cache: Path | None = None) -> list[dict]:
    """Build (or finish) the folder; returns the manifest rows of every package built."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "mixes").mkdir(exist_ok=True)
    cache = cache or out / ".build"
    sources = [s for s in read_sources() if not only or s.package in only]
    kept = [r for r in read_manifest(out) if r["package"] not in {s.package for s in sources}]
    rows = list(kept)
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(build_package, s, out, cache): s for s in sources}
        for future, source in futures.items():
            try:
                new, notes = future.result()
            except (subprocess.CalledProcessError, OSError) as exc:
                print(f"{source.package}: failed ({exc})", file=sys.stderr)
                continue
            rows += new
            for note in notes:
                print(note, file=sys.stderr)
            hours = sum(float(r["duration_s"]) for r in new) / 3600
            print(f"{source.package}: {len(new)} productions, {hours:.1f} h", flush=True)
    write_manifest(rows, out / "manifest.csv")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the data folder to build")
    parser.add_argument("--jobs", type=int, default=2, help="packages decoded in parallel")
    parser.add_argument("--only", nargs="*", help="these packages only")
    parser.add_argument("--cache", type=Path, default=None,
                        help="where .deb files are unpacked (default DIR/.build)")
    args = parser.parse_args(argv)
    rows = build(args.out, jobs=args.jobs, only=args.only, cache=args.cache)
    hours = sum(float(r["duration_s"]) for r in rows) / 3600
    packages = len({r["package"] for r in rows})
    print(f"{len(rows)} productions from {packages} packages, {hours:.1f} h: "
          f"{args.out / 'manifest.csv'}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
