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


# --- bounded memory: stems read from their files, rendered and mastered in blocks -------------


def _chains(stems: list) -> dict:
    from automix.params import (
        CompressorParams,
        EQParams,
        GainParams,
        HighpassParams,
        PanParams,
        SendParams,
        StemChain,
    )

    return {s.name: StemChain(gain=GainParams(gain_db=-2.0 - i),
                              highpass=HighpassParams(freq_hz=40.0 + 20 * i),
                              eq=EQParams(peak2_gain_db=3.0 - 2 * i, high_shelf_gain_db=-2.0),
                              compressor=CompressorParams(threshold_db=-24.0, ratio=3.0,
                                                          attack_ms=5.0, release_ms=80.0),
                              pan=PanParams(pan=0.3 * i - 0.4),
                              send=SendParams(send_db=-10.0 if i % 2 else -60.0))
            for i, s in enumerate(stems)}


def test_block_render_equals_the_whole_render(tmp_path: Path) -> None:
    """Each stem's chain (high-pass, EQ, compressor) run block by block, its plugins' state
    carried over, joins into the one-shot render of the whole stem; the bus is their sum plus
    the room's return of the whole send bus, to float rounding."""
    from automix.effects import render
    from automix.mixing.render import render_blocks, render_dry
    from automix.settings import DEFAULT_REVERB

    rng = np.random.default_rng(2)
    n = SR * 5 + 77
    t = np.arange(n) / SR
    drum = (np.sin(2 * np.pi * 80 * t) * np.exp(-(t % 0.5) * 12))[None]
    stereo = 0.2 * rng.standard_normal((2, n)) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    stems = [stem_io.Stem("kick.wav", (0.8 * drum).astype(np.float32), "drums", "audio"),
             stem_io.Stem("pad.wav", stereo.astype(np.float32), "other", "audio"),
             stem_io.Stem("bass.wav", np.repeat(0.4 * drum, 2, 0).astype(np.float32),
                          "bass", "audio")]
    chains = _chains(stems)
    block = 1000  # not a divisor of the length: the last block is partial
    parts = list(render_blocks(stems, SR, chains, DEFAULT_REVERB, block=block))
    assert len(parts) == -(-n // block)
    bus = np.concatenate([b for b, _ in parts], axis=1)
    whole = [render_dry(s.read(), s.is_stereo, SR, chains[s.name]) for s in stems]
    for i, dry in enumerate(whole):
        blocks = np.concatenate([d[i] for _, d in parts], axis=1)
        np.testing.assert_allclose(blocks, dry, rtol=0, atol=2e-6)
    sends = sum(dry * np.float32(render.db_to_amp(chains[s.name].send.send_db))
                for dry, s in zip(whole, stems, strict=True)
                if chains[s.name].send.send_db > -60.0)
    expected = sum(whole) + render.reverb_return(sends, SR, DEFAULT_REVERB)
    np.testing.assert_allclose(bus, expected, rtol=0, atol=1e-5)
    assert float(np.abs(bus).max()) > 0.1  # a real signal, not two silences agreeing


def _long_folder(tmp_path: Path, count: int, seconds: float) -> Path:
    folder = tmp_path / "long"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    t = np.arange(int(SR * seconds)) / SR
    for i in range(count):
        x = (0.3 * np.sin(2 * np.pi * (50 + 10 * i) * t) if i % 2 == 0
             else 0.05 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * (1 + i) * t) > 0.5))
        sf.write(folder / f"track {i}.wav", x.astype(np.float32), SR, subtype="FLOAT")
    return folder


