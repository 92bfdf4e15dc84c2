"""Calibration of the ``"scale"`` fusion (:mod:`seunet_monai.scale_fusion`) on validation data.

:func:`calibrate_scale_fusion` rescales every validation image (and its label) to each profile scale with
:mod:`~seunet_monai.evaluation.rescale`, predicts per-head probabilities with the scale sweep's prediction
path (:func:`~seunet_monai.inferers.infer_heads`, the package's one path), and fills the network's state-dict buffers:

- ``fusion_iou[p, k]``: head k's dataset-wide IoU over the validation images at scale ``fusion_scales[p]``
  (:class:`~seunet_monai.metrics.SegmentationScores`, the sweep's metric);
- ``fusion_signature[p]``: the mean over images of :func:`~seunet_monai.scale_fusion.head_signature`.

Rows of scales left out (``scales`` = a subset) are set to NaN, so one calibration is one consistent
measurement. :func:`calibrate_checkpoint` does the same for a checkpoint file (the bundle's ``calibrating``
command): it loads the weights, calibrates, keeps a copy of the original file (``model_uncalibrated.pt``, never
overwritten) and writes the checkpoint back atomically in the layout it was read in.

Cost: one forward pass per (image, scale) at the rescaled size, i.e. about ``Σ_p s_p²`` ≈ 29 times the
pixels of the split for the 17 default scales (0.25 .. 4; the scales >= 2 are 85% of it). ``scales`` and
``max_images`` bound it; e.g. the 9 scales 0.5 .. 2 (``2^(k/4)``, k = -4..4) cost ≈ 9.2 times the split.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from monai.inferers import SlidingWindowInferer

from seunet_monai.checkpoint import load_network
from seunet_monai.data.io import atomic_torch_save, atomic_write_bytes, atomic_write_json
from seunet_monai.evaluation.heads import is_multihead, output_heads_mode
from seunet_monai.evaluation.rescale import rescale_image, rescale_label
from seunet_monai.evaluation.items import item_name, iterate_items, prepare_item
from seunet_monai.inferers import predict_heads
from seunet_monai.metrics import SegmentationScores
from seunet_monai.networks.utils import unwrap
from seunet_monai.scale_fusion import BUFFER_NAMES, ScaleProfile, head_signature, signature_width

__all__ = ["calibrate_checkpoint", "calibrate_scale_fusion", "select_profile_rows"]

logger = logging.getLogger(__name__)


def _buffers(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    bufs = dict(unwrap(network).named_buffers(recurse=False))
    missing = [n for n in BUFFER_NAMES if n not in bufs]
    if missing or not is_multihead(unwrap(network)):
        raise ValueError(
            f"{type(unwrap(network)).__name__} cannot hold a scale-fusion calibration: it needs num_scales, "
            f"output_heads and the buffers {list(BUFFER_NAMES)} (SEUNet and its subclasses have them); missing {missing}."
        )
    return bufs


def select_profile_rows(profile_scales: Sequence[float], scales: Sequence[float] | None, rtol: float = 1e-4) -> list[int]:
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


def calibrate_scale_fusion(
    network: torch.nn.Module,
    data: Any,
    scales: Sequence[float] | None = None,
    *,
    max_images: int | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    roi_size: int | Sequence[int] | None = None,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    device: str | torch.device | None = None,
    image_key: str = "image",
    label_key: str = "label",
) -> dict[str, Any]:
    """Measure the per-head IoU and the signatures at each profile scale and store them in ``network``'s buffers.

    Args:
        network: a multi-head network with the ``fusion_scales`` / ``fusion_iou`` / ``fusion_signature`` buffers
            (SEUNet; ``DistributedDataParallel`` is unwrapped), weights loaded.
        data: the validation split: dicts with ``image_key`` ``(C, *spatial)`` and ``label_key`` ``(1, *spatial)``
            (a ``monai.data.Dataset``, a list, or a ``DataLoader`` whose batches are decollated).
        scales: the profile scales to calibrate (a subset of ``fusion_scales``; default all of them).
        max_images: use only the first this many images (default all).
        num_classes: number of classes (default: the network's output classes).
        ignore_index: label value left out of the IoU (the signatures are label-free and use every pixel).
        roi_size: sliding-window size for images larger than it (default ``None``: whole images, as the fusion
            sees them at inference when they fit; give the inference window otherwise).
        overlap: sliding-window overlap.
        sw_batch_size: windows per network call.
        device: where the network runs (default: where its parameters are).
        image_key: image key of the items.
        label_key: label key of the items.

    Returns:
        ``{"scales", "iou" (P', Ω), "signature" (P', 3Ω), "best_head" (1-based, per scale), "num_images",
        "elapsed_s"}`` for the calibrated rows.

    Raises:
        ValueError: for a network without the buffers, scales outside the profile, or no images.
    """
    bufs = _buffers(network)
    net = unwrap(network)
    omega = int(net.num_scales)
    rows = select_profile_rows(bufs["fusion_scales"].tolist(), scales)
    row_scales = [float(bufs["fusion_scales"][r]) for r in rows]
    if max_images is not None and int(max_images) < 1:
        raise ValueError(f"max_images must be >= 1 (or None for all), got {max_images}.")
    classes = int(num_classes if num_classes is not None else getattr(net, "out_channels", 0))
    if classes < 2:
        raise ValueError(f"calibrate_scale_fusion: num_classes must be >= 2, got {classes}.")
    if device is None:
        p = next(net.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    inferer = None
    scores = {(r, k): SegmentationScores(classes, ignore_index) for r in rows for k in range(omega)}
    width = signature_width(omega)
    sig_sum = {r: torch.zeros(width, dtype=torch.float64) for r in rows}
    sig_count = {r: torch.zeros(width, dtype=torch.float64) for r in rows}  # images with a finite component
    names: list[str] = []
    t0 = time.perf_counter()
    with output_heads_mode(net):
        for index, item in enumerate(iterate_items(data)):
            if max_images is not None and index >= int(max_images):
                break
            image, label = prepare_item(item, image_key, label_key, index)
            if inferer is None and roi_size is not None:
                roi = (roi_size,) * (image.ndim - 1) if isinstance(roi_size, int) else tuple(int(r) for r in roi_size)
                inferer = SlidingWindowInferer(roi_size=roi, sw_batch_size=sw_batch_size, overlap=overlap,
                                               mode="gaussian", device=torch.device("cpu"), progress=False)
            names.append(item_name(item, image_key, index))
            for r, s in zip(rows, row_scales):
                img_s = rescale_image(image, s)
                lab_s = rescale_label(label, s).unsqueeze(0)  # (1, 1, *spatial)
                probs = predict_heads(net, img_s, inferer, device).cpu()  # (1, Ω, C, *spatial)
                lab_s = lab_s.to(probs.device)
                for k in range(omega):
                    scores[(r, k)].update(probs[:, k].argmax(1, keepdim=True), lab_s)
                sig = head_signature(probs)[0].cpu()
                sig_sum[r] += torch.nan_to_num(sig, nan=0.0)
                sig_count[r] += torch.isfinite(sig).double()
            logger.info("scale calibration: image %d (%s) at %d scales, %.1f s", index + 1, names[-1], len(rows),
                        time.perf_counter() - t0)
    if not names:
        raise ValueError("calibrate_scale_fusion: the validation data is empty.")
    iou = torch.full(bufs["fusion_iou"].shape, float("nan"), dtype=torch.float64)
    sig = torch.full(bufs["fusion_signature"].shape, float("nan"), dtype=torch.float64)
    for r in rows:
        iou[r] = torch.tensor([scores[(r, k)].compute()["iou"] for k in range(omega)], dtype=torch.float64)
        sig[r] = sig_sum[r] / sig_count[r]  # mean over the images where the head found objects (0/0: NaN)
    with torch.no_grad():
        bufs["fusion_iou"].copy_(iou.to(bufs["fusion_iou"]))
        bufs["fusion_signature"].copy_(sig.to(bufs["fusion_signature"]))
    if ScaleProfile.from_module(net) is None:
        logger.warning("scale calibration: no scale gave a finite IoU for every head (no foreground in the "
                       "validation labels?); the 'scale' fusion stays uncalibrated.")
    elapsed = time.perf_counter() - t0
    logger.info("scale calibration: %d images x %d scales in %.1f s", len(names), len(rows), elapsed)
    return {
        "scales": row_scales,
        "iou": iou[rows].tolist(),
        "signature": sig[rows].tolist(),
        "best_head": [int(torch.nan_to_num(iou[r], nan=-1.0).argmax()) + 1 for r in rows],
        "num_images": len(names),
        "images": names,
        "elapsed_s": round(elapsed, 3),
    }


def calibrate_checkpoint(
    network: torch.nn.Module,
    checkpoint: str | os.PathLike,
    data: Any,
    scales: Sequence[float] | None = None,
    *,
    key: str | None = "model",
    backup: str | None = "model_uncalibrated.pt",
    report: str | os.PathLike | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Load ``checkpoint`` into ``network``, calibrate the ``"scale"`` fusion, and write the checkpoint back.

    ``model.pt`` as MONAI's ``CheckpointSaver`` writes it with ``save_dict={"model": network}`` is the bare state
    dict (Ignite stores a single object unwrapped); a dict holding the state dict under ``key`` is also read. The
    file is rewritten in the layout it was read in (other entries kept), atomically (temporary file in the same
    folder, then ``os.replace``), after the original bytes are copied to ``backup`` (in the same folder) unless
    that file exists already (it then holds the first, uncalibrated original and is not touched).

    Args:
        network: the configured network (``DistributedDataParallel`` is unwrapped).
        checkpoint: the checkpoint file (e.g. ``ckpt_dir/model.pt``).
        data: the validation split (see :func:`calibrate_scale_fusion`).
        scales: profile scales to calibrate (default all).
        key: entry of a dict checkpoint holding the network's state dict.
        backup: file name of the copy of the original (``None``: no copy).
        report: optional JSON file for the calibration table (written atomically).
        kwargs: passed to :func:`calibrate_scale_fusion` (``max_images``, ``ignore_index``, ``device``, ...).

    Returns:
        the result of :func:`calibrate_scale_fusion` plus ``checkpoint`` and ``backup`` paths.

    Raises:
        FileNotFoundError / ValueError: for a missing, unreadable or unfitting checkpoint (nothing is written).
    """
    path = Path(checkpoint)
    data_file, state = load_network(network, path, key)
    net = unwrap(network)
    result = calibrate_scale_fusion(network, data, scales, **kwargs)
    new_state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    held_in = next((k for k, v in data_file.items() if v is state), key) if data_file is not state else None
    payload = {**data_file, held_in: new_state} if held_in is not None else new_state
    backup_path = None
    if backup:
        backup_path = path.parent / backup
        if backup_path.exists():
            logger.info("scale calibration: %s exists (the original); left as it is.", backup_path)
        else:
            atomic_write_bytes(backup_path, path.read_bytes())
    atomic_torch_save(path, payload)
    logger.info("scale calibration written to %s (best head per scale: %s)", path,
                ", ".join(f"{s:.3g}: {h}" for s, h in zip(result["scales"], result["best_head"])))
    result = {**result, "checkpoint": str(path), "backup": None if backup_path is None else str(backup_path)}
    if report is not None:
        atomic_write_json(report, result)
    return result
