"""General-MIDI multitracks: dry stems, wet stems and the author's mix, with the author's mix
decisions in real units.

For one MIDI song, every channel that plays notes becomes one stem: a MIDI file of that channel
alone with the author's mix controllers neutralised (CC7 volume 100, CC10 pan 64, CC91 reverb
and CC93 chorus 0; notes, programs, pitch bends and CC11 expression kept), rendered with
FluidSynth's reverb and chorus off, is the dry stem; the same channel alone with its
controllers as the author wrote them and the effects on is the wet stem, its share of the
author's mix; the whole file rendered with effects on is the author's mix::

    DIR/multitracks/<song>/stems/NN_<gm name>.flac   dry (NN: the MIDI channel, 1..16)
    DIR/multitracks/<song>/wet/NN_<gm name>.flac     as in the author's mix
    DIR/multitracks/<song>/master.flac               the author's mix
    DIR/multitracks/<song>/mix_sum.flac              the exact sum of the dry stems
    DIR/multitracks/<song>/meta.json                 source, licence, split, per-stem decisions
    DIR/licenses/<package>.copyright

The author's decisions per channel (`channel_decisions`) go to ``meta.json`` in dB, pan -1..1
and send fractions 0..1. The songs come from three Debian packages (`PACKAGES`): MIDI files,
and the MIDI music lumps of Freedoom's WADs (`training.wad`). Run it as root on Debian 12 (it
installs fluidsynth and fluid-soundfont-gm when missing, and downloads the packages)::

    python -m automix.training.multitracks DIR [--jobs 1] [--only PACKAGE ...] [--max-seconds 150]

Songs longer than ``--max-seconds`` are cut there (their MIDI, before rendering); every song
ends with its notes released and, `TAIL_SECONDS` later, every voice stopped. It skips songs
whose meta.json exists, and writes every file atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from automix.training import recipe, wad
from automix.training.data import split_of

DRY_VOLUME = 100
CENTRE_PAN = 64
MIX_CONTROLS = {7: DRY_VOLUME, 10: CENTRE_PAN, 91: 0, 93: 0}  # CC number -> neutral value
DEFAULT_CC = {7: 100, 10: 64, 91: 40, 93: 0}  # FluidSynth's power-on values (GS: reverb 40)
DRUM_CHANNEL = 9  # GM channel 10
DEFAULT_TEMPO = 500000  # µs per beat (120 bpm) until a set_tempo says otherwise
SOUNDFONT = Path("/usr/share/sounds/sf2/default-GM.sf2")  # fluid-soundfont-gm
APT_PACKAGES = ("fluidsynth", "fluid-soundfont-gm")
SYNTH_GAIN = 0.15  # FluidSynth's master gain: loud songs (Freedoom) stay below full scale
MAX_SECONDS = 150.0  # longer songs are cut here (some loop for half an hour)
TAIL_SECONDS = 2.0  # after the cut, notes ring out this long before every voice is stopped
RENDER_TIMEOUT_S = 600.0  # one FluidSynth render; a song that takes longer fails
PACKAGES = ("planetblupi-music-midi", "freedink-data", "freedoom")
MIDI_SUFFIXES = (".mid", ".midi")

# The 128 General MIDI Level 1 program names, program 0..127.
# fmt: off
GM_PROGRAMS = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel",
    "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion",
    "Harmonica", "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)",
    "Electric Guitar (jazz)", "Electric Guitar (clean)", "Electric Guitar (muted)",
    "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics", "Acoustic Bass",
    "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1",
    "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola", "Cello", "Contrabass",
    "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani", "String Ensemble 1",
    "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs",
    "Synth Voice", "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2", "Soprano Sax", "Alto Sax",
    "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet", "Piccolo",
    "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)",
    "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)",
    "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)", "FX 1 (rain)", "FX 2 (soundtrack)",
    "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)", "FX 6 (goblins)",
    "FX 7 (echoes)", "FX 8 (sci-fi)", "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba",
    "Bagpipe", "Fiddle", "Shanai", "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock",
    "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal", "Guitar Fret Noise",
    "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause",
    "Gunshot",
)
# fmt: on


def gm_name(program: int, *, drums: bool = False) -> str:
    """The GM instrument name of a program (0..127), "Drums" on the drum channel."""
    if drums:
        return "Drums"
    if not 0 <= program < len(GM_PROGRAMS):
        raise ValueError(f"GM program must be 0..127, got {program}")
    return GM_PROGRAMS[program]


def stem_name(channel: int, program: int, *, drums: bool = False) -> str:
    """A stem's file name without suffix: the channel (1..16) and the GM name,
    e.g. ``03_acoustic_bass``, ``10_drums``: a name automix's roles can read."""
    return f"{channel + 1:02d}_{recipe.slug(gm_name(program, drums=drums))}"


