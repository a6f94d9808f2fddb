"""The LMMS multitrack recipe without LMMS: a project's tracks in render order, the author's
decisions and effects in real units, and the dry, wet and cut projects, on a small project
written for these tests (tests/data/lmms_tiny.mmp)."""

import math
import os
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest

from automix.training import lmms
from automix.training import lmms_effects as fx

TINY = Path(__file__).parent / "data" / "lmms_tiny.mmp"
PORTS = {  # input control ports as the installed plug-ins' descriptors name them
    ("calf", "Compressor"): {4: "Bypass", 5: "Input", 10: "Threshold", 11: "Ratio",
                             12: "Attack", 13: "Release", 14: "Makeup Gain", 15: "Knee",
                             16: "Detection", 17: "Stereo Link"},
    ("calf", "Reverb"): {7: "Decay time", 8: "High Frq Damp", 9: "Room size",
                         10: "Diffusion", 11: "Wet Amount", 12: "Dry Amount", 13: "Pre Delay",
                         14: "Bass Cut", 15: "Treble Cut"},
    ("caps", "Plate2x2"): {2: "bandwidth", 3: "tail", 4: "damping", 5: "blend"},
    ("fast_lookahead_limiter_1913", "fastLookaheadLimiter"): {
        0: "Input gain (dB)", 1: "Limit (dB)", 2: "Release time (s)"},
}


@pytest.fixture
def plugins(monkeypatch):
    ports = {key: {i: fx.Port(name, None, None) for i, name in names.items()}
             for key, names in PORTS.items()}
    monkeypatch.setattr(fx, "ladspa_port_names", lambda file, label: ports.get((file, label)))


@pytest.fixture
def project():
    return lmms.read_project(TINY)


def _by_name(root):
    return {t.get("name"): t for t in lmms.rendered_tracks(root)}


def test_tracks_come_in_rendertracks_order(project):
    # the song editor's unmuted instrument and sample tracks, then the beat/bassline ones
    assert [t.get("name") for t in lmms.rendered_tracks(project)] == ["Bass", "Loop", "Kick"]


def test_compressed_projects_read_like_plain_ones(project, tmp_path):
    xml = TINY.read_bytes()
    (tmp_path / "tiny.mmpz").write_bytes(struct.pack(">I", len(xml)) + zlib.compress(xml))
    again = lmms.read_project(tmp_path / "tiny.mmpz")
    assert [t.get("name") for t in lmms.rendered_tracks(again)] == ["Bass", "Loop", "Kick"]


def test_levels_sum_track_volume_faders_and_sends(project, plugins):
    tracks = _by_name(project)
    bass = lmms.track_decisions(project, tracks["Bass"])
    assert bass["level_db"] == pytest.approx(2 * 20 * math.log10(0.5), abs=0.01)  # 50 %, 0.5
    assert (bass["pan"], bass["fx_channel"], bass["fx_channel_name"]) == (-0.5, 1, "Bass")
    kick = lmms.track_decisions(project, tracks["Kick"])  # automated volume 70 %, fader 2,
    assert kick["fx_route"] == [2, 3]  # then a send of 0.5 to the bus
    assert kick["level_db"] == pytest.approx(20 * math.log10(0.7 * 2 * 0.5), abs=0.01)
    loop = lmms.track_decisions(project, tracks["Loop"])
    assert (loop["type"], loop["pan"], loop["fx_channel"]) == ("sample", 0.25, 0)
    assert loop["level_db"] == pytest.approx(20 * math.log10(0.8), abs=0.01)
    assert bass["reverb_send"] is None and bass["chorus_send"] is None


def test_effects_on_the_path_in_order_with_real_units(project, plugins):
    bass = lmms.track_decisions(project, _by_name(project)["Bass"])
    assert [(e["at"], e["plugin"], e["kind"]) for e in bass["effects"]] == [
        ("track", "calf/Compressor", "compressor"), ("track", "eq", "eq"),
        ("fx1", "caps/Plate2x2", "reverb")]
    comp = bass["effects"][0]["units"]
    assert comp["threshold_db"] == pytest.approx(-18.06, abs=0.01)  # calf: linear 0.125
    assert (comp["ratio"], comp["attack_ms"], comp["release_ms"]) == (4.0, 20.0, 250.0)
    assert comp["makeup_db"] == pytest.approx(6.02, abs=0.01)
    assert comp["knee_db"] == pytest.approx(9.03, abs=0.01)
    eq = bass["effects"][1]["units"]
    assert eq["bands"] == [{"type": "highpass", "freq_hz": 40.0, "q": 0.707},
                           {"type": "peak", "freq_hz": 2500.0, "gain_db": 4.0, "bw": 0.3}]
    assert eq["output_db"] == -3.0
    plate = bass["effects"][2]["units"]
    assert plate["wet_db"] == pytest.approx(-12.04, abs=0.01) and plate["tail"] == 0.6
    kick = lmms.track_decisions(project, _by_name(project)["Kick"])
    (reverb,) = kick["effects"]
    assert reverb["wet"] == 0.5 and reverb["units"]["decay_s"] == 1.5
    assert (reverb["units"]["predelay_ms"], reverb["units"]["damping_hz"]) == (20.0, 6000.0)
    assert reverb["units"]["wet_db"] == pytest.approx(-12.04, abs=0.01)
    (amp,) = lmms.track_decisions(project, _by_name(project)["Loop"])["effects"]
    assert not amp["enabled"] and amp["units"]["gain_db"] == pytest.approx(-6.02, abs=0.01)


