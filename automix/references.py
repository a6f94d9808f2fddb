"""What a song is moved toward: a genre preset or a reference file, and the delivery target.

`resolve_reference` turns what the user typed (``--reference pop`` or a path) into a
`settings.Reference`; `resolve_target` picks the delivery loudness and ceiling. A process that
masters many songs against one reference file (a batch worker, a service worker) owns a
`ReferenceCache` and passes it in, so the file is analysed once; nothing is cached otherwise.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from automix import analysis, presets
from automix.analysis import Analysis
from automix.audio import check_channels, load
from automix.errors import SettingsError
from automix.presets import Target
from automix.settings import Reference

DEFAULT_CEILING_DBTP = -1.0
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


def reference_file(spec: str) -> Path | None:
    """The audio file ``spec`` names, when it is an existing file and not a preset's name."""
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
        raise SettingsError(f"unknown reference {spec!r}: not a preset ({', '.join(names)}) "
                            "and no such file")
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


def resolve_target(name: str | None, reference: Reference, *,
                   ceiling_dbtp: float | None = None) -> Target:
    """The named delivery target, else the reference's; ``ceiling_dbtp`` overrides either."""
    target = presets.load_target(name) if name else reference.target
    if ceiling_dbtp is not None:
        low, high = presets.CEILING_RANGE_DBTP
        if not low <= ceiling_dbtp <= high:
            raise SettingsError(f"--ceiling must be in [{low:g}, {high:g}] dBTP; "
                                f"got {ceiling_dbtp:g}")
        target = replace(target, ceiling_dbtp=ceiling_dbtp)
    return target


def resolve(spec: str, target: str | None, *, ceiling_dbtp: float | None = None,
            analysed: Analysis | None = None, cache: ReferenceCache | None = None,
            character: str | None = None) -> tuple[Reference, Target]:
    """`resolve_reference`, moved by ``character`` (`automix.character`), and then
    `resolve_target` with it: what every master and mix starts from."""
    from automix import character as characters

    reference = resolve_reference(spec, ceiling_dbtp=ceiling_dbtp, analysed=analysed,
                                  cache=cache)
    reference = characters.apply(reference, characters.parse(character))
    return reference, resolve_target(target, reference, ceiling_dbtp=ceiling_dbtp)