# --- the author's decisions -----------------------------------------------------------------


def cc7_to_db(value: float) -> float:
    """GM channel volume to gain in dB: 40*log10(cc7/127) (GM Level 1 recommendation)."""
    return -math.inf if value <= 0 else 40.0 * math.log10(value / 127.0)


def cc10_to_pan(value: float) -> float:
    """GM pan 0..127 (64 centre) to -1 (left) .. +1 (right)."""
    return max(-1.0, min(1.0, (value - 64.0) / 63.0))


def cc_to_send(value: float) -> float:
    """A reverb (CC91) or chorus (CC93) send 0..127 as a fraction 0..1."""
    return max(0.0, min(1.0, value / 127.0))


def note_channels(midi: mido.MidiFile) -> list[int]:
    """The channels that play at least one note, in order."""
    return sorted({m.channel for t in midi.tracks for m in t
                   if m.type == "note_on" and m.velocity > 0})


def channel_decisions(midi: mido.MidiFile) -> dict[int, dict]:
    """Per note-playing channel: initial and mean volume (dB), pan, reverb and chorus sends,
    program, its GM name, and whether it is the GM drum channel (10, index 9). Means weight
    each value by how long it holds, in ticks; a controller never sent keeps its power-on
    value (`DEFAULT_CC`)."""
    channels = note_channels(midi)
    out: dict[int, dict] = {}
    events = sorted(((tick, m) for t in midi.tracks for tick, m in _absolute(t)),
                    key=lambda e: e[0])
    end = max((tick for tick, _ in events), default=0)
    for ch in channels:
        values = {cc: [(0, DEFAULT_CC[cc])] for cc in DEFAULT_CC}
        program = 0
        first_note = next((tick for tick, m in events if m.type == "note_on"
                           and m.channel == ch and m.velocity > 0), 0)
        for tick, m in events:
            if getattr(m, "channel", None) != ch:
                continue
            if m.type == "control_change" and m.control in values:
                values[m.control].append((tick, m.value))
            elif m.type == "program_change" and tick <= first_note:
                program = m.program
        initial = {cc: _value_at(v, first_note) for cc, v in values.items()}
        mean = {cc: _time_mean(v, first_note, end) for cc, v in values.items()}
        drums = ch == DRUM_CHANNEL
        out[ch] = {
            "channel": ch + 1, "program": program, "gm_name": gm_name(program, drums=drums),
            "drums": drums,
            "level_db": round(cc7_to_db(initial[7]), 2),
            "mean_level_db": round(cc7_to_db(mean[7]), 2),
            "pan": round(cc10_to_pan(initial[10]), 3),
            "reverb_send": round(cc_to_send(initial[91]), 3),
            "chorus_send": round(cc_to_send(initial[93]), 3),
        }
    return out


# --- MIDI files per channel ------------------------------------------------------------------


def channel_only(midi: mido.MidiFile, channel: int, *, dry: bool) -> mido.MidiFile:
    """`midi` with only `channel`'s messages (and every meta and sysex message, tempo
    included). When `dry`, its mix controllers are pinned to `MIX_CONTROLS` at the start and
    every later change is dropped; otherwise they stay as the author wrote them."""
    out = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
    for i, track in enumerate(midi.tracks):
        new = mido.MidiTrack()
        if i == 0 and dry:
            new.extend(mido.Message("control_change", channel=channel, control=cc, value=v)
                       for cc, v in MIX_CONTROLS.items())
        pending = 0
        for m in track:
            ours = m.is_meta or m.type == "sysex" or getattr(m, "channel", None) == channel
            mix = m.type == "control_change" and m.control in MIX_CONTROLS
            if ours and not (dry and mix) and m.type != "end_of_track":
                new.append(m.copy(time=m.time + pending))
                pending = 0
            else:
                pending += m.time
        new.append(mido.MetaMessage("end_of_track", time=pending))
        out.tracks.append(new)
    return out