def test_master_decisions(project, plugins):
    master = lmms.master_decisions(project)
    assert master["volume_db"] == pytest.approx(20 * math.log10(0.8), abs=0.01)
    (limiter,) = master["effects"]
    assert limiter["units"] == {"threshold_db": -1.0, "release_ms": 100.0}


def test_unknown_plugins_are_reported_missing(project, monkeypatch):
    monkeypatch.setattr(fx, "ladspa_port_names", lambda file, label: None)
    assert fx.missing_plugins(project) == [
        "calf/Compressor", "calf/Reverb", "caps/Plate2x2",
        "fast_lookahead_limiter_1913/fastLookaheadLimiter"]
    bass = lmms.track_decisions(project, _by_name(project)["Bass"])
    assert bass["effects"][0]["missing"] and "units" not in bass["effects"][0]


def test_units_of_plugins_given_in_seconds_and_by_band():
    caps = fx.UNITS["compressor"]["caps/Compress"]({"gain (dB)": 3.0, "ratio (1:n)": 4.0,
                                          "attack (s)": 0.01, "release (s)": 0.2,
                                          "threshold (dB)": -12.0, "knee radius (dB)": 3.0})
    assert caps == {"threshold_db": -12.0, "ratio": 4.0, "attack_ms": 10.0,
                    "release_ms": 200.0, "knee_db": 6.0, "makeup_db": 3.0}
    tap = fx.UNITS["reverb"]["tap_reverb/tap_reverb"]({"Decay [ms]": 2500.0,
                                                       "Wet Level [dB]": -9.0})
    assert tap["decay_s"] == 2.5 and tap["wet_db"] == -9.0
    bands = fx.UNITS["eq"]["caps/Eq"]({"31 Hz": -3.0, "1 kHz": 2.0, "16 kHz": 1.0})["bands"]
    assert bands == [{"freq_hz": 31.0, "gain_db": -3.0}, {"freq_hz": 1000.0, "gain_db": 2.0},
                     {"freq_hz": 16000.0, "gain_db": 1.0}]


def test_dry_project_switches_every_effect_off_and_neutralises_the_mix(project):
    dry = lmms.dry_project(project)
    for track in lmms.rendered_tracks(dry):
        settings = lmms.track_settings(track)
        assert (settings.get("vol"), settings.get("pan")) == ("100", "0")
        assert settings.find("vol") is None  # the automation no longer reaches it
        assert settings.get("fxch") in (None, "0")
        assert all(e.get("on") == "0" for e in settings.findall("fxchain/effect"))
    for channel in dry.iter("fxchannel"):
        assert channel.get("volume") == "1" and channel.find("volume") is None
        assert all(e.get("on") == "0" for e in channel.findall("fxchain/effect"))
    assert len(list(dry.iter("effect"))) == len(list(project.iter("effect")))  # still loaded
    assert dry.find("head").get("mastervol") == "100"
    assert [t.get("name") for t in lmms.rendered_tracks(dry)] == ["Bass", "Loop", "Kick"]
    assert lmms.track_settings(_by_name(project)["Bass"]).get("vol") == "50"  # a copy


def test_wet_project_switches_off_only_the_master_effects(project):
    wet = lmms.wet_project(project)
    channels = lmms.fx_channels(wet)
    assert [e.get("on") for e in channels[0].findall("fxchain/effect")] == ["0"]
    assert [e.get("on") for e in channels[1].findall("fxchain/effect")] == ["1"]
    assert len(lmms.track_settings(_by_name(wet)["Bass"]).findall("fxchain/effect")) == 2
    assert lmms.track_settings(_by_name(wet)["Bass"]).get("vol") == "50"


def test_cut_project_ends_the_song_editor_clips(project):
    cut = lmms.cut_project(project, 10.0)  # 120 bpm, 48 ticks a beat: tick 960
    clips = {(t.get("name"), c.tag, c.get("pos")): c.get("len")
             for t in cut.findall("song/trackcontainer/track") for c in t if c.get("pos")}
    assert clips == {("Drums", "bbtco", "0"): "384", ("Drums", "bbtco", "768"): "192",
                     ("Bass", "pattern", "0"): "768", ("Loop", "sampletco", "192"): "384",
                     ("Automation", "automationpattern", "0"): "960"}
    kick = _by_name(cut)["Kick"]
    assert kick.find("pattern").get("len") == "192"  # inside the beat/bassline: untouched


