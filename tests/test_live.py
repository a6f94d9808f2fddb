"""The live block processor equals the offline render, delayed by its reported latency."""

import numpy as np
import pytest

from automix.audio import Audio, load
from automix.live import LiveMaster, latency_samples, render_blocks
from automix.mastering.finalise import render_master
from automix.params import (
    CompressorParams,
    EQParams,
    HighpassParams,
    LimiterParams,
    MasterChain,
    StereoWidthParams,
)
from automix.settings import MasterSettings

SETTINGS = MasterSettings(
    chain=MasterChain(highpass=HighpassParams(30.0),
                      eq=EQParams(peak2_gain_db=3.0, high_shelf_gain_db=2.0),
                      compressor=CompressorParams(threshold_db=-20.0, ratio=3.0, attack_ms=5.0,
                                                  release_ms=80.0, makeup_db=2.0),
                      width=StereoWidthParams(120.0)),
    gain_db=8.0, limiter=LimiterParams(ceiling_dbtp=-1.0))


@pytest.fixture(scope="module")
def excerpt() -> np.ndarray:
    song = load("examples/dirty_love.flac")
    return song.samples[:, 5 * song.sample_rate: 8 * song.sample_rate]


@pytest.mark.parametrize("sizes", [[128], [256], [37, 1000, 129], [3000, 64, 2047, 5]])
def test_live_equals_offline_after_latency(excerpt, sizes):
    offline = render_master(Audio(excerpt, 44100), SETTINGS).samples
    live = LiveMaster(SETTINGS, 44100, 2)
    streamed = render_blocks(live, excerpt, sizes)
    assert np.abs(streamed[:, :live.latency]).max() == 0.0
    assert np.abs(streamed[:, live.latency:] - offline).max() < 1e-4


def test_latency_is_under_10_ms_at_48k():
    assert 1e3 * latency_samples(48000) / 48000 <= 10.0
