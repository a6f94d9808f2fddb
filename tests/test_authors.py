"""The author model (issue #18): targets fitted to an author's wet stem and the model's
features (`automix mix --method authors` end to end: tests/test_mix_balance.py)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from automix.effects.render import pan, reverb_return
from automix.model import author_net
from automix.params import PanParams
from automix.references import resolve_reference
from automix.settings import AUTHOR_REVERB
from automix.training import author_targets, authors

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
    fitted = author_targets.fit_stem(dry, wet, SR)
    assert fitted is not None
    assert fitted["gain_db"] == pytest.approx(gain_db, abs=0.3)
    assert fitted["pan"] == pytest.approx(pan_value, abs=0.05)
    if send_db > -40:
        assert fitted["send_db"] == pytest.approx(send_db, abs=1.5)
    else:
        assert fitted["send_db"] < -35


def test_fit_stem_sends_rise_with_the_reverb_and_a_silent_stem_has_no_target() -> None:
    dry = plucks()
    sends = [author_targets.fit_stem(dry, dry + reverb_return(dry * np.float32(10 ** (s / 20)), SR,
                                                       AUTHOR_REVERB), SR)["send_db"]
             for s in (-30.0, -20.0, -10.0, 0.0)]
    assert all(b > a + 7.0 for a, b in zip(sends, sends[1:], strict=False))
    assert author_targets.fit_stem(np.zeros((2, SR), np.float32), dry[:, :SR], SR) is None


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


def _predicting(monkeypatch, **said) -> None:
    """The author model, made to say ``said`` (`author_net.AuthorSettings` fields) for every
    stem."""
    real = author_net.predict_features

    def predict(model, features):
        return [replace(f, **said) for f in real(model, features)]

    monkeypatch.setattr(author_net, "predict_features", predict)


def test_the_mixer_compresses_where_the_model_says_the_authors_did(monkeypatch) -> None:
    """A stem the model leaves uncompressed gets no compressor (not the role's); one it
    compresses gets the model's ratio and times, its threshold that many dB from the stem's
    level per channel as it plays after its gain; the EQ and high-pass stay flat (the
    training authors mostly used none)."""
    from automix.mixing import balance
    from automix.mixing.balance import author_chains, default_chains
    from automix.mixing.stems import Stem
    from automix.params import CompressorParams, EQParams, HighpassParams

    stems = [Stem("kick.wav", plucks(4.0, 1), "drums", "name"),
             Stem("bass.wav", plucks(4.0, 2) * np.float32(0.5), "bass", "name")]
    start = default_chains(stems, SR)
    assert all(c.compressor.ratio > 1 for c in start.values())  # the role defaults compress
    assert not author_net.load_model().uses("eq")
    balance._PREDICTED.clear()
    _predicting(monkeypatch, comp_ratio=1.0)
    for chain in author_chains(stems, SR, start).values():
        assert chain.compressor == CompressorParams()
        assert chain.eq == EQParams() and chain.highpass == HighpassParams()
    balance._PREDICTED.clear()
    _predicting(monkeypatch, comp_ratio=4.0, comp_threshold_db=-6.0, comp_attack_ms=5.0,
                comp_release_ms=120.0)
    chains = author_chains(stems, SR, start)
    for stem in stems:
        comp, gain_db = chains[stem.name].compressor, chains[stem.name].gain.gain_db
        per_channel_db = author_net.level_db(stem.samples, SR)
        assert (comp.ratio, comp.attack_ms, comp.release_ms) == (4.0, 5.0, 120.0)
        assert comp.threshold_db == pytest.approx(per_channel_db + gain_db - 6.0, abs=0.05)
    balance._PREDICTED.clear()


def test_the_room_is_the_median_of_the_stems_predictions_within_its_range() -> None:
    from automix.params import ReverbParams, ranges

    said = [author_net.AuthorSettings(0.0, 0.0, -20.0, room_decay_s=d, room_predelay_ms=p,
                                      room_damping_hz=h)
            for d, p, h in ((0.5, 0.0, 3000.0), (1.0, 30.0, 50000.0), (9.0, 10.0, 5000.0))]
    room = author_net.room(said, AUTHOR_REVERB)
    assert (room.decay_s, room.predelay_ms, room.damping_hz) == (1.0, 10.0, 5000.0)
    assert room.wet_db == AUTHOR_REVERB.wet_db
    clipped = author_net.room([replace(said[0], room_damping_hz=50000.0)], AUTHOR_REVERB)
    assert clipped.damping_hz == ranges(ReverbParams)["damping_hz"].max == 16000.0
    old = author_net.room([author_net.AuthorSettings(0.0, 0.0, -20.0)], AUTHOR_REVERB)
    assert old == AUTHOR_REVERB  # weights that predict no room keep the base one


def test_fit_room_finds_the_room_that_made_a_return() -> None:
    """A click's return from automix's own room: the fit lands on that room's grid point
    (decay within one step, damping and pre-delay exactly)."""
    click = np.zeros((2, 3 * SR), np.float32)
    click[:, 100:400] = plucks(1.0)[:, :300]
    made = replace(AUTHOR_REVERB, decay_s=0.8, damping_hz=3000.0, predelay_ms=20.0)
    found = author_targets.fit_room(click, reverb_return(click, SR, made), SR)
    grid = author_targets.ROOM_GRID["decay_s"]
    assert abs(grid.index(found.decay_s) - grid.index(0.8)) <= 1
    assert found.damping_hz == 3000.0
    assert found.predelay_ms == 20.0


def test_with_a_song_as_the_reference_the_authors_set_only_sends_and_compressors(
        monkeypatch) -> None:
    """``balance=False`` (what `suggest_mix` asks for when the reference is a file: the stem
    network has matched its balance) keeps each chain's level, EQ and pan, takes the model's
    send, and keeps the chain's compressor while the model does not trust its compressor
    decision (the shipped weights do not); with a genre preset (``balance=True``) the
    model's balance and its compressor decision (off) replace them."""
    from dataclasses import replace as with_

    from automix.mixing import balance, pipeline
    from automix.mixing.balance import author_chains, default_chains
    from automix.mixing.stems import Stem
    from automix.params import EQParams, GainParams

    stems = [Stem("kick.wav", plucks(4.0, 1), "drums", "name"),
             Stem("bass.wav", plucks(4.0, 2) * np.float32(0.5), "bass", "name")]
    start = {name: with_(c, gain=GainParams(gain_db=-7.0), pan=PanParams(pan=0.4),
                         eq=EQParams(peak2_gain_db=3.0))
             for name, c in default_chains(stems, SR).items()}
    assert not author_net.load_model().trusts("comp_on")
    balance._PREDICTED.clear()
    _predicting(monkeypatch, send_db=-12.0, pan_amount=0.0, comp_ratio=1.0)
    kept = author_chains(stems, SR, start, balance=False)
    placed = author_chains(stems, SR, start)
    balance._PREDICTED.clear()
    for stem in stems:
        ours, theirs = kept[stem.name], start[stem.name]
        assert (ours.gain, ours.eq, ours.pan) == (theirs.gain, theirs.eq, theirs.pan)
        assert ours.send.send_db == -12.0 and ours.compressor == theirs.compressor
        assert theirs.compressor.ratio > 1.0  # the role's, kept
        assert placed[stem.name].pan.pan == 0.0 and placed[stem.name].eq == EQParams()
        assert placed[stem.name].compressor.ratio == 1.0
    asked = []
    monkeypatch.setattr(pipeline, "network_chains", lambda st, sr, ch, ref, span: ch)
    monkeypatch.setattr(pipeline, "author_chains",
                        lambda st, sr, ch, span, *, balance: asked.append(balance) or ch)
    for kind in ("file", "preset"):
        reference = with_(resolve_reference("pop"), kind=kind)
        pipeline.suggest_mix(stems, SR, reference, method="authors")
    assert asked == [False, True]


def test_targets_from_an_lmms_manifest_are_the_authors_compressor_and_room() -> None:
    """The compressor's threshold is given against the level it heard (the dry stem's, as the
    project played it, and its own input gain); a path without one is off with no
    parameters; the room is the median over the song's reverbs; what sends, and where the
    format has no send at all."""
    dry = plucks(2.0)
    level = author_net.level_db(dry, SR)
    comp = {"kind": "compressor", "units": {"threshold_db": -20.0, "input_db": 2.0,
                                            "ratio": 4.0, "attack_ms": 15.0,
                                            "release_ms": 90.0}}
    target = author_targets.compressor_target({"effects": [{"kind": "eq"}, comp]}, dry, SR)
    assert target["comp_on"] == 1.0
    assert target["comp_threshold_db"] == pytest.approx(-22.0 - level)
    assert (target["comp_ratio"], target["comp_attack_ms"], target["comp_release_ms"]) == (
        4.0, 15.0, 90.0)
    off = author_targets.compressor_target({"effects": [{**comp, "enabled": False}]}, dry, SR)
    assert off["comp_on"] == 0.0 and math.isnan(off["comp_ratio"])
    # the file is the project's sound at the recipe's common gain; the track's volume came
    # first (a mixer channel's compressor: every fader and send before it)
    track = {"volume_pct": 50.0, "level_db": -12.0, "effects": [{**comp, "at": "track"}]}
    played = author_targets.compressor_target(track, dry, SR, -10.0)
    assert played["comp_threshold_db"] == pytest.approx(
        -20.0 - (level + 10.0 + 20 * math.log10(0.5) + 2.0))
    mixer = author_targets.compressor_target({**track, "effects": [{**comp, "at": "fx3"}]},
                                             dry, SR, -10.0)
    assert mixer["comp_threshold_db"] == pytest.approx(-20.0 - (level + 10.0 - 12.0 + 2.0))
    one_to_one = {**comp, "units": {**comp["units"], "ratio": 1.0}}
    assert author_targets.compressor_target({"effects": [one_to_one]}, dry, SR)["comp_on"] == 0
    unheard = author_targets.compressor_target({"effects": [comp]}, dry * 1e-5, SR)
    assert all(math.isnan(v) for v in unheard.values())
    reverbs = [{"kind": "reverb", "units": {"decay_s": d, "predelay_ms": 0.0,
                                            "damping_hz": 6000.0}} for d in (0.5, 2.0, 1.0)]
    meta = {"stems": {"a": {"effects": reverbs[:2]}, "b": {"effects": reverbs[2:]},
                      "c": {"effects": []}}}
    assert author_targets.manifest_room(meta) == {"room_decay_s": 1.0, "room_predelay_ms": 0.0,
                                           "room_damping_hz": 6000.0}
    assert author_targets.manifest_room({"stems": {"c": {"effects": []}}}) is None
    assert author_targets.sends("lmms", {"effects": reverbs[:1]})
    assert not author_targets.sends("lmms", {"effects": [comp]})
    assert author_targets.sends("libopenmpt", {}) is None  # no reverb in the format: no decision
    assert author_targets.sends("hydrogen", {"sends_to_effect": False}) is False  # left dry
    assert author_targets.sends("hydrogen", {"sends_to_effect": True})
    # a send's level is read where the wet stem is the direct path plus a room
    assert author_targets.send_readable("lmms", {"effects": [reverbs[0], {"kind": "eq"}]})
    assert not author_targets.send_readable("lmms", {"effects": [reverbs[0],
                                                                 {"kind": "distortion"}]})
    assert author_targets.send_readable("fluidsynth", {})
    assert author_targets.sends("fluidsynth", {"reverb_send": 0.3})
    assert not author_targets.sends("fluidsynth", {"reverb_send": 0.0})


def test_the_learning_curve_scores_held_out_songs_against_the_best_constant(
        tmp_path, monkeypatch) -> None:
    """Sends that follow one feature: with every training song the model beats the training
    median on the held-out stems, and the row says how many songs it learned from."""
    rng = np.random.default_rng(0)

    def split(songs: int, per_song: int = 6) -> dict[str, np.ndarray]:
        x = rng.normal(size=(songs * per_song, len(author_net.FEATURES))).astype(np.float32)
        y = np.full((len(x), len(author_net.OUTPUTS)), np.nan)  # compressors, rooms: unknown
        y[:, :5] = np.stack([np.zeros(len(x)), np.full(len(x), 0.2), np.ones(len(x)),
                             -20.0 + 6.0 * x[:, 10], np.zeros(len(x))], axis=1)
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


def test_author_songs_are_the_multitracks_with_an_authors_mix(tmp_path) -> None:
    """Every renderer's songs (General-MIDI, LMMS, tracker modules) with a master, wet stems
    and a manifest; a folder missing one of them is not a song."""
    for name, renderer in (("midi_song", "fluidsynth"), ("lmms-common__demo", "lmms"),
                           ("pingus-data__tune", "libopenmpt"), ("no_wet", "lmms")):
        song = tmp_path / "multitracks" / name
        song.mkdir(parents=True)
        if name != "no_wet":
            (song / "wet").mkdir()
        (song / "master.flac").touch()
        (song / "meta.json").write_text(json.dumps({"renderer": renderer}))
    assert [p.name for p in author_targets.author_songs(tmp_path)] == [
        "lmms-common__demo", "midi_song", "pingus-data__tune"]


def _synthetic_song(root, name: str, send_db: float, seed: int) -> None:
    """A General-MIDI-like song of two plucked parts: dry stems and wet ones made with
    automix's own reverb at ``send_db`` (the bass sends 12 dB less), 3 s at 44.1 kHz."""
    import soundfile as sf

    song = root / "multitracks" / name
    for folder in ("stems", "wet"):
        (song / folder).mkdir(parents=True)
    stems = {}
    total = 0.0
    for i, (part, send) in enumerate((("01_piano", send_db), ("02_bass", send_db - 12.0))):
        dry = plucks(3.0, seed * 2 + i) * np.float32(0.5)
        wet = dry + reverb_return(dry * np.float32(10 ** (send / 20)), SR, AUTHOR_REVERB)
        sf.write(song / "stems" / f"{part}.flac", dry.T, SR)
        sf.write(song / "wet" / f"{part}.flac", wet.T, SR)
        stems[part] = {"reverb_send": 0.5, "effects": []}
        total = total + wet
    sf.write(song / "master.flac", (total * np.float32(0.5)).T, SR)
    (song / "meta.json").write_text(json.dumps({"renderer": "fluidsynth", "stems": stems}))


def test_automix_train_model_authors_learns_from_a_data_folder(tmp_path, monkeypatch) -> None:
    """`automix train --model authors --data DIR` fits the targets and writes the weights and
    their JSON; the sends it learned beat the best constant on the validation songs (each
    song's sends are its own, -30..-6 dB, and the dry parts do not say which: the piano
    sends 12 dB more than the bass, which its features do say)."""
    from typer.testing import CliRunner

    from automix.cli import app
    from automix.training.data import split_of

    monkeypatch.setattr(author_targets, "synth_room", lambda: None)  # no FluidSynth needed
    names, want = [], {"train": 6, "validation": 2}
    i = 0
    while any(want.values()):
        name = f"synthetic__song{i:03d}"
        split = split_of(name)
        if want.get(split, 0) > 0:
            want[split] -= 1
            names.append(name)
        i += 1
    rng = np.random.default_rng(1)
    for k, name in enumerate(names):
        _synthetic_song(tmp_path, name, float(rng.uniform(-30.0, -6.0)), k)
    out = tmp_path / "weights"
    result = CliRunner().invoke(app, ["train", "--model", "authors", "--data", str(tmp_path),
                                      "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "authors.json").read_text())
    assert info["train_songs"] == 6 and info["train_known"]["send_db"] == 12
    assert info["train_known"]["room_decay_s"] == 0  # no synthesiser room, no LMMS reverbs
    assert info["validation_mae"]["send_db"] < info["validation_mae_constant"]["send_db"]
    assert info["cv_folds"] == 5  # every song predicted by a model that did not see it
    assert info["cv_mae"]["send_db"] < info["cv_mae_constant"]["send_db"]
    model = author_net.load_model(out / "authors.pt")
    assert model.info["outputs"] == list(author_net.OUTPUTS)


def test_examples_are_cached_per_song_and_only_a_new_or_changed_song_is_read(
        tmp_path, monkeypatch) -> None:
    """The examples of a song are fitted once; adding a song (or changing its meta.json) fits
    that one only, and the cached examples are those fitted."""
    from automix.training import authors

    monkeypatch.setattr(author_targets, "synth_room", lambda: None)
    for k in range(2):
        _synthetic_song(tmp_path, f"synthetic__song{k:03d}", -12.0, k)
    first = authors.examples(tmp_path)
    read = []
    fit = author_targets.song_examples
    monkeypatch.setattr(author_targets, "song_examples",
                        lambda song, **kw: read.append(song.name) or fit(song, **kw))
    again = authors.examples(tmp_path)
    assert read == []
    for split in first:
        assert np.array_equal(first[split]["y"], again[split]["y"], equal_nan=True)
    _synthetic_song(tmp_path, "synthetic__song002", -12.0, 2)
    meta = tmp_path / "multitracks" / "synthetic__song000" / "meta.json"
    meta.write_text(meta.read_text().replace("0.5", "0.25"))
    authors.examples(tmp_path)
    assert sorted(read) == ["synthetic__song000", "synthetic__song002"]


def test_level_db_is_the_level_while_the_part_plays() -> None:
    """A part that rests three quarters of the time reads the level of its notes, not 6 dB
    under it as its mean power does; silence reads the floor."""
    t = np.arange(4 * SR) / SR
    tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sparse = tone * (np.arange(tone.size) % SR < SR // 4)
    per_channel = 10 * math.log10(0.01 / 2)
    assert author_net.level_db(tone, SR) == pytest.approx(per_channel, abs=0.1)
    assert author_net.level_db(sparse, SR) == pytest.approx(per_channel, abs=0.3)
    assert 10 * math.log10(np.mean(np.square(sparse, dtype=np.float64))) < per_channel - 5.5
    assert author_net.level_db(np.zeros((2, SR), np.float32), SR) == -300.0


def test_what_the_model_did_not_learn_is_the_authors_typical_choice() -> None:
    """An output the model predicted no better than the best constant on its validation songs
    (`AuthorModel.trusts`) is that constant, the training median: here the relative gains
    (all 0: the stems keep their balance), whether a stem sends (always) and whether it is
    compressed (never); the one it learned (the send's level) still follows the stems."""
    model = author_net.load_model()
    info = {k: v for k, v in model.info.items() if not k.startswith("cv_")}
    outputs = info["outputs"]
    median = [0.0] * len(outputs)
    median[outputs.index("comp_on")] = 0.0
    median[outputs.index("send_on")] = 1.0
    info.update(train_median=median,
                validation_mae={**info["validation_mae"], "gain_db": 2.5, "send_db": 4.0},
                validation_mae_constant={**info["validation_mae_constant"], "gain_db": 2.0,
                                         "send_db": 9.0},
                validation_accuracy={"send_on": 0.7, "comp_on": 0.5},
                validation_accuracy_constant={"send_on": 0.8, "comp_on": 0.9})
    doubting = author_net.AuthorModel(model.net, info)
    assert not any(doubting.trusts(k) for k in ("gain_db", "comp_on", "send_on"))
    assert doubting.trusts("send_db")
    assert author_net.AuthorModel(model.net, {}).trusts("gain_db")  # weights that do not say
    crossed = author_net.AuthorModel(model.net, {  # cross-validation, where given, judges
        **info, "cv_mae": {"gain_db": 1.0}, "cv_mae_constant": {"gain_db": 2.0},
        "cv_accuracy": {"send_on": 0.7}, "cv_accuracy_constant": {"send_on": 0.6}})
    assert crossed.trusts("gain_db") and crossed.trusts("send_on")
    samples = [plucks(4.0, s) * np.float32(g) for s, g in ((0, 1.0), (1, 0.1), (2, 0.5))]
    features = author_net.stem_features(samples, ["vocals", "bass", "keys"], SR)
    found = author_net.predict_features(doubting, features)
    assert [f.gain_db for f in found] == [0.0, 0.0, 0.0]
    assert all(f.comp_ratio == 1.0 for f in found)
    sends = author_net.output(model, features, "send_db")
    np.testing.assert_allclose([f.send_db for f in found],
                               np.clip(sends, -60.0, 0.0), atol=1e-6)


def test_automix_train_model_authors_on_a_folder_without_songs_is_a_one_line_error(
        tmp_path) -> None:
    from typer.testing import CliRunner

    from automix.cli import app

    (tmp_path / "multitracks").mkdir()
    result = CliRunner().invoke(app, ["train", "--model", "authors", "--data", str(tmp_path),
                                      "--out", str(tmp_path / "w")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "too few multitracks with an author's mix" in lines[0]
    assert "Traceback" not in result.output
