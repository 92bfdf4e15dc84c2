"""The fusion cache folder of the scale fusion's out-of-sample validation
(:mod:`seunet_monai.evaluation.fusion_validation`): the calibration's measurement of every validation image at each
scale, stored once (by :func:`~seunet_monai.evaluation.fusion_cache_build.build_cache`) so that the scoring needs no
network.

One file per (item, scale), ``CACHE/<kind>/<item>/s<scale>.npz``, holds

- ``signature`` ``(3Ω,)``: :func:`~seunet_monai.fusion.scale.head_signature` of the item;
- ``confusion`` ``(Ω, C, 4)``: each head's ``[TP, FP, TN, FN]`` per class (the counts the calibration sums);
- for whole images at the evaluation scales (:data:`EVAL_RANGE`) also ``probs`` ``(Ω, C - 1, *spatial)`` float16
  (the class probabilities but the background's, which is one minus their sum) and ``label`` ``(*spatial)``.

Items are of two kinds: the whole images (:data:`WHOLE`) and the split's items as they are (:data:`TILE`,
statistics only). ``CACHE/manifest.json`` records the checkpoint (path, sha256), the settings that change the
numbers (classes, ``ignore_index``, inferer, data, config overrides), the code version of each run and the items
with their scales; :class:`FusionCache` reads and writes the folder and refuses to mix checkpoints or settings.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seunet_monai.errors import CheckpointError, ConfigValueError, DataError
from seunet_monai.layers.rescale import default_scales
from seunet_monai.runtime.files import atomic_write_bytes, atomic_write_json
from seunet_monai.runtime.version import code_version

__all__ = [
    "CACHE_FORMAT",
    "EVAL_RANGE",
    "EVAL_SCALES",
    "MANIFEST",
    "PAPER_SCALES",
    "TILE",
    "WHOLE",
    "FusionCache",
    "cache_code_version",
    "in_eval_range",
    "scale_key",
]

#: the 9 evaluation scales 0.5 · 2^(i/4), i = 0..8 (0.5 .. 2)
EVAL_SCALES = tuple(default_scales(9, 0.5))
#: the paper's 17 test scales 0.25 · 2^(i/4), i = 0..16 (0.25 .. 4), the profile's scales
PAPER_SCALES = tuple(default_scales())
#: held-out images are scored at their cached scales within this range (inclusive); their probabilities are kept
EVAL_RANGE = (0.5, 2.0)
#: layout version of the cache files (a cache of another version is refused)
CACHE_FORMAT = 1
#: the kinds of items: whole images, and the split's items as they are
WHOLE, TILE = "whole", "tile"
#: the manifest's file name in the cache folder
MANIFEST = "manifest.json"


def scale_key(scale: float) -> str:
    """The file-name key of a scale (6 decimals: 0.5·2^(i/4) and 2^(k/4) computed either way share it)."""
    return f"{float(scale):.6f}"


def in_eval_range(scale: float) -> bool:
    """Whether ``scale`` is within :data:`EVAL_RANGE` (the scales whose whole-image files keep the pixels)."""
    low, high = EVAL_RANGE
    return low * (1 - 1e-6) <= float(scale) <= high * (1 + 1e-6)


def cache_code_version() -> dict[str, Any]:
    """:func:`~seunet_monai.runtime.version.code_version` with the :data:`CACHE_FORMAT` it writes and reads."""
    return {**code_version(), "cache_format": CACHE_FORMAT}


class FusionCache:
    """The files of a fusion cache folder (see the module docstring): the manifest and one ``.npz`` per (item, scale).

    Args:
        root: the cache folder.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / MANIFEST
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
                f"fusion cache {str(root)!r} is empty (no {MANIFEST} or no cached whole image); fill it "
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
        return self.root / kind / safe / f"s{scale_key(scale)}.npz"

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

    def check_identity(self, identity: Mapping[str, Any]) -> None:
        """Refuse to add to a cache made from another checkpoint or with other settings (one line).

        Args:
            identity: ``{"checkpoint": {"path", "sha256"}, "settings": {...}}`` of the run that would add to it.

        Raises:
            DataError / CheckpointError / ConfigValueError: another format, checkpoint or setting.
        """
        root, old = self.root, self.manifest
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
                f"{str(theirs.get('sha256'))[:12]}), not of {mine['path']!r} (sha256 {mine['sha256'][:12]}); give "
                "another --out or delete that cache."
            )
        for key, value in identity["settings"].items():
            if old.get("settings", {}).get(key) != value:
                raise ConfigValueError(
                    f"fusion cache {str(root)!r} was made with {key} = "
                    f"{json.dumps(old.get('settings', {}).get(key))}, not {json.dumps(value)}; give another --out or "
                    "the same settings."
                )

    def write_manifest(self, manifest: Mapping[str, Any]) -> Path:
        """Write ``manifest`` atomically and keep it as :attr:`manifest`."""
        self.manifest = dict(manifest)
        return atomic_write_json(self.root / MANIFEST, self.manifest)

    def merged_items(self, new: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The manifest's items after a run adding ``new``: the union by (kind, name), with the union of their scales."""
        merged = {(it["kind"], it["name"]): dict(it) for it in self.items()}
        for it in new:
            key = (it["kind"], it["name"])
            if key in merged:
                scales = {scale_key(s): float(s) for s in [*merged[key]["scales"], *it["scales"]]}
                merged[key] = {**it, "scales": sorted(scales.values())}
            else:
                merged[key] = dict(it)
        return list(merged.values())
