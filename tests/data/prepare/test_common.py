"""What the preparations share (:mod:`seunet_monai.data.prepare.common`): the tiling rule (and where it is MONAI's),
the validation split, and the stain normalisation's reference."""

from __future__ import annotations

import numpy as np
import pytest
from monai.data.utils import dense_patch_slices

from seunet_monai.data.prepare.common import STAIN_REFERENCE_TILE, pick_validation, stain_normalizer, tile_starts


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


def test_validation_is_drawn_by_whole_name_deterministically():
    names = [f"n{k}" for k in range(10)]
    v = pick_validation(names, 0.2, seed=3)
    assert len(v) == 2 and v == pick_validation(list(reversed(names)), 0.2, seed=3)
    assert len(pick_validation(["a", "b"], 0.2, 0)) == 1  # at least one validation, one training
    assert pick_validation(["a"], 0.5, 0) == set()


def test_the_stain_reference_is_the_given_image_else_the_most_tissue_tile_of_the_first_training_image(tmp_path):
    from PIL import Image

    image = np.full((64, 64, 3), 245, np.uint8)
    image[40:64, 8:40] = (120, 60, 150)  # tissue in the lower-left tile of the 32-px grid
    Image.fromarray(image).save(tmp_path / "first.png")
    assert stain_normalizer("none", None, ("first", tmp_path / "first.png"), 32, 32) == (None, None, None)
    norm, desc, tile = stain_normalizer("macenko", None, ("first", tmp_path / "first.png"), 32, 32)
    assert desc == {"image": "first", "rows": [32, 64], "cols": [0, 32], "saved_as": STAIN_REFERENCE_TILE}
    np.testing.assert_array_equal(tile, image[32:64, 0:32])
    assert norm.reference_name == f"first rows 32:64 cols 0:32 ({STAIN_REFERENCE_TILE})"
    norm, desc, tile = stain_normalizer("vahadane", tmp_path / "first.png", None, 32, 32)
    assert desc == str(tmp_path / "first.png") and tile is None
    norm, desc, tile = stain_normalizer("vahadane", None, None, 32, 32)
    assert desc == "built-in" and tile is None and norm.reference_name == "built-in"
