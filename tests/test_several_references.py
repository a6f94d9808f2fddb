"""Several references averaged like a preset, and the tone/dynamics split (issue #20, pt 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from automix import presets
from automix.analysis import band_values
from automix.cli import app
from automix.references import resolve, resolve_reference

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
SONG = ROOT / "examples" / "dirty_love.flac"
CALM = ROOT / "reference_tracks" / "ambient" / "singularity__nebula.flac"
LOUD = ROOT / "reference_tracks" / "metal" / "fof_metal_madness.flac"


def _master(tmp_path: Path, *flags: str) -> dict:
    result = runner.invoke(app, ["master", str(SONG), "-o", str(tmp_path / "m.wav"), "--json",
                                 "--force", *flags])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_two_references_are_averaged_like_a_preset(tmp_path: Path) -> None:
    report = _master(tmp_path, "-r", str(CALM), "-r", str(LOUD))
    used = report["reference"]["features"]
    # the preset builder's own average of the two files' analyses
    expected = presets.profile_from_files([CALM, LOUD], name="x", description="x").features
    for key in ("integrated_lufs", "crest_db", "plr_db", "width", "loudness_range_lu"):
        # each file's analysis is kept at the sidecar's precision (0.01) before averaging
        assert used[key] == pytest.approx(expected[key], abs=0.01), key
    np.testing.assert_allclose(band_values(used["bands"]["mid_db"]),
                               band_values(expected["bands"]["mid_db"]), atol=0.01)
    assert report["reference"]["kind"] == "average"
    # two files: the delivery loudness is the mean of theirs
    calm, loud = (resolve_reference(str(p)).target.integrated_lufs for p in (CALM, LOUD))
    assert report["target"]["integrated_lufs"] == pytest.approx((calm + loud) / 2, abs=0.01)


def test_tone_and_dynamics_come_from_their_own_references() -> None:
    ref, _ = resolve("pop", None, tone=str(CALM), dynamics=str(LOUD))
    calm, loud, pop = (resolve_reference(s) for s in (str(CALM), str(LOUD), "pop"))
    assert ref.features.tonal_mid_db == calm.features.tonal_mid_db
    assert ref.features.tonal_side_db == calm.features.tonal_side_db
    for key in ("crest_db", "plr_db", "width", "loudness_range_lu"):
        assert getattr(ref.features, key) == getattr(loud.features, key), key
    assert ref.features.integrated_lufs == pop.features.integrated_lufs  # the rest: pop's
    assert ref.features.crest_db != calm.features.crest_db  # the files differ: a real check
    assert "tone: singularity__nebula" in ref.name and "dynamics: fof_metal_madness" in ref.name


def test_tone_reference_from_the_cli_reaches_the_sidecar(tmp_path: Path) -> None:
    report = _master(tmp_path, "--tone-reference", "rock", "--dynamics-reference", "ambient")
    used = report["reference"]["features"]
    rock = presets.load_genre("rock").features
    ambient = presets.load_genre("ambient").features
    np.testing.assert_allclose(band_values(used["bands"]["mid_db"]),
                               band_values(rock["bands"]["mid_db"]), atol=1e-6)
    assert used["crest_db"] == pytest.approx(ambient["crest_db"])
    sidecar = json.loads(Path(report["sidecar"]).read_text())
    assert sidecar["reference"]["name"] == "pop (tone: rock, dynamics: ambient)"
