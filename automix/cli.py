"""The `automix` command line. No DSP here: parse, call the library, print, exit.

Every `AutomixError` becomes one line on stderr and exit code 1; so does any unexpected
exception (set ``AUTOMIX_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from automix import memory
from automix.errors import AutomixError, OutputError, SettingsError, first_line

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Automatic mixing and mastering toward a reference production.")
out_console = Console()
err_console = Console(stderr=True)


class Method(str, Enum):
    dsp = "dsp"
    network = "network"


class MixMethod(str, Enum):
    dsp = "dsp"
    network = "network"
    authors = "authors"


TARGET_HELP = ("Delivery target: a platform (spotify, apple, ...: `automix presets`), a "
               "loudness in LUFS (-12), keep (the input's own), or a target .json file.")
FORMAT_HELP = "wav or flac (default: from the output's name, else wav)."
AMOUNT_HELP = ("Scale toward neutral, 0..1 (1: as suggested): one number for every module, or "
               "eq=0.5,dynamics=1,width=0,reverb=0.5. dynamics: the master's compressor and, in "
               "a mix, every stem's; reverb: the stems' sends as power (0.5: 3 dB down, 0: "
               "off; a master has none).")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("automix")
        except PackageNotFoundError:  # run from a source tree that is not installed
            from automix import __version__ as number
        out_console.print(f"automix {number}", highlight=False)
        raise typer.Exit()


@app.callback()
def tune_memory(ctx: typer.Context, show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")) -> None:
    """Cheap fresh memory for the commands (see `automix.memory`); numpy is imported after
    this runs. The long-running ones (the server, whose workers tune their own, and training)
    keep glibc's defaults, which return freed memory. No command collects garbage at exit."""
    memory.skip_huge_page_advice()
    if ctx.invoked_subcommand not in ("serve", "train"):
        memory.keep_freed_memory()
    memory.skip_exit_collection()


PROGRESS_ENV = "AUTOMIX_PROGRESS"  # "1": show stage progress even when stderr is no terminal


@contextmanager
def _stages(title: str, as_json: bool) -> Iterator[Callable[[str], None] | None]:
    """A progress callback for a pipeline's stages, shown on stderr (a spinner with the
    stage's name and the time so far, cleared at the end) when stderr is a terminal (or
    ``AUTOMIX_PROGRESS=1``) and --json does not own the output; else None."""
    forced = os.environ.get(PROGRESS_ENV) == "1"
    if as_json or not (forced or err_console.is_terminal):
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, force_terminal=True) if forced else err_console
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(title, total=None)
        yield lambda stage: bar.update(task, description=f"{title}: {stage}", refresh=True)


def _fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors into one line and a non-zero exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except AutomixError as exc:
            _fail(first_line(exc))
        except KeyboardInterrupt:
            _fail("interrupted; no partial output was left", 130)
        except MemoryError:
            _fail("out of memory")
        except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
            if os.environ.get("AUTOMIX_DEBUG"):
                raise
            _fail(f"internal error ({type(exc).__name__}: {first_line(exc, '')}); "
                  "rerun with AUTOMIX_DEBUG=1 and report it")

    return wrapper


