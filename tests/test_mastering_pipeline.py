"""The master pipeline's paths (suggest, stored settings, refit, amounts, keep) and finalise's
gain search, on short synthetic songs: what each path renders, and what it records."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest

from automix import analysis, loudness
from automix.analysis import AudioWarning
from automix.audio import Audio
from automix.effects import render
from automix.effects.limiter import MARGIN_DB, LimiterGain
from automix.errors import SettingsError
from automix.mastering import master, render_master
from automix.mastering.finalise import (
    GAIN_SEARCH_DB,
    LOUDNESS_TOLERANCE_LU,
    MAX_GAIN_PASSES,
    PREDICTION_TOLERANCE_LU,
    _secant_search,
    capped_gain_db,
    finalise,
    gain_curve,
    gain_for_loudness,
    limited_and_measured,
)
from automix.mastering.pipeline import OFF_TARGET_LU, MasterResult, tonal_error_db
from automix.params import CompressorParams, EQParams, LimiterParams, MasterChain, as_dict
from automix.presets import Target, load_target
from automix.settings import REFINE_SECONDS, REFINE_STEPS, Amounts, MasterSettings, Reference
from conftest import music_like

SR = 44100
CEILING = -1.0


@pytest.fixture(scope="module")
def song() -> Audio:
    return Audio(music_like(np.random.default_rng(11), SR, 6.0), SR)


@pytest.fixture(scope="module")
def ref(song: Audio) -> Reference:
    bright = render.eq(song.samples, SR, EQParams(high_shelf_gain_db=4.0))
    features = analysis.analyze(bright, SR).rounded()
    return Reference("bright", "file", features, Target("ref", -14.0, CEILING, ""))


@pytest.fixture(scope="module")
def stored() -> MasterSettings:
    return MasterSettings(chain=MasterChain(eq=EQParams(peak2_gain_db=3.0),
                                            compressor=CompressorParams(threshold_db=-20.0,
                                                                        ratio=2.0)),
                          gain_db=1.5, limiter=LimiterParams(ceiling_dbtp=CEILING,
                                                             release_ms=250.0),
                          target_lufs=-14.0)


class Recorder:
    """A `BackgroundWriter` stand-in: what was written, discarded, and the samples written."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.last: Audio | None = None
        self.samples: np.ndarray | None = None

    def write(self, audio: Audio) -> None:
        self.events.append("write")
        self.last, self.samples = audio, audio.samples.copy()

    def discard(self) -> None:
        self.events.append("discard")


def _lufs(audio: Audio) -> float:
    return loudness.integrated_lufs(audio.samples, SR)


def _on_target(result: MasterResult, lufs: float) -> None:
    """Within the finalise tolerance of ``lufs``, under the ceiling by the limiter's margin,
    and the recorded analysis is the rendered audio's."""
    assert _lufs(result.audio) == pytest.approx(lufs, abs=LOUDNESS_TOLERANCE_LU + 0.01)
    assert loudness.true_peak_dbtp(result.audio.samples, SR) <= CEILING - MARGIN_DB + 0.005
    assert result.output.integrated_lufs == pytest.approx(_lufs(result.audio), abs=1e-3)


# --- run: the paths ---------------------------------------------------------------------------


def test_a_suggested_master_records_what_it_rendered(song: Audio, ref: Reference) -> None:
    import time

    writer = Recorder()
    target = Target("t", -13.0, CEILING, "")
    t0 = time.perf_counter()
    result = master(song, ref, target, writer=writer)
    wall = time.perf_counter() - t0
    _on_target(result, -13.0)
    assert result.method == "dsp" and not result.rendered_exactly
    assert result.target == target and result.reference is ref
    settings = result.settings
    assert settings.target_lufs == -13.0 and settings.limiter.ceiling_dbtp == CEILING
    assert settings.limiter.release_ms == LimiterParams().release_ms
    # the stored settings render the master exactly; the writer got that master last
    again = render_master(song, settings)
    np.testing.assert_array_equal(again.samples, result.audio.samples)
    assert again.sample_rate == result.audio.sample_rate == SR
    assert writer.last is result.audio
    np.testing.assert_array_equal(writer.samples, result.audio.samples)
    assert writer.events == ["write"]  # finalise's render is the master: not rendered again
    assert list(result.timings_s) == ["analyse", "suggest", "render"]
    assert all(v > 0 for v in result.timings_s.values())
    assert sum(result.timings_s.values()) <= wall


