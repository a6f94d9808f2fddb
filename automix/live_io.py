"""Where a live stream comes from and goes to: audio files, raw PCM pipes, audio devices.

`live.LiveMaster` processes blocks; this module feeds it blocks of a fixed size and hands
what comes out to a sink, block by block, so that a pipe or a device hears each block as soon
as it is processed. A source has a ``sample_rate``, ``channels`` and `blocks`; a sink is a
context manager with `write`, which commits its output when the stream ends well (a file:
renamed into place) and leaves nothing behind when it does not.

Raw PCM is interleaved and little-endian, in one of `PCM_FORMATS`. Audio devices go through
`pedalboard.io.AudioStream` (Linux from pedalboard 0.9.14); where it or any device is missing
the device options fail with one line.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import pedalboard.io
import soundfile as sf

from automix.audio import (
    BIT_DEPTHS,
    FORMATS,
    atomic_path,
    check_channels,
    check_format,
    check_writable,
    output_format,
    tpdf_dither,
)
from automix.errors import AudioInputError, OutputError, SettingsError, did_you_mean
from automix.files import refuse_input
from automix.live import MAX_BLOCK, MIN_BLOCK, LiveMaster
from automix.mastering.streaming import file_format_of
from automix.settings import read_master_part

AudioStream = getattr(pedalboard.io, "AudioStream", None)  # absent from older pedalboards

PCM_FORMATS = {"float32": "<f4", "s16": "<i2", "s32": "<i4"}  # name: numpy dtype


class Source(Protocol):
    sample_rate: int
    channels: int

    def blocks(self) -> Iterator[np.ndarray]: ...


class Sink(AbstractContextManager):
    def write(self, block: np.ndarray) -> None: ...


def stream(live: LiveMaster, source: Source, sink: Sink) -> int:
    """Every block of ``source`` through ``live`` into ``sink``, then the processor's last
    `LiveMaster.latency` samples; the number of samples written."""
    written = 0
    with ExitStack() as stack:
        for part in (source,) if source is sink else (source, sink):  # a device: both ends
            if isinstance(part, AbstractContextManager):
                stack.enter_context(part)
        for block in source.blocks():
            y = live.process(block)
            sink.write(y)
            written += y.shape[1]
        tail = live.flush()
        sink.write(tail)
    return written + tail.shape[1]


@dataclass
class Connection:
    """A settings file's processor with its source and sink, ready to `run`."""

    live: LiveMaster
    source: Source
    sink: Sink
    from_mix: bool  # the settings are a mix's master part
    input_name: str
    output_name: str

    def run(self) -> int:
        return stream(self.live, self.source, self.sink)


STDIO = "-"  # -i -: raw PCM on stdin; -o -: raw PCM on stdout


