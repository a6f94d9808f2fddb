"""The Python API as the README shows it, on the shipped example: it masters to the target, its
settings render again exactly, and `master_file` writes what `automix master` writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import automix
from automix import loudness
from conftest import ROOT

EXAMPLE = ROOT / "examples" / "dirty_love.flac"


@pytest.fixture(scope="module")
def song() -> automix.Audio:
    return automix.load(EXAMPLE)


@pytest.fixture(scope="module")
def mastered(song: automix.Audio) -> automix.MasterResult:
    return automix.master(song, reference="pop", target="apple")


def test_master_lands_on_the_target_under_the_ceiling(song, mastered) -> None:
    assert abs(automix.analyze(song).integrated_lufs + 16.0) > 0.5  # it had to move
    assert mastered.target.name == "apple" and mastered.method == "dsp"  # the default
    out = mastered.audio
    assert loudness.integrated_lufs(out.samples, out.sample_rate) == pytest.approx(-16.0, abs=0.1)
    assert loudness.true_peak_dbtp(out.samples, out.sample_rate) <= -1.0
    assert mastered.output.integrated_lufs == pytest.approx(-16.0, abs=0.1)
    # the EQ moved the tonal balance toward the reference's
    ref = np.array(mastered.reference.features.tonal_mid_db)

    def error(a: automix.Analysis) -> float:
        d = np.array(a.rounded().tonal_mid_db) - ref
        d = d[np.isfinite(d)]
        return float(np.sqrt(np.mean((d - d.mean()) ** 2)))

    assert error(mastered.output) < 0.8 * error(mastered.input)


def test_suggested_settings_render_exactly_and_save(song, mastered, tmp_path: Path) -> None:
    settings = automix.suggest(song, reference="pop", target="apple")
    assert settings == mastered.settings
    again = automix.master(song, settings=settings)
    assert again.method == "settings"
    np.testing.assert_array_equal(again.audio.samples, mastered.audio.samples)
    path = automix.save(tmp_path / "m.wav", again.audio, bit_depth=24)
    back = automix.load(path)
    np.testing.assert_allclose(back.samples, again.audio.samples, atol=2.0 ** -23)


def test_master_file_writes_what_the_cli_writes(tmp_path: Path) -> None:
    out = tmp_path / "song_master.wav"
    report = automix.master_file(str(EXAMPLE), automix.MasterOptions(reference="pop"),
                                 automix.OutputOptions(output=str(out)))
    assert out.exists() and json.loads(out.with_suffix(".json").read_text()) == {
        k: v for k, v in report.items() if k != "sidecar"}
    assert report["measurements"]["output"]["integrated_lufs"] == pytest.approx(-14.0, abs=0.1)
    with pytest.raises(automix.AutomixError, match="exists; use --force"):
        automix.master_file(EXAMPLE, automix.MasterOptions(), automix.OutputOptions(output=out))


def test_bad_options_are_refused_as_types() -> None:
    with pytest.raises(automix.AutomixError, match="unknown method 'magic'"):
        automix.MasterOptions(method="magic")
    with pytest.raises(automix.AutomixError, match=r"eq=2 is out of range \[0, 1\]"):
        automix.Amounts(eq=2.0)