def test_the_record_is_what_was_rendered(song: Audio, ref: Reference) -> None:
    result = master(song, ref, Target("t", -13.0, CEILING, ""))
    d = result.to_dict()
    assert list(d) == ["method", "reference", "target", "settings", "measurements",
                       "tonal_balance_error_db", "warnings", "timings_s"]
    assert d["method"] == "dsp"
    assert d["reference"] == ref.to_dict()
    assert d["target"] == as_dict(result.target)
    assert d["settings"] == result.settings.to_dict()
    assert d["measurements"] == {"input": result.input.to_dict(),
                                 "output": result.output.to_dict()}
    ref_mid = np.asarray(ref.features.tonal_mid_db)
    for key, a in (("input", result.input), ("output", result.output)):
        mine = np.asarray(a.rounded().tonal_mid_db) - ref_mid
        mine = mine[np.isfinite(mine)]
        want = round(float(np.sqrt(np.mean((mine - mine.mean()) ** 2))), 3)
        assert d["tonal_balance_error_db"][key] == want
    assert d["warnings"] == []
    assert d["timings_s"] == {k: round(v, 3) for k, v in result.timings_s.items()}
    # the input's own warnings come first in the record
    warned = replace(result, input=replace(result.input, warnings=(
        AudioWarning("W01-test", "a test warning"),)))
    assert warned.to_dict()["warnings"] == [{"code": "W01-test", "message": "a test warning"}]


def test_the_method_and_refinement_asked_for_reach_the_suggestion(
        song: Audio, ref: Reference, monkeypatch: pytest.MonkeyPatch) -> None:
    # (the twin's refinement itself needs torch, ~15 s to import: only what reaches it here)
    from automix.mastering import pipeline

    asked, real = [], pipeline.suggest_chain
    monkeypatch.setattr(pipeline, "suggest_chain",
                        lambda *a, **k: asked.append(k) or real(*a, **k))
    target = Target("t", -14.0, CEILING, "")
    result = master(song, ref, target, method="dsp", refine_steps=3, refine_seconds=2.5)
    assert asked == [{"method": "dsp", "refine_steps": 3, "refine_seconds": 2.5}]
    assert result.method == "dsp"
    # the network is asked for, but a reference known only by its features has no audio
    # for it: the DSP matcher answers, and the record says so
    asked.clear()
    assert master(song, ref, target, method="network").method == "dsp"
    assert asked == [{"method": "network", "refine_steps": REFINE_STEPS,
                      "refine_seconds": REFINE_SECONDS}]


def test_run_renders_stored_settings_exactly_unless_asked_otherwise(
        song: Audio, ref: Reference, stored: MasterSettings) -> None:
    # `run` is what the streamed path calls too: its defaults render stored settings as they
    # are, and it finds the input's loudness for --target keep from the analysis it is given
    from automix.mastering.pipeline import InMemory, run

    a_in = analysis.analyze(song.samples, SR)
    result = run(InMemory(song), a_in, ref, load_target("keep"), settings=stored)
    assert result.rendered_exactly and result.method == "settings"
    assert result.target.integrated_lufs == round(a_in.integrated_lufs, 2)
    np.testing.assert_array_equal(result.audio.samples, render_master(song, stored).samples)
    assert list(result.timings_s) == ["render"]


def test_an_unknown_method_is_refused(song: Audio, ref: Reference) -> None:
    with pytest.raises(SettingsError, match="unknown method 'bogus'; choose dsp"):
        master(song, ref, Target("t", -14.0, CEILING, ""), method="bogus")


