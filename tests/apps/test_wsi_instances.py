"""Inference outputs of separated nuclei (issue 23, item 5): ``NAME_instances.tif``, the GeoJSON of instances with
per-nucleus measurements, the summary's counts from the instances, ``--mpp`` and ``geojson_simplify``.

Inputs are tiny synthetic H&E-like images (pink background, dark purple discs) segmented by the dark-blob
stand-in network of ``test_wsi.py``; every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from skimage.measure import label

from seunet_monai.apps.wsi import (
    write_mask_tiff,
)
from seunet_monai.apps.wsi.figures import draw_instance_outlines
from seunet_monai.apps.wsi.outputs import OUTPUT_FILES, output_names
from seunet_monai.errors import ConfigValueError
from tests.apps.test_wsi import DarkBlobs, listing, make_workflow

PINK, PURPLE = (240, 200, 220), (60, 30, 110)


def discs(shape=(128, 160), centres=((50, 50), (50, 70), (90, 120)), radius=12) -> np.ndarray:
    """An RGB image: pink background with dark purple discs (the first two touch: one connected component)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.empty((*shape, 3), np.uint8)
    img[:] = PINK
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = PURPLE
    return img


def run_one(tmp_path, name="a.png", image=None, **kwargs):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir(parents=True, exist_ok=True)
    img = discs() if image is None else image
    if name.endswith(".png"):
        Image.fromarray(img).save(inp / name)
    else:
        tifffile.imwrite(inp / name, img, photometric="rgb", **kwargs.pop("tiff", {}))
    report = make_workflow(inp, out, **kwargs).run()
    return report, out


def test_image_outputs_separated_instances_with_measurements(tmp_path):
    report, out = run_one(tmp_path, mpp=0.25)
    assert report["done"] == ["a.png"]
    summary = json.loads((out / "a_summary.json").read_text())
    assert "a_instances.tif" in summary["outputs"] and "a_instances.tif" in summary["output_files"]
    with tifffile.TiffFile(out / "a_mask.tif") as m, tifffile.TiffFile(out / "a_instances.tif") as i:
        mask, labels = m.series[0].levels[0].asarray(), i.series[0].levels[0].asarray()
        assert labels.dtype == np.uint32 and labels.shape == mask.shape == (128, 160)
        assert i.pages[0].is_tiled and i.pages[0].tilewidth == m.pages[0].tilewidth
        assert i.pages[0].tags["XResolution"].value == m.pages[0].tags["XResolution"].value
    assert int(label(mask == 1, connectivity=1).max()) == 2  # the touching discs are one component
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2, 3]  # ... and two nuclei
    assert ((labels > 0) & (mask != 1)).sum() == 0  # instances lie on the nucleus pixels of the class mask
    nuclei = summary["nuclei"]
    assert nuclei["count"] == 3 and nuclei["area_unit"] == "µm^2" and "separated" in nuclei["objects"]
    assert nuclei["area"]["max"] == pytest.approx(np.bincount(labels.ravel())[1:].max() * 0.25**2)
    assert summary["resolution"]["source"] == "--mpp" and summary["resolution"]["mpp"] == pytest.approx(0.25)
    fc = json.loads((out / "a.geojson").read_text())
    assert len(fc["features"]) == 3
    m = fc["features"][0]["properties"]["measurements"]
    assert set(m) == {"Area px^2", "Area µm^2", "Perimeter px", "Perimeter µm", "Equivalent diameter px",
                      "Equivalent diameter µm", "Eccentricity", "Solidity", "Nucleus probability mean",
                      "Haematoxylin OD mean"}
    assert m["Area µm^2"] == pytest.approx(m["Area px^2"] * 0.0625, rel=1e-3)
    assert 0.5 < m["Nucleus probability mean"] <= 1 and m["Haematoxylin OD mean"] > 0 and 0 < m["Solidity"] <= 1
    assert sum(f["properties"]["measurements"]["Area px^2"] for f in fc["features"]) == (labels > 0).sum()


def test_unknown_resolution_assumes_the_training_resolution_for_instances_only(tmp_path):
    _, out = run_one(tmp_path, target_mpp=0.25)
    summary = json.loads((out / "a_summary.json").read_text())
    assert summary["resolution"]["source"] == "none" and summary["resolution"]["mpp"] is None
    nuclei = summary["nuclei"]
    assert nuclei["count"] == 3 and nuclei["area_unit"].startswith("px^2") and nuclei["density_per_mm2"] is None
    assert nuclei["instance_mpp"] == 0.25 and "assumed" in nuclei["instance_mpp_source"]
    m = json.loads((out / "a.geojson").read_text())["features"][0]["properties"]["measurements"]
    assert "Area µm^2" not in m and "Perimeter µm" not in m and "Perimeter px" in m  # no µm made up


def test_min_nucleus_area_is_in_square_micrometres(tmp_path):
    # discs of radius 12 px: ~450 px² = 28 µm² at 0.25 µm/px, 112 µm² at 0.5 µm/px
    _, out = run_one(tmp_path, mpp=0.25, min_nucleus_area_um2=50.0)
    assert json.loads((out / "a_summary.json").read_text())["nuclei"]["count"] == 0
    _, out = run_one(tmp_path / "b", mpp=0.5, target_mpp=0.5, min_nucleus_area_um2=50.0)
    assert json.loads((out / "a_summary.json").read_text())["nuclei"]["count"] == 3


