"""Post-processing transforms of per-head probabilities ``(Ω, C, *spatial)`` (decollated items): :class:`Fuse` /
:class:`Fused` fuse the heads with a strategy of :func:`seunet_monai.fusion.strategies.fuse`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type, convert_to_tensor

from seunet_monai.fusion.strategies import fuse, parse_strategy

__all__ = ["Fuse", "Fused"]


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

    def __init__(
        self,
        strategy: str = "pens",
        batched: bool = False,
        softmax: bool = False,
        profile: Any = None,
        temperature: float = 0.01,
    ) -> None:
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
        self.fuser = Fuse(strategy=strategy, batched=batched, softmax=softmax, profile=profile, temperature=temperature)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.fuser(d[key])
        return d
