"""Filling a fusion cache (:mod:`seunet_monai.evaluation.fusion_cache`, the folder and its layout): every item of
a split measured at each scale with the calibration's own step
(:func:`~seunet_monai.evaluation.calibration_measure.measure_heads`).

Items (:func:`cache_items`) are the whole images (tiles of one source put back together by
:func:`~seunet_monai.evaluation.whole_images.whole_images`, as the calibration does) and, optionally, the items as
they are (statistics only: a calibration on them never needs their pixels). :func:`build_cache` logs its plan
(megapixels to predict) first, then one line per item with the time left; files are written atomically and existing
ones are skipped, so an interrupted cache resumes, and a folder holding another checkpoint's or other settings'
cache is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seunet_monai.errors import ConfigValueError, DataError
from seunet_monai.evaluation.calibration_measure import measure_heads
from seunet_monai.evaluation.fusion_cache import (
    CACHE_FORMAT,
    EVAL_RANGE,
    EVAL_SCALES,
    TILE,
    WHOLE,
    FusionCache,
    cache_code_version,
    in_eval_range,
)
from seunet_monai.evaluation.heads import num_heads, output_heads_mode
from seunet_monai.evaluation.items import item_name, iterate_items, prepare_item
from seunet_monai.evaluation.whole_images import WholeImage, whole_images
from seunet_monai.runtime.files import file_sha256
from seunet_monai.runtime.progress import format_duration as _secs
from seunet_monai.runtime.progress import format_megapixels as _mpx

__all__ = ["CacheItem", "build_cache", "cache_items"]

logger = logging.getLogger(__name__)


@dataclass
class CacheItem(WholeImage):
    """One item of the cache: a :class:`~seunet_monai.evaluation.whole_images.WholeImage` (``name``, ``image
    (C, *spatial)`` float, ``label (1, *spatial)`` int64, ``tiles``) of a kind.

    Attributes:
        kind: :data:`WHOLE` or :data:`TILE`.
        image_name: the whole image the item belongs to (its own name for a whole image): leave-one-image-out
            leaves out every item of the held-out image.
    """

    kind: str = WHOLE
    image_name: str = ""

    def record(self, scales: Sequence[float]) -> dict[str, Any]:
        """The item's entry in the manifest, cached at ``scales``."""
        return {
            "name": self.name,
            "kind": self.kind,
            "image": self.image_name,
            "shape": list(self.image.shape[1:]),
            "tiles": self.tiles,
            "scales": list(scales),
        }


def cache_items(
    data: Any, with_tiles: bool = False, image_key: str = "image", label_key: str = "label"
) -> list[CacheItem]:
    """The whole images of a split (as the calibration puts tiles back together) and, with ``with_tiles``, every
    item as it is (what the calibration reads with ``whole=False``), in the split's order.

    Args:
        data: the split (dicts, a ``monai.data.Dataset`` or a ``DataLoader``), read once.
        with_tiles: add the items as :data:`TILE` items.
        image_key: image key of the items.
        label_key: label key of the items.
    """
    loaded = list(iterate_items(data))
    items = [
        CacheItem(im.name, im.image, im.label, im.tiles, WHOLE, im.name)
        for im in whole_images(loaded, image_key, label_key)
    ]
    if not with_tiles:
        return items
    wholes = {it.name for it in items}
    for index, item in enumerate(loaded):
        image, label = prepare_item(item, image_key, label_key, index)
        name = item["name"] if isinstance(item.get("name"), str) else item_name(item, image_key, index)
        source = item.get("source")
        owner = source if isinstance(source, str) and source in wholes else name
        items.append(CacheItem(name, image, label, 1, TILE, owner))
    return items


def _label_dtype(label: torch.Tensor) -> np.dtype:
    low, high = (int(label.min()), int(label.max())) if label.numel() else (0, 0)
    return np.dtype(np.uint8) if 0 <= low and high <= 255 else np.dtype(np.int32)


