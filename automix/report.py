"""A self-contained HTML report: plots of what changed, and the settings.

Plots are matplotlib SVG embedded in the page, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import html
import io
import json
from typing import Any

import numpy as np

from automix.analysis import band_values
from automix.effects.biquad import eq_sections, first_order_highpass, magnitude_db
from automix.params import EQParams, unit_of

METRICS = (("integrated_lufs", "loudness", "LUFS"), ("true_peak_dbtp", "true peak", "dBTP"),
           ("loudness_range_lu", "loudness range", "LU"), ("crest_db", "crest", "dB"),
           ("plr_db", "peak to loudness", "dB"), ("width", "stereo width", "side/mid"))
COLOURS = {"input": "#7f7f7f", "reference": "#1f77b4", "result": "#d62728"}
EQ_CURVE_POINTS = 200  # log-spaced, 20 Hz to 20 kHz (or Nyquist)
UNIT_SUFFIXES = ("_dbtp", "_lufs", "_db", "_hz", "_ms", "_pct", "_s")


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


def master_settings(report: dict[str, Any]) -> dict[str, Any]:
    """The mastering settings of a master's or a mix's report."""
    settings = report["settings"]
    return settings.get("master", settings)


def eq_curve(report: dict[str, Any]) -> dict[str, list[float]]:
    """The response the master's filters actually apply: the high-pass (two first-order
    sections) and the five EQ biquads, summed in dB over log-spaced frequencies."""
    chain = master_settings(report)["chain"]
    sample_rate = float(report["measurements"]["input"]["sample_rate"])
    freqs = np.geomspace(20.0, min(20000.0, 0.49 * sample_rate), EQ_CURVE_POINTS)
    sections = eq_sections(EQParams(**chain["eq"]), sample_rate)
    if "highpass" in chain:
        sections += [first_order_highpass(chain["highpass"]["freq_hz"], sample_rate)] * 2
    gain = magnitude_db(sections, freqs, sample_rate)
    return {"freqs_hz": [round(float(f), 2) for f in freqs],
            "gain_db": [round(float(g), 3) for g in gain]}


def eq_curve_svg(curve: dict[str, list[float]]) -> str:
    """The applied EQ curve, dB over Hz."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 2.8))
    ax.semilogx(curve["freqs_hz"], curve["gain_db"], color=COLOURS["result"], lw=2)
    ax.axhline(0.0, color="#999", lw=0.8)
    ax.set_title("EQ applied (high-pass and EQ, summed response, dB)")
    ax.set_xlabel("Hz")
    ax.grid(True, which="both", alpha=0.3)
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
        bars = ax.bar(list(sources), values, color=[COLOURS[n] for n in sources])
        ax.bar_label(bars, fmt="%.2f" if key == "width" else "%.1f", fontsize=7)
        ax.margins(y=0.2)
        ax.set_title(f"{title} ({unit})", fontsize=9)
        ax.tick_params(labelsize=7)
    svg = _svg(fig)
    plt.close(fig)
    return svg


def readable(key: str, value: Any) -> tuple[str, str]:
    """A setting as a label and a value with its unit: ``low_shelf_gain_db``, -0.42 ->
    ("low shelf gain", "-0.42 dB")."""
    label = key
    for suffix in UNIT_SUFFIXES:
        if key.endswith(suffix):
            label = key[: -len(suffix)]
            break
    unit = unit_of(key)
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return label.replace("_", " "), f"{text} {unit}".strip()


def settings_groups(settings: dict[str, Any], module: str = "") -> list[tuple[str, list]]:
    """Settings grouped by module ("eq", "compressor", "limiter", "master"; nested modules
    joined by " / "), each a list of readable (label, value with unit) rows."""
    own = [readable(k, v) for k, v in settings.items() if not isinstance(v, dict)]
    groups = [(module or "master", own)] if own else []
    for key, value in settings.items():
        if isinstance(value, dict):
            name = key if not module or module == "chain" else f"{module} / {key}"
            groups += settings_groups(value, name if key != "chain" else module or "chain")
    return groups


def settings_html(settings: dict[str, Any]) -> str:
    out = []
    for module, rows in settings_groups(settings):
        cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                        for k, v in rows)
        out.append(f'<h3>{html.escape(module)}</h3><table class="settings" '
                   f'data-module="{html.escape(module)}">{cells}</table>')
    return "".join(out)


