"""The master pipeline, once: analyse -> suggest -> finalise -> render -> verify.

`run` is the one place that decides what a master does with its inputs: render stored settings
exactly, finalise edited or scaled settings again, or suggest a chain and finalise it. Where the
audio lives is the stages' business (`Stages`): `InMemory` holds a song as one array (this
module), `streaming.Streamed` reads, processes and writes a long file in blocks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from automix import analysis
from automix.analysis import Analysis
from automix.audio import Audio, BackgroundWriter
from automix.mastering.finalise import (
    LOUDNESS_TOLERANCE_LU,
    chained_and_curve,
    finalise,
    limited_and_measured,
)
from automix.mastering.match import suggest_chain
from automix.params import LimiterParams, MasterChain, as_dict
from automix.presets import Target
from automix.settings import (
    MASTER_METHOD,
    REFINE_SECONDS,
    REFINE_STEPS,
    Amounts,
    MasterSettings,
    Reference,
    check_method,
)

OFF_TARGET_LU = 0.5  # W10 when exactly rendered settings land further than this off the target


@dataclass
class MasterResult:
    """A master: its audio (empty when it was streamed to a file), the settings that render it
    exactly, how they were found (``method``: "dsp", "network" or "settings"), the analyses of
    input and output, the reference and target, the seconds each stage took, and whether
    given settings were rendered exactly as stored (their gain not found again)."""

    audio: Audio
    settings: MasterSettings
    method: str
    input: Analysis
    output: Analysis
    reference: Reference
    target: Target
    timings_s: dict[str, float] = field(default_factory=dict)
    rendered_exactly: bool = False

    def to_dict(self) -> dict[str, Any]:
        ref_mid = np.asarray(self.reference.features.tonal_mid_db, dtype=np.float64)
        return {
            "method": self.method,
            "reference": self.reference.to_dict(),
            "target": as_dict(self.target),
            "settings": self.settings.to_dict(),
            "measurements": {"input": self.input.to_dict(), "output": self.output.to_dict()},
            "tonal_balance_error_db": {
                "input": round(tonal_error_db(self.input.rounded(), ref_mid), 3),
                "output": round(tonal_error_db(self.output.rounded(), ref_mid), 3),
            },
            "warnings": [{"code": w.code, "message": w.message} for w in self.input.warnings]
            + self.loudness_held() + self.off_target(),
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
        }

    def loudness_held(self) -> list[dict[str, str]]:
        """W08 when a reference file's loudness was not reached because the limiter would
        have taken more than the target's ``max_limiting_db`` off the loudest peak."""
        short = self.target.integrated_lufs - self.output.integrated_lufs
        if self.target.max_limiting_db is None or short <= LOUDNESS_TOLERANCE_LU:
            return []
        return [{"code": "W08-loudness-held", "message": (
            f"the master reads {self.output.integrated_lufs:.1f} LUFS, {short:.1f} LU under "
            f"the reference's {self.target.integrated_lufs:.1f}: reaching it would limit the "
            f"loudest peak by more than {self.target.max_limiting_db:g} dB; a delivery "
            "target (--target) is reached whatever it takes")}]


    def off_target(self) -> list[dict[str, str]]:
        """W10 when settings rendered exactly as stored (edited, say, or rendered for another
        target) land more than `OFF_TARGET_LU` off the target's loudness."""
        off = self.output.integrated_lufs - self.target.integrated_lufs
        if not self.rendered_exactly or abs(off) <= OFF_TARGET_LU:
            return []
        return [{"code": "W10-off-target", "message": (
            f"the settings rendered as stored read {self.output.integrated_lufs:.1f} LUFS, "
            f"{abs(off):.1f} LU {'over' if off > 0 else 'under'} the target's "
            f"{self.target.integrated_lufs:.1f}: add --refit-gain to find the gain to the "
            "target again")}]


def tonal_error_db(features: Analysis, ref_mid: np.ndarray) -> float:
    """RMS dB difference of mid tonal balance over bands valid in both, after removing the
    mean offset."""
    diff = np.asarray(features.tonal_mid_db, dtype=np.float64) - ref_mid
    diff = diff[np.isfinite(diff)]
    return float(np.sqrt(np.mean((diff - diff.mean()) ** 2))) if diff.size else float("nan")


class Stages(Protocol):
    """Where the audio of a master lives; `run` calls these in order."""

    timings_s: dict[str, float]  # stage parts a path times itself (e.g. the streamed write)

    def suggest(self, input_analysis: Analysis, reference: Reference, target: Target, *,
                method: str, refine_steps: int, refine_seconds: float
                ) -> tuple[MasterChain, str]:
        """The chain toward ``reference``, and the method that found it."""

    def finalise(self, chain: MasterChain, target: Target, release_ms: float
                 ) -> MasterSettings:
        """The settings (gain, limiter) that land ``chain`` on ``target``."""

    def render(self, settings: MasterSettings) -> tuple[Audio, Analysis]:
        """The master of ``settings`` and the analysis that verifies it."""


