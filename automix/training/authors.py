"""Training of the author model (`automix.model.author_net`) on General-MIDI multitracks.

The songs come from `automix.training.multitracks`: each channel rendered dry (``stems/``)
and as it sounds in the author's mix (``wet/``: the author's volume, pan and sends, the
synthesiser's reverb and chorus on). The targets are automix's own settings fitted to each
wet stem (`fit_stem`), so the model learns in the units the mixer renders:

- the direct path is the dry stem times one gain per channel (least squares: the notes are
  the same, only the author's level and pan differ), which gives the stem's gain (their mean
  power, dB) and its pan (the angle of the constant-power law, `render.pan`);
- what is left, the wet stem minus its direct path, is the synthesiser's reverb and chorus;
  its energy over the direct path's, against the same ratio for automix's reverb bus
  (`AUTHOR_REVERB`) at a 0-dB send, gives the send in dB.

Beside the weights, the share of the training stems whose author put an EQ or a compressor
on their path (`effect_share`, from the manifests; none in a General-MIDI song), so that the
mixer leaves off what the authors left off (`author_net.AuthorModel.uses`).

Gains are taken relative to the song's median stem (a mix's loudness is the master's), pans
as distance from the centre (which side is the pan rule's). Examples are the stems of one
excerpt per song (`EXCERPT_S` from the middle), split by song (`data.is_held_out`, never
trained on; `data.is_validation` for the early stop). Run::

    python -m automix.training.authors DIR [--out automix/model/weights/authors.pt]
    python -m automix.training.authors DIR --curve    # held-out error at 25/50/100 % of songs
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from automix.effects.render import reverb_return
from automix.mixing.roles import role_from_audio, role_from_name
from automix.model.author_net import (
    DEFAULT_WEIGHTS,
    EFFECT_GROUPS,
    FEATURES,
    OUTPUTS,
    AuthorNet,
    load_model,
    stem_features,
)
from automix.params import ReverbParams
from automix.settings import AUTHOR_REVERB
from automix.training.data import split_of

EXCERPT_S = 60.0  # the middle this many seconds of each song
SILENT_POWER = 1e-9  # a dry excerpt under -90 dBFS mean power plays nothing here
SEND_RANGE_DB = (-60.0, 0.0)
EPOCHS = 400
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-3


# --- targets ----------------------------------------------------------------------------------


def fit_stem(dry: np.ndarray, wet: np.ndarray, sample_rate: int,
             room: ReverbParams = AUTHOR_REVERB) -> dict[str, float] | None:
    """automix's gain (dB), pan (-1..1) and reverb send (dB) that turn ``dry`` into ``wet``
    (both ``(2, n)``, the same notes), or None when ``dry`` plays nothing."""
    dry = np.asarray(dry, np.float64)
    wet = np.asarray(wet, np.float64)
    power = np.einsum("cn,cn->c", dry, dry)
    if power.sum() / dry.size < SILENT_POWER:
        return None
    a = np.maximum(np.einsum("cn,cn->c", wet, dry) / np.maximum(power, 1e-20), 1e-4)
    direct = a[:, None] * dry
    residual = wet - direct
    direct_energy = float(np.sum(np.square(direct)))
    ratio = float(np.sum(np.square(residual))) / direct_energy
    ours = reverb_return(direct.astype(np.float32), sample_rate, room)
    ours_ratio = float(np.sum(np.square(ours, dtype=np.float64))) / direct_energy
    send_db = 10.0 * math.log10(max(ratio, 1e-12) / max(ours_ratio, 1e-12))
    return {"gain_db": 10.0 * math.log10(float(np.mean(np.square(a)))),
            "pan": 4.0 / math.pi * math.atan2(a[1], a[0]) - 1.0,
            "send_db": min(max(send_db, SEND_RANGE_DB[0]), SEND_RANGE_DB[1])}


def read_excerpt(path: Path, start_s: float, seconds: float) -> tuple[np.ndarray, int]:
    info = sf.info(path)
    x, sr = sf.read(path, start=int(start_s * info.samplerate),
                    frames=int(seconds * info.samplerate), dtype="float32", always_2d=True)
    x = x.T
    return (np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x[:2]), sr


def role_of(name: str, samples: np.ndarray, sample_rate: int) -> str:
    """The role automix's mixer would give the stem: by its name, else by its sound."""
    return role_from_name(name) or role_from_audio(samples, sample_rate)


