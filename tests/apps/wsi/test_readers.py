"""Specification of ``seunet_monai.apps.wsi.readers``: the reader is chosen by the file's extension (and the slide
backend), regions are ``(H, W, 3) uint8``, and a thumbnail is bounded in size with its integer reduction factor."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from seunet_monai.apps.wsi.pil_reader import PILImageReader
from seunet_monai.apps.wsi.readers import SUPPORTED_SUFFIXES, make_reader, read_region, read_thumbnail
from seunet_monai.apps.wsi.tiff_reader import TiffRegionReader


def _image(h: int = 60, w: int = 90) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.stack([yy * 4 % 256, xx * 2 % 256, (yy + xx) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize(
    "name, cls", [("a.png", PILImageReader), ("a.JPG", PILImageReader), ("a.svs", TiffRegionReader)]
)
def test_the_reader_follows_the_extension(name, cls):
    assert isinstance(make_reader(name), cls)
    assert ".tif" in SUPPORTED_SUFFIXES and ".png" in SUPPORTED_SUFFIXES


def test_unsupported_extension_or_backend_is_named():
    with pytest.raises(ValueError, match="unsupported extension '.bmp'"):
        make_reader("a.bmp")
    with pytest.raises(ValueError, match="unknown slide backend 'vips'"):
        make_reader("a.tif", backend="vips")


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_read_region_is_hw3_uint8_of_the_pixels(tmp_path, suffix):
    image, path = _image(), tmp_path / f"a{suffix}"
    if suffix == ".png":
        Image.fromarray(image).save(path)
    else:
        tifffile.imwrite(path, image, photometric="rgb")
    reader = make_reader(path)
    wsi = reader.read(str(path))
    region = read_region(reader, wsi, (10, 20), (30, 40), 0)
    assert region.dtype == np.uint8 and region.shape == (30, 40, 3)
    np.testing.assert_array_equal(region, image[10:40, 20:60])


def test_read_thumbnail_is_bounded_and_block_averaged(tmp_path):
    image = _image()
    Image.fromarray(image).save(tmp_path / "a.png")
    reader = make_reader(tmp_path / "a.png")
    wsi = reader.read(str(tmp_path / "a.png"))
    thumb, f = read_thumbnail(reader, wsi, 0, max_size=30)
    assert f == 3 and thumb.shape == (20, 30, 3) and thumb.dtype == np.uint8
    expected = image[:3, :3].reshape(-1, 3).mean(0)
    np.testing.assert_allclose(thumb[0, 0], expected, atol=1)
    whole, one = read_thumbnail(reader, wsi, 0, max_size=1000)
    assert one == 1 and np.array_equal(whole, image)