@app.command()
@guarded
def master(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="The song to master."),
    reference: list[str] | None = typer.Option(
        None, "--reference", "-r", help="A genre preset (see `automix presets`) or an audio "
        "file (default pop); repeat it to average several."),
    tone_reference: str | None = typer.Option(
        None, "--tone-reference", help="Take the tonal balance from this preset or file."),
    dynamics_reference: str | None = typer.Option(
        None, "--dynamics-reference",
        help="Take the dynamics (crest, PLR) and width from this preset or file."),
    character: str | None = typer.Option(
        None, "--character", help="Move the target: warm, bright, wide, ... with an amount, "
        "e.g. warm:0.5,wide (see `automix presets`)."),
    target: str | None = typer.Option(None, "--target", "-t", help=TARGET_HELP),
    ceiling_dbtp: float | None = typer.Option(None, "--ceiling",
                                                 help="True-peak ceiling in dBTP."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file."),
    file_format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    bit_depth: int = typer.Option(24, "--bit-depth", help="16 (TPDF-dithered), 24, or 32 float."),
    method: Method | None = typer.Option(
        None, "--method", help="How settings are suggested: dsp (the default) or network."),
    settings_path: Path | None = typer.Option(
        None, "--settings", help="Render exactly these settings (JSON/YAML from suggest)."),
    amount: str | None = typer.Option(
        None, "--amount", help=AMOUNT_HELP),
    preview: bool = typer.Option(False, "--preview",
                                 help="Write loudness-matched 30-s previews for A/B."),
    report_path: Path | None = typer.Option(None, "--report",
                                               help="Write a self-contained HTML report."),
    refit_gain: bool = typer.Option(
        False, "--refit-gain", help="With --settings: find the gain to the target again."),
    refine_steps: int | None = typer.Option(
        None, "--refine-steps", min=0,
        help="Network: refinement steps through the twin (default 0: prediction only)."),
    refine_seconds: float | None = typer.Option(
        None, "--refine-seconds", min=0.0,
        help="Network: refinement time budget in seconds (default 8)."),
    plugins: str | None = typer.Option(
        None, "--plugins", help="Also export the master's settings to real plug-ins (zam), "
        "fitted to this song, into <output>_zam/ (see `automix export`)."),
    chain: str | None = typer.Option(
        None, "--chain", help="Your own VST3 chain, e.g. ZamEQ2,ZamCompX2 or a.vst3,b.vst3: "
        "its parameters are optimised toward automix's own master toward the reference, then "
        "finalised to the target."),
    chain_seconds: float | None = typer.Option(
        None, "--chain-seconds", min=0.0, help="--chain: the search's time budget (default 30)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report to stdout."),
) -> None:
    """Master INPUT toward a reference and a delivery target."""
    memory.prefault(memory.prefault_bytes(input_path))  # while the imports below run
    from automix.files import master_file
    from automix.settings import Amounts, MasterOptions, OutputOptions

    if chain is not None and plugins is not None:
        _fail("--chain and --plugins: choose one")
    if chain is not None and (method is not None or amount is not None):  # not ignored silently
        _fail("--chain searches your plug-ins' own parameters: --method and --amount are for "
              "automix's chain")
    if plugins is not None:  # refused before minutes of work, not after
        from automix.export import check_installed, check_plugin_set

        check_plugin_set(plugins)
        check_installed()

    options = MasterOptions(reference=_references(reference), tone_reference=tone_reference,
                            dynamics_reference=dynamics_reference, target=target,
                            ceiling_dbtp=ceiling_dbtp,
                            amounts=Amounts.parse(amount), character=character,
                            settings=settings_path, refit_gain=refit_gain,
                            **_given(refine_steps=refine_steps, refine_seconds=refine_seconds,
                                     method=method and method.value))
    _threads(options.method)
    if chain is not None:
        _master_chain(input_path, chain, chain_seconds, options, OutputOptions(
            output=output, file_format=file_format, bit_depth=bit_depth, force=force,
            preview=preview, report=report_path), as_json)
        return
    with _stages(f"master {input_path.name}", as_json) as progress:
        report = master_file(input_path, options, OutputOptions(
            output=output, file_format=file_format, bit_depth=bit_depth, force=force,
            preview=preview, report=report_path), progress=progress)
        if plugins is not None:
            from automix.export import export_plugins, plugins_folder

            if progress is not None:
                progress(f"export to {plugins}")
            folder = plugins_folder(Path(report["output"]), plugins)
            exported = export_plugins(Path(report["sidecar"]), folder, plugins=plugins,
                                      song=input_path, force=force)
            report["plugins"] = {"folder": str(folder), "errors": exported["errors"],
                                 "warnings": exported["warnings"]}
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_master(report)
        if plugins is not None:
            errors = report["plugins"]["errors"]
            out_console.print(
                f"wrote {report['plugins']['folder']}: {plugins} presets and sheet (EQ within "
                f"{errors['eq_max_db']:.2f} dB, {errors['master_lu']:+.2f} LU, true peak "
                f"{errors['true_peak_dbtp']:.2f} dBTP)", highlight=False)
            for miss in report["plugins"]["warnings"]:
                out_console.print(f"warning: {miss}", highlight=False)


def _master_chain(input_path: Path, chain: str, seconds: float | None, options: Any,
                  output: Any, as_json: bool) -> None:
    """``master --chain``: the search's progress as a bar on stderr (as `_stages` shows
    stages), the master written like any, the found parameters printed."""
    from automix.files import chain_master_file
    from automix.plugins.chain import close, load_chain, parse

    specs = parse(chain)
    close(load_chain(specs, 48000))  # refused before any work, not after the search
    with _chain_bar(f"master {input_path.name}", as_json) as (progress, on_step):
        report = chain_master_file(input_path, specs, options, output, budget_s=seconds,
                                   progress=progress, on_step=on_step)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    _print_master(report)
    found = report["chain"]
    errors = found["tonal_balance_error_db"]
    out_console.print(
        f"chain: {errors['defaults']:.2f} dB from the tonal balance of automix's own master at "
        f"the plug-ins' defaults, {errors['optimised']:.2f} dB optimised "
        f"({found['evaluations']} renders of {found['excerpt_s']:g} s in "
        f"{found['seconds']:.1f} s)", highlight=False)
    for row in found["plugins"]:
        values = ", ".join(f"{p['parameter']} {p['value']}{' ' + p['unit'] if p['unit'] else ''}"
                           for p in row["parameters"])
        out_console.print(f"  {row['plugin']}: {values}", highlight=False)


@contextmanager
def _chain_bar(title: str, as_json: bool) -> Iterator[tuple[Any, Any]]:
    """(stage callback, search callback) drawing one bar on stderr, when `_stages` would
    show its spinner; else (None, None)."""
    forced = os.environ.get(PROGRESS_ENV) == "1"
    if as_json or not (forced or err_console.is_terminal):
        yield None, None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, force_terminal=True) if forced else err_console
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(title, total=1.0)

        def stage(name: str) -> None:
            bar.update(task, description=f"{title}: {name}", refresh=True)

        def step(fraction: float, best_db: float) -> None:
            bar.update(task, completed=fraction,
                       description=f"{title}: optimise the chain, {best_db:.2f} dB", refresh=True)

        yield stage, step


