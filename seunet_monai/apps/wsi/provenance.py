"""What made the outputs of an input, recorded in its summary and compared when a run finds them finished.

A record (the summary's ``provenance``) holds the model file and its SHA-256, the bundle version, the fusion, the
stain normalisation and its reference, the run's settings, and the input file's name, size and modification
time (:func:`input_file_record`). Finished outputs count as this run's only when the entries named by
``compared`` are equal (:func:`check_recorded`); the differences are named leaf by leaf (:func:`differences`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from seunet_monai.errors import ExistingPathError
from seunet_monai.runtime.distributed import unwrap
from seunet_monai.runtime.files import file_sha256

__all__ = [
    "bundle_version",
    "check_recorded",
    "differences",
    "input_file_record",
    "read_recorded",
    "run_record",
]


def bundle_version(metadata_file: str | os.PathLike) -> str | None:
    """The bundle's ``version`` from its ``metadata.json`` (``None`` when absent), recorded in the summaries."""
    value = json.loads(Path(metadata_file).read_text()).get("version")
    return None if value is None else str(value)


def differences(old: Any, new: Any, key: str = "") -> list[str]:
    """``"key: old -> new"`` for every leaf of two JSON-like records that differs (dicts compared key by key; long
    values shortened)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for k in sorted(set(old) | set(new), key=str)
            for d in differences(old.get(k), new.get(k), f"{key}.{k}" if key else str(k))
        ]

    def short(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."

    return [] if old == new else [f"{key}: {short(old)} -> {short(new)}"]


def run_record(
    network: torch.nn.Module,
    checkpoint: str | os.PathLike | None,
    bundle_version: str | None,
    stain_transform: Any,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The input-independent part of a provenance record, as read back from a summary (JSON types).

    Args:
        network: the network (its ``fusion``).
        checkpoint: the model file (its path and SHA-256), ``None`` for the network's own weights.
        bundle_version: the bundle's version.
        stain_transform: the per-window stain normaliser (its ``describe()``), or ``None``.
        settings: the run's settings.
    """
    net = unwrap(network)
    stain = None
    if stain_transform is not None and hasattr(stain_transform, "describe"):
        stain = {k: v for k, v in stain_transform.describe().items() if k != "fallback_count"}
    record = {
        "model_file": None if checkpoint is None else str(Path(checkpoint).expanduser().resolve()),
        "model_sha256": None if checkpoint is None else file_sha256(Path(checkpoint).expanduser()),
        "bundle_version": bundle_version,
        "fusion": None if getattr(net, "fusion", None) is None else str(net.fusion),
        "stain_normalisation": stain or {"method": "none"},
        "settings": settings,
    }
    return json.loads(json.dumps(record, default=str))


def input_file_record(path: Path) -> dict[str, Any]:
    """``{"name", "size_bytes", "mtime_ns"}`` of the input file at ``path``."""
    stat = path.stat()
    return {"name": path.name, "size_bytes": int(stat.st_size), "mtime_ns": int(stat.st_mtime_ns)}


def read_recorded(summary_file: Path) -> dict | None:
    """The ``provenance`` of a summary file, ``None`` when it cannot be read or has none."""
    try:
        recorded = json.loads(summary_file.read_text(encoding="utf-8")).get("provenance")
    except (OSError, ValueError, AttributeError):
        return None
    return recorded if isinstance(recorded, dict) else None


def check_recorded(name: str, output_dir: Path, recorded: dict | None, current: dict, compared: Sequence[str]) -> None:
    """Refuse finished outputs of input ``name`` whose ``recorded`` provenance differs from ``current`` in an entry
    of ``compared``.

    Raises:
        ExistingPathError: naming the differences and the fix.
    """
    if recorded is None:
        diffs = ["no provenance recorded (written by an older version, or not by this workflow)"]
    else:
        diffs = differences({k: recorded.get(k) for k in compared}, {k: current[k] for k in compared})
    if diffs:
        raise ExistingPathError(
            f"the finished outputs of {name} in {str(output_dir)!r} were made with other settings or "
            f"from another input ({'; '.join(diffs)}): pass --overwrite true to redo them, or choose another "
            "--output_dir."
        )
