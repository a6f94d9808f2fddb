"""A user's own VST3 chain, its parameters optimised toward a reference (issue #19, point 2).

`load_chain` loads the named plug-ins (a path, or a bare name looked up in the VST3 folder:
``ZamEQ2``), refusing in one line what is missing, not a VST3 or an instrument; a mono
plug-in gets one instance per channel. `tunable` picks each plug-in's continuous parameters
(float, more than `MIN_STEPS` steps, not a frame count, not a meter). `optimise` searches
them in normalised [0, 1] space with CMA-ES (the ``cma`` package), from the plug-ins' own
values (doing nothing is the start), on the loudest `EXCERPT_S` of the song, within a time
budget. What it aims at (`aim`) is what automix's own master makes of the excerpt toward the
reference: the DSP matcher's chain rendered, its mid tonal balance and crest factor. The
reference is usually another song, and its band detail is its arrangement: aiming at the
reference's spectrum itself let ZamEQ2's wide ranges copy it (5.88 dB tonal error to the
composer's master cross-song, against automix's 4.00: docs/benchmarks.md); the matcher's
judgement (bounded, smooth, nothing where the song needs nothing) is what the user's plug-ins
are tuned to reproduce. The loss is the tonal-balance error to the aim
(`pipeline.tonal_error_db`: mid bands, mean level removed) plus, per dB of crest factor over
the aim's, `CREST_WEIGHT` (a chain that makes peaks, not tone, would leave the finalise's
limiter short of the loudness), plus a small pull toward the start (`START_PULL_DB`), so that
parameters the loss does not see stay where they were. `render` runs the whole song through
the chain; the master pipeline's `finalise` then brings it to the delivery target (automix's
own chain left neutral).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automix import analysis
from automix.errors import PluginError
from automix.plugins import zam

EXCERPT_S = 10.0  # the loudest this many seconds of the song are optimised on
BUDGET_S = 30.0  # default time budget of the search
SIGMA0 = 0.15  # CMA-ES's initial step, in normalised units (a sixth of each range)
MIN_STEPS = 100  # a parameter with fewer steps is a switch or a choice, not tuned
METER_WORDS = ("gain_reduction", "output_level", "meter")  # names of read-only parameters
CREST_WEIGHT = 0.5  # loss (dB) per dB of crest over the reference's (peaks the finalise holds)
START_PULL_DB = 1.0  # loss (dB) per unit of mean squared normalised distance from the start
FAILED_LOSS_DB = 1e3  # the loss of a render that is silent or not finite
MAX_EVALUATIONS = 5000  # a hard stop for tiny excerpts, whatever the budget


@dataclass
class Stage:
    """One plug-in of the chain: its name, file, instances (one, or one per channel for a mono
    plug-in) and the names of its tuned parameters, with their start values (normalised)."""

    name: str
    path: Path
    instances: list[Any]
    mono: bool
    parameters: list[str]
    start: list[float]

    @property
    def plugin(self) -> Any:
        return self.instances[0]

    def set(self, values: Sequence[float]) -> None:
        for instance in self.instances:
            for name, value in zip(self.parameters, values, strict=True):
                instance.parameters[name].raw_value = float(min(max(value, 0.0), 1.0))

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        if not self.mono:
            x = samples if samples.shape[0] == 2 else np.repeat(samples[:1], 2, axis=0)
            y = self.plugin(np.ascontiguousarray(x), float(sample_rate))
            return y if samples.shape[0] == 2 else y[:1]
        return np.concatenate([self.instances[c](np.ascontiguousarray(samples[c:c + 1]),
                                                 float(sample_rate))
                               for c in range(samples.shape[0])])

    def found(self) -> list[dict[str, Any]]:
        """Each tuned parameter: name, normalised value, and the value as the plug-in shows
        it (its text and unit)."""
        rows = []
        for name in self.parameters:
            parameter = self.plugin.parameters[name]
            rows.append({"parameter": name, "normalised": round(float(parameter.raw_value), 6),
                         "value": str(parameter.string_value).strip(),
                         "unit": str(parameter.label or "").strip()})
        return rows


@dataclass(frozen=True)
class Aim:
    """What the search aims at: mid tonal balance (dB per band) and crest factor (dB)."""

    tonal_mid_db: np.ndarray
    crest_db: float


@dataclass
class Optimised:
    """What `optimise` found: the normalised values per stage, the tonal-balance error on the
    excerpt (`tonal_loss_db`, dB) at the start and at the end, evaluations and seconds."""

    values: list[list[float]]
    start_error_db: float
    error_db: float
    evaluations: int
    seconds: float


# --- loading ----------------------------------------------------------------------------------


def plugin_path(spec: str) -> Path:
    """A path to a ``.vst3``, or a bare name found in the VST3 folder (`zam.vst3_dir`)."""
    spec = spec.strip()
    path = Path(spec).expanduser()
    if path.suffix.lower() != ".vst3":
        if path.exists() or "/" in spec:
            raise PluginError(f"--chain {spec}: not a VST3 plug-in (a .vst3 is needed)")
        path = zam.vst3_dir() / f"{spec}.vst3"
    if not path.exists():
        raise PluginError(f"--chain {spec}: {path} not found (installed: "
                          f"{', '.join(installed()) or 'none'})")
    return path


def installed() -> list[str]:
    """The VST3 plug-ins in the VST3 folder, by name (what the page and service offer)."""
    folder = zam.vst3_dir()
    return sorted(p.stem for p in folder.glob("*.vst3")) if folder.is_dir() else []


def _load(path: Path) -> Any:
    try:
        plugin = zam.load_vst3(path)
    except Exception as exc:  # noqa: BLE001 - any load failure is the same user error
        raise PluginError(f"--chain {path}: cannot load ({str(exc).splitlines()[0]})") from None
    if getattr(plugin, "is_instrument", False):
        raise PluginError(f"--chain {path.stem}: an instrument, not an effect")
    return plugin


def _is_mono(plugin: Any, sample_rate: int) -> bool:
    try:
        with zam.quiet():
            plugin(np.zeros((2, 64), dtype=np.float32), float(sample_rate))
    except ValueError:
        with zam.quiet():
            plugin(np.zeros((1, 64), dtype=np.float32), float(sample_rate))
        return True
    return False


def tunable(plugin: Any) -> list[str]:
    """The continuous parameters of ``plugin`` a user would turn: float, more than
    `MIN_STEPS` steps, not a frame count and not a meter (`METER_WORDS`: VST3 hosts see
    meters as parameters, and pedalboard cannot tell them apart)."""
    return [name for name, p in plugin.parameters.items()
            if p.type is float and (getattr(p, "num_steps", 0) or 0) > MIN_STEPS
            and str(p.label or "").strip() != "frames"
            and not any(word in name for word in METER_WORDS)]


def load_chain(specs: Sequence[str], sample_rate: int, channels: int = 2) -> list[Stage]:
    """The plug-ins named by ``specs`` (paths or bare names), in order, ready to process
    ``channels`` channels at ``sample_rate``; `PluginError` in one line for a bad one."""
    specs = [s for s in specs if s.strip()]
    if not specs:
        raise PluginError("--chain: no plug-in named (e.g. --chain ZamEQ2,ZamCompX2)")
    stages = []
    for spec in specs:
        path = plugin_path(spec)
        first = _load(path)
        mono = _is_mono(first, sample_rate)
        names = tunable(first)
        instances = [first] + ([_load(path) for _ in range(channels - 1)] if mono else [])
        stages.append(Stage(path.stem, path, instances, mono, names,
                            [float(first.parameters[n].raw_value) for n in names]))
    return stages


def parse(chain: str) -> list[str]:
    """``a.vst3,b`` as the names of its plug-ins."""
    return [part for part in (s.strip() for s in chain.split(",")) if part]


def close(stages: list[Stage]) -> None:
    """Delete the instances quietly (DPF warns on stderr when they go)."""
    with zam.quiet():
        for stage in stages:
            stage.instances.clear()
        gc.collect()


# --- rendering and the search -----------------------------------------------------------------


def render(stages: list[Stage], samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """``samples`` (channels, samples) through the chain as it is set (each plug-in reset)."""
    y = np.ascontiguousarray(samples, dtype=np.float32)
    with zam.quiet():
        for stage in stages:
            y = stage(y, sample_rate)
    return y


def set_values(stages: list[Stage], flat: np.ndarray) -> list[list[float]]:
    """Set the chain from one flat normalised vector; returns it per stage."""
    values, i = [], 0
    for stage in stages:
        part = [float(v) for v in flat[i:i + len(stage.parameters)]]
        stage.set(part)
        values.append(part)
        i += len(stage.parameters)
    return values


def crest_db(samples: np.ndarray) -> float:
    """Sample peak over RMS in dB, all channels together (`Analysis.crest_db`)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * math.log10(max(float(np.max(np.abs(samples))), 1e-12) / max(rms, 1e-12))