def song_examples(song: Path, room: ReverbParams = AUTHOR_REVERB
                  ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, targets (`OUTPUTS`) and names of a song's stems that play in its excerpt."""
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
        fitted = fit_stem(dry[:, :n], wet[:, :n], sr, room)
        if fitted is None:
            continue
        names.append(path.stem)
        samples.append(dry[:, :n])
        roles.append(role_of(path.stem, dry[:, :n], sr))
        targets.append(fitted)
    if not names:
        return np.zeros((0, len(FEATURES)), np.float32), np.zeros((0, len(OUTPUTS))), []
    features = stem_features(samples, roles, sr)
    gains = np.array([t["gain_db"] for t in targets])
    y = np.stack([gains - np.median(gains), [abs(t["pan"]) for t in targets],
                  [t["send_db"] for t in targets]], axis=1)
    return features, y, names


def author_songs(data_dir: str | Path) -> list[Path]:
    """The multitracks with an author's mix and wet stems rendered by FluidSynth (the
    General-MIDI songs): `fit_stem` models a gain, a pan and a reverb, which the LMMS songs'
    compressors, distortions and filters are not (`training.lmms`)."""
    root = Path(data_dir) / "multitracks"
    return [p for p in sorted(root.glob("*"))
            if (p / "master.flac").exists() and (p / "wet").is_dir()
            and (p / "meta.json").exists()
            and json.loads((p / "meta.json").read_text()).get("renderer") == "fluidsynth"]


def examples(data_dir: str | Path, *, cache: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """Features, targets and song index per split, cached in ``DIR/.cache/authors.npz``."""
    path = Path(data_dir) / ".cache" / "authors.npz"
    songs = author_songs(data_dir)
    key = json.dumps([s.name for s in songs])
    if cache and path.exists():
        stored = np.load(path, allow_pickle=False)
        if str(stored["key"]) == key:
            return {split: {k: stored[f"{split}_{k}"] for k in ("x", "y", "song")}
                    for split in ("train", "validation", "held_out")}
    parts: dict[str, dict[str, list]] = {s: {"x": [], "y": [], "song": []}
                                         for s in ("train", "validation", "held_out")}
    for i, song in enumerate(songs):
        x, y, _ = song_examples(song)
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
    with torch.no_grad():
        pred = net(torch.from_numpy(x.astype(np.float32))).numpy()
    return {name: float(np.mean(np.abs(pred[:, i] - y[:, i]))) for i, name in enumerate(OUTPUTS)}


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
    net.out_mean.copy_(torch.from_numpy(train_y.mean(axis=0)))
    net.out_scale.copy_(torch.from_numpy(np.maximum(train_y.std(axis=0), 1e-3)))
    x = torch.from_numpy(train_x.astype(np.float32))
    y = torch.from_numpy(train_y.astype(np.float32))
    scale = net.out_scale.clone()
    optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    val_x, val_y = data["validation"]["x"], data["validation"]["y"]
    best = (math.inf, None, 0)
    for epoch in range(epochs):
        net.train()
        optimiser.zero_grad()
        loss = torch.mean(torch.abs((net(x) - y) / scale))
        loss.backward()
        optimiser.step()
        net.eval()
        errors = mean_absolute_errors(net, val_x, val_y)
        score = sum(errors[k] / float(scale[i]) for i, k in enumerate(OUTPUTS))
        if score < best[0]:
            best = (score, {k: v.clone() for k, v in net.state_dict().items()}, epoch)
    net.load_state_dict(best[1])
    net.eval()
    constant = {name: float(np.mean(np.abs(np.median(train_y[:, i]) - val_y[:, i])))
                for i, name in enumerate(OUTPUTS)}
    trained_on = [song for song in author_songs(data_dir) if split_of(song.name) == "train"]
    info = {"features": list(FEATURES), "outputs": list(OUTPUTS), "room": AUTHOR_REVERB.__dict__,
            "effect_share": effect_share(trained_on),
            "train_median": [float(v) for v in np.median(train_y, axis=0)],
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
                   **{f"{k} MAE": float(np.mean([e[k] for e in errors])) for k in OUTPUTS},
                   **{f"{k} MAE constant": float(np.mean([np.mean(np.abs(c[i] - held["y"][:, i]))
                                                        for c in constant]))
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
