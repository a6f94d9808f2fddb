"""The analysis network: features, training path, predictions, refinement, shipped weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from automix.effects import render
from automix.model import features, predict
from automix.model.network import MasterNet, NetConfig, parameter_count
from automix.model.network_np import NumpyMasterNet, export_npz
from automix.params import EQParams, MasterChain, flat_ranges
from automix.training import data
from automix.training import master as train
from tests.conftest import music_like

SR = 44100
WEIGHTS = predict.DEFAULT_WEIGHTS


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole training path (tiny config, synthetic songs): about 15 s on one core."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny")
    return train.train(None, out, config="tiny", seed=0, log_every=20)


@pytest.fixture(scope="module")
def untrained_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small randomly initialised network saved as `train` saves one (fast)."""
    torch.manual_seed(0)
    config = NetConfig(hidden=32, embedding=16)
    out = tmp_path_factory.mktemp("untrained") / "master.pt"
    model = MasterNet(config)
    torch.save(model.state_dict(), out)
    export_npz(model, out)
    out.with_suffix(".json").write_text(json.dumps(
        {"net": config.to_dict(), "features": {"segment_s": 0.5}}))
    return out


def shipped_model() -> NumpyMasterNet:
    if not WEIGHTS.exists():
        pytest.skip("no shipped weights in automix/model/weights/")
    return predict.load_model()


# --- features --------------------------------------------------------------------------------


def test_features_are_gain_invariant(rng: np.random.Generator) -> None:
    x = music_like(rng, SR, 1.0)
    f = features.features_from_numpy(x, SR)
    assert f.shape == (features.N_FEATURES,)
    for gain in (0.05, 3.0):
        np.testing.assert_allclose(features.features_from_numpy(gain * x, SR), f, atol=2e-3)


def test_feature_physics() -> None:
    t = np.arange(SR) / SR
    sine = 0.5 * np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    mono_in_stereo = np.stack([sine, sine])
    f = features.features_from_numpy(mono_in_stereo, SR)
    assert f[features.CREST] == pytest.approx(3.01, abs=0.05)  # a sine's peak/RMS
    assert f[features.WIDTH] < -90  # no side at all
    n_fft = features.fft_size(SR)
    centres = features._mel_basis(SR, n_fft).argmax(dim=1) * SR / n_fft
    loudest = int(f[features.MID_MEAN].argmax())
    assert abs(float(centres[loudest]) - 1000) < 100
    # L = -R: all side, no mid
    f_side = features.features_from_numpy(np.stack([sine, -sine]), SR)
    assert f_side[features.WIDTH] > 90


def test_reference_of_several_files_is_the_mean(rng: np.random.Generator) -> None:
    a, b = music_like(rng, SR, 4.0), 0.3 * music_like(rng, SR, 5.0)
    both = predict.reference_features_from_audio([(a, SR), (b, SR)])
    mean = (predict.file_features(a, SR) + predict.file_features(b, SR)) / 2
    np.testing.assert_allclose(both, mean, atol=1e-5)


def test_features_differentiable(rng: np.random.Generator) -> None:
    x = torch.from_numpy(music_like(rng, SR, 0.5))[None].requires_grad_(True)
    features.production_features(x, SR).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# --- data ------------------------------------------------------------------------------------


def test_split_is_stable_and_about_ten_percent() -> None:
    names = [f"song{k}" for k in range(2000)]
    share = np.mean([data.is_eval_song(n) for n in names])
    assert 0.08 < share < 0.12
    assert [data.is_eval_song(n) for n in names[:50]] == [data.is_eval_song(n) for n in names[:50]]
    assert data.song_name("/d/multitracks/songA/master.flac") == "songA"
    assert data.song_name("/d/mixes/pkg__title.flac") == "pkg__title"


def test_read_segments_skips_silence(tmp_path: Path, rng: np.random.Generator) -> None:
    loud = music_like(rng, SR, 6.0)
    x = np.concatenate([loud, np.zeros((2, 6 * SR), np.float32)], axis=1)
    path = tmp_path / "song.flac"
    sf.write(path, x.T, SR)
    segs = data.read_segments(path, segment_s=1.0, count=4, sample_rate=SR)
    assert 1 <= len(segs) <= 4
    loud_rms = np.sqrt(np.mean(loud**2))
    assert all(np.sqrt(np.mean(s**2)) > 10 ** (-12 / 20) * loud_rms * 0.9 for s in segs)


# --- network and training --------------------------------------------------------------------


def test_parameter_budget() -> None:
    assert parameter_count(MasterNet(NetConfig())) <= 5_000_000
    if WEIGHTS.exists():
        assert WEIGHTS.stat().st_size <= 20 * 2**20
        meta = json.loads(WEIGHTS.with_suffix(".json").read_text())
        assert meta["parameters"] <= 5_000_000


@pytest.mark.slow
def test_tiny_training_lowers_the_loss(tiny_weights: Path) -> None:
    rows = [json.loads(line) for line in (tiny_weights.parent / "train_log.jsonl").open()]
    fit = [r for r in rows if r["phase"] == "fit"]
    assert fit[-1]["val_loss"] < 0.9 * fit[0]["val_loss"]
    twin = [r for r in rows if r["phase"] == "twin"]
    assert twin and np.isfinite(twin[0]["twin_stft"])
    # the closed-form features of a degraded crop agree with the twin's rendering of it
    assert twin[0]["twin_feature_parity_db"] < 0.2
    meta = json.loads(tiny_weights.with_suffix(".json").read_text())
    assert meta["data"]["source"] == "synthetic"


