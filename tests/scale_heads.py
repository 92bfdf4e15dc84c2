"""A hand-made multi-head "network" whose heads are each accurate at one object scale (test helper).

Head k segments the connected components of the input's first channel (> 0.5) by their equivalent radius
``r = sqrt(area / π)``, mimicking the scale groups of a scale-equivariant network:

- ``r`` in head k's band ``[R_k / w, R_k · w)``: the object is found (foreground probability 0.8);
- ``r`` below the band (head too coarse): missed, confidently (0.1, as background);
- ``r`` above the band (head too fine): unsure and wrong (0.35);
- background pixels: 0.1 for every head.

So head k is right exactly when the objects' radii fall in its band: its accuracy depends on the input's scale
in a known way, and per-pixel confidence does not tell the right head (a coarse head is the most confident).
It has the SEUNet API that the fusion and its calibration use (``num_scales``, ``out_channels``,
``output_heads``, the ``fusion_*`` buffers, a fused output in eval mode).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from seunet_monai.fusion.scale import signature_width
from seunet_monai.networks.base import MultiHeadNetwork


class ScaleBandHeads(MultiHeadNetwork):
    def __init__(
        self,
        radii: Sequence[float] = (2.5, 4.2, 7.1, 12.0),
        width: float = 1.3,
        profile_scales: Sequence[float] | None = None,
        fusion: str = "scale",
    ) -> None:
        super().__init__()
        self.radii = [float(r) for r in radii]
        self.width = float(width)
        self.num_scales = len(self.radii)
        self.out_channels = 2
        self.fusion = fusion
        scales = [2.0 ** (k / 4.0) for k in range(-8, 9)] if profile_scales is None else list(profile_scales)
        self.register_buffer("fusion_scales", torch.tensor(scales, dtype=torch.float32))
        self.register_buffer("fusion_iou", torch.full((len(scales), self.num_scales), float("nan")))
        self.register_buffer(
            "fusion_signature", torch.full((len(scales), signature_width(self.num_scales)), float("nan"))
        )

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """Per-head probabilities ``(B, Ω, 2, H, W)``."""
        out = []
        for item in x[:, 0].detach().cpu().numpy() > 0.5:
            comp, n = ndimage.label(item)
            radius = np.sqrt(np.asarray(ndimage.sum(np.ones_like(comp), comp, np.arange(1, n + 1))) / math.pi)
            fg = []
            for r in self.radii:
                value = np.where(radius < r / self.width, 0.1, np.where(radius < r * self.width, 0.8, 0.35))
                fg.append(np.concatenate([[0.1], value])[comp])  # component 0 is the background
            out.append(np.stack(fg))
        p = torch.as_tensor(np.stack(out), dtype=torch.float32)  # (B, Ω, H, W)
        return torch.stack([1 - p, p], dim=2)

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        """Per-head logits: the log of :meth:`heads` (their softmax over the classes gives the probabilities back)."""
        return self.heads(x).log()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # probabilities, not logits, in training mode too
        probs = self.heads(x)
        return probs if (self.output_heads or self.training) else self.fuse_heads(probs)


def label_image_items(
    scale: float, n: int, split: str = "test", size: int = 96, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    """``n`` items ``{"image": (3, H, W) float, "label": (1, H, W)}`` whose image is the nucleus mask of a synthetic
    sample generated at ``scale`` (:func:`seunet_monai.data.synthetic.histology.synthesize_sample`)."""
    from seunet_monai.data.synthetic.common import sample_seed
    from seunet_monai.data.synthetic.histology import synthesize_sample

    items = []
    for i in range(n):
        _, label = synthesize_sample(sample_seed(seed, split, i), size=size, scale=scale)
        lab = torch.as_tensor(label, dtype=torch.int64)[None]
        items.append({"image": lab.float().expand(3, -1, -1).clone(), "label": lab})
    return items


def disk_items(
    scale: float, n: int, size: int = 96, radius: float = 6.0, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    """``n`` items whose image and label are disks of radius ``radius · scale`` on a jittered grid (hand-made data
    of one known object scale)."""
    rng = np.random.default_rng(seed)
    r = radius * scale
    step = int(math.ceil(3 * r))
    yy, xx = np.mgrid[0:size, 0:size]
    items = []
    for _ in range(n):
        mask = np.zeros((size, size), dtype=bool)
        for cy in range(step // 2, size - step // 2 + 1, step):
            for cx in range(step // 2, size - step // 2 + 1, step):
                jy, jx = rng.uniform(-0.4, 0.4, 2) * (step - 2 * r) / 2
                mask |= (yy - cy - jy) ** 2 + (xx - cx - jx) ** 2 <= r * r
        lab = torch.as_tensor(mask, dtype=torch.int64)[None]
        items.append({"image": lab.float().expand(3, -1, -1).clone(), "label": lab})
    return items
