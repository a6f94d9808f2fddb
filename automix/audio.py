"""Reading and writing audio.

One layout inside automix: ``(channels, samples)`` float32 with an explicit ``sample_rate``.
soundfile's ``(samples, channels)`` layout is converted here, at the library edge, and nowhere
else. Outputs are written atomically: to a temporary file in the destination folder, then
renamed, so that a failure never leaves a partial file or touches an existing one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.errors import AudioInputError, OutputError, SettingsError, first_line

READ_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".mp3")
FORMATS = {"wav": "WAV", "flac": "FLAC"}
BIT_DEPTHS = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}
_IO_BLOCK = 65536  # frames decoded or encoded at a time by `load` and `save`
_DECODED_BYTES_PER_FILE_BYTE = 32  # float32 samples per byte of file `load` expects at most
MIN_DURATION_S = 0.4  # one BS.1770 gating block: nothing shorter has a loudness
MAX_ABS_SAMPLE = 1e6  # 120 dB over full scale: float data beyond this is not audio (and its
# squares overflow the float32 loudness sums)
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask once: temp files get the mode a plain open() would


@dataclass(frozen=True)
class Audio:
    """Audio in automix's layout.

    Attributes
    ----------
    samples : np.ndarray, shape (channels, samples), float32
    sample_rate : int, Hz
    """

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.sample_rate


def load(path: str | os.PathLike, *, min_duration_s: float = MIN_DURATION_S,
         allow_silence: bool = False) -> Audio:
    """Read an audio file into ``(channels, samples)`` float32, at its own sample rate.

    Raises `AudioInputError` with a one-line reason for a missing, empty, unreadable,
    non-audio, too short, silent (unless ``allow_silence``: a stem may be) or non-finite file.
    """
    p = Path(path)
    if not p.exists():
        raise AudioInputError(f"{p}: no such file")
    if p.is_dir():
        raise AudioInputError(f"{p}: is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise AudioInputError(f"{p}: file is empty")
    try:
        with quiet_decoders():
            samples, sample_rate = _read_channels_first(p)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError, EOFError) as exc:
        raise AudioInputError(f"{p}: not a readable audio file ({_read_error(exc)})") from None
    if samples.shape[1] == 0:
        raise AudioInputError(f"{p}: has no samples")
    checked_peak(p, samples)
    duration = samples.shape[1] / sample_rate
    if duration < min_duration_s:
        raise AudioInputError(
            f"{p}: too short ({duration * 1000:.0f} ms; at least {min_duration_s * 1000:.0f} ms)"
        )
    if not allow_silence and not np.any(samples):
        raise AudioInputError(f"{p}: is digital silence")
    return Audio(samples, int(sample_rate))


def checked_peak(path: Path, samples: np.ndarray) -> float:
    """The largest |sample| of ``samples`` (all of a file, or a block of it), after checking
    it is audio: `AudioInputError` naming ``path`` for NaN, infinity or float data far over
    full scale (`MAX_ABS_SAMPLE`)."""
    peak = max(float(samples.max()), -float(samples.min()))  # no |x| copy of a long song
    if not np.isfinite(peak):  # max and min carry any NaN or infinity through
        raise AudioInputError(f"{path}: contains NaN or infinite samples")
    if peak > MAX_ABS_SAMPLE:
        raise AudioInputError(f"{path}: samples reach {peak:.3g} ({20 * np.log10(peak):+.0f} "
                              "dBFS); float data this far over full scale is not audio")
    return peak


def _read_channels_first(path: Path) -> tuple[np.ndarray, int]:
    """The file's samples, (channels, samples) float32, and its sample rate.

    Decoded in blocks straight into that layout: no second, transposed copy of the whole
    file (64 MB and a strided pass for 3 min of stereo). The header's frame count sizes the
    array only as far as the file's size makes it plausible (a damaged header may claim
    billions); beyond that the array grows as the decoder delivers.
    """
    with sf.SoundFile(str(path)) as f:
        plausible = _DECODED_BYTES_PER_FILE_BYTE * path.stat().st_size // (4 * f.channels)
        samples = np.empty((f.channels, max(min(f.frames, plausible), _IO_BLOCK)),
                           dtype=np.float32)
        block = np.empty((_IO_BLOCK, f.channels), dtype=np.float32)
        filled = 0
        while len(got := f.read(_IO_BLOCK, dtype="float32", always_2d=True, out=block)):
            if filled + len(got) > samples.shape[1]:
                grown = np.empty((f.channels, 2 * samples.shape[1]), dtype=np.float32)
                grown[:, :filled] = samples[:, :filled]
                samples = grown
            samples[:, filled:filled + len(got)] = got.T
            filled += len(got)
        if filled < samples.shape[1]:
            samples = np.ascontiguousarray(samples[:, :filled])
        return samples, f.samplerate


def _read_error(exc: BaseException) -> str:
    """libsndfile's reason; its "does not exist" (said of a file that exists but that no
    decoder recognises, such as text named .mp3) is reworded."""
    reason = first_line(exc)
    return "format not recognised" if "does not exist" in reason else reason


def tpdf_dither(samples: np.ndarray, bits: int, *, seed: int = 0) -> np.ndarray:
    """Add triangular (TPDF) dither of +-1 LSB at ``bits`` and quantise; shape kept.

    The result is on the ``bits`` grid, so that the integer writer that follows only
    converts and never rounds again (the dither has already decorrelated the error).
    """
    rng = np.random.default_rng(seed)
    scale = float(2 ** (bits - 1))
    shape = samples.shape
    noise = rng.random(shape, dtype=np.float32) - rng.random(shape, dtype=np.float32)
    quantised = np.round(samples * scale + noise)
    return (np.clip(quantised, -scale, scale - 1) / scale).astype(np.float32)


MAX_CHANNELS = 2  # songs and reference files are mono or stereo


def check_channels(path: Path, channels: int) -> None:
    """`AudioInputError` for more than `MAX_CHANNELS` channels.

    Folding a surround production to stereo changes it, so automix refuses rather than
    guesses; the user downmixes with the intent they have.
    """
    if channels > MAX_CHANNELS:
        raise AudioInputError(f"{path}: {channels} channels: automix masters mono or stereo; "
                              "downmix to stereo first")


def check_format(file_format: str, bit_depth: int | str, *,
                 names: tuple[str, str] = ("--format", "--bit-depth")) -> None:
    """`SettingsError` for an output format and bit depth automix does not write; ``names``
    are what the caller calls the two options (the CLI's flags, the service's fields)."""
    format_name, depth_name = names
    if file_format not in FORMATS:
        raise SettingsError(f"{format_name}: expected {' or '.join(FORMATS)}, "
                            f"got {file_format!r}")
    if bit_depth not in BIT_DEPTHS:
        raise SettingsError(f"{depth_name}: expected 16, 24 or 32, got {bit_depth!r}")
    if file_format == "flac" and bit_depth == 32:
        raise SettingsError(f"{depth_name}: FLAC stores integers only: use 16 or 24, or "
                            f"{format_name} wav")


def output_format(output: Path | None, file_format: str | None) -> str | None:
    """The format an output is written in: ``file_format`` when given, else the one its name
    ends in (``song.flac``: flac), else wav. `SettingsError` when the two disagree, or when
    the name asks for an audio format automix does not write (``song.mp3``); a
    ``file_format`` automix does not know is returned as is, for `check_format` to name."""
    suffix = output.suffix.lower() if output is not None else ""
    by_name = {f".{name}": name for name in FORMATS}.get(suffix)
    audio_name = by_name is not None or suffix in READ_EXTENSIONS
    if file_format is None:
        if audio_name and by_name is None:
            raise SettingsError(f"{output}: automix writes {' or '.join(FORMATS)}, not "
                                f"{suffix.lstrip('.')}; name the output .wav or .flac")
        return by_name or "wav"
    if file_format in FORMATS and audio_name and by_name != file_format:
        raise SettingsError(f"--format {file_format} contradicts the output's name "
                            f"{output.name}; drop --format or name it .{file_format}")
    return file_format


def save(
    path: str | os.PathLike,
    audio: Audio,
    *,
    bit_depth: int = 24,
    file_format: str = "wav",
    dither: bool = True,
) -> Path:
    """Write ``audio`` atomically; return the final path.

    ``bit_depth`` 16 applies TPDF dither as the very last step (unless ``dither`` is false);
    24 writes integer PCM; 32 writes 32-bit float. ``file_format`` is "wav" or "flac"
    (FLAC has no float: 32 is refused).
    """
    check_format(file_format, bit_depth)
    with atomic_path(Path(path)) as tmp:
        _write_samples(tmp, audio, bit_depth, file_format, dither)
    return Path(path)


class BackgroundWriter:
    """Writes audio to ``path`` as `save` does, in a thread of its own (libsndfile releases
    the GIL) while the caller goes on measuring it: `write` starts writing (dropping any
    earlier write), `commit` waits for the last one and moves it into place, raising what
    `save` would; `discard` drops it. Audio given to `write` must not change until the next
    `write`, `commit` or `discard`."""

    def __init__(self, path: str | os.PathLike, *, bit_depth: int = 24,
                 file_format: str = "wav", dither: bool = True) -> None:
        check_format(file_format, bit_depth)
        self.path = Path(path)
        self._options = (bit_depth, file_format, dither)
        self._thread: threading.Thread | None = None
        self._tmp = ""
        self._error: BaseException | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def write(self, audio: Audio) -> None:
        self.discard()
        self._tmp, self._error = _temporary_beside(self.path), None
        self._thread = threading.Thread(target=self._run, args=(self._tmp, audio), daemon=True)
        self._thread.start()

    def _run(self, tmp: str, audio: Audio) -> None:
        try:
            _write_samples(tmp, audio, *self._options)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by commit
            self._error = exc

    def commit(self) -> Path:
        if self._thread is None:
            raise RuntimeError("commit before write")
        self._thread.join()
        self._thread = None
        with _moved_into_place(self._tmp, self.path):
            if self._error is not None:
                raise self._error
        return self.path

    def discard(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            _remove_quietly(self._tmp)


def _write_samples(tmp: str, audio: Audio, bit_depth: int, file_format: str,
                   dither: bool) -> None:
    samples = audio.samples
    if bit_depth == 16 and dither:
        samples = tpdf_dither(samples, 16)
    as_codes = bit_depth == 24 and file_format == "wav"
    if as_codes and _fits_plain_wav24(samples.shape):
        _write_wav24(tmp, samples, audio.sample_rate)
        return
    with sf.SoundFile(tmp, "w", audio.sample_rate, samples.shape[0],
                      subtype=BIT_DEPTHS[bit_depth], format=FORMATS[file_format]) as f:
        for frames in _interleaved(samples, as_codes):
            f.write(frames)


def _interleaved(samples: np.ndarray, as_codes: bool) -> Iterator[np.ndarray]:
    """``samples`` (channels, samples) as interleaved (frames, channels) blocks of up to
    `_IO_BLOCK` frames, float32 or, ``as_codes``, int32 24-bit WAV codes (`_wav24_codes`); one
    buffer reused, so each block is valid until the next. No transposed copy of the whole
    file (writing the transposed view took twice as long)."""
    block = np.empty((_IO_BLOCK, samples.shape[0]), dtype=np.int32 if as_codes else np.float32)
    for start in range(0, samples.shape[1], _IO_BLOCK):
        part = samples[:, start:start + _IO_BLOCK]
        frames = block[: part.shape[1]]
        frames[:] = (_wav24_codes(part) if as_codes else part).T
        yield frames


def _fits_plain_wav24(shape: tuple[int, int]) -> bool:
    """Whether libsndfile writes 24-bit WAV of ``shape`` (channels, samples) with the plain
    44-byte header that `_write_wav24` writes: one or two channels, under 4 GiB."""
    return shape[0] <= 2 and 36 + 3 * shape[0] * shape[1] + 1 <= 0xFFFFFFFF


def _write_wav24(path: str, samples: np.ndarray, sample_rate: int) -> None:
    """24-bit PCM WAV of ``samples`` (channels, samples; see `_fits_plain_wav24`), byte for
    byte what libsndfile writes from the same floats (`_wav24_codes`): the 44-byte header,
    interleaved little-endian frames, a pad byte after data of odd length. Packed here in
    numpy: libsndfile's own packing and small writes took three times as long."""
    channels, frames = samples.shape
    data = 3 * channels * frames
    pad = data % 2
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data + pad, b"WAVE", b"fmt ", 16,
                         1, channels, sample_rate, 3 * channels * sample_rate, 3 * channels, 24,
                         b"data", data)
    with open(path, "wb") as f:
        f.write(header)
        for codes in _interleaved(samples, as_codes=True):
            f.write(_packed24(codes))
        f.write(b"\0" * pad)


