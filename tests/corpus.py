"""The bad-input corpus (issue 7): generated, seeded, small; shared by test_bad_inputs.py,
test_nothing_lost.py and test_fuzz.py.

Every case is a file (or a stems folder, or a command-line option) that a user can hand to
automix. Each gets either a one-line error with exit code 1 (the fragment below appears in
it), or is handled: processed normally, with the warning code shown when the input deserves
one. Never a traceback on the command line, never a 500 from the service.

Documented decisions
--------------------
- Channels: a song (and a reference file) is mono or stereo. 3 to 8 channels are refused
  with "N channels: automix masters mono or stereo; downmix to stereo first": silently
  folding a 5.1 mix to stereo changes the production, and BS.1770 loudness stops at five
  channels anyway. Stems are mono or stereo for the same reason ("stems are mono or stereo").
- Float samples beyond +-1e6 (120 dB over full scale, finite) are refused as not audio;
  anything up to that (an int-scaled float file, say) is handled (W03 true peak over 0 dBTP).
- A data chunk shorter than its header claims is handled: the frames present are read.
- The file's content decides its format, not its extension: FLAC or Ogg Opus data named
  ``.wav`` is decoded; text or an image named ``.wav``/``.flac``/``.mp3`` is refused.
- A silent or too-short stem does not fail a mix (issue 16): it is kept, passed through at
  unit gain with warning S03-silent (``stem_warning``); as a song (master, batch, the
  service's master) it is refused. A stem with no samples at all still fails the mix.
- The 60-minute case is a sparse WAV (an hour of 8 kHz mono silence, no disk blocks): master
  reads it and refuses it as digital silence in about a second, the service refuses it by
  its header (422 too-long), and `streaming.is_long` is checked on a sparse hour of 48 kHz
  stereo. A real hour of music through ``automix master`` runs only with
  ``AUTOMIX_LONG_TESTS=1`` (marked slow: minutes).
- Disk full is simulated in-process (``soundfile.write`` or the text writer raising
  ``OSError(ENOSPC)``); an unwritable folder is a path whose parent is a regular file, or
  under ``/proc`` (both refuse root too).

Case table (mode: m master, x mix, b batch, s service)
------------------------------------------------------
Every error case runs through each mode named. The handled file cases all run through master;
mix, batch and the service take a sample of them that covers every trait (MIX_HANDLED,
BATCH_HANDLED and SERVICE_HANDLED in test_bad_inputs.py), since each handled run costs seconds.

============================  ====  =================================================
case                          mode  expected
============================  ====  =================================================
missing_file                  mxb   error "no such file" (mix, batch: "not a folder")
empty_file                    mxbs  error "file is empty"
truncated_header              mxbs  error "not a readable audio file"
header_only                   mxbs  error "has no samples"
zero_samples                  mxbs  error "has no samples"
text_as_wav                   mxbs  error "not a readable audio file"
image_as_flac                 mxbs  error "not a readable audio file"
text_as_mp3                   mxbs  error "not a readable audio file (format not recognised"
garbage_ogg                   mxbs  error "not a readable audio file"
mp3_codec_in_wav              mxbs  error "not a readable audio file" (format tag 0x0055)
zero_channels_header          mxbs  error "not a readable audio file"
zero_rate_header              mxbs  error "not a readable audio file"
shorter_than_400ms            mbs   error "too short" (x: handled with S03-silent)
one_sample                    mbs   error "too short" (x: handled with S03-silent)
digital_silence               mbs   error "is digital silence" (x, s mix: S03-silent)
nan_samples                   mxbs  error "contains NaN or infinite samples"
inf_samples                   mxbs  error "contains NaN or infinite samples"
absurd_float                  mxbs  error "not audio"
channels_3 .. channels_8      mxbs  error "mono or stereo"
sixty_minutes_silent          mbs   error "is digital silence" (service: 422 too-long;
                                    x: handled with S03-silent, cut to the other stem)
stereo_16bit                  mxbs  handled
mono                          mxbs  handled with warning W05-mono
rate_8000 .. rate_192000      mxbs  handled (8, 16, 22.05, 48, 96, 192 kHz)
bits_u8 .. bits_double        mxbs  handled (8/16/24/32-bit int, 32/64-bit float)
dc_offset                     mxbs  handled with warning W04-dc-offset
clipped                       mxbs  handled with warning W01-clipping
already_limited               mxbs  handled with warning W02-limited
very_quiet                    mxbs  handled with warning W06-quiet
float_over_full_scale         mxbs  handled with warning W03-true-peak-over
truncated_data                mxbs  handled (the frames present are read)
flac_named_wav                mxbs  handled (decoded by content)
opus_named_wav                mxbs  handled (decoded by content)
unicode_and_spaces            mxbs  handled
stems_rates                   xs    handled with warning S01-resampled
stems_lengths                 x     handled with warning S02-padded
stems_mono_and_stereo         x     handled
stems_no_audio                x     error "no audio files"
stems_one_file                x     error "1 stem(s)"
stems_path_is_a_file          x     error "not a folder of stems"
output_is_input               mx    error "refusing to write over the input" / "a stem"
report_is_input               m     error "refusing to write over the input"
stems_out_is_stems            x     error "refusing to write over the input" (any output
                                    inside the stems folder is refused: it would be a stem)
output_parent_is_file         mxb   error "not a folder"
output_under_proc             mx    error "cannot write here"
disk_full_audio               mx    error "disk full"; no output, no temp file
disk_full_sidecar             mx    error "disk full"; the audio written before is removed
unknown_preset                mxbs  error "unknown reference 'polka'"
unknown_target                mxbs  error "unknown target 'radio'"
settings_unknown_key          mxs   error "unknown key 'colour'"
settings_wrong_type           mxs   error "expected a number"
settings_out_of_range         mxs   error "out of range" / "[-12, 12]"
settings_not_json             mxs   error "not valid"
settings_missing              mx    error "no such settings file"
amount_out_of_range           mxs   error "out of range [0, 1]"
ceiling_out_of_range          mxbs  error "--ceiling must be in [-9, 0]"
bad_bit_depth                 mxbs  error "bit-depth" (flac + 32)
============================  ====  =================================================
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import music_like

SR = 44100
SECONDS = 1.0
HOUR_S = 3600


@dataclass(frozen=True)
class FileCase:
    """One input file: ``make(folder, stem)`` writes it and returns its path.

    ``error`` is a fragment of the one-line error (exit 1); None means handled, with
    ``warning`` (a code) in the report when given. ``service`` is False where an upload makes
    no sense (a missing file); ``service_error`` overrides the fragment the service reports.
    ``stem_warning``: as a stem of a mix the case is handled with this warning code instead.
    """

    name: str
    make: Callable[[Path, str], Path]
    error: str | None = None
    warning: str | None = None
    service: bool = True
    service_error: str | None = None
    stem_warning: str | None = None


# the service checks an upload before queueing it and answers these at once, in its own words
UNREADABLE = "file: not an audio file that can be read (WAV, FLAC, AIFF, OGG or MP3)"
NO_AUDIO = "file: holds no audio"


def _song(seed: int = 0, sample_rate: int = SR, seconds: float = SECONDS) -> np.ndarray:
    return music_like(np.random.default_rng(seed), sample_rate, seconds)


def _audio(x: np.ndarray, sample_rate: int = SR, subtype: str = "PCM_16", ext: str = ".wav",
           fmt: str | None = None) -> Callable[[Path, str], Path]:
    def make(folder: Path, stem: str) -> Path:
        path = folder / f"{stem}{ext}"
        sf.write(path, x.T, sample_rate, subtype=subtype, format=fmt)
        return path
    return make


def _bytes(data: bytes, ext: str = ".wav") -> Callable[[Path, str], Path]:
    def make(folder: Path, stem: str) -> Path:
        path = folder / f"{stem}{ext}"
        path.write_bytes(data)
        return path
    return make


def wav_bytes(x: np.ndarray, sample_rate: int = SR, subtype: str = "PCM_16",
              fmt: str = "WAV") -> bytes:
    """``x`` (channels, samples) encoded in memory."""
    buf = io.BytesIO()
    sf.write(buf, x.T, sample_rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def _patched(offset: int, value: bytes) -> bytes:
    """A valid 16-bit stereo WAV with ``value`` written at byte ``offset`` of its header."""
    data = bytearray(wav_bytes(_song(1)))
    data[offset : offset + len(value)] = value
    return bytes(data)


def sparse_wav(path: Path, seconds: int, sample_rate: int, channels: int) -> Path:
    """A 16-bit WAV of ``seconds`` of silence whose data is a hole in the file (no disk use)."""
    frames = seconds * sample_rate
    data_bytes = frames * channels * 2
    header = (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
              + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate,
                            sample_rate * channels * 2, channels * 2, 16)
              + b"data" + struct.pack("<I", data_bytes))
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data_bytes)
    return path


def _missing(folder: Path, stem: str) -> Path:
    return folder / f"{stem}.wav"


def _limited() -> np.ndarray:
    x = np.tanh(30.0 * _song(2))
    return (0.89 * x / np.abs(x).max()).astype(np.float32)


def _with(value: float, channel: int = 0) -> np.ndarray:
    x = _song(3).copy()
    x[channel, 1000:1010] = value
    return x


def _channels(n: int) -> np.ndarray:
    x = _song(4)
    return np.vstack([x] * (n // 2) + [x[:1]] * (n % 2)).astype(np.float32)


def _opus() -> bytes:
    return wav_bytes(_song(5, 48000), 48000, subtype="OPUS", fmt="OGG")


def _sixty_minutes(folder: Path, stem: str) -> Path:
    return sparse_wav(folder / f"{stem}.wav", HOUR_S, 8000, 1)


FILE_CASES: tuple[FileCase, ...] = (
    FileCase("missing_file", _missing, "no such file", service=False),
    FileCase("empty_file", _bytes(b""), "file is empty", service_error=UNREADABLE),
    FileCase("truncated_header", lambda f, s: _bytes(wav_bytes(_song(1))[:30])(f, s),
             "not a readable audio file", service_error=UNREADABLE),
    FileCase("header_only", lambda f, s: _bytes(wav_bytes(_song(1))[:44])(f, s),
             "has no samples", service_error=NO_AUDIO),
    FileCase("zero_samples", _audio(np.zeros((2, 0), np.float32)), "has no samples",
             service_error=NO_AUDIO),
    FileCase("text_as_wav", _bytes(b"hello, this is not audio\n" * 40), "not a readable audio",
             service_error=UNREADABLE),
    FileCase("image_as_flac", _bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, ".flac"),
             "not a readable audio file", service_error=UNREADABLE),
    FileCase("text_as_mp3", _bytes(b"ID3 not an mp3 at all " * 30, ".mp3"),
             "not a readable audio file (format not recognised", service_error=UNREADABLE),
    FileCase("garbage_ogg", _bytes(b"OggS" + bytes(range(256)) * 4, ".ogg"),
             "not a readable audio file", service_error=UNREADABLE),
    FileCase("mp3_codec_in_wav", lambda f, s: _bytes(_patched(20, struct.pack("<H", 0x55)))(f, s),
             "not a readable audio file", service_error=UNREADABLE),
    FileCase("zero_channels_header",
             lambda f, s: _bytes(_patched(22, struct.pack("<H", 0)))(f, s),
             "not a readable audio file", service_error=UNREADABLE),
    FileCase("zero_rate_header", lambda f, s: _bytes(_patched(24, struct.pack("<I", 0)))(f, s),
             "not a readable audio file", service_error=UNREADABLE),
    FileCase("shorter_than_400ms", _audio(_song(6, seconds=0.3)), "too short",
             stem_warning="S03-silent"),
    FileCase("one_sample", _audio(_song(6)[:, :1]), "too short", stem_warning="S03-silent"),
    FileCase("digital_silence", _audio(np.zeros((2, SR), np.float32)), "is digital silence",
             stem_warning="S03-silent"),
    FileCase("nan_samples", _audio(_with(np.nan), subtype="FLOAT"),
             "contains NaN or infinite samples"),
    FileCase("inf_samples", _audio(_with(-np.inf, 1), subtype="DOUBLE"),
             "contains NaN or infinite samples"),
    FileCase("absurd_float", _audio(_song(7) * np.float32(1e30), subtype="FLOAT"), "not audio"),
    *(FileCase(f"channels_{n}", _audio(_channels(n)), f"{n} channels", service_error="mono or")
      for n in range(3, 9)),
    FileCase("sixty_minutes_silent", _sixty_minutes, "is digital silence",
             service_error="longer than the limit", stem_warning="S03-silent"),
    FileCase("stereo_16bit", _audio(_song(8))),
    FileCase("mono", _audio(_song(9)[:1]), warning="W05-mono"),
    *(FileCase(f"rate_{rate}", _audio(_song(10, rate), rate))
      for rate in (8000, 16000, 22050, 48000, 96000, 192000)),
    *(FileCase(f"bits_{name}", _audio(_song(11), subtype=subtype))
      for name, subtype in (("u8", "PCM_U8"), ("16", "PCM_16"), ("24", "PCM_24"),
                            ("32", "PCM_32"), ("float", "FLOAT"), ("double", "DOUBLE"))),
    FileCase("dc_offset", _audio(0.5 * _song(12) + np.float32(0.3)), warning="W04-dc-offset"),
    FileCase("clipped", _audio(np.clip(8.0 * _song(13), -1.0, 1.0)), warning="W01-clipping"),
    FileCase("already_limited", _audio(_limited()), warning="W02-limited"),
    FileCase("very_quiet", _audio(_song(14) * np.float32(10 ** (-40 / 20)), subtype="FLOAT"),
             warning="W06-quiet"),
    FileCase("float_over_full_scale", _audio(_song(15) * np.float32(4.0), subtype="FLOAT"),
             warning="W03-true-peak-over"),
    FileCase("truncated_data",
             lambda f, s: _bytes(wav_bytes(_song(16))[: 44 + 4 * int(0.8 * SR)])(f, s)),
    FileCase("flac_named_wav", lambda f, s: _bytes(wav_bytes(_song(17), fmt="FLAC"))(f, s)),
    FileCase("opus_named_wav", lambda f, s: _bytes(_opus())(f, s)),
    FileCase("unicode_and_spaces", _audio(_song(18))),
)

ERROR_CASES = tuple(c for c in FILE_CASES if c.error is not None)
HANDLED_CASES = tuple(c for c in FILE_CASES if c.error is None)
FILE_NAMES = {c.name: c for c in FILE_CASES}


def file_name(case: FileCase) -> str:
    """The file's stem: the case name, with unicode and spaces where that is the point."""
    return "Ünïcødé sòng – 🎵 take 2" if case.name == "unicode_and_spaces" else case.name


