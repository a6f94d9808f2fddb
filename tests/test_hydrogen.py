"""The Hydrogen recipe: which instruments a song plays, the author's strip in real units, the
solo and dry songs it exports, and a whole song written to the data layout by a stand-in for
h2cli that mixes the way Hydrogen does (volume times gain, its default pan law); where h2cli and
the GM kit are installed, a short song written by the test exported by Hydrogen itself."""

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import soundfile as sf

from automix.training import hydrogen
from automix.training.recipe import SAMPLE_RATE

SONG = """<?xml version="1.0" encoding="UTF-8"?>
<song>
 <version>1.2.0</version><bpm>120</bpm><volume>0.5</volume><name>Test beat</name>
 <author>A. Drummer</author><mode>song</mode>
 <pan_law_type>RATIO_STRAIGHT_POLYGONAL</pan_law_type>
 <humanize_time>0.2</humanize_time><humanize_velocity>0.3</humanize_velocity>
 <swing_factor>0</swing_factor>
 <instrumentList>
  {instruments}
 </instrumentList>
 <patternList>
  <pattern><name>A</name><size>192</size><noteList>
   <note><position>0</position><velocity>0.8</velocity><pan>0</pan><instrument>0</instrument></note>
   <note><position>96</position><velocity>0.8</velocity><pan>0</pan><instrument>1</instrument></note>
  </noteList></pattern>
  <pattern><name>B</name><size>192</size><noteList>
   <note><position>0</position><velocity>0.8</velocity><pan>0</pan><instrument>2</instrument></note>
  </noteList></pattern>
 </patternList>
 <patternSequence><group><patternID>A</patternID></group><group><patternID>A</patternID></group>
 </patternSequence>
</song>"""
INSTRUMENT = """<instrument><id>{id}</id><name>{name}</name><drumkit>GMRockKit</drumkit>
 <volume>{volume}</volume><isMuted>false</isMuted><isSoloed>false</isSoloed><pan>{pan}</pan>
 <gain>{gain}</gain><FX1Level>0</FX1Level><FX2Level>0</FX2Level><FX3Level>0</FX3Level>
 <FX4Level>0</FX4Level></instrument>"""
KIT = (("0", "Kick", 0.5, 1.0, -0.5), ("1", "Snare", 1.0, 1.0, 0.0),
       ("2", "Hat Closed", 0.7, 1.0, 0.3))
TONE_HZ = {"0": 60.0, "1": 220.0, "2": 5000.0}


def song_xml(kit=KIT) -> ET.Element:
    text = SONG.format(instruments="".join(
        INSTRUMENT.format(id=i, name=n, volume=v, gain=g, pan=p)
        for i, n, v, g, p in kit))
    return ET.fromstring(text.split("?>", 1)[1])


def fake_h2cli(song: ET.Element) -> np.ndarray:
    """What Hydrogen's export does with a song of `song_xml`'s shape: each unmuted instrument
    of the sequenced patterns plays a decaying tone at its notes, times its volume, its gain and
    the master volume, panned by RATIO_STRAIGHT_POLYGONAL (left 1 - pan and right 1 + pan, each
    at most 1)."""
    beats = len(song.findall("patternSequence/group")) * 4
    n = int(beats * 0.5 * SAMPLE_RATE) + SAMPLE_RATE  # 120 bpm, then a second of tail
    out = np.zeros((2, n), np.float32)
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    master = float(song.findtext("volume"))
    for inst in hydrogen.instruments(song):
        key = inst.findtext("id")
        if inst.findtext("isMuted") == "true" or key not in hydrogen.played(song):
            continue
        s = hydrogen.strip(inst)
        tone = np.sin(2 * np.pi * TONE_HZ[key] * t) * np.exp(-t * 8) * 0.8
        pan = s["pan"]
        gains = np.array([min(1.0, 1.0 - pan), min(1.0, 1.0 + pan)]) * s["volume"] * s["gain"]
        for group in range(len(song.findall("patternSequence/group"))):
            for note in song.iterfind("patternList/pattern/noteList/note"):
                if note.findtext("instrument") != key:
                    continue
                start = int((group * 192 + int(note.findtext("position"))) / 48 * 0.5
                            * SAMPLE_RATE)
                out[:, start:start + t.size] += (gains[:, None] * master * tone).astype(np.float32)
    return out


def test_the_instruments_played_are_those_of_the_sequenced_patterns():
    assert hydrogen.played(song_xml()) == {"0", "1"}  # pattern B (the hat) is never sequenced


def test_the_strip_in_real_units_and_what_the_dry_stem_neutralises():
    song = song_xml(kit=(("0", "Kick", 0.5, 0.8, -0.5),))
    strip = hydrogen.instrument_decisions(song, hydrogen.instruments(song)[0])
    assert strip["level_db"] == pytest.approx(20 * np.log10(0.4), abs=0.01)
    assert strip["pan"] == -0.5 and strip["pan_law"] == "RATIO_STRAIGHT_POLYGONAL"
    assert strip["neutralised"] == ["volume", "gain", "pan"]
    assert strip["sends_to_effect"] is False  # no effect slot holds a plug-in
    snare = song_xml(kit=(("1", "Snare", 1.0, 1.0, 0.0),))
    assert hydrogen.instrument_decisions(snare, hydrogen.instruments(snare)[0])["neutralised"] == []


