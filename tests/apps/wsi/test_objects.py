"""The objects of an input exported: separated nuclei with measurements, or components (``objects``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage.measure import label

from seunet_monai.transforms.instances import NucleusInstances
from tests.apps.wsi.slides import (
    PURPLE,
    DarkBlobsWithMap,
    ThreeClasses,
    discs,
    listing,
    make_workflow,
    nuclei_across_seams,
    painted_image,
    run_one,
    write_pyramid,
)


def objects(labels: np.ndarray) -> set[tuple[int, ...]]:
    """The objects of a label map as a set of pixel sets (flat indices): labels compared up to renumbering."""
    flat = np.asarray(labels).ravel()
    order = np.argsort(flat, kind="stable")
    cuts = np.flatnonzero(np.diff(flat[order])) + 1
    return {tuple(g) for g in np.split(order, cuts) if flat[g[0]] > 0}


def features(path) -> list:
    """The GeoJSON features of a file, less their ids, in a canonical order."""
    fc = json.loads(path.read_text())["features"]
    return sorted(json.dumps({k: v for k, v in f.items() if k != "id"}, sort_keys=True) for f in fc)


def test_a_slide_gets_the_nuclei_and_measurements_of_the_same_pixels_as_an_image(tmp_path):
    """The same pixels as a 2-level pyramidal TIFF (a slide, labelled in bands of 512 rows) and as a PNG: the same
    class mask, the nuclei of one NucleusInstances call over the whole mask, the same GeoJSON features."""
    img = painted_image(nuclei_across_seams((1400, 300), seams=512))
    (tmp_path / "in").mkdir()
    write_pyramid(tmp_path / "in" / "s.tif", img, mpp=0.25, levels=2)
    Image.fromarray(img).save(tmp_path / "in" / "i.png")
    make_workflow(tmp_path / "in", tmp_path / "out", mpp=0.25, tissue_mask="none").run()
    out = tmp_path / "out"
    summaries = [json.loads((out / f"{n}_summary.json").read_text()) for n in ("i", "s")]
    assert summaries[1]["resolution"]["mpp"] == pytest.approx(0.25) and "s_regions.png" in summaries[1]["outputs"]
    masks, labels = {}, {}
    for n in ("i", "s"):
        with tifffile.TiffFile(out / f"{n}_mask.tif") as m, tifffile.TiffFile(out / f"{n}_instances.tif") as i:
            masks[n], labels[n] = m.series[0].levels[0].asarray(), i.series[0].levels[0].asarray()
            assert labels[n].dtype == np.uint32 and i.pages[0].tilewidth == m.pages[0].tilewidth
            assert i.pages[0].tags["XResolution"].value == m.pages[0].tags["XResolution"].value
    assert np.array_equal(masks["i"], masks["s"])
    whole = NucleusInstances(pixel_size_um=0.25)(np.stack([masks["s"] != 1, masks["s"] == 1]).astype(np.float32))
    assert objects(labels["s"]) == objects(whole[0]) == objects(labels["i"])
    assert np.unique(labels["s"]).size - 1 == labels["s"].max() == summaries[1]["nuclei"]["count"] > 30
    assert summaries[0]["nuclei"] == summaries[1]["nuclei"]
    assert features(out / "i.geojson") == features(out / "s.geojson")


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
    assert set(m) == {
        "Area px^2",
        "Area µm^2",
        "Perimeter px",
        "Perimeter µm",
        "Equivalent diameter px",
        "Equivalent diameter µm",
        "Eccentricity",
        "Solidity",
        "Nucleus probability mean",
        "Haematoxylin OD mean",
    }
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


def test_geojson_simplify_reduces_the_points_not_the_areas(tmp_path):
    _, exact = run_one(tmp_path / "0", mpp=0.25, geojson_simplify=0)
    _, simple = run_one(tmp_path / "1", mpp=0.25)  # default 1.0 px
    a, b = (json.loads((d / "a.geojson").read_text())["features"] for d in (exact, simple))
    points = [sum(len(f["geometry"]["coordinates"][0]) for f in fs) for fs in (a, b)]
    assert points[1] < points[0] / 2
    assert [f["properties"]["measurements"] for f in a] == [f["properties"]["measurements"] for f in b]


def test_models_of_more_classes_keep_connected_components_and_resume(tmp_path):
    Image.fromarray(discs()).save((tmp_path / "in").mkdir() or tmp_path / "in" / "a.png")

    def workflow():
        return make_workflow(tmp_path / "in", tmp_path / "out", network=ThreeClasses(), mpp=0.25)

    assert workflow().run()["done"] == ["a.png"]
    assert "a_instances.tif" not in listing(tmp_path / "out") and "a_mask.png" in listing(tmp_path / "out")
    nuclei = json.loads((tmp_path / "out" / "a_summary.json").read_text())["nuclei"]
    assert nuclei["objects"].startswith("connected components") and nuclei["count"] == 2
    assert workflow().run()["skipped"] == ["a.png"]  # finished without the instances file


def one_nucleus_with(mark: str) -> np.ndarray:
    """A disc of 20 px radius on pink, with a green line across it (``"line"``) or two red dots in it (``"dots"``)."""
    img = discs(shape=(160, 160), centres=((80, 80),), radius=20)
    if mark == "line":
        img[55:106, 79:81] = (20, 200, 20)
    else:
        for x in (70, 90):
            img[78:83, x - 2 : x + 3] = (200, 30, 110)
    assert (img[80, 60] == PURPLE).all()
    return img


@pytest.mark.parametrize("separation,channel,mark", [("boundary", 1, "line"), ("centre", 0, "dots")])
def test_the_networks_separation_map_guides_the_nuclei(tmp_path, separation, channel, mark):
    img = one_nucleus_with(mark)
    _, plain = run_one(tmp_path / "plain", image=img, mpp=0.25)
    assert json.loads((plain / "a_summary.json").read_text())["nuclei"]["count"] == 1
    wf_kwargs = {"network": DarkBlobsWithMap(channel), "mpp": 0.25, "separation": separation}
    _, out = run_one(tmp_path / "map", image=img, **wf_kwargs)
    nuclei = json.loads((out / "a_summary.json").read_text())["nuclei"]
    assert nuclei["count"] == 2 and f"guided by the network's {separation} map" in nuclei["objects"]
    labels = tifffile.imread(out / "a_instances.tif")
    assert labels[80, 65] != labels[80, 95] and labels[80, 65] > 0 and labels[80, 95] > 0
    assert not list(out.glob(".*partial*"))  # the raw stores (separation.raw included) are gone
    pyramid = tmp_path / "slide"
    (pyramid / "in").mkdir(parents=True)
    write_pyramid(pyramid / "in" / "s.tif", np.tile(img, (4, 1, 1)), mpp=0.25, levels=2)
    make_workflow(pyramid / "in", pyramid / "out", tissue_mask="none", **wf_kwargs).run()
    assert json.loads((pyramid / "out" / "s_summary.json").read_text())["nuclei"]["count"] == 8  # slides alike


def test_a_separation_that_does_not_match_the_network_is_a_one_line_error(tmp_path):
    from seunet_monai.errors import ConfigValueError

    with pytest.raises(ConfigValueError, match="separation is not set") as e:
        make_workflow(tmp_path, tmp_path / "out", network=DarkBlobsWithMap())
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigValueError, match="separation 'boundary' needs a network"):
        make_workflow(tmp_path, tmp_path / "out", separation="boundary")
    with pytest.raises(ConfigValueError, match="separation must be one of"):
        make_workflow(tmp_path, tmp_path / "out", network=DarkBlobsWithMap(), separation="edges")
