"""The scale sweep of the paper's evaluation (METHOD.md sec. 7, Figs. 2-7, Tables 1-2).

:func:`run_scale_sweep` rescales every test image by each scale (anti-aliased when shrinking, bilinear
when enlarging; labels nearest neighbour), predicts per-head probabilities of the whole rescaled image when it
fits a memory budget (``max_pixels``), else with MONAI's ``SlidingWindowInferer`` and windows of at least 512 px
(overlap 0.5; :func:`sweep_window`), fuses them with every strategy (``head1..headΩ``, ``mean``, ``pdist``,
``pens``, and ``scale`` when the network's scale fusion is calibrated) and accumulates, per scale and strategy, the dataset-wide IoU plus per-image IoU and Dice
(:class:`seunet_monai.metrics.SegmentationScores`). It also measures the equivariance error (eq. 10, 12)
on centre crops, estimates each image's relative scale from the winning heads
(:mod:`seunet_monai.evaluation.scale_estimation`), and writes the contract outputs into
``output_dir/eval/``:

``scale_sweep.csv`` / ``.json`` / ``.md``, ``iou_vs_scale.png``, ``equivariance.csv`` (eq. 10 per scale),
``equivariance_matrix.csv`` (eq. 12, long format), ``equivariance.png``, ``sigmas.png``, ``filters.png``,
``examples.png`` and TensorBoard scalars under ``output_dir/eval/tensorboard``.

Memory: one image is processed at a time; only its per-head probabilities at the current scale are held
(``Ω · C`` floats per pixel of the rescaled image, stitched on ``output_device``); scores are running
counts. Peak RSS (``resource.getrusage``) is logged per image and stored in the JSON.

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
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import decollate_batch
from monai.inferers import SlidingWindowInferer
from monai.utils import convert_to_tensor

from seunet_monai.data.io import atomic_write_json, atomic_write_text
from seunet_monai.data.volumes import volume_stem
from seunet_monai.evaluation import plots
from seunet_monai.evaluation.equivariance import equivariance_matrices, matched_error
from seunet_monai.evaluation.heads import HeadProbabilities, num_heads, output_heads_mode
from seunet_monai.evaluation.report import SWEEP_COLUMNS, strategy_names, summarise, sweep_markdown, write_csv_rows
from seunet_monai.evaluation.rescale import default_scales, rescale_image, rescale_label
from seunet_monai.evaluation.scale_estimation import (
    head_confidence,
    head_votes,
    last_layer_log_sigmas,
    relative_scale_estimates,
    scale_correlation,
)
from seunet_monai.fusion import fuse, winning_head
from seunet_monai.metrics import SegmentationScores, scale_partners
from seunet_monai.scale_fusion import ScaleProfile, estimate_scale

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_VOXELS", "MIN_WINDOW", "OUTPUT_FILES", "peak_rss_mb", "predict_heads", "run_scale_sweep",
           "sweep_window"]

logger = logging.getLogger(__name__)

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
_IF_EXISTS = ("error", "archive", "overwrite")
#: whole-image budget of the sweep (pixels of one rescaled image): 2048² = 4.2 M px. Sized for 16 GB: the paper-size
#: SEUNet (60..960, Ω = 5) in eval mode measured 2.2-3.0 KB of peak memory per pixel (CPU, 1024² and 512²), so
#: about 9-13 GB at the budget. MoNuSeg's 1000-px images are predicted whole up to scale 2.
DEFAULT_MAX_PIXELS = 2048 * 2048
#: whole-volume budget of the 3D sweep (voxels of one rescaled volume, ``variants/3d.json``): 192³ = 7.1 M voxels.
#: Sized for 24 GB: the paper-size 3D SEUNet (60..960, Ω = 5, one channel) measured 1.40 KB of peak memory per
#: voxel in eval mode (CPU, 32³ and 48³, scripts/volume_memory.py), so about 10 GB at the budget, leaving room for
#: a GPU's allocator and workspaces; larger volumes go through 192³ windows.
DEFAULT_MAX_VOXELS = 192 * 192 * 192
#: smallest sliding window of the sweep: windows much smaller than the receptive field of the large-σ heads change
#: their probabilities (15-29% with 128-px windows, issue 11)
MIN_WINDOW = 512
EQUIVARIANCE_COLUMNS = ("model", "scale", "equivariance_error", "num_images", "matched_groups", "pair_errors",
                        "groups_without_partner")


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def predict_heads(
    wrapper: HeadProbabilities, image: torch.Tensor, inferer: SlidingWindowInferer, device: torch.device
) -> torch.Tensor:
    """Per-head probabilities ``(1, Ω, C, *spatial)`` of one image ``(C_in, *spatial)`` via ``inferer``.

    An image no larger than the inferer's window goes to the network whole (``SlidingWindowInferer`` would
    pad it with zeros up to the window, i.e. a black border unlike H&E background), as the bundle's
    ``HeadsInferer`` does. The wrapped network must already be in eval mode with ``output_heads`` on
    (:func:`output_heads_mode`).
    """
    roi = getattr(inferer, "roi_size", None)
    x = image.unsqueeze(0).to(device)
    with torch.no_grad():
        if roi is not None and all(int(n) <= int(r) for n, r in zip(image.shape[1:], roi)):
            flat = wrapper(x).to(getattr(inferer, "device", None) or x.device)
        else:
            flat = inferer(x, wrapper)
    if isinstance(flat, (tuple, list, dict)):
        raise ValueError("predict_heads: the inferer returned several outputs; expected one tensor.")
    return wrapper.unflatten(convert_to_tensor(flat, track_meta=False).float())


def sweep_window(
    spatial_shape: Sequence[int],
    max_pixels: int | None,
    roi_size: Sequence[int],
    min_window: int = MIN_WINDOW,
    sw_batch_size: int = 1,
) -> tuple[int, ...] | None:
    """The sweep's rule for one rescaled image: ``None`` (predict it whole) or the sliding-window size per axis.

    An image of at most ``max_pixels`` pixels goes to the network whole (``max_pixels=None``: always). A larger
    one is cut into windows as large as the budget allows for ``sw_batch_size`` windows per call, rounded down to
    a multiple of 16, but at least ``max(roi_size, min_window)`` and at most the image, per axis (no zero padding
    beyond the image).

    Args:
        spatial_shape: the rescaled image's spatial size.
        max_pixels: whole-image budget in pixels (``None``: no limit).
        roi_size: smallest window per axis (the training patch size).
        min_window: smallest window side (512).
        sw_batch_size: windows per network call.
    """
    shape = [int(n) for n in spatial_shape]
    if max_pixels is None or math.prod(shape) <= max_pixels:
        return None
    d = len(shape)
    side = int((max(max_pixels, 0) / max(1, sw_batch_size)) ** (1.0 / d)) // 16 * 16
    return tuple(min(n, max(side, int(r), int(min_window))) for n, r in zip(shape, roi_size))


def _predict_image(
    wrapper: HeadProbabilities, image: torch.Tensor, device: torch.device, window: tuple[int, ...] | None,
    overlap: float, sw_batch_size: int, sw_mode: str, output_device: torch.device,
) -> torch.Tensor:
    """Per-head probabilities ``(1, Ω, C, *spatial)`` of one rescaled image, whole or by windows (:func:`sweep_window`)."""
    if window is None:
        with torch.no_grad():
            flat = wrapper(image.unsqueeze(0).to(device)).to(output_device)
        return wrapper.unflatten(convert_to_tensor(flat, track_meta=False).float())
    inferer = SlidingWindowInferer(roi_size=window, sw_batch_size=sw_batch_size, overlap=overlap, mode=sw_mode,
                                   device=output_device, progress=False)
    return predict_heads(wrapper, image, inferer, device)


def _iterate_items(dataset: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(dataset, torch.utils.data.DataLoader):
        for batch in dataset:
            yield from decollate_batch(batch)
    else:
        yield from dataset


def _item_name(item: Mapping[str, Any], key: str, index: int) -> str:
    meta = getattr(item.get(key), "meta", None) or item.get(f"{key}_meta_dict") or {}
    name = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
    if isinstance(name, (list, tuple)):
        name = name[0] if name else None
    return volume_stem(str(name)) if name else f"image{index:04d}"  # a.nii.gz -> a


def _prepare_item(item: Mapping[str, Any], image_key: str, label_key: str, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    if image_key not in item or label_key not in item:
        raise KeyError(
            f"test item {index}: expected keys {image_key!r} and {label_key!r}, found {sorted(map(str, item))}."
        )
    image = convert_to_tensor(item[image_key], track_meta=False)
    label = convert_to_tensor(item[label_key], track_meta=False)
    if not image.is_floating_point():
        image = image.float()
    if label.ndim == image.ndim - 1:
        label = label.unsqueeze(0)
    if label.ndim != image.ndim or label.shape[0] != 1 or label.shape[1:] != image.shape[1:]:
        raise ValueError(
            f"test item {index}: image {tuple(image.shape)} and label {tuple(label.shape)} must be (C, *spatial) "
            "and (1, *spatial) of the same spatial size."
        )
    return image, label.round().long() if label.is_floating_point() else label.long()


def _resolve_eval_dir(eval_dir: str | os.PathLike, if_exists: str) -> Path:
    if if_exists not in _IF_EXISTS:
        raise ValueError(f"if_exists must be one of {_IF_EXISTS}, got {if_exists!r}.")
    eval_dir = Path(eval_dir)
    existing = [eval_dir / n for n in ("scale_sweep.csv", "scale_sweep.json") if (eval_dir / n).exists()]
    if existing:
        if if_exists == "error":
            raise FileExistsError(
                f"{existing[0]} exists: results of an earlier sweep. Pass if_exists='archive' (move them to "
                f"{eval_dir / 'archive'}) or 'overwrite', or choose another output_dir."
            )
        if if_exists == "archive":
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            dst = eval_dir / "archive" / stamp
            dst.mkdir(parents=True, exist_ok=False)
            for name in (*OUTPUT_FILES, "tensorboard"):
                if (eval_dir / name).exists():
                    shutil.move(str(eval_dir / name), str(dst / name))
            logger.warning("scale sweep: earlier results in %s moved to %s", eval_dir, dst)
        else:
            logger.warning("scale sweep: overwriting earlier results in %s", eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    return eval_dir


def _load_checkpoint(network: torch.nn.Module, checkpoint: str | os.PathLike) -> None:
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("network"), Mapping):
        state = state["network"]
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path} does not fit {type(network).__name__}: {e}") from e


def _thumb(x: torch.Tensor, spatial_dims: int, max_size: int = 192) -> np.ndarray:
    """A small 2D view for plots: the middle slice of 3D data, subsampled to at most ``max_size`` px."""
    if spatial_dims == 3:
        x = x.select(-3, x.shape[-3] // 2)
    step = max(1, int(math.ceil(max(x.shape[-2:]) / max_size)))
    return x[..., ::step, ::step].cpu().numpy()


def _pick_example_scales(scales: Sequence[float], wanted: Sequence[float] | None) -> set[float]:
    targets = wanted if wanted is not None else (min(scales), 1.0, max(scales))
    return {min(scales, key=lambda s: abs(math.log(s) - math.log(t))) for t in targets}


def run_scale_sweep(
    network: torch.nn.Module,
    dataset: Any,
    output_dir: str | os.PathLike,
    scales: Sequence[float] | None = None,
    *,
    model_name: str = "model",
    checkpoint: str | os.PathLike | None = None,
    load_checkpoint: bool = False,
    dataset_name: str | None = None,
    ignore_index: int | None = None,
    roi_size: int | Sequence[int] = 256,
    overlap: float = 0.5,
    sw_batch_size: int = 4,
    sw_mode: str = "gaussian",
    device: str | torch.device | None = None,
    output_device: str | torch.device = "cpu",
    image_key: str = "image",
    label_key: str = "label",
    equivariance_images: int = 4,
    equivariance_crop: int = 128,
    num_examples: int = 2,
    example_scales: Sequence[float] | None = None,
    if_exists: str = "archive",
    eval_subdir: str = "eval",
    eval_dir: str | os.PathLike | None = None,
    tensorboard: bool = True,
    scale_temperature: float = 0.05,
    partner_tolerance: float = 0.1,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_window: int = MIN_WINDOW,
    scale_axes: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Run the scale sweep and write its outputs into ``output_dir/eval_subdir``.

    Args:
        network: a multi-head network (SEUNet API: ``num_scales``, ``output_heads``, ``features``,
            ``sigmas``, ``sigma_bounds``, ``first_layer_filters``) or a plain network returning logits (one
            head). Its weights must be loaded, or pass ``checkpoint`` with ``load_checkpoint=True``.
        dataset: the test split: a sequence/iterable of dicts (e.g. ``monai.data.Dataset``) with
            ``image_key`` ``(C, *spatial)`` and ``label_key`` ``(1, *spatial)`` (class indices), without a
            batch dimension; or a ``DataLoader`` (batches are decollated).
        output_dir: run folder; outputs go to ``output_dir/eval_subdir``.
        scales: test scales; default the paper's 17 scales ``0.25 · 2^(i/4)``.
        model_name: value of the ``model`` column.
        checkpoint: checkpoint path recorded in the metadata (and loaded when ``load_checkpoint``).
        load_checkpoint: load ``checkpoint`` (a state dict, or a dict with key ``network``) first.
        dataset_name: recorded in the metadata.
        ignore_index: label value excluded from all scores.
        roi_size: smallest sliding window (int or one per spatial axis); see ``max_pixels``.
        overlap: sliding-window overlap in [0, 1) (0.5).
        sw_batch_size: windows per network call.
        sw_mode: window blending, ``"gaussian"`` or ``"constant"``.
        device: where the network runs (default: where its parameters are).
        output_device: where stitched probabilities live (default CPU, which bounds GPU memory).
        image_key: image key of the items.
        label_key: label key of the items.
        equivariance_images: number of test images whose centre crops are used for eq. 10 / 12 (0: skip).
        equivariance_crop: side of the centre crop (pixels at scale 1) for the equivariance error.
        num_examples: number of test images drawn in ``examples.png``.
        example_scales: scales drawn there (the nearest sweep scales are used); default min, 1, max.
        if_exists: ``"archive"``, ``"error"`` or ``"overwrite"`` (see module docstring).
        eval_subdir: name of the evaluation folder (the contract name is ``eval``).
        eval_dir: the evaluation folder itself (overrides ``output_dir / eval_subdir``; the bundle passes its
            ``eval_dir`` key).
        tensorboard: also write scalars with ``torch.utils.tensorboard.SummaryWriter``.
        scale_temperature: τ of the scale estimate (:mod:`~seunet_monai.evaluation.scale_estimation`).
        max_pixels: whole-image budget: a rescaled image of at most this many pixels is predicted whole (default
            :data:`DEFAULT_MAX_PIXELS`, sized for 16 GB; ``None``: always whole); a larger one by sliding windows
            of at least ``max(roi_size, min_window)`` px (:func:`sweep_window`), so that the large-σ heads see
            enough context and the probabilities do not depend on the window.
        min_window: smallest window side (512).
        scale_axes: spatial axes each scale applies to (``None``: all, an isotropic sweep; ``[2]``: the axial
            axis ``Z`` of volumes ``(X, Y, Z)`` only, as anisotropic sampling changes it); images, labels and the
            equivariance crops are rescaled alike (:func:`~seunet_monai.evaluation.rescale.scaled_size`).
        partner_tolerance: eq. 10 averages only groups whose matched group's σ ratio is within this relative
            tolerance of the scale (:func:`~seunet_monai.metrics.scale_partners`); the others are listed.

    Returns:
        a summary: ``eval_dir``, ``files``, ``summary`` (mean over scales per strategy), ``elapsed_s``,
        ``peak_rss_mb``, ``equivariance_error_mean``, ``scale_estimation``.
    """
    scales = [float(s) for s in (default_scales() if scales is None else scales)]
    if not scales or any(not (s > 0 and math.isfinite(s)) for s in scales):
        raise ValueError(f"scales must be a non-empty list of positive numbers, got {scales!r}.")
    if len(set(scales)) != len(scales):
        raise ValueError(f"scales must not repeat, got {scales!r}.")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}.")
    if load_checkpoint:
        if checkpoint is None:
            raise ValueError("load_checkpoint=True needs a checkpoint path.")
        _load_checkpoint(network, checkpoint)
    eval_dir = _resolve_eval_dir(eval_dir if eval_dir is not None else Path(output_dir) / eval_subdir, if_exists)
    if device is None:
        p = next(network.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    network.to(device)

    omega = num_heads(network)
    strategies = strategy_names(omega)
    profile = ScaleProfile.from_module(network)  # the "scale" fusion is swept when the network is calibrated
    if profile is not None:
        strategies.append("scale")
    calibrated_est: list[np.ndarray] = []  # per image (S,) scale estimated by the calibrated "scale" fusion
    wrapper = HeadProbabilities(network)
    log_sigmas, sigma_source = last_layer_log_sigmas(network, omega)
    example_at = _pick_example_scales(scales, example_scales)

    scores: dict[tuple[float, str], SegmentationScores] = {}
    time_per_scale = {s: 0.0 for s in scales}
    eq_sum = {s: torch.zeros(omega, omega, dtype=torch.float64) for s in scales}
    eq_delta: dict[float, list[float]] = {s: [] for s in scales}
    windowed: dict[float, tuple[int, ...]] = {}  # scales where some image was cut into windows (last window size)
    partners = {s: _partners(log_sigmas, sigma_source, s, omega, partner_tolerance) for s in scales}
    confidences: list[np.ndarray] = []  # per image (S, Ω) mean margin per head
    counts: list[np.ndarray] = []  # per image (S, Ω) PDist winner pixel counts
    names: list[str] = []
    examples: list[dict[str, Any]] = []
    num_classes: int | None = None
    eq_images = 0
    spatial_dims: int | None = None
    t_start = time.perf_counter()

    with output_heads_mode(network):
        for index, item in enumerate(_iterate_items(dataset)):
            image, label = _prepare_item(item, image_key, label_key, index)
            if spatial_dims is None:
                spatial_dims = image.ndim - 1
                roi = (roi_size,) * spatial_dims if isinstance(roi_size, int) else tuple(int(r) for r in roi_size)
                if len(roi) != spatial_dims:
                    raise ValueError(f"roi_size {roi_size!r} does not match {spatial_dims}D images.")
            name = _item_name(item, image_key, index)
            names.append(name)
            img_est = np.full(len(scales), np.nan)
            img_conf = np.zeros((len(scales), omega))
            img_counts = np.zeros((len(scales), omega))
            for j, s in enumerate(scales):
                t0 = time.perf_counter()
                img_s = rescale_image(image, s, scale_axes)
                lab_s = rescale_label(label, s, scale_axes).unsqueeze(0)  # (1, 1, *spatial)
                window = sweep_window(img_s.shape[1:], max_pixels, roi, min_window, sw_batch_size)
                if window is not None:
                    windowed[s] = tuple(window)
                probs = _predict_image(wrapper, img_s, device, window, overlap, sw_batch_size, sw_mode,
                                       torch.device(output_device))  # (1, Ω, C, *spatial)
                if num_classes is None:
                    num_classes = int(probs.shape[2])
                    for s2 in scales:
                        for st in strategies:
                            scores[(s2, st)] = SegmentationScores(num_classes, ignore_index)
                lab_s = lab_s.to(probs.device)
                for st in strategies:
                    pred = fuse(probs, st, profile=profile).argmax(dim=1, keepdim=True)
                    try:
                        scores[(s, st)].update(pred, lab_s)
                    except ValueError as e:
                        raise ValueError(f"test item {index} ({name}) at scale {s:g}: {e}") from e
                valid = None if ignore_index is None else (lab_s[:, 0] != ignore_index)
                img_counts[j] = head_votes(probs, valid)[0].cpu().numpy()
                img_conf[j] = head_confidence(probs, valid).cpu().numpy()
                if profile is not None:
                    img_est[j] = float(estimate_scale(probs, profile)[0])
                if index < num_examples and s in example_at:
                    examples.append({
                        "name": name, "scale": s, "strategy": "pens", "num_heads": omega,
                        "image": _thumb(img_s, spatial_dims), "label": _thumb(lab_s[0, 0], spatial_dims),
                        "pred": _thumb(fuse(probs, "pens").argmax(1)[0], spatial_dims),
                        "winner": _thumb(winning_head(probs)[0], spatial_dims),
                    })
                del probs
                time_per_scale[s] += time.perf_counter() - t0
            confidences.append(img_conf)
            calibrated_est.append(img_est)
            counts.append(img_counts)
            if index < equivariance_images:
                for s, mat in equivariance_matrices(network, image, scales, equivariance_crop, device,
                                                     scale_axes).items():
                    eq_sum[s] += mat
                    eq_delta[s].append(matched_error(mat, *partners[s]))
                eq_images += 1
            logger.info("scale sweep: image %d (%s) done, %.1f s elapsed, peak RSS %.0f MiB", index + 1, name,
                        time.perf_counter() - t_start, peak_rss_mb())
    if num_classes is None:
        raise ValueError("run_scale_sweep: the test dataset is empty.")
    elapsed = time.perf_counter() - t_start

    rows = []
    for s in scales:
        for st in strategies:
            r = scores[(s, st)].compute()
            rows.append({"model": model_name, "strategy": st, "scale": s, **r})
    eq_rows, eq_matrix_rows, eq_matrices = _equivariance_rows(model_name, scales, eq_sum, eq_delta, eq_images,
                                                              partners, omega,
                                                              None if sigma_source == "head index" else log_sigmas.exp())
    off_one = [e["equivariance_error"] for e in eq_rows
               if not math.isclose(e["scale"], 1.0) and not math.isnan(e["equivariance_error"])]
    eq_mean = float(np.mean(off_one)) if off_one else float("nan")

    est = relative_scale_estimates(np.stack(confidences), scales, log_sigmas, temperature=scale_temperature)
    estimation = {
        "method": "log σ of the last layer weighted by softmax(mean margin per head / temperature), relative to "
                  "the split's mean at scale 1 (see seunet_monai.evaluation.scale_estimation)",
        "temperature": scale_temperature,
        "sigma_source": sigma_source,
        "correlation": scale_correlation(est, scales),
        "scale_fusion": {
            "calibrated": profile is not None,
            "calibrated_scales": [] if profile is None else profile.scales.tolist(),
            "method": "seunet_monai.scale_fusion.estimate_scale (calibrated signatures, nearest point)",
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
        "scale_axes": "all" if scale_axes is None else [int(a) for a in scale_axes],
        "strategies": strategies,
        "num_heads": omega,
        "num_classes": num_classes,
        "ignore_index": ignore_index,
        "metric": "iou: dataset-wide confusion-matrix IoU (class 1 if binary, else mean over present classes)",
        "inferer": {"rule": "whole image when it has at most max_pixels pixels, else sliding windows of at least "
                            "max(roi_size, min_window) px (seunet_monai.evaluation.sweep.sweep_window)",
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
                         "features": "net.features(x)" if hasattr(network, "features") else
                         "input of the last convolution executed (plain network)"},
        "equivariance_error_mean": eq_mean,
        "scale_estimation": estimation,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    files = _write_outputs(eval_dir, network, rows, summary, metadata, eq_rows, eq_matrix_rows, eq_matrices,
                           examples, tensorboard)
    logger.info("scale sweep: %d images x %d scales in %.1f s, peak RSS %.0f MiB, results in %s", len(names),
                len(scales), elapsed, metadata["peak_rss_mb"], eval_dir)
    return {"eval_dir": str(eval_dir), "files": files, "summary": summary, "elapsed_s": elapsed,
            "peak_rss_mb": metadata["peak_rss_mb"], "equivariance_error_mean": eq_mean, "scale_estimation": estimation}


def _partners(log_sigmas: torch.Tensor, sigma_source: str, scale: float, omega: int,
              tolerance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Matched groups and partner mask at one scale; without σ (plain networks) every group is its own partner."""
    if sigma_source == "head index":
        return torch.arange(omega), torch.ones(omega, dtype=torch.bool)
    return scale_partners(log_sigmas.exp(), scale, tolerance)


def _equivariance_rows(
    model_name: str,
    scales: Sequence[float],
    eq_sum: dict[float, torch.Tensor],
    eq_delta: dict[float, list[float]],
    eq_images: int,
    partners: dict[float, tuple[torch.Tensor, torch.Tensor]],
    omega: int,
    sigmas: torch.Tensor | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[float, np.ndarray]]:
    """Rows of ``equivariance.csv`` (eq. 10 per scale, every partner pair with its error, the groups without
    one), of ``equivariance_matrix.csv`` (eq. 12, long format; ``sigma_ratio`` ``σ_k'/σ_k``, ``nan`` without σ) and
    the mean matrices per scale."""
    eq_rows, eq_matrix_rows, eq_matrices = [], [], {}
    if not eq_images:
        return eq_rows, eq_matrix_rows, eq_matrices
    for s in scales:
        mat = (eq_sum[s] / eq_images).numpy()
        eq_matrices[s] = mat
        matches, has = partners[s]
        pairs = [(k, int(matches[k])) for k in range(omega) if bool(has[k])]
        values = [v for v in eq_delta[s] if not math.isnan(v)]
        eq_rows.append({
            "model": model_name, "scale": s,
            "equivariance_error": float(np.mean(values)) if values else float("nan"),
            "num_images": eq_images,
            "matched_groups": " ".join(f"{k + 1}>{m + 1}" for k, m in pairs),
            "pair_errors": " ".join(f"{k + 1}>{m + 1}={mat[k, m]:.6g}" for k, m in pairs),
            "groups_without_partner": " ".join(str(k + 1) for k in range(omega) if not bool(has[k])),
        })
        for k in range(omega):
            for kp in range(omega):
                eq_matrix_rows.append({"model": model_name, "scale": s, "group": k + 1, "group_rescaled": kp + 1,
                                       "sigma_ratio": float(sigmas[kp] / sigmas[k]) if sigmas is not None else float("nan"),
                                       "error": float(mat[k, kp]),
                                       "matched": bool(has[k]) and int(matches[k]) == kp})
    return eq_rows, eq_matrix_rows, eq_matrices


def _write_outputs(
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
    files.append(write_csv_rows(eval_dir / "equivariance.csv", eq_rows,
                                EQUIVARIANCE_COLUMNS))
    files.append(write_csv_rows(eval_dir / "equivariance_matrix.csv", eq_matrix_rows,
                                ("model", "scale", "group", "group_rescaled", "sigma_ratio", "error", "matched")))
    files.append(plots.plot_iou_vs_scale(rows, eval_dir / "iou_vs_scale.png", title=f"{metadata['model']}: IoU vs scale"))
    if eq_rows:
        files.append(plots.plot_equivariance(eq_rows, eq_matrices, eval_dir / "equivariance.png"))
    else:
        files.append(plots.plot_message(eval_dir / "equivariance.png", "equivariance", "equivariance_images = 0: not measured"))
    sig = getattr(network, "sigmas", None)
    if callable(sig) and sig():
        bounds_fn = getattr(network, "sigma_bounds", None)
        bounds = bounds_fn() if callable(bounds_fn) else None
        files.append(plots.plot_sigmas(sig(), bounds, eval_dir / "sigmas.png"))
    else:
        files.append(plots.plot_message(eval_dir / "sigmas.png", "learned σ", f"{type(network).__name__} has no learned σ"))
    filt = getattr(network, "first_layer_filters", None)
    if callable(filt):
        with torch.no_grad():
            files.append(plots.plot_filters(filt(), eval_dir / "filters.png"))
    else:
        files.append(plots.plot_message(eval_dir / "filters.png", "first-layer filters",
                                        f"{type(network).__name__} has no scale-group filters"))
    files.append(plots.plot_examples(examples, eval_dir / "examples.png"))
    if tensorboard:
        _write_tensorboard(eval_dir / "tensorboard", rows, summary, eq_rows)
    files.append(atomic_write_text(eval_dir / "scale_sweep.md", sweep_markdown(rows, metadata, eq_rows)))
    payload = {**metadata, "rows": rows, "summary": summary, "equivariance": eq_rows,
               "equivariance_matrix": {f"{s:.6g}": m.tolist() for s, m in eq_matrices.items()}}
    files.append(atomic_write_json(eval_dir / "scale_sweep.json", _json_safe(payload)))  # last: marks a finished run
    return [str(f) for f in files]


def _write_tensorboard(log_dir: Path, rows: list[dict[str, Any]], summary: list[dict[str, Any]],
                       eq_rows: list[dict[str, Any]]) -> None:
    """Scalars per strategy against the scale (step = round(100 · s), i.e. the scale in percent)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for r in rows:
            step = int(round(100 * r["scale"]))
            for k in ("iou", "iou_per_image", "dice"):
                if not math.isnan(r[k]):
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
