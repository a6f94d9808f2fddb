"""The mastering chain and the DSP matcher on synthetic signals where the answer is known."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pedalboard as pb
import pytest

from automix import analysis, loudness
from automix.audio import Audio
from automix.effects import biquad, render
from automix.effects.limiter import MARGIN_DB
from automix.errors import SettingsError
from automix.mastering import master, render_master
from automix.mastering.finalise import GAIN_SEARCH_DB
from automix.mastering.match import fit_eq
from automix.params import CompressorParams, EQParams, MasterChain, ranges
from automix.presets import Target
from automix.settings import MasterSettings, Reference
from conftest import music_like

SR = 44100


@pytest.fixture(scope="module")
def song() -> Audio:
    return Audio(music_like(np.random.default_rng(7), SR, 12.0), SR)


def _reference(x: np.ndarray) -> Reference:
    features = analysis.analyze(x, SR).rounded()
    return Reference("synthetic", "file", features,
                     Target("ref", features.integrated_lufs, -1.0, ""))


def test_eq_fit_moves_tonal_balance_to_a_known_eq(song: Audio) -> None:
    known = EQParams(low_shelf_gain_db=4.0, peak2_gain_db=-3.0, peak2_freq_hz=1500.0,
                     high_shelf_gain_db=3.0, high_shelf_freq_hz=6000.0)
    ref = render.eq(song.samples, SR, known)
    a_in = analysis.analyze(song.samples, SR)
    a_ref = analysis.analyze(ref, SR)
    highpass, fitted = fit_eq(a_in.rounded(), a_ref.rounded(), SR)
    chain = MasterChain(highpass=highpass, eq=fitted)
    a_out = analysis.analyze(render.master_chain(song.samples, SR, chain), SR)
    before = analysis.tonal_balance_error_db(a_in, a_ref)
    after = analysis.tonal_balance_error_db(a_out, a_ref)
    assert before > 1.5
    assert after < 0.35 * before
    # Parameters are not unique (a peak can stand in for a shelf); the response is.
    f = analysis.BAND_CENTERS_HZ[2:-2]
    want = biquad.magnitude_db(biquad.eq_sections(known, SR), f, SR)
    got = biquad.magnitude_db([biquad.first_order_highpass(highpass.freq_hz, SR)] * 2
                              + biquad.eq_sections(fitted, SR), f, SR)
    err = (got - got.mean()) - (want - want.mean())
    assert np.sqrt(np.mean(err**2)) < 0.6


def test_compressor_plugins_leave_out_only_exact_identities(song: Audio):
    # A master's compressor is often off (ratio 1) and its make-up 0 dB: JUCE's gain is then
    # x ** 0 = 1 and the make-up a product by 1, so leaving them out changes no bit.
    x = song.samples
    for threshold_db in (0.0, -40.0):
        off = CompressorParams(threshold_db=threshold_db, ratio=1.0, attack_ms=1.0)
        assert render.compressor_plugins(off) == []
        full = render.process([pb.Compressor(threshold_db=threshold_db, ratio=1.0,
                                             attack_ms=1.0, release_ms=off.release_ms),
                               pb.Gain(gain_db=0.0)], x, SR)
        np.testing.assert_array_equal(render.compressor(x, SR, off), full)
        np.testing.assert_array_equal(full, x)
    kinds = [type(p) for p in render.compressor_plugins(CompressorParams(makeup_db=2.0))]
    assert kinds == [pb.Gain]
    kinds = [type(p) for p in render.compressor_plugins(CompressorParams(ratio=2.0))]
    assert kinds == [pb.Compressor]


def test_rendering_without_channel_threads_changes_no_bit(song: Audio):
    # choose_compressor renders its candidates two at a time, each in one thread: the
    # channels' boards carry their own state, so one thread or two give the same samples.
    plugins = (render.eq_plugins(EQParams(peak2_gain_db=3.0))
               + render.compressor_plugins(CompressorParams(threshold_db=-20.0, ratio=4.0)))
    assert song.samples.shape[1] >= 1 << 16  # long enough for a thread per channel
    np.testing.assert_array_equal(render.process(plugins, song.samples, SR, threads=False),
                                  render.process(plugins, song.samples, SR))


def test_stacked_eq_sections_respond_as_the_listed_ones_bit_for_bit():
    # The EQ fit evaluates every section kind at once (shelves of both kinds, three peaks,
    # parameters of shape (batch, 1)); its response must be the one section at a time.
    rng = np.random.default_rng(3)
    batch = {name: r.denormalize(rng.uniform(size=(6, 1)))
             for name, r in ranges(EQParams).items()}
    eq = EQParams(**batch)
    highpass = biquad.first_order_highpass(np.full((6, 1), 35.0), SR, xp=biquad.SMOOTH)
    f = analysis.BAND_CENTERS_HZ
    listed = biquad.magnitude_db([highpass, highpass]
                                 + biquad.eq_sections(eq, SR, xp=biquad.SMOOTH), f, SR)
    stacked = biquad.stack_sections([highpass, highpass,
                                     biquad.eq_cascade(eq, SR, xp=biquad.SMOOTH)])
    assert stacked[0][0].shape == (6, 7)
    np.testing.assert_array_equal(biquad.magnitude_db([stacked], f, SR), listed)


@pytest.mark.parametrize("target_lufs,ceiling", [(-14.0, -1.0), (-9.0, -1.0), (-23.0, -2.0)])
def test_master_hits_loudness_and_true_peak(song: Audio, target_lufs: float,
                                            ceiling: float) -> None:
    ref = _reference(render.eq(song.samples, SR, EQParams(high_shelf_gain_db=4.0)))
    result = master(song, ref, Target("t", target_lufs, ceiling, ""))
    out = result.audio.samples
    assert loudness.integrated_lufs(out, SR) == pytest.approx(target_lufs, abs=0.5)
    # under the ceiling by the limiter's own margin, not just under it
    assert loudness.true_peak_dbtp(out, SR) <= ceiling - MARGIN_DB + 0.005
    # the fitted EQ moves the tonal balance toward the reference's (a +4 dB high shelf): by
    # a margin against the input where the limiter is light, and against the same master
    # without its EQ always (heavy limiting at -9 LUFS moves the balance away by itself)
    before = analysis.tonal_balance_error_db(result.input, ref.features)
    after = analysis.tonal_balance_error_db(result.output, ref.features)
    settings = result.settings
    flat = render_master(song, replace(settings, chain=replace(settings.chain, eq=EQParams())))
    without_eq = analysis.tonal_balance_error_db(analysis.analyze(flat.samples, SR),
                                                 ref.features)
    assert before > 2.0
    assert after < without_eq - 0.5
    if target_lufs <= -14.0:
        assert after < before - (1.5 if target_lufs <= -23.0 else 0.3)


def test_settings_round_trip_renders_identical_audio(song: Audio) -> None:
    ref = _reference(render.eq(song.samples, SR, EQParams(peak1_gain_db=5.0)))
    first = master(song, ref, Target("t", -12.0, -1.0, ""))
    text = json.dumps(first.settings.to_dict())
    again = render_master(song, MasterSettings.from_dict(json.loads(text)))
    np.testing.assert_array_equal(again.samples, first.audio.samples)


@pytest.mark.parametrize("data,message", [
    ({"chain": {"eq": {"peak1_gain_db": 30}}}, "out of range [-12, 12] dB"),
    ({"chain": {"eq": {"bogus": 1}}}, "unknown parameter 'bogus'"),
    ({"chain": {"reverb": {}}}, "unknown section 'reverb'"),
    ({"gain_db": "loud"}, "expected a number"),
    ({"limiter": {"ceiling_dbtp": 3}}, "out of range [-9, 0] dBTP"),
    ({"volume": 1}, "unknown key 'volume'"),
])
def test_bad_settings_name_the_allowed_range(data: dict, message: str) -> None:
    with pytest.raises(SettingsError) as exc:
        MasterSettings.from_dict(data)
    assert message in str(exc.value)


def test_default_chain_is_only_the_subsonic_high_pass(song: Audio) -> None:
    # At their defaults EQ, compressor and width are exact identities: only the 10 Hz
    # high-pass acts, and it costs less than 0.3 dB in the 63 Hz band.
    chain = MasterChain()
    out = render.master_chain(song.samples, SR, chain)
    np.testing.assert_allclose(out, render.highpass(song.samples, SR, chain.highpass), atol=1e-6)
    a, b = analysis.analyze(song.samples, SR), analysis.analyze(out, SR)
    diff = np.array(b.tonal_mid_db[3:]) - np.array(a.tonal_mid_db[3:])
    assert np.nanmax(np.abs(diff - np.nanmean(diff))) < 0.3


def test_a_reference_file_is_analysed_once_per_cache_until_it_changes(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    from automix.references import ReferenceCache, resolve_reference

    path = tmp_path / "ref.wav"
    sf.write(path, music_like(np.random.default_rng(5), 44100, 3.0).T, 44100, subtype="FLOAT")
    calls = []
    real = analysis.analyze
    monkeypatch.setattr(analysis, "analyze", lambda *a: calls.append(1) or real(*a))
    cache = ReferenceCache()
    first = resolve_reference(str(path), cache=cache)
    again = resolve_reference(str(path), cache=cache)
    assert len(calls) == 1 and again == first and again.features.integrated_lufs < -5
    resolve_reference(str(path))  # no cache: nothing is kept between calls
    assert len(calls) == 2
    louder = music_like(np.random.default_rng(5), 44100, 3.0) * np.float32(2.0)
    sf.write(path, louder.T, 44100, subtype="FLOAT")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))  # a new modification time
    changed = resolve_reference(str(path), cache=cache)
    assert len(calls) == 3
    assert changed.features.integrated_lufs == pytest.approx(
        again.features.integrated_lufs + 6.02, abs=0.05)


def test_the_sidecar_times_each_stage_of_a_master(tmp_path) -> None:
    # timings_s: read, analyse (with the reference file's analysis), suggest, render; each
    # stage is inside the call's own wall time, so their sum is too
    import time

    import soundfile as sf

    from automix.files import master_file
    from automix.settings import MasterOptions

    song_path, ref_path = tmp_path / "song.wav", tmp_path / "ref.wav"
    sf.write(song_path, music_like(np.random.default_rng(3), SR, 6.0).T, SR, subtype="FLOAT")
    sf.write(ref_path, music_like(np.random.default_rng(4), SR, 6.0).T, SR, subtype="FLOAT")
    t0 = time.perf_counter()
    report = master_file(song_path, MasterOptions(reference=str(ref_path)))
    wall = time.perf_counter() - t0
    timings = report["timings_s"]
    assert list(timings) == ["read", "analyse", "suggest", "render"]
    assert all(v > 0 for v in timings.values()) and sum(timings.values()) <= wall
    sidecar = json.loads((tmp_path / "song_master.json").read_text())
    assert sidecar["timings_s"] == timings


def test_finalise_trims_the_residue_it_measures(song: Audio) -> None:
    # `limited_and_measured` takes its residue trim from the true peak its analysis reads:
    # a curve that limits 2 dB too little leaves a residue, and the result comes back trimmed
    # under the ceiling, its analysis read after the trim.
    from automix.effects.limiter import limiter_gain
    from automix.mastering.finalise import limited_and_measured
    from automix.params import LimiterParams

    p = LimiterParams(ceiling_dbtp=-1.0)
    hot = song.samples * np.float32(4.0)
    short = limiter_gain(loudness.true_peak_envelope(hot, SR), SR, p) * np.float32(10 ** 0.1)
    assert loudness.true_peak_dbtp(hot * short[None, :], SR) > -1.0 + 1.5
    out, measured = limited_and_measured(hot, short, SR, p, None)
    assert -1.02 <= loudness.true_peak_dbtp(out.samples, SR) <= -1.0
    assert measured.true_peak_dbtp == pytest.approx(loudness.true_peak_dbtp(out.samples, SR),
                                                    abs=1e-3)


def test_a_target_the_limiter_cannot_reach_ends_the_search(song: Audio) -> None:
    """Clicks a second apart cannot be made -3 LUFS under a -1 dBTP ceiling: each dB of gain
    soon adds nothing, and the search used to run its gain to overflow. It stops within its
    bound instead, and the master is still under the ceiling."""
    clicks = np.zeros((2, 8 * SR), np.float32)
    clicks[:, ::SR] = 0.5
    result = master(Audio(clicks, SR), _reference(song.samples), Target("t", -3.0, -1.0, ""))
    assert np.isfinite(result.audio.samples).all()
    assert loudness.true_peak_dbtp(result.audio.samples, SR) <= -1.0 + 0.005
    assert result.settings.gain_db <= GAIN_SEARCH_DB


def test_a_reference_files_loudness_is_followed_only_as_far_as_light_limiting(
        song: Audio) -> None:
    """A reference file's target carries `max_limiting_db`: the master stops where the
    limiter would take more than that off the loudest true peak, reads quieter than the
    reference and says so (W08); a delivery target without it is reached."""
    capped = Target("reference", -9.0, -1.0, "", max_limiting_db=2.0)
    result = master(song, _reference(song.samples), capped)
    chained = render.master_chain(song.samples, SR, result.settings.chain)
    peak = loudness.true_peak_dbtp(chained, SR)
    assert result.settings.gain_db == pytest.approx(-1.0 + 2.0 - peak, abs=0.05)
    lufs = loudness.integrated_lufs(result.audio.samples, SR)
    assert lufs < -9.0 - 1.0
    assert loudness.true_peak_dbtp(result.audio.samples, SR) <= -1.0 + 0.005
    codes = [w["code"] for w in result.to_dict()["warnings"]]
    assert "W08-loudness-held" in codes
    reached = master(song, _reference(song.samples), replace(capped, max_limiting_db=None))
    assert loudness.integrated_lufs(reached.audio.samples, SR) == pytest.approx(-9.0, abs=0.5)
    assert "W08-loudness-held" not in [w["code"] for w in reached.to_dict()["warnings"]]