def test_declared_mpp_contradicting_the_file_fails_in_one_line(tmp_path, caplog):
    tiff = {"resolution": (1e4 / 0.5, 1e4 / 0.5), "resolutionunit": "CENTIMETER"}
    with pytest.raises(RuntimeError, match="could not be segmented"):
        run_one(tmp_path, "a.tif", mpp=0.25, target_mpp=0.5, tiff=dict(tiff))
    lines = [r.getMessage() for r in caplog.records if "contradicts" in r.getMessage()]
    assert len(lines) == 1 and "--mpp 0.25" in lines[0] and "0.5 µm/px" in lines[0]
    report, out = run_one(tmp_path / "b", "a.tif", mpp=0.5, target_mpp=0.5, tiff=dict(tiff))  # agreeing: fine
    assert report["done"] == ["a.tif"]
    assert json.loads((out / "a_summary.json").read_text())["resolution"]["source"] == "file"


def test_geojson_simplify_reduces_the_points_not_the_areas(tmp_path):
    _, exact = run_one(tmp_path / "0", mpp=0.25, geojson_simplify=0)
    _, simple = run_one(tmp_path / "1", mpp=0.25)  # default 1.0 px
    a, b = (json.loads((d / "a.geojson").read_text())["features"] for d in (exact, simple))
    points = [sum(len(f["geometry"]["coordinates"][0]) for f in fs) for fs in (a, b)]
    assert points[1] < points[0] / 2
    assert [f["properties"]["measurements"] for f in a] == [f["properties"]["measurements"] for f in b]


@pytest.mark.parametrize("key,value", [("mpp", -1), ("mpp", "x"), ("geojson_simplify", -1)])
def test_bad_mpp_and_simplify_values_are_refused(tmp_path, key, value):
    with pytest.raises(ConfigValueError, match=key):
        make_workflow(tmp_path, tmp_path / "out", **{key: value})


def test_instance_tiff_keeps_uint32_labels_in_every_level(tmp_path):
    labels = (np.arange(3000 * 1300, dtype=np.uint32).reshape(3000, 1300) % 70000).astype(np.uint32)
    shapes = write_mask_tiff(tmp_path / "x.tif", labels, mpp=0.25, pyramid=True)
    with tifffile.TiffFile(tmp_path / "x.tif") as tif:
        levels = tif.series[0].levels
        assert [lv.shape for lv in levels] == shapes and len(shapes) == 2
        assert levels[0].dtype == np.uint32 and (levels[0].asarray() == labels).all()
        assert (levels[1].asarray() == labels[::4, ::4]).all()


def test_images_list_the_instances_file_and_slides_do_not():
    assert "_instances.tif" in OUTPUT_FILES
    assert "a_instances.tif" in output_names("a", True) and "a_instances.tif" not in output_names("a", False)


def test_instance_outlines_show_the_cut_between_touching_nuclei():
    labels = np.zeros((10, 12), np.uint32)
    labels[2:8, 1:6], labels[2:8, 6:11] = 1, 2  # two touching instances
    rgb = draw_instance_outlines(np.zeros((10, 12, 3), np.uint8), labels, (255, 0, 0), width=1)
    painted = rgb[..., 0] > 0
    assert painted[4, 5] and painted[4, 6]  # both sides of the cut
    assert not painted[4, 3] and not painted[4, 8] and not painted[0].any()  # interiors and background untouched


def test_declared_mpp_off_the_target_is_resampled_like_a_stated_one(tmp_path):
    _, out = run_one(tmp_path, mpp=0.5, target_mpp=0.25)  # 128 x 160 px at 0.5 µm/px -> 256 x 320 at 0.25
    summary = json.loads((out / "a_summary.json").read_text())
    res = summary["resolution"]
    assert res["source"] == "--mpp" and res["mpp"] == pytest.approx(0.25) and res["resampled"]["zoom"] == pytest.approx(2)
    assert tifffile.imread(out / "a_instances.tif").shape == (256, 320) and summary["nuclei"]["count"] == 3
    fc = json.loads((out / "a.geojson").read_text())
    ring = np.concatenate([np.asarray(f["geometry"]["coordinates"][0]) for f in fc["features"]])
    assert ring.max(0)[0] <= 160 and ring.max(0)[1] <= 128  # GeoJSON in the input's own pixels
    areas = sorted(f["properties"]["measurements"]["Area µm^2"] for f in fc["features"])
    assert areas[-1] == pytest.approx(np.pi * (12 * 0.5) ** 2, rel=0.15)  # a 12 px disc at 0.5 µm/px


class ThreeClasses(DarkBlobs):
    """The dark-blob stand-in with a third, never-winning class: a model without a single nucleus class."""

    out_channels = 3

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        two = super().forward_heads(x)
        return torch.cat([two, torch.full_like(two[:, :, :1], -100.0)], 2)


def test_models_of_more_classes_keep_connected_components_and_resume(tmp_path):
    Image.fromarray(discs()).save((tmp_path / "in").mkdir() or tmp_path / "in" / "a.png")
    def workflow():
        return make_workflow(tmp_path / "in", tmp_path / "out", network=ThreeClasses(), mpp=0.25)

    assert workflow().run()["done"] == ["a.png"]
    assert "a_instances.tif" not in listing(tmp_path / "out") and "a_mask.png" in listing(tmp_path / "out")
    nuclei = json.loads((tmp_path / "out" / "a_summary.json").read_text())["nuclei"]
    assert nuclei["objects"].startswith("connected components") and nuclei["count"] == 2
    assert workflow().run()["skipped"] == ["a.png"]  # finished without the instances file
