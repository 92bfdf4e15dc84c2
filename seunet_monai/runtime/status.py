"""Status files: a run's progress and results as JSON, rewritten atomically as the run goes, so that tools (the
experiment runner) follow a run by reading one file instead of parsing its log.

Every file holds ``{"state": ..., "updated_utc": ..., ...}`` with a state of :data:`STATES`: ``"running"``;
``"calibrating"`` (training is done and the ``scale`` fusion of ``model.pt`` is being calibrated,
:class:`~seunet_monai.handlers.ScaleFusionCalibration`); ``"finished"`` (only when everything is done);
``"failed"``; ``"interrupted"`` (Ctrl-C; ``error`` says what was kept and how to go on).

Writers: the trainer's :class:`seunet_monai.handlers.RunStatus` (``training_status.json``) and the scale sweep
(``eval/sweep_status.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from seunet_monai.runtime.files import atomic_write_json

__all__ = ["STATES", "read_status", "write_status"]

STATES = ("running", "calibrating", "finished", "failed", "interrupted")


def write_status(path: str | os.PathLike, state: str, **fields: Any) -> Path:
    """Write a status file atomically: ``{"state": state, "updated_utc": now, **fields}``.

    Args:
        path: the JSON file (folders are created).
        state: one of :data:`STATES`.
        fields: JSON-serialisable entries.

    Raises:
        ValueError: for an unknown ``state``.
    """
    if state not in STATES:
        raise ValueError(f"write_status: state must be one of {STATES}, got {state!r}.")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return atomic_write_json(out, {"state": state, "updated_utc": now, **fields})


def read_status(path: str | os.PathLike) -> dict[str, Any] | None:
    """The content of a status file, or ``None`` when it does not exist (yet) or cannot be parsed."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, Mapping) else None
