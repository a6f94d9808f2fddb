"""Self-supervised training of the analysis network on real productions.

Each example pairs two segments of one production, A and B (different times). Random
settings from musically plausible priors make the input ``x = twin(A, θx)`` (a "degraded"
version), and the reference ``r = twin(B, θr)`` (half of the time ``θr`` is the identity, so
the reference is the production itself); the target is ``y = twin(A, θr)``. θx and θr share
their EQ frequencies and Qs, so the settings that turn x into y are known to a good
approximation (EQ gains ``gr - gx``, the reference's high-pass and compressor, width
``wr / wx``): the parameter loss uses them.

Training runs in two phases, bounded by step counts so that a seed reproduces the weights:

1. *pool*: render many examples through the twin (no gradient) and keep their feature
   vectors (each the mean over `TrainConfig.crops` crops of different times of the song, since
   one short crop says more about its notes than about the production's tonal balance) and
   settings; fit the network on the pool (cheap: many epochs in minutes) by a parameter loss
   and a response loss (the predicted high-pass + EQ magnitude response against the exact
   correction, from the twin's biquads), keeping the best held-out fit.
2. *twin*: fine-tune end to end, rendering ``twin(x, θ̂)`` with the predicted settings and
   comparing it with y by a multi-resolution STFT loss on mid/side plus the production-feature
   distance, alongside the parameter and response losses.

Levels: every segment enters a chain at `CHAIN_INPUT_RMS_DB`; outputs are compared after
matching their RMS (loudness is normalised after the chain in mastering).
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
    FIXED_PARAMS,
    N_PARAMS,
    PARAM_NAMES,
    MasterNet,
    NetConfig,
    parameter_count,
)
from automix.model.network_np import export_npz
from automix.params import MasterChain, flat_ranges, from_unit_vector
from automix.training import data
from automix.training.common import JsonLog, load_config, start_run

RANGES = flat_ranges(MasterChain)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (stored in the weights' JSON)."""

    sample_rate: int = 44100
    cache_segment_s: float = 3.0  # decoded per song, several per song
    per_song: int = 10
    segment_s: float = 1.5  # random crop of a cached segment seen by the network
    crops: int = 4  # crops (of different cached segments) averaged into one feature vector
    pool_examples: int = 6000
    pool_batch: int = 32
    fit_steps: int = 3000
    fit_batch: int = 256
    fit_lr: float = 1e-3
    twin_steps: int = 100
    twin_batch: int = 2
    twin_lr: float = 1e-4
    stft_weight: float = 1.0
    feature_weight: float = 0.05
    param_weight: float = 1.0
    response_weight: float = 1.0
    validation_share: float = 0.05
    synthetic_songs: int = 0  # > 0: train on synthetic songs instead of a data folder
    net: dict = field(default_factory=lambda: NetConfig(hidden=256, embedding=128,
                                                               dropout=0.2).to_dict())


CONFIGS = {
    "default": TrainConfig(),
    "tiny": TrainConfig(per_song=4, segment_s=0.5, cache_segment_s=0.75, pool_examples=64, crops=2,
                        pool_batch=32, fit_steps=50, fit_batch=32, twin_steps=1, twin_batch=2,
                        synthetic_songs=4,
                        net=NetConfig(hidden=64, embedding=32).to_dict()),
}


# --- priors over settings ------------------------------------------------------------------


def _log_uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo * (hi / lo) ** torch.rand(n, generator=g)


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def draw_eq_shape(g: torch.Generator, n: int) -> dict[str, torch.Tensor]:
    """EQ frequencies and Qs, log-uniform over each band's range (Q 0.5 to 2)."""
    out = {}
    for name, r in RANGES.items():
        if name.startswith("eq.") and name.endswith("_freq_hz"):
            out[name] = _log_uniform(g, n, r.min, r.max)
        elif name.startswith("eq.") and name.endswith("_q"):
            out[name] = _log_uniform(g, n, 0.5, 2.0)
    return out


