"""The GM multitrack recipe: controller units, per-channel MIDI, WAD lumps, stem names, and one
song rendered with FluidSynth (skipped without it)."""

import math

import numpy as np
import pytest

mido = pytest.importorskip("mido")

from automix.training import multitracks as mt  # noqa: E402


def test_cc_units_follow_the_gm_formulas():
    assert mt.cc7_to_db(127) == 0.0
    assert mt.cc7_to_db(64) == pytest.approx(-11.9, abs=0.05)
    assert mt.cc7_to_db(0) == -math.inf
    assert (mt.cc10_to_pan(0), mt.cc10_to_pan(64), mt.cc10_to_pan(127)) == (-1.0, 0.0, 1.0)
    assert mt.cc_to_send(127) == 1.0 and mt.cc_to_send(0) == 0.0


def _song():
    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    for ch, (vol, pan, rev) in {0: (64, 0, 90), 9: (127, 127, 0)}.items():
        t = mido.MidiTrack()
        t.append(mido.Message("program_change", channel=ch, program=24 if ch == 0 else 0))
        for cc, v in ((7, vol), (10, pan), (91, rev)):
            t.append(mido.Message("control_change", channel=ch, control=cc, value=v))
        for _ in range(4):
            t.append(mido.Message("note_on", channel=ch, note=60, velocity=100))
            t.append(mido.Message("note_off", channel=ch, note=60, time=480))
        t.append(mido.Message("control_change", channel=ch, control=7, value=127))
        t.append(mido.Message("note_on", channel=ch, note=62, velocity=100))
        t.append(mido.Message("note_off", channel=ch, note=62, time=1920))
        midi.tracks.append(t)
    return midi


def test_decisions_are_read_per_channel_in_real_units():
    d = mt.channel_decisions(_song())
    assert sorted(d) == [0, 9]
    assert d[0]["level_db"] == pytest.approx(mt.cc7_to_db(64), abs=0.01)
    assert d[0]["pan"] == -1.0 and d[0]["reverb_send"] == pytest.approx(90 / 127, abs=1e-3)
    assert d[0]["program"] == 24 and not d[0]["drums"] and d[9]["drums"]
    assert mt.cc7_to_db(64) < d[0]["mean_level_db"] < 0.0  # half the time at 64, half at 127


def test_dry_channel_keeps_notes_and_neutralises_the_mix_controls():
    song = _song()
    dry = mt.channel_only(song, 0, dry=True)
    msgs = [m for t in dry.tracks for m in t if not m.is_meta]
    assert {m.channel for m in msgs} == {0}
    ccs = [(m.control, m.value) for m in msgs if m.type == "control_change"]
    assert sorted(ccs) == sorted(mt.MIX_CONTROLS.items())
    assert len([m for m in msgs if m.type == "note_on"]) == 5
    assert dry.length == pytest.approx(song.length, abs=1e-6)


def _wad(lumps: list[tuple[str, bytes]], ident: bytes = b"PWAD") -> bytes:
    """A WAD file: header, the lumps' data, then the directory."""
    import struct

    body, entries, offset = b"", b"", 12
    for name, data in lumps:
        entries += struct.pack("<ii8s", offset, len(data), name.encode("ascii"))
        body += data
        offset += len(data)
    return struct.pack("<4sii", ident, len(lumps), offset) + body + entries


def test_wad_directory_and_music_lumps():
    from automix.training import wad

    midi = b"MThd\x00\x00\x00\x06" + b"\x00" * 6
    data = _wad([("MAP01", b"\x01" * 7), ("D_RUNNIN", midi), ("D_STALKS", b"MUS\x1a" + b"\0" * 8),
                 ("DEMO1", b"MThd")])
    found = wad.lumps(data)
    assert [lump.name for lump in found] == ["MAP01", "D_RUNNIN", "D_STALKS", "DEMO1"]
    assert found[0].data == b"\x01" * 7 and found[1].data == midi
    music, mus = wad.music_lumps(data)
    assert [lump.name for lump in music] == ["D_RUNNIN"] and mus == 1  # DEMO1 is no music
    with pytest.raises(ValueError, match="not a WAD"):
        wad.lumps(b"RIFF" + data[4:])
    with pytest.raises(ValueError, match="outside"):
        wad.lumps(data[:-5])


