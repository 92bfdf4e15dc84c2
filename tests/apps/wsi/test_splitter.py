"""The windows of a slide level, filtered before they are read (``splitter``).

Inputs are small synthetic slides (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
import torch
from monai.inferers import WSISlidingWindowSplitter

from seunet_monai.apps.wsi import TiffRegionReader, TissueWSISplitter, window_parameters


class CountingReader(TiffRegionReader):
    """The tifffile backend, counting the files it opens and the regions it reads."""

    opened = 0
    regions = 0

    def read(self, data, **kwargs):
        CountingReader.opened += 1
        return super().read(data, **kwargs)

    def read_region(self, wsi, location, size, level):
        CountingReader.regions += 1
        return super().read_region(wsi, location, size, level)


@pytest.fixture
def slide(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (300, 410, 3), dtype=np.uint8)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, image, tile=(64, 64), photometric="rgb")
    return str(path), image


def test_window_parameters_read_arguments_as_monai_does():
    assert window_parameters(128, 0.25, 2) == ((128, 128), (0.25, 0.25))
    assert window_parameters([64, 0], [8, 8], 2) == ((64, 0), (8, 0))  # no overlap along a whole axis
    with pytest.raises(ValueError, match="cannot be larger than patch size"):
        window_parameters([16, 16], 32, 2)


@pytest.mark.parametrize("patch, overlap", [((128, 128), 0.25), ((100, 64), 16), ((512, 512), 0.25)])
def test_windows_are_monais_grid_with_patches_padded_white(slide, patch, overlap):
    """The locations and patches of MONAI's WSISlidingWindowSplitter on the same reader (its last windows padded
    beyond the image, here with white); a window larger than the image is one padded window."""
    path, image = slide
    ours = list(TissueWSISplitter(patch, overlap, reader=TiffRegionReader(channel_dim=0))(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monai = list(WSISlidingWindowSplitter(patch, overlap, reader=TiffRegionReader(channel_dim=0))(path))
    assert [loc for _, loc in ours] == [tuple(loc) for _, loc in monai]
    for (a, loc), (b, _) in zip(ours, monai):
        assert a.shape == (1, 3, *patch) and a.dtype == torch.uint8
        torch.testing.assert_close(a, torch.as_tensor(b))
        y, x = loc
        inside = image[y : y + patch[0], x : x + patch[1]]
        np.testing.assert_array_equal(a[0].permute(1, 2, 0)[: inside.shape[0], : inside.shape[1]].numpy(), inside)
        assert (a[0, :, inside.shape[0] :] == 255).all() and (a[0, :, :, inside.shape[1] :] == 255).all()


def test_filtered_locations_are_never_read_and_an_open_slide_is_kept(slide):
    path, _ = slide
    reader = CountingReader(channel_dim=0)
    keep = lambda loc: loc[0] == 0  # noqa: E731 - the first row of windows only
    splitter = TissueWSISplitter([64, 64], 0, reader=reader, location_filter=keep)
    splitter.set_slide(path, reader.read(path))
    CountingReader.opened = CountingReader.regions = 0
    locations = [loc for _, loc in splitter(path)]
    assert locations == [(0, x) for x in range(0, 410, 64)] == splitter.locations(path)
    assert splitter.num_patches == 7 and splitter.num_locations == 5 * 7
    assert CountingReader.regions == 7 and CountingReader.opened == 0  # no other window read, no file re-opened
    assert splitter.get_input_shape(path) == (300, 410) and splitter.get_padded_shape(path) == (320, 448)
