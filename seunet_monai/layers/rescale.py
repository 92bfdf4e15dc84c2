"""Rescaling of images, labels and feature maps for the scale sweep (the paper, sec. 4.2; ``bundle/docs/README.md``, Evaluation).

The size rule is ``round(n * s)`` per rescaled spatial axis (at least 1); ``axes`` limits the rescaling to some
spatial axes (e.g. ``axes=(2,)``: the axial axis ``Z`` of a volume ``(X, Y, Z)`` only, as anisotropic sampling
changes it), the others keep their size. Images are resampled bilinearly (or
trilinearly in 3D) with pixel-centre alignment (``align_corners=False``); when shrinking, anti-aliased
(2D: PyTorch's ``antialias=True``, a triangle filter widened by the scale factor, equivalent to
PIL's/area-like resampling; 3D: MONAI ``Resize(anti_aliasing=True)``, a Gaussian pre-filter). Labels use
nearest neighbour with the same pixel-centre alignment (``"nearest-exact"``), so label values are kept and
image and label stay aligned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.transforms import Resize
from monai.utils import convert_to_tensor

__all__ = ["default_scales", "rescale_image", "rescale_label", "resize_features", "scaled_size"]


def default_scales(num: int = 17, start: float = 0.25, steps_per_octave: int = 4) -> list[float]:
    """The paper's test scales ``s_i = 0.25 · 2^(i/4)``, ``i = 0..16`` (0.25 ... 4)."""
    return [start * 2 ** (i / steps_per_octave) for i in range(num)]


def scaled_size(shape: Sequence[int], scale: float, axes: Sequence[int] | None = None) -> tuple[int, ...]:
    """Spatial size after rescaling by ``scale``: ``max(1, round(n * scale))`` per axis of ``axes`` (spatial axis
    indices, negative ones counted from the end; ``None``: every axis), unchanged on the others."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}.")
    shape = tuple(int(n) for n in shape)
    if axes is None:
        chosen = set(range(len(shape)))
    else:
        if any(isinstance(a, bool) or not -len(shape) <= int(a) < len(shape) for a in axes):
            raise ValueError(f"axes must be spatial axes of a {len(shape)}D shape, got {list(axes)!r}.")
        chosen = {int(a) % len(shape) for a in axes}
    return tuple(max(1, int(round(n * scale))) if i in chosen else n for i, n in enumerate(shape))


def _resize_float(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Bilinear/trilinear resize of ``(B, C, *spatial)`` float data to ``size``, anti-aliased when shrinking."""
    spatial = tuple(x.shape[2:])
    if size == spatial:
        return x
    shrinking = any(o < i for o, i in zip(size, spatial))
    if len(spatial) == 2:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
    if len(spatial) == 3:
        resize = Resize(spatial_size=size, mode="trilinear", align_corners=False, anti_aliasing=shrinking)
        return torch.stack([convert_to_tensor(resize(item), track_meta=False) for item in x])
    raise ValueError(f"only 2D and 3D data can be rescaled, got spatial shape {spatial}.")


def rescale_image(image: torch.Tensor, scale: float, axes: Sequence[int] | None = None) -> torch.Tensor:
    """Rescale an image ``(C, *spatial)`` by ``scale`` (anti-aliased when shrinking, bilinear when enlarging).

    Args:
        image: ``(C, H, W)`` or ``(C, D, H, W)``; integer images are converted to float32.
        scale: scale factor ``s`` (> 0).
        axes: spatial axes rescaled (``None``: all, isotropic); see :func:`scaled_size`.

    Returns:
        float tensor ``(C, *scaled_size(spatial, s))``.
    """
    x = convert_to_tensor(image, track_meta=False)
    if x.ndim not in (3, 4):
        raise ValueError(f"rescale_image: expected (C, H, W) or (C, D, H, W), got shape {tuple(x.shape)}.")
    if not x.is_floating_point():
        x = x.float()
    size = scaled_size(x.shape[1:], scale, axes)
    return _resize_float(x.unsqueeze(0), size)[0]


def rescale_label(label: torch.Tensor, scale: float, axes: Sequence[int] | None = None) -> torch.Tensor:
    """Rescale a label map ``(1, *spatial)`` by ``scale`` with nearest neighbour (values are kept).

    Args:
        label: ``(1, H, W)`` or ``(1, D, H, W)`` integer (or integer-valued float) class map.
        scale: scale factor ``s`` (> 0).
        axes: spatial axes rescaled (``None``: all, isotropic); see :func:`scaled_size`.

    Returns:
        ``(1, *scaled_size(spatial, s))`` with the input's dtype.
    """
    y = convert_to_tensor(label, track_meta=False)
    if y.ndim not in (3, 4):
        raise ValueError(f"rescale_label: expected (1, H, W) or (1, D, H, W), got shape {tuple(y.shape)}.")
    size = scaled_size(y.shape[1:], scale, axes)
    if size == tuple(y.shape[1:]):
        return y
    out = F.interpolate(y.unsqueeze(0).float(), size=size, mode="nearest-exact")[0]
    return out.to(y.dtype)


def resize_features(features: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resample feature maps ``(B, Ω, F, *spatial)`` to ``size`` (the operator ``S_s`` of eq. 10).

    Bilinear/trilinear, anti-aliased when shrinking, like :func:`rescale_image`.
    """
    if features.ndim < 5:
        raise ValueError(f"resize_features: expected (B, Ω, F, *spatial), got shape {tuple(features.shape)}.")
    b, o, f = features.shape[:3]
    flat = features.reshape(b, o * f, *features.shape[3:])
    out = _resize_float(flat, tuple(int(v) for v in size))
    return out.reshape(b, o, f, *out.shape[2:])
