"""Hydrogen drum songs: dry stems, wet stems and the author's mix of the demo songs in Debian's
``hydrogen-data``, per instrument, with the author's instrument volume, gain and pan in real
units.

Each song is exported with Hydrogen's own command line, ``h2cli`` (Debian's ``hydrogen``; the
kits come with ``hydrogen-data`` and ``hydrogen-drumkits``):

- the whole song as its author saved it: the author's mix, ``master.flac``;
- each instrument alone (every other one muted), as in that mix: ``wet/``;
- each instrument alone with its mixer strip at neutral (volume 1, gain 1, pan centre, effect
  sends off): ``stems/``.

Notes, velocities, per-note pans, swing and the kit's layers play in all of them: they are the
performance and the kit, not the mixer. The song's master volume is kept everywhere (it is one
fader for the whole song; the exports run `HEADROOM` lower, as h2cli writes integer samples,
and are scaled back). Hydrogen's humanisation draws new random timing and velocity on each
export, so it is turned off in every render (``humanize`` in meta.json keeps the author's
values): only then do the stems add up to the mix. The layout is the other multitracks'
(`training.multitracks`, `training.modules`)::

    DIR/multitracks/hydrogen-data__<song>/stems/NN_<instrument>.flac   dry (NN: 1.. in the kit)
    DIR/multitracks/hydrogen-data__<song>/wet/NN_<instrument>.flac     as in the author's mix
    DIR/multitracks/hydrogen-data__<song>/master.flac                  the author's mix
    DIR/multitracks/hydrogen-data__<song>/mix_sum.flac                 the exact sum of the dry
    DIR/multitracks/hydrogen-data__<song>/meta.json
    DIR/licenses/hydrogen-data.copyright

Per stem, meta.json holds ``level_db`` (20*log10(volume*gain)), ``pan`` (-1..1, under the
song's ``pan_law``), the volume, gain and effect-send levels as read, whether it sends to an
enabled effect (``sends_to_effect``; the song's ``effects`` are its four slots' plug-ins) and
which of its strip the dry stem set to neutral; where the strip is already neutral the stem is
exported once.
``wet_sum_error_db`` (how far the wet stems' sum is from the author's mix) is the measured
parity of the per-instrument exports with Hydrogen's own. One gain for the whole song (only
ever down, ``common_gain_db``) keeps every file under full scale; instruments that never play
are left out.

``h2cli`` exports in real time but sleeps most of it, so a song's exports run `RENDERS_AT_ONCE`
at a time (about a song's length each, whatever its instrument count). Run it as root on
Debian 12 (it installs hydrogen and the kits when missing)::

    python -m automix.training.hydrogen DIR [--only SONG ...] [--max-seconds 150]

It skips songs whose meta.json exists and writes atomically.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from automix.training import recipe
from automix.training.data import split_of
from automix.training.lmms import error_db
from automix.training.modules import faded, volume_db, write_parts

PACKAGE = "hydrogen-data"
SONGS = Path("/usr/share/hydrogen/data/demo_songs")
APT_PACKAGES = ("hydrogen", "hydrogen-data", "hydrogen-drumkits")
MAX_SECONDS = 150.0
SILENT_DBFS = -80.0  # an instrument under this peak dry and wet plays nothing
RENDERS_AT_ONCE = 16  # h2cli exports in real time, asleep nearly all of it
RENDER_TIMEOUT_S = 900.0
RENDER_TRIES = 3  # h2cli now and then aborts (SIGABRT) on an export that the next run makes
SEND_FIELDS = ("FX1Level", "FX2Level", "FX3Level", "FX4Level")
NEUTRAL_STRIP = {"volume": 1.0, "gain": 1.0, "pan": 0.0, **dict.fromkeys(SEND_FIELDS, 0.0)}
HUMANIZE_FIELDS = ("humanize_time", "humanize_velocity")
HEADROOM = 0.125  # every export's master volume is scaled by this (h2cli's 32-bit WAV is
# integer and clips at full scale), and its samples by its inverse

Render = Callable[[ET.Element], np.ndarray]  # a song's XML -> its export, (2, n) at 44.1 kHz


# --- songs and the author's decisions -------------------------------------------------------


def read_song(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def song_files(songs: Path = SONGS) -> list[Path]:
    return sorted(songs.glob("*.h2song"))


def song_name(path: Path) -> str:
    return f"{PACKAGE}__{recipe.slug(path.stem)}"


def instruments(song: ET.Element) -> list[ET.Element]:
    return song.findall("instrumentList/instrument")


def played(song: ET.Element) -> set[str]:
    """The ids of the instruments that have notes in a pattern the song's sequence plays."""
    sequenced = {el.text for el in song.iterfind("patternSequence/group/patternID")}
    return {note.findtext("instrument") for pattern in song.iterfind("patternList/pattern")
            if pattern.findtext("name") in sequenced
            for note in pattern.iterfind("noteList/note")}


