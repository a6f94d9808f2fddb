"""Targets of the author model (`automix.model.author_net`): what each author did with each
dry part, in the units automix's mixer renders (`author_net.OUTPUTS`; NaN where a song does not
say), from a multitrack's dry and wet stems and its manifest (`automix.training.multitracks`,
`automix.training.lmms`, `automix.training.modules`, `automix.training.hydrogen`). How each
one is read is told in `automix.training.authors`, which turns them into examples and trains
on them.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.effects.render import reverb_return
from automix.mixing.roles import role_from_audio, role_from_name
from automix.model.author_net import (
    COMPRESSOR_OUTPUTS,
    FEATURES,
    OUTPUTS,
    ROOM_FIELDS,
    level_db,
    stem_features,
)
from automix.params import CompressorParams, ReverbParams, ranges
from automix.settings import AUTHOR_REVERB

EXCERPT_S = 60.0  # the middle this many seconds of each song
SILENT_POWER = 1e-9  # a dry excerpt under -90 dBFS mean power plays nothing here
SEND_RANGE_DB = (-60.0, 0.0)
UNHEARD_DB = -90.0  # a stem playing under this (`author_net.level_db`) says nothing of a compressor


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
RESIDUAL_KINDS = (*SEND_KINDS, "eq", "gain")  # a path of only these: what the wet stem adds
# to its direct path is the room (`fit_stem`); with a distortion, modulation, filter or
# dynamics on it, it is not, and the send's level is not read there
EFFECT_RENDERERS = ("lmms",)  # formats whose authors could put effects (EQ, compressor) on a
# part: elsewhere (General MIDI, tracker modules) a stem without one is no decision


def sends(renderer: str | None, stem_meta: dict) -> bool | None:
    """Whether the author sent a stem to a room: a General-MIDI channel's reverb send (CC91)
    is up, a Hydrogen instrument sends to an enabled effect slot, an LMMS track's path holds a
    reverb or an echo; None for a tracker module, whose formats have no reverb to send to (no
    decision to learn from)."""
    if renderer == "fluidsynth":
        return stem_meta.get("reverb_send", 1.0) > 0.0
    if renderer == "hydrogen":
        return bool(stem_meta.get("sends_to_effect", False))
    if renderer == "libopenmpt":
        return None
    return any(e.get("kind") in SEND_KINDS for e in path_effects(stem_meta))


def send_readable(renderer: str | None, stem_meta: dict) -> bool:
    """Whether a stem's wet render is its direct path plus a room, so that `fit_stem`'s send
    reads the author's send level: always in a General-MIDI song; in an LMMS project where
    every effect on the path is one of `RESIDUAL_KINDS`."""
    return renderer != "lmms" or all(e.get("kind") in RESIDUAL_KINDS
                                     for e in path_effects(stem_meta))


def compressor_target(stem_meta: dict, dry: np.ndarray, sample_rate: int,
                      common_gain_db: float = 0.0) -> dict[str, float]:
    """The author's compressor on a stem's path, in `author_net.OUTPUTS`' units: its threshold
    relative to the level the compressor heard, ratio, attack and release; ``comp_on`` 0 and
    the rest NaN when the path has none with units, or one at 1:1, which does nothing (the
    first one counts when there are several); all NaN when the stem does not play loud enough
    to say (`UNHEARD_DB`). That level is the dry stem's (`author_net.level_db`) as the project
    played it: less the recipe's ``common_gain_db`` (every file of a song is scaled by it),
    plus the track's volume (LMMS applies it before the track's effects) and, for a mixer
    channel's compressor, the faders and sends on the way there (the manifest's
    ``level_db``), and the compressor's own input gain."""
    for effect in path_effects(stem_meta):
        units = effect.get("units", {})
        if effect.get("kind") != "compressor" or "threshold_db" not in units:
            continue
        if units["ratio"] <= 1.0:
            break
        played_db = level_db(dry, sample_rate) - common_gain_db
        if played_db < UNHEARD_DB:
            return {k: math.nan for k in COMPRESSOR_OUTPUTS}
        before_db = (20.0 * math.log10(max(stem_meta.get("volume_pct", 100.0), 1e-3) / 100.0)
                     if effect.get("at") == "track" else stem_meta.get("level_db") or 0.0)
        c = ranges(CompressorParams)
        return {"comp_on": 1.0,
                "comp_threshold_db": units["threshold_db"]
                - (played_db + before_db + units.get("input_db", 0.0)),
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
        if not sent or not send_readable(renderer, stem_meta):  # off, no decision, or a
            fitted["send_db"] = math.nan  # residual that is more than a room: not learned
        names.append(path.stem)
        samples.append(dry)
        roles.append(role_of(path.stem, dry, sr))
        comp = (compressor_target(stem_meta, dry, sr, meta.get("common_gain_db", 0.0))
                if renderer in EFFECT_RENDERERS else {})
        targets.append({**fitted, **comp})
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
