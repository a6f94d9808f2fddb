"""Loudness-matched previews for a fair A/B: louder always sounds better, so compare equals.

The loudest ``PREVIEW_S`` seconds of the result (and the same stretch of the input), and the
reference's loudest stretch, are all set to one loudness: the input's own (what the artist
hears today), lowered only where needed so that none peaks above ``PREVIEW_CEILING_DBTP``.
The result is also written at its delivered level (``result_delivered``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from automix import loudness
from automix.analysis import loudest_excerpt
from automix.audio import Audio, all_or_nothing, save

PREVIEW_S = 30.0
PREVIEW_CEILING_DBTP = -1.0
# the files `write_previews` may write, ``<name>.wav`` each (reference only with one)
PREVIEW_NAMES = ("input", "result", "reference", "result_delivered")


def preview_excerpts(source: Audio, result: Audio, reference: Audio | None) -> dict[str, Audio]:
    """Excerpts named input, result, reference (if given) and result_delivered."""
    start, end = loudest_excerpt(result.samples, result.sample_rate, PREVIEW_S)
    clips = {"input": Audio(source.samples[:, start:end], source.sample_rate),
             "result": Audio(result.samples[:, start:end], result.sample_rate)}
    if reference is not None:
        r0, r1 = loudest_excerpt(reference.samples, reference.sample_rate, PREVIEW_S)
        clips["reference"] = Audio(reference.samples[:, r0:r1], reference.sample_rate)
    levels = {k: loudness.integrated_lufs(a.samples, a.sample_rate) for k, a in clips.items()}
    peaks = {k: loudness.true_peak_dbtp(a.samples, a.sample_rate) for k, a in clips.items()}
    common = min(levels["input"], min(PREVIEW_CEILING_DBTP - (peaks[k] - levels[k]) for k in clips))
    matched = {k: Audio((a.samples * np.float32(10 ** ((common - levels[k]) / 20))).astype(
        np.float32), a.sample_rate) for k, a in clips.items()}
    matched["result_delivered"] = clips["result"]
    return matched


def write_previews(folder: Path, source: Audio, result: Audio,
                   reference: Audio | None) -> dict[str, Path]:
    """Write the previews as 24-bit WAV files in ``folder`` (created); return their paths.
    All or none: a failure removes the previews already written (and the folder if new)."""
    clips = preview_excerpts(source, result, reference)
    with all_or_nothing() as written:
        if not folder.is_dir():
            folder.mkdir(parents=True)
            written.append(folder)
        paths = {}
        for name, clip in clips.items():
            paths[name] = save(folder / f"{name}.wav", clip)
            written.append(paths[name])
    return paths
