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


# --- from the mutation run (issue #21): output checks, atomic text, 24-bit packing ----------


def test_a_text_file_named_mp3_is_not_recognised(tmp_path: Path) -> None:
    # libsndfile calls such a file one that "does not exist"; the user is told what it is
    path = tmp_path / "notes.mp3"
    path.write_text("these are lyrics, not audio\n" * 40)
    with pytest.raises(AudioInputError) as exc:
        load(path)
    assert str(exc.value) == f"{path}: not a readable audio file (format not recognised)"


@pytest.mark.parametrize("output,given,expected", [
    (None, None, "wav"), ("song.flac", None, "flac"), ("song.FLAC", None, "flac"),
    ("song.wav", None, "wav"), ("mix", None, "wav"), ("notes.txt", None, "wav"),
    ("song.flac", "flac", "flac"), ("song.out", "flac", "flac"), (None, "mp3", "mp3"),
])
def test_output_format_follows_the_name(output, given, expected) -> None:
    from automix.audio import output_format

    assert output_format(Path(output) if output else None, given) == expected


@pytest.mark.parametrize("output,given,message", [
    ("song.mp3", None, "song.mp3: automix writes wav or flac, not mp3; name the output .wav "
                       "or .flac"),
    ("song.ogg", None, "song.ogg: automix writes wav or flac, not ogg; name the output .wav "
                       "or .flac"),
    ("song.flac", "wav", "--format wav contradicts the output's name song.flac; drop --format "
                         "or name it .wav"),
    ("song.aiff", "flac", "--format flac contradicts the output's name song.aiff; drop "
                          "--format or name it .flac"),
])
def test_output_format_refuses_what_it_cannot_write(output, given, message) -> None:
    from automix.audio import output_format
    from automix.errors import SettingsError

    with pytest.raises(SettingsError) as exc:
        output_format(Path(output), given)
    assert str(exc.value) == message


@pytest.mark.parametrize("fmt,depth,message", [
    ("mp3", 24, "--format: expected wav or flac, got 'mp3'"),
    ("wav", 20, "--bit-depth: expected 16, 24 or 32, got 20"),
    ("flac", 32, "--bit-depth: FLAC stores integers only: use 16 or 24, or --format wav"),
])
def test_check_format_names_the_option(fmt: str, depth: int, message: str) -> None:
    from automix.audio import check_format
    from automix.errors import SettingsError

    with pytest.raises(SettingsError) as exc:
        check_format(fmt, depth)
    assert str(exc.value) == message
    with pytest.raises(SettingsError) as exc:  # the service names its fields
        check_format(fmt, depth, names=("format", "bit_depth"))
    assert str(exc.value) == message.replace("--bit-depth", "bit_depth").replace(
        "--format", "format")
    for ok_format, ok_depth in (("wav", 16), ("wav", 24), ("wav", 32), ("flac", 16),
                                ("flac", 24)):
        check_format(ok_format, ok_depth)


def test_check_channels_refuses_surround_only(tmp_path: Path) -> None:
    from automix.audio import check_channels

    check_channels(tmp_path / "a.wav", 1)
    check_channels(tmp_path / "a.wav", 2)
    with pytest.raises(AudioInputError) as exc:
        check_channels(tmp_path / "a.wav", 3)
    assert str(exc.value) == (f"{tmp_path / 'a.wav'}: 3 channels: automix masters mono or "
                              "stereo; downmix to stereo first")


def test_check_writable_probes_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    from automix.audio import check_writable

    check_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe is removed
    (tmp_path / "file").write_text("x")
    for folder, message in ((tmp_path / "file", "not a folder (a file has this name)"),
                            (tmp_path / "nope", "output folder does not exist")):
        with pytest.raises(OutputError) as exc:
            check_writable(folder)
        assert str(exc.value) == f"{folder}: {message}"

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refused)  # root ignores permission bits
    with pytest.raises(OutputError) as exc:
        check_writable(tmp_path)
    assert str(exc.value) == f"{tmp_path}: cannot write here (Permission denied)"


