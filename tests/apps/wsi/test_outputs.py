"""Output names, the inputs they come from and the paths they may not take (``outputs``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tifffile
from PIL import Image

from seunet_monai.apps.wsi.outputs import OUTPUT_FILES, output_names
from seunet_monai.errors import ConfigValueError
from tests.apps.wsi.slides import (
    embed,
    make_workflow,
    png,
    write_pyramid,
)


def test_output_names_strip_the_whole_image_suffix():
    from seunet_monai.apps.wsi.outputs import OUTPUT_FILES, output_names, output_stem

    for name, stem in (
        ("a.ome.tif", "a"),
        ("a.OME.TIFF", "a"),
        ("a.tiff", "a"),
        ("TCGA-01.2.svs", "TCGA-01.2"),
        ("b.png", "b"),
        ("c.d.jpeg", "c.d"),
    ):
        assert output_stem(name) == stem, name
    image, slide = output_names("a", True), output_names("a", False)
    assert "a_mask.png" in image and "a_regions.png" not in image and "a.png" not in image
    assert "a_regions.png" in slide and "a_mask.png" not in slide
    assert image[-1] == slide[-1] == "a_summary.json"  # written last: marks a finished input
    assert sorted(output_names("a")) == sorted(f"a{s}" for s in OUTPUT_FILES)
    docs = (Path(__file__).resolve().parents[3] / "bundle" / "docs" / "README.md").read_text()
    assert [s for s in OUTPUT_FILES if f"- `NAME{s}`" not in docs] == []  # every output explained in the docs


def test_ome_tiff_outputs_are_named_without_the_ome_suffix(tmp_path, tissue):
    (tmp_path / "in").mkdir()
    write_pyramid(tmp_path / "in" / "slide.ome.tif", embed(tissue, (1100, 1300)), mpp=0.5, ome=True)
    make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.5).run()
    names = sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith("."))
    assert names == sorted(
        f"slide{s}"
        for s in (
            "_mask.tif",
            "_instances.tif",
            ".geojson",
            "_overlay.png",
            "_regions.png",
            "_heads.png",
            "_scale.png",
            "_summary.json",
        )
    )
    summary = json.loads((tmp_path / "out" / "slide_summary.json").read_text())
    assert set(summary["output_files"]) == set(summary["outputs"]) == set(names)
    assert all(summary["output_files"].values())  # every output explained
    assert make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.5).run()["skipped"] == ["slide.ome.tif"]


def test_images_and_slides_of_a_nucleus_model_list_the_instances_file_other_models_do_not():
    assert "_instances.tif" in OUTPUT_FILES
    assert all("a_instances.tif" in output_names("a", image) for image in (True, False))
    assert all("a_instances.tif" not in output_names("a", image, instances=False) for image in (True, False))


@pytest.mark.parametrize("overwrite", [False, True])
def test_output_folder_equal_to_input_or_output_that_is_an_input_is_refused(tmp_path, tissue, overwrite):

    inp = tmp_path / "in"
    inp.mkdir()
    Image.fromarray(tissue[:100, :100]).save(inp / "a.png")
    before = (inp / "a.png").read_bytes()
    with pytest.raises(ValueError, match="input folder"):
        make_workflow(inp, inp, overwrite=overwrite).run()
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_mask.tif").symlink_to(inp / "a.png")  # an output path that is the input file
    with pytest.raises(ValueError, match="input file"):
        make_workflow(inp, out, overwrite=overwrite).run()
    assert (inp / "a.png").read_bytes() == before and sorted(p.name for p in inp.iterdir()) == ["a.png"]


def test_outputs_of_one_input_never_replace_those_of_another(tmp_path, tissue):
    """Item 8: `a_overlay.png` beside `a.png` overwrote `a`'s overlay. Such inputs are refused before any work,
    or their outputs are distinct; inputs with one output name (`a.png`, `a.tif`) are refused."""

    (tmp_path / "in").mkdir()
    png(tmp_path / "in" / "a.png", tissue[:64, :64])
    png(tmp_path / "in" / "a_overlay.png", tissue[64:128, :64])
    out = tmp_path / "out"
    try:
        make_workflow(tmp_path / "in", out).run()
    except ConfigValueError as e:
        assert "'a.png' and 'a_overlay.png' would both write" in str(e) and not out.exists()
    else:
        ours = json.loads((out / "a_summary.json").read_text())["outputs"]
        theirs = json.loads((out / "a_overlay_summary.json").read_text())["outputs"]
        assert not set(ours) & set(theirs) and all((out / n).is_file() for n in ours + theirs)
    (tmp_path / "in" / "a_overlay.png").unlink()
    tifffile.imwrite(tmp_path / "in" / "a.tif", tissue[:64, :64], photometric="rgb")
    with pytest.raises(ConfigValueError, match=r"inputs 'a.png' and 'a.tif' would both write 'a_mask.tif'"):
        make_workflow(tmp_path / "in", tmp_path / "out2").run()
    assert not (tmp_path / "out2").exists()
