"""The balance of a mix: where stems start by role, and their levels fitted to the reference.

`default_chains` puts every stem at a loudness-balanced level for its role (with its role's
high-pass, compressor, pan spread and send); `network_chains` lets the stem network set each
stem's level, EQ and balance; `fit_balance` moves the levels so that the mix's mid and side
third-octave band powers match the reference's (`fit_levels`: stems taken as uncorrelated,
so band powers add; least squares in dB with a ridge toward the role balance). A level move
keeps a stem's compressor sounding the same (`with_level_move`). Whatever suggested them, the
levels end within each role's plausible share of the mix (wider where the reference clearly
asks for more or less of a stem than any genre preset does, `reference_asks_db`) and near the
stems' input balance (`plausible_levels`), and ``keep_balance`` moves them back toward the
input balance (`keep_input_balance`). Silent stems (`Stem.silent`) are passed through (a
neutral chain at unit gain) and take no part in any of this: the others' settings are what
they would be without them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from automix import analysis, loudness
from automix.mixing.render import RENDER_THREADS, render_dry
from automix.mixing.roles import PAIR_PAN, ROLE_DEFAULTS, pair_side, share_range_lu
from automix.mixing.stems import (
    SILENT_STEM_LUFS,
    Stem,
    as_played,
    loudest_excerpt,
    sounding,
    stem_loudness_lufs,
)
from automix.params import (
    EFFECTS,
    CompressorParams,
    GainParams,
    HighpassParams,
    PanParams,
    ReverbParams,
    SendParams,
    StemChain,
    as_dict,
    ranges,
)
from automix.presets import BANDS_KEY, list_genres
from automix.settings import Reference

MIX_LEVEL_LUFS = -20.0  # the balanced stems sum to about this loudness before the master
FIT_EXCERPT_S = 30.0  # the balance fit listens to the loudest excerpt of this length
FIT_MIN_HZ = 40.0  # bands below this do not count in the fit (few bins, short excerpts)
FIT_RANGE_DB = 60.0  # nor bands this far below the reference's loudest (or the stems')
MIN_EQ_MOVE_DB = 0.5  # the stem network's EQ moves smaller than this are left out
MAX_FIT_MOVE_DB = 12.0  # the fit moves a stem's level at most this far from its role balance
FIT_PRIOR_WEIGHT = 0.05  # per dB squared of a level move, against dB squared of band error
FIT_SIDE_WEIGHT = 0.3  # side bands count this much against mid bands
MAX_INPUT_MOVE_DB = 15.0  # no stem ends further than this from its input level, relative to
# the others (its gain minus one offset common to all); the role shares: `roles.ROLE_SHARE_LU`


def default_chains(stems: list[Stem], sample_rate: int) -> dict[str, StemChain]:
    """Role-based starting settings: loudness-balanced gains, high-pass, compressor, pan, send.

    Each stem's gain puts it at ``MIX_LEVEL_LUFS - 10 log10(N)`` plus its role's level, so
    that N stems sum to about `MIX_LEVEL_LUFS`. Mono stems of roles with a spread alternate
    left and right; stereo stems stay at 0 (their own image). Silent stems (`Stem.silent`)
    get a neutral chain (unit gain: passed through) and do not count in N.
    """
    base = MIX_LEVEL_LUFS - 10.0 * math.log10(max(len(sounding(stems)), 1))
    gain_range = ranges(GainParams)["gain_db"]
    chains = {}
    side = 1.0
    pairs = paired(stems)
    for stem in stems:
        if stem.silent:
            chains[stem.name] = StemChain()
            continue
        role = ROLE_DEFAULTS[stem.role]
        lufs = stem_loudness_lufs(stem, sample_rate)
        gain_db = 0.0 if lufs < SILENT_STEM_LUFS else gain_range.clip(base + role.level_lu - lufs)
        pan = 0.0
        if stem.name in pairs and not stem.is_stereo:
            pan = pairs[stem.name] * PAIR_PAN
        elif role.pan_spread and not stem.is_stereo:
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




def paired(stems: list[Stem]) -> dict[str, float]:
    """The side (-1 left, +1 right) of each stem that is one of an L/R pair ("Gtr L" and "Gtr
    R", `roles.pair_side`) whose other side is among ``stems``."""
    sides = {s.name: pair_side(s.name) for s in stems}
    found = {v for v in sides.values() if v is not None}
    return {name: v[1] for name, v in sides.items()
            if v is not None and (v[0], -v[1]) in found}


def plausible_levels(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
                     span: tuple[int, int] | None = None, *,
                     reference: Reference | None = None,
                     heard: dict[str, Heard] | None = None) -> dict[str, StemChain]:
    """``chains`` with the smallest level moves that put every sounding stem within its role's
    share of the mix (`roles.share_range_lu`: its loudness minus the others' sum's, `share_model`),
    widened where ``reference`` clearly asks for it (`reference_asks_db`; none without one),
    and within `MAX_INPUT_MOVE_DB` of its input level relative to the others (its gain minus a
    common offset). Loudness and mid band powers are measured through each chain on samples
    ``span`` (default: the loudest `FIT_EXCERPT_S`); a level move moves it as much
    (`with_level_move` keeps the compressor's sound); stems are taken as uncorrelated. Soft
    bounds solved by least squares, so a folder whose roles cannot all be satisfied (32 lead
    vocals) gets the nearest balance. Stems quieter than `SILENT_STEM_LUFS` in the excerpt keep
    their chains. ``heard`` (`hear_stems` on the same samples) spares the renders of the stems
    whose chains differ from the ones heard only by a level move (`Heard.moved_to`)."""
    from scipy.optimize import least_squares

    start, end = span or loudest_excerpt(sounding(stems) or stems, sample_rate, FIT_EXCERPT_S)
    candidates = audible(stems, start, end)
    heard_by_name = hear_stems(candidates, sample_rate, chains, start, end, heard=heard)
    measured = [(heard_by_name[s.name].lufs_at_unit_gain(sample_rate),
                 heard_by_name[s.name].mid_db) for s in candidates]
    kept = [(s, m) for s, m in zip(candidates, measured, strict=True)
            if math.isfinite(m[0]) and m[0] + chains[s.name].gain.gain_db > SILENT_STEM_LUFS]
    if len(kept) < 2:
        return dict(chains)
    heard = [s for s, _ in kept]
    lufs = np.array([m[0] for _, m in kept])
    gains = np.array([chains[s.name].gain.gain_db for s in heard])
    asks = (np.zeros(len(heard)) if reference is None else reference_asks_db(
        np.array([m[1] for _, m in kept]), reference_tonal(reference)[0], genre_tonal_mid_db()))
    low, high = np.array([share_range_lu(s.role, len(heard), float(a))
                          for s, a in zip(heard, asks, strict=True)]).T
    weight = 10.0  # per LU outside a range, against 1 per dB of move
    shares = share_model(lufs, [heard_by_name[s.name] for s in heard])

    def residuals(v: np.ndarray) -> np.ndarray:
        moves, offset = v[:-1], v[-1]
        share = shares(gains + moves)
        drift = np.abs(gains + moves - offset) - MAX_INPUT_MOVE_DB
        return np.concatenate([moves, weight * np.maximum(share - high, 0.0),
                               weight * np.maximum(low - share, 0.0),
                               weight * np.maximum(drift, 0.0)])

    fit = least_squares(residuals, np.append(np.zeros(len(heard)), np.median(gains)))
    moves = np.where(np.abs(fit.x[:-1]) < 0.05, 0.0, fit.x[:-1])
    return {**chains, **{s.name: with_level_move(chains[s.name], float(m))
                         for s, m in zip(heard, moves, strict=True) if m}}


def share_model(lufs: np.ndarray, heard: list[Heard]) -> Callable[[np.ndarray], np.ndarray]:
    """Each stem's share of the mix (its loudness minus the rest's, LU) as a function of the
    stems' gains (dB), from their 400-ms block powers heard at the gains of their chains.

    A stem's loudness is its own gated loudness (``lufs``, at unit gain) plus its gain. The
    rest's is gated as the rest actually plays: the blocks the sum of the other stems passes
    BS.1770's gate with at the chains' gains (held there: the moves are small), averaging
    each other stem's power over those blocks, so a stem that plays now and then counts for
    the blocks it plays in, not for its own loudness (which would make the rest 2-3 LU too
    loud beside sparse stems). Stems are taken as uncorrelated."""
    at_chains = np.stack([loudness.gating_blocks(h.hops) for h in heard])
    unit = at_chains * 10.0 ** (-np.array([h.chain.gain.gain_db for h in heard]) / 10.0)[:, None]
    rest_means = np.zeros((len(heard), len(heard)))
    for i in range(len(heard)):
        rest = np.delete(at_chains, i, axis=0).sum(axis=0)
        blocks = loudness.gate(rest)
        picked = unit[:, blocks] if blocks.any() else unit
        rest_means[i] = picked.mean(axis=1)
        rest_means[i, i] = 0.0

    def shares(gains_db: np.ndarray) -> np.ndarray:
        rest = rest_means @ (10.0 ** (np.asarray(gains_db) / 10.0))
        return (lufs + gains_db) - loudness.LOUDNESS_OFFSET_DB - 10.0 * np.log10(
            np.maximum(rest, 1e-30))

    return shares


def keep_input_balance(stems: list[Stem], chains: dict[str, StemChain],
                       amount: float) -> dict[str, StemChain]:
    """``chains`` with each sounding stem's gain moved ``amount`` (0..1) of the way to the
    stems' mean gain: at 1 every stem gets the same gain, so the stems keep the relative
    levels they arrived with (a rough mix); at 0 the suggestion stands. Compressors follow
    (`with_level_move`)."""
    heard = sounding(stems)
    if amount <= 0.0 or len(heard) < 2:
        return dict(chains)
    mean_db = float(np.mean([chains[s.name].gain.gain_db for s in heard]))
    return {**chains, **{s.name: with_level_move(
        chains[s.name], amount * (mean_db - chains[s.name].gain.gain_db)) for s in heard}}


def with_level_move(chain: StemChain, move_db: float) -> StemChain:
    """``chain`` with its gain moved by ``move_db`` (clipped to the gain range) and, when its
    compressor is on, the threshold moved by as much: the same sound, that much louder."""
    comp = chain.compressor
    if comp.ratio > 1.0:
        comp = replace(comp, threshold_db=round(min(max(comp.threshold_db + move_db, -60.0),
                                                    0.0), 2))
    gain_db = ranges(GainParams)["gain_db"].clip(chain.gain.gain_db + move_db)
    return replace(chain, gain=GainParams(gain_db=round(gain_db, 2)), compressor=comp)



@dataclass(frozen=True)
class Heard:
    """One stem as it plays through ``chain`` on an excerpt: what the balance fit and the
    plausible levels measure of it (`hear_stems`).

    Attributes
    ----------
    chain : StemChain, the chain it was rendered through
    hops : tuple of np.ndarray, `loudness.hop_energy` of the rendered excerpt (the 100-ms
        K-weighted energies integrated loudness is gated from)
    mid_db, side_db : np.ndarray, shape (bands,), mid and side third-octave band powers in dB
        (`analysis.tonal_balance_db` at loudness 0), NaN above 0.9 x Nyquist
    """

    chain: StemChain
    hops: tuple[np.ndarray, np.ndarray]
    mid_db: np.ndarray
    side_db: np.ndarray

    def lufs_at_unit_gain(self, sample_rate: int) -> float:
        """The stem's integrated loudness through its chain at 0 dB of gain, LUFS."""
        return loudness.integrated_of_hops(self.hops, sample_rate) - self.chain.gain.gain_db

    def moved_to(self, chain: StemChain) -> Heard | None:
        """What the stem measures through ``chain`` when that is this chain moved in level
        (`with_level_move`: the gain, and a compressor's threshold with it), without
        rendering: every energy scaled by the move; None for any other change. The
        threshold's rounding and the gain's may part by 0.01 dB: the gain reduction moves
        by less than that."""
        move = chain.gain.gain_db - self.chain.gain.gain_db
        comp = chain.compressor
        if comp.ratio > 1.0 and abs(comp.threshold_db - self.chain.compressor.threshold_db
                                    - move) > 0.011:
            return None  # a threshold held at its range's end: the compressor sounds otherwise
        unmoved = replace(chain, gain=self.chain.gain, compressor=replace(
            comp, threshold_db=self.chain.compressor.threshold_db))
        if unmoved != self.chain:
            return None
        energy, bounds = self.hops
        return Heard(chain, (energy * 10.0 ** (move / 10.0), bounds), self.mid_db + move,
                     self.side_db + move)


def hear_stems(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
               start: int, end: int, *, heard: dict[str, Heard] | None = None
               ) -> dict[str, Heard]:
    """Each stem rendered through its chain over samples ``start:end`` (in threads) and
    measured once: its `Heard`, by name. A stem in ``heard`` (measured on the same samples)
    whose chain differs from the one heard there only by a level move is not rendered again
    (`Heard.moved_to`)."""
    reused = {s.name: h for s in stems
              if (h := (heard or {}).get(s.name)) and (h := h.moved_to(chains[s.name]))}

    def one(stem: Stem) -> Heard:
        chain = chains[stem.name]
        dry = render_dry(stem.read(start, end), stem.is_stereo, sample_rate, chain)
        return Heard(chain, loudness.hop_energy(loudness.weighted_power(dry, sample_rate),
                                                sample_rate),
                     analysis.tonal_balance_db(0.5 * (dry[0] + dry[1]), sample_rate, 0.0),
                     analysis.tonal_balance_db(0.5 * (dry[0] - dry[1]), sample_rate, 0.0))

    todo = [s for s in stems if s.name not in reused]
    with ThreadPoolExecutor(max_workers=RENDER_THREADS) as pool:
        return {**reused, **dict(zip([s.name for s in todo], pool.map(one, todo), strict=True))}


def audible(stems: list[Stem], start: int, end: int) -> list[Stem]:
    """The stems the balance hears over samples ``start:end``: the sounding ones
    (`stems.sounding`) louder there than `SILENT_STEM_LUFS` (mean-square level,
    `excerpt_level_db`)."""
    return [s for s in sounding(stems) if excerpt_level_db(s, start, end) > SILENT_STEM_LUFS]


def stem_band_powers_db(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
                        start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Mid and side third-octave band powers (dB, `analysis.BAND_CENTERS_HZ`) of each stem
    through its chain over samples ``start:end``; shape (stems, bands) each, NaN above
    0.9 x Nyquist."""
    heard = hear_stems(stems, sample_rate, chains, start, end)
    return (np.array([heard[s.name].mid_db for s in stems]),
            np.array([heard[s.name].side_db for s in stems]))


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
                reference: Reference, span: tuple[int, int] | None = None, *,
                heard: dict[str, Heard] | None = None) -> dict[str, StemChain]:
    """Move each stem's level so that the mix's mid and side band balance matches the
    reference's (`fit_levels`), measured through the chains on samples ``span`` (default:
    the loudest `FIT_EXCERPT_S`, `loudest_excerpt`).

    With a reference track this recovers a balance in the spirit of the reference's (a
    different song is a tonal target, held near the role balance by the prior); with a
    preset it is the genre's average balance. Compressors keep their sound (their
    thresholds follow the gains, `with_level_move`). Silent stems, and stems quieter than
    `SILENT_STEM_LUFS` in the excerpt (mean-square level: the fit cannot hear them), keep
    ``chains``. ``heard`` (`hear_stems` on the same samples) spares the renders.
    """
    target_mid, target_side = reference_tonal(reference)
    start, end = span or loudest_excerpt(sounding(stems) or stems, sample_rate, FIT_EXCERPT_S)
    fitted = audible(stems, start, end)
    if len(fitted) < 2:
        return dict(chains)
    heard = hear_stems(fitted, sample_rate, chains, start, end, heard=heard)
    mid_db = np.array([heard[s.name].mid_db for s in fitted])
    side_db = np.array([heard[s.name].side_db for s in fitted])
    moves = fit_levels(mid_db, side_db, target_mid, target_side)
    return {**chains, **{s.name: with_level_move(chains[s.name], float(m))
                         for s, m in zip(fitted, moves, strict=True)}}


def excerpt_level_db(stem: Stem, start: int, end: int) -> float:
    """A stem's mean-square level as it plays over samples ``start:end``, dB (both channels'
    powers summed, as `network_chains` measures it)."""
    played = as_played(stem, start, end)
    power = float(np.einsum("ij,ij->", played, played, dtype=np.float64)) / max(end - start, 1)
    return 10.0 * math.log10(power + 1e-30)


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
    frequency. Balance: for stereo stems only (mono stems keep their role's pan). Silent
    stems (`Stem.silent`) are not heard by the network; they and stems quieter than
    `SILENT_STEM_LUFS` in the excerpt (mean-square level) keep ``chains``.
    """
    from automix.model import stem_net

    stems = sounding(stems)
    if not stems:
        return dict(chains)
    start, end = span or loudest_excerpt(stems, sample_rate, FIT_EXCERPT_S)
    with ThreadPoolExecutor(max_workers=RENDER_THREADS) as pool:  # numpy's FFT frees the GIL
        grams = np.stack(list(pool.map(
            lambda s: stem_net.band_grams(as_played(s, start, end), sample_rate)[0], stems)))
    power = grams[:, :2].sum((1, 2)) / 2
    active = 10.0 * np.log10(power + 1e-30) > SILENT_STEM_LUFS
    if not active.any():
        return chains
    mid, side = reference_tonal(reference)
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




