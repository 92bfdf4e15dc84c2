"""Specification of ``seunet_monai.data.preparation``: the tiling rule, and where it is MONAI's."""

from __future__ import annotations

import pytest
from monai.data.utils import dense_patch_slices

from seunet_monai.data.preparation import tile_starts


def _our_rule(length, tile, stride):
    starts = list(range(0, length - tile + 1, stride))
    return starts + [length - tile] if starts[-1] + tile < length else starts


def test_the_documented_examples():
    assert tile_starts(1000, 400, 200) == [0, 200, 400, 600]
    assert tile_starts(1100, 400, 200) == [0, 200, 400, 600, 700]
    assert tile_starts(400, 400, 200) == [0]
    with pytest.raises(ValueError, match="smaller"):
        tile_starts(300, 400, 200)
    with pytest.raises(ValueError, match="positive"):
        tile_starts(1000, 400, 0)


def test_dense_patch_slices_gives_the_same_tiles_when_they_touch_or_overlap():
    for length in (400, 401, 999, 1000, 1100, 1234):
        for tile in (100, 256, 400):
            for stride in range(1, tile + 1, 37):
                if length >= tile:
                    monai = [sl[0].start for sl in dense_patch_slices((length,), (tile,), (stride,))]
                    assert monai == _our_rule(length, tile, stride) == tile_starts(length, tile, stride)


def test_with_gaps_between_tiles_ours_keeps_the_border_tile_that_dense_patch_slices_drops():
    assert tile_starts(1000, 400, 500) == [0, 500, 600]
    assert [sl[0].start for sl in dense_patch_slices((1000,), (400,), (500,))] == [0]