def ended(midi: mido.MidiFile, seconds: float, *, tail_s: float = TAIL_SECONDS
          ) -> mido.MidiFile:
    """`midi` cut at `seconds` (the whole song when shorter): later messages dropped, every
    channel's sustain pedal lifted and notes released there (CC64 0, CC123), and every voice
    stopped `tail_s` later (CC120 all sound off), where the file ends. FluidSynth renders
    until its last voice is silent, and a held looping sample never is."""
    limit = _tick_at(midi, seconds)
    if limit is None:
        limit = max(sum(m.time for m in t) for t in midi.tracks)
    tempo = ([t for tick, t in _tempos(midi) if tick <= limit] or [DEFAULT_TEMPO])[-1]
    tail = round(mido.second2tick(tail_s, midi.ticks_per_beat, tempo))
    out = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
    for i, track in enumerate(midi.tracks):
        new, last = mido.MidiTrack(), 0
        for tick, m in _absolute(track):
            if tick > limit:
                break
            if m.type != "end_of_track":
                new.append(m.copy(time=tick - last))
                last = tick
        if i == 0:
            for cc, delay in ((64, limit - last), (123, 0), (120, tail)):
                new.extend(mido.Message("control_change", channel=ch, control=cc, value=0,
                                        time=delay if ch == 0 else 0) for ch in range(16))
            last = limit + tail
        new.append(mido.MetaMessage("end_of_track", time=max(0, limit + tail - last)))
        out.tracks.append(new)
    return out


def _tempos(midi: mido.MidiFile) -> list[tuple[int, int]]:
    """(tick, tempo in µs per beat) of every tempo change, in time order (file order within
    a tick: the later one holds)."""
    return sorted(((tick, m.tempo) for t in midi.tracks for tick, m in _absolute(t)
                   if m.type == "set_tempo"), key=lambda change: change[0])


def _tick_at(midi: mido.MidiFile, seconds: float) -> int | None:
    """The tick at `seconds` from the start (tempo changes followed), None past the end."""
    end = max((sum(m.time for m in t) for t in midi.tracks), default=0)
    tick, tempo, elapsed = 0, DEFAULT_TEMPO, 0.0
    for at, new_tempo in [*_tempos(midi), (end, None)]:
        span = mido.tick2second(at - tick, midi.ticks_per_beat, tempo)
        if elapsed + span >= seconds:
            return tick + round(mido.second2tick(seconds - elapsed, midi.ticks_per_beat, tempo))
        elapsed, tick = elapsed + span, at
        tempo = new_tempo or tempo
    return None


# --- rendering --------------------------------------------------------------------------------


def render(midi_path: Path, wav_path: Path, *, effects: bool, soundfont: Path = SOUNDFONT,
           gain: float = SYNTH_GAIN) -> None:
    """Render one MIDI file with FluidSynth at 44.1 kHz (reverb and chorus off when not
    `effects`)."""
    flags = [] if effects else ["-R", "0", "-C", "0"]
    subprocess.run(["nice", "-n", "10", "fluidsynth", "-ni", "-q", *flags, "-F", str(wav_path),
                    "-O", "float", "-r", str(recipe.SAMPLE_RATE), "-g", str(gain), str(soundfont),
                    str(midi_path)], check=True, capture_output=True, timeout=RENDER_TIMEOUT_S)


def can_render(soundfont: Path = SOUNDFONT) -> bool:
    return shutil.which("fluidsynth") is not None and soundfont.exists()


def ensure_fluidsynth(soundfont: Path = SOUNDFONT) -> None:
    """Install FluidSynth and the GM soundfont with apt-get when missing (root only)."""
    if not can_render(soundfont):
        recipe.apt_install(APT_PACKAGES, recommends=False)


def render_audio(midi: mido.MidiFile, *, effects: bool, soundfont: Path = SOUNDFONT
                 ) -> np.ndarray:
    """FluidSynth's render of `midi`: (2, n) float32 at 44.1 kHz."""
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
        midi.save(str(mid))
        render(mid, wav, effects=effects, soundfont=soundfont)
        x, _ = sf.read(wav, dtype="float32", always_2d=True)
    return recipe.to_stereo_44k(x.T, recipe.SAMPLE_RATE)


