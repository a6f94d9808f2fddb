"""Training of the author model (`automix.model.author_net`) on multitracks with the authors'
own mix decisions: General-MIDI songs (`automix.training.multitracks`), LMMS projects
(`automix.training.lmms`), tracker modules (`automix.training.modules`) and Hydrogen drum
songs (`automix.training.hydrogen`). Each channel, track or instrument is rendered dry
(``stems/``) and as it sounds in the author's mix (``wet/``).

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
  automix's reverb bus at a 0-dB send, gives the send in dB, read only where the path holds
  nothing but rooms, echoes, EQs and gains (`author_targets.send_readable`); ``send_on`` says
  whether the author sent at all: off for a General-MIDI channel whose CC91 is 0 and an LMMS
  track whose path has no reverb or echo and a Hydrogen instrument that sends to no enabled
  effect slot; unknown for a tracker module (MOD, XM, S3M and IT have no reverb to send to:
  no decision to learn from);
- the compressor (`compressor_target`): on where the author put one on the stem's path (an
  LMMS track's or mixer channel's compressor, from its manifest in real units), with its
  threshold relative to the level it heard (`author_net.level_db`), ratio, attack and
  release; off on the other LMMS tracks; unknown in General-MIDI songs, tracker modules and
  Hydrogen songs, whose formats have no compressor (`EFFECT_RENDERERS`);
- the shared room (the same for every stem of a song): an LMMS song's reverbs as their
  manifests give them (decay, pre-delay, damping: the median over its tracks,
  `manifest_room`); for a General-MIDI song, automix's room fitted once to FluidSynth's
  reverb (`synth_room`: a click rendered with and without it, `fit_room` on band decay
  curves); none for a tracker module or a Hydrogen song.

Beside the weights, the share of the training stems whose author put an EQ or a compressor
on their path (`effect_share`, from the manifests of the `EFFECT_RENDERERS` songs).

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
from pathlib import Path

import numpy as np
import torch

from automix.errors import AudioInputError
from automix.model.author_net import (
    BINARY_OUTPUTS,
    DEFAULT_WEIGHTS,
    EFFECT_GROUPS,
    FEATURES,
    OUTPUTS,
    AuthorNet,
    load_model,
    probabilities,
)
from automix.settings import AUTHOR_REVERB
from automix.training import author_targets as targets
from automix.training.author_targets import EFFECT_RENDERERS, author_songs
from automix.training.data import split_of

EPOCHS = 400
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-3


def examples(data_dir: str | Path, *, cache: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """Features, targets and song index per split. Each song's are cached in
    ``DIR/.cache/authors/<song>.npz``, keyed by the code that makes them (`_code_digest`) and
    the song's meta.json: a song added to the folder is the only one read."""
    folder = Path(data_dir) / ".cache" / "authors"
    songs = author_songs(data_dir)
    parts: dict[str, dict[str, list]] = {s: {"x": [], "y": [], "song": []}
                                         for s in ("train", "validation", "held_out")}
    digest, synth = _code_digest(), []  # FluidSynth's room, fitted once when a song needs it
    for i, song in enumerate(songs):
        path = folder / f"{song.name}.npz"
        key = json.dumps([digest, (song / "meta.json").read_text()])
        stored = np.load(path, allow_pickle=False) if cache and path.exists() else None
        if stored is not None and str(stored["key"]) == key:
            x, y = stored["x"], stored["y"]
        else:
            synth = synth or [targets.synth_room()]
            x, y, _ = targets.song_examples(song, synth=synth[0])
            if cache:
                folder.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{song.name}.part.npz")
                np.savez(tmp, key=np.array(key), x=x, y=y)
                tmp.replace(path)
        part = parts[split_of(song.name)]
        part["x"].append(x)
        part["y"].append(y)
        part["song"].append(np.full(len(x), i))
    return {split: {"x": np.concatenate(p["x"]) if p["x"] else np.zeros((0, len(FEATURES))),
                    "y": np.concatenate(p["y"]) if p["y"] else np.zeros((0, len(OUTPUTS))),
                    "song": np.concatenate(p["song"]) if p["song"] else np.zeros(0, int)}
            for split, p in parts.items()}


def _code_digest() -> str:
    """A digest of the code that makes the examples (the targets, the model's features and
    its outputs' names): a cache made by other code is made again."""
    import hashlib
    import inspect

    from automix.model import author_net

    code = Path(targets.__file__).read_text() + json.dumps([FEATURES, OUTPUTS]) + "".join(
        inspect.getsource(f) for f in (author_net.stem_features, author_net.level_db,
                                       author_net.frame_powers, author_net.playing,
                                       author_net.band_profile_db, author_net.density))
    return hashlib.blake2b(code.encode(), digest_size=8).hexdigest()


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
    none is); a `BINARY_OUTPUTS` one's of its probability."""
    with torch.no_grad():
        pred = net(torch.from_numpy(x.astype(np.float32))).numpy().astype(np.float64)
    for i, name in enumerate(OUTPUTS):
        if name in BINARY_OUTPUTS:
            pred[:, i] = probabilities(pred[:, i])
    return {name: _nanmean(np.abs(pred[:, i] - y[:, i])) for i, name in enumerate(OUTPUTS)}


