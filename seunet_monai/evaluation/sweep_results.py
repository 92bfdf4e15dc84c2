"""What a scale sweep (:class:`~seunet_monai.evaluation.sweep.ScaleSweep`) accumulates over the test images and
how it becomes its results in ``eval_dir``.

- :class:`SweepState`: the running scores, calibrated scale estimates, equivariance sums, examples and timings.
- :func:`prepare_eval_dir`: the evaluation folder; earlier results archived, refused or replaced (``if_exists``:
  ``"archive"`` moves ``scale_sweep.*``, the figures, :data:`STATUS_FILE` and ``tensorboard/`` into
  ``eval/archive/<UTC time>/``, ``"error"`` raises ``FileExistsError``, ``"overwrite"`` replaces them).
- :func:`write_results`: the table rows, the equivariance tables, the scale-estimation and instance records and
  the ``scale_sweep.json`` metadata, written by :func:`seunet_monai.evaluation.outputs.write_outputs`
  (``scale_sweep.json`` last: it marks a finished run).
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seunet_monai.evaluation.equivariance import equivariance_rows, group_partners
from seunet_monai.evaluation.heads import num_heads
from seunet_monai.evaluation.instance_scoring import INSTANCE_COLUMNS, InstanceScoring, instance_columns
from seunet_monai.evaluation.outputs import OUTPUT_FILES, write_outputs
from seunet_monai.evaluation.report import strategy_names, summarise
from seunet_monai.fusion.scale import ScaleProfile
from seunet_monai.metrics import SegmentationScores, scale_correlation
from seunet_monai.networks.base import MultiHeadNetwork, last_layer_log_sigmas

__all__ = ["IF_EXISTS", "STATUS_FILE", "SweepState", "peak_rss_mb", "prepare_eval_dir", "write_results"]

IF_EXISTS = ("error", "archive", "overwrite")
#: Progress and results of a sweep in its ``eval_dir``, rewritten atomically after every image.
STATUS_FILE = "sweep_status.json"


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


@dataclass
class SweepState:
    """What a sweep accumulates over the images (one image's probabilities are never kept), per scale ``s`` and
    strategy ``st`` where keyed so."""

    scales: list[float]
    omega: int
    strategies: list[str]
    profile: ScaleProfile | None
    log_sigmas: torch.Tensor
    sigma_source: str
    partners: dict[float, tuple[torch.Tensor, torch.Tensor]]
    example_at: set[float]
    scores: dict[tuple[float, str], SegmentationScores] = field(default_factory=dict)
    num_classes: int | None = None
    spatial_dims: int | None = None
    roi: tuple[int, ...] = ()
    names: list[str] = field(default_factory=list)
    calibrated_est: list[np.ndarray] = field(default_factory=list)  # per image (S,) "scale" fusion estimate
    examples: list[dict[str, Any]] = field(default_factory=list)
    windowed: dict[float, tuple[int, ...]] = field(default_factory=dict)  # scales cut into windows (last size)
    time_per_scale: dict[float, float] = field(default_factory=dict)
    eq_sum: dict[float, torch.Tensor] = field(default_factory=dict)
    eq_delta: dict[float, list[float]] = field(default_factory=dict)
    eq_images: int = 0
    instance_scales: set[float] = field(default_factory=set)
    instance_strategies: list[str] = field(default_factory=list)
    instances: InstanceScoring | None = None
    instance_images: int = 0
    instance_skipped: int = 0
    aux_channels: int = 0  # the network's separation channels, when the sweep uses them

    @classmethod
    def start(
        cls,
        network: torch.nn.Module,
        scales: Sequence[float],
        *,
        partner_tolerance: float,
        example_scales: Sequence[float] | None = None,
        instance_scales: Sequence[float] = (),
        instance_strategies: Sequence[str] | str | None = None,
        separation: str | None = None,
    ) -> SweepState:
        """The empty state of a sweep of ``network`` over ``scales`` (the settings of
        :class:`~seunet_monai.evaluation.sweep.ScaleSweep`); ``aux_channels`` is the network's number of separation
        maps when ``separation`` is set, else 0.

        Raises:
            ValueError: ``instance_strategies`` names a strategy the network does not have.
        """
        omega = num_heads(network)
        strategies = strategy_names(omega)
        profile = ScaleProfile.from_module(network)  # the "scale" fusion is swept when the network is calibrated
        if profile is not None:
            strategies.append("scale")
        log_sigmas, sigma_source = last_layer_log_sigmas(network, omega)
        wanted = instance_strategies
        if wanted is None:
            wanted = [st for st in strategies if not st.startswith("head")]
        elif wanted == "all":
            wanted = list(strategies)
        unknown = [st for st in wanted if st not in strategies]
        if unknown:
            raise ValueError(f"instance_strategies: {unknown!r} are not strategies of this network {strategies!r}.")
        targets = example_scales if example_scales is not None else (min(scales), 1.0, max(scales))
        aux = int(network.aux_channels) if separation and isinstance(network, MultiHeadNetwork) else 0
        return cls(
            aux_channels=aux,
            instance_scales=set(instance_scales),
            instance_strategies=[st for st in strategies if st in wanted],
            scales=list(scales),
            omega=omega,
            strategies=strategies,
            profile=profile,
            log_sigmas=log_sigmas,
            sigma_source=sigma_source,
            partners={s: group_partners(log_sigmas, sigma_source, s, omega, partner_tolerance) for s in scales},
            example_at={min(scales, key=lambda s: abs(math.log(s) - math.log(t))) for t in targets},
            time_per_scale={s: 0.0 for s in scales},
            eq_sum={s: torch.zeros(omega, omega, dtype=torch.float64) for s in scales},
            eq_delta={s: [] for s in scales},
        )


def prepare_eval_dir(eval_dir: str | os.PathLike, if_exists: str) -> tuple[Path, str | None]:
    """The evaluation folder, created; earlier results archived, refused or replaced.

    Args:
        eval_dir: the evaluation folder.
        if_exists: ``"archive"``, ``"error"`` or ``"overwrite"`` (module docstring), applied when ``eval_dir``
            holds ``scale_sweep.csv`` or ``scale_sweep.json``.

    Returns:
        ``(eval_dir, what happened to earlier results)``: a one-line message, ``None`` when there were none.

    Raises:
        FileExistsError: earlier results with ``if_exists="error"``.
    """
    eval_dir = Path(eval_dir)
    existing = [eval_dir / n for n in ("scale_sweep.csv", "scale_sweep.json") if (eval_dir / n).exists()]
    message = None
    if existing and if_exists == "error":
        raise FileExistsError(
            f"{existing[0]} exists: results of an earlier sweep. Pass if_exists='archive' (move them to "
            f"{eval_dir / 'archive'}) or 'overwrite', or choose another output_dir."
        )
    if existing and if_exists == "archive":
        archive = eval_dir / "archive" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        archive.mkdir(parents=True, exist_ok=False)
        for name in (*OUTPUT_FILES, STATUS_FILE, "tensorboard"):
            if (eval_dir / name).exists():
                shutil.move(str(eval_dir / name), str(archive / name))
        message = f"earlier results in {eval_dir} moved to {archive}"
    elif existing:
        message = f"overwriting earlier results in {eval_dir}"
    eval_dir.mkdir(parents=True, exist_ok=True)
    return eval_dir, message


def write_results(
    sweep: Any,
    state: SweepState,
    network: torch.nn.Module,
    eval_dir: Path,
    elapsed: float,
    device: torch.device,
    checkpoint: Any = None,
    dataset_name: Any = None,
) -> dict[str, Any]:
    """Write the tables, figures and ``scale_sweep.json`` (last) of a finished sweep.

    Args:
        sweep: the :class:`~seunet_monai.evaluation.sweep.ScaleSweep` (its settings are recorded).
        state: what it accumulated.
        network: the swept network (parameters, σ and filters are recorded and drawn).
        eval_dir: the evaluation folder.
        elapsed: seconds the sweep took.
        device: where the network ran.
        checkpoint: recorded in the metadata.
        dataset_name: recorded in the metadata.

    Returns:
        ``eval_dir``, ``files``, ``summary`` (mean over scales per strategy), ``elapsed_s``, ``peak_rss_mb``,
        ``equivariance_error_mean``, ``scale_estimation``.
    """
    scales, names, model_name = state.scales, state.names, sweep.model_name
    num_classes, roi, windowed = state.num_classes, state.roi, state.windowed
    max_pixels, min_window, overlap = sweep.max_pixels, sweep.min_window, sweep.overlap
    sw_batch_size, sw_mode, ignore_index = sweep.sw_batch_size, sweep.sw_mode, sweep.ignore_index
    equivariance_crop, partner_tolerance = sweep.equivariance_crop, sweep.partner_tolerance
    strategies, omega, eq_images, sigma_source = state.strategies, state.omega, state.eq_images, state.sigma_source
    time_per_scale = state.time_per_scale
    rows = []
    for s in scales:
        for st in strategies:
            cols = state.instances.columns((s, st)) if state.instances is not None else instance_columns(None)
            rows.append({"model": model_name, "strategy": st, "scale": s, **state.scores[(s, st)].compute(), **cols})
    eq_rows, eq_matrix_rows, eq_matrices = equivariance_rows(
        model_name,
        scales,
        state.eq_sum,
        state.eq_delta,
        eq_images,
        state.partners,
        omega,
        None if sigma_source == "head index" else state.log_sigmas.exp(),
    )
    off_one = [
        e["equivariance_error"]
        for e in eq_rows
        if not math.isclose(e["scale"], 1.0) and not math.isnan(e["equivariance_error"])
    ]
    eq_mean = float(np.mean(off_one)) if off_one else float("nan")
    profile, calibrated_est = state.profile, state.calibrated_est
    estimation = {
        "scale_fusion": {
            "calibrated": profile is not None,
            "calibrated_scales": [] if profile is None else profile.scales.tolist(),
            "method": "seunet_monai.fusion.scale.estimate_scale (calibrated signatures, nearest point)",
            "correlation": scale_correlation(np.stack(calibrated_est), scales) if profile is not None else None,
        },
        "per_image": [
            {
                "name": names[i],
                "scale_fusion_estimate": [None if np.isnan(v) else float(v) for v in calibrated_est[i]],
            }
            for i in range(len(names))
        ],
    }
    summary = summarise(rows)
    metadata: dict[str, Any] = {
        "model": model_name,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "dataset": dataset_name,
        "num_images": len(names),
        "images": names,
        "scales": scales,
        "scale_axes": "all" if sweep.scale_axes is None else list(sweep.scale_axes),
        "strategies": strategies,
        "num_heads": omega,
        "num_classes": num_classes,
        "ignore_index": ignore_index,
        "metric": "iou: dataset-wide confusion-matrix IoU (class 1 if binary, else mean over present classes)",
        "inferer": {
            "rule": "whole image when it has at most max_pixels pixels, else sliding windows of at least "
            "max(roi_size, min_window) px (seunet_monai.inferers.sweep_window), through "
            "seunet_monai.inferers.infer_heads",
            "max_pixels": max_pixels,
            "min_window": min_window,
            "roi_size": list(roi),
            "overlap": overlap,
            "sw_batch_size": sw_batch_size,
            "mode": sw_mode,
            "windowed_scales": {f"{s:.6g}": list(w) for s, w in windowed.items()},
        },
        "device": str(device),
        "elapsed_s": round(elapsed, 3),
        "time_per_scale_s": {f"{s:.6g}": round(t, 3) for s, t in time_per_scale.items()},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "parameters": int(sum(p.numel() for p in network.parameters())),
        "equivariance": {
            "num_images": eq_images,
            "crop": equivariance_crop,
            "sigma_source": sigma_source,
            "partner_tolerance": partner_tolerance,
            "average": "eq. 10 averages only the groups whose matched group has a σ ratio within "
            "partner_tolerance of the scale (columns pairs / groups_without_partner); the "
            "mean over scales leaves out scales where no group has one",
            "features": "net.features(x)"
            if isinstance(network, MultiHeadNetwork)
            else "input of the last convolution executed (plain network)",
        },
        "equivariance_error_mean": eq_mean,
        "instance_metrics": _instance_record(sweep, state),
        "scale_estimation": estimation,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    files = write_outputs(
        eval_dir,
        network,
        rows,
        summary,
        metadata,
        eq_rows,
        eq_matrix_rows,
        eq_matrices,
        state.examples,
        sweep.tensorboard,
    )
    return {
        "eval_dir": str(eval_dir),
        "files": files,
        "summary": summary,
        "elapsed_s": elapsed,
        "peak_rss_mb": metadata["peak_rss_mb"],
        "equivariance_error_mean": eq_mean,
        "scale_estimation": estimation,
    }


def _instance_record(sweep: Any, state: SweepState) -> dict[str, Any]:
    """What the instance columns are, for ``scale_sweep.json``."""
    record: dict[str, Any] = {
        "enabled": sweep.instance_metrics,
        "instance_key": sweep.instance_key,
        "images": state.instance_images,
        "images_without_instances": state.instance_skipped,
        "scales": [s for s in state.scales if s in state.instance_scales],
        "strategies": state.instance_strategies,
        "columns": list(INSTANCE_COLUMNS),
        "method": "fused probabilities -> seunet_monai.transforms.instances.NucleusInstances at pixel_size_um / s; "
        "dataset-wide scores of seunet_monai.evaluation.instances.InstanceMetrics (dice_obj: object Dice)",
    }
    if state.instances is not None:
        record.update(state.instances.settings(), seconds=round(state.instances.seconds, 3))
    return record
