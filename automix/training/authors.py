"""Training of the author model (`automix.model.author_net`) on multitracks with the authors'
own mix decisions: General-MIDI songs (`automix.training.multitracks`), LMMS projects
(`automix.training.lmms`) and tracker modules (`automix.training.modules`). Each channel or
track is rendered dry (``stems/``) and as it sounds in the author's mix (``wet/``).

Targets are in the units the mixer renders (`author_net.OUTPUTS`; NaN where a song does not
say, and the loss skips it):

- gain and pan (`fit_stem`): the direct path is the dry stem times one gain per channel
  (least squares: the notes are the same, only the author's level and pan differ); its mean
  power (dB, relative to the song's median stem) and the angle of the constant-power law
  (`render.pan`), as distance from the centre. An LMMS track's are its manifest's (volume,
  mixer faders and send amounts; its pan knob): there the wet stem is often far from a gain
  of the dry (distortion, filters, echoes), and the fit would read a level it is not;
- the reverb send (`fit_stem`): what is left, the wet stem minus its direct path, is the
  author's reverb (and chorus); its energy over the direct path's, against the same ratio for
  automix's reverb bus at a 0-dB send, gives the send in dB; ``send_on`` says whether the
  author sent at all: off for a General-MIDI channel whose CC91 is 0 and an LMMS track whose
  path has no reverb or echo (its wet stem differs from the dry by distortions and filters
  too, which are not a send); unknown for a tracker module (MOD, XM, S3M and IT have no
  reverb to send to: no decision to learn from);
- the compressor (`compressor_target`): on where the author put one on the stem's path (an
  LMMS track's or mixer channel's compressor, from its manifest in real units), with its
  threshold relative to the dry stem's level (`author_net.level_db`), ratio, attack and
  release; off elsewhere (General-MIDI songs and tracker modules have none);
- the shared room (`room_target`, the same for every stem of a song): an LMMS song's reverbs
  as their manifests give them (decay, pre-delay, damping: the median over its tracks); for a
  General-MIDI song, automix's room fitted to the synthesiser's reverb (`fit_room`: the room
  whose return, fed the stems' direct paths at their fitted sends, decays in each band the
  way the wet stems' residuals do); none for a tracker module.

Beside the weights, the share of the training stems whose author put an EQ or a compressor
on their path (`effect_share`, from the manifests).

Examples are the stems of one excerpt per song (`EXCERPT_S` from the middle), split by song
(`data.split_of`: held-out songs are never trained on; validation songs make the early stop).
Run::

    python -m automix.training.authors DIR [--out automix/model/weights/authors.pt]
    python -m automix.training.authors DIR --curve    # held-out error at 25/50/100 % of songs
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from automix.effects.render import reverb_return
from automix.mixing.roles import role_from_audio, role_from_name
from automix.model.author_net import (
    COMPRESSOR_OUTPUTS,
    DEFAULT_WEIGHTS,
    EFFECT_GROUPS,
    FEATURES,
    OUTPUTS,
    ROOM_FIELDS,
    AuthorNet,
    level_db,
    load_model,
    stem_features,
)
from automix.params import CompressorParams, ReverbParams, ranges
from automix.settings import AUTHOR_REVERB
from automix.training.data import split_of

EXCERPT_S = 60.0  # the middle this many seconds of each song
SILENT_POWER = 1e-9  # a dry excerpt under -90 dBFS mean power plays nothing here
SEND_RANGE_DB = (-60.0, 0.0)
EPOCHS = 400
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-3


# --- targets ----------------------------------------------------------------------------------


def direct_path(dry: np.ndarray, wet: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The least-squares gain per channel that takes ``dry`` to ``wet`` (both ``(2, n)``, the
    same notes) and the direct path it gives, ``(gains (2,), direct (2, n))`` float64; None
    when ``dry`` plays nothing."""
    dry = np.asarray(dry, np.float64)
    power = np.einsum("cn,cn->c", dry, dry)
    if power.sum() / dry.size < SILENT_POWER:
        return None
    a = np.maximum(np.einsum("cn,cn->c", np.asarray(wet, np.float64), dry)
                   / np.maximum(power, 1e-20), 1e-4)
    return a, a[:, None] * dry


