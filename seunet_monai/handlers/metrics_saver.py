"""Saving an engine's metrics to a JSON file, atomically, with the run information next to them.

Ours rather than MONAI's ``MetricsSaver``: that writes ``metrics.csv`` (``name<delimiter>value`` lines) by
opening the final file and writing into it, so an interrupted run leaves a partial file under the final name,
and it has no place for the run information (checkpoint, dataset, split, scale) that the experiment runner and
``scripts/compare.py`` read back. Here one JSON file is written through
:func:`seunet_monai.runtime.files.atomic_write_json`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from seunet_monai.runtime.distributed import is_main_process
from seunet_monai.runtime.files import atomic_write_json

__all__ = ["save_metrics"]

logger = logging.getLogger(__name__)


def save_metrics(engine: Any, path: str | os.PathLike, **extra: Any) -> Path:
    """Write ``engine.state.metrics`` (plus ``extra`` run information) to a JSON file, atomically.

    Only the main process writes.

    Args:
        engine: an Ignite engine that has run (e.g. the evaluator).
        path: the JSON file to write (folders are created).
        extra: more JSON-serialisable entries (checkpoint, dataset, split, ...).

    Returns:
        ``path``.
    """
    metrics = {
        k: (float(v) if isinstance(v, (int, float)) or torch.is_tensor(v) and v.numel() == 1 else v)
        for k, v in engine.state.metrics.items()
    }
    out = Path(path)
    if is_main_process():
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            out, {"metrics": metrics, **{k: str(v) if isinstance(v, os.PathLike) else v for k, v in extra.items()}}
        )
        logger.info(f"metrics written to {out}: {metrics}")
    return out
