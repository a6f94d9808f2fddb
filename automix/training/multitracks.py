"""General-MIDI multitracks: dry stems and the author's mix decisions, in real units.

For one MIDI song, every channel that plays notes becomes one stem: a MIDI file of that channel
alone with the author's mix controllers neutralised (CC7 volume 100, CC10 pan 64, CC91 reverb
and CC93 chorus 0; notes, programs, pitch bends and CC11 expression kept). Rendered with
FluidSynth's reverb and chorus off it is the dry stem; the full original MIDI rendered with
effects on is the author's mix. The author's decisions per channel (`channel_decisions`) go to
``meta.json`` in dB, pan -1..1 and send fractions 0..1::

    DIR/multitracks/<song>/stems/NN_<name>.flac   dry
    DIR/multitracks/<song>/author_mix.flac
    DIR/multitracks/<song>/meta.json

Status: the MIDI splitting and the units are done and tested; `render_song` needs the
``fluidsynth`` binary and a GM soundfont (apt: fluidsynth fluid-soundfont-gm).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import mido

DRY_VOLUME = 100
CENTRE_PAN = 64
MIX_CONTROLS = {7: DRY_VOLUME, 10: CENTRE_PAN, 91: 0, 93: 0}  # CC number -> neutral value
DEFAULT_CC = {7: 100, 10: 64, 91: 40, 93: 0}  # GM power-on values
SOUNDFONT = Path("/usr/share/sounds/sf2/default-GM.sf2")  # fluid-soundfont-gm


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
    program, and whether it is the GM drum channel (10, index 9). Means weight each value by
    how long it holds, in ticks; a controller never sent keeps its GM power-on value."""
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
        out[ch] = {
            "program": program, "drums": ch == 9,
            "level_db": round(cc7_to_db(initial[7]), 2),
            "mean_level_db": round(cc7_to_db(mean[7]), 2),
            "pan": round(cc10_to_pan(initial[10]), 3),
            "reverb_send": round(cc_to_send(initial[91]), 3),
            "chorus_send": round(cc_to_send(initial[93]), 3),
        }
    return out


def dry_channel(midi: mido.MidiFile, channel: int) -> mido.MidiFile:
    """`midi` with only `channel`'s messages (and all meta messages, tempo included), its mix
    controllers pinned to `MIX_CONTROLS` at the start and every later change dropped."""
    out = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
    for i, track in enumerate(midi.tracks):
        new = mido.MidiTrack()
        if i == 0:
            new.extend(mido.Message("control_change", channel=channel, control=cc, value=v)
                       for cc, v in MIX_CONTROLS.items())
        pending = 0
        for m in track:
            keep = m.is_meta or (getattr(m, "channel", None) == channel and not (
                m.type == "control_change" and m.control in MIX_CONTROLS))
            if keep and m.type != "end_of_track":
                new.append(m.copy(time=m.time + pending))
                pending = 0
            else:
                pending += m.time
        new.append(mido.MetaMessage("end_of_track", time=pending))
        out.tracks.append(new)
    return out


def render(midi_path: Path, wav_path: Path, *, effects: bool, soundfont: Path = SOUNDFONT,
           gain: float = 0.5) -> None:
    """Render one MIDI file with FluidSynth at 44.1 kHz (reverb and chorus off when not
    `effects`)."""
    flags = [] if effects else ["-R", "0", "-C", "0"]
    subprocess.run(["nice", "-n", "10", "fluidsynth", "-ni", *flags, "-F", str(wav_path),
                    "-r", "44100", "-g", str(gain), str(soundfont), str(midi_path)],
                   check=True, capture_output=True)


def can_render(soundfont: Path = SOUNDFONT) -> bool:
    return shutil.which("fluidsynth") is not None and soundfont.exists()


def render_song(midi_path: Path, song_dir: Path, *, meta: dict,
                soundfont: Path = SOUNDFONT) -> dict:
    """Dry stems, the author's mix and meta.json for one MIDI song (skips what exists)."""
    import soundfile as sf

    midi = mido.MidiFile(str(midi_path))
    decisions = channel_decisions(midi)
    stems = song_dir / "stems"
    stems.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(midi, song_dir / "author_mix.flac", True)]
        for ch in decisions:
            jobs.append((dry_channel(midi, ch), stems / f"{ch + 1:02d}_ch{ch + 1}.flac", False))
        for m, target, effects in jobs:
            if target.exists():
                continue
            mid, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
            m.save(str(mid))
            render(mid, wav, effects=effects, soundfont=soundfont)
            x, sr = sf.read(wav, dtype="float32")
            part = target.with_suffix(".part.flac")
            sf.write(part, x, sr, subtype="PCM_16")
            part.replace(target)
    info = {**meta, "channels": {f"{ch + 1:02d}_ch{ch + 1}": d for ch, d in decisions.items()}}
    tmp_meta = song_dir / "meta.json.part"
    tmp_meta.write_text(json.dumps(info, indent=1))
    tmp_meta.replace(song_dir / "meta.json")
    return info


def _absolute(track):
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
