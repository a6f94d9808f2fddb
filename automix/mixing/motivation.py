"""Why each stem's compressor and reverb send are what they are (issue #18 point 5).

With "dsp" and "network", a stem's compressor is its role's default (`roles.ROLE_DEFAULTS`:
ratio, attack, release, and a threshold a fixed number of LU over the stem's balanced level,
which follows every level move, `balance.with_level_move`); so what decides it is the role
and the stem's level. With "authors", it is the author model's: on, with its threshold,
ratio and times, where it says the authors would have compressed such a stem, else off. What
it does to this stem is told by the stem's own measures: its crest factor, its loudness range,
and how far its peaks reach over the threshold. A send is the
role's default too (only vocals send), except with ``method`` "authors", where the author
model (`model.author_net`) set it from the stem's features: the ones that moved it most
(`author_net.attributions`) are named. Every stem also gets its own reverb measure
(`analysis.reverb_tail_db`: how much it rings by itself). A rendered settings file is its own
reason; an ``--amount`` that scaled a module is named with it.

Measures are taken on the excerpt the suggestion listens to (the stems' loudest
`balance.FIT_EXCERPT_S`), at the stem's gain, before its high-pass and EQ.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from automix import analysis, loudness
from automix.mixing.balance import FIT_EXCERPT_S, author_predictions
from automix.mixing.render import RENDER_THREADS, sends_reverb
from automix.mixing.stems import (
    Stem,
    loudest_excerpt,
    sounding,
    stem_loudness_lufs,
)
from automix.params import StemChain
from automix.settings import Amounts

TOP_MODEL_INPUTS = 3  # the author model's inputs named for a send: the ones that moved it most


@dataclass(frozen=True)
class StemMeasures:
    """A stem on the suggestion's excerpt, at its gain, before its high-pass and EQ (as its
    compressor hears it, but for those): loudness (LUFS, `stem_loudness_lufs` plus the gain),
    sample peak (dBFS), crest factor (peak over RMS, dB), loudness range (LU) and its own
    reverb tail (dB, `analysis.reverb_tail_db`; None without an onset to measure)."""

    level_lufs: float
    peak_dbfs: float
    crest_db: float
    loudness_range_lu: float
    tail_db: float | None


@dataclass(frozen=True)
class ModelInput:
    """One input of the author model (`author_net.FEATURES`, the role's one-hot inputs as one,
    "role"), its reader's ``label`` and ``unit`` (`author_net.FEATURE_LABELS`), its ``value``
    (the role by name) and how far it moved an output from the model's average stem (the
    send: dB, written ``moves_db``; the compressor's score: 0..1, written ``moves``)."""

    feature: str
    label: str
    unit: str
    value: float | str
    moves: float

    def to_dict(self, key: str = "moves_db") -> dict[str, Any]:
        value = self.value if isinstance(self.value, str) else round(self.value, 2) + 0.0
        return {"feature": self.feature, "label": self.label, "unit": self.unit,
                "value": value, key: round(self.moves, 2)}


@dataclass(frozen=True)
class StemMotivation:
    """Where a stem's compressor and send came from (``compressor_from``, ``send_from``), the
    stem's `StemMeasures`, the amounts (`settings.Amounts`) that scaled them, and with the
    author model its own send (dB, before the floor and any amount; its floor where the
    model's score for a send, 0..1, is under `author_net.SEND_ON`), its score for a
    compressor (0..1, on from `author_net.COMPRESSOR_ON`) and the top inputs of each (of the
    send's level, or of its score where that left it off)."""

    compressor_from: str
    send_from: str
    measures: StemMeasures | None  # None: a silent stem (passed through)
    dynamics_amount: float = 1.0
    reverb_amount: float = 1.0
    model_send_db: float | None = None
    model_inputs: tuple[ModelInput, ...] = ()
    model_send_score: float | None = None
    model_compressor_score: float | None = None
    model_compressor_inputs: tuple[ModelInput, ...] = ()

    def to_dict(self, chain: StemChain) -> dict[str, Any]:
        """The plain JSON for the sidecar and the suggestion: per module, its source, the
        numbers behind it, and what the threshold means for this stem (None when off)."""
        m, comp = self.measures, chain.compressor
        on = comp.ratio > 1.0 and m is not None
        compressor: dict[str, Any] = {"from": self.compressor_from}
        send: dict[str, Any] = {"from": self.send_from}
        if m is not None:
            compressor |= {
                "level_lufs": _r(m.level_lufs),
                "threshold_re_level_lu": _r(comp.threshold_db - m.level_lufs) if on else None,
                "peaks_over_threshold_db": _r(m.peak_dbfs - comp.threshold_db) if on else None,
                "crest_db": _r(m.crest_db), "loudness_range_lu": _r(m.loudness_range_lu)}
            send["stem_tail_db"] = _r(m.tail_db)
        if self.model_compressor_score is not None:
            from automix.model.author_net import COMPRESSOR_ON

            compressor |= {"model_score": _r(self.model_compressor_score),
                           "model_on_from": COMPRESSOR_ON,
                           "model_inputs": [i.to_dict("moves")
                                            for i in self.model_compressor_inputs]}
        if self.dynamics_amount != 1.0:
            compressor["amount"] = self.dynamics_amount
        if self.model_send_db is not None:
            from automix.model.author_net import SEND_ON

            score = self.model_send_score
            off = score is not None and score < SEND_ON
            send |= {"model_send_db": _r(self.model_send_db),
                     **({} if score is None else {"model_score": _r(score),
                                                  "model_on_from": SEND_ON}),
                     "model_inputs": [i.to_dict("moves" if off else "moves_db")
                                      for i in self.model_inputs]}
        if self.reverb_amount != 1.0:
            send["amount"] = self.reverb_amount
        return {"compressor": compressor, "send": send}


