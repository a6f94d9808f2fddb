"""A self-contained HTML report: plots of what changed, and the settings.

Plots are matplotlib SVG embedded in the page, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import html
import io
from typing import Any

import numpy as np

from automix.analysis import band_values

METRICS = (("integrated_lufs", "loudness", "LUFS"), ("true_peak_dbtp", "true peak", "dBTP"),
           ("loudness_range_lu", "loudness range", "LU"), ("crest_db", "crest", "dB"),
           ("plr_db", "peak to loudness", "dB"), ("width", "stereo width", "side/mid"))
COLOURS = {"input": "#7f7f7f", "reference": "#1f77b4", "result": "#d62728"}


def _bands(features: dict[str, Any], key: str) -> np.ndarray:
    return band_values(features["bands"][key])


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def tonal_balance_svg(report: dict[str, Any]) -> str:
    """Mid and side tonal balance of input, reference and result (dB per third octave)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {"input": report["measurements"]["input"],
              "reference": report["reference"]["features"],
              "result": report["measurements"]["output"]}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, key, title in ((axes[0], "mid_db", "mid"), (axes[1], "side_db", "side")):
        for name, feat in curves.items():
            ax.semilogx(feat["bands"]["centers_hz"], _bands(feat, key), label=name,
                        color=COLOURS[name], lw=2 if name != "input" else 1.5)
        ax.set_title(f"tonal balance, {title} (dB re loudness)")
        ax.set_xlabel("Hz")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    svg = _svg(fig)
    plt.close(fig)
    return svg


def metrics_svg(report: dict[str, Any]) -> str:
    """Bars of loudness, true peak, LRA, crest, PLR and width: input, reference, result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = {"input": report["measurements"]["input"],
               "reference": report["reference"]["features"],
               "result": report["measurements"]["output"]}
    fig, axes = plt.subplots(1, len(METRICS), figsize=(12, 2.6))
    for ax, (key, title, unit) in zip(axes, METRICS, strict=True):
        values = [sources[n].get(key) or 0.0 for n in sources]
        ax.bar(list(sources), values, color=[COLOURS[n] for n in sources])
        ax.set_title(f"{title} ({unit})", fontsize=9)
        ax.tick_params(labelsize=7)
    svg = _svg(fig)
    plt.close(fig)
    return svg


def _settings_rows(settings: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in settings.items():
        if isinstance(value, dict):
            rows += _settings_rows(value, f"{prefix}{key}.")
        else:
            rows.append((prefix + key, value))
    return rows


def _stem_rows(report: dict[str, Any]) -> str:
    """A mix's per-stem table: role (and where it came from), gain, pan, EQ, compressor,
    reverb send, from the report's ``stems`` and ``settings.stems``."""
    rows = []
    for info in report["stems"]:
        s = report["settings"]["stems"][info["name"]]
        eq = s["eq"]
        moves = [f"{k.removesuffix('_gain_db').replace('_', ' ')} {v:+.1f} dB"
                 for k, v in eq.items() if k.endswith("_gain_db") and v]
        c = s["compressor"]
        comp = ("off" if c["ratio"] <= 1.0 else
                f"{c['ratio']:g}:1 above {c['threshold_db']:.1f} dB")
        send = "off" if s["send"]["send_db"] <= -60.0 else f"{s['send']['send_db']:.1f} dB"
        cells = (info["name"], f"{info['role']} ({info['role_from']})",
                 f"{s['gain']['gain_db']:+.2f}", f"{s['pan']['pan']:+.2f}",
                 f"high-pass {s['highpass']['freq_hz']:.0f} Hz"
                 + (f"; {', '.join(moves)}" if moves else ""), comp, send)
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("stem", "role", "gain dB", "pan", "EQ",
                                              "compressor", "send"))
    return f"<tr>{head}</tr>" + "".join(rows)


def _bus_rows(report: dict[str, Any]) -> str:
    """The mix bus before the master and the master after it: `METRICS`."""
    before, after = report["measurements"]["input"], report["measurements"]["output"]
    head = "<tr><th></th><th>bus before</th><th>after</th></tr>"
    return head + "".join(
        f"<tr><td>{title} ({unit})</td><td>{_number(before.get(key))}</td>"
        f"<td>{_number(after.get(key))}</td></tr>" for key, title, unit in METRICS)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_html(report: dict[str, Any]) -> str:
    """The whole page for a master's or a mix's JSON report (as `MasterResult.to_dict` or
    `MixResult.to_dict`, plus paths). A mix's page adds a table of its stems' settings and
    the bus's measurements before and after the master."""
    is_mix = "stems" in report and "stems" in report["settings"]
    settings = report["settings"]["master"] if is_mix else report["settings"]
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in _settings_rows(settings))
    warnings = "".join(f"<li><b>{html.escape(w['code'])}</b> {html.escape(w['message'])}</li>"
                       for w in report.get("warnings", [])) or "<li>none</li>"
    tonal = report["tonal_balance_error_db"]
    target = report["target"]
    kind = "mix" if is_mix else "master"
    mix_tables = (f"""<h2>stems</h2><table id="stems">{_stem_rows(report)}</table>
<h2>mix bus</h2><table id="bus">{_bus_rows(report)}</table>
""" if is_mix else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>automix {kind} report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:2px 10px}}
th{{text-align:left}}figure{{margin:1em 0}}</style></head><body>
<h1>automix {kind} report</h1>
<p><b>input</b> {html.escape(str(report.get("input", "")))} &rarr;
<b>output</b> {html.escape(str(report.get("output", "")))}<br>
<b>reference</b> {html.escape(report["reference"]["name"])} ({report["reference"]["kind"]}),
<b>target</b> {html.escape(target["name"])}: {target["integrated_lufs"]} LUFS,
{target["ceiling_dbtp"]} dBTP, <b>method</b> {html.escape(report["method"])}<br>
tonal-balance error to the reference: {tonal["input"]} dB before, {tonal["output"]} dB after</p>
{mix_tables}<figure id="tonal-balance">{tonal_balance_svg(report)}</figure>
<figure id="metrics">{metrics_svg(report)}</figure>
<h2>warnings about the input</h2><ul>{warnings}</ul>
<h2>{"master settings" if is_mix else "settings"}</h2><table id="settings">{rows}</table>
</body></html>
"""
