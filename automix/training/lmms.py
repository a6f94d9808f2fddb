"""LMMS multitracks: dry stems, wet stems and the author's mix of the LMMS demo projects, with
the author's mixer decisions, compressors, reverbs and equalisers included, in real units.

Every project of Debian's lmms-common (`PROJECT_FOLDERS`) is rendered by LMMS itself
(``lmms render``), whole once and then each instrument or sample track alone, twice:

- the project as its author saved it: the author's mix, ``master.flac``;
- each track as it sounds in that mix (its volume and pan, its own effect chain, its FX-mixer
  channel with that channel's effects and fader, the master fader), with the master channel's
  effects off (`wet_project`): ``wet/``;
- each track dry (`dry_project`): its effect chain off, volume 100 %, pan centre, sent
  straight to the master channel at unity, every mixer effect off: ``stems/``.

The layout is the General-MIDI songs' (`training.multitracks`)::

    DIR/multitracks/lmms-common__<project>/stems/NN_<track>.flac   dry (NN: the track order)
    DIR/multitracks/lmms-common__<project>/wet/NN_<track>.flac     as in the author's mix
    DIR/multitracks/lmms-common__<project>/master.flac             the author's mix
    DIR/multitracks/lmms-common__<project>/mix_sum.flac            the exact sum of the dry stems
    DIR/multitracks/lmms-common__<project>/meta.json               source, licence, split, and
                                                                   per stem its decisions
    DIR/licenses/lmms-common.copyright

Per stem, meta.json holds ``level_db`` (track volume, FX channel fader and sends on the way to
the master, in dB), ``pan`` (-1..1) and ``effects``: every effect on the track's path in order
(`lmms_effects.describe`: plug-in, kind, enabled, wet/dry, parameters and real units). One
gain for the whole project (only ever down, ``common_gain_db``) keeps every file under full
scale, so dry, wet and master keep their levels relative to each other. Tracks silent dry and
wet are left out. Each track is rendered alone (`solo_project`), and LMMS seeds its random
numbers from the clock: with `SEEDED_RAND` preloaded (``rand_seeded``), a track's dry and wet
renders play the same noise and drum-synth hits; ZynAddSubFX (a separate process) still
differs from run to run, and the author's mix, one run with every track, draws other numbers
than the stems (``wet_sum_error_db``: the wet stems' sum against it). ``wet_lag_samples`` is
each wet stem's offset from its dry stem (non-zero where a plug-in delays the signal, e.g. a
look-ahead limiter, or where effects leave little of the dry sound). Instruments' own
built-in effects (ZynAddSubFX's reverb) stay in the dry stems. Run it as root on Debian 12 (it
installs lmms, the LADSPA plug-ins the projects use and gcc when missing)::

    python -m automix.training.lmms DIR [--jobs 1] [--only PROJECT ...] [--max-seconds 150]

Longer projects are cut at ``--max-seconds`` (their song editor's patterns, at the song's
tempo; LMMS adds one bar). It skips projects whose meta.json exists and writes atomically.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.training import lmms_effects, recipe
from automix.training.data import split_of

PACKAGE = "lmms-common"
PROJECTS = Path("/usr/share/lmms/projects")
PROJECT_FOLDERS = ("demos", "shorties")  # "tutorials" holds a 3-track how-to, not a song
SAMPLES = Path("/usr/share/lmms/samples")  # where a project's relative sample paths point
APT_PACKAGES = ("lmms", "tap-plugins", "caps", "swh-plugins", "gcc")  # + lmms's calf, cmt
MAX_SECONDS = 150.0
OVERSAMPLING = 1  # LMMS's export dialog's default (its command line's is 2: twice the time)
RENDER_TIMEOUT_S = 3600.0
RENDER_TRIES = 3  # LMMS 1.2 now and then crashes (SIGSEGV) on a render that the next run makes
INSTRUMENT_TRACK, BB_TRACK, SAMPLE_TRACK = "0", "1", "2"  # <track type=...>
TICKS_PER_BEAT = 48  # LMMS: 192 ticks a 4/4 bar
NEUTRAL_VOLUME = 100.0  # a track's volume in %, and the master volume
SILENT_DBFS = -80.0  # a track under this peak dry and wet plays nothing
GARBAGE = 1000.0  # LMMS 1.2 float renders can start with uninitialised buffers (1e14, NaN)
MAX_LAG = 4096  # samples searched either way for a wet stem's offset
# LMMS seeds rand() from the clock and pid (drumsynth samples, noise): preloaded, this makes
# every render draw the same numbers, so a track's dry and wet renders play the same noise.
SEEDED_RAND = """
extern void *dlsym(void *handle, const char *symbol);
void srand(unsigned int seed) {
    ((void (*)(unsigned int)) dlsym((void *) -1L, "srand"))(1u);  /* RTLD_NEXT */
}
"""


# --- projects ---------------------------------------------------------------------------------


def read_project(path: Path) -> ET.Element:
    """An .mmp (XML) or .mmpz (a 4-byte length, then zlib-compressed XML) project."""
    data = path.read_bytes()
    return ET.fromstring(zlib.decompress(data[4:]) if path.suffix == ".mmpz" else data)


def write_project(root: ET.Element, path: Path) -> None:
    path.write_bytes(b'<?xml version="1.0"?>\n<!DOCTYPE lmms-project>\n' + ET.tostring(root))


def project_files(projects: Path = PROJECTS) -> list[Path]:
    return sorted(p for folder in PROJECT_FOLDERS for p in (projects / folder).rglob("*.mmp*"))


def selected(only: list[str] | None) -> list[Path]:
    """The projects named in ``only`` (file names without suffix, or song names), or all."""
    return [p for p in project_files() if not only or p.stem in only or song_name(p) in only]


def song_name(path: Path) -> str:
    return f"{PACKAGE}__{recipe.slug(path.stem)}"


def rendered_tracks(root: ET.Element) -> list[ET.Element]:
    """The tracks a mix is made of, in ``lmms rendertracks``'s order: the unmuted instrument
    and sample tracks of the song editor, then those of the beat and bassline editor."""
    song = root.find("song/trackcontainer")
    bb = [t for b in song.findall("track") if b.get("type") == BB_TRACK
          for t in b.findall("bbtrack/trackcontainer/track")]
    return [t for t in [*song.findall("track"), *bb]
            if t.get("type") in (INSTRUMENT_TRACK, SAMPLE_TRACK) and t.get("muted", "0") == "0"]


def track_settings(track: ET.Element) -> ET.Element:
    """A track's ``<instrumenttrack>`` or ``<sampletrack>`` (volume, pan, FX chain)."""
    return track.find("instrumenttrack" if track.get("type") == INSTRUMENT_TRACK
                      else "sampletrack")