def fit_stem(dry: np.ndarray, wet: np.ndarray, sample_rate: int,
             room: ReverbParams = AUTHOR_REVERB) -> dict[str, float] | None:
    """automix's gain (dB), pan (-1..1) and reverb send (dB) that turn ``dry`` into ``wet``
    (both ``(2, n)``, the same notes), or None when ``dry`` plays nothing."""
    found = direct_path(dry, wet)
    if found is None:
        return None
    a, direct = found
    residual = np.asarray(wet, np.float64) - direct
    direct_energy = float(np.sum(np.square(direct)))
    ratio = float(np.sum(np.square(residual))) / direct_energy
    ours = reverb_return(direct.astype(np.float32), sample_rate, room)
    ours_ratio = float(np.sum(np.square(ours, dtype=np.float64))) / direct_energy
    send_db = 10.0 * math.log10(max(ratio, 1e-12) / max(ours_ratio, 1e-12))
    return {"gain_db": 10.0 * math.log10(float(np.mean(np.square(a)))),
            "pan": 4.0 / math.pi * math.atan2(a[1], a[0]) - 1.0,
            "send_db": min(max(send_db, SEND_RANGE_DB[0]), SEND_RANGE_DB[1])}


def path_effects(stem_meta: dict) -> list[dict]:
    """The enabled effects on a stem's path in its manifest (an LMMS track's and its mixer
    channels'; none in a General-MIDI song or a tracker module)."""
    return [e for e in stem_meta.get("effects", []) if e.get("enabled", True)]


SEND_KINDS = ("reverb", "delay")  # an author's path with one of these sends to a room


def sends(renderer: str | None, stem_meta: dict) -> bool | None:
    """Whether the author sent a stem to a room: a General-MIDI channel's reverb send (CC91)
    is up, an LMMS track's path holds a reverb or an echo; None for a tracker module, whose
    formats have no reverb to send to (no decision to learn from)."""
    if renderer == "fluidsynth":
        return stem_meta.get("reverb_send", 1.0) > 0.0
    if renderer == "libopenmpt":
        return None
    return any(e.get("kind") in SEND_KINDS for e in path_effects(stem_meta))


def compressor_target(stem_meta: dict, dry: np.ndarray, common_gain_db: float = 0.0
                      ) -> dict[str, float]:
    """The author's compressor on a stem's path, in `author_net.OUTPUTS`' units: its threshold
    relative to the level the compressor heard, ratio, attack and release; ``comp_on`` 0 and
    the rest NaN when the path has none with units (the first one counts when there are
    several). That level is the dry stem's (`author_net.level_db`) as the project played it:
    less the recipe's ``common_gain_db`` (every file of a song is scaled by it), plus the
    stem's manifest ``level_db`` (its volume and faders, which LMMS applies before a track's
    effects; a mixer channel's compressor hears the faders before it, taken as all of them)
    and the compressor's own input gain."""
    for effect in path_effects(stem_meta):
        units = effect.get("units", {})
        if effect.get("kind") == "compressor" and "threshold_db" in units:
            c = ranges(CompressorParams)
            heard_db = (level_db(dry) - common_gain_db + (stem_meta.get("level_db") or 0.0)
                        + units.get("input_db", 0.0))
            return {"comp_on": 1.0,
                    "comp_threshold_db": units["threshold_db"] - heard_db,
                    "comp_ratio": c["ratio"].clip(units["ratio"]),
                    "comp_attack_ms": c["attack_ms"].clip(units["attack_ms"]),
                    "comp_release_ms": c["release_ms"].clip(units["release_ms"])}
    return {"comp_on": 0.0, **{k: math.nan for k in COMPRESSOR_OUTPUTS[1:]}}


def manifest_room(meta: dict) -> dict[str, float] | None:
    """The room an LMMS song's reverbs describe: the median decay, pre-delay and damping over
    the reverbs on its stems' paths that give them (`ReverbParams`' units), or None."""
    found = [e["units"] for stem in meta["stems"].values() for e in path_effects(stem)
             if e.get("kind") == "reverb" and "decay_s" in e.get("units", {})]
    if not found:
        return None
    r = ranges(ReverbParams)
    return {f"room_{k}": r[k].clip(float(np.median([u.get(k, getattr(AUTHOR_REVERB, k))
                                                   for u in found])))
            for k in ROOM_FIELDS}


