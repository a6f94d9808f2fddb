"""Outputs follow what the user typed, and warnings that protect: the format from the output's
name, one line for a contradiction or an unsupported format, --version, W10 when stored
settings land off the target, W09 and a bounded width when the channels cancel."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from automix import __version__, analysis, loudness
from automix.cli import app
from conftest import ROOT

runner = CliRunner()
EXCERPT = ROOT / "reference_tracks" / "rock" / "hedgewars__rock.flac"  # 10 s of real music


def _one_error_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error:") and "Usage" not in result.output
    return lines[0]


@pytest.mark.parametrize("name,args,subtype", [("song.flac", [], "PCM_24"),
                                               ("song.FLAC", ["--bit-depth", "16"], "PCM_16"),
                                               ("song.wav", ["--format", "wav"], "PCM_24")])
def test_the_output_name_sets_the_format(tmp_path: Path, name: str, args: list[str],
                                         subtype: str) -> None:
    out = tmp_path / name
    result = runner.invoke(app, ["master", str(EXCERPT), "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    info = sf.info(out)
    assert info.format == out.suffix.upper().lstrip(".") and info.subtype == subtype


@pytest.mark.parametrize("args,message", [
    (["-o", "song.flac", "--format", "wav"], "--format wav contradicts the output's name"),
    (["-o", "song.mp3"], "automix writes wav or flac, not mp3"),
    (["--format", "mp3"], "--format: expected wav or flac, got 'mp3'"),
])
def test_format_mistakes_are_one_line_and_exit_1(tmp_path: Path, args: list[str],
                                                 message: str) -> None:
    args = [str(tmp_path / a) if a.startswith("song") else a for a in args]
    line = _one_error_line(runner.invoke(app, ["master", str(EXCERPT), *args]))
    assert message in line
    assert not list(tmp_path.iterdir())  # nothing written


def test_version_prints_the_package_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "automix", "--version"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.strip() == f"automix {version('automix')}"
    assert version("automix") == __version__  # the metadata and the package agree


def test_stored_settings_off_the_target_warn_and_name_refit(tmp_path: Path) -> None:
    settings = tmp_path / "s.json"
    assert runner.invoke(app, ["suggest", str(EXCERPT), "-o", str(settings),
                               "-t", "spotify"]).exit_code == 0
    out = tmp_path / "apple.wav"
    result = runner.invoke(app, ["master", str(EXCERPT), "--settings", str(settings),
                                 "-t", "apple", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "W10-off-target" in result.output and "--refit-gain" in result.output
    y, sr = sf.read(out, dtype="float32", always_2d=True)
    assert loudness.integrated_lufs(y.T, sr) == pytest.approx(-14.0, abs=0.5)  # as stored
    # rendered at their own target, or refitted, the settings raise no warning
    for extra in ([], ["-t", "apple", "--refit-gain"]):
        report = json.loads(runner.invoke(app, [
            "master", str(EXCERPT), "--settings", str(settings), "-o",
            str(tmp_path / f"r{len(extra)}.wav"), "--json", *extra]).stdout)
        assert "W10-off-target" not in {w["code"] for w in report["warnings"]}


def test_channels_that_cancel_warn_and_read_a_bounded_width(tmp_path: Path) -> None:
    y, sr = sf.read(EXCERPT, dtype="float32")
    y[:, 1] *= -1  # one channel's polarity inverted, as a miswired cable does
    inverted = tmp_path / "inverted.flac"
    sf.write(inverted, y, sr, subtype="PCM_16")
    result = runner.invoke(app, ["master", str(inverted), "-o", str(tmp_path / "m.wav"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    measured = report["measurements"]["input"]
    assert measured["correlation"] < -0.3
    assert analysis.PHASE_WIDTH_MIN < measured["width"] <= analysis.WIDTH_MAX
    assert "W09-phase" in {w["code"] for w in report["warnings"]}
    # L = -R exactly, after 16-bit quantisation: no longer a width of millions
    antiphase = tmp_path / "antiphase.wav"
    sf.write(antiphase, np.stack([y[:, 0], -y[:, 0]], axis=1), sr, subtype="PCM_16")
    a = analysis.analyze(sf.read(antiphase, dtype="float32")[0].T, sr)
    assert a.width == analysis.WIDTH_MAX and "W09-phase" in {w.code for w in a.warnings}
    # the original song is not flagged
    original = analysis.analyze(sf.read(EXCERPT, dtype="float32")[0].T, sr)
    assert "W09-phase" not in {w.code for w in original.warnings} and original.width < 1.0