def fx_channels(root: ET.Element) -> dict[int, ET.Element]:
    return {int(c.get("num")): c for c in root.iter("fxchannel")}


def fx_route(root: ET.Element, channel: int) -> list[tuple[int, float]]:
    """(channel, its send amount to the next) from ``channel`` to the master (0, not included),
    following each channel's first send; a channel without sends goes to the master."""
    channels = fx_channels(root)
    route: list[tuple[int, float]] = []
    while channel != 0 and channel in channels and channel not in [c for c, _ in route]:
        send = channels[channel].find("send")
        amount = lmms_effects.model_value(send, "amount", 1.0) if send is not None else 1.0
        route.append((channel, amount))
        channel = int(send.get("channel")) if send is not None else 0
    return route


def tempo_bpm(root: ET.Element) -> float:
    return lmms_effects.model_value(root.find("head"), "bpm", 140.0)


def ticks_per_second(root: ET.Element) -> float:
    """At the song's base tempo (tempo automation is not followed)."""
    return tempo_bpm(root) / 60.0 * TICKS_PER_BEAT


# --- the author's decisions -------------------------------------------------------------------


def volume_db(percent: float) -> float:
    """An LMMS volume (100 % = unity, linear) in dB."""
    return lmms_effects.db(percent / 100.0)


def pan_unit(pan: float) -> float:
    """An LMMS pan (-100 left .. +100 right) as -1..1."""
    return max(-1.0, min(1.0, pan / 100.0))


