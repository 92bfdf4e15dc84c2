"""The files of a scale sweep in its ``eval_dir``: CSV tables, figures, Markdown, TensorBoard scalars and
``scale_sweep.json`` (written last: it marks a finished run)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from seunet_monai.evaluation import plots
from seunet_monai.evaluation.equivariance import EQUIVARIANCE_COLUMNS, EQUIVARIANCE_MATRIX_COLUMNS
from seunet_monai.evaluation.report import SWEEP_COLUMNS, sweep_markdown, write_csv_rows
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.runtime.files import atomic_write_json, atomic_write_text

__all__ = ["OUTPUT_FILES", "write_outputs"]

OUTPUT_FILES = (
    "scale_sweep.csv",
    "scale_sweep.json",
    "scale_sweep.md",
    "iou_vs_scale.png",
    "equivariance.csv",
    "equivariance_matrix.csv",
    "equivariance.png",
    "sigmas.png",
    "filters.png",
    "examples.png",
)


def write_outputs(
    eval_dir: Path,
    network: torch.nn.Module,
    rows: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    metadata: dict[str, Any],
    eq_rows: list[dict[str, Any]],
    eq_matrix_rows: list[dict[str, Any]],
    eq_matrices: dict[float, np.ndarray],
    examples: list[dict[str, Any]],
    tensorboard: bool,
) -> list[str]:
    files = []
    files.append(write_csv_rows(eval_dir / "scale_sweep.csv", rows, SWEEP_COLUMNS))
    files.append(write_csv_rows(eval_dir / "equivariance.csv", eq_rows, EQUIVARIANCE_COLUMNS))
    files.append(write_csv_rows(eval_dir / "equivariance_matrix.csv", eq_matrix_rows, EQUIVARIANCE_MATRIX_COLUMNS))
    files.append(
        plots.plot_iou_vs_scale(rows, eval_dir / "iou_vs_scale.png", title=f"{metadata['model']}: IoU vs scale")
    )
    if eq_rows:
        files.append(plots.plot_equivariance(eq_rows, eq_matrices, eval_dir / "equivariance.png"))
    else:
        files.append(
            plots.plot_message(eval_dir / "equivariance.png", "equivariance", "equivariance_images = 0: not measured")
        )
    multihead = isinstance(network, MultiHeadNetwork)
    sigmas = network.sigmas() if multihead else None
    if sigmas:
        files.append(plots.plot_sigmas(sigmas, network.sigma_bounds(), eval_dir / "sigmas.png"))
    else:
        files.append(
            plots.plot_message(eval_dir / "sigmas.png", "learned σ", f"{type(network).__name__} has no learned σ")
        )
    with torch.no_grad():
        filters = network.first_layer_filters() if multihead else None
    if filters is not None:
        files.append(plots.plot_filters(filters, eval_dir / "filters.png"))
    else:
        files.append(
            plots.plot_message(
                eval_dir / "filters.png", "first-layer filters", f"{type(network).__name__} has no scale-group filters"
            )
        )
    files.append(plots.plot_examples(examples, eval_dir / "examples.png"))
    if tensorboard:
        _write_tensorboard(eval_dir / "tensorboard", rows, summary, eq_rows)
    files.append(atomic_write_text(eval_dir / "scale_sweep.md", sweep_markdown(rows, metadata, eq_rows)))
    payload = {
        **metadata,
        "rows": rows,
        "summary": summary,
        "equivariance": eq_rows,
        "equivariance_matrix": {f"{s:.6g}": m.tolist() for s, m in eq_matrices.items()},
    }
    files.append(atomic_write_json(eval_dir / "scale_sweep.json", _json_safe(payload)))  # last: marks a finished run
    return [str(f) for f in files]


def _write_tensorboard(
    log_dir: Path, rows: list[dict[str, Any]], summary: list[dict[str, Any]], eq_rows: list[dict[str, Any]]
) -> None:
    """Scalars per strategy against the scale (step = round(100 · s), i.e. the scale in percent)."""
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for r in rows:
            step = int(round(100 * r["scale"]))
            for k in ("iou", "iou_per_image", "dice", "pq", "aji", "f1", "count_ratio"):
                if r.get(k) is not None and not math.isnan(r[k]):
                    writer.add_scalar(f"sweep/{k}/{r['strategy']}", r[k], step)
        for e in eq_rows:
            writer.add_scalar("sweep/equivariance_error", e["equivariance_error"], int(round(100 * e["scale"])))
        for s in summary:
            if not math.isnan(s["iou_mean"]):
                writer.add_scalar(f"sweep_mean_over_scales/iou/{s['strategy']}", s["iou_mean"], 0)
        writer.add_text("sweep/about", "step = test scale x 100; iou = dataset-wide confusion IoU", 0)
    finally:
        writer.close()


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    return obj
