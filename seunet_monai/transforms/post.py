"""Post-processing transforms of per-head probabilities ``(Ω, C, *spatial)`` (decollated items) and the saving
of predicted masks.

- :class:`Fuse` / :class:`Fused`: fuse the heads with a strategy of :func:`seunet_monai.fusion.strategies.fuse`;
- :class:`WinningHead` / :class:`WinningHeadd`: the per-pixel PDist winning head (which scale group decided);
- :class:`SaveLabelMaskd`: write the class-id mask (and optionally the probabilities) of one item, atomically.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type, convert_to_tensor

from seunet_monai.data.io import atomic_save_png
from seunet_monai.fusion.heads import winning_head
from seunet_monai.fusion.strategies import fuse, parse_strategy
from seunet_monai.runtime.files import atomic_write_bytes

__all__ = ["Fuse", "Fused", "SaveLabelMaskd", "WinningHead", "WinningHeadd", "output_stem"]


class Fuse(Transform):
    """Array transform: fuse per-head class probabilities with :func:`fuse`.

    MONAI ``postprocessing`` sees decollated items without a batch dimension, so by default the input is
    one item ``(Ω, C, *spatial)`` and the output ``(C, *spatial)``. With ``batched=True`` the input is
    ``(B, Ω, C, *spatial)`` and the output ``(B, C, *spatial)``. (The rank alone cannot tell the two apart:
    a 3D item ``(Ω, C, D, H, W)`` has the rank of a batched 2D tensor, hence the explicit flag.)

    Args:
        strategy: ``"mean"``, ``"pdist"``, ``"pens"``, ``"scale"`` or ``"head:k"`` (1-based ``k``).
        batched: whether the input carries a leading batch dimension.
        softmax: apply a softmax over the class dimension first (for per-head logits, e.g. training-mode
            network outputs). Default ``False``: the input already holds probabilities.
        profile: ``"scale"`` only: the calibration, typically the network itself (``"profile": "@network"`` in a
            bundle config); a network's buffers are read at every call, so a checkpoint loaded after this
            transform was built is used. See :func:`fuse`.
        temperature: ``"scale"`` only: ``τ`` of the head weights (IoU units).

    A ``MetaTensor`` input gives a ``MetaTensor`` output with the same metadata.
    """

    def __init__(self, strategy: str = "pens", batched: bool = False, softmax: bool = False, profile: Any = None,
                 temperature: float = 0.01) -> None:
        parse_strategy(strategy)  # fail early on a bad name
        self.strategy = strategy
        self.batched = bool(batched)
        self.softmax = bool(softmax)
        self.profile = profile
        self.temperature = float(temperature)

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        """
        Args:
            probs: ``(Ω, C, *spatial)`` (or ``(B, Ω, C, *spatial)`` with ``batched=True``).

        Returns:
            ``(C, *spatial)`` (or ``(B, C, *spatial)``) class scores.
        """
        x = convert_to_tensor(probs, track_meta=False)
        min_rank = 4 if self.batched else 3
        if x.ndim < min_rank:
            layout = "(B, Ω, C, *spatial)" if self.batched else "(Ω, C, *spatial)"
            raise ValueError(
                f"Fuse: expected per-head probabilities {layout} (batched={self.batched}), got shape {tuple(x.shape)}."
            )
        if not self.batched:
            x = x.unsqueeze(0)
        if self.softmax:
            x = torch.softmax(x, dim=2)
        out = fuse(x, self.strategy, profile=self.profile, temperature=self.temperature)
        if not self.batched:
            out = out.squeeze(0)
        return convert_to_dst_type(out, probs)[0]


class Fused(MapTransform):
    """Dictionary form of :class:`Fuse`.

    Args:
        keys: keys of the per-head probabilities to fuse (in place).
        strategy: ``"mean"``, ``"pdist"``, ``"pens"``, ``"scale"`` or ``"head:k"``.
        batched: whether the items carry a leading batch dimension (default ``False``: decollated items
            ``(Ω, C, *spatial)``, as in MONAI ``postprocessing``).
        softmax: apply a softmax over classes first (input holds logits).
        profile: ``"scale"`` only: the calibration, typically ``"@network"`` (see :class:`Fuse`).
        temperature: ``"scale"`` only: ``τ`` of the head weights (IoU units).
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        strategy: str = "pens",
        batched: bool = False,
        softmax: bool = False,
        profile: Any = None,
        temperature: float = 0.01,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.fuser = Fuse(strategy=strategy, batched=batched, softmax=softmax, profile=profile,
                          temperature=temperature)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.fuser(d[key])
        return d


