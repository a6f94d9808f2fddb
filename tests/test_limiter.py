"""True-peak limiter: nothing over the ceiling, nothing touched below it, no extra latency."""

from __future__ import annotations

import numpy as np
import pytest

from automix.effects.limiter import (
    MARGIN_DB,
    apply_gain_curve,
    limiter_gain,
    trim_residue,
    true_peak_limit,
)
from automix.loudness import true_peak_dbtp, true_peak_envelope
from automix.params import LimiterParams
from conftest import music_like


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
@pytest.mark.parametrize("ceiling", [-1.0, -0.3, -6.0])
def test_true_peak_never_exceeds_ceiling(rng, sr: int, ceiling: float) -> None:
    x = music_like(rng, sr, 3.0) * np.float32(6.0)  # ~ +9 dBFS peaks: heavy limiting
    y = true_peak_limit(x, sr, LimiterParams(ceiling_dbtp=ceiling))
    # the limiter aims MARGIN_DB under the ceiling (so the residue trim rarely acts) and,
    # this hot, reaches its aim: "<= ceiling" alone would pass with most of the margin lost
    assert ceiling - MARGIN_DB - 0.05 <= true_peak_dbtp(y, sr) <= ceiling - MARGIN_DB + 0.005
    assert y.shape == x.shape and y.dtype == np.float32


def test_intersample_peaks_are_caught(rng) -> None:
    # fs/4 sine 45 degrees off its peak: samples read -3 dB below the true peak.
    sr = 48000
    n = np.arange(sr)
    x = np.stack([np.sin(np.pi * n / 2 + np.pi / 4)] * 2).astype(np.float32) * np.float32(0.99)
    assert np.abs(x).max() < 0.71  # sample peak about -3 dBFS: a sample-peak limiter does nothing
    y = true_peak_limit(x, sr, LimiterParams(ceiling_dbtp=-1.0))
    assert true_peak_dbtp(y, sr) <= -1.0 - MARGIN_DB + 0.005
    assert true_peak_dbtp(x, sr) > -0.2


def test_signal_under_ceiling_passes_untouched(rng) -> None:
    x = music_like(rng, 44100, 2.0) * np.float32(0.3)
    assert true_peak_dbtp(x, 44100) < -3
    y = true_peak_limit(x, 44100, LimiterParams(ceiling_dbtp=-1.0))
    np.testing.assert_array_equal(y, x)


