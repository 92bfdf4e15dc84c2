"""``run inferring`` over a folder: outputs, bad inputs, resume, locking, settings (``workflow``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy.ndimage import binary_fill_holes
from skimage.measure import label

from seunet_monai.apps.wsi import (
    TiffRegionReader,
    TissueWSISplitter,
)
from seunet_monai.apps.wsi.outputs import make_staging
from seunet_monai.errors import ConfigValueError
from tests.apps.wsi.slides import (
    embed,
    hidden,
    listing,
    make_workflow,
    png,
    write_pyramid,
)


def test_outputs_geojson_mask_tiff_overlay_and_summary(tmp_path, tissue):

    (tmp_path / "in").mkdir()
    write_pyramid(tmp_path / "in" / "slide.tif", embed(tissue, (2600, 2300)), mpp=0.25, levels=3)
    report = make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.5).run()
    out = tmp_path / "out"
    assert report["done"] == ["slide.tif"]
    assert listing(out) == sorted(
        [
            "slide_mask.tif",
            "slide_instances.tif",
            "slide.geojson",
            "slide_overlay.png",
            "slide_regions.png",
            "slide_heads.png",
            "slide_scale.png",
            "slide_summary.json",
        ]
    )
    summary = json.loads((out / "slide_summary.json").read_text())
    assert summary["level"] == 1 and summary["resolution"]["mpp"] == pytest.approx(0.5)  # target 0.5 -> level 1
    with tifffile.TiffFile(out / "slide_mask.tif") as tif:
        levels = tif.series[0].levels
        assert levels[0].shape == (1300, 1150) and len(levels) == 1  # inference level size; longer side <= 2048
        mask = levels[0].asarray()
        assert tif.pages[0].is_tiled and tif.pages[0].compression != 1
        xres = tif.pages[0].tags["XResolution"].value
        assert 1e4 / (xres[0] / xres[1]) == pytest.approx(0.5, rel=1e-3)
    with tifffile.TiffFile(out / "slide_instances.tif") as tif:
        labels = tif.series[0].levels[0].asarray()
        assert labels.dtype == np.uint32 and labels.shape == mask.shape and tif.pages[0].is_tiled
    assert not ((labels > 0) & ~binary_fill_holes(mask == 1)).any()  # nuclei: nucleus pixels (and small holes)
    ids = np.unique(labels[labels > 0])
    fc = json.loads((out / "slide.geojson").read_text())
    assert fc["type"] == "FeatureCollection"
    assert len(fc["features"]) == ids.size == ids.max() == summary["nuclei"]["count"] > 10  # 1..N, unique
    assert ids.size > int(label(mask == 1, connectivity=2).max())  # touching nuclei separated
    assert summary["nuclei"]["objects"].startswith("separated instances")
    for feat in fc["features"]:
        ring = np.asarray(feat["geometry"]["coordinates"][0])
        assert feat["geometry"]["type"] == "Polygon" and len(ring) >= 4 and (ring[0] == ring[-1]).all()
        assert (ring >= 0).all() and (ring[:, 0] <= 2300).all() and (ring[:, 1] <= 2600).all()  # level-0 px
        props = feat["properties"]
        assert props["objectType"] == "detection" and props["classification"]["name"] == "Nucleus"
        assert props["measurements"]["Area µm^2"] > 0
    total = sum(f["properties"]["measurements"]["Area µm^2"] for f in fc["features"])
    assert total == pytest.approx((labels > 0).sum() * 0.25, rel=1e-6)  # 0.5 µm pixels
    assert summary["winning_heads"]["num_heads"] == 2
    assert sum(summary["winning_heads"]["inferred_pixels"].values()) == pytest.approx(1.0)
    assert summary["patches"]["run"] < summary["patches"]["total"]  # background patches skipped
    assert summary["tissue"]["area_mm2"] == pytest.approx(700 * 900 * 0.25**2 * 1e-6, rel=0.1)  # level-0 µm²


def test_bad_inputs_are_named_and_the_rest_is_done(tmp_path, tissue, caplog):
    inp = tmp_path / "in"
    inp.mkdir()
    write_pyramid(inp / "good.tif", embed(tissue, (1100, 1400)), mpp=0.5)
    write_pyramid(inp / "blank.tif", np.full((1500, 1500, 3), 240, np.uint8), mpp=0.5)
    (inp / "corrupt.svs").write_bytes(b"II*\x00" + os.urandom(3000))
    (inp / "notes.txt").write_text("not an image")
    with pytest.raises(RuntimeError, match="corrupt.svs"):
        make_workflow(inp, tmp_path / "out", target_mpp=0.5).run()
    text = caplog.text
    assert "notes.txt" in text and "unsupported" in text and "corrupt.svs" in text
    out = tmp_path / "out"
    assert (out / "good_summary.json").exists() and not list(out.glob("corrupt*")) and not hidden(out)
    blank = json.loads((out / "blank_summary.json").read_text())
    assert blank["nuclei"]["count"] == 0 and blank["patches"]["run"] == 0 and blank["tissue"]["fraction"] == 0
    assert json.loads((out / "blank.geojson").read_text()) == {"type": "FeatureCollection", "features": []}
    assert not tifffile.imread(out / "blank_mask.tif").any()


def test_existing_outputs_refused_and_resume_after_interruption(tmp_path, tissue, monkeypatch):

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for k in range(3):
        Image.fromarray(tissue[100 * k : 100 * k + 120, :150]).save(inp / f"t{k}.png")
    wf = make_workflow(inp, out)
    real = wf.infer_one

    def interrupted(path):
        if path.name == "t1.png":  # killed while writing the second image's outputs
            make_staging(out, path)
            (out / ".t1.partial" / "t1_mask.tif").write_bytes(b"partial")
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(wf, "infer_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        wf.run()
    assert (out / "t0_summary.json").exists() and not list(out.glob("t1*")) and not list(out.glob("t2*"))
    t0 = (out / "t0_mask.tif").stat().st_mtime_ns
    report = make_workflow(inp, out).run()  # re-running continues with the images not done
    assert report["skipped"] == ["t0.png"] and report["done"] == ["t1.png", "t2.png"]
    assert (out / "t0_mask.tif").stat().st_mtime_ns == t0 and not hidden(out)
    # an output that is not from a finished run is refused without --overwrite, replaced with it
    (out / "t2_summary.json").unlink()
    with pytest.raises(FileExistsError, match="--overwrite true"):
        make_workflow(inp, out).run()
    assert make_workflow(inp, out, overwrite=True).run()["done"] == ["t0.png", "t1.png", "t2.png"]


def test_second_run_into_a_locked_output_folder_is_refused_naming_the_pid(tmp_path, tissue):
    """Item 5: two runs into one output folder mixed their outputs."""
    import subprocess
    import sys

    from seunet_monai.errors import RunLockedError

    (tmp_path / "in").mkdir()
    png(tmp_path / "in" / "b.png", tissue[:64, :64])
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from seunet_monai.runtime.run_lock import lock_run_folders; "
            f"lock = lock_run_folders([{str(out)!r}]); print('locked', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}.*--output_dir"):
            make_workflow(tmp_path / "in", out).run()
    finally:
        holder.communicate("", timeout=60)
    assert listing(out) == []
    assert make_workflow(tmp_path / "in", out).run()["done"] == ["b.png"]  # free again once the holder ended


def test_string_flags_from_the_command_line_are_parsed(tmp_path):
    from seunet_monai.errors import ConfigValueError

    wf = make_workflow(tmp_path, tmp_path / "out", overwrite="false", amp="True")
    assert wf.overwrite is False and wf.amp is True
    assert TissueWSISplitter([64, 64], reader=TiffRegionReader(), progress="false").progress is False
    with pytest.raises(ConfigValueError, match="overwrite must be true or false, got 'maybe'"):
        make_workflow(tmp_path, tmp_path / "out", overwrite="maybe")


def test_deprecated_settings_are_accepted_and_ignored(tmp_path):
    workflow = make_workflow(
        tmp_path, tmp_path / "out", watershed="true", watershed_min_distance=3, scale_reference=0.3
    )
    assert not hasattr(workflow, "scale_reference") and not hasattr(workflow, "watershed")


@pytest.mark.parametrize("key,value", [("mpp", -1), ("mpp", "x"), ("geojson_simplify", -1)])
def test_bad_mpp_and_simplify_values_are_refused(tmp_path, key, value):
    with pytest.raises(ConfigValueError, match=key):
        make_workflow(tmp_path, tmp_path / "out", **{key: value})