def track_decisions(root: ET.Element, track: ET.Element) -> dict:
    """One track's mix: volume, pan, its FX channel and route, ``level_db`` (volume, faders
    and send amounts on the route, in dB) and every effect on its path (``at``: "track" or
    the FX channel), master channel excluded."""
    settings = track_settings(track)
    volume = lmms_effects.model_value(settings, "vol", NEUTRAL_VOLUME)
    channels = fx_channels(root)
    route = fx_route(root, int(settings.get("fxch", "0")))
    effects = [{"at": "track", **e} for e in lmms_effects.chain(settings.find("fxchain"))]
    level = volume_db(volume)
    for num, amount in route:
        fader = lmms_effects.model_value(channels[num], "volume", 1.0)
        level += lmms_effects.db(fader) + lmms_effects.db(amount)
        effects += [{"at": f"fx{num}", **e}
                    for e in lmms_effects.chain(channels[num].find("fxchain"))]
    instrument = settings.find("instrument")
    return {"track": track.get("name", ""),
            "type": "instrument" if track.get("type") == INSTRUMENT_TRACK else "sample",
            "instrument": instrument.get("name") if instrument is not None else None,
            "volume_pct": volume, "level_db": _rounded(level),
            "pan": round(pan_unit(lmms_effects.model_value(settings, "pan", 0.0)), 3),
            "fx_channel": route[0][0] if route else 0,
            "fx_channel_name": channels[route[0][0]].get("name") if route else "Master",
            "fx_route": [num for num, _ in route], "reverb_send": None, "chorus_send": None,
            "effects": effects}


def master_decisions(root: ET.Element) -> dict:
    """The master volume (the song's, %) and the master channel's fader and effects."""
    master = fx_channels(root).get(0)
    return {"volume_db": _rounded(volume_db(lmms_effects.model_value(
                root.find("head"), "mastervol", NEUTRAL_VOLUME))),
            "fader_db": _rounded(lmms_effects.db(lmms_effects.model_value(master, "volume", 1.0)))
            if master is not None else 0.0,
            "effects": lmms_effects.chain(master.find("fxchain")) if master is not None else []}


# --- the projects rendered --------------------------------------------------------------------


def _set(el: ET.Element, name: str, value: float) -> None:
    """Pin a model to ``value``: its automation or controller (a child element) dropped."""
    for child in el.findall(name):
        el.remove(child)
    el.set(name, f"{value:g}")


def _bypass(fxchain: ET.Element | None) -> None:
    """Switch every effect of a chain off, its automation dropped. The effects stay loaded, so
    that a dry and a wet render draw the same random numbers (`SEEDED_RAND`)."""
    for effect in fxchain.findall("effect") if fxchain is not None else []:
        _set(effect, "on", 0)


def wet_project(root: ET.Element) -> ET.Element:
    """The project with the master channel's effects off: the tracks as in the author's mix."""
    out = copy.deepcopy(root)
    master = fx_channels(out).get(0)
    if master is not None:
        _bypass(master.find("fxchain"))
    return out


def dry_project(root: ET.Element) -> ET.Element:
    """The project with every track dry: every effect of tracks and mixer channels off, volumes
    at 100 %, pans centred, every track sent to the master channel, faders and master at
    unity."""
    out = copy.deepcopy(root)
    for track in rendered_tracks(out):
        settings = track_settings(track)
        _set(settings, "vol", NEUTRAL_VOLUME)
        _set(settings, "pan", 0.0)
        if track.get("type") == INSTRUMENT_TRACK:
            _set(settings, "fxch", 0)
        _bypass(settings.find("fxchain"))
    for channel in fx_channels(out).values():
        _set(channel, "volume", 1.0)
        _bypass(channel.find("fxchain"))
    _set(out.find("head"), "mastervol", NEUTRAL_VOLUME)
    return out


def song_ticks(root: ET.Element) -> int:
    """Where the song editor's last clip ends, in ticks: the song's length."""
    return max((int(c.get("pos")) + int(c.get("len"))
                for t in root.findall("song/trackcontainer/track") for c in t
                if c.get("pos") is not None and c.get("len") is not None), default=0)


def solo_project(root: ET.Element, index: int) -> ET.Element:
    """The project with only its ``index``-th rendered track (`rendered_tracks`), so that LMMS
    computes that track alone: the other instrument and sample tracks are taken out, the
    beat/bassline and automation tracks stay (a beat/bassline's clips play its patterns by
    their order), and an empty automation clip keeps the song's length."""
    out = copy.deepcopy(root)
    keep = rendered_tracks(out)[index]
    song = out.find("song/trackcontainer")
    for container in [song, *song.findall("track/bbtrack/trackcontainer")]:
        for track in container.findall("track"):
            if track.get("type") in (INSTRUMENT_TRACK, SAMPLE_TRACK) and track is not keep:
                container.remove(track)
            track.set("solo", "0")
    length = ET.SubElement(song, "track", type="5", name="length", muted="0", solo="0")
    ET.SubElement(length, "automationtrack")
    ET.SubElement(length, "automationpattern", pos="0", len=str(song_ticks(root)),
                  name="length", prog="0", tens="1", mute="0")
    return out


