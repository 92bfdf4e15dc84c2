"""Specification of ``seunet_monai.evaluation.whole_images``: tiles of the preparation scripts put back together."""

from __future__ import annotations

import torch

from seunet_monai.evaluation.whole_images import whole_images
from tests.fusion_cache_items import tiles


def _image(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, size, size, generator=g), (torch.rand(1, size, size, generator=g) > 0.6).long()


def test_overlapping_tiles_are_put_back_into_whole_images() -> None:
    a, b = _image(48, 1), _image(40, 2)
    items = (
        tiles("a", *a, tile=24, stride=12)
        + tiles("b", *b, tile=24, stride=16)
        + [{"image": a[0][:, :20, :20], "label": a[1][:, :20, :20]}]
    )  # not a tile: kept as it is
    images = list(whole_images(items))
    assert [(im.name, im.tiles, tuple(im.image.shape)) for im in images] == [
        ("a", 9, (3, 48, 48)),
        ("b", 4, (3, 40, 40)),
        ("image0013", 1, (3, 20, 20)),
    ]
    assert torch.equal(images[0].image, a[0]) and torch.equal(images[1].label, b[1])
    assert images[0].pixels([0.5, 1.0]) == 24 * 24 + 48 * 48  # the rescaled sizes, summed


def test_tiles_that_leave_holes_come_as_they_are() -> None:
    a = _image(48, 1)
    holes = [t for t in tiles("a", *a, tile=16, stride=16) if t["name"] != "a_r16_c16"]  # one tile dropped
    assert [im.name for im in whole_images(holes)] == [t["name"] for t in holes]