def test_gain_only_reduces_and_releases_slowly_after_sustained_limiting() -> None:
    sr = 44100
    env = np.full(sr * 2, 0.5, dtype=np.float32)
    env[sr // 2: sr] = 2.0  # half a second 12 dB over a 0 dBTP ceiling
    p = LimiterParams(ceiling_dbtp=0.0, release_ms=100.0)
    g = limiter_gain(env, sr, p)
    assert g.max() <= 1.0
    assert np.all(g * env <= 10 ** (-MARGIN_DB / 20) + 1e-6)
    assert (g * env).max() >= 10 ** (-MARGIN_DB / 20) - 1e-4  # and reaches it
    # 50 ms after the loud part the gain is still recovering (slow release), not back at 1
    assert g[sr + int(0.05 * sr)] < 0.9
    assert g[-1] > 0.99


def test_envelope_matches_true_peak(rng) -> None:
    x = music_like(rng, 44100, 1.0)
    env = true_peak_envelope(x, 44100)
    assert env.shape == (x.shape[1],)
    assert 20 * np.log10(env.max()) == pytest.approx(true_peak_dbtp(x, 44100), abs=1e-4)


@pytest.mark.parametrize("size", [1, 3, 7, 131])
def test_running_min_and_moving_average_match_their_definitions(rng, size: int) -> None:
    from automix.effects.limiter import moving_average, running_min

    x = rng.random(1000).astype(np.float32)
    half = size // 2
    padded = np.pad(x, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)
    np.testing.assert_array_equal(running_min(x, size), windows.min(axis=1))
    np.testing.assert_allclose(moving_average(x, size), windows.mean(axis=1), atol=1e-6)
    assert moving_average(x, size).dtype == np.float32


@pytest.mark.parametrize("gain_db", [0.0, 6.0, 12.0])
def test_coarse_limiter_predicts_the_limited_loudness(rng, gain_db: float) -> None:
    # what the gain search relies on: the 1/8-rate model reads the loudness of the full-rate
    # limiter's output (predicted from the weighted power) within a few hundredths of a LU
    from automix.effects.limiter import LimiterGain
    from automix.loudness import integrated_lufs_of_power, weighted_power

    sr, factor = 44100, 8
    x = music_like(rng, sr, 20.0)
    power = weighted_power(x, sr)
    limiter = LimiterGain(true_peak_envelope(x, sr), sr, LimiterParams(ceiling_dbtp=-1.0))
    gain = np.float32(10 ** (gain_db / 20))
    exact = integrated_lufs_of_power(power * np.square(limiter(gain) * gain), sr)
    whole = power.size // factor
    pooled = power[: whole * factor].reshape(whole, factor).mean(axis=1)
    coarse = limiter.coarse(factor)(gain)[:whole] * gain
    assert integrated_lufs_of_power(pooled * np.square(coarse), sr / factor) == pytest.approx(
        exact, abs=0.05)
    if gain_db == 12.0:  # heavy limiting, where a coarser release would miss by tenths
        assert integrated_lufs_of_power(power * gain**2, sr) - exact > 1.0


def test_attack_gain_in_batches_of_chunks_equals_all_at_once(rng, monkeypatch) -> None:
    # Chunks near limiting are computed a batch at a time (their temporaries stay small):
    # each chunk's values depend on its own surroundings only, so batching changes no bit.
    from automix.effects import limiter

    required = np.ones(4000 * limiter._ATTACK_CHUNK, dtype=np.float32)
    required[rng.choice(required.size, 80, replace=False)] = rng.uniform(0.3, 0.99, 80)
    calls = []
    dense_attack = limiter._dense_attack
    monkeypatch.setattr(limiter, "_dense_attack", lambda rows, w: (calls.append(len(rows)),
                                                                   dense_attack(rows, w))[1])
    batched = limiter.attack_gain(required, 44100)
    assert len(calls) > 1 and max(calls) <= limiter._ATTACK_ROWS  # the chunks' path, batched
    monkeypatch.setattr(limiter, "_ATTACK_ROWS", 10**9)
    np.testing.assert_array_equal(batched, limiter.attack_gain(required, 44100))
    assert (batched < 1.0).any()


@pytest.mark.parametrize("ceiling", [-1.0, -3.0])
def test_residue_trim_brings_a_peak_the_gain_curve_left_over_the_ceiling_under_it(
        rng, ceiling: float) -> None:
    # The limiter's own curve leaves almost no residue (it aims MARGIN_DB under), so the trim
    # is driven by a curve that limits too little: 2 dB too little, then exactly enough.
    sr = 44100
    x = music_like(rng, sr, 1.0) * np.float32(4.0)
    p = LimiterParams(ceiling_dbtp=ceiling)
    short = limiter_gain(true_peak_envelope(x, sr), sr, p) * np.float32(10 ** (2.0 / 20))
    assert true_peak_dbtp(x * short[None, :], sr) > ceiling + 1.5  # a residue to trim
    y = apply_gain_curve(x, short, sr, p)
    assert ceiling - 0.02 <= true_peak_dbtp(y, sr) <= ceiling
    np.testing.assert_allclose(y, x * short[None, :] * (y[0, 0] / (x[0, 0] * short[0])),
                               rtol=1e-5, atol=1e-7)  # one constant gain, the shape kept

    over = (x * short[None, :]).astype(np.float32)
    assert trim_residue(over, true_peak_dbtp(over, sr), p)  # it fired...
    assert true_peak_dbtp(over, sr) <= ceiling  # ...and the peak is under the ceiling
    under = (x * short[None, :] * np.float32(0.5)).astype(np.float32)
    before = under.copy()
    assert not trim_residue(under, true_peak_dbtp(under, sr), p)  # nothing to trim
    np.testing.assert_array_equal(under, before)


# --- properties that a mutation run (tools/mutation.py) showed untested ---

def _naive_one_pole(x, alpha, previous):
    y, out = previous, []
    for v in x:
        y = alpha * y + (1.0 - alpha) * v
        out.append(y)
    return np.array(out)


@pytest.mark.parametrize("alpha", [0.5, 0.9, 0.999])
def test_one_pole_matches_its_recursion_across_segments(alpha):
    """The vectorised smoother equals the recursion it states, over many segments
    (alpha 0.5 gives segments of 865 samples) and from a non-zero start."""
    from automix.effects.limiter import one_pole

    x = np.random.default_rng(3).normal(size=4000)
    got = one_pole(x, alpha, previous=-2.5)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _naive_one_pole(x, alpha, -2.5), rtol=1e-9, atol=1e-12)
    assert one_pole(np.array([1.0]), alpha, previous=3.0)[0] == pytest.approx(
        alpha * 3.0 + (1.0 - alpha))
    assert one_pole(np.zeros(0), alpha, 1.0).size == 0


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5])
def test_one_pole_refuses_a_coefficient_outside_the_open_unit_interval(alpha):
    from automix.effects.limiter import one_pole

    with pytest.raises(ValueError, match="alpha must be in"):
        one_pole(np.ones(4), alpha, 0.0)


def test_required_gain_is_headroom_capped_at_unity():
    from automix.effects.limiter import headroom, required_gain

    p = LimiterParams(ceiling_dbtp=-1.0)
    envelope = np.array([0.1, 0.5, 0.89, 1.0, 2.0], dtype=np.float32)
    expected = np.minimum(headroom(envelope.copy(), p), 1.0)
    got = required_gain(envelope.copy(), p)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.max() == 1.0 and got[-1] == pytest.approx(10 ** (-1.1 / 20) / 2.0, rel=1e-5)


