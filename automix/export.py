"""Export master settings to real plug-ins a DAW loads (issue #19): files in, files out.

`export_plugins` reads a settings file (what `suggest` writes, or a master's sidecar), maps
it onto a plug-in set (`PLUGIN_SETS`: the Zam plug-ins, `automix.plugins.zam`) and writes
into a folder, in chain order, one ``.vstpreset`` per plug-in, ``sheet.md`` (plug-in,
parameter, value with unit) and ``chain.json`` (the same, with the fit's notes and errors).
Given the song the settings were made for, the compressor and limiter are fitted to it and
the song rendered through the plug-ins is written too (``<song>.zam.wav``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from automix.audio import Audio, atomic_path, check_writable, load, save, write_text_atomic
from automix.errors import OutputError, PluginError, SettingsError, did_you_mean
from automix.settings import MasterSettings, read_master_settings

PLUGIN_SETS = ("zam",)
EXPORT_SAMPLE_RATE = 48000  # the presets' rate when no song gives one


def check_plugin_set(name: str) -> None:
    if name not in PLUGIN_SETS:
        raise SettingsError(f"--plugins {name!r}: unknown plug-in set; known: "
                            f"{', '.join(PLUGIN_SETS)}{did_you_mean(name, list(PLUGIN_SETS))}")


def check_installed() -> None:
    from automix.plugins import zam

    absent = zam.missing()
    if absent:
        raise PluginError(f"{', '.join(absent)} not found in {zam.vst3_dir()}: install "
                          f"Debian's zam-plugins (apt-get install zam-plugins) or set "
                          f"{zam.VST3_DIR_ENV}")


def plugins_folder(master_path: Path, plugins: str) -> Path:
    """Where ``master --plugins`` writes: beside the master, ``<master>_<plugins>/``."""
    master_path = Path(master_path)
    return master_path.with_name(f"{master_path.stem}_{plugins}")


def export_plugins(settings_path: Path, out_dir: Path, *, plugins: str = "zam",
                   song: Path | None = None, sample_rate: int | None = None,
                   force: bool = False) -> dict[str, Any]:
    """Write the plug-in presets, sheet and chain of ``settings_path`` into ``out_dir``
    (created); returns the report (files, per-module errors, notes)."""
    check_plugin_set(plugins)
    settings = read_master_settings(Path(settings_path))
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: not a folder (a file has this name)")
    audio = load(song) if song is not None else None
    check_installed()
    out_dir.mkdir(parents=True, exist_ok=True)
    check_writable(out_dir)
    return write_export(settings, out_dir, audio=audio,
                        song_name=Path(song).stem if song is not None else None,
                        sample_rate=sample_rate, force=force)


def write_export(settings: MasterSettings, out_dir: Path, *, audio: Audio | None = None,
                 song_name: str | None = None, sample_rate: int | None = None,
                 force: bool = False) -> dict[str, Any]:
    """`export_plugins` for settings and audio in memory (``master --plugins`` calls it)."""
    from automix.plugins import zam

    if audio is not None:
        fitted = zam.fit(settings, audio.samples, audio.sample_rate)
        chain, errors, rendered = fitted.chain, fitted.errors, fitted.samples
    else:
        chain = zam.build(settings, sample_rate or EXPORT_SAMPLE_RATE)
        errors, rendered = zam.ModuleErrors(eq_max_db=zam.eq_error_db(chain, settings)), None
    presets = zam.preset_files(chain)
    names = [name for name, _ in presets] + ["sheet.md", "chain.json"]
    wav_name = f"{song_name or 'song'}.zam.wav"
    if rendered is not None:
        names.append(wav_name)
    existing = [name for name in names if (out_dir / name).exists()]
    if existing and not force:
        raise OutputError(f"{out_dir / existing[0]}: exists; use --force to overwrite")
    for name, preset in presets:
        data = zam.preset_bytes(preset)
        with atomic_path(out_dir / name) as tmp:
            Path(tmp).write_bytes(data)
    write_text_atomic(out_dir / "sheet.md", zam.sheet(chain, errors))
    report = {
        "plugins": "zam",
        "sample_rate": chain.sample_rate,
        "chain": [{"file": name, "plugin": p.plugin, "label": p.label, "role": p.role,
                   "controls": {k: round(v, 6) for k, v in p.controls.items()}}
                  for name, p in presets],
        "width_pct": chain.width_pct,
        "notes": list(chain.notes),
        "errors": {k: (None if v is None else round(v, 4)) for k, v in asdict(errors).items()},
        "warnings": zam.misses(errors),
        "settings": settings.to_dict(),
        "files": [str(out_dir / name) for name in names],
    }
    write_text_atomic(out_dir / "chain.json", json.dumps(report, indent=2) + "\n")
    if rendered is not None:
        save(out_dir / wav_name, Audio(rendered, chain.sample_rate), bit_depth=24)
    return report