def chain_loss_db(samples: np.ndarray, sample_rate: int, ref_mid: np.ndarray,
                  ref_crest_db: float) -> float:
    """What the search minimises: `tonal_loss_db`, plus `CREST_WEIGHT` per dB of crest over
    ``ref_crest_db``."""
    error = tonal_loss_db(samples, sample_rate, ref_mid)
    if error >= FAILED_LOSS_DB:
        return error
    return error + CREST_WEIGHT * max(crest_db(samples) - ref_crest_db, 0.0)


def tonal_loss_db(samples: np.ndarray, sample_rate: int, ref_mid: np.ndarray) -> float:
    """The master's tonal-balance error (`pipeline.tonal_error_db`) of ``samples`` to the
    reference's mid bands; `FAILED_LOSS_DB` for a render that is silent or not finite. The
    error removes the mean level, so the loudness the bands are taken against does not
    matter (the finalise sets it)."""
    from automix.mastering.pipeline import tonal_error_db

    if not np.all(np.isfinite(samples)) or not np.any(samples):
        return FAILED_LOSS_DB
    mid = samples.mean(axis=0)
    bands = analysis.tonal_balance_db(mid, sample_rate, 0.0)
    features = _Bands(tuple(float(b) for b in bands))
    error = tonal_error_db(features, ref_mid)  # type: ignore[arg-type]
    return error if math.isfinite(error) else FAILED_LOSS_DB


