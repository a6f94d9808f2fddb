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


def render_html(report: dict[str, Any]) -> str:
    """The whole page for a master's JSON report (as `MasterResult.to_dict` plus paths)."""
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in _settings_rows(report["settings"]))
    warnings = "".join(f"<li><b>{html.escape(w['code'])}</b> {html.escape(w['message'])}</li>"
                       for w in report.get("warnings", [])) or "<li>none</li>"
    tonal = report["tonal_balance_error_db"]
    target = report["target"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>automix report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td{{border-bottom:1px solid #ddd;padding:2px 10px}}
figure{{margin:1em 0}}</style></head><body>
<h1>automix master report</h1>
<p><b>input</b> {html.escape(str(report.get("input", "")))} &rarr;
<b>output</b> {html.escape(str(report.get("output", "")))}<br>
<b>reference</b> {html.escape(report["reference"]["name"])} ({report["reference"]["kind"]}),
<b>target</b> {html.escape(target["name"])}: {target["integrated_lufs"]} LUFS,
{target["ceiling_dbtp"]} dBTP, <b>method</b> {html.escape(report["method"])}<br>
tonal-balance error to the reference: {tonal["input"]} dB before, {tonal["output"]} dB after</p>
<figure id="tonal-balance">{tonal_balance_svg(report)}</figure>
<figure id="metrics">{metrics_svg(report)}</figure>
<h2>warnings about the input</h2><ul>{warnings}</ul>
<h2>settings</h2><table id="settings">{rows}</table>
</body></html>
"""