def draw_moves(g: torch.Generator, n: int, *, identity_share: float) -> dict[str, torch.Tensor]:
    """Real-unit settings other than the EQ shape: a musically plausible move per item.

    EQ gains N(0, 4 dB) clipped to ±10 dB, each band active 80 % of the time; high-pass 10 to
    40 Hz; compressor on half of the time (threshold -32 to -12 dBFS for an input at
    `CHAIN_INPUT_RMS_DB`, ratio 1.5 to 6, attack 1 to 50 ms, release 30 to 500 ms); width 60 to
    140 %. A share ``identity_share`` of the items gets the identity instead.
    """
    identity = torch.rand(n, generator=g) < identity_share
    out: dict[str, torch.Tensor] = {}
    for name in PARAM_NAMES:
        if name.endswith("_gain_db"):
            active = (torch.rand(n, generator=g) < 0.8) & ~identity
            gains = (4.0 * torch.randn(n, generator=g)).clamp(-10.0, 10.0)
            out[name] = torch.where(active, gains, torch.zeros(n))
    out["highpass.freq_hz"] = torch.where(identity, torch.full((n,), 10.0),
                                          _log_uniform(g, n, 10.0, 40.0))
    comp_on = (torch.rand(n, generator=g) < 0.5) & ~identity
    threshold = _uniform(g, n, -32.0, -12.0)  # dBFS, for an input at CHAIN_INPUT_RMS_DB
    out["compressor.threshold_db"] = torch.where(comp_on, threshold, torch.zeros(n))
    out["compressor.ratio"] = torch.where(comp_on, _log_uniform(g, n, 1.5, 6.0), torch.ones(n))
    out["compressor.attack_ms"] = _log_uniform(g, n, 1.0, 50.0)
    out["compressor.release_ms"] = _log_uniform(g, n, 30.0, 500.0)
    out["compressor.makeup_db"] = torch.zeros(n)
    out["width.width_pct"] = torch.where(identity, torch.full((n,), 100.0),
                                         _uniform(g, n, 60.0, 140.0))
    return out


def to_unit(values: dict[str, torch.Tensor]) -> torch.Tensor:
    """Real-unit settings (name -> (batch,)) to normalised (batch, N_PARAMS), clamped to 0..1."""
    cols = [RANGES[name].normalize(values[name].clamp(RANGES[name].min, RANGES[name].max))
            for name in PARAM_NAMES]
    return torch.stack(cols, dim=-1).float()


@dataclass
class Draw:
    """One batch of settings: degradation θx, reference style θr, the correction and weights."""

    unit_x: torch.Tensor
    unit_r: torch.Tensor
    unit_target: torch.Tensor
    weight: torch.Tensor


def draw_settings(g: torch.Generator, n: int) -> Draw:
    """θx, θr (sharing the EQ shape), the settings that turn twin(A, θx) into twin(A, θr).

    The correction's EQ gains are ``gr - gx`` at the shared frequencies (exact when either
    gain is 0, RBJ sections of opposite gains being inverses; close otherwise, and the
    response loss measures the exact correction anyway);
    width ``100 wr / wx``; high-pass and compressor are the reference's. Weights put
    frequencies and Qs in proportion to their band's gain and compressor times in
    proportion to its ratio, since they do not matter when those are neutral.
    """
    shape = draw_eq_shape(g, n)
    moves_x = {**draw_moves(g, n, identity_share=0.0), **shape}
    moves_x["highpass.freq_hz"] = torch.full((n,), 10.0)
    moves_r = {**draw_moves(g, n, identity_share=0.5), **shape}
    target = dict(moves_r)
    for name in PARAM_NAMES:
        if name.endswith("_gain_db"):
            target[name] = (moves_r[name] - moves_x[name]).clamp(-12.0, 12.0)
    target["width.width_pct"] = (100.0 * moves_r["width.width_pct"]
                                 / moves_x["width.width_pct"]).clamp(0.0, 200.0)
    weight = torch.ones(n, N_PARAMS)
    for i, name in enumerate(PARAM_NAMES):
        if name in FIXED_PARAMS:
            weight[:, i] = 0.0
        elif name.startswith("eq.") and not name.endswith("_gain_db"):
            band = name.rsplit("_", 2)[0] if name.endswith("_freq_hz") else name[:-2]
            gain_name = band + "_gain_db"
            weight[:, i] = 0.5 * (target[gain_name].abs() / 6.0).clamp(max=1.0)
        elif name in ("compressor.attack_ms", "compressor.release_ms"):
            weight[:, i] = 0.2 * (target["compressor.ratio"] > 1.0).float()
        elif name == "highpass.freq_hz":
            weight[:, i] = 0.3
    return Draw(to_unit(moves_x), to_unit(moves_r), to_unit(target), weight)