def test_solo_project_keeps_one_track_and_the_song_length(project):
    kick = lmms.solo_project(project, 2)
    assert [t.get("name") for t in lmms.rendered_tracks(kick)] == ["Kick"]
    assert lmms.song_ticks(kick) == lmms.song_ticks(project) == 2304
    assert lmms.fx_channels(kick).keys() == lmms.fx_channels(project).keys()
    bass = lmms.solo_project(project, 0)
    assert [t.get("name") for t in lmms.rendered_tracks(bass)] == ["Bass"]
    assert [t.get("type") for t in bass.findall("song/trackcontainer/track")] == [
        "1", "0", "5", "5"]  # the beat/bassline and automation tracks stay


def test_missing_samples(project, tmp_path):
    (tmp_path / "drums").mkdir()
    (tmp_path / "drums" / "kick01.ogg").touch()
    assert lmms.missing_samples(project, tmp_path) == ["beats/break01.ogg"]


def test_lag_finds_a_delayed_copy(rng):
    x = rng.standard_normal((2, 44100)).astype(np.float32)
    late = np.pad(x, ((0, 0), (37, 0)))[:, :44100]
    assert lmms.lag(x, late) == 37 and lmms.lag(x, x) == 0
    assert lmms.error_db(late, x) < -40  # aligned before comparing


def test_song_names_and_units():
    assert lmms.song_name(Path("/p/demos/Saber-FinalStep.mmpz")) == "lmms-common__saber_finalstep"
    assert lmms.volume_db(100) == 0.0 and lmms.volume_db(0) == -math.inf
    assert (lmms.pan_unit(-100), lmms.pan_unit(0), lmms.pan_unit(100)) == (-1.0, 0.0, 1.0)


def test_census_counts_a_mixer_channels_effect_once(project, plugins):
    tracks = lmms.rendered_tracks(project)
    stems = {f"{i:02d}": {**lmms.track_decisions(project, t), "level_db": -6.0}
             for i, t in enumerate(tracks, 1)}
    stems["04"] = stems["01"]  # a second track on the Bass channel and its chain
    for facts in stems.values():
        facts["wet_lag_samples"] = 0
    songs = [{"song": "s", "split": "train", "duration_s": 60.0, "stems": stems}]
    kinds = {e["kind"] for _, e in lmms.distinct_effects(songs)}
    assert kinds == {"compressor", "eq", "reverb"}  # the amplifier is off
    table = lmms.census(songs)
    assert "| compressor | 2 | 1 | 2 |" in table  # Bass's own chain, twice; channel's once
    assert "| reverb | 3 | 1 | 2 |" in table
    assert "| compressor threshold_db | 2 | -18.1 | -18.1 | -18.1 |" in table


def test_project_meta_reads_author_and_title_from_the_file_name(project):
    path = lmms.PROJECTS / "demos" / "CapDan" / "CapDan-TwilightArea-OriginalByAlf42red.mmpz"
    meta = lmms.project_meta(path, project, [], max_seconds=150.0, version="1.2.2")
    assert (meta["composer"], meta["title"]) == ("CapDan", "TwilightArea-OriginalByAlf42red")
    assert meta["source"] == "projects/demos/CapDan/CapDan-TwilightArea-OriginalByAlf42red.mmpz"
    assert meta["original_seconds"] == 24.0  # 2304 ticks at 120 bpm, 48 ticks a beat
    assert (meta["renderer"], meta["bpm"], meta["split"]) == ("lmms", 120.0, lmms.split_of(
        "lmms-common__capdan_twilightarea_originalbyalf42red"))


def test_a_render_that_crashes_lmms_is_tried_again(tmp_path, monkeypatch):
    """A stand-in ``lmms`` that dies on a signal on its first run and renders on its second."""
    fake = tmp_path / "bin" / "lmms"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nif [ ! -e "$0.ran" ]; then touch "$0.ran"; kill -SEGV $$; fi\n'
                    'touch "$(eval echo \\${$#})"\n')  # the last argument: -o's output
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    lmms.Renderer(tmp_path / "rc.xml").render(tmp_path / "x.mmp", tmp_path / "x.wav")
    assert (tmp_path / "x.wav").exists()


def test_ladspa_values_are_what_the_installed_plugin_gets(monkeypatch):
    """LMMS clamps a saved value to the installed plug-in's range and drops a port it does not
    have (a project saved with another version of the plug-in)."""
    ports = {1: fx.Port("Limit (dB)", -20.0, 0.0), 2: fx.Port("Release time (s)", 0.01, 2.0)}
    monkeypatch.setattr(fx, "ladspa_port_names", lambda file, label: ports)
    effect = ET.fromstring(
        '<effect name="ladspaeffect"><ladspacontrols><port00 data="1"/><port01 data="-3"/>'
        '<port02 data="507.45"/></ladspacontrols><key><attribute name="file" '
        'value="fast_lookahead_limiter_1913"/><attribute name="plugin" '
        'value="fastLookaheadLimiter"/></key></effect>')
    assert fx.effect_params(effect) == {"Limit (dB)": -3.0, "Release time (s)": 2.0}
    assert fx.describe(effect)["units"] == {"threshold_db": -3.0, "release_ms": 2000.0}