def strip(instrument: ET.Element) -> dict[str, float]:
    """An instrument's mixer strip as the song stores it (`NEUTRAL_STRIP`'s fields)."""
    return {k: float(instrument.findtext(k, str(neutral))) for k, neutral in NEUTRAL_STRIP.items()}


def instrument_decisions(song: ET.Element, instrument: ET.Element) -> dict:
    """The author's strip of one instrument: ``level_db`` (volume times gain, None for
    silence), ``pan`` (-1..1), the values read, the effect sends and which of them the dry
    stem set to neutral."""
    values = strip(instrument)
    return {"level_db": volume_db(values["volume"] * values["gain"]),
            "pan": round(max(-1.0, min(1.0, values["pan"])), 3),
            "pan_law": song.findtext("pan_law_type", ""),
            "volume": values["volume"], "gain": values["gain"],
            "fx_sends": [values[k] for k in SEND_FIELDS],
            "sends_to_effect": sends_to_effect(song, instrument),
            "neutralised": [k for k, v in values.items() if v != NEUTRAL_STRIP[k]]}


def effects(song: ET.Element) -> list[str | None]:
    """The song's four effect slots (LADSPA): each enabled one's plug-in name, else None."""
    return [fx.findtext("name") if fx.findtext("enabled") == "true" else None
            for fx in song.iterfind("ladspa/fx")]


def sends_to_effect(song: ET.Element, instrument: ET.Element) -> bool:
    """Whether the instrument's author sent it to an effect: a send level above 0 to a slot
    that holds an enabled plug-in. The demo songs leave every slot empty: their drums are
    dry, as an LMMS track without a reverb is."""
    slots = effects(song)
    return any(level > 0 and k < len(slots) and slots[k] is not None
               for k, level in enumerate(strip(instrument)[f] for f in SEND_FIELDS))


def stem_name(index: int, instrument: ET.Element) -> str:
    """``NN_<instrument>``: the instrument's place in the kit (1..) and its name."""
    return f"{index + 1:02d}_{recipe.slug(instrument.findtext('name', 'instrument'))}"


def _set(parent: ET.Element, tag: str, value: object) -> None:
    el = parent.find(tag)
    if el is None:
        el = ET.SubElement(parent, tag)
    el.text = str(value)


def exportable(song: ET.Element) -> ET.Element:
    """A copy of the song that plays the same notes on every export (`HUMANIZE_FIELDS` 0) and
    leaves `HEADROOM` below full scale (its master volume scaled by it)."""
    out = copy.deepcopy(song)
    for field in HUMANIZE_FIELDS:
        _set(out, field, 0)
    _set(out, "volume", float(song.findtext("volume", "1")) * HEADROOM)
    return out


def solo(song: ET.Element, instrument_id: str, *, dry: bool) -> ET.Element:
    """A copy of the song in which only ``instrument_id`` plays (every other one muted), its
    strip as the author set it or, ``dry``, at `NEUTRAL_STRIP`."""
    out = copy.deepcopy(song)
    for inst in instruments(out):
        mine = inst.findtext("id") == instrument_id
        _set(inst, "isMuted", "false" if mine else "true")
        _set(inst, "isSoloed", "false")
        if mine and dry:
            for key, value in NEUTRAL_STRIP.items():
                _set(inst, key, value)
    return out