def cut_project(root: ET.Element, seconds: float) -> ET.Element:
    """The project ending at ``seconds`` (at its base tempo): song-editor clips that start later
    dropped, those that run past it shortened (a clip plays only its length)."""
    out = copy.deepcopy(root)
    end = round(seconds * ticks_per_second(root))
    for track in out.findall("song/trackcontainer/track"):
        for clip in list(track):
            if clip.get("pos") is None or clip.get("len") is None:
                continue
            pos = int(clip.get("pos"))
            if pos >= end:
                track.remove(clip)
            elif pos + int(clip.get("len")) > end:
                clip.set("len", str(end - pos))
    return out


def missing_samples(root: ET.Element, samples: Path = SAMPLES) -> list[str]:
    """The sample files a project plays that are not installed."""
    srcs = {el.get("src") for el in root.iter() if el.get("src")}
    return sorted(s for s in srcs if not (Path(s) if Path(s).is_absolute()
                                          else samples / s).exists())


# --- rendering --------------------------------------------------------------------------------


def ensure_lmms() -> None:
    """Install LMMS and the LADSPA plug-ins with apt-get when missing (root only)."""
    installed = shutil.which("lmms") and all(Path(f"/usr/share/doc/{p}").exists()
                                             for p in APT_PACKAGES)
    if not installed:
        recipe.apt_install(APT_PACKAGES, recommends=True)


def seeded_rand(cache: Path) -> Path | None:
    """A preloadable library (`SEEDED_RAND`, compiled once into ``cache``) that makes LMMS's
    ``srand`` seed 1; None without a C compiler."""
    library = cache / "lmms_seeded_rand.so"
    if not library.exists():
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            return None
        cache.mkdir(parents=True, exist_ok=True)
        source = cache / "lmms_seeded_rand.c"
        source.write_text(SEEDED_RAND)
        subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source)],
                       check=True, capture_output=True)
    return library


def lmms_version() -> str:
    out = subprocess.run(["lmms", "--allowroot", "--version"], capture_output=True, text=True,
                         check=False, env=_lmms_env())
    return (out.stdout.splitlines() or [""])[0].removeprefix("LMMS ").strip()


@dataclass(frozen=True)
class Renderer:
    """``lmms render``, headless, with a private configuration file (parallel runs do not
    share one) and, where given, `SEEDED_RAND` preloaded."""

    config: Path
    preload: Path | None = None

    def render(self, project: Path, output: Path) -> None:
        """Render ``project`` to ``output``: 44.1 kHz float WAV; a run that LMMS does not
        survive (a signal) is tried again, `RENDER_TRIES` in all."""
        env = _lmms_env()
        if self.preload is not None:
            env["LD_PRELOAD"] = str(self.preload)
        for attempt in range(RENDER_TRIES):
            done = subprocess.run(
                ["nice", "-n", "10", "lmms", "--allowroot", "-c", str(self.config), "render",
                 str(project), "-f", "wav", "-a", "-s", str(recipe.SAMPLE_RATE), "-x",
                 str(OVERSAMPLING), "-o", str(output)],
                capture_output=True, timeout=RENDER_TIMEOUT_S, env=env, check=False)
            if done.returncode >= 0 or attempt == RENDER_TRIES - 1:
                done.check_returncode()
                return


def render_tracks(root: ET.Element, folder: Path, lmms: Renderer) -> list[Path]:
    """Render each track of ``root`` on its own (`solo_project`) into ``folder``, in
    `rendered_tracks` order. Faster than ``lmms rendertracks``, which computes every track's
    instrument and effects while rendering each one."""
    folder.mkdir(parents=True)
    files = []
    for i in range(len(rendered_tracks(root))):
        project = _saved(solo_project(root, i), folder / f"{i + 1:02d}.mmp")
        lmms.render(project, project.with_suffix(".wav"))
        files.append(project.with_suffix(".wav"))
    return files


