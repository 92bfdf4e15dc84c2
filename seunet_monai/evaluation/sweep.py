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

Instance metrics (``instance_metrics``, on by default): nucleus instances of the fused probabilities scored on the
items with annotated instance labels (``instance_key``), at the ``instance_scales`` and for the
``instance_strategies``, guided by the fused separation maps with ``separation``.

Steps, run by :meth:`ScaleSweep.run` for one image at a time: :meth:`~ScaleSweep.prepare` (the ``eval`` folder,
``if_exists``), :func:`~seunet_monai.evaluation.sweep_predict.predict_scale` (rescale, then per-head
probabilities, whole or by windows), :func:`~seunet_monai.evaluation.sweep_scoring.score_image` (running scores,
calibrated scale estimates, instance metrics, example thumbnails), :meth:`~ScaleSweep.equivariance` (eq. 12
matrices of one image) and :meth:`~ScaleSweep.report` (tables, figures, JSON). Progress and results go to
``eval/sweep_status.json`` (:func:`seunet_monai.runtime.status.write_status`), rewritten atomically after every
image, so that tools read the sweep's state without parsing its log.
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

from seunet_monai.checkpoint import load_network
from seunet_monai.evaluation.equivariance import equivariance_matrices, matched_error
from seunet_monai.evaluation.heads import output_heads_mode
from seunet_monai.evaluation.items import item_name, iterate_items, prepare_item
from seunet_monai.evaluation.sweep_predict import predict_scale
from seunet_monai.evaluation.sweep_results import (
    IF_EXISTS,
    STATUS_FILE,
    SweepState,
    peak_rss_mb,
    prepare_eval_dir,
    write_results,
)
from seunet_monai.evaluation.sweep_scoring import instance_labels, score_image
from seunet_monai.inferers import MIN_WINDOW, WHOLE_IMAGE_PIXELS
from seunet_monai.layers.rescale import default_scales, rescale_label
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
            of at least ``max(roi_size, min_window)`` px (:func:`~seunet_monai.inferers.sweep_window`), so that the
            large-σ heads see enough context and the probabilities do not depend on the window.
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
        instance_metrics: measure the instance metrics (:mod:`~seunet_monai.evaluation.sweep_scoring`) on
            items with ``instance_key``.
        instance_key: key of the annotated instance labels ``(1, H, W)`` (0 = background).
        pixel_size_um: µm per pixel of the test images at scale 1 (MoNuSeg: 0.25); needed as soon as an item has
            instance labels.
        instance_scales: scales with instance metrics (each one of ``scales``); default those in ``[0.5, 2]``.
        instance_strategies: strategies with instance metrics (``head1``.., ``mean``, ``pdist``, ``pens``,
            ``scale``, or ``"all"``); default the fusions without the single heads (``scale`` only when
            calibrated).
        separation: ``None`` or the network's separation formulation, ``"boundary"`` or ``"centre"``
            (:mod:`seunet_monai.transforms.separation`): its fused map guides the instances.

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
                instances = instance_labels(self, run, item, index, tuple(label.shape[1:]))
                per_image = {"estimate": np.full(len(run.scales), np.nan)}
                for j, s in enumerate(run.scales):
                    t0 = time.perf_counter()
                    img_s, probs, window = predict_scale(self, network, image, s, device, run.roi)
                    separation_s = None
                    if run.aux_channels:  # the separation maps after the classes
                        probs, separation_s = probs[:, :, : -run.aux_channels], probs[:, :, -run.aux_channels :]
                    if window is not None:
                        run.windowed[s] = tuple(window)
                    label_s = rescale_label(label, s, self.scale_axes).unsqueeze(0)  # (1, 1, *spatial)
                    inst_s = rescale_label(instances, s) if instances is not None and s in run.instance_scales else None
                    score_image(self, run, index, j, img_s, label_s, probs, per_image, inst_s, separation_s)
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