@pytest.mark.parametrize("gain_db,side", [(-6.0, "under"), (20.0, "over")])
def test_stored_settings_render_exactly_and_say_when_off_target(
        song: Audio, ref: Reference, stored: MasterSettings, gain_db: float, side: str) -> None:
    settings = replace(stored, gain_db=gain_db)
    writer = Recorder()
    target = Target("t", -14.0, CEILING, "")
    result = master(song, ref, target, settings=settings, writer=writer)
    assert result.method == "settings" and result.rendered_exactly
    assert result.settings is settings
    np.testing.assert_array_equal(result.audio.samples, render_master(song, settings).samples)
    np.testing.assert_array_equal(writer.samples, result.audio.samples)
    lufs = _lufs(result.audio)
    assert result.output.integrated_lufs == pytest.approx(lufs, abs=1e-3)
    assert list(result.timings_s) == ["analyse", "render"]
    off = result.output.integrated_lufs + 14.0
    assert abs(off) > 2 * OFF_TARGET_LU and (off > 0) == (side == "over")
    [w10] = [w for w in result.to_dict()["warnings"] if w["code"] == "W10-off-target"]
    assert w10["message"] == (
        f"the settings rendered as stored read {result.output.integrated_lufs:.1f} LUFS, "
        f"{abs(off):.1f} LU {side} the target's -14.0: add --refit-gain to find the gain "
        "to the target again")
    # within OFF_TARGET_LU (0.5, exact in binary) either way, stored settings say nothing
    for lufs, warned in ((-13.5, False), (-14.5, False), (-13.4, True), (-14.6, True)):
        near = replace(result, output=replace(result.output, integrated_lufs=lufs))
        assert bool(near.off_target()) == warned
    # a little over is over too
    near = replace(result, output=replace(result.output, integrated_lufs=-13.25))
    assert "-13.2 LUFS, 0.8 LU over the target's -14.0" in near.off_target()[0]["message"]


def test_refit_gain_finds_the_gain_again_and_keeps_the_rest(
        song: Audio, ref: Reference, stored: MasterSettings) -> None:
    settings = replace(stored, gain_db=-6.0)
    target = Target("t", -12.0, CEILING, "")
    result = master(song, ref, target, settings=settings, refit_gain=True)
    _on_target(result, -12.0)
    assert result.method == "settings" and not result.rendered_exactly
    assert result.settings.chain == settings.chain
    assert result.settings.limiter == settings.limiter  # the stored release too
    assert result.settings.target_lufs == -12.0
    assert result.settings.gain_db > settings.gain_db + 3
    np.testing.assert_array_equal(render_master(song, result.settings).samples,
                                  result.audio.samples)
    assert list(result.timings_s) == ["analyse", "render"]  # nothing suggested
    assert result.to_dict()["warnings"] == []  # refit: no W10 whatever


def test_amounts_scale_stored_settings_and_find_the_gain_again(
        song: Audio, ref: Reference, stored: MasterSettings) -> None:
    amounts = Amounts(eq=0.5, dynamics=0.0, width=1.0)
    target = Target("t", -14.0, CEILING, "")
    result = master(song, ref, target, settings=stored, amounts=amounts)
    _on_target(result, -14.0)
    assert result.method == "settings" and not result.rendered_exactly
    assert result.settings.chain == amounts.scale(stored.chain)
    assert result.settings.chain.eq.peak2_gain_db == pytest.approx(1.5, abs=0.01)
    assert result.settings.chain.compressor.ratio == 1.0
    assert result.settings.limiter.release_ms == 250.0


def test_amounts_scale_the_suggestion(song: Audio, ref: Reference) -> None:
    target = Target("t", -14.0, CEILING, "")
    full = master(song, ref, target)
    amounts = Amounts(eq=0.0, dynamics=0.5, width=0.0)
    scaled = master(song, ref, target, amounts=amounts, input_analysis=full.input)
    _on_target(scaled, -14.0)
    assert scaled.method == "dsp"
    assert scaled.settings.chain == amounts.scale(full.settings.chain)
    assert full.settings.chain.eq.high_shelf_gain_db > 2.0  # toward the bright reference
    assert scaled.settings.chain.eq.high_shelf_gain_db == 0.0
    # an input analysis given is not made again, nor timed
    assert scaled.input is full.input and list(scaled.timings_s) == ["suggest", "render"]


