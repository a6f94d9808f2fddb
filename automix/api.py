"""The Python API: what `automix/__init__.py` exposes, and what the CLI and the service call.

Audio in memory is an `audio.Audio` (``samples`` of shape (channels, samples), float32, and a
``sample_rate``); a song or a reference may also be given as a path. Settings are plain
dataclasses in real units (`settings.MasterSettings`, `settings.MixSettings`).

>>> import automix
>>> song = automix.load("examples/dirty_love.flac")
>>> result = automix.master(song, reference="pop", target="apple")
>>> round(result.output.integrated_lufs)
-16
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from automix import analysis
from automix.album import album as master_album
from automix.analysis import Analysis
from automix.audio import Audio, check_channels
from automix.audio import load as load
from automix.audio import save as save
from automix.export import export_plugins
from automix.files import (
    chain_master_file,
    master_file,
    mix_file,
    suggest_file,
    suggest_mix_file,
)
from automix.live import LiveMaster
from automix.mastering import pipeline
from automix.mastering.pipeline import MasterResult
from automix.references import ReferenceCache, resolve, resolve_reference, resolve_target
from automix.settings import (
    KEEP_BALANCE,
    MASTER_METHOD,
    MIX_METHOD,
    Amounts,
    MasterSettings,
    MixSettings,
    Reference,
    read_master_part,
)

if TYPE_CHECKING:
    from automix.mixing import MixResult

__all__ = ["analyze", "chain_master_file", "export_plugins", "live_master", "load", "master",
           "master_album", "master_chain", "master_file", "mix", "mix_file", "reference", "save",
           "suggest", "suggest_file", "suggest_mix_file"]

AudioLike = Audio | str | os.PathLike


def _audio(song: AudioLike) -> Audio:
    if isinstance(song, Audio):
        return song
    audio = load(song)
    check_channels(Path(song), audio.channels)
    return audio


def analyze(song: AudioLike) -> Analysis:
    """Loudness, loudness range, true peak, crest, PLR, width, tonal balance and warnings."""
    audio = _audio(song)
    return analysis.analyze(audio.samples, audio.sample_rate)


def reference(spec: str | os.PathLike, *, ceiling_dbtp: float | None = None,
              cache: ReferenceCache | None = None) -> Reference:
    """A genre preset by name (see `automix presets`) or a reference file by path."""
    return resolve_reference(str(spec), ceiling_dbtp=ceiling_dbtp, cache=cache)


def master(song: AudioLike, reference: str | Sequence[str] | Reference = "pop", *,
           target: str | None = None, ceiling_dbtp: float | None = None,
           method: str = MASTER_METHOD, settings: MasterSettings | None = None,
           amounts: Amounts | str | None = None, refit_gain: bool = False,
           character: str | None = None, tone_reference: str | None = None,
           dynamics_reference: str | None = None) -> MasterResult:
    """Master ``song`` toward ``reference`` (several are averaged) at the delivery ``target``
    (a platform's name, a loudness in LUFS such as ``"-12"``, or ``"keep"``; default: the
    reference's, or the rendered ``settings``' own), in memory; or render ``settings``
    exactly (see `settings.MasterOptions` for what each option does, ``character`` and the
    tone and dynamics references included). The result holds the audio, the settings and both
    analyses."""
    audio = _audio(song)
    if isinstance(reference, Reference):
        ref = reference
    else:
        ref, _ = resolve(reference, None, ceiling_dbtp=ceiling_dbtp, character=character,
                         tone=tone_reference, dynamics=dynamics_reference)
    tgt = resolve_target(target, ref, ceiling_dbtp=ceiling_dbtp, settings=settings)
    return pipeline.master(audio, ref, tgt, method=method, settings=settings,
                           amounts=_amounts(amounts), refit_gain=refit_gain)


def master_chain(song: AudioLike, chain: str | Sequence[str],
                 reference: str | Reference = "pop", *, target: str | None = None,
                 ceiling_dbtp: float | None = None, seconds: float | None = None
                 ) -> tuple[MasterResult, dict]:
    """Master ``song`` through your own VST3 plug-ins (``"ZamEQ2,ZamCompX2"``, names in the
    VST3 folder or paths): their parameters optimised toward ``reference`` for ``seconds``
    (default `plugins.chain.BUDGET_S`), then finalised to ``target``, in memory. Returns the
    result (method "chain") and the found parameters (what the sidecar's ``chain`` holds)."""
    from automix.plugins import chain as own

    specs = own.parse(chain) if isinstance(chain, str) else list(chain)
    audio = _audio(song)
    ref = _reference(reference, ceiling_dbtp)
    tgt = resolve_target(target, ref, ceiling_dbtp=ceiling_dbtp)
    result, found, stages = own.master(audio, ref, tgt, specs, budget_s=(
        own.BUDGET_S if seconds is None else seconds))
    own.close(stages)
    return result, found


def suggest(song: AudioLike, reference: str | Reference = "pop", *, target: str | None = None,
            ceiling_dbtp: float | None = None, method: str = MASTER_METHOD,
            amounts: Amounts | str | None = None) -> MasterSettings:
    """The settings `master` would use, to edit and render with ``master(song,
    settings=...)``."""
    return master(song, reference, target=target, ceiling_dbtp=ceiling_dbtp, method=method,
                  amounts=amounts).settings


def live_master(settings: MasterSettings | str | os.PathLike, sample_rate: int,
                channels: int = 2) -> LiveMaster:
    """A block processor for a host's audio callback: ``settings`` (or a settings file, a
    mix's master part included) rendered block by block at a fixed latency. Its
    ``process(block)`` takes (channels, n) float32 of any n and returns n samples: the
    offline render (`master` with ``settings``) delayed by ``latency`` samples; ``flush()``
    returns the last ``latency`` at the end of a stream. Blocks up to `live.MAX_BLOCK` cost
    the same per sample; larger ones are cut.

    >>> live = automix.live_master("settings.json", 48000)
    >>> live.latency, round(live.latency_ms, 1)
    (439, 9.1)
    """
    if not isinstance(settings, MasterSettings):
        settings = read_master_part(Path(settings))[0]
    return LiveMaster(settings, sample_rate, channels)


def mix(stems_dir: str | os.PathLike, reference: str | Reference = "pop", *,
        target: str | None = None, ceiling_dbtp: float | None = None, method: str = MIX_METHOD,
        settings: MixSettings | None = None, amounts: Amounts | str | None = None,
        refine_steps: int = 0, keep_balance: float = KEEP_BALANCE,
        roles: dict[str, str] | None = None) -> MixResult:
    """Mix a folder of stems toward ``reference`` and master the bus, in memory; or render
    `settings.MixSettings` exactly. ``keep_balance`` (0..1) keeps that much of the stems' own
    balance; ``roles`` maps stem file names to roles (`mixing.roles.ROLES`)."""
    from automix.mixing import load_stems
    from automix.mixing import mix as run_mix
    from automix.mixing.roles import check_roles
    from automix.mixing.stems import with_roles

    stems, sample_rate, warnings = load_stems(stems_dir)
    given = {**(settings.roles if settings else {}), **check_roles(dict(roles or {}),
                                                                  where="roles")}
    stems = with_roles(stems, given)
    if settings is not None and not settings.stems:  # a settings file of roles only
        settings = None
    ref = _reference(reference, ceiling_dbtp)
    tgt = resolve_target(target, ref, ceiling_dbtp=ceiling_dbtp,
                         settings=settings.master if settings is not None else None)
    return run_mix(stems, sample_rate, ref, tgt, method=method, settings=settings,
                   amounts=_amounts(amounts), load_warnings=warnings, refine_steps=refine_steps,
                   keep_balance=keep_balance)


def _reference(spec: str | Reference, ceiling_dbtp: float | None) -> Reference:
    if isinstance(spec, Reference):
        return spec
    return resolve_reference(str(spec), ceiling_dbtp=ceiling_dbtp)


def _amounts(amounts: Amounts | str | None) -> Amounts:
    return amounts if isinstance(amounts, Amounts) else Amounts.parse(amounts)
