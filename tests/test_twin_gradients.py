"""Gradients through the torch twin, and refinement of settings against pedalboard targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from automix.effects import render, twin
from automix.params import (
    CompressorParams,
    EQParams,
    HighpassParams,
    MasterChain,
    ReverbParams,
    StemChain,
    StereoWidthParams,
    flat_ranges,
    from_unit_vector,
    to_unit_list,
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


def log_spectrum_mse(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of log power spectrograms (1024-point STFT, hop 256)."""
    def log_power(z: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(z.reshape(-1, z.shape[-1]), 1024, 256, window=torch.hann_window(1024),
                          return_complex=True)
        return torch.log(spec.abs().square() + 1e-8)
    return (log_power(y) - log_power(target)).square().mean()


def grads_of(cls: type, loss_of_chain, rng: np.random.Generator) -> dict[str, float]:
    """|d loss / d u| for each parameter at seeded settings away from the range ends."""
    names = list(flat_ranges(cls))
    u = torch.tensor(rng.uniform(0.15, 0.85, size=(1, len(names))), dtype=torch.float32)
    u[0, names.index("compressor.threshold_db")] = 0.2  # -48 dB: compressing, so attack
    u.requires_grad_(True)  # and release matter
    loss_of_chain(from_unit_vector(cls, u)).backward()
    return dict(zip(names, u.grad[0].abs().tolist(), strict=True))


def test_every_master_chain_parameter_gets_a_finite_nonzero_gradient(rng):
    x = torch.from_numpy(music_like(rng, SR, 0.5))[None]
    target = x * torch.tensor([0.9, 0.4]).reshape(1, 2, 1)
    grads = grads_of(MasterChain,
                     lambda chain: (twin.master_chain(x, SR, chain) - target).square().mean(), rng)
    bad = {k: g for k, g in grads.items() if not (np.isfinite(g) and g > 0)}
    assert not bad and len(grads) == 20  # 1 + 13 + 5 + 1


def test_every_stem_chain_and_reverb_parameter_gets_a_finite_nonzero_gradient(rng):
    x = torch.from_numpy(music_like(rng, SR, 0.5))[None, :1]
    target = x * torch.tensor([0.9, 0.4]).reshape(1, 2, 1)
    n_stem = len(flat_ranges(StemChain))

    def loss(u: torch.Tensor) -> torch.Tensor:
        dry, send = twin.stem_chain(x, SR, from_unit_vector(StemChain, u[:, :n_stem]))
        y = dry + twin.reverb_return(send, SR, from_unit_vector(ReverbParams, u[:, n_stem:]))
        return (y - target).square().mean()

    names = list(flat_ranges(StemChain)) + [f"reverb.{k}" for k in flat_ranges(ReverbParams)]
    u = torch.tensor(rng.uniform(0.15, 0.85, size=(1, len(names))), dtype=torch.float32)
    u[0, names.index("compressor.threshold_db")] = 0.2
    u.requires_grad_(True)
    loss(u).backward()
    grads = dict(zip(names, u.grad[0].abs().tolist(), strict=True))
    bad = {k: g for k, g in grads.items() if not (np.isfinite(g) and g > 0)}
    assert not bad and len(grads) == 27  # 1 + 1 + 13 + 5 + 1 + 1 + reverb 5


@pytest.mark.parametrize("name", ["eq.peak2_gain_db", "eq.peak2_freq_hz", "highpass.freq_hz",
                                  "width.width_pct", "compressor.makeup_db"])
def test_gradient_agrees_with_finite_differences(name, rng):
    x = torch.from_numpy(music_like(rng, SR, 0.5))[None]
    target = x * 0.7
    index = list(flat_ranges(MasterChain)).index(name)
    chain = MasterChain(highpass=HighpassParams(freq_hz=60.0),
                        eq=EQParams(low_shelf_gain_db=-3.0, peak2_gain_db=6.0, peak2_q=2.0),
                        compressor=CompressorParams(threshold_db=-20.0, ratio=3.0),
                        width=StereoWidthParams(width_pct=150.0))
    u = torch.tensor([to_unit_list(chain)], dtype=torch.float64)

    def loss(v: torch.Tensor) -> torch.Tensor:
        return (twin.master_chain(x, SR, from_unit_vector(MasterChain, v.float()))
                - target).square().sum()

    assert_gradient_matches_central_difference(loss, u, index, step=1e-3)


@pytest.mark.parametrize("name, step", [
    ("decay_s", 1e-3), ("damping_hz", 1e-3), ("width_pct", 1e-3), ("wet_db", 1e-3),
    ("predelay_ms", 1e-5),  # 0.04 samples: the interpolated delay's slope changes every sample
])
def test_reverb_gradient_agrees_with_finite_differences(name, step, rng):
    x = torch.from_numpy(music_like(rng, SR, 0.5))[None]
    target = x * 0.5
    p = ReverbParams(decay_s=0.4, predelay_ms=12.3, damping_hz=4000.0, width_pct=60.0,
                     wet_db=-6.0)
    u = torch.tensor([to_unit_list(p)], dtype=torch.float64)

    def loss(v: torch.Tensor) -> torch.Tensor:
        return (twin.reverb(x, SR, from_unit_vector(ReverbParams, v.float())) - target
                ).square().sum()

    assert_gradient_matches_central_difference(loss, u, list(flat_ranges(ReverbParams)).index(name),
                                               step=step)


def assert_gradient_matches_central_difference(loss, u: torch.Tensor, index: int,
                                               step: float) -> None:
    """d loss / d u[0, index] by autograd against (loss(u + step) - loss(u - step)) / 2 step."""
    v = u.clone().requires_grad_(True)
    loss(v).backward()
    plus, minus = u.clone(), u.clone()
    plus[0, index] += step
    minus[0, index] -= step
    numeric = (loss(plus) - loss(minus)).item() / (2 * step)
    assert v.grad[0, index].item() == pytest.approx(numeric, rel=0.02, abs=1e-4)


def test_fft_convolve_is_the_cut_linear_convolution_and_its_gradients_check():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, 40, dtype=torch.float64, generator=generator, requires_grad=True)
    h = torch.randn(2, 1, 15, dtype=torch.float64, generator=generator, requires_grad=True)
    direct = np.stack([[np.convolve(row, h[i, 0].detach().numpy())[:40] for row in item]
                       for i, item in enumerate(x.detach().numpy())])
    np.testing.assert_allclose(twin.fft_convolve(x, h).detach().numpy(), direct, atol=1e-12)
    assert torch.autograd.gradcheck(twin.fft_convolve, (x, h))


