"""Issue 7.4: fuzzing the parsers and the audio loader (1,000 examples each, derandomized).

Settings and presets must either parse or raise `SettingsError`; the loader must either return
valid audio or raise `AudioInputError`. Anything else (a TypeError, an OverflowError, NaN
slipping through) would surface as an internal error on the command line.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import corpus
from automix import audio, params, presets
from automix import settings as settings_io
from automix.errors import AudioInputError, SettingsError

FUZZ = settings(max_examples=1000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Keys that reach deep into the validators: every section and parameter name, plus noise.
NAMES = sorted({"chain", "gain_db", "limiter", "target_lufs", "settings", "stems", "reverb",
                "master", "drums.wav", "bass.wav", "name", "description", "integrated_lufs",
                "ceiling_dbtp", "target", "features", "sources", "bands"}
               | {f.name for f in params.dataclasses.fields(params.MasterChain)}
               | {f.name for f in params.dataclasses.fields(params.StemChain)}
               | {n for cls in params.EFFECTS.values() for n in params.ranges(cls)})
KEYS = st.one_of(st.sampled_from(NAMES), st.text(max_size=8), st.integers(-3, 3))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                    st.sampled_from([10**400, -(10**400), 1e308, -0.0, 0.5, -14, 12.0]),
                    st.text(max_size=8))


def _json_like(keys: st.SearchStrategy = KEYS) -> st.SearchStrategy:
    return st.recursive(SCALARS, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)), max_leaves=8)


JSON_LIKE = _json_like()
JSON_TEXT_LIKE = _json_like(st.one_of(st.sampled_from(NAMES), st.text(max_size=8)))


def _near_valid(valid: dict) -> st.SearchStrategy:
    """``valid`` with some leaves replaced by anything: the validators' deepest branches."""
    leaves = [(path, v) for path, v in _leaves(valid)]

    @st.composite
    def mutate(draw: st.DrawFn) -> dict:
        doc = json.loads(json.dumps(valid))
        for path, _ in draw(st.lists(st.sampled_from(leaves), max_size=3)):
            node = doc
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = draw(JSON_LIKE)
        return doc
    return mutate()


def _leaves(doc: dict, prefix: tuple = ()) -> Iterator[tuple[tuple, object]]:
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


VALID_MASTER = settings_io.MasterSettings().to_dict()
VALID_MIX = settings_io.MixSettings(stems={"drums.wav": params.StemChain()}).to_dict()


def _check_master(settings_obj: settings_io.MasterSettings) -> None:
    """A parsed result is within every range and finite."""
    values = [v for _, v in _leaves(settings_obj.to_dict())]
    assert all(isinstance(v, float) and math.isfinite(v) for v in values)
    params.validate_chain(params.MasterChain, params.as_dict(settings_obj.chain), where="x")


@FUZZ
@given(st.one_of(JSON_LIKE, _near_valid(VALID_MASTER)))
def test_master_settings_from_anything(data: object) -> None:
    try:
        parsed = settings_io.MasterSettings.from_dict(data)
    except SettingsError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    _check_master(parsed)


@FUZZ
@given(st.one_of(JSON_LIKE, _near_valid(VALID_MIX)))
def test_mix_settings_from_anything(data: object) -> None:
    try:
        parsed = settings_io.MixSettings.from_dict(data)
    except SettingsError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    _check_master(parsed.master)
    assert parsed.stems and all(isinstance(c, params.StemChain) for c in parsed.stems.values())


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _file_texts(valid: dict) -> st.SearchStrategy:
    """Settings-file contents: JSON of anything, near-valid JSON, YAML-ish text, raw bytes."""
    return st.one_of(
        JSON_TEXT_LIKE.map(json.dumps),
        _near_valid(valid).map(lambda d: json.dumps({"settings": d})),
        st.text(max_size=60).map(str.encode),
        st.binary(max_size=60),
    ).map(lambda t: t if isinstance(t, bytes) else t.encode())


@FUZZ
@given(content=_file_texts(VALID_MASTER), suffix=st.sampled_from([".json", ".yaml", ".txt"]))
def test_read_settings_from_any_file(scratch: Path, content: bytes, suffix: str) -> None:
    path = scratch / f"settings{suffix}"
    path.write_bytes(content)
    try:
        parsed = settings_io.read_master_settings(path)
    except SettingsError as exc:
        assert "\n" not in str(exc)
        return
    _check_master(parsed)