def read_render(path: Path) -> tuple[np.ndarray, int]:
    """A render as (2, n) float32, and how many garbage samples were zeroed: LMMS 1.2 float
    renders can hold uninitialised buffers (non-finite or absurd values, `GARBAGE`)."""
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = recipe.to_stereo_44k(x.T, sr)
    bad = ~np.isfinite(x) | (np.abs(x) > GARBAGE)
    x[bad] = 0.0
    return x, int(bad.sum())


def lag(reference: np.ndarray, x: np.ndarray, max_lag: int = MAX_LAG) -> int:
    """Samples by which ``x`` is late against ``reference`` (both (2, n)): the peak of their
    cross-correlation, mono, over the loudest ten seconds of ``reference``."""
    a, b = reference.mean(axis=0), x.mean(axis=0)
    span = min(len(a), 10 * recipe.SAMPLE_RATE)
    hop = recipe.SAMPLE_RATE
    starts = range(0, max(1, len(a) - span + 1), hop)
    start = max(starts, key=lambda s: float(np.sum(np.square(a[s:s + span]))))
    a, b = a[start:start + span], b[start:start + span]
    size = 1 << int(np.ceil(np.log2(2 * span)))
    c = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    window = np.concatenate([c[-max_lag:], c[:max_lag + 1]])
    return int(np.argmax(window)) - max_lag


def error_db(x: np.ndarray, reference: np.ndarray) -> float:
    """The energy of ``x - reference`` against the reference's, dB, after shifting ``x`` by its
    `lag`: how far the wet stems' sum is from the author's mix (master effects, sidechains)."""
    shift = lag(reference, x)
    if shift >= 0:
        x, reference = x[:, shift:], reference[:, :reference.shape[1] - shift]
    else:
        x, reference = x[:, :shift], reference[:, -shift:]
    return 10.0 * math.log10(max(float(np.sum(np.square(x - reference))), 1e-20)
                             / max(float(np.sum(np.square(reference))), 1e-20))


# --- projects ---------------------------------------------------------------------------------


def render_project(root: ET.Element, song_dir: Path, *, meta: dict, work: Path,
                   preload: Path | None = None) -> dict:
    """Dry and wet stems, the author's mix, the dry sum and meta.json for one (cut) project.

    Every file has the author's mix's length; meta.json is written last, so a song without it
    is unfinished (and rendered again by the next run)."""
    tracks = rendered_tracks(root)
    lmms = Renderer(work / "lmmsrc.xml", preload)
    lmms.render(_saved(root, work / "master.mmp"), work / "master.wav")
    wet_files = render_tracks(wet_project(root), work / "wet", lmms)
    dry_files = render_tracks(dry_project(root), work / "dry", lmms)
    if not len(tracks) == len(wet_files) == len(dry_files):
        raise ValueError(f"{len(tracks)} tracks, LMMS rendered {len(wet_files)} wet and "
                         f"{len(dry_files)} dry")
    master, zeroed = read_render(work / "master.wav")
    n = master.shape[1]
    # pass 1: the one gain that keeps every file under full scale, and the silent tracks
    peak, total, audible = float(np.abs(master).max(initial=0.0)), np.zeros_like(master), []
    for i, (dry_file, wet_file) in enumerate(zip(dry_files, wet_files, strict=True)):
        dry = recipe.fit_length(read_render(dry_file)[0], n)
        wet_peak = float(np.abs(read_render(wet_file)[0]).max(initial=0.0))
        if max(recipe.peak_db(dry), lmms_effects.db(max(wet_peak, 1e-10))) > SILENT_DBFS:
            audible.append(i)
            total += dry
            peak = max(peak, wet_peak, float(np.abs(dry).max(initial=0.0)))
    if not audible:
        raise ValueError("no track plays")
    gain = recipe.common_gain(peak, total)
    # pass 2: write
    for sub in ("stems", "wet"):
        (song_dir / sub).mkdir(parents=True, exist_ok=True)
    total, wet_total, stems = np.zeros_like(master), np.zeros_like(master), {}
    for k, i in enumerate(audible, 1):
        facts = track_decisions(root, tracks[i])
        name = f"{k:02d}_{recipe.slug(facts['track'])}"
        dry, dry_zeroed = read_render(dry_files[i])
        wet, wet_zeroed = read_render(wet_files[i])
        dry = recipe.quantised(recipe.fit_length(dry, n) * gain)
        wet = recipe.fit_length(wet, n) * gain
        recipe.write_flac(song_dir / "stems" / f"{name}.flac", dry, {"title": name})
        recipe.write_flac(song_dir / "wet" / f"{name}.flac", wet, {"title": name})
        total += dry
        wet_total += wet
        stems[name] = {**facts, "dry_peak_dbfs": recipe.peak_db(dry),
                       "wet_peak_dbfs": recipe.peak_db(wet), "wet_lag_samples": lag(dry, wet),
                       "zeroed_samples": dry_zeroed + wet_zeroed}
    recipe.write_flac(song_dir / "master.flac", master * gain, {"title": meta.get("title", "")})
    recipe.write_flac(song_dir / "mix_sum.flac", total, {"title": meta.get("title", "")})
    silent = [tracks[i].get("name", "") for i in range(len(tracks)) if i not in audible]
    info = {**meta, "duration_s": round(n / recipe.SAMPLE_RATE, 2),
            "common_gain_db": _rounded(lmms_effects.db(gain)), "master": master_decisions(root),
            "master_zeroed_samples": zeroed, "mix_sum_peak_dbfs": recipe.peak_db(total),
            "wet_sum_error_db": _rounded(error_db(wet_total, master * gain)),
            "peak_controllers": sum(e.get("name") == "peakcontrollereffect"
                                    for e in root.iter("effect")),
            "silent_tracks": silent, "stems": stems}
    recipe.write_json(song_dir / "meta.json", info)
    return info