def test_envelope_gradients_check_in_the_signal_and_times(rng):
    x = torch.from_numpy(music_like(rng, SR, 0.005))[None].double().requires_grad_(True)
    times = [torch.tensor([t], dtype=torch.float64, requires_grad=True) for t in (0.5, 5.0)]
    assert torch.autograd.gradcheck(lambda *a: twin.peak_envelope(a[0], SR, *a[1:]),
                                    (x, *times))


def test_envelope_gradient_matches_finite_differences_for_attack_and_release(rng):
    x = torch.from_numpy(music_like(rng, SR, 0.25))[None].double()
    times = torch.tensor([3.0, 40.0], dtype=torch.float64, requires_grad=True)
    weights = torch.rand(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)

    def loss(t: torch.Tensor) -> torch.Tensor:
        return (twin.peak_envelope(x, SR, t[:1], t[1:]) * weights).sum()

    loss(times).backward()
    for i in range(2):
        d = torch.zeros(2, dtype=torch.float64)
        d[i] = 1e-4 * times[i].item()
        numeric = (loss(times.detach() + d) - loss(times.detach() - d)).item() / (2 * d[i])
        assert times.grad[i].item() == pytest.approx(numeric.item(), rel=1e-3)


# --- refinement: Adam through the twin recovers what pedalboard rendered ------------------


def test_optimise_recovers_eq_gains_within_0_5_db(rng):
    x = music_like(rng, SR, 0.5)
    target_p = EQParams(low_shelf_gain_db=4.0, peak1_gain_db=-5.0, peak2_gain_db=6.0,
                        peak3_gain_db=-3.0, high_shelf_gain_db=2.5)
    target = torch.from_numpy(render.eq(x, SR, target_p))[None]
    names = list(flat_ranges(EQParams))
    trainable = torch.tensor([n.endswith("gain_db") for n in names])
    start = torch.tensor([to_unit_list(EQParams())])
    best = twin.optimise(start, lambda u: twin.eq(torch.from_numpy(x)[None], SR,
                                                  from_unit_vector(EQParams, u)),
                         lambda y: (y - target).square().mean(), steps=100, lr=0.02,
                         trainable=trainable)
    got = from_unit_vector(EQParams, best[0])
    for name in names:
        want = getattr(target_p, name)
        assert float(getattr(got, name)) == pytest.approx(want, abs=0.5 if "gain" in name
                                                          else 1e-4), name


def test_optimise_recovers_compressor_threshold_within_2_db_from_default(rng):
    x = music_like(rng, SR, 1.0)
    target_p = CompressorParams(threshold_db=-24.0, ratio=4.0, attack_ms=5.0, release_ms=80.0)
    target = torch.from_numpy(render.compressor(x, SR, target_p))[None]
    start_p = CompressorParams(ratio=4.0, attack_ms=5.0, release_ms=80.0)  # threshold 0 dB
    trainable = torch.tensor([n == "threshold_db" for n in flat_ranges(CompressorParams)])
    best = twin.optimise(torch.tensor([to_unit_list(start_p)]),
                         lambda u: twin.compressor(torch.from_numpy(x)[None], SR,
                                                   from_unit_vector(CompressorParams, u)),
                         lambda y: (y - target).square().mean(), steps=60, lr=0.05,
                         trainable=trainable)
    got = from_unit_vector(CompressorParams, best[0])
    assert float(got.threshold_db) == pytest.approx(-24.0, abs=2.0)


def test_optimise_recovers_reverb_wet_level_within_2_db_from_default(rng):
    x = music_like(rng, SR, 0.5)
    x[:, int(0.3 * SR):] = 0.0  # a gap where the tail rings out
    target_p = ReverbParams(decay_s=0.8, wet_db=-12.0)
    target = torch.from_numpy(render.reverb(x, SR, target_p))[None]
    start_p = ReverbParams(decay_s=0.8)  # wet_db at its default, -60 dB
    trainable = torch.tensor([n == "wet_db" for n in flat_ranges(ReverbParams)])
    best = twin.optimise(torch.tensor([to_unit_list(start_p)]),
                         lambda u: twin.reverb(torch.from_numpy(x)[None], SR,
                                               from_unit_vector(ReverbParams, u)),
                         lambda y: log_spectrum_mse(y, target), steps=60, lr=0.05,
                         trainable=trainable)
    assert float(from_unit_vector(ReverbParams, best[0]).wet_db) == pytest.approx(-12.0, abs=2.0)


def test_optimise_stops_at_the_time_budget_and_keeps_settings_in_range():
    calls = []

    def render_fn(u: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return u * 10.0  # pushes every setting beyond 1 without the projection

    best = twin.optimise(torch.full((1, 3), 0.5), render_fn, lambda y: -y.sum(), steps=10_000,
                         lr=0.5, time_budget_s=0.0)
    assert len(calls) == 2  # one step, then the final evaluation
    assert float(best.max()) <= 1.0 and float(best.min()) >= 0.0
