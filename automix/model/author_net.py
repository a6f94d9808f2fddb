"""The author model: each stem's level, pan, reverb send and compressor, and the song's
shared room, as real authors set them.

What it hears, per stem (`stem_features`): its role, its loudness against the power sum of
all the stems, how many stems there are, its octave-band profile, crest factor, how much of
the time it plays (`density`) and how much it rings by itself (`analysis.reverb_tail_db`).
What it says (`OUTPUTS`): a gain relative to the song's other stems (dB; the stems' median is
0), how far from the centre the stem sits (0..1; the side comes from the mix's pan rule),
whether it sends to the shared reverb and how much (dB), whether the stem is compressed and
how (`COMPRESSOR_OUTPUTS`: threshold relative to the stem's `level_db`, ratio, attack,
release), and the room the song plays in (`ROOM_FIELDS` of `ReverbParams`; the stems'
median is the song's, `room`). Beside the weights, what share of the training stems had an
EQ on their path (`AuthorModel.uses`): an effect the authors mostly left off stays off.

This module is inference only: `AuthorNet`, `load_model`, `predict`, `room` and
`attributions` (which inputs moved a prediction, for the table `automix suggest` prints).
Training (targets from each author's wet stem and manifest, the split, the loop) is
`automix.training.authors`.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from automix import analysis
from automix.mixing.roles import ROLES
from automix.params import CompressorParams, ReverbParams, ranges

COMPRESSOR_OUTPUTS = ("comp_on", "comp_threshold_db", "comp_ratio", "comp_attack_ms",
                      "comp_release_ms")  # on (0/1), threshold relative to `level_db`
ROOM_FIELDS = ("decay_s", "predelay_ms", "damping_hz")  # of `ReverbParams`, the song's room
ROOM_DIGITS = {"decay_s": 2, "predelay_ms": 1, "damping_hz": 0}  # a predicted room's precision
OUTPUTS = ("gain_db", "pan_amount", "send_on", "send_db", *COMPRESSOR_OUTPUTS,
           *(f"room_{k}" for k in ROOM_FIELDS))  # send_on: 0/1; send_db where it is on
BINARY_OUTPUTS = ("send_on", "comp_on")  # the network gives their log-odds (`probabilities`)
SEND_ON = 0.5  # a stem whose predicted ``send_on`` reaches this sends (weights without it: all)
OCTAVE_EDGES_HZ = (40.0, 160.0, 640.0, 2560.0, 10240.0, 20000.0)  # five bands, two octaves each
FEATURES = (*(f"role_{r}" for r in ROLES), "share_lu", "log_stems",
            *(f"band{i}_db" for i in range(len(OCTAVE_EDGES_HZ) - 1)), "crest_db", "density",
            "tail_db")
# A reader's name and unit for each feature but the role's one-hot inputs (`attributions`).
FEATURE_LABELS: dict[str, tuple[str, str]] = {
    "share_lu": ("share of the mix", "LU"), "log_stems": ("ln stem count", ""),
    **{f"band{i}_db": (f"{lo:g}-{hi:g} Hz band", "dB") for i, (lo, hi) in enumerate(
        zip(OCTAVE_EDGES_HZ[:-1], OCTAVE_EDGES_HZ[1:], strict=True))},
    "crest_db": ("crest", "dB"), "density": ("density", ""), "tail_db": ("own reverb tail", "dB"),
}
DRY_TAIL_DB = -20.0  # what `reverb_tail_db` reads for a dry stem with no onset to measure
SEND_OFF_DB = -40.0  # a predicted send under this is off
HIDDEN = 32
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "authors.pt"


# --- features (numpy) ---------------------------------------------------------------------------


def frame_powers(x: np.ndarray, sample_rate: int, frame_s: float = 0.05) -> np.ndarray:
    """Mean-square power of each 50-ms frame of ``x`` (``(n,)`` or ``(channels, n)``: the
    channels' mean), float64."""
    x = np.atleast_2d(np.asarray(x))
    hop = max(int(frame_s * sample_rate), 1)
    n = x.shape[-1] // hop
    return np.mean(np.square(x[:, : n * hop].reshape(x.shape[0], n, hop), dtype=np.float64),
                   axis=(0, 2))


PLAYING_DB = 20.0  # a frame within this of the stem's loud frames (its 95th percentile) plays


def playing(power: np.ndarray) -> np.ndarray:
    """Which of `frame_powers`' frames play: within `PLAYING_DB` of the loud ones (none of a
    silent stem's)."""
    loud = float(np.percentile(power, 95)) if power.size else 0.0
    return power > loud * 10.0 ** (-PLAYING_DB / 10.0) if loud > 0.0 else power < 0.0


def level_db(x: np.ndarray, sample_rate: int) -> float:
    """A stem's level per channel while it plays (`playing`), dB: the rests of a sparse part
    do not pull it down; -300 for silence. A compressor's threshold is given against it
    (`COMPRESSOR_OUTPUTS`)."""
    power = frame_powers(x, sample_rate)
    heard = power[playing(power)]
    return 10.0 * math.log10(float(np.mean(heard))) if heard.size else -300.0


def band_profile_db(mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """Power in each band of `OCTAVE_EDGES_HZ` relative to the stem's total (dB, floored at
    -60)."""
    spectrum = np.abs(np.fft.rfft(mono[: 1 << int(math.log2(max(mono.size, 2)))])) ** 2
    freqs = np.fft.rfftfreq(2 * (spectrum.size - 1), 1.0 / sample_rate)
    total = spectrum.sum() + 1e-20
    edges = OCTAVE_EDGES_HZ
    bands = [spectrum[(freqs >= lo) & (freqs < hi)].sum() / total
             for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return 10.0 * np.log10(np.maximum(bands, 1e-6))


def density(mono: np.ndarray, sample_rate: int, frame_s: float = 0.05) -> float:
    """The fraction of 50-ms frames that play (`playing`): 1 for a pad, near 0 for a few
    hits."""
    power = frame_powers(mono, sample_rate, frame_s)
    return float(np.mean(playing(power))) if power.size else 0.0


def stem_features(samples: list[np.ndarray], roles: list[str], sample_rate: int) -> np.ndarray:
    """`FEATURES` for each stem of a song, ``(stems, features)`` float32. ``samples`` are the
    stems' excerpts, ``(channels, n)`` each, the same span of the song."""
    powers = [float(np.mean(np.square(x, dtype=np.float64))) for x in samples]
    total = sum(powers) + 1e-20
    rows = []
    for x, role, power in zip(samples, roles, powers, strict=True):
        mono = np.asarray(x, np.float64).mean(axis=0)
        tail = analysis.reverb_tail_db(x, sample_rate)
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        crest = 20.0 * math.log10(max(peak, 1e-9) / max(math.sqrt(power), 1e-9))
        rows.append([*(1.0 if role == r else 0.0 for r in ROLES),
                     10.0 * math.log10(max(power, 1e-20) / total),
                     math.log(len(samples)),
                     *band_profile_db(mono, sample_rate),
                     crest, density(mono, sample_rate),
                     tail if math.isfinite(tail) else DRY_TAIL_DB])
    return np.asarray(rows, dtype=np.float32)


# --- the network ------------------------------------------------------------------------------


class AuthorNet(nn.Module):
    """Features (normalised by the training set's mean and spread) -> `OUTPUTS`."""

    def __init__(self, features: int = len(FEATURES), hidden: int = HIDDEN,
                 dropout: float = 0.1, outputs: int = len(OUTPUTS)) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, hidden), nn.GELU(),
                                  nn.Linear(hidden, outputs))
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.register_buffer("out_mean", torch.zeros(outputs))
        self.register_buffer("out_scale", torch.ones(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.scale) * self.out_scale + self.out_mean


EFFECT_GROUPS = {"eq": ("highpass", "eq"), "compressor": ("compressor",)}  # a stem's effects
# the authors may have used (`uses`), and the `params.StemChain` groups each one covers
USED_SHARE = 0.5  # an effect the authors put on at least this share of their stems is used


def outputs_of(info: dict) -> tuple[str, ...]:
    """The outputs of the weights whose JSON is ``info``, in order; weights without one are
    taken to have today's `OUTPUTS`."""
    return tuple(info.get("outputs", OUTPUTS))


@dataclass(frozen=True)
class AuthorModel:
    net: AuthorNet
    info: dict

    def uses(self, effect: str) -> bool:
        """Whether the training songs' authors used ``effect`` (one of `EFFECT_GROUPS`) on
        most of their stems (`USED_SHARE`; ``info["effect_share"]``, from the projects'
        manifests). Weights that do not say are taken to use every effect."""
        return self.info.get("effect_share", {}).get(effect, 1.0) >= USED_SHARE

    @property
    def outputs(self) -> tuple[str, ...]:
        """The outputs of these weights, in order (`outputs_of`)."""
        return outputs_of(self.info)

    def trusts(self, output: str) -> bool:
        """Whether the model predicted ``output`` better than the best constant on songs it
        did not see (``info``: the mean absolute error against the training median's; for a
        `BINARY_OUTPUTS` one, the share it called right against always calling the training
        majority): cross-validated over the training and validation songs (``cv_``) where the
        weights have it, else on the validation songs. Where it did not, `predict_features`
        gives that constant: the training songs' authors' typical choice. Weights that do not
        say are trusted."""
        info = self.info
        judge = "cv" if "cv_mae" in info else "validation"
        ours, constant = ((info.get(f"{judge}_accuracy", {}).get(output),
                           info.get(f"{judge}_accuracy_constant", {}).get(output))
                          if output in BINARY_OUTPUTS else
                          (info.get(f"{judge}_mae", {}).get(output),
                           info.get(f"{judge}_mae_constant", {}).get(output)))
        if ours is None or constant is None or not (math.isfinite(ours)
                                                    and math.isfinite(constant)):
            return True
        return ours > constant if output in BINARY_OUTPUTS else ours < constant


@functools.cache
def load_model(path: str | Path = DEFAULT_WEIGHTS) -> AuthorModel:
    """The model at ``path``, read once per process (a mix asks for it up to three times:
    the suggestion, the send's motivation and whether the authors compressed)."""
    path = Path(path)
    info = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(
        ".json").exists() else {}
    net = AuthorNet(outputs=len(outputs_of(info)))
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.eval()
    return AuthorModel(net, info)


COMPRESSOR_ON = 0.5  # a stem whose predicted ``comp_on`` reaches this is compressed


@dataclass(frozen=True)
class AuthorSettings:
    """What the model says for one stem: its gain (dB, re the song's median stem), distance
    from the centre (0..1), send (dB), compressor (``comp_ratio`` 1 when off; the threshold
    relative to the stem's `level_db`) and the shared room it hears the song in."""

    gain_db: float
    pan_amount: float
    send_db: float
    comp_threshold_db: float = 0.0
    comp_ratio: float = 1.0
    comp_attack_ms: float = 10.0
    comp_release_ms: float = 100.0
    room_decay_s: float = math.nan
    room_predelay_ms: float = math.nan
    room_damping_hz: float = math.nan


def predict(model: AuthorModel, samples: list[np.ndarray], roles: list[str],
            sample_rate: int) -> list[AuthorSettings]:
    """The model's settings for each stem (gains re-centred on their median: only the balance
    between the stems is the model's; the mix's loudness is the master's)."""
    return predict_features(model, stem_features(samples, roles, sample_rate))


def predict_features(model: AuthorModel, features: np.ndarray) -> list[AuthorSettings]:
    """`predict` from the stems' `stem_features`, ``(stems, features)``; outputs the weights
    do not have (older ones: level, pan and send only) keep `AuthorSettings`' defaults."""
    features = torch.from_numpy(np.asarray(features, np.float32))
    with torch.no_grad():
        out = model.net(features).numpy().astype(np.float64)
    names = model.outputs
    col = {name: probabilities(out[:, i]) if name in BINARY_OUTPUTS else out[:, i]
           for i, name in enumerate(names)}
    for i, name in enumerate(names):  # what it did not learn: the authors' typical choice
        if not model.trusts(name):
            col[name] = np.full(len(out), float(model.info["train_median"][i]))
    gains = col["gain_db"] - np.median(col["gain_db"])
    c = ranges(CompressorParams)
    rows = []
    for i, gain in enumerate(gains):
        on = "comp_on" in col and col["comp_on"][i] >= COMPRESSOR_ON
        comp = {"comp_threshold_db": float(col["comp_threshold_db"][i]),
                "comp_ratio": c["ratio"].clip(float(col["comp_ratio"][i])),
                "comp_attack_ms": c["attack_ms"].clip(float(col["comp_attack_ms"][i])),
                "comp_release_ms": c["release_ms"].clip(float(col["comp_release_ms"][i]))
                } if on else {}
        room = {f"room_{k}": float(col[f"room_{k}"][i]) for k in ROOM_FIELDS
                if f"room_{k}" in col}
        sends = "send_on" not in col or col["send_on"][i] >= SEND_ON
        rows.append(AuthorSettings(float(gain), float(np.clip(col["pan_amount"][i], 0.0, 1.0)),
                                   float(np.clip(col["send_db"][i], -60.0, 0.0)) if sends
                                   else -60.0, **comp, **room))
    return rows


def room(found: list[AuthorSettings], base: ReverbParams) -> ReverbParams:
    """The shared room the stems' predictions agree on: ``base`` with the median of their
    decay, pre-delay and damping (each clipped to `ReverbParams`' range and rounded to
    `ROOM_DIGITS`, so that a settings file holds the room it renders exactly); ``base`` where
    the weights predict no room."""
    r = ranges(ReverbParams)
    values = {k: float(np.median([getattr(f, f"room_{k}") for f in found])) for k in ROOM_FIELDS}
    return replace(base, **{k: round(r[k].clip(v), ROOM_DIGITS[k]) for k, v in values.items()
                            if math.isfinite(v)})


def probabilities(log_odds: np.ndarray) -> np.ndarray:
    """A `BINARY_OUTPUTS` output as the probability it says (0..1)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(log_odds, np.float64)))


def output(model: AuthorModel, features: np.ndarray, name: str) -> np.ndarray:
    """The network's ``name`` output (one of the weights' outputs) for each stem; a
    `BINARY_OUTPUTS` one as its probability."""
    with torch.no_grad():
        out = model.net(torch.from_numpy(np.asarray(features, np.float32))).numpy()
    v = out[:, model.outputs.index(name)].astype(np.float64)
    return probabilities(v) if name in BINARY_OUTPUTS else v


def attributions(model: AuthorModel, features: np.ndarray, output: str = "send_db",
                 steps: int = 16) -> np.ndarray:
    """How far each input moved each stem's ``output`` (one of `OUTPUTS`, in its unit; a
    `BINARY_OUTPUTS` one as its probability) from
    the model's prediction for the training set's average stem: integrated gradients along
    the straight path from that average (the network's normalised zero) to each stem's
    `stem_features`, by the midpoint rule over ``steps``. A stem's attributions sum to its
    prediction less the average's, to within the rule's error.

    Parameters
    ----------
    features : np.ndarray, shape (stems, len(FEATURES)), from `stem_features`

    Returns
    -------
    np.ndarray, shape (stems, len(FEATURES)), float64
    """
    x = torch.from_numpy(np.asarray(features, np.float32))
    base = model.net.mean.expand_as(x)
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    path = (base + alphas[:, None, None] * (x - base)).requires_grad_(True)  # (steps, stems, F)
    column = model.outputs.index(output)
    out = model.net(path.reshape(-1, x.shape[1]))[:, column]
    out = (torch.sigmoid(out) if output in BINARY_OUTPUTS else out).sum()
    (grad,) = torch.autograd.grad(out, path)
    return ((x - base) * grad.mean(0)).numpy().astype(np.float64)
