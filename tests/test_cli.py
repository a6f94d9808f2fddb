"""The command line as a user meets it: real audio end to end, one-line errors, safe files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from automix import loudness
from automix.cli import app
from conftest import ROOT, music_like

runner = CliRunner()
EXAMPLE = sorted((ROOT / "examples").glob("*.flac"))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def song(tmp_path: Path) -> Path:
    path = tmp_path / "my song.wav"  # a space in the name, as users have
    sf.write(path, music_like(np.random.default_rng(3), 44100, 8.0).T, 44100, subtype="PCM_24")
    return path


@pytest.fixture
def ref(tmp_path: Path) -> Path:
    x = music_like(np.random.default_rng(4), 44100, 6.0) * np.float32(1.6)
    path = tmp_path / "ref.flac"
    sf.write(path, np.clip(x, -1, 1).T, 44100, subtype="PCM_16")
    return path


@pytest.mark.skipif(not EXAMPLE, reason="no shipped example")
@pytest.mark.parametrize("target,lufs", [(None, None), ("apple", -16.0)])
def test_master_shipped_example_with_pop_preset(tmp_path: Path, target, lufs) -> None:
    from automix import presets

    src = tmp_path / EXAMPLE[0].name
    src.write_bytes(EXAMPLE[0].read_bytes())
    before = _digest(src)
    args = ["master", str(src), "--reference", "pop"] + (["--target", target] if target else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = src.with_name(f"{src.stem}_master.wav")
    info = sf.info(out)
    assert info.subtype == "PCM_24" and info.samplerate == sf.info(src).samplerate
    y, sr = sf.read(out, dtype="float32", always_2d=True)
    expected = lufs if lufs is not None else presets.load_target(
        presets.load_genre("pop").target).integrated_lufs
    ceiling = -1.0
    assert loudness.integrated_lufs(y.T, sr) == pytest.approx(expected, abs=0.5)
    assert loudness.true_peak_dbtp(y.T, sr) <= ceiling + 0.01
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["tonal_balance_error_db"]["output"] < report["tonal_balance_error_db"]["input"]
    assert _digest(src) == before


def test_master_to_a_reference_file_matches_its_loudness(song: Path, ref: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "out.flac"
    result = runner.invoke(app, ["master", str(song), "-r", str(ref), "-o", str(out),
                                 "--format", "flac", "--bit-depth", "16", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    y, sr = sf.read(out, dtype="float32", always_2d=True)
    ref_audio, _ = sf.read(ref, dtype="float32", always_2d=True)
    ref_lufs = loudness.integrated_lufs(ref_audio.T, sr)
    assert sf.info(out).subtype == "PCM_16"
    assert loudness.integrated_lufs(y.T, sr) == pytest.approx(ref_lufs, abs=0.5)
    assert loudness.true_peak_dbtp(y.T, sr) <= -1.0 + 0.01
    assert report["settings"]["target_lufs"] == pytest.approx(ref_lufs, abs=0.01)
    assert set(report) >= {"settings", "measurements", "warnings", "reference", "target"}


def test_settings_file_renders_identically(song: Path, ref: Path, tmp_path: Path) -> None:
    first = tmp_path / "a.wav"
    assert runner.invoke(app, ["master", str(song), "-r", str(ref), "-o", str(first),
                               "--bit-depth", "32"]).exit_code == 0
    second = tmp_path / "b.wav"
    result = runner.invoke(app, ["master", str(song), "--settings", str(first.with_suffix(".json")),
                                 "-o", str(second), "--bit-depth", "32"])
    assert result.exit_code == 0, result.output
    a, _ = sf.read(first, dtype="float32")
    b, _ = sf.read(second, dtype="float32")
    np.testing.assert_array_equal(a, b)


def test_refuses_to_overwrite_without_force(song: Path, ref: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    out.write_bytes(b"precious")
    result = runner.invoke(app, ["master", str(song), "-r", str(ref), "-o", str(out)])
    assert result.exit_code == 1 and "--force" in result.output
    assert out.read_bytes() == b"precious"
    assert runner.invoke(app, ["master", str(song), "-r", str(ref), "-o", str(out),
                               "--force"]).exit_code == 0
    assert sf.info(out).frames > 0


def test_refuses_to_write_over_the_input(song: Path, ref: Path) -> None:
    before = _digest(song)
    result = runner.invoke(app, ["master", str(song), "-r", str(ref), "-o", str(song), "--force"])
    assert result.exit_code == 1 and "input" in result.output
    assert _digest(song) == before


@pytest.mark.parametrize("make,args,message", [
    (lambda d: d / "missing.wav", [], "no such file"),
    (lambda d: _write(d / "e.wav", b""), [], "empty"),
    (lambda d: _write(d / "t.wav", b"hello, not audio" * 64), [], "not a readable audio file"),
    (lambda d: d, [], "folder"),
    (None, ["-r", "no-such-genre"], "unknown reference 'no-such-genre'"),
    (None, ["--target", "radio"], "unknown target"),
    (None, ["--bit-depth", "12"], "bit-depth"),
    (None, ["--format", "flac", "--bit-depth", "32"], "FLAC"),
    (None, ["--ceiling", "2"], "--ceiling"),
])
def test_bad_input_is_one_line_and_exit_1(tmp_path: Path, song: Path, ref: Path, make, args,
                                          message: str) -> None:
    path = make(tmp_path) if make else song
    base = ["master", str(path)] + (args if "-r" in args else ["-r", str(ref)] + args)
    result = runner.invoke(app, base)
    assert result.exit_code == 1
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.output


def test_failure_leaves_no_partial_output(song: Path, ref: Path, tmp_path: Path,
                                          monkeypatch) -> None:
    from automix.mastering import pipeline

    def boom(*a, **k):
        raise RuntimeError("simulated crash mid-render")

    monkeypatch.setattr(pipeline, "finalise", boom)
    result = runner.invoke(app, ["master", str(song), "-r", str(ref), "-o",
                                 str(tmp_path / "x.wav")])
    assert result.exit_code == 1 and "internal error" in result.output
    assert not (tmp_path / "x.wav").exists() and not list(tmp_path.glob(".x.wav*"))


def test_console_script_runs_as_a_process(song: Path, ref: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.wav"
    proc = subprocess.run([sys.executable, "-m", "automix", "master", str(song), "-r", str(ref),
                           "-o", str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr
    assert "loudness" in proc.stdout and out.exists()
    bad = subprocess.run([sys.executable, "-m", "automix", "master", str(tmp_path / "nope.wav")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_presets_lists_genres_and_targets() -> None:
    result = runner.invoke(app, ["presets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("pop", "spotify", "apple", "youtube", "ebu-r128"):
        assert name in result.output


def test_decoder_chatter_never_reaches_the_user(tmp_path: Path) -> None:
    # libmpg123 prints "Note: Trying to resync..." on fd 2 for text named .mp3
    fake = tmp_path / "fake.mp3"
    fake.write_text("not audio at all\n" * 60)
    proc = subprocess.run([sys.executable, "-m", "automix", "master", str(fake), "-r", "pop"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error:"), proc.stderr