def test_stems_are_named_by_gm_program_and_channel():
    assert mt.gm_name(0) == "Acoustic Grand Piano" and mt.gm_name(127) == "Gunshot"
    assert len(mt.GM_PROGRAMS) == 128
    assert mt.stem_name(2, 32) == "03_acoustic_bass"
    assert mt.stem_name(9, 0, drums=True) == "10_drums"
    assert mt.stem_name(0, 24) == "01_acoustic_guitar_nylon"
    with pytest.raises(ValueError, match="0..127"):
        mt.gm_name(128)


def test_the_stem_names_give_automix_roles():
    from automix.mixing.roles import role_from_name

    assert role_from_name(mt.stem_name(9, 0, drums=True) + ".flac") == "drums"
    assert role_from_name(mt.stem_name(2, 33) + ".flac") == "bass"


def test_wet_channel_keeps_the_authors_controllers():
    wet = mt.channel_only(_song(), 0, dry=False)
    ccs = [(m.control, m.value) for t in wet.tracks for m in t if m.type == "control_change"]
    assert ccs == [(7, 64), (10, 0), (91, 90), (7, 127)]


def test_ending_cuts_the_midi_releases_the_notes_and_stops_every_voice():
    song = _song()  # 4 beats at 120 bpm, then a 4-beat note: 4 s
    cut = mt.ended(song, 0.9)
    assert cut.length == pytest.approx(0.9 + mt.TAIL_SECONDS, abs=1e-3)
    controls = [m.control for m in cut.tracks[0] if m.type == "control_change"]
    assert [controls.count(cc) for cc in (64, 123, 120)] == [16, 16, 16]
    notes = [m for t in cut.tracks for m in t if m.type == "note_on"]
    assert len(notes) == 4  # notes at 0 and 0.5 s on each of two channels
    assert mt.ended(song, 10.0).length == pytest.approx(4.0 + mt.TAIL_SECONDS, abs=1e-3)


def test_split_follows_the_sha1_rule():
    from automix.training.data import is_held_out, is_validation

    for name in (f"freedoom__song{i}" for i in range(40)):
        split = mt.split_of(name)
        assert (split == "held_out") == is_held_out(name)
        assert (split == "validation") == is_validation(name)


def test_readme_credits_read_composer_and_licence():
    text = ("- 5.ogg (Tavern)\n  Composed by Someone <a@b>\n\n"
            "- 7.mid (Darklands)\n\n  Composed by Joshua O'Leary <j@o> for FreeDink!\n\n"
            "  +Copyright (C) 2008  Joshua O'Leary\n  +License: GPLv3+\n\n"
            "- 13.mid (Church)\n  \"Canon\" by Johann Pachelbel\n  +License: public domain\n")
    assert mt.readme_credits(text, "7.mid") == {"composer": "Joshua O'Leary",
                                                "licence": "GPLv3+"}
    assert mt.readme_credits(text, "13.mid")["composer"] == "Johann Pachelbel"
    assert mt.readme_credits(text, "1.mid") == {}


def _songs_package(tmp_path):
    """An unpacked package with one MIDI file and a WAD holding the same song again."""
    root = tmp_path / "pkg"
    (root / "usr/share/doc/pkg").mkdir(parents=True)
    (root / "usr/share/doc/pkg/copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2001 Jane Composer <j@c>\nLicense: GPL-2+\n")
    path = root / "music" / "theme.mid"
    path.parent.mkdir()
    _song().save(str(path))
    (root / "music" / "game.wad").write_bytes(_wad([("D_THEME", path.read_bytes())]))
    return root


