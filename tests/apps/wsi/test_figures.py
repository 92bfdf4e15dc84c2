"""The pictures of an input: outlines, overlays, region crops and the maps written with them (``figures``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from seunet_monai.apps.wsi.figures import draw_instance_outlines, write_region_crops
from tests.apps.wsi.slides import (
    embed,
    make_workflow,
    write_pyramid,
)


def test_outlines_are_two_pixels_wide_inside_the_object():
    from seunet_monai.apps.wsi import OKABE_ITO
    from seunet_monai.apps.wsi.figures import draw_outlines

    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    rgb = draw_outlines(np.zeros((20, 20, 3), np.uint8), mask, OKABE_ITO[0])
    drawn = (rgb == OKABE_ITO[0]).all(-1)
    assert drawn.sum() == 100 - 36 and not (drawn & ~mask).any()  # a 2-px ring inside the 10x10 square


def test_instance_outlines_show_the_cut_between_touching_nuclei():
    labels = np.zeros((10, 12), np.uint32)
    labels[2:8, 1:6], labels[2:8, 6:11] = 1, 2  # two touching instances
    rgb = draw_instance_outlines(np.zeros((10, 12, 3), np.uint8), labels, (255, 0, 0), width=1)
    painted = rgb[..., 0] > 0
    assert painted[4, 5] and painted[4, 6]  # both sides of the cut
    assert not painted[4, 3] and not painted[4, 8] and not painted[0].any()  # interiors and background untouched


def test_region_crops_outline_the_nuclei_one_by_one_when_given(tmp_path):
    crop = np.full((40, 60, 3), 255, np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 10:50] = 1  # two touching nuclei: one component of the class mask
    nuclei = np.where(mask == 1, np.where(np.arange(60) < 30, 1, 2), 0).astype(np.uint32)
    for name, instances in (("plain", None), ("nuclei", [nuclei])):
        write_region_crops(tmp_path / f"{name}.png", [crop], [mask], ["r"], 2, instances=instances)
    plain, cut = (np.asarray(Image.open(tmp_path / f"{n}.png"))[16:][:40] for n in ("plain", "nuclei"))
    assert (plain[20, 29] == 255).all() and not (cut[20, 29] == 255).all()  # the cut is drawn


def test_image_overlay_is_full_resolution_and_slide_pictures_crop_to_the_tissue(tmp_path, tissue):

    from seunet_monai.apps.wsi import OKABE_ITO

    (tmp_path / "in").mkdir()
    Image.fromarray(tissue[:300, :400]).save(tmp_path / "in" / "tile.png")
    write_pyramid(tmp_path / "in" / "slide.tif", embed(tissue, (3000, 3200), at=(600, 900)), mpp=0.5, levels=2)
    make_workflow(tmp_path / "in", tmp_path / "out", roi=256, target_mpp=0.5, thumbnail_size=512).run()
    out = tmp_path / "out"
    overlay = np.asarray(Image.open(out / "tile_overlay.png").convert("RGB"))
    assert overlay.shape == (300, 400, 3)  # the image at full resolution, no figure margins
    assert (overlay == OKABE_ITO[0]).all(-1).sum() > 200  # objects outlined in Okabe-Ito yellow
    assert np.array_equal(overlay[0, 0], tissue[0, 0]) or (overlay[0, 0] == OKABE_ITO[0]).all()
    summary = json.loads((out / "slide_summary.json").read_text())
    # the overview shows the tissue (700 x 900 of a 3000 x 3200 slide), enlarged, not the grey field around it
    w, h = Image.open(out / "slide_overlay.png").size
    assert max(w, h) >= 1024 and abs(w / h - 900 / 700) < 0.15
    regions = summary["regions"]
    assert 1 <= len(regions) <= 3
    for r in regions:  # full-resolution crops on the tissue
        assert (r["height"], r["width"]) == (512, 512)
        assert 600 - 512 <= r["y"] <= 600 + 700 and 900 - 512 <= r["x"] <= 900 + 900
    crops = Image.open(out / "slide_regions.png")
    assert crops.size[0] == 512 * len(regions) + 16 * (len(regions) - 1) and crops.size[1] == 512 + 16
    for name in ("slide_heads.png", "slide_scale.png", "tile_heads.png", "tile_scale.png"):
        assert Image.open(out / name).size[0] >= 600, name  # labelled figures of their own


def test_winning_head_map_leaves_out_pixels_without_head_values(tmp_path):
    from seunet_monai.apps.wsi import RawMask, SlideAccumulator

    acc = SlideAccumulator(RawMask(tmp_path / "m.raw", (4, 8)), num_classes=2, factor=2)
    values = np.zeros((4, 4, 8), np.float32)  # 2 classes, then 2 heads
    values[1] = 1.0
    values[3] = 1.0  # head 2 wins
    values[2:, :, 4:] = np.nan  # no window interior for the right half
    acc(0, values, np.ones((4, 8), bool))
    assert acc.winner_map().tolist() == [[1, 1, -1, -1], [1, 1, -1, -1]]
    assert acc.winner_pixels.tolist() == [0, 16]
