"""Streamed Gaussian blending of patch outputs, one band of rows at a time (``merger``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import numpy as np
import tifffile
import torch
from monai.inferers import PatchInferer, SlidingWindowInferer

from seunet_monai.apps.wsi import (
    BandMerger,
    HeadsPatchPredictor,
    PatchPreprocessing,
    TiffRegionReader,
    TissueWSISplitter,
)
from tests.apps.wsi.slides import (
    DarkBlobs,
    write_pyramid,
)


def test_band_merger_reproduces_an_identity_network_with_skipped_rows(tmp_path, tissue):
    """Gaussian-weighted blending of an identity "network" gives back the image wherever a patch ran, and
    the rows no patch covered come as empty runs; the band never holds more than one patch height."""
    write_pyramid(tmp_path / "s.tif", tissue[:500, :600], levels=1)
    rows: dict[int, np.ndarray] = {}
    empty: list[tuple[int, int]] = []

    def sink(y0, values, valid):
        if values is None:
            empty.append((y0, valid))
        else:
            rows[y0] = np.where(valid[None], values, -1.0)

    keep = lambda loc: not 96 <= loc[0] < 288  # noqa: E731 - skip two patch rows in the middle
    splitter = TissueWSISplitter(
        [128, 128], overlap=0.25, reader=TiffRegionReader(level=0, channel_dim=0), location_filter=keep
    )
    inferer = PatchInferer(splitter, merger_cls=BandMerger, batch_size=3, sink=sink)
    inferer(str(tmp_path / "s.tif"), lambda x: x.float())
    merged = np.concatenate([rows[k] for k in sorted(rows)], axis=1)
    covered = (merged >= 0).all(0)
    assert covered[:96].all() and covered[-100:].all()
    np.testing.assert_allclose(merged[:, :96], np.moveaxis(tissue[:96, :600], -1, 0), atol=1e-3)
    np.testing.assert_allclose(merged[:, -100:], np.moveaxis(tissue[400:500, :600], -1, 0), atol=1e-3)
    assert sum(n for _, n in empty) + merged.shape[1] == 500


def test_band_merger_equals_sliding_window_inferer_inside_the_image(tmp_path, tissue):
    """Away from the right/bottom border (where MONAI's SlidingWindowInferer shifts its last window inward and
    the splitter pads instead), the streamed Gaussian blending equals SlidingWindowInferer(mode="gaussian")."""

    image = tissue[:600, :800]
    tifffile.imwrite(tmp_path / "flat.tif", image, tile=(128, 128), photometric="rgb")
    rows: dict[int, np.ndarray] = {}
    predictor = HeadsPatchPredictor(DarkBlobs())
    splitter = TissueWSISplitter([128, 128], 0.25, reader=TiffRegionReader(level=0, channel_dim=0))
    sink = lambda y0, v, valid: rows.__setitem__(y0, v)  # noqa: E731
    PatchInferer(splitter, merger_cls=BandMerger, batch_size=4, preprocessing=PatchPreprocessing(), sink=sink)(
        str(tmp_path / "flat.tif"), predictor
    )
    merged = np.concatenate([rows[k] for k in sorted(rows)], axis=1)  # (C + Ω, H, W)
    x = torch.as_tensor(image).permute(2, 0, 1)[None].float() / 255
    ref = SlidingWindowInferer([128, 128], 4, 0.25, mode="gaussian")(x, predictor)[0].numpy()
    assert merged.shape == ref.shape == (4, 600, 800)
    np.testing.assert_allclose(merged[:, :472, :672], ref[:, :472, :672], atol=1e-4)


def test_head_values_come_from_window_interiors_only():
    """Per-head channels within the border of a window edge inside the image (where the network saw zero
    padding) are replaced by the neighbouring windows' interiors, and NaN where no interior reached; the class
    channels are blended as before."""
    rows = {}

    def sink(y0, values, valid):
        if values is not None:
            rows[y0] = values

    size, patch, border = (96, 160), 64, 8
    merger = BandMerger((1, 2, 96, 160), (1, 2, *size), sink=sink, head_channels_from=1, head_border=border)
    step = 48  # overlap 16: borders of 8 leave no gap between neighbouring interiors
    for y in (0, step):  # the second row of windows reaches beyond the image (padding)
        for x in range(0, 112 - patch + 1, step):  # windows end at x = 112: columns beyond get no window
            out = torch.ones(1, 2, patch, patch)
            out[0, 1] = 100.0  # the "padding-affected" value near every edge
            out[0, 1, border:-border, border:-border] = 1.0
            merger.aggregate(out, (y, x))
    merger.finalize()
    values = np.concatenate([rows[k] for k in sorted(rows)], axis=1)
    heads = values[1, :, :112]
    assert np.allclose(values[0, :, :112], 1.0)  # class channels: every covered pixel
    assert np.allclose(heads[border:, border : 112 - border], 1.0)  # no inner-border value leaks in
    assert (heads[:border, :border] == 100.0).all()  # the image's own edges keep their window's border
    assert np.isnan(heads[:, 112 - border : 112]).all()  # the run region's inner edge: no interior reached
