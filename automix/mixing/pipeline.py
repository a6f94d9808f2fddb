"""Mixing: load stems -> suggest per-stem settings -> render -> sum -> master the bus.

Each stem runs through its own `params.StemChain` (gain, high-pass, EQ, compressor, pan, and
a send to one shared reverb bus); the dry stems and the reverb return are summed and the bus
is mastered by `automix.mastering` (DSP-matched master chain, gain to the delivery target,
true-peak limiter).

Settings are suggested in steps (`suggest_mix`): role-based defaults (`balance.default_chains`:
levels balanced by loudness, high-pass, compressor, pan spread, a reverb send for vocals); with
``method`` "network", each stem's level, EQ and balance from the stem network
(`balance.network_chains`, `automix.model.stem_net`: trained on real multitracks to undo a
rough mix's level, EQ and pan moves, from each stem's band powers beside the others' and the
reference's); then a fit of the stems' levels so that the sum's mid and side third-octave band
powers match the reference's (`balance.fit_balance`). With ``method`` "authors" (the default),
each stem's send and compressor and the shared room from the author model
(`balance.author_chains`, `automix.model.author_net`: what the authors of real songs did with
their dry parts), the balance the stem network's toward a reference song, else the authors'
(the stems' own, EQ flat). Optionally (``refine_steps``) a
refinement of gains, EQ gains, pans and sends through the twin (`refine.refine`). Silent
stems (`stems.Stem.silent`, warning S03) are passed through at unit gain and left out of
every step after the defaults.

Warnings are about the inputs: the stems' (from `load_stems`: S01-S03, W01 for a clipped
stem). The summed bus is the mastering stage's input, not the user's: its input warnings
(W01 for a bus that sums over full scale, W02, W05, ...) are not reported; the master's
output is, should it clip (the limiter keeps it from doing so).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automix.analysis import AudioWarning
from automix.audio import Audio
from automix.errors import SettingsError
from automix.mastering.pipeline import MasterResult, master
from automix.mastering.streaming import master_stream
from automix.mixing.balance import (
    FIT_EXCERPT_S,
    audible,
    author_chains,
    author_room,
    default_chains,
    fit_balance,
    hear_stems,
    keep_input_balance,
    network_chains,
    plausible_levels,
)
from automix.mixing.motivation import StemMotivation, motivate
from automix.mixing.refine import REFINE_BUDGET_S, refine
from automix.mixing.render import render_mix, render_mix_to
from automix.mixing.stems import Stem, loudest_excerpt, sounding, stem_loudness_lufs
from automix.params import StemChain
from automix.presets import Target
from automix.settings import (
    AUTHOR_REVERB,
    DEFAULT_REVERB,
    KEEP_BALANCE,
    MIX_METHOD,
    MIX_METHODS,
    Amounts,
    MixSettings,
    Reference,
    check_method,
)

# How `suggest_mix` starts: role defaults ("dsp"), the stem network ("network": on the stem
# model's validation multitracks, benchmarks/mixing.py's protocol, it takes the log-mel
# distance to the real mix from 4.95 to 3.99 dB) or the author model ("authors", the default,
# `settings.MIX_METHOD`: the sends, compressors and room the authors of real songs chose).


def suggest_mix(stems: list[Stem], sample_rate: int, reference: Reference, *,
                method: str = MIX_METHOD, fit: bool = True, refine_steps: int = 0,
                time_budget_s: float = REFINE_BUDGET_S,
                keep_balance: float = KEEP_BALANCE) -> dict[str, StemChain]:
    """Per-stem settings: role defaults (`default_chains`); with ``method`` "network", each
    stem's level, EQ and balance from the stem network (`network_chains`); with "authors",
    each stem's send and compressor from the author model (`author_chains`) and its balance:
    with a reference song (``reference.kind`` "file"), the stem network's toward it; with a
    genre preset, the author model's level and pan, EQ flat, without the preset's band
    balance; else levels fitted to the reference's band balance
    (`fit_balance`, unless ``fit`` is False); then refined
    through the twin (`refine`) when ``refine_steps`` > 0 (off by default: on held-out real
    multitracks it moved mixes away from the real ones, 5.3 -> 5.7 dB log-mel, and it costs
    seconds). Last, for every method, the levels are held to a plausible balance
    (`plausible_levels`: each role's share of the mix, `roles.ROLE_SHARE_LU`, widened where
    the reference clearly asks for more or less of a stem, and at most `MAX_INPUT_MOVE_DB`
    from the input balance), and moved ``keep_balance`` (0..1) of the way
    back to the balance the stems arrived with (`keep_input_balance`)."""
    check_method(method, MIX_METHODS)
    chains = default_chains(stems, sample_rate)
    span = loudest_excerpt(sounding(stems) or stems, sample_rate, FIT_EXCERPT_S)
    if method == "network":
        chains = network_chains(stems, sample_rate, chains, reference, span)
    if method == "authors":  # a song as the reference: its balance (the stem network's);
        follows = reference.kind == "file"  # a genre preset: the authors'
        if follows:
            chains = network_chains(stems, sample_rate, chains, reference, span)
        chains, fit = author_chains(stems, sample_rate, chains, span, balance=not follows), False
    # every stem heard once through its chain on the excerpt: the fit's and the plausible
    # levels' measurements (their level moves scale what was heard; no second render)
    heard = hear_stems(audible(stems, *span), sample_rate, chains, *span)
    if fit:
        chains = fit_balance(stems, sample_rate, chains, reference, span, heard=heard)
    if refine_steps > 0 and len(sounding(stems)) >= 2:
        chains = {**chains, **refine(sounding(stems), sample_rate, chains, DEFAULT_REVERB,
                                     reference, steps=refine_steps,
                                     time_budget_s=time_budget_s)}
    chains = plausible_levels(stems, sample_rate, chains, span, reference=reference,
                              heard=heard)
    return keep_input_balance(stems, chains, keep_balance)


# --- the whole mix ----------------------------------------------------------------------------

STREAMED_MIX_MIN_S = 240.0  # `mix_file` masters a mix longer than this from a file in blocks:
# in memory, mastering a 10-minute stereo bus peaks at 1.2 GiB; the most the in-memory paths
# hold together (`stems.STEMS_IN_MEMORY_MIB` of stems, a 4-minute bus mastered) is 1.26 GiB
# peak RSS (issue #16: 32 stems of 10 minutes in 1.5 GiB)


@dataclass
class MixResult:
    """A mix: the mastered audio, the settings that render it exactly, how they were found,
    the stems and each one after its chain, the bus's `MasterResult`, warnings, and why each
    stem's compressor and send are what they are (`motivation.StemMotivation`, by name)."""

    audio: Audio  # the mastered mix
    settings: MixSettings
    method: str  # how the settings were suggested ("dsp" or "network"), or "settings"
    stems: list[Stem]
    processed: list[np.ndarray]  # each stem after its chain, (2, samples), before the master
    # (empty when `mix` was asked not to keep them)
    master: MasterResult
    warnings: list[AudioWarning]
    timings_s: dict[str, float] = field(default_factory=dict)
    preview_span: tuple[int, int] | None = None  # mastered to a file (`StreamedOutput`): the
    # master's loudest `previews.PREVIEW_S` (start, end sample); ``audio`` is then empty
    motivation: dict[str, StemMotivation] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        report = self.master.to_dict()
        sr = self.audio.sample_rate
        return {
            **report,
            "method": self.method,
            "settings": self.settings.to_dict(),
            "stems": [{"name": s.name, "role": s.role, "role_from": s.role_source,
                       "channels": s.channels, "stereo": s.is_stereo,
                       "silent": s.silent,
                       "input_lufs": round(stem_loudness_lufs(s, sr), 2),
                       **({"motivation": self.motivation[s.name].to_dict(
                           self.settings.stems[s.name])} if s.name in self.motivation else {})}
                      for s in self.stems],
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings]
            + [{"code": w.code, "message": f"the master: {w.message}"}
               for w in self.master.output.warnings if w.code == "W01-clipping"],
            "timings_s": {k: round(v, 3) for k, v in {**self.timings_s,
                                                        **self.master.timings_s}.items()},
        }


