"""Specification of seunet_monai.data.io: atomic writes, image/label reading, output folders."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from seunet_monai.data.io import atomic_save_png, read_label, read_rgb
from seunet_monai.errors import ImageReadError
from seunet_monai.runtime.files import atomic_write_bytes, atomic_write_json, atomic_write_text


def _rgb(h: int = 6, w: int = 5) -> np.ndarray:
    return np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)


# ----------------------------------------------------------------------------------------------- writing
def test_atomic_writers_write_content_and_leave_no_temporary_files(tmp_path):
    atomic_write_bytes(tmp_path / "sub" / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "b.txt", "héllo")
    atomic_write_json(tmp_path / "c.json", {"x": np.int64(3), "y": np.arange(2)})
    atomic_save_png(tmp_path / "d.png", _rgb())
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": 3, "y": [0, 1]}
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d.png")), _rgb())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt", "c.json", "d.png", "sub"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.bin"]


def test_atomic_save_png_labels_and_bad_arrays(tmp_path):
    lab = np.array([[0, 1], [4, 2]], dtype=np.int64)
    atomic_save_png(tmp_path / "l.png", lab)
    back = np.asarray(Image.open(tmp_path / "l.png"))
    assert back.dtype == np.uint8 and np.array_equal(back, lab)
    with pytest.raises(ValueError, match="expected"):
        atomic_save_png(tmp_path / "x.png", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="do not fit"):
        atomic_save_png(tmp_path / "x.png", np.array([[-1, 0]]))
    with pytest.raises(ValueError, match="integer"):
        atomic_save_png(tmp_path / "x.png", np.zeros((2, 2), np.float32))
    assert not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------------------------- reading
def test_read_rgb_png_grey_and_rgba_conversions(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    img, info = read_rgb(tmp_path / "rgb.png")
    assert img.dtype == np.uint8 and np.array_equal(img, rgb) and info["conversion"] is None

    grey = rgb[..., 0]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    img, info = read_rgb(tmp_path / "grey.png")
    assert img.shape == (6, 5, 3) and info["conversion"] == "grey->rgb"
    assert all(np.array_equal(img[..., c], grey) for c in range(3))

    rgba = np.concatenate([rgb, np.full((6, 5, 1), 7, np.uint8)], 2)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    img, info = read_rgb(tmp_path / "rgba.png")
    assert info["conversion"] == "rgba->rgb" and np.array_equal(img, rgb)
    assert info["original_shape"] == (6, 5, 4)


def test_read_rgb_tiff_rgb_grey_rgba_and_16_bit(tmp_path):
    rgb = _rgb()
    tifffile.imwrite(tmp_path / "a.tif", rgb, photometric="rgb")
    img, info = read_rgb(tmp_path / "a.tif")
    assert np.array_equal(img, rgb) and info["conversion"] is None

    tifffile.imwrite(tmp_path / "g.tiff", rgb[..., 1])
    img, info = read_rgb(tmp_path / "g.tiff")
    assert info["conversion"] == "grey->rgb" and np.array_equal(img[..., 2], rgb[..., 1])

    rgba = np.concatenate([rgb, np.full((6, 5, 1), 255, np.uint8)], 2)
    tifffile.imwrite(tmp_path / "r.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    img, info = read_rgb(tmp_path / "r.tif")
    assert info["conversion"] == "rgba->rgb" and np.array_equal(img, rgb)

    tifffile.imwrite(tmp_path / "w.tif", rgb.astype(np.uint16) * 256, photometric="rgb")
    img, info = read_rgb(tmp_path / "w.tif")
    assert info["dtype"] == "uint16->uint8" and np.array_equal(img, rgb)


def test_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_rgb(bad)
    truncated = tmp_path / "trunc.tif"
    tifffile.imwrite(truncated, _rgb(64, 64), photometric="rgb")
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(ImageReadError, match="trunc.tif"):
        read_rgb(truncated)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_rgb(tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_label(tmp_path / "missing.png")


def test_read_label_grey_and_equal_channel_rgb(tmp_path):
    lab = np.array([[0, 1, 2], [3, 4, 0]], np.uint8)
    Image.fromarray(lab).save(tmp_path / "l.png")
    assert np.array_equal(read_label(tmp_path / "l.png"), lab)
    Image.fromarray(np.repeat(lab[..., None], 3, 2)).save(tmp_path / "l3.png")
    assert np.array_equal(read_label(tmp_path / "l3.png"), lab)
    tifffile.imwrite(tmp_path / "l16.tif", lab.astype(np.uint16) * 300)
    out = read_label(tmp_path / "l16.tif")
    assert out.dtype == np.uint16 and np.array_equal(out, lab.astype(np.uint16) * 300)
    Image.fromarray(_rgb(2, 3)).save(tmp_path / "colour.png")
    with pytest.raises(ImageReadError, match="colour.png"):
        read_label(tmp_path / "colour.png")


def test_written_files_have_ordinary_permissions(tmp_path):
    """Item 12 of issue 12: 0666 less the umask (0644 under 022, 0664 under 002), not mkstemp's 0600."""
    import stat

    from seunet_monai.runtime.files import atomic_write_json

    old = os.umask(0o002)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        atomic_save_png(tmp_path / "b.png", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o664
    assert stat.S_IMODE((tmp_path / "b.png").stat().st_mode) == 0o664


def test_bit_depth_stated_by_the_tiff_and_stacks_refused(tmp_path):
    """Item 13 of issue 12: 12-bit samples keep their 8 high bits of 12 (not of 16: no near-black image);
    a stack of full-size pages is refused, a pyramid reads its full-size level."""
    rgb = np.random.RandomState(1).randint(0, 256, size=(6, 5, 3)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "b12.tif", rgb.astype(np.uint16) << 4, photometric="rgb", bitspersample=12)
    img, info = read_rgb(tmp_path / "b12.tif")
    assert np.array_equal(img, rgb) and info["bits_per_sample"] == 12 and "12-bit values >> 4" in info["scaling"]
    tifffile.imwrite(
        tmp_path / "max.tif", rgb.astype(np.uint16) << 2, photometric="rgb", extratags=[(281, "H", 1, 1023, False)]
    )  # MaxSampleValue 1023: 10-bit data in 16-bit words
    img, info = read_rgb(tmp_path / "max.tif")
    assert np.array_equal(img, rgb) and info["bits_per_sample"] == 10

    with tifffile.TiffWriter(tmp_path / "stack.tif") as tif:
        tif.write(rgb, photometric="rgb")
        tif.write(rgb, photometric="rgb")
    with pytest.raises(ImageReadError, match="stack.tif.*2 full-size pages"):
        read_rgb(tmp_path / "stack.tif")
    with tifffile.TiffWriter(tmp_path / "pyramid.tif") as tif:
        tif.write(np.repeat(np.repeat(rgb, 2, 0), 2, 1), photometric="rgb", subifds=1)
        tif.write(rgb, photometric="rgb", subfiletype=1)
    img, _ = read_rgb(tmp_path / "pyramid.tif")
    assert img.shape == (12, 10, 3)


def test_to_rgb_converts_or_refuses():
    from PIL import Image

    from seunet_monai.data.io import to_rgb

    rgb = Image.fromarray(np.zeros((4, 5, 3), np.uint8))
    assert to_rgb(rgb) is rgb
    assert to_rgb(Image.fromarray(np.zeros((4, 5), np.uint8))).mode == "RGB"
    assert to_rgb(Image.fromarray(np.zeros((4, 5, 4), np.uint8))).mode == "RGB"
    with pytest.raises(ValueError, match="16-bit"):
        to_rgb(Image.fromarray(np.zeros((4, 5), np.uint16)))
