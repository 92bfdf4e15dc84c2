"""The mask TIFF, the palette PNG and the GeoJSON writer (``writers``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from seunet_monai.apps.wsi import (
    write_mask_tiff,
)
from tests.apps.wsi.slides import (
    embed,
    make_workflow,
    tall_objects,
    write_pyramid,
)


def test_small_images_get_a_palette_png_mask_and_large_masks_a_pyramid(tmp_path, tissue):

    (tmp_path / "in").mkdir()
    Image.fromarray(tissue[:200, :300]).save(tmp_path / "in" / "tile.png")
    Image.fromarray(tissue[:200, :300]).save(tmp_path / "in" / "tile2.jpg", quality=95)
    write_pyramid(tmp_path / "in" / "big.tif", embed(tissue, (2600, 2300)), mpp=0.25, levels=2)
    make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.25).run()
    png = Image.open(tmp_path / "out" / "tile_mask.png")
    assert png.mode == "P" and png.size == (300, 200)
    assert png.getpalette()[3:6] != [0, 0, 0]  # class 1 visible
    assert set(np.unique(np.asarray(png))) == {0, 1}
    assert (tmp_path / "out" / "tile2_mask.png").exists() and not (tmp_path / "out" / "tile.png").exists()
    with tifffile.TiffFile(tmp_path / "out" / "big_mask.tif") as tif:
        assert [lv.shape for lv in tif.series[0].levels] == [(2600, 2300), (650, 575)]
    summary = json.loads((tmp_path / "out" / "tile_summary.json").read_text())
    assert summary["resolution"]["known"] is False and "full resolution" in summary["resolution"]["note"]


def test_instance_tiff_keeps_uint32_labels_in_every_level(tmp_path):
    labels = (np.arange(3000 * 1300, dtype=np.uint32).reshape(3000, 1300) % 70000).astype(np.uint32)
    shapes = write_mask_tiff(tmp_path / "x.tif", labels, mpp=0.25, pyramid=True)
    with tifffile.TiffFile(tmp_path / "x.tif") as tif:
        levels = tif.series[0].levels
        assert [lv.shape for lv in levels] == shapes and len(shapes) == 2
        assert levels[0].dtype == np.uint32 and (levels[0].asarray() == labels).all()
        assert (levels[1].asarray() == labels[::4, ::4]).all()


def test_every_level_is_streamed_from_a_raw_mask(tmp_path):
    from seunet_monai.apps.wsi import RawMask

    labels = np.random.default_rng(0).integers(0, 2**32 - 1, (1300, 1700), dtype=np.uint32)
    raw = RawMask(tmp_path / "labels.raw", labels.shape, np.uint32)
    raw.write_rows(0, labels)
    shapes = write_mask_tiff(tmp_path / "x.tif", raw, mpp=0.5, min_size=64)
    assert shapes == [(1300, 1700), (325, 425), (82, 107), (21, 27)]
    with tifffile.TiffFile(tmp_path / "x.tif") as tif:
        for k, level in enumerate(tif.series[0].levels):
            assert np.array_equal(level.asarray(), labels[:: 4**k, :: 4**k])
            res = level.keyframe.tags["XResolution"].value
            assert 1e4 / (res[0] / res[1]) == pytest.approx(0.5 * 4**k, rel=1e-4)


def test_geojson_polygons_carry_interior_rings(tmp_path):
    from seunet_monai.apps.wsi import GeoJSONWriter, iter_instances

    writer = GeoJSONWriter(tmp_path / "x.geojson", ["background", "Nucleus"], scale=2.0, mpp=0.5)
    for inst in iter_instances(tall_objects(), 2, band=32, margin=8):
        writer.add(inst)
    writer.close()
    features = json.loads((tmp_path / "x.geojson").read_text())["features"]
    rings = sorted(len(f["geometry"]["coordinates"]) for f in features)
    assert rings == [1, 1, 1, 1, 1, 3]  # the bar: exterior + 2 holes
    bar = next(f for f in features if len(f["geometry"]["coordinates"]) == 3)
    ys = np.asarray(bar["geometry"]["coordinates"][0])[:, 1]
    assert ys.min() == pytest.approx(10) and ys.max() == pytest.approx(460)  # rows 5..229, level-0 (x2)