def _r(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 2)


def measure(stem: Stem, sample_rate: int, chain: StemChain, start: int, end: int
            ) -> StemMeasures:
    """`StemMeasures` of ``stem`` on samples ``start:end`` at ``chain``'s gain."""
    gain_db = chain.gain.gain_db
    raw = stem.read(start, end)
    # as the chain folds it (a mono stem: its channels' mean); played, that mono is at -3 dB
    # on each side, the same summed power, so its loudness range and tail read the same
    heard = raw if stem.is_stereo else raw.mean(axis=0, keepdims=True)
    peak = float(max(heard.max(), -heard.min())) if heard.size else 0.0
    power = float(np.einsum("ij,ij->", heard, heard, dtype=np.float64)) / max(heard.size, 1)
    tail = analysis.reverb_tail_db(heard, sample_rate)
    return StemMeasures(
        level_lufs=stem_loudness_lufs(stem, sample_rate) + gain_db,
        peak_dbfs=float(loudness.amp_to_db(peak)) + gain_db,
        crest_db=20.0 * math.log10(max(peak, 1e-9) / max(math.sqrt(power), 1e-9)),
        loudness_range_lu=loudness.loudness_range_lu(heard, sample_rate),
        tail_db=tail if math.isfinite(tail) else None)


def motivate(stems: list[Stem], sample_rate: int, chains: dict[str, StemChain], *,
             method: str, amounts: Amounts | None = None, refined: bool = False
             ) -> dict[str, StemMotivation]:
    """Why each stem's compressor and send in ``chains`` are what they are, for settings
    suggested by ``method`` (`settings.MIX_METHODS`, or "settings": rendered from a file),
    then refined through the twin (``refined``) and scaled by ``amounts``."""
    amounts = amounts or Amounts()
    heard = sounding(stems)
    start, end = loudest_excerpt(heard or stems, sample_rate, FIT_EXCERPT_S)
    with ThreadPoolExecutor(max_workers=RENDER_THREADS) as pool:
        measured = dict(zip([s.name for s in heard], pool.map(
            lambda s: measure(s, sample_rate, chains[s.name], start, end), heard), strict=True))
    model = _author_reasons(heard, sample_rate, start, end) if method == "authors" else {}
    then = ", then refined" if refined else ""
    out = {}
    for stem in stems:
        if stem.silent:
            out[stem.name] = StemMotivation("silent: passed through", "silent: passed through",
                                            None)
            continue
        default = f"role default ({stem.role})"
        if method == "settings":
            comp_from = send_from = "settings file"
        else:
            comp_from = (default if method != "authors"
                         else "author model" if chains[stem.name].compressor.ratio > 1.0
                         else "author model: off, as its songs' authors mostly left stems")
            send_from = ("author model" if method == "authors" else default) + (
                then if sends_reverb(chains[stem.name]) else "")
        send_db, inputs, send_score, score, comp_inputs = model.get(
            stem.name, (None, (), None, None, ()))
        out[stem.name] = StemMotivation(comp_from, send_from, measured[stem.name],
                                        amounts.dynamics, amounts.reverb, send_db, inputs,
                                        send_score, score, comp_inputs)
    return out


def _author_reasons(heard: list[Stem], sample_rate: int, start: int, end: int
                    ) -> dict[str, tuple]:
    """Per stem, the author model's send (dB), the `TOP_MODEL_INPUTS` inputs that moved it
    most (`author_net.attributions`; the role's one-hot inputs count as one, "role"; those of
    the send's score where that left it off) and that score; then its score for a compressor
    and the inputs that moved that (None and none with weights that predict neither)."""
    from automix.model import author_net

    if not heard:
        return {}
    model = author_net.load_model()
    features, found = author_predictions(heard, sample_rate, start, end)

    def scored(name: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        if name not in model.outputs or not model.trusts(name):  # untrusted: the authors' constant
            return None, None
        return (author_net.output(model, features, name),
                author_net.attributions(model, features, name))

    level_moves = author_net.attributions(model, features, "send_db")
    send_scores, send_moves = scored("send_on")
    comp_scores, comp_moves = scored("comp_on")
    out = {}
    for i, stem in enumerate(heard):
        off = send_scores is not None and send_scores[i] < author_net.SEND_ON
        out[stem.name] = (
            found[i].send_db,
            _top_inputs(stem, features[i], send_moves[i] if off else level_moves[i]),
            None if send_scores is None else float(send_scores[i]),
            None if comp_scores is None else float(comp_scores[i]),
            () if comp_moves is None else _top_inputs(stem, features[i], comp_moves[i]))
    return out


def _top_inputs(stem: Stem, x: np.ndarray, moves: np.ndarray) -> tuple[ModelInput, ...]:
    """The `TOP_MODEL_INPUTS` inputs with the largest ``moves`` (the role's one-hot inputs
    summed as one)."""
    from automix.model import author_net

    roles = [i for i, name in enumerate(author_net.FEATURES) if name.startswith("role_")]
    others = [i for i in range(len(author_net.FEATURES)) if i not in roles]
    inputs = [ModelInput("role", "role", "", stem.role, float(moves[roles].sum()))] + [
        ModelInput(author_net.FEATURES[i], *author_net.FEATURE_LABELS[author_net.FEATURES[i]],
                   float(x[i]), float(moves[i])) for i in others]
    inputs.sort(key=lambda i: -abs(i.moves))
    return tuple(inputs[:TOP_MODEL_INPUTS])
