"""Issue 18, point 5: `automix suggest` on a stems folder shows each stem's compressor and
reverb send in real units with the measures and model inputs behind them, and ``--amount
dynamics=..,reverb=..`` scales them (a mix's stems as well as its master).

Stems: synthetic plucked lines (decaying tones with noise, two a second), so the mix has notes
whose tails `analysis.reverb_tail_db` can read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from rich.console import Console
from test_bad_inputs import assert_one_line_error
from typer.testing import CliRunner

from automix import analysis, cli
from automix.cli import app
from automix.mixing.roles import ROLE_DEFAULTS
from automix.model import author_net
from automix.params import CompressorParams, MasterChain, SendParams, StemChain
from automix.settings import Amounts

SR = 44100
SECONDS = 4.0
runner = CliRunner()


def plucks(freq_hz: float, seed: int, decay_s: float) -> np.ndarray:
    """Decaying notes of ``freq_hz`` with a little noise, two a second, mono."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * SR)
    k = np.arange(int(0.25 * SR))
    note = np.exp(-k / (decay_s * SR))
    x = np.zeros(n)
    for start in range(0, n - k.size, SR // 2):
        x[start:start + k.size] += 0.3 * note * (np.sin(2 * np.pi * freq_hz * k / SR)
                                                 + 0.3 * rng.standard_normal(k.size))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("song") / "stems"
    folder.mkdir()
    sf.write(folder / "lead vocal.wav", plucks(440.0, 0, 0.03), SR)
    sf.write(folder / "kick.wav", plucks(60.0, 1, 0.02), SR)
    return folder


def _invoke(*args: str):
    """The CLI, its tables on a console wide enough that no cell wraps."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "out_console", Console(width=400))
        return runner.invoke(app, list(args))


def _suggest(folder: Path, out: Path, *args: str) -> tuple[str, dict]:
    result = _invoke("suggest", str(folder), "-o", str(out), *args)
    assert result.exit_code == 0, result.output
    return result.output, json.loads(out.read_text())


@pytest.fixture(scope="module")
def by_authors(song: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, Path]:
    path = tmp_path_factory.mktemp("suggested") / "authors.json"
    return (*_suggest(song, path, "--method", "authors"), path)


def _stems(doc: dict) -> dict[str, dict]:
    return {s["name"]: s for s in doc["stems"]}


def test_the_table_lists_every_stem_with_its_compressor_and_send_in_units(
        song: Path, tmp_path: Path) -> None:
    output, doc = _suggest(song, tmp_path / "s.json", "--method", "dsp")
    settings = doc["settings"]["stems"]
    assert set(settings) == {"lead vocal.wav", "kick.wav"}
    for name, chain in settings.items():
        c = chain["compressor"]
        assert name in output
        over = _stems(doc)[name]["motivation"]["compressor"]["threshold_re_level_lu"]
        assert (f"{c['ratio']:.3g}:1 above {c['threshold_db']:.1f} dBFS (its level "
                f"{over:+.1f} LU)") in output
        assert f"attack {c['attack_ms']:.3g} ms, release {c['release_ms']:.3g} ms" in output
    assert "-22.0 dB" in output  # the vocal's send; the kick's is off
    assert settings["kick.wav"]["send"]["send_db"] == SendParams().send_db
    assert "role default (vocals)" in output and "crest" in output and "own tail" in output
    assert f"wrote {tmp_path / 's.json'}" in output


def test_the_why_is_the_role_default_and_the_stems_own_measures(song: Path,
                                                                tmp_path: Path) -> None:
    """dsp: the compressor sits its role's LU over the stem's level (`ROLE_DEFAULTS`), and the
    measures written are the stem's: its peak over the threshold is the file's peak at the
    stem's gain less the threshold, its crest the file's peak over its RMS."""
    _, doc = _suggest(song, tmp_path / "s.json", "--method", "dsp")
    for name, info in _stems(doc).items():
        why, chain = info["motivation"], doc["settings"]["stems"][name]
        assert why["compressor"]["from"] == f"role default ({info['role']})"
        assert why["send"]["from"] == f"role default ({info['role']})"
        above = ROLE_DEFAULTS[info["role"]].compressor[1]
        assert why["compressor"]["threshold_re_level_lu"] == pytest.approx(above, abs=0.02)
        x, _ = sf.read(song / name)
        peak_db = 20 * math.log10(np.max(np.abs(x)))
        assert why["compressor"]["peaks_over_threshold_db"] == pytest.approx(
            peak_db + chain["gain"]["gain_db"] - chain["compressor"]["threshold_db"], abs=0.02)
        assert why["compressor"]["crest_db"] == pytest.approx(
            peak_db - 10 * math.log10(np.mean(x ** 2)), abs=0.02)
        assert why["send"]["stem_tail_db"] == pytest.approx(
            analysis.reverb_tail_db(x * math.sqrt(0.5), SR), abs=0.02)


def test_the_author_models_send_names_the_inputs_that_moved_it(
        by_authors: tuple[str, dict, Path]) -> None:
    output, doc, _ = by_authors
    for name, info in _stems(doc).items():
        send = info["motivation"]["send"]
        assert send["from"] == "author model"
        assert len(send["model_inputs"]) == 3
        on = doc["settings"]["stems"][name]["send"]["send_db"] > SendParams().send_db
        key = "moves_db" if on else "moves"  # the level's inputs, or the score's
        moves = [abs(i[key]) for i in send["model_inputs"]]
        assert moves == sorted(moves, reverse=True)
        model_db = send["model_send_db"]
        expected = (model_db if on and model_db >= author_net.SEND_OFF_DB
                    else SendParams().send_db)
        assert doc["settings"]["stems"][name]["send"]["send_db"] == pytest.approx(expected,
                                                                                   abs=0.06)
        score = send.get("model_score")
        said = (f"the model's score for a send {score:.2f} (on from 0.5)" if not on else
                f"the model said {model_db:.1f} dB" + ("" if score is None
                                                       else f" (score {score:.2f})"))
        flat = " ".join(" ".join(line.strip(" │┃").split()) for line in output.splitlines())
        assert said in flat or said.replace(" ", "") in flat.replace(" ", "")
        assert f"{send['model_inputs'][0]['label']} " in output
        comp = info["motivation"]["compressor"]
        compressed = doc["settings"]["stems"][name]["compressor"]["ratio"] > 1.0
        if "model_score" in comp and abs(comp["model_score"] - author_net.COMPRESSOR_ON) > 0.005:
            assert compressed == (comp["model_score"] > author_net.COMPRESSOR_ON)
        assert comp["from"] == ("author model" if compressed else
                                "author model: off, as its songs' authors mostly left stems")


def test_attributions_add_up_to_the_prediction_less_the_average_stems() -> None:
    model = author_net.load_model()
    rng = np.random.default_rng(0)
    samples = [plucks(f, s, 0.03)[None].repeat(2, 0) * np.float32(g)
               for f, s, g in ((440.0, 0, 1.0), (60.0, 1, 0.5), (2000.0, 2, 0.2))]
    features = author_net.stem_features(samples, ["vocals", "drums", "keys"], SR)
    features += rng.normal(0, 0.01, features.shape).astype(np.float32)
    moves = author_net.attributions(model, features, "send_db", steps=32)
    with torch.no_grad():
        column = author_net.OUTPUTS.index("send_db")
        out = model.net(torch.from_numpy(features))[:, column].numpy()
        average = float(model.net(model.net.mean[None])[0, column])
    np.testing.assert_allclose(moves.sum(axis=1), out - average, atol=0.1)
    assert set(author_net.FEATURE_LABELS) == {
        f for f in author_net.FEATURES if not f.startswith("role_")}


# --- --amount reverb, dynamics -----------------------------------------------------------------


def test_reverb_amount_scales_the_sends_as_power() -> None:
    chain = StemChain(send=SendParams(send_db=-12.0))
    assert Amounts(reverb=1.0).scale(chain).send.send_db == -12.0
    assert Amounts(reverb=0.5).scale(chain).send.send_db == pytest.approx(-15.01, abs=0.01)
    assert Amounts(reverb=0.1).scale(chain).send.send_db == pytest.approx(-22.0)
    assert Amounts(reverb=0.0).scale(chain).send.send_db == SendParams().send_db  # off
    assert Amounts(reverb=1e-6).scale(chain).send.send_db == SendParams().send_db
    assert Amounts.parse("0.5").reverb == 0.5  # one number: every module
    master = MasterChain(compressor=CompressorParams(threshold_db=-20.0, ratio=4.0))
    assert Amounts(reverb=0.0).scale(master) == master  # a master has no send


def test_reverb_amount_turns_the_sends_down_and_the_mix_drier(
        song: Path, by_authors: tuple[str, dict, Path], tmp_path: Path) -> None:
    """The author model's suggestion rendered with ``--amount reverb`` 1, 0.5 and 0: each send
    3 dB down at 0.5 and off at 0, and the mix holds less reverb each time (the rest of the
    settings, the master's included, rendered as they are: what differs from the dry render
    is the reverb return, through the same master), and rings more with it than without."""
    _, doc, settings = by_authors
    suggested = {n: c["send"]["send_db"] for n, c in doc["settings"]["stems"].items()}
    assert max(suggested.values()) > -30.0  # some stem sends
    tails, mixes = {}, {}
    for amount in (1.0, 0.5, 0.0):
        out = tmp_path / f"mix_{amount:g}.wav"
        result = _invoke("mix", str(song), "--settings", str(settings), "-o", str(out),
                         "--bit-depth", "32", "--amount", f"reverb={amount:g}")
        assert result.exit_code == 0, result.output
        sends = {n: c["send"]["send_db"] for n, c in json.loads(
            out.with_suffix(".json").read_text())["settings"]["stems"].items()}
        for name, db in suggested.items():
            if amount == 0.0 or db <= SendParams().send_db:
                assert sends[name] == SendParams().send_db
            else:
                assert sends[name] == pytest.approx(db + 10 * math.log10(amount), abs=0.01)
        x, _ = sf.read(out, always_2d=True)
        mixes[amount] = x
        tails[amount] = analysis.reverb_tail_db(x.T, SR)
    wet = {a: float(np.sum(np.square(mixes[a] - mixes[0.0]))) for a in (0.5, 1.0)}
    assert 0.0 < wet[0.5] < wet[1.0], wet
    assert tails[0.0] < min(tails[0.5], tails[1.0]), tails


def test_suggest_with_reverb_and_dynamics_at_zero_writes_sends_off_and_no_compressor(
        song: Path, tmp_path: Path) -> None:
    output, doc = _suggest(song, tmp_path / "s.json", "--method", "dsp", "--amount",
                           "reverb=0,dynamics=0")
    for info in doc["stems"]:
        chain = doc["settings"]["stems"][info["name"]]
        assert chain["send"]["send_db"] == SendParams().send_db
        assert chain["compressor"]["ratio"] == 1.0
        assert chain["compressor"]["threshold_db"] == 0.0
        assert info["motivation"]["compressor"]["amount"] == 0.0
        assert info["motivation"]["send"]["amount"] == 0.0
    assert doc["settings"]["master"]["chain"]["compressor"]["ratio"] == 1.0
    assert "-22.0 dB" not in output and "scaled by --amount dynamics=0" in output


def test_half_the_dynamics_lies_between(song: Path, tmp_path: Path) -> None:
    _, full = _suggest(song, tmp_path / "full.json", "--method", "dsp")
    _, half = _suggest(song, tmp_path / "half.json", "--method", "dsp", "--amount",
                       "dynamics=0.5,reverb=0.5")
    for name, chain in full["settings"]["stems"].items():
        c, h = chain["compressor"], half["settings"]["stems"][name]["compressor"]
        assert 1.0 < h["ratio"] < c["ratio"]
        assert c["threshold_db"] < h["threshold_db"] < 0.0
        sends = chain["send"]["send_db"], half["settings"]["stems"][name]["send"]["send_db"]
        assert sends[1] < sends[0] or sends[0] == SendParams().send_db


@pytest.mark.parametrize("command", ["suggest", "mix", "batch"])
@pytest.mark.parametrize("amount, message", [
    ("reverb=2", "--amount reverb=2 is out of range [0, 1]"),
    ("reverb=wet", "--amount reverb: expected a number in [0, 1], got 'wet'"),
    ("room=1", "--amount: unknown module 'room'; allowed: eq, dynamics, width, reverb"),
])
def test_bad_amounts_are_one_line_errors(song: Path, tmp_path: Path, command: str,
                                         amount: str, message: str) -> None:
    out = tmp_path / ("s.json" if command == "suggest" else "out")
    args = {"suggest": ["suggest", str(song), "-o", str(out)],
            "mix": ["mix", str(song), "-o", str(out.with_suffix(".wav"))],
            "batch": ["batch", str(song.parent), "-o", str(out), "--mode", "mix"]}[command]
    assert_one_line_error(runner.invoke(app, [*args, "--amount", amount]), message)
    assert not out.exists() and not out.with_suffix(".wav").exists()