ROOM_GRID = {"decay_s": (0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 1.8, 2.2, 2.7, 3.3, 4.0),
             "damping_hz": (1500.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0, 12000.0, 16000.0),
             "predelay_ms": (0.0, 5.0, 10.0, 20.0, 30.0, 50.0)}
ROOM_PASSES = 3  # coordinate descent over `ROOM_GRID`, one field at a time
ROOM_BAND_EDGES_HZ = (250.0, 1000.0, 4000.0, 16000.0)  # three bands' decay curves
ROOM_RANGE_DB = 40.0  # of each decay curve compared, from its start
SYNTH_NOTE = (115, 72)  # General-MIDI woodblock, C5: a click the room rings after
SYNTH_TAIL_S = 4.0


def decay_curves_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """The energy decay curve (Schroeder's backward integral, dB from its start) of the
    channel sum in each band of `ROOM_BAND_EDGES_HZ`, ``(bands, samples)``."""
    mono = np.atleast_2d(np.asarray(x, np.float64)).sum(axis=0)
    spectrum = np.fft.rfft(mono)
    freqs = np.fft.rfftfreq(mono.size, 1.0 / sample_rate)
    edges = ROOM_BAND_EDGES_HZ
    curves = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        band = np.fft.irfft(np.where((freqs >= lo) & (freqs < hi), spectrum, 0.0), mono.size)
        energy = np.cumsum(np.square(band)[::-1])[::-1]
        curves.append(10.0 * np.log10(energy / max(energy[0], 1e-30) + 1e-30))
    return np.stack(curves)


def room_distance_db(ours: np.ndarray, author: np.ndarray) -> float:
    """Mean absolute difference of two `decay_curves_db` over the first `ROOM_RANGE_DB` of the
    author's, band by band."""
    return float(np.mean([np.mean(np.abs(o[a > -ROOM_RANGE_DB] - a[a > -ROOM_RANGE_DB]))
                          for o, a in zip(ours, author, strict=True)]))


def fit_room(dry: np.ndarray, reverb: np.ndarray, sample_rate: int,
             start: ReverbParams = AUTHOR_REVERB) -> ReverbParams:
    """automix's room whose return of ``dry`` decays band by band (`decay_curves_db`) most
    the way ``reverb`` (another room's return of the same sound) does: coordinate descent over
    `ROOM_GRID`, `ROOM_PASSES` times. Levels are the sends'; this fits the room's shape."""
    target = decay_curves_db(reverb, sample_rate)
    dry = np.ascontiguousarray(np.broadcast_to(dry, (2, dry.shape[-1])), dtype=np.float32)
    seen: dict[ReverbParams, float] = {}

    def cost(room: ReverbParams) -> float:
        if room not in seen:
            seen[room] = room_distance_db(
                decay_curves_db(reverb_return(dry, sample_rate, room), sample_rate), target)
        return seen[room]

    room = start
    for _ in range(ROOM_PASSES):
        for name, grid in ROOM_GRID.items():
            room = min((replace(room, **{name: v}) for v in grid), key=cost)
    return room


def synth_room() -> ReverbParams | None:
    """automix's room for FluidSynth's reverb as the General-MIDI songs are rendered
    (`multitracks.render`; its authors chose only the sends): one click (`SYNTH_NOTE`, reverb
    send full, chorus off) rendered with and without the synthesiser's effects, the
    difference fitted by `fit_room`; None without FluidSynth and its sound font."""
    import tempfile

    import mido

    from automix.training import multitracks

    if not multitracks.can_render():
        return None
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    program, note = SYNTH_NOTE
    track += [mido.Message("program_change", program=program),
              mido.Message("control_change", control=91, value=127),
              mido.Message("control_change", control=93, value=0),
              mido.Message("note_on", note=note, velocity=110, time=0),
              mido.Message("note_off", note=note, velocity=0, time=24),
              mido.MetaMessage("end_of_track", time=int(SYNTH_TAIL_S * 960))]
    midi.tracks.append(track)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "click.mid"
        midi.save(path)
        renders = []
        for effects in (False, True):
            wav = Path(tmp) / f"click_{effects}.wav"
            multitracks.render(path, wav, effects=effects)
            x, sr = sf.read(wav, dtype="float64", always_2d=True)
            renders.append(x.T)
    n = min(r.shape[1] for r in renders)
    dry, wet = (r[:, :n] for r in renders)
    return fit_room(dry, wet - dry, sr)


