"""Mixing: load stems -> suggest per-stem settings -> render -> sum -> master the bus.

Each stem runs through its own `params.StemChain` (gain, high-pass, EQ, compressor, pan, and
a send to one shared reverb bus); the dry stems and the reverb return are summed and the bus
is mastered by `automix.mastering` (DSP-matched master chain, gain to the delivery target,
true-peak limiter).

Stereo stems keep their image: the pair runs through the effects in one pass (every effect
here processes channels independently) and each channel is panned with an offset of -1
(left) and +1 (right) (`render.balance`), so ``pan`` acts as a balance control and 0 leaves
a stereo stem as it was. Mono stems (or stereo files with identical channels) are panned.

Settings are suggested in steps (`suggest_mix`): role-based defaults (levels balanced by
loudness, high-pass, compressor, pan spread, a reverb send for vocals); with ``method``
"network" (the default), each stem's level, EQ and balance from the stem network
(`network_chains`, `automix.model.stem_net`: trained on real multitracks to undo a rough
mix's level, EQ and pan moves, from each stem's band powers beside the others' and the
reference's); then a fit of the stems' levels so that the sum's mid and side third-octave
band powers match the reference's (`fit_balance`: stems taken as uncorrelated, so band powers
add; least squares in dB with a ridge toward the role balance, numpy/scipy only).
Optionally (``refine_steps``) a refinement of gains, EQ gains, pans and sends by gradient
descent (`twin.optimise`) moves the summed mix's tonal balance and width toward the
reference's. The refinement runs on a short excerpt in the STFT domain: the effects after
each stem's compressor are linear, so each stem's compressed excerpt and its reverb return
are transformed once, and a step only multiplies them by the twin's EQ response
(`twin.frequency_response`), gains and pan laws. The gain change is applied before the
compressor in the rendered chain with the threshold moved by the same amount, which is the
same sound; an EQ change is heard after compression in the refinement and before it in the
render (a small difference for the few-dB moves allowed).
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from automix import __version__, analysis, loudness, mastering
from automix.analysis import AudioWarning, band_matrix
from automix.audio import Audio
from automix.effects import render
from automix.errors import OutputError, SettingsError
from automix.mastering import MasterResult, MasterSettings, Reference
from automix.params import (
    CompressorParams,
    EQParams,
    GainParams,
    HighpassParams,
    PanParams,
    ReverbParams,
    SendParams,
    StemChain,
    as_dict,
    flat_ranges,
    ranges,
    validate,
    validate_chain,
)
from automix.presets import Target
from automix.stems import Stem, load_stems

MIX_LEVEL_LUFS = -20.0  # the balanced stems sum to about this loudness before the master
SILENT_STEM_LUFS = -60.0  # stems quieter than this keep unit gain (nothing to balance)
LOUDNESS_EXCERPT_S = 30.0  # a stem's loudness is measured on at most this much of its active part
ACTIVE_RANGE_DB = 50.0  # half-second hops within this of a stem's loudest count as active
FIT_EXCERPT_S = 30.0  # the balance fit listens to the loudest excerpt of this length
FIT_MIN_HZ = 40.0  # bands below this do not count in the fit (few bins, short excerpts)
FIT_RANGE_DB = 60.0  # nor bands this far below the reference's loudest (or the stems')
# How `suggest_mix` starts: role defaults ("dsp") or the stem network ("network"); on the stem
# model's validation multitracks (benchmarks/mixing.py's protocol) the network takes the
# log-mel distance to the real mix from 4.95 to 3.99 dB.
DEFAULT_METHOD = "network"
MIN_EQ_MOVE_DB = 0.5  # the stem network's EQ moves smaller than this are left out
MAX_FIT_MOVE_DB = 12.0  # the fit moves a stem's level at most this far from its role balance
FIT_PRIOR_WEIGHT = 0.05  # per dB squared of a level move, against dB squared of band error
FIT_SIDE_WEIGHT = 0.3  # side bands count this much against mid bands
SEND_OFF_DB = ranges(SendParams)["send_db"].min  # a send at the floor feeds no reverb
RENDER_THREADS = min(4, os.cpu_count() or 1)
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
DEFAULT_REVERB = ReverbParams(decay_s=1.4, predelay_ms=20.0, damping_hz=6000.0,
                              width_pct=100.0, wet_db=-6.0)


@dataclass(frozen=True)
class RoleDefaults:
    """Where a role starts: level relative to the others (LU), high-pass (Hz), how far mono
    stems of it are spread from the centre, reverb send (dB), and its compressor as (ratio,
    threshold above the stem's balanced loudness in LU, attack ms, release ms) or None."""

    level_lu: float
    highpass_hz: float
    pan_spread: float
    send_db: float
    compressor: tuple[float, float, float, float] | None


# Sends: only vocals get the room by default. Stems bounced from a production usually carry
# their own ambience, and on held-out real multitracks the former sends (-16 to -28 dB on every
# role but bass) put the mix 1.5 dB further (log-mel) from the real one. The refinement
# (`refine`) can still move a send that is on.
ROLE_DEFAULTS: dict[str, RoleDefaults] = {
    "vocals": RoleDefaults(3.0, 90.0, 0.0, -22.0, (3.0, 4.0, 5.0, 120.0)),
    "drums": RoleDefaults(1.0, 30.0, 0.0, -60.0, (2.0, 8.0, 20.0, 120.0)),
    "bass": RoleDefaults(1.0, 30.0, 0.0, -60.0, (4.0, 3.0, 10.0, 150.0)),
    "guitar": RoleDefaults(0.0, 80.0, 0.5, -60.0, (2.0, 5.0, 10.0, 150.0)),
    "keys": RoleDefaults(-1.0, 60.0, 0.35, -60.0, None),
    "synth": RoleDefaults(-1.0, 50.0, 0.35, -60.0, None),
    "strings": RoleDefaults(-2.0, 60.0, 0.5, -60.0, None),
    "brass": RoleDefaults(-1.0, 80.0, 0.4, -60.0, (2.0, 5.0, 10.0, 150.0)),
    "other": RoleDefaults(-1.0, 40.0, 0.3, -60.0, None),
}


# --- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixSettings:
    """Everything needed to re-render a mix exactly, in real units.

    ``stems`` maps each stem's file name to its chain; ``reverb`` is the shared bus;
    ``master`` is what the bus is mastered with.
    """

    stems: dict[str, StemChain]
    reverb: ReverbParams = DEFAULT_REVERB
    master: MasterSettings = MasterSettings()

    def to_dict(self) -> dict[str, Any]:
        return {"stems": {name: _rounded(as_dict(chain)) for name, chain in self.stems.items()},
                "reverb": _rounded(as_dict(self.reverb)), "master": self.master.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "settings") -> MixSettings:
        """Validate a settings mapping (unknown keys, types and ranges give `SettingsError`)."""
        if not isinstance(data, dict):
            raise SettingsError(f"{where}: expected a JSON object")
        allowed = ("stems", "reverb", "master")
        unknown = sorted(set(data) - set(allowed), key=str)
        if unknown:
            raise SettingsError(f"{where}: unknown key {unknown[0]!r}; allowed: "
                                f"{', '.join(allowed)}")
        stems = data.get("stems")
        if not isinstance(stems, dict) or not stems:
            raise SettingsError(f"{where}.stems: expected a mapping of stem file names to "
                                "their settings")
        return cls(
            stems={str(name): validate_chain(StemChain, chain, where=f"{where}.stems.{name}")
                   for name, chain in stems.items()},
            reverb=validate(ReverbParams, data.get("reverb", {}), where=f"{where}.reverb"),
            master=MasterSettings.from_dict(data.get("master", {}), where=f"{where}.master"))


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    """Real-unit values rounded to 1e-4 (far below audibility), nested dicts kept."""
    return {k: _rounded(v) if isinstance(v, dict) else round(float(v), 4)
            for k, v in values.items()}


def read_mix_settings(path: Path) -> MixSettings:
    """Read mix settings (see `mastering.read_settings_document`)."""
    return MixSettings.from_dict(mastering.read_settings_document(path), where=path.name)


# --- defaults by role -------------------------------------------------------------------------


def stem_loudness_lufs(stem: Stem, sample_rate: int) -> float:
    """Integrated loudness of a stem as it will sound panned to the centre of a stereo mix,
    measured on at most `LOUDNESS_EXCERPT_S` of its active part (`active_excerpt`)."""
    played = _as_played(stem)
    return loudness.integrated_lufs(active_excerpt(played, sample_rate, LOUDNESS_EXCERPT_S),
                                    sample_rate)


def active_excerpt(samples: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """At most ``seconds`` of where ``samples`` (channels, samples) plays, for measuring it.

    The signal is cut into half-second hops; hops within `ACTIVE_RANGE_DB` of the loudest
    are active, and when they last longer than ``seconds`` an evenly spaced subset of them
    is kept. Returns the kept hops joined, in order (the whole signal when it is no longer
    than ``seconds`` or has no complete hop). Gated loudness ignores the silent parts anyway,
    so this estimates it from a fraction of the samples.
    """
    hop = sample_rate // 2
    n_hops = samples.shape[1] // hop
    if samples.shape[1] <= seconds * sample_rate or n_hops == 0:
        return samples
    framed = samples[:, : n_hops * hop].reshape(samples.shape[0], n_hops, hop)
    energy = np.einsum("cij,cij->i", framed, framed, dtype=np.float64)
    active = np.flatnonzero(energy >= energy.max() * 10 ** (-ACTIVE_RANGE_DB / 10))
    keep = max(1, int(seconds * sample_rate) // hop)
    if active.size > keep:
        active = active[np.linspace(0, active.size - 1, keep).round().astype(int)]
    return framed[:, active].reshape(samples.shape[0], -1)


def _as_played(stem: Stem, start: int = 0, end: int | None = None) -> np.ndarray:
    """The stem (samples ``start:end``) as its pan law plays it at the centre: stereo kept,
    mono at -3 dB per side."""
    if stem.is_stereo:
        return stem.samples[:, start:end]
    mono = stem.samples[:, start:end].mean(axis=0)
    return np.stack([mono, mono]) * np.float32(math.sqrt(0.5))


def default_chains(stems: list[Stem], sample_rate: int) -> dict[str, StemChain]:
    """Role-based starting settings: loudness-balanced gains, high-pass, compressor, pan, send.

    Each stem's gain puts it at ``MIX_LEVEL_LUFS - 10 log10(N)`` plus its role's level, so
    that N stems sum to about `MIX_LEVEL_LUFS`. Mono stems of roles with a spread alternate
    left and right; stereo stems stay at 0 (their own image).
    """
    base = MIX_LEVEL_LUFS - 10.0 * math.log10(len(stems))
    gain_range = ranges(GainParams)["gain_db"]
    chains = {}
    side = 1.0
    for stem in stems:
        role = ROLE_DEFAULTS[stem.role]
        lufs = stem_loudness_lufs(stem, sample_rate)
        gain_db = 0.0 if lufs < SILENT_STEM_LUFS else gain_range.clip(base + role.level_lu - lufs)
        pan = 0.0
        if role.pan_spread and not stem.is_stereo:
            pan, side = side * role.pan_spread, -side
        comp = CompressorParams()
        if role.compressor is not None:
            ratio, above_lu, attack_ms, release_ms = role.compressor
            threshold = min(max(base + role.level_lu + above_lu, -60.0), 0.0)
            comp = CompressorParams(threshold_db=round(threshold, 2), ratio=ratio,
                                    attack_ms=attack_ms, release_ms=release_ms)
        chains[stem.name] = StemChain(
            gain=GainParams(gain_db=round(gain_db, 2)),
            highpass=HighpassParams(freq_hz=role.highpass_hz),
            compressor=comp, pan=PanParams(pan=pan), send=SendParams(send_db=role.send_db))
    return chains


# --- rendering --------------------------------------------------------------------------------


def render_dry(samples: np.ndarray, is_stereo: bool, sample_rate: int,
               chain: StemChain) -> np.ndarray:
    """A stem's ``samples`` (channels, samples) through its chain, ``(2, samples)`` float32.

    A stereo stem runs through the effects as a pair in one pass (they process channels
    independently) and is balanced (`render.balance`); a mono one is panned.
    """
    x = samples if is_stereo else samples.mean(axis=0, keepdims=True)
    y = render.process(render.stem_plugins(chain), render.gain(x, sample_rate, chain.gain),
                       sample_rate)
    if is_stereo:
        return render.balance(y, sample_rate, chain.pan)
    return render.pan(y, sample_rate, chain.pan)


def render_stem(stem: Stem, sample_rate: int,
                chain: StemChain) -> tuple[np.ndarray, np.ndarray]:
    """One stem through its chain: (dry, send), each ``(2, samples)`` float32."""
    dry = render_dry(stem.samples, stem.is_stereo, sample_rate, chain)
    return dry, dry * np.float32(render.db_to_amp(chain.send.send_db))


def sends_reverb(chain: StemChain) -> bool:
    """Whether a stem feeds the reverb bus: its send is above the range's floor (-60 dB,
    which is off)."""
    return chain.send.send_db > SEND_OFF_DB


def render_mix(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
               reverb: ReverbParams) -> tuple[np.ndarray, list[np.ndarray]]:
    """The summed mix bus ``(2, samples)`` (dry stems plus the reverb return of their sends)
    and each processed dry stem. Stems are rendered in threads (pedalboard releases the GIL);
    the room is convolved only when some stem sends to it."""
    def one(stem: Stem) -> np.ndarray:
        return render_dry(stem.samples, stem.is_stereo, sample_rate, chains[stem.name])

    with ThreadPoolExecutor(max_workers=RENDER_THREADS) as pool:
        drys = list(pool.map(one, stems))
    bus = np.zeros((2, stems[0].samples.shape[1]), np.float32)
    sends = np.zeros_like(bus)
    for stem, dry in zip(stems, drys, strict=True):
        bus += dry
        chain = chains[stem.name]
        if sends_reverb(chain):
            sends += dry * np.float32(render.db_to_amp(chain.send.send_db))
    if any(sends_reverb(chains[s.name]) for s in stems):
        bus += render.reverb_return(sends, sample_rate, reverb)
    return bus, drys


# --- refinement through the twin --------------------------------------------------------------


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
        rows = stem.samples if stem.is_stereo else stem.samples.mean(axis=0, keepdims=True)
        items = np.stack([render.stem_chain(r[None, start:end], sample_rate, chain)[0][0]
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


def _reference_tonal(reference: Reference) -> tuple[np.ndarray, np.ndarray]:
    """The reference's mid and side third-octave balance in dB (NaN where not measured),
    shape (bands,) each."""
    bands = reference.features["bands"]
    return tuple(np.array([np.nan if v is None else v for v in bands[key]], dtype=np.float64)
                 for key in ("mid_db", "side_db"))  # type: ignore[return-value]


def _reference_bands(reference: Reference, sample_rate: int) -> tuple[Any, Any, Any, float]:
    """The reference's mid and side third-octave balance (dB), the bands that count, and its
    width in dB (side over mid power)."""
    import torch

    feats = reference.features
    mid, side = _reference_tonal(reference)
    valid = (np.isfinite(mid) & np.isfinite(side)
             & (analysis.BAND_EDGES_HZ[1] <= analysis.BAND_MAX_FRACTION_OF_NYQUIST
                * sample_rate / 2))
    valid &= mid >= np.max(np.where(valid, mid, -np.inf)) - analysis.TONAL_ERROR_RANGE_DB
    width = float(feats.get("width") or 0.0)
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


def with_level_move(chain: StemChain, move_db: float) -> StemChain:
    """``chain`` with its gain moved by ``move_db`` (clipped to the gain range) and, when its
    compressor is on, the threshold moved by as much: the same sound, that much louder."""
    comp = chain.compressor
    if comp.ratio > 1.0:
        comp = replace(comp, threshold_db=round(min(max(comp.threshold_db + move_db, -60.0),
                                                    0.0), 2))
    gain_db = ranges(GainParams)["gain_db"].clip(chain.gain.gain_db + move_db)
    return replace(chain, gain=GainParams(gain_db=round(gain_db, 2)), compressor=comp)


# --- the balance fit --------------------------------------------------------------------------


def loudest_excerpt(stems: list[Stem], sample_rate: int, seconds: float) -> tuple[int, int]:
    """Start and end sample of the loudest ``seconds`` of the stems' sum, taking the stems
    as uncorrelated (their half-second energies add), without forming the sum."""
    hop = sample_rate // 2
    total = stems[0].samples.shape[1]
    n_hops = total // hop
    energy = np.zeros(n_hops)
    for stem in stems:
        framed = stem.samples[:, : n_hops * hop].reshape(stem.samples.shape[0], n_hops, hop)
        energy += np.einsum("cij,cij->i", framed, framed, dtype=np.float64) * (
            1.0 if stem.is_stereo else 1.0 / stem.samples.shape[0])
    return analysis.loudest_span(energy, hop, total, int(seconds * sample_rate))


def stem_band_powers_db(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
                        start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Mid and side third-octave band powers (dB, `analysis.BAND_CENTERS_HZ`) of each stem
    through its chain over samples ``start:end``; shape (stems, bands) each, NaN above
    0.9 x Nyquist."""
    def one(stem: Stem) -> tuple[np.ndarray, np.ndarray]:
        dry = render_dry(stem.samples[:, start:end], stem.is_stereo, sample_rate,
                         chains[stem.name])
        return (analysis.tonal_balance_db(0.5 * (dry[0] + dry[1]), sample_rate, 0.0),
                analysis.tonal_balance_db(0.5 * (dry[0] - dry[1]), sample_rate, 0.0))

    with ThreadPoolExecutor(max_workers=RENDER_THREADS) as pool:
        mids, sides = zip(*pool.map(one, stems), strict=True)
    return np.array(mids), np.array(sides)


def fit_levels(mid_db: np.ndarray, side_db: np.ndarray, target_mid_db: np.ndarray,
               target_side_db: np.ndarray, *, prior_weight: float = FIT_PRIOR_WEIGHT,
               max_move_db: float = MAX_FIT_MOVE_DB,
               side_weight: float = FIT_SIDE_WEIGHT) -> np.ndarray:
    """Level moves (dB) that make the stems' power sum match a target band balance.

    The stems are taken as uncorrelated, so their band powers add: with moves ``g`` the
    sum's mid band power is ``10 log10 sum_i 10 ** ((mid_db[i] + g_i) / 10)`` (side alike).
    Minimised: the squared dB differences to the target over the bands that count (finite
    in both, at least `FIT_MIN_HZ`, within `FIT_RANGE_DB` of the target's and the stems'
    loudest), up to one free level offset, side bands weighted by ``side_weight``; plus
    ``prior_weight * g_i ** 2``, which keeps stems the spectrum cannot tell apart (similar
    spectra, no band of their own) at their starting balance. Moves are bounded to
    +-``max_move_db``. Started both from no move and from the non-negative least-squares
    fit of linear band powers (`scipy.optimize.nnls`); the better end wins.

    Parameters
    ----------
    mid_db, side_db : np.ndarray, shape (stems, bands)
        Each stem's band powers in dB as it plays at its starting level.
    target_mid_db, target_side_db : np.ndarray, shape (bands,)
        The target's band powers in dB, any common offset (e.g. `Analysis.tonal_mid_db`).

    Returns
    -------
    np.ndarray, shape (stems,), dB, mean zero; all zero when fewer than 4 bands count
    """
    from scipy.optimize import least_squares, nnls
    from scipy.special import logsumexp

    n = mid_db.shape[0]
    centers = analysis.BAND_CENTERS_HZ
    sum_mid = 10.0 * np.log10(np.nansum(10.0 ** (mid_db / 10.0), axis=0) + 1e-30)
    valid = (np.isfinite(target_mid_db) & np.isfinite(target_side_db)
             & np.all(np.isfinite(mid_db) & np.isfinite(side_db), axis=0) & (centers >= FIT_MIN_HZ))
    if valid.sum() < 4:
        return np.zeros(n)
    valid &= target_mid_db >= np.max(target_mid_db[valid]) - FIT_RANGE_DB
    valid &= sum_mid >= np.max(sum_mid[valid]) - FIT_RANGE_DB
    if valid.sum() < 4:
        return np.zeros(n)
    stems_db = np.concatenate([mid_db[:, valid], side_db[:, valid]], axis=1)  # (stems, 2 bands)
    target_db = np.concatenate([target_mid_db[valid], target_side_db[valid]])
    weights = np.concatenate([np.ones(valid.sum()), np.full(valid.sum(), side_weight)])
    to_nepers = math.log(10.0) / 10.0

    ridge = math.sqrt(prior_weight)

    def residuals(v: np.ndarray) -> np.ndarray:
        moves, offset = v[:-1], v[-1]
        summed = logsumexp((stems_db + moves[:, None]) * to_nepers, axis=0) / to_nepers
        return np.concatenate([weights * (summed - target_db - offset), ridge * moves])

    def jacobian(v: np.ndarray) -> np.ndarray:
        """d residual / d (moves, offset): a band's dB moves with each stem's share of it."""
        levels = (stems_db + v[:-1, None]) * to_nepers
        shares = np.exp(levels - logsumexp(levels, axis=0))  # (stems, 2 bands)
        bands = np.concatenate([shares.T, -np.ones((target_db.size, 1))], axis=1)
        prior = np.concatenate([ridge * np.eye(n), np.zeros((n, 1))], axis=1)
        return np.concatenate([weights[:, None] * bands, prior])

    relative = 10.0 ** ((stems_db - target_db) / 10.0)  # (stems, 2 bands)
    linear, _ = nnls((relative * weights).T, weights)
    positive = linear > 0
    nnls_db = 10.0 * np.log10(np.where(positive, linear, 1.0))
    nnls_db -= np.median(nnls_db[positive]) if positive.any() else 0.0
    starts = [np.zeros(n), np.where(positive, nnls_db, -max_move_db)]
    bound = np.full(n, max_move_db)
    best = None
    for moves in starts:
        moves = np.clip(moves, -bound + 1e-6, bound - 1e-6)
        offset = np.mean(residuals(np.append(moves, 0.0))[: target_db.size] / weights)
        fit = least_squares(residuals, np.append(moves, offset), jac=jacobian,
                            bounds=(np.append(-bound, -np.inf), np.append(bound, np.inf)))
        if best is None or fit.cost < best.cost:
            best = fit
    moves = best.x[:-1]
    return moves - moves.mean()


def fit_balance(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
                reference: Reference, span: tuple[int, int] | None = None
                ) -> dict[str, StemChain]:
    """Move each stem's level so that the mix's mid and side band balance matches the
    reference's (`fit_levels`), measured through the chains on samples ``span`` (default:
    the loudest `FIT_EXCERPT_S`, `loudest_excerpt`).

    With a reference track this recovers a balance in the spirit of the reference's (a
    different song is a tonal target, held near the role balance by the prior); with a
    preset it is the genre's average balance. Compressors keep their sound (their
    thresholds follow the gains, `with_level_move`).
    """
    target_mid, target_side = _reference_tonal(reference)
    start, end = span or loudest_excerpt(stems, sample_rate, FIT_EXCERPT_S)
    mid_db, side_db = stem_band_powers_db(stems, sample_rate, chains, start, end)
    moves = fit_levels(mid_db, side_db, target_mid, target_side)
    return {s.name: with_level_move(chains[s.name], float(m))
            for s, m in zip(stems, moves, strict=True)}


def network_chains(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
                   reference: Reference, span: tuple[int, int] | None = None
                   ) -> dict[str, StemChain]:
    """``chains`` with each stem's level, EQ and balance from the stem network
    (`automix.model.stem_net`), which hears every stem on samples ``span`` (default: the
    loudest `FIT_EXCERPT_S`).

    Levels: the network's gains relative to each other, offset so that the stems' summed
    power on the excerpt stays what ``chains`` give it (the bus keeps its level; compressor
    thresholds follow, `with_level_move`). EQ: its gains of at least `MIN_EQ_MOVE_DB`
    (smaller ones stay at 0 dB: inaudible, and a 0-dB section is not rendered) and peak 2's
    frequency. Balance: for stereo stems only (mono stems keep their role's pan). Stems
    quieter than `SILENT_STEM_LUFS` in the excerpt (mean-square level) keep ``chains``.
    """
    from automix.model import stem_net

    start, end = span or loudest_excerpt(stems, sample_rate, FIT_EXCERPT_S)
    grams = np.stack([stem_net.band_grams(_as_played(s, start, end), sample_rate)[0]
                      for s in stems])
    power = grams[:, :2].sum((1, 2)) / 2
    active = 10.0 * np.log10(power + 1e-30) > SILENT_STEM_LUFS
    if not active.any():
        return chains
    mid, side = _reference_tonal(reference)
    predicted = stem_net.predict(stem_net.load_model(), grams, [s.role for s in stems],
                                 stem_net.reference_db(mid, side), active)
    start_db = np.array([chains[s.name].gain.gain_db for s in stems])
    moves = np.array([p.gain.gain_db for p in predicted]) - start_db
    summed = [10.0 * np.log10(np.sum((power * 10.0 ** ((start_db + m) / 10.0))[active]))
              for m in (np.zeros_like(moves), moves)]
    moves += summed[0] - summed[1]
    out = dict(chains)
    for stem, p, move, on in zip(stems, predicted, moves, active, strict=True):
        if not on:
            continue
        chain = with_level_move(chains[stem.name], float(move))
        eq = replace(p.eq, **{k: (round(v, 2) if abs(v) >= MIN_EQ_MOVE_DB else 0.0)
                              if k.endswith("_db") else round(v, 1)
                              for k, v in as_dict(p.eq).items()})
        pan = PanParams(pan=round(p.pan.pan, 3)) if stem.is_stereo else chain.pan
        out[stem.name] = replace(chain, eq=eq, pan=pan)
    return out


def suggest_mix(stems: list[Stem], sample_rate: int, reference: Reference, *,
                method: str = DEFAULT_METHOD, fit: bool = True, refine_steps: int = 0,
                time_budget_s: float = REFINE_BUDGET_S) -> dict[str, StemChain]:
    """Per-stem settings: role defaults (`default_chains`); with ``method`` "network", each
    stem's level, EQ and balance from the stem network (`network_chains`); levels fitted to
    the reference's band balance (`fit_balance`, unless ``fit`` is False); then refined
    through the twin (`refine`) when ``refine_steps`` > 0 (off by default: on held-out real
    multitracks it moved mixes away from the real ones, 5.3 -> 5.7 dB log-mel, and it costs
    seconds)."""
    if method not in mastering.METHODS:
        raise SettingsError(f"unknown method {method!r}; choose {', '.join(mastering.METHODS)}")
    chains = default_chains(stems, sample_rate)
    span = loudest_excerpt(stems, sample_rate, FIT_EXCERPT_S)
    if method == "network":
        chains = network_chains(stems, sample_rate, chains, reference, span)
    if fit:
        chains = fit_balance(stems, sample_rate, chains, reference, span)
    if refine_steps <= 0:
        return chains
    return refine(stems, sample_rate, chains, DEFAULT_REVERB, reference, steps=refine_steps,
                  time_budget_s=time_budget_s)


# --- the whole mix ----------------------------------------------------------------------------


@dataclass
class MixResult:
    audio: Audio  # the mastered mix
    settings: MixSettings
    method: str  # how the settings were suggested ("dsp" or "network"), or "settings"
    stems: list[Stem]
    processed: list[np.ndarray]  # each stem after its chain, (2, samples), before the master
    master: MasterResult
    warnings: list[AudioWarning]
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        report = self.master.to_dict()
        sr = self.audio.sample_rate
        return {
            **report,
            "method": self.method,
            "settings": self.settings.to_dict(),
            "stems": [{"name": s.name, "role": s.role, "role_from": s.role_source,
                       "channels": int(s.samples.shape[0]), "stereo": s.is_stereo,
                       "input_lufs": round(stem_loudness_lufs(s, sr), 2)} for s in self.stems],
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings]
            + report["warnings"],
            "timings_s": {k: round(v, 3) for k, v in {**self.timings_s,
                                                        **self.master.timings_s}.items()},
        }


def mix(stems: list[Stem], sample_rate: int, reference: Reference, target: Target, *,
        method: str = DEFAULT_METHOD, settings: MixSettings | None = None,
        amounts: dict[str, float] | None = None,
        load_warnings: list[AudioWarning] | None = None, refine_steps: int = 0) -> MixResult:
    """Mix ``stems`` toward ``reference`` (settings by `suggest_mix` with ``method`` and
    ``refine_steps``) and master the bus at ``target``; or render given ``settings``
    exactly. ``amounts`` (see `mastering.parse_amounts`) scale every stem's and the
    master's settings toward neutral (eq, dynamics; width also centres the pans)."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if settings is None:
        chains = suggest_mix(stems, sample_rate, reference, method=method,
                             refine_steps=refine_steps)
        reverb, master_settings = DEFAULT_REVERB, None
    else:
        names = [s.name for s in stems]
        missing = [n for n in names if n not in settings.stems]
        extra = [n for n in settings.stems if n not in names]
        if missing or extra:
            raise SettingsError(
                "settings do not match the stems: "
                + (f"no settings for {missing[0]!r}" if missing else f"no stem {extra[0]!r}"))
        chains, reverb, master_settings, method = (settings.stems, settings.reverb,
                                                   settings.master, "settings")
    if amounts is not None and any(a != 1.0 for a in amounts.values()):
        chains = {name: mastering.scale_chain(chain, amounts) for name, chain in chains.items()}
    timings["suggest_mix"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bus, processed = render_mix(stems, sample_rate, chains, reverb)
    timings["render_mix"] = time.perf_counter() - t0
    result = mastering.master(Audio(bus, sample_rate), reference, target,
                              settings=master_settings, amounts=amounts)
    mix_settings = MixSettings(stems=dict(chains), reverb=reverb, master=result.settings)
    return MixResult(result.audio, mix_settings, method, stems, processed, result,
                     list(load_warnings or []), timings)


def mix_folder(stems_dir: Path, *, reference: str = "pop", target: str | None = None,
               ceiling_dbtp: float | None = None, output: Path | None = None,
               file_format: str = "wav", bit_depth: int = 24, method: str = DEFAULT_METHOD,
               settings_path: Path | None = None,
               amounts: dict[str, float] | None = None, force: bool = False,
               preview: bool = False, report_path: Path | None = None,
               stems_out: Path | None = None, refine_steps: int = 0) -> dict[str, Any]:
    """Mix one folder of stems end to end; return the JSON report (also written as the sidecar).

    Writes the mix (default ``<folder>_mix.<fmt>`` beside the folder), its sidecar (settings
    in real units, re-renderable with ``settings_path``; measurements; warnings), and
    optionally previews, an HTML report and the processed stems (``stems_out``, one
    ``<stem name>.<fmt>`` each, after its chain and before the master, without the reverb).
    Nothing is written when anything before the write fails.
    """
    from automix import audio as audio_io

    stems_dir = Path(stems_dir)
    mastering.check_format(file_format, bit_depth)
    default = stems_dir.with_name(f"{stems_dir.name}_mix.{file_format}")
    out_path, sidecar = mastering.output_paths(stems_dir, output or default, file_format, force)
    for path in (report_path, stems_out):
        if path is not None and path.exists() and not force and path.is_file():
            raise OutputError(f"{path}: exists; use --force to overwrite")
    stems, sample_rate, warnings = load_stems(stems_dir)
    stem_paths = []
    if stems_out is not None:
        if stems_out.exists() and not stems_out.is_dir():
            raise OutputError(f"{stems_out}: is a file; give a folder for the processed stems")
        stem_paths = [stems_out / f"{Path(s.name).stem}.{file_format}" for s in stems]
        existing = [p for p in stem_paths if p.exists()]
        if existing and not force:
            raise OutputError(f"{existing[0]}: exists; use --force to overwrite")
    for path in (out_path, sidecar, report_path, *stem_paths):  # a new file there is a stem
        if path is not None and path.parent.resolve() == stems_dir.resolve():
            raise OutputError(f"{path}: refusing to write over the input (the stems folder)")
    settings = read_mix_settings(settings_path) if settings_path else None
    ref = mastering.resolve_reference(reference, ceiling_dbtp=ceiling_dbtp)
    tgt = mastering.resolve_target(target, ref, ceiling_dbtp=ceiling_dbtp)
    result = mix(stems, sample_rate, ref, tgt, method=method, settings=settings,
                 amounts=amounts, load_warnings=warnings, refine_steps=refine_steps)
    with audio_io.all_or_nothing() as written:  # a failure below removes what this run wrote
        written.append(audio_io.save(out_path, result.audio, bit_depth=bit_depth,
                                     file_format=file_format))
        report = {"automix": __version__, "input": str(stems_dir), "output": str(out_path),
                  **result.to_dict()}
        if stems_out is not None:
            if not stems_out.is_dir():
                stems_out.mkdir(parents=True)
                written.append(stems_out)
            for path, dry in zip(stem_paths, result.processed, strict=True):
                written.append(audio_io.save(path, Audio(dry, sample_rate), bit_depth=bit_depth,
                                             file_format=file_format))
            report["stems_out"] = [str(p) for p in stem_paths]
        before = Audio(np.sum([_as_played(s) for s in stems], axis=0), sample_rate) \
            if preview else None
        mastering.write_extras(report, written, out_path=out_path, sidecar=sidecar,
                               reference=ref,
                               previews_of=(before, result.audio) if before else None,
                               report_path=report_path)
    report["sidecar"] = str(sidecar)
    return report


def suggest_mix_file(stems_dir: Path, output: Path, *, reference: str = "pop",
                     target: str | None = None, ceiling_dbtp: float | None = None,
                     method: str = DEFAULT_METHOD, amounts: dict[str, float] | None = None,
                     force: bool = False) -> dict[str, Any]:
    """Suggest mix settings (JSON or YAML by suffix): every stem's chain, the reverb and the
    master, in real units, with the measurements behind them; `mix --settings` renders it."""
    if output.exists() and not force:
        raise OutputError(f"{output}: exists; use --force to overwrite")
    if output.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise SettingsError(f"{output}: settings files end in .json, .yaml or .yml")
    stems, sample_rate, warnings = load_stems(Path(stems_dir))
    ref = mastering.resolve_reference(reference, ceiling_dbtp=ceiling_dbtp)
    tgt = mastering.resolve_target(target, ref, ceiling_dbtp=ceiling_dbtp)
    full = mix(stems, sample_rate, ref, tgt, method=method, amounts=amounts,
               load_warnings=warnings).to_dict()
    document = {
        "automix": __version__, "input": str(stems_dir), "method": full["method"],
        "reference": {k: full["reference"][k] for k in ("name", "kind")},
        "target": full["target"], "settings": full["settings"], "stems": full["stems"],
        "measurements": {"mix_bus": full["measurements"]["input"],
                         "reference": full["reference"]["features"]},
        "expected_result": full["measurements"]["output"], "warnings": full["warnings"],
    }
    mastering.write_document(output, document)
    return document