def project_meta(path: Path, root: ET.Element, stanzas: list[dict[str, str]], *,
                 max_seconds: float, version: str) -> dict:
    rel = path.relative_to(PROJECTS)
    stanza = recipe.stanza_for(stanzas, f"data/projects/{rel}")
    author, _, title = path.stem.partition("-") if "-" in path.stem else ("", "", path.stem)
    return {"song": song_name(path), "package": PACKAGE, "source": f"{PROJECTS.name}/{rel}",
            "title": title, "composer": author,  # the demos are named Author-Title
            "copyright": recipe.composer_of(stanza.get("copyright", "")),
            "licence": stanza.get("license", "").split("\n")[0].split(" ")[0]
            or f"see licenses/{PACKAGE}.copyright",
            "split": split_of(song_name(path)), "bpm": tempo_bpm(root),
            "original_seconds": round(song_ticks(root) / ticks_per_second(root), 2),
            "max_seconds": max_seconds, "renderer": "lmms", "lmms_version": version,
            "oversampling": OVERSAMPLING, "deterministic": False}


def build_project(path: Path, out: Path, *, stanzas: list[dict[str, str]], max_seconds: float,
                  version: str, preload: Path | None = None) -> dict:
    """Render one project into ``out/multitracks/<song>`` (nothing when its meta.json exists).
    A project whose samples or LADSPA plug-ins are missing raises ValueError."""
    song_dir = out / "multitracks" / song_name(path)
    if (song_dir / "meta.json").exists():
        return json.loads((song_dir / "meta.json").read_text())
    root = read_project(path)
    missing = missing_samples(root) + lmms_effects.missing_plugins(root)
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    meta = {**project_meta(path, root, stanzas, max_seconds=max_seconds, version=version),
            "rand_seeded": preload is not None}
    with tempfile.TemporaryDirectory(prefix="lmms_") as work:
        return render_project(cut_project(root, max_seconds), song_dir, meta=meta,
                              work=Path(work), preload=preload)


def build(out: Path, *, jobs: int = 1, only: list[str] | None = None,
          max_seconds: float = MAX_SECONDS) -> list[dict]:
    """Build (or finish) the LMMS multitracks; the meta of every song. Failures are printed
    and leave no meta.json."""
    ensure_lmms()
    stanzas = recipe.copy_copyright(PACKAGE, Path("/"), out)
    version, preload = lmms_version(), seeded_rand(out / ".build")
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        return recipe.finished_songs({
            pool.submit(build_project, p, out, stanzas=stanzas, max_seconds=max_seconds,
                        version=version, preload=preload): song_name(p) for p in selected(only)})


# --- census -----------------------------------------------------------------------------------

CENSUS_KINDS = ("compressor", "limiter", "reverb", "eq", "delay", "filter", "distortion",
                "modulation", "gain", "stereo")