def connect(settings_path: Path, *, block: int, input_path: str | None = None,
            output_path: str | None = None, input_device: str | None = None,
            output_device: str | None = None, sample_rate: int | None = None,
            channels: int | None = None, pcm: str = "float32", file_format: str | None = None,
            bit_depth: int = 24, force: bool = False, stdin: BinaryIO | None = None,
            stdout: BinaryIO | None = None) -> Connection:
    """Check everything (the block size, the settings, both ends) before any audio moves.

    One input: ``input_path`` (a file, or `STDIO` for raw PCM, which needs ``sample_rate``;
    ``channels`` default 2) or ``input_device``; one output: ``output_path`` (a file, never
    the input, or `STDIO`) or ``output_device``. A file keeps its rate (nothing is resampled).
    """
    if not MIN_BLOCK <= block <= MAX_BLOCK:
        raise SettingsError(f"--block-size: expected {MIN_BLOCK} to {MAX_BLOCK} samples, "
                            f"got {block}")
    if (input_path is None) == (input_device is None):
        raise SettingsError("give one input: -i FILE, -i - (raw PCM on stdin) or "
                            "--input-device NAME")
    if (output_path is None) == (output_device is None):
        raise SettingsError("give one output: -o FILE, -o - (raw PCM on stdout) or "
                            "--output-device NAME")
    settings, from_mix = read_master_part(settings_path)
    if input_path is not None and input_path != STDIO:
        source: Source = FileSource(Path(input_path), block)
        if sample_rate is not None and sample_rate != source.sample_rate:
            raise SettingsError(f"--sample-rate {sample_rate}: {input_path} is at "
                                f"{source.sample_rate} Hz, and live does not resample")
        if channels is not None and channels != source.channels:
            raise SettingsError(f"--channels {channels}: {input_path} has {source.channels}")
    elif input_path == STDIO:
        if sample_rate is None:
            raise SettingsError("-i -: raw PCM has no header; give --sample-rate (and "
                                "--channels, --pcm unless 2 and float32)")
        source = PcmSource(stdin or sys.stdin.buffer, sample_rate=sample_rate,
                           channels=2 if channels is None else channels, pcm=pcm, block=block)
    else:
        source = DeviceStream(input_device=input_device,
                              output_device=output_device if output_path is None else None,
                              sample_rate=sample_rate, channels=channels or 2, block=block)
    sink = _sink(source, output_path, output_device, settings_path=settings_path,
                 input_path=input_path, pcm=pcm, file_format=file_format, bit_depth=bit_depth,
                 force=force, stdout=stdout, block=block)
    return Connection(LiveMaster(settings, source.sample_rate, source.channels), source, sink,
                      from_mix, _name(input_path, "stdin", input_device, pcm),
                      _name(output_path, "stdout", output_device, pcm))


def _name(path: str | None, stdio: str, device: str | None, pcm: str) -> str:
    if path == STDIO:
        return f"{stdio} ({pcm} PCM)"
    return path if path is not None else f"device {device!r}"


def _sink(source: Source, output_path: str | None, output_device: str | None, *,
          settings_path: Path, input_path: str | None, pcm: str, file_format: str | None,
          bit_depth: int, force: bool, stdout: BinaryIO | None, block: int) -> Sink:
    if output_path == STDIO:
        return PcmSink(stdout or sys.stdout.buffer, pcm)
    if output_path is None:
        if isinstance(source, DeviceStream):
            return source  # one stream, device to device
        return DeviceStream(input_device=None, output_device=output_device,
                            sample_rate=source.sample_rate, channels=source.channels,
                            block=block)
    out = Path(output_path)
    for path in (input_path, settings_path):
        if path not in (None, STDIO):
            refuse_input(out, Path(path))
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; give a file name")
    if out.exists() and not force:
        raise OutputError(f"{out}: exists; use --force to overwrite")
    chosen = output_format(out, file_format)
    check_format(chosen, bit_depth)
    check_writable(out.parent if str(out.parent) else Path("."))
    return FileSink(out, source.sample_rate, source.channels, file_format=chosen,
                    bit_depth=bit_depth)


def _checked(block: np.ndarray, where: str, start: int) -> np.ndarray:
    if not np.isfinite(block).all():
        raise AudioInputError(f"{where}: NaN or infinite samples near sample {start}")
    return block


# --- files ------------------------------------------------------------------------------------


class FileSource:
    """An audio file read ``block`` samples at a time, at its own rate."""

    def __init__(self, path: Path, block: int) -> None:
        self.path, self.block = path, block
        self.sample_rate, self.channels, self.frames = file_format_of(path)
        check_channels(path, self.channels)

    def blocks(self) -> Iterator[np.ndarray]:
        with sf.SoundFile(str(self.path)) as f:
            start = 0
            while True:
                data = f.read(self.block, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    return
                yield _checked(np.ascontiguousarray(data.T), str(self.path), start)
                start += data.shape[0]


class FileSink(Sink):
    """An audio file written block by block, atomically (16-bit: TPDF dither, seeded per
    block, as `streaming.write_blocks` does)."""

    def __init__(self, path: Path, sample_rate: int, channels: int, *, file_format: str,
                 bit_depth: int) -> None:
        self.path, self.sample_rate, self.channels = path, sample_rate, channels
        self.file_format, self.bit_depth = file_format, bit_depth
        self._blocks = 0

    def __enter__(self) -> FileSink:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._file = sf.SoundFile(tmp, "w", self.sample_rate, self.channels,
                                      subtype=BIT_DEPTHS[self.bit_depth],
                                      format=FORMATS[self.file_format])
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, block: np.ndarray) -> None:
        if self.bit_depth == 16:
            block = tpdf_dither(block, 16, seed=self._blocks)
        self._file.write(block.T)
        self._blocks += 1

    def __exit__(self, *exc: Any) -> bool | None:
        try:
            self._file.close()
        except BaseException:  # the file's last write failed: nothing is left behind
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self._atomic.__exit__(*exc)


