"""Features of a production on synthetic signals where physics gives the answer."""

import json
import math
from dataclasses import replace

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import freqz, lfilter

from automix import analysis, loudness
from automix.analysis import BAND_CENTERS_HZ, BAND_EDGES_HZ
from automix.errors import AudioInputError
from conftest import DATA_DIR

MIXES = DATA_DIR / "mixes"  # $AUTOMIX_DATA (see conftest)


def noise(seconds: float, sample_rate: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((channels, round(seconds * sample_rate)))).astype(np.float32)


def pink(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Noise with power density falling as 1/f (equal power per octave), shape (samples,)."""
    white = noise(seconds, sample_rate, channels=1, seed=seed)[0]
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(white.size, 1 / sample_rate)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    x = np.fft.irfft(spectrum, white.size)
    return (0.1 * x / np.std(x)).astype(np.float32)


def sine(amplitude: float, seconds: float, sample_rate: int, freq_hz: float = 1000.0):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def peaking_biquad(center_hz: float, gain_db: float, q: float, sample_rate: int):
    """RBJ cookbook peaking EQ, (b, a)."""
    a_gain = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * center_hz / sample_rate
    alpha = np.sin(w0) / (2 * q)
    b = [1 + alpha * a_gain, -2 * np.cos(w0), 1 - alpha * a_gain]
    a = [1 + alpha / a_gain, -2 * np.cos(w0), 1 - alpha / a_gain]
    return np.array(b) / a[0], np.array(a) / a[0]


def slope_db_per_octave(levels_db: np.ndarray, lowest_hz: float = 60.0) -> float:
    keep = (BAND_CENTERS_HZ >= lowest_hz) & np.isfinite(levels_db)
    return float(np.polyfit(np.log2(BAND_CENTERS_HZ[keep]), levels_db[keep], 1)[0])


def codes(a: analysis.Analysis) -> set[str]:
    return {w.code for w in a.warnings}


def test_band_centres_are_the_28_iso_third_octaves():
    assert len(BAND_CENTERS_HZ) == 28
    assert BAND_CENTERS_HZ[0] == 31.5 and BAND_CENTERS_HZ[-1] == 16000
    # adjacent bands share an edge and each nominal centre lies inside its band
    np.testing.assert_allclose(BAND_EDGES_HZ[1, :-1], BAND_EDGES_HZ[0, 1:])
    assert np.all((BAND_EDGES_HZ[0] < BAND_CENTERS_HZ) & (BAND_CENTERS_HZ < BAND_EDGES_HZ[1]))


def test_tonal_balance_is_unchanged_by_gain():
    x = noise(10, 44100)
    x[1] = 0.7 * x[0] + 0.3 * x[1]
    quiet, loud = analysis.analyze(x, 44100), analysis.analyze(2.0 * x, 44100)
    assert loud.integrated_lufs - quiet.integrated_lufs == pytest.approx(6.02, abs=0.01)
    np.testing.assert_allclose(loud.tonal_mid_db, quiet.tonal_mid_db, atol=0.05)
    np.testing.assert_allclose(loud.tonal_side_db, quiet.tonal_side_db, atol=0.05)


def test_pink_noise_is_flat_and_white_noise_rises_3_db_per_octave():
    white = analysis.tonal_balance_db(noise(20, 44100, channels=1)[0], 44100, 0.0)
    flat = analysis.tonal_balance_db(pink(20, 44100), 44100, 0.0)
    assert slope_db_per_octave(white) == pytest.approx(10 * math.log10(2), abs=0.2)
    assert slope_db_per_octave(flat) == pytest.approx(0.0, abs=0.2)
    # white noise: band power = density x bandwidth, in every band down to 31.5 Hz
    density_db = 10 * np.log10(0.1**2 / 22050)
    bandwidth_db = 10 * np.log10(BAND_EDGES_HZ[1] - BAND_EDGES_HZ[0])
    np.testing.assert_allclose(white, density_db + bandwidth_db, atol=0.5)


def test_a_peak_eq_raises_its_band_by_the_filters_mean_power_gain():
    sample_rate = 44100
    x = noise(30, sample_rate, channels=1)[0]
    b, a = peaking_biquad(1000.0, 6.0, 1.0, sample_rate)
    before = analysis.tonal_balance_db(x, sample_rate, 0.0)
    after = analysis.tonal_balance_db(lfilter(b, a, x), sample_rate, 0.0)
    for band in (15, 3):  # 1 kHz, where the filter acts, and 63 Hz, where it does not
        freqs = np.linspace(*BAND_EDGES_HZ[:, band], 200)
        response = np.abs(freqz(b, a, worN=freqs, fs=sample_rate)[1]) ** 2
        expected_db = 10 * np.log10(np.mean(response))  # white noise: equal weight per Hz
        assert after[band] - before[band] == pytest.approx(expected_db, abs=0.2)
    assert after[15] - before[15] > 5.0


def test_width_and_correlation_of_basic_stereo_images():
    x = noise(5, 44100)
    identical = analysis.analyze(np.stack([x[0], x[0]]), 44100)
    independent = analysis.analyze(x, 44100)
    inverted = analysis.analyze(np.stack([x[0], -x[0]]), 44100)
    assert identical.width == 0.0 and identical.correlation == 1.0
    assert independent.width == pytest.approx(1.0, abs=0.05)
    assert independent.correlation == pytest.approx(0.0, abs=0.05)
    assert inverted.correlation == pytest.approx(-1.0, abs=1e-6)
    assert inverted.width == analysis.WIDTH_MAX == inverted.to_dict()["width"]
    assert "W09-phase" in codes(inverted) and "W09-phase" not in codes(independent)
    # side bands of independent channels sit at the mid level in every band (wide bands:
    # the few bins of the lowest ones scatter by about 1 dB over 5 s)
    wide = BAND_CENTERS_HZ >= 250
    side, mid = np.array(independent.tonal_side_db), np.array(independent.tonal_mid_db)
    np.testing.assert_allclose(side[wide], mid[wide], atol=0.5)


def test_analysing_together_measures_each_signal_as_alone():
    song, ref = noise(3.0, 44100, seed=1), 0.5 * noise(2.0, 48000, channels=1, seed=2)[0]
    together = analysis.analyze_many([(song, 44100), (ref, 48000)])
    assert together == [analysis.analyze(song, 44100), analysis.analyze(ref, 48000)]
    with pytest.raises(AudioInputError, match="shorter than one 0.4 s"):
        analysis.analyze_many([(song, 44100), (song[:, :1000], 44100)])


def test_mono_input_is_measured_as_one_channel():
    x = sine(0.5, 3, 44100)
    mono = analysis.analyze(x, 44100)
    assert mono.channels == 1 and mono.width == 0.0 and mono.correlation == 1.0
    assert mono.integrated_lufs == pytest.approx(loudness.amp_to_db(0.5) - 3.01, abs=0.05)
    assert "W05-mono" in codes(mono)
    assert max(mono.tonal_side_db) < -150  # no side signal at all


@pytest.mark.parametrize("sample_rate", [8000, 44100, 96000])
def test_sample_rates_measure_alike_and_mark_bands_past_nyquist(sample_rate):
    x = np.stack([sine(0.25, 3, sample_rate), sine(0.25, 3, sample_rate, 500.0)])
    a = analysis.analyze(x, sample_rate)
    assert a.integrated_lufs == pytest.approx(
        loudness.integrated_lufs(x, 44100 if sample_rate == 44100 else sample_rate), abs=1e-9
    )
    valid = BAND_EDGES_HZ[1] <= 0.9 * sample_rate / 2
    assert np.array_equal(np.isfinite(a.tonal_mid_db), valid)
    assert valid.all() == (sample_rate > 8000)
    assert a.duration_s == pytest.approx(3.0)
    loudest = int(np.nanargmax(a.tonal_mid_db))
    assert BAND_CENTERS_HZ[loudest] in (500, 1000)


def test_to_dict_is_strict_json_with_rounded_values_and_null_bands():
    a = analysis.analyze(noise(3, 8000), 8000)
    d = a.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["integrated_lufs"] == round(a.integrated_lufs, 2)
    assert d["bands"]["centers_hz"] == list(BAND_CENTERS_HZ)
    assert len(d["bands"]["mid_db"]) == len(d["bands"]["side_db"]) == 28
    assert d["bands"]["mid_db"][-1] is None and d["bands"]["mid_db"][0] is not None
    assert d["sample_rate"] == 8000 and d["channels"] == 2


def test_dynamics_fields_follow_their_definitions():
    a = analysis.analyze(noise(5, 44100), 44100)
    assert a.crest_db == pytest.approx(a.sample_peak_dbfs - a.rms_dbfs)
    assert a.plr_db == pytest.approx(a.true_peak_dbtp - a.integrated_lufs)
    assert a.rms_dbfs == pytest.approx(-20.0, abs=0.05)  # std 0.1
    assert a.true_peak_dbtp >= a.sample_peak_dbfs


def test_clean_sine_raises_no_clipping_or_dc_warning():
    x = np.stack([sine(0.5, 3, 44100), sine(0.5, 3, 44100, 1500.0)])
    assert not codes(analysis.analyze(x, 44100)) & {"W01-clipping", "W04-dc-offset"}


def test_clipped_sine_warns_about_clipping():
    x = np.clip(sine(1.5, 3, 44100, 100.0), -1.0, 1.0)
    a = analysis.analyze(np.stack([x, x]), 44100)
    assert "W01-clipping" in codes(a)
    # 300 cycles, each with a clipped crest and trough, in two channels
    assert "1200 runs" in next(w.message for w in a.warnings if w.code == "W01-clipping")


def test_dc_offset_warns():
    x = sine(0.3, 3, 44100)
    assert "W04-dc-offset" in codes(analysis.analyze(np.stack([x + 0.05, x]), 44100))
    assert "W04-dc-offset" not in codes(analysis.analyze(np.stack([x + 0.005, x]), 44100))


def test_identical_channels_warn_mono_and_independent_do_not():
    x = noise(3, 44100)
    assert "W05-mono" in codes(analysis.analyze(np.stack([x[0], x[0]]), 44100))
    assert "W05-mono" not in codes(analysis.analyze(x, 44100))


def test_level_and_peak_warnings():
    n = np.arange(44100 * 3)
    over = 1.2 * np.sin(np.pi * n / 2 + np.pi / 4)  # samples at 0.85, true peak +1.6 dBTP
    a = analysis.analyze(np.stack([over, over]).astype(np.float32), 44100)
    assert {"W03-true-peak-over", "W07-inter-sample-peaks"} <= codes(a)
    quiet = analysis.analyze(0.002 * noise(3, 44100), 44100)
    assert "W06-quiet" in codes(quiet) and "W03-true-peak-over" not in codes(quiet)
    squashed = np.tanh(20 * noise(3, 44100)) * 0.98  # hard-driven: peaks at the loudness
    assert "W02-limited" in codes(analysis.analyze(squashed, 44100))
    # pink noise (a mix's spectrum) with Gaussian peaks: PLR about 12 dB. White noise would
    # trip the PLR rule, since K-weighting reads its treble louder than its RMS.
    open_noise = np.stack([pink(3, 44100, seed=1), pink(3, 44100, seed=2)])
    assert "W02-limited" not in codes(analysis.analyze(open_noise, 44100))


def test_every_warning_has_a_numbered_code_and_one_sentence():
    x = np.clip(sine(1.5, 3, 44100, 100.0), -1, 1) + 0.05
    a = analysis.analyze(np.stack([x, x]), 44100)
    assert len(a.warnings) >= 4
    for w in a.warnings:
        assert w.code[0] == "W" and w.code[1:3].isdigit()
        assert w.message.endswith(".") and w.message.count(". ") == 0


def test_tonal_balance_error_counts_only_bands_that_matter_in_the_reference():
    base = analysis.analyze(noise(3, 44100), 44100)
    assert analysis.tonal_balance_error_db(base, base) == 0.0
    a = replace(base, tonal_mid_db=(0.0,) * 27 + (math.nan,))
    b = replace(base, tonal_mid_db=(1.0,) * 20 + (-3.0,) * 3 + (-100.0,) * 5)
    # bands 0-19 differ by 1 dB, 20-22 by 3 dB; 23-26 are 101 dB down; 27 is NaN in a
    expected = math.sqrt((20 * 1.0 + 3 * 9.0) / 23)
    assert analysis.tonal_balance_error_db(a, b) == pytest.approx(expected)
    c = replace(base, tonal_side_db=tuple(v + 2.0 for v in base.tonal_side_db))
    assert analysis.tonal_balance_error_db(c, base, side=True) == pytest.approx(2.0)
    assert analysis.tonal_balance_error_db(c, base) == 0.0


@pytest.mark.data
@pytest.mark.skipif(not MIXES.is_dir(), reason="real-music folder absent")
def test_a_real_mix_reads_like_a_finished_production():
    import soundfile

    path = min(MIXES.glob("*.flac"))
    data, sample_rate = soundfile.read(path, frames=60 * 44100, dtype="float32", always_2d=True)
    a = analysis.analyze(data.T, sample_rate)
    meter = pyloudnorm.Meter(sample_rate, filter_class="DeMan")
    expected = meter.integrated_loudness(data.astype(np.float64))
    assert a.integrated_lufs == pytest.approx(expected, abs=0.05)
    assert -35 < a.integrated_lufs < -3
    assert 0 <= a.loudness_range_lu < 30
    assert a.true_peak_dbtp >= a.sample_peak_dbfs
    assert 0.0 < a.width < 2.0 and -1.0 <= a.correlation <= 1.0
    assert np.all(np.isfinite(a.tonal_mid_db))


# --- properties a mutation run (tools/mutation.py analysis) showed untested ---

def test_dict_round_trip_keeps_every_field_and_warning():
    x = np.clip(sine(1.5, 3, 8000, 100.0), -1, 1)
    a = analysis.analyze(np.stack([x + 0.05, x]), 8000)
    assert {"W01-clipping", "W04-dc-offset"} <= codes(a)
    exact = a.to_dict(digits=None)
    assert exact["integrated_lufs"] == a.integrated_lufs  # unrounded
    assert type(exact["width"]) is float
    back = analysis.Analysis.from_dict(exact)
    assert back.to_dict(digits=None) == exact and back.warnings == a.warnings
    assert math.isnan(back.tonal_mid_db[-1])  # null bands read back as NaN
    rounded = a.rounded()
    assert rounded.crest_db == round(a.crest_db, 2) and rounded.warnings == a.warnings
    assert rounded.tonal_side_db[3] == round(a.tonal_side_db[3], 2)
    assert analysis.band_values([1.5, None, -2]).tolist()[::2] == [1.5, -2.0]
    assert math.isnan(analysis.band_values([None])[0])
    assert analysis.band_values([1, 2]).dtype == np.float64
    old_sidecar = {k: v for k, v in exact.items() if k != "warnings"}
    assert analysis.Analysis.from_dict(old_sidecar).warnings == ()


def test_float64_input_is_measured_as_float32():
    x = noise(2, 44100)
    assert (analysis.analyze(x.astype(np.float64), 44100).to_dict(digits=None)
            == analysis.analyze(x, 44100).to_dict(digits=None))


def test_moments_equal_numpy_over_uneven_blocks():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5000)) * [[0.1], [0.3], [0.2]] + [[0.5], [-0.2], [0.05]]
    x[:, 0] = [4.0, -3.0, 2.0]  # the first sample counts
    moments = analysis.Moments(3)
    for start, stop in ((0, 1), (1, 700), (700, 701), (701, 5000)):
        moments.push(x[:, start:stop])
    of = analysis.Moments.of(x)
    for m in (moments, of):
        assert m.n == 5000
        np.testing.assert_allclose(m.mean, x.mean(axis=1), rtol=1e-12)
        centred = x - x.mean(axis=1, keepdims=True)
        np.testing.assert_allclose(m.scatter, centred @ centred.T, rtol=1e-10)
        w = np.array([0.5, -1.5, 2.0])
        assert m.rms(w) == pytest.approx(np.sqrt(np.mean((w @ x) ** 2)), rel=1e-10)
        assert m.overall_rms() == pytest.approx(np.sqrt(np.mean(x**2)), rel=1e-10)
        mid, side = m.mid_side_rms()  # of the first two channels only
        assert mid == pytest.approx(np.sqrt(np.mean((0.5 * (x[0] + x[1])) ** 2)), rel=1e-10)
        assert side == pytest.approx(np.sqrt(np.mean((0.5 * (x[0] - x[1])) ** 2)), rel=1e-10)
        assert m.correlation() == pytest.approx(np.corrcoef(x[0], x[1])[0, 1], rel=1e-10)


def test_correlation_of_constant_channels():
    both = analysis.Moments.of(np.full((2, 100), 0.3))
    assert both.correlation() == 1.0  # both constant: the same (mono) signal
    for one in (np.stack([np.full(100, 0.3), np.sin(np.arange(100.0))]),
                np.stack([np.sin(np.arange(100.0)), np.full(100, 0.3)])):
        assert analysis.Moments.of(one).correlation() == 0.0  # either channel constant
    mono = analysis.Moments.of(np.full((1, 10), 0.5))
    assert mono.mid_side_rms() == (pytest.approx(0.5), 0.0)
    assert analysis.width_ratio(0.0, 0.0) == 0.0  # silence has no width
    assert analysis.width_ratio(0.0, 0.1) == analysis.WIDTH_MAX


def test_clipped_runs_are_three_or_more_samples_at_or_above_the_clip_level():
    x = np.zeros((2, 64))
    x[0, 10:13] = -1.0  # three samples: a clip
    x[0, 20:22] = 1.0  # two: not a clip
    x[0, 30:34] = analysis.CLIP_LEVEL  # exactly at the level, four samples: a clip
    x[1, 0:3] = 1.0  # a run from the first sample
    x[1, 50:53] = 0.998  # under the level
    assert analysis.count_clips(x) == 3
    assert analysis.count_clips(np.array([[1.0, 1, 1, 0, 0, 1, 1, 1, 0]])) == 2  # two runs of 3
    y = np.zeros((2, 100), np.float32)
    y[1, 5] = -0.9  # a negative peak is the peak
    moments, peak_dbfs, clips = analysis._sample_statistics(y, 44100)
    assert peak_dbfs == pytest.approx(loudness.amp_to_db(0.9)) and clips == 0


def warnings_of(**fields) -> tuple[analysis.AudioWarning, ...]:
    clips, dc = fields.pop("clips", 0), fields.pop("dc", 0.0)
    values = dict(channels=2, integrated_lufs=-14.0, true_peak_dbtp=-1.0, sample_peak_dbfs=-1.5,
                  crest_db=12.0, plr_db=13.0, width=0.5, correlation=0.5) | fields
    base = analysis.analyze(noise(1, 8000), 8000)
    return analysis.input_warnings(replace(base, **values), clips, np.array([dc, 0.0]))


@pytest.mark.parametrize(("fields", "code", "warns"), [
    ({"clips": 3}, "W01-clipping", False),
    ({"clips": 4}, "W01-clipping", True),
    ({"plr_db": 8.0}, "W02-limited", False),
    ({"plr_db": 7.9, "crest_db": 12.0, "sample_peak_dbfs": -10.0}, "W02-limited", True),
    ({"crest_db": 5.0, "sample_peak_dbfs": -3.0}, "W02-limited", False),
    ({"crest_db": 6.0, "sample_peak_dbfs": -0.5}, "W02-limited", False),
    ({"crest_db": 5.0, "sample_peak_dbfs": -1.0}, "W02-limited", True),
    ({"true_peak_dbtp": 0.0}, "W03-true-peak-over", False),
    ({"dc": 0.01}, "W04-dc-offset", False),
    ({"dc": 0.0101}, "W04-dc-offset", True),
    ({"width": 1e-3}, "W05-mono", True),
    ({"width": 1.1e-3}, "W05-mono", False),
    ({"channels": 1, "width": 0.0}, "W05-mono", True),
    ({"integrated_lufs": -40.0}, "W06-quiet", False),
    ({"true_peak_dbtp": -2.0, "sample_peak_dbfs": -3.0}, "W07-inter-sample-peaks", False),
    ({"correlation": -0.3, "width": 3.0}, "W09-phase", False),
    ({"correlation": -0.5, "width": 2.0}, "W09-phase", False),
    ({"correlation": -0.5, "width": 1.0}, "W09-phase", False),
    ({"correlation": 0.5, "width": 3.0}, "W09-phase", False),
    ({"correlation": -0.5, "width": 3.0}, "W09-phase", True),
])
def test_each_warning_starts_just_past_its_threshold(fields, code, warns):
    assert (code in {w.code for w in warnings_of(**fields)}) == warns


def test_warning_messages_in_full():
    found = {w.code: w.message for w in warnings_of(
        clips=4, plr_db=6.5, crest_db=5.2, true_peak_dbtp=0.5, sample_peak_dbfs=-1.0, dc=0.05,
        width=4.0, correlation=-0.9, integrated_lufs=-45.0)}
    found.update({w.code: w.message for w in warnings_of(width=0.0)})
    assert found == {
        "W01-clipping": "4 runs of 3 or more samples sit at full scale: the input is clipped.",
        "W02-limited": "Peak-to-loudness ratio 6.5 dB, crest factor 5.2 dB: the input looks "
                       "already limited, leaving little room for dynamics processing.",
        "W03-true-peak-over": "True peak +0.50 dBTP is above 0 dBTP: converters and lossy "
                              "encoders will clip it.",
        "W04-dc-offset": "A DC offset of 0.050 (full scale 1) wastes headroom.",
        "W05-mono": "The input is mono (one channel or identical channels): width settings "
                    "have nothing to work on.",
        "W06-quiet": "Integrated loudness -45.0 LUFS is below -40 LUFS: the input is very quiet "
                     "or nearly silent.",
        "W07-inter-sample-peaks": "Inter-sample peaks reach 1.5 dB above the sample peak: "
                                  "sample-peak meters under-read this input.",
        "W09-phase": "Left and right cancel (correlation -0.90, side 12 dB above mid): one "
                     "channel looks polarity-inverted, and the mono sum loses most of the "
                     "music; flip one channel before mastering.",
    }


def test_tonal_error_skips_bands_missing_in_either_and_keeps_one_exactly_60_db_down():
    base = analysis.analyze(noise(1, 44100), 44100)
    a = replace(base, tonal_mid_db=(math.nan,) + (0.0,) * 27)
    b = replace(base, tonal_mid_db=(5.0,) + (1.0,) * 26 + (-59.0,))
    # band 0 is NaN in a (b's loudest), band 27 is exactly 60 dB under b's loudest band
    expected = math.sqrt((26 * 1.0 + 59.0**2) / 27)
    assert analysis.tonal_balance_error_db(a, b) == pytest.approx(expected)


def test_band_matrix_splits_bins_by_their_overlap_with_each_band():
    freqs = np.fft.rfftfreq(2048, 1 / 44100)  # 21.5 Hz bins: wider than the lowest bands
    m = analysis.band_matrix(freqs)
    assert m.shape == (28, freqs.size) and m.dtype == np.float32
    assert np.all((m >= 0) & (m <= 1))
    bin_hz = freqs[1]
    # each band's bins add up to its width, whether bins are wider or narrower than it
    np.testing.assert_allclose(m.sum(axis=1) * bin_hz, BAND_EDGES_HZ[1] - BAND_EDGES_HZ[0],
                               rtol=1e-5)
    lo, hi = BAND_EDGES_HZ[:, 20]
    inside = (freqs - bin_hz / 2 >= lo) & (freqs + bin_hz / 2 <= hi)
    assert inside.sum() > 10 and np.all(m[20, inside] == 1.0)
    lo, hi = BAND_EDGES_HZ[:, 0]  # 27.8-35.1 Hz against bin 1's 10.8-32.3 Hz
    assert m[0, 1] == pytest.approx((min(1.5 * bin_hz, hi) - max(0.5 * bin_hz, lo)) / bin_hz,
                                    rel=1e-5)


def test_loudest_excerpt_finds_the_loud_part_and_stays_inside_the_signal():
    sr = 8000
    x = noise(10, sr, seed=3) * 0.01
    x[:, 6 * sr: 8 * sr] *= 100  # the chorus
    assert analysis.loudest_excerpt(x, sr, 2.0) == (6 * sr, 8 * sr)
    start, end = analysis.loudest_excerpt(x, sr, 0.2)  # shorter than one half-second hop
    assert end - start == 1600 and 6 * sr <= start < 8 * sr and start % (sr // 2) == 0
    assert analysis.loudest_excerpt(x, sr, 12.0) == (0, 10 * sr)  # longer than the song
    x[:, 9 * sr:] *= 1000  # louder still at the very end: the excerpt ends with the song
    assert analysis.loudest_excerpt(x, sr, 3.0) == (7 * sr, 10 * sr)
    energy = np.array([0.0, 1.0, 5.0, 1.0])
    assert analysis.loudest_span(energy, 10, 40, 20) == (10, 30)
    assert analysis.loudest_span(energy, 10, 40, 10) == (20, 30)  # one hop
    assert analysis.loudest_span(np.array([1.0, 1.0, 1.0, 9.0]), 10, 40, 15) == (25, 40)
    assert analysis.loudest_span(energy, 10, 45, 45) == (0, 45)


@pytest.mark.parametrize(("seconds", "sample_rate"), [(3.0, 44100), (0.15, 48000)])
def test_mid_side_spectra_are_welchs_estimate(seconds, sample_rate):
    # Hann, 50 % overlap, no detrending, density scaling: scipy's Welch on mid and side, for
    # more frames than one transform batch and for a signal shorter than one segment
    from scipy.signal import welch

    x = noise(seconds, sample_rate, channels=3, seed=7)
    x[1] = 0.6 * x[0] + 0.4 * x[1]  # mid and side of different levels
    freqs, mid, side = analysis._mid_side_psd(x, sample_rate)
    segment = min(analysis.welch_segment(sample_rate), x.shape[1])
    for signal, ours in ((0.5 * (x[0] + x[1]), mid), (0.5 * (x[0] - x[1]), side)):
        f, expected = welch(signal.astype(np.float64), sample_rate, window="hann",
                            nperseg=segment, noverlap=segment // 2, detrend=False)
        np.testing.assert_allclose(freqs, f)
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-12 * expected.max())


def test_band_power_integrates_the_psd_over_each_band():
    # each bin holds its density over [f - bin/2, f + bin/2]: a band's power is the bins'
    # overlap with it (band_matrix) times their density, whatever the density's shape
    freqs = np.fft.rfftfreq(4096, 1 / 32000)
    psd = np.random.default_rng(3).random(freqs.size) * np.linspace(1, 0.01, freqs.size)
    psd[150:300] = 0.0  # an empty stretch, 1.2-2.3 kHz: the 1.6 and 2 kHz bands
    expected = analysis.band_matrix(freqs).astype(np.float64) @ psd * freqs[1]
    ours = analysis.band_power_db(freqs, psd, 32000, -3.0)
    valid = np.isfinite(ours)
    assert valid.sum() == 27 and not valid[-1]  # the 16 kHz band reaches past 0.9 x Nyquist
    full = valid & (expected > 0)
    np.testing.assert_allclose(ours[full], 10 * np.log10(expected[full]) + 3.0, atol=1e-4)
    empty = valid & (expected == 0)
    assert empty.any() and np.all(ours[empty] == analysis.BAND_POWER_FLOOR_DB + 3.0)


def test_welch_power_sums_every_frame_of_a_long_block():
    # the streamed master passes a block's frames at once: more than one batch of transforms
    frames = np.random.default_rng(8).standard_normal((40, 256))
    window = analysis.welch_window(256)
    expected = np.sum(np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2, axis=0)
    np.testing.assert_allclose(analysis.welch_power(frames, window), expected, rtol=1e-12)


def plucks(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Decaying plucks (a tone and a 5-ms click, 30-ms decay) every 0.45 s, stereo, dry."""
    rng = np.random.default_rng(seed)
    x = np.zeros(round(seconds * sample_rate))
    length = round(0.4 * sample_rate)
    t = np.arange(length) / sample_rate
    for start_s in np.arange(0.1, seconds - 0.5, 0.45):
        start = round(start_s * sample_rate)
        tone = 0.5 * np.sin(2 * np.pi * rng.uniform(150, 900) * t)
        click = 0.5 * rng.standard_normal(length) * np.exp(-t / 0.005)
        x[start:start + length] += (tone + click) * np.exp(-t / 0.03) * rng.uniform(0.5, 1.0)
    x = 0.3 * x / np.abs(x).max()
    return np.stack([x, x]).astype(np.float32)


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_reverb_tail_rises_with_the_reverb_send(sample_rate):
    import pedalboard

    dry = plucks(6.0, sample_rate)
    tails = [analysis.reverb_tail_db(dry, sample_rate)]
    for wet_db in (-40, -25, -15, -6):
        verb = pedalboard.Reverb(room_size=0.6, wet_level=10 ** (wet_db / 20), dry_level=1.0)
        tails.append(analysis.reverb_tail_db(verb(dry, sample_rate), sample_rate))
    assert tails[0] < -18.0  # dry plucks: their late window holds only the 30-ms decay's end
    steps = np.diff(tails[1:])
    assert np.all(steps > 1.0), tails  # each louder send rings > 1 dB longer
    assert tails[1] >= tails[0] - 0.1  # a -40 dB send is all but dry


def test_reverb_tail_finds_every_pluck_and_is_gain_free():
    dry = plucks(6.0, 44100)
    hop = round(analysis.ONSET_FRAME_MS * 44.1)
    n = dry.shape[1] // hop
    energy = (dry.sum(axis=0)[:n * hop].reshape(n, hop) ** 2).sum(axis=1)
    assert len(analysis.onset_frames(energy)) == len(np.arange(0.1, 5.5, 0.45))
    assert analysis.reverb_tail_db(0.1 * dry, 44100) == pytest.approx(
        analysis.reverb_tail_db(dry, 44100), abs=1e-6)
    assert math.isnan(analysis.reverb_tail_db(np.zeros((2, 44100)), 44100))
