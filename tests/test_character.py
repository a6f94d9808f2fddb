"""Characters move the target in real units, and the master follows (issue #20, point 4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from automix import character
from automix.analysis import BAND_CENTERS_HZ, band_values
from automix.cli import app
from automix.references import resolve

runner = CliRunner()
SONG = Path(__file__).resolve().parents[1] / "examples" / "dirty_love.flac"
HIGH, LOW = BAND_CENTERS_HZ >= 4000, BAND_CENTERS_HZ <= 250


def _tilt(mid_db) -> float:
    """High bands' mean minus low bands' mean, dB."""
    mid = band_values(mid_db)
    return float(np.nanmean(mid[HIGH]) - np.nanmean(mid[LOW]))


def test_target_moves_by_the_defined_amounts() -> None:
    plain, _ = resolve("pop", None)
    moved, _ = resolve("pop", None, character="warm:0.5,wide,punchy")
    warm = {c.name: c for c in character.list_characters()}["warm"]
    expected = 0.5 * warm.tilt_db_per_oct * np.log2(BAND_CENTERS_HZ / character.PIVOT_HZ)
    diff = np.asarray(moved.features.tonal_mid_db) - np.asarray(plain.features.tonal_mid_db)
    ok = np.isfinite(diff)
    np.testing.assert_allclose(diff[ok], expected[ok], atol=1e-9)
    assert moved.features.width == pytest.approx(plain.features.width + 0.1)
    assert moved.features.crest_db == pytest.approx(plain.features.crest_db + 2.0)
    assert [c.name for c in moved.characters] == ["warm", "wide", "punchy"]


def test_unknown_character_is_one_line_naming_the_valid_ones(tmp_path: Path) -> None:
    result = runner.invoke(app, ["master", str(SONG), "--character", "warmm",
                                 "-o", str(tmp_path / "x.wav")])
    assert result.exit_code == 1
    assert "unknown character 'warmm'" in result.output and "warm, wide" in result.output
    assert len(result.output.strip().splitlines()) == 1
    bad = runner.invoke(app, ["master", str(SONG), "--character", "warm:9",
                              "-o", str(tmp_path / "x.wav")])
    assert bad.exit_code == 1 and "amount must be a number in [0, 2]" in bad.output


def _master(tmp_path: Path, *flags: str) -> dict:
    out = tmp_path / f"m{len(list(tmp_path.iterdir()))}.wav"
    result = runner.invoke(app, ["master", str(SONG), "-r", "pop", "-o", str(out), "--json",
                                 *flags])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_warm_darkens_and_wide_widens_the_master(tmp_path: Path) -> None:
    plain = _master(tmp_path)
    warm = _master(tmp_path, "--character", "warm", "--report", str(tmp_path / "r.html"))
    assert "<b>character</b> warm (tilt -0.5 dB/oct)" in (tmp_path / "r.html").read_text()
    wide = _master(tmp_path, "--character", "wide")
    # the target's tilt (high minus low bands) at amount 1, and what the master followed
    defined = _tilt(list(character.band_offsets_db(
        {c.name: c for c in character.list_characters()}["warm"])))
    moved = _tilt(warm["measurements"]["output"]["bands"]["mid_db"]) - _tilt(
        plain["measurements"]["output"]["bands"]["mid_db"])
    assert defined < 0 and 0.35 * defined > moved > 1.2 * defined  # same sign, most of it
    assert wide["measurements"]["output"]["width"] > plain["measurements"]["output"]["width"] \
        + 0.05
    # shown in the sidecar
    sidecar = json.loads(Path(warm["sidecar"]).read_text())
    assert sidecar["reference"]["character"][0]["tilt_db_per_oct"] == -0.5
    assert sidecar["reference"]["name"] == "pop +warm"