def _naive_attack(required, w):
    """Centred minimum over 2W-1, then two centred averages over W, edges held, at most 1."""
    reach = 2 * (w - 1)
    padded = np.concatenate([np.full(reach, required[0]), required, np.full(reach, required[-1])])
    n = required.size
    half = w - 1
    mins = np.array([padded[i - half: i + half + 1].min() for i in range(half, padded.size - half)])
    # mins[j] is centred on padded[j + half]
    h = w // 2
    avg1 = np.array([mins[j - h: j + h + 1].mean() for j in range(h, mins.size - h)])
    avg2 = np.array([avg1[j - h: j + h + 1].mean() for j in range(h, avg1.size - h)])
    # avg2[j] is centred on padded[j + half + 2h] = padded[j + reach]
    return np.minimum(avg2[:n], 1.0)


@pytest.mark.parametrize("dips", [1, 400])
def test_attack_gain_matches_its_formula_sparse_and_dense(dips):
    """Both of attack_gain's paths (a few chunks near limiting, or most of them; with and
    without a supplied running minimum) give the formula in its docstring."""
    from automix.effects.limiter import attack_gain, lookahead_window, running_min

    sr = 8000
    w = lookahead_window(sr)
    rng = np.random.default_rng(dips)
    required = np.ones(20_000, dtype=np.float32)
    where = rng.choice(np.arange(5, required.size - 5), size=dips, replace=False)
    required[where] = rng.uniform(0.2, 0.9, size=dips).astype(np.float32)
    required[0] = 0.7  # an edge that must be held, not zero-padded
    expected = _naive_attack(required.astype(np.float64), w)
    got = attack_gain(required.copy(), sr)
    np.testing.assert_allclose(got, expected, atol=2e-6)
    reach = 2 * (w - 1)
    held = np.concatenate([np.full(reach, required[0]), required, np.full(reach, required[-1])])
    supplied = attack_gain(required.copy(), sr, lambda: running_min(held, 2 * w - 1))
    np.testing.assert_allclose(supplied, expected, atol=2e-6)


@pytest.mark.parametrize(("sample_rate", "window"), [(44100, 67), (48000, 73), (8000, 13)])
def test_lookahead_window_is_odd_and_about_the_lookahead(sample_rate, window):
    from automix.effects.limiter import lookahead_window

    assert lookahead_window(sample_rate) == window


def test_block_reduce_takes_powers_of_two_only():
    from automix.effects.limiter import block_minima, block_reduce

    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(block_reduce(x, 1, np.minimum), x)
    np.testing.assert_array_equal(block_reduce(x, 4, np.maximum), [3, 7, 9])
    assert block_minima(x, 4).dtype == np.float64
    for bad in (0, 3, 6):
        with pytest.raises(ValueError, match="power of two"):
            block_reduce(x, bad, np.minimum)


def test_limiter_gain_object_matches_the_formula_when_most_of_the_signal_is_limited():
    """`LimiterGain` reuses one running minimum across gains: its curve equals attack then
    release computed afresh, for each gain (the dense path, most chunks limited)."""
    from automix.effects.limiter import LimiterGain, _release, attack_gain, headroom

    p = LimiterParams(ceiling_dbtp=-1.0)
    sr = 8000
    envelope = np.abs(np.random.default_rng(1).normal(0.5, 0.3, 16_000)).astype(np.float32)
    limiter = LimiterGain(envelope.copy(), sr, p)
    for gain in (1.0, 2.0, 0.5):
        required = np.minimum(headroom(envelope * np.float32(gain), p), np.float32(1.0))
        expected = _release(attack_gain(required, sr), sr, p)
        np.testing.assert_allclose(limiter(gain), expected, atol=1e-5)
    assert limiter.coarse().envelope.dtype == np.float32
    with pytest.raises(ValueError, match="must divide the release block"):
        limiter.coarse(3)


def test_release_is_gradual_after_a_dip():
    """A dip in the first block holds the gain down for the next blocks (the smoother starts
    from the first block's gain, not from 1), and the curve then recovers toward 1."""
    from automix.effects.limiter import _release

    p = LimiterParams(ceiling_dbtp=-1.0)
    attack = np.ones(32 * 40, dtype=np.float32)
    attack[:32] = 0.5
    curve = _release(attack.copy(), 44100, p)
    assert curve[:32].max() <= 0.5 + 1e-6
    assert 0.5 < curve[32 * 2] < 0.99
    assert np.all(np.diff(curve[32:]) >= -1e-7) and curve[-1] > curve[64]


@pytest.mark.parametrize("size", [9, 32, 33])
def test_one_pole_short_inputs_match_the_recursion(size):
    """A live hop's few release blocks take the plain recursion (up to 32 values), longer
    inputs the vectorised form: both are the recursion, and they agree at the switch."""
    from automix.effects.limiter import one_pole

    x = np.random.default_rng(size).normal(size=size)
    got = one_pole(x, 0.97, previous=0.4)
    assert got.dtype == np.float64 and got.shape == (size,)
    np.testing.assert_allclose(got, _naive_one_pole(x, 0.97, 0.4), rtol=1e-12, atol=1e-15)