CHARACTER_UNITS = (("tilt_db_per_oct", "tilt", "dB/oct"), ("air_db", "air", "dB"),
                   ("crest_db", "crest", "dB"), ("plr_db", "PLR", "dB"), ("width", "width", ""))


def character_text(reference: dict[str, Any]) -> str:
    """The characters that moved the target, in their units: "warm (tilt -0.5 dB/oct)"."""
    parts = []
    for c in reference.get("character", []):
        moves = [f"{label} {c[key]:+g} {unit}".strip() for key, label, unit in CHARACTER_UNITS
                 if c.get(key)]
        if c.get("air_db"):
            moves[[m.startswith("air") for m in moves].index(True)] += \
                f" from {c['air_hz'] / 1000:g} kHz"
        parts.append(f"{c['name']} ({', '.join(moves) or 'no move'})")
    return "; ".join(parts)


STEM_COLUMNS = ("stem", "role", "gain dB", "pan", "EQ", "compressor", "send")


def stem_table(report: dict[str, Any]) -> list[list[str]]:
    """A mix's per-stem rows (`STEM_COLUMNS`): role (and where it came from), gain, pan, EQ,
    compressor, reverb send, from the report's ``stems`` and ``settings.stems``; none for a
    master. The HTML report and the audition page both show it."""
    if "stems" not in report or "stems" not in report["settings"]:
        return []
    rows = []
    for info in report["stems"]:
        s = report["settings"]["stems"][info["name"]]
        moves = [f"{k.removesuffix('_gain_db').replace('_', ' ')} {v:+.1f} dB"
                 for k, v in s["eq"].items() if k.endswith("_gain_db") and v]
        rows.append([info["name"], f"{info['role']} ({info['role_from']})",
                     f"{s['gain']['gain_db']:+.2f}", f"{s['pan']['pan']:+.2f}",
                     f"high-pass {s['highpass']['freq_hz']:.0f} Hz"
                     + (f"; {', '.join(moves)}" if moves else ""),
                     ", ".join(compressor_text(s["compressor"], info.get("motivation"))),
                     send_text(s["send"]["send_db"])])
    return rows


def compressor_text(c: dict[str, Any], motivation: dict[str, Any] | None = None) -> list[str]:
    """A stem's compressor in real units, its ratio and threshold then its times ("3:1 above
    -19.0 dBFS (its level +4.0 LU)", "attack 5 ms, release 120 ms"), the threshold against
    the stem's level where its ``motivation`` (the report's, `mixing.motivation`) holds it;
    ["off"] at ratio 1."""
    if c["ratio"] <= 1.0:
        return ["off"]
    re_level = ((motivation or {}).get("compressor") or {}).get("threshold_re_level_lu")
    level = "" if re_level is None else f" (its level {re_level:+.1f} LU)"
    return [f"{c['ratio']:.3g}:1 above {c['threshold_db']:.1f} dBFS{level}",
            f"attack {c['attack_ms']:.3g} ms, release {c['release_ms']:.3g} ms"]


def send_text(send_db: float) -> str:
    """A stem's reverb send: "-22.0 dB", or "off" at the send's floor."""
    from automix.mixing.render import SEND_OFF_DB

    return "off" if send_db <= SEND_OFF_DB else f"{send_db:.1f} dB"


def motivation_text(motivation: dict[str, Any]) -> tuple[str, str]:
    """Why a stem's compressor and its send are what they are (a stem's ``motivation`` in a
    mix's report, `mixing.motivation`), a line each: where each came from, then the numbers
    behind it ("role default (vocals); crest 14.1 dB, LRA 3.2 LU, peaks 8.3 dB over")."""
    c, s = motivation["compressor"], motivation["send"]
    comp = [c["from"]]
    if "model_score" in c:
        comp.append(f"the model's score {c['model_score']:.2f} (on from {c['model_on_from']:g})"
                    + (", most moved by " + ", ".join(
                        f"{i['label']} {_value(i['value'], i['unit'])} ({i['moves']:+.2f})"
                        for i in c["model_inputs"]) if c["model_inputs"] else ""))
    if "crest_db" in c:
        over = c.get("peaks_over_threshold_db")
        comp.append(f"crest {c['crest_db']:.1f} dB, LRA {c['loudness_range_lu']:.1f} LU" + (
            "" if over is None else
            f", peaks {abs(over):.1f} dB {'over' if over >= 0 else 'under'} the threshold"))
    send = [s["from"]]
    if "model_send_db" in s:
        score = s.get("model_score")
        if score is not None and score < s["model_on_from"]:
            said = f"the model's score for a send {score:.2f} (on from {s['model_on_from']:g})"
        else:
            said = f"the model said {s['model_send_db']:.1f} dB" + (
                "" if score is None else f" (score {score:.2f})")
        send.append(said + ", most moved by " + ", ".join(
            f"{i['label']} {_value(i['value'], i['unit'])} "
            + (f"({i['moves_db']:+.1f} dB)" if "moves_db" in i else f"({i['moves']:+.2f})")
            for i in s["model_inputs"]))
    if s.get("stem_tail_db") is not None:
        send.append(f"own tail {s['stem_tail_db']:.1f} dB")
    for part, given, module in ((comp, c, "dynamics"), (send, s, "reverb")):
        if "amount" in given:
            part.append(f"scaled by --amount {module}={given['amount']:g}")
    return "; ".join(comp), "; ".join(send)