@dataclass(frozen=True)
class _Bands:
    tonal_mid_db: tuple[float, ...]


def optimise(stages: list[Stage], excerpt: np.ndarray, sample_rate: int, ref_mid: np.ndarray,
             ref_crest_db: float, *, budget_s: float = BUDGET_S, seed: int = 1,
             max_evaluations: int = MAX_EVALUATIONS,
             on_step: Callable[[float, float], None] | None = None) -> Optimised:
    """CMA-ES over the chain's tuned parameters (normalised, within [0, 1]) on ``excerpt``
    toward ``ref_mid`` and ``ref_crest_db`` (`chain_loss_db`) for at most ``budget_s``
    seconds (a generation is never cut), from the plug-ins' own values; leaves the chain set
    to the best found (at most ``max_evaluations`` renders: a stop that does not depend on
    the machine's speed). ``on_step(fraction of the budget spent, best loss)`` after each
    generation."""
    import cma

    x0 = np.array([v for stage in stages for v in stage.start], dtype=np.float64)
    t0 = time.perf_counter()

    def loss(x: np.ndarray) -> float:
        set_values(stages, x)
        error = chain_loss_db(render(stages, excerpt, sample_rate), sample_rate, ref_mid,
                              ref_crest_db)
        return error + START_PULL_DB * float(np.mean(np.square(x - x0))) if x.size else error

    start_error = tonal_loss_db(render(stages, excerpt, sample_rate), sample_rate, ref_mid)
    start = loss(x0)
    best = (start, x0)
    evaluations = 1
    if x0.size >= 2 and budget_s > 0:
        es = cma.CMAEvolutionStrategy(x0, SIGMA0, {
            "bounds": [0.0, 1.0], "seed": seed, "verbose": -9, "maxfevals": max_evaluations})
        while not es.stop() and time.perf_counter() - t0 < budget_s:
            xs = es.ask()
            fs = [loss(np.asarray(x)) for x in xs]
            es.tell(xs, fs)
            evaluations += len(xs)
            i = int(np.argmin(fs))
            if fs[i] < best[0]:
                best = (fs[i], np.asarray(xs[i], dtype=np.float64))
            if on_step is not None:
                on_step(min((time.perf_counter() - t0) / budget_s, 1.0), best[0])
    values = set_values(stages, np.clip(best[1], 0.0, 1.0))
    error = tonal_loss_db(render(stages, excerpt, sample_rate), sample_rate, ref_mid)
    return Optimised(values, start_error, error, evaluations, time.perf_counter() - t0)


