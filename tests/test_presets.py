"""Delivery targets and genre presets: the shipped data, its loader, and its provenance."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from automix import presets
from automix.errors import SettingsError

ROOT = Path(__file__).resolve().parents[1]
N_BANDS = 28  # third-octave centres 31.5 Hz .. 16 kHz
REQUIRED_TARGETS = {"spotify": (-14.0, -1.0), "apple": (-16.0, -1.0),
                    "youtube": (-14.0, -1.0), "ebu-r128": (-23.0, -1.0)}
SCALAR_KEYS = ("integrated_lufs", "loudness_range_lu", "true_peak_dbtp", "crest_db", "plr_db",
               "width", "correlation")


def test_presets_dir_is_the_repository_folder():
    assert presets.PRESETS_DIR.resolve() == (ROOT / "presets").resolve()


@pytest.mark.parametrize("name", sorted(REQUIRED_TARGETS))
def test_required_targets_have_their_published_numbers(name):
    target = presets.load_target(name)
    assert (target.integrated_lufs, target.ceiling_dbtp) == REQUIRED_TARGETS[name]
    assert target.name == name and target.description


def test_every_target_is_plausible_and_named_like_its_file():
    targets = presets.list_targets()
    assert {t.name for t in targets} >= set(REQUIRED_TARGETS) | {"cd", "club"}
    for t in targets:
        assert -30.0 <= t.integrated_lufs <= -5.0 and -3.0 <= t.ceiling_dbtp <= 0.0
        assert "\n" not in t.description


@pytest.mark.parametrize("loader, kind", [(presets.load_target, "target"),
                                          (presets.load_genre, "genre preset")])
def test_unknown_name_lists_the_known_ones(loader, kind):
    with pytest.raises(SettingsError, match=f"unknown {kind} 'nope'; known: .*") as err:
        loader("nope")
    message = str(err.value)
    assert "spotify" in message if kind == "target" else "pop" in message
    assert "\n" not in message


def test_target_from_a_json_path_is_validated(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "integrated_lufs": -12.5, "ceiling_dbtp": -0.8,
                                "description": "my label's level"}))
    assert presets.load_target(str(path)).integrated_lufs == -12.5
    path.write_text(json.dumps({"name": "mine", "integrated_lufs": 3.0, "ceiling_dbtp": -1,
                                "description": "x"}))
    with pytest.raises(SettingsError, match=r"integrated_lufs must be a number in \[-40, 0\]"):
        presets.load_target(str(path))
    path.write_text("{not json")
    with pytest.raises(SettingsError, match="not valid JSON"):
        presets.load_target(str(path))


def test_at_least_eight_genres_with_full_tonal_balance_and_plausible_loudness():
    genres = presets.list_genres()
    names = {g.name for g in genres}
    assert len(genres) >= 8 and "pop" in names
    target_names = {t.name for t in presets.list_targets()}
    for g in genres:
        f = g.features
        bands = f["bands"]
        assert len(bands["centers_hz"]) == N_BANDS
        assert bands["centers_hz"][0] == pytest.approx(31.5, rel=0.03)
        assert bands["centers_hz"][-1] == pytest.approx(16000, rel=0.03)
        for key in ("mid_db", "side_db"):
            values = np.asarray(bands[key], dtype=float)
            assert values.shape == (N_BANDS,)
            assert not np.any(np.isinf(values))  # finite, or NaN for an empty band
            assert np.isfinite(values).sum() >= N_BANDS - 4, (g.name, key)
        assert -30.0 <= f["integrated_lufs"] <= -3.0, g.name
        assert all(math.isfinite(f[k]) for k in SCALAR_KEYS), g.name
        assert g.target in target_names
        assert len(g.sources) >= 2
        for source in g.sources:
            assert (ROOT / source).is_file(), source
            assert source.startswith(f"reference_tracks/{g.name}/")


def test_reference_tracks_have_recorded_sources_and_licences():
    table = (ROOT / "reference_tracks" / "SOURCES.md").read_text(encoding="utf-8")
    files = sorted((ROOT / "reference_tracks").glob("*/*.flac"))
    assert len(files) >= 16
    for f in files:
        assert f"`{f.parent.name}/{f.name}`" in table, f.name
    licences = {p.stem for p in (ROOT / "reference_tracks" / "licenses").glob("*.copyright")}
    packages = {row.split("|")[3].strip() for row in table.splitlines()
                if row.startswith("| `")}
    assert packages and packages <= licences


def test_average_features_is_nan_aware_and_keeps_band_centres():
    centers = [31.5, 40.0, 50.0]
    a = {"integrated_lufs": -10.0, "width": 0.2, "warnings": [{"code": "W1"}],
         "bands": {"centers_hz": centers, "mid_db": [0.0, float("nan"), float("nan")],
                   "side_db": [-10.0, -12.0, float("nan")]}}
    b = {"integrated_lufs": -14.0, "width": 0.4, "warnings": [{"code": "W1"}, {"code": "W2"}],
         "bands": {"centers_hz": centers, "mid_db": [-2.0, -3.0, float("nan")],
                   "side_db": [-20.0, -14.0, float("nan")]}}
    out = presets.average_features([a, b])
    assert out["integrated_lufs"] == -12.0 and out["width"] == pytest.approx(0.3)
    assert out["bands"]["centers_hz"] == centers
    assert out["bands"]["mid_db"][:2] == [-1.0, -3.0] and math.isnan(out["bands"]["mid_db"][2])
    assert out["bands"]["side_db"][:2] == [-15.0, -13.0]
    assert out["warnings"] == [{"code": "W1"}, {"code": "W2"}]
    with pytest.raises(SettingsError, match="different tonal-balance bands"):
        presets.average_features([a, {**b, "bands": {**b["bands"], "centers_hz": [1, 2, 3]}}])


def test_save_and_load_round_trip_keeps_nan_as_null(tmp_path):
    profile = presets.load_genre("pop")
    features = {**profile.features,
                "bands": {**profile.features["bands"],
                          "side_db": [float("nan")] + profile.features["bands"]["side_db"][1:]}}
    path = tmp_path / "pop2.json"
    presets.save_genre(presets.GenreProfile("pop2", "d", "apple", features, ["a.flac"]), path)
    assert json.loads(path.read_text())["features"]["bands"]["side_db"][0] is None
    back = presets.load_genre(str(path))
    assert math.isnan(back.features["bands"]["side_db"][0])
    assert back.features["integrated_lufs"] == pytest.approx(features["integrated_lufs"], abs=1e-4)
    assert (back.name, back.target, back.sources) == ("pop2", "apple", ["a.flac"])


def test_genre_json_is_computed_from_its_shipped_reference_tracks():
    committed = presets.load_genre("chiptune")
    files = [ROOT / s for s in committed.sources]
    fresh = presets.profile_from_files(files, name=committed.name,
                                       description=committed.description,
                                       target=committed.target)
    for key in SCALAR_KEYS:
        assert fresh.features[key] == pytest.approx(committed.features[key], abs=0.05), key
    for key in ("mid_db", "side_db"):
        np.testing.assert_allclose(fresh.features["bands"][key],
                                   committed.features["bands"][key], atol=0.05, equal_nan=True)


def test_empty_profile_is_refused():
    with pytest.raises(SettingsError, match="at least one reference file"):
        presets.profile_from_files([], name="x", description="y")


def _excerpt_script():
    spec = importlib.util.spec_from_file_location(
        "make_excerpts", ROOT / "reference_tracks" / "make_excerpts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_excerpt_window_is_the_loudest_section_away_from_the_edges():
    script = _excerpt_script()
    sample_rate = 44100
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 60 * sample_rate)).astype(np.float32) * 0.01
    noise[:, 30 * sample_rate:40 * sample_rate] *= 10.0  # +20 dB from 30 s to 40 s
    noise[:, :3 * sample_rate] *= 30.0  # louder still, but inside the intro guard
    start_s = script.loudest_window_s(noise, sample_rate, 10.0)
    assert start_s == pytest.approx(30.0, abs=1e-9)
