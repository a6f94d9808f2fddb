"""Training of the analysis network on real productions, as users use it.

What the network must learn: given a production that needs help (here: a real master made
worse by a random EQ and side gain, the issue's own protocol) and a reference, the settings
that bring it back to the author's master. The reference is one of three kinds, as users give
them (`PROTOCOLS`):

* *same*: another part of the same song (the reference then says a lot);
* *cross*: another song of the same package (same composer or soundtrack: its production is
  shared, its arrangement is not);
* *preset*: the mean of several songs of the package's genre, as `automix profile` makes a
  genre preset.

A share of the inputs is left untouched (`TrainConfig.identity_share`): the network must
then predict neutral settings whatever the reference says. So it learns how much of a
reference difference is production and how much is arrangement.

Examples are cheap. Every song is cut into 1.5-s crops once (`CropBank`); a crop keeps its
production-feature vector and its mean mel power of mid and side. An EQ and a side gain
change those features in closed form (`degrade_features`: each mel band moves by the EQ's
response at its centre, and the level normalisation by the change of total power), so an
example is a few tensor operations and the network sees millions of them in minutes on a
CPU. The closed form is checked against rendering through the twin: the *twin* phase renders
real crops through the differentiable chain (`automix.effects.twin`), logs how far the closed
form is from the rendered features (``twin_feature_parity_db``) and fine-tunes end to end by
an audio loss between the corrected audio and the author's master.

Splits: packages marked "eval" in the manifest are never read; of the rest, songs with
`data.is_eval_song` are the validation songs (same-song and cross-song losses are logged for
them and choose the kept weights). `TrainConfig.train_fraction` keeps a stable share of the
training songs (the learning curve of ``benchmarks/style_transfer.py``).
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

from automix.model import features
from automix.model.network import (
    CHAIN_INPUT_RMS_DB,
    PARAM_NAMES,
    MasterNet,
    NetConfig,
    parameter_count,
)
from automix.model.network_np import export_npz
from automix.params import EQParams, MasterChain, flat_ranges, from_unit_vector
from automix.training import data
from automix.training.common import JsonLog, load_config, start_run

RANGES = flat_ranges(MasterChain)
PROTOCOLS = ("same", "cross", "preset")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (stored in the weights' JSON)."""

    sample_rate: int = 44100
    cache_segment_s: float = 3.0  # decoded per song, several per song, in time order
    per_song: int = 10
    segment_s: float = 1.5  # one crop, as the network hears a file at run time
    crops: int = 8  # crops averaged into one feature vector (predict.EXCERPTS at run time)
    protocol_shares: tuple[float, float, float] = (0.3, 0.4, 0.3)  # same, cross, preset
    preset_songs: int = 3  # songs averaged into a training "genre preset"
    identity_share: float = 0.1  # inputs left untouched: the network must do nothing
    eq_gain_db: float = 6.0  # degradation: each EQ band's gain uniform in +-this
    eq_band_share: float = 1.0  # each band of the degradation is active this often
    side_gain_db: float = 6.0  # degradation: side gain uniform in +-this ...
    side_share: float = 0.7  # ... this often
    production_db: float = 3.0  # a package's own "production": shelves +-this, a broad
    production_share: float = 0.8  # mid move +-2/3 of it, side +-2/3 of it, this often
    steps: int = 4000
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-3
    width_weight: float = 0.5
    neutral_weight: float = 0.2  # compressor and high-pass stay off (nothing asks for them)
    gain_l1: float = 0.01  # prefer fewer, smaller EQ moves for the same correction
    validation_examples: int = 3000
    validate_every: int = 500
    twin_steps: int = 30
    twin_batch: int = 2
    twin_lr: float = 5e-5
    train_fraction: float = 1.0  # stable share of the training songs (learning curve)
    synthetic_songs: int = 0  # > 0: train on synthetic songs instead of a data folder
    net: dict = field(default_factory=lambda: NetConfig(hidden=256, embedding=128,
                                                               dropout=0.3).to_dict())


CONFIGS = {
    "default": TrainConfig(),
    "tiny": TrainConfig(per_song=4, cache_segment_s=1.0, segment_s=0.5, crops=2, steps=60,
                        batch=32, validation_examples=64, validate_every=20, twin_steps=1,
                        synthetic_songs=6, net=NetConfig(hidden=64, embedding=32).to_dict()),
}


# --- the songs --------------------------------------------------------------------------


@dataclass
class Song:
    """A production the trainer may read: its file, package and genre."""

    name: str
    path: Path
    package: str
    genre: str


def in_fraction(name: str, fraction: float) -> bool:
    """A stable ``fraction`` of songs by a second hash of the name (independent of the split)."""
    return fraction >= 1.0 or data.song_percentile("fraction:" + name) < 100 * fraction


