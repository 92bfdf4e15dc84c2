"""PNG/JPEG decoded whole within an explicit size bound (``pil_reader``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image


def _png_declaring_size(path: Path, width: int, height: int) -> None:
    """A small valid PNG whose header is rewritten to declare ``width`` x ``height`` (its data stays small)."""
    import struct
    import zlib

    Image.new("RGB", (8, 8), (200, 100, 150)).save(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"IHDR")
    data[start + 4 : start + 12] = struct.pack(">II", width, height)
    data[start + 17 : start + 21] = struct.pack(">I", zlib.crc32(bytes(data[start : start + 17])))
    path.write_bytes(bytes(data))


def test_huge_png_is_refused_from_its_header_with_the_fix(tmp_path):
    from seunet_monai.apps.wsi import PILImageReader
    from seunet_monai.errors import ImageTooLargeError, SeunetError

    huge = tmp_path / "huge.png"
    _png_declaring_size(huge, 100_000, 80_000)  # 8 Gpx: decoding it would need ~32 GB
    with pytest.raises(ImageTooLargeError, match=r"100000 x 80000 PNG \(8000 Mpx\).*tiled pyramidal TIFF") as info:
        PILImageReader().read(huge)
    assert isinstance(info.value, SeunetError)
    small = tmp_path / "small.png"

    Image.new("RGB", (20, 10), (10, 20, 30)).save(small)
    assert PILImageReader(max_pixels=200).read(small)["image"].shape == (10, 20, 3)
    with pytest.raises(ImageTooLargeError, match="0 Mpx that PNG/JPEG"):
        PILImageReader(max_pixels=199).read(small)
