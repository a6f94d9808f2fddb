"""What both trainers share: their configs, their logs and the start of a run.

`start_run` is the one place that sets torch's thread count, and only the trainers' entry
points (`master.train`, `stems.train`) call it: inference never changes process settings.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from automix.errors import SettingsError


def load_config(config: str | Path, configs: dict[str, Any]) -> Any:
    """A named config of ``configs`` ("default", "tiny") or a JSON file of fields that replace
    the default's."""
    if str(config) in configs:
        return configs[str(config)]
    if not Path(config).is_file():
        raise SettingsError(f"unknown training config {str(config)!r}; "
                            f"use {', '.join(configs)} or a JSON file")
    values = json.loads(Path(config).read_text())
    return dataclasses.replace(configs["default"], **values)


def start_run(out_dir: str | Path, threads: int | None) -> Path:
    """Set torch's CPU threads (``threads``; None: torch's own) and make ``out_dir``."""
    if threads is not None:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


class JsonLog:
    """JSON-lines log of losses, one object per logged step."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w")

    def write(self, **row: Any) -> None:
        self.file.write(json.dumps({k: (round(v, 6) if isinstance(v, float) else v)
                                    for k, v in row.items()}) + "\n")
        self.file.flush()
