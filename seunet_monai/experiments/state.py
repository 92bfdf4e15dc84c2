"""The files an experiment keeps in a variant's folder: the runner's state (``experiment_state.json``), the status
files the bundle's runs write (read, never parsed from logs), and their JSON and time formats."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seunet_monai.runtime.files import atomic_write_text

__all__ = [
    "STATE_FILE",
    "SWEEP_STATUS",
    "TRAINING_STATUS",
    "fmt_time",
    "read_json",
    "write_json",
]

STATE_FILE = "experiment_state.json"
TRAINING_STATUS = "training_status.json"
"""Status file of a training run in its ``output_dir`` (written by :class:`seunet_monai.handlers.RunStatus`)."""

SWEEP_STATUS = "eval/sweep_status.json"
"""Status file of an evaluation's scale sweep in its ``output_dir`` (:class:`seunet_monai.evaluation.sweep.ScaleSweep`)."""


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def fmt_time(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
