"""What a song is moved toward: a genre preset or a reference file, and the delivery target.

`resolve_reference` turns what the user typed (``--reference pop`` or a path) into a
`settings.Reference`; `resolve_target` picks the delivery loudness and ceiling. A process that
masters many songs against one reference file (a batch worker, a service worker) owns a
`ReferenceCache` and passes it in, so the file is analysed once; nothing is cached otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from automix import analysis, presets
from automix.analysis import Analysis
from automix.audio import check_channels, load
from automix.errors import SettingsError, did_you_mean
from automix.presets import DEFAULT_CEILING_DBTP, Target
from automix.settings import MasterSettings, Reference

# A reference file's loudness is partly its arrangement (a battle theme is louder than a
# ballad of the same album): it is followed only as far as the limiter takes at most this off
# the song's loudest peak; a named delivery target (--target) is reached whatever it takes.
REFERENCE_MAX_LIMITING_DB = 4.0


class ReferenceCache:
    """Analyses of reference files, by path, size and modification time (a file changed in
    place is a new one); at most ``size`` of them, the oldest dropped first."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._analyses: dict[tuple[str, int, int], Analysis] = {}

    @staticmethod
    def _key(path: Path) -> tuple[str, int, int]:
        stat = path.stat()
        return str(path.resolve()), stat.st_size, stat.st_mtime_ns

    def get(self, path: Path) -> Analysis | None:
        return self._analyses.get(self._key(path))

    def put(self, path: Path, analysis: Analysis) -> None:
        if len(self._analyses) >= self.size:
            del self._analyses[next(iter(self._analyses))]
        self._analyses[self._key(path)] = analysis


def preset_names() -> list[str]:
    return [g.name for g in presets.list_genres()]


def reference_file(spec: str | Sequence[str]) -> Path | None:
    """The audio file ``spec`` names, when it is an existing file and not a preset's name
    (None for several references)."""
    if not isinstance(spec, str):
        return None
    path = Path(spec)
    return path if spec not in preset_names() and path.is_file() else None


def resolve_reference(spec: str, *, ceiling_dbtp: float | None = None,
                      analysed: Analysis | None = None,
                      cache: ReferenceCache | None = None) -> Reference:
    """A genre preset by name, else an audio file by path: analysed here, unless ``analysed``
    is its analysis already made or ``cache`` holds it. Its delivery target is the file's own
    loudness at ``ceiling_dbtp`` (default -1 dBTP)."""
    names = preset_names()
    if spec in names:
        profile = presets.load_genre(spec)
        root = presets.PRESETS_DIR.parent
        sources = tuple(p for p in (root / s for s in profile.sources) if p.exists())
        return Reference(spec, "preset", Analysis.from_dict(profile.features),
                         presets.load_target(profile.target), sources)
    path = Path(spec)
    if not path.exists():
        raise SettingsError(f"unknown reference {spec!r}{did_you_mean(spec, names)}: not a "
                            f"preset ({', '.join(names)}) and no such file")
    if analysed is None and cache is not None:
        analysed = cache.get(path)
    if analysed is None:
        ref = load(path)
        check_channels(path, ref.channels)
        analysed = analysis.analyze(ref.samples, ref.sample_rate)
    if cache is not None:
        cache.put(path, analysed)
    features = analysed.rounded()
    ceiling = DEFAULT_CEILING_DBTP if ceiling_dbtp is None else ceiling_dbtp
    target = Target(name=f"reference loudness ({path.name})",
                    integrated_lufs=round(features.integrated_lufs, 2), ceiling_dbtp=ceiling,
                    description="the reference's own integrated loudness",
                    max_limiting_db=REFERENCE_MAX_LIMITING_DB)
    return Reference(path.stem, "file", features, target, (path,))