# --- rendering --------------------------------------------------------------------------------


def ensure_hydrogen() -> None:
    """Install Hydrogen and its kits with apt-get when missing (root only)."""
    if not (shutil.which("h2cli") and SONGS.is_dir()
            and all(Path(f"/usr/share/doc/{p}").exists() for p in APT_PACKAGES)):
        recipe.apt_install(APT_PACKAGES, recommends=False)


def h2cli_render(work: Path) -> Render:
    """A `Render` that saves the song into ``work`` and exports it with ``h2cli`` (32-bit WAV,
    44.1 kHz); an export that h2cli does not survive (a signal) is tried again,
    `RENDER_TRIES` in all."""
    def render(song: ET.Element) -> np.ndarray:
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            path = Path(tmp) / "song.h2song"
            ET.ElementTree(song).write(path, encoding="UTF-8", xml_declaration=True)
            wav = Path(tmp) / "song.wav"
            for attempt in range(RENDER_TRIES):
                done = subprocess.run(["h2cli", "-s", str(path), "-o", str(wav), "-r",
                                       str(recipe.SAMPLE_RATE), "-b", "32"],
                                      capture_output=True, timeout=RENDER_TIMEOUT_S,
                                      check=False, stdin=subprocess.DEVNULL)
                if done.returncode >= 0 or attempt == RENDER_TRIES - 1:
                    break
                time.sleep(1.0 + attempt)  # the aborts come in bursts of parallel starts
            if done.returncode != 0:
                said = done.stderr.decode(errors="replace").strip().splitlines()
                raise subprocess.SubprocessError(
                    f"h2cli exited with {done.returncode}: {said[-1] if said else ''}")
            x, sr, _ = recipe.decode(wav)
        return recipe.to_stereo_44k(x, sr)
    return render


def render_song(song: ET.Element, song_dir: Path, *, meta: dict, render: Render,
                max_seconds: float = MAX_SECONDS, at_once: int = RENDERS_AT_ONCE) -> dict:
    """Dry and wet stems, the author's mix, the dry sum and meta.json for one song, each
    export made by ``render`` (`at_once` of them in parallel).

    Every file has the author's mix's length (cut at `max_seconds` and faded as
    `modules.faded` does); meta.json is written last, so a song without it is unfinished."""
    fixed = exportable(song)
    ids = played(fixed)
    kit = [(i, inst) for i, inst in enumerate(instruments(fixed)) if inst.findtext("id") in ids]
    if not kit:
        raise ValueError("no instrument plays")
    jobs: dict[tuple[str, bool], ET.Element] = {("master", False): fixed}
    for _, inst in kit:
        key = inst.findtext("id")
        jobs[key, False] = solo(fixed, key, dry=False)
        if instrument_decisions(fixed, inst)["neutralised"]:
            jobs[key, True] = solo(fixed, key, dry=True)
    with ThreadPoolExecutor(max_workers=max(1, at_once)) as pool:
        renders = {key: x / HEADROOM
                   for key, x in zip(jobs, pool.map(render, jobs.values()), strict=True)}
    master = renders.pop(("master", False))
    full_n = master.shape[1]
    cut = full_n > max_seconds * recipe.SAMPLE_RATE
    n = min(full_n, int(max_seconds * recipe.SAMPLE_RATE))
    master = faded(master[:, :n], cut=cut)

    def pair(key: str) -> tuple[np.ndarray, np.ndarray]:
        wet = faded(recipe.fit_length(renders[key, False], n), cut=cut)
        dry = renders.get((key, True))
        return (wet if dry is None else faded(recipe.fit_length(dry, n), cut=cut)), wet

    silent = 10.0 ** (SILENT_DBFS / 20.0)
    peaks = {key: max(float(np.abs(x).max(initial=0.0)) for x in pair(key))
             for key in (inst.findtext("id") for _, inst in kit)}
    audible = [(i, inst) for i, inst in kit if peaks[inst.findtext("id")] > silent]
    if not audible:
        raise ValueError("no instrument plays")
    total = sum(pair(inst.findtext("id"))[0] for _, inst in audible)
    gain = recipe.common_gain(max(float(np.abs(master).max(initial=0.0)),
                                  *(peaks[inst.findtext("id")] for _, inst in audible)), total)
    stems, total, wet_total = write_parts(
        song_dir, ((stem_name(i, inst), *pair(inst.findtext("id")),
                    {"instrument": inst.findtext("name", ""), "id": inst.findtext("id"),
                     "drumkit": inst.findtext("drumkit", ""),
                     **instrument_decisions(fixed, inst)})
                   for i, inst in audible), master, gain, meta.get("title", ""))
    result = {**meta, "duration_s": round(n / recipe.SAMPLE_RATE, 2), "cut": cut,
              "original_seconds": round(full_n / recipe.SAMPLE_RATE, 2),
              "bpm": float(song.findtext("bpm", "120")),
              "master_volume": float(song.findtext("volume", "1")),
              "humanize": {k: float(song.findtext(k, "0")) for k in HUMANIZE_FIELDS},
              "swing_factor": float(song.findtext("swing_factor", "0")),
              "effects": effects(song),
              "common_gain_db": volume_db(gain), "mix_sum_peak_dbfs": recipe.peak_db(total),
              "wet_sum_error_db": round(error_db(wet_total, master * gain), 2),
              "silent_instruments": [inst.findtext("name", "") for _, inst in kit
                                     if peaks[inst.findtext("id")] <= silent],
              "stems": stems}
    recipe.write_json(song_dir / "meta.json", result)
    return result


