"""The GM multitrack recipe: controller units and per-channel dry MIDI."""

import math

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
    dry = mt.dry_channel(song, 0)
    msgs = [m for t in dry.tracks for m in t if not m.is_meta]
    assert {m.channel for m in msgs} == {0}
    ccs = [(m.control, m.value) for m in msgs if m.type == "control_change"]
    assert sorted(ccs) == sorted(mt.MIX_CONTROLS.items())
    assert len([m for m in msgs if m.type == "note_on"]) == 5
    assert dry.length == pytest.approx(song.length, abs=1e-6)
