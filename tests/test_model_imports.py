"""`automix.model` is inference only: it never imports `automix.training` (nor the modules
that import it back), so the networks load without the training code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import automix

ROOT = str(Path(automix.__file__).parent.parent)  # the automix under test, in the subprocess too

ALL_MODEL_MODULES = ("import pkgutil, importlib, automix.model; "
                     "[importlib.import_module('automix.model.' + m.name) "
                     "for m in pkgutil.iter_modules(automix.model.__path__)]")


def _loaded_after(code: str) -> set[str]:
    """The automix modules loaded in a fresh interpreter after ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", code + "; import sys; "
         "print(' '.join(m for m in sys.modules if m.startswith('automix')))"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])})
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert code.split()[-1].rstrip(";") in loaded or "pkgutil" in code, loaded
    return loaded


@pytest.mark.parametrize("code", [ALL_MODEL_MODULES, "import automix.model.predict",
                                  "import automix.model.stem_net"])
def test_inference_never_imports_training(code: str) -> None:
    loaded = _loaded_after(code)
    assert not {m for m in loaded if m == "automix.training" or
                m.startswith("automix.training.")}, loaded


def test_stem_inference_imports_neither_mixing_nor_the_role_table() -> None:
    """No cycle through `automix.mixing` (which imports the stem network), and the role
    vocabulary comes from the weights' JSON, not `automix.mixing.roles`."""
    loaded = _loaded_after("import automix.model.stem_net")
    assert not loaded & {"automix.mixing", "automix.mastering"}, loaded


def test_every_model_module_imports_alone() -> None:
    """Each module imports by itself in a fresh interpreter (no import cycle needs another
    module loaded first)."""
    import pkgutil

    import automix.model

    for m in pkgutil.iter_modules(automix.model.__path__):
        _loaded_after(f"import automix.model.{m.name}")
