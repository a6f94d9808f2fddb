"""The author model (issue #18): targets fitted to an author's wet stem and the model's
features (`automix mix --method authors` end to end: tests/test_mix_balance.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from automix.effects.render import pan, reverb_return
from automix.model import author_net
from automix.params import PanParams
from automix.settings import AUTHOR_REVERB
from automix.training import authors

SR = 44100


def plucks(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """A mono line of decaying noise plucks, 4 a second, as (2, n) with equal channels."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = np.zeros(n)
    env = np.exp(-np.arange(int(0.2 * SR)) / (0.03 * SR))
    for start in range(0, n - env.size, SR // 4):
        x[start:start + env.size] += rng.standard_normal(env.size) * env * 0.3
    return np.stack([x, x]).astype(np.float32)


@pytest.mark.parametrize("gain_db, pan_value, send_db", [
    (0.0, 0.0, -60.0), (4.15, 0.5, -12.0), (-6.0, -0.8, -3.0), (2.0, 1.0, -20.0)])
def test_fit_stem_recovers_the_gain_pan_and_send_that_made_the_wet_stem(
        gain_db: float, pan_value: float, send_db: float) -> None:
    """A wet stem made with automix's own pan law and reverb bus from the dry one: the fit
    finds the gain within 0.3 dB, the pan within 0.05 and the send within 1.5 dB (the
    reverb's early part correlates with the dry notes, so the direct gain is a little
    high)."""
    dry = plucks()
    mono_panned = pan(dry[:1] * np.float32(10 ** (gain_db / 20)), SR, PanParams(pan_value))
    # centre pan of our law is -3 dB per channel: the dry stem at "centre" is the reference
    direct = mono_panned * np.float32(math.sqrt(2.0))
    wet = direct + reverb_return(direct * np.float32(10 ** (send_db / 20)), SR, AUTHOR_REVERB)
    fitted = authors.fit_stem(dry, wet, SR)
    assert fitted is not None
    assert fitted["gain_db"] == pytest.approx(gain_db, abs=0.3)
    assert fitted["pan"] == pytest.approx(pan_value, abs=0.05)
    if send_db > -40:
        assert fitted["send_db"] == pytest.approx(send_db, abs=1.5)
    else:
        assert fitted["send_db"] < -35


def test_fit_stem_sends_rise_with_the_reverb_and_a_silent_stem_has_no_target() -> None:
    dry = plucks()
    sends = [authors.fit_stem(dry, dry + reverb_return(dry * np.float32(10 ** (s / 20)), SR,
                                                       AUTHOR_REVERB), SR)["send_db"]
             for s in (-30.0, -20.0, -10.0, 0.0)]
    assert all(b > a + 7.0 for a, b in zip(sends, sends[1:], strict=False))
    assert authors.fit_stem(np.zeros((2, SR), np.float32), dry[:, :SR], SR) is None


def test_features_describe_the_stems() -> None:
    """A sustained pad reads denser than plucks; a stem's share of the mix is its power over
    the stems' summed power."""
    t = np.arange(4 * SR) / SR
    pad = np.stack([np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32) * 0.1
    hits = plucks(4.0)
    x = author_net.stem_features([pad, hits], ["synth", "drums"], SR)
    names = list(author_net.FEATURES)
    assert x.shape == (2, len(names))
    assert x[0, names.index("density")] > 0.9 > 0.5 > x[1, names.index("density")]
    assert x[0, names.index("role_synth")] == 1.0 and x[1, names.index("role_drums")] == 1.0
    powers = [float(np.mean(np.square(s, dtype=np.float64))) for s in (pad, hits)]
    share = 10 * math.log10(powers[0] / sum(powers))
    assert x[0, names.index("share_lu")] == pytest.approx(share, abs=1e-3)
    # the pad's power sits in the 160-640 Hz band
    assert x[0, names.index("band1_db")] > -0.1


def _song(tmp_path, name: str, effects: list[list[dict]]) -> None:
    """A manifest of a song whose stems carry ``effects`` (one list per stem)."""
    song = tmp_path / name
    song.mkdir()
    stems = {f"{i:02d}_part": {"level_db": 0.0, "effects": e} for i, e in enumerate(effects)}
    (song / "meta.json").write_text(json.dumps({"stems": stems}))


def test_effect_share_counts_the_stems_whose_author_put_the_effect_on(tmp_path) -> None:
    """A General-MIDI manifest lists no effects; LMMS ones list each stem's path; a bypassed
    effect does not count."""
    comp, eq = {"kind": "compressor"}, {"kind": "eq"}
    _song(tmp_path, "midi", [[], [], []])
    _song(tmp_path, "lmms", [[comp, eq], [comp], [{"kind": "compressor", "enabled": False}]])
    share = authors.effect_share([tmp_path / "midi", tmp_path / "lmms"])
    assert share == {"eq": pytest.approx(1 / 6), "compressor": pytest.approx(2 / 6)}
    assert authors.effect_share([tmp_path / "midi"]) == {"eq": 0.0, "compressor": 0.0}


def test_the_mixer_leaves_off_what_the_models_authors_left_off(monkeypatch) -> None:
    """With the shipped weights (General-MIDI authors: no EQ, no compressor) every sounding
    stem's compressor is off and its EQ and high-pass flat; weights whose authors mostly
    compressed keep the role's compressor."""
    from automix.mixing.balance import author_chains, default_chains
    from automix.mixing.stems import Stem
    from automix.params import CompressorParams, EQParams, HighpassParams

    stems = [Stem("kick.wav", plucks(4.0, 1), "drums", "name"),
             Stem("bass.wav", plucks(4.0, 2) * np.float32(0.5), "bass", "name")]
    start = default_chains(stems, SR)
    assert all(c.compressor.ratio > 1 for c in start.values())  # the role defaults compress
    model = author_net.load_model()
    assert not model.uses("compressor") and not model.uses("eq")
    chains = author_chains(stems, SR, start)
    for chain in chains.values():
        assert chain.compressor == CompressorParams()
        assert chain.eq == EQParams() and chain.highpass == HighpassParams()
    compressing = author_net.AuthorModel(model.net, {"effect_share": {"compressor": 0.8,
                                                                      "eq": 0.1}})
    monkeypatch.setattr(author_net, "load_model", lambda: compressing)
    chains = author_chains(stems, SR, start)
    assert all(c.compressor.ratio == start[n].compressor.ratio for n, c in chains.items())
    assert all(c.eq == EQParams() for c in chains.values())


def test_the_learning_curve_scores_held_out_songs_against_the_best_constant(
        tmp_path, monkeypatch) -> None:
    """Sends that follow one feature: with every training song the model beats the training
    median on the held-out stems, and the row says how many songs it learned from."""
    rng = np.random.default_rng(0)

    def split(songs: int, per_song: int = 6) -> dict[str, np.ndarray]:
        x = rng.normal(size=(songs * per_song, len(author_net.FEATURES))).astype(np.float32)
        y = np.stack([np.zeros(len(x)), np.full(len(x), 0.2), -20.0 + 6.0 * x[:, 10]], axis=1)
        return {"x": x, "y": y, "song": np.repeat(np.arange(songs), per_song)}

    data = {"train": split(40), "validation": split(8), "held_out": split(8)}
    monkeypatch.setattr(authors, "examples", lambda data_dir: data)
    for name in ("song_a", "song_b", "song_c"):  # manifests for the weights' effect shares
        song = tmp_path / "multitracks" / name
        (song / "wet").mkdir(parents=True)
        (song / "master.flac").touch()
        (song / "meta.json").write_text(json.dumps(
            {"renderer": "fluidsynth", "stems": {"01_part": {"effects": []}}}))
    rows = authors.learning_curve(tmp_path, fractions=(0.25, 1.0), seeds=(0,), epochs=60,
                                  log=lambda _: None)
    assert [r["train_songs"] for r in rows] == [10, 40]
    full = rows[-1]
    assert full["held_out_stems"] == 48
    assert full["send_db MAE"] < 0.5 * full["send_db MAE constant"]


def test_author_songs_are_the_fluidsynth_ones(tmp_path) -> None:
    """The LMMS songs share the layout, but their wet stems are not a gain, a pan and a
    reverb of the dry ones: the author model's targets come from the General-MIDI songs."""
    for name, renderer in (("midi_song", "fluidsynth"), ("lmms-common__demo", "lmms")):
        song = tmp_path / "multitracks" / name
        (song / "wet").mkdir(parents=True)
        (song / "master.flac").touch()
        (song / "meta.json").write_text(json.dumps({"renderer": renderer}))
    assert [p.name for p in authors.author_songs(tmp_path)] == ["midi_song"]