# --- audio -------------------------------------------------------------------------------


def at_level(x: torch.Tensor, rms_db: float = CHAIN_INPUT_RMS_DB) -> torch.Tensor:
    """Scale each item of (batch, channels, samples) to an RMS of ``rms_db`` dBFS."""
    return features.unit_rms(x) * 10.0 ** (rms_db / 20.0)


def render(x: torch.Tensor, sample_rate: int, unit: torch.Tensor) -> torch.Tensor:
    """The twin's master chain, input set to level; ``unit`` (batch, N_PARAMS) normalised
    settings, each repeated over ``x.shape[0] // batch`` consecutive crops."""
    from automix.effects import twin

    unit = unit.repeat_interleave(x.shape[0] // unit.shape[0], dim=0)
    return twin.master_chain(at_level(x), sample_rate, from_unit_vector(MasterChain, unit))


def mean_features(x: torch.Tensor, sample_rate: int, crops: int) -> torch.Tensor:
    """Production features of (batch * crops, channels, samples), averaged per song."""
    f = features.production_features(x, sample_rate)
    return f.reshape(-1, crops, f.shape[-1]).mean(dim=1)


class Segments:
    """Random A/B segment pairs (different cached segments of one song) from a `SegmentCache`."""

    def __init__(self, cache: data.SegmentCache, segment_s: float, seed: int) -> None:
        self.cache = cache
        self.n = round(segment_s * cache.sample_rate)
        self.rng = np.random.default_rng(seed)
        self.by_song = [np.flatnonzero(cache.song_index == k) for k in range(len(cache.songs))]

    def _crop(self, i: int) -> np.ndarray:
        seg = self.cache.audio[i]
        start = self.rng.integers(0, seg.shape[-1] - self.n + 1)
        return seg[:, start:start + self.n].astype(np.float32)

    def pairs(self, batch: int, crops: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A and B of ``batch`` songs, ``crops`` crops each, of distinct cached segments.

        Returns two (batch * crops, 2, samples) float32 tensors, song-major (rows
        ``k * crops`` to ``(k + 1) * crops - 1`` belong to song k).
        """
        a, b = [], []
        for song in self.rng.integers(0, len(self.by_song), batch):
            idx = self.by_song[song]
            picks = self.rng.choice(idx, 2 * crops, replace=len(idx) < 2 * crops)
            a += [self._crop(i) for i in picks[:crops]]
            b += [self._crop(i) for i in picks[crops:]]
        return torch.from_numpy(np.stack(a)), torch.from_numpy(np.stack(b))


RESPONSE_POINTS = 96  # log-spaced frequencies of the response loss, 25 Hz to 18 kHz


@functools.lru_cache(maxsize=4)
def _response_z_powers(sample_rate: int) -> torch.Tensor:
    """[1, z^-1, z^-2] at `RESPONSE_POINTS` log-spaced frequencies, (3, points) complex128."""
    freqs = np.geomspace(25.0, min(18000.0, 0.45 * sample_rate), RESPONSE_POINTS)
    z_inv = torch.exp(-2j * np.pi * torch.from_numpy(freqs / sample_rate))
    return torch.stack([torch.ones_like(z_inv), z_inv, z_inv * z_inv])


def linear_response_db(unit: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Magnitude response in dB of the chain's high-pass and EQ at `RESPONSE_POINTS` points.

    ``unit`` (batch, N_PARAMS) normalised settings -> (batch, points), differentiable; the
    twin's own biquads, evaluated (like `twin.frequency_response`, in float64) only at the
    points the loss reads.
    """
    from automix.effects import twin

    chain = from_unit_vector(MasterChain, unit)
    biquads = torch.cat([twin.highpass_biquads(chain.highpass, sample_rate),
                         twin.eq_coefficients(chain.eq, sample_rate)], dim=1)
    polys = biquads.to(torch.complex128) @ _response_z_powers(sample_rate)  # (b, k, 2, points)
    h = (polys[:, :, 0] / polys[:, :, 1]).prod(dim=1)
    return (20.0 * torch.log10(h.abs().clamp_min(1e-6))).to(unit.dtype)


def response_loss(unit: torch.Tensor, unit_x: torch.Tensor, unit_r: torch.Tensor,
                  sample_rate: int) -> torch.Tensor:
    """Mean absolute error (dB / 12) between the predicted high-pass + EQ response and the
    correction that turns θx's into θr's; free of the ambiguity of the settings themselves
    (a band's frequency does not matter at 0 dB gain)."""
    target = linear_response_db(unit_r, sample_rate) - linear_response_db(unit_x, sample_rate)
    return (linear_response_db(unit, sample_rate) - target.clamp(-24.0, 24.0)).abs().mean() / 12


def parameter_loss(unit: torch.Tensor, draw: Draw) -> torch.Tensor:
    """Weighted mean absolute error in normalised units."""
    w = draw.weight.to(unit)
    return ((unit - draw.unit_target.to(unit)).abs() * w).sum() / w.sum()


class AudioLoss(torch.nn.Module):
    """MR-STFT on mid/side plus the production-feature distance, after matching RMS."""

    def __init__(self, sample_rate: int, stft_weight: float, feature_weight: float) -> None:
        super().__init__()
        import auraloss

        self.sample_rate = sample_rate
        self.stft = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=[2048, 512, 128], hop_sizes=[512, 128, 32], win_lengths=[2048, 512, 128])
        self.stft_weight, self.feature_weight = stft_weight, feature_weight

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        est, tgt = features.unit_rms(estimate), features.unit_rms(target)
        stft = self.stft(features.mid_side(est), features.mid_side(tgt))
        feat = features.feature_distance(features.production_features(est, self.sample_rate),
                                         features.production_features(tgt, self.sample_rate))
        feat = feat.mean()
        return {"stft": stft, "feature": feat,
                "audio": self.stft_weight * stft + self.feature_weight * feat}


# --- training ----------------------------------------------------------------------------


def _cache_for(cfg: TrainConfig, data_dir: str | Path | None, seed: int,
               cache_dir: Path) -> data.SegmentCache:
    if cfg.synthetic_songs > 0:
        return data.synthetic_cache(songs=cfg.synthetic_songs, per_song=cfg.per_song,
                                    segment_s=cfg.cache_segment_s, sample_rate=cfg.sample_rate,
                                    seed=seed)
    files = data.split_files(data_dir, eval_split=False)
    key = f"train_{len(files)}files_{cfg.cache_segment_s:g}s_x{cfg.per_song}_{cfg.sample_rate}"
    path = cache_dir / f"{key}.npz"
    if path.exists():
        return data.SegmentCache.load(path)
    cache = data.build_cache(files, segment_s=cfg.cache_segment_s, per_song=cfg.per_song,
                             sample_rate=cfg.sample_rate)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.save(path)
    return cache


def _pool_key(cfg: TrainConfig, seed: int, songs: int) -> str:
    """Names a pool by everything that decides its content."""
    fields = ("v2", cfg.sample_rate, cfg.cache_segment_s, cfg.per_song, cfg.segment_s, cfg.crops,
              cfg.pool_examples, cfg.pool_batch, seed, songs)
    return hashlib.sha1(repr(fields).encode()).hexdigest()[:12]


def build_pool(segments: Segments, cfg: TrainConfig, g: torch.Generator, device: str,
               log: JsonLog, progress: Any) -> dict[str, torch.Tensor]:
    """Render `TrainConfig.pool_examples` examples; keep features, targets and weights."""
    sr = segments.cache.sample_rate
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in ("f_in", "f_ref", "target", "weight",
                                                           "unit_x", "unit_r")}
    task = progress.add_task("pool", total=cfg.pool_examples)
    done, start = 0, time.perf_counter()
    with torch.no_grad():
        while done < cfg.pool_examples:
            a, b = (t.to(device) for t in segments.pairs(cfg.pool_batch, cfg.crops))
            d = draw_settings(g, cfg.pool_batch)
            x = render(a, sr, d.unit_x.to(device))
            r = render(b, sr, d.unit_r.to(device))
            rows["f_in"].append(mean_features(x, sr, cfg.crops).cpu())
            rows["f_ref"].append(mean_features(r, sr, cfg.crops).cpu())
            rows["target"].append(d.unit_target)
            rows["weight"].append(d.weight)
            rows["unit_x"].append(d.unit_x)
            rows["unit_r"].append(d.unit_r)
            done += cfg.pool_batch
            progress.update(task, advance=cfg.pool_batch)
            if (done // cfg.pool_batch) % 20 == 0:
                log.write(phase="pool", examples=done, elapsed_s=time.perf_counter() - start)
    return {k: torch.cat(v)[:cfg.pool_examples] for k, v in rows.items()}


def fit_pool(model: MasterNet, pool: dict[str, torch.Tensor], cfg: TrainConfig, seed: int,
             device: str, log: JsonLog, progress: Any, log_every: int) -> dict[str, float]:
    """Fit the network on the pool by the parameter and response losses (AdamW, cosine)."""
    sample_rate = cfg.sample_rate
    n = pool["f_in"].shape[0]
    n_val = max(1, int(cfg.validation_share * n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val, train = perm[:n_val], perm[n_val:]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.fit_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.fit_steps)
    g = torch.Generator().manual_seed(seed + 1)
    pool = {k: v.to(device) for k, v in pool.items()}

    def loss_on(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        unit = model(pool["f_in"][idx], pool["f_ref"][idx])
        w = pool["weight"][idx]
        param = ((unit - pool["target"][idx]).abs() * w).sum() / w.sum()
        return param, response_loss(unit, pool["unit_x"][idx], pool["unit_r"][idx], sample_rate)

    task = progress.add_task("fit", total=cfg.fit_steps)
    result: dict[str, float] = {}
    best_val, best_state = math.inf, copy.deepcopy(model.state_dict())
    for step in range(1, cfg.fit_steps + 1):
        model.train()
        idx = train[torch.randint(len(train), (cfg.fit_batch,), generator=g)]
        param, response = loss_on(idx.to(device))
        loss = cfg.param_weight * param + cfg.response_weight * response
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        progress.update(task, advance=1)
        if step == 1 or step % log_every == 0 or step == cfg.fit_steps:
            model.eval()
            with torch.no_grad():
                val_param, val_response = loss_on(val.to(device))
            row = {"fit_param_loss": param.item(), "fit_response_loss": response.item(),
                   "fit_val_param_loss": val_param.item(),
                   "fit_val_response_db": 12 * val_response.item()}
            log.write(phase="fit", step=step, **row)
            val_loss = (cfg.param_weight * val_param + cfg.response_weight * val_response).item()
            if val_loss < best_val:  # keep the best held-out fit (the pool is finite)
                best_val, best_state = val_loss, copy.deepcopy(model.state_dict())
                result = {**row, "fit_best_step": step}
    model.load_state_dict(best_state)
    return result


def fit_twin(model: MasterNet, segments: Segments, cfg: TrainConfig, g: torch.Generator,
             device: str, log: JsonLog, progress: Any, log_every: int) -> dict[str, float]:
    """Fine-tune end to end through the twin: audio loss on twin(x, θ̂) vs y, plus parameters."""
    sr = segments.cache.sample_rate
    audio_loss = AudioLoss(sr, cfg.stft_weight, cfg.feature_weight).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.twin_lr)
    task = progress.add_task("twin", total=cfg.twin_steps)
    sums: dict[str, float] = {}
    result: dict[str, float] = {}
    for step in range(1, cfg.twin_steps + 1):
        model.train()
        a, b = (t.to(device) for t in segments.pairs(cfg.twin_batch, cfg.crops))
        d = draw_settings(g, cfg.twin_batch)
        with torch.no_grad():
            x = render(a, sr, d.unit_x.to(device))
            r = render(b, sr, d.unit_r.to(device))
            y = render(a, sr, d.unit_r.to(device))
            f_in = mean_features(x, sr, cfg.crops)
            f_ref = mean_features(r, sr, cfg.crops)
        unit = model(f_in, f_ref)
        losses = audio_loss(render(x, sr, unit), y)
        losses["param"] = parameter_loss(unit, d)
        losses["response"] = response_loss(unit, d.unit_x.to(unit), d.unit_r.to(unit), sr)
        total = (losses["audio"] + cfg.param_weight * losses["param"]
                 + cfg.response_weight * losses["response"])
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        progress.update(task, advance=1)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v.item()
        if step % log_every == 0 or step == cfg.twin_steps:
            count = (step - 1) % log_every + 1
            result = {f"twin_{k}_loss": v / count for k, v in sums.items()}
            log.write(phase="twin", step=step, **result)
            sums = {}
    return result


def train(data_dir: str | Path | None, out_dir: str | Path, *, config: str | Path = "default",
          device: str = "cpu", steps: int | None = None, seed: int = 0, log_every: int = 50,
          cache_dir: str | Path | None = None, threads: int | None = None) -> Path:
    """Train the network and write ``master.pt`` and ``master.json`` into ``out_dir``.

    Parameters
    ----------
    data_dir : folder with ``mixes/*.flac`` (and optionally ``multitracks/``); unused by
        configs with synthetic songs (e.g. "tiny").
    out_dir : where the weights, their JSON and ``train_log.jsonl`` go.
    config : "default", "tiny", or a JSON file of `TrainConfig` fields.
    device : "cpu" or "cuda".
    steps : overrides the pool-fit step count (the twin phase keeps its own).
    seed : seeds the settings priors, segment choice and initialisation.
    log_every : steps between log lines.
    cache_dir : where decoded segments and rendered pools are kept and reused (default
        ``~/.cache/automix``).
    threads : torch CPU threads (default: torch's own).

    Returns
    -------
    Path of ``master.pt``.
    """
    from rich.progress import Progress

    cfg = load_config(config, CONFIGS)
    if steps is not None:
        cfg = dataclasses.replace(cfg, fit_steps=steps)
    out = start_run(out_dir, threads)
    torch.manual_seed(seed)
    start = time.perf_counter()
    cache_dir = Path(cache_dir or Path.home() / ".cache/automix")
    cache = _cache_for(cfg, data_dir, seed, cache_dir)
    segments = Segments(cache, cfg.segment_s, seed)
    g = torch.Generator().manual_seed(seed)
    model = MasterNet(NetConfig(**cfg.net)).to(device)
    log = JsonLog(out / "train_log.jsonl")
    timings: dict[str, float] = {}
    with Progress(transient=False) as progress:
        t0 = time.perf_counter()
        pool_path = cache_dir / f"pool_{_pool_key(cfg, seed, len(cache.songs))}.pt"
        if cfg.synthetic_songs == 0 and pool_path.exists():  # same examples, same RNG states
            saved = torch.load(pool_path, weights_only=False)
            pool = saved["pool"]
            g.set_state(saved["torch_rng"])
            segments.rng.bit_generator.state = saved["numpy_rng"]
        else:
            pool = build_pool(segments, cfg, g, device, log, progress)
            if cfg.synthetic_songs == 0:
                torch.save({"pool": pool, "torch_rng": g.get_state(),
                            "numpy_rng": segments.rng.bit_generator.state}, pool_path)
        timings["pool_s"] = time.perf_counter() - t0
        both = torch.cat([pool["f_in"], pool["f_ref"]])
        model.feature_mean.copy_(both.mean(0))
        model.feature_std.copy_(both.std(0).clamp_min(1.0))
        t0 = time.perf_counter()
        results = fit_pool(model, pool, cfg, seed, device, log, progress, log_every)
        timings["fit_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if cfg.twin_steps > 0:
            results.update(fit_twin(model, segments, cfg, g, device, log, progress,
                                    max(1, min(log_every, cfg.twin_steps))))
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
        "data": {"songs": len(cache.songs), "segments": int(cache.audio.shape[0]),
                 "source": "synthetic" if cfg.synthetic_songs else str(data_dir),
                 "split": f"sha1(song name) % 100 < {data.EVAL_PERCENT} held out for eval"},
        "losses": results,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    (out / "master.json").write_text(json.dumps(meta, indent=2) + "\n")
    return weights