def test_stems_from_files_measure_as_in_memory(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`load_stems` leaves a large folder's stems in their files; read back, padded, they are
    the files' samples, and their loudness, stereo-ness and loudest excerpt (from the
    one-pass profile) are those of the same samples held in memory, as a small folder's
    are."""
    folder = _long_folder(tmp_path, 3, 70.0)
    x, _ = sf.read(folder / "track 1.wav", dtype="float32")
    sf.write(folder / "track 1.wav", x[: SR * 50], SR, subtype="FLOAT")  # padded: 20 s short
    held, _, _ = stem_io.load_stems(folder)
    assert all(isinstance(s.samples, np.ndarray) for s in held)
    monkeypatch.setattr(stem_io, "STEMS_IN_MEMORY_MIB", 1)  # 3 stems of 70 s are 2.1 MiB
    stems, sr, warnings = stem_io.load_stems(folder)
    assert all(isinstance(s.samples, stem_io.StemFile) for s in stems)
    assert [(s.role, s.silent) for s in stems] == [(s.role, s.silent) for s in held]
    assert any(w.code == "S02-padded" for w in warnings)
    arrays = [stem_io.Stem(s.name, np.asarray(s.samples), s.role, s.role_source)
              for s in stems]
    np.testing.assert_array_equal(arrays[1].samples[0, : SR * 50], x[: SR * 50])
    assert not np.any(arrays[1].samples[:, SR * 50:])
    assert arrays[1].samples.shape == stems[1].samples.shape == (1, SR * 70)
    for lazy, held in zip(stems, arrays, strict=True):
        assert lazy.is_stereo == held.is_stereo
        assert stem_io.stem_loudness_lufs(lazy, sr) == pytest.approx(
            stem_io.stem_loudness_lufs(held, sr), abs=1e-6)
    assert stem_io.loudest_excerpt(stems, sr, 30.0) == stem_io.loudest_excerpt(arrays, sr, 30.0)


def test_a_long_folder_is_never_held_in_memory(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading and mixing a folder (its mix mastered from a file in blocks, as a long one
    is) allocates far less than the stems' samples: they are read in blocks and excerpts.
    The mix is still mastered: at the target's loudness, under its ceiling."""
    import tracemalloc

    from automix import loudness
    from automix.mixing import pipeline
    from automix.mixing import render as mix_render

    count, seconds = 6, 150.0
    folder = _long_folder(tmp_path, count, seconds)
    stems_bytes = count * int(SR * seconds) * 4
    monkeypatch.setattr(pipeline, "STREAMED_MIX_MIN_S", 1.0)
    monkeypatch.setattr(stem_io, "STEMS_IN_MEMORY_MIB", 0)
    monkeypatch.setattr(stem_io, "THREADS", 2)  # each thread holds a block and 30-s excerpts
    monkeypatch.setattr(mix_render, "RENDER_THREADS", 2)
    monkeypatch.setattr(mix_render, "RENDER_BLOCK", 4096)  # 0.5 s here, as 3 s at 44.1 kHz
    warm = _long_folder(tmp_path / "warm", 2, 3.0)  # imports and caches: not the stems
    mix_file(warm, MixOptions(method="dsp"), OutputOptions(output=tmp_path / "warm.wav"))
    tracemalloc.start()
    try:
        stems, _, _ = stem_io.load_stems(folder)
        _, loaded_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        report = mix_file(folder, MixOptions(method="dsp"),
                          OutputOptions(output=tmp_path / "mix.wav"))
        _, mix_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # held whole, the stems alone would be all of it: here two threads' excerpts
    assert loaded_peak < 0.5 * stems_bytes, (loaded_peak, stems_bytes)
    # the mix: stereo bus blocks, 30-s analysis excerpts, the master's 10-s blocks
    assert mix_peak < 0.5 * stems_bytes, (mix_peak, stems_bytes)
    out, sr = sf.read(tmp_path / "mix.wav", dtype="float32", always_2d=True)
    assert out.shape == (int(SR * seconds), 2)
    target, measured = report["target"], report["measurements"]["output"]
    lufs = loudness.integrated_lufs(out.T, sr)
    assert lufs == pytest.approx(measured["integrated_lufs"], abs=0.1)
    assert lufs == pytest.approx(target["integrated_lufs"], abs=1.0)
    assert loudness.true_peak_dbtp(out.T, sr) <= target["ceiling_dbtp"] + 0.1


def test_a_streamed_mix_has_previews_and_times_every_stage(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A mix mastered from a file in blocks gets its previews cut from the written master
    (and the stems' sum over the same span), and its stages still add up to its total."""
    from automix.mixing import pipeline

    monkeypatch.setattr(pipeline, "STREAMED_MIX_MIN_S", 5.0)
    monkeypatch.setattr(stem_io, "STEMS_IN_MEMORY_MIB", 0)
    folder = _long_folder(tmp_path, 2, 40.0)
    report = mix_file(folder, MixOptions(method="dsp"),
                      OutputOptions(output=tmp_path / "mix.wav", preview=True))
    assert "write_verify" in report["timings_s"]  # the streamed master's own write
    timings = report["timings_s"]
    parts = sum(v for k, v in timings.items() if k != "total")
    assert 0.75 * timings["total"] <= parts <= timings["total"] + 0.01
    previews = {k: sf.info(v) for k, v in report["previews"].items()}
    assert previews["input"].duration == previews["result"].duration == pytest.approx(30.0)
