"""The stem network: per-stem corrections (level, EQ, balance) learned from real multitracks.

What it hears, per stem: third-octave band powers (`band_grams`: the power of the left and
the right channel and their cross-power in each of `analysis.BAND_CENTERS_HZ`, averaged over
an excerpt), its role, the same band powers of the stems' power sum, and the reference's mid
and side tonal balance. A small set transformer lets every stem see the others. What it says,
per stem: a gain, the five EQ gains and peak 2's frequency, and a balance (`OUTPUTS`, through
the parameter table; the rest of the `StemChain` stays at its defaults): the settings that undo
what a careless rough mix did to the stem.

This module is inference only: the network, `load_model` and `predict`. Its role vocabulary
comes from the weights' JSON (``"roles"``). Training (the perturbations it learns to undo, the
band-power model of a chain, the losses) is `automix.training.stems`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from automix import analysis
from automix.params import StemChain, as_dict, flat_ranges, validate_chain

BANDS = len(analysis.BAND_CENTERS_HZ)
LAYOUT = list(flat_ranges(StemChain))
RANGES = flat_ranges(StemChain)
OUTPUTS = ("gain.gain_db", "eq.low_shelf_gain_db", "eq.peak1_gain_db", "eq.peak2_freq_hz",
           "eq.peak2_gain_db", "eq.peak3_gain_db", "eq.high_shelf_gain_db", "pan.pan")
FRAME_AT_44K = 4096  # band-power frames (Hann, half overlap), scaled with the sample rate
RELATIVE_FLOOR = 1e-8  # relative band powers are floored at -80 dB
LR_LIMIT_DB = 24.0  # left/right power ratios are clipped to +-this
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "stems.pt"


# --- band powers (numpy) ------------------------------------------------------------------------


def frame_size(sample_rate: int) -> int:
    """Samples per band-power frame: 4096 at 44.1 and 48 kHz (about 90 ms)."""
    return 2 ** round(math.log2(FRAME_AT_44K * sample_rate / 44100))


def band_grams(samples: np.ndarray, sample_rate: int, block_s: float | None = None) -> np.ndarray:
    """Band powers of a two-channel signal: left, right and their cross-power per band.

    Frames of `frame_size` samples (Hann, half overlap) are transformed, a few at a time
    (`analysis.WELCH_FRAMES_PER_FFT`: they stay in cache); each bin's power is shared among
    the third-octave bands it overlaps (`analysis.band_matrix`).

    Parameters
    ----------
    samples : np.ndarray, shape (2, samples)
    sample_rate : int, Hz
    block_s : float or None
        Average the frames of each block of this many seconds; None: of the whole signal.

    Returns
    -------
    np.ndarray, shape (blocks, 3, BANDS), float64: mean |L|^2, |R|^2 and Re(L R*) per band
    (power per frame, a common scale for every signal at one sample rate).
    """
    n_fft = frame_size(sample_rate)
    x = np.asarray(samples, dtype=np.float64)
    if x.shape[1] < n_fft:
        x = np.pad(x, ((0, 0), (0, n_fft - x.shape[1])))
    window = analysis.welch_window(n_fft)
    bands = analysis.band_matrix(np.fft.rfftfreq(n_fft, 1.0 / sample_rate)).astype(np.float64)
    step = analysis.welch_step(n_fft)
    frames = [sliding_window_view(ch, n_fft)[::step] for ch in x]
    per_block = len(frames[0]) if block_s is None else max(1, round(block_s * sample_rate / step))
    n_blocks = max(1, len(frames[0]) // per_block)
    out = np.zeros((n_blocks, 3, BANDS))
    scale = 1.0 / (np.sum(window**2) * per_block)
    for b in range(n_blocks):
        powers = np.zeros((3, n_fft // 2 + 1))
        end = (b + 1) * per_block
        for start in range(b * per_block, end, analysis.WELCH_FRAMES_PER_FFT):
            left, right = (np.fft.rfft(f[start:min(start + analysis.WELCH_FRAMES_PER_FFT, end)]
                                       * window, axis=-1) for f in frames)
            powers[0] += (left.real**2 + left.imag**2).sum(0)
            powers[1] += (right.real**2 + right.imag**2).sum(0)
            powers[2] += (left.real * right.real + left.imag * right.imag).sum(0)  # Re(L R*)
        out[b] = powers @ bands.T * scale
    return out


# --- tonal balance ------------------------------------------------------------------------------


def spectra(gram: torch.Tensor) -> torch.Tensor:
    """Channel band powers ``(..., 3, BANDS)`` -> left, right, mid and side powers
    ``(..., 4, BANDS)`` (mid = (L + R) / 2, side = (L - R) / 2)."""
    ll, rr, lr = gram.unbind(-2)
    mid = 0.25 * (ll + rr + 2 * lr)
    side = (0.25 * (ll + rr - 2 * lr)).clamp_min(0.0)
    return torch.stack([ll, rr, mid, side], dim=-2)


def power_db(x: torch.Tensor) -> torch.Tensor:
    """Powers in dB (10 log10)."""
    return 10.0 * torch.log10(x)


def relative_db(mid: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """Mid and side band powers ``(..., BANDS)`` each -> ``(..., 2, BANDS)`` dB relative to
    their total power, floored at `RELATIVE_FLOOR`."""
    total = (mid + side).sum(-1, keepdim=True)[..., None, :] + 1e-30
    return power_db(torch.stack([mid, side], dim=-2) / total + RELATIVE_FLOOR)


def reference_db(mid_db: np.ndarray, side_db: np.ndarray) -> np.ndarray:
    """A reference's tonal balance (`Analysis.tonal_mid_db`, `tonal_side_db`; NaN where not
    measured) as `relative_db`, shape (2, BANDS)."""
    powers = [torch.from_numpy(np.nan_to_num(10.0 ** (np.asarray(v, np.float64) / 10.0)))
              for v in (mid_db, side_db)]
    return relative_db(*powers).numpy()


# --- the network ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StemNetConfig:
    """Hyper-parameters of the network (stored beside the weights as JSON)."""

    width: int = 96
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    members: int = 3

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


N_STEM_FEATURES = 3 * BANDS + 1  # mid, side, left/right; level (then one per role)
N_CONTEXT_FEATURES = 3 * BANDS + 4 * BANDS  # the sum as a stem; the reference and its difference


def stem_features(grams: torch.Tensor, mask: torch.Tensor, roles: torch.Tensor,
                  reference: torch.Tensor, n_roles: int) -> torch.Tensor:
    """What the network reads of each stem, ``(batch, stems, features)``, in dB / 20.

    Parameters
    ----------
    grams : (batch, stems, 3, BANDS) channel band powers of the stems as they play
    mask : (batch, stems) bool, True for stems that count (padding and silence are False)
    roles : (batch, stems) int, index in the network's role vocabulary (`StemNet.roles`)
    reference : (batch, 2, BANDS) the reference's `relative_db`
    n_roles : the size of that vocabulary
    """
    grams = grams * mask[..., None, None]
    total = grams[..., :2, :].sum((-2, -1)) / 2  # (batch, stems): mean channel power

    def shape(g: torch.Tensor) -> torch.Tensor:  # (..., 3, BANDS) -> (..., 3 * BANDS)
        s = spectra(g)
        ratio = power_db((s[..., 0, :] + 1e-30) / (s[..., 1, :] + 1e-30)).clamp(-LR_LIMIT_DB,
                                                                                LR_LIMIT_DB)
        return torch.cat([relative_db(s[..., 2, :], s[..., 3, :]).flatten(-2), ratio], -1)

    summed = grams.sum(1)
    level = power_db(total / (summed[:, :2].sum((-2, -1)) / 2 + 1e-30)[:, None] + RELATIVE_FLOOR)
    stem = torch.cat([shape(grams), level[..., None],
                      nn.functional.one_hot(roles, n_roles).to(grams.dtype) * 20.0], -1)
    mix = shape(summed)
    context = torch.cat([mix, reference.flatten(-2), reference.flatten(-2) - mix[:, :2 * BANDS]],
                        -1)
    return torch.cat([stem, context[:, None].expand(-1, stem.shape[1], -1)], -1) / 20.0


class _SetMixer(nn.Module):
    """One member: an MLP embeds each stem's features, transformer layers over the stems
    (padding masked) let each see the others, a linear head gives the `OUTPUTS` in 0..1
    (sigmoid), starting at their defaults (zero weights)."""

    def __init__(self, config: StemNetConfig, n_roles: int) -> None:
        super().__init__()
        w = config.width
        self.embed = nn.Sequential(nn.Linear(N_STEM_FEATURES + n_roles + N_CONTEXT_FEATURES, w),
                                   nn.GELU(), nn.Linear(w, w))
        layer = nn.TransformerEncoderLayer(w, config.heads, 2 * w, config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.mixer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.head = nn.Linear(w, len(OUTPUTS))
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(torch.logit(default_unit()[[LAYOUT.index(k) for k in OUTPUTS]]))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.mixer(self.embed(features), src_key_padding_mask=~mask)
        return torch.sigmoid(self.head(h))


class StemNet(nn.Module):
    """Band powers of the stems and the reference -> each stem's normalised `StemChain`.

    `StemNetConfig.members` set transformers (`_SetMixer`), each trained from its own seed,
    read `stem_features`; the output is the mean of theirs (an ensemble: single runs on a few
    songs vary). Parameters other than `OUTPUTS` stay at their defaults. ``roles`` is the role
    vocabulary the network was trained with (stored in the weights' JSON): a stem's role is
    read as its index there.
    """

    def __init__(self, config: StemNetConfig, roles: Sequence[str]) -> None:
        super().__init__()
        self.config = config
        self.roles = tuple(roles)
        self.members = nn.ModuleList(_SetMixer(config, len(self.roles))
                                     for _ in range(config.members))
        self.register_buffer("default_unit", default_unit().float())
        self.register_buffer("output_index", torch.tensor([LAYOUT.index(k) for k in OUTPUTS]))

    def forward(self, grams: torch.Tensor, mask: torch.Tensor, roles: torch.Tensor,
                reference: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """Normalised chains ``(batch, stems, len(LAYOUT))`` (see `stem_features`): the
        members' mean, or one ``member``'s."""
        features = stem_features(grams.float(), mask, roles, reference.float(),
                                 len(self.roles))
        members = self.members if member is None else [self.members[member]]
        unit = self.default_unit.expand(*mask.shape, -1).clone()
        unit[..., self.output_index] = torch.stack([m(features, mask) for m in members]).mean(0)
        return unit


def default_unit(shape: tuple[int, ...] = ()) -> torch.Tensor:
    """The `StemChain` defaults, normalised, ``(*shape, len(LAYOUT))`` float64."""
    unit = torch.tensor([RANGES[k].normalize(RANGES[k].default) for k in LAYOUT],
                        dtype=torch.float64)
    return unit.expand(*shape, -1).clone()


def load_model(path: str | Path | None = None) -> StemNet:
    """The network from ``stems.pt`` and its ``stems.json`` (default: the packaged weights;
    the JSON gives its config and role vocabulary). No process-wide cache: loading takes
    milliseconds beside a mix's seconds."""
    weights = Path(path) if path is not None else DEFAULT_WEIGHTS
    meta = json.loads(weights.with_suffix(".json").read_text())
    model = StemNet(StemNetConfig(**meta["net"]), meta["roles"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def predict(model: StemNet, grams: np.ndarray, roles: list[str], reference: np.ndarray,
            active: np.ndarray) -> list[StemChain]:
    """Each stem's corrective chain (plain floats; `OUTPUTS` set, the rest at defaults).

    Parameters
    ----------
    grams : (stems, 3, BANDS) `band_grams` of each stem as it plays at the centre
    roles : each stem's role, one of ``model.roles``
    reference : (2, BANDS) `reference_db` of the reference
    active : (stems,) bool, False for stems silent in the excerpt (ignored by the others)
    """
    with torch.no_grad():
        unit = model(torch.from_numpy(grams)[None], torch.from_numpy(active)[None],
                     torch.tensor([[model.roles.index(r) for r in roles]]),
                     torch.from_numpy(reference)[None])[0].double().numpy()
    chains = []
    for u in unit:
        values = as_dict(StemChain())
        for name in OUTPUTS:
            group, key = name.split(".")
            values[group][key] = RANGES[name].clip(float(RANGES[name].denormalize(
                u[LAYOUT.index(name)])))
        chains.append(validate_chain(StemChain, values, where="stem net"))
    return chains