AMOUNT_TEXT = st.one_of(
    st.text(max_size=30),
    st.lists(st.tuples(st.sampled_from(["eq", "dynamics", "width", "reverb", "", " eq"]),
                       st.sampled_from(["=", "", "=="]),
                       st.one_of(st.floats().map(repr), st.text(max_size=5))), max_size=4)
    .map(lambda items: ",".join(f"{k}{s}{v}" for k, s, v in items)),
)


@FUZZ
@given(AMOUNT_TEXT)
def test_parse_amounts_of_any_text(text: str) -> None:
    try:
        amounts = settings_io.Amounts.parse(text)
    except SettingsError as exc:
        assert "\n" not in str(exc)
        return
    values = [getattr(amounts, module) for module in settings_io.AMOUNT_FIELDS]
    assert all(0.0 <= v <= 1.0 for v in values)


def _preset_texts() -> st.SearchStrategy:
    target = presets.load_target("spotify").__dict__
    genre = json.loads(presets._resolve("pop", presets._genres_dir(), "genre").read_text())
    genre["features"] = {"bands": {"mid_db": [None, -3.0]}, "integrated_lufs": -9.0}
    return st.one_of(JSON_TEXT_LIKE.map(json.dumps), _near_valid(target).map(json.dumps),
                     _near_valid(genre).map(json.dumps), st.binary(max_size=40))


@FUZZ
@given(content=_preset_texts())
def test_presets_from_any_json_file(scratch: Path, content: str | bytes) -> None:
    path = scratch / "preset.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    try:
        target = presets.load_target(path)
    except SettingsError:
        pass
    else:
        assert presets.LUFS_RANGE[0] <= target.integrated_lufs <= presets.LUFS_RANGE[1]
        assert presets.CEILING_RANGE_DBTP[0] <= target.ceiling_dbtp <= 0.0
        assert target.name and target.description
    try:
        genre = presets.load_genre(path)
    except SettingsError:
        return
    assert isinstance(genre.features, dict) and isinstance(genre.features["bands"], dict)
    assert genre.name and genre.target and all(isinstance(s, str) for s in genre.sources)


def _valid_audio(fmt: str) -> bytes:
    x = corpus.music_like(np.random.default_rng(70), 8000, 0.6)[:1]
    return corpus.wav_bytes(x, 8000, "PCM_16", fmt)


WAV, FLAC = _valid_audio("WAV"), _valid_audio("FLAC")


@st.composite
def mutated_audio(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid small WAV or FLAC with its header damaged: bytes overwritten (random values or
    extreme integers in header fields), inserted, deleted, or the file cut short."""
    ext, data = draw(st.sampled_from([(".wav", WAV), (".flac", FLAC)]))
    buf = bytearray(data)
    header = 64 if ext == ".wav" else 96
    for _ in range(draw(st.integers(1, 4))):
        if not buf:
            break
        op = draw(st.sampled_from(["set", "field", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, min(header, len(buf) - 1)))
        if op == "set":
            buf[at] = draw(st.integers(0, 255))
        elif op == "field":
            value = draw(st.sampled_from([0, 1, 2, 3, 0x55, 0xFFFE, 0xFFFF, 2**31 - 1, 2**32 - 1,
                                          8, 64, 48000]))
            size = draw(st.sampled_from([2, 4]))
            buf[at : at + size] = (value % 2 ** (8 * size)).to_bytes(size, "little")
        elif op == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[at : at + draw(st.integers(1, 8))]
        else:
            del buf[draw(st.integers(0, len(buf) - 1)):]
    return ext, bytes(buf)


@FUZZ
@given(mutated_audio())
def test_load_damaged_headers(scratch: Path, case: tuple[str, bytes]) -> None:
    ext, data = case
    path = scratch / f"damaged{ext}"
    path.write_bytes(data)
    try:
        got = audio.load(path)
    except AudioInputError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    x = got.samples
    assert x.dtype == np.float32 and x.ndim == 2 and x.flags.c_contiguous
    assert 1 <= x.shape[0] and got.sample_rate > 0
    assert got.duration_s >= audio.MIN_DURATION_S
    assert np.all(np.isfinite(x)) and np.any(x) and np.abs(x).max() <= audio.MAX_ABS_SAMPLE
    assert sf.info(str(path)).frames == x.shape[1]
