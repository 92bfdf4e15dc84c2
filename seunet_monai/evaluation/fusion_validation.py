"""Out-of-sample validation of the ``scale`` fusion (:mod:`seunet_monai.fusion.scale`): the heads' outputs of every
validation image cached once, then calibration rules scored leave-one-image-out (LOIO), offline.

**Cache** (:func:`build_cache`): every image of a split is rescaled (image and label) by each scale with
:mod:`~seunet_monai.layers.rescale` and predicted per head on the path of
:func:`~seunet_monai.evaluation.calibration.calibrate_scale_fusion` (:func:`~seunet_monai.inferers.predict_heads`
with :func:`calibration_inferer`); one file per (item, scale), ``CACHE/<kind>/<item>/s<scale>.npz``, holds

- ``signature`` ``(3Ω,)``: :func:`~seunet_monai.fusion.scale.head_signature` of the item;
- ``confusion`` ``(Ω, C, 4)``: each head's ``[TP, FP, TN, FN]`` per class
  (:func:`~seunet_monai.metrics.confusion_counts`, the counts the calibration sums);
- for whole images at the evaluation scales (:data:`EVAL_RANGE`) also ``probs`` ``(Ω, C - 1, *spatial)`` float16
  (the class probabilities but the background's, which is one minus their sum) and ``label`` ``(*spatial)``.

Items are the whole images (tiles of one source put back together by
:func:`~seunet_monai.evaluation.calibration.whole_images`) and, optionally, the items as they are (``"tile"``,
statistics only: a calibration on them never needs their pixels). Files are written atomically and existing ones
are skipped, so an interrupted cache resumes. ``CACHE/manifest.json`` records the checkpoint (path, sha256), the
settings that change the numbers (classes, ``ignore_index``, inferer, data, config overrides), the code version of
each run and the items with their scales; a cache of another checkpoint or other settings is refused.

**Score** (:func:`score_cache`): for each whole image held out, the profile is built from the *other* images'
cached statistics as the calibration aggregates them (:func:`fold_profile`: per scale, each head's IoU of the
summed confusion counts and the mean signature over items, NaN components left out), from whole images or from
the tiles of the other images; the held-out image's scale is estimated from its cached signature
(:func:`~seunet_monai.fusion.scale.estimate_log_scale_from_signature`), each candidate rule fuses its cached heads, and the confusion counts are summed
per scale over the held-out images. Reported per scale: the dataset-wide IoU of every rule, of ``pens``, ``mean``
and each head, the best head at each scale (oracle), the gaps to it and to PEns, and the estimate's error.

**Rules** (:data:`CANDIDATE_RULES`, name -> :data:`Rule`): the ``scale`` rule and variants that soften it, shrink
it towards PEns or towards a flatter profile, or discount heads whose IoU varies across the calibration images.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from scipy.stats import spearmanr

from seunet_monai import __version__
from seunet_monai.checkpoint import load_network
from seunet_monai.errors import CheckpointError, ConfigValueError, DataError, MissingPathError
from seunet_monai.evaluation.calibration import measure_heads, profile_from_measurements
from seunet_monai.evaluation.heads import num_heads, output_heads_mode
from seunet_monai.evaluation.items import item_name, iterate_items, prepare_item
from seunet_monai.evaluation.whole_images import whole_images
from seunet_monai.fusion.heads import argmax, fuse_heads
from seunet_monai.fusion.scale import (
    ScaleProfile,
    apply_head_weights,
    estimate_log_scale_from_signature,
    iou_head_weights,
)
from seunet_monai.layers.rescale import default_scales, scaled_size
from seunet_monai.metrics import confusion_counts, dataset_iou
from seunet_monai.runtime.files import atomic_write_bytes, atomic_write_json, atomic_write_text, file_sha256
from seunet_monai.runtime.progress import format_duration as _secs
from seunet_monai.runtime.progress import format_megapixels as _mpx
from seunet_monai.runtime.resources import config_path

__all__ = [
    "CACHE_FORMAT",
    "CANDIDATE_RULES",
    "EVAL_RANGE",
    "EVAL_SCALES",
    "PAPER_SCALES",
    "CacheItem",
    "FoldProfile",
    "FusionCache",
    "ItemStats",
    "Rule",
    "RuleInput",
    "build_cache",
    "cache_items",
    "code_version",
    "fold_profile",
    "load_bundle_setup",
    "lower_bound_rule",
    "pens_mix_rule",
    "scale_rule",
    "score_cache",
    "shrunk_profile_rule",
    "write_report",
]

logger = logging.getLogger(__name__)

#: the 9 evaluation scales 0.5 · 2^(i/4), i = 0..8 (0.5 .. 2)
EVAL_SCALES = tuple(default_scales(9, 0.5))
#: the paper's 17 test scales 0.25 · 2^(i/4), i = 0..16 (0.25 .. 4), the profile's scales
PAPER_SCALES = tuple(default_scales())
#: held-out images are scored at their cached scales within this range (inclusive); their probabilities are kept
EVAL_RANGE = (0.5, 2.0)
#: layout version of the cache files (a cache of another version is refused)
CACHE_FORMAT = 1
WHOLE, TILE = "whole", "tile"
_MANIFEST = "manifest.json"


def _key(scale: float) -> str:
    """The file-name key of a scale (6 decimals: 0.5·2^(i/4) and 2^(k/4) computed either way share it)."""
    return f"{float(scale):.6f}"


def _in_eval_range(scale: float) -> bool:
    low, high = EVAL_RANGE
    return low * (1 - 1e-6) <= float(scale) <= high * (1 + 1e-6)


def code_version() -> dict[str, Any]:
    """``{"seunet_monai": version, "git_rev": HEAD or None, "git_dirty": bool or None, "cache_format"}`` of the
    imported package (the git fields when it is imported from a git checkout)."""
    root = Path(__file__).resolve().parents[2]
    rev, dirty = None, None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            rev = out.stdout.strip()
            diff = subprocess.run(
                ["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "seunet_monai"],
                capture_output=True,
                timeout=30,
            )
            dirty = diff.returncode != 0
    except (OSError, subprocess.SubprocessError):
        pass
    return {"seunet_monai": __version__, "git_rev": rev, "git_dirty": dirty, "cache_format": CACHE_FORMAT}


# ----------------------------------------------------------------------------------------------------------------------
# cache


@dataclass
class CacheItem:
    """One item of the cache: ``image (C, *spatial)`` float and ``label (1, *spatial)`` int64.

    Attributes:
        name: the item's name (a whole image's source name, or a tile's name).
        kind: ``"whole"`` or ``"tile"``.
        image_name: the whole image the item belongs to (itself for a whole image): LOIO leaves out every item of
            the held-out image.
        tiles: items the whole image was put together from.
    """

    name: str
    kind: str
    image_name: str
    image: torch.Tensor
    label: torch.Tensor
    tiles: int = 1

    def pixels(self, scales: Sequence[float]) -> int:
        """Pixels predicted for this item at ``scales``."""
        return sum(math.prod(scaled_size(self.image.shape[1:], s)) for s in scales)


def cache_items(
    data: Any, with_tiles: bool = False, image_key: str = "image", label_key: str = "label"
) -> list[CacheItem]:
    """The whole images of a split (as the calibration puts tiles back together) and, with ``with_tiles``, every
    item as it is (what the calibration reads with ``whole=False``), in the split's order.

    Args:
        data: the split (dicts, a ``monai.data.Dataset`` or a ``DataLoader``), read once.
        with_tiles: add the items as ``"tile"`` items.
        image_key: image key of the items.
        label_key: label key of the items.
    """
    loaded = list(iterate_items(data))
    items = [
        CacheItem(im.name, WHOLE, im.name, im.image, im.label, im.tiles)
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
        items.append(CacheItem(name, TILE, owner, image, label))
    return items


def _label_dtype(label: torch.Tensor) -> np.dtype:
    low, high = (int(label.min()), int(label.max())) if label.numel() else (0, 0)
    return np.dtype(np.uint8) if 0 <= low and high <= 255 else np.dtype(np.int32)


class FusionCache:
    """The files of a fusion cache folder (see the module docstring): the manifest and one ``.npz`` per (item, scale).

    Args:
        root: the cache folder.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / _MANIFEST
        self.manifest: dict[str, Any] | None = json.loads(path.read_text()) if path.is_file() else None

    @classmethod
    def open(cls, root: str | Path) -> FusionCache:
        """An existing cache, checked to hold at least one cached whole image.

        Raises:
            DataError: when the folder has no manifest or no cached whole image.
        """
        cache = cls(root)
        wholes = cache.items(WHOLE)
        if cache.manifest is None or not any(cache.has(WHOLE, it["name"], s) for it in wholes for s in it["scales"]):
            raise DataError(
                f"fusion cache {str(root)!r} is empty (no {_MANIFEST} or no cached whole image); fill it "
                "first with `python scripts/scale_fusion_cv.py cache --checkpoint CKPT --data-dir DATA "
                f"--out {root}`."
            )
        if cache.manifest.get("format") != CACHE_FORMAT:
            raise DataError(
                f"fusion cache {str(root)!r} has format {cache.manifest.get('format')}, this code reads "
                f"{CACHE_FORMAT}; make a new cache (another --out)."
            )
        return cache

    def items(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The manifest's items (``name``, ``kind``, ``image``, ``shape``, ``tiles``, ``scales``) of ``kind``."""
        items = (self.manifest or {}).get("items", [])
        return [it for it in items if kind is None or it["kind"] == kind]

    def path(self, kind: str, name: str, scale: float) -> Path:
        """The file of ``name`` (``kind``) at ``scale``."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        return self.root / kind / safe / f"s{_key(scale)}.npz"

    def has(self, kind: str, name: str, scale: float) -> bool:
        return self.path(kind, name, scale).is_file()

    def write(self, kind: str, name: str, scale: float, arrays: Mapping[str, np.ndarray]) -> Path:
        """Write one record atomically."""
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return atomic_write_bytes(self.path(kind, name, scale), buffer.getvalue())

    def stats(self, kind: str, name: str, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(signature (3Ω,) float64, confusion (Ω, C, 4) float64)`` of one record (its pixels are not read)."""
        with np.load(self.path(kind, name, scale)) as f:
            return torch.from_numpy(f["signature"]).double(), torch.from_numpy(f["confusion"]).double()

    def heads(self, name: str, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(probs (1, Ω, C, *spatial) float32, label (1, 1, *spatial) int64)`` of a whole image at an evaluation
        scale (the background probability is one minus the others', clamped at 0)."""
        path = self.path(WHOLE, name, scale)
        with np.load(path) as f:
            if "probs" not in f.files:
                raise DataError(
                    f"{path}: holds no probabilities (only whole images at scales {EVAL_RANGE[0]:g} .. "
                    f"{EVAL_RANGE[1]:g} keep them)."
                )
            rest = torch.from_numpy(f["probs"].astype(np.float32))  # (Ω, C - 1, *spatial)
            label = torch.from_numpy(f["label"].astype(np.int64))
        background = (1 - rest.sum(1, keepdim=True)).clamp_min(0)
        return torch.cat([background, rest], dim=1).unsqueeze(0), label[None, None]


def _check_identity(cache: FusionCache, identity: Mapping[str, Any], root: Path) -> None:
    """Refuse to add to a cache made from another checkpoint or with other settings (one line)."""
    old = cache.manifest
    if old is None:
        return
    if old.get("format") != CACHE_FORMAT:
        raise DataError(
            f"fusion cache {str(root)!r} has format {old.get('format')}, this code writes {CACHE_FORMAT}; "
            "use another --out."
        )
    mine, theirs = identity["checkpoint"], old.get("checkpoint", {})
    if mine["sha256"] != theirs.get("sha256"):
        raise CheckpointError(
            f"fusion cache {str(root)!r} holds the outputs of checkpoint {theirs.get('path')!r} (sha256 "
            f"{str(theirs.get('sha256'))[:12]}), not of {mine['path']!r} (sha256 {mine['sha256'][:12]}); give another "
            "--out or delete that cache."
        )
    for key, value in identity["settings"].items():
        if old.get("settings", {}).get(key) != value:
            raise ConfigValueError(
                f"fusion cache {str(root)!r} was made with {key} = {json.dumps(old.get('settings', {}).get(key))}, "
                f"not {json.dumps(value)}; give another --out or the same settings."
            )


def _merge_items(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The manifest's items after a run: the union by (kind, name), with the union of their scales."""
    merged = {(it["kind"], it["name"]): dict(it) for it in old}
    for it in new:
        key = (it["kind"], it["name"])
        if key in merged:
            scales = {_key(s): float(s) for s in [*merged[key]["scales"], *it["scales"]]}
            merged[key] = {**it, "scales": sorted(scales.values())}
        else:
            merged[key] = dict(it)
    return list(merged.values())


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
        roi_size, overlap, sw_batch_size: the calibration's inferer settings (:func:`calibration_inferer`).
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
    _check_identity(cache, identity, root)
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
    records = [
        {
            "name": it.name,
            "kind": it.kind,
            "image": it.image_name,
            "shape": list(it.image.shape[1:]),
            "tiles": it.tiles,
            "scales": sc,
        }
        for it, sc in plan
    ]
    code = code_version()
    previous = cache.manifest or {}
    cache.manifest = {
        "format": CACHE_FORMAT,
        **identity,
        "code": previous.get("code", code),  # the code that began the cache; every run's is in "runs"
        "runs": [*previous.get("runs", []), {"code": code, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}],
        "eval_range": list(EVAL_RANGE),
        "items": _merge_items(cache.items(), records),
    }
    atomic_write_json(root / _MANIFEST, cache.manifest)
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
                if item.kind == WHOLE and _in_eval_range(s):
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


def load_bundle_setup(
    checkpoint: str | Path,
    data_dir: str | Path,
    config_files: Sequence[str | Path] | None = None,
    overrides: Mapping[str, Any] | None = None,
    split: str = "validation",
) -> dict[str, Any]:
    """The network and the split as the bundle's ``calibrating`` command builds them (``network_def`` and
    ``calibrate#dataset`` of ``train.json`` + ``evaluate.json``: same loading, stain normalisation with the
    checkpoint folder's ``stain_reference.json``, intensity scaling), the weights of ``checkpoint`` loaded.

    Args:
        checkpoint: a ``model.pt``; its folder is the bundle's ``ckpt_dir``.
        data_dir: a prepared dataset folder (``datalist.json``).
        config_files: the bundle configs (default ``train.json`` and ``evaluate.json`` of the bundle).
        overrides: config values by ``#`` path (e.g. ``{"network_def#channels": [20, 40, 80, 160, 320]}``).
        split: the split read (the calibration's is ``validation``).

    Returns:
        ``{"network", "data", "num_classes", "ignore_index", "device"}``.

    Raises:
        MissingPathError: a missing checkpoint, or a data folder without ``datalist.json``.
        CheckpointError: weights that do not fit the configured network.
    """
    ckpt, data = Path(checkpoint).expanduser(), Path(data_dir).expanduser()
    if not ckpt.is_file():
        raise MissingPathError(f"checkpoint {str(ckpt)!r} does not exist.")
    if not (data / "datalist.json").is_file():
        raise MissingPathError(
            f"{str(data)!r} holds no datalist.json: give a prepared dataset folder (e.g. made by "
            "seunet-prepare-monuseg)."
        )
    files = [str(f) for f in (config_files or (config_path("train.json"), config_path("evaluate.json")))]
    parser = ConfigParser()
    parser.read_config(files)
    parser.update(
        {
            "dataset_dir": str(data.resolve()),
            "ckpt_dir": str(ckpt.resolve().parent),
            "eval_checkpoint": str(ckpt.resolve()),
            **dict(overrides or {}),
        }
    )
    if split != "validation":
        parser["calibrate#dataset#data"] = f"$seunet_monai.data.dataset.split_items(@datalist, '{split}', @dataset_dir)"
    network = parser.get_parsed_content("network_def")
    load_network(network, ckpt)
    device = parser.get_parsed_content("device")
    return {
        "network": network.to(device).eval(),
        "data": parser.get_parsed_content("calibrate#dataset"),
        "num_classes": int(parser.get_parsed_content("num_classes")),
        "ignore_index": parser.get_parsed_content("ignore_index"),
        "device": device,
    }


# ----------------------------------------------------------------------------------------------------------------------
# profiles and rules


@dataclass(frozen=True)
class ItemStats:
    """The cached statistics of one calibration item at the profile scales: ``signature (P, 3Ω)``,
    ``confusion (P, Ω, C, 4)``; ``image_name`` is the whole image it belongs to."""

    name: str
    image_name: str
    signature: torch.Tensor
    confusion: torch.Tensor


@dataclass(frozen=True)
class FoldProfile:
    """A calibration built from some images' cached statistics (:func:`fold_profile`).

    Attributes:
        profile: the :class:`~seunet_monai.fusion.scale.ScaleProfile` the calibration would store.
        iou_se: ``(P, Ω)`` standard error, across the calibration images, of each head's per-image IoU at the
            profile's scales (0 with a single image).
        num_images: calibration images (whole images; tiles count by the image they belong to).
        images: their names.
    """

    profile: ScaleProfile
    iou_se: torch.Tensor
    num_images: int
    images: tuple[str, ...]

    def at(self, values: torch.Tensor, log_scale: float) -> torch.Tensor:
        """Per-scale ``values (P, Ω)`` linearly interpolated in ``log s`` at ``log_scale`` (clamped to the ends):
        ``(Ω,)``, as the fusion interpolates ``fusion_iou``."""
        t = self.profile.scales.log()
        if t.numel() == 1 or log_scale <= float(t[0]):
            return values[0]
        if log_scale >= float(t[-1]):
            return values[-1]
        i = int(torch.searchsorted(t, torch.tensor(log_scale, dtype=t.dtype), right=True)) - 1
        frac = (log_scale - float(t[i])) / float(t[i + 1] - t[i])
        return values[i] + (values[i + 1] - values[i]) * frac


def fold_profile(
    stats: Sequence[ItemStats], scales: Sequence[float], num_classes: int, ignore_index: int | None = None
) -> FoldProfile:
    """The profile a calibration on ``stats``' items would store
    (:func:`~seunet_monai.evaluation.calibration.profile_from_measurements`, the calibration's own aggregation: at
    each scale, head k's IoU of the confusion counts summed over the items, and the mean signature over the items
    where it is finite), with the standard error of each head's IoU across the items' images.

    Args:
        stats: the calibration items' statistics at ``scales`` (same order of scales).
        scales: ``(P,)`` profile scales.
        num_classes: ``C`` (for the counts' shape check).
        ignore_index: label value left out of the IoU.

    Raises:
        DataError: no item, or no scale with a finite IoU for every head.
    """
    if not stats:
        raise DataError("fold_profile: no calibration item.")
    conf = torch.stack([st.confusion for st in stats])  # (N, P, Ω, C, 4)
    if conf.shape[-2] != num_classes:
        raise DataError(f"fold_profile: the counts are for {conf.shape[-2]} classes, not {num_classes}.")
    iou, signature = profile_from_measurements(conf, torch.stack([st.signature for st in stats]), ignore_index)
    profile = ScaleProfile.from_buffers(torch.tensor([float(s) for s in scales], dtype=torch.float64), iou, signature)
    if profile is None:
        raise DataError("fold_profile: no scale has a finite IoU for every head (no foreground in the labels?).")
    images = tuple(dict.fromkeys(st.image_name for st in stats))
    per_image = torch.stack(
        [
            dataset_iou(conf[[i for i, st in enumerate(stats) if st.image_name == name]].sum(0), ignore_index)
            for name in images
        ]
    )  # (n, P, Ω)
    finite = torch.isfinite(per_image)
    n = finite.sum(0).double()
    centred = torch.where(finite, per_image - per_image.nan_to_num(0.0).sum(0) / n.clamp_min(1), 0.0)
    se = torch.where(n > 1, (centred.pow(2).sum(0) / (n - 1).clamp_min(1)).sqrt() / n.sqrt(), 0.0)  # (P, Ω)
    rows = [min(range(len(scales)), key=lambda j: abs(math.log(float(scales[j]) / float(s)))) for s in profile.scales]
    return FoldProfile(profile, se[rows], len(images), images)


@dataclass(frozen=True)
class RuleInput:
    """What a rule sees for one held-out image at one scale.

    Attributes:
        probs: per-head class probabilities ``(1, Ω, C, *spatial)``.
        pens: their PEns fusion ``(1, C, *spatial)``.
        log_scale: the estimated ``log ŝ``
            (:func:`~seunet_monai.fusion.scale.estimate_log_scale_from_signature` with ``fold.profile``).
        fold: the calibration (other images only, under LOIO).
    """

    probs: torch.Tensor
    pens: torch.Tensor
    log_scale: float
    fold: FoldProfile


#: a candidate rule: fused class probabilities ``(1, C, *spatial)`` of one held-out image at one scale
Rule = Callable[[RuleInput], torch.Tensor]


def _weighted(x: RuleInput, q: torch.Tensor, temperature: float) -> torch.Tensor:
    return apply_head_weights(x.probs, iou_head_weights(q[None], temperature))


def scale_rule(temperature: float = 0.01) -> Rule:
    """The ``scale`` fusion: heads weighted by ``softmax`` of their profile IoU at ``ŝ`` over ``τ``."""

    def rule(x: RuleInput) -> torch.Tensor:
        return _weighted(x, x.fold.at(x.fold.profile.iou, x.log_scale), temperature)

    return rule


def pens_mix_rule(weight: float, temperature: float = 0.01) -> Rule:
    """Shrinkage towards PEns: ``(1 - λ) · scale + λ · PEns`` of the fused probabilities, ``λ = weight``."""

    def rule(x: RuleInput) -> torch.Tensor:
        return (1 - weight) * scale_rule(temperature)(x) + weight * x.pens

    return rule


def shrunk_profile_rule(prior_images: float = 2.0, temperature: float = 0.01) -> Rule:
    """The ``scale`` rule on a profile whose head IoUs are shrunk towards each head's mean over the scales by
    ``λ = n0 / (n0 + n)`` (``n0 = prior_images``, ``n`` the calibration images): the fewer images, the flatter."""

    def rule(x: RuleInput) -> torch.Tensor:
        iou = x.fold.profile.iou
        lam = prior_images / (prior_images + x.fold.num_images)
        return _weighted(x, x.fold.at((1 - lam) * iou + lam * iou.mean(0, keepdim=True), x.log_scale), temperature)

    return rule


def lower_bound_rule(z: float = 1.0, temperature: float = 0.01) -> Rule:
    """Uncertainty-aware weights: the profile IoU at ``ŝ`` minus ``z`` standard errors across the calibration
    images, soft-maxed over ``τ`` (a head whose IoU varies from image to image is trusted less)."""

    def rule(x: RuleInput) -> torch.Tensor:
        q = x.fold.at(x.fold.profile.iou, x.log_scale) - z * x.fold.at(x.fold.iou_se, x.log_scale)
        return _weighted(x, q, temperature)

    return rule


#: the candidate rules compared by :func:`score_cache` (``scale`` is the fusion as shipped)
CANDIDATE_RULES: dict[str, Rule] = {
    "scale": scale_rule(0.01),
    "scale_t0.02": scale_rule(0.02),
    "scale_t0.05": scale_rule(0.05),
    "pens_mix_0.25": pens_mix_rule(0.25),
    "pens_mix_0.5": pens_mix_rule(0.5),
    "shrunk_n2": shrunk_profile_rule(2.0),
    "lcb_z1": lower_bound_rule(1.0),
    "lcb_z2": lower_bound_rule(2.0),
}


# ----------------------------------------------------------------------------------------------------------------------
# score


def _profile_scales(choice: str | int | Sequence[float]) -> list[float]:
    if isinstance(choice, (str, int)) and str(choice) in ("9", "17"):
        return list(EVAL_SCALES if str(choice) == "9" else PAPER_SCALES)
    if isinstance(choice, str):
        raise ConfigValueError(f"profile scales must be 9, 17 or a list of scales, got {choice!r}.")
    return [float(s) for s in choice]


def _calibration_stats(cache: FusionCache, kind: str, scales: Sequence[float]) -> list[ItemStats]:
    items = cache.items(kind)
    if not items:
        raise DataError(
            f"fusion cache {str(cache.root)!r} holds no {kind} items; fill it with "
            + ("`cache ... --with-tiles`." if kind == TILE else "`cache ...`.")
        )
    missing = [(it["name"], s) for it in items for s in scales if not cache.has(kind, it["name"], s)]
    if missing:
        name, s = missing[0]
        raise DataError(
            f"fusion cache {str(cache.root)!r} lacks {len(missing)} {kind} file(s) at the profile scales (e.g. "
            f"{name} at {s:.4g}); run the cache command again with those scales (the 17 paper scales: "
            + ("--with-tiles --tile-scales paper17)." if kind == TILE else "--scales paper17).")
        )
    out = []
    for it in items:
        pairs = [cache.stats(kind, it["name"], s) for s in scales]
        out.append(
            ItemStats(it["name"], it["image"], torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]))
        )
    return out


def _scale_pixels(shapes: Sequence[Sequence[int]], scales: Sequence[float]) -> int:
    return sum(math.prod(scaled_size(shape, s)) for shape in shapes for s in scales)


def score_cache(
    cache: str | Path | FusionCache,
    calibration: str = WHOLE,
    profile_scales: str | int | Sequence[float] = "9",
    eval_scales: Sequence[float] | None = None,
    rules: Mapping[str, Rule] | None = None,
    loio: bool = True,
    grid_steps: int = 8,
) -> dict[str, Any]:
    """Leave-one-image-out scores of the candidate ``rules`` on a fusion cache (no network).

    Args:
        cache: the cache folder (or an open :class:`FusionCache`).
        calibration: ``"whole"`` (the calibration's default: the other whole images) or ``"tiles"`` (the items as
            they are, the tiles of the other images: the calibration with ``whole=False``).
        profile_scales: ``"9"`` (:data:`EVAL_SCALES`), ``"17"`` (:data:`PAPER_SCALES`) or a list: the profile's
            scales; the calibration items must be cached at all of them.
        eval_scales: the held-out images' scales (default: their cached scales within :data:`EVAL_RANGE`).
        rules: name -> :data:`Rule` (default :data:`CANDIDATE_RULES`).
        loio: ``False`` calibrates on every image, the held-out one included (the in-sample figure).
        grid_steps: the estimate's interpolation points per profile interval.

    Returns:
        a JSON-ready dict: ``scales``, ``iou`` (row name -> IoU per scale: ``oracle``, ``pens``, ``mean``, heads
        ``head1..``, then the rules), ``oracle_head`` (1-based per scale), ``rules`` (per rule: ``gap`` to the oracle
        per scale, ``worst_gap``, ``mean``, ``mean_gap``, ``vs_pens`` per scale, ``under_pens`` (scales),
        ``meets_goal``: within 0.5 IoU points of the oracle everywhere and never under PEns), ``estimate`` (mean
        error in octaves, Spearman correlation with the true scale, per image and scale), ``calibration`` (source,
        images, profile scales, megapixels a full calibration predicts) and ``cache`` (its manifest's identity).

    Raises:
        DataError: an empty or incomplete cache, fewer than two whole images for LOIO, an unknown calibration.
    """
    fc = cache if isinstance(cache, FusionCache) else FusionCache.open(cache)
    if calibration not in (WHOLE, "tiles"):
        raise ConfigValueError(f"calibration must be 'whole' or 'tiles', got {calibration!r}.")
    rules = dict(CANDIDATE_RULES if rules is None else rules)
    settings = fc.manifest["settings"]
    classes, ignore = int(settings["num_classes"]), settings.get("ignore_index")
    wholes = fc.items(WHOLE)
    if loio and len(wholes) < 2:
        raise DataError(
            f"fusion cache {str(fc.root)!r}: leave-one-image-out needs at least 2 whole images, it has {len(wholes)}."
        )
    if eval_scales is None:
        common = set.intersection(*({_key(s) for s in it["scales"] if _in_eval_range(s)} for it in wholes))
        eval_scales = sorted(float(k) for k in common)
    eval_scales = [float(s) for s in eval_scales]
    if not eval_scales:
        raise DataError(f"fusion cache {str(fc.root)!r}: no scale within {EVAL_RANGE} is cached for every whole image.")
    missing = [(it["name"], s) for it in wholes for s in eval_scales if not fc.has(WHOLE, it["name"], s)]
    if missing:
        raise DataError(
            f"fusion cache {str(fc.root)!r} is incomplete: {len(missing)} whole-image file(s) missing "
            f"(e.g. {missing[0][0]} at {missing[0][1]:.4g}); run the cache command again to finish it."
        )
    pscales = sorted(_profile_scales(profile_scales))
    kind = WHOLE if calibration == WHOLE else TILE
    stats = _calibration_stats(fc, kind, pscales)

    names = [it["name"] for it in wholes]
    rows = ["pens", "mean", *rules]
    counts = {r: {_key(s): torch.zeros(classes, 4, dtype=torch.float64) for s in eval_scales} for r in rows}
    omega = int(settings["num_heads"])
    head_counts = torch.zeros(len(eval_scales), omega, classes, 4, dtype=torch.float64)
    estimates: list[dict[str, Any]] = []
    folds: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    for h in names:
        fold = fold_profile([st for st in stats if not loio or st.image_name != h], pscales, classes, ignore)
        folds[h] = list(fold.images)
        for j, s in enumerate(eval_scales):
            signature, confusion = fc.stats(WHOLE, h, s)
            head_counts[j] += confusion
            t_hat = float(estimate_log_scale_from_signature(signature[None], fold.profile, grid_steps)[0])
            estimates.append({"image": h, "scale": s, "estimate": math.exp(t_hat)})
            probs, label = fc.heads(h, s)
            pens = fuse_heads(probs, "pens")
            fused = {"pens": pens, "mean": fuse_heads(probs, "mean")}
            x = RuleInput(probs, pens, t_hat, fold)
            for name, rule in rules.items():
                fused[name] = rule(x)
            for name, p in fused.items():
                counts[name][_key(s)] += confusion_counts(argmax(p, 1, keepdim=True), label, classes, ignore).sum(0)
        logger.info(
            "fusion scoring: %s held out (%d calibration image(s)), %s elapsed",
            h,
            fold.num_images,
            _secs(time.perf_counter() - t0),
        )

    iou: dict[str, list[float]] = {}
    heads = dataset_iou(head_counts, ignore).tolist()  # (scales, Ω)
    iou["oracle"] = [max(hs) for hs in heads]
    oracle_head = [int(np.argmax(hs)) + 1 for hs in heads]
    for r in ("pens", "mean"):
        iou[r] = [float(dataset_iou(counts[r][_key(s)], ignore)) for s in eval_scales]
    for k in range(omega):
        iou[f"head{k + 1}"] = [hs[k] for hs in heads]
    for r in rules:
        iou[r] = [float(dataset_iou(counts[r][_key(s)], ignore)) for s in eval_scales]

    def mean(v: Sequence[float]) -> float:
        return float(np.mean(v))

    summary = {}
    for r in rules:
        gap = [a - b for a, b in zip(iou[r], iou["oracle"])]
        vs_pens = [a - b for a, b in zip(iou[r], iou["pens"])]
        under = [s for s, d in zip(eval_scales, vs_pens) if d < 0]
        summary[r] = {
            "gap": gap,
            "worst_gap": min(gap),
            "mean": mean(iou[r]),
            "mean_gap": mean(gap),
            "vs_pens": vs_pens,
            "min_vs_pens": min(vs_pens),
            "under_pens": under,
            "meets_goal": min(gap) >= -0.005 and not under,
        }
    true = np.array([e["scale"] for e in estimates])
    est = np.array([e["estimate"] for e in estimates])
    rho = spearmanr(true, est)[0] if len(set(true.tolist())) > 1 and len(set(est.tolist())) > 1 else float("nan")
    all_items = fc.items(kind)
    return {
        "scales": eval_scales,
        "iou": iou,
        "oracle_head": oracle_head,
        "rules": summary,
        "estimate": {
            "octave_error": float(np.mean(np.abs(np.log2(est / true)))),
            "spearman": float(rho),
            "per_scale_geomean": [float(np.exp(np.mean(np.log(est[true == s])))) for s in eval_scales],
            "items": estimates,
        },
        "calibration": {
            "source": calibration,
            "loio": loio,
            "profile_scales": pscales,
            "images": names,
            "items": len(all_items),
            "folds": folds,
            "pixels": _scale_pixels([it["shape"] for it in all_items], pscales),
        },
        "evaluation_pixels": _scale_pixels([it["shape"] for it in wholes], eval_scales),
        "cache": {
            "path": str(fc.root),
            "checkpoint": fc.manifest["checkpoint"],
            "code": fc.manifest.get("code"),
            "settings": settings,
        },
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }


def _pct(v: float) -> str:
    return "nan" if v != v else f"{100 * v:.2f}"


def _signed(v: float) -> str:
    return "nan" if v != v else f"{100 * v:+.2f}"


def write_report(result: Mapping[str, Any], out: str | Path, provenance: Mapping[str, Any] | None = None) -> list[Path]:
    """Write ``out/cv_report.json`` (``result`` plus ``provenance``) and ``out/cv_report.md`` (the tables), atomically.

    Returns:
        the two paths.
    """
    out = Path(out)
    report = {"provenance": dict(provenance or {}), **result}
    scales = result["scales"]
    cal = result["calibration"]
    head = "| IoU % | " + " | ".join(f"{s:.2f}" for s in scales) + " | mean |"
    rule_line = "|---|" + "---|" * (len(scales) + 1)
    what = "leave-one-image-out" if cal["loio"] else "in-sample (every image calibrates)"
    lines = [
        "# Scale fusion, out of sample",
        "",
        f"- {what}, {len(cal['images'])} whole images held out in turn; calibration from the "
        f"{'whole images' if cal['source'] == WHOLE else 'tiles'} of the other images ({cal['items']} {'whole-image' if cal['source'] == WHOLE else 'tile'} "
        f"items in all), profile scales {', '.join(f'{s:.3g}' for s in cal['profile_scales'])}; a full calibration "
        f"predicts {_mpx(cal['pixels'])}, the held-out evaluation {_mpx(result['evaluation_pixels'])}.",
        f"- checkpoint {result['cache']['checkpoint']['path']} (sha256 {result['cache']['checkpoint']['sha256'][:12]}), "
        f"cache {result['cache']['path']}.",
    ]
    for key, value in (provenance or {}).items():
        lines.append(f"- {key}: `{value}`" if key == "command" else f"- {key}: {value}")
    lines += [
        "",
        "Dataset-wide IoU (%) over the held-out images; `oracle` is the best single head at each scale "
        f"(head {', '.join(str(h) for h in result['oracle_head'])}).",
        "",
        head,
        rule_line,
    ]
    for name, values in result["iou"].items():
        lines.append(f"| {name} | " + " | ".join(_pct(v) for v in values) + f" | {_pct(float(np.mean(values)))} |")
    lines += [
        "",
        "Gaps to the oracle (IoU points) and the goal (within 0.5 everywhere, never under PEns):",
        "",
        "| rule | " + " | ".join(f"{s:.2f}" for s in scales) + " | worst gap | mean | mean gap | min vs PEns | "
        "under PEns at | goal |",
        "|---|" + "---|" * (len(scales) + 6),
    ]
    for name, r in result["rules"].items():
        under = ", ".join(f"{s:.2f}" for s in r["under_pens"]) or "never"
        lines.append(
            f"| {name} | " + " | ".join(_signed(g) for g in r["gap"]) + f" | {_signed(r['worst_gap'])} | "
            f"{_pct(r['mean'])} | {_signed(r['mean_gap'])} | {_signed(r['min_vs_pens'])} | {under} | "
            f"{'yes' if r['meets_goal'] else 'no'} |"
        )
    est = result["estimate"]
    lines += [
        "",
        f"Scale estimate (held-out signatures against the fold's profile): mean error "
        f"{est['octave_error']:.3f} octave, Spearman correlation with the true scale {est['spearman']:.3f}; "
        "geometric mean of ŝ per true scale: "
        + ", ".join(f"{s:.2f} -> {g:.2f}" for s, g in zip(scales, est["per_scale_geomean"]))
        + ".",
        "",
    ]
    json_path = atomic_write_json(out / "cv_report.json", report)
    md_path = atomic_write_text(out / "cv_report.md", "\n".join(lines))
    return [json_path, md_path]
