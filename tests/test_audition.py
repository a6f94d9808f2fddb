"""Auditioning: suggest, edit, re-render, amounts, loudness-matched previews, the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from automix import loudness
from automix.cli import app
from automix.errors import SettingsError
from automix.params import CompressorParams, EQParams, MasterChain, StereoWidthParams
from automix.settings import Amounts
from conftest import music_like

runner = CliRunner()


@pytest.fixture
def song(tmp_path: Path) -> Path:
    path = tmp_path / "song.wav"
    x = music_like(np.random.default_rng(11), 44100, 40.0) * np.float32(0.5)
    sf.write(path, x.T, 44100, subtype="PCM_24")
    return path


def _read(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float32", always_2d=True)[0].T


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_suggest_then_render_is_exactly_the_master(song: Path, tmp_path: Path,
                                                   suffix: str) -> None:
    settings = tmp_path / f"settings{suffix}"
    result = runner.invoke(app, ["suggest", str(song), "-r", "rock", "-o", str(settings)])
    assert result.exit_code == 0, result.output
    text = settings.read_text()
    doc = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    eq = doc["settings"]["chain"]["eq"]
    assert set(eq) >= {"low_shelf_gain_db", "peak1_freq_hz", "peak1_q", "high_shelf_gain_db"}
    assert len(doc["motivation"]["tonal_difference_db"]["difference_db"]) == 28
    assert doc["measurements"]["reference"]["integrated_lufs"] < 0
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    assert runner.invoke(app, ["master", str(song), "-r", "rock", "-o", str(a),
                               "--bit-depth", "32"]).exit_code == 0
    assert runner.invoke(app, ["master", str(song), "--settings", str(settings), "-o", str(b),
                               "--bit-depth", "32"]).exit_code == 0
    np.testing.assert_array_equal(_read(a), _read(b))


def test_edited_settings_are_honoured(song: Path, tmp_path: Path) -> None:
    settings = tmp_path / "s.json"
    runner.invoke(app, ["suggest", str(song), "-r", "pop", "-o", str(settings)])
    doc = json.loads(settings.read_text())
    doc["settings"]["chain"]["width"]["width_pct"] = 0.0  # the user folds it to mono
    settings.write_text(json.dumps(doc))
    out = tmp_path / "mono.wav"
    assert runner.invoke(app, ["master", str(song), "--settings", str(settings),
                               "-o", str(out)]).exit_code == 0
    y = _read(out)
    assert np.max(np.abs(y[0] - y[1])) < 1e-4


def test_amount_zero_is_neutral_and_half_is_between() -> None:
    chain = MasterChain(eq=EQParams(peak2_gain_db=6.0, high_shelf_gain_db=-4.0),
                        compressor=CompressorParams(threshold_db=-20.0, ratio=4.0),
                        width=StereoWidthParams(width_pct=140.0))
    assert Amounts.parse("0").scale(chain) == MasterChain(
        eq=EQParams(peak2_freq_hz=1200.0), compressor=CompressorParams())
    half = Amounts.parse("eq=0.5,dynamics=0.5,width=0.5").scale(chain)
    assert half.eq.peak2_gain_db == pytest.approx(3.0)
    assert half.eq.high_shelf_gain_db == pytest.approx(-2.0)
    assert half.compressor.ratio == pytest.approx(2.0)  # geometric: the table's log scale
    assert half.width.width_pct == pytest.approx(120.0)
    only_eq = Amounts.parse("eq=0").scale(chain)
    assert only_eq.eq.peak2_gain_db == 0.0 and only_eq.width.width_pct == 140.0


@pytest.mark.parametrize("text,message", [
    ("1.5", "out of range [0, 1]"), ("bass=1", "unknown module 'bass'; allowed: eq, dynamics"),
    ("eq=lots", "expected a number in [0, 1]"), ("eq", "expected a number in [0, 1]"),
])
def test_bad_amounts_name_the_allowed_range(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Amounts.parse(text)


def test_amount_on_the_command_line_keeps_loudness(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "half.wav"
    result = runner.invoke(app, ["master", str(song), "-r", "pop", "--amount", "0.5",
                                 "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert loudness.integrated_lufs(_read(out), 44100) == pytest.approx(-14.0, abs=0.5)
    bad = runner.invoke(app, ["master", str(song), "-r", "pop", "--amount", "width=3"])
    assert bad.exit_code == 1 and "out of range [0, 1]" in bad.output


def test_previews_are_loudness_matched_30_s_excerpts(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.wav"
    result = runner.invoke(app, ["master", str(song), "-r", "pop", "-o", str(out), "--preview"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "m_preview"
    levels = {}
    for name in ("input", "result", "reference", "result_delivered"):
        x = _read(folder / f"{name}.wav")
        levels[name] = loudness.integrated_lufs(x, 44100)
        assert x.shape[1] <= 30 * 44100 + 1
        assert loudness.true_peak_dbtp(x, 44100) <= -1.0 + 0.05
    assert sf.info(folder / "input.wav").duration == pytest.approx(30.0, abs=0.01)
    matched = [levels[k] for k in ("input", "result", "reference")]
    assert max(matched) - min(matched) < 0.1
    assert levels["result_delivered"] > levels["result"] + 1.0  # the delivered one is louder


def test_report_is_self_contained_with_plots(song: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["master", str(song), "-r", "pop", "-o", str(tmp_path / "m.wav"),
                                 "--report", str(report)])
    assert result.exit_code == 0, result.output
    page = report.read_text()
    assert page.count("<svg") >= 2 and 'id="tonal-balance"' in page
    assert "peak2 gain" in page and "src=\"http" not in page and "<script src" not in page


def test_refit_gain_keeps_the_target_after_an_edit(song: Path, tmp_path: Path) -> None:
    settings = tmp_path / "s.json"
    runner.invoke(app, ["suggest", str(song), "-r", "pop", "-o", str(settings)])
    doc = json.loads(settings.read_text())
    doc["settings"]["chain"]["eq"]["low_shelf_gain_db"] = 9.0  # a big edit: +9 dB of bass
    doc["settings"]["chain"]["eq"]["low_shelf_freq_hz"] = 250.0
    settings.write_text(json.dumps(doc))
    target = doc["settings"]["target_lufs"]
    levels = {}
    for flag in ("", "--refit-gain"):
        out = tmp_path / f"m{flag}.wav"
        args = ["master", str(song), "--settings", str(settings), "-o", str(out)]
        assert runner.invoke(app, args + ([flag] if flag else [])).exit_code == 0
        levels[flag] = loudness.integrated_lufs(_read(out), 44100)
    assert abs(levels[""] - target) > 1.0  # stored gain + edit: the loudness has moved
    assert levels["--refit-gain"] == pytest.approx(target, abs=0.5)