def test_a_quieter_copy_gets_the_same_chain_but_the_threshold(
        untrained_weights: Path, rng: np.random.Generator) -> None:
    """The features are gain-invariant, so 26 dB less input changes only the compressor's
    threshold, which follows the level down by as much; 80 dB less pushes it past its
    range, where it stops. Every value is a plain float (settings are written as JSON)."""
    model = predict.load_model(untrained_weights)
    ranges = flat_ranges(MasterChain)
    x = music_like(rng, SR, 3.0)
    ref = predict.file_features(music_like(rng, SR, 3.0), SR, segment_s=model.segment_s)
    loud = predict.predict_master_chain(model, x, SR, ref)
    quiet = predict.predict_master_chain(model, np.float32(0.05) * x, SR, ref)
    for name, a, b in zip(ranges, _values(loud), _values(quiet), strict=True):
        assert type(a) is float and type(b) is float, name
        if name != "compressor.threshold_db":
            assert b == pytest.approx(a, rel=1e-2, abs=1e-2), name
    low = ranges["compressor.threshold_db"].min
    drop = 20 * np.log10(0.05)
    assert quiet.compressor.threshold_db == pytest.approx(
        max(loud.compressor.threshold_db + drop, low), abs=0.1)
    silent = predict.predict_master_chain(model, np.float32(1e-4) * x, SR, ref)
    assert loud.compressor.threshold_db - 80.0 < low  # pushed past the range's end...
    assert silent.compressor.threshold_db == low  # ...and stopped there


def _values(chain: MasterChain) -> list[float]:
    return [v for group in (chain.highpass, chain.eq, chain.compressor, chain.width)
            for v in vars(group).values()]


@pytest.mark.slow
def test_threshold_follows_input_level(untrained_weights: Path,
                                       rng: np.random.Generator) -> None:
    """The compressor's behaviour depends on level over threshold, so 6 dB more input must
    move the threshold up 6 dB (while it stays inside its range; an untrained network puts it
    mid-range, where a trained one, which keeps the compressor off, may not)."""
    model = predict.load_model(untrained_weights)
    x = 0.5 * music_like(rng, SR, 3.0)
    ref = predict.file_features(x, SR, segment_s=model.segment_s)
    quiet = predict.predict_master_chain(model, x, SR, ref).compressor.threshold_db
    loud = predict.predict_master_chain(model, 2 * x, SR, ref).compressor.threshold_db
    assert -54 < quiet < -6  # away from the range's ends, where it would be clipped
    assert loud - quiet == pytest.approx(20 * np.log10(2), abs=0.05)


def _treble_over_mids_db(chain: MasterChain, rng: np.random.Generator) -> float:
    """How much the chain's EQ lifts 6-12 kHz over 0.5-2 kHz, measured on rendered noise."""
    noise = rng.standard_normal((1, 2 * SR)).astype(np.float32)
    out = render.eq(noise, SR, chain.eq)
    freqs = np.fft.rfftfreq(noise.shape[1], 1 / SR)
    gain = np.abs(np.fft.rfft(out[0])) ** 2 / np.abs(np.fft.rfft(noise[0])) ** 2

    def band(lo: float, hi: float) -> float:
        return float(10 * np.log10(np.mean(gain[(freqs > lo) & (freqs < hi)])))

    return band(6000, 12000) - band(500, 2000)


def test_shipped_model_hears_a_brighter_reference(rng: np.random.Generator) -> None:
    """The same music 6 dB brighter as the reference lifts the suggested treble against a
    6 dB darker one; by less than the 12 dB between them, since a reference's difference is
    partly its arrangement (the network follows it in part)."""
    model = shipped_model()
    x = music_like(rng, SR, 8.0)
    lifts = []
    for gain_db in (6.0, -6.0):
        ref = render.eq(x, SR, EQParams(high_shelf_freq_hz=4000.0, high_shelf_gain_db=gain_db))
        chain = predict.predict_master_chain(model, x, SR, predict.file_features(ref, SR))
        lifts.append(_treble_over_mids_db(chain, np.random.default_rng(1)))
    assert 1.0 < lifts[0] - lifts[1] < 12.0


def test_refine_reduces_the_feature_distance(rng: np.random.Generator) -> None:
    torch.set_num_threads(1)
    x = music_like(rng, SR, 3.0)
    bright = render.eq(x, SR, EQParams(high_shelf_freq_hz=4000.0, high_shelf_gain_db=6.0))
    ref = predict.file_features(bright, SR)

    def distance(chain: MasterChain) -> float:
        out = render.master_chain(x, SR, chain)
        return float(features.feature_distance(torch.from_numpy(predict.file_features(out, SR)),
                                               torch.from_numpy(ref)))

    start = MasterChain()
    refined = predict.refine(None, x, SR, ref, start, steps=12, time_budget_s=20.0, excerpts=1,
                             lr=0.05)
    assert distance(refined) < 0.8 * distance(start)
    assert refined.eq.high_shelf_gain_db > 0.5


def test_cli_train_tiny_writes_weights_that_predict(tmp_path) -> None:
    """`automix train --config tiny` runs the whole path (synthetic audio) and its weights load."""
    from typer.testing import CliRunner

    from automix.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["train", "--config", "tiny", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    model = predict.load_model(tmp_path / "master.pt")
    x = np.random.default_rng(0).standard_normal((2, 44100 * 3)).astype(np.float32) * 0.1
    ref = predict.reference_features_from_audio([(x * 0.5, 44100)])
    chain = predict.predict_master_chain(model, x, 44100, ref)
    assert 10.0 <= chain.highpass.freq_hz <= 300.0
    bad = runner.invoke(app, ["train", "--config", "huge", "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "unknown training config 'huge'" in bad.output