def average(references: Sequence[Reference]) -> Reference:
    """Several references as one, averaged the way a genre preset is built
    (`presets.average_features`); its delivery target is theirs when they share one, else the
    mean loudness at the lowest ceiling."""
    if len(references) == 1:
        return references[0]
    features = Analysis.from_dict(presets.average_features(
        [r.features.to_dict(digits=None) for r in references]))
    targets = [r.target for r in references]
    target = targets[0] if all(t == targets[0] for t in targets) else Target(
        name="mean of the references' loudness",
        integrated_lufs=round(float(np.mean([t.integrated_lufs for t in targets])), 2),
        ceiling_dbtp=min(t.ceiling_dbtp for t in targets),
        description="the mean of the references' delivery loudness",
        max_limiting_db=(REFERENCE_MAX_LIMITING_DB
                         if any(t.max_limiting_db is not None for t in targets) else None))
    return Reference("+".join(r.name for r in references), "average", features, target,
                     tuple(p for r in references for p in r.sources))


def split(reference: Reference, tone: Reference | None,
          dynamics: Reference | None) -> Reference:
    """``reference`` with its tonal balance (mid and side) from ``tone`` and its dynamics and
    image (crest, PLR, loudness range, width) from ``dynamics``, where given."""
    if tone is None and dynamics is None:
        return reference
    features, parts = reference.features, []
    if tone is not None:
        features = replace(features, tonal_mid_db=tone.features.tonal_mid_db,
                           tonal_side_db=tone.features.tonal_side_db)
        parts.append(f"tone: {tone.name}")
    if dynamics is not None:
        d = dynamics.features
        features = replace(features, crest_db=d.crest_db, plr_db=d.plr_db,
                           loudness_range_lu=d.loudness_range_lu, width=d.width)
        parts.append(f"dynamics: {dynamics.name}")
    return replace(reference, name=f"{reference.name} ({', '.join(parts)})", features=features)


def resolve_target(name: str | None, reference: Reference, *,
                   ceiling_dbtp: float | None = None,
                   settings: MasterSettings | None = None) -> Target:
    """The delivery target ``name`` gives (see `presets.load_target`: a platform, a loudness
    in LUFS, ``keep``, a file); else, when ``settings`` are rendered, their own loudness and
    ceiling; else the reference's. ``ceiling_dbtp`` overrides any of them."""
    if name:
        target = presets.load_target(name)
    elif settings is not None:
        target = Target(name="from the settings",
                        integrated_lufs=settings.target_lufs,
                        ceiling_dbtp=settings.limiter.ceiling_dbtp,
                        description="the loudness and ceiling stored in the settings")
    else:
        target = reference.target
    if ceiling_dbtp is not None:
        low, high = presets.CEILING_RANGE_DBTP
        if not low <= ceiling_dbtp <= high:
            raise SettingsError(f"--ceiling must be in [{low:g}, {high:g}] dBTP; "
                                f"got {ceiling_dbtp:g}")
        target = replace(target, ceiling_dbtp=ceiling_dbtp)
    return target


def resolve(spec: str | Sequence[str], target: str | None, *,
            ceiling_dbtp: float | None = None, settings: MasterSettings | None = None,
            analysed: Analysis | None = None, cache: ReferenceCache | None = None,
            character: str | None = None, tone: str | None = None,
            dynamics: str | None = None) -> tuple[Reference, Target]:
    """`resolve_reference` (several ``spec`` are averaged, `average`), its tonal balance from
    ``tone`` and its dynamics from ``dynamics`` (`split`), moved by ``character``
    (`automix.character`), and then `resolve_target` with it (and the rendered ``settings``):
    what every master and mix starts from. ``analysed`` is the analysis of a single reference
    file."""
    from automix import character as characters

    specs = [spec] if isinstance(spec, str) else list(spec)
    if not specs:
        raise SettingsError("give at least one reference")
    one = dict(ceiling_dbtp=ceiling_dbtp, cache=cache)
    reference = average([resolve_reference(s, analysed=analysed if len(specs) == 1 else None,
                                           **one) for s in specs])
    reference = split(reference, resolve_reference(tone, **one) if tone else None,
                      resolve_reference(dynamics, **one) if dynamics else None)
    reference = characters.apply(reference, characters.parse(character))
    return reference, resolve_target(target, reference, ceiling_dbtp=ceiling_dbtp,
                                     settings=settings)
