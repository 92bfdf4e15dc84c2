"""MONAI's tifffile backend read tile by tile: regions, levels and resolution (``tiff_reader``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from seunet_monai.apps.wsi import (
    TiffRegionReader,
    choose_level,
)
from tests.apps.wsi.slides import (
    embed,
    write_pyramid,
    write_svs_like,
)


def test_region_reads_match_the_full_level_and_pad_white(tmp_path, tissue):
    slide = embed(tissue, (700, 1000), (0, 50))
    write_pyramid(tmp_path / "s.tif", slide)
    reader = TiffRegionReader(level=0, channel_dim=0)
    wsi = reader.read(str(tmp_path / "s.tif"))
    np.testing.assert_array_equal(reader.read_region(wsi, (130, 250), (300, 260), 0), slide[130:430, 250:510])
    edge = reader.read_region(wsi, (600, 900), (200, 200), 0)  # reaches beyond the image
    np.testing.assert_array_equal(edge[:100, :100], slide[600:, 900:])
    assert (edge[100:] == 255).all() and (edge[:, 100:] == 255).all()
    np.testing.assert_array_equal(reader.read_region(wsi, (10, 20), (50, 60), 1), slide[::2, ::2][10:60, 20:80])


def test_levels_and_resolution_of_pyramid_ome_and_svs(tmp_path, tissue):
    write_pyramid(tmp_path / "p.tif", tissue, mpp=0.25, levels=3)
    write_pyramid(tmp_path / "o.ome.tif", tissue, mpp=0.5, ome=True)
    write_svs_like(tmp_path / "s.svs", tissue, mpp=0.25)
    reader = TiffRegionReader(channel_dim=0)
    for name, n, mpp0 in (("p.tif", 3, 0.25), ("o.ome.tif", 2, 0.5), ("s.svs", 2, 0.25)):
        wsi = reader.read(str(tmp_path / name))
        assert reader.get_level_count(wsi) == n, name  # the SVS thumbnail page is not a level
        assert reader.get_size(wsi, 0) == tissue.shape[:2]
        assert reader.get_mpp(wsi, 0) == pytest.approx((mpp0, mpp0), rel=1e-3), name
    wsi = reader.read(str(tmp_path / "s.svs"))
    assert reader.get_downsample_ratio(wsi, 1) == pytest.approx(4.0, rel=0.01)
    assert choose_level(reader, wsi, target_mpp=1.0) == (1, pytest.approx(1.0, rel=0.01))
    assert choose_level(reader, wsi, target_mpp=0.25)[0] == 0
    assert choose_level(reader, wsi, target_mpp=1.0, level=0)[0] == 0  # --level wins