def test_keep_lands_on_the_inputs_own_loudness(song: Audio, ref: Reference) -> None:
    quiet = Audio(song.samples * np.float32(0.5), SR)
    result = master(quiet, ref, load_target("keep"))
    want = round(result.input.integrated_lufs, 2)
    assert result.target.integrated_lufs == want == result.settings.target_lufs
    _on_target(result, want)


# --- the record's rules -----------------------------------------------------------------------


class _Tonal:
    def __init__(self, mid: list[float]) -> None:
        self.tonal_mid_db = mid


def test_tonal_error_is_the_rms_of_the_offset_free_difference_over_valid_bands() -> None:
    ref_mid = np.array([0.0, 0.0, 0.0, np.nan, 0.0])
    # differences 1, 3 (the NaNs left out), offset 2 removed: RMS of -1, 1 is 1
    assert tonal_error_db(_Tonal([1.0, np.nan, 3.0, 9.0, np.inf]), ref_mid) == 1.0
    assert tonal_error_db(_Tonal([5.0, 5.0, 5.0, 1.0, 5.0]), ref_mid) == 0.0
    assert tonal_error_db(_Tonal([-4.0, 0.0, 4.0, 0.0, 0.0]), ref_mid) == \
        pytest.approx(math.sqrt(32 / 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no band in common: NaN, not numpy's empty-mean warning
        assert math.isnan(tonal_error_db(_Tonal([np.nan] * 5), ref_mid))


def test_w08_says_how_far_the_capped_master_stayed_under(song: Audio, ref: Reference) -> None:
    capped = Target("reference", -9.0, CEILING, "", max_limiting_db=2.0)
    result = master(song, ref, capped)
    out = result.output.integrated_lufs
    short = -9.0 - out
    assert short > 1.0
    [w08] = [w for w in result.to_dict()["warnings"] if w["code"] == "W08-loudness-held"]
    assert w08["message"] == (
        f"the master reads {out:.1f} LUFS, {short:.1f} LU under the reference's -9.0: "
        "reaching it would limit the loudest peak by more than 2 dB; a delivery target "
        "(--target) is reached whatever it takes")
    # within the tolerance of the reference's loudness, or over it: nothing to say
    for lufs in (-9.0 - LOUDNESS_TOLERANCE_LU / 2, -8.0):
        assert replace(result, output=replace(result.output, integrated_lufs=lufs)
                       ).loudness_held() == []
    assert replace(result, output=replace(result.output, integrated_lufs=-9.2)).loudness_held()
    # exactly the tolerance short (0 - -0.1 is 0.1 in binary too): still nothing
    at_zero = replace(result, target=replace(capped, integrated_lufs=0.0))
    short_by = lambda lufs: replace(at_zero, output=replace(result.output,  # noqa: E731
                                                            integrated_lufs=lufs))
    assert short_by(-LOUDNESS_TOLERANCE_LU).loudness_held() == []
    assert short_by(-0.11).loudness_held()
    # a delivery target (no cap) is never excused, however far the master stayed under
    uncapped = replace(result, target=replace(capped, max_limiting_db=None))
    assert uncapped.loudness_held() == []


# --- finalise and its gain search -------------------------------------------------------------


def test_capped_gain_takes_at_most_the_limit_off_the_loudest_peak() -> None:
    target = Target("r", -9.0, -1.5, "", max_limiting_db=2.0)
    assert capped_gain_db(target, -6.123456) == 6.6235  # -1.5 + 2 + 6.123456, to 1e-4
    assert capped_gain_db(replace(target, max_limiting_db=None), -6.0) is None


def test_finalise_records_the_settings_it_rendered(song: Audio) -> None:
    chain = MasterChain(eq=EQParams(low_shelf_gain_db=2.0))
    target = Target("t", -11.0, -2.0, "")
    writer = Recorder()
    settings, out, measured = finalise(song, chain, target, 120.0, writer=writer)
    assert settings.chain is chain and settings.target_lufs == -11.0
    assert settings.limiter == LimiterParams(ceiling_dbtp=-2.0, release_ms=120.0)
    assert settings.gain_db == round(settings.gain_db, 4)
    np.testing.assert_array_equal(render_master(song, settings).samples, out.samples)
    assert writer.events == ["write"] and writer.last is out  # the prediction held: one render
    assert _lufs(out) == pytest.approx(-11.0, abs=LOUDNESS_TOLERANCE_LU)
    assert measured.integrated_lufs == pytest.approx(_lufs(out), abs=1e-3)
    assert loudness.true_peak_dbtp(out.samples, SR) <= -2.0 - MARGIN_DB + 0.005


def test_a_stored_gain_is_in_decibels_where_the_limiter_is_idle(song: Audio) -> None:
    chained = render.master_chain(song.samples, SR, MasterChain())
    limiter = LimiterGain(loudness.true_peak_envelope(chained, SR), SR,
                          LimiterParams(ceiling_dbtp=CEILING))
    for gain_db in (-6.0, 3.0):  # the song peaks at -6 dBTP: +3 dB leaves the limiter idle
        np.testing.assert_array_equal(gain_curve(limiter, gain_db),
                                      np.float32(10 ** (gain_db / 20)))
        out = render_master(song, MasterSettings(gain_db=gain_db))
        assert _lufs(out) == pytest.approx(loudness.integrated_lufs(chained, SR) + gain_db,
                                           abs=1e-3)


def test_the_gain_search_starts_from_the_unlimited_gain(
        song: Audio, monkeypatch: pytest.MonkeyPatch) -> None:
    # the first gain tried lands the unlimited chain on the target; a quiet target then
    # needs one prediction and one render
    from automix.mastering import finalise as module

    starts, real = [], module.gain_for_loudness
    monkeypatch.setattr(module, "gain_for_loudness",
                        lambda *a: starts.append(a[-1]) or real(*a))
    settings, out, _ = finalise(song, MasterChain(), Target("t", -20.0, CEILING, ""))
    chained = render.master_chain(song.samples, SR, MasterChain())
    assert starts == [pytest.approx(-20.0 - loudness.integrated_lufs(chained, SR), abs=1e-3)]
    assert settings.gain_db == pytest.approx(starts[0], abs=1e-3)  # the limiter is idle
    assert _lufs(out) == pytest.approx(-20.0, abs=0.01)


def test_finalise_lands_heavy_limiting_on_the_target(song: Audio) -> None:
    # far into the limiter (this song reaches -7.8 LUFS at most) the prediction is biased:
    # the first render misses, the second takes the bias off
    writer = Recorder()
    settings, out, _ = finalise(song, MasterChain(), Target("t", -8.0, CEILING, ""),
                                writer=writer)
    assert writer.events.count("write") == 2
    assert _lufs(out) == pytest.approx(-8.0, abs=LOUDNESS_TOLERANCE_LU)
    assert loudness.true_peak_dbtp(out.samples, SR) <= CEILING - MARGIN_DB + 0.005


class _Counted(LimiterGain):
    """A `LimiterGain` that counts its full-rate curves (its `coarse` model is not counted)."""

    curves = 0

    def __call__(self, gain: float = 1.0) -> np.ndarray:
        type(self).curves += 1
        return super().__call__(gain)


@pytest.mark.parametrize("lufs,curves", [(-16.0, 1), (-9.0, 1), (-8.0, 2)])
def test_the_gain_search_meets_its_prediction_tolerance(song: Audio, lufs: float,
                                                        curves: int) -> None:
    # the coarse model is close enough that one full-rate curve does, until heavy limiting
    # (-8 LUFS: this song reaches -7.8 at most) shows its bias: one more, with it taken off
    chained = render.master_chain(song.samples, SR, MasterChain())
    envelope = loudness.true_peak_envelope(chained, SR)
    power = loudness.weighted_power(chained, SR)
    _Counted.curves = 0
    limiter = _Counted(envelope, SR, LimiterParams(ceiling_dbtp=CEILING))
    gain_db, curve, predicted = gain_for_loudness(limiter, power, SR, lufs, 0.0)
    assert _Counted.curves == curves
    assert predicted == pytest.approx(lufs, abs=PREDICTION_TOLERANCE_LU)
    assert gain_db == round(gain_db, 4)
    np.testing.assert_array_equal(curve, gain_curve(limiter, gain_db))
    # the prediction is close to what the limited chain reads
    assert loudness.integrated_lufs(chained * curve[None, :], SR) == \
        pytest.approx(lufs, abs=0.2)


def test_limited_and_measured_writes_the_trimmed_result_last(song: Audio) -> None:
    p = LimiterParams(ceiling_dbtp=CEILING)
    hot = song.samples * np.float32(4.0)
    envelope = loudness.true_peak_envelope(hot, SR)
    short = LimiterGain(envelope, SR, p)(np.float32(1.0)) * np.float32(10 ** 0.1)
    writer = Recorder()
    out, measured = limited_and_measured(hot, short, SR, p, writer)
    assert writer.events == ["write", "discard", "write"]
    assert writer.last is out
    np.testing.assert_array_equal(writer.samples, out.samples)
    assert measured.true_peak_dbtp <= CEILING
    # nothing to trim: written once
    writer = Recorder()
    full = LimiterGain(envelope, SR, p)(np.float32(1.0))
    limited_and_measured(hot, full, SR, p, writer)
    assert writer.events == ["write"]


def _linear(slope: float, offset: float, calls: list[float]):
    def lufs_at(gain_db: float) -> float:
        calls.append(gain_db)
        return offset + slope * gain_db
    return lufs_at


def test_the_secant_search_converges_on_any_slope_a_limiter_allows() -> None:
    for slope in (1.0, 0.6, 0.15):
        calls: list[float] = []
        gain, reading = _secant_search(_linear(slope, -20.37, calls), -14.0, 0.0)
        assert gain == pytest.approx(6.37 / slope, abs=PREDICTION_TOLERANCE_LU / slope + 1e-4)
        assert reading == pytest.approx(-14.0, abs=PREDICTION_TOLERANCE_LU)
        assert reading == -20.37 + slope * gain  # the reading of the gain returned
        assert gain == round(gain, 4) and calls[-1] == gain
        assert len(calls) <= 4
    calls = []
    assert _secant_search(_linear(1.0, -20.0, calls), -14.0, 6.00001) == (6.0, -14.0)
    assert calls == [6.0]  # rounded to 1e-4 before it is tried, and already there
    # a reading exactly the tolerance off (0 - -0.02 is 0.02 in binary too) is accepted
    calls = []
    assert _secant_search(_linear(1.0, -PREDICTION_TOLERANCE_LU, calls), 0.0, 0.0) == \
        (0.0, -PREDICTION_TOLERANCE_LU)
    assert calls == [0.0]


def test_the_secant_search_stops_at_its_bound_when_the_limiter_saturates() -> None:
    calls: list[float] = []

    def saturating(gain_db: float) -> float:
        calls.append(gain_db)
        return min(-20.0 + gain_db, -5.0)

    gain, reading = _secant_search(saturating, -3.0, 0.0)
    assert len(calls) == MAX_GAIN_PASSES
    assert reading == -5.0 and gain == calls[-1]
    assert max(map(abs, calls)) <= GAIN_SEARCH_DB
    assert gain == GAIN_SEARCH_DB  # the slope is 0 past -5: steps of 10x the error, bounded
    calls = []
    gain, _ = _secant_search(lambda g: calls.append(g) or max(-20.0 + g, -60.0), -90.0, 0.0)
    assert gain == -GAIN_SEARCH_DB


def test_a_search_out_of_passes_returns_the_last_gain_tried_and_its_reading() -> None:
    # 0.01 dB per dB (read as 0.1: steps of ten times the error) closes a tenth of the
    # error each pass: 0.1 LU off to start, still 0.04 off after the last pass
    calls: list[float] = []
    gain, reading = _secant_search(_linear(0.01, -20.0, calls), -19.9, 0.0)
    assert len(calls) == MAX_GAIN_PASSES and gain == calls[-1]
    assert reading == -20.0 + 0.01 * gain
    assert 0.03 < -19.9 - reading < 0.05