def _packed24(codes: np.ndarray) -> bytes:
    """The top 24 bits of int32 ``codes`` (any shape, C order), 3 little-endian bytes each:
    four codes at a time into three 32-bit words (shifts, not a 3-byte strided copy)."""
    top = codes.reshape(-1).view(np.uint32) >> 8
    whole = top.size // 4 * 4
    quads = top[:whole].reshape(-1, 4)
    words = np.empty((quads.shape[0], 3), dtype="<u4")
    words[:, 0] = quads[:, 0] | quads[:, 1] << 24
    words[:, 1] = quads[:, 1] >> 8 | quads[:, 2] << 16
    words[:, 2] = quads[:, 2] >> 16 | quads[:, 3] << 8
    rest = top[whole:].astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3]
    return words.tobytes() + rest.tobytes()


def _wav24_codes(x: np.ndarray) -> np.ndarray:
    """libsndfile's float to 24-bit WAV conversion, in numpy (a quarter of the writing time
    less than its per-sample lrintf): each sample times 2**31, rounded half to even and held
    to the int32 range, as float32 of the same shape; written as int32, whose top 24 bits
    libsndfile keeps, as it does of its own rounding. The same bytes (tested)."""
    scaled = x * np.float32(2.0**31)
    np.rint(scaled, out=scaled)
    return np.clip(scaled, -(2.0**31), 2147483520.0, out=scaled)  # the largest float32 < 2**31


