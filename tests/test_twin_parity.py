"""The torch twin against pedalboard, on seeded synthetic signals (bounds of issue 3)."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from automix.effects import render, reverb_ir, twin
from automix.params import (
    CompressorParams,
    EQParams,
    GainParams,
    HighpassParams,
    MasterChain,
    PanParams,
    ReverbParams,
    StemChain,
    StereoWidthParams,
    flat_ranges,
    from_unit_vector,
)
from conftest import music_like

SR = 44100


@pytest.fixture(autouse=True)
def one_thread():
    """Torch's thread pool only slows these small ops on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_twin(fn, x: np.ndarray, sample_rate: int, p) -> np.ndarray:
    with torch.no_grad():
        return fn(torch.from_numpy(x)[None], sample_rate, p)[0].numpy()


def draw(cls: type, rng: np.random.Generator):
    return from_unit_vector(cls, rng.uniform(size=len(flat_ranges(cls))))


def response_db(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude (dB) of an impulse response at 20 Hz - 20 kHz, and those frequencies."""
    freqs = np.fft.rfftfreq(samples.shape[-1], 1 / sample_rate)
    band = (freqs >= 20) & (freqs <= 20000)
    return 20 * np.log10(np.abs(np.fft.rfft(samples.astype(np.float64)))[band]), freqs[band]


def impulse(n: int = 1 << 15) -> np.ndarray:
    x = np.zeros((1, n), np.float32)
    x[0, 0] = 1.0
    return x


def short_term_db(x: np.ndarray) -> np.ndarray:
    window, hop = int(0.05 * SR), int(0.025 * SR)
    frames = np.lib.stride_tricks.sliding_window_view(x, window, axis=-1)[..., ::hop, :]
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=-1) + 1e-20)


def log_mel_distance(ref: np.ndarray, got: np.ndarray) -> float:
    mels = [np.log10(librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=512,
                                                    n_mels=128) + 1e-8) for y in (ref, got)]
    return float(np.mean(np.abs(mels[1] - mels[0])))


# --- linear filters ----------------------------------------------------------------------

EXTREME_EQS = [  # the slowest, narrowest and steepest corners of the ranges
    EQParams(low_shelf_freq_hz=30.0, low_shelf_gain_db=-12.0, peak1_freq_hz=60.0,
             peak1_gain_db=12.0, peak1_q=4.0, peak2_freq_hz=4000.0, peak2_gain_db=-12.0,
             peak2_q=4.0, peak3_freq_hz=12000.0, peak3_gain_db=12.0, peak3_q=0.3,
             high_shelf_freq_hz=16000.0, high_shelf_gain_db=-12.0),
    EQParams(low_shelf_freq_hz=400.0, low_shelf_gain_db=12.0, peak1_freq_hz=600.0,
             peak1_gain_db=-12.0, peak1_q=0.3, peak2_freq_hz=400.0, peak2_gain_db=12.0,
             peak2_q=4.0, peak3_freq_hz=2000.0, peak3_gain_db=-12.0, peak3_q=4.0,
             high_shelf_freq_hz=2000.0, high_shelf_gain_db=12.0),
]


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_eq_magnitude_response_matches_pedalboard_within_0_05_db(sample_rate, rng):
    settings = EXTREME_EQS + [draw(EQParams, rng) for _ in range(6)]
    for p in settings:
        ref, _ = response_db(render.eq(impulse(), sample_rate, p)[0], sample_rate)
        got, _ = response_db(run_twin(twin.eq, impulse(), sample_rate, p)[0], sample_rate)
        assert np.abs(got - ref).max() <= 0.05, p


def test_eq_response_has_the_requested_gains_at_the_band_centres():
    p = EQParams(peak1_freq_hz=100.0, peak1_gain_db=6.0, peak2_freq_hz=1000.0,
                 peak2_gain_db=-9.0, peak3_freq_hz=8000.0, peak3_gain_db=3.0, peak1_q=4.0,
                 peak2_q=4.0, peak3_q=4.0)
    got, freqs = response_db(run_twin(twin.eq, impulse(1 << 16), SR, p)[0], SR)
    for freq_hz, gain_db in ((100.0, 6.0), (1000.0, -9.0), (8000.0, 3.0)):
        assert got[np.argmin(np.abs(freqs - freq_hz))] == pytest.approx(gain_db, abs=0.05)


@pytest.mark.parametrize("freq_hz", [10.0, 80.0, 300.0])
def test_highpass_matches_pedalboard_and_is_6_db_down_at_its_frequency(freq_hz):
    p = HighpassParams(freq_hz=freq_hz)
    ref, freqs = response_db(render.highpass(impulse(1 << 16), SR, p)[0], SR)
    got, _ = response_db(run_twin(twin.highpass, impulse(1 << 16), SR, p)[0], SR)
    assert np.abs(got - ref).max() <= 0.05
    # two cascaded first-order sections, each -3.01 dB at the cut-off
    at_cutoff = np.interp(freq_hz, freqs, got) if freq_hz >= 20 else None
    if at_cutoff is not None:
        assert at_cutoff == pytest.approx(-6.02, abs=0.05)


def test_eq_on_music_matches_pedalboard_sample_by_sample(rng):
    x = music_like(rng, SR, 1.0)
    for p in EXTREME_EQS:
        ref = render.eq(x, SR, p)
        assert np.abs(run_twin(twin.eq, x, SR, p) - ref).max() <= 1e-3 * np.abs(ref).max()


# --- compressor --------------------------------------------------------------------------

COMPRESSORS = [
    CompressorParams(threshold_db=-30.0, ratio=4.0, attack_ms=10.0, release_ms=100.0),
    CompressorParams(threshold_db=-60.0, ratio=20.0, attack_ms=0.1, release_ms=10.0,
                     makeup_db=24.0),
    CompressorParams(threshold_db=-12.0, ratio=1.5, attack_ms=100.0, release_ms=1000.0,
                     makeup_db=3.0),
]


@pytest.mark.parametrize("p", COMPRESSORS)
def test_compressor_matches_pedalboard_to_1e_5(p, rng):
    x = music_like(rng, SR, 1.0)
    ref = render.compressor(x, SR, p)
    got = run_twin(twin.compressor, x, SR, p)
    assert np.abs(got - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())
    assert np.percentile(np.abs(short_term_db(got) - short_term_db(ref)), 95) <= 0.5


def test_compressor_static_curve_on_a_steady_level():
    # a constant input: the peak envelope settles on it and the gain follows the power law
    x = np.full((1, SR // 2), 0.5, np.float32)
    p = CompressorParams(threshold_db=-20.0, ratio=4.0, attack_ms=1.0, release_ms=50.0)
    out_db = 20 * np.log10(run_twin(twin.compressor, x, SR, p)[0, -1])
    in_db = 20 * np.log10(0.5)
    assert out_db == pytest.approx(-20.0 + (in_db + 20.0) / 4.0, abs=1e-3)


def test_compressor_attack_time_constant_is_ms_over_2_pi():
    # JUCE's ballistics: a step reaches 1 - 1/e of its height after attack_ms / (2 pi)
    attack_ms = 50.0
    x = torch.ones(1, 1, SR // 4)
    env = twin.peak_envelope(x, SR, torch.tensor([attack_ms]), torch.tensor([100.0]))[0, 0]
    n = round(attack_ms / (2 * math.pi) * SR / 1000)
    assert float(env[n - 1]) == pytest.approx(1 - math.exp(-1), abs=2e-3)


# --- reverb ------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [
    ReverbParams(decay_s=1.5, predelay_ms=20.0, damping_hz=5000.0, width_pct=100.0,
                 wet_db=-6.0),
    ReverbParams(decay_s=0.1, predelay_ms=0.0, damping_hz=16000.0, width_pct=0.0,
                 wet_db=0.0),
    ReverbParams(decay_s=6.0, predelay_ms=100.0, damping_hz=1000.0, width_pct=50.0,
                 wet_db=-30.0),
])
def test_reverb_matches_pedalboard_convolution_above_40_db_snr(p, rng):
    x = music_like(rng, SR, 1.0)
    for render_fn, twin_fn in ((render.reverb_return, twin.reverb_return),
                               (render.reverb, twin.reverb)):
        ref = render_fn(x, SR, p)
        err = run_twin(twin_fn, x, SR, p) - ref
        assert 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum(err ** 2)) >= 40.0


def test_pedalboard_convolution_rescales_to_0_125_and_render_compensates():
    p = ReverbParams(decay_s=0.3, predelay_ms=5.0, wet_db=-6.0)
    with torch.no_grad():
        ir = reverb_ir.impulse_response(SR, p)[0].numpy()
    out = render.reverb_return(impulse(ir.shape[-1]), SR, p)  # mono: both channels hear it
    np.testing.assert_allclose(out, ir * 10 ** (-6 / 20), atol=1e-4 * np.abs(ir).max())


def test_impulse_response_shape_decay_predelay_width_and_determinism():
    p = ReverbParams(decay_s=1.0, predelay_ms=50.0, damping_hz=16000.0, width_pct=100.0)
    ir = reverb_ir.impulse_response(SR, p)[0].numpy()
    start = int(0.05 * SR)
    assert np.abs(ir[:, :start]).max() == 0.0 and np.abs(ir[:, start + 1]).min() > 0.0
    assert np.linalg.norm(ir, axis=-1).max() == pytest.approx(1.0, abs=1e-5)
    # RT60: the energy in 50 ms windows falls by 60 dB over decay_s (linear fit of the dB)
    windows = ir[0, start:start + int(0.8 * SR)].reshape(16, -1)
    energy_db = 10 * np.log10(np.mean(windows.astype(np.float64) ** 2, axis=-1))
    slope_db_per_s = np.polyfit(np.arange(16) * 0.05, energy_db, 1)[0]
    assert slope_db_per_s == pytest.approx(-60.0, rel=0.05)
    # 100 % width: uncorrelated channels; 0 %: identical
    assert abs(np.corrcoef(ir[0], ir[1])[0, 1]) < 0.05
    mono = reverb_ir.impulse_response(SR, ReverbParams(width_pct=0.0))[0].numpy()
    np.testing.assert_array_equal(mono[0], mono[1])
    np.testing.assert_array_equal(ir, reverb_ir.impulse_response(SR, p)[0].numpy())


def test_impulse_response_is_the_decaying_noise_low_passed_then_delayed():
    p = ReverbParams(decay_s=0.3, predelay_ms=7.3, damping_hz=3000.0, width_pct=60.0)
    with torch.no_grad():
        got = reverb_ir.impulse_response(SR, p)[0].double().numpy()
    n = got.shape[-1]
    time_s = np.arange(n, dtype=np.float32) / np.float32(SR)  # float32 as the response's
    noise = reverb_ir._noise(SR)[:, :n].double().numpy() * (
        np.exp(-math.log(1000.0) * time_s / 0.3) * (time_s < np.float32(0.3)))
    pole = math.exp(-2 * math.pi * 3000.0 / SR)
    low = scipy.signal.lfilter([1 - pole], [1, -pole], noise, axis=-1)
    delay = float(np.float32(7.3) * SR / 1000)  # samples
    whole, frac = int(delay), delay - int(delay)
    shifted = np.pad(low, ((0, 0), (whole, 0)))[:, :n]
    mid, side = (1 - frac) * shifted + frac * np.pad(shifted, ((0, 0), (1, 0)))[:, :n]
    want = np.stack([mid + 0.6 * side, mid - 0.6 * side])
    want /= np.linalg.norm(want, axis=-1).max()
    # float32 exp differs by a few ulps between CPUs' vector paths (seen: 1.4e-6 of the peak)
    np.testing.assert_allclose(got, want, atol=5e-6 * np.abs(want).max())


def test_impulse_response_does_not_depend_on_the_rest_of_the_batch():
    short = ReverbParams(decay_s=0.5, predelay_ms=3.3)
    batch = ReverbParams(decay_s=torch.tensor([0.5, 4.0]), predelay_ms=torch.tensor([3.3, 80.0]),
                         damping_hz=torch.tensor([6000.0, 2000.0]),
                         width_pct=torch.tensor([100.0, 10.0]), wet_db=torch.tensor([-60.0, 0.0]))
    alone = reverb_ir.impulse_response(SR, short)[0]
    together = reverb_ir.impulse_response(SR, batch)[0]
    n = alone.shape[-1] - reverb_ir.TAIL_MARGIN_SAMPLES
    torch.testing.assert_close(together[:, :n], alone[:, :n], atol=1e-6, rtol=1e-4)


# --- gain, stereo and the chains ---------------------------------------------------------


@pytest.mark.parametrize("effect, cls", [("gain", GainParams), ("pan", PanParams),
                                         ("stereo_width", StereoWidthParams)])
def test_simple_effects_match(effect, cls, rng):
    x = music_like(rng, SR, 0.5)
    for _ in range(3):
        p = draw(cls, rng)
        ref = getattr(render, effect)(x, SR, p)
        got = run_twin(getattr(twin, effect), x, SR, p)
        assert np.abs(got - ref).max() <= 1e-6 * max(1.0, np.abs(ref).max())


def test_master_chain_log_mel_distance_below_0_05(rng):
    x = music_like(rng, SR, 1.0)
    for _ in range(3):
        chain = draw(MasterChain, rng)
        ref = render.master_chain(x, SR, chain)
        got = run_twin(twin.master_chain, x, SR, chain)
        assert log_mel_distance(ref, got) <= 0.05
        assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()


def test_stem_chain_and_send_match(rng):
    x = music_like(rng, SR, 1.0)[:1]  # a mono stem
    chain = draw(StemChain, rng)
    dry_ref, send_ref = render.stem_chain(x, SR, chain)
    with torch.no_grad():
        dry, send = (y[0].numpy() for y in twin.stem_chain(torch.from_numpy(x)[None], SR, chain))
    assert dry.shape == send.shape == (2, x.shape[-1])
    assert log_mel_distance(dry_ref, dry) <= 0.05
    np.testing.assert_allclose(send, dry * 10 ** (chain.send.send_db / 20), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(send_ref, send, atol=1e-3 * np.abs(send_ref).max())
