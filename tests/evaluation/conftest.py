"""Small hand-made networks for the evaluation tests (fast, deterministic, with known outputs)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

from seunet_monai.networks.base import MultiHeadNetwork


class ToyHeads(MultiHeadNetwork):
    """A pointwise multi-head network following the SEUNet API.

    Class 1 logit of head k is ``t_k * (x_0 - 0.5)`` (channel 0 of the image): every head predicts
    ``x_0 > 0.5``, with a confidence growing with ``t_k``. ``features`` are a linear 1×1 map of the image,
    the same for every group, so they commute exactly with (linear) resampling.
    """

    def __init__(self, in_channels: int = 3, temperatures: tuple[float, ...] = (2.0, 8.0)) -> None:
        super().__init__()
        self.num_scales = len(temperatures)
        self.out_channels = 2
        self.fusion = "pens"
        self.register_buffer("t", torch.tensor(temperatures))
        self.proj = nn.Conv2d(in_channels, 4, 1)
        self.in_channels = in_channels

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        z = (x[:, :1] - 0.5).unsqueeze(1) * self.t.view(1, -1, 1, 1, 1)  # (B, Ω, 1, H, W)
        return torch.cat([torch.zeros_like(z), z], dim=2)  # (B, Ω, 2, H, W)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.proj(x)
        return f.unsqueeze(1).expand(-1, self.num_scales, -1, -1, -1)

    def sigmas(self) -> "OrderedDict[str, torch.Tensor]":
        s = torch.tensor([1.0 * 2**k for k in range(self.num_scales)])
        return OrderedDict([("layer1", s * 0.9), ("layer2", s)])

    def sigma_bounds(self) -> "OrderedDict[str, torch.Tensor]":
        return OrderedDict((n, torch.stack([s * 0.8, s * 1.2], -1)) for n, s in self.sigmas().items())

    def first_layer_filters(self) -> torch.Tensor:
        return torch.randn(self.num_scales, 4, self.in_channels, 5, 5)


class ToyHeadsWithMap(ToyHeads):
    """:class:`ToyHeads` with a separation map per head: its logit is ``t_k * (x_1 - 0.5)`` (image channel 1)."""

    aux_channels = 1

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        extra = (x[:, 1:2] - 0.5).unsqueeze(1) * self.t.view(1, -1, 1, 1, 1)
        return torch.cat([super().forward_heads(x), extra], dim=2)


class PlainPointwise(nn.Module):
    """A plain (one-head) network: two linear 1×1 convolutions, logits ``(B, 2, H, W)``."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.a = nn.Conv2d(in_channels, 3, 1)
        self.b = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def toy_dataset(n: int = 2, size: tuple[int, int] = (24, 20), seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Smooth random RGB images; label = channel 0 > 0.5 (what :class:`ToyHeads` predicts at scale 1)."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        low = torch.rand(1, 3, size[0] // 4, size[1] // 4, generator=g)
        img = torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)[0]
        items.append({"image": img, "label": (img[:1] > 0.5).long()})
    return items


@pytest.fixture
def toy_heads() -> ToyHeads:
    torch.manual_seed(0)
    return ToyHeads()


@pytest.fixture
def plain_pointwise() -> PlainPointwise:
    torch.manual_seed(0)
    return PlainPointwise()