def author_chains(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain],
                  span: tuple[int, int] | None = None, *, balance: bool = True
                  ) -> dict[str, StemChain]:
    """``chains`` with each stem's level, pan, reverb send and compressor from the author
    model (`automix.model.author_net`: what the authors of real songs did with their dry
    parts), which hears every sounding stem on samples ``span`` (default: the loudest
    `FIT_EXCERPT_S`; `author_predictions`).

    Levels: the stems keep the balance they arrived in, moved by the model's relative gains;
    offset so that the bus keeps the power ``chains`` give it. Pans: the model's distance from
    the centre, on the side ``chains`` chose (stems the role rule leaves centred alternate,
    right first). Sends: the model's, off under `author_net.SEND_OFF_DB`. Compressor: the
    model's where it says the authors would have one (its threshold relative to the stem's
    level as it plays after the gain), else off. EQ (with the high-pass): neutral where the
    training songs' authors mostly left it off (`AuthorModel.uses`), else ``chains``'. Without
    ``balance`` (a reference song, whose balance the stem network matched in ``chains``), the
    levels, pans and EQ stay ``chains``' and the model sets only what it learned: the sends,
    and the compressors where it trusts its compressor decision (`AuthorModel.trusts`; else
    ``chains``' stay). Silent stems keep ``chains``."""
    from automix.model import author_net

    heard = sounding(stems)
    if not heard:
        return dict(chains)
    start, end = span or loudest_excerpt(heard, sample_rate, FIT_EXCERPT_S)
    model = author_net.load_model()
    _, found = author_predictions(heard, sample_rate, start, end)
    neutral = {group: EFFECTS[group]() for group in author_net.EFFECT_GROUPS["eq"]
               if not model.uses("eq")}
    moves = np.zeros(len(heard))  # without ``balance`` the levels stay ``chains``'
    if balance:
        levels = np.array([excerpt_level_db(s, start, end) for s in heard])
        start_db = np.array([chains[s.name].gain.gain_db for s in heard])
        wanted = np.array([f.gain_db for f in found])
        offset = (10.0 * np.log10(np.sum(10.0 ** ((levels + start_db) / 10.0)))
                  - 10.0 * np.log10(np.sum(10.0 ** ((levels + wanted) / 10.0))))
        moves = offset + wanted - start_db
    out = dict(chains)
    side = 1.0
    send_floor = ranges(SendParams)["send_db"].min
    threshold = ranges(CompressorParams)["threshold_db"]
    for stem, f, move in zip(heard, found, moves, strict=True):
        chain = with_level_move(chains[stem.name], float(move)) if balance else chains[stem.name]
        sign = math.copysign(1.0, chain.pan.pan) if chain.pan.pan else side
        if not chain.pan.pan:
            side = -side
        send = f.send_db if f.send_db >= author_net.SEND_OFF_DB else send_floor
        comp = CompressorParams() if balance or model.trusts("comp_on") else chain.compressor
        if f.comp_ratio > 1.0:
            heard_db = compressor_input_db(stem, sample_rate, start, end) + chain.gain.gain_db
            comp = CompressorParams(
                threshold_db=round(threshold.clip(heard_db + f.comp_threshold_db), 2),
                ratio=round(f.comp_ratio, 2), attack_ms=round(f.comp_attack_ms, 1),
                release_ms=round(f.comp_release_ms, 1))
        placed = {"pan": PanParams(pan=round(sign * f.pan_amount, 3)), **neutral} \
            if balance else {}
        out[stem.name] = replace(chain, send=SendParams(send_db=round(send, 1)),
                                 compressor=comp, **placed)
    return out


