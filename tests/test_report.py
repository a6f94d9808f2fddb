"""The master's HTML report a producer reads: the EQ applied, numbers on bars, settings by
module with units (issue #20, point 8)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from scipy import signal
from typer.testing import CliRunner

from automix.cli import app
from automix.effects.biquad import eq_sections, first_order_highpass
from automix.params import EQParams

runner = CliRunner()
SONG = Path(__file__).resolve().parents[1] / "examples" / "dirty_love.flac"


class _Tables(HTMLParser):
    """Settings tables by module: {module: {label: value}}, and the EQ curve's JSON."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, str]] = {}
        self.module: str | None = None
        self.cells: list[str] = []
        self.curve = ""
        self.in_curve = self.in_cell = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "table" and "data-module" in a:
            self.module = a["data-module"]
            self.tables[self.module] = {}
        self.in_cell = tag == "td" and self.module is not None
        self.in_curve = a.get("id") == "eq-curve-data"

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.module = None
        if tag == "tr" and self.module and len(self.cells) == 2:
            self.tables[self.module][self.cells[0]] = self.cells[1]
        if tag == "tr":
            self.cells = []
        self.in_cell = self.in_curve = False

    def handle_data(self, data: str) -> None:
        if self.in_cell:
            self.cells.append(data)
        if self.in_curve:
            self.curve += data


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[_Tables, dict, str]:
    tmp = tmp_path_factory.mktemp("report")
    result = runner.invoke(app, ["master", str(SONG), "-r", "rock", "-o", str(tmp / "m.wav"),
                                 "--report", str(tmp / "r.html"), "--json"])
    assert result.exit_code == 0, result.output
    text = (tmp / "r.html").read_text()
    parsed = _Tables()
    parsed.feed(text)
    return parsed, json.loads(result.output), text


def test_eq_curve_is_the_filters_summed_response(page) -> None:
    parsed, report, _ = page
    curve = json.loads(parsed.curve)
    chain = report["settings"]["chain"]
    sr = report["measurements"]["input"]["sample_rate"]
    sections = eq_sections(EQParams(**chain["eq"]), sr)
    sections += [first_order_highpass(chain["highpass"]["freq_hz"], sr)] * 2
    freqs = np.asarray(curve["freqs_hz"])
    expected = np.zeros_like(freqs)
    for b, a in sections:  # scipy's response of each biquad, independently of ours
        _, h = signal.freqz(np.asarray(b, float), np.asarray(a, float), worN=freqs, fs=sr)
        expected += 20 * np.log10(np.abs(h))
    np.testing.assert_allclose(curve["gain_db"], expected, atol=0.01)
    assert freqs[0] == pytest.approx(20.0) and len(freqs) >= 100
    assert np.ptp(curve["gain_db"]) > 1.0  # rock moves this song: not a flat line


def test_settings_are_grouped_by_module_with_units(page) -> None:
    parsed, report, text = page
    eq, comp = parsed.tables["eq"], parsed.tables["compressor"]
    gain = report["settings"]["chain"]["eq"]["peak2_gain_db"]
    assert eq["peak2 gain"] == f"{gain:g} dB" and eq["peak2 freq"].endswith(" Hz")
    assert comp["attack"].endswith(" ms") and parsed.tables["limiter"]["ceiling"] == "-1 dBTP"
    assert parsed.tables["master"]["gain"].endswith(" dB")
    assert "peak2_gain_db" not in text and "eq.peak2" not in text  # no dotted keys
    # every bar of the metrics plot carries its number (matplotlib writes them as text)
    metrics = text[text.index('id="metrics"'):]
    assert len(re.findall(r"<!-- -?\d+\.\d+ -->", metrics)) >= 18  # 6 metrics x 3 sources


def test_preview_result_is_matched_to_the_input_and_delivered_is_at_target(
        tmp_path: Path) -> None:
    import soundfile as sf

    from automix import loudness

    quiet = tmp_path / "quiet.wav"  # an unmastered-level copy: 8 dB down
    x, sr = sf.read(SONG, dtype="float32", always_2d=True)
    sf.write(quiet, x * np.float32(10 ** (-8 / 20)), sr, subtype="FLOAT")
    result = runner.invoke(app, ["master", str(quiet), "-r", "pop", "-o",
                                 str(tmp_path / "m.wav"), "--preview"])
    assert result.exit_code == 0, result.output
    assert "loudness-matched" in result.output and "{" not in result.output.split("previews")[1]
    folder = tmp_path / "m_preview"
    lufs = {n: loudness.integrated_lufs(sf.read(folder / f"{n}.wav", dtype="float32",
                                                always_2d=True)[0].T, sr)
            for n in ("input", "result", "result_delivered")}
    clip = slice(0, min(len(x), int(30 * sr)))  # the excerpt: the whole 25-s song here
    original = loudness.integrated_lufs(x[clip].T * np.float32(10 ** (-8 / 20)), sr)
    assert lufs["input"] == pytest.approx(original, abs=0.5)
    assert lufs["result"] == pytest.approx(original, abs=0.5)
    assert lufs["result_delivered"] == pytest.approx(-14.0, abs=0.5)  # pop's target: spotify
    assert (folder / "result.wav").read_bytes() != (folder / "result_delivered.wav").read_bytes()
