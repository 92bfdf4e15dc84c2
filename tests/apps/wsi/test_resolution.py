"""The resolution an input is inferred at: level, µm per pixel, resampling, warnings (``resolution``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from seunet_monai.apps.wsi import (
    ResampledLevelReader,
    ResolutionPolicy,
    choose_level,
    implausible_resolution,
    make_reader,
)
from seunet_monai.errors import ConfigValueError
from tests.apps.wsi.slides import (
    embed,
    make_workflow,
    png,
    run_one,
    write_pyramid,
)


def test_the_plan_picks_the_level_resamples_off_the_target_and_says_why(tmp_path, tissue):
    """The closest level in log scale; resampled to the target beyond the tolerance, unless the level is forced
    (then a warning); a file without a resolution is inferred as stored, or at a declared ``mpp``."""
    write_pyramid(tmp_path / "p.tif", embed(tissue, (800, 1000), (0, 0)), mpp=0.3, levels=2)  # 0.3 and 0.6 µm/px
    reader = make_reader(tmp_path / "p.tif")
    wsi = reader.read(str(tmp_path / "p.tif"))
    plan = ResolutionPolicy(target_mpp=0.5).plan("p.tif", reader, wsi)
    assert (plan.level, plan.source, plan.warnings) == (1, "file", []) and plan.mpp == pytest.approx(0.6)
    assert plan.resampled["zoom"] == pytest.approx(1.2) and plan.resampled["source_level"] == 1
    grid, level, mpp = plan.grid(reader)
    assert isinstance(grid, ResampledLevelReader) and level == 0 and mpp == 0.5
    assert grid.get_size(wsi, 0) == (480, 600)
    near = ResolutionPolicy(target_mpp=0.29).plan("p.tif", reader, wsi)
    assert near.resampled is None and near.grid(reader) == (reader, 0, pytest.approx(0.3))
    forced = ResolutionPolicy(target_mpp=0.25, level=1).plan("p.tif", reader, wsi)
    assert forced.resampled is None and "--level 1 is 0.6 µm/px, 2.4x coarser" in forced.warnings[0]
    png(tmp_path / "a.png", tissue[:64, :64])
    image = make_reader(tmp_path / "a.png")
    pixels = image.read(str(tmp_path / "a.png"))
    unknown = ResolutionPolicy(target_mpp=0.25).plan("a.png", image, pixels)
    assert (unknown.level, unknown.mpp, unknown.source, unknown.resampled) == (0, None, "none", None)
    declared = ResolutionPolicy(target_mpp=0.25, mpp=0.5).plan("a.png", image, pixels)
    assert declared.source == "--mpp" and declared.resampled["zoom"] == pytest.approx(2.0)


def test_level_off_the_target_resolution_is_resampled_and_recorded(tmp_path, tissue):
    (tmp_path / "in").mkdir()
    slide = embed(tissue, (1000, 1200), (150, 150))
    write_pyramid(tmp_path / "in" / "slide.tif", slide, mpp=0.3, levels=2)  # levels at 0.3 and 0.6 µm/px
    make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.25).run()
    summary = json.loads((tmp_path / "out" / "slide_summary.json").read_text())
    res = summary["resolution"]
    assert res["mpp"] == pytest.approx(0.25) and res["resampled"]["source_mpp"] == pytest.approx(0.3, rel=1e-3)
    assert res["resampled"]["zoom"] == pytest.approx(1.2, rel=1e-3) and summary["level"] == 0
    assert summary["size"] == [1200, 1440] and summary["downsample"] == pytest.approx(1 / 1.2, rel=1e-3)
    with tifffile.TiffFile(tmp_path / "out" / "slide_mask.tif") as tif:
        assert tif.pages[0].shape[:2] == (1200, 1440)
        xres = tif.pages[0].tags["XResolution"].value
        assert 1e4 / (xres[0] / xres[1]) == pytest.approx(0.25, rel=1e-3)
    fc = json.loads((tmp_path / "out" / "slide.geojson").read_text())
    rings = np.concatenate([np.asarray(f["geometry"]["coordinates"][0]) for f in fc["features"]])
    assert len(fc["features"]) > 10 and rings[:, 0].max() <= 1200 and rings[:, 1].max() <= 1000  # level-0 px
    assert rings[:, 0].min() >= 140 and rings[:, 1].min() >= 140  # nuclei only where the tissue was put
    # within the tolerance (0.26 vs 0.25: 4%) or with a forced level, levels are used as stored
    make_workflow(tmp_path / "in", tmp_path / "near", target_mpp=0.29).run()
    assert json.loads((tmp_path / "near" / "slide_summary.json").read_text())["resolution"]["resampled"] is False
    make_workflow(tmp_path / "in", tmp_path / "forced", target_mpp=0.25, level=0).run()
    forced = json.loads((tmp_path / "forced" / "slide_summary.json").read_text())
    assert forced["resolution"]["resampled"] is False and forced["size"] == [1000, 1200]


@pytest.mark.parametrize("kind", ["png_144_dpi", "tif_150_dpi", "tif_10_px_per_cm"])
def test_implausible_resolution_tags_are_ignored_with_one_message(tmp_path, tissue, caplog, kind):
    """Item 4: a screen dpi (144 dpi: 176 µm/px) was trusted and the image resampled x705 (days of work)."""
    (tmp_path / "in").mkdir()
    image = tissue[:96, :96]
    if kind == "png_144_dpi":
        name = png(tmp_path / "in" / "a.png", image, dpi=144).name
    else:
        per_cm = kind == "tif_10_px_per_cm"
        tifffile.imwrite(
            tmp_path / "in" / "a.tif",
            image,
            photometric="rgb",
            resolution=(10, 10) if per_cm else (150, 150),
            resolutionunit="CENTIMETER" if per_cm else "INCH",
        )
        name = "a.tif"
    wsi_reader = make_reader(tmp_path / "in" / name)
    wsi = wsi_reader.read(str(tmp_path / "in" / name))
    assert "outside the 0.05-10 µm/px" in implausible_resolution(wsi_reader, wsi)
    assert choose_level(wsi_reader, wsi, target_mpp=0.25) == (0, None)
    make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.25).run()
    summary = json.loads((tmp_path / "out" / "a_summary.json").read_text())
    assert summary["size"] == [96, 96] and summary["resolution"]["known"] is False
    assert summary["resolution"]["resampled"] is False and "treated as unknown" in summary["resolution"]["warnings"][0]
    assert summary["resolution"]["note"] == "resolution not used (see warnings): inferred as stored"
    lines = [r.getMessage() for r in caplog.records if "treated as unknown" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"{name}: the file states ")


def test_resampling_beyond_the_size_limit_falls_back_to_resolution_unknown(tmp_path, tissue, caplog):
    """Item 4: a plausible but coarse resolution (5 µm/px for a 0.25 µm/px model) would be enlarged x20."""
    (tmp_path / "in").mkdir()
    tifffile.imwrite(
        tmp_path / "in" / "coarse.tif",
        tissue[:64, :80],
        photometric="rgb",
        resolution=(2000, 2000),
        resolutionunit="CENTIMETER",
    )
    make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.25).run()
    res = json.loads((tmp_path / "out" / "coarse_summary.json").read_text())["resolution"]
    assert res["known"] is False and res["resampled"] is False
    assert "enlarge it 20x per side to 1280 x 1600 px, beyond max_resample_zoom 4" in res["warnings"][0]
    assert "coarse.tif: level 0 is 5 µm/px" in caplog.text


def test_forced_level_off_the_training_resolution_is_warned(tmp_path, tissue, caplog):
    """Item 13: --level 2 of a 0.25 µm/px pyramid is 1 µm/px, 4x off the training resolution."""
    (tmp_path / "in").mkdir()
    write_pyramid(tmp_path / "in" / "s.tif", embed(tissue, (800, 1000), (50, 50)), mpp=0.25, levels=3)
    make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.25, level=2).run()
    res = json.loads((tmp_path / "out" / "s_summary.json").read_text())["resolution"]
    assert res["mpp"] == pytest.approx(1.0) and "4x coarser than target_mpp 0.25" in res["warnings"][0]
    assert "s.tif: --level 2 is 1 µm/px, 4x coarser than target_mpp 0.25" in caplog.text


@pytest.mark.parametrize("value", [-0.25, 0, float("nan"), "fine"])
def test_target_mpp_that_is_not_a_positive_resolution_is_refused(tmp_path, value):

    with pytest.raises(ConfigValueError, match="target_mpp must be a positive resolution"):
        make_workflow(tmp_path, tmp_path / "out", target_mpp=value)


def test_declared_mpp_contradicting_the_file_fails_in_one_line(tmp_path, caplog):
    tiff = {"resolution": (1e4 / 0.5, 1e4 / 0.5), "resolutionunit": "CENTIMETER"}
    with pytest.raises(RuntimeError, match="could not be segmented"):
        run_one(tmp_path, "a.tif", mpp=0.25, target_mpp=0.5, tiff=dict(tiff))
    lines = [r.getMessage() for r in caplog.records if "contradicts" in r.getMessage()]
    assert len(lines) == 1 and "--mpp 0.25" in lines[0] and "0.5 µm/px" in lines[0]
    report, out = run_one(tmp_path / "b", "a.tif", mpp=0.5, target_mpp=0.5, tiff=dict(tiff))  # agreeing: fine
    assert report["done"] == ["a.tif"]
    assert json.loads((out / "a_summary.json").read_text())["resolution"]["source"] == "file"


def test_declared_mpp_off_the_target_is_resampled_like_a_stated_one(tmp_path):
    _, out = run_one(tmp_path, mpp=0.5, target_mpp=0.25)  # 128 x 160 px at 0.5 µm/px -> 256 x 320 at 0.25
    summary = json.loads((out / "a_summary.json").read_text())
    res = summary["resolution"]
    assert (
        res["source"] == "--mpp" and res["mpp"] == pytest.approx(0.25) and res["resampled"]["zoom"] == pytest.approx(2)
    )
    assert tifffile.imread(out / "a_instances.tif").shape == (256, 320) and summary["nuclei"]["count"] == 3
    fc = json.loads((out / "a.geojson").read_text())
    ring = np.concatenate([np.asarray(f["geometry"]["coordinates"][0]) for f in fc["features"]])
    assert ring.max(0)[0] <= 160 and ring.max(0)[1] <= 128  # GeoJSON in the input's own pixels
    areas = sorted(f["properties"]["measurements"]["Area µm^2"] for f in fc["features"])
    assert areas[-1] == pytest.approx(np.pi * (12 * 0.5) ** 2, rel=0.15)  # a 12 px disc at 0.5 µm/px
