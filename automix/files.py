"""Files in, files out: what the CLI, batch, the service and `automix.master_file` run.

This layer owns everything that touches the file system around the pipelines: checking the
output paths before any work (never over the input, never over an existing file without
``force``), reading the song, the settings and a reference file, choosing the in-memory or
the streamed path (`streaming.is_long`), and writing the master or mix, its JSON sidecar,
previews, the HTML report and processed stems. A failure removes everything the run wrote
(`audio.all_or_nothing`); the input is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from automix import __version__, analysis
from automix.audio import (
    Audio,
    BackgroundWriter,
    all_or_nothing,
    atomic_path,
    check_channels,
    check_format,
    check_writable,
    load,
    save,
    write_text_atomic,
)
from automix.errors import OutputError, SettingsError
from automix.previews import PREVIEW_NAMES
from automix.references import ReferenceCache, reference_file, resolve
from automix.settings import (
    SETTINGS_SUFFIXES,
    MasterOptions,
    MasterSettings,
    MixOptions,
    MixSettings,
    OutputOptions,
    Reference,
    read_master_settings,
    read_mix_settings,
    request_of,
    write_document,
)

# --- output paths -----------------------------------------------------------------------------


def output_paths(input_path: Path, out: Path, force: bool) -> tuple[Path, Path]:
    """The output audio path and its JSON sidecar, checked: refuses the input itself, folders,
    and existing files without ``force``."""
    refuse_input(out, input_path)
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; give a file name")
    check_writable(out.parent)  # before any work, not after minutes of it
    sidecar = out.with_suffix(".json")
    for path in (out, sidecar):
        if path.exists() and not force:
            raise OutputError(f"{path}: exists; use --force to overwrite")
    return out, sidecar


def preview_paths(out_path: Path) -> list[Path]:
    """The folder ``<output>_preview`` beside an output, and every file previews may write
    there."""
    folder = out_path.with_name(f"{out_path.stem}_preview")
    return [folder] + [folder / f"{name}.wav" for name in PREVIEW_NAMES]


def refuse_input(path: Path, input_path: Path) -> None:
    """`OutputError` when ``path`` is the input (through ``..``, links or another spelling)."""
    if path.exists() and input_path.exists() and path.resolve() == input_path.resolve():
        raise OutputError(f"{path}: refusing to write over the input")


def check_report(report: Path | None, input_path: Path, force: bool) -> None:
    """The HTML report's path: never the input, nor an existing file without ``force``."""
    if report is not None and report.exists():
        refuse_input(report, input_path)
        if not force:
            raise OutputError(f"{report}: exists; use --force to overwrite")


def check_settings_output(output: Path, force: bool) -> None:
    if output.exists() and not force:
        raise OutputError(f"{output}: exists; use --force to overwrite")
    if output.suffix.lower() not in SETTINGS_SUFFIXES:
        raise SettingsError(f"{output}: settings files end in .json, .yaml or .yml")


# --- mastering --------------------------------------------------------------------------------