# --- songs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Song:
    """One MIDI song of a package: its name in the data folder and where it came from."""

    name: str  # <package>__<title>
    package: str
    source: str  # path inside the package, "<wad>!<lump>" for a WAD's lump
    data: bytes


def package_songs(package: str, root: Path) -> tuple[list[Song], list[str]]:
    """The MIDI songs of an unpacked package (files, and MIDI music lumps of WADs; a lump
    already seen in another WAD is taken once), and notes on what was skipped."""
    songs, notes, seen = [], [], set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(path.relative_to(root))
        if path.suffix.lower() in MIDI_SUFFIXES:
            found = [(rel, path.stem, path.read_bytes())]
        elif path.suffix.lower() == ".wad":
            midi, mus = wad.music_lumps(path.read_bytes())
            if mus:
                notes.append(f"{package}: {rel}: {mus} DMX MUS music lumps skipped")
            found = [(f"{rel}!{lump.name}", f"{path.stem}_{lump.name}", lump.data)
                     for lump in midi]
        else:
            continue
        for source, title, data in found:
            digest = hashlib.sha1(data).hexdigest()
            if digest in seen:
                notes.append(f"{package}: {source}: the same MIDI as an earlier song, skipped")
                continue
            seen.add(digest)
            songs.append(Song(f"{package}__{recipe.slug(title)}", package, source, data))
    return songs, notes


def midi_credits(midi: mido.MidiFile) -> str:
    """The text of the file's copyright meta messages (often the composer), joined."""
    texts = [m.text.strip() for t in midi.tracks for m in t if m.type == "copyright"]
    return "; ".join(t for t in texts if t)


def readme_credits(text: str, file_name: str) -> dict[str, str]:
    """Composer and licence of ``file_name`` from a credits list in FreeDink's
    README-REPLACEMENTS style (``- 7.mid (...)`` then "Composed by NAME <mail>" and
    "+License: ..."); empty when the file is not listed."""
    blocks = re.split(r"\n(?=- \S)", text)
    block = next((b for b in blocks if re.match(rf"- {re.escape(file_name)}\b", b)), "")
    out = {}
    composer = re.search(r"[Cc]omposed by ([^<\n]+)", block) or \
        re.search(r"^\s*\"[^\"]+\" by ([^\n]+)", block, re.M)
    if composer:
        out["composer"] = composer.group(1).strip(" ,.!")
    licence = re.search(r"\+License: ([^\n]+)", block)
    if licence:
        out["licence"] = licence.group(1).strip()
    return out


def song_credits(song: Song, midi: mido.MidiFile, root: Path,
                 stanzas: list[dict[str, str]]) -> dict[str, str]:
    """Composer and licence of a song: the package's DEP-5 stanza for the file, refined by a
    credits list beside it (`readme_credits`) and the MIDI file's own copyright text."""
    path = song.source.split("!")[0]
    stanza = recipe.stanza_for(stanzas, path)
    credits = {"composer": recipe.composer_of(stanza.get("copyright", "")),
               "licence": stanza.get("license", "").split("\n")[0].split(" ")[0]}
    for readme in sorted((root / "usr/share/doc" / song.package).glob("README-REPLACEMENTS*")):
        credits.update(readme_credits(_read_text(readme), Path(path).name))
    if midi_credits(midi):
        credits["midi_copyright"] = midi_credits(midi)
        credits["composer"] = credits["composer"] or recipe.composer_of(
            re.sub(r"(?i)copyright|\bby\b", "", midi_credits(midi)))
    if not credits["licence"]:
        credits["licence"] = f"see licenses/{song.package}.copyright"
    return credits