def test_write_text_atomic_replaces_whole_files_only(tmp_path: Path, monkeypatch) -> None:
    from automix.audio import write_text_atomic

    dest = tmp_path / "settings.json"
    dest.write_text("old")
    renamed = []
    real_replace = os.replace

    def replace(src, dst):
        renamed.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert write_text_atomic(str(dest), "{\"é\": 1}\n") == dest
    assert dest.read_bytes() == "{\"é\": 1}\n".encode()  # utf-8, whatever the locale
    (src, dst), = renamed
    assert dst == dest and src.parent == tmp_path  # written beside it, then renamed
    assert src.name.startswith(".settings.json.") and src.name.endswith(".part")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]
    monkeypatch.chdir(tmp_path)  # a bare name is written in the current folder
    write_text_atomic("bare.txt", "x")
    assert (tmp_path / "bare.txt").read_text() == "x"


@pytest.mark.parametrize("error,reason", [
    (OSError(28, "No space left on device"), "disk full"),
    (OSError(5, "Input/output error"), "Input/output error"),
])
def test_write_text_atomic_says_why_and_keeps_the_old_file(tmp_path: Path, monkeypatch,
                                                           error, reason) -> None:
    from automix.audio import write_text_atomic

    dest = tmp_path / "report.json"
    dest.write_text("keep me")

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OutputError) as exc:
        write_text_atomic(dest, "new")
    assert str(exc.value) == f"{dest}: could not write ({reason})"
    assert dest.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left


def test_the_write_error_says_disk_full_or_the_reason(tmp_path: Path, monkeypatch) -> None:
    from automix import audio

    dest = tmp_path / "o.wav"

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(audio, "_packed24", broken)
    with pytest.raises(OutputError) as exc:
        save(dest, Audio(_sine(4410, 2).astype(np.float32), 44100))
    assert str(exc.value) == f"{dest}: could not write ([Errno 5] Input/output error)"
    monkeypatch.setattr(os, "chmod", lambda *a, **k: (_ for _ in ()).throw(
        OSError(28, "No space left on device")))
    with pytest.raises(OutputError) as exc:
        save(dest, Audio(_sine(4410, 2).astype(np.float32), 44100))
    assert str(exc.value) == f"{dest}: could not write (disk full)"
    assert list(tmp_path.iterdir()) == []


def test_temporaries_are_hidden_beside_the_output(tmp_path: Path) -> None:
    from automix.audio import _temporary_beside

    umask = os.umask(0o022)
    os.umask(umask)
    tmp = Path(_temporary_beside(tmp_path / "song.wav"))
    assert tmp.parent == tmp_path and tmp.name.startswith(".song.wav.")
    assert tmp.suffix == ".part" and tmp.stat().st_size == 0
    assert tmp.stat().st_mode & 0o777 == 0o666 & ~umask


def test_plain_24_bit_wav_limits() -> None:
    from automix.audio import _fits_plain_wav24

    # the RIFF size field (36 + data + pad) must fit in 32 bits; libsndfile goes on past it
    most = (0xFFFFFFFF - 37) // 6
    assert _fits_plain_wav24((2, most)) and not _fits_plain_wav24((2, most + 1))
    most_mono = (0xFFFFFFFF - 37) // 3
    assert _fits_plain_wav24((1, most_mono)) and not _fits_plain_wav24((1, most_mono + 1))
    assert not _fits_plain_wav24((3, 10)) and _fits_plain_wav24((2, 10))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 13])
def test_packed24_keeps_the_top_three_bytes(size: int) -> None:
    from automix.audio import _packed24

    codes = np.random.default_rng(size).integers(-(2**31), 2**31, size, dtype=np.int64)
    codes = codes.astype(np.int32)
    expected = codes.astype("<i4").view(np.uint8).reshape(-1, 4)[:, 1:].tobytes()
    assert _packed24(codes) == expected
    assert _packed24(codes.reshape(1, -1)) == expected  # any shape, C order


def test_24_bit_codes_hold_far_over_full_scale(tmp_path: Path) -> None:
    # the clip bounds: 2 and -2 (and far beyond) land on the largest and smallest 24-bit codes
    x = np.array([[2.0, -2.0, 1e5, -1e5, 1.0, -1.0]], dtype=np.float32)
    out = save(tmp_path / "o.wav", Audio(np.repeat(x, 2000, axis=1), 44100), bit_depth=24)
    codes, _ = sf.read(out, dtype="int32")
    assert list(codes[[0, 2000, 4000, 6000, 8000, 10000]] >> 8) == [
        2**23 - 1, -(2**23), 2**23 - 1, -(2**23), 2**23 - 1, -(2**23)]