def build(case: FileCase, folder: Path) -> Path:
    """Write ``case`` into ``folder`` (created); its path (absent for missing_file)."""
    folder.mkdir(parents=True, exist_ok=True)
    return case.make(folder, file_name(case))


def build_all(folder: Path, cases: tuple[FileCase, ...] = FILE_CASES) -> dict[str, Path]:
    return {c.name: build(c, folder) for c in cases}


# --- stems folders (mix) ----------------------------------------------------------------------


@dataclass(frozen=True)
class StemsCase:
    name: str
    files: Callable[[], dict[str, np.ndarray | bytes | tuple[np.ndarray, int]]]
    error: str | None = None
    warning: str | None = None


def _stereo(seed: int, sample_rate: int = SR, seconds: float = SECONDS) -> np.ndarray:
    return _song(seed, sample_rate, seconds)


STEMS_CASES: tuple[StemsCase, ...] = (
    StemsCase("stems_rates", lambda: {"drums.wav": _stereo(20), "bass.wav": (
        _stereo(21, 48000)[:1], 48000), "keys.flac": (_stereo(22, 22050), 22050)},
        warning="S01-resampled"),
    StemsCase("stems_lengths", lambda: {"drums.wav": _stereo(23),
                                        "bass.wav": _stereo(24, seconds=0.6)[:1]},
              warning="S02-padded"),
    StemsCase("stems_mono_and_stereo", lambda: {"drums.wav": _stereo(25),
                                                "vocals.wav": _stereo(26)[:1]}),
    StemsCase("stems_no_audio", lambda: {"notes.txt": b"no audio here"}, "no audio files"),
    StemsCase("stems_one_file", lambda: {"drums.wav": _stereo(27)}, "1 stem(s)"),
)


