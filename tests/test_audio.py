"""Audio I/O: formats, layouts, bit depths, dither, atomic writes and clear errors."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from automix.audio import Audio, load, quiet_decoders, save, tpdf_dither
from automix.errors import AudioInputError, OutputError


def _sine(sr: int, channels: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([amp * np.sin(2 * np.pi * (440 + 110 * c) * t) for c in range(channels)])


@pytest.mark.parametrize("fmt,subtype,ext", [
    ("WAV", "PCM_16", "wav"), ("WAV", "PCM_24", "wav"), ("WAV", "FLOAT", "wav"),
    ("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"), ("AIFF", "PCM_16", "aiff"),
    ("MP3", "MPEG_LAYER_III", "mp3"),
])
@pytest.mark.parametrize("channels", [1, 2])
def test_reads_formats_in_one_layout(tmp_path: Path, fmt: str, subtype: str, ext: str,
                                     channels: int) -> None:
    sr = 44100
    x = _sine(sr, channels)
    path = tmp_path / f"x.{ext}"
    sf.write(path, x.T, sr, format=fmt, subtype=subtype)
    audio = load(path)
    assert audio.samples.dtype == np.float32
    assert audio.channels == channels and audio.sample_rate == sr
    lossy = fmt in ("OGG", "MP3")
    if not lossy:
        assert audio.samples.shape == x.shape
        assert np.max(np.abs(audio.samples - x)) < 1e-3
    else:  # codecs add delay/padding: compare the level instead
        assert abs(np.sqrt(np.mean(audio.samples**2)) - np.sqrt(np.mean(x**2))) < 0.02


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 96000, 192000])
def test_sample_rate_is_kept(tmp_path: Path, sr: int) -> None:
    src = tmp_path / "in.wav"
    sf.write(src, _sine(sr, 2).T, sr, subtype="PCM_24")
    audio = load(src)
    out = save(tmp_path / "out.wav", audio)
    info = sf.info(out)
    assert info.samplerate == sr and info.subtype == "PCM_24" and info.channels == 2


@pytest.mark.parametrize("bits,subtype,fmt", [(16, "PCM_16", "wav"), (24, "PCM_24", "wav"),
                                             (32, "FLOAT", "wav"), (24, "PCM_24", "flac")])
def test_save_bit_depths_and_formats(tmp_path: Path, bits: int, subtype: str, fmt: str) -> None:
    x = _sine(48000, 2).astype(np.float32)
    out = save(tmp_path / f"o.{fmt}", Audio(x, 48000), bit_depth=bits, file_format=fmt)
    info = sf.info(out)
    assert info.subtype == subtype
    y, _ = sf.read(out, dtype="float64", always_2d=True)
    assert np.max(np.abs(y.T - x)) < 2.0 / 2 ** (bits - 1) + 1e-6


def test_tpdf_dither_is_triangular_and_decorrelates() -> None:
    # A constant between two 16-bit steps: without dither it rounds to one value; with TPDF
    # dither the mean is preserved and the error spans at most +-1.5 LSB (rounding + triangle).
    lsb = 1 / 32768
    x = np.full((2, 200_000), 0.25 * lsb + 10 * lsb, dtype=np.float32)
    y = tpdf_dither(x, 16)
    assert abs(float(y.mean() - x.mean())) < 0.02 * lsb
    assert np.max(np.abs(y - x)) <= 1.5 * lsb + 1e-9
    assert len(np.unique(np.round(y / lsb))) >= 3
    assert np.allclose(np.round(y / lsb), y / lsb, atol=1e-3)  # on the 16-bit grid


def test_16_bit_output_is_dithered_last(tmp_path: Path) -> None:
    # A -100 dBFS sine is below 16-bit resolution: undithered it truncates to silence,
    # dithered it survives as a correlated component in the noise.
    sr = 44100
    x = (1e-5 * np.sin(2 * np.pi * 1000 * np.arange(sr) / sr))[None].astype(np.float32)
    out = save(tmp_path / "d.wav", Audio(x, sr), bit_depth=16)
    y, _ = sf.read(out, dtype="float64")
    assert np.any(y != 0)
    corr = np.dot(y, x[0]) / (np.linalg.norm(y) * np.linalg.norm(x[0]))
    assert corr > 0.05


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "not a readable audio file"),
    (lambda p: p.write_bytes(os.urandom(4096)), "not a readable audio file"),
    (lambda p: sf.write(p, np.zeros((44100, 2)), 44100), "silence"),
    (lambda p: sf.write(p, 0.1 * np.ones((800, 2)), 44100), "too short"),
    (lambda p: sf.write(p, np.full((44100, 2), np.nan), 44100, subtype="FLOAT"), "NaN"),
])
def test_bad_input_gives_one_line_error(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioInputError) as exc:
        load(path)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_reads_files_that_decode_to_far_more_than_their_size(tmp_path: Path) -> None:
    # a near-constant FLAC is tiny: reading it outgrows what the file size suggests, and
    # every sample must still arrive in order
    x = np.full((2, 44100 * 20), 0.25, dtype=np.float32)
    x[:, ::1000] = -0.25
    path = tmp_path / "flat.flac"
    sf.write(path, x.T, 44100, subtype="PCM_16")
    assert path.stat().st_size * 8 < x.nbytes / 4  # the array must grow while reading
    got = load(path)
    np.testing.assert_array_equal(got.samples, sf.read(path, dtype="float32")[0].T)
    assert got.samples.flags.c_contiguous


def test_background_writer_keeps_the_last_write_and_leaves_no_temporaries(
        tmp_path: Path) -> None:
    from automix.audio import BackgroundWriter

    dest = tmp_path / "o.wav"
    first, last = (Audio(_sine(44100, 2, amp=a).astype(np.float32), 44100) for a in (0.1, 0.5))
    writer = BackgroundWriter(dest)
    writer.write(first)
    writer.write(last)  # the result changed while the first was being written
    assert writer.commit() == dest
    got, _ = sf.read(dest, dtype="float32")
    assert np.max(np.abs(got.T - last.samples)) < 2 ** -22  # 24-bit
    dropped = BackgroundWriter(tmp_path / "dropped.wav")
    dropped.write(first)
    dropped.discard()
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]


@pytest.fixture(params=[24, 32])
def full_disk(request, monkeypatch) -> int:
    """A disk that fills at the first block of audio, written by libsndfile (32-bit float)
    or by automix's own 24-bit WAV packing; the bit depth to write."""
    from automix import audio

    def broken_write(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sf.SoundFile, "write", broken_write)
    monkeypatch.setattr(audio, "_packed24", broken_write)
    return request.param