def test_an_instrument_sends_to_an_effect_only_through_an_enabled_slot():
    song = song_xml(kit=(("0", "Kick", 1.0, 1.0, 0.0),))
    kick = hydrogen.instruments(song)[0]
    kick.find("FX2Level").text = "0.4"
    slots = ET.SubElement(song, "ladspa")
    for enabled in ("false", "false", "false", "false"):
        fx = ET.SubElement(slots, "fx")
        ET.SubElement(fx, "name").text, ET.SubElement(fx, "enabled").text = "reverb", enabled
    assert hydrogen.effects(song) == [None] * 4
    assert not hydrogen.sends_to_effect(song, kick)  # a send to an empty slot
    slots[1].find("enabled").text = "true"
    assert hydrogen.effects(song)[1] == "reverb" and hydrogen.sends_to_effect(song, kick)
    kick.find("FX2Level").text = "0"
    assert not hydrogen.sends_to_effect(song, kick)


def test_a_solo_song_mutes_the_others_and_the_dry_one_neutralises_the_strip():
    song = hydrogen.exportable(song_xml())
    assert song.findtext("humanize_time") == "0" and song.findtext("humanize_velocity") == "0"
    assert float(song.findtext("volume")) == pytest.approx(0.5 * hydrogen.HEADROOM)
    dry = hydrogen.solo(song, "0", dry=True)
    kick, snare, hat = hydrogen.instruments(dry)
    assert kick.findtext("isMuted") == "false" and snare.findtext("isMuted") == "true" \
        and hat.findtext("isMuted") == "true"
    assert hydrogen.strip(kick) == hydrogen.NEUTRAL_STRIP
    wet = hydrogen.solo(song, "0", dry=False)
    assert hydrogen.strip(hydrogen.instruments(wet)[0])["volume"] == 0.5
    assert hydrogen.strip(hydrogen.instruments(song)[0])["volume"] == 0.5  # not changed


def test_a_song_is_written_per_instrument_with_the_authors_strip(tmp_path):
    song_dir = tmp_path / "multitracks" / "hydrogen-data__test"
    meta = hydrogen.render_song(song_xml(), song_dir, meta={"title": "Test beat"},
                                render=fake_h2cli, at_once=2)
    assert sorted(p.name for p in (song_dir / "stems").iterdir()) == ["01_kick.flac",
                                                                      "02_snare.flac"]
    kick = meta["stems"]["01_kick"]
    assert kick["level_db"] == pytest.approx(-6.02, abs=0.01) and kick["pan"] == -0.5
    dry, sr = sf.read(song_dir / "stems" / "01_kick.flac", always_2d=True)
    wet, _ = sf.read(song_dir / "wet" / "01_kick.flac", always_2d=True)
    assert sr == SAMPLE_RATE
    assert np.allclose(dry[:, 0], dry[:, 1], atol=1e-4)  # centred, unity
    ratio = np.sum(wet * dry, axis=0) / np.sum(dry * dry, axis=0)
    assert ratio == pytest.approx([0.5, 0.25], abs=0.01)  # volume 0.5; pan -0.5: right 0.5
    stems = sum(sf.read(p, always_2d=True)[0] for p in sorted((song_dir / "stems").iterdir()))
    total, _ = sf.read(song_dir / "mix_sum.flac", always_2d=True)
    assert np.max(np.abs(stems - total)) < 1e-4
    assert meta["wet_sum_error_db"] < -60.0  # the wet stems add up to the author's mix
    assert meta["humanize"] == {"humanize_time": 0.2, "humanize_velocity": 0.3}
    assert meta["master_volume"] == 0.5 and meta["silent_instruments"] == []
    master, _ = sf.read(song_dir / "master.flac", always_2d=True)
    assert np.max(np.abs(master)) < 1.0
    assert json.loads((song_dir / "meta.json").read_text())["stems"]["02_snare"]["pan"] == 0.0


def test_a_song_where_nothing_plays_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no instrument plays"):
        hydrogen.render_song(song_xml(kit=(("2", "Hat Closed", 0.7, 1.0, 0.3),)),
                             tmp_path / "song", meta={}, render=fake_h2cli)


DEMO = hydrogen.SONGS / "GM_kit_demo1.h2song"


@pytest.mark.skipif(shutil.which("h2cli") is None or not DEMO.exists(),
                    reason="Hydrogen (h2cli) and its demo songs are not installed")
def test_hydrogen_exports_a_song_per_instrument(tmp_path):
    """The first pattern of a demo song, its kick at half volume and panned left, exported by
    h2cli itself (real time, in parallel): the kick's wet stem is its dry one at that volume
    and Hydrogen's pan law, and the wet stems add up to Hydrogen's own export of the mix."""
    song = hydrogen.read_song(DEMO)
    sequence = song.find("patternSequence")
    for group in list(sequence)[1:]:
        sequence.remove(group)
    kick = hydrogen.instruments(song)[0]
    kick.find("volume").text, kick.find("pan").text = "0.5", "-0.5"
    meta = hydrogen.render_song(song, tmp_path / "song", meta={},
                                render=hydrogen.h2cli_render(tmp_path))
    assert meta["stems"]["01_kick"]["wet_lag_samples"] == 0
    dry, _ = sf.read(tmp_path / "song" / "stems" / "01_kick.flac", always_2d=True)
    wet, _ = sf.read(tmp_path / "song" / "wet" / "01_kick.flac", always_2d=True)
    ratio = np.sum(wet * dry, axis=0) / np.sum(dry * dry, axis=0)
    assert ratio == pytest.approx([0.5, 0.25], abs=0.01)
    assert meta["wet_sum_error_db"] < -40.0
