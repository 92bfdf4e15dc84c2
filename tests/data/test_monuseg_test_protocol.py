"""MoNuSeg test protocol: test images kept whole (default) or tiled like training ones (``--test-tiles``, the
paper's 16 tiles per 1000-px image); the report records which."""

from __future__ import annotations

import numpy as np
from PIL import Image

from seunet_monai.cli.prepare_monuseg import main
from seunet_monai.data.datalist import load_datalist
from seunet_monai.data.monuseg import prepare_monuseg

from .test_monuseg import make_monuseg


def test_test_tiles_cut_test_images_like_training_ones(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=2)
    whole = prepare_monuseg(src, tmp_path / "whole", val_fraction=0.0, tile=32, stride=16, stain_norm="none")
    tiled = prepare_monuseg(src, tmp_path / "tiled", val_fraction=0.0, tile=32, stride=16, stain_norm="none",
                            test_tiles=True)
    assert whole["settings"]["test_protocol"] == "whole images"
    assert tiled["settings"]["test_protocol"] == "tiles"
    # 64-px images, 32-px tiles, stride 16: 3 x 3 tiles per image, as for the training images
    assert whole["tiles"]["test"] == 2 and tiled["tiles"]["test"] == 2 * 9
    assert tiled["tiles"]["training"] == whole["tiles"]["training"] == 2 * 9
    dl = load_datalist(tmp_path / "tiled", check_sizes=True)
    assert all(Image.open(e["image"]).size == (32, 32) for e in dl["test"])
    # a test tile is the crop of the whole test image and its mask written by the default protocol
    whole_test = {e["source"]: e for e in load_datalist(tmp_path / "whole")["test"]}
    entry = next(e for e in dl["test"] if e["name"] == "TCGA-TE-0001_r16_c32")
    for key in ("image", "label"):
        full = np.asarray(Image.open(whole_test["TCGA-TE-0001"][key]))
        np.testing.assert_array_equal(np.asarray(Image.open(entry[key])), full[16:48, 32:64])


def test_test_tiles_flag_on_the_command_line(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=1)
    rc = main(["--src", str(src), "--dst", str(tmp_path / "dst"), "--tile", "32", "--stride", "32",
               "--stain-norm", "none", "--val-fraction", "0", "--test-tiles"])
    assert rc in (0, None)
    assert len(load_datalist(tmp_path / "dst")["test"]) == 4  # 2 x 2 tiles of the one test image
