"""The scale sweep of the paper's evaluation (the paper, sec. 4.2, 4.4, Figs. 2-7, Tables 1-2;
``bundle/docs/README.md``, Evaluation).

:class:`ScaleSweep` (the bundle's ``sweep`` component, ``"$@sweep.run(...)"`` in ``evaluate.json``) rescales every
test image by each scale (anti-aliased when shrinking, bilinear
when enlarging; labels nearest neighbour), predicts per-head probabilities of the whole rescaled image when it
fits a memory budget (``max_pixels``), else with MONAI's ``SlidingWindowInferer`` and windows of at least 512 px
(overlap 0.5; :func:`sweep_window`), fuses them with every strategy (``head1..headΩ``, ``mean``, ``pdist``,
``pens``, and ``scale`` when the network's scale fusion is calibrated) and accumulates, per scale and strategy, the dataset-wide IoU plus per-image IoU and Dice
(:class:`seunet_monai.metrics.SegmentationScores`). It also measures the equivariance error (eq. 10, 12)
on centre crops, estimates each image's relative scale from the winning heads
(:mod:`seunet_monai.fusion.estimation`), and writes the contract outputs into
``output_dir/eval/``:

``scale_sweep.csv`` / ``.json`` / ``.md``, ``iou_vs_scale.png``, ``equivariance.csv`` (eq. 10 per scale),
``equivariance_matrix.csv`` (eq. 12, long format), ``equivariance.png``, ``sigmas.png``, ``filters.png``,
``examples.png`` and TensorBoard scalars under ``output_dir/eval/tensorboard``.

Memory: one image is processed at a time; only its per-head probabilities at the current scale are held
(``Ω · C`` floats per pixel of the rescaled image, stitched on ``output_device``); scores are running
counts.

Instance metrics (``instance_metrics``, on by default): for the items that carry annotated instance labels
(``instance_key``, e.g. MoNuSeg's ``test/instances/NAME.png``; rescaled with nearest neighbour like the class
labels), at the ``instance_scales`` and for the ``instance_strategies``, the fused probabilities become nucleus
instances (:class:`~seunet_monai.transforms.instances.NucleusInstances` at ``pixel_size_um / s`` µm per pixel)
scored dataset-wide (:class:`~seunet_monai.evaluation.instance_scoring.InstanceScoring`): columns ``pq, sq, rq,
aji, f1, dice_obj, count_ratio`` of the tables, ``nan`` where not measured. Items without instance labels are
skipped with one log line. With ``separation`` (``"boundary"`` or ``"centre"``) and a network that predicts a
separation map (``aux_channels``), the per-head maps are fused with each strategy's head weights
(:func:`seunet_monai.fusion.auxiliary.fuse_auxiliary`) and guide the instances. The post-processing costs about
1 s per megapixel of the rescaled image and strategy on one CPU core (``bundle/docs/README.md``), hence the
defaults: the sweep scales in ``[0.5, 2]`` and the fusions without the single heads. Peak RSS
(``resource.getrusage``) is logged per image and stored in the JSON.

Steps (methods of :class:`ScaleSweep`, run by :meth:`ScaleSweep.run` for one image at a time): :meth:`~ScaleSweep.prepare`
(the ``eval`` folder), :meth:`~ScaleSweep.predict` (rescale, then per-head probabilities through the package's one
inferer path, :func:`seunet_monai.inferers.infer_heads`), :meth:`~ScaleSweep.score` (running scores, winning heads,
scale estimates, example thumbnails), :meth:`~ScaleSweep.equivariance` (eq. 12 matrices of one image) and
:meth:`~ScaleSweep.report` (tables, figures, JSON). Progress and results go to ``eval/sweep_status.json``
(:func:`seunet_monai.runtime.status.write_status`), rewritten atomically after every image, so that tools read
the sweep's state without parsing its log. :func:`run_scale_sweep` is the same as one function call.

Existing results (``if_exists``): a run whose ``eval`` folder already holds ``scale_sweep.csv`` or
``scale_sweep.json`` either stops with ``FileExistsError`` (``"error"``), moves the previous outputs into
``eval/archive/<UTC time>/`` first (``"archive"``, the default: nothing is lost, the contract paths hold
the new run), or replaces them (``"overwrite"``). Every file is written atomically;
``scale_sweep.json`` is written last and marks a finished run.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from monai.utils import convert_to_tensor

from seunet_monai.checkpoint import load_network
from seunet_monai.evaluation.equivariance import (
    equivariance_matrices,
    equivariance_rows,
    group_partners,
    matched_error,
)
from seunet_monai.evaluation.heads import num_heads, output_heads_mode
from seunet_monai.evaluation.instance_scoring import INSTANCE_COLUMNS, InstanceScoring, instance_columns
from seunet_monai.evaluation.items import item_name, iterate_items, prepare_item
from seunet_monai.evaluation.outputs import OUTPUT_FILES, write_outputs
from seunet_monai.evaluation.report import strategy_names, summarise
from seunet_monai.fusion.auxiliary import fuse_auxiliary
from seunet_monai.fusion.estimation import (
    head_confidence,
    head_votes,
    last_layer_log_sigmas,
    relative_scale_estimates,
    scale_correlation,
)
from seunet_monai.fusion.heads import argmax, winning_head
from seunet_monai.fusion.scale import ScaleProfile, apply_head_weights, scale_head_weights
from seunet_monai.fusion.strategies import fuse
from seunet_monai.inferers import MIN_WINDOW, WHOLE_IMAGE_PIXELS, predict_heads, sweep_window
from seunet_monai.layers.rescale import default_scales, rescale_image, rescale_label
from seunet_monai.metrics import SegmentationScores
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.runtime.progress import progress as progress_bar
from seunet_monai.runtime.status import write_status
from seunet_monai.transforms.separation import check_separation_mode

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_VOXELS", "STATUS_FILE", "ScaleSweep", "peak_rss_mb", "run_scale_sweep"]

logger = logging.getLogger(__name__)

_IF_EXISTS = ("error", "archive", "overwrite")
#: whole-image budget of the sweep (pixels of one rescaled image; see :data:`seunet_monai.inferers.WHOLE_IMAGE_PIXELS`)
DEFAULT_MAX_PIXELS = WHOLE_IMAGE_PIXELS
#: whole-volume budget of the 3D sweep (voxels of one rescaled volume, ``variants/3d.json``): 192³ = 7.1 M voxels.
#: Sized for 24 GB: the paper-size 3D SEUNet (60..960, Ω = 5, one channel) measured 1.40 KB of peak memory per
#: voxel in eval mode (CPU, 32³ and 48³, scripts/volume_memory.py), so about 10 GB at the budget, leaving room for
#: a GPU's allocator and workspaces; larger volumes go through 192³ windows.
DEFAULT_MAX_VOXELS = 192 * 192 * 192
STATUS_FILE = "sweep_status.json"


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _thumb(x: torch.Tensor, spatial_dims: int, max_size: int = 192) -> np.ndarray:
    """A small 2D view for plots: the middle slice of 3D data, subsampled to at most ``max_size`` px."""
    if spatial_dims == 3:
        x = x.select(-3, x.shape[-3] // 2)
    step = max(1, int(math.ceil(max(x.shape[-2:]) / max_size)))
    return x[..., ::step, ::step].cpu().numpy()


def _pick_example_scales(scales: Sequence[float], wanted: Sequence[float] | None) -> set[float]:
    targets = wanted if wanted is not None else (min(scales), 1.0, max(scales))
    return {min(scales, key=lambda s: abs(math.log(s) - math.log(t))) for t in targets}


@dataclass
class _Running:
    """What the sweep accumulates over the images (one image's probabilities are never kept)."""

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
    confidences: list[np.ndarray] = field(default_factory=list)  # per image (S, Ω) mean margin per head
    counts: list[np.ndarray] = field(default_factory=list)  # per image (S, Ω) PDist winner pixel counts
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


class ScaleSweep:
    """The scale sweep as a configured component (``"sweep": {"_target_": "seunet_monai.evaluation.sweep.ScaleSweep",
    ...}`` in ``evaluate.json``): settings here, the network and data at :meth:`run`.

    Args:
        scales: test scales; default the paper's 17 scales ``0.25 · 2^(i/4)``.
        model_name: value of the ``model`` column.
        ignore_index: label value excluded from all scores.
        roi_size: smallest sliding window (int or one per spatial axis); see ``max_pixels``.
        overlap: sliding-window overlap in [0, 1) (0.5).
        sw_batch_size: windows per network call.
        sw_mode: window blending, ``"gaussian"`` or ``"constant"``.
        max_pixels: whole-image budget: a rescaled image of at most this many pixels is predicted whole (default
            :data:`DEFAULT_MAX_PIXELS`, sized for 16 GB; ``None``: always whole); a larger one by sliding windows
            of at least ``max(roi_size, min_window)`` px (:func:`sweep_window`), so that the large-σ heads see
            enough context and the probabilities do not depend on the window.
        min_window: smallest window side (512).
        device: where the network runs (default: where its parameters are).
        output_device: where stitched probabilities live (default CPU, which bounds GPU memory).
        image_key: image key of the items.
        label_key: label key of the items.
        equivariance_images: number of test images whose centre crops are used for eq. 10 / 12 (0: skip).
        equivariance_crop: side of the centre crop (pixels at scale 1) for the equivariance error.
        num_examples: number of test images drawn in ``examples.png``.
        example_scales: scales drawn there (the nearest sweep scales are used); default min, 1, max.
        if_exists: ``"archive"``, ``"error"`` or ``"overwrite"`` (see module docstring).
        tensorboard: also write scalars with ``torch.utils.tensorboard.SummaryWriter``.
        scale_temperature: τ of the scale estimate (:mod:`~seunet_monai.fusion.estimation`).
        partner_tolerance: eq. 10 averages only groups whose matched group's σ ratio is within this relative
            tolerance of the scale (:func:`~seunet_monai.evaluation.equivariance.scale_partners`); the others are
            listed.
        scale_axes: spatial axes each scale applies to (``None``: all, an isotropic sweep; ``[2]``: the axial
            axis ``Z`` of volumes ``(X, Y, Z)`` only, as anisotropic sampling changes it); images, labels and the
            equivariance crops are rescaled alike (:func:`~seunet_monai.layers.rescale.scaled_size`).
        instance_metrics: measure the instance metrics (module docstring) on items with ``instance_key``.
        instance_key: key of the annotated instance labels ``(1, H, W)`` (0 = background).
        pixel_size_um: µm per pixel of the test images at scale 1 (MoNuSeg: 0.25); needed as soon as an item has
            instance labels.
        instance_scales: scales with instance metrics (each one of ``scales``); default those in ``[0.5, 2]``.
        instance_strategies: strategies with instance metrics (``head1``.., ``mean``, ``pdist``, ``pens``,
            ``scale``, or ``"all"``); default the fusions without the single heads (``scale`` only when
            calibrated).
        separation: ``None`` or the network's separation formulation, ``"boundary"`` or ``"centre"``
            (:mod:`seunet_monai.transforms.separation`): its fused map guides the instances (module docstring).

    Raises:
        ValueError: for bad ``scales``, ``overlap`` or ``if_exists``, naming the argument.
    """

    def __init__(
        self,
        scales: Sequence[float] | None = None,
        *,
        model_name: str = "model",
        ignore_index: int | None = None,
        roi_size: int | Sequence[int] = 256,
        overlap: float = 0.5,
        sw_batch_size: int = 4,
        sw_mode: str = "gaussian",
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        min_window: int = MIN_WINDOW,
        device: str | torch.device | None = None,
        output_device: str | torch.device = "cpu",
        image_key: str = "image",
        label_key: str = "label",
        equivariance_images: int = 4,
        equivariance_crop: int = 128,
        num_examples: int = 2,
        example_scales: Sequence[float] | None = None,
        if_exists: str = "archive",
        tensorboard: bool = True,
        scale_temperature: float = 0.05,
        partner_tolerance: float = 0.1,
        scale_axes: Sequence[int] | None = None,
        instance_metrics: bool = True,
        instance_key: str = "instance",
        pixel_size_um: float | None = None,
        instance_scales: Sequence[float] | None = None,
        instance_strategies: Sequence[str] | str | None = None,
        separation: str | None = None,
    ) -> None:
        scales = [float(s) for s in (default_scales() if scales is None else scales)]
        if not scales or any(not (s > 0 and math.isfinite(s)) for s in scales):
            raise ValueError(f"scales must be a non-empty list of positive numbers, got {scales!r}.")
        if len(set(scales)) != len(scales):
            raise ValueError(f"scales must not repeat, got {scales!r}.")
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}.")
        if if_exists not in _IF_EXISTS:
            raise ValueError(f"if_exists must be one of {_IF_EXISTS}, got {if_exists!r}.")
        self.scales = scales
        self.model_name = model_name
        self.ignore_index = ignore_index
        self.roi_size = roi_size
        self.overlap = float(overlap)
        self.sw_batch_size = int(sw_batch_size)
        self.sw_mode = sw_mode
        self.max_pixels = max_pixels
        self.min_window = int(min_window)
        self.device = device
        self.output_device = torch.device(output_device)
        self.image_key = image_key
        self.label_key = label_key
        self.equivariance_images = int(equivariance_images)
        self.equivariance_crop = int(equivariance_crop)
        self.num_examples = int(num_examples)
        self.example_scales = example_scales
        self.if_exists = if_exists
        self.tensorboard = bool(tensorboard)
        self.scale_temperature = float(scale_temperature)
        self.partner_tolerance = float(partner_tolerance)
        self.scale_axes = None if scale_axes is None else [int(a) for a in scale_axes]
        matched = [[t for t in scales if math.isclose(float(s), t, rel_tol=1e-6)] for s in instance_scales or ()]
        if not all(matched):
            raise ValueError(f"instance_scales must be sweep scales {scales!r}, got {list(instance_scales)!r}.")
        if pixel_size_um is not None and not (math.isfinite(float(pixel_size_um)) and float(pixel_size_um) > 0):
            raise ValueError(f"pixel_size_um must be a positive number (µm per pixel at scale 1), got {pixel_size_um!r}.")
        self.instance_metrics = bool(instance_metrics)
        self.instance_key = instance_key
        self.pixel_size_um = None if pixel_size_um is None else float(pixel_size_um)
        self.instance_scales = ([s for s in scales if 0.5 <= s <= 2.0] if instance_scales is None
                                else [m[0] for m in matched])
        self.instance_strategies = instance_strategies
        self.separation = check_separation_mode(separation)

    # ------------------------------------------------------------------------------------------------ steps
    def prepare(self, eval_dir: str | os.PathLike) -> Path:
        """The evaluation folder, created; earlier results archived, refused or replaced (``if_exists``)."""
        eval_dir = Path(eval_dir)
        existing = [eval_dir / n for n in ("scale_sweep.csv", "scale_sweep.json") if (eval_dir / n).exists()]
        if existing:
            if self.if_exists == "error":
                raise FileExistsError(
                    f"{existing[0]} exists: results of an earlier sweep. Pass if_exists='archive' (move them to "
                    f"{eval_dir / 'archive'}) or 'overwrite', or choose another output_dir."
                )
            if self.if_exists == "archive":
                stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
                dst = eval_dir / "archive" / stamp
                dst.mkdir(parents=True, exist_ok=False)
                for name in (*OUTPUT_FILES, STATUS_FILE, "tensorboard"):
                    if (eval_dir / name).exists():
                        shutil.move(str(eval_dir / name), str(dst / name))
                logger.warning("scale sweep: earlier results in %s moved to %s", eval_dir, dst)
            else:
                logger.warning("scale sweep: overwriting earlier results in %s", eval_dir)
        eval_dir.mkdir(parents=True, exist_ok=True)
        return eval_dir

    def predict(self, network: torch.nn.Module, image: torch.Tensor, scale: float, device: torch.device,
                roi: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...] | None]:
        """Rescale ``image`` ``(C, *spatial)`` by ``scale`` and predict it (whole or by windows, :func:`sweep_window`).

        Returns:
            ``(rescaled image, per-head probabilities (1, Ω, C, *spatial) on output_device, window or None)``.
        """
        img_s = rescale_image(image, scale, self.scale_axes)
        window = sweep_window(img_s.shape[1:], self.max_pixels, roi, self.min_window, self.sw_batch_size)
        inferer = None
        if window is not None:
            inferer = SlidingWindowInferer(roi_size=window, sw_batch_size=self.sw_batch_size, overlap=self.overlap,
                                           mode=self.sw_mode, device=self.output_device, progress=False)
        probs = predict_heads(network, img_s, inferer, device, aux=self.separation is not None).to(self.output_device)
        return img_s, probs, window

    def score(self, run: _Running, index: int, j: int, img_s: torch.Tensor, label_s: torch.Tensor,
              probs: torch.Tensor, per_image: dict[str, np.ndarray], instance_s: torch.Tensor | None = None,
              separation_s: torch.Tensor | None = None) -> None:
        """Add one image at scale ``run.scales[j]``: scores of every strategy, the heads' votes and confidence, the
        calibrated scale estimate, and an example thumbnail when asked for; the instance metrics when
        ``instance_s`` (instance labels ``(1, *spatial)`` at this scale) is given, guided by the per-head
        separation maps ``separation_s`` ``(1, Ω, A, *spatial)`` when given."""
        s, name = run.scales[j], run.names[index]
        if run.num_classes is None:
            run.num_classes = int(probs.shape[2])
            run.scores = {(s2, st): SegmentationScores(run.num_classes, self.ignore_index)
                          for s2 in run.scales for st in run.strategies}
        label_s = label_s.to(probs.device)
        weights = estimate = None
        if run.profile is not None:  # one signature per image and scale: the "scale" row and the estimate share it
            weights, estimate = scale_head_weights(probs, run.profile)
        for st in run.strategies:
            fused = apply_head_weights(probs, weights) if st == "scale" else fuse(probs, st, profile=run.profile)
            pred = argmax(fused, dim=1, keepdim=True)
            try:
                run.scores[(s, st)].update(pred, label_s)
                if instance_s is not None and st in run.instance_strategies:
                    sep = None
                    if separation_s is not None:
                        sep = (apply_head_weights(separation_s, weights) if st == "scale"
                               else fuse_auxiliary(probs, separation_s, st, profile=run.profile))[0]
                    run.instances.update((s, st), fused[0], instance_s, scale=s, separation=sep)
            except ValueError as e:
                raise ValueError(f"test item {index} ({name}) at scale {s:g}: {e}") from e
        valid = None if self.ignore_index is None else (label_s[:, 0] != self.ignore_index)
        per_image["counts"][j] = head_votes(probs, valid)[0].cpu().numpy()
        per_image["confidence"][j] = head_confidence(probs, valid).cpu().numpy()
        if estimate is not None:
            per_image["estimate"][j] = float(estimate[0])
        if index < self.num_examples and s in run.example_at:
            run.examples.append({
                "name": name, "scale": s, "strategy": "pens", "num_heads": run.omega,
                "image": _thumb(img_s, run.spatial_dims), "label": _thumb(label_s[0, 0], run.spatial_dims),
                "pred": _thumb(argmax(fuse(probs, "pens"), 1)[0], run.spatial_dims),
                "winner": _thumb(winning_head(probs)[0], run.spatial_dims),
            })

    def equivariance(self, run: _Running, network: torch.nn.Module, image: torch.Tensor, device: torch.device) -> None:
        """Add one image's eq. 12 matrices (centre crop of ``equivariance_crop`` px) at every scale."""
        for s, mat in equivariance_matrices(network, image, run.scales, self.equivariance_crop, device,
                                            self.scale_axes).items():
            run.eq_sum[s] += mat
            run.eq_delta[s].append(matched_error(mat, *run.partners[s]))
        run.eq_images += 1

    def report(self, run: _Running, network: torch.nn.Module, eval_dir: Path, elapsed: float, device: torch.device,
               checkpoint: Any = None, dataset_name: Any = None) -> dict[str, Any]:
        """Write the tables, figures and ``scale_sweep.json`` (last); returns the run's summary."""
        scales, names, model_name = run.scales, run.names, self.model_name
        num_classes, roi, windowed = run.num_classes, run.roi, run.windowed
        max_pixels, min_window, overlap = self.max_pixels, self.min_window, self.overlap
        sw_batch_size, sw_mode, ignore_index = self.sw_batch_size, self.sw_mode, self.ignore_index
        equivariance_crop, partner_tolerance = self.equivariance_crop, self.partner_tolerance
        strategies, omega, eq_images, sigma_source = run.strategies, run.omega, run.eq_images, run.sigma_source
        time_per_scale = run.time_per_scale
        rows = []
        for s in scales:
            for st in strategies:
                cols = run.instances.columns((s, st)) if run.instances is not None else instance_columns(None)
                rows.append({"model": model_name, "strategy": st, "scale": s, **run.scores[(s, st)].compute(), **cols})
        eq_rows, eq_matrix_rows, eq_matrices = equivariance_rows(
            model_name, scales, run.eq_sum, run.eq_delta, eq_images, run.partners, omega,
            None if sigma_source == "head index" else run.log_sigmas.exp())
        off_one = [e["equivariance_error"] for e in eq_rows
                   if not math.isclose(e["scale"], 1.0) and not math.isnan(e["equivariance_error"])]
        eq_mean = float(np.mean(off_one)) if off_one else float("nan")
        est = relative_scale_estimates(np.stack(run.confidences), scales, run.log_sigmas,
                                       temperature=self.scale_temperature)
        profile, calibrated_est, counts, confidences = run.profile, run.calibrated_est, run.counts, run.confidences
        estimation = {
            "method": "log σ of the last layer weighted by softmax(mean margin per head / temperature), relative to "
                      "the split's mean at scale 1 (see seunet_monai.fusion.estimation)",
            "temperature": self.scale_temperature,
            "sigma_source": sigma_source,
            "correlation": scale_correlation(est, scales),
            "scale_fusion": {
                "calibrated": profile is not None,
                "calibrated_scales": [] if profile is None else profile.scales.tolist(),
                "method": "seunet_monai.fusion.scale.estimate_scale (calibrated signatures, nearest point)",
                "correlation": scale_correlation(np.stack(calibrated_est), scales) if profile is not None else None,
            },
            "per_image": [
                {"name": names[i], "estimated_scale": [float(v) for v in est[i]],
                 "scale_fusion_estimate": [None if np.isnan(v) else float(v) for v in calibrated_est[i]],
                 "winning_head_histogram": counts[i].astype(int).tolist(),
                 "head_confidence": np.round(confidences[i], 6).tolist()}
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
            "scale_axes": "all" if self.scale_axes is None else list(self.scale_axes),
            "strategies": strategies,
            "num_heads": omega,
            "num_classes": num_classes,
            "ignore_index": ignore_index,
            "metric": "iou: dataset-wide confusion-matrix IoU (class 1 if binary, else mean over present classes)",
            "inferer": {"rule": "whole image when it has at most max_pixels pixels, else sliding windows of at least "
                                "max(roi_size, min_window) px (seunet_monai.inferers.sweep_window), through "
                                "seunet_monai.inferers.infer_heads",
                        "max_pixels": max_pixels, "min_window": min_window, "roi_size": list(roi), "overlap": overlap,
                        "sw_batch_size": sw_batch_size, "mode": sw_mode,
                        "windowed_scales": {f"{s:.6g}": list(w) for s, w in windowed.items()}},
            "device": str(device),
            "elapsed_s": round(elapsed, 3),
            "time_per_scale_s": {f"{s:.6g}": round(t, 3) for s, t in time_per_scale.items()},
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "parameters": int(sum(p.numel() for p in network.parameters())),
            "equivariance": {"num_images": eq_images, "crop": equivariance_crop, "sigma_source": sigma_source,
                             "partner_tolerance": partner_tolerance,
                             "average": "eq. 10 averages only the groups whose matched group has a σ ratio within "
                                        "partner_tolerance of the scale (columns pairs / groups_without_partner); the "
                                        "mean over scales leaves out scales where no group has one",
                             "features": "net.features(x)" if isinstance(network, MultiHeadNetwork) else
                             "input of the last convolution executed (plain network)"},
            "equivariance_error_mean": eq_mean,
            "instance_metrics": self._instance_record(run),
            "scale_estimation": estimation,
            "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        files = write_outputs(eval_dir, network, rows, summary, metadata, eq_rows, eq_matrix_rows, eq_matrices,
                               run.examples, self.tensorboard)
        logger.info("scale sweep: %d images x %d scales in %.1f s, peak RSS %.0f MiB, results in %s", len(names),
                    len(scales), elapsed, metadata["peak_rss_mb"], eval_dir)
        return {"eval_dir": str(eval_dir), "files": files, "summary": summary, "elapsed_s": elapsed,
                "peak_rss_mb": metadata["peak_rss_mb"], "equivariance_error_mean": eq_mean,
                "scale_estimation": estimation}

    def _instance_record(self, run: _Running) -> dict[str, Any]:
        """What the instance columns are, for ``scale_sweep.json``."""
        record: dict[str, Any] = {
            "enabled": self.instance_metrics, "instance_key": self.instance_key, "images": run.instance_images,
            "images_without_instances": run.instance_skipped,
            "scales": [s for s in run.scales if s in run.instance_scales], "strategies": run.instance_strategies,
            "columns": list(INSTANCE_COLUMNS),
            "method": "fused probabilities -> seunet_monai.transforms.instances.NucleusInstances at pixel_size_um / s; "
                      "dataset-wide scores of seunet_monai.evaluation.instances.InstanceMetrics (dice_obj: object Dice)",
        }
        if run.instances is not None:
            record.update(run.instances.settings(), seconds=round(run.instances.seconds, 3))
        return record

    def _instances_of(self, run: _Running, item: Any, index: int, shape: tuple[int, ...]) -> torch.Tensor | None:
        """The item's instance labels ``(1, *spatial)`` int64, or ``None`` (not measured, or not annotated)."""
        if not self.instance_metrics or not run.instance_strategies or not run.instance_scales:
            return None
        if self.instance_key not in item or run.spatial_dims != 2:
            if not run.instance_skipped:
                why = "2D images only" if run.spatial_dims != 2 else f"no {self.instance_key!r} key (instance labels)"
                logger.info("scale sweep: instance metrics skipped for test items with %s", why)
            run.instance_skipped += 1
            return None
        if self.pixel_size_um is None:
            raise ValueError("pixel_size_um: the test items have instance labels but the pixel size is not set; "
                             "give pixel_size_um (µm per pixel at scale 1, MoNuSeg 0.25) or instance_metrics=False.")
        inst = convert_to_tensor(item[self.instance_key], track_meta=False)
        inst = inst.unsqueeze(0) if inst.ndim == len(shape) else inst
        if tuple(inst.shape) != (1, *shape):
            raise ValueError(f"test item {index}: instance labels {tuple(inst.shape)} must be (1, *spatial) = {(1, *shape)}.")
        if run.instances is None:
            separation = self.separation if run.aux_channels else None
            run.instances = InstanceScoring(self.pixel_size_um, separation=separation)
        run.instance_images += 1
        return inst.round().long() if inst.is_floating_point() else inst.long()

    # ------------------------------------------------------------------------------------------------ run
    def run(
        self,
        network: torch.nn.Module,
        dataset: Any,
        eval_dir: str | os.PathLike,
        *,
        checkpoint: str | os.PathLike | None = None,
        load_checkpoint: bool = False,
        dataset_name: str | os.PathLike | None = None,
    ) -> dict[str, Any]:
        """Sweep ``network`` over ``dataset`` and write the outputs into ``eval_dir``.

        Args:
            network: a multi-head network (SEUNet API: ``num_scales``, ``output_heads``, ``features``,
                ``sigmas``, ``sigma_bounds``, ``first_layer_filters``) or a plain network returning logits (one
                head). Its weights must be loaded, or pass ``checkpoint`` with ``load_checkpoint=True``.
            dataset: the test split: a sequence/iterable of dicts (e.g. ``monai.data.Dataset``) with
                ``image_key`` ``(C, *spatial)`` and ``label_key`` ``(1, *spatial)`` (class indices), without a
                batch dimension; or a ``DataLoader`` (batches are decollated).
            eval_dir: the evaluation folder (the bundle's ``eval_dir``, ``output_dir/eval``).
            checkpoint: checkpoint path recorded in the metadata (and loaded when ``load_checkpoint``).
            load_checkpoint: load ``checkpoint`` first (:func:`seunet_monai.checkpoint.load_network`).
            dataset_name: recorded in the metadata.

        Returns:
            a summary: ``eval_dir``, ``files``, ``summary`` (mean over scales per strategy), ``elapsed_s``,
            ``peak_rss_mb``, ``equivariance_error_mean``, ``scale_estimation``.
        """
        if load_checkpoint:
            if checkpoint is None:
                raise ValueError("load_checkpoint=True needs a checkpoint path.")

            load_network(network, checkpoint)
        eval_dir = self.prepare(eval_dir)
        status = eval_dir / STATUS_FILE
        device = self.device
        if device is None:
            p = next(network.parameters(), None)
            device = p.device if p is not None else torch.device("cpu")
        device = torch.device(device)
        network.to(device)
        items = dataset.dataset if isinstance(dataset, torch.utils.data.DataLoader) else dataset  # items, not batches
        total = len(items) if hasattr(items, "__len__") else None
        progress = {"model": self.model_name, "num_scales": len(self.scales), "num_images": total}
        write_status(status, "running", images_done=0, **progress)
        try:
            run, elapsed = self._sweep(network, dataset, device, status, progress)
            result = self.report(run, network, eval_dir, elapsed, device, checkpoint, dataset_name)
        except BaseException as e:
            write_status(status, "failed", error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                         **progress)
            raise
        summary = {r["strategy"]: r["iou_mean"] for r in result["summary"]}
        write_status(status, "finished", images_done=len(run.names), elapsed_s=round(elapsed, 3),
                     iou_mean_over_scales={k: (None if v != v else v) for k, v in summary.items()},
                     equivariance_error_mean=None if math.isnan(result["equivariance_error_mean"])
                     else result["equivariance_error_mean"], results=str(eval_dir / "scale_sweep.json"), **progress)
        return result

    def _start(self, network: torch.nn.Module) -> _Running:
        omega = num_heads(network)
        strategies = strategy_names(omega)
        profile = ScaleProfile.from_module(network)  # the "scale" fusion is swept when the network is calibrated
        if profile is not None:
            strategies.append("scale")
        log_sigmas, sigma_source = last_layer_log_sigmas(network, omega)
        scales = self.scales
        wanted = self.instance_strategies
        if wanted is None:
            wanted = [st for st in strategies if not st.startswith("head")]
        elif wanted == "all":
            wanted = list(strategies)
        unknown = [st for st in wanted if st not in strategies]
        if unknown:
            raise ValueError(f"instance_strategies: {unknown!r} are not strategies of this network {strategies!r}.")
        aux = int(network.aux_channels) if isinstance(network, MultiHeadNetwork) and self.separation else 0
        if self.separation and not aux:
            logger.warning("scale sweep: separation %r asked for, but the network predicts no separation map "
                           "(aux_channels 0): instances from the class mask alone", self.separation)
        return _Running(
            aux_channels=aux,
            instance_scales=set(self.instance_scales), instance_strategies=[st for st in strategies if st in wanted],
            scales=scales, omega=omega, strategies=strategies, profile=profile, log_sigmas=log_sigmas,
            sigma_source=sigma_source,
            partners={s: group_partners(log_sigmas, sigma_source, s, omega, self.partner_tolerance) for s in scales},
            example_at=_pick_example_scales(scales, self.example_scales),
            time_per_scale={s: 0.0 for s in scales},
            eq_sum={s: torch.zeros(omega, omega, dtype=torch.float64) for s in scales},
            eq_delta={s: [] for s in scales},
        )

    def _sweep(self, network: torch.nn.Module, dataset: Any, device: torch.device, status: Path,
               progress: dict[str, Any]) -> tuple[_Running, float]:
        run = self._start(network)
        t_start = time.perf_counter()
        with output_heads_mode(network):
            total = progress["num_images"]
            for index, item in enumerate(progress_bar(iterate_items(dataset), total=total, desc="scale sweep")):
                image, label = prepare_item(item, self.image_key, self.label_key, index)
                if run.spatial_dims is None:
                    run.spatial_dims = image.ndim - 1
                    rs = self.roi_size
                    run.roi = (rs,) * run.spatial_dims if isinstance(rs, int) else tuple(int(r) for r in rs)
                    if len(run.roi) != run.spatial_dims:
                        raise ValueError(f"roi_size {rs!r} does not match {run.spatial_dims}D images.")
                run.names.append(item_name(item, self.image_key, index))
                instances = self._instances_of(run, item, index, tuple(label.shape[1:]))
                per_image = {"estimate": np.full(len(run.scales), np.nan),
                             "confidence": np.zeros((len(run.scales), run.omega)),
                             "counts": np.zeros((len(run.scales), run.omega))}
                for j, s in enumerate(run.scales):
                    t0 = time.perf_counter()
                    img_s, probs, window = self.predict(network, image, s, device, run.roi)
                    separation_s = None
                    if run.aux_channels:  # the separation maps after the classes
                        probs, separation_s = probs[:, :, : -run.aux_channels], probs[:, :, -run.aux_channels :]
                    if window is not None:
                        run.windowed[s] = tuple(window)
                    label_s = rescale_label(label, s, self.scale_axes).unsqueeze(0)  # (1, 1, *spatial)
                    inst_s = rescale_label(instances, s) if instances is not None and s in run.instance_scales else None
                    self.score(run, index, j, img_s, label_s, probs, per_image, inst_s, separation_s)
                    del probs, separation_s
                    run.time_per_scale[s] += time.perf_counter() - t0
                run.confidences.append(per_image["confidence"])
                run.calibrated_est.append(per_image["estimate"])
                run.counts.append(per_image["counts"])
                if index < self.equivariance_images:
                    self.equivariance(run, network, image, device)
                elapsed = time.perf_counter() - t_start
                logger.info("scale sweep: image %d (%s) done, %.1f s elapsed, peak RSS %.0f MiB", index + 1,
                            run.names[-1], elapsed, peak_rss_mb())
                write_status(status, "running", images_done=index + 1, elapsed_s=round(elapsed, 3), **progress)
        if run.num_classes is None:
            raise ValueError("run_scale_sweep: the test dataset is empty.")
        return run, time.perf_counter() - t_start


def run_scale_sweep(
    network: torch.nn.Module,
    dataset: Any,
    output_dir: str | os.PathLike,
    scales: Sequence[float] | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    load_checkpoint: bool = False,
    dataset_name: str | None = None,
    eval_subdir: str = "eval",
    eval_dir: str | os.PathLike | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """The scale sweep in one call: ``ScaleSweep(scales, **settings).run(network, dataset, eval_dir, ...)``.

    Args:
        network: see :meth:`ScaleSweep.run`.
        dataset: see :meth:`ScaleSweep.run`.
        output_dir: run folder; outputs go to ``output_dir/eval_subdir``.
        scales: test scales (default the paper's 17).
        checkpoint: see :meth:`ScaleSweep.run`.
        load_checkpoint: see :meth:`ScaleSweep.run`.
        dataset_name: see :meth:`ScaleSweep.run`.
        eval_subdir: name of the evaluation folder (the contract name is ``eval``).
        eval_dir: the evaluation folder itself (overrides ``output_dir / eval_subdir``).
        settings: the keyword arguments of :class:`ScaleSweep`.
    """
    sweep = ScaleSweep(scales, **settings)
    target = eval_dir if eval_dir is not None else Path(output_dir) / eval_subdir
    return sweep.run(network, dataset, target, checkpoint=checkpoint, load_checkpoint=load_checkpoint,
                     dataset_name=dataset_name)