def master_file(input_path: Path, options: MasterOptions = MasterOptions(),
                output: OutputOptions = OutputOptions(), *,
                cache: ReferenceCache | None = None,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Master one file end to end; return the JSON report (also written as the sidecar).

    Writes the master, its sidecar, and as ``output`` asks, previews (folder
    ``<output>_preview``) and an HTML report. Nothing is written when anything before the
    write fails. A file longer than `streaming.STREAMING_MIN_SAMPLES` is mastered in blocks
    (bounded memory; the DSP matcher). ``cache`` keeps reference files' analyses across calls.
    ``progress`` is called with each stage's name as it starts ("master", then "write").
    """
    from automix.mastering import streaming

    input_path = Path(input_path)
    check_format(output.file_format, output.bit_depth)
    default = input_path.with_name(f"{input_path.stem}_master.{output.file_format}")
    out_path, sidecar = output_paths(input_path, output.output or default, output.force)
    check_report(output.report, input_path, output.force)
    if output.preview:  # an input named like a preview, in the previews' folder
        for path in preview_paths(out_path)[1:]:
            refuse_input(path, input_path)
    step = progress or (lambda stage: None)
    step("master")
    with all_or_nothing() as written:  # a failure below removes what this run wrote
        if streaming.is_long(input_path):  # hours of audio: blocks, in bounded memory
            result, span = _master_streamed(input_path, out_path, options, output, cache)
            written.append(out_path)
            sr = result.input.sample_rate
            previews_of = (Audio(streaming.read_span(input_path, *span), sr),
                           Audio(streaming.read_span(out_path, *span), sr))
        else:
            song, result = _master_in_memory(input_path, out_path, options, output, cache,
                                              written)
            previews_of = (song, result.audio)
        step("write")
        report = {"automix": __version__, "input": str(input_path), "output": str(out_path),
                  "request": request_of(options, output), **result.to_dict()}
        write_extras(report, written, out_path=out_path, sidecar=sidecar,
                     reference=result.reference,
                     previews_of=previews_of if output.preview else None,
                     report_path=output.report)
    report["sidecar"] = str(sidecar)
    return report


def _master_in_memory(input_path: Path, out_path: Path, options: MasterOptions,
                      output: OutputOptions, cache: ReferenceCache | None, written: list
                      ) -> tuple[Audio, Any]:
    """The song held whole; the master is written while it is measured (and discarded if
    anything fails first)."""
    writer = BackgroundWriter(out_path, bit_depth=output.bit_depth,
                              file_format=output.file_format)
    try:
        song, result = _run(input_path, options, writer, cache)
    except BaseException:
        writer.discard()
        raise
    written.append(writer.commit() if writer.started else save(
        out_path, result.audio, bit_depth=output.bit_depth, file_format=output.file_format))
    return song, result


def _master_streamed(input_path: Path, out_path: Path, options: MasterOptions,
                     output: OutputOptions, cache: ReferenceCache | None) -> tuple[Any, Any]:
    from automix.mastering import streaming

    check_channels(input_path, streaming.file_format_of(input_path)[1])
    settings = read_master_settings(options.settings) if options.settings else None
    ref, tgt = resolve(options.reference, options.target, ceiling_dbtp=options.ceiling_dbtp,
                       settings=settings, character=options.character,
                       tone=options.tone_reference, dynamics=options.dynamics_reference,
                       cache=cache)
    return streaming.master_stream(input_path, out_path, ref, tgt, method=options.method,
                                   settings=settings, amounts=options.amounts,
                                   refit_gain=options.refit_gain, bit_depth=output.bit_depth,
                                   file_format=output.file_format)


def _run(input_path: Path, options: MasterOptions, writer: BackgroundWriter | None = None,
         cache: ReferenceCache | None = None) -> tuple[Audio, Any]:
    """Read, resolve and master in memory: (the song, its `MasterResult`)."""
    from automix.mastering.pipeline import master

    t0 = time.perf_counter()
    song, settings, ref_audio = _inputs(input_path, options, cache)
    timings = {"read": time.perf_counter() - t0}
    input_analysis = ref_analysis = None
    if ref_audio is not None:  # a reference file to analyse: beside the song (analyze_many)
        t0 = time.perf_counter()
        input_analysis, ref_analysis = analysis.analyze_many(
            [(song.samples, song.sample_rate), (ref_audio.samples, ref_audio.sample_rate)])
        timings["analyse"] = time.perf_counter() - t0
        del ref_audio  # the master need not hold 64 MB of it for 3 min of stereo
    ref, tgt = resolve(options.reference, options.target, ceiling_dbtp=options.ceiling_dbtp,
                       settings=settings, character=options.character,
                       tone=options.tone_reference, dynamics=options.dynamics_reference,
                       analysed=ref_analysis, cache=cache)
    result = master(song, ref, tgt, method=options.method, settings=settings,
                    amounts=options.amounts, refit_gain=options.refit_gain,
                    refine_steps=options.refine_steps, refine_seconds=options.refine_seconds,
                    writer=writer, input_analysis=input_analysis)
    result.timings_s = {**timings, **result.timings_s}
    return song, result


def _inputs(input_path: Path, options: MasterOptions, cache: ReferenceCache | None
            ) -> tuple[Audio, MasterSettings | None, Audio | None]:
    """The song, loaded; the settings, read; and the reference file's content when it is a
    file to analyse (not in ``cache``), else None. The reference is decoded beside the song
    (libsndfile releases the GIL), its errors still coming after the song's and the
    settings'."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        path = reference_file(options.reference)
        fresh = path is not None and (cache is None or cache.get(path) is None)
        pending = pool.submit(load, path) if fresh else None
        song = load(input_path)
        check_channels(input_path, song.channels)
        settings = read_master_settings(options.settings) if options.settings else None
        if pending is None:
            return song, settings, None
        ref_audio = pending.result()
        check_channels(path, ref_audio.channels)
        return song, settings, ref_audio


def suggest_file(input_path: Path, output: Path, options: MasterOptions = MasterOptions(), *,
                 force: bool = False, cache: ReferenceCache | None = None) -> dict[str, Any]:
    """Suggest settings (JSON or YAML by suffix) with the measurements that motivated them."""
    check_settings_output(output, force)
    _, result = _run(Path(input_path), replace(options, settings=None), cache=cache)
    full = result.to_dict()
    ref = full["reference"]["features"]
    inp = full["measurements"]["input"]
    document = {
        "automix": __version__,
        "input": str(input_path),
        "method": result.method,
        "reference": {k: v for k, v in full["reference"].items() if k != "features"},
        "target": full["target"],
        "settings": full["settings"],
        "motivation": {
            "eq": "fitted to the mid tonal-balance difference, reference minus input (dB)",
            "tonal_difference_db": {
                "centers_hz": inp["bands"]["centers_hz"],
                "difference_db": [None if a is None or b is None else round(b - a, 2)
                                  for a, b in zip(inp["bands"]["mid_db"],
                                                  ref["bands"]["mid_db"], strict=True)]},
            "dynamics": {"input_plr_db": inp["plr_db"], "reference_plr_db": ref["plr_db"]},
            "width": {"input": inp["width"], "reference": ref["width"]},
            "loudness": {"input_lufs": inp["integrated_lufs"],
                         "target_lufs": full["target"]["integrated_lufs"]},
        },
        "measurements": {"input": inp, "reference": ref},
        "expected_result": full["measurements"]["output"],
    }
    write_document(output, document)
    return document


# --- mixing -----------------------------------------------------------------------------------


def mix_file(stems_dir: Path, options: MixOptions = MixOptions(),
             output: OutputOptions = OutputOptions(), *, stems_out: Path | None = None,
             cache: ReferenceCache | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Mix one folder of stems end to end; return the JSON report (also written as the sidecar).

    Writes the mix (default ``<folder>_mix.<fmt>`` beside the folder), its sidecar (settings
    in real units, re-renderable with ``options.settings``; measurements; warnings), and
    as ``output`` asks, previews and an HTML report; and the processed stems (``stems_out``,
    one ``<stem name>.<fmt>`` each, after its chain and before the master, without the
    reverb). Nothing is written when anything before the write fails. A mix longer than
    `pipeline.STREAMED_MIX_MIN_S` (without ``stems_out``) is mastered from a temporary file
    in blocks, straight to its output (`pipeline.StreamedOutput`). ``progress`` is called
    with each stage's name as it starts ("load", then `mixing.pipeline.mix`'s, then
    "write"); the report's ``timings_s`` holds every stage's seconds and their "total".
    """
    from automix.mastering import streaming
    from automix.mixing.pipeline import StreamedOutput, is_long_mix, mix
    from automix.mixing.stems import as_played, load_stems

    stems_dir = Path(stems_dir)
    fmt, depth, force = output.file_format, output.bit_depth, output.force
    check_format(fmt, depth)
    default = stems_dir.with_name(f"{stems_dir.name}_mix.{fmt}")
    out_path, sidecar = output_paths(stems_dir, output.output or default, force)
    for path in (output.report, stems_out):
        if path is not None and path.exists() and not force and path.is_file():
            raise OutputError(f"{path}: exists; use --force to overwrite")
    step = progress or (lambda stage: None)
    start = time.perf_counter()
    step("load")
    stems, sample_rate, warnings = load_stems(stems_dir)
    load_s = time.perf_counter() - start
    stem_paths = []
    if stems_out is not None:
        if stems_out.exists() and not stems_out.is_dir():
            raise OutputError(f"{stems_out}: is a file; give a folder for the processed stems")
        stem_paths = [stems_out / f"{Path(s.name).stem}.{fmt}" for s in stems]
        existing = [p for p in stem_paths if p.exists()]
        if existing and not force:
            raise OutputError(f"{existing[0]}: exists; use --force to overwrite")
    previews = preview_paths(out_path)[1:] if output.preview else []
    for path in (out_path, sidecar, output.report, *stem_paths, *previews):  # there, a stem
        if path is not None and stems_dir.resolve() in (path.parent.resolve(),
                                                         path.resolve().parent):  # or a link
            raise OutputError(f"{path}: refusing to write over the input (the stems folder)")
    settings = read_mix_settings(options.settings) if options.settings else None
    stems, settings = _with_user_roles(stems, settings, options)
    ref, tgt = resolve(options.reference, options.target, ceiling_dbtp=options.ceiling_dbtp,
                       settings=settings.master if settings is not None else None,
                       character=options.character,
                       tone=options.tone_reference, dynamics=options.dynamics_reference,
                       cache=cache)
    streamed = stems_out is None and is_long_mix(stems, sample_rate)
    result = mix(stems, sample_rate, ref, tgt, method=options.method, settings=settings,
                 amounts=options.amounts, load_warnings=warnings,
                 refine_steps=options.refine_steps, keep_balance=options.keep_balance,
                 progress=step, keep_processed=stems_out is not None,
                 output=StreamedOutput(out_path, depth, fmt) if streamed else None)
    step("write")
    t0 = time.perf_counter()
    with all_or_nothing() as written:  # a failure below removes what this run wrote
        if streamed:  # already written, in blocks (a long mix)
            written.append(out_path)
        else:
            written.append(save(out_path, result.audio, bit_depth=depth, file_format=fmt))
        report = {"automix": __version__, "input": str(stems_dir), "output": str(out_path),
                  "request": request_of(options, output), **result.to_dict()}
        if stems_out is not None:
            if not stems_out.is_dir():
                stems_out.mkdir(parents=True)
                written.append(stems_out)
            for path, dry in zip(stem_paths, result.processed, strict=True):
                written.append(save(path, Audio(dry, sample_rate), bit_depth=depth,
                                    file_format=fmt))
            report["stems_out"] = [str(p) for p in stem_paths]
        previews_of = None
        if output.preview:
            first, last = result.preview_span or (0, stems[0].frames)
            after = (Audio(streaming.read_span(out_path, first, last), sample_rate)
                     if streamed else result.audio)
            previews_of = (Audio(np.sum([as_played(s, first, last) for s in stems], axis=0),
                                 sample_rate), after)
        write_extras(report, written, out_path=out_path, sidecar=sidecar, reference=ref,
                     previews_of=previews_of, report_path=output.report)
        end = time.perf_counter()
        report["timings_s"] = {"load": round(load_s, 3), **report["timings_s"],
                               "write": round(end - t0, 3), "total": round(end - start, 3)}
        write_document(sidecar, report)  # again, with the whole run timed
    report["sidecar"] = str(sidecar)
    return report


def suggest_mix_file(stems_dir: Path, output: Path, options: MixOptions = MixOptions(), *,
                     force: bool = False, cache: ReferenceCache | None = None
                     ) -> dict[str, Any]:
    """Suggest mix settings (JSON or YAML by suffix): every stem's chain, the reverb and the
    master, in real units, with the measurements behind them; `mix --settings` renders it."""
    from automix.mixing.pipeline import mix
    from automix.mixing.stems import load_stems

    check_settings_output(output, force)
    stems, sample_rate, warnings = load_stems(Path(stems_dir))
    stems, _ = _with_user_roles(stems, None, options)
    ref, tgt = resolve(options.reference, options.target, ceiling_dbtp=options.ceiling_dbtp,
                       character=options.character,
                       tone=options.tone_reference, dynamics=options.dynamics_reference,
                       cache=cache)
    full = mix(stems, sample_rate, ref, tgt, method=options.method, amounts=options.amounts,
               load_warnings=warnings, keep_balance=options.keep_balance).to_dict()
    document = {
        "automix": __version__, "input": str(stems_dir), "method": full["method"],
        "reference": {k: full["reference"][k] for k in ("name", "kind")},
        "target": full["target"], "settings": full["settings"], "stems": full["stems"],
        "measurements": {"mix_bus": full["measurements"]["input"],
                         "reference": full["reference"]["features"]},
        "expected_result": full["measurements"]["output"], "warnings": full["warnings"],
    }
    write_document(output, document)
    return document


def _with_user_roles(stems: list, settings: MixSettings | None, options: MixOptions
                     ) -> tuple[list, MixSettings | None]:
    """The stems with the roles the user gave (the settings file's ``roles``, then
    ``--role``, which wins), and the settings to render: None when the file held only roles
    (the mix is suggested with them)."""
    from automix.mixing.stems import with_roles

    roles = {**(settings.roles if settings else {}), **options.roles}
    if settings is not None and not settings.stems:
        settings = None
    return with_roles(stems, roles) if roles else stems, settings


# --- what comes after the audio ---------------------------------------------------------------


def write_extras(report: dict[str, Any], written: list, *, out_path: Path, sidecar: Path,
                 reference: Reference, previews_of: tuple[Audio, Audio] | None = None,
                 report_path: Path | None = None) -> None:
    """After the master is written: previews (of ``previews_of``, before and after), the HTML
    report and the sidecar; each path is added to ``written`` (see `audio.all_or_nothing`)."""
    if previews_of is not None:
        from automix.previews import write_previews

        ref_audio = load(reference.sources[0]) if reference.sources else None
        folder = preview_paths(out_path)[0]
        if not folder.is_dir():
            written.append(folder)
        previews = write_previews(folder, *previews_of, ref_audio)
        written.extend(previews.values())
        report["previews"] = {k: str(v) for k, v in previews.items()}
    if report_path is not None:
        from automix.report import render_html

        written.append(write_text_atomic(report_path, render_html(report)))
        report["report"] = str(report_path)
    write_document(sidecar, report)


# --- a user's own plug-in chain ---------------------------------------------------------------


def chain_folder(master_path: Path) -> Path:
    """Where ``master --chain`` writes the chain's presets: ``<master>_chain/`` beside it."""
    return master_path.with_name(f"{master_path.stem}_chain")


def chain_master_file(input_path: Path, specs: list[str], options: MasterOptions = MasterOptions(),
                      output: OutputOptions = OutputOptions(), *, budget_s: float | None = None,
                      presets: bool = True,
                      progress: Callable[[str], None] | None = None,
                      on_step: Callable[[float, float], None] | None = None) -> dict[str, Any]:
    """Master one file through the user's VST3 chain ``specs`` (`plugins.chain.master`): the
    master and its sidecar (with the chain's found parameters under ``chain``), and with
    ``presets`` one ``.vstpreset`` per plug-in in `chain_folder`. The reference and target
    resolve as for `master_file`; given settings are refused (the chain replaces them)."""
    from automix.plugins import chain

    if options.settings is not None:
        raise SettingsError("--chain and --settings: choose one (the chain replaces settings)")
    input_path = Path(input_path)
    check_format(output.file_format, output.bit_depth)
    default = input_path.with_name(f"{input_path.stem}_master.{output.file_format}")
    out_path, sidecar = output_paths(input_path, output.output or default, output.force)
    check_report(output.report, input_path, output.force)
    if output.preview:
        for path in preview_paths(out_path)[1:]:
            refuse_input(path, input_path)
    folder = chain_folder(out_path)
    if presets and not output.force and folder.is_dir() and any(folder.glob("*.vstpreset")):
        raise OutputError(f"{folder}: holds presets; use --force to overwrite")
    step = progress or (lambda stage: None)
    step("read")
    song, _, ref_audio = _inputs(input_path, options, None)
    ref_analysis = (analysis.analyze(ref_audio.samples, ref_audio.sample_rate)
                    if ref_audio is not None else None)
    ref, tgt = resolve(options.reference, options.target, ceiling_dbtp=options.ceiling_dbtp,
                       character=options.character, tone=options.tone_reference,
                       dynamics=options.dynamics_reference, analysed=ref_analysis)
    step("optimise the chain")
    result, found, stages = chain.master(
        song, ref, tgt, specs, budget_s=chain.BUDGET_S if budget_s is None else budget_s,
        on_step=on_step)
    try:
        step("write")
        with all_or_nothing() as written:
            written.append(save(out_path, result.audio, bit_depth=output.bit_depth,
                                file_format=output.file_format))
            if presets:
                if not folder.is_dir():
                    written.append(folder)
                    folder.mkdir()
                for i, (stage, row) in enumerate(zip(stages, found["plugins"], strict=True)):
                    path = folder / f"{i + 1:02d}-{stage.name}.vstpreset"
                    with atomic_path(path) as tmp:
                        Path(tmp).write_bytes(chain.preset_bytes(stage, song.sample_rate))
                    written.append(path)
                    row["preset"] = str(path)
            report = {"automix": __version__, "input": str(input_path),
                      "output": str(out_path), "request": request_of(options, output),
                      **result.to_dict(), "chain": found}
            write_extras(report, written, out_path=out_path, sidecar=sidecar,
                         reference=result.reference, report_path=output.report,
                         previews_of=(song, result.audio) if output.preview else None)
    finally:
        chain.close(stages)
    report["sidecar"] = str(sidecar)
    return report
