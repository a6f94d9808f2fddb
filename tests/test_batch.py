"""Batch: a failing song never stops the others, reruns resume, Ray runs the same jobs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from automix import batch
from automix.cli import app
from automix.errors import SettingsError
from automix.settings import request_of
from conftest import music_like

SR = 44100
runner = CliRunner()


@pytest.fixture
def songs(tmp_path: Path) -> Path:
    folder = tmp_path / "songs"
    folder.mkdir()
    for i in range(2):
        sf.write(folder / f"song{i}.wav", music_like(np.random.default_rng(i), SR, 3.0).T, SR)
    (folder / "broken.wav").write_bytes(b"RIFF not really a wave file")
    return folder


def test_batch_survives_a_broken_song_and_resumes(songs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", str(songs), "-o", str(out), "--jobs", "2"])
    assert result.exit_code == 1, result.output
    assert "2 done, 0 skipped, 1 failed" in result.output
    assert "not a readable audio file" in result.output
    done = {p.name for p in out.iterdir()}
    assert done == {"song0.wav", "song0.json", "song1.wav", "song1.json"}
    assert json.loads((out / "song0.json").read_text())["input"] == str(songs / "song0.wav")
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    result = runner.invoke(app, ["batch", str(songs), "-o", str(out), "--jobs", "1"])
    assert result.exit_code == 1
    assert "0 done, 2 skipped, 1 failed" in result.output
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


def test_unfinished_outputs_are_redone(songs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    jobs = batch.plan(songs, out, mode="master")
    assert [j.name for j in jobs] == ["broken", "song0", "song1"]
    Path(jobs[1].output).write_bytes(b"partial")  # audio without its sidecar: not finished
    assert not jobs[1].is_done()
    Path(jobs[2].output).write_bytes(b"x")
    jobs[2].sidecar.write_text("{}")  # a sidecar that does not say what it was made with
    assert not jobs[2].is_done()
    jobs[2].sidecar.write_text(json.dumps({"request": request_of(*jobs[2].library_options())}))
    assert jobs[2].is_done()


def _in_process(monkeypatch) -> None:
    """Songs run in this process (no pool to spawn): what is redone is batch's choice."""
    from dataclasses import asdict

    monkeypatch.setattr(batch, "_run_local", lambda jobs, workers, address: (
        batch.JobResult(**batch.run_job(asdict(j))) for j in jobs))


def test_a_rerun_redoes_songs_whose_settings_changed(songs: Path, tmp_path: Path,
                                                     monkeypatch) -> None:
    from automix import loudness

    _in_process(monkeypatch)
    (songs / "broken.wav").unlink()
    out = tmp_path / "out"
    base = ["batch", str(songs), "-o", str(out), "-t", "-12"]
    for extra, summary in (([], "2 done, 0 skipped"), ([], "0 done, 2 skipped"),
                           (["--amount", "0.5"], "2 done, 0 skipped"),
                           (["--amount", "0.5", "--bit-depth", "16"], "2 done, 0 skipped"),
                           (["--amount", "0.5", "--bit-depth", "16"], "0 done, 2 skipped"),
                           (["--amount", "0.5", "--bit-depth", "16", "--force"], "2 done"),
                           (["--amount", "0.5", "--bit-depth", "16", "-t", "-16"], "2 done")):
        result = runner.invoke(app, base + extra)
        assert result.exit_code == 0 and summary in result.output, (extra, result.output)
    for name in ("song0", "song1"):
        y, sr = sf.read(out / f"{name}.wav", dtype="float32", always_2d=True)
        assert sf.info(out / f"{name}.wav").subtype == "PCM_16"
        assert loudness.integrated_lufs(y.T, sr) == pytest.approx(-16.0, abs=0.5)
        request = json.loads((out / f"{name}.json").read_text())["request"]
        assert request["target"] == "-16" and request["amounts"]["eq"] == 0.5


def test_a_song_folder_with_stems_is_mixed_from_them(tmp_path: Path, monkeypatch) -> None:
    songs = tmp_path / "multitracks"
    for song, nested in (("band", True), ("plain", False)):
        stems = songs / song / "stems" if nested else songs / song
        stems.mkdir(parents=True)
        mix = np.zeros((2, 3 * SR), dtype=np.float32)
        for i, stem in enumerate(("drums", "bass")):
            x = music_like(np.random.default_rng(10 + i), SR, 3.0) * np.float32(0.5)
            sf.write(stems / f"{stem}.wav", x.T, SR)
            mix += x
        if nested:  # the song's own render beside its stems is not a stem
            sf.write(songs / song / "mix_sum.wav", mix.T, SR)
    jobs = batch.plan(songs, tmp_path / "out", mode="mix")
    assert [(j.name, Path(j.input).relative_to(songs).as_posix()) for j in jobs] == [
        ("band", "band/stems"), ("plain", "plain")]
    _in_process(monkeypatch)
    result = runner.invoke(app, ["batch", str(songs), "-o", str(tmp_path / "out"),
                                 "--mode", "mix", "--method", "authors"])
    assert result.exit_code == 0 and "2 done" in result.output, result.output
    report = json.loads((tmp_path / "out" / "band.json").read_text())
    assert sorted(s["name"] for s in report["stems"]) == ["bass.wav", "drums.wav"]
    assert report["method"] == "authors"
    # a master has no stems for the author model: one line, before any song starts
    result = runner.invoke(app, ["batch", str(songs), "-o", str(tmp_path / "masters"),
                                 "--method", "authors"])
    assert result.exit_code == 1 and "unknown method 'authors'" in result.output, result.output
    assert not (tmp_path / "masters").exists()


def test_plan_refuses_empty_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no folders of stems to mix"):
        batch.plan(tmp_path, tmp_path / "out", mode="mix")
    with pytest.raises(SettingsError, match="unknown mode 'remix'"):
        batch.plan(tmp_path, tmp_path / "out", mode="remix")
    with pytest.raises(SettingsError, match="unknown engine 'spark'"):
        batch.run([], engine="spark")


def test_ray_engine_runs_master_and_mix_jobs(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    songs = tmp_path / "songs"
    song = songs / "duo"
    song.mkdir(parents=True)
    for i, name in enumerate(("bass.wav", "keys.wav")):
        sf.write(song / name, music_like(np.random.default_rng(i), SR, 3.0).T, SR)
    single = tmp_path / "single"
    single.mkdir()
    sf.write(single / "one.wav", music_like(np.random.default_rng(9), SR, 3.0).T, SR)
    out = tmp_path / "out"
    out.mkdir()
    jobs = (batch.plan(songs, out, mode="mix", options={"reference": "rock"})
            + batch.plan(single, out, mode="master"))
    seen: list[str] = []
    results = batch.run(jobs, engine="ray", workers=1, on_result=lambda r: seen.append(r.name))
    assert [r.status for r in results] == ["done", "done"], [r.error for r in results]
    assert sorted(seen) == ["duo", "one"]
    report = json.loads((out / "duo.json").read_text())
    assert report["reference"]["name"] == "rock" and len(report["stems"]) == 2
    assert results[1].audio_s == pytest.approx(3.0, abs=0.01)
