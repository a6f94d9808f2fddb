"""The `automix` command line. No DSP here: parse, call the library, print, exit.

Every `AutomixError` becomes one line on stderr and exit code 1; so does any unexpected
exception (set ``AUTOMIX_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from automix.errors import AutomixError, OutputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Automatic mixing and mastering toward a reference production.")
out_console = Console()
err_console = Console(stderr=True)


class Method(str, Enum):
    dsp = "dsp"


class Format(str, Enum):
    wav = "wav"
    flac = "flac"


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
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except KeyboardInterrupt:
            _fail("interrupted; no partial output was left", 130)
        except MemoryError:
            _fail("out of memory")
        except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
            if os.environ.get("AUTOMIX_DEBUG"):
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            _fail(f"internal error ({type(exc).__name__}: {first}); "
                  "rerun with AUTOMIX_DEBUG=1 and report it")

    return wrapper


@app.command()
@guarded
def master(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="The song to master."),
    reference: str = typer.Option("pop", "--reference", "-r",
                                  help="A genre preset (see `automix presets`) or an audio file."),
    target: str | None = typer.Option(None, "--target", "-t",
                                         help="Delivery target (spotify, apple, ...)."),
    ceiling_dbtp: float | None = typer.Option(None, "--ceiling",
                                                 help="True-peak ceiling in dBTP."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file."),
    file_format: Format = typer.Option(Format.wav, "--format", help="wav or flac."),
    bit_depth: int = typer.Option(24, "--bit-depth", help="16 (TPDF-dithered), 24, or 32 float."),
    method: Method = typer.Option(Method.dsp, "--method", help="How settings are suggested."),
    settings_path: Path | None = typer.Option(
        None, "--settings", help="Render exactly these settings (JSON/YAML from suggest)."),
    amount: str | None = typer.Option(
        None, "--amount", help="Scale toward neutral: 0..1, or eq=0.5,dynamics=1,width=0."),
    preview: bool = typer.Option(False, "--preview",
                                 help="Write loudness-matched 30-s previews for A/B."),
    report_path: Path | None = typer.Option(None, "--report",
                                               help="Write a self-contained HTML report."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report to stdout."),
) -> None:
    """Master INPUT toward a reference and a delivery target."""
    from automix import mastering

    report = mastering.master_file(
        input_path, reference=reference, target=target, ceiling_dbtp=ceiling_dbtp,
        output=output, file_format=file_format.value, bit_depth=bit_depth, method=method.value,
        settings_path=settings_path, amounts=mastering.parse_amounts(amount), force=force,
        preview=preview, report_path=report_path)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_master(report)


@app.command()
@guarded
def suggest(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="The song to analyse."),
    output: Path = typer.Option(..., "--output", "-o", help="settings.json or settings.yaml"),
    reference: str = typer.Option("pop", "--reference", "-r",
                                  help="A genre preset or an audio file."),
    target: str | None = typer.Option(None, "--target", "-t", help="Delivery target."),
    ceiling_dbtp: float | None = typer.Option(None, "--ceiling", help="True-peak ceiling."),
    method: Method = typer.Option(Method.dsp, "--method", help="How settings are suggested."),
    amount: str | None = typer.Option(None, "--amount", help="As for master."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write suggested settings (real units) and the measurements behind them; edit, then
    render them with `automix master INPUT --settings FILE`."""
    from automix import mastering

    doc = mastering.suggest_file(input_path, output, reference=reference, target=target,
                                 ceiling_dbtp=ceiling_dbtp, method=method.value,
                                 amounts=mastering.parse_amounts(amount), force=force)
    out_console.print(f"wrote {output}: gain {doc['settings']['gain_db']:+.2f} dB to "
                      f"{doc['target']['integrated_lufs']:g} LUFS")


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
    out_console.print(f"target: {t['name']} ({t['integrated_lufs']:g} LUFS, "
                      f"{t['ceiling_dbtp']:g} dBTP)")
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
    for key in ("previews", "report"):
        if key in report:
            out_console.print(f"{key}: {report[key]}")
    out_console.print(f"settings and measurements: {report['sidecar']}")


@app.command("presets")
@guarded
def list_presets() -> None:
    """List genre presets and delivery targets."""
    from automix import presets

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


@app.command("params")
@guarded
def params_table() -> None:
    """Print the parameter table (every effect parameter, unit, range, default)."""
    from automix.params import markdown_table

    out_console.print(markdown_table(), markup=False, highlight=False)


