"""Album mode: a set of songs mastered as one release.

One tonal target for every song (the reference, resolved once; each song is still corrected
toward it), the loudness steps between songs kept as the artist set them (a ballad stays
quieter than the single) unless ``same_loudness``, the loudest song on the delivery target,
and every song under its true-peak ceiling. Each song is written to ``DIR/<name>.<fmt>`` with
its sidecar (written last); a song whose sidecar records the same plan is finished and
skipped, so an interrupted album resumes. The album report (``DIR/album.json``) puts each
song's loudness, true peak and tonal balance side by side, with the album's loudness
integrated over the concatenation of the masters.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from automix import __version__, loudness
from automix.audio import (
    READ_EXTENSIONS,
    Audio,
    check_channels,
    check_format,
    load,
    save,
    write_text_atomic,
)
from automix.errors import OutputError, SettingsError
from automix.files import refuse_input
from automix.references import resolve
from automix.settings import MasterOptions, write_document

REPORT_NAME = "album.json"


def songs_of(paths: list[Path]) -> list[Path]:
    """The songs named: files as given, folders as their audio files (sorted by name)."""
    songs: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            songs += [p for p in sorted(path.iterdir()) if p.is_file()
                      and not p.name.startswith(".") and p.suffix.lower() in READ_EXTENSIONS]
        elif path.is_file():
            songs.append(path)
        else:
            raise SettingsError(f"{path}: no such file or folder")
    if len(songs) < 2:
        raise SettingsError("an album needs at least two songs")
    stems = [p.stem for p in songs]
    twins = sorted({s for s in stems if stems.count(s) > 1})
    if twins:
        raise SettingsError(f"two songs named {twins[0]!r}: rename one")
    return songs


def plan_targets(levels_lufs: dict[str, float], delivery_lufs: float, *,
                 same_loudness: bool = False) -> dict[str, float]:
    """Each song's loudness target: the loudest on ``delivery_lufs``, the others as far below
    it as they were below the loudest (or all on it with ``same_loudness``)."""
    loudest = max(levels_lufs.values())
    return {name: round(delivery_lufs if same_loudness else delivery_lufs + level - loudest, 2)
            for name, level in levels_lufs.items()}


def album(paths: list[Path], out_dir: Path, options: MasterOptions = MasterOptions(), *,
          same_loudness: bool = False, file_format: str = "wav", bit_depth: int = 24,
          force: bool = False, report_path: Path | None = None) -> dict[str, Any]:
    """Master ``paths`` (files or folders of songs) as one album into ``out_dir``; return the
    album report (also written as ``out_dir/album.json``, and as HTML at ``report_path``)."""
    from automix.mastering.pipeline import master

    check_format(file_format, bit_depth)
    songs = songs_of(paths)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference, delivery = resolve(options.reference, options.target,
                                  ceiling_dbtp=options.ceiling_dbtp,
                                  character=options.character, tone=options.tone_reference,
                                  dynamics=options.dynamics_reference)
    outputs = {p.stem: out_dir / f"{p.stem}.{file_format}" for p in songs}
    for path in songs:  # before any work: never the input, never another run's file
        out = outputs[path.stem]
        for written in (out, out.with_suffix(".json")):
            refuse_input(written, path)
            if written.exists() and not force and not _ours(out.with_suffix(".json")):
                raise OutputError(f"{written}: exists and is not this album's; use --force "
                                  "to overwrite")
    audio: dict[str, Audio] = {}
    levels: dict[str, float] = {}
    for path in songs:
        audio[path.stem] = load(path)
        check_channels(path, audio[path.stem].channels)
        a = audio[path.stem]
        levels[path.stem] = loudness.integrated_lufs(a.samples, a.sample_rate)
    targets = plan_targets(levels, delivery.integrated_lufs, same_loudness=same_loudness)
    rows = []
    for path in songs:
        name = path.stem
        out = outputs[name]
        sidecar = out.with_suffix(".json")
        plan = {"reference": reference.name, "target_lufs": targets[name],
                "ceiling_dbtp": delivery.ceiling_dbtp, "method": options.method}
        done = _finished(out, sidecar, plan) and not force
        if done:
            doc = json.loads(sidecar.read_text(encoding="utf-8"))
        else:
            tgt = replace(delivery, name=f"album: {targets[name]:g} LUFS",
                          integrated_lufs=targets[name],
                          description="the album's loudest song on the delivery target, "
                          "the others kept as far below it as they were")
            result = master(audio[name], reference, tgt, method=options.method,
                            amounts=options.amounts)
            save(out, result.audio, bit_depth=bit_depth, file_format=file_format)
            doc = {"automix": __version__, "input": str(path), "output": str(out),
                   "album": plan, **result.to_dict()}
            write_document(sidecar, doc)
        rows.append(_row(name, path, out, levels[name], targets[name], doc, done))
    report = {"automix": __version__, "reference": reference.to_dict(),
              "delivery": {"name": delivery.name, "integrated_lufs": delivery.integrated_lufs,
                           "ceiling_dbtp": delivery.ceiling_dbtp},
              "same_loudness": same_loudness, "songs": rows,
              "album_lufs": _album_lufs([Path(r["output"]) for r in rows])}
    write_document(out_dir / REPORT_NAME, report)
    if report_path is not None:
        from automix.report import render_album_html

        write_text_atomic(report_path, render_album_html(report))
        report["report"] = str(report_path)
    return report


def _ours(sidecar: Path) -> bool:
    """Whether ``sidecar`` was written by an album run (its song may be redone)."""
    try:
        return "album" in json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _finished(out: Path, sidecar: Path, plan: dict[str, Any]) -> bool:
    """The song's master and sidecar exist, and the sidecar records this plan."""
    if not (out.exists() and sidecar.exists()):
        return False
    try:
        return json.loads(sidecar.read_text(encoding="utf-8")).get("album") == plan
    except (OSError, ValueError):
        return False


def _row(name: str, path: Path, out: Path, level: float, target: float, doc: dict[str, Any],
         skipped: bool) -> dict[str, Any]:
    measured = doc["measurements"]["output"]
    return {"name": name, "input": str(path), "output": str(out),
            "input_lufs": round(level, 2), "target_lufs": target,
            "integrated_lufs": measured["integrated_lufs"],
            "true_peak_dbtp": measured["true_peak_dbtp"],
            "plr_db": measured["plr_db"], "width": measured["width"],
            "tonal_balance_error_db": doc["tonal_balance_error_db"]["output"],
            "bands": measured["bands"], "status": "skipped" if skipped else "done"}


def _album_lufs(outputs: list[Path]) -> float | None:
    """Integrated loudness over the masters played one after another (None when their sample
    rates differ)."""
    masters = [load(p) for p in outputs]
    rates = {m.sample_rate for m in masters}
    channels = {m.channels for m in masters}
    if len(rates) != 1 or len(channels) != 1:
        return None
    joined = np.concatenate([m.samples for m in masters], axis=1)
    return round(float(loudness.integrated_lufs(joined, rates.pop())), 2)

