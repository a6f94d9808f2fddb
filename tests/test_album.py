"""Album mode on four real excerpts (issue #20, point 1): the loudness steps between songs
kept, the loudest on the target, every true peak under the ceiling, one tonal target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from automix import loudness
from automix.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
EXCERPTS = {  # committed real excerpts (licences beside them), set to these input loudnesses
    "single": (ROOT / "reference_tracks/pop/lmms_alf42red_mauiwowi.flac", -12.0),
    "rocker": (ROOT / "reference_tracks/metal/fof_metal_madness.flac", -15.0),
    "ballad": (ROOT / "reference_tracks/folk/wesnoth__traveling_minstrels.flac", -21.0),
    "outro": (ROOT / "examples/dirty_love.flac", -18.0),
}


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("album_in")
    for name, (path, lufs) in EXCERPTS.items():
        x, sr = sf.read(path, dtype="float32", always_2d=True)
        gain = 10 ** ((lufs - loudness.integrated_lufs(x.T, sr)) / 20)
        sf.write(folder / f"{name}.wav", x * np.float32(gain), sr, subtype="FLOAT")
    return folder


def _album(songs: Path, out: Path, *flags: str) -> dict:
    result = runner.invoke(app, ["album", str(songs), "-o", str(out), "-r", "pop", "--json",
                                 *flags])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_album_keeps_the_steps_and_shares_one_target(songs: Path, tmp_path: Path) -> None:
    report = _album(songs, tmp_path / "out", "--report", str(tmp_path / "album.html"))
    rows = {s["name"]: s for s in report["songs"]}
    target, ceiling = report["delivery"]["integrated_lufs"], report["delivery"]["ceiling_dbtp"]
    measured, masters = {}, []
    for name, row in rows.items():
        x, sr = sf.read(row["output"], dtype="float32", always_2d=True)
        measured[name] = loudness.integrated_lufs(x.T, sr)
        masters.append(x)
        assert loudness.true_peak_dbtp(x.T, sr) <= ceiling + 0.05, name
    assert measured["single"] == pytest.approx(target, abs=0.5)  # the loudest on the target
    for name, (_, lufs) in EXCERPTS.items():  # the steps the artist set, within 0.5 LU
        step_in, step_out = lufs - (-12.0), measured[name] - measured["single"]
        assert step_out == pytest.approx(step_in, abs=0.5), name
    # one tonal target: every song's sidecar was matched to the same reference features
    features = [json.loads(Path(r["output"]).with_suffix(".json").read_text())["reference"]
                ["features"] for r in rows.values()]
    assert all(f == features[0] for f in features)
    assert features[0]["bands"] == report["reference"]["features"]["bands"]
    joined = loudness.integrated_lufs(np.concatenate(masters).T, sr)  # the album played through
    assert report["album_lufs"] == pytest.approx(joined, abs=0.01)
    assert min(measured.values()) < report["album_lufs"] < max(measured.values())
    page = (tmp_path / "album.html").read_text()
    assert page.count("<tr>") == 5 and "ballad" in page and "<svg" in page
    # resumable: a second run skips every song; --same-loudness is a new plan for every song
    # but the loudest (already on the target), which are redone
    again = _album(songs, tmp_path / "out")
    assert {s["status"] for s in again["songs"]} == {"skipped"}
    same = _album(songs, tmp_path / "out", "--same-loudness")
    assert [s["status"] for s in same["songs"]] == [
        "skipped" if s["name"] == "single" else "done" for s in same["songs"]]
    for s in same["songs"]:
        assert s["integrated_lufs"] == pytest.approx(target, abs=0.5), s["name"]


def test_album_needs_two_songs(tmp_path: Path) -> None:
    result = runner.invoke(app, ["album", str(EXCERPTS["single"][0]), "-o", str(tmp_path)])
    assert result.exit_code == 1 and "at least two songs" in result.output


def test_album_never_writes_over_an_input_or_a_foreign_file(songs: Path, tmp_path: Path) -> None:
    before = (songs / "ballad.wav").read_bytes()
    result = runner.invoke(app, ["album", str(songs), "-o", str(songs)])
    assert result.exit_code == 1 and "refusing to write over the input" in result.output
    assert (songs / "ballad.wav").read_bytes() == before
    out = tmp_path / "out"
    out.mkdir()
    (out / "ballad.wav").write_bytes(b"someone else's")
    result = runner.invoke(app, ["album", str(songs), "-o", str(out)])
    assert result.exit_code == 1 and "is not this album's; use --force" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["ballad.wav"]  # nothing written