def songs_of(data_dir: str | Path) -> list[Song]:
    """Every production of a data folder outside the evaluation packages.

    The manifest (``automix.training.recipe``) gives package and genre; files it does not list
    (a user's own catalogue, multitracks' masters) count as their own package, genre unknown.
    """
    from automix.training import recipe

    rows = {r["id"]: r for r in recipe.read_manifest(data_dir)}
    songs = []
    for path in data.production_files(data_dir):
        name = data.song_name(path)
        row = rows.get(name)
        if row is None:
            songs.append(Song(name, path, name.split("__")[0], "unknown"))
        elif row["split"] != "eval":
            songs.append(Song(name, path, row["package"], row["genre"]))
    return songs


# --- the crop bank ------------------------------------------------------------------------


@dataclass
class CropBank:
    """Crops of many songs, in time order within each song.

    Attributes
    ----------
    features : (n, N_FEATURES) production features of each crop
    mid_power, side_power : (n, POWER_BANDS) mean power of mid and side per band
        (`crop_stats`; only their ratios are used)
    start, count : (songs,) each song's first crop and number of crops
    package, genre : (songs,) integer codes
    """

    features: torch.Tensor
    mid_power: torch.Tensor
    side_power: torch.Tensor
    start: np.ndarray
    count: np.ndarray
    package: np.ndarray
    genre: np.ndarray
    names: list[str]

    def song_means(self) -> torch.Tensor:
        """Each song's mean feature vector, (songs, N_FEATURES)."""
        index = torch.from_numpy(np.repeat(np.arange(len(self.names)), self.count))
        sums = torch.zeros(len(self.names), self.features.shape[1]).index_add_(
            0, index, self.features)
        return sums / torch.from_numpy(self.count)[:, None].float()


POWER_BANDS = 160  # log-spaced bands (about 1/16 octave) that carry each crop's power


@functools.lru_cache(maxsize=4)
def power_band_centres_hz(sample_rate: int) -> np.ndarray:
    return np.geomspace(15.0, 0.5 * sample_rate, POWER_BANDS)


@functools.lru_cache(maxsize=4)
def band_partition(sample_rate: int, n_fft: int) -> torch.Tensor:
    """(POWER_BANDS, bins) 0/1: each FFT bin belongs to the band whose centre is nearest in
    log frequency, so that band powers add up to the whole power and an EQ is constant
    within a band."""
    centres = np.log(power_band_centres_hz(sample_rate))
    bins = np.log(np.maximum(np.fft.rfftfreq(n_fft, 1.0 / sample_rate), 1.0))
    nearest = np.abs(bins[None, :] - centres[:, None]).argmin(axis=0)
    return torch.from_numpy((nearest[None, :] == np.arange(len(centres))[:, None])
                            .astype(np.float32))


def crop_stats(x: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, ...]:
    """Features, and the mean power of mid and side in each of `POWER_BANDS` bands, of crops
    (batch, 2, samples)."""
    f = features.production_features(x, sample_rate)
    ms = features.mid_side(features.unit_rms(x))
    n_fft = features.fft_size(sample_rate)
    window = torch.hann_window(n_fft, dtype=ms.dtype)
    spec = torch.stft(ms.flatten(0, 1), n_fft, hop_length=n_fft // 2, window=window,
                      center=True, return_complex=True)
    power = (spec.real.pow(2) + spec.imag.pow(2)).mean(dim=-1)  # (batch * 2, bins)
    bands = (power @ band_partition(sample_rate, n_fft).T).unflatten(0, (x.shape[0], 2))
    return f, bands[:, 0], bands[:, 1]