def _value(value: float | str, unit: str) -> str:
    text = value if isinstance(value, str) else f"{value:.3g}"
    return f"{text} {unit}" if unit else text


def _stem_rows(report: dict[str, Any]) -> str:
    head = "".join(f"<th>{h}</th>" for h in STEM_COLUMNS)
    return f"<tr>{head}</tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in stem_table(report))


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
    curve = eq_curve(report)
    character = character_text(report["reference"])
    character = f"<br><b>character</b> {html.escape(character)}" if character else ""
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
{target["ceiling_dbtp"]} dBTP, <b>method</b> {html.escape(report["method"])}{character}<br>
tonal-balance error to the reference: {tonal["input"]} dB before, {tonal["output"]} dB after</p>
{mix_tables}<figure id="tonal-balance">{tonal_balance_svg(report)}</figure>
<figure id="eq-curve">{eq_curve_svg(curve)}</figure>
<script type="application/json" id="eq-curve-data">{json.dumps(curve)}</script>
<figure id="metrics">{metrics_svg(report)}</figure>
<h2>warnings about the input</h2><ul>{warnings}</ul>
<h2>{"master settings" if is_mix else "settings"}</h2>
<div id="settings">{settings_html(settings)}</div>
</body></html>
"""


ALBUM_COLUMNS = (("input_lufs", "input LUFS"), ("target_lufs", "target LUFS"),
                 ("integrated_lufs", "loudness LUFS"), ("true_peak_dbtp", "true peak dBTP"),
                 ("plr_db", "PLR dB"), ("width", "width"),
                 ("tonal_balance_error_db", "tonal error dB"))


def album_tonal_svg(report: dict[str, Any]) -> str:
    """Every song's mid tonal balance and the album's shared target, one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.4))
    ref = report["reference"]["features"]["bands"]
    ax.semilogx(ref["centers_hz"], band_values(ref["mid_db"]), color="k", lw=2.5,
                label="target (" + report["reference"]["name"] + ")")
    for song in report["songs"]:
        ax.semilogx(song["bands"]["centers_hz"], band_values(song["bands"]["mid_db"]),
                    lw=1.2, label=song["name"])
    ax.set_title("tonal balance of each master, mid (dB re loudness)")
    ax.set_xlabel("Hz")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    svg = _svg(fig)
    plt.close(fig)
    return svg


def render_album_html(report: dict[str, Any]) -> str:
    """The album's page: each song's numbers side by side, their tonal balance over the
    shared target, the album's loudness."""
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in ALBUM_COLUMNS)
    rows = "".join("<tr><td>" + html.escape(s["name"]) + "</td>" + "".join(
        f"<td>{s[key]}</td>" for key, _ in ALBUM_COLUMNS) + "</tr>" for s in report["songs"])
    d = report["delivery"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>automix album report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:2px 10px}}</style>
</head><body><h1>automix album report</h1>
<p><b>reference</b> {html.escape(report["reference"]["name"])},
<b>delivery</b> {html.escape(d["name"])}: {d["integrated_lufs"]} LUFS, {d["ceiling_dbtp"]} dBTP,
<b>album loudness</b> {report["album_lufs"]} LUFS</p>
<table id="album"><tr><th>song</th>{head}</tr>{rows}</table>
<figure id="tonal-balance">{album_tonal_svg(report)}</figure>
</body></html>
"""