CENSUS_UNITS = {"compressor": ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db",
                               "makeup_db"),
                "limiter": ("threshold_db", "release_ms"),
                "reverb": ("decay_s", "predelay_ms", "damping_hz", "wet_db", "tail", "damping"),
                "eq": ("gain_db",)}


def distinct_effects(songs: list[dict]) -> list[tuple[str, dict]]:
    """(song, effect) of every enabled effect once: a mixer channel's effect is on the path of
    each track sent there, but counts once."""
    seen, out = set(), []
    for song in songs:
        for stem, facts in song["stems"].items():
            for i, effect in enumerate(facts["effects"]):
                where = effect["at"] if effect["at"] != "track" else f"{stem}:{i}"
                key = (song["song"], where, effect["plugin"], json.dumps(effect["params"]))
                if effect["enabled"] and key not in seen:
                    seen.add(key)
                    out.append((song["song"], effect))
    return out


def census(songs: list[dict]) -> str:
    """A Markdown summary of built LMMS songs: stems, how many have each kind of effect on
    their path, and the range of each mapped parameter (distinct effects, band gains other
    than 0 dB)."""
    stems = [facts for song in songs for facts in song["stems"].values()]
    splits = ", ".join(f"{sum(s['split'] == k for s in songs)} {k}"
                       for k in ("train", "validation", "held_out"))
    lines = [f"{len(songs)} projects ({splits}), {len(stems)} stems, "
             f"{sum(s['duration_s'] for s in songs) / 60:.0f} min",
             "", "| kind | stems with it on their path | songs | distinct effects |",
             "|---|---|---|---|"]
    effects = distinct_effects(songs)
    for kind in CENSUS_KINDS:
        on_path = sum(any(e["enabled"] and e["kind"] == kind for e in facts["effects"])
                      for facts in stems)
        mine = [(song, e) for song, e in effects if e["kind"] == kind]
        lines.append(f"| {kind} | {on_path} | {len({song for song, _ in mine})} | {len(mine)} |")
    lines += ["", "| parameter | n | min | median | max |", "|---|---|---|---|---|"]
    ranges = {"stem level_db": [f["level_db"] for f in stems if f["level_db"] is not None],
              "stem pan": [f["pan"] for f in stems],
              "stem wet_lag_samples (non-zero)": [f["wet_lag_samples"] for f in stems
                                                  if f["wet_lag_samples"]],
              "song wet_sum_error_db": [s["wet_sum_error_db"] for s in songs
                                        if s.get("wet_sum_error_db") is not None]}
    for kind, names in CENSUS_UNITS.items():
        for name in names:
            values = [v for _, e in effects if e["kind"] == kind
                      for v in _unit_values(e.get("units", {}), name)]
            ranges[f"{kind} {name}"] = [v for v in values if kind != "eq" or v != 0]
    for name, values in ranges.items():
        if values:
            lines.append(f"| {name} | {len(values)} | {min(values):.3g} | "
                         f"{float(np.median(values)):.3g} | {max(values):.3g} |")
    return "\n".join(lines)


def _unit_values(units: dict, name: str) -> list[float]:
    """``units[name]``, or that of each of its bands; numbers only."""
    found = [units.get(name)] + [b.get(name) for b in units.get("bands", [])]
    return [float(v) for v in found if isinstance(v, (int, float))]


def main(argv: list[str] | None = None) -> int:
    parser = recipe.multitrack_parser(__doc__.split("\n\n")[0], max_seconds=MAX_SECONDS,
                                      only="these projects only (file names without suffix)")
    parser.add_argument("--census", action="store_true",
                        help="print what the built LMMS songs hold, render nothing")
    args = parser.parse_args(argv)
    if args.census:
        print(census([json.loads(p.read_text()) for p in sorted(
            (args.out / "multitracks").glob(f"{PACKAGE}__*/meta.json"))]))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    songs = build(args.out, jobs=args.jobs, only=args.only, max_seconds=args.max_seconds)
    print(f"{len(songs)} of {len(selected(args.only))} projects, "
          f"{sum(len(s['stems']) for s in songs)} stems, "
          f"{sum(s['split'] == 'held_out' for s in songs)} held out, "
          f"{time.perf_counter() - t0:.0f} s: {args.out / 'multitracks'}")
    return 0 if songs else 1


def _lmms_env() -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


def _saved(root: ET.Element, path: Path) -> Path:
    write_project(root, path)
    return path


def _rounded(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


if __name__ == "__main__":
    sys.exit(main())