def test_tpdf_dither_is_repeatable_float32_and_held_to_full_scale() -> None:
    x = np.array([[1.0, -1.0, 0.999, -0.999, 0.0]], dtype=np.float32).repeat(50, axis=1)
    y = tpdf_dither(x, 16)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, tpdf_dither(x, 16))  # the same seed, the same file
    assert not np.array_equal(y, tpdf_dither(x, 16, seed=1))
    assert float(y.max()) == 32767 / 32768 and float(y.min()) == -1.0  # the 16-bit extremes
    assert np.all(y[0, :50] >= 32766 / 32768) and np.all(y[0, 50:100] <= -32767 / 32768)


@pytest.mark.parametrize("make,message", [
    (lambda p: p.mkdir(), "is a folder, not an audio file"),
    (lambda p: sf.write(p, np.zeros((0, 2)), 44100), "has no samples"),
    (lambda p: sf.write(p, np.full((44100, 2), -2e6, dtype=np.float32), 44100,
                        subtype="FLOAT"),
     "samples reach 2e+06 (+126 dBFS); float data this far over full scale is not audio"),
    (lambda p: sf.write(p, 0.1 * np.ones((800, 2)), 44100),
     "too short (18 ms; at least 400 ms)"),
    (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "),
     "not a readable audio file (Error opening '{path}': Error in WAV file. No 'data' "
     "chunk marker.)"),
])
def test_bad_input_messages_in_full(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioInputError) as exc:
        load(path)
    assert str(exc.value) == f"{path}: {message.replace('{path}', str(path))}"


def test_load_accepts_its_limits_exactly(tmp_path: Path) -> None:
    # exactly one gating block (400 ms) is long enough; exactly MAX_ABS_SAMPLE is still audio
    from automix.audio import MAX_ABS_SAMPLE, MIN_DURATION_S

    x = np.full((2, round(MIN_DURATION_S * 44100)), 0.1, dtype=np.float32)
    x[0, 0] = -MAX_ABS_SAMPLE
    sf.write(tmp_path / "edge.wav", x.T, 44100, subtype="FLOAT")
    assert load(tmp_path / "edge.wav").samples.shape == x.shape


def test_16_bit_files_hold_the_dither_exactly(tmp_path: Path) -> None:
    # by default a 16-bit file is dithered (TPDF at 16 bits) and the writer only converts
    x = (1e-5 * np.sin(np.arange(44100) / 7.0))[None].repeat(2, axis=0).astype(np.float32)
    out = save(tmp_path / "o.wav", Audio(x, 44100), bit_depth=16)
    got, _ = sf.read(out, dtype="int16", always_2d=True)
    np.testing.assert_array_equal(got.T, np.round(tpdf_dither(x, 16) * 32768).astype(np.int16))
    plain = save(tmp_path / "p.wav", Audio(x, 44100), bit_depth=16, dither=False)
    # under half an LSB: undithered, two codes at most; dithered, the noise spans several
    assert len(np.unique(sf.read(plain, dtype="int16")[0])) <= 2 < len(np.unique(got))


def test_no_temporary_is_left_when_writing_is_interrupted(tmp_path: Path, monkeypatch) -> None:
    from automix.audio import write_text_atomic

    dest = tmp_path / "settings.json"
    dest.write_text("keep me")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(dest, "new")
    with pytest.raises(KeyboardInterrupt):
        save(tmp_path / "o.wav", Audio(_sine(4410, 2).astype(np.float32), 44100))
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]
    assert dest.read_text() == "keep me"


def test_an_unwritable_folder_is_named(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(OutputError) as exc:
        save(tmp_path / "o.wav", Audio(_sine(4410, 2).astype(np.float32), 44100))
    assert str(exc.value) == f"{tmp_path}: cannot write here (Permission denied)"


def test_the_writability_probe_is_hidden_in_the_folder_itself(tmp_path: Path,
                                                               monkeypatch) -> None:
    import tempfile

    from automix.audio import check_writable

    made = []
    real = tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, path = real(*args, **kwargs)
        made.append(Path(path))
        return fd, path

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    check_writable(tmp_path)
    (probe,) = made
    assert probe.parent == tmp_path and not probe.exists()
    assert probe.name.startswith(".automix-probe.") and probe.name.endswith(".part")
