"""Issue 16, points 1 and 6, on stems cut from the committed real excerpts.

Silent stems (an all-zero file, -100 dBFS noise: an empty or bleed-only track, and a stem
shorter than a loudness block) are kept, passed through at unit gain with warning S03, and
take no part in the balance: the settings of the other stems are exactly those of the same
folder without them (what is asserted below; the master's settings may differ by the noise's
negligible share of the bus). A folder of silent stems is refused in one line. The clipping
warning (W01) names a clipped stem, and is not given for a summed bus over full scale.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from automix.cli import app

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 6.0
# real excerpts, named so that roles come from the names; each at about -14 dBFS peak
SOURCES = {"drums.flac": "reference_tracks/rock/hedgewars__rock.flac",
           "keys.flac": "reference_tracks/ambient/singularity__nebula.flac",
           "vocals.flac": "examples/dirty_love.flac"}
SILENT = ("09_ch09.wav", "10_bleed.wav", "11_blip.wav")
runner = CliRunner()


def _excerpt(path: str, peak_dbfs: float = -14.0) -> tuple[np.ndarray, int]:
    x, sr = sf.read(ROOT / path, dtype="float32", always_2d=True)
    x = x[: int(SECONDS * sr)]
    return x * np.float32(10 ** (peak_dbfs / 20) / np.max(np.abs(x))), sr


def _real_stems(folder: Path, peak_dbfs: float = -14.0) -> Path:
    folder.mkdir(parents=True)
    for name, source in SOURCES.items():
        x, sr = _excerpt(source, peak_dbfs)
        sf.write(folder / name, x, sr)
    return folder


def _with_silent_stems(folder: Path) -> Path:
    _real_stems(folder)
    n = int(SECONDS * 44100)
    rng = np.random.default_rng(16)
    sf.write(folder / SILENT[0], np.zeros((n, 2), np.float32), 44100)  # digital silence
    sf.write(folder / SILENT[1], (1e-5 * rng.standard_normal(n)).astype(np.float32), 44100,
             subtype="FLOAT")  # -100 dBFS noise: bleed
    sf.write(folder / SILENT[2], (0.3 * rng.standard_normal(4410)).astype(np.float32), 44100)
    return folder


def _mix(folder: Path, out: Path, *args: str) -> dict:
    result = runner.invoke(app, ["mix", str(folder), "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    return json.loads(out.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def silent_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    tmp = tmp_path_factory.mktemp("silent")
    folder = _with_silent_stems(tmp / "stems")
    out = tmp / "mix.wav"
    return folder, _mix(folder, out, "--stems-out", str(tmp / "processed")), tmp


def test_silent_stems_are_passed_through_with_s03(silent_run: tuple[Path, dict, Path]) -> None:
    _, report, tmp = silent_run
    s03 = [w["message"] for w in report["warnings"] if w["code"] == "S03-silent"]
    assert len(s03) == len(SILENT)
    for name in SILENT:
        assert any(m.startswith(f"{name}:") for m in s03), s03
        chain = report["settings"]["stems"][name]
        assert chain["gain"]["gain_db"] == 0.0  # unit gain: never boosted
        assert chain["eq"] == report["settings"]["stems"][SILENT[0]]["eq"]  # neutral
    assert {s["name"] for s in report["stems"] if s["silent"]} == set(SILENT)
    assert sorted(Path(p).name for p in report["stems_out"]) == sorted(
        f"{Path(n).stem}.wav" for n in [*SOURCES, *SILENT])
    bleed, _ = sf.read(tmp / "processed" / "10_bleed.wav", always_2d=True)
    assert 0 < np.max(np.abs(bleed)) < 1e-3  # rendered, at its own (tiny) level


def test_silent_stems_leave_the_others_settings_alone(silent_run: tuple[Path, dict, Path],
                                                      tmp_path: Path) -> None:
    _, report, _ = silent_run
    alone = _mix(_real_stems(tmp_path / "stems"), tmp_path / "mix.wav")
    for name in SOURCES:
        assert report["settings"]["stems"][name] == alone["settings"]["stems"][name], name


def test_settings_round_trip_with_a_silent_stem(silent_run: tuple[Path, dict, Path],
                                                tmp_path: Path) -> None:
    folder, _, _ = silent_run
    settings = tmp_path / "settings.json"
    result = runner.invoke(app, ["suggest", str(folder), "-o", str(settings)])
    assert result.exit_code == 0, result.output
    first = _mix(folder, tmp_path / "a.wav", "--settings", str(settings))
    assert "S03-silent" in [w["code"] for w in first["warnings"]]
    _mix(folder, tmp_path / "b.wav", "--settings", str(settings))
    np.testing.assert_array_equal(sf.read(tmp_path / "a.wav")[0], sf.read(tmp_path / "b.wav")[0])


def test_a_folder_of_silent_stems_is_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / "stems"
    folder.mkdir()
    n = int(SECONDS * 44100)
    sf.write(folder / "a.wav", np.zeros((n, 2), np.float32), 44100)
    sf.write(folder / "b.wav", (1e-5 * np.random.default_rng(0).standard_normal(n)
                                ).astype(np.float32), 44100, subtype="FLOAT")
    result = runner.invoke(app, ["mix", str(folder), "-o", str(tmp_path / "mix.wav")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "every stem is silent" in lines[0]
    assert not (tmp_path / "mix.wav").exists()


def test_a_loud_bus_is_not_clipping_a_clipped_stem_is(tmp_path: Path) -> None:
    """Unclipped stems (-1 dBFS peaks) through settings at +12 dB sum far over full scale:
    the bus's own analysis (the master's input) finds it clipped, but that is no warning
    about the inputs. The same folder with one stem clipped: one W01, naming it."""
    folder = _real_stems(tmp_path / "loud", peak_dbfs=-1.0)
    report = _mix(folder, tmp_path / "first.wav", "--method", "dsp")
    loud = report["settings"]
    for chain in loud["stems"].values():
        chain["gain"]["gain_db"] = 12.0
    settings = tmp_path / "gains.json"
    settings.write_text(json.dumps({"settings": loud}))
    report = _mix(folder, tmp_path / "loud.wav", "--settings", str(settings))
    bus = report["measurements"]["input"]
    assert "W01-clipping" in [w["code"] for w in bus["warnings"]]  # the summed bus clips
    assert "W01-clipping" not in [w["code"] for w in report["warnings"]], report["warnings"]
    drums, sr = sf.read(folder / "drums.flac", always_2d=True)
    sf.write(folder / "drums.flac", np.clip(drums * 8.0, -1.0, 1.0), sr)
    report = _mix(folder, tmp_path / "clipped.wav", "--method", "dsp")
    w01 = [w["message"] for w in report["warnings"] if w["code"] == "W01-clipping"]
    assert len(w01) == 1 and w01[0].startswith("drums.flac:"), w01


def test_batch_mix_keeps_silent_stems_and_names_a_silent_folder(tmp_path: Path) -> None:
    songs = tmp_path / "songs"
    _with_silent_stems(songs / "band")
    empty = songs / "empty"
    empty.mkdir()
    for name in SILENT[:2]:
        (empty / name).write_bytes((songs / "band" / name).read_bytes())
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", str(songs), "-o", str(out), "--mode", "mix",
                                 "--jobs", "1"])
    assert result.exit_code == 1, result.output
    assert "1 done, 0 skipped, 1 failed" in result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    assert len(failed) == 1 and failed[0].startswith("failed empty:"), result.stderr
    assert "every stem is silent" in " ".join(result.stderr.split()), result.stderr
    report = json.loads((out / "band.json").read_text())
    assert {w["message"].split(":")[0] for w in report["warnings"]
            if w["code"] == "S03-silent"} == set(SILENT)