def build_cache(
    network: torch.nn.Module,
    data: Any,
    out: str | Path,
    checkpoint: str | Path,
    scales: Sequence[float] = EVAL_SCALES,
    *,
    tile_scales: Sequence[float] | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    roi_size: int | Sequence[int] | None = None,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    device: str | torch.device | None = None,
    settings: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    image_key: str = "image",
    label_key: str = "label",
) -> dict[str, Any]:
    """Fill (or complete) a fusion cache: every whole image at ``scales``, and every item as it is at ``tile_scales``.

    Logs the plan (items, scales, megapixels to predict) first, then one line per item with the time left.

    Args:
        network: the multi-head network, weights of ``checkpoint`` loaded.
        data: the split (see :func:`cache_items`).
        out: the cache folder.
        checkpoint: the weights' file (hashed into the manifest; a cache of another file is refused).
        scales: scales of the whole images (default :data:`EVAL_SCALES`).
        tile_scales: scales of the items as they are (``None``: no tile items).
        num_classes: ``C`` (default: the network's ``out_channels``).
        ignore_index: label value left out of the counts.
        roi_size, overlap, sw_batch_size: the calibration's windows
            (:func:`~seunet_monai.evaluation.calibration_measure.calibration_inferer`).
        device: where the network runs (default: where its parameters are).
        settings: further settings that change the numbers (e.g. data folder, config overrides), recorded and
            compared with an existing cache's.
        dry_run: log the plan and return without predicting (the manifest is not written).
        image_key, label_key: keys of the items.

    Returns:
        ``{"items", "whole", "tiles", "pixels_total", "pixels_todo", "files_written", "elapsed_s", "out"}``.

    Raises:
        CheckpointError / ConfigValueError: the folder holds a cache of another checkpoint or other settings.
        DataError: for an empty split.
    """
    root = Path(out)
    classes = int(num_classes if num_classes is not None else getattr(network, "out_channels", 0))
    if classes < 2:
        raise ConfigValueError(f"build_cache: num_classes must be >= 2, got {classes}.")
    if device is None:
        p = next(network.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    t0 = time.perf_counter()
    identity = {
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "sha256": file_sha256(checkpoint)},
        "settings": {
            "num_classes": classes,
            "ignore_index": ignore_index,
            "num_heads": num_heads(network),
            "roi_size": None if roi_size is None else list(np.atleast_1d(roi_size).tolist()),
            "overlap": float(overlap),
            "sw_batch_size": int(sw_batch_size),
            **dict(settings or {}),
        },
    }
    cache = FusionCache(root)
    cache.check_identity(identity)
    items = cache_items(data, tile_scales is not None, image_key, label_key)
    if not items:
        raise DataError("build_cache: the split is empty.")
    plan = [(it, [float(s) for s in (scales if it.kind == WHOLE else tile_scales or ())]) for it in items]
    todo = [(it, [s for s in sc if not cache.has(it.kind, it.name, s)]) for it, sc in plan]
    total = sum(it.pixels(sc) for it, sc in plan)
    todo_px = sum(it.pixels(sc) for it, sc in todo)
    wholes = [it for it in items if it.kind == WHOLE]
    tiles = [it for it in items if it.kind == TILE]
    parts = [f"{len(wholes)} whole image(s) x {len(scales)} scales ({_mpx(sum(it.pixels(scales) for it in wholes))})"]
    if tiles:
        parts.append(
            f"{len(tiles)} tile item(s) x {len(tile_scales or ())} scales "
            f"({_mpx(sum(it.pixels(tile_scales or ()) for it in tiles))})"
        )
    files_todo = sum(len(sc) for _, sc in todo)
    logger.info(
        "fusion cache %s: %s = %s; %s to predict in %d file(s), %d file(s) cached already%s.",
        root,
        " + ".join(parts),
        _mpx(total),
        _mpx(todo_px),
        files_todo,
        sum(len(sc) for _, sc in plan) - files_todo,
        " (dry run: nothing predicted)" if dry_run else "",
    )
    summary = {
        "items": len(items),
        "whole": len(wholes),
        "tiles": len(tiles),
        "pixels_total": total,
        "pixels_todo": todo_px,
        "files_written": 0,
        "out": str(root),
    }
    if dry_run:
        return {**summary, "elapsed_s": round(time.perf_counter() - t0, 3)}
    code = cache_code_version()
    previous = cache.manifest or {}
    manifest = {
        "format": CACHE_FORMAT,
        **identity,
        "code": previous.get("code", code),  # the code that began the cache; every run's is in "runs"
        "runs": [*previous.get("runs", []), {"code": code, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}],
        "eval_range": list(EVAL_RANGE),
        "items": cache.merged_items([it.record(sc) for it, sc in plan]),
    }
    cache.write_manifest(manifest)
    done_px, written, t_work = 0, 0, time.perf_counter()
    pending = [(it, sc) for it, sc in todo if sc]
    with output_heads_mode(network):
        for index, (item, missing) in enumerate(pending):
            t_item = time.perf_counter()
            for s in missing:
                probs, label, signature, confusion = measure_heads(
                    network, item.image, item.label, s, classes, ignore_index, roi_size, overlap, sw_batch_size, device
                )
                arrays = {
                    "scale": np.float64(s),
                    "shape": np.asarray(label.shape),
                    "signature": signature.numpy(),
                    "confusion": confusion.numpy(),
                }
                if item.kind == WHOLE and in_eval_range(s):
                    arrays["probs"] = probs[:, 1:].numpy().astype(np.float16)
                    arrays["label"] = label.numpy().astype(_label_dtype(label))
                cache.write(item.kind, item.name, s, arrays)
                written += 1
            done_px += item.pixels(missing)
            rate = (time.perf_counter() - t_work) / max(1, done_px)
            logger.info(
                "fusion cache: [%d/%d] %s %s, %d scale(s), %s in %s; %s of %s done, about %s left",
                index + 1,
                len(pending),
                item.kind,
                item.name,
                len(missing),
                _mpx(item.pixels(missing)),
                _secs(time.perf_counter() - t_item),
                _mpx(done_px),
                _mpx(todo_px),
                _secs(rate * (todo_px - done_px)),
            )
    elapsed = time.perf_counter() - t0
    logger.info("fusion cache %s: %d file(s) written in %s.", root, written, _secs(elapsed))
    return {**summary, "files_written": written, "elapsed_s": round(elapsed, 3)}