def render_song(midi: mido.MidiFile, song_dir: Path, *, meta: dict,
                soundfont: Path = SOUNDFONT) -> dict:
    """Dry and wet stems, the author's mix, the dry sum and meta.json for one MIDI song.

    Every file has the author's mix's length; meta.json is written last, so a song without it
    is unfinished (and rendered again by the next run)."""
    decisions = channel_decisions(midi)
    if not decisions:
        raise ValueError("no channel plays a note")
    master = render_audio(midi, effects=True, soundfont=soundfont)
    n = master.shape[1]
    for sub in ("stems", "wet"):
        (song_dir / sub).mkdir(parents=True, exist_ok=True)
    total = np.zeros_like(master)
    stems = {}
    for ch, facts in decisions.items():
        name = stem_name(ch, facts["program"], drums=facts["drums"])
        dry = recipe.quantised(recipe.fit_length(render_audio(channel_only(midi, ch, dry=True),
                                                effects=False, soundfont=soundfont), n))
        wet = recipe.fit_length(render_audio(channel_only(midi, ch, dry=False), effects=True,
                                      soundfont=soundfont), n)
        recipe.write_flac(song_dir / "stems" / f"{name}.flac", dry, {"title": name})
        recipe.write_flac(song_dir / "wet" / f"{name}.flac", wet, {"title": name})
        total += dry
        stems[name] = {**facts, "dry_peak_dbfs": recipe.peak_db(dry),
                       "wet_peak_dbfs": recipe.peak_db(wet)}
    recipe.write_flac(song_dir / "master.flac", master, {"title": meta.get("title", "")})
    recipe.write_flac(song_dir / "mix_sum.flac", total, {"title": meta.get("title", "")})
    info = {**meta, "duration_s": round(n / recipe.SAMPLE_RATE, 2),
            "mix_sum_peak_dbfs": recipe.peak_db(total), "stems": stems}
    recipe.write_json(song_dir / "meta.json", info)
    return info


def build_song(song: Song, out: Path, *, root: Path, stanzas: list[dict[str, str]],
               max_seconds: float, soundfont: Path = SOUNDFONT) -> dict:
    """Render one song into ``out/multitracks/<song>`` (nothing when its meta.json exists)."""
    song_dir = out / "multitracks" / song.name
    if (song_dir / "meta.json").exists():
        return json.loads((song_dir / "meta.json").read_text())
    midi = mido.MidiFile(file=io.BytesIO(song.data))
    meta = {"song": song.name, "package": song.package, "source": song.source,
            "title": Path(song.source.split("!")[-1]).stem,
            **song_credits(song, midi, root, stanzas), "split": split_of(song.name),
            "original_seconds": round(midi.length, 2), "max_seconds": max_seconds,
            "soundfont": soundfont.resolve().name, "renderer": "fluidsynth"}
    return render_song(ended(midi, max_seconds), song_dir, meta=meta, soundfont=soundfont)


def build(out: Path, *, jobs: int = 1, only: list[str] | None = None,
          max_seconds: float = MAX_SECONDS, cache: Path | None = None,
          soundfont: Path = SOUNDFONT) -> dict[str, list[dict]]:
    """Build (or finish) the MIDI multitracks of `PACKAGES`; the meta of every song, by
    package. Failures are printed and leave no meta.json."""
    ensure_fluidsynth(soundfont)
    cache = cache or out / ".build"
    done: dict[str, list[dict]] = {}
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for package in [p for p in PACKAGES if not only or p in only]:
            root = recipe.fetch_package(package, cache)
            stanzas = recipe.copy_copyright(package, root, out)
            songs, notes = package_songs(package, root)
            for note in notes:
                print(note, file=sys.stderr)
            futures = {pool.submit(build_song, s, out, root=root, stanzas=stanzas,
                                   max_seconds=max_seconds, soundfont=soundfont): s
                       for s in songs}
            done[package] = recipe.finished_songs({f: s.name for f, s in futures.items()})
    return done


def main(argv: list[str] | None = None) -> int:
    parser = recipe.multitrack_parser(__doc__.split("\n\n")[0], only="these packages only",
                                      choices=PACKAGES, max_seconds=MAX_SECONDS)
    parser.add_argument("--cache", type=Path, default=None,
                        help="where .deb files are unpacked (default DIR/.build)")
    return recipe.run_multitracks(build, parser.parse_args(argv))


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _absolute(track) -> Iterator[tuple[int, mido.Message]]:
    tick = 0
    for m in track:
        tick += m.time
        yield tick, m


def _value_at(values: list[tuple[int, int]], tick: int) -> int:
    return [v for t, v in values if t <= tick][-1]


def _time_mean(values: list[tuple[int, int]], start: int, end: int) -> float:
    if end <= start:
        return float(_value_at(values, start))
    total = 0.0
    points = [(start, _value_at(values, start))] + [(t, v) for t, v in values if start < t < end]
    for (t0, v), (t1, _) in zip(points, points[1:] + [(end, 0)], strict=True):
        total += v * (t1 - t0)
    return total / (end - start)


if __name__ == "__main__":
    sys.exit(main())
