"""Any loudness target from the command line: a platform, a number in LUFS, the input's own
loudness (keep); the ceiling set apart; an explicit target wins over a settings file's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from automix import loudness, presets
from automix.cli import app
from automix.errors import SettingsError
from conftest import ROOT

runner = CliRunner()
EXCERPT = ROOT / "reference_tracks" / "rock" / "hedgewars__rock.flac"  # 10 s of real music


def _measure(path: Path) -> tuple[float, float]:
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    return loudness.integrated_lufs(y.T, sr), loudness.true_peak_dbtp(y.T, sr)


def _master(tmp_path: Path, name: str, *args: str) -> dict:
    out = tmp_path / f"{name}.wav"
    result = runner.invoke(app, ["master", str(EXCERPT), "-o", str(out), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


@pytest.mark.parametrize("target,ceiling", [("-12", None), ("-20.5", "-2"), ("keep", None)])
def test_a_number_or_keep_is_reached_under_the_ceiling(tmp_path: Path, target: str,
                                                       ceiling: str | None) -> None:
    args = ["--target", target] + (["--ceiling", ceiling] if ceiling else [])
    report = _master(tmp_path, "out", *args)
    lufs, peak = _measure(tmp_path / "out.wav")
    input_lufs, _ = _measure(EXCERPT)
    expected = input_lufs if target == "keep" else float(target)
    assert report["target"]["integrated_lufs"] == pytest.approx(expected, abs=0.01)
    # a named loudness is reached whatever it takes: no W08 excuse applies
    assert lufs == pytest.approx(expected, abs=0.5)
    assert peak <= float(ceiling or -1.0) + 0.01
    assert report["target"]["ceiling_dbtp"] == float(ceiling or -1.0)
    assert not [w for w in report["warnings"] if w["code"].startswith("W08")]


def test_explicit_target_wins_over_the_settings_own_when_refitting(tmp_path: Path) -> None:
    settings = tmp_path / "s.json"
    assert runner.invoke(app, ["suggest", str(EXCERPT), "-o", str(settings),
                               "--target", "spotify"]).exit_code == 0
    assert json.loads(settings.read_text())["settings"]["target_lufs"] == -14.0
    report = _master(tmp_path, "apple", "--settings", str(settings), "--refit-gain",
                     "--target", "apple")
    apple = presets.load_target("apple").integrated_lufs
    assert report["target"]["name"] == "apple" and report["settings"]["target_lufs"] == apple
    assert _measure(tmp_path / "apple.wav")[0] == pytest.approx(apple, abs=0.5)
    # without --target, refitting keeps the settings' own loudness
    own = _master(tmp_path, "own", "--settings", str(settings), "--refit-gain")
    assert own["settings"]["target_lufs"] == -14.0
    assert _measure(tmp_path / "own.wav")[0] == pytest.approx(-14.0, abs=0.5)


def test_target_spellings() -> None:
    assert presets.load_target("-12").integrated_lufs == -12.0
    assert presets.load_target("-9.5 LUFS").integrated_lufs == -9.5
    keep = presets.load_target("KEEP")
    assert keep.keeps_input and keep.for_input(-17.234).integrated_lufs == -17.23
    assert presets.load_target("spotify").for_input(-30.0).integrated_lufs == -14.0
    with pytest.raises(SettingsError, match=r"\[-40, 0\] LUFS"):
        presets.load_target("-55")
    with pytest.raises(SettingsError, match="did you mean 'spotify'"):
        presets.load_target("spotfy")


@pytest.mark.parametrize("args,message", [
    (["--target", "+3"], "a loudness must be in [-40, 0] LUFS"),
    (["--target", "apel"], "did you mean 'apple'?"),
    (["--reference", "rokc"], "did you mean 'rock'?"),
])
def test_bad_targets_and_presets_are_one_line_with_the_nearest_name(args, message) -> None:
    result = runner.invoke(app, ["master", str(EXCERPT), *args])
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and message in lines[0], result.output
