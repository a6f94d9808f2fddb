"""Mastering: analyse -> suggest -> finalise -> render -> verify.

- `match`: suggesting the master chain (the DSP matcher, the analysis network)
- `finalise`: the gain to the delivery loudness, the true-peak limiter, exact re-renders
- `pipeline`: the one pipeline (`run`), its in-memory stages and `master`, `MasterResult`
- `streaming`: the same pipeline's stages for files too long to hold, in blocks

The chain is `params.MasterChain` (high-pass, EQ, compressor, width) rendered by pedalboard,
then a gain to the delivery target's loudness and a true-peak limiter.
"""

from automix.mastering.finalise import render_master
from automix.mastering.pipeline import MasterResult, master

__all__ = ["MasterResult", "master", "render_master"]
