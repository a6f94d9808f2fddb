"""automix: automatic mixing and mastering toward a reference production.

The Python API (see the README)::

    import automix

    song = automix.load("song.wav")
    result = automix.master(song, reference="pop", target="apple")
    automix.save("song_master.wav", result.audio)

Names are imported on first use, so that ``import automix`` (and the command line's start)
stays light: numpy, pedalboard and torch load only when a function that needs them runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    # functions (automix.api)
    **dict.fromkeys(("analyze", "chain_master_file", "export_plugins", "live_master", "load",
                     "master_album", "master", "master_chain", "master_file", "mix", "mix_file",
                     "reference", "save", "suggest", "suggest_file", "suggest_mix_file"),
                    "automix.api"),
    # settings, options and results
    **dict.fromkeys(("Amounts", "MasterOptions", "MasterSettings", "MixOptions", "MixSettings",
                     "OutputOptions", "Reference"), "automix.settings"),
    "Audio": "automix.audio",
    "LiveMaster": "automix.live",
    "Analysis": "automix.analysis",
    "MasterResult": "automix.mastering.pipeline",
    "MixResult": "automix.mixing.pipeline",
    "ReferenceCache": "automix.references",
    "AutomixError": "automix.errors",
}
__all__ = [
    "Amounts", "Analysis", "Audio", "AutomixError", "LiveMaster", "MasterOptions", "MasterResult",
    "MasterSettings", "MixOptions", "MixResult", "MixSettings", "OutputOptions", "Reference",
    "ReferenceCache", "analyze", "chain_master_file", "export_plugins", "live_master", "load",
    "master_album", "master", "master_chain", "master_file", "mix", "mix_file", "reference", "save",
    "suggest", "suggest_file", "suggest_mix_file",
]

if TYPE_CHECKING:
    from automix.analysis import Analysis
    from automix.api import (
        analyze,
        chain_master_file,
        export_plugins,
        live_master,
        load,
        master,
        master_album,
        master_chain,
        master_file,
        mix,
        mix_file,
        reference,
        save,
        suggest,
        suggest_file,
        suggest_mix_file,
    )
    from automix.audio import Audio
    from automix.errors import AutomixError
    from automix.live import LiveMaster
    from automix.mastering.pipeline import MasterResult
    from automix.mixing.pipeline import MixResult
    from automix.references import ReferenceCache
    from automix.settings import (
        Amounts,
        MasterOptions,
        MasterSettings,
        MixOptions,
        MixSettings,
        OutputOptions,
        Reference,
    )


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'automix' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
