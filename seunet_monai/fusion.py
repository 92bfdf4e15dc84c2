"""Per-pixel fusion of the Ω heads' class probabilities into one prediction.

Implements sec. 3.4 and Algorithm 1 (Appendix A) of Yang et al., "Scale-Equivariant UNet for
Histopathology Image Segmentation":

- ``"mean"``: arithmetic mean of the heads' probabilities.
- ``"pdist"``: per pixel, the head with the largest margin ``D_k = p_max - p_second`` decides.
- ``"pens"``: per pixel, heads weighted by ``softmax_k(D_k)``.
- ``"head:k"``: one head alone (1-based ``k``), as in the per-head columns of Table 1.
- ``"scale"`` (beyond the paper): estimate the input's scale from the heads and weight the heads by their
  validation IoU measured at that scale (:mod:`seunet_monai.scale_fusion`: design, justification and the
  uncalibrated fallback to PEns). It needs the calibration ``profile`` (the network's ``fusion_*`` buffers).

Also provides the same as MONAI transforms for ``postprocessing`` in bundle configs (:class:`Fuse`,
:class:`Fused`) and the per-pixel winning head of PDist (:func:`winning_head`), which tells which scale
group decided each pixel (used for scale estimation and optional winning-head maps at inference).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type, convert_to_tensor

__all__ = [
    "FUSION_STRATEGIES",
    "PAPER_STRATEGIES",
    "Fuse",
    "Fused",
    "WinningHead",
    "WinningHeadd",
    "fuse",
    "head_margins",
    "parse_strategy",
    "winning_head",
]

#: the paper's fusions (sec. 3.4)
PAPER_STRATEGIES = ("mean", "pdist", "pens")
#: every named fusion (``"head:k"`` aside)
FUSION_STRATEGIES = (*PAPER_STRATEGIES, "scale")

_HEAD_RE = re.compile(r"^head:?(\d+)$")


def parse_strategy(strategy: str) -> tuple[str, int | None]:
    """Split a strategy name into ``(kind, head)``; ``head`` is 0-based for ``"head:k"``.

    Accepts ``"mean"``, ``"pdist"``, ``"pens"``, ``"scale"``, ``"head:k"`` and its short form ``"headk"``.

    Raises:
        ValueError: for an unknown name or a head index below 1.
    """
    name = str(strategy).strip().lower()
    if name in FUSION_STRATEGIES:
        return name, None
    m = _HEAD_RE.match(name)
    if m is None:
        raise ValueError(
            f"unknown fusion strategy {strategy!r}: expected one of {FUSION_STRATEGIES} or 'head:k' (k >= 1)."
        )
    k = int(m.group(1))
    if k < 1:
        raise ValueError(f"fusion strategy {strategy!r}: head indices are 1-based, got {k}.")
    return "head", k - 1


def head_margins(probs: torch.Tensor) -> torch.Tensor:
    """Margin ``D_k = p_max - p_second`` of every head at every pixel (Algorithm 1).

    Taken from the top two probabilities, so that two equal maxima give a margin of 0.

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)`` with ``C >= 2``.

    Returns:
        margins ``(B, Ω, *spatial)``.
    """
    top2 = probs.topk(2, dim=2).values
    return top2[:, :, 0] - top2[:, :, 1]


def fuse(probs: torch.Tensor, strategy: str = "pens", profile: Any = None, temperature: float = 0.01) -> torch.Tensor:
    """Fuse per-head class probabilities into one class-score map.

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)`` (softmax over ``C`` already applied),
            ``C >= 2``.
        strategy: ``"mean"``, ``"pdist"``, ``"pens"``, ``"scale"`` or ``"head:k"`` (1-based ``k``).
        profile: ``"scale"`` only: the calibration (:func:`seunet_monai.scale_fusion.resolve_profile`: a network
            with the ``fusion_*`` buffers, a state dict or a ``ScaleProfile``); without a calibrated one,
            ``"scale"`` falls back to ``"pens"`` with a one-time warning. Ignored by the other strategies.
        temperature: ``"scale"`` only: ``τ`` of the head weights in IoU units (0: best expected head alone).

    Returns:
        ``(B, C, *spatial)`` class scores whose argmax over ``C`` is the prediction. Every strategy returns
        probabilities that sum to 1 over ``C`` (PDist and ``head:k`` return the chosen head's probabilities).

    Raises:
        ValueError: for a tensor of the wrong rank, fewer than two classes, an unknown strategy, or a head
            index beyond Ω.
    """
    if probs.ndim < 4:
        raise ValueError(f"fuse: probs must be (B, Ω, C, *spatial), got shape {tuple(probs.shape)}.")
    if probs.shape[2] < 2:
        raise ValueError(f"fuse: need at least 2 classes (dim 2) to compute margins, got {probs.shape[2]}.")
    kind, head = parse_strategy(strategy)
    num_heads = probs.shape[1]
    if kind == "scale":
        from seunet_monai.scale_fusion import scale_fuse  # here: scale_fusion imports this module

        return scale_fuse(probs, profile, temperature)
    if kind == "mean":
        return probs.mean(dim=1)
    if kind == "head":
        if head >= num_heads:
            raise ValueError(f"fuse: strategy {strategy!r} asks for head {head + 1} but there are {num_heads} heads.")
        return probs[:, head]
    margins = head_margins(probs)
    if kind == "pdist":
        # ties between heads' margins go to the lowest head index (argmax returns the first maximum)
        best = margins.argmax(dim=1, keepdim=True).unsqueeze(2)  # (B, 1, 1, *spatial)
        index = best.expand(-1, 1, probs.shape[2], *probs.shape[3:])
        return probs.gather(1, index).squeeze(1)
    weights = torch.softmax(margins, dim=1).unsqueeze(2)  # (B, Ω, 1, *spatial)
    return (weights * probs).sum(dim=1)


def winning_head(probs: torch.Tensor) -> torch.Tensor:
    """Per-pixel index of the head that PDist picks (largest margin; ties go to the lowest index).

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)``, ``C >= 2``.

    Returns:
        0-based head indices ``(B, *spatial)`` (int64). Add 1 for the ``head1..headΩ`` names.
    """
    if probs.ndim < 4:
        raise ValueError(f"winning_head: probs must be (B, Ω, C, *spatial), got shape {tuple(probs.shape)}.")
    if probs.shape[2] < 2:
        raise ValueError(f"winning_head: need at least 2 classes (dim 2), got {probs.shape[2]}.")
    return head_margins(probs).argmax(dim=1)


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
