"""Loudness, loudness range and true peak against the standards' own test signals."""

import numpy as np
import pyloudnorm
import pytest
from scipy.signal.windows import tukey

from automix import loudness
from automix.audio import load
from automix.errors import AudioInputError
from conftest import excerpt_files, music_like


def sine(level_dbfs: float, seconds: float, sample_rate: int, freq_hz: float = 1000.0):
    """A sine whose *peak* is at ``level_dbfs`` (EBU Tech 3341's definition), shape (samples,)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return loudness.db_to_amp(level_dbfs) * np.sin(2 * np.pi * freq_hz * t)


def stereo(*segments: tuple[float, float], sample_rate: int = 48000) -> np.ndarray:
    """Consecutive 1 kHz sine segments ``(level_dbfs, seconds)`` in both channels."""
    x = np.concatenate([sine(level, seconds, sample_rate) for level, seconds in segments])
    return np.stack([x, x]).astype(np.float32)


def modulated_noise(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    envelope = 0.05 + np.sin(np.linspace(0, 9, n)) ** 2
    return (0.1 * rng.standard_normal((2, n)) * envelope).astype(np.float32)


# BS.1770-4 Annex 1: a 0 dBFS 1 kHz sine in one channel reads -3.01 LKFS, and channel powers
# add, so the same sine in L and R reads 0 LUFS. EBU Tech 3341 tests 1 and 2: a stereo 1 kHz
# sine whose peak is at -23 (-33) dBFS reads -23.0 (-33.0) +-0.1 LUFS.
@pytest.mark.parametrize("sample_rate", [44100, 48000, 96000])
@pytest.mark.parametrize("level_dbfs", [-23.0, -33.0])
def test_stereo_1khz_sine_reads_its_peak_level_in_lufs(sample_rate, level_dbfs):
    x = stereo((level_dbfs, 5.0), sample_rate=sample_rate)
    assert loudness.integrated_lufs(x, sample_rate) == pytest.approx(level_dbfs, abs=0.1)


def test_full_scale_sine_in_one_channel_reads_minus_3_01_lkfs():
    x = sine(0.0, 5.0, 48000)
    assert loudness.integrated_lufs(x, 48000) == pytest.approx(-3.01, abs=0.02)
    assert loudness.integrated_lufs(x[np.newaxis], 48000) == loudness.integrated_lufs(x, 48000)


@pytest.mark.parametrize("sample_rate", [8000, 44100, 48000, 96000])
def test_integrated_loudness_matches_pyloudnorm(sample_rate):
    # Not a whole number of hops. Only complete blocks count; pyloudnorm rounds the block
    # count and would divide a partial last block by the full length from x.35 s on.
    x = modulated_noise(6.32, sample_rate)
    meter = pyloudnorm.Meter(sample_rate, filter_class="DeMan")
    expected = meter.integrated_loudness(x.T.astype(np.float64))
    assert loudness.integrated_lufs(x, sample_rate) == pytest.approx(expected, abs=0.005)


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100, 48000, 96000])
def test_k_weighting_response_matches_libebur128_biquads(sample_rate):
    # pedalboard's filters (an RBJ shelf, two first-order high-passes) times the pass-band gain,
    # against pyloudnorm's "DeMan" biquads (libebur128's design), at steady-state sines
    freqs = [20.0, 38.0, 100.0, 1000.0, 1682.0, 5000.0, 0.4 * sample_rate]
    t = np.arange(sample_rate) / sample_rate
    sines = np.stack([np.sin(2 * np.pi * f * t) for f in freqs]).astype(np.float32)
    ours = loudness.k_weighting_board(sample_rate)(sines, float(sample_rate))
    ours_db = 20 * np.log10(np.abs(np.fft.rfft(ours[:, sample_rate // 2:] * np.hanning(
        sample_rate // 2), axis=-1)).max(axis=-1) * loudness.k_weighting_gain(sample_rate))
    ref = sines.astype(np.float64)
    for stage in pyloudnorm.Meter(sample_rate, filter_class="DeMan")._filters.values():
        ref = np.stack([stage.apply_filter(row) for row in ref])
    ref_db = 20 * np.log10(np.abs(np.fft.rfft(ref[:, sample_rate // 2:] * np.hanning(
        sample_rate // 2), axis=-1)).max(axis=-1))
    assert np.max(np.abs(ours_db - ref_db)) < 0.01
    assert ref_db[-1] - ref_db[3] > 3.0  # the shelf is there: the check is not vacuous


def test_both_gates_follow_ebu_tech_3341_test_4():
    # -72 dBFS sits under the absolute gate, -36 dBFS under the relative gate: only the
    # -23 dBFS part counts; without gating this would read about -26.4 LUFS.
    x = stereo((-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10))
    assert loudness.integrated_lufs(x, 48000) == pytest.approx(-23.0, abs=0.1)


def test_silence_and_signals_under_the_absolute_gate_read_the_floor():
    assert loudness.integrated_lufs(np.zeros((2, 48000), np.float32), 48000) == -120.0
    assert loudness.integrated_lufs(stereo((-80, 2)), 48000) == loudness.LEVEL_FLOOR_DB


def test_shorter_than_a_gating_block_is_an_input_error():
    with pytest.raises(AudioInputError, match="shorter than one 0.4 s"):
        loudness.integrated_lufs(np.zeros((2, 1000), np.float32), 48000)


@pytest.mark.parametrize(
    ("segments", "expected_lu"),
    [  # EBU Tech 3342 conformance signals 1-4, expected LRA +-1 LU
        (((-20, 20), (-30, 20)), 10.0),
        (((-20, 20), (-15, 20)), 5.0),
        (((-40, 20), (-20, 20)), 20.0),
        (((-50, 20), (-35, 20), (-20, 20), (-35, 20), (-50, 20)), 15.0),
    ],
)
def test_loudness_range_of_ebu_tech_3342_steps(segments, expected_lu):
    assert loudness.loudness_range_lu(stereo(*segments), 48000) == pytest.approx(expected_lu, abs=1)


def test_steady_or_short_signals_have_no_loudness_range():
    assert loudness.loudness_range_lu(stereo((-20, 10)), 48000) == pytest.approx(0.0, abs=0.01)
    assert loudness.loudness_range_lu(stereo((-20, 1), (-40, 1)), 48000) == 0.0


def test_loudness_and_range_equals_the_separate_measurements():
    x = modulated_noise(12.0, 44100)
    both = loudness.loudness_and_range(x, 44100)
    assert both == (loudness.integrated_lufs(x, 44100), loudness.loudness_range_lu(x, 44100))
    assert both[1] > 3.0  # the modulation spans more than 3 LU


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_fs4_sine_45_degrees_off_its_peak_reads_3_db_above_sample_peak(sample_rate):
    # x[n] = A sin(pi n / 2 + pi / 4): every sample sits at A / sqrt 2, the peak A between them.
    n = np.arange(sample_rate)
    amplitude = 0.5
    x = amplitude * np.sin(np.pi * n / 2 + np.pi / 4) * tukey(n.size, 0.1)
    x = np.stack([x, x]).astype(np.float32)
    sample_peak = loudness.sample_peak_dbfs(x)
    true_peak = loudness.true_peak_dbtp(x, sample_rate)
    assert sample_peak == pytest.approx(loudness.amp_to_db(amplitude) - 3.01, abs=0.01)
    assert true_peak - sample_peak == pytest.approx(3.01, abs=0.2)
    assert true_peak == pytest.approx(loudness.amp_to_db(amplitude), abs=0.05)


@pytest.mark.parametrize("period", [4, 6, 8, 16])
def test_true_peak_finds_a_peak_half_way_between_samples(period):
    # Samples straddle each crest symmetrically: sample peak A cos(pi / period), true peak A.
    n = np.arange(24000)
    x = 0.5 * np.sin(2 * np.pi * n / period + np.pi / 2 - np.pi / period) * tukey(n.size, 0.2)
    assert loudness.sample_peak_dbfs(x) == pytest.approx(
        loudness.amp_to_db(0.5 * np.cos(np.pi / period)), abs=0.01
    )
    assert loudness.true_peak_dbtp(x, 48000) == pytest.approx(loudness.amp_to_db(0.5), abs=0.05)


def test_true_peak_envelope_is_per_sample_and_its_max_is_the_true_peak():
    x = modulated_noise(2.0, 44100)
    envelope = loudness.true_peak_envelope(x, 44100)
    assert envelope.shape == (x.shape[1],)
    assert envelope.dtype == np.float32
    assert np.all(envelope >= np.max(np.abs(x), axis=0))  # phase 0 is the sample itself
    assert loudness.amp_to_db(envelope.max()) == loudness.true_peak_dbtp(x, 44100)
    no_oversampling = loudness.true_peak_envelope(x, 44100, oversample=1)
    np.testing.assert_array_equal(no_oversampling, np.max(np.abs(x), axis=0))


def test_true_peak_envelope_stays_local_to_an_impulse():
    x = np.zeros(1000, np.float32)
    x[500] = 0.8
    envelope = loudness.true_peak_envelope(x, 48000)
    reach = loudness.TRUE_PEAK_TAPS // 2
    assert envelope[500] == pytest.approx(0.8)
    assert np.all(envelope[: 500 - reach] == 0) and np.all(envelope[500 + reach :] == 0)
    assert np.all(envelope[495:505] > 0)


def dense_true_peak_dbtp(x: np.ndarray, sample_rate: int, oversample: int = 4) -> float:
    """The true peak from every row: the maximum of the whole envelope."""
    envelope = loudness.true_peak_envelope(x, sample_rate, oversample=oversample)
    return loudness.amp_to_db(envelope.max())


def test_interpolation_bounds_hold_for_the_worst_case_and_are_reached_by_it():
    # The samples that push one in-between point highest carry the signs of its taps: that
    # point is the sum of |taps| times the amplitude, the bound the sparse search relies on.
    matrix = loudness._interpolation_matrix(4)
    column = int(np.argmax(np.abs(matrix.astype(np.float64)).sum(axis=0)))
    x = np.zeros(4000, np.float32)
    start = 32 * 60 - (loudness.TRUE_PEAK_TAPS // 2 - 1)  # row 60's window
    x[start: start + matrix.shape[0]] = 0.3 * np.sign(matrix[:, column])
    worst = 0.3 * np.abs(matrix[:, column].astype(np.float64)).sum()
    assert loudness.db_to_amp(loudness.true_peak_dbtp(x, 48000)) == pytest.approx(worst, rel=1e-5)
    near, far = loudness._interpolation_bounds(4)
    assert worst <= 0.3 * np.max(near + far) <= worst * 1.001
    assert loudness.true_peak_dbtp(x, 48000) == pytest.approx(dense_true_peak_dbtp(x, 48000),
                                                              abs=1e-5)


@pytest.mark.parametrize("oversample", [1, 2, 4, 8])
def test_true_peak_skips_only_rows_that_cannot_hold_it(oversample):
    # Equal to the whole envelope's maximum: music-like and real audio (few rows
    # interpolated), a steady sine (every row), a lone peak at either end (the zero-extended
    # first and last rows), and lengths shorter than one row or one window. Up to the last
    # float32 bit: BLAS rounds a row's products differently in batches of other sizes.
    rng = np.random.default_rng(5)
    n = np.arange(44100 * 3 + 7)
    signals = [music_like(rng, 44100, 3.1), 0.5 * np.sin(0.3 * n), rng.standard_normal(20)]
    signals += [load(path).samples for path in excerpt_files()[:3]]
    for edge in (0, 1, 31, -1, -2, -33):
        x = 0.01 * rng.standard_normal((2, 3001))
        x[1, edge] = 0.9
        signals.append(x)
    for x in signals:
        x = np.asarray(x, np.float32)
        assert loudness.true_peak_dbtp(x, 44100, oversample=oversample) == pytest.approx(
            dense_true_peak_dbtp(x, 44100, oversample), abs=1e-5)


def test_level_helpers():
    assert loudness.amp_to_db(0.5) == pytest.approx(-6.0206, abs=1e-4)
    assert loudness.amp_to_db(0.0) == -120.0
    assert loudness.amp_to_db(1e-9, floor_db=-150.0) == -150.0
    np.testing.assert_allclose(loudness.amp_to_db(np.array([1e-7, -1.0])), [-120.0, 0.0])
    np.testing.assert_allclose(loudness.db_to_amp(np.array([-6.0206, 0.0])), [0.5, 1.0], 1e-5)
    assert loudness.sample_peak_dbfs(np.array([[0.1, -0.25], [0.2, 0.0]])) == pytest.approx(
        loudness.amp_to_db(0.25)
    )


@pytest.mark.parametrize("shape", [(48000, 2), (6, 48000), (2, 2, 100), (0,)])
def test_malformed_layouts_are_input_errors(shape):
    with pytest.raises(AudioInputError, match="channels"):
        loudness.integrated_lufs(np.zeros(shape, np.float32), 48000)


# --- properties that a mutation run (tools/mutation.py) showed untested ---

@pytest.mark.parametrize("n", [3, 40, 300, 2049, 5000])
@pytest.mark.parametrize("where", ["first", "last", "middle"])
def test_true_peak_equals_the_envelope_maximum_whatever_the_channel_and_place(n, where):
    """The fast true peak (rows bounded, only promising rows interpolated) equals the maximum
    of the full envelope, for a burst in the second channel only, at either edge or inside,
    in signals shorter and longer than the interpolator."""
    rng = np.random.default_rng(n)
    x = (0.05 * rng.standard_normal((2, n))).astype(np.float32)
    at = {"first": 0, "last": n - 1, "middle": n // 2}[where]
    burst = np.arange(max(0, at - 2), min(n, at + 3))
    x[1, burst] = 0.9 * np.where(burst % 2, 1.0, -1.0)  # alternating: intersample overs
    envelope = loudness.true_peak_envelope(x, 44100)
    assert envelope.shape == (n,)
    expected = 20 * np.log10(envelope.max())
    assert loudness.true_peak_dbtp(x, 44100) == pytest.approx(expected, abs=1e-4)
    assert expected >= 20 * np.log10(0.9) - 1e-4


@pytest.mark.parametrize("rate", [0, -44100])
def test_true_peak_refuses_a_non_positive_rate(rate):
    with pytest.raises(AudioInputError, match="sample rate must be positive"):
        loudness.true_peak_envelope(np.zeros(8, dtype=np.float32), rate)


@pytest.mark.parametrize("oversample", [0, 2.5])
def test_true_peak_refuses_a_bad_oversampling(oversample):
    with pytest.raises(ValueError, match="oversample must be an integer >= 1"):
        loudness.true_peak_envelope(np.zeros(8, dtype=np.float32), 44100, oversample=oversample)


def test_loudness_and_range_is_both_measures_at_once():
    x = music_like(np.random.default_rng(5), 48000, 12.0)
    lufs, lra = loudness.loudness_and_range(x, 48000)
    assert lufs == pytest.approx(loudness.integrated_lufs(x, 48000), abs=1e-6)
    assert lra == pytest.approx(loudness.loudness_range_lu(x, 48000), abs=1e-6)


def test_level_helpers_give_floats_for_scalars_and_float64_for_arrays():
    assert type(loudness.db_to_amp(-6.0)) is float and type(loudness.amp_to_db(0.5)) is float
    amps = loudness.db_to_amp(np.array([-6.0, 0.0], dtype=np.float32))
    assert isinstance(amps, np.ndarray) and amps.dtype == np.float64  # not float32 rounding
    assert isinstance(loudness.amp_to_db(np.array([0.5, 1.0])), np.ndarray)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float16, np.float32, np.float64])
def test_as_channels_reads_integers_as_float32_and_keeps_float_precision(dtype):
    x = loudness.as_channels(np.array([[1, 2, 3], [4, 5, 6]], dtype=dtype))
    assert x.dtype == (np.float32 if np.issubdtype(dtype, np.integer) else dtype)
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6]])


def test_as_channels_layout_limits_and_their_messages():
    assert loudness.as_channels(np.zeros((1, 1))).shape == (1, 1)  # one sample is audio
    assert loudness.as_channels(np.zeros((5, 10))).shape == (5, 10)  # L R C Ls Rs
    with pytest.raises(AudioInputError, match=r"at most 5 channels are supported, got 6$"):
        loudness.as_channels(np.zeros((6, 10)))
    with pytest.raises(AudioInputError, match=r"\(100, 2\): transposed\?"):
        loudness.as_channels(np.zeros((100, 2)))


def test_k_weighting_matches_bs1770_table_1_and_2_at_48k():
    # Table 1: the shelf's biquad; Table 2: the high-pass's (numerator 1, -2, 1)
    b, a = (1.53512485958697, -2.69169618940638, 1.19839281085285), (-1.69065929318241,
                                                                       0.73248077421585)
    freqs = np.array([500.0, 1000.0, 1500.0, 2000.0, 3000.0, 8000.0, 16000.0])
    z = np.exp(-2j * np.pi * freqs / 48000)
    table_db = 20 * np.log10(np.abs((b[0] + b[1] * z + b[2] * z**2) / (1 + a[0] * z + a[1] * z**2)))
    impulse = np.zeros((1, 1 << 16), np.float32)
    impulse[0, 0] = 1.0
    shelf = loudness.k_weighting_board(48000)[0]  # the shelf alone: the high-pass is flat here
    response = np.abs(np.fft.rfft(shelf(impulse, 48000.0)[0].astype(np.float64)))
    ours_db = 20 * np.log10(np.interp(freqs, np.fft.rfftfreq(1 << 16, 1 / 48000), response))
    assert np.max(np.abs(ours_db - table_db)) < 0.003  # float32 JUCE coefficients: 0.0013
    pass_band = 4.0 / (1.0 + 1.99004745483398 + 0.99007225036621)  # Table 2's gain at fs/2
    assert loudness.k_weighting_gain(48000) == pytest.approx(pass_band, rel=1e-9)


def test_weighting_outputs_are_float32_and_hop_energies_float64():
    x = modulated_noise(1.0, 48000)
    assert loudness.channel_power_weights(2, 48000).dtype == np.float32
    assert loudness.weighted_power(x, 48000).dtype == np.float32
    # one complete 100 ms hop and a partial one, then three
    for n, hops in ((6000, 1), (4800 * 3 + 100, 3)):
        energy, bounds = loudness.hop_energy(np.ones(n, np.float32), 48000)
        assert energy.dtype == np.float64
        np.testing.assert_array_equal(bounds, 4800 * np.arange(hops + 1))
        np.testing.assert_array_equal(energy, 4800.0 * np.arange(hops + 1))
    # ten minutes of hops summed in float64: no float32 drift in late blocks
    power = np.random.default_rng(1).random(600 * 8000, dtype=np.float32)
    energy, bounds = loudness.hop_energy(power, 8000)
    expected = np.cumsum(power.astype(np.float64).reshape(-1, 800).sum(axis=1))
    np.testing.assert_allclose(energy[1:], expected, rtol=2e-7)  # float32 sums: 3e-6


def test_silence_reads_the_floor_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loudness.loudness_and_range(np.zeros((2, 4 * 48000), np.float32), 48000) == (
            loudness.LEVEL_FLOOR_DB, 0.0)


def gate_power() -> float:
    """A block power whose loudness is exactly the -70 LUFS absolute gate."""
    p = 10.0 ** ((loudness.ABSOLUTE_GATE_LUFS - loudness.LOUDNESS_OFFSET_DB) / 10.0)
    while loudness._to_lkfs(p) != loudness.ABSOLUTE_GATE_LUFS:
        p = np.nextafter(p, np.inf if loudness._to_lkfs(p) < loudness.ABSOLUTE_GATE_LUFS
                         else -np.inf)
    return float(p)


def test_a_block_exactly_at_the_absolute_gate_is_left_out():
    # BS.1770-4 eq. 5: blocks count when their loudness is *above* -70 LKFS
    def power(lufs: float) -> float:
        return 10.0 ** ((lufs - loudness.LOUDNESS_OFFSET_DB) / 10.0)

    assert loudness._gated_loudness(np.array([gate_power(), power(-62.0)])) == pytest.approx(-62.0)
    # nor in the mean that sets the relative gate: with them, -65 would pass a gate at -72.5
    blocks = np.array([power(-50.0), power(-65.0)] + [gate_power()] * 20)
    assert loudness._gated_loudness(blocks) == pytest.approx(-50.0)
    # EBU Tech 3342 keeps short-term values *at* -70 LUFS: 15 of them and 10 at -60
    short_term = np.array([gate_power()] * 15 + [power(-60.0)] * 10)
    assert loudness._loudness_range(short_term) == pytest.approx(10.0)


def test_loudness_range_gates_20_lu_under_the_power_mean():
    # EBU Tech 3342: short-term values under -70 LUFS or 20 LU under the loudness of their
    # mean power do not count. A 10 s part 22.1 LU down (under that gate) leaves only the
    # loud part and its transitions: 1.6 LU, not the 22 LU of a gate set 0.69 LU too low.
    x = stereo((-20, 20), (-42.1, 10))
    power = loudness._block_power(loudness.hop_energy(loudness.weighted_power(x, 48000), 48000),
                                  loudness.SHORT_TERM_BLOCK_S)
    short_term = loudness.LOUDNESS_OFFSET_DB + 10 * np.log10(power)
    gate = loudness.LOUDNESS_OFFSET_DB + 10 * np.log10(power.mean()) - 20.0
    kept = short_term[short_term >= gate]
    expected = np.percentile(kept, 95) - np.percentile(kept, 10)
    assert loudness.loudness_range_lu(x, 48000) == pytest.approx(expected, abs=1e-6)
    assert expected < 3.0
    # under the absolute gate throughout: no range at all
    assert loudness.loudness_range_lu(stereo((-75, 5)), 48000) == 0.0


def test_too_short_for_a_block_says_how_long_it_was():
    with pytest.raises(AudioInputError, match=r"^0\.200 s of audio is shorter than one 0\.4 s"):
        loudness.loudness_and_range(np.zeros((2, 9600), np.float32), 48000)


@pytest.mark.parametrize("measure", [loudness.true_peak_envelope, loudness.true_peak_dbtp])
def test_true_peak_refusals_and_any_positive_rate(measure):
    x = music_like(np.random.default_rng(2), 48000, 0.5)
    with pytest.raises(AudioInputError, match=r"^sample rate must be positive, got 0$"):
        measure(x, 0)
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match=rf"^oversample must be an integer >= 1, got {bad}$"):
            measure(x, 48000, oversample=bad)
    # the interpolator works in normalised frequency: any positive rate reads the same
    np.testing.assert_array_equal(measure(x, 1), measure(x, 48000))


def test_row_bounds_are_never_under_a_rows_true_peak():
    # the sparse search skips rows whose bound is under the peak found so far: a bound under
    # a row's real maximum would lose the true peak. Loud rows (up to +12 dBFS), quiet rows,
    # alternating samples (the largest overs), and signals shorter than a row.
    rng = np.random.default_rng(9)
    signals = [rng.standard_normal((2, 20)), rng.standard_normal((1, 33))]
    for at in (32 * 6, 32 * 6 + 3):  # a silent row before a row that starts (or soon) loud
        x = np.zeros((2, 32 * 12))
        x[1, at] = 1.0
        signals.append(x)
    for _ in range(3):
        x = rng.standard_normal((2, 32 * 40)) * np.repeat(10 ** rng.uniform(-3, 0.6, 40), 32)
        x[:, 32 * 7 - 2: 32 * 7 + 2] = 3.0 * np.array([-1, 1, 1, -1])
        signals.append(x)
    for x in signals:
        x = np.asarray(x, np.float32)
        envelope = loudness.true_peak_envelope(x, 48000)
        rows = -(-x.shape[1] // 32)
        true_rows = np.pad(envelope, (0, rows * 32 - envelope.size)).reshape(rows, 32).max(axis=1)
        bounds = loudness._row_bounds(x, loudness._row_peaks(x), 4)
        assert np.all(bounds >= true_rows)
        near, far = loudness._interpolation_bounds(4)
        assert np.all(bounds <= 1.001 * np.max(near + far) * np.abs(x).max())  # finite


@pytest.mark.parametrize("n", [20, 47, 500])
def test_row_windows_are_the_interpolators_input_zero_beyond_the_signal(n):
    x = np.random.default_rng(n).standard_normal((2, n)).astype(np.float32)
    width = loudness._interpolation_matrix(4).shape[0]
    rows = np.arange(-(-n // 32))
    windows = loudness._row_windows(x, rows, width)
    for i, row in enumerate(rows):
        start = row * 32 - (loudness.TRUE_PEAK_TAPS // 2 - 1)
        expected = loudness._zero_extended(x, start, start + width)
        np.testing.assert_array_equal(windows[:, i], expected)
