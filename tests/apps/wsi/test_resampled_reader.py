"""A level resampled on the fly to the target resolution (``resampled_reader``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from seunet_monai.apps.wsi import (
    TiffRegionReader,
)
from tests.apps.wsi.slides import (
    write_pyramid,
)


@pytest.mark.parametrize("zoom", [1.25, 0.8])
def test_resampled_level_windows_tile_one_grid_and_follow_the_image(tmp_path, tissue, zoom):
    from scipy.ndimage import zoom as nd_zoom

    from seunet_monai.apps.wsi import ResampledLevelReader

    image = tissue[:300, :360]
    write_pyramid(tmp_path / "s.tif", image, mpp=0.3125)
    reader = ResampledLevelReader(TiffRegionReader(channel_dim=0), 0, zoom)
    wsi = reader.read(str(tmp_path / "s.tif"))
    h, w = reader.get_size(wsi, 0)
    assert (h, w) == (round(300 * zoom), round(360 * zoom))
    assert reader.get_mpp(wsi, 0) == pytest.approx((0.3125 / zoom,) * 2)
    assert reader.downsample_to_base(wsi) == pytest.approx(1 / zoom)
    assert reader.get_level_count(wsi) == 3 and reader.get_size(wsi, 2) == (150, 180)  # base levels as stored
    whole = reader.read_region(wsi, (0, 0), (h, w), 0)
    # windows anywhere (also beyond the border: white) are crops of one resampled grid: no seams when stitched
    for loc, size in (((37, 51), (64, 80)), ((h - 30, w - 20), (64, 64))):
        win = reader.read_region(wsi, loc, size, 0)
        inside = whole[loc[0] : loc[0] + size[0], loc[1] : loc[1] + size[1]]
        np.testing.assert_allclose(win[: inside.shape[0], : inside.shape[1]], inside, atol=1)
        assert (win[inside.shape[0] :] == 255).all() and (win[:, inside.shape[1] :] == 255).all()
    # and the grid is the image resampled (scipy's whole-image zoom, grid mode), away from the borders
    ref = nd_zoom(image.astype(np.float32), (zoom, zoom, 1), order=1, grid_mode=True, mode="grid-constant")
    inner = (slice(10, h - 10), slice(10, w - 10))
    err = np.abs(whole[inner].astype(np.float32) - ref[:h, :w][inner])
    assert err.mean() < (6.0 if zoom < 1 else 1.0)  # shrinking: Gaussian pre-smoothing against aliasing
    # the thumbnail (tissue detection, overlay) is read from a stored level at a non-integer factor and still
    # lies on the resampled grid (measured mean error 2.4 grey levels; 20 when misregistered)
    from skimage.transform import downscale_local_mean

    from seunet_monai.apps.wsi import read_thumbnail

    thumb, f = read_thumbnail(reader, wsi, 0, max_size=150)
    assert f > 1 and thumb.shape == (-(-h // f), -(-w // f), 3)
    ref = downscale_local_mean(whole.astype(np.float32), (f, f, 1))
    assert np.abs(thumb[:-1, :-1] - ref[: thumb.shape[0] - 1, : thumb.shape[1] - 1]).mean() < 5.0
