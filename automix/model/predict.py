"""Use the analysis network: mix + reference features -> `MasterChain`, then refine it.

Audio is heard as the network was trained: a few loud excerpts of `segment_s` seconds (from
the weights' JSON) at `ANALYSIS_SR`, each turned into a feature vector; a file's vector is the
mean over its excerpts and a reference made of several files is the mean over files, which is
also how a genre preset is made. The network predicts a compressor threshold for a chain input
at `CHAIN_INPUT_RMS_DB`; `predict_master_chain` moves it to the file's own level (the chain is
linear in level apart from the compressor, whose behaviour depends only on the level relative
to its threshold).

Prediction runs in numpy (`features_np`, `network_np.NumpyMasterNet` from ``master.npz``), so
importing this module and predicting import neither torch nor librosa; only `refine`, which
differentiates through the twin, imports torch.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from automix.model import features_np
from automix.model.network_np import (
    CHAIN_INPUT_RMS_DB,
    FIXED_PARAMS,
    PARAM_NAMES,
    NumpyMasterNet,
)
from automix.params import MasterChain, flat_ranges, from_unit_vector, to_unit_list

ANALYSIS_SR = 44100
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "master.pt"
EXCERPTS = 8  # excerpts per file for the feature vector
REFINE_EXCERPTS = 3  # excerpts rendered per refinement step
PARAM_RANGES = flat_ranges(MasterChain)


def load_model(path: str | Path | None = None) -> NumpyMasterNet:
    """The network from the ``.npz`` and ``.json`` beside ``path`` (``master.pt``, or the
    ``.npz`` itself; default: the packaged weights), for inference in numpy.

    The model carries ``segment_s`` (the excerpt length it was trained on) as an attribute.
    """
    return NumpyMasterNet.load(Path(path) if path is not None else DEFAULT_WEIGHTS)


def at_analysis_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(channels, samples)`` resampled to `ANALYSIS_SR` (unchanged when already there)."""
    if sample_rate == ANALYSIS_SR:
        return np.asarray(samples, dtype=np.float32)
    from scipy.signal import resample_poly  # a second of imports, only when needed

    g = math.gcd(ANALYSIS_SR, sample_rate)
    return resample_poly(samples, ANALYSIS_SR // g, sample_rate // g, axis=-1).astype(np.float32)


def loud_excerpts(samples: np.ndarray, segment_samples: int, count: int) -> np.ndarray:
    """``count`` loud excerpts ``(count, channels, segment_samples)`` of one signal.

    Candidates are spread evenly over the signal; the loudest ``count`` of them are kept (in
    time order). A signal shorter than one excerpt is zero-padded.
    """
    n = samples.shape[-1]
    if n <= segment_samples:
        pad = np.zeros((samples.shape[0], segment_samples), np.float32)
        pad[:, :n] = samples
        return pad[None]
    starts = np.linspace(0, n - segment_samples, 3 * count).astype(int)
    power = [np.mean(samples[:, s:s + segment_samples] ** 2) for s in starts]
    keep = np.sort(np.argsort(power)[::-1][:count])
    return np.stack([samples[:, starts[k]:starts[k] + segment_samples] for k in keep])


def _excerpts(model_segment_s: float, samples: np.ndarray, sample_rate: int,
              count: int) -> np.ndarray:
    x = at_analysis_rate(samples, sample_rate)
    if x.shape[0] > 2:
        x = x[:2]
    return loud_excerpts(x, round(model_segment_s * ANALYSIS_SR), count)


def file_features(samples: np.ndarray, sample_rate: int, *, segment_s: float = 1.5,
                  count: int = EXCERPTS) -> np.ndarray:
    """Feature vector of one production, ``(N_FEATURES,)`` float64: mean over its loud
    excerpts."""
    ex = _excerpts(segment_s, samples, sample_rate, count)
    return features_np.production_features(ex, ANALYSIS_SR).mean(axis=0)


def reference_features_from_audio(references: list[tuple[np.ndarray, int]], *,
                                  segment_s: float = 1.5) -> np.ndarray:
    """Reference vector ``(N_FEATURES,)`` of one or several productions: the mean of theirs."""
    return np.mean([file_features(s, sr, segment_s=segment_s) for s, sr in references], axis=0)


def _level_db(excerpts: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(excerpts.astype(np.float64) ** 2) + 1e-20))


def _shift_threshold(chain: MasterChain, shift_db: float) -> MasterChain:
    r = PARAM_RANGES["compressor.threshold_db"]
    threshold = min(max(chain.compressor.threshold_db + shift_db, r.min), r.max)
    return replace(chain, compressor=replace(chain.compressor, threshold_db=threshold))


