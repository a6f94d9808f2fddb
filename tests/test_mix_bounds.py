"""Mixing long folders: role detection on bounded excerpts, every stage timed and reported
to a progress callback, and the CLI showing those stages (issue #16, points 2 and 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from automix.cli import PROGRESS_ENV, app
from automix.files import mix_file
from automix.mixing import stems as stem_io
from automix.settings import MixOptions, OutputOptions

SR = 8000
STAGES = ["load", "suggest", "render", "master", "write"]
runner = CliRunner()


def _folder(tmp_path: Path, seconds: float, names: tuple[str, ...]) -> Path:
    """Stems named so that no role comes from the name: a pulsed low tone, noise bursts."""
    folder = tmp_path / "song"
    folder.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(int(SR * seconds)) / SR
    sounds = [0.3 * np.sin(2 * np.pi * 55 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t)),
              0.1 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.9)]
    for name, x in zip(names, sounds, strict=False):
        sf.write(folder / name, x.astype(np.float32), SR)
    return folder


def test_roles_from_audio_hear_a_bounded_excerpt(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A long stem's role is guessed from at most `ROLE_EXCERPT_S` of it, never a
    whole-stem FFT at its (arbitrary) length."""
    seconds = stem_io.ROLE_EXCERPT_S + 17.3
    folder = _folder(tmp_path, seconds, ("track 1.wav", "track 2.wav"))
    heard: list[int] = []
    guess = stem_io.role_from_audio

    def spy(samples: np.ndarray, sample_rate: int) -> str:
        heard.append(samples.shape[1])
        return guess(samples, sample_rate)

    monkeypatch.setattr(stem_io, "role_from_audio", spy)
    stems, sr, _ = stem_io.load_stems(folder)
    assert stems[0].samples.shape[1] == int(SR * seconds)
    assert len(heard) == 2
    assert all(0 < n <= stem_io.ROLE_EXCERPT_S * sr for n in heard), heard
    assert stems[0].role == "bass"  # the excerpt still hears the low tone


def test_mix_reports_every_stage_and_times_the_whole_run(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 6.0, ("01_bass.wav", "02_noise.wav"))
    seen: list[str] = []
    report = mix_file(folder, MixOptions(method="dsp"),
                      OutputOptions(output=tmp_path / "mix.wav"), progress=seen.append)
    assert seen == STAGES
    timings = report["timings_s"]
    for stage in ("load", "suggest_mix", "render_mix", "analyse", "render", "write", "total"):
        assert stage in timings, timings
    parts = sum(v for k, v in timings.items() if k != "total")
    # the stages are the run: they add up to its wall time (rounding; the few checks between)
    assert 0.75 * timings["total"] <= parts <= timings["total"] + 0.01
    sidecar = json.loads((tmp_path / "mix.json").read_text())
    assert sidecar["timings_s"] == timings


def test_cli_shows_stage_names_on_a_terminal_only(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 3.0, ("01_bass.wav", "02_noise.wav"))
    out = tmp_path / "mix.wav"
    shown = runner.invoke(app, ["mix", str(folder), "-o", str(out), "--method", "dsp"],
                          env={PROGRESS_ENV: "1"})
    assert shown.exit_code == 0, shown.output
    for stage in STAGES:
        assert f"mix song: {stage}" in shown.stderr
    quiet = runner.invoke(app, ["mix", str(folder), "-o", str(out), "--method", "dsp",
                                "--force", "--json"], env={PROGRESS_ENV: "1"})
    assert quiet.exit_code == 0, quiet.output
    assert "mix song:" not in quiet.stderr
    json.loads(quiet.stdout)
    plain = runner.invoke(app, ["mix", str(folder), "-o", str(out), "--method", "dsp",
                                "--force"])
    assert plain.exit_code == 0 and "mix song:" not in plain.stderr


def test_render_in_groups_keeps_the_bus_of_the_whole_render() -> None:
    """The bus rendered a few stems at a time, keeping none of them, equals the sum of every
    stem's dry render plus the room's return of their sends (the in-memory formula)."""
    from automix.effects import render
    from automix.mixing.render import RENDER_THREADS, render_mix, render_stem
    from automix.params import GainParams, PanParams, SendParams, StemChain
    from automix.settings import DEFAULT_REVERB

    rng = np.random.default_rng(1)
    n = 2 * RENDER_THREADS + 1  # more than one group, the last one partial
    stems = [stem_io.Stem(f"{i}.wav", (0.1 * rng.standard_normal((1 + i % 2, SR * 2)))
                          .astype(np.float32), "other", "audio") for i in range(n)]
    chains = {s.name: StemChain(gain=GainParams(gain_db=-3.0 + i), pan=PanParams(pan=0.2 * i - 0.5),
                                send=SendParams(send_db=-12.0 if i % 2 else -60.0))
              for i, s in enumerate(stems)}
    bus, kept = render_mix(stems, SR, chains, DEFAULT_REVERB, keep=False)
    whole, drys = render_mix(stems, SR, chains, DEFAULT_REVERB)
    assert kept == [] and len(drys) == n
    np.testing.assert_array_equal(bus, whole)
    parts = [render_stem(s, SR, chains[s.name]) for s in stems]
    sends = sum(send for (_, send), s in zip(parts, stems, strict=True)
                if chains[s.name].send.send_db > -60.0)
    expected = sum(dry for dry, _ in parts) + render.reverb_return(sends, SR, DEFAULT_REVERB)
    np.testing.assert_allclose(bus, expected, atol=1e-5)


def test_master_reports_its_stages(tmp_path: Path) -> None:
    from automix.files import master_file
    from automix.settings import MasterOptions

    song = tmp_path / "song.wav"
    t = np.arange(SR * 4) / SR
    sf.write(song, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    seen: list[str] = []
    master_file(song, MasterOptions(), OutputOptions(output=tmp_path / "out.wav"),
                progress=seen.append)
    assert seen == ["master", "write"]
    assert (tmp_path / "out.wav").exists()