def build_stems(case: StemsCase, folder: Path) -> Path:
    """Write the stems of ``case`` into ``folder / case.name``; the folder."""
    root = folder / case.name
    root.mkdir(parents=True)
    for name, content in case.files().items():
        if isinstance(content, bytes):
            (root / name).write_bytes(content)
            continue
        x, rate = content if isinstance(content, tuple) else (content, SR)
        sf.write(root / name, x.T, rate, subtype="PCM_16")
    return root


def stems_with(bad: Path, folder: Path) -> Path:
    """A stems folder holding one good stem and a copy of ``bad`` (an input case)."""
    folder.mkdir(parents=True)
    sf.write(folder / "drums.wav", _song(30).T, SR, subtype="PCM_16")
    if bad.exists():
        (folder / f"bass{bad.suffix}").write_bytes(bad.read_bytes())
    return folder


def good_song(path: Path, seed: int = 40, seconds: float = SECONDS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _song(seed, seconds=seconds).T, SR, subtype="PCM_16")
    return path


# --- snapshots: nothing lost ------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) by relative path: its SHA-256.

    Sparse files are hashed by size and header only (reading an hour of zeros is slow).
    """
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            size = path.stat().st_size
            if size > 16_000_000:
                with open(path, "rb") as fh:
                    out[str(path.relative_to(folder))] = f"{size}:{fh.read(4096).hex()}"
            else:
                out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files a writer left behind (``.*.part``)."""
    return sorted(str(p) for p in folder.rglob("*") if p.name.endswith(".part")
                  or (p.name.startswith(".") and p.is_file()))


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# --- options and settings files (master and mix; batch and service where they apply) ---------