@dataclass(frozen=True)
class StreamedOutput:
    """Where `mix` writes a long mix's master (`is_long_mix`): the bus is rendered to a
    temporary file block by block and mastered from it in blocks (`streaming.master_stream`),
    so memory holds a block per stem, not the mix."""

    path: Path
    bit_depth: int = 24
    file_format: str = "wav"


def is_long_mix(stems: list[Stem], sample_rate: int) -> bool:
    """Whether a mix of ``stems`` is long enough (`STREAMED_MIX_MIN_S`) to be mastered from a
    file in blocks rather than in memory."""
    return stems[0].frames > STREAMED_MIX_MIN_S * sample_rate


def mix(stems: list[Stem], sample_rate: int, reference: Reference, target: Target, *,
        method: str = MIX_METHOD, settings: MixSettings | None = None,
        amounts: Amounts | None = None,
        load_warnings: list[AudioWarning] | None = None, refine_steps: int = 0,
        keep_balance: float = KEEP_BALANCE,
        progress: Callable[[str], None] | None = None,
        keep_processed: bool = True, output: StreamedOutput | None = None) -> MixResult:
    """Mix ``stems`` toward ``reference`` (settings by `suggest_mix` with ``method`` and
    ``refine_steps``, keeping ``keep_balance`` of the stems' input balance) and master the bus
    at ``target``; or render given ``settings``
    exactly. ``amounts`` (`settings.Amounts`) scale every stem's and the
    master's settings toward neutral (eq, dynamics: every compressor; width also centres the
    pans; reverb: the stems' sends).
    ``progress`` is called with each stage's name as it starts ("suggest", "render",
    "master"); `timings_s` holds each stage's seconds. Without ``keep_processed`` the
    result's ``processed`` is empty and the render holds a block of each stem at a time;
    then, given ``output`` (`StreamedOutput`), the bus goes through a temporary file and the
    master is written to ``output.path`` (the result's ``audio`` is empty)."""
    timings: dict[str, float] = {}
    step = progress or (lambda stage: None)
    step("suggest")
    t0 = time.perf_counter()
    if settings is None:
        chains = suggest_mix(stems, sample_rate, reference, method=method,
                             refine_steps=refine_steps, keep_balance=keep_balance)
        reverb = (author_room(stems, sample_rate, AUTHOR_REVERB) if method == "authors"
                  else DEFAULT_REVERB)
        master_settings = None
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
    if amounts is not None and amounts.scales:
        chains = {name: amounts.scale(chain) for name, chain in chains.items()}
    motivation = motivate(stems, sample_rate, chains, method=method, amounts=amounts,
                          refined=refine_steps > 0 and len(sounding(stems)) >= 2)
    timings["suggest_mix"] = time.perf_counter() - t0
    step("render")
    t0 = time.perf_counter()
    preview_span = None
    if output is not None and not keep_processed:
        with tempfile.TemporaryDirectory(prefix="automix-bus-") as tmp:
            bus_path = Path(tmp) / "bus.wav"
            render_mix_to(bus_path, stems, sample_rate, chains, reverb)
            timings["render_mix"] = time.perf_counter() - t0
            step("master")
            result, preview_span = master_stream(
                bus_path, output.path, reference, target, settings=master_settings,
                amounts=amounts, bit_depth=output.bit_depth, file_format=output.file_format)
        processed: list[np.ndarray] = []
    else:
        bus, processed = render_mix(stems, sample_rate, chains, reverb, keep=keep_processed)
        timings["render_mix"] = time.perf_counter() - t0
        step("master")
        result = master(Audio(bus, sample_rate), reference, target, settings=master_settings,
                        amounts=amounts)
        del bus
    mix_settings = MixSettings(stems=dict(chains), reverb=reverb, master=result.settings,
                               roles={s.name: s.role for s in stems if s.role_source == "user"})
    return MixResult(result.audio, mix_settings, method, stems, processed, result,
                     list(load_warnings or []), timings, preview_span, motivation)


