"""The stem network (`automix.model.stem_net`) and its training (`automix.training.stems`):
band powers after settings, training, and what it does to a mix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from automix import mixing, references
from automix.cli import app
from automix.mixing import render as mix_render
from automix.mixing.stems import Stem
from automix.model import stem_net
from automix.params import (
    EQParams,
    GainParams,
    PanParams,
    StemChain,
    from_unit_vector,
    to_unit_list,
)
from automix.training import data
from automix.training import stems as stem_training

SR = 44100
runner = CliRunner()


def _noise(rng: np.random.Generator, seconds: float, tilt_db_oct: float) -> np.ndarray:
    """Noise whose power falls ``tilt_db_oct`` per octave above 1 kHz, (samples,) float32."""
    n = int(seconds * SR)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    shape = (np.maximum(freqs, 30.0) / 1000.0) ** (-tilt_db_oct / 6.02)
    x = np.fft.irfft((rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size))
                     * shape, n)
    return (0.05 * x / np.std(x)).astype(np.float32)


@pytest.mark.parametrize("stereo", [True, False])
def test_band_powers_after_a_chain_match_the_render(stereo: bool) -> None:
    """Gain, EQ and pan in band-power space (`apply_chain`) equal rendering, then measuring
    (above 100 Hz, where the chain's fixed 10-Hz high-pass, left out, does not reach)."""
    rng = np.random.default_rng(0)
    left = _noise(rng, 4.0, 3.0)
    samples = np.stack([left, 0.5 * left + _noise(rng, 4.0, 1.0)]) if stereo else left[None]
    chain = StemChain(gain=GainParams(gain_db=3.0),
                      eq=EQParams(low_shelf_gain_db=5.0, peak2_gain_db=-6.0, peak2_freq_hz=900.0,
                                  high_shelf_gain_db=4.0),
                      pan=PanParams(pan=0.4))
    rendered = stem_net.band_grams(mix_render.render_dry(samples, stereo, SR, chain), SR)[0]
    items = torch.from_numpy(stem_net.band_grams(stem_training.as_items(samples, stereo), SR)[0])
    unit = torch.tensor([to_unit_list(chain)], dtype=torch.float64)
    modelled = stem_training.apply_chain(items[None], from_unit_vector(StemChain, unit),
                                         torch.tensor([stereo]), SR)[0]
    a, b = stem_net.spectra(modelled).numpy(), stem_net.spectra(torch.from_numpy(rendered)).numpy()
    above = np.flatnonzero(stem_net.analysis.BAND_CENTERS_HZ > 100)
    for k in range(3 if stereo else 4):  # a panned mono stem's side too
        np.testing.assert_allclose(10 * np.log10(a[k, above]), 10 * np.log10(b[k, above]),
                                   atol=0.1)


@pytest.fixture(scope="module")
def tiny_stems(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`automix train --model stems --config tiny`: synthetic songs, a few seconds."""
    out = tmp_path_factory.mktemp("stems")
    result = runner.invoke(app, ["train", "--model", "stems", "--config", "tiny",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out / "stems.pt"


def test_tiny_training_lowers_the_loss_and_its_weights_predict(tiny_stems: Path) -> None:
    rows = [json.loads(line) for line in (tiny_stems.parent / "stems_log.jsonl").open()]
    config = stem_training.STEM_CONFIGS["tiny"]
    members = config.net["members"]
    assert {(r["member"], r["step"]) for r in rows if r["phase"] == "fit"} >= {
        (k, config.steps) for k in range(members)}
    # the untrained network is the identity: its validation loss is the identity's
    (start,) = (r for r in rows if r["phase"] == "baselines")
    (end,) = (r for r in rows if r["phase"] == "ensemble")
    assert end["val_loss"] < start["identity_loss"]
    meta = json.loads(tiny_stems.with_suffix(".json").read_text())
    assert meta["outputs"] == list(stem_net.OUTPUTS) and meta["data"]["source"] == "synthetic"
    model = stem_net.load_model(tiny_stems)
    rng = np.random.default_rng(1)
    grams = np.stack([stem_net.band_grams(np.stack([_noise(rng, 1.0, t)] * 2), SR)[0]
                      for t in (0.0, 3.0, 6.0)])
    reference = stem_net.reference_db(np.linspace(-10, -40, 28), np.linspace(-20, -50, 28))
    chains = stem_net.predict(model, grams, ["bass", "drums", "other"], reference,
                              np.array([True, True, False]))
    assert len(chains) == 3 and all(isinstance(c.eq.peak2_gain_db, float) for c in chains)
    assert chains[0].compressor == StemChain().compressor  # only the outputs move


def test_held_out_songs_are_never_trained_on() -> None:
    """The benchmark's songs (20 % by hash) are outside training and validation."""
    names = [f"song{i}" for i in range(400)]
    held = [n for n in names if data.is_held_out(n)]
    assert 0.1 < len(held) / len(names) < 0.3
    assert not any(data.is_validation(n) for n in held)


def test_the_training_loader_reads_no_held_out_song(tmp_path, monkeypatch) -> None:
    """`training.stems._songs` over a multitracks folder: every usable song but the held-out
    ones is read (and folders without meta.json or stems/ are skipped)."""
    import dataclasses

    from automix.training import stems as training

    names = [f"song{i}" for i in range(40)]
    for name in names:
        (tmp_path / "data" / "multitracks" / name / "stems").mkdir(parents=True)
        (tmp_path / "data" / "multitracks" / name / "meta.json").write_text("{}")
    (tmp_path / "data" / "multitracks" / "no_meta" / "stems").mkdir(parents=True)

    @dataclasses.dataclass
    class Read:
        name: str

    read = []
    monkeypatch.setattr(training, "read_song",
                        lambda folder, block_s: (read.append(folder.name), Read(folder.name))[1])
    training._songs(training.StemTrainConfig(), tmp_path / "data", 0, tmp_path / "cache")
    held = {n for n in names if data.is_held_out(n)}
    assert held and len(held) < len(names)  # the folder holds both kinds
    assert sorted(read) == sorted(set(names) - held)


def _perturbed_stems(rng: np.random.Generator) -> tuple[list[Stem], list[Stem]]:
    """Mono stems of distinct spectra, centred (the truth), and each through a known balance
    and EQ (what the network hears), both as `load_stems` would give them."""
    truth, perturbed = [], []
    for i, (role, tilt) in enumerate((("bass", 9.0), ("drums", 1.0), ("keys", 4.0),
                                      ("guitar", 3.0))):
        x = _noise(rng, 6.0, tilt)[None]
        chain = StemChain(eq=EQParams(low_shelf_gain_db=float(rng.uniform(-6, 6)),
                                      high_shelf_gain_db=float(rng.uniform(-6, 6))),
                          pan=PanParams(pan=float(rng.choice([-1, 1]) * rng.uniform(0.3, 0.5))))
        name = f"{i:02d}_{role}.wav"
        truth.append(Stem(name, x, role, "name"))
        perturbed.append(Stem(name, mix_render.render_dry(x, False, SR, chain), role, "name"))
    return truth, perturbed


def _stem_error_db(stems: list[Stem], chains: dict[str, StemChain],
                   truth: list[Stem]) -> float:
    """Mean absolute difference (dB) of each processed stem's mid and side band powers from
    its true, centred self, levels matched per stem, bands 60 Hz to 16 kHz; side bands
    floored 30 dB below the true mid."""
    bands = stem_net.analysis.BAND_CENTERS_HZ >= 60
    errors = []
    for stem, true in zip(stems, truth, strict=True):
        plain = StemChain(gain=chains[stem.name].gain, eq=chains[stem.name].eq,
                          pan=chains[stem.name].pan)
        got = stem_net.spectra(torch.from_numpy(stem_net.band_grams(
            mix_render.render_dry(stem.samples, stem.is_stereo, SR, plain), SR)[0])).numpy()[2:]
        want = stem_net.spectra(torch.from_numpy(stem_net.band_grams(
            mix_render.render_dry(true.samples, False, SR, StemChain()), SR)[0])).numpy()[2:]
        got *= want.sum() / got.sum()
        floor = 1e-3 * want[0]
        errors.append(np.abs(10 * np.log10((got + floor) / (want + floor)))[:, bands].mean())
    return float(np.mean(errors))


def test_network_brings_perturbed_stems_closer_to_their_truth() -> None:
    """With the shipped weights, on stems of a known balance and EQ perturbation, the network's
    settings leave each stem's band powers nearer its unperturbed self than the role defaults."""
    rng = np.random.default_rng(7)
    truth, perturbed = _perturbed_stems(rng)
    reference = references.resolve_reference("pop")
    dsp = mixing.suggest_mix(perturbed, SR, reference, method="dsp", fit=False)
    network = mixing.suggest_mix(perturbed, SR, reference, method="network", fit=False)
    assert _stem_error_db(perturbed, network, truth) < 0.8 * _stem_error_db(perturbed, dsp, truth)


def test_mix_with_dsp_does_not_import_torch(tmp_path: Path) -> None:
    code = ("import sys, numpy as np; from automix import mixing, references; "
            "from automix.mixing.stems import Stem; "
            "x = (0.1 * np.random.default_rng(0).standard_normal((1, 44100))).astype('float32'); "
            "s = [Stem('a_bass.wav', x, 'bass', 'name'), Stem('b.wav', x[:, ::-1].copy(), "
            "'other', 'audio')]; ref = references.resolve_reference('pop'); "
            "mixing.mix(s, 44100, ref, ref.target, method='dsp'); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_unknown_method_is_refused() -> None:
    from automix.errors import SettingsError

    rng = np.random.default_rng(0)
    stems = [Stem(f"{i}.wav", _noise(rng, 1.0, 3.0)[None], "other", "audio") for i in range(2)]
    with pytest.raises(SettingsError, match="unknown method 'magic'"):
        mixing.suggest_mix(stems, SR, references.resolve_reference("pop"), method="magic")