def compressor_input_db(stem: Stem, sample_rate: int, start: int, end: int) -> float:
    """A stem's level per channel while it plays on samples ``start:end``, as its compressor
    hears it before the gain (`author_net.level_db`; a mono stem's channels folded, as the
    chain folds them), dB."""
    from automix.model import author_net

    raw = stem.read(start, end)
    return author_net.level_db(raw if stem.is_stereo else raw.mean(axis=0, keepdims=True),
                               sample_rate)


def author_room(stems: list[Stem], sample_rate: int, base: ReverbParams,
                span: tuple[int, int] | None = None) -> ReverbParams:
    """The shared room the author model hears the stems in (`author_net.room`: ``base``
    with the predicted decay, pre-delay and damping), on ``span`` as `author_chains`."""
    from automix.model import author_net

    heard = sounding(stems)
    if not heard:
        return base
    start, end = span or loudest_excerpt(heard, sample_rate, FIT_EXCERPT_S)
    return author_net.room(author_predictions(heard, sample_rate, start, end)[1], base)


_PREDICTED: list = []  # the last `author_predictions`: (key, result)


def author_predictions(stems: list[Stem], sample_rate: int, start: int, end: int):
    """The author model's `stem_features` of ``stems`` on samples ``start:end`` and its
    `author_net.AuthorSettings` for each, ``(features, settings)``. A mix asks three times
    (the chains, the room, the motivation): the last answer is kept, keyed by the stems'
    names, the span and a digest of the samples heard."""
    import hashlib

    from automix.model import author_net

    excerpts = author_excerpts(stems, start, end)
    digest = hashlib.blake2b(digest_size=16)
    for x in excerpts:
        digest.update(np.ascontiguousarray(x).tobytes())
    key = (tuple(s.name for s in stems), tuple(s.role for s in stems), start, end,
           sample_rate, digest.hexdigest())
    last = _PREDICTED[0] if _PREDICTED else None  # one read: another mix may replace it
    if last is not None and last[0] == key:
        return last[1]
    features = author_net.stem_features(excerpts, [s.role for s in stems], sample_rate)
    result = (features, author_net.predict_features(author_net.load_model(), features))
    _PREDICTED[:] = [(key, result)]
    return result


