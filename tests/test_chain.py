"""A user's own plug-in chain (issue #19 point 2): ``master --chain``, through real plug-ins.

The chain is Debian's ZamEQ2 and ZamCompX2 (tests/setup.sh installs zam-plugins); without
them the tests that load them skip, and the command's refusals of a bad chain are still
checked. Searches stop after a number of renders, not a time, so that results do not depend
on the machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pedalboard as pb
import pytest
import soundfile as sf
from typer.testing import CliRunner

from automix import analysis, loudness
from automix.audio import Audio, load
from automix.cli import app
from automix.mastering.pipeline import tonal_error_db
from automix.plugins import chain, zam
from automix.presets import Target
from automix.references import resolve_reference

ROOT = Path(__file__).resolve().parents[1]
SONG = ROOT / "examples" / "dirty_love.flac"
CHAIN = ["ZamEQ2", "ZamCompX2"]
needs_zam = pytest.mark.skipif(
    not all((zam.vst3_dir() / f"{name}.vst3").exists() for name in CHAIN),
    reason=f"zam-plugins not installed (ZamEQ2/ZamCompX2 missing from {zam.vst3_dir()}; "
    "tests/setup.sh installs them)")
runner = CliRunner()


@pytest.fixture(scope="module")
def excerpt() -> Audio:
    """The loudest 6 s of a real song."""
    song = load(SONG)
    return Audio(chain.excerpt_of(song.samples, song.sample_rate, 6.0), song.sample_rate)


def tilted(audio: Audio) -> np.ndarray:
    """The song made dull: 7 dB off above 4 kHz, 5 dB more below 150 Hz."""
    board = pb.Pedalboard([pb.HighShelfFilter(4000.0, -7.0), pb.LowShelfFilter(150.0, 5.0)])
    return board(audio.samples, audio.sample_rate).astype(np.float32)


@needs_zam
def test_the_search_undoes_a_tilt_toward_the_reference(excerpt: Audio, tmp_path: Path) -> None:
    """The reference is the song untilted: the chain's EQ can undo the tilt, and the search
    takes most of the tonal-balance error (as the master's report computes it) away."""
    sr = excerpt.sample_rate
    ref = analysis.analyze(excerpt.samples, sr)
    ref_mid = np.asarray(ref.tonal_mid_db, dtype=np.float64)
    stages = chain.load_chain(CHAIN, sr)
    try:
        assert stages[0].mono and not stages[1].mono  # ZamEQ2 is mono: one per channel
        assert len(stages[0].instances) == 2
        assert "gain_reduction_db" not in stages[1].parameters  # a meter, not a control
        assert {"boost_cut_h_db", "frequency_h_hz"} <= set(stages[0].parameters)
        found = chain.optimise(stages, tilted(excerpt), sr, ref_mid, ref.crest_db,
                               budget_s=600.0, max_evaluations=150)
        out = chain.render(stages, tilted(excerpt), sr)
        # the preset written for a DAW holds what was found: a fresh instance loading it
        # renders what the searched one does
        preset = tmp_path / "eq.vstpreset"
        preset.write_bytes(chain.preset_bytes(stages[0], sr))
        left = np.ascontiguousarray(tilted(excerpt)[:1])
        want = chain.render(stages[:1], left, sr)
        got = zam.render_preset(preset, "ZamEQ2", left, sr)
        assert np.max(np.abs(got - want)) < 1e-5
    finally:
        chain.close(stages)
    assert found.start_error_db > 2.5  # the tilt shows
    assert found.error_db < 0.6 * found.start_error_db
    assert found.start_error_db - found.error_db > 1.0
    measured = tonal_error_db(analysis.analyze(out, sr), ref_mid)
    assert measured == pytest.approx(found.error_db, abs=0.05)  # the chain is left as found


@needs_zam
def test_the_master_lands_on_the_target(excerpt: Audio, tmp_path: Path) -> None:
    sr = excerpt.sample_rate
    path = tmp_path / "ref.wav"
    sf.write(path, excerpt.samples.T, sr)
    reference = resolve_reference(str(path))
    target = Target("test", -12.0, -1.0, "")
    song = Audio(tilted(excerpt), sr)
    result, found, stages = chain.master(song, reference, target, CHAIN, budget_s=600.0,
                                         max_evaluations=40)
    chain.close(stages)
    out = result.audio.samples
    assert abs(loudness.integrated_lufs(out, sr) + 12.0) <= 0.5
    assert loudness.true_peak_dbtp(out, sr) <= -1.0 + 0.05
    assert result.method == "chain"
    ref_mid = np.asarray(reference.features.tonal_mid_db)
    assert tonal_error_db(result.output, ref_mid) < tonal_error_db(result.input, ref_mid) - 0.5
    eq = found["plugins"][0]
    assert eq["plugin"] == "ZamEQ2"
    units = {row["parameter"]: row["unit"] for row in eq["parameters"]}
    assert units["frequency_h_hz"] == "Hz" and units["boost_cut_h_db"] == "dB"


@needs_zam
def test_cli_writes_master_sidecar_and_presets(excerpt: Audio, tmp_path: Path) -> None:
    song = tmp_path / "song.wav"
    sf.write(song, tilted(excerpt).T, excerpt.sample_rate)
    out = tmp_path / "out.wav"
    result = runner.invoke(app, ["master", str(song), "-r", "pop", "--chain", "ZamEQ2,ZamCompX2",
                                 "--chain-seconds", "0", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["method"] == "chain"
    assert [p["plugin"] for p in sidecar["chain"]["plugins"]] == CHAIN
    # no budget: the plug-ins' own values, the error unchanged
    errors = sidecar["chain"]["tonal_balance_error_db"]
    assert errors["optimised"] == errors["defaults"]
    presets = sorted(p.name for p in (tmp_path / "out_chain").iterdir())
    assert presets == ["01-ZamEQ2.vstpreset", "02-ZamCompX2.vstpreset"]
    assert abs(sidecar["measurements"]["output"]["integrated_lufs"]
               - sidecar["target"]["integrated_lufs"]) <= 0.5


@pytest.mark.parametrize("spec, message", [
    ("NoSuchPlugin", "not found"),
    (str(SONG), "not a VST3"),
    (",", "no plug-in named"),
])
def test_cli_refuses_a_bad_chain(spec: str, message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["master", str(SONG), "--chain", spec,
                                 "-o", str(tmp_path / "out.wav")])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize("extra", [["--method", "network"], ["--amount", "0.5"]])
def test_cli_refuses_options_the_chain_would_ignore(extra: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, ["master", str(SONG), "--chain", "ZamEQ2", *extra,
                                 "-o", str(tmp_path / "out.wav")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == ("error: --chain searches your plug-ins' own parameters: "
                                     "--method and --amount are for automix's chain")
    assert not (tmp_path / "out.wav").exists()


def test_cli_refuses_a_file_that_is_no_plugin(tmp_path: Path) -> None:
    fake = tmp_path / "Fake.vst3"
    fake.write_bytes(b"not a plug-in")
    result = runner.invoke(app, ["master", str(SONG), "--chain", str(fake),
                                 "-o", str(tmp_path / "out.wav")])
    assert result.exit_code == 1
    assert "cannot load" in result.output and "Traceback" not in result.output


@needs_zam
def test_the_api_masters_through_a_chain(excerpt: Audio) -> None:
    import automix

    result, found = automix.master_chain(Audio(tilted(excerpt), excerpt.sample_rate),
                                         "ZamEQ2,ZamCompX2", "rock", target="-16", seconds=0)
    assert result.method == "chain"
    assert abs(result.output.integrated_lufs + 16.0) <= 0.5
    assert result.output.true_peak_dbtp <= result.target.ceiling_dbtp + 0.05
    assert found["evaluations"] == 1  # no budget: the plug-ins as they load


def test_the_aim_is_automix_own_master_not_the_reference_spectrum(excerpt: Audio,
                                                                  tmp_path: Path) -> None:
    """The search aims at what automix's master makes of the song toward the reference: the
    aim's bands are automix's own master's (measured on its render), and a reference with
    narrow band detail of its own (another song's arrangement: +-9 dB peaks an octave apart)
    is not copied: the aim stays several dB from it, nearer the song."""
    from automix.mastering.finalise import render_master
    from automix.mastering.pipeline import master

    sr = excerpt.sample_rate
    detail = pb.Pedalboard([pb.PeakFilter(f, 9.0 if i % 2 else -9.0, 4.0)
                            for i, f in enumerate((250.0, 500.0, 1000.0, 2000.0, 4000.0))])
    path = tmp_path / "detailed.wav"
    sf.write(path, detail(excerpt.samples, sr).T, sr)
    reference = resolve_reference(str(path))
    target = Target("test", -14.0, -1.0, "")
    song = Audio(tilted(excerpt), sr)
    song_analysis = analysis.analyze(song.samples, sr)
    aimed = chain.aim(song, song_analysis, reference, target, song.samples)

    ours = master(song, reference, target, method="dsp")
    rendered = render_master(song, ours.settings).samples
    assert tonal_error_db(analysis.analyze(rendered, sr), aimed.tonal_mid_db) < 0.15
    ref_mid = np.asarray(reference.features.tonal_mid_db)
    assert tonal_error_db(analysis.analyze(rendered, sr), ref_mid) > 2.0  # not copied
    assert chain.tonal_loss_db(song.samples, sr, aimed.tonal_mid_db) \
        < chain.tonal_loss_db(song.samples, sr, ref_mid) - 1.0