def build_bank(cache: data.SegmentCache, songs: list[Song], segment_s: float) -> CropBank:
    """Cut every cached segment into crops of ``segment_s`` and measure them."""
    sr = cache.sample_rate
    n = round(segment_s * sr)
    per_segment = max(1, cache.audio.shape[-1] // n)
    by_name = {s.name: s for s in songs}
    packages = sorted({by_name[s].package for s in cache.songs})
    genres = sorted({by_name[s].genre for s in cache.songs})
    feats, mids, sides, counts = [], [], [], []
    for k in range(len(cache.songs)):
        segs = torch.from_numpy(cache.audio[cache.song_index == k].astype(np.float32))
        crops = torch.cat([segs[..., i * n:(i + 1) * n] for i in range(per_segment)], dim=0)
        order = torch.arange(len(crops)).reshape(per_segment, -1).T.reshape(-1)  # time order
        with torch.no_grad():
            f, m, s = crop_stats(crops[order], sr)
        feats.append(f)
        mids.append(m)
        sides.append(s)
        counts.append(len(crops))
    count = np.array(counts)
    return CropBank(torch.cat(feats), torch.cat(mids), torch.cat(sides),
                    np.r_[0, np.cumsum(count)[:-1]], count,
                    np.array([packages.index(by_name[s].package) for s in cache.songs]),
                    np.array([genres.index(by_name[s].genre) for s in cache.songs]),
                    list(cache.songs))


# --- degradations in closed form ------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def mel_centres_hz(sample_rate: int) -> np.ndarray:
    """Centre frequency of each mel band of `features.log_mel_db`, (N_MELS,)."""
    import librosa

    fmax = min(features.MEL_FMAX_HZ, sample_rate / 2)
    return librosa.mel_frequencies(features.N_MELS + 2, fmin=features.MEL_FMIN_HZ,
                                   fmax=fmax)[1:-1]


def response_db(biquads: torch.Tensor, freqs_hz: np.ndarray, sample_rate: int) -> torch.Tensor:
    """Magnitude response (dB) of cascaded biquads (batch, k, 2, 3) at ``freqs_hz``, float64."""
    z_inv = torch.exp(-2j * np.pi * torch.from_numpy(np.asarray(freqs_hz) / sample_rate))
    powers = torch.stack([torch.ones_like(z_inv), z_inv, z_inv * z_inv])
    polys = biquads.to(torch.complex128) @ powers  # (b, k, 2, points)
    h = (polys[:, :, 0] / polys[:, :, 1]).prod(dim=1)
    return 20.0 * torch.log10(h.abs().clamp_min(1e-6))


def degrade_features(f: torch.Tensor, mid_power: torch.Tensor, side_power: torch.Tensor,
                     eq_db: torch.Tensor, power_eq_db: torch.Tensor,
                     side_db: torch.Tensor) -> torch.Tensor:
    """Features of crops after an EQ (applied to both channels) and a side gain.

    Parameters
    ----------
    f : (..., N_FEATURES) features of the crops
    mid_power, side_power : (..., POWER_BANDS) their power of mid and side (`crop_stats`)
    eq_db : (..., N_MELS) the EQ's response at the mel centres
    power_eq_db : (..., POWER_BANDS) and at the power bands' centres
    side_db : (...,) side gain

    Mel statistics move by the band's gain, less the change of the overall level (features
    are of unit-RMS audio); level percentiles by the change of mid power less that; width by
    the change of side power less that of mid. Crest is kept (an EQ changes it little).
    """
    g = 10.0 ** (power_eq_db / 10.0)
    s = 10.0 ** (side_db / 10.0)[..., None]
    tiny = 1e-10 * (mid_power.sum(-1) + side_power.sum(-1) + 1e-30)  # a mono crop has no side
    mid_old, side_old = mid_power.sum(-1) + tiny, side_power.sum(-1) + tiny
    mid_new = (mid_power * g).sum(-1) + tiny
    side_new = (side_power * g * s).sum(-1) + tiny
    level = 10.0 * torch.log10((mid_new + side_new) / (mid_old + side_old))
    mid_move = 10.0 * torch.log10(mid_new / mid_old)
    side_move = 10.0 * torch.log10(side_new / side_old)
    shift = torch.stack([eq_db, eq_db + side_db[..., None]], dim=-2) - level[..., None, None]
    stats = features.STATS_PER_BAND
    mel = f[..., features.MEL_STATS].unflatten(-1, (2, stats, features.N_MELS))
    mel = torch.maximum(mel + shift.unsqueeze(-2), torch.tensor(features.FLOOR_DB))
    out = f.clone()
    out[..., features.MEL_STATS] = mel.flatten(-3)
    out[..., features.LEVELS] = f[..., features.LEVELS] + (mid_move - level)[..., None]
    out[..., features.WIDTH] = f[..., features.WIDTH] + side_move - mid_move
    return out


@dataclass
class Degradation:
    """An EQ and a side gain per example (real units, tensors of shape (batch,))."""

    eq: EQParams
    side_db: torch.Tensor

    def eq_biquads(self, sample_rate: int) -> torch.Tensor:
        from automix.effects import twin

        return twin.eq_coefficients(self.eq, sample_rate)


def draw_degradation(g: torch.Generator, n: int, cfg: TrainConfig) -> Degradation:
    """The issue's degradation: every band of the EQ layout at a random frequency (log-uniform
    over its range), Q 0.5 to 2 and gain uniform in +-`eq_gain_db` (each band active
    `eq_band_share` of the time), and a side gain uniform in +-`side_gain_db`; a share
    `identity_share` of the examples is left untouched."""
    touched = torch.rand(n, generator=g) >= cfg.identity_share
    values = {}
    for name, r in flat_ranges(EQParams).items():
        u = torch.rand(n, generator=g)
        if name.endswith("_freq_hz"):
            values[name] = r.min * (r.max / r.min) ** u
        elif name.endswith("_q"):
            values[name] = 0.5 * 4.0 ** u
        else:
            active = touched & (torch.rand(n, generator=g) < cfg.eq_band_share)
            values[name] = torch.where(active, cfg.eq_gain_db * (2 * u - 1), torch.zeros(n))
    side_on = touched & (torch.rand(n, generator=g) < cfg.side_share)
    side = torch.where(side_on, cfg.side_gain_db * (2 * torch.rand(n, generator=g) - 1),
                       torch.zeros(n))
    return Degradation(EQParams(**{k: v.double() for k, v in values.items()}), side.double())


def draw_production(g: torch.Generator, n: int, cfg: TrainConfig) -> Degradation:
    """A package's production, redrawn on every batch: low and high shelves uniform in
    +-`production_db`, a broad mid move and a side gain in +-2/3 of it (each package of a
    batch its own, `production_share` of them). Applied to a package's input and to its
    references alike, it multiplies the albums the network hears, so it cannot learn songs
    by heart, and it is what a reference from the same package says about the input: the
    production they share, not the arrangement."""
    on = torch.rand(n, generator=g) < cfg.production_share

    def uniform(scale: float) -> torch.Tensor:
        return torch.where(on, scale * (2 * torch.rand(n, generator=g) - 1), torch.zeros(n))

    r = flat_ranges(EQParams)
    eq = EQParams(
        low_shelf_freq_hz=r["low_shelf_freq_hz"].min * (r["low_shelf_freq_hz"].max /
                                                        r["low_shelf_freq_hz"].min)
        ** torch.rand(n, generator=g),
        low_shelf_gain_db=uniform(cfg.production_db),
        peak1_gain_db=torch.zeros(n), peak3_gain_db=torch.zeros(n),
        peak2_freq_hz=400.0 * 10.0 ** torch.rand(n, generator=g),
        peak2_gain_db=uniform(2 * cfg.production_db / 3), peak2_q=torch.full((n,), 0.4),
        high_shelf_freq_hz=r["high_shelf_freq_hz"].min * (r["high_shelf_freq_hz"].max /
                                                          r["high_shelf_freq_hz"].min)
        ** torch.rand(n, generator=g),
        high_shelf_gain_db=uniform(cfg.production_db))
    eq = dataclasses.replace(eq, **{k: torch.as_tensor(v).expand(n).double()
                                    for k, v in dataclasses.asdict(eq).items()})
    return Degradation(eq, uniform(2 * cfg.production_db / 3).double())


def eq_responses(d: Degradation, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The degradation's EQ response (dB) at the mel centres and at the power bands',
    (batch, N_MELS) and (batch, POWER_BANDS)."""
    biquads = d.eq_biquads(sample_rate)
    return (response_db(biquads, mel_centres_hz(sample_rate), sample_rate).float(),
            response_db(biquads, power_band_centres_hz(sample_rate), sample_rate).float())


# --- examples -------------------------------------------------------------------------------


@dataclass
class Batch:
    """Feature vectors of inputs and references, the degradation, and each example's protocol."""

    f_in: torch.Tensor
    f_ref: torch.Tensor
    degradation: Degradation
    protocol: np.ndarray


class Sampler:
    """Draws examples of the three protocols from a `CropBank`, vectorised over a batch."""

    def __init__(self, bank: CropBank, cfg: TrainConfig, seed: int) -> None:
        self.bank, self.cfg = bank, cfg
        self.rng = np.random.default_rng(seed)
        self.g = torch.Generator().manual_seed(seed)
        self.song_means = bank.song_means()
        index = torch.from_numpy(np.repeat(np.arange(len(bank.names)), bank.count))
        self.song_mid = torch.zeros(len(bank.names), bank.mid_power.shape[1]).index_add_(
            0, index, bank.mid_power)
        self.song_side = torch.zeros(len(bank.names), bank.side_power.shape[1]).index_add_(
            0, index, bank.side_power)
        self.by_package = self._groups(bank.package)
        self.by_genre = self._groups(bank.genre)

    @staticmethod
    def _groups(codes: np.ndarray) -> list[np.ndarray]:
        return [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]

    def _other(self, songs: np.ndarray, groups: list[np.ndarray],
               codes: np.ndarray) -> np.ndarray:
        """Another song of each song's group (itself when it is alone there)."""
        out = songs.copy()
        for i, k in enumerate(songs):
            group = groups[codes[k]]
            if len(group) > 1:
                pos = int(np.searchsorted(group, k))
                out[i] = group[(pos + 1 + self.rng.integers(len(group) - 1)) % len(group)]
        return out

    def _crops(self, lo: np.ndarray, hi: np.ndarray) -> torch.Tensor:
        """`crops` crops of each example from a window of 4 to 10 crops inside [lo, hi)."""
        n = len(lo)
        span = np.maximum(hi - lo, 1)
        window = np.minimum(self.rng.integers(4, 11, n), span)
        first = lo + (self.rng.random(n) * (span - window + 1)).astype(int)
        idx = first[:, None] + (self.rng.random((n, self.cfg.crops)) * window[:, None]).astype(
            int)
        return torch.from_numpy(idx)

    def draw(self, n: int, protocol: np.ndarray | None = None) -> Batch:
        bank, cfg = self.bank, self.cfg
        songs = self.rng.integers(0, len(bank.names), n)
        if protocol is None:
            protocol = self.rng.choice(3, n, p=np.asarray(cfg.protocol_shares) /
                                       sum(cfg.protocol_shares))
        start, count = bank.start[songs], bank.count[songs]
        half = count // 2
        swap = self.rng.random(n) < 0.5  # the input from the first or the second half
        a_lo = np.where(swap, start + half, start)
        a_hi = np.where(swap, start + count, start + half)
        same = protocol == 0
        b_lo = np.where(same, np.where(swap, start, start + half), 0)
        b_hi = np.where(same, np.where(swap, start + half, start + count), 0)
        others = self._other(songs, self.by_package, bank.package)
        alone = others == songs
        protocol = np.where((protocol == 1) & alone, 2, protocol)
        cross = protocol == 1
        b_lo = np.where(cross, bank.start[others], b_lo)
        b_hi = np.where(cross, bank.start[others] + bank.count[others], b_hi)
        b_lo = np.where(protocol == 2, a_lo, b_lo)  # unused for presets
        b_hi = np.where(protocol == 2, a_hi, b_hi)

        d = draw_degradation(self.g, n, cfg)
        eq_db, power_eq_db = eq_responses(d, cfg.sample_rate)
        production = draw_production(self.g, int(bank.package.max()) + 1, cfg)
        prod_db, prod_power_db = eq_responses(production, cfg.sample_rate)
        prod_side = production.side_db.float()
        pk = torch.from_numpy(bank.package[songs])
        a = self._crops(a_lo, a_hi)
        f_in = degrade_features(bank.features[a], bank.mid_power[a], bank.side_power[a],
                                (eq_db + prod_db[pk])[:, None],
                                (power_eq_db + prod_power_db[pk])[:, None],
                                (d.side_db.float() + prod_side[pk])[:, None]).mean(1)
        b = self._crops(b_lo, b_hi)  # same package as the input (same song or cross)
        f_ref = degrade_features(bank.features[b], bank.mid_power[b], bank.side_power[b],
                                 prod_db[pk][:, None], prod_power_db[pk][:, None],
                                 prod_side[pk][:, None]).mean(1)
        presets = np.flatnonzero(protocol == 2)
        if len(presets):
            picks = torch.from_numpy(np.stack([
                self._other(songs[presets], self.by_genre, bank.genre)
                for _ in range(cfg.preset_songs)], axis=1))
            q = torch.from_numpy(bank.package)[picks]  # each song with its own package's
            f_ref[presets] = degrade_features(self.song_means[picks], self.song_mid[picks],
                                              self.song_side[picks], prod_db[q],
                                              prod_power_db[q], prod_side[q]).mean(1)
        return Batch(f_in, f_ref, d, protocol)


# --- losses ---------------------------------------------------------------------------------

RESPONSE_POINTS = 96  # log-spaced frequencies of the response loss, 25 Hz to 18 kHz


@functools.lru_cache(maxsize=4)
def response_freqs_hz(sample_rate: int) -> np.ndarray:
    return np.geomspace(25.0, min(18000.0, 0.45 * sample_rate), RESPONSE_POINTS)


def chain_response_db(unit: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Response (dB) of the predicted high-pass and EQ at the loss's points, (batch, points)."""
    from automix.effects import twin

    chain = from_unit_vector(MasterChain, unit)
    biquads = torch.cat([twin.highpass_biquads(chain.highpass, sample_rate),
                         twin.eq_coefficients(chain.eq, sample_rate)], dim=1)
    return response_db(biquads, response_freqs_hz(sample_rate), sample_rate).to(unit.dtype)


def correction_db(d: Degradation, sample_rate: int) -> torch.Tensor:
    """What undoes the degradation's EQ at the loss's points, (batch, points)."""
    return -response_db(d.eq_biquads(sample_rate), response_freqs_hz(sample_rate),
                        sample_rate).float()


def centred_error_db(pred_db: torch.Tensor, target_db: torch.Tensor) -> torch.Tensor:
    """RMS error per example after removing the mean difference (loudness is set after the
    chain, so a constant offset costs nothing), (batch,): the tonal-balance error of the
    corrected master against the author's, as the benchmark reads it."""
    e = pred_db - target_db
    return (e - e.mean(-1, keepdim=True)).pow(2).mean(-1).add(1e-9).sqrt()


NEUTRAL = {name: RANGES[name].normalize(value) for name, value in
           (("highpass.freq_hz", 10.0), ("compressor.ratio", 1.0))}
GAINS = [i for i, name in enumerate(PARAM_NAMES) if name.endswith("_gain_db")]
WIDTH = PARAM_NAMES.index("width.width_pct")


def losses(unit: torch.Tensor, d: Degradation, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """Per-example losses (batch,): response (dB), width (dB), neutrality, gain size."""
    response = centred_error_db(chain_response_db(unit, cfg.sample_rate),
                                correction_db(d, cfg.sample_rate))
    width_pct = RANGES["width.width_pct"].denormalize(unit[:, WIDTH]).clamp_min(1.0)
    width = (20.0 * torch.log10(width_pct / 100.0) + d.side_db.float()).abs()
    neutral = sum((unit[:, PARAM_NAMES.index(k)] - v).abs() for k, v in NEUTRAL.items())
    gains = (unit[:, GAINS] - 0.5).abs().mean(-1)
    return {"response_db": response, "width_db": width, "neutral": neutral, "gains": gains}


def total_loss(parts: dict[str, torch.Tensor], cfg: TrainConfig) -> torch.Tensor:
    return (parts["response_db"] / 6.0 + cfg.width_weight * parts["width_db"] / 6.0
            + cfg.neutral_weight * parts["neutral"] + cfg.gain_l1 * parts["gains"]).mean()


def identity_error_db(d: Degradation, cfg: TrainConfig) -> torch.Tensor:
    """The response error of doing nothing, (batch,): the yardstick of the logged errors."""
    target = correction_db(d, cfg.sample_rate)
    return centred_error_db(torch.zeros_like(target), target)


# --- training -------------------------------------------------------------------------------


def _validate(model: MasterNet, batch: Batch, cfg: TrainConfig) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        parts = losses(model(batch.f_in, batch.f_ref), batch.degradation, cfg)
        ident = identity_error_db(batch.degradation, cfg)
    row = {"val_loss": float(total_loss(parts, cfg))}
    for p, name in enumerate(PROTOCOLS):
        sel = torch.from_numpy(batch.protocol == p)
        if sel.any():
            row[f"val_{name}_response_db"] = float(parts["response_db"][sel].mean())
            row[f"val_{name}_vs_identity"] = float(parts["response_db"][sel].mean()
                                                   / ident[sel].mean().clamp_min(1e-6))
    row["val_width_db"] = float(parts["width_db"].mean())
    return row


def fit(model: MasterNet, sampler: Sampler, val: Batch, cfg: TrainConfig, log: JsonLog,
        progress: Any) -> dict[str, float]:
    """Fit on freshly drawn examples (AdamW, cosine); keep the best validation loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    task = progress.add_task("fit", total=cfg.steps)
    best, best_state, result = math.inf, copy.deepcopy(model.state_dict()), {}
    for step in range(1, cfg.steps + 1):
        model.train()
        batch = sampler.draw(cfg.batch)
        parts = losses(model(batch.f_in, batch.f_ref), batch.degradation, cfg)
        loss = total_loss(parts, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        progress.update(task, advance=1)
        if step == 1 or step % cfg.validate_every == 0 or step == cfg.steps:
            row = {"loss": loss.item(), "response_db": parts["response_db"].mean().item(),
                   **_validate(model, val, cfg)}
            log.write(phase="fit", step=step, **row)
            if row["val_loss"] < best:
                best, best_state, result = row["val_loss"], copy.deepcopy(model.state_dict()), {
                    **row, "best_step": step}
    model.load_state_dict(best_state)
    return result


def at_level(x: torch.Tensor, rms_db: float = CHAIN_INPUT_RMS_DB) -> torch.Tensor:
    """Scale each item of (batch, channels, samples) to an RMS of ``rms_db`` dBFS."""
    return features.unit_rms(x) * 10.0 ** (rms_db / 20.0)


def degrade_audio(x: torch.Tensor, d: Degradation, sample_rate: int) -> torch.Tensor:
    """The degradation rendered by the twin: EQ on both channels, then the side gain."""
    from automix.effects import twin
    from automix.params import StereoWidthParams

    y = twin.eq(x, sample_rate, dataclasses.replace(d.eq, **{
        k: v.float() for k, v in dataclasses.asdict(d.eq).items()}))
    return twin.stereo_width(y, sample_rate,
                             StereoWidthParams(width_pct=100.0 * 10.0 ** (d.side_db.float() / 20)))


def fit_twin(model: MasterNet, cache: data.SegmentCache, bank: CropBank, cfg: TrainConfig,
             seed: int, log: JsonLog, progress: Any) -> dict[str, float]:
    """Render real crops through the twin: measure the closed form against the rendered
    features, and fine-tune by an audio loss between twin(x, predicted) and the master."""
    from automix.effects import twin

    sr = cache.sample_rate
    n = round(cfg.segment_s * sr)
    rng = np.random.default_rng(seed + 7)
    g = torch.Generator().manual_seed(seed + 7)
    audio_loss = AudioLoss(sr)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.twin_lr)
    song_means = bank.song_means()
    task = progress.add_task("twin", total=cfg.twin_steps)
    sums: dict[str, float] = {}
    for _ in range(cfg.twin_steps):
        model.train()
        songs = rng.integers(0, len(cache.songs), cfg.twin_batch)
        segs = [rng.choice(np.flatnonzero(cache.song_index == k), cfg.crops) for k in songs]
        starts = rng.integers(0, cache.audio.shape[-1] - n + 1, (cfg.twin_batch, cfg.crops))
        clean = torch.from_numpy(np.stack([
            cache.audio[i, :, s:s + n]
            for row, st in zip(segs, starts, strict=True) for i, s in zip(row, st, strict=True)
        ]).astype(np.float32))
        d = draw_degradation(g, cfg.twin_batch, cfg)
        expand = Degradation(
            EQParams(**{k: v.repeat_interleave(cfg.crops)
                        for k, v in dataclasses.asdict(d.eq).items()}),
            d.side_db.repeat_interleave(cfg.crops))
        with torch.no_grad():
            x = degrade_audio(at_level(clean), expand, sr)
            rendered = features.production_features(x, sr)
            f, m, s = crop_stats(clean, sr)
            eq_db, power_eq_db = eq_responses(expand, sr)
            closed = degrade_features(f, m, s, eq_db, power_eq_db, expand.side_db.float())
            parity = features.tonal_distance(closed, rendered).mean()
            f_in = rendered.reshape(cfg.twin_batch, cfg.crops, -1).mean(1)
            f_ref = song_means[torch.from_numpy(songs)]
        unit = model(f_in, f_ref)
        chain = from_unit_vector(MasterChain, unit.repeat_interleave(cfg.crops, dim=0))
        parts = audio_loss(twin.master_chain(x, sr, chain), clean)
        extra = losses(unit, d, cfg)
        total = parts["audio"] + total_loss(extra, cfg)
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        progress.update(task, advance=1)
        row = {"stft": parts["stft"].item(), "feature": parts["feature"].item(),
               "response_db": extra["response_db"].mean().item(),
               "feature_parity_db": float(parity)}
        for k, v in row.items():
            sums[k] = sums.get(k, 0.0) + v
    result = {f"twin_{k}": v / max(cfg.twin_steps, 1) for k, v in sums.items()}
    if cfg.twin_steps:
        log.write(phase="twin", steps=cfg.twin_steps, **result)
    return result


class AudioLoss(torch.nn.Module):
    """MR-STFT on mid/side plus the production-feature distance, after matching RMS."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        import auraloss

        self.sample_rate = sample_rate
        self.stft = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=[2048, 512, 128], hop_sizes=[512, 128, 32], win_lengths=[2048, 512, 128])

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        est, tgt = features.unit_rms(estimate), features.unit_rms(target)
        stft = self.stft(features.mid_side(est), features.mid_side(tgt))
        feat = features.feature_distance(features.production_features(est, self.sample_rate),
                                         features.production_features(tgt, self.sample_rate))
        return {"stft": stft, "feature": feat.mean(), "audio": stft + 0.05 * feat.mean()}


def _synthetic_songs(cfg: TrainConfig, seed: int) -> tuple[data.SegmentCache, list[Song]]:
    cache = data.synthetic_cache(songs=cfg.synthetic_songs, per_song=cfg.per_song,
                                 segment_s=cfg.cache_segment_s, sample_rate=cfg.sample_rate,
                                 seed=seed)
    songs = [Song(name, Path(name), f"pkg{k % 2}", f"genre{k % 2}")
             for k, name in enumerate(cache.songs)]
    return cache, songs


def _cache_for(songs: list[Song], cfg: TrainConfig, cache_dir: Path,
               tag: str) -> data.SegmentCache:
    """Decoded segments of ``songs``, kept in ``cache_dir`` under a name of what decides them."""
    key = hashlib.sha1(repr((sorted(s.name for s in songs), cfg.cache_segment_s, cfg.per_song,
                             cfg.sample_rate)).encode()).hexdigest()[:12]
    path = cache_dir / f"{tag}_{len(songs)}songs_{key}.npz"
    if path.exists():
        return data.SegmentCache.load(path)
    cache = data.build_cache([s.path for s in songs], segment_s=cfg.cache_segment_s,
                             per_song=cfg.per_song, sample_rate=cfg.sample_rate)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.save(path)
    return cache


def train(data_dir: str | Path | None, out_dir: str | Path, *, config: str | Path = "default",
          device: str = "cpu", steps: int | None = None, seed: int = 0, log_every: int = 500,
          cache_dir: str | Path | None = None, threads: int | None = None) -> Path:
    """Train the network and write ``master.pt`` and ``master.json`` into ``out_dir``.

    Parameters
    ----------
    data_dir : a folder built by ``python -m automix.training.recipe`` (``mixes/*.flac`` and
        ``manifest.csv``), or any folder of ``mixes/*.flac``; unused by synthetic configs.
    out_dir : where the weights, their JSON and ``train_log.jsonl`` go.
    config : "default", "tiny", or a JSON file of `TrainConfig` fields.
    device : only "cpu" is used (examples are vectors; a run takes minutes).
    steps : overrides `TrainConfig.steps`.
    seed : seeds the examples, degradations and initialisation.
    log_every : steps between validation lines (overrides `TrainConfig.validate_every`).
    cache_dir : where decoded segments are kept and reused (default ``~/.cache/automix``).
    threads : torch CPU threads (default: torch's own).

    Returns
    -------
    Path of ``master.pt``.
    """
    from rich.progress import Progress

    cfg = load_config(config, CONFIGS)
    cfg = dataclasses.replace(cfg, steps=steps if steps is not None else cfg.steps,
                              validate_every=min(log_every, cfg.validate_every))
    out = start_run(out_dir, threads)
    torch.manual_seed(seed)
    start = time.perf_counter()
    cache_dir = Path(cache_dir or Path.home() / ".cache/automix")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if cfg.synthetic_songs > 0:
        cache, songs = _synthetic_songs(cfg, seed)
        val_cache, val_songs = cache, songs
    else:
        everything = songs_of(data_dir)
        songs = [s for s in everything if not data.is_eval_song(s.name)
                 and in_fraction(s.name, cfg.train_fraction)]
        val_songs = [s for s in everything if data.is_eval_song(s.name)]
        if not songs or not val_songs:
            from automix.errors import SettingsError

            raise SettingsError(f"{data_dir}: too few productions to train on "
                                f"({len(everything)} found)")
        cache = _cache_for(songs, cfg, cache_dir, "train")
        val_cache = _cache_for(val_songs, cfg, cache_dir, "val")
    timings["decode_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bank = build_bank(cache, songs, cfg.segment_s)
    val_bank = build_bank(val_cache, val_songs, cfg.segment_s)
    timings["measure_s"] = time.perf_counter() - t0
    model = MasterNet(NetConfig(**cfg.net)).to(device)
    model.feature_mean.copy_(bank.features.mean(0))
    model.feature_std.copy_(bank.features.std(0).clamp_min(1.0))
    sampler = Sampler(bank, cfg, seed)
    # validation hears the packages as they are (no invented productions)
    val = Sampler(val_bank, dataclasses.replace(cfg, production_share=0.0), seed + 1).draw(
        cfg.validation_examples)
    log = JsonLog(out / "train_log.jsonl")
    with Progress(transient=False) as progress:
        t0 = time.perf_counter()
        results = fit(model, sampler, val, cfg, log, progress)
        timings["fit_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if cfg.twin_steps > 0:
            before = copy.deepcopy(model.state_dict())
            results.update(fit_twin(model, cache, bank, cfg, seed, log, progress))
            after = _validate(model, val, cfg)
            results.update({f"after_twin_{k}": v for k, v in after.items()})
            # the fine-tune is kept only when the validation songs say it helped
            results["twin_kept"] = after["val_loss"] < results["val_loss"]
            if not results["twin_kept"]:
                model.load_state_dict(before)
        timings["twin_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - start
    model.eval()
    weights = out / "master.pt"
    torch.save(model.cpu().state_dict(), weights)
    export_npz(model, weights)  # what inference reads (numpy, no torch)
    meta = {
        "net": cfg.net,
        "parameters": parameter_count(model),
        "param_names": PARAM_NAMES,
        "chain_input_rms_db": CHAIN_INPUT_RMS_DB,
        "features": {"n_features": features.N_FEATURES, "n_mels": features.N_MELS,
                     "mel_fmin_hz": features.MEL_FMIN_HZ, "mel_fmax_hz": features.MEL_FMAX_HZ,
                     "percentiles": features.PERCENTILES,
                     "level_percentiles": features.LEVEL_PERCENTILES,
                     "segment_s": cfg.segment_s, "sample_rate": cfg.sample_rate},
        "train_config": dataclasses.asdict(cfg),
        "seed": seed,
        "data": {"songs": len(songs), "validation_songs": len(val_songs),
                 "packages": len({s.package for s in songs}),
                 "hours": round(float(bank.count.sum()) * cfg.segment_s / 3600, 2),
                 "source": "synthetic" if cfg.synthetic_songs else str(data_dir),
                 "split": "packages marked eval in manifest.csv never read; sha1(song) % 100 "
                          f"< {data.EVAL_PERCENT} validation"},
        "losses": results,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    (out / "master.json").write_text(json.dumps(meta, indent=2) + "\n")
    return weights