class _QuietStderr:
    """File descriptor 2 pointed at /dev/null while any thread is inside (see
    `quiet_decoders`): the first to enter saves the real one, the last to leave puts it back.
    (Each saving and restoring on its own, a reference decoded in a thread beside the song
    could save the other's /dev/null and restore it for good: every later warning and error
    line was lost.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._saved: int | None = None

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._saved = _redirect_stderr_to_devnull()
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0 and self._saved is not None:
                os.dup2(self._saved, 2)
                os.close(self._saved)
                self._saved = None


def _redirect_stderr_to_devnull() -> int | None:
    """Point file descriptor 2 at /dev/null; return a copy of what it was (None: no stderr)."""
    try:
        saved = os.dup(2)
    except OSError:
        return None
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
    finally:
        os.close(devnull)
    return saved


_quiet_stderr = _QuietStderr()


def quiet_decoders() -> _QuietStderr:
    """Silence what C decoders print on file descriptor 2 (libmpg123's "Note: Trying to
    resync..."): automix reports a bad file in one line of its own. Safe to use from several
    threads at once."""
    return _quiet_stderr


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[str]:
    """Yield a temporary path beside ``dest``; on success rename it to ``dest``.

    On any failure (Ctrl-C included) the temporary file is removed and ``dest`` is left as it
    was; I/O errors become a one-line `OutputError` ("disk full" for ENOSPC).
    """
    tmp = _temporary_beside(dest)
    with _moved_into_place(tmp, dest):
        yield tmp


@contextlib.contextmanager
def _moved_into_place(tmp: str, dest: Path) -> Iterator[None]:
    """Run the block, then rename ``tmp`` to ``dest``; on any failure remove ``tmp`` instead
    (I/O errors become a one-line `OutputError`, "disk full" for ENOSPC)."""
    try:
        yield
        os.replace(tmp, dest)
    except (OSError, sf.LibsndfileError, RuntimeError) as exc:
        _remove_quietly(tmp)
        raise _write_error(dest, exc) from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def _temporary_beside(dest: Path) -> str:
    """A new, empty file beside ``dest`` with ordinary permissions, for writing ``dest``."""
    folder = dest.parent  # Path("song.wav").parent is Path(".")
    check_folder(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write here ({exc.strerror})") from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
    except OSError as exc:
        _remove_quietly(tmp)
        raise _write_error(dest, exc) from None
    return tmp


def _write_error(dest: Path, exc: BaseException) -> OutputError:
    reason = "disk full" if getattr(exc, "errno", None) == errno.ENOSPC else first_line(exc)
    return OutputError(f"{dest}: could not write ({reason})")


def check_folder(folder: Path) -> None:
    """`OutputError` unless ``folder`` is an existing folder."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: not a folder (a file has this name)")
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist")