def accuracies(net: AuthorNet, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Per `BINARY_OUTPUTS` output, the share of the known targets its probability calls
    right (at 0.5)."""
    with torch.no_grad():
        pred = net(torch.from_numpy(x.astype(np.float32))).numpy()
    return {name: _share_right(pred[:, i] >= 0.0, y[:, i])
            for i, name in enumerate(OUTPUTS) if name in BINARY_OUTPUTS}


def _share_right(said: np.ndarray, y: np.ndarray) -> float:
    """The share of the known 0/1 targets ``y`` that ``said`` (booleans) gets right."""
    known = np.isfinite(y)
    return float(np.mean(said[known] == (y[known] == 1.0))) if known.any() else math.nan


def _nanmean(v: np.ndarray) -> float:
    v = np.asarray(v, np.float64)
    return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan


def _nanmedian(v: np.ndarray) -> float:
    v = np.asarray(v, np.float64)
    return float(np.median(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan


BINARY = torch.tensor([name in BINARY_OUTPUTS for name in OUTPUTS])


def masked_loss(pred: torch.Tensor, y: torch.Tensor, known: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
    """Per output, over its known targets: the absolute error in units of the output's spread,
    or for a `BINARY_OUTPUTS` one (``pred`` its log-odds) the cross-entropy; averaged over the
    outputs that have any known target, so a rare one (the authors' compressors) weighs as
    much as a common one."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(pred, y, reduction="none")
    errors = torch.where(BINARY, bce, torch.abs(pred - y) / scale) * known
    counts = known.sum(dim=0)
    has = counts > 0
    return torch.mean(errors.sum(dim=0)[has] / counts[has])


def fit(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray | None = None,
        val_y: np.ndarray | None = None, *, epochs: int = EPOCHS, seed: int = 0
        ) -> tuple[AuthorNet, int]:
    """A model fitted to the training examples (NaN targets skipped, `masked_loss`) and the
    epoch it stops at: with validation examples, the epoch of lowest validation loss; else
    the last of ``epochs``."""
    torch.manual_seed(seed)
    net = AuthorNet()
    net.mean.copy_(torch.from_numpy(train_x.mean(axis=0)))
    net.scale.copy_(torch.from_numpy(np.maximum(train_x.std(axis=0), 1e-3)))
    binary = BINARY.numpy()
    net.out_mean.copy_(torch.from_numpy(np.where(binary, 0.0, np.nan_to_num(
        [_nanmean(c) for c in train_y.T])).astype(np.float32)))  # binary: log-odds, as they are
    net.out_scale.copy_(torch.from_numpy(np.where(binary, 1.0, np.maximum(np.nan_to_num(
        [np.std(c[np.isfinite(c)]) if np.isfinite(c).any() else 1.0 for c in train_y.T],
        nan=1.0), 1e-3)).astype(np.float32)))
    x, y, known = _tensors(train_x, train_y)
    scale = net.out_scale.clone()
    optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    watched = None if val_x is None or val_y is None else _tensors(val_x, val_y)
    best = (math.inf, None, epochs - 1)
    for epoch in range(epochs):
        net.train()
        optimiser.zero_grad()
        loss = masked_loss(net(x), y, known, scale)
        loss.backward()
        optimiser.step()
        if watched is not None:
            net.eval()
            with torch.no_grad():  # the early stop watches the training objective
                score = float(masked_loss(net(watched[0]), watched[1], watched[2], scale))
            if score < best[0]:
                best = (score, {k: v.clone() for k, v in net.state_dict().items()}, epoch)
    if best[1] is not None:
        net.load_state_dict(best[1])
    net.eval()
    return net, best[2]


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features, targets (NaN as 0) and which targets are known, as float32 tensors."""
    return (torch.from_numpy(x.astype(np.float32)),
            torch.from_numpy(np.nan_to_num(y).astype(np.float32)),
            torch.from_numpy(np.isfinite(y).astype(np.float32)))


CV_FOLDS = 5  # the trust in each output: cross-validated over the training and validation songs


def cross_validated(x: np.ndarray, y: np.ndarray, songs: np.ndarray, *, epochs: int,
                    folds: int = CV_FOLDS, seed: int = 0) -> dict[str, dict[str, float]]:
    """Each output's error on songs the model did not see, against the best constant's: the
    songs split into ``folds`` groups, a model fitted (``epochs``) on the others predicts each
    group, and the group's constant is the others' median. Returns ``mae`` and
    ``mae_constant`` per output, ``accuracy`` and ``accuracy_constant`` per `BINARY_OUTPUTS`
    one (at 0.5), over every stem: a judge of what the model learned less at the mercy of
    which songs one validation split drew than that split alone."""
    order = np.unique(songs)
    if len(order) < folds:
        return {}
    fold_of = dict(zip(np.random.default_rng(seed).permutation(order), np.arange(len(order))
                       % folds, strict=True))
    fold = np.array([fold_of[s] for s in songs])
    pred = np.full(y.shape, np.nan)
    constant = np.full(y.shape, np.nan)
    for k in range(folds):
        held = fold == k
        net, _ = fit(x[~held], y[~held], epochs=epochs, seed=seed)
        with torch.no_grad():
            out = net(torch.from_numpy(x[held].astype(np.float32))).numpy().astype(np.float64)
        pred[held] = out
        constant[held] = [_nanmedian(c) for c in y[~held].T]
    binary = [i for i, name in enumerate(OUTPUTS) if name in BINARY_OUTPUTS]
    pred[:, binary] = probabilities(pred[:, binary])
    return {"mae": {n: _nanmean(np.abs(pred[:, i] - y[:, i])) for i, n in enumerate(OUTPUTS)},
            "mae_constant": {n: _nanmean(np.abs(constant[:, i] - y[:, i]))
                             for i, n in enumerate(OUTPUTS)},
            "accuracy": {OUTPUTS[i]: _share_right(pred[:, i] >= 0.5, y[:, i]) for i in binary},
            "accuracy_constant": {OUTPUTS[i]: _share_right(constant[:, i] >= 0.5, y[:, i])
                                  for i in binary}}


def train(data_dir: str | Path, out: str | Path = DEFAULT_WEIGHTS, *, epochs: int = EPOCHS,
          seed: int = 0, fraction: float = 1.0, log=print) -> dict:
    """Train on the training songs (``fraction`` of them, for a learning curve), keep the
    epoch with the lowest validation error, judge each output by `cross_validated` over the
    training and validation songs (at that many epochs), write the weights and their JSON;
    returns it."""
    t0 = time.perf_counter()
    data = examples(data_dir)
    if not (len(data["train"]["x"]) and len(data["validation"]["x"])):
        raise AudioInputError(
            f"{data_dir}: too few multitracks with an author's mix to train the author model "
            f"({len(data['train']['x'])} training and {len(data['validation']['x'])} "
            "validation stems; each song needs stems/, wet/, master.flac and meta.json)")
    train_x, train_y = data["train"]["x"], data["train"]["y"]
    train_songs = data["train"]["song"]
    if fraction < 1.0:
        songs = np.unique(train_songs)
        keep = np.random.default_rng(seed).permutation(songs)[:max(1, round(fraction
                                                                             * len(songs)))]
        picked = np.isin(train_songs, keep)
        train_x, train_y, train_songs = train_x[picked], train_y[picked], train_songs[picked]
    val_x, val_y = data["validation"]["x"], data["validation"]["y"]
    net, best_epoch = fit(train_x, train_y, val_x, val_y, epochs=epochs, seed=seed)
    known_train = np.isfinite(train_y)
    constant = {name: _nanmean(np.abs(_nanmedian(train_y[:, i]) - val_y[:, i]))
                for i, name in enumerate(OUTPUTS)}
    cv = cross_validated(np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]),
                         np.concatenate([train_songs, data["validation"]["song"]]),
                         epochs=best_epoch + 1, seed=seed)
    trained_on = [song for song in author_songs(data_dir) if split_of(song.name) == "train"
                  and json.loads((song / "meta.json").read_text()).get("renderer")
                  in EFFECT_RENDERERS]
    info = {"features": list(FEATURES), "outputs": list(OUTPUTS), "room": AUTHOR_REVERB.__dict__,
            "effect_share": effect_share(trained_on),
            "train_median": [_nanmedian(c) for c in train_y.T],
            "train_known": {k: int(known_train[:, i].sum()) for i, k in enumerate(OUTPUTS)},
            "train_stems": int(len(train_x)), "validation_stems": int(len(val_x)),
            "train_songs": int(len(np.unique(train_songs))),
            "best_epoch": best_epoch, "validation_mae": mean_absolute_errors(net, val_x, val_y),
            "validation_mae_constant": constant,
            "validation_accuracy": accuracies(net, val_x, val_y),
            "validation_accuracy_constant": {
                k: _share_right(np.full(len(val_y), _nanmedian(train_y[:, i]) >= 0.5),
                                val_y[:, i])
                for i, k in enumerate(OUTPUTS) if k in BINARY_OUTPUTS},
            **{f"cv_{k}": v for k, v in cv.items()}, "cv_folds": CV_FOLDS if cv else 0,
            "seconds": round(time.perf_counter() - t0, 1)}
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
