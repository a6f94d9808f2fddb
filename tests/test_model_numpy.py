"""Inference in numpy hears and predicts as the torch network it was exported from: the mel
filterbank (against librosa), the features (against torch's, on real music), the forward pass
(against `MasterNet`), and `automix master --method network` runs without torch or librosa."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import automix
from automix.model import features, features_np, network_np, predict
from automix.model.network import MasterNet, NetConfig

ROOT = Path(automix.__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dirty_love.flac"
SR = predict.ANALYSIS_SR


@pytest.mark.parametrize("sample_rate", [16000, 22050, 44100, 48000])
def test_mel_basis_is_librosas(sample_rate: int) -> None:
    librosa = pytest.importorskip("librosa")
    n_fft = features_np.fft_size(sample_rate)
    expected = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=features_np.N_MELS,
                                   fmin=features_np.MEL_FMIN_HZ,
                                   fmax=min(features_np.MEL_FMAX_HZ, sample_rate / 2), norm=None)
    np.testing.assert_allclose(features_np.mel_basis(sample_rate, n_fft), expected, atol=1e-6)


def test_mel_scale_round_trips() -> None:
    hz = np.array([0.0, 20.0, 500.0, 999.0, 1000.0, 1001.0, 4000.0, 16000.0])
    np.testing.assert_allclose(features_np.mel_to_hz(features_np.hz_to_mel(hz)), hz, atol=1e-9)
    assert features_np.hz_to_mel(1000.0) == pytest.approx(15.0)


@pytest.fixture(scope="module")
def excerpts() -> np.ndarray:
    """Four loud 1.5 s excerpts of the shipped example, (4, 2, samples) at 44.1 kHz."""
    x, sr = sf.read(EXAMPLE, dtype="float32", always_2d=True)
    samples = predict.at_analysis_rate(x.T, sr)
    return predict.loud_excerpts(samples, round(1.5 * SR), 4)


@pytest.mark.parametrize("channels", [2, 1])
def test_features_match_torch_on_music(excerpts: np.ndarray, channels: int) -> None:
    x = np.ascontiguousarray(excerpts[:, :channels])
    with torch.no_grad():
        expected = features.production_features(torch.from_numpy(x), SR).double().numpy()
    got = features_np.production_features(x, SR)
    assert got.shape == (len(x), features_np.N_FEATURES)
    mel = features_np.MEL_STATS
    assert np.abs(got[:, mel] - expected[:, mel]).max() < 0.01  # dB
    np.testing.assert_allclose(got[:, mel.stop:], expected[:, mel.stop:], atol=0.01)


def test_features_match_torch_on_short_and_quiet_audio(rng: np.random.Generator) -> None:
    """Shorter than one 400 ms level window, and with silent stretches at the dB floor."""
    x = (1e-3 * rng.standard_normal((2, 2, SR // 4))).astype(np.float32)
    x[1, :, : SR // 8] = 0.0
    with torch.no_grad():
        expected = features.production_features(torch.from_numpy(x), SR).double().numpy()
    np.testing.assert_allclose(features_np.production_features(x, SR), expected, atol=0.01)


@pytest.mark.parametrize("config", [NetConfig(hidden=32, embedding=16, encoder_layers=1,
                                              head_layers=3), None])
def test_forward_matches_torch(tmp_path: Path, config: NetConfig | None) -> None:
    """A random small network of another depth, and the shipped one, on random features."""
    if config is None:
        if not predict.DEFAULT_WEIGHTS.exists():
            pytest.skip("no shipped weights")
        meta = json.loads(predict.DEFAULT_WEIGHTS.with_suffix(".json").read_text())
        torch_net = MasterNet(NetConfig(**meta["net"])).eval()
        torch_net.load_state_dict(torch.load(predict.DEFAULT_WEIGHTS, weights_only=True))
        numpy_net = predict.load_model()
    else:
        torch.manual_seed(0)
        torch_net = MasterNet(config).eval()
        torch_net.feature_mean.normal_()
        torch_net.feature_std.uniform_(1.0, 3.0)
        (tmp_path / "master.json").write_text('{"net": {}, "features": {"segment_s": 0.5}}')
        numpy_net = predict.load_model(network_np.export_npz(torch_net, tmp_path / "master.pt"))
    g = np.random.default_rng(0)
    scale = torch_net.feature_std.numpy() * 2.0
    f_in = torch_net.feature_mean.numpy() + scale * g.standard_normal((16, scale.size))
    f_ref = torch_net.feature_mean.numpy() + scale * g.standard_normal((16, scale.size))
    with torch.no_grad():
        expected = torch_net(torch.from_numpy(f_in).float(), torch.from_numpy(f_ref).float())
    got = numpy_net(f_in, f_ref)
    assert got.shape == expected.shape
    assert np.abs(got - expected.double().numpy()).max() < 1e-4


def test_shipped_npz_is_the_shipped_pt() -> None:
    """master.npz is master.pt exported (regenerate with `network_np.export_npz`)."""
    if not predict.DEFAULT_WEIGHTS.exists():
        pytest.skip("no shipped weights")
    state = torch.load(predict.DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    with np.load(predict.DEFAULT_WEIGHTS.with_suffix(".npz")) as npz:
        assert set(npz.files) == set(state)
        for name, value in state.items():
            np.testing.assert_array_equal(npz[name], value.numpy(), err_msg=name)


def test_master_with_the_network_imports_neither_torch_nor_librosa(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    code = ("import sys; from automix.cli import app; "
            f"app([ 'master', {str(EXAMPLE)!r}, '--method', 'network', '-o', {str(out)!r}, "
            "'--force'], standalone_mode=False); "
            "print('loaded:', *(m for m in ('torch', 'librosa', 'numba') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "loaded:", done.stdout[-2000:]
    assert out.exists()