def test_background_writer_reports_a_full_disk_on_commit(tmp_path: Path, full_disk: int) -> None:
    from automix.audio import BackgroundWriter

    writer = BackgroundWriter(tmp_path / "o.wav", bit_depth=full_disk)
    writer.write(Audio(_sine(44100, 2).astype(np.float32), 44100))
    with pytest.raises(OutputError, match="disk full"):
        writer.commit()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_nothing_and_keeps_existing(tmp_path: Path, full_disk: int) -> None:
    existing = tmp_path / "out.wav"
    existing.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="disk full"):
        save(existing, Audio(_sine(44100, 2).astype(np.float32), 44100), bit_depth=full_disk)
    assert existing.read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_missing_output_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        save(tmp_path / "nope" / "o.wav", Audio(_sine(44100, 1).astype(np.float32), 44100))


def test_outputs_get_ordinary_permissions(tmp_path: Path) -> None:
    from automix.audio import write_text_atomic

    umask = os.umask(0o022)
    os.umask(umask)
    wav = save(tmp_path / "o.wav", Audio(_sine(44100, 1).astype(np.float32), 44100))
    txt = write_text_atomic(tmp_path / "o.json", "{}")
    for path in (wav, txt):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_quiet_decoders_gives_stderr_back_when_threads_overlap():
    # A reference file is decoded in a thread beside the song: the first in, the second in,
    # the first out, the second out. stderr is silent while either is inside, and the real
    # one comes back at the end (each restoring its own copy left /dev/null in place).
    def identity(stat: os.stat_result) -> tuple[int, int]:
        return stat.st_dev, stat.st_ino

    real, devnull = identity(os.fstat(2)), identity(os.stat(os.devnull))
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first() -> None:
        with quiet_decoders():
            first_in.set()
            second_in.wait(5)
        seen.append(identity(os.fstat(2)))  # the second is still inside
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with quiet_decoders():
            second_in.set()
            first_out.wait(5)

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [devnull]
    assert identity(os.fstat(2)) == real


def test_24_bit_wav_has_the_bytes_libsndfile_writes_from_floats(tmp_path: Path):
    # automix converts to 24-bit codes itself: the same bytes as libsndfile's own conversion,
    # at full scale and beyond, at ties between codes (rounded half to even) and near zero.
    rng = np.random.default_rng(11)
    edges = np.array([1.0, -1.0, 1.5, -1.7, 0.99999994, -0.99999994, 2.0**-24, -(2.0**-24),
                      1.5 * 2.0**-23, 2.5 * 2.0**-23, -3.5 * 2.0**-23, 2.0**-31, 0.0, -0.0,
                      (2**23 - 0.5) / 2**23, 1e-30], dtype=np.float32)
    x = rng.uniform(-1.05, 1.05, size=(2, 3 * 65536 + 17)).astype(np.float32)
    x[0, : edges.size], x[1, -edges.size:] = edges, -edges
    ours = save(tmp_path / "ours.wav", Audio(x, 44100), bit_depth=24)
    sf.write(tmp_path / "theirs.wav", x.T, 44100, subtype="PCM_24")
    assert ours.read_bytes() == (tmp_path / "theirs.wav").read_bytes()


@pytest.mark.parametrize("channels,frames", [(1, 65536 + 3), (1, 10), (2, 1), (3, 1001)])
def test_24_bit_wav_header_and_padding_are_libsndfile_s(tmp_path: Path, channels: int,
                                                         frames: int):
    # automix packs mono and stereo 24-bit WAV itself (header, frames, the pad byte after an
    # odd number of data bytes); more channels go through libsndfile (its extensible header)
    x = np.random.default_rng(channels).uniform(-1, 1, (channels, frames)).astype(np.float32)
    ours = save(tmp_path / "ours.wav", Audio(x, 48000), bit_depth=24)
    sf.write(tmp_path / "theirs.wav", x.T, 48000, subtype="PCM_24")
    assert ours.read_bytes() == (tmp_path / "theirs.wav").read_bytes()