def _as_floats(chain: MasterChain) -> MasterChain:
    return replace(chain, **{group: replace(getattr(chain, group), **{
        k: float(v) for k, v in vars(getattr(chain, group)).items()})
        for group in ("highpass", "eq", "compressor", "width")})


def predict_master_chain(model: NumpyMasterNet, input_samples: np.ndarray, sample_rate: int,
                         reference_features: np.ndarray) -> MasterChain:
    """Settings that move ``input_samples`` ``(channels, samples)`` toward the reference.

    Parameters
    ----------
    model : from `load_model`
    input_samples : np.ndarray, shape (channels, samples), float32, at its own level
    sample_rate : int, Hz
    reference_features : np.ndarray, shape (N_FEATURES,), from
        `reference_features_from_audio` or a preset

    Returns
    -------
    MasterChain of plain floats, every value inside its range, for the file's own level.
    """
    ex = _excerpts(model.segment_s, input_samples, sample_rate, EXCERPTS)
    f_in = features_np.production_features(ex, ANALYSIS_SR).mean(axis=0)
    unit = model(f_in[None], np.asarray(reference_features)[None])[0]
    chain = _as_floats(from_unit_vector(MasterChain, unit))
    return _shift_threshold(chain, _level_db(ex) - CHAIN_INPUT_RMS_DB)


def refine(model: NumpyMasterNet | None, input_samples: np.ndarray, sample_rate: int,
           reference_features: np.ndarray, init: MasterChain | None = None, *,
           steps: int = 40, time_budget_s: float = 10.0, lr: float = 0.02,
           anchor_weight: float = 20.0, excerpts: int = REFINE_EXCERPTS,
           tonal_only: bool = False) -> MasterChain:
    """Settings optimised through the twin toward the reference's production features.

    A few loud excerpts of the input are rendered through `automix.effects.twin.master_chain`
    (at the chain's level convention) and their mean feature vector is pulled toward
    ``reference_features`` by Adam in normalised space (`automix.effects.twin.optimise`),
    while a quadratic anchor keeps the settings near ``init``, which the network predicted
    from a wider view of the song. ``init`` defaults to the network's prediction (``model``
    is only used for that). Each step renders ``excerpts`` excerpts of the model's segment
    length; the time budget is checked after each step. ``tonal_only`` refines the EQ gains
    alone toward the reference's tonal balance (`features.tonal_distance`) instead of every
    setting toward every production feature (`features.feature_distance`).

    Returns
    -------
    MasterChain of plain floats for the file's own level; never worse by the refinement's
    loss than ``init`` (the best settings seen are kept).
    """
    import torch

    from automix.effects import twin
    from automix.model import features

    segment_s = model.segment_s if model is not None else 1.5
    if init is None:
        if model is None:
            raise ValueError("refine needs a model or an init chain")
        init = predict_master_chain(model, input_samples, sample_rate, reference_features)
    ex = _excerpts(segment_s, input_samples, sample_rate, excerpts)
    shift_db = _level_db(ex) - CHAIN_INPUT_RMS_DB
    x = torch.from_numpy(ex) * 10.0 ** (-shift_db / 20.0)
    u0 = torch.tensor(to_unit_list(_shift_threshold(init, -shift_db)), dtype=torch.float32)
    trainable = torch.tensor([name not in FIXED_PARAMS
                              and (not tonal_only or name.endswith("_gain_db"))
                              for name in PARAM_NAMES])
    distance = features.tonal_distance if tonal_only else features.feature_distance
    target = torch.as_tensor(np.asarray(reference_features), dtype=torch.float32)
    current: dict[str, torch.Tensor] = {}

    def render(u: torch.Tensor) -> torch.Tensor:
        current["u"] = u
        chain = from_unit_vector(MasterChain, u.expand(x.shape[0], -1))
        return twin.master_chain(x, ANALYSIS_SR, chain)

    def loss(audio: torch.Tensor) -> torch.Tensor:
        f = features.production_features(audio, ANALYSIS_SR).mean(dim=0)
        return (distance(f, target)
                + anchor_weight * (current["u"] - u0).pow(2).sum())

    u = twin.optimise(u0, render, loss, steps=steps, lr=lr, time_budget_s=time_budget_s,
                      trainable=trainable)
    chain = _as_floats(from_unit_vector(MasterChain, u.double().numpy()))
    return _shift_threshold(chain, shift_db)

