"""Genre presets and delivery targets, stored as JSON data in the top-level ``presets/`` folder.

A delivery target (``presets/targets/<name>.json``) is where a master must land: an integrated
loudness and a true-peak ceiling. A genre profile (``presets/genres/<name>.json``) is the
averaged analysis of real reference productions (``reference_tracks/<genre>/*.flac``), in the
layout of `automix.analysis.Analysis.to_dict`, plus the delivery target that genre defaults to.
Profiles are computed, never hand-written: `profile_from_files` then `save_genre`.

JSON has no NaN: a band with no energy is stored as ``null`` and read back as NaN.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from automix.audio import load, write_text_atomic
from automix.errors import SettingsError, did_you_mean, first_line
from automix.params import LimiterParams, as_real, ranges

LUFS_RANGE = (-40.0, 0.0)  # a delivery loudness outside this is a typo, not a target
CEILING_RANGE_DBTP = (ranges(LimiterParams)["ceiling_dbtp"].min,
                      ranges(LimiterParams)["ceiling_dbtp"].max)
DEFAULT_CEILING_DBTP = -1.0  # a target that names no ceiling (a loudness, keep, a file's)
KEEP = "keep"  # --target keep: the input's own integrated loudness
BANDS_KEY = "bands"


def _locate_presets_dir() -> Path:
    """``$AUTOMIX_PRESETS``, else the repository's ``presets/``, else a copy in the package."""
    env = os.environ.get("AUTOMIX_PRESETS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[1] / "presets"
    packaged = Path(__file__).resolve().parent / "data" / "presets"
    return packaged if not repo.is_dir() and packaged.is_dir() else repo


PRESETS_DIR: Path = _locate_presets_dir()


@dataclass(frozen=True)
class Target:
    """A delivery target: where the master's loudness and peaks must land.

    Attributes
    ----------
    name : str
    integrated_lufs : float, LUFS (ITU-R BS.1770 integrated loudness)
    ceiling_dbtp : float, dBTP (maximum true peak)
    description : str, one line
    max_limiting_db : float or None, dB: the most the limiter may take off the loudest true
        peak to reach ``integrated_lufs``; the master stays quieter rather than limit harder
        (None: the loudness is reached whatever it takes, as for named targets)
    keeps_input : bool, the input's own loudness is the target (``--target keep``):
        ``integrated_lufs`` is NaN until `for_input` sets it from the input's analysis
    """

    name: str
    integrated_lufs: float
    ceiling_dbtp: float
    description: str
    max_limiting_db: float | None = None
    keeps_input: bool = False

    def for_input(self, input_lufs: float) -> Target:
        """This target for an input of loudness ``input_lufs``: itself, or, for ``keep``,
        with that loudness (at the sidecar's precision, 0.01 LU)."""
        if not self.keeps_input:
            return self
        return replace(self, integrated_lufs=round(float(input_lufs), 2))


@dataclass(frozen=True)
class GenreProfile:
    """The averaged analysis of a genre's reference productions.

    Attributes
    ----------
    name : str
    description : str, one line
    target : str, name of the delivery target this genre defaults to
    features : dict, the layout of `automix.analysis.Analysis.to_dict` (averaged over sources)
    sources : list of str, the files it was computed from (as given, POSIX separators)
    """

    name: str
    description: str
    target: str
    features: dict[str, Any]
    sources: list[str] = field(default_factory=list)


def _targets_dir() -> Path:
    return PRESETS_DIR / "targets"


def _genres_dir() -> Path:
    return PRESETS_DIR / "genres"


def _names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: not valid JSON ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a JSON object")
    return data


def _resolve(name: str | os.PathLike, folder: Path, kind: str, also: str = "") -> Path:
    """A known preset name in ``folder``, or the path of a JSON file in the same format;
    ``also`` ends the error's list of what is known."""
    text = os.fspath(name)
    if text in _names(folder):
        return folder / f"{text}.json"
    if text.endswith(".json") and Path(text).is_file():
        return Path(text)
    known = ", ".join(_names(folder)) or f"none found in {folder}"
    raise SettingsError(f"unknown {kind} {text!r}{did_you_mean(text, _names(folder))}; "
                        f"known: {known}{also}")


def _number(data: dict[str, Any], key: str, bounds: tuple[float, float], where: Path) -> float:
    value = data.get(key)
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(as_real(value)) or not low <= value <= high:
        raise SettingsError(f"{where}: {key} must be a number in [{low:g}, {high:g}]; "
                            f"got {value!r}")
    return float(value)


def _text(data: dict[str, Any], key: str, where: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise SettingsError(f"{where}: {key} must be a non-empty string; got {value!r}")
    return value


def load_target(name: str | os.PathLike) -> Target:
    """The delivery target ``name`` (see `list_targets`); a loudness in LUFS (``"-12"``);
    `KEEP`, the input's own loudness (see `Target.for_input`); or one read from a ``.json``
    path. Each but a named or read target has the ceiling `DEFAULT_CEILING_DBTP`.

    Raises `SettingsError` naming the known targets when ``name`` is none of these.
    """
    text = os.fspath(name).strip()
    if text.lower() == KEEP:
        return Target(name="the input's loudness", integrated_lufs=math.nan,
                      ceiling_dbtp=DEFAULT_CEILING_DBTP, keeps_input=True,
                      description="the input's own integrated loudness (--target keep)")
    lufs = lufs_of(text)
    if lufs is not None:
        low, high = LUFS_RANGE
        if not low <= lufs <= high:
            raise SettingsError(f"target {text}: a loudness must be in [{low:g}, {high:g}] LUFS")
        return Target(name=f"{lufs:g} LUFS", integrated_lufs=lufs,
                      ceiling_dbtp=DEFAULT_CEILING_DBTP,
                      description="an integrated loudness given in LUFS")
    path = _resolve(text, _targets_dir(), "target",
                    also=", a loudness in LUFS (-12), keep, or a target .json file")
    data = _read_json(path)
    return Target(name=_text(data, "name", path),
                  integrated_lufs=_number(data, "integrated_lufs", LUFS_RANGE, path),
                  ceiling_dbtp=_number(data, "ceiling_dbtp", CEILING_RANGE_DBTP, path),
                  description=_text(data, "description", path))


def lufs_of(text: str) -> float | None:
    """The loudness ``text`` gives (``-12``, ``-12.5``, ``-12 LUFS``), or None: not a number."""
    number = text[:-4].strip() if text.upper().endswith("LUFS") else text
    try:
        value = float(number)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def list_targets() -> list[Target]:
    """Every delivery target in ``PRESETS_DIR/targets``, by name."""
    return [load_target(n) for n in _names(_targets_dir())]


def load_genre(name: str | os.PathLike) -> GenreProfile:
    """The genre profile ``name`` (see `list_genres`), or one read from a ``.json`` path.

    Raises `SettingsError` naming the known genres when ``name`` is neither.
    """
    path = _resolve(name, _genres_dir(), "genre preset")
    data = _read_json(path)
    features = data.get("features")
    if not isinstance(features, dict) or not isinstance(features.get(BANDS_KEY), dict):
        raise SettingsError(f"{path}: features must be an analysis object with {BANDS_KEY!r}")
    sources = data.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise SettingsError(f"{path}: sources must be a list of file names")
    return GenreProfile(name=_text(data, "name", path),
                        description=_text(data, "description", path),
                        target=_text(data, "target", path),
                        features=_from_json(features), sources=sources)


def list_genres() -> list[GenreProfile]:
    """Every genre profile in ``PRESETS_DIR/genres``, by name."""
    return [load_genre(n) for n in _names(_genres_dir())]


def profile_from_files(paths: Sequence[str | os.PathLike], *, name: str, description: str,
                       target: str = "spotify") -> GenreProfile:
    """Analyse reference productions and average their features into a genre profile.

    Each file is read with `automix.audio.load` and analysed with `automix.analysis.analyze`.
    Every number is the mean over files, in its own unit (LUFS, LU, dB, ratio); the tonal
    balance is averaged in dB per band. NaN (a band with no energy in one file) is left out of
    that band's mean; a band that is NaN in every file stays NaN.

    Raises `SettingsError` for an empty list, `AudioInputError` for an unreadable file.
    """
    from automix.analysis import analyze  # analysis is heavy; listing presets does not need it

    if not paths:
        raise SettingsError(f"genre {name!r}: give at least one reference file")
    analyses = []
    for path in paths:
        audio = load(path)
        analyses.append(analyze(audio.samples, audio.sample_rate).to_dict())
    return GenreProfile(name=name, description=description, target=target,
                        features=average_features(analyses),
                        sources=[Path(p).as_posix() for p in paths])


def average_features(analyses: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """NaN-aware mean of analysis dicts of one layout (numbers, and lists of numbers per key).

    NaN or None (the JSON form of NaN) is left out of a mean; all-NaN stays NaN.
    Band centres are checked to agree rather than averaged; warnings are pooled without
    repeats.
    """
    first = analyses[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [a[key] for a in analyses]
        if key == BANDS_KEY:
            out[key] = _average_bands(values)
        elif key == "warnings":
            out[key] = _pool_warnings(values)
        elif all(v == value for v in values):
            out[key] = value  # e.g. sample_rate and channels stay integers
        elif value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = _nanmean(np.asarray(values, dtype=np.float64))  # None (JSON NaN) -> NaN
        else:
            raise SettingsError(f"cannot average analysis field {key!r} of type "
                                f"{type(value).__name__}")
    return out


def _average_bands(bands: list[dict[str, Any]]) -> dict[str, Any]:
    centers = bands[0]["centers_hz"]
    if any(b["centers_hz"] != centers for b in bands):
        raise SettingsError("cannot average analyses with different tonal-balance bands")
    out: dict[str, Any] = {"centers_hz": list(centers)}
    for key in bands[0]:
        if key != "centers_hz":
            stacked = np.asarray([b[key] for b in bands], dtype=np.float64)
            out[key] = [_nanmean(column) for column in stacked.T]
    return out


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _pool_warnings(lists: list[list[Any]]) -> list[Any]:
    pooled: list[Any] = []
    for warning in (w for ws in lists for w in ws):
        if warning not in pooled:
            pooled.append(warning)
    return pooled


def save_genre(profile: GenreProfile, path: str | os.PathLike) -> None:
    """Write ``profile`` as JSON, atomically (NaN becomes ``null``)."""
    data = {"name": profile.name, "description": profile.description, "target": profile.target,
            "features": _to_json(profile.features), "sources": list(profile.sources)}
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def _to_json(value: Any) -> Any:
    """Round floats to 4 decimals (far below any audible or reported step); NaN to None."""
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _from_json(value: Any) -> Any:
    """Inverse of `_to_json` for numbers: ``null`` back to NaN."""
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return math.nan if value is None else value
