"""The scale sweep of the paper's evaluation (the paper, sec. 4.2, 4.4, Figs. 2-7, Tables 1-2;
``bundle/docs/README.md``, Evaluation): the loop over test images and scales.

:class:`ScaleSweep` (the bundle's ``sweep`` component, run by ``sweep_run`` in ``evaluate.json``) rescales every
test image by each scale (anti-aliased when shrinking, bilinear when enlarging; labels nearest neighbour),
predicts per-head probabilities of the whole rescaled image when it fits a memory budget (``max_pixels``), else
with MONAI's ``SlidingWindowInferer`` and windows of at least 512 px (overlap 0.5;
:func:`~seunet_monai.inferers.sweep_window`), fuses them with every strategy (``head1..headΩ``, ``mean``,
``pdist``, ``pens``, and ``scale`` when the network's scale fusion is calibrated) and accumulates, per scale and
strategy, the dataset-wide IoU plus per-image IoU and Dice (:class:`seunet_monai.metrics.SegmentationScores`).
It also measures the equivariance error (eq. 10, 12) on centre crops and, when the network's scale fusion is
calibrated, records the scale it estimates for each image and scale
(:func:`seunet_monai.fusion.scale.scale_head_weights`). What it accumulates
and the files it writes into ``output_dir/eval/`` are in :mod:`~seunet_monai.evaluation.sweep_results`.

Memory: one image is processed at a time; only its per-head probabilities at the current scale are held
(``Ω · C`` floats per pixel of the rescaled image, stitched on ``output_device``); scores are running counts.
The peak RSS (``resource.getrusage``) is logged per image and recorded in ``scale_sweep.json``.

Instance metrics (``instance_metrics``, on by default): for the items that carry annotated instance labels
(``instance_key``, e.g. MoNuSeg's ``test/instances/NAME.png``; rescaled with nearest neighbour like the class
labels), at the ``instance_scales`` and for the ``instance_strategies``, the fused probabilities become nucleus
instances (:class:`~seunet_monai.transforms.instances.NucleusInstances` at ``pixel_size_um / s`` µm per pixel)
scored dataset-wide (:class:`~seunet_monai.evaluation.instance_scoring.InstanceScoring`): columns ``pq, sq, rq,
aji, f1, dice_obj, count_ratio`` of the tables, ``nan`` where not measured. Items without instance labels are
skipped with one log line. With ``separation`` (``"boundary"`` or ``"centre"``) and a network that predicts a
separation map (``aux_channels``), the per-head maps are fused with each strategy's head weights
(:func:`seunet_monai.fusion.auxiliary.fuse_auxiliary`) and guide the instances. The post-processing costs time
per megapixel of the rescaled image and strategy (``bundle/docs/README.md``), hence the defaults: the sweep scales
in ``[0.5, 2]`` and the fusions without the single heads.

Steps (methods of :class:`ScaleSweep`, run by :meth:`ScaleSweep.run` for one image at a time):
:meth:`~ScaleSweep.prepare` (the ``eval`` folder, ``if_exists``), :meth:`~ScaleSweep.predict` (rescale, then
per-head probabilities through the package's one inferer path, :func:`seunet_monai.inferers.infer_heads`),
:meth:`~ScaleSweep.score` (running scores, calibrated scale estimates, example thumbnails),
:meth:`~ScaleSweep.equivariance` (eq. 12 matrices of one image) and :meth:`~ScaleSweep.report` (tables, figures,
JSON). Progress and results go to ``eval/sweep_status.json`` (:func:`seunet_monai.runtime.status.write_status`),
rewritten atomically after every image, so that tools read the sweep's state without parsing its log.
:func:`run_scale_sweep` is the same as one function call.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from monai.utils import convert_to_tensor

from seunet_monai.checkpoint import load_network
from seunet_monai.evaluation.equivariance import equivariance_matrices, matched_error
from seunet_monai.evaluation.heads import output_heads_mode
from seunet_monai.evaluation.instance_scoring import InstanceScoring
from seunet_monai.evaluation.items import item_name, iterate_items, prepare_item
from seunet_monai.evaluation.sweep_results import (
    IF_EXISTS,
    STATUS_FILE,
    SweepState,
    peak_rss_mb,
    prepare_eval_dir,
    write_results,
)
from seunet_monai.fusion.auxiliary import fuse_auxiliary
from seunet_monai.fusion.heads import argmax, winning_head
from seunet_monai.fusion.scale import apply_head_weights, scale_head_weights
from seunet_monai.fusion.strategies import fuse
from seunet_monai.inferers import MIN_WINDOW, WHOLE_IMAGE_PIXELS, predict_heads, sweep_window
from seunet_monai.layers.rescale import default_scales, rescale_image, rescale_label
from seunet_monai.metrics import SegmentationScores
from seunet_monai.runtime.progress import progress as progress_bar
from seunet_monai.runtime.status import write_status
from seunet_monai.transforms.separation import check_separation_mode

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_VOXELS", "ScaleSweep", "run_scale_sweep"]

logger = logging.getLogger(__name__)

#: whole-image budget of the sweep (pixels of one rescaled image; see :data:`seunet_monai.inferers.WHOLE_IMAGE_PIXELS`)
DEFAULT_MAX_PIXELS = WHOLE_IMAGE_PIXELS
#: whole-volume budget of the 3D sweep (voxels of one rescaled volume, ``variants/3d/evaluate.json``): 192³ = 7.1 M voxels,
#: sized for 24 GB (the measurement is in ``bundle/docs/README.md``, 3D volumes); larger volumes go through 192³
#: windows.
DEFAULT_MAX_VOXELS = 192 * 192 * 192


def _thumb(x: torch.Tensor, spatial_dims: int, max_size: int = 192) -> np.ndarray:
    """A small 2D view for plots: the middle slice of 3D data, subsampled to at most ``max_size`` px."""
    if spatial_dims == 3:
        x = x.select(-3, x.shape[-3] // 2)
    step = max(1, int(math.ceil(max(x.shape[-2:]) / max_size)))
    return x[..., ::step, ::step].cpu().numpy()


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
        if_exists: earlier results in ``eval_dir``: ``"archive"``, ``"error"`` or ``"overwrite"``
            (:func:`~seunet_monai.evaluation.sweep_results.prepare_eval_dir`).
        tensorboard: also write scalars with ``torch.utils.tensorboard.SummaryWriter``.
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
        if if_exists not in IF_EXISTS:
            raise ValueError(f"if_exists must be one of {IF_EXISTS}, got {if_exists!r}.")
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
        self.partner_tolerance = float(partner_tolerance)
        self.scale_axes = None if scale_axes is None else [int(a) for a in scale_axes]
        matched = [[t for t in scales if math.isclose(float(s), t, rel_tol=1e-6)] for s in instance_scales or ()]
        if not all(matched):
            raise ValueError(f"instance_scales must be sweep scales {scales!r}, got {list(instance_scales)!r}.")
        if pixel_size_um is not None and not (math.isfinite(float(pixel_size_um)) and float(pixel_size_um) > 0):
            raise ValueError(
                f"pixel_size_um must be a positive number (µm per pixel at scale 1), got {pixel_size_um!r}."
            )
        self.instance_metrics = bool(instance_metrics)
        self.instance_key = instance_key
        self.pixel_size_um = None if pixel_size_um is None else float(pixel_size_um)
        self.instance_scales = (
            [s for s in scales if 0.5 <= s <= 2.0] if instance_scales is None else [m[0] for m in matched]
        )
        self.instance_strategies = instance_strategies
        self.separation = check_separation_mode(separation)

    # ------------------------------------------------------------------------------------------------ steps
    def prepare(self, eval_dir: str | os.PathLike) -> Path:
        """The evaluation folder, created; earlier results archived, refused or replaced (``if_exists``,
        :func:`~seunet_monai.evaluation.sweep_results.prepare_eval_dir`)."""
        eval_dir, message = prepare_eval_dir(eval_dir, self.if_exists)
        if message is not None:
            logger.warning("scale sweep: %s", message)
        return eval_dir

    def predict(
        self, network: torch.nn.Module, image: torch.Tensor, scale: float, device: torch.device, roi: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...] | None]:
        """Rescale ``image`` ``(C, *spatial)`` by ``scale`` and predict it (whole or by windows, :func:`sweep_window`).

        Returns:
            ``(rescaled image, per-head probabilities (1, Ω, C, *spatial) on output_device, window or None)``.
        """
        img_s = rescale_image(image, scale, self.scale_axes)
        window = sweep_window(img_s.shape[1:], self.max_pixels, roi, self.min_window, self.sw_batch_size)
        inferer = None
        if window is not None:
            inferer = SlidingWindowInferer(
                roi_size=window,
                sw_batch_size=self.sw_batch_size,
                overlap=self.overlap,
                mode=self.sw_mode,
                device=self.output_device,
                progress=False,
            )
        probs = predict_heads(network, img_s, inferer, device, aux=self.separation is not None).to(self.output_device)
        return img_s, probs, window

    def score(
        self,
        run: SweepState,
        index: int,
        j: int,
        img_s: torch.Tensor,
        label_s: torch.Tensor,
        probs: torch.Tensor,
        per_image: dict[str, np.ndarray],
        instance_s: torch.Tensor | None = None,
        separation_s: torch.Tensor | None = None,
    ) -> None:
        """Add one image at scale ``run.scales[j]``: scores of every strategy, the heads' votes and confidence, the
        calibrated scale estimate, and an example thumbnail when asked for; the instance metrics when
        ``instance_s`` (instance labels ``(1, *spatial)`` at this scale) is given, guided by the per-head
        separation maps ``separation_s`` ``(1, Ω, A, *spatial)`` when given."""
        s, name = run.scales[j], run.names[index]
        if run.num_classes is None:
            run.num_classes = int(probs.shape[2])
            run.scores = {
                (s2, st): SegmentationScores(run.num_classes, self.ignore_index)
                for s2 in run.scales
                for st in run.strategies
            }
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
                        sep = (
                            apply_head_weights(separation_s, weights)
                            if st == "scale"
                            else fuse_auxiliary(probs, separation_s, st, profile=run.profile)
                        )[0]
                    run.instances.update((s, st), fused[0], instance_s, scale=s, separation=sep)
            except ValueError as e:
                raise ValueError(f"test item {index} ({name}) at scale {s:g}: {e}") from e
        if estimate is not None:
            per_image["estimate"][j] = float(estimate[0])
        if index < self.num_examples and s in run.example_at:
            run.examples.append(
                {
                    "name": name,
                    "scale": s,
                    "strategy": "pens",
                    "num_heads": run.omega,
                    "image": _thumb(img_s, run.spatial_dims),
                    "label": _thumb(label_s[0, 0], run.spatial_dims),
                    "pred": _thumb(argmax(fuse(probs, "pens"), 1)[0], run.spatial_dims),
                    "winner": _thumb(winning_head(probs)[0], run.spatial_dims),
                }
            )

    def equivariance(
        self, run: SweepState, network: torch.nn.Module, image: torch.Tensor, device: torch.device
    ) -> None:
        """Add one image's eq. 12 matrices (centre crop of ``equivariance_crop`` px) at every scale."""
        for s, mat in equivariance_matrices(
            network, image, run.scales, self.equivariance_crop, device, self.scale_axes
        ).items():
            run.eq_sum[s] += mat
            run.eq_delta[s].append(matched_error(mat, *run.partners[s]))
        run.eq_images += 1

    def report(
        self,
        run: SweepState,
        network: torch.nn.Module,
        eval_dir: Path,
        elapsed: float,
        device: torch.device,
        checkpoint: Any = None,
        dataset_name: Any = None,
    ) -> dict[str, Any]:
        """Write the tables, figures and ``scale_sweep.json`` (last,
        :func:`~seunet_monai.evaluation.sweep_results.write_results`); returns the run's summary."""
        result = write_results(self, run, network, eval_dir, elapsed, device, checkpoint, dataset_name)
        logger.info(
            "scale sweep: %d images x %d scales in %.1f s, peak RSS %.0f MiB, results in %s",
            len(run.names),
            len(run.scales),
            elapsed,
            result["peak_rss_mb"],
            eval_dir,
        )
        return result

    def _instances_of(self, run: SweepState, item: Any, index: int, shape: tuple[int, ...]) -> torch.Tensor | None:
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
            raise ValueError(
                "pixel_size_um: the test items have instance labels but the pixel size is not set; "
                "give pixel_size_um (µm per pixel at scale 1, MoNuSeg 0.25) or instance_metrics=False."
            )
        inst = convert_to_tensor(item[self.instance_key], track_meta=False)
        inst = inst.unsqueeze(0) if inst.ndim == len(shape) else inst
        if tuple(inst.shape) != (1, *shape):
            raise ValueError(
                f"test item {index}: instance labels {tuple(inst.shape)} must be (1, *spatial) = {(1, *shape)}."
            )
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
            write_status(
                status, "failed", error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", **progress
            )
            raise
        summary = {r["strategy"]: r["iou_mean"] for r in result["summary"]}
        write_status(
            status,
            "finished",
            images_done=len(run.names),
            elapsed_s=round(elapsed, 3),
            iou_mean_over_scales={k: (None if v != v else v) for k, v in summary.items()},
            equivariance_error_mean=None
            if math.isnan(result["equivariance_error_mean"])
            else result["equivariance_error_mean"],
            results=str(eval_dir / "scale_sweep.json"),
            **progress,
        )
        return result

    def _sweep(
        self, network: torch.nn.Module, dataset: Any, device: torch.device, status: Path, progress: dict[str, Any]
    ) -> tuple[SweepState, float]:
        run = SweepState.start(
            network,
            self.scales,
            partner_tolerance=self.partner_tolerance,
            example_scales=self.example_scales,
            instance_scales=self.instance_scales,
            instance_strategies=self.instance_strategies,
            separation=self.separation,
        )
        if self.separation and not run.aux_channels:
            logger.warning(
                "scale sweep: separation %r asked for, but the network predicts no separation map "
                "(aux_channels 0): instances from the class mask alone",
                self.separation,
            )
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
                per_image = {"estimate": np.full(len(run.scales), np.nan)}
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
                run.calibrated_est.append(per_image["estimate"])
                if index < self.equivariance_images:
                    self.equivariance(run, network, image, device)
                elapsed = time.perf_counter() - t_start
                logger.info(
                    "scale sweep: image %d (%s) done, %.1f s elapsed, peak RSS %.0f MiB",
                    index + 1,
                    run.names[-1],
                    elapsed,
                    peak_rss_mb(),
                )
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
    return sweep.run(
        network, dataset, target, checkpoint=checkpoint, load_checkpoint=load_checkpoint, dataset_name=dataset_name
    )
