"""Test items with annotated nucleus instances: separated disks that :class:`tests.evaluation.conftest.ToyHeads`
predicts exactly at scale 1, and pairs of touching squares only a separation map splits."""

from __future__ import annotations

import torch

from seunet_monai.transforms.separation import SeparationTarget


def disk_items(n: int = 2, size: int = 48, radius: float = 5.0) -> list[dict[str, torch.Tensor]]:
    """Separated disks (radius 5 px: 4.9 µm² at 0.25 µm/px, kept at scale 0.5); channel 0 = 1 inside, so
    :class:`ToyHeads` predicts them exactly at scale 1; ``instance`` numbers the disks."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    items = []
    for k in range(n):
        inst = torch.zeros(1, size, size, dtype=torch.long)
        for i, (cy, cx) in enumerate([(10, 10), (10, 34), (34, 12), (33, 36)][: 3 + k % 2]):
            inst[0][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 7 * (i + 1)  # ids need not be contiguous
        img = torch.cat([(inst > 0).float(), torch.zeros(2, size, size)])
        items.append({"image": img, "label": (inst > 0).long(), "instance": inst})
    return items


def square_pairs(mode: str) -> list[dict[str, torch.Tensor]]:
    """Two pairs of touching 16 px squares (16 µm² each at 0.25 µm/px): one object each for the class mask's
    distance, whose ridge runs along the pair; image channel 1 holds their separation target (``mode``,
    :class:`~seunet_monai.transforms.separation.SeparationTarget`)."""
    inst = torch.zeros(1, 40, 80, dtype=torch.long)
    inst[0, 4:20, 4:20], inst[0, 4:20, 20:36] = 1, 2
    inst[0, 22:38, 42:58], inst[0, 22:38, 58:74] = 3, 4
    target = torch.as_tensor(SeparationTarget(mode)(inst.numpy()))
    img = torch.cat([(inst > 0).float(), target, torch.zeros(1, 40, 80)])
    return [{"image": img, "label": (inst > 0).long(), "instance": inst}]