@dataclass(frozen=True)
class OptionCase:
    """A bad option. ``args`` follow the input; ``{settings}`` stands for a settings file
    written from ``settings`` (master) or ``mix_settings`` (mix). ``fields`` are the service's
    form fields for the same mistake (None: not an upload option); ``batch`` says whether
    ``automix batch`` takes the option."""

    name: str
    args: tuple[str, ...]
    error: str
    settings: str | None = None
    mix_settings: str | None = None
    fields: dict[str, str] | None = None
    batch: bool = False
    service_error: str | None = None  # the service's wording, where it differs


def _stems_doc(chain: str) -> str:
    return json.dumps({"stems": {"drums.wav": json.loads(chain), "bass.wav": {}}})


OPTION_CASES: tuple[OptionCase, ...] = (
    OptionCase("unknown_preset", ("-r", "polka"), "unknown reference 'polka'",
               fields={"reference": "polka"}, batch=True, service_error="unknown preset 'polka'"),
    OptionCase("unknown_target", ("-t", "radio"), "unknown target 'radio'",
               fields={"target": "radio"}, batch=True, service_error="target: unknown 'radio'"),
    OptionCase("settings_unknown_key", ("--settings", "{settings}"), "unknown key 'colour'",
               settings='{"colour": "red"}',
               mix_settings='{"stems": {"drums.wav": {}}, "colour": "red"}',
               fields={"settings": '{"colour": "red"}'}),
    OptionCase("settings_wrong_type", ("--settings", "{settings}"), "expected a number",
               settings='{"chain": {"eq": {"low_shelf_gain_db": "loud"}}}',
               mix_settings=_stems_doc('{"eq": {"low_shelf_gain_db": "loud"}}'),
               fields={"settings": '{"chain": {"eq": {"low_shelf_gain_db": "loud"}}}'}),
    OptionCase("settings_out_of_range", ("--settings", "{settings}"), "out of range [-12, 12]",
               settings='{"chain": {"eq": {"low_shelf_gain_db": 40}}}',
               mix_settings=_stems_doc('{"eq": {"low_shelf_gain_db": 40}}'),
               fields={"settings": '{"chain": {"eq": {"low_shelf_gain_db": 40}}}'}),
    OptionCase("settings_not_json", ("--settings", "{settings}"), "not valid",
               settings="{chain: [", mix_settings="{chain: [", fields={"settings": "{chain: ["}),
    OptionCase("settings_missing", ("--settings", "{missing}"), "no such settings file"),
    OptionCase("amount_out_of_range", ("--amount", "eq=2"), "out of range [0, 1]",
               fields={"amounts": "eq=2"}),
    OptionCase("ceiling_out_of_range", ("--ceiling", "3"), "--ceiling must be in [-9, 0]",
               fields={"ceiling_dbtp": "3"}, batch=True,
               service_error="ceiling_dbtp=3 is out of range"),
    OptionCase("bad_bit_depth", ("--format", "flac", "--bit-depth", "32"), "FLAC stores integers",
               fields={"format": "flac", "bit_depth": "32"}, batch=True,
               service_error="bit_depth: FLAC stores integers"),
)


def option_args(case: OptionCase, folder: Path, mode: str) -> list[str]:
    """``case.args`` with its settings file written into ``folder``."""
    text = case.mix_settings if mode == "mix" else case.settings
    settings = folder / "settings.json"
    if text is not None:
        settings.write_text(text, encoding="utf-8")
    return [a.format(settings=settings, missing=folder / "no-such-settings.json")
            for a in case.args]
