"""Refining a mix through the twin: gains, EQ gains, pans and sends toward the reference.

The refinement runs on a short excerpt in the STFT domain: the effects after each stem's
compressor are linear, so each stem's compressed excerpt and its reverb return are transformed
once, and a step only multiplies them by the twin's EQ response (`twin.frequency_response`),
gains and pan laws. The gain change is applied before the compressor in the rendered chain
with the threshold moved by the same amount, which is the same sound; an EQ change is heard
after compression in the refinement and before it in the render (a small difference for the
few-dB moves allowed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from automix import analysis
from automix.analysis import band_matrix
from automix.effects import render
from automix.mixing.balance import reference_tonal, with_level_move
from automix.mixing.roles import ROLE_DEFAULTS
from automix.mixing.stems import Stem, loudest_excerpt
from automix.params import (
    EQParams,
    PanParams,
    ReverbParams,
    SendParams,
    StemChain,
    flat_ranges,
    ranges,
)
from automix.settings import Reference

REFINE_EXCERPT_S = 8.0  # the refinement listens to the loudest excerpt of this length
REFINE_STEPS = 60
REFINE_LR = 0.04
REFINE_BUDGET_S = 1.5
REFINE_N_FFT_AT_44K = 2048
MAX_GAIN_MOVE_DB = 6.0  # the refinement moves a stem's level at most this far from its start
MAX_EQ_MOVE_DB = 6.0  # and each EQ band at most this far
MAX_PAN_MOVE = 0.6
SEND_RANGE_DB = (-40.0, -8.0)
GAIN_PENALTY = 0.02  # per (dB / MAX_GAIN_MOVE_DB) squared: prefer the balanced start
EQ_PENALTY = 0.02
SIDE_WEIGHT = 0.3
WIDTH_WEIGHT = 0.5


@dataclass
class _Spectra:
    """What the refinement needs of the stems, measured once on an excerpt.

    Every stem is a pair of channel items (a mono stem's second item is silent): their mean
    STFT powers after the compressor, the real part of their cross-spectrum, and their pan
    offsets; and the reverb's power response per channel. Shapes (stems, bins) and (bins,).
    """

    power: Any  # (stems, 2, bins)
    cross: Any  # (stems, bins)
    pan_offset: Any  # (stems, 2)
    reverb_left: Any  # (bins,)
    reverb_right: Any
    bands: Any  # (bands, bins)
    n_fft: int


def _spectra(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
             reverb: ReverbParams) -> _Spectra:
    import torch

    from automix.effects import reverb_ir

    start, end = loudest_excerpt(stems, sample_rate, REFINE_EXCERPT_S)
    n_fft = int(2 ** round(math.log2(REFINE_N_FFT_AT_44K * sample_rate / 44100)))
    window = torch.hann_window(n_fft)
    power, cross, offsets = [], [], []
    for stem in stems:
        chain = replace(chains[stem.name], pan=PanParams(pan=-1.0))  # left = the signal itself
        x = stem.read(start, end)
        rows = x if stem.is_stereo else x.mean(axis=0, keepdims=True)
        items = np.stack([render.stem_chain(r[None], sample_rate, chain)[0][0]
                          for r in rows])
        spec = torch.stft(torch.from_numpy(items), n_fft, hop_length=n_fft // 2,
                          window=window, return_complex=True)  # (items, bins, frames)
        p = (spec.real.pow(2) + spec.imag.pow(2)).mean(-1)
        if stem.is_stereo:
            power.append(p)
            cross.append((spec[0] * spec[1].conj()).real.mean(-1))
            offsets.append((-1.0, 1.0))
        else:
            power.append(torch.cat([p, torch.zeros_like(p)]))
            cross.append(torch.zeros_like(p[0]))
            offsets.append((0.0, 0.0))
    with torch.no_grad():
        ir = reverb_ir.impulse_response(sample_rate, reverb)[0].double()  # (2, samples)
    # the power a stationary signal gains through the room, averaged over each STFT bin
    n_ir = 1 << math.ceil(math.log2(max(ir.shape[-1], n_fft)))
    response = torch.fft.rfft(ir, n_ir).abs().pow(2) * render.db_to_amp(reverb.wet_db) ** 2
    per_bin = _average_bins(response, n_ir // n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    return _Spectra(torch.stack(power).double(), torch.stack(cross).double(),
                    torch.tensor(offsets, dtype=torch.float64), per_bin[0], per_bin[1],
                    torch.from_numpy(band_matrix(freqs)).double(), n_fft)


def _average_bins(response: Any, factor: int) -> Any:
    """Average ``(channels, factor * k + 1)`` fine bins onto ``k + 1`` centred coarse bins."""
    import torch.nn.functional as F

    padded = F.pad(response[:, None], (factor // 2, factor // 2), mode="replicate")
    return F.avg_pool1d(padded, factor + 1 - factor % 2, stride=factor)[:, 0]



def _reference_bands(reference: Reference, sample_rate: int) -> tuple[Any, Any, Any, float]:
    """The reference's mid and side third-octave balance (dB), the bands that count, and its
    width in dB (side over mid power)."""
    import torch

    mid, side = reference_tonal(reference)
    valid = (np.isfinite(mid) & np.isfinite(side)
             & (analysis.BAND_EDGES_HZ[1] <= analysis.BAND_MAX_FRACTION_OF_NYQUIST
                * sample_rate / 2))
    valid &= mid >= np.max(np.where(valid, mid, -np.inf)) - analysis.TONAL_ERROR_RANGE_DB
    width = reference.features.width if math.isfinite(reference.features.width) else 0.0
    return (torch.tensor(np.nan_to_num(mid)), torch.tensor(np.nan_to_num(side)),
            torch.tensor(valid), 20.0 * math.log10(max(width, 1e-3)))


def refine(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
           reverb: ReverbParams, reference: Reference, *, steps: int = REFINE_STEPS,
           time_budget_s: float = REFINE_BUDGET_S) -> dict[str, StemChain]:
    """Move gains, EQ gains, pans (mono stems of spread roles) and sends so that the mix's
    tonal balance (mid and side) and width approach the reference's; frequencies, Qs,
    high-pass and compressor stay.

    The mix is modelled by its power spectrum: each stem's compressed excerpt is measured once
    (`_spectra`); a step scales it by the twin's EQ response, the gain and the pan law, adds
    its reverb return through the room's power response, and sums the stems by power (stems
    are taken as mutually uncorrelated; the channels of a stereo stem are not). Every move is
    bounded (`MAX_GAIN_MOVE_DB`, `MAX_EQ_MOVE_DB`, `MAX_PAN_MOVE`, `SEND_RANGE_DB`) and
    small ones are preferred (a ridge on gain and EQ changes).
    """
    import torch

    from automix.effects import twin
    from automix.params import from_unit_vector, to_unit_list

    names = [s.name for s in stems]
    sp = _spectra(stems, sample_rate, chains, reverb)
    ref_mid, ref_side, valid, ref_width_db = _reference_bands(reference, sample_rate)
    if int(valid.sum()) < 4:
        return chains
    u0 = torch.tensor([to_unit_list(chains[n]) for n in names], dtype=torch.float64)
    start = from_unit_vector(StemChain, u0)
    layout = list(flat_ranges(StemChain))
    trainable = torch.zeros_like(u0, dtype=torch.bool)
    for i, key in enumerate(layout):
        trainable[:, i] = key == "gain.gain_db" or (key.startswith("eq.")
                                                    and key.endswith("_gain_db"))
    # pans move for mono stems of spread roles, sends for stems that have one (not the bass)
    trainable[:, layout.index("pan.pan")] = torch.tensor(
        [not s.is_stereo and ROLE_DEFAULTS[s.role].pan_spread > 0 for s in stems])
    trainable[:, layout.index("send.send_db")] = torch.tensor(
        [chains[n].send.send_db >= SEND_RANGE_DB[0] for n in names])
    eq_gain_names = [k for k in ranges(EQParams) if k.endswith("_gain_db")]

    def settings(u: torch.Tensor) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The bounded chain, the gain change (dB), the pan and the send (dB) of each stem."""
        chain = from_unit_vector(StemChain, u)
        delta = (chain.gain.gain_db - start.gain.gain_db).clamp(-MAX_GAIN_MOVE_DB,
                                                                 MAX_GAIN_MOVE_DB)
        eq = replace(chain.eq, **{k: getattr(chain.eq, k).clamp(-MAX_EQ_MOVE_DB, MAX_EQ_MOVE_DB)
                                  for k in eq_gain_names})
        pan = torch.minimum(torch.maximum(chain.pan.pan, start.pan.pan - MAX_PAN_MOVE),
                            start.pan.pan + MAX_PAN_MOVE)
        send = torch.where(start.send.send_db < SEND_RANGE_DB[0], start.send.send_db,
                           chain.send.send_db.clamp(*SEND_RANGE_DB))
        return replace(chain, eq=eq), delta, pan, send

    def render_fn(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mid and side power spectra of the mix, (bins,) each, and the ridge penalty."""
        chain, delta, pan, send_db = settings(u)
        response = twin.frequency_response(twin.eq_coefficients(chain.eq, sample_rate),
                                           sp.n_fft).abs().pow(2)  # (stems, bins)
        level = response * (10.0 ** (delta / 10.0))[:, None]
        angle = ((pan[:, None] + sp.pan_offset).clamp(-1.0, 1.0) + 1.0) * math.pi / 4.0
        cos, sin = torch.cos(angle), torch.sin(angle)  # (stems, 2)

        def power(a: torch.Tensor) -> torch.Tensor:  # a: (stems, 2) channel weights
            return (a[:, :1] ** 2 * sp.power[:, 0] + a[:, 1:] ** 2 * sp.power[:, 1]
                    + 2 * a[:, :1] * a[:, 1:] * sp.cross)

        sends = (10.0 ** (send_db / 10.0))[:, None]
        wet = sends * (power(cos) * sp.reverb_left + power(sin) * sp.reverb_right) / 4.0
        mid = (level * (power((cos + sin) / 2) + wet)).sum(0)
        side = (level * (power((cos - sin) / 2) + wet)).sum(0)
        eq_gains = torch.stack([getattr(chain.eq, k) for k in eq_gain_names], -1)
        penalty = (GAIN_PENALTY * (delta / MAX_GAIN_MOVE_DB).pow(2).mean()
                   + EQ_PENALTY * (eq_gains / MAX_EQ_MOVE_DB).pow(2).mean())
        return mid, side, penalty

    def loss_fn(rendered: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        mid_power, side_power, penalty = rendered
        mid, side = sp.bands @ mid_power + 1e-20, sp.bands @ side_power + 1e-20
        mid_db, side_db = 10.0 * torch.log10(mid), 10.0 * torch.log10(side)
        level, ref_level = mid_db[valid].mean(), ref_mid[valid].mean()
        tonal = ((mid_db - level) - (ref_mid - ref_level))[valid].abs().mean()
        side_error = ((side_db - level) - (ref_side - ref_level))[valid].abs().mean()
        width_db = 10.0 * torch.log10(side[valid].sum() / mid[valid].sum())
        return (tonal + SIDE_WEIGHT * side_error
                + WIDTH_WEIGHT * (width_db - ref_width_db).abs() + penalty)

    u = twin.optimise(u0, render_fn, loss_fn, steps=steps, lr=REFINE_LR,
                      time_budget_s=time_budget_s, trainable=trainable)
    chain, delta, pan, send = settings(u)
    out = {}
    for i, name in enumerate(names):
        out[name] = replace(
            with_level_move(chains[name], float(delta[i])),
            eq=replace(chains[name].eq, **{k: round(float(getattr(chain.eq, k)[i]), 2)
                                           for k in eq_gain_names}),
            pan=PanParams(pan=round(float(pan[i]), 3)),
            send=SendParams(send_db=round(float(send[i]), 2)))
    return out