def check_writable(folder: Path) -> None:
    """`OutputError` unless a file can be created in ``folder``: checked before any work, by
    creating one (permission bits say nothing when running as root)."""
    check_folder(folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".automix-probe.", suffix=".part", dir=folder)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write here ({exc.strerror})") from None
    os.close(fd)
    _remove_quietly(probe)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a text file (a JSON sidecar, a settings file, a report) atomically."""
    dest = Path(path)
    folder = dest.parent  # Path("song.wav").parent is Path(".")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=folder)
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, dest)
    except OSError as exc:
        if tmp is not None:
            _remove_quietly(tmp)
        reason = "disk full" if exc.errno == errno.ENOSPC else exc.strerror
        raise OutputError(f"{dest}: could not write ({reason})") from None
    except BaseException:  # Ctrl-C, or a batch worker stopped by SIGTERM
        if tmp is not None:
            _remove_quietly(tmp)
        raise
    return dest


@contextmanager
def all_or_nothing() -> Iterator[list[Path]]:
    """Collect the paths one run writes (append each as it is written); if the run then fails
    (any exception, Ctrl-C included) remove them again, folders only when left empty, so that
    a failed run leaves no partial set of outputs."""
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        for path in reversed(written):
            if path.is_dir():
                try:
                    path.rmdir()
                except OSError:
                    pass
            else:
                _remove_quietly(str(path))
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