def run(stages: Stages, input_analysis: Analysis, reference: Reference, target: Target, *,
        method: str = MASTER_METHOD, settings: MasterSettings | None = None,
        amounts: Amounts | None = None, refit_gain: bool = False,
        refine_steps: int = REFINE_STEPS,
        refine_seconds: float = REFINE_SECONDS) -> MasterResult:
    """Master toward ``reference`` at ``target``; or render given ``settings``.

    ``amounts`` scale the suggestion, or the given settings, toward neutral; the gain is then
    found again so that the loudness target still holds. Given settings render exactly as
    stored, unless amounts scale them or ``refit_gain`` asks for the gain to be found again
    (after editing EQ or the target, say): then their own target and ceiling hold.
    """
    check_method(method)
    amounts = amounts or Amounts()
    target = target.for_input(input_analysis.integrated_lufs)  # --target keep
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    exact = settings is not None and not (amounts.scales or refit_gain)
    if exact:
        out, output = stages.render(settings)
        method = "settings"
    else:
        if settings is not None:
            chain, release_ms, method = settings.chain, settings.limiter.release_ms, "settings"
        else:
            chain, method = stages.suggest(input_analysis, reference, target, method=method,
                                           refine_steps=refine_steps,
                                           refine_seconds=refine_seconds)
            release_ms = LimiterParams().release_ms
        if amounts.scales:
            chain = amounts.scale(chain)
        if settings is None:
            timings["suggest"] = time.perf_counter() - t0
            t0 = time.perf_counter()
        settings = stages.finalise(chain, target, release_ms)
        out, output = stages.render(settings)
    # with the analysis that verifies it, less what the stages time themselves (the streamed
    # write), so that the stages stay disjoint and add up to the run
    timings["render"] = time.perf_counter() - t0 - sum(stages.timings_s.values())
    return MasterResult(out, settings, method, input_analysis, output, reference, target,
                        {**timings, **stages.timings_s}, rendered_exactly=exact)


class InMemory:
    """`Stages` for a song held as one array; a ``writer`` (see `audio.BackgroundWriter`)
    writes each rendered result while it is analysed (the caller commits the last one)."""

    def __init__(self, audio: Audio, writer: BackgroundWriter | None = None) -> None:
        self.audio, self.writer = audio, writer
        self.timings_s: dict[str, float] = {}
        self._finalised: tuple[MasterSettings, Audio, Analysis] | None = None

    def suggest(self, input_analysis: Analysis, reference: Reference, target: Target, *,
                method: str, refine_steps: int, refine_seconds: float
                ) -> tuple[MasterChain, str]:
        return suggest_chain(self.audio, input_analysis, reference, target, method=method,
                             refine_steps=refine_steps, refine_seconds=refine_seconds)

    def finalise(self, chain: MasterChain, target: Target, release_ms: float
                 ) -> MasterSettings:
        self._finalised = finalise(self.audio, chain, target, release_ms, writer=self.writer)
        return self._finalised[0]

    def render(self, settings: MasterSettings) -> tuple[Audio, Analysis]:
        if self._finalised is not None and self._finalised[0] is settings:
            return self._finalised[1], self._finalised[2]  # finalise rendered it already
        return limited_and_measured(*chained_and_curve(self.audio, settings),
                                    self.audio.sample_rate, settings.limiter, self.writer)


def master(audio: Audio, reference: Reference, target: Target, *, method: str = MASTER_METHOD,
           settings: MasterSettings | None = None, amounts: Amounts | None = None,
           refit_gain: bool = False, refine_steps: int = REFINE_STEPS,
           refine_seconds: float = REFINE_SECONDS, writer: BackgroundWriter | None = None,
           input_analysis: Analysis | None = None) -> MasterResult:
    """`run` on ``audio`` in memory. ``input_analysis`` is ``audio``'s, when the caller has
    made it (see `analysis.analyze_many`); else it is made here and timed as "analyse"."""
    timings = {}
    if input_analysis is None:
        t0 = time.perf_counter()
        input_analysis = analysis.analyze(audio.samples, audio.sample_rate)
        timings["analyse"] = time.perf_counter() - t0
    result = run(InMemory(audio, writer), input_analysis, reference, target, method=method,
                 settings=settings, amounts=amounts, refit_gain=refit_gain,
                 refine_steps=refine_steps, refine_seconds=refine_seconds)
    result.timings_s = {**timings, **result.timings_s}
    return result
