"""The live block processor equals the offline render, delayed by its reported latency."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_bad_inputs import assert_one_line_error
from typer.testing import CliRunner

from automix import live_io
from automix.audio import Audio, load
from automix.cli import app
from automix.live import LiveMaster, latency_samples, render_blocks
from automix.mastering.finalise import render_master
from automix.params import (
    CompressorParams,
    EQParams,
    HighpassParams,
    LimiterParams,
    MasterChain,
    StemChain,
    StereoWidthParams,
)
from automix.settings import MasterSettings, MixSettings, write_document
from conftest import ROOT

runner = CliRunner()

SETTINGS = MasterSettings(
    chain=MasterChain(highpass=HighpassParams(30.0),
                      eq=EQParams(peak2_gain_db=3.0, high_shelf_gain_db=2.0),
                      compressor=CompressorParams(threshold_db=-20.0, ratio=3.0, attack_ms=5.0,
                                                  release_ms=80.0, makeup_db=2.0),
                      width=StereoWidthParams(120.0)),
    gain_db=8.0, limiter=LimiterParams(ceiling_dbtp=-1.0))


@pytest.fixture(scope="module")
def excerpt() -> np.ndarray:
    song = load(ROOT / "examples" / "dirty_love.flac")
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


# --- the command and its ends: files, raw PCM pipes, devices ------------------------------------

LATENCY_44K = 427  # latency_samples(44100), as the command reports it


@pytest.fixture(scope="module")
def clip(tmp_path_factory, excerpt) -> Path:
    """3 s of the example song as a float WAV (the very samples the offline render gets)."""
    path = tmp_path_factory.mktemp("live") / "dirty love.wav"
    sf.write(path, excerpt.T, 44100, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def offline(clip) -> np.ndarray:
    return render_master(load(clip), SETTINGS).samples


@pytest.fixture(scope="module")
def settings_file(tmp_path_factory) -> Path:
    """Settings as `automix suggest` writes them: the values under "settings"."""
    path = tmp_path_factory.mktemp("settings") / "song.json"
    write_document(path, {"automix": "test", "settings": SETTINGS.to_dict()})
    return path


def _live(*args: object):
    return runner.invoke(app, ["live", *map(str, args)], env={"COLUMNS": "2000"})


def _shifted_error(streamed: np.ndarray, offline: np.ndarray, latency: int) -> float:
    """The largest difference between a stream and the offline render delayed by
    ``latency`` samples of silence."""
    assert streamed.shape == (offline.shape[0], offline.shape[1] + latency)
    return float(np.abs(streamed - np.pad(offline, ((0, 0), (latency, 0)))).max())


@pytest.mark.parametrize("block", [64, 100, 256, 2048])
def test_command_file_to_file_equals_offline_render(tmp_path, clip, offline, settings_file,
                                                   block):
    out = tmp_path / "live.wav"
    result = _live("--settings", settings_file, "-i", clip, "-o", out, "--block-size", block,
                   "--bit-depth", 32)
    assert result.exit_code == 0, result.output
    assert f"latency {LATENCY_44K} samples (9.68 ms)" in result.output
    assert "fixed gain +8.00 dB" in result.output
    streamed, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == 44100
    assert _shifted_error(streamed.T, offline, LATENCY_44K) < 1e-4


def test_command_takes_a_mix_settings_master_part(tmp_path, clip, offline):
    mix = tmp_path / "mix.yaml"
    write_document(mix, {"settings": MixSettings(stems={"bass.wav": StemChain()},
                                                 master=SETTINGS).to_dict()})
    out = tmp_path / "live.flac"
    result = _live("--settings", mix, "-i", clip, "-o", out)
    assert result.exit_code == 0, result.output
    assert "the mix's master part" in result.output
    streamed, _ = sf.read(out, dtype="float32", always_2d=True)
    assert _shifted_error(streamed.T, offline, LATENCY_44K) < 1e-4  # 24-bit FLAC: 1e-7 steps


@pytest.mark.parametrize("pcm,bound", [("float32", 1e-4), ("s16", 1e-4)])
def test_raw_pcm_pipe_stdin_to_stdout(clip, excerpt, settings_file, pcm, bound):
    dtype = np.dtype(live_io.PCM_FORMATS[pcm])
    sent = live_io.encode_pcm(excerpt, dtype)
    heard = live_io.decode_pcm(sent, dtype, 2)  # what the command gets (s16: quantised)
    offline = render_master(Audio(heard, 44100), SETTINGS).samples
    proc = subprocess.run(
        [sys.executable, "-m", "automix", "live", "--settings", str(settings_file), "-i", "-",
         "-o", "-", "--sample-rate", "44100", "--channels", "2", "--pcm", pcm,
         "--block-size", "128"],
        input=sent, capture_output=True, cwd=ROOT, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "2000"})
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"latency 427 samples" in proc.stderr
    streamed = live_io.decode_pcm(proc.stdout, dtype, 2)  # stdout holds nothing but PCM
    # s16 out: TPDF dither, at most 1.5 LSB (4.6e-5) from the float render
    assert _shifted_error(streamed, offline, LATENCY_44K) < bound


class FakeStream:
    """`pedalboard.io.AudioStream` with one input and one output device, in memory."""

    input_device_names = ["Mic"]
    output_device_names = ["Speakers"]
    default_input_device_name = "Mic"
    default_output_device_name = "Speakers"
    recorded: np.ndarray = np.zeros((2, 0), np.float32)

    def __init__(self, input_device_name=None, output_device_name=None, sample_rate=None,
                 buffer_size=None, num_input_channels=1, num_output_channels=2):
        self.sample_rate = sample_rate or 44100.0
        self.played, self.position, self.running = [], 0, False
        FakeStream.last = self

    def __enter__(self):
        self.running = True
        return self

    def __exit__(self, *exc):
        self.running = False

    def read(self, n):
        assert self.position < FakeStream.recorded.shape[1], "read on after Ctrl-C"
        self.position += n
        if self.position >= FakeStream.recorded.shape[1]:  # the user's Ctrl-C, mid-read
            os.kill(os.getpid(), signal.SIGINT)
        return FakeStream.recorded[:, self.position - n:self.position]

    def write(self, audio, sample_rate):
        assert self.running and sample_rate == self.sample_rate
        self.played.append(np.array(audio))


def test_devices_through_audio_stream(monkeypatch, tmp_path, clip, excerpt, offline,
                                      settings_file):
    monkeypatch.setattr(live_io, "AudioStream", FakeStream)
    result = _live("--settings", settings_file, "-i", clip, "--output-device", "Speakers")
    assert result.exit_code == 0, result.output
    played = np.concatenate(FakeStream.last.played, axis=1)
    assert _shifted_error(played, offline, LATENCY_44K) < 1e-4
    assert not FakeStream.last.running  # the stream is closed at the end
    # device to device ("default" both ways): every block read, the last one during Ctrl-C
    # included, then the tail
    FakeStream.recorded = excerpt[:, :256 * 100]
    result = _live("--settings", settings_file, "--device", "default", "--block-size", 256)
    assert result.exit_code == 0, result.output
    played = np.concatenate(FakeStream.last.played, axis=1)
    expect = render_master(Audio(FakeStream.recorded, 44100), SETTINGS).samples
    assert _shifted_error(played, expect, LATENCY_44K) < 1e-4


def test_listing_devices_and_no_device(monkeypatch, clip, settings_file):
    monkeypatch.setattr(live_io, "AudioStream", FakeStream)
    listed = _live("--list-devices")
    assert listed.exit_code == 0 and "input devices: Mic" in listed.output
    assert_one_line_error(_live("--settings", settings_file, "-i", clip, "--output-device",
                                "Speakrs"), "no output device 'Speakrs' (did you mean")
    monkeypatch.setattr(FakeStream, "output_device_names", [])
    assert_one_line_error(_live("--settings", settings_file, "-i", clip, "--device", "default"),
                          "no audio output device found")


@pytest.mark.parametrize("args,fragment", [
    (["--block-size", "32"], "--block-size: expected 64 to 2048 samples, got 32"),
    (["--block-size", "4096"], "--block-size: expected 64 to 2048 samples, got 4096"),
    (["--settings", None], "--settings: required"),
    (["--settings", "missing.json"], "no such settings file"),
    (["--settings", "bad"], "not valid json"),
    (["-i", "not audio"], "not a readable audio file"),
    (["-i", "-"], "give --sample-rate"),
    (["-i", "-", "--sample-rate", "44100", "--pcm", "f32"], "--pcm: expected"),
    (["-o", "input"], "refusing to write over the input"),
    (["-o", "exists"], "exists; use --force"),
    (["-i", None], "give one input"),
])
def test_bad_requests_are_one_line(tmp_path, clip, settings_file, args, fragment):
    files = {"missing.json": tmp_path / "missing.json", "not audio": tmp_path / "notes.wav",
             "bad": tmp_path / "bad.json", "input": clip, "exists": tmp_path / "old.wav"}
    files["not audio"].write_text("not a wav")
    files["bad"].write_text("{not json")
    files["exists"].write_bytes(b"keep")
    given = {"--settings": str(settings_file), "-i": str(clip), "-o": str(tmp_path / "o.wav")}
    for name, value in zip(args[::2], args[1::2], strict=True):
        given[name] = None if value is None else str(files.get(value, value))
    before = clip.read_bytes()
    result = _live(*[x for name, value in given.items() if value is not None
                     for x in (name, value)])
    assert_one_line_error(result, fragment)
    assert clip.read_bytes() == before and files["exists"].read_bytes() == b"keep"
    assert not (tmp_path / "o.wav").exists()


def test_api_block_processor(settings_file, excerpt, offline):
    import automix

    live = automix.live_master(settings_file, 44100)
    assert isinstance(live, automix.LiveMaster) and live.latency == LATENCY_44K
    streamed = render_blocks(live, excerpt, [512])
    assert _shifted_error(streamed, offline, LATENCY_44K) < 1e-4


def test_interrupted_file_leaves_nothing(monkeypatch, tmp_path, clip, settings_file):
    calls = []

    def interrupted(self, block):
        calls.append(block.shape[1])
        if len(calls) == 20:
            raise KeyboardInterrupt
        return block

    monkeypatch.setattr(LiveMaster, "process", interrupted)
    result = _live("--settings", settings_file, "-i", clip, "-o", tmp_path / "live.wav")
    assert result.exit_code == 130 and "no partial output" in result.output
    assert len(calls) == 20 and list(tmp_path.iterdir()) == []
