"""Training of the stem network (`automix.model.stem_net`) on real multitracks.

The network learns to undo what a careless rough mix does to each stem (`Perturbation`).
Everything works on band powers, so training renders no audio. Per band, a gain or an EQ
multiplies a stem's powers by its power response (`eq_band_power`: the twin's biquads,
averaged over the band), and a pan or balance mixes the two channels by a 2 x 2 matrix ``M``,
so the channels' cross-power matrix ``C`` becomes ``M C M^T`` (`pan_gram`). A stem is held as
two items with their pan offsets, as `automix.mixing` renders it: a stereo stem's left and
right (offsets -1, +1: `render.balance`), a mono stem's signal and a silent item (offsets 0:
`render.pan`).

Training (`train`): the songs of ``DIR/multitracks`` outside the benchmark's held-out set
(`data.is_held_out`, never trained on) and outside a validation set (`data.is_validation`);
the band powers of every stem and of the real mix are measured once per half-second block
(`song_blocks`, cached). An example is a random segment of one song: every stem perturbed at
random, the reference another segment of the real mix. The loss compares the corrected stems'
band powers (left, right, mid, side; each floored 30 dB below the true mix in its band, so
that what the mix masks does not count) and their sum's with the unperturbed ones, up to one
common level, plus the known inverse settings (RBJ shelves and peaks of opposite gains are
exact inverses).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automix import analysis
from automix.mixing.roles import ROLES
from automix.model.network import parameter_count
from automix.model.stem_net import (
    BANDS,
    LAYOUT,
    OUTPUTS,
    RANGES,
    StemNet,
    StemNetConfig,
    band_grams,
    default_unit,
    power_db,
    relative_db,
    spectra,
)
from automix.params import EQParams, StemChain, from_unit_vector
from automix.training.common import JsonLog, load_config, start_run
from automix.training.data import (
    HELD_OUT_PERCENT,
    VALIDATION_PERCENT,
    is_held_out,
    is_validation,
)

EQ_GAINS = [name for name in OUTPUTS if name.startswith("eq.") and name.endswith("_gain_db")]
MASK_BELOW_MIX_DB = 30.0  # the loss ignores what lies this far below the true mix in a band
POINTS_PER_BAND = 4  # EQ responses are averaged over this many points in each band
VALIDATION_SEED = 1000  # validation examples are drawn from seed + this (members: seed + k)


# --- band powers after settings (torch) ---------------------------------------------------------


def as_items(samples: np.ndarray, stereo: bool) -> np.ndarray:
    """A stem's two items ``(2, samples)``: a stereo stem's channels, or a mono stem's signal
    (the mean of its channels) and silence."""
    if stereo:
        return samples[:2]
    return np.stack([samples.mean(axis=0), np.zeros(samples.shape[1], samples.dtype)])


def pan_gram(gram: torch.Tensor, pan: torch.Tensor, stereo: torch.Tensor) -> torch.Tensor:
    """Channel band powers ``(..., 3, BANDS)`` of items ``gram`` (same layout) panned by ``pan``
    ``(...)``: each item by the constant-power law at ``pan`` plus its offset (-1 and +1 where
    ``stereo``, else 0), clipped to -1..1, as `render.balance` and `render.pan` do."""
    offset = stereo.to(pan.dtype)
    angles = [((pan - offset).clamp(-1.0, 1.0) + 1.0) * math.pi / 4.0,
              ((pan + offset).clamp(-1.0, 1.0) + 1.0) * math.pi / 4.0]
    a, b = (torch.cos(t)[..., None] for t in angles)  # M = [[a, b], [c, d]]
    c, d = (torch.sin(t)[..., None] for t in angles)
    xx, yy, xy = gram.unbind(-2)
    return torch.stack([a * a * xx + b * b * yy + 2 * a * b * xy,
                        c * c * xx + d * d * yy + 2 * c * d * xy,
                        a * c * xx + b * d * yy + (a * d + b * c) * xy], dim=-2)


@functools.lru_cache(maxsize=4)
def _band_points(sample_rate: int) -> torch.Tensor:
    """[1, z^-1, z^-2] at `POINTS_PER_BAND` log-spaced points inside each band, shape
    (3, BANDS * POINTS_PER_BAND) complex128."""
    lo, hi = analysis.BAND_EDGES_HZ
    steps = (np.arange(POINTS_PER_BAND) + 0.5) / POINTS_PER_BAND
    freqs = (lo[:, None] * (hi / lo)[:, None] ** steps).ravel()
    z_inv = torch.exp(-2j * math.pi * torch.from_numpy(freqs / sample_rate))
    return torch.stack([torch.ones_like(z_inv), z_inv, z_inv * z_inv])


def eq_band_power(eq: EQParams, sample_rate: int) -> torch.Tensor:
    """Power response of an EQ of ``(n,)`` tensors averaged over each band, ``(n, BANDS)``
    float64, differentiable (the twin's biquads from `automix.effects.biquad`, evaluated
    like `twin.frequency_response` but only at `POINTS_PER_BAND` points per band)."""
    from automix.effects import twin

    polys = twin.eq_coefficients(eq, sample_rate).to(torch.complex128) @ _band_points(sample_rate)
    h = polys[:, :, 0] / polys[:, :, 1]  # (n, sections, points)
    power = (h.real**2 + h.imag**2).prod(dim=1)
    return power.reshape(-1, BANDS, POINTS_PER_BAND).mean(-1)


def apply_chain(gram: torch.Tensor, chain: StemChain, stereo: torch.Tensor,
                sample_rate: int) -> torch.Tensor:
    """Channel band powers ``(..., 3, BANDS)`` of items ``gram`` through ``chain``'s gain, EQ and
    pan (fields of shape ``gram.shape[:-2]``); high-pass, compressor and send are ignored."""
    lead = gram.shape[:-2]
    flat = dataclasses.replace(chain.eq, **{f.name: getattr(chain.eq, f.name).reshape(-1)
                                            for f in dataclasses.fields(EQParams)})
    power = eq_band_power(flat, sample_rate).reshape(*lead, 1, BANDS).to(gram.dtype)
    gain = (10.0 ** (chain.gain.gain_db / 10.0))[..., None, None]
    return pan_gram(gram, chain.pan.pan, stereo) * power * gain


# --- the perturbation it learns to undo ----------------------------------------------------------


@dataclass(frozen=True)
class Perturbation:
    """What a careless rough mix does to a stem, drawn uniformly: level +-``gain_db``, low and
    high shelf (default frequencies) +-``shelf_db``, peak 2 +-``peak_db`` at a log-uniform
    frequency in ``peak_hz``, pan or balance +-``pan`` (benchmarks/mixing.py draws the same)."""

    gain_db: float = 6.0
    shelf_db: float = 6.0
    peak_db: float = 6.0
    peak_hz: tuple[float, float] = (500.0, 3000.0)
    pan: float = 0.5

    def draw(self, g: torch.Generator, shape: tuple[int, ...]) -> StemChain:
        """Perturbations as a `StemChain` of float64 tensors of ``shape``."""
        def uniform(half: float) -> torch.Tensor:
            return (2.0 * torch.rand(shape, generator=g, dtype=torch.float64) - 1.0) * half

        lo, hi = self.peak_hz
        freq = lo * (hi / lo) ** torch.rand(shape, generator=g, dtype=torch.float64)
        return chain_of(shape, {"gain.gain_db": uniform(self.gain_db),
                            "eq.low_shelf_gain_db": uniform(self.shelf_db),
                            "eq.peak2_gain_db": uniform(self.peak_db), "eq.peak2_freq_hz": freq,
                            "eq.high_shelf_gain_db": uniform(self.shelf_db),
                            "pan.pan": uniform(self.pan)})


def chain_of(shape: tuple[int, ...], values: dict[str, torch.Tensor]) -> StemChain:
    """A `StemChain` of float64 tensors of ``shape``: ``values`` (real units), else defaults."""
    unit = default_unit(shape)
    for name, v in values.items():
        unit[..., LAYOUT.index(name)] = RANGES[name].normalize(v)
    return from_unit_vector(StemChain, unit)


def inverse_of(p: StemChain) -> dict[str, torch.Tensor]:
    """The settings that undo a perturbation's gain and EQ exactly (opposite gains at the same
    frequencies), as real units per `OUTPUTS` name (the balance has no exact inverse)."""
    out = {name: -getattr(p.eq, name[3:]) for name in EQ_GAINS}
    out["gain.gain_db"] = -p.gain.gain_db
    out["eq.peak2_freq_hz"] = p.eq.peak2_freq_hz
    return out


# --- training data -------------------------------------------------------------------------------


@dataclass
class SongBlocks:
    """Band powers of one song per block: ``items`` (stems, blocks, 3, BANDS) of each stem's
    items (`as_items`), ``mix`` (blocks, 3, BANDS) of the real mix's channels, ``stereo`` and
    ``roles`` (index in `ROLES`) per stem."""

    name: str
    items: np.ndarray
    mix: np.ndarray
    stereo: np.ndarray
    roles: np.ndarray


def song_blocks(name: str, stems: list[tuple[str, np.ndarray]], mix: np.ndarray,
                sample_rate: int, block_s: float) -> SongBlocks:
    """Measure one song: ``stems`` as (file name, (channels, samples)), ``mix`` (2, samples).
    Roles and stereo-ness are judged as `stems.load_stems` judges them."""
    from automix.mixing.roles import role_from_audio, role_from_name
    from automix.mixing.stems import Stem

    items, stereo, roles = [], [], []
    for file_name, x in stems:
        stem = Stem(file_name, x, role_from_name(file_name) or role_from_audio(x, sample_rate),
                    "")
        items.append(band_grams(as_items(x, stem.is_stereo), sample_rate, block_s))
        stereo.append(stem.is_stereo)
        roles.append(ROLES.index(stem.role))
    mix_blocks = band_grams(mix, sample_rate, block_s)
    n = min(len(mix_blocks), *(len(i) for i in items))
    return SongBlocks(name, np.stack([i[:n] for i in items]).astype(np.float32),
                      mix_blocks[:n].astype(np.float32), np.array(stereo), np.array(roles))


def read_song(song: Path, block_s: float) -> SongBlocks:
    """`song_blocks` of ``DIR/multitracks/<song>``: its stems and its master (or mix sum)."""
    import soundfile as sf

    def read(path: Path) -> tuple[np.ndarray, int]:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
        return x.T, sr

    mix, sample_rate = read(song / "master.flac" if (song / "master.flac").exists()
                            else song / "mix_sum.flac")
    stems = [(p.name, read(p)[0]) for p in sorted((song / "stems").glob("*.flac"))]
    stems = [(n, x) for n, x in stems if np.any(x)]
    return song_blocks(song.name, stems, np.repeat(mix, 2, 0)[:2] if len(mix) == 1 else mix,
                       sample_rate, block_s)


def synthetic_song(rng: np.random.Generator, name: str, seconds: float, sample_rate: int,
                   block_s: float) -> SongBlocks:
    """Stems of coloured noise with their own spectral peak, tilt, rhythm and pan (some
    stereo), named after roles, and their sum as the mix: for the tiny config and tests."""
    n = round(seconds * sample_rate)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    t = np.arange(n) / sample_rate
    stems = []
    for k, role in enumerate(rng.choice(["kick", "bass", "vocal", "guitar", "piano", "pad"],
                                        rng.integers(2, 6), replace=False)):
        centre = np.exp(rng.uniform(np.log(60.0), np.log(5000.0)))
        shape = (np.exp(-0.5 * (np.log2(np.maximum(freqs, 10.0) / centre) / 1.5) ** 2)
                 * (np.maximum(freqs, 20.0) / 1000.0) ** rng.uniform(-1.0, 0.0))
        spec = rng.standard_normal((2, freqs.size)) + 1j * rng.standard_normal((2, freqs.size))
        noise = np.fft.irfft(spec * shape, n=n)
        env = 0.2 + np.exp(-((t * rng.uniform(1.0, 4.0)) % 1.0) * 6.0)
        if rng.random() < 0.5:  # mono, panned
            angle = (rng.uniform(-0.5, 0.5) + 1.0) * np.pi / 4.0
            x = np.stack([np.cos(angle) * noise[0], np.sin(angle) * noise[0]])
        else:
            x = noise
        x = x * env * 10.0 ** (rng.uniform(-12.0, 0.0) / 20.0) / np.sqrt(np.mean(x**2))
        stems.append((f"{k:02d}_{role}.wav", (0.1 * x).astype(np.float32)))
    mix = np.sum([x for _, x in stems], axis=0)
    return song_blocks(name, stems, mix, sample_rate, block_s)


# --- training ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StemTrainConfig:
    """Everything that decides a stem-model training run (stored in the weights' JSON)."""

    sample_rate: int = 44100
    block_s: float = 0.5
    segment_s: tuple[float, float] = (5.0, 30.0)  # stems and reference, uniform
    other_reference_share: float = 0.2  # references from another song (a preset-like target)
    steps: int = 1000  # the validation loss is lowest after a few hundred
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    level_weight: float = 0.5
    sum_weight: float = 0.5
    param_weight: float = 0.2
    colour_db: float = 6.0  # each example's stems and mix share a random EQ of +-this
    validation_batches: int = 16
    synthetic_songs: int = 0  # > 0: train on synthetic songs instead of a data folder
    net: dict = field(default_factory=lambda: StemNetConfig().to_dict())


STEM_CONFIGS = {
    "default": StemTrainConfig(),
    "tiny": StemTrainConfig(segment_s=(1.0, 2.0), steps=60, batch=8, validation_batches=2,
                            synthetic_songs=8,
                            net=StemNetConfig(width=32, layers=1, heads=2, members=2).to_dict()),
}


class Examples:
    """Random training examples from songs' blocks (segment means through cumulative sums)."""

    def __init__(self, songs: list[SongBlocks], cfg: StemTrainConfig, seed: int) -> None:
        self.songs, self.cfg = songs, cfg
        self.rng = np.random.default_rng(seed)
        self.cum = [np.concatenate([np.zeros((s.items.shape[0], 1, 3, BANDS)),
                                    np.cumsum(s.items, axis=1, dtype=np.float64)], axis=1)
                    for s in songs]
        self.mix_cum = [np.concatenate([np.zeros((1, 3, BANDS)),
                                        np.cumsum(s.mix, axis=0, dtype=np.float64)])
                        for s in songs]

    def _span(self, blocks: int) -> tuple[int, int]:
        lo, hi = (max(1, round(s / self.cfg.block_s)) for s in self.cfg.segment_s)
        length = min(int(self.rng.integers(lo, hi + 1)), blocks)
        start = int(self.rng.integers(0, blocks - length + 1))
        return start, start + length

    def batch(self, n: int) -> dict[str, torch.Tensor]:
        """``n`` examples: items (n, stems, 3, BANDS), stereo, roles, mask (n, stems), and
        the reference's mix (n, 3, BANDS); stems padded to the most in the batch."""
        rows = []
        while len(rows) < n:
            k = int(self.rng.integers(len(self.songs)))
            song = self.songs[k]
            a, b = self._span(song.items.shape[1])
            items = (self.cum[k][:, b] - self.cum[k][:, a]) / (b - a)
            active = items[:, :2].sum((1, 2)) > 1e-10
            if active.sum() < 2:
                continue
            r = k
            if len(self.songs) > 1 and self.rng.random() < self.cfg.other_reference_share:
                r = int((k + self.rng.integers(1, len(self.songs))) % len(self.songs))
            for _ in range(10):  # another segment, apart from the stems' where there is room
                c, d = self._span(self.songs[r].mix.shape[0])
                if r != k or d <= a or c >= b:
                    break
            ref = (self.mix_cum[r][d] - self.mix_cum[r][c]) / (d - c)
            rows.append((items, song.stereo, song.roles, active, ref))
        width = max(len(r[0]) for r in rows)

        def padded(i: int, value: Any) -> torch.Tensor:
            return torch.from_numpy(np.stack([np.concatenate(
                [r[i], np.full((width - len(r[i]), *r[i].shape[1:]), value, r[i].dtype)])
                for r in rows]))

        return {"items": padded(0, 0.0), "stereo": padded(1, False), "roles": padded(2, 0),
                "mask": padded(3, False), "mix": torch.from_numpy(np.stack([r[4] for r in rows]))}


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (batch, stems, ...) over the stems where ``mask`` (batch, stems)."""
    m = mask.to(x.dtype).reshape(*mask.shape, *([1] * (x.dim() - 2)))
    return (x * m).sum() / (m.sum() * x[0, 0].numel()).clamp_min(1.0)


def reference_of(mix: torch.Tensor) -> torch.Tensor:
    """A mix's channel band powers ``(..., 3, BANDS)`` as a reference, ``(..., 2, BANDS)``."""
    s = spectra(mix)
    return relative_db(s[..., 2, :], s[..., 3, :])


def recolour(batch: dict[str, torch.Tensor], colour: EQParams,
             sample_rate: int) -> dict[str, torch.Tensor]:
    """``batch`` with each example's stems and mix through one EQ (``(batch,)`` tensors): another
    production's colour, so that the network learns the stems' balance, not their sound."""
    response = eq_band_power(colour, sample_rate)  # (batch, BANDS)
    return {**batch, "items": batch["items"] * response[:, None, None],
            "mix": batch["mix"] * response[:, None]}


def losses(model: StemNet | None, batch: dict[str, torch.Tensor], perturbation: StemChain,
           cfg: StemTrainConfig, *, member: int | None = None,
           unit: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The losses of the model's corrections (of one ``member``'s, or of ``unit``, normalised
    chains (batch, stems, len(LAYOUT))) for one batch and its perturbation (a `StemChain` of
    (batch, stems) tensors).

    - shape_db: each corrected stem at its true level against the unperturbed one: left,
      right, mid and side band powers (dB, weighted 1/4, 1/4, 1, 1), each floored
      `MASK_BELOW_MIX_DB` below the true mix's same spectrum in the band (and never less than
      twice that below its mid);
    - level_db: each stem's level error, after one common offset per example;
    - sum_db: the corrected stems' power sum against the unperturbed one's (mid and side),
      at one level;
    - param: the gain (common offset removed) and EQ gains against the exact inverse (/ 12 dB),
      peak 2's frequency (/ two octaves, weighted by its gain). The balance has no such term:
      the opposite of a pan is not its inverse (a balance cannot take back what it moved into
      the other channel), so the band powers alone teach it.
    """
    items, stereo, mask = batch["items"].double(), batch["stereo"], batch["mask"]
    sr = cfg.sample_rate
    active = mask[..., None, None]
    true = pan_gram(items, torch.zeros(mask.shape, dtype=torch.float64), stereo) * active
    played = apply_chain(items, perturbation, stereo, sr) * active
    if unit is None:
        unit = model(played, mask, batch["roles"], reference_of(batch["mix"]), member)
    fixed = apply_chain(played, from_unit_vector(StemChain, unit.double()),
                        torch.ones_like(stereo), sr) * active
    power_true, power_fixed = (g[:, :, :2].sum((2, 3)) + 1e-30 for g in (true, fixed))
    level = power_db(power_fixed) - power_db(power_true)  # (batch, stems)
    level = level - (level * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True)
    s_true = spectra(true)
    below = 10.0 ** (-MASK_BELOW_MIX_DB / 10.0)
    mix_true = s_true.sum(1, keepdim=True)
    floor = below * mix_true + below**2 * mix_true[:, :, 2:3]
    weights = torch.tensor([0.25, 0.25, 1.0, 1.0], dtype=torch.float64)[:, None]
    at_level = spectra(fixed * (power_true / power_fixed)[..., None, None])
    shape_error = ((power_db(at_level + floor) - power_db(s_true + floor)).abs() * weights
                   / weights.mean())
    at_mix_level = spectra(fixed).sum(1)[:, 2:] * (power_true.sum(1) / power_fixed.sum(1))[
        :, None, None]
    sum_true = s_true.sum(1)[:, 2:]
    sum_floor = 1e-6 * sum_true[:, :1].amax(-1, keepdim=True)
    sum_error = ((power_db(at_mix_level + sum_floor) - power_db(sum_true + sum_floor)).abs()
                 * weights[2:])
    target = inverse_of(perturbation)
    got = {k: RANGES[k].denormalize(unit[..., LAYOUT.index(k)].double()) for k in OUTPUTS}
    gain_error = got["gain.gain_db"] - target["gain.gain_db"]
    gain_error = gain_error - (gain_error * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True)
    peak_weight = (target["eq.peak2_gain_db"].abs() / 6.0).clamp(max=1.0)
    freq_error = (got["eq.peak2_freq_hz"] / target["eq.peak2_freq_hz"]).log().abs() / math.log(4)
    param = torch.stack([gain_error.abs() / 12.0, freq_error * peak_weight]
                        + [(got[k] - target[k]).abs() / 12.0 for k in EQ_GAINS], -1)
    out = {"shape_db": _masked_mean(shape_error, mask), "level_db": _masked_mean(level.abs(), mask),
           "sum_db": sum_error.mean() / weights[2:].mean(), "param": _masked_mean(param, mask)}
    out["loss"] = (out["shape_db"] + cfg.level_weight * out["level_db"]
                   + cfg.sum_weight * out["sum_db"] + cfg.param_weight * out["param"])
    return out


def _baselines(batch: dict[str, torch.Tensor], perturbation: StemChain,
               cfg: StemTrainConfig) -> dict[str, float]:
    """Validation losses of no correction and of the exact gain/EQ inverse with the opposite
    balance, for the log."""
    identity = default_unit(batch["mask"].shape)
    exact = identity.clone()
    for name, v in {**inverse_of(perturbation), "pan.pan": -perturbation.pan.pan}.items():
        exact[..., LAYOUT.index(name)] = RANGES[name].normalize(v)
    return {f"{name}_{k}": v.item() for name, u in (("identity", identity), ("inverse", exact))
            for k, v in losses(None, batch, perturbation, cfg, unit=u).items()}


def _songs(cfg: StemTrainConfig, data_dir: str | Path | None, seed: int,
           cache_dir: Path) -> list[SongBlocks]:
    """Every usable song (held-out ones excluded), measured once and cached."""
    if cfg.synthetic_songs > 0:
        rng = np.random.default_rng(seed)
        return [synthetic_song(rng, f"synthetic{k}", 3.0 * cfg.segment_s[1], cfg.sample_rate,
                               cfg.block_s) for k in range(cfg.synthetic_songs)]
    folders = [p for p in sorted((Path(data_dir) / "multitracks").glob("*"))
               if (p / "meta.json").exists() and (p / "stems").is_dir()
               and not is_held_out(p.name)]
    key = hashlib.sha1(repr(("v1", cfg.block_s, [p.name for p in folders])).encode())
    path = cache_dir / f"stems_{key.hexdigest()[:12]}.pt"
    if path.exists():
        return [SongBlocks(**s) for s in torch.load(path, weights_only=False)]
    songs = [read_song(p, cfg.block_s) for p in folders]
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save([dataclasses.asdict(s) for s in songs], path)
    return songs


def validate(model: StemNet, batches: list[tuple[dict[str, torch.Tensor], StemChain]],
             cfg: StemTrainConfig, member: int | None = None) -> dict[str, float]:
    """Mean losses (`losses`) of the ensemble or of one ``member`` over validation batches."""
    model.eval()
    with torch.no_grad():
        rows = [losses(model, b, p, cfg, member=member) for b, p in batches]
    return {f"val_{k}": float(np.mean([r[k].item() for r in rows])) for k in rows[0]}


def fit_member(model: StemNet, member: int, examples: Examples,
               val_batches: list[tuple[dict[str, torch.Tensor], StemChain]],
               cfg: StemTrainConfig, seed: int, log: Any, progress: Any, log_every: int) -> int:
    """Train one member (AdamW, cosine schedule over `StemTrainConfig.steps`) on randomly
    perturbed, recoloured (`recolour`) examples; keep its weights with the lowest validation
    shape error (``shape_db`` of `losses`: EQ and balance). Returns the step they come from.

    Not the whole loss: `mixing.fit_balance` refits the levels to the reference after the
    network, and on a few songs the level and sum terms overfit within a hundred or two
    steps while the shapes keep improving for several hundred (early weights would undo
    little of the balance and EQ; averaged into the ensemble they shrink the others' moves).
    """
    net = model.members[member]
    g = torch.Generator().manual_seed(seed)
    perturb = Perturbation()
    colour = Perturbation(gain_db=0.0, shelf_db=cfg.colour_db, peak_db=cfg.colour_db,
                          peak_hz=(200.0, 5000.0), pan=0.0)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    task = progress.add_task(f"stems {member + 1}/{len(model.members)}", total=cfg.steps)
    best, best_step, best_state = math.inf, 0, copy.deepcopy(net.state_dict())
    for step in range(1, cfg.steps + 1):
        model.train()
        batch = recolour(examples.batch(cfg.batch), colour.draw(g, (cfg.batch,)).eq,
                         cfg.sample_rate)
        loss = losses(model, batch, perturb.draw(g, tuple(batch["mask"].shape)), cfg,
                      member=member)
        opt.zero_grad()
        loss["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        progress.update(task, advance=1)
        if step == 1 or step % log_every == 0 or step == cfg.steps:
            row = {**{k: v.item() for k, v in loss.items()},
                   **validate(model, val_batches, cfg, member)}
            log.write(phase="fit", member=member, step=step, **row)
            if row["val_shape_db"] < best:
                best, best_step = row["val_shape_db"], step
                best_state = copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    return best_step


def train(data_dir: str | Path | None, out_dir: str | Path, *, config: str | Path = "default",
          steps: int | None = None, seed: int = 0, log_every: int = 100,
          cache_dir: str | Path | None = None, threads: int | None = None) -> Path:
    """Train the stem network; write ``stems.pt``, ``stems.json`` and ``stems_log.jsonl``.

    Parameters as `automix.training.master.train` (``data_dir`` holds ``multitracks/<song>/``
    with ``stems/*.flac`` and ``master.flac`` or ``mix_sum.flac``). Each member is trained
    by `fit_member` from its own seed (``seed``, ``seed + 1``, ...) and keeps its weights with
    the lowest validation shape error (songs by `is_validation`, or a share of synthetic ones;
    see `fit_member`).
    """
    from rich.progress import Progress

    from automix.errors import AudioInputError

    cfg = load_config(config, STEM_CONFIGS)
    if data_dir is None and cfg.synthetic_songs == 0:
        raise AudioInputError("the stem model trains on multitracks: give --data DIR")
    if steps is not None:
        cfg = dataclasses.replace(cfg, steps=steps)
    out = start_run(out_dir, threads)
    start = time.perf_counter()
    songs = _songs(cfg, data_dir, seed, Path(cache_dir or Path.home() / ".cache/automix"))
    if cfg.synthetic_songs > 0:
        validation = songs[: max(1, len(songs) // 4)]
    else:
        validation = [s for s in songs if is_validation(s.name)]
    fitted = [s for s in songs if s.name not in {v.name for v in validation}]
    if not fitted or not validation:
        raise AudioInputError(f"{data_dir}: too few multitracks to train the stem model "
                              f"({len(songs)} outside the held-out songs)")
    torch.manual_seed(seed)
    perturb = Perturbation()
    val_examples = Examples(validation, cfg, seed + VALIDATION_SEED)
    val_g = torch.Generator().manual_seed(seed + VALIDATION_SEED)
    val_batches = []
    for _ in range(cfg.validation_batches):
        b = val_examples.batch(cfg.batch)
        val_batches.append((b, perturb.draw(val_g, tuple(b["mask"].shape))))
    model = StemNet(StemNetConfig(**cfg.net), ROLES)
    log = JsonLog(out / "stems_log.jsonl")
    rows = [_baselines(b, p, cfg) for b, p in val_batches]
    baselines = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    log.write(phase="baselines", **baselines)
    with Progress(transient=False) as progress:
        best_steps = [fit_member(model, k, Examples(fitted, cfg, seed + k), val_batches, cfg,
                                 seed + k, log, progress, log_every)
                      for k in range(len(model.members))]
    result = validate(model, val_batches, cfg)
    log.write(phase="ensemble", **result)
    weights = out / "stems.pt"
    torch.save(model.state_dict(), weights)
    meta = {
        "net": cfg.net, "parameters": parameter_count(model), "outputs": list(OUTPUTS),
        "roles": list(ROLES), "bands_hz": [float(f) for f in analysis.BAND_CENTERS_HZ],
        "train_config": dataclasses.asdict(cfg), "seed": seed,
        "data": {"songs": [s.name for s in fitted], "validation": [s.name for s in validation],
                 "source": "synthetic" if cfg.synthetic_songs else str(data_dir),
                 "split": f"sha1(song name) % 100 < {HELD_OUT_PERCENT} held out (the "
                          f"benchmark's songs), the next {VALIDATION_PERCENT} validation"},
        "losses": {**result, "best_steps": best_steps,
                   **{f"val_{k}": v for k, v in baselines.items()}},
        "timings_s": {"total_s": round(time.perf_counter() - start, 1)},
    }
    (out / "stems.json").write_text(json.dumps(meta, indent=2) + "\n")
    return weights
