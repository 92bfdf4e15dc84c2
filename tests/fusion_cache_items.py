"""Splits and networks for the fusion-cache tests: images cut into named, overlapping tiles as the preparation
scripts cut them, a tiny SEUNet, and a network whose heads are known (:class:`ChannelHeads`)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from seunet_monai.networks import SEUNet
from seunet_monai.networks.base import MultiHeadNetwork


def tiny_seunet(seed: int = 0) -> SEUNet:
    torch.manual_seed(seed)
    return SEUNet(2, 3, 2, num_scales=2, channels=(2, 4, 8, 16, 32)).eval()


def save_checkpoint(path: Path, net: nn.Module) -> Path:
    torch.save(net.state_dict(), path)
    return path


def random_items(n: int = 2, size: int = 32) -> list[dict[str, torch.Tensor]]:
    """``n`` tiny items whose nuclei (label 1, 40% of the pixels) are brighter than the background."""
    g = torch.Generator().manual_seed(0)
    items = []
    for _ in range(n):
        label = (torch.rand(1, size, size, generator=g) > 0.6).long()
        items.append({"image": torch.rand(3, size, size, generator=g) * 0.2 + label.float() * 0.6, "label": label})
    return items


def blocks(size: int, seed: int, block: int = 8) -> torch.Tensor:
    """A random mask of ``block``-px squares ``(1, size, size)``."""
    g = torch.Generator().manual_seed(seed)
    low = (torch.rand(1, 1, size // block, size // block, generator=g) > 0.5).float()
    return nn.functional.interpolate(low, scale_factor=block, mode="nearest")[0].long()


def block_image(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    label = blocks(size, seed)
    g = torch.Generator().manual_seed(seed + 100)
    return torch.rand(3, size, size, generator=g) * 0.2 + label.float() * 0.6, label


def tiles(source: str, image: torch.Tensor, label: torch.Tensor, tile: int = 16, stride: int = 8) -> list[dict]:
    starts = range(0, image.shape[1] - tile + 1, stride)
    return [
        {
            "image": image[:, r : r + tile, c : c + tile],
            "label": label[:, r : r + tile, c : c + tile],
            "name": f"{source}_r{r}_c{c}",
            "source": source,
        }
        for r in starts
        for c in starts
    ]


def tiled_split() -> list[dict]:
    """Two images, ``a`` (32 px, 9 tiles) and ``b`` (24 px, 4 tiles), as overlapping 16-px tiles."""
    return tiles("a", *block_image(32, 1)) + tiles("b", *block_image(24, 2))


def counting(net: SEUNet) -> list[tuple[int, ...]]:
    """The spatial shapes of the network's calls from now on."""
    seen: list[tuple[int, ...]] = []
    heads = net.forward_heads
    net.forward_heads = lambda x: seen.append(tuple(x.shape[2:])) or heads(x)
    return seen


class ChannelHeads(MultiHeadNetwork):
    """Head k predicts nucleus where channel k of the image exceeds 0.5 (a network whose heads are known)."""

    def __init__(self) -> None:
        super().__init__()
        self.num_scales, self.out_channels = 2, 2

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        z = (x[:, :2] - 0.5) * 8
        return torch.stack([torch.zeros_like(z), z], dim=2)  # (B, Ω, 2, H, W)


def opposed_item(name: str, size: int, seed: int, head: int) -> dict:
    """An image on which head ``head`` of :class:`ChannelHeads` is right and the other predicts the complement."""
    label = blocks(size, seed)
    right = 0.2 + 0.6 * label.float()
    channels = [right, 1 - right] if head == 0 else [1 - right, right]
    return {"image": torch.cat([*channels, torch.full_like(right, 0.5)]), "label": label, "name": name}