# --- songs ------------------------------------------------------------------------------------


def build_song(path: Path, out: Path, *, stanzas: list[dict[str, str]], max_seconds: float,
               render: Render | None = None) -> dict:
    """Render one song into ``out/multitracks/<song>`` (nothing when its meta.json exists)."""
    name = song_name(path)
    song_dir = out / "multitracks" / name
    if (song_dir / "meta.json").exists():
        return json.loads((song_dir / "meta.json").read_text())
    song = read_song(path)
    source = str(path.relative_to("/")) if path.is_absolute() else str(path)
    stanza = recipe.stanza_for(stanzas, source)
    meta = {"song": name, "package": PACKAGE, "source": source,
            "title": song.findtext("name") or path.stem,
            "composer": song.findtext("author", "")
            or recipe.composer_of(stanza.get("copyright", "")),
            "licence": stanza.get("license", "").split("\n")[0].split(" ")[0]
            or f"see licenses/{PACKAGE}.copyright",
            "split": split_of(name), "max_seconds": max_seconds, "renderer": "hydrogen"}
    with tempfile.TemporaryDirectory(prefix="hydrogen_") as work:
        return render_song(song, song_dir, meta=meta, max_seconds=max_seconds,
                           render=render or h2cli_render(Path(work)))


def build(out: Path, *, jobs: int = 1, only: list[str] | None = None,
          max_seconds: float = MAX_SECONDS, cache: Path | None = None) -> dict[str, list[dict]]:
    """Build (or finish) the Hydrogen multitracks; the meta of every song. ``jobs`` songs at
    once, each with `RENDERS_AT_ONCE` exports; failures are printed and leave no meta.json."""
    del cache  # the songs are read where Debian installs them
    ensure_hydrogen()
    stanzas = recipe.copy_copyright(PACKAGE, Path("/"), out)
    paths = [p for p in song_files() if not only or song_name(p) in only or p.stem in only]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(build_song, p, out, stanzas=stanzas, max_seconds=max_seconds):
                   song_name(p) for p in paths}
        return {PACKAGE: recipe.finished_songs(futures)}


def main(argv: list[str] | None = None) -> int:
    parser = recipe.multitrack_parser(__doc__.split("\n\n")[0],
                                      only="these songs only (file stems or song names)",
                                      max_seconds=MAX_SECONDS)
    parser.set_defaults(cache=None)  # the songs are read where Debian installs them
    return recipe.run_multitracks(build, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
