"""Measuring the calibration of the ``"scale"`` fusion (:mod:`seunet_monai.fusion.scale`) on validation data.

:func:`calibrate_scale_fusion` measures every validation image at each profile scale with
:func:`~seunet_monai.evaluation.calibration_measure.measure_heads` (the heads predicted on the scale sweep's path;
hence this module sits above the inferers and not in :mod:`seunet_monai.fusion`), and
:func:`~seunet_monai.evaluation.calibration_measure.profile_from_measurements` fills the network's state-dict buffers
(both steps public in :mod:`~seunet_monai.evaluation.calibration_measure`: a calibration made of stored measurements,
as the out-of-sample validation :mod:`seunet_monai.evaluation.fusion_validation` makes, is this one):

- ``fusion_iou[p, k]``: head k's dataset-wide IoU over the validation images at scale ``fusion_scales[p]``
  (:func:`~seunet_monai.metrics.dataset_iou` of the summed confusion counts, the sweep's metric);
- ``fusion_signature[p]``: the mean over images of :func:`~seunet_monai.fusion.scale.head_signature`.

Rows of scales left out (``scales`` = a subset) are set to NaN, so one calibration is one consistent
measurement. Calibrating a checkpoint file (the bundle's ``calibration`` component, used by ``run calibrating``
and at the end of training) is :mod:`seunet_monai.evaluation.checkpoint_calibration`.

**Cost, and what bounds it.** One forward pass per (image, scale) at the rescaled size, i.e. ``Σ_p s_p²`` times
the pixels of the images: about 54.5 for the 17 profile scales 0.25 .. 4 (the scales >= 2 are 83% of it), 13.1 for
the 9 scales 0.5 .. 2. By default:

- the profile scales in :data:`DEFAULT_SCALE_RANGE` (0.5 .. 2, ``2^(k/4)``, k = -4..4), the range the fusion's
  quality was measured on; outside it the scale estimate is clamped to its ends. ``scales="all"`` calibrates every
  profile scale;
- whole images: tiles are put back together (:func:`~seunet_monai.evaluation.whole_images.whole_images`), so
  overlapping tiles are not predicted twice;
- a pixel budget (``max_pixels``, :data:`DEFAULT_MAX_PIXELS`: ``Σ`` over images and scales of the rescaled
  pixels): images are taken in order while they fit (at least one);
- optionally a time budget (``max_seconds``): the speed is measured on the first image at the scale nearest 1,
  and only as many images as the budget allows are used (when even one image is too much, every other scale is
  dropped, down to 3).

The plan and its expected time are logged before the work, then one line per scale with the time left
(``on_progress`` receives the same figures, e.g. for a status file).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from seunet_monai.evaluation.calibration_measure import measure_heads, profile_from_measurements
from seunet_monai.evaluation.heads import output_heads_mode
from seunet_monai.evaluation.items import item_name, iterate_items, prepare_item
from seunet_monai.evaluation.whole_images import WholeImage, whole_images
from seunet_monai.fusion.scale import BUFFER_NAMES, ScaleProfile
from seunet_monai.layers.rescale import scaled_size
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.runtime.distributed import unwrap
from seunet_monai.runtime.progress import format_duration as _secs
from seunet_monai.runtime.progress import format_megapixels as _mpx

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_SCALE_RANGE",
    "calibrate_scale_fusion",
    "calibration_rows",
    "select_profile_rows",
]

logger = logging.getLogger(__name__)

#: profile scales calibrated by default (inclusive): ``2^(k/4)``, k = -4..4 of the default profile
DEFAULT_SCALE_RANGE = (0.5, 2.0)
#: default pixel budget: ``Σ`` over images and scales of the rescaled image's pixels (96 Mpx: 7 whole 1000-px
#: MoNuSeg images at the 9 default scales, 13.1 Mpx each)
DEFAULT_MAX_PIXELS = 96 * 2**20


def _buffers(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    bufs = dict(unwrap(network).named_buffers(recurse=False))
    missing = [n for n in BUFFER_NAMES if n not in bufs]
    if missing or not isinstance(unwrap(network), MultiHeadNetwork):
        raise ValueError(
            f"{type(unwrap(network)).__name__} cannot hold a scale-fusion calibration: it needs to be a "
            f"MultiHeadNetwork with the buffers {list(BUFFER_NAMES)} (SEUNet and its subclasses have them); missing {missing}."
        )
    return bufs


def select_profile_rows(
    profile_scales: Sequence[float], scales: Sequence[float] | None, rtol: float = 1e-4
) -> list[int]:
    """Indices of ``scales`` in ``profile_scales`` (all of them when ``scales`` is None).

    Raises:
        ValueError: for a scale that is not (within ``rtol``) one of ``profile_scales``, or a repeated one.
    """
    prof = [float(v) for v in profile_scales]
    if scales is None:
        return list(range(len(prof)))
    rows = []
    for s in scales:
        s = float(s)
        hit = [i for i, v in enumerate(prof) if math.isclose(v, s, rel_tol=rtol)]
        if not hit:
            raise ValueError(
                f"calibration scale {s:g} is not one of the network's profile scales (fusion_scales: "
                f"{', '.join(f'{v:.4g}' for v in prof)}); pick from those."
            )
        if hit[0] in rows:
            raise ValueError(f"calibration scale {s:g} is given twice.")
        rows.append(hit[0])
    return sorted(rows)


def calibration_rows(profile_scales: Sequence[float], scales: Sequence[float] | str | None = None) -> list[int]:
    """The profile rows a calibration measures.

    Args:
        profile_scales: the network's ``fusion_scales``.
        scales: ``None`` (default): the profile scales within :data:`DEFAULT_SCALE_RANGE` (every profile scale
            when none is); ``"all"``: every profile scale; else a subset of the profile scales.

    Raises:
        ValueError: for a scale outside the profile, a repeated one, or another word than ``"all"``.
    """
    prof = [float(v) for v in profile_scales]
    if isinstance(scales, str):
        if scales.strip().lower() != "all":
            raise ValueError(f"calibration scales must be a list of profile scales, null or 'all', got {scales!r}.")
        return list(range(len(prof)))
    if scales is not None:
        return select_profile_rows(prof, scales)
    low, high = DEFAULT_SCALE_RANGE
    rows = [i for i, v in enumerate(prof) if low * (1 - 1e-4) <= v <= high * (1 + 1e-4)]
    return rows or list(range(len(prof)))


def _gather(
    data: Any,
    scales: Sequence[float],
    max_images: int | None,
    max_pixels: int | None,
    whole: bool,
    image_key: str,
    label_key: str,
) -> tuple[list[WholeImage], bool]:
    """The images to calibrate on, in order, within ``max_images`` and ``max_pixels`` (at least one); and whether
    more were left out by the pixel budget."""
    if whole:
        source: Iterator[WholeImage] = whole_images(data, image_key, label_key)
    else:
        source = (
            WholeImage(item_name(it, image_key, i), *prepare_item(it, image_key, label_key, i))
            for i, it in enumerate(iterate_items(data))
        )
    chosen: list[WholeImage] = []
    total = 0
    for img in source:
        if max_images is not None and len(chosen) >= max_images:
            return chosen, False
        cost = img.pixels(scales)
        if chosen and max_pixels is not None and total + cost > max_pixels:
            return chosen, True
        chosen.append(img)
        total += cost
    return chosen, False


def calibrate_scale_fusion(
    network: torch.nn.Module,
    data: Any,
    scales: Sequence[float] | str | None = None,
    *,
    max_images: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_seconds: float | None = None,
    budget_note: str | None = None,
    whole: bool = True,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    roi_size: int | Sequence[int] | None = None,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    device: str | torch.device | None = None,
    image_key: str = "image",
    label_key: str = "label",
    on_progress: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Measure the per-head IoU and the signatures at each profile scale and store them in ``network``'s buffers.

    Args:
        network: a multi-head network with the ``fusion_scales`` / ``fusion_iou`` / ``fusion_signature`` buffers
            (SEUNet; ``DistributedDataParallel`` is unwrapped), weights loaded.
        data: the validation split: dicts with ``image_key`` ``(C, *spatial)`` and ``label_key`` ``(1, *spatial)``
            (a ``monai.data.Dataset``, a list, or a ``DataLoader`` whose batches are decollated).
        scales: the profile scales to calibrate (see :func:`calibration_rows`; default those in 0.5 .. 2).
        max_images: use only the first this many (whole) images (default all).
        max_pixels: pixel budget (``Σ`` over images and scales of the rescaled pixels; ``None``: no limit): images
            are taken in order while they fit, at least one.
        max_seconds: time budget (``None``: none): after timing the first image at the scale nearest 1, only as
            many images as are expected to fit are used (at least one); when one image is still too much, every
            other scale is dropped (9 -> 5 -> 3 scales, the ends and the middle kept).
        budget_note: how ``max_seconds`` was set, for the log (e.g. ``"20% of the training's 900 s"``).
        whole: put tiles back into whole images (:func:`~seunet_monai.evaluation.whole_images.whole_images`);
            ``False`` uses the items as they are.
        num_classes: number of classes (default: the network's output classes).
        ignore_index: label value left out of the IoU (the signatures are label-free and use every pixel).
        roi_size: sliding-window size for every image (default ``None``: whole images up to the sweep's budget of
            4 Mpx, larger ones in the sweep's windows of at least 512 px).
        overlap: sliding-window overlap.
        sw_batch_size: windows per network call.
        device: where the network runs (default: where its parameters are).
        image_key: image key of the items.
        label_key: label key of the items.
        on_progress: called with ``{"scales_done", "scales_total", "images", "elapsed_s", "expected_s", "eta_s"}``
            after the plan and after each scale.

    Returns:
        ``{"scales", "iou" (P', Ω), "signature" (P', 3Ω), "best_head" (1-based, per scale), "num_images",
        "images", "tiles", "pixels", "expected_s", "budget_s", "left_out", "elapsed_s"}`` for the calibrated rows.

    Raises:
        ValueError: for a network without the buffers, scales outside the profile, bad budgets or no images.
    """
    bufs = _buffers(network)
    net = unwrap(network)
    rows = calibration_rows(bufs["fusion_scales"].tolist(), scales)
    row_scales = [float(bufs["fusion_scales"][r]) for r in rows]
    if max_images is not None and int(max_images) < 1:
        raise ValueError(f"calibration#max_images must be >= 1 (or null for all), got {max_images}.")
    if max_pixels is not None and not int(max_pixels) >= 1:
        raise ValueError(f"calibration#max_pixels must be >= 1 (or null for no limit), got {max_pixels}.")
    if max_seconds is not None and not (float(max_seconds) > 0 and math.isfinite(float(max_seconds))):
        raise ValueError(f"the calibration's time budget must be a positive number of seconds, got {max_seconds}.")
    classes = int(num_classes if num_classes is not None else net.out_channels)
    if classes < 2:
        raise ValueError(f"calibrate_scale_fusion: num_classes must be >= 2, got {classes}.")
    if device is None:
        p = next(net.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    t0 = time.perf_counter()
    images, over_budget = _gather(
        data,
        row_scales,
        None if max_images is None else int(max_images),
        None if max_pixels is None else int(max_pixels),
        whole,
        image_key,
        label_key,
    )
    if not images:
        raise ValueError("calibrate_scale_fusion: the validation data is empty.")
    counts: dict[int, list[torch.Tensor]] = {r: [] for r in rows}  # per row, each image's (Ω, C, 4)
    signatures: dict[int, list[torch.Tensor]] = {r: [] for r in rows}  # per row, each image's (3Ω,)

    def measure(img: WholeImage, r: int, s: float) -> None:
        _, _, signature, confusion = measure_heads(
            net, img.image, img.label, s, classes, ignore_index, roi_size, overlap, sw_batch_size, device
        )
        counts[r].append(confusion)
        signatures[r].append(signature)

    with output_heads_mode(net):
        # the speed, measured on the first image at the scale nearest 1 (a pass the calibration needs anyway)
        probe = min(range(len(rows)), key=lambda j: abs(math.log(row_scales[j])))
        probe_row = rows[probe]
        logger.info(
            "scale calibration: up to %d image(s) x %d scales (%s); timing the first pass (%s at scale %.3g) "
            "to plan within the budget.",
            len(images),
            len(rows),
            _mpx(sum(im.pixels(row_scales) for im in images)),
            images[0].name,
            row_scales[probe],
        )
        t_probe = time.perf_counter()
        measure(images[0], probe_row, row_scales[probe])
        probe_px = math.prod(scaled_size(images[0].image.shape[1:], row_scales[probe]))
        per_px = (time.perf_counter() - t_probe) / max(1, probe_px)
        available, requested = len(images), len(rows)
        if max_seconds is not None:
            while len(images) > 1 and per_px * sum(im.pixels(row_scales) for im in images) > float(max_seconds):
                images.pop()
            # one image is still too much: every other scale (9 -> 5 -> 3), the ends and the middle kept
            while len(rows) > 3 and per_px * images[0].pixels(row_scales) > float(max_seconds):
                rows, row_scales = rows[::2], row_scales[::2]
            if len(rows) < requested:
                logger.warning(
                    "scale calibration: even one image at the %d scales exceeds the time budget; "
                    "calibrating %d of them.",
                    requested,
                    len(rows),
                )
        left_out = over_budget or len(images) < available
        pixels = sum(im.pixels(row_scales) for im in images)
        expected = per_px * pixels
        tiles = sum(im.tiles for im in images)
        what = f"{len(images)} {'whole ' if tiles > len(images) else ''}validation image(s)"
        if tiles > len(images):
            what += f" (put together from {tiles} tiles)"
        budget = []
        if max_seconds is not None:
            budget.append(f"time budget {_secs(float(max_seconds))}" + (f" = {budget_note}" if budget_note else ""))
        if max_pixels is not None:
            budget.append(f"pixel budget {_mpx(int(max_pixels))}")
        logger.info(
            "scale calibration: %s x %d scales (%s) = %s, expected about %s (%s)%s.",
            what,
            len(rows),
            ", ".join(f"{s:.3g}" for s in row_scales),
            _mpx(pixels),
            _secs(expected),
            "; ".join(budget) or "no budget",
            "; later images are left out to stay within the budget (calibration#max_pixels, calibration#time_fraction)"
            if left_out
            else "",
        )
        state = {
            "scales_done": 0,
            "scales_total": len(rows),
            "images": len(images),
            "pixels": pixels,
            "expected_s": round(expected, 1),
            "elapsed_s": round(time.perf_counter() - t0, 1),
            "eta_s": round(expected, 1),
        }
        if on_progress is not None:
            on_progress(dict(state))
        done_px = probe_px if probe_row in rows else 0
        for j, (r, s) in enumerate(zip(rows, row_scales)):
            t_scale = time.perf_counter()
            for index, img in enumerate(images):
                if index == 0 and r == probe_row:
                    continue
                measure(img, r, s)
                done_px += math.prod(scaled_size(img.image.shape[1:], s))
            elapsed = time.perf_counter() - t0
            rate = (time.perf_counter() - t_probe) / max(1, done_px)
            eta = rate * (pixels - done_px)
            logger.info(
                "scale calibration: scale %d/%d (%.3g) done in %s, %s elapsed, about %s left",
                j + 1,
                len(rows),
                s,
                _secs(time.perf_counter() - t_scale),
                _secs(elapsed),
                _secs(eta),
            )
            state.update(scales_done=j + 1, elapsed_s=round(elapsed, 1), eta_s=round(eta, 1))
            if on_progress is not None:
                on_progress(dict(state))
    iou = torch.full(bufs["fusion_iou"].shape, float("nan"), dtype=torch.float64)
    sig = torch.full(bufs["fusion_signature"].shape, float("nan"), dtype=torch.float64)
    iou[rows], sig[rows] = profile_from_measurements(
        torch.stack([torch.stack(counts[r]) for r in rows], 1),
        torch.stack([torch.stack(signatures[r]) for r in rows], 1),
        ignore_index,
    )
    with torch.no_grad():
        bufs["fusion_iou"].copy_(iou.to(bufs["fusion_iou"]))
        bufs["fusion_signature"].copy_(sig.to(bufs["fusion_signature"]))
    if ScaleProfile.from_module(net) is None:
        logger.warning(
            "scale calibration: no scale gave a finite IoU for every head (no foreground in the "
            "validation labels?); the 'scale' fusion stays uncalibrated."
        )
    elapsed = time.perf_counter() - t0
    logger.info(
        "scale calibration: %d image(s) x %d scales in %s (expected %s)",
        len(images),
        len(rows),
        _secs(elapsed),
        _secs(expected),
    )
    return {
        "scales": row_scales,
        "iou": iou[rows].tolist(),
        "signature": sig[rows].tolist(),
        "best_head": [int(torch.nan_to_num(iou[r], nan=-1.0).argmax()) + 1 for r in rows],
        "num_images": len(images),
        "images": [im.name for im in images],
        "tiles": tiles,
        "pixels": pixels,
        "left_out": left_out,
        "expected_s": round(expected, 3),
        "budget_s": None if max_seconds is None else round(float(max_seconds), 3),
        "elapsed_s": round(elapsed, 3),
    }