class WinningHead(Transform):
    """Array transform: per-pixel PDist winning head, 1-based (``head1`` = 1), as a one-channel map.

    Shows which scale group decided each pixel (a per-pixel scale map for ``inferring``).

    Args:
        batched: input ``(B, Ω, C, *spatial)`` -> ``(B, 1, *spatial)``; default ``False``: a decollated item
            ``(Ω, C, *spatial)`` -> ``(1, *spatial)``.

    The output is int64 (values 1..Ω); a ``MetaTensor`` input keeps its metadata.
    """

    def __init__(self, batched: bool = False) -> None:
        self.batched = bool(batched)

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        x = convert_to_tensor(probs, track_meta=False)
        if x.ndim < (4 if self.batched else 3):
            raise ValueError(f"WinningHead: expected per-head probabilities, got shape {tuple(x.shape)} (batched={self.batched}).")
        if not self.batched:
            x = x.unsqueeze(0)
        out = (winning_head(x) + 1).unsqueeze(1)  # (B, 1, *spatial)
        if not self.batched:
            out = out.squeeze(0)
        return convert_to_dst_type(out, probs, dtype=torch.int64)[0]


class WinningHeadd(MapTransform):
    """Dictionary form of :class:`WinningHead`: writes the map of ``keys`` under ``new_key`` (``pred`` is kept).

    Args:
        keys: key of the per-head probabilities (one key).
        new_key: key of the winning-head map.
        batched: whether the items carry a leading batch dimension.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(self, keys: KeysCollection, new_key: str = "winning_head", batched: bool = False,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"WinningHeadd: give one key, got {self.keys}.")
        self.new_key = new_key
        self.transform = WinningHead(batched=batched)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.new_key] = self.transform(d[key])
        return d


def output_stem(image_path: str | os.PathLike) -> str:
    """The base name of an input image without its extension(s) (``a.ome.tif`` -> ``a.ome``; ``a.png`` -> ``a``)."""
    return Path(str(image_path)).stem


class SaveLabelMaskd(MapTransform):
    """Write a prediction of one decollated item as ``output_dir/<image base name>.png`` (class ids, uint8),
    and optionally its class probabilities as ``<base name>_prob.tif`` (float32, ``(C, H, W)``).

    Written here rather than with MONAI's ``SaveImaged``: its writers (``PILWriter``, ``ITKWriter``) open the
    final file name and write into it, so an interrupted run leaves a partial PNG under the final name, and there
    is no hook between writing and naming to make that atomic short of re-implementing ``SaveImage.__call__``.
    Here every file goes through :func:`seunet_monai.runtime.files.atomic_write_bytes` (temporary name in the same
    folder, then ``os.replace``), keeps exactly the input's base name (``SaveImaged`` adds a postfix and, with
    its default ``FolderLayout``, a sub-folder per input), and keeps the ``(H, W)`` orientation of the input as
    loaded (``PILReader(reverse_indexing=False)``; ``PILWriter`` transposes by default).

    Args:
        keys: key of the class probabilities / scores ``(C, H, W)`` (argmax over ``C`` gives the mask).
        output_dir: folder of the outputs (created).
        image_key: key whose ``meta["filename_or_obj"]`` names the input file.
        save_probabilities: also write the probabilities.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(
        self,
        keys: str | Sequence[str],
        output_dir: str | os.PathLike,
        image_key: str = "image",
        save_probabilities: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.image_key = image_key
        self.save_probabilities = bool(save_probabilities)
        self.logger = logging.getLogger(__name__)

    def _source(self, d: Mapping[Hashable, Any]) -> str:
        img = d.get(self.image_key)
        meta = getattr(img, "meta", None) or d.get(f"{self.image_key}_meta_dict") or {}
        name = meta.get("filename_or_obj")
        if not name:
            raise ValueError(f"SaveLabelMaskd: no filename_or_obj in the metadata of key {self.image_key!r}.")
        return str(name)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        stem = output_stem(self._source(d))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for key in self.key_iterator(d):
            probs = torch.as_tensor(d[key]).detach().float().cpu()
            if probs.ndim != 3:
                raise ValueError(f"SaveLabelMaskd: {key!r} must be (C, H, W) class scores, got {tuple(probs.shape)}.")
            mask = probs.argmax(0).numpy().astype(np.uint8)
            atomic_save_png(self.output_dir / f"{stem}.png", mask)
            if self.save_probabilities:
                buf = io.BytesIO()
                tifffile.imwrite(buf, probs.numpy().astype(np.float32))
                atomic_write_bytes(self.output_dir / f"{stem}_prob.tif", buf.getvalue())
            self.logger.info(f"wrote {self.output_dir / (stem + '.png')}")
        return d
