"""Mixing: stem loading and roles, settings files, rendering laws, refinement, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from automix import analysis, loudness, mixing, references
from automix import settings as settings_io
from automix.cli import app
from automix.effects import render
from automix.errors import AudioInputError, SettingsError
from automix.mixing import balance, roles
from automix.mixing import refine as refinement
from automix.mixing import render as mix_render
from automix.mixing import stems as stem_io
from automix.mixing.stems import Stem, load_stems, role_from_audio, role_from_name
from automix.params import (
    CompressorParams,
    EQParams,
    GainParams,
    PanParams,
    SendParams,
    StemChain,
)

SR = 44100
runner = CliRunner()


def _kick(n: int) -> np.ndarray:
    x = np.zeros(n)
    for i in range(0, n, SR // 2):
        k = np.arange(min(4000, n - i))
        x[i : i + k.size] += np.sin(2 * np.pi * 60 * k / SR) * np.exp(-k / 1500)
    return x


def _stems(seconds: float = 6.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Three stems as (samples, channels) for soundfile: a kick, a bass, a stereo vocal-like
    tone with noise."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    bass = 0.3 * np.sin(2 * np.pi * 55 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    voc = (0.2 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5 * t))
           + 0.02 * rng.standard_normal(n))
    return {"01_kick.wav": _kick(n)[:, None], "02_bass.flac": bass[:, None],
            "03_lead vocal.wav": np.stack([voc, 0.8 * voc], axis=1)}


@pytest.fixture
def stems_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "my song"
    folder.mkdir()
    for name, data in _stems().items():
        sf.write(folder / name, data.astype(np.float32), SR)
    return folder


# --- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "role"), [
    ("03_Lead Vocals.wav", "vocals"), ("bassdrum01.flac", "drums"), ("02_bass.flac", "bass"),
    ("kick2.wav", "drums"), ("12_ch12-loudsnare.flac", "drums"), ("Gtr_L.wav", "guitar"),
    ("05_E-Piano.aiff", "keys"), ("ch11-lowsynthstrings.flac", "strings"),
    ("Trumpet.wav", "brass"), ("Soft-Saw-Pad.flac", "synth"), ("track 7.wav", None),
])
def test_role_from_name(name: str, role: str | None) -> None:
    assert role_from_name(name) == role


def test_role_from_audio() -> None:
    rng = np.random.default_rng(5)
    n = 3 * SR
    t = np.arange(n) / SR
    bass = np.sin(2 * np.pi * 50 * t)[None]
    hits = np.zeros(n)
    for i in range(0, n, SR // 4):
        k = np.arange(min(2000, n - i))
        hits[i : i + k.size] = rng.standard_normal(k.size) * np.exp(-k / 300)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (440, 554, 659))[None]
    assert role_from_audio(bass, SR) == "bass"
    assert role_from_audio(hits[None], SR) == "drums"
    assert role_from_audio(chord, SR) == "other"


# --- loading ----------------------------------------------------------------------------------


def test_load_stems_resamples_pads_and_detects_roles(tmp_path: Path) -> None:
    n = SR * 2
    sf.write(tmp_path / "a_bass.wav", 0.1 * np.ones((n, 1), np.float32) * np.sin(
        2 * np.pi * 50 * np.arange(n) / SR)[:, None], SR)
    sf.write(tmp_path / "b.wav", 0.1 * np.random.default_rng(0).standard_normal(
        (48000, 2)).astype(np.float32), 48000)  # 1 s at 48 kHz
    sf.write(tmp_path / "notes.txt", [[0.0]], SR, format="WAV")  # not an audio extension
    stems, sr, warnings = load_stems(tmp_path)
    assert sr == 48000  # one file each: the highest rate wins
    assert [s.name for s in stems] == ["a_bass.wav", "b.wav"]
    assert stems[0].samples.shape == (1, 2 * 48000)
    codes = sorted(w.code for w in warnings)
    assert "S01-resampled" in codes and "S02-padded" in codes
    assert all(s.samples.shape[1] == stems[0].samples.shape[1] for s in stems)
    assert stems[0].role == "bass" and stems[0].role_source == "name"
    assert stems[1].role_source == "audio"


@pytest.mark.parametrize(("count", "message"), [(0, "no audio files"), (1, "1 stem(s)"),
                                                (33, "33 stem(s)")])
def test_load_stems_refuses_bad_counts(tmp_path: Path, count: int, message: str) -> None:
    tone = (0.1 * np.sin(np.arange(SR // 2) / 5)).astype(np.float32)
    for i in range(count):
        sf.write(tmp_path / f"{i:02d}.wav", tone, SR)
    with pytest.raises(AudioInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_stems(tmp_path)


# --- settings ---------------------------------------------------------------------------------


def test_settings_round_trip_and_validation() -> None:
    settings = settings_io.MixSettings(stems={"a.wav": StemChain(pan=PanParams(pan=0.25))})
    data = json.loads(json.dumps(settings.to_dict()))
    assert settings_io.MixSettings.from_dict(data) == settings
    data["stems"]["a.wav"]["pan"]["pan"] = 1.5
    with pytest.raises(SettingsError, match=r"settings.stems.a.wav.pan.pan=1.5 is out of range "
                                            r"\[-1, 1\]"):
        settings_io.MixSettings.from_dict(data)
    with pytest.raises(SettingsError, match="unknown key 'bus'"):
        settings_io.MixSettings.from_dict({"stems": {}, "bus": {}})
    with pytest.raises(SettingsError, match="unknown section 'reverb'"):
        settings_io.MixSettings.from_dict({"stems": {"a.wav": {"reverb": {}}}})


def test_a_settings_file_without_a_room_sends_into_the_suggestions_room() -> None:
    """No ``reverb`` key: the room a suggestion starts from (`DEFAULT_REVERB`, not the
    parameter table's "off"); a partial one: its values over that room's."""
    from automix.params import ReverbParams
    from automix.settings import DEFAULT_REVERB

    stems = {"a.wav": {"send": {"send_db": -12.0}}}
    assert settings_io.MixSettings.from_dict({"stems": stems}).reverb == DEFAULT_REVERB
    partial = settings_io.MixSettings.from_dict({"stems": stems, "reverb": {"decay_s": 2.5}})
    assert partial.reverb.decay_s == 2.5
    assert partial.reverb.wet_db == DEFAULT_REVERB.wet_db != ReverbParams().wet_db


# --- rendering --------------------------------------------------------------------------------


def test_stereo_stem_keeps_its_image_and_pan_balances_it() -> None:
    rng = np.random.default_rng(2)
    left_only = np.stack([0.1 * rng.standard_normal(SR), np.zeros(SR)]).astype(np.float32)
    stem = Stem("pad.wav", left_only, "synth", "name")
    assert stem.is_stereo
    dry, _ = mix_render.render_stem(stem, SR, StemChain())
    assert np.max(np.abs(dry[1])) < 1e-6  # nothing leaks to the right at pan 0
    np.testing.assert_allclose(dry[0], mix_render.render_stem(
        Stem("m.wav", left_only[:1], "synth", "name"), SR,
        StemChain(pan=PanParams(pan=-1.0)))[0][0], atol=1e-6)
    # pan +0.5 on a stereo stem: the left channel goes to pan -0.5 (cos law)
    dry, _ = mix_render.render_stem(stem, SR, StemChain(pan=PanParams(pan=0.5)))
    ratio_db = 20 * np.log10(np.std(dry[1]) / np.std(dry[0]))
    assert ratio_db == pytest.approx(20 * np.log10(np.tan(np.pi / 8)), abs=0.05)


def test_default_gains_balance_loudness(stems_dir: Path) -> None:
    stems, sr, _ = load_stems(stems_dir)
    chains = balance.default_chains(stems, sr)
    for s in stems:
        played = stem_io.stem_loudness_lufs(s, sr) + chains[s.name].gain.gain_db
        expected = (balance.MIX_LEVEL_LUFS - 10 * np.log10(len(stems))
                    + roles.ROLE_DEFAULTS[s.role].level_lu)
        assert played == pytest.approx(expected, abs=0.02)


def _tonal_error(samples: np.ndarray, reference: settings_io.Reference) -> float:
    a = np.array(analysis.analyze(samples, SR).rounded().tonal_mid_db)
    b = np.array(reference.features.tonal_mid_db)
    d = (a - b)[np.isfinite(a - b) & (analysis.BAND_CENTERS_HZ > 40)]
    return float(np.sqrt(np.mean((d - d.mean()) ** 2)))


def test_refinement_moves_the_mix_toward_the_reference(stems_dir: Path) -> None:
    stems, sr, _ = load_stems(stems_dir)
    reference = references.resolve_reference("pop")
    start = balance.default_chains(stems, sr)
    # sends on for the kick and the vocal (role defaults send only vocals), so they can move
    start = {**start, "01_kick.wav": replace(start["01_kick.wav"], send=SendParams(send_db=-28.0)),
             "03_lead vocal.wav": replace(start["03_lead vocal.wav"],
                                          send=SendParams(send_db=-16.0))}
    refined = refinement.refine(stems, sr, start, settings_io.DEFAULT_REVERB, reference, steps=40,
                            time_budget_s=10.0)
    before = _tonal_error(mix_render.render_mix(stems, sr, start, settings_io.DEFAULT_REVERB)[0],
                          reference)
    after = _tonal_error(mix_render.render_mix(stems, sr, refined, settings_io.DEFAULT_REVERB)[0],
                         reference)
    assert after < 0.8 * before
    for name, chain in refined.items():  # every move within its bound
        move = abs(chain.gain.gain_db - start[name].gain.gain_db)
        assert move <= refinement.MAX_GAIN_MOVE_DB + 0.01
        assert abs(chain.eq.peak2_gain_db) <= refinement.MAX_EQ_MOVE_DB
    assert refined["02_bass.flac"].send.send_db == start["02_bass.flac"].send.send_db
    assert refined["01_kick.wav"].pan.pan == 0.0  # drums stay centred


# --- the balance fit --------------------------------------------------------------------------


def test_fit_levels_recovers_level_moves_and_holds_look_alikes() -> None:
    rng = np.random.default_rng(1)
    n_stems, n_bands = 6, analysis.BAND_CENTERS_HZ.size
    mid = rng.normal(-30.0, 10.0, (n_stems, n_bands))
    side = mid - 10.0 + rng.normal(0.0, 3.0, (n_stems, n_bands))
    true = rng.uniform(-6.0, 6.0, n_stems)
    true -= true.mean()

    def power_sum_db(bands: np.ndarray, moves: np.ndarray) -> np.ndarray:
        return 10 * np.log10(np.sum(10 ** ((bands + moves[:, None]) / 10), axis=0))

    target_mid, target_side = power_sum_db(mid, true) + 7.0, power_sum_db(side, true) + 7.0
    moves = balance.fit_levels(mid, side, target_mid, target_side, prior_weight=1e-6)
    np.testing.assert_allclose(moves, true, atol=0.05)
    # the prior pulls toward no move: the fit lands between the start and the truth
    ridged = balance.fit_levels(mid, side, target_mid, target_side, prior_weight=1.0)
    assert 0.0 < np.dot(ridged, true) < np.dot(true, true)
    # two stems with the same spectrum cannot be told apart: they move together
    twins = np.concatenate([mid[:1], mid[:1], mid[2:]])
    moves = balance.fit_levels(twins, np.concatenate([side[:1], side[:1], side[2:]]),
                              target_mid, target_side)
    assert moves[0] == pytest.approx(moves[1], abs=0.01)
    assert np.all(np.abs(moves) <= balance.MAX_FIT_MOVE_DB + 1e-6)
    # too few bands to fit: nothing moves
    few = np.full(n_bands, np.nan)
    few[10:13] = 0.0
    assert not balance.fit_levels(mid, side, few, few).any()


def _noise_stems(rng: np.random.Generator, seconds: float) -> list[Stem]:
    """Low, middle and high noise stems with distinct spectra (mono), at equal RMS."""
    from scipy.signal import butter, sosfilt

    n = int(seconds * SR)
    bands = {"a_low.wav": ("lowpass", 200.0), "b_mid.wav": ("bandpass", (500.0, 2000.0)),
             "c_high.wav": ("highpass", 4000.0)}
    stems = []
    for name, (kind, freq) in bands.items():
        x = sosfilt(butter(4, freq, kind, fs=SR, output="sos"), rng.standard_normal(n))
        stems.append(Stem(name, (0.05 * x / np.std(x))[None].astype(np.float32), "other",
                          "name"))
    return stems


def test_fit_balance_recovers_a_reference_balance(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    balance_db = {"a_low.wav": 6.0, "b_mid.wav": 0.0, "c_high.wav": -8.0}
    # the reference: other noise of the same kinds, mixed at that balance
    ref_stems = _noise_stems(rng, 4.0)
    mix = np.sum([mix_render.render_stem(s, SR, StemChain(gain=GainParams(balance_db[s.name])))[0]
                  for s in ref_stems], axis=0)
    sf.write(tmp_path / "ref.wav", mix.T, SR, subtype="FLOAT")
    reference = references.resolve_reference(str(tmp_path / "ref.wav"))
    stems = _noise_stems(rng, 4.0)
    start = {s.name: StemChain() for s in stems}
    fitted = balance.fit_balance(stems, SR, start, reference)
    gains = np.array([fitted[s.name].gain.gain_db for s in stems])
    want = np.array(list(balance_db.values()))
    np.testing.assert_allclose(gains - gains.mean(), want - want.mean(), atol=1.0)
    # a compressed stem keeps its sound: the threshold follows the gain
    squeezed = {**start, "a_low.wav": StemChain(
        compressor=CompressorParams(threshold_db=-30.0, ratio=4.0))}
    moved = balance.fit_balance(stems, SR, squeezed, reference)["a_low.wav"]
    assert moved.compressor.threshold_db == pytest.approx(-30.0 + moved.gain.gain_db, abs=0.01)


def test_suggest_mix_fits_toward_the_reference_balance(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    ref_stems = _noise_stems(rng, 4.0)
    mix = np.sum([mix_render.render_stem(s, SR, StemChain(gain=GainParams(g)))[0]
                  for s, g in zip(ref_stems, (8.0, 0.0, -8.0), strict=True)], axis=0)
    sf.write(tmp_path / "ref.wav", mix.T, SR, subtype="FLOAT")
    reference = references.resolve_reference(str(tmp_path / "ref.wav"))
    stems = _noise_stems(rng, 4.0)
    error = {}
    for fit in (False, True):
        chains = mixing.suggest_mix(stems, SR, reference, method="network", fit=fit)
        bus, _ = mix_render.render_mix(stems, SR, chains, settings_io.DEFAULT_REVERB)
        error[fit] = analysis.tonal_balance_error_db(analysis.analyze(bus, SR),
                                                     analysis.analyze(mix, SR))
    assert error[True] < 0.5 * error[False]


# --- speed-minded rendering and measuring ----------------------------------------------------


def test_stem_plugins_leave_out_identities_and_sound_the_same() -> None:
    rng = np.random.default_rng(6)
    x = (0.1 * rng.standard_normal((2, SR))).astype(np.float32)
    for chain, count in ((StemChain(), 2), (StemChain(eq=EQParams(peak2_gain_db=3.0),
                                                      compressor=CompressorParams(
                                                          threshold_db=-30.0, ratio=3.0,
                                                          makeup_db=2.0)), 5)):
        plugins = render.stem_plugins(chain)
        assert len(plugins) == count  # high-pass x2 (+ a peak, the compressor, the make-up)
        full = render.process(render.highpass_plugins(chain.highpass)
                              + render.eq_plugins(chain.eq)
                              + render.compressor_plugins(chain.compressor), x, SR)
        np.testing.assert_allclose(render.process(plugins, x, SR), full, atol=1e-6)


def test_render_mix_sums_dry_stems_when_nothing_sends(stems_dir: Path) -> None:
    stems, sr, _ = load_stems(stems_dir)
    chains = {s.name: StemChain(pan=PanParams(pan=0.3)) for s in stems}  # sends at -60: off
    bus, drys = mix_render.render_mix(stems, sr, chains, settings_io.DEFAULT_REVERB)
    np.testing.assert_allclose(bus, np.sum(drys, axis=0), atol=1e-7)
    sent = {**chains, "01_kick.wav": StemChain(send=SendParams(send_db=-10.0))}
    with_room, _ = mix_render.render_mix(stems, sr, sent, settings_io.DEFAULT_REVERB)
    assert np.std(with_room - np.sum(drys, axis=0)) > 1e-4


def test_stem_loudness_from_an_active_excerpt_matches_the_whole() -> None:
    rng = np.random.default_rng(8)
    n = 80 * SR
    t = np.arange(n) / SR
    # a part that plays in bursts with long rests, louder in the second half
    x = 0.05 * rng.standard_normal(n) * (np.sin(2 * np.pi * t / 7.0) > 0.3) * (1 + (t > 40))
    stem = Stem("pad.wav", x[None].astype(np.float32), "synth", "name")
    excerpt = stem_io.active_excerpt(stem_io.as_played(stem), SR, stem_io.LOUDNESS_EXCERPT_S)
    assert excerpt.shape[1] <= stem_io.LOUDNESS_EXCERPT_S * SR
    whole = loudness.integrated_lufs(stem_io.as_played(stem), SR)
    assert stem_io.stem_loudness_lufs(stem, SR) == pytest.approx(whole, abs=0.5)


# --- the command line -------------------------------------------------------------------------


def test_cli_mix_end_to_end_and_settings_round_trip(stems_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix.wav"
    result = runner.invoke(app, ["mix", str(stems_dir), "-o", str(out),
                                 "--stems-out", str(tmp_path / "processed")])
    assert result.exit_code == 0, result.output
    report = json.loads(out.with_suffix(".json").read_text())
    y, sr = sf.read(out, always_2d=True)
    target = report["target"]
    assert loudness.integrated_lufs(y.T, sr) == pytest.approx(target["integrated_lufs"], abs=0.5)
    assert loudness.true_peak_dbtp(y.T, sr) <= target["ceiling_dbtp"] + 0.05
    assert [s["role"] for s in report["stems"]] == ["drums", "bass", "vocals"]
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == [
        "01_kick.wav", "02_bass.wav", "03_lead vocal.wav"]
    again = tmp_path / "again.wav"
    result = runner.invoke(app, ["mix", str(stems_dir), "-o", str(again), "--settings",
                                 str(out.with_suffix(".json"))])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(sf.read(again)[0], y)
    result = runner.invoke(app, ["mix", str(stems_dir), "-o", str(out)])
    assert result.exit_code == 1 and "exists; use --force" in result.output


def test_cli_mix_refines_through_the_twin_on_request(stems_dir: Path, tmp_path: Path) -> None:
    runs = {}
    for steps in (0, 10):
        out = tmp_path / f"mix_{steps}.wav"
        result = runner.invoke(app, ["mix", str(stems_dir), "-o", str(out), "--method", "dsp",
                                     "--refine-steps", str(steps)])
        assert result.exit_code == 0, result.output
        runs[steps] = json.loads(out.with_suffix(".json").read_text())
    moved = [name for name, chain in runs[10]["settings"]["stems"].items()
             if chain != runs[0]["settings"]["stems"][name]]
    assert moved  # the refinement changed settings; the master still lands on the target
    target = runs[10]["target"]["integrated_lufs"]
    assert runs[10]["measurements"]["output"]["integrated_lufs"] == pytest.approx(target, abs=0.5)


def test_cli_mix_refuses_bad_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["mix", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "no audio files" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["mix", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "not a folder of stems" in result.output


def test_settings_must_name_the_stems(stems_dir: Path, tmp_path: Path) -> None:
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"stems": {"other.wav": {}}}))
    result = runner.invoke(app, ["mix", str(stems_dir), "-o", str(tmp_path / "m.wav"),
                                 "--settings", str(settings)])
    assert result.exit_code == 1
    assert "settings do not match the stems: no settings for '01_kick.wav'" in result.output


@pytest.mark.parametrize("method", ["dsp", "network"])
def test_suggest_a_mix_then_render_it_exactly(stems_dir: Path, tmp_path: Path,
                                              method: str) -> None:
    settings = tmp_path / "mix.yaml"
    result = runner.invoke(app, ["suggest", str(stems_dir), "-r", "rock", "-o", str(settings),
                                 "--method", method])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(settings.read_text())
    assert doc["method"] == method
    assert set(doc["settings"]["stems"]) == {p.name for p in stems_dir.iterdir()}
    assert doc["measurements"]["reference"]["integrated_lufs"] < 0
    eq_moves = [v for chain in doc["settings"]["stems"].values()
                for k, v in chain["eq"].items() if k.endswith("_gain_db") and v != 0.0]
    assert bool(eq_moves) == (method == "network")  # role defaults leave the stems' EQ flat
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    assert runner.invoke(app, ["mix", str(stems_dir), "-r", "rock", "-o", str(a),
                               "--bit-depth", "32", "--method", method]).exit_code == 0
    assert runner.invoke(app, ["mix", str(stems_dir), "--settings", str(settings), "-o", str(b),
                               "--bit-depth", "32"]).exit_code == 0
    np.testing.assert_array_equal(sf.read(a)[0], sf.read(b)[0])


def test_mix_amount_scales_every_stem_toward_neutral(stems_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "flat.wav"
    result = runner.invoke(app, ["mix", str(stems_dir), "-r", "pop", "-o", str(out),
                                      "--amount", "eq=0,dynamics=0,width=0"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.with_suffix(".json").read_text())
    for chain in report["settings"]["stems"].values():
        assert all(v == 0.0 for k, v in chain["eq"].items() if k.endswith("gain_db"))
        assert chain["compressor"]["ratio"] == 1.0 and chain["pan"]["pan"] == 0.0
    assert report["settings"]["master"]["chain"]["width"]["width_pct"] == 100.0
    assert loudness.integrated_lufs(sf.read(out, always_2d=True)[0].T, 44100) == pytest.approx(
        -14.0, abs=0.5)


@pytest.mark.parametrize("level_db", [-80.0, -120.0])
def test_a_near_silent_stem_is_never_boosted(rng, level_db: float) -> None:
    # far below SILENT_STEM_LUFS there is nothing to balance: a stem at -120 LUFS brought to
    # the mix level would be +100 dB of noise floor (the gain range stops it at +24 dB)
    from conftest import music_like

    loud = music_like(rng, SR, 2.0)
    quiet = (music_like(rng, SR, 2.0) * np.float32(10 ** (level_db / 20))).astype(np.float32)
    stems = [Stem("bass.wav", loud, "bass", "name"), Stem("pad.wav", quiet, "synth", "name"),
             Stem("keys.wav", loud[:1] * np.float32(0.5), "keys", "name")]
    assert stem_io.stem_loudness_lufs(stems[1], SR) < balance.SILENT_STEM_LUFS - 10
    chains = balance.default_chains(stems, SR)
    assert chains["pad.wav"].gain.gain_db <= 0.0
    assert chains["bass.wav"].gain.gain_db != 0.0  # the others are balanced as ever