# --- raw PCM ----------------------------------------------------------------------------------


def check_pcm(name: str) -> np.dtype:
    if name not in PCM_FORMATS:
        raise SettingsError(f"--pcm: expected {', '.join(PCM_FORMATS)}, got {name!r}"
                            + did_you_mean(name, list(PCM_FORMATS)))
    return np.dtype(PCM_FORMATS[name])


def _scale(dtype: np.dtype) -> float:
    return 1.0 if dtype.kind == "f" else float(2 ** (8 * dtype.itemsize - 1))


def decode_pcm(data: bytes, dtype: np.dtype, channels: int) -> np.ndarray:
    """Interleaved raw PCM bytes (whole frames) as (channels, samples) float32."""
    x = np.frombuffer(data, dtype=dtype).reshape(-1, channels).T
    if dtype.kind == "f":
        return np.ascontiguousarray(x, dtype=np.float32)
    return (x * np.float32(1.0 / _scale(dtype))).astype(np.float32)


def encode_pcm(block: np.ndarray, dtype: np.dtype, *, seed: int = 0) -> bytes:
    """(channels, samples) float32 as interleaved raw PCM bytes; integers clipped to full
    scale, 16 bits with TPDF dither (seeded by ``seed``)."""
    if dtype.kind == "f":
        return np.ascontiguousarray(block.T, dtype=dtype).tobytes()
    scale = _scale(dtype)
    if dtype.itemsize == 2:
        block = tpdf_dither(block, 16, seed=seed)
    ints = np.clip(np.round(block.T.astype(np.float64) * scale), -scale, scale - 1)
    return ints.astype(dtype).tobytes()


class PcmSource:
    """Raw PCM read from a binary stream (stdin), ``block`` frames at a time."""

    def __init__(self, stream: BinaryIO, *, sample_rate: int, channels: int, pcm: str,
                 block: int, name: str = "stdin") -> None:
        if sample_rate <= 0:
            raise SettingsError(f"--sample-rate: expected a positive rate in Hz, "
                                f"got {sample_rate}")
        if channels not in (1, 2):
            raise SettingsError(f"--channels: live mastering takes 1 or 2, got {channels}")
        self.sample_rate, self.channels = sample_rate, channels
        self.dtype, self.block, self.name, self._stream = check_pcm(pcm), block, name, stream

    def blocks(self) -> Iterator[np.ndarray]:
        frame = self.dtype.itemsize * self.channels
        start = 0
        while True:
            data = self._stream.read(self.block * frame)
            if not data:
                return
            whole = len(data) - len(data) % frame
            if whole:
                yield _checked(decode_pcm(data[:whole], self.dtype, self.channels), self.name,
                               start)
                start += whole // frame
            if whole < len(data):
                raise AudioInputError(f"{self.name}: ends with {len(data) - whole} bytes, not "
                                      f"a whole frame of {frame} bytes (check --channels and "
                                      "--pcm)")