def aim(audio: Any, input_analysis: Any, reference: Any, target: Any,
        excerpt: np.ndarray) -> Aim:
    """automix's own master of ``excerpt`` toward ``reference``: the DSP matcher's chain for
    ``audio`` (`match.dsp_match`) rendered on the excerpt, its mid bands and crest factor."""
    from automix.effects import render as own
    from automix.mastering.match import dsp_match

    chain = dsp_match(audio, input_analysis, reference, target)
    aimed = own.master_chain(excerpt, audio.sample_rate, chain)
    bands = analysis.tonal_balance_db(aimed.mean(axis=0), audio.sample_rate, 0.0)
    return Aim(np.asarray(bands, dtype=np.float64), crest_db(aimed))


def excerpt_of(samples: np.ndarray, sample_rate: int, seconds: float = EXCERPT_S) -> np.ndarray:
    start, end = analysis.loudest_excerpt(samples, sample_rate, seconds)
    return np.ascontiguousarray(samples[:, start:end], dtype=np.float32)


def report(stages: list[Stage], found: Optimised) -> dict[str, Any]:
    """The sidecar's part: the chain in order with its found parameters, and its tonal-balance
    error to the aim (automix's own master of the excerpt) before and after the search."""
    return {
        "plugins": [{"plugin": s.name, "file": str(s.path), "mono": s.mono,
                     "parameters": s.found()} for s in stages],
        "aim": "automix's own master (dsp) of the excerpt toward the reference",
        "tonal_balance_error_db": {"defaults": round(found.start_error_db, 3),
                                   "optimised": round(found.error_db, 3)},
        "excerpt_s": EXCERPT_S,
        "evaluations": found.evaluations,
        "seconds": round(found.seconds, 2),
    }


def preset_bytes(stage: Stage, sample_rate: int) -> bytes:
    """The stage's state as a ``.vstpreset`` (a short silence commits the values first; see
    `zam.preset_bytes`)."""
    silence = np.zeros((1 if stage.mono else 2, 64), dtype=np.float32)
    with zam.quiet():
        stage.plugin(silence, float(sample_rate))
    return bytes(stage.plugin.preset_data)


# --- the master -------------------------------------------------------------------------------


def master(audio: Any, reference: Any, target: Any, specs: Sequence[str], *,
           budget_s: float = BUDGET_S, seed: int = 1,
           max_evaluations: int = MAX_EVALUATIONS,
           on_step: Callable[[float, float], None] | None = None
           ) -> tuple[Any, dict[str, Any], list[Stage]]:
    """``audio`` (an `Audio`) mastered through the user's chain ``specs``: its parameters
    optimised toward automix's own master of it toward ``reference`` (`aim`, `optimise`), the
    song rendered through it,
    then finalised to ``target`` (`finalise.finalise`, automix's own chain neutral: a 10-Hz
    high-pass, the rest identities). Returns the `MasterResult` (method "chain"), the chain's
    report (found parameters) and the stages, set (for presets; `close` them)."""
    from automix.audio import Audio
    from automix.mastering.finalise import finalise
    from automix.mastering.pipeline import MasterResult
    from automix.params import MasterChain

    t0 = time.perf_counter()
    sr = audio.sample_rate
    input_analysis = analysis.analyze(audio.samples, sr)
    timings = {"analyse": time.perf_counter() - t0}
    t0 = time.perf_counter()
    excerpt = excerpt_of(audio.samples, sr)
    aimed = aim(audio, input_analysis, reference, target, excerpt)
    timings["aim"] = time.perf_counter() - t0
    stages = load_chain(specs, sr, audio.samples.shape[0])
    found = optimise(stages, excerpt, sr, aimed.tonal_mid_db, aimed.crest_db,
                     budget_s=budget_s, seed=seed, max_evaluations=max_evaluations,
                     on_step=on_step)
    timings["optimise"] = found.seconds
    t0 = time.perf_counter()
    rendered = render(stages, audio.samples, sr)
    settings, out, measured = finalise(Audio(rendered, sr), MasterChain(), target)
    timings["render"] = time.perf_counter() - t0
    result = MasterResult(out, settings, "chain", input_analysis, measured, reference, target,
                          timings_s=timings)
    return result, report(stages, found), stages