def test_songs_of_a_package_are_found_once(tmp_path):
    songs, notes = mt.package_songs("pkg", _songs_package(tmp_path))
    assert [s.name for s in songs] == ["pkg__game_d_theme"]  # the WAD comes first by name
    assert songs[0].source == "music/game.wad!D_THEME"
    assert len(notes) == 1 and "same MIDI" in notes[0]


@pytest.mark.skipif(not mt.can_render(), reason="needs fluidsynth and fluid-soundfont-gm")
def test_a_song_renders_with_meta_in_real_units(tmp_path):
    import json

    import soundfile as sf

    root = _songs_package(tmp_path)
    songs, _ = mt.package_songs("pkg", root)
    stanzas = [{"files": "*", "copyright": "2001 Jane Composer <j@c>", "license": "GPL-2+"}]
    meta = mt.build_song(songs[0], tmp_path / "out", root=root, stanzas=stanzas,
                         max_seconds=3.0)
    song = tmp_path / "out" / "multitracks" / "pkg__game_d_theme"
    on_disk = json.loads((song / "meta.json").read_text())
    assert on_disk == meta
    assert meta["licence"] == "GPL-2+" and meta["composer"] == "Jane Composer"
    assert meta["split"] == mt.split_of("pkg__game_d_theme") and meta["package"] == "pkg"
    assert sorted(meta["stems"]) == ["01_acoustic_guitar_nylon", "10_drums"]
    guitar = meta["stems"]["01_acoustic_guitar_nylon"]
    assert guitar["level_db"] == pytest.approx(-11.9, abs=0.05) and guitar["pan"] == -1.0
    assert guitar["reverb_send"] == pytest.approx(0.709, abs=1e-3) and guitar["channel"] == 1
    assert meta["stems"]["10_drums"]["drums"] and meta["stems"]["10_drums"]["gm_name"] == "Drums"
    files = {p.relative_to(song).as_posix() for p in song.rglob("*.flac")}
    assert files == {"master.flac", "mix_sum.flac", "stems/01_acoustic_guitar_nylon.flac",
                     "stems/10_drums.flac", "wet/01_acoustic_guitar_nylon.flac",
                     "wet/10_drums.flac"}
    audio = {f: sf.read(song / f, dtype="float32", always_2d=True)[0] for f in files}
    assert len({x.shape for x in audio.values()}) == 1  # one length, stereo
    seconds = audio["master.flac"].shape[0] / 44100
    assert 3.0 + mt.TAIL_SECONDS <= seconds < 3.0 + mt.TAIL_SECONDS + 3.0  # cut, ring, stop
    dry_sum = audio["stems/01_acoustic_guitar_nylon.flac"] + audio["stems/10_drums.flac"]
    np.testing.assert_array_equal(audio["mix_sum.flac"], dry_sum)  # exact
    wet = audio["wet/01_acoustic_guitar_nylon.flac"]
    assert np.abs(wet[:, 1]).sum() < 0.3 * np.abs(wet[:, 0]).sum()  # hard left (+ reverb)
    dry = audio["stems/01_acoustic_guitar_nylon.flac"]
    assert np.abs(dry[:, 1]).sum() > 0.5 * np.abs(dry[:, 0]).sum()  # dry: centred
    mt.build_song(songs[0], tmp_path / "out", root=root, stanzas=[], max_seconds=3.0)
    assert json.loads((song / "meta.json").read_text()) == meta  # idempotent: kept


def test_ending_follows_the_tempo_that_holds_at_the_cut():
    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000),
                           mido.MetaMessage("set_tempo", tempo=1000000)])  # the later holds
    notes = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90),
                            mido.Message("note_off", note=60, time=4 * 480)])
    midi.tracks.extend([meta, notes])
    assert midi.length == pytest.approx(4.0)  # 4 beats at 60 bpm
    assert mt.ended(midi, 2.0).length == pytest.approx(2.0 + mt.TAIL_SECONDS, abs=1e-3)
    assert mt.ended(midi, 10.0).length == pytest.approx(4.0 + mt.TAIL_SECONDS, abs=1e-3)