@app.command()
@guarded
def suggest(
    input_path: Path = typer.Argument(..., metavar="INPUT",
                                      help="A song, or a folder of stems (suggests a mix)."),
    output: Path = typer.Option(..., "--output", "-o", help="settings.json or settings.yaml"),
    reference: list[str] | None = typer.Option(
        None, "--reference", "-r", help="A genre preset or an audio file; repeat to average."),
    tone_reference: str | None = typer.Option(None, "--tone-reference", help="As for master."),
    dynamics_reference: str | None = typer.Option(None, "--dynamics-reference",
                                                  help="As for master."),
    character: str | None = typer.Option(None, "--character", help="As for master."),
    target: str | None = typer.Option(None, "--target", "-t", help=TARGET_HELP),
    ceiling_dbtp: float | None = typer.Option(None, "--ceiling", help="True-peak ceiling."),
    method: MixMethod | None = typer.Option(
        None, "--method", help="How settings are suggested (default: dsp for a song, authors "
        "for stems; authors: stems only, as for mix)."),
    amount: str | None = typer.Option(None, "--amount", help=AMOUNT_HELP),
    role: list[str] | None = typer.Option(None, "--role", help="Stems: NAME=ROLE, as for mix."),
    keep_balance: float | None = typer.Option(None, "--keep-balance",
                                                 help="Stems: 0..1, as for mix."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write suggested settings (real units) and the measurements behind them; edit, then
    render them with `automix master INPUT --settings FILE` (a folder of stems: `automix mix`,
    after a table of every stem's compressor and send and why)."""
    from automix.files import suggest_file, suggest_mix_file
    from automix.settings import Amounts, MasterOptions, MixOptions

    common = {"reference": _references(reference), "tone_reference": tone_reference,
              "dynamics_reference": dynamics_reference,
              "target": target, "ceiling_dbtp": ceiling_dbtp,
              "amounts": Amounts.parse(amount), "character": character,
              **_given(method=method and method.value)}
    if input_path.is_dir():  # a folder of stems: suggest a mix
        from automix.mixing.roles import parse_roles

        options: MasterOptions | MixOptions = MixOptions(
            **common, roles=parse_roles(role), **_given(keep_balance=keep_balance))
        _threads(options.method)
        doc = suggest_mix_file(input_path, output, options, force=force)
    else:
        options = MasterOptions(**common)
        _threads(options.method)
        doc = suggest_file(input_path, output, options, force=force)
    if "stems" in doc:
        _print_stems(doc, f"automix suggest ({doc['method']})")
    master = doc["settings"].get("master", doc["settings"])
    out_console.print(f"wrote {output}: master gain {master['gain_db']:+.2f} dB to "
                      f"{doc['target']['integrated_lufs']:g} LUFS")


def _references(given: list[str] | None) -> str | tuple[str, ...]:
    """``--reference`` as typed: pop when none, one name or path, or several to average."""
    if not given:
        return "pop"
    return given[0] if len(given) == 1 else tuple(given)


def _given(**options: Any) -> dict[str, Any]:
    """The options the user gave: the library's defaults stand for the rest."""
    return {k: v for k, v in options.items() if v is not None}


def _threads(method: str) -> None:
    """One torch thread per job where a network runs (two are 10x slower on a busy 2-core
    box), set here, at the entry point. Torch is not imported for it: it reads
    ``OMP_NUM_THREADS`` when it loads, after this (numpy, loaded already, keeps its own), so a
    command that fails on its inputs pays no second for importing torch."""
    if method not in ("network", "authors"):
        return
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    else:
        os.environ["OMP_NUM_THREADS"] = "1"


def _print_stems(report: dict[str, Any], title: str) -> None:
    """A mix's stems, a row each: role, gain, pan, high-pass, compressor and send in real
    units (`report.compressor_text`); then why the compressor and the send are what they are
    (`report.motivation_text`)."""
    from automix.report import compressor_text, motivation_text, send_text

    table = Table(title=f"{title}: {len(report['stems'])} stems", title_justify="left",
                  show_lines=True)
    for col in ("stem, role (from)", "gain dB", "pan", "high-pass Hz", "compressor", "send"):
        table.add_column(col, justify="left" if col in ("stem, role (from)", "compressor")
                         else "right")
    why = Table(title="why: where each compressor and send came from, and the stem's measures "
                "(on the excerpt the suggestion hears, at its gain)", title_justify="left",
                show_lines=True)
    for col in ("stem", "compressor", "send"):
        why.add_column(col)
    for info in report["stems"]:
        s, motivation = report["settings"]["stems"][info["name"]], info.get("motivation")
        table.add_row(f"{info['name']}\n{info['role']} ({info['role_from']})",
                      f"{s['gain']['gain_db']:+.1f}", f"{s['pan']['pan']:+.2f}",
                      f"{s['highpass']['freq_hz']:.0f}",
                      "\n".join(compressor_text(s["compressor"], motivation)),
                      send_text(s["send"]["send_db"]))
        if motivation:
            why.add_row(info["name"], *motivation_text(motivation))
    out_console.print(table)
    if why.rows:
        out_console.print(why)


def _print_master(report: dict[str, Any]) -> None:
    table = Table(title=f"automix master ({report['method']}) -> {report['output']}",
                  title_justify="left")
    table.add_column("")
    columns = (("integrated_lufs", "loudness LUFS", ".1f"), ("loudness_range_lu", "LRA LU", ".1f"),
               ("true_peak_dbtp", "true peak dBTP", ".2f"), ("crest_db", "crest dB", ".1f"),
               ("plr_db", "PLR dB", ".1f"), ("width", "width", ".2f"))
    for _, title, _ in columns:
        table.add_column(title, justify="right")
    table.add_column("tonal error dB", justify="right")
    tonal = report["tonal_balance_error_db"]
    ref = report["reference"]
    for name, feats, err in (("input", report["measurements"]["input"], tonal["input"]),
                             ("output", report["measurements"]["output"], tonal["output"]),
                             (f"reference ({ref['name']})", ref["features"], 0.0)):
        cells = [format(feats[k], fmt) if feats.get(k) is not None else "-"
                 for k, _, fmt in columns]
        table.add_row(name, *cells, f"{err:.2f}")
    out_console.print(table)
    t, s = report["target"], report["settings"]
    aim = f"{t['integrated_lufs']:g} LUFS, {t['ceiling_dbtp']:g} dBTP"
    out_console.print(f"target: {aim}" if t["name"] == f"{t['integrated_lufs']:g} LUFS"
                      else f"target: {t['name']} ({aim})")
    eq, c = s["chain"]["eq"], s["chain"]["compressor"]
    peaks = ", ".join(f"{eq[f'peak{i}_gain_db']:+.1f} dB @ {eq[f'peak{i}_freq_hz']:.0f} Hz"
                      for i in (1, 2, 3))
    out_console.print(
        f"high-pass {s['chain']['highpass']['freq_hz']:.0f} Hz | EQ: low shelf "
        f"{eq['low_shelf_gain_db']:+.1f} dB @ {eq['low_shelf_freq_hz']:.0f} Hz | peaks {peaks} "
        f"| high shelf {eq['high_shelf_gain_db']:+.1f} dB @ {eq['high_shelf_freq_hz']:.0f} Hz")
    comp = ("off" if c["ratio"] <= 1.0 else
            f"{c['ratio']:g}:1 above {c['threshold_db']:.1f} dB, attack {c['attack_ms']:g} ms, "
            f"release {c['release_ms']:g} ms")
    out_console.print(f"compressor: {comp} | width {s['chain']['width']['width_pct']:.0f}% | "
                      f"gain {s['gain_db']:+.2f} dB | limiter ceiling "
                      f"{s['limiter']['ceiling_dbtp']:g} dBTP")
    for w in report["warnings"]:
        err_console.print(f"[yellow]warning {w['code']}:[/] {w['message']}", highlight=False)
    if "previews" in report:
        paths = {name: Path(path) for name, path in report["previews"].items()}
        matched = ", ".join(p.name for n, p in paths.items() if n != "result_delivered")
        out_console.print(f"previews in {paths['result'].parent}: {matched} (loudness-matched "
                          "for a fair A/B); result_delivered.wav (as delivered)")
    if "report" in report:
        out_console.print(f"report: {report['report']}")
    out_console.print(f"settings and measurements: {report['sidecar']}")


@app.command()
@guarded
def mix(
    stems_dir: Path = typer.Argument(..., metavar="STEMS_DIR",
                                     help="A folder of 2 to 32 stems (WAV, FLAC, ...)."),
    reference: str = typer.Option("pop", "--reference", "-r",
                                  help="A genre preset (see `automix presets`) or an audio file."),
    target: str | None = typer.Option(None, "--target", "-t", help=TARGET_HELP),
    ceiling_dbtp: float | None = typer.Option(None, "--ceiling",
                                                 help="True-peak ceiling in dBTP."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                          help="Output file (default STEMS_DIR_mix.wav)."),
    file_format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    bit_depth: int = typer.Option(24, "--bit-depth", help="16 (TPDF-dithered), 24, or 32 float."),
    method: MixMethod | None = typer.Option(
        None, "--method", help="Per-stem settings from role defaults (dsp), the stem "
        "network (network) or the author model (authors, the default: sends, compressors and "
        "room as the authors of real songs set them; the balance theirs with a preset, the "
        "stem network's with a reference song)."),
    settings_path: Path | None = typer.Option(
        None, "--settings", help="Render exactly these settings (a mix's JSON sidecar)."),
    amount: str | None = typer.Option(None, "--amount", help=AMOUNT_HELP),
    stems_out: Path | None = typer.Option(None, "--stems-out",
                                             help="Also write each processed stem here."),
    keep_balance: float | None = typer.Option(
        None, "--keep-balance", help="0..1: how much of the stems' own balance to keep (1: "
        "their relative levels as they arrive, a rough mix; 0, the default: automix's)."),
    role: list[str] | None = typer.Option(
        None, "--role", help="NAME=ROLE: the role of a stem (file name with or without its "
        "extension); repeatable. Roles: vocals, drums, bass, guitar, keys, synth, strings, "
        "brass, other."),
    refine_steps: int = typer.Option(
        0, "--refine-steps", min=0, help="Then refine gains, EQ, pans and sends through the "
        "twin toward the reference's balance for this many steps (default 0: off)."),
    preview: bool = typer.Option(False, "--preview", help="Write loudness-matched previews."),
    report_path: Path | None = typer.Option(None, "--report", help="Write an HTML report."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report to stdout."),
) -> None:
    """Mix a folder of stems toward a reference and master the bus to a delivery target."""
    from automix.files import mix_file
    from automix.mixing.roles import parse_roles
    from automix.settings import Amounts, MixOptions, OutputOptions

    options = MixOptions(reference=reference, target=target, ceiling_dbtp=ceiling_dbtp,
                         amounts=Amounts.parse(amount), settings=settings_path,
                         refine_steps=refine_steps, roles=parse_roles(role),
                         **_given(method=method and method.value, keep_balance=keep_balance))
    _threads(options.method)
    with _stages(f"mix {stems_dir.name}", as_json) as progress:
        report = mix_file(stems_dir, options, OutputOptions(
            output=output, file_format=file_format, bit_depth=bit_depth, force=force,
            preview=preview, report=report_path), stems_out=stems_out, progress=progress)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    _print_stems(report, f"automix mix ({report['method']})")
    _print_master({**report, "settings": report["settings"]["master"]})
    if "stems_out" in report:
        out_console.print(f"processed stems: {len(report['stems_out'])} files")


class Mode(str, Enum):
    master = "master"
    mix = "mix"


class Engine(str, Enum):
    local = "local"
    ray = "ray"


@app.command()
@guarded
def batch(
    input_dir: Path = typer.Argument(..., metavar="INPUT_DIR",
                                     help="Songs: audio files (master) or stem folders (mix)."),
    out_dir: Path = typer.Option(..., "--output", "-o", help="Output folder (created)."),
    mode: Mode = typer.Option(Mode.master, "--mode", help="master or mix."),
    reference: str = typer.Option("pop", "--reference", "-r",
                                  help="A genre preset or an audio file."),
    target: str | None = typer.Option(None, "--target", "-t", help=TARGET_HELP),
    ceiling_dbtp: float | None = typer.Option(None, "--ceiling", help="True-peak ceiling."),
    file_format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    bit_depth: int = typer.Option(24, "--bit-depth", help="16, 24 or 32."),
    jobs: int | None = typer.Option(None, "--jobs", "-j",
                                       help="Songs at once (default half the cores)."),
    method: MixMethod | None = typer.Option(
        None, "--method", help="As for master or mix (authors: mix only)."),
    amount: str | None = typer.Option(None, "--amount", help=AMOUNT_HELP),
    engine: Engine = typer.Option(Engine.local, "--engine", help="local (processes) or ray."),
    address: str | None = typer.Option(None, "--address",
                                          help="Ray cluster address (default: start one)."),
    role: list[str] | None = typer.Option(
        None, "--role", help="Mix: NAME=ROLE for stems of that file name in any song; "
        "repeatable."),
    keep_balance: float | None = typer.Option(
        None, "--keep-balance", help="Mix: 0..1, how much of the stems' own balance to keep."),
    force: bool = typer.Option(False, "--force", help="Redo every song, finished or not."),
) -> None:
    """Master or mix every song in INPUT_DIR (a mix: each folder of stems, or its stems/
    folder); a song finished with the same settings is skipped, so a rerun resumes."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from automix import batch as batching
    from automix.audio import check_format
    from automix.references import resolve
    from automix.settings import Amounts

    # options every song shares are checked once, here, not reported as N failed songs
    file_format = file_format or "wav"
    check_format(file_format, bit_depth)
    resolve(reference, target, ceiling_dbtp=ceiling_dbtp)
    amounts = Amounts.parse(amount)
    options = {"reference": reference, "target": target, "ceiling_dbtp": ceiling_dbtp,
               "amounts": amount, **_given(method=method and method.value)}
    if mode is Mode.mix:
        from automix.mixing.roles import parse_roles
        from automix.settings import MixOptions

        options |= {"roles": parse_roles(role), **_given(keep_balance=keep_balance)}
        MixOptions(**{**options, "amounts": amounts})  # checked once, here
    elif role or keep_balance is not None:
        raise SettingsError("--role and --keep-balance are for --mode mix")
    else:
        from automix.settings import MasterOptions

        MasterOptions(**{**options, "amounts": amounts})  # checked once, here
    planned = batching.plan(input_dir, out_dir, mode=mode.value, file_format=file_format,
                            bit_depth=bit_depth, options=options)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: not a folder (a file has this name)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot create the output folder "
                          f"({exc.strerror or type(exc).__name__})") from None
    t0 = time.perf_counter()
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console) as progress:
        task = progress.add_task(f"{mode.value} ({engine.value})", total=len(planned))

        def advance(result: batching.JobResult) -> None:
            progress.advance(task)
            if result.status == "failed":
                progress.console.print(f"[red]failed[/] {result.name}: {result.error}",
                                       highlight=False)

        results = batching.run(planned, engine=engine.value, workers=jobs, address=address,
                               force=force, on_result=advance)
    wall = time.perf_counter() - t0
    table = Table(title=f"automix batch: {out_dir}", title_justify="left")
    for col in ("song", "status", "seconds", "x real time", "output / error"):
        table.add_column(col, justify="right" if col in ("seconds", "x real time") else "left")
    for r in results:
        speed = f"{r.audio_s / r.seconds:.1f}" if r.status == "done" and r.seconds else "-"
        style = {"done": "green", "skipped": "dim", "failed": "red"}[r.status]
        table.add_row(r.name, f"[{style}]{r.status}[/]",
                      f"{r.seconds:.1f}" if r.status != "skipped" else "-", speed,
                      r.error or r.output)
    out_console.print(table)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    audio_s = sum(r.audio_s for r in results)
    out_console.print(f"{counts['done']} done, {counts['skipped']} skipped, "
                      f"{counts['failed']} failed in {wall:.1f} s"
                      + (f"; throughput {audio_s / wall:.1f}x real time" if audio_s else ""))
    if counts["failed"]:
        raise typer.Exit(1)


class Model(str, Enum):
    master = "master"
    stems = "stems"
    authors = "authors"


@app.command()
@guarded
def train(
    data: Path | None = typer.Option(
        None, "--data", help="Folder of productions: mixes/*.flac (and multitracks/*/mix_sum.flac)"
        "; for --model stems, multitracks/<song>/stems/*.flac with master.flac or mix_sum.flac;"
        " for --model authors, multitracks/<song>/ with stems/, wet/, master.flac, meta.json."
        " Without it, synthetic audio (only for the tiny config's smoke run)."),
    model: Model = typer.Option(Model.master, "--model",
                                help="master (the analysis network), stems (mix suggestions) "
                                "or authors (mix --method authors)."),
    out: Path = typer.Option(Path("automix/model/weights"), "--out",
                             help="Where the weights (master.pt + .npz, stems.pt or authors.pt) "
                             "and JSON go."),
    config: str = typer.Option("default", "--config", help="default, tiny, or a JSON file."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (master model)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Override the fit steps."),
    seed: int = typer.Option(0, "--seed"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir",
                                          help="Keep decoded and measured training data here."),
) -> None:
    """Train a network on a folder of real productions (self-supervised)."""
    from automix.errors import AudioInputError

    folder = "mixes" if model is Model.master else "multitracks"
    if data is not None and not (data / folder).is_dir():
        raise AudioInputError(f"{data}: no {folder}/ folder (see the README's data layout)")
    out.mkdir(parents=True, exist_ok=True)
    if model is Model.authors:
        from automix.training import authors as author_training

        if data is None:
            raise AudioInputError("--model authors needs --data DIR (multitracks with the "
                                  "authors' mixes, see the README's data layout)")
        if threads:
            import torch

            torch.set_num_threads(threads)
        weights = out / "authors.pt"
        author_training.train(data, weights, seed=seed, log=lambda _: None)
    elif model is Model.stems:
        from automix.training import stems as stem_training

        weights = stem_training.train(data, out, config=config, steps=steps, seed=seed,
                                      threads=threads, cache_dir=cache_dir)
    else:
        from automix.training import master as training

        weights = training.train(data, out, config=config, device=device, steps=steps,
                                 seed=seed, threads=threads, cache_dir=cache_dir)
    out_console.print(f"wrote {weights} and {weights.with_suffix('.json')}")


@app.command()
@guarded
def album(
    songs: list[Path] = typer.Argument(..., help="The songs, in order (files or folders)."),
    out_dir: Path = typer.Option(..., "--output", "-o", help="Folder for the masters."),
    reference: list[str] | None = typer.Option(
        None, "--reference", "-r", help="A genre preset or an audio file (default pop); "
        "repeat to average."),
    tone_reference: str | None = typer.Option(None, "--tone-reference", help="As for master."),
    dynamics_reference: str | None = typer.Option(None, "--dynamics-reference",
                                                  help="As for master."),
    character: str | None = typer.Option(None, "--character", help="As for master."),
    target: str | None = typer.Option(
        None, "--target", "-t", help="Delivery target of the loudest song: " + TARGET_HELP[17:]),
    ceiling_dbtp: float | None = typer.Option(None, "--ceiling", help="True-peak ceiling."),
    same_loudness: bool = typer.Option(
        False, "--same-loudness", help="Every song on the target (default: keep the steps)."),
    file_format: str = typer.Option("wav", "--format", help="wav or flac."),
    bit_depth: int = typer.Option(24, "--bit-depth", help="16, 24, or 32 float."),
    amount: str | None = typer.Option(None, "--amount", help="As for master."),
    report_path: Path | None = typer.Option(None, "--report", help="Write an HTML report."),
    force: bool = typer.Option(False, "--force", help="Redo songs already mastered."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report to stdout."),
) -> None:
    """Master SONGS as one album: one tonal target, the loudness steps between songs kept,
    the loudest on the target. Resumes: songs already mastered with the same plan are
    skipped."""
    from automix.album import album as master_album
    from automix.settings import Amounts, MasterOptions

    options = MasterOptions(reference=_references(reference), tone_reference=tone_reference,
                            dynamics_reference=dynamics_reference, character=character,
                            target=target, ceiling_dbtp=ceiling_dbtp,
                            amounts=Amounts.parse(amount))
    _threads(options.method)
    report = master_album(songs, out_dir, options, same_loudness=same_loudness,
                          file_format=file_format, bit_depth=bit_depth, force=force,
                          report_path=report_path)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    d = report["delivery"]
    table = Table(title=f"automix album -> {out_dir} ({report['reference']['name']}; "
                  f"{d['integrated_lufs']:g} LUFS, {d['ceiling_dbtp']:g} dBTP)")
    for col in ("song", "input LUFS", "target LUFS", "loudness LUFS", "true peak dBTP",
                "PLR dB", "width", "tonal error dB", "status"):
        table.add_column(col, justify="left" if col in ("song", "status") else "right")
    for s in report["songs"]:
        table.add_row(s["name"], f"{s['input_lufs']:.1f}", f"{s['target_lufs']:.1f}",
                      f"{s['integrated_lufs']:.1f}", f"{s['true_peak_dbtp']:.2f}",
                      f"{s['plr_db']:.1f}", f"{s['width']:.2f}",
                      f"{s['tonal_balance_error_db']:.2f}", s["status"])
    out_console.print(table)
    out_console.print(f"album loudness: {report['album_lufs']} LUFS; report: "
                      f"{out_dir / 'album.json'}" + (f", {report['report']}"
                                                     if "report" in report else ""))


@app.command()
@guarded
def live(
    settings_path: Path | None = typer.Option(
        None, "--settings", help="Settings to render (from `automix suggest`, or a master's "
        ".json sidecar; a mix's: its master part)."),
    input_path: str | None = typer.Option(
        None, "--input", "-i", help="An audio file, or - for raw PCM on stdin."),
    output_path: str | None = typer.Option(
        None, "--output", "-o", help="An audio file (wav or flac), or - for raw PCM on stdout."),
    block_size: int = typer.Option(256, "--block-size", help="Samples per block, 64 to 2048."),
    device: str | None = typer.Option(
        None, "--device", help="An audio device for the end -i/-o leave open, or both; "
        "default: the system's."),
    input_device: str | None = typer.Option(None, "--input-device",
                                            help="Record from this audio device."),
    output_device: str | None = typer.Option(None, "--output-device",
                                             help="Play to this audio device."),
    list_devices: bool = typer.Option(False, "--list-devices",
                                      help="List the audio devices and exit."),
    sample_rate: int | None = typer.Option(
        None, "--sample-rate", help="Raw PCM in (required) or a device's rate, in Hz."),
    channels: int | None = typer.Option(None, "--channels", help="Raw PCM or a device: 1 or 2 "
                                        "(default 2)."),
    pcm: str = typer.Option("float32", "--pcm", help="Raw PCM sample format: float32, s16 or "
                            "s32 (interleaved, little-endian)."),
    file_format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    bit_depth: int = typer.Option(24, "--bit-depth", help="16 (TPDF-dithered), 24, or 32 float."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
) -> None:
    """Master block by block at a fixed latency: from a file, raw PCM on stdin or an audio
    device, to a file, raw PCM on stdout or a device. The gain is the settings' own (loudness
    is not measured again), so the output is the offline render of the same settings,
    delayed by the latency printed on stderr."""
    from automix import live_io

    if list_devices:
        inputs, outputs = live_io.device_names()
        for kind, names in (("input", inputs), ("output", outputs)):
            out_console.print(f"{kind} devices: {', '.join(names) if names else 'none'}",
                              highlight=False)
        return
    if settings_path is None:
        raise SettingsError("--settings: required (a settings file from `automix suggest`)")
    if device is not None and input_path is not None and output_path is not None:
        raise SettingsError("--device: -i and -o are both given; drop one, or the device")
    connection = live_io.connect(
        settings_path, block=block_size, input_path=input_path, output_path=output_path,
        input_device=input_device or (device if input_path is None else None),
        output_device=output_device or (device if output_path is None else None),
        sample_rate=sample_rate, channels=channels, pcm=pcm, file_format=file_format,
        bit_depth=bit_depth, force=force)
    lm = connection.live
    part = " (the mix's master part)" if connection.from_mix else ""
    err_console.print(
        f"live: {connection.input_name} -> {connection.output_name}, {lm.sample_rate} Hz, "
        f"{lm.channels} ch, blocks of {block_size}; latency {lm.latency} samples "
        f"({lm.latency_ms:.2f} ms); fixed gain {lm.settings.gain_db:+.2f} dB from "
        f"{settings_path.name}{part}", highlight=False, soft_wrap=True)
    written = connection.run()
    done = (f"{connection.output_name}: {written} samples ({written / lm.sample_rate:.2f} s, "
            f"the first {lm.latency} the latency)")
    if output_path is not None and output_path != live_io.STDIO:
        out_console.print(f"wrote {done}", highlight=False)
    else:  # stdout carries the audio, or nothing
        err_console.print(done, highlight=False)


@app.command("presets")
@guarded
def list_presets() -> None:
    """List genre presets, delivery targets and characters."""
    from automix import character, presets

    genres = Table(title="genre presets (--reference)", title_justify="left")
    for col in ("name", "loudness LUFS", "crest dB", "width", "default target", "description"):
        genres.add_column(col)
    for g in presets.list_genres():
        f = g.features
        genres.add_row(g.name, f"{f['integrated_lufs']:.1f}", f"{f['crest_db']:.1f}",
                       f"{f['width']:.2f}", g.target, g.description)
    out_console.print(genres)
    targets = Table(title="delivery targets (--target)", title_justify="left")
    for col in ("name", "loudness LUFS", "ceiling dBTP", "description"):
        targets.add_column(col)
    for t in presets.list_targets():
        targets.add_row(t.name, f"{t.integrated_lufs:g}", f"{t.ceiling_dbtp:g}", t.description)
    out_console.print(targets)
    chars = Table(title="characters (--character NAME[:AMOUNT],...; the move at amount 1)",
                  title_justify="left")
    for col in ("name", "tilt dB/oct", "air dB", "crest dB", "PLR dB", "width", "description"):
        chars.add_column(col)
    for c in character.list_characters():
        air = f"{c.air_db:+g} >= {c.air_hz / 1000:g} kHz" if c.air_db else ""
        chars.add_row(c.name, f"{c.tilt_db_per_oct:+g}" if c.tilt_db_per_oct else "", air,
                      f"{c.crest_db:+g}" if c.crest_db else "",
                      f"{c.plr_db:+g}" if c.plr_db else "",
                      f"{c.width:+g}" if c.width else "", c.description)
    out_console.print(chars)


@app.command()
@guarded
def profile(
    output: Path = typer.Argument(..., help="The genre preset JSON to write."),
    files: list[Path] = typer.Argument(..., help="Reference productions to average."),
    name: str = typer.Option(..., "--name", help="Preset name."),
    description: str = typer.Option("", "--description", help="One line for `automix presets`."),
    target: str = typer.Option("spotify", "--target", help="Default delivery target."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing preset."),
) -> None:
    """Compute a genre preset from reference productions."""
    from automix import presets

    if output.exists() and not force:
        raise OutputError(f"{output}: exists; use --force to overwrite")
    presets.load_target(target)
    prof = presets.profile_from_files(files, name=name, description=description, target=target)
    presets.save_genre(prof, output)
    out_console.print(f"wrote {output} from {len(files)} file(s)")


@app.command("export")
@guarded
def export_command(
    settings_path: Path = typer.Argument(..., metavar="SETTINGS",
                                         help="Master settings (JSON/YAML from suggest, or a "
                                         "master's sidecar)."),
    plugins: str = typer.Option(..., "--plugins", help="The plug-in set: zam (Debian's "
                                "zam-plugins, VST3)."),
    output: Path = typer.Option(..., "--output", "-o", help="The folder to write into."),
    song: Path | None = typer.Option(
        None, "--song", help="The song the settings are for: fit the compressor and limiter "
        "to it and write it rendered through the plug-ins."),
    sample_rate: int | None = typer.Option(
        None, "--sample-rate", min=8000, max=384000,
        help="The presets' sample rate without --song (default 48000)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report to stdout."),
) -> None:
    """Write SETTINGS as presets for real plug-ins a DAW loads, with a readable sheet."""
    from automix.export import export_plugins

    report = export_plugins(settings_path, output, plugins=plugins, song=song,
                            sample_rate=sample_rate, force=force)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    errors = report["errors"]
    out_console.print(f"wrote {len(report['files'])} files to {output} "
                      f"({report['sample_rate']} Hz)", highlight=False)
    out_console.print(f"  EQ error {errors['eq_max_db']:.2f} dB max over 30 Hz-16 kHz")
    if errors["master_lu"] is not None:
        out_console.print(f"  master {errors['master_lu']:+.2f} LU from automix's render, "
                          f"true peak {errors['true_peak_dbtp']:.2f} dBTP "
                          f"(ceiling {errors['ceiling_dbtp']:g})", highlight=False)
    for miss in report["warnings"]:
        out_console.print(f"warning: {miss}", highlight=False)
    out_console.print(f"  see {output / 'sheet.md'}")


@app.command("params")
@guarded
def params_table() -> None:
    """Print the parameter table (every effect parameter, unit, range, default)."""
    from automix.params import markdown_table

    out_console.print(markdown_table(), markup=False, highlight=False)




@app.command()
@guarded
def serve(
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address to bind (loopback by default; 0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    data_dir: Path = typer.Option(Path("automix-service"), "--data-dir",
                                  help="Folder for job files (and the database)."),
    db: Path | None = typer.Option(None, "--db",
                                   help="SQLite job database (default DATA_DIR/jobs.sqlite3)."),
    workers: int = typer.Option(1, "--workers", min=0,
                                help="Worker processes (0: queue only, run workers elsewhere)."),
    max_upload_mb: float = typer.Option(200.0, "--max-upload-mb", min=0.001,
                                        help="Largest upload in MB; larger ones answer 413."),
    max_duration_s: float = typer.Option(900.0, "--max-duration", min=1.0,
                                         help="Longest audio in seconds; longer answers 422."),
    lease_s: float = typer.Option(30.0, "--lease-seconds", min=0.5,
                                  help="A job whose worker is silent this long is retried."),
    max_attempts: int = typer.Option(2, "--max-attempts", min=1,
                                     help="Tries per job before it fails with a reason."),
) -> None:
    """Run the web service and the audition page (http://127.0.0.1:8000/)."""
    from automix.service.app import ServiceConfig
    from automix.service.app import serve as run_service

    config = ServiceConfig(data_dir=data_dir, db_path=db, max_upload_mb=max_upload_mb,
                           max_duration_s=max_duration_s, max_attempts=max_attempts)
    run_service(config, host=host, port=port, workers=workers, lease_s=lease_s)