def author_excerpts(stems: list[Stem], start: int, end: int) -> list[np.ndarray]:
    """Each stem's samples ``start:end`` as the author model hears them: as played
    (`as_played`), ``(2, end - start)``."""
    return [np.broadcast_to(as_played(s, start, end), (2, end - start)) for s in stems]


def reference_asks_db(mid_db: np.ndarray, reference_mid_db: np.ndarray,
                      genre_mid_db: np.ndarray) -> np.ndarray:
    """What a reference asks of each stem's share of the mix (dB; `roles.share_range_lu` turns
    a clear ask into a wider range): how far the reference's mid band balance, averaged over
    the stem's bands less averaged over the rest's, lies beyond the span of the genres'.

    Each stem's bands are its band-power distribution (powers over their sum), the rest's that
    of the power sum of the other stems: a stem's share is its loudness against the rest, so
    a reference asks more of it when it holds more in the stem's bands than in the others'
    (a loudness offset, which tonal balances keep within a few dB, asks nothing). That
    contrast is measured for the reference and for each genre; the ask is the reference's
    distance beyond the highest genre (positive) or the lowest (negative), 0 within the span:
    any one genre's balance asks nothing. Bands count where finite in all, at least
    `FIT_MIN_HZ`, and within `FIT_RANGE_DB` of the reference's loudest.

    Parameters
    ----------
    mid_db : np.ndarray, shape (stems, bands)
        Each stem's mid band powers in dB as it plays in the mix (`analysis.BAND_CENTERS_HZ`).
    reference_mid_db : np.ndarray, shape (bands,)
        The reference's mid balance (`Analysis.tonal_mid_db`).
    genre_mid_db : np.ndarray, shape (genres, bands)
        The genres' mid balances (`genre_tonal_mid_db`); none: no ask.

    Returns
    -------
    np.ndarray, shape (stems,), dB; all zero when fewer than 4 bands count
    """
    n = mid_db.shape[0]
    valid = (np.isfinite(reference_mid_db) & np.all(np.isfinite(genre_mid_db), axis=0)
             & np.all(np.isfinite(mid_db), axis=0) & (analysis.BAND_CENTERS_HZ >= FIT_MIN_HZ))
    if genre_mid_db.shape[0] == 0 or valid.sum() < 4:
        return np.zeros(n)
    valid &= reference_mid_db >= np.max(reference_mid_db[valid]) - FIT_RANGE_DB
    power = 10.0 ** (mid_db[:, valid] / 10.0)
    rest = power.sum(axis=0) - power
    contrast = (power / np.maximum(power.sum(axis=1, keepdims=True), 1e-30)
                - rest / np.maximum(rest.sum(axis=1, keepdims=True), 1e-30))  # (stems, bands)
    asked = contrast @ reference_mid_db[valid]
    genres = contrast @ genre_mid_db[:, valid].T  # (stems, genres)
    highest, lowest = genres.max(axis=1), genres.min(axis=1)
    return np.where(asked > highest, asked - highest,
                    np.where(asked < lowest, asked - lowest, 0.0))


def genre_tonal_mid_db() -> np.ndarray:
    """The genre presets' mid third-octave balances (`presets.list_genres`), dB (NaN where not
    measured), shape (genres, bands): the span of usual balances a reference's asks are
    measured from (`reference_asks_db`)."""
    curves = [g.features[BANDS_KEY]["mid_db"] for g in list_genres()]
    return np.array(curves, dtype=np.float64).reshape(len(curves), analysis.BAND_CENTERS_HZ.size)


def reference_tonal(reference: Reference) -> tuple[np.ndarray, np.ndarray]:
    """The reference's mid and side third-octave balance in dB (NaN where not measured),
    shape (bands,) each."""
    features = reference.features
    return (np.asarray(features.tonal_mid_db, dtype=np.float64),
            np.asarray(features.tonal_side_db, dtype=np.float64))