class PcmSink(Sink):
    """Raw PCM written to a binary stream (stdout), flushed after every block."""

    def __init__(self, stream: BinaryIO, pcm: str, name: str = "stdout") -> None:
        self.dtype, self.name, self._stream, self._blocks = check_pcm(pcm), name, stream, 0

    def __enter__(self) -> PcmSink:
        return self

    def write(self, block: np.ndarray) -> None:
        try:
            self._stream.write(encode_pcm(block, self.dtype, seed=self._blocks))
            self._stream.flush()
        except BrokenPipeError:
            _silence(self._stream)
            raise OutputError(f"{self.name}: the reader closed the pipe") from None
        self._blocks += 1

    def __exit__(self, *exc: Any) -> None:
        return None


def _silence(stream: BinaryIO) -> None:
    """Point a closed pipe's descriptor at /dev/null, so that Python's own flush at exit
    does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


# --- audio devices ----------------------------------------------------------------------------


@contextmanager
def _interrupt_sets(event: threading.Event) -> Iterator[None]:
    """Ctrl-C (SIGINT) sets ``event`` instead of raising, while inside; only on the main
    thread, where Python runs signal handlers (elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: event.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def device_names() -> tuple[list[str], list[str]]:
    """The input and the output devices `pedalboard.io.AudioStream` sees (none without it)."""
    if AudioStream is None:
        return [], []
    return list(AudioStream.input_device_names), list(AudioStream.output_device_names)


def check_device(name: str, kind: str) -> str:
    """A device's name as `AudioStream` knows it ("default": the system's default);
    `AudioInputError` (input) or `OutputError` (output) when there is no such device."""
    error = AudioInputError if kind == "input" else OutputError
    if AudioStream is None:
        raise error(f"audio devices need pedalboard >= 0.9.14 (pedalboard.io.AudioStream); "
                    f"this one has {pedalboard.__version__}")
    names = device_names()[0 if kind == "input" else 1]
    if not names:
        raise error(f"no audio {kind} device found; use files or pipes (-i/-o, - for raw PCM)")
    if name == "default":
        name = getattr(AudioStream, f"default_{kind}_device_name") or names[0]
    if name not in names:
        raise error(f"no {kind} device {name!r}{did_you_mean(name, names)}; "
                    f"`automix live --list-devices` lists them")
    return name


class DeviceStream(Sink):
    """An `AudioStream` from an input device, to an output device, or both: a source (its
    `blocks` end at Ctrl-C) and a sink. The devices add their own buffers to the latency."""

    def __init__(self, *, input_device: str | None, output_device: str | None,
                 sample_rate: int | None, channels: int, block: int) -> None:
        self.input_device = None if input_device is None else check_device(input_device, "input")
        self.output_device = (None if output_device is None
                              else check_device(output_device, "output"))
        self.channels, self.block = channels, block
        self._stream = AudioStream(input_device_name=self.input_device,
                                   output_device_name=self.output_device,
                                   sample_rate=None if sample_rate is None else float(sample_rate),
                                   buffer_size=block, num_input_channels=channels,
                                   num_output_channels=channels)
        self.sample_rate = int(self._stream.sample_rate)
        self._entered = False

    def __enter__(self) -> DeviceStream:
        if not self._entered:  # one stream, used as the source and the sink
            self._stream.__enter__()
            self._entered = True
        return self

    def blocks(self) -> Iterator[np.ndarray]:
        """Blocks from the input device until Ctrl-C, which ends the stream (the output is
        kept: a file is written) at the next block, wherever it arrives."""
        start, stop = 0, threading.Event()
        with _interrupt_sets(stop):
            try:
                while not stop.is_set():
                    x = np.asarray(self._stream.read(self.block), dtype=np.float32)
                    yield _checked(x.reshape(self.channels, -1), f"device {self.input_device!r}",
                                   start)
                    start += self.block
            except KeyboardInterrupt:  # raised inside read: the same end
                return

    def write(self, block: np.ndarray) -> None:
        if self.output_device is not None:
            self._stream.write(np.ascontiguousarray(block, dtype=np.float32),
                               float(self.sample_rate))

    def __exit__(self, *exc: Any) -> None:
        if self._entered:
            self._entered = False
            self._stream.__exit__(*exc)
