"""The tracker-module recipe: formats by magic bytes, the author's channel strip in real units
(or null with the reason), the helper's index, the fade at the cut; and, where g++ and
libopenmpt-dev are installed, a four-channel MOD written by the test rendered end to end (its
one playing channel hard left in the mix, centred dry, the silent ones dropped)."""

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from automix.training import modules
from automix.training.recipe import SAMPLE_RATE

HEADER = Path("/usr/include/libopenmpt/libopenmpt_ext.hpp")


def tiny_mod(*, rows_playing: int = 64) -> bytes:
    """A ProTracker module: one looping square-wave sample, one pattern, channel 1 playing
    C-3 on row 0 (64 rows at speed 6, 125 bpm: 7.68 s), channels 2..4 empty."""
    header = b"tiny".ljust(20, b"\0")
    square = bytes([100] * 16 + [256 - 100] * 16)  # signed 8-bit
    header += b"square".ljust(22, b"\0") + struct.pack(">HBBHH", len(square) // 2, 0, 64, 0,
                                                       len(square) // 2)
    header += b"\0" * 30 * 30  # samples 2..31 unused
    header += bytes([1, 127]) + bytes(128) + b"M.K."
    pattern = bytearray(64 * 4 * 4)
    period, sample = 428, 1  # C-3
    pattern[0:4] = bytes([(sample & 0xF0) | (period >> 8), period & 0xFF, (sample & 0x0F) << 4, 0])
    return header + bytes(pattern) + square


def test_formats_are_told_by_their_magic_bytes():
    assert modules.module_format(tiny_mod()) == "mod"
    assert modules.module_format(b"IMPM" + bytes(200)) == "it"
    assert modules.module_format(b"Extended Module: tune" + bytes(200)) == "xm"
    assert modules.module_format(bytes(44) + b"SCRM" + bytes(200)) == "s3m"
    assert modules.module_format(bytes(1080) + b"8CHN" + bytes(10)) == "mod"
    assert modules.module_format(b"\0\0\x01\x00" + bytes(2000)) is None  # Ri-li's language.It


def test_it_channel_volume_and_pan_in_real_units():
    strip = modules.channel_decisions("it", 0.5, -0.5)
    assert strip["level_db"] == pytest.approx(-6.02, abs=0.01)
    assert strip["pan"] == -0.5
    assert strip["neutralised"] == ["volume", "pan"]
    assert "level_db_why" not in strip and "pan_why" not in strip
    assert modules.channel_decisions("it", 1.0, 0.0)["neutralised"] == []
    assert modules.channel_decisions("it", 0.0, 0.0)["level_db"] is None


def test_formats_without_a_channel_strip_say_why():
    xm = modules.channel_decisions("xm", 1.0, 0.0)
    assert xm["level_db"] is None and xm["pan"] is None
    assert "XM" in xm["level_db_why"] and "XM" in xm["pan_why"]
    mod = modules.channel_decisions("mod", 1.0, -1.0)
    assert mod["pan"] is None and mod["channel_pan"] == -1.0 and mod["neutralised"] == ["pan"]
    s3m = modules.channel_decisions("s3m", 1.0, 0.25)
    assert s3m["pan"] == 0.25 and s3m["level_db"] is None


def test_the_helpers_index_is_read():
    text = "#title\tTune\n#artist\t\n#duration\t38.4\n1\tLead\t12\t0.5\t-0.25\tsaw\n" \
           "2\t\t0\t1\t0\t\n"
    meta, channels = modules.read_index(text)
    assert meta == {"title": "Tune", "artist": "", "duration": "38.4"}
    assert channels[0] == modules.Channel(1, "Lead", 12, 0.5, -0.25, "saw")
    assert modules.stem_name(channels[0]) == "01_lead"
    assert modules.stem_name(modules.Channel(3, "", 1, 1.0, 0.0, "Bass 2")) == "03_bass_2"
    assert modules.stem_name(channels[1]) == "02_channel"


def test_the_fade_is_linear_and_only_at_a_cut():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 2, 4 * SAMPLE_RATE)).astype(np.float32)
    assert modules.faded(a, cut=False) is a
    fa, fb, fab = (modules.faded(x, cut=True) for x in (a, b, a + b))
    np.testing.assert_allclose(fa + fb, fab, atol=1e-5)  # faded stems still sum to the mix
    assert fa[:, -1].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(fa[:, :SAMPLE_RATE - 1], a[:, :SAMPLE_RATE - 1])


def test_modules_of_a_package_are_found_once_by_their_bytes(tmp_path):
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "a.mod").write_bytes(tiny_mod())
    (tmp_path / "music" / "copy.MOD").write_bytes(tiny_mod())
    (tmp_path / "language.It").write_bytes(b"not a module" * 200)
    found = modules.package_modules("pkg", tmp_path)
    assert [(m.name, m.format, m.source) for m in found] == [("pkg__a", "mod", "music/a.mod")]


@pytest.mark.skipif(not (shutil.which("g++") and shutil.which("pkg-config") and HEADER.exists()),
                    reason="needs g++, pkg-config and libopenmpt-dev")
def test_a_module_renders_per_channel_with_the_pan_neutralised(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "tiny.mod").write_bytes(tiny_mod())
    module = modules.package_modules("pkg", tmp_path / "pkg")[0]
    helper = modules.ensure_helper(tmp_path / "cache")
    meta = modules.build_module(module, tmp_path / "out", stanzas=[], helper=helper,
                                max_seconds=5.0)
    song = tmp_path / "out" / "multitracks" / "pkg__tiny"
    assert json.loads((song / "meta.json").read_text()) == meta
    assert list(meta["stems"]) == ["01_square"] and meta["silent_channels"] == [2, 3, 4]
    stem = meta["stems"]["01_square"]
    assert stem["neutralised"] == ["pan"] and stem["channel_pan"] < 0 and stem["pan"] is None
    assert stem["wet_lag_samples"] == 0
    assert meta["cut"] and meta["duration_s"] == 5.0 and meta["renderer"] == "libopenmpt"
    dry, _ = sf.read(song / "stems" / "01_square.flac", always_2d=True)
    wet, _ = sf.read(song / "wet" / "01_square.flac", always_2d=True)
    total, _ = sf.read(song / "mix_sum.flac", always_2d=True)
    master, _ = sf.read(song / "master.flac", always_2d=True)
    np.testing.assert_allclose(dry[:, 0], dry[:, 1], atol=1e-4)  # centred
    assert np.sum(wet[:, 0] ** 2) > 4 * np.sum(wet[:, 1] ** 2)  # left: the MOD's channel 1
    np.testing.assert_array_equal(total, dry)  # one stem: the sum is the stem
    np.testing.assert_allclose(master, wet, atol=1e-4)  # the mix is that channel
    assert np.abs(master[-10:]).max() < 1e-3  # faded out at the cut
    assert len(master) == 5 * SAMPLE_RATE