def read_excerpt(path: Path, start_s: float, seconds: float) -> tuple[np.ndarray, int]:
    info = sf.info(path)
    x, sr = sf.read(path, start=int(start_s * info.samplerate),
                    frames=int(seconds * info.samplerate), dtype="float32", always_2d=True)
    x = x.T
    return (np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x[:2]), sr


def role_of(name: str, samples: np.ndarray, sample_rate: int) -> str:
    """The role automix's mixer would give the stem: by its name, else by its sound."""
    return role_from_name(name) or role_from_audio(samples, sample_rate)


def room_fields(room: ReverbParams) -> dict[str, float]:
    """A room as the model's room targets (`author_net.ROOM_FIELDS`)."""
    return {f"room_{k}": float(getattr(room, k)) for k in ROOM_FIELDS}


def song_examples(song: Path, room: ReverbParams = AUTHOR_REVERB,
                  synth: ReverbParams | None = None
                  ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, targets (`OUTPUTS`, NaN where the song does not say) and names of a song's
    stems that play in its excerpt. ``synth``: the room of a General-MIDI song
    (`synth_room`), None for none."""
    meta = json.loads((song / "meta.json").read_text())
    renderer = meta.get("renderer")
    duration = sf.info(song / "master.flac").duration
    seconds = min(EXCERPT_S, duration)
    start = max((duration - seconds) / 2.0, 0.0)
    names, samples, roles, targets = [], [], [], []
    for path in sorted((song / "stems").glob("*.flac")):
        wet_path = song / "wet" / path.name
        if not wet_path.exists():
            continue
        dry, sr = read_excerpt(path, start, seconds)
        wet, _ = read_excerpt(wet_path, start, seconds)
        n = min(dry.shape[1], wet.shape[1])
        dry, wet = dry[:, :n], wet[:, :n]
        fitted = fit_stem(dry, wet, sr, room)
        if fitted is None:
            continue
        stem_meta = meta.get("stems", {}).get(path.stem, {})
        if renderer == "lmms" and stem_meta.get("level_db") is not None:  # the faders, as set:
            fitted.update(gain_db=stem_meta["level_db"],  # the wet stem is far from a gain
                          pan=stem_meta.get("pan", 0.0))  # of the dry where effects distort
        sent = sends(renderer, stem_meta)
        fitted["send_on"] = math.nan if sent is None else float(sent)
        if not sent:  # off, or no decision: the level is not learned from it
            fitted["send_db"] = math.nan
        names.append(path.stem)
        samples.append(dry)
        roles.append(role_of(path.stem, dry, sr))
        targets.append({**fitted, **compressor_target(stem_meta, dry,
                                                      meta.get("common_gain_db", 0.0))})
    if not names:
        return np.zeros((0, len(FEATURES)), np.float32), np.zeros((0, len(OUTPUTS))), []
    room_target = (room_fields(synth) if renderer == "fluidsynth" and synth is not None
                   else manifest_room(meta) or {})
    features = stem_features(samples, roles, sr)
    gains = np.array([t["gain_db"] for t in targets])
    for t, gain in zip(targets, gains, strict=True):
        t.update(gain_db=gain - np.median(gains), pan_amount=abs(t["pan"]), **room_target)
    y = np.array([[t.get(k, math.nan) for k in OUTPUTS] for t in targets], dtype=np.float64)
    return features, y, names


def author_songs(data_dir: str | Path) -> list[Path]:
    """The multitracks with an author's mix and wet stems: General-MIDI songs, LMMS projects
    and tracker modules."""
    root = Path(data_dir) / "multitracks"
    return [p for p in sorted(root.glob("*"))
            if (p / "master.flac").exists() and (p / "wet").is_dir()
            and (p / "meta.json").exists()]


def examples(data_dir: str | Path, *, cache: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """Features, targets and song index per split, cached in ``DIR/.cache/authors.npz``."""
    path = Path(data_dir) / ".cache" / "authors.npz"
    songs = author_songs(data_dir)
    key = json.dumps([list(OUTPUTS), [s.name for s in songs]])
    if cache and path.exists():
        stored = np.load(path, allow_pickle=False)
        if str(stored["key"]) == key:
            return {split: {k: stored[f"{split}_{k}"] for k in ("x", "y", "song")}
                    for split in ("train", "validation", "held_out")}
    parts: dict[str, dict[str, list]] = {s: {"x": [], "y": [], "song": []}
                                         for s in ("train", "validation", "held_out")}
    synth = synth_room()
    for i, song in enumerate(songs):
        x, y, _ = song_examples(song, synth=synth)
        part = parts[split_of(song.name)]
        part["x"].append(x)
        part["y"].append(y)
        part["song"].append(np.full(len(x), i))
    out = {split: {"x": np.concatenate(p["x"]) if p["x"] else np.zeros((0, len(FEATURES))),
                   "y": np.concatenate(p["y"]) if p["y"] else np.zeros((0, len(OUTPUTS))),
                   "song": np.concatenate(p["song"]) if p["song"] else np.zeros(0, int)}
           for split, p in parts.items()}
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        flat = {f"{split}_{k}": v for split, d in out.items() for k, v in d.items()}
        tmp = path.with_name("authors.part.npz")
        np.savez(tmp, key=np.array(key), **flat)
        tmp.replace(path)
    return out


def effect_share(songs: list[Path]) -> dict[str, float]:
    """For each effect of `author_net.EFFECT_GROUPS`, the share of the ``songs``' stems whose
    author put one on its path: the manifest's ``effects`` list per stem (``kind`` of each
    entry; a General-MIDI song's stems have none: the format carries no EQ or compressor)."""
    kinds = [{e.get("kind") for e in meta.get("effects", []) if e.get("enabled", True)}
             for song in songs
             for meta in json.loads((song / "meta.json").read_text())["stems"].values()]
    return {effect: (sum(effect in k for k in kinds) / len(kinds) if kinds else 0.0)
            for effect in EFFECT_GROUPS}


# --- training ---------------------------------------------------------------------------------


def mean_absolute_errors(net: AuthorNet, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Per output, the mean absolute error over the stems whose target is known (NaN when
    none is)."""
    with torch.no_grad():
        pred = net(torch.from_numpy(x.astype(np.float32))).numpy()
    return {name: _nanmean(np.abs(pred[:, i] - y[:, i])) for i, name in enumerate(OUTPUTS)}


def _nanmean(v: np.ndarray) -> float:
    v = np.asarray(v, np.float64)
    return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan


def _nanmedian(v: np.ndarray) -> float:
    v = np.asarray(v, np.float64)
    return float(np.median(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan


def masked_loss(pred: torch.Tensor, y: torch.Tensor, known: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
    """The mean absolute error in units of each output's spread, over the known targets of
    each output, averaged over the outputs that have any: a rare target (the authors'
    compressors) weighs as much as a common one."""
    errors = torch.abs(pred - y) / scale * known
    counts = known.sum(dim=0)
    has = counts > 0
    return torch.mean(errors.sum(dim=0)[has] / counts[has])


def train(data_dir: str | Path, out: str | Path = DEFAULT_WEIGHTS, *, epochs: int = EPOCHS,
          seed: int = 0, fraction: float = 1.0, log=print) -> dict:
    """Train on the training songs (``fraction`` of them, for a learning curve), keep the
    epoch with the lowest validation error, write the weights and their JSON; returns it."""
    t0 = time.perf_counter()
    data = examples(data_dir)
    train_x, train_y = data["train"]["x"], data["train"]["y"]
    if fraction < 1.0:
        songs = np.unique(data["train"]["song"])
        keep = np.random.default_rng(seed).permutation(songs)[:max(1, round(fraction
                                                                             * len(songs)))]
        picked = np.isin(data["train"]["song"], keep)
        train_x, train_y = train_x[picked], train_y[picked]
    torch.manual_seed(seed)
    net = AuthorNet()
    net.mean.copy_(torch.from_numpy(train_x.mean(axis=0)))
    net.scale.copy_(torch.from_numpy(np.maximum(train_x.std(axis=0), 1e-3)))
    known_train = np.isfinite(train_y)
    net.out_mean.copy_(torch.from_numpy(np.nan_to_num(
        [_nanmean(c) for c in train_y.T]).astype(np.float32)))
    net.out_scale.copy_(torch.from_numpy(np.maximum(np.nan_to_num(
        [np.std(c[np.isfinite(c)]) if np.isfinite(c).any() else 1.0 for c in train_y.T],
        nan=1.0), 1e-3).astype(np.float32)))
    x = torch.from_numpy(train_x.astype(np.float32))
    y = torch.from_numpy(np.nan_to_num(train_y).astype(np.float32))
    known = torch.from_numpy(known_train.astype(np.float32))
    scale = net.out_scale.clone()
    optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    val_x, val_y = data["validation"]["x"], data["validation"]["y"]
    best = (math.inf, None, 0)
    for epoch in range(epochs):
        net.train()
        optimiser.zero_grad()
        loss = masked_loss(net(x), y, known, scale)
        loss.backward()
        optimiser.step()
        net.eval()
        errors = mean_absolute_errors(net, val_x, val_y)
        score = sum(errors[k] / float(scale[i]) for i, k in enumerate(OUTPUTS)
                    if math.isfinite(errors[k]))
        if score < best[0]:
            best = (score, {k: v.clone() for k, v in net.state_dict().items()}, epoch)
    net.load_state_dict(best[1])
    net.eval()
    constant = {name: _nanmean(np.abs(_nanmedian(train_y[:, i]) - val_y[:, i]))
                for i, name in enumerate(OUTPUTS)}
    trained_on = [song for song in author_songs(data_dir) if split_of(song.name) == "train"]
    info = {"features": list(FEATURES), "outputs": list(OUTPUTS), "room": AUTHOR_REVERB.__dict__,
            "effect_share": effect_share(trained_on),
            "train_median": [_nanmedian(c) for c in train_y.T],
            "train_known": {k: int(known_train[:, i].sum()) for i, k in enumerate(OUTPUTS)},
            "train_stems": int(len(train_x)), "validation_stems": int(len(val_x)),
            "train_songs": int(len(np.unique(data["train"]["song"])) * fraction),
            "best_epoch": best[2], "validation_mae": mean_absolute_errors(net, val_x, val_y),
            "validation_mae_constant": constant, "seconds": round(time.perf_counter() - t0, 1)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    torch.save(net.state_dict(), tmp)
    tmp.replace(out)
    out.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    log(json.dumps(info, indent=1))
    return info


CURVE_FRACTIONS = (0.25, 0.5, 1.0)  # of the training songs
CURVE_SEEDS = (0, 1, 2)  # the songs drawn and the start; each point is their mean


def learning_curve(data_dir: str | Path, *, fractions=CURVE_FRACTIONS, seeds=CURVE_SEEDS,
                   epochs: int = EPOCHS, log=print) -> list[dict]:
    """Held-out error against the share of training songs: for each fraction, the model
    trained on that many songs (drawn per seed), its mean absolute error on the held-out
    songs' stems (never trained on, nor used for the early stop), with the best constant
    (the training targets' median) for comparison."""
    import tempfile

    held = examples(data_dir)["held_out"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fraction in fractions:
            errors, constant, songs = [], [], 0
            for seed in seeds:
                weights = Path(tmp) / f"curve_{fraction:g}_{seed}.pt"  # one model a file:
                info = train(data_dir, weights, epochs=epochs, seed=seed,  # load_model caches
                             fraction=fraction, log=lambda _: None)
                model = load_model(weights)
                errors.append(mean_absolute_errors(model.net, held["x"], held["y"]))
                constant.append(info["train_median"])
                songs = info["train_songs"]
            row = {"fraction": fraction, "train_songs": songs, "held_out_stems": len(held["x"]),
                   **{f"{k} MAE": _nanmean([e[k] for e in errors]) for k in OUTPUTS},
                   **{f"{k} MAE constant": _nanmean([_nanmean(np.abs(c[i] - held["y"][:, i]))
                                                    for c in constant])
                      for i, k in enumerate(OUTPUTS)}}
            log(json.dumps(row))
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--curve", action="store_true",
                        help="print the learning curve (held-out error at 25/50/100 %% of the "
                        "training songs, 3 seeds each) instead of writing weights")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.curve:
        learning_curve(args.data, epochs=args.epochs)
        return 0
    train(args.data, args.out, epochs=args.epochs, seed=args.seed, fraction=args.fraction)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
