"""Mixing: load stems -> suggest per-stem settings -> render -> sum -> master the bus.

- `stems`: loading a folder of stems at one rate and length; measuring them as they play
- `roles`: what each stem is, and each role's starting settings
- `balance`: the role balance, the stem network's suggestions, the level fit to the reference
- `refine`: gains, EQ, pans and sends refined through the twin (optional)
- `render`: each stem through its chain, summed with the shared reverb bus
- `pipeline`: `suggest_mix`, `mix` and `MixResult`
"""

from automix.mixing.pipeline import MixResult, mix, suggest_mix
from automix.mixing.stems import Stem, load_stems

__all__ = ["MixResult", "Stem", "load_stems", "mix", "suggest_mix"]
