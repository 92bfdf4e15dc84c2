"""Nucleus annotations as masks (:mod:`seunet_monai.data.annotations`): Aperio XML parsing, the rasterisation
rule, binary PNG masks, suspicious annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seunet_monai.data.annotations import annotation_warning, parse_aperio_xml, rasterise_regions, read_png_mask
from seunet_monai.errors import PreparationError
from tests.data.monuseg_files import (
    ALL_REGIONS,
    FRACTIONAL,
    SQUARE,
    expected_mask,
    xml_text,
)

FIXTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "monuseg-sample"


def test_parse_counts_degenerate_and_missing_mpp(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text(xml_text(ALL_REGIONS, mpp=None))
    ann = parse_aperio_xml(p)
    assert len(ann.regions) == 5 and ann.skipped_regions == 1
    assert ann.microns_per_pixel is None
    np.testing.assert_allclose(ann.regions[2], np.array(FRACTIONAL))
    p.write_text(xml_text([SQUARE], mpp="0.2468"))
    assert parse_aperio_xml(p).microns_per_pixel == pytest.approx(0.2468)


def test_rasterise_pixel_exact():
    regions = [np.array(r, float) for r in ALL_REGIONS[:5]]
    binary, instance, stats = rasterise_regions(regions, (64, 64))
    np.testing.assert_array_equal(binary, expected_mask())
    assert binary.dtype == np.uint8 and set(np.unique(binary)) == {0, 1}
    assert stats.clipped_vertices == 5 and stats.empty_regions == 0
    assert (instance[10:21, 10:21] == 1).all() and instance[41, 11] == 3 and instance[0, 0] == 4
    assert binary[9:22, 9:22].sum() == 121  # integer corners [10, 20]: 11 x 11 points, as skimage.draw.polygon


def test_rasterise_overlap_later_wins_and_empty_region():
    a = np.array(SQUARE, float)
    b = a + 5  # overlaps the lower-right part of a
    outside = np.array([(100, 100), (110, 100), (110, 110)], float)
    _, inst, stats = rasterise_regions([a, b, outside], (40, 40))
    assert (inst[15:26, 15:26] == 2).all() and (inst[10:15, 10:15] == 1).all()
    assert stats.empty_regions == 1 and stats.clipped_vertices == 3


def test_malformed_and_truncated_xml_name_the_file(tmp_path):
    p = tmp_path / "broken.xml"
    p.write_text(xml_text([SQUARE])[:-40])
    with pytest.raises(PreparationError, match="broken.xml"):
        parse_aperio_xml(p)
    p.write_text(
        '<Annotations><Annotation><Regions><Region><Vertices><Vertex X="a" Y="1"/>'
        "</Vertices></Region></Regions></Annotation></Annotations>"
    )
    with pytest.raises(PreparationError, match="broken.xml.*non-numeric X"):
        parse_aperio_xml(p)
    p.write_text("<Other/>")
    with pytest.raises(PreparationError, match="broken.xml.*Annotations"):
        parse_aperio_xml(p)


def test_genuine_fixture_parses():
    if not FIXTURE.is_dir():
        pytest.skip(f"genuine MoNuSeg sample not found at {FIXTURE}")
    from seunet_monai.data.io import read_rgb

    xmls = sorted((FIXTURE / "annotations").glob("*.xml"))
    assert len(xmls) >= 2
    clipped = skipped = 0
    for x in xmls:
        ann = parse_aperio_xml(x)
        image, _ = read_rgb(FIXTURE / "images" / f"{x.stem}.tif")
        assert image.shape == (1000, 1000, 3) and image.dtype == np.uint8
        binary, instance, stats = rasterise_regions(ann.regions, image.shape)
        assert 100 < len(ann.regions) < 2000  # hundreds of nuclei per 1000 x 1000 image
        assert 0.03 < binary.mean() < 0.4
        # nearly every region keeps some pixels despite later regions overwriting earlier ones
        assert len(np.unique(instance)) - 1 >= 0.95 * len(ann.regions)
        assert ann.microns_per_pixel is None or 0.1 < ann.microns_per_pixel < 1.0
        clipped += stats.clipped_vertices
        skipped += ann.skipped_regions
    assert clipped > 0 and skipped > 0  # the real files' quirks are present and counted


REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "monuseg-train"


SHIFTED_PNG = "TCGA-B0-5710-01Z-00-DX1"  # its PNG is drawn half a pixel up-left of the XML (data README)


def test_real_masks_match_the_community_png_masks():
    if not (REAL / "annotations").is_dir():
        pytest.skip(f"real MoNuSeg training set not found at {REAL}")
    from seunet_monai.data.io import read_label

    xmls = sorted((REAL / "annotations").glob("*.xml"))
    assert len(xmls) >= 10
    for x in xmls:
        if x.stem == SHIFTED_PNG:
            continue
        png = read_label(REAL / "masks" / f"{x.stem}.png") > 0
        binary, _, _ = rasterise_regions(parse_aperio_xml(x).regions, png.shape)
        dice = 2.0 * (binary.astype(bool) & png).sum() / (binary.sum() + png.sum())
        assert dice >= 0.99, f"{x.stem}: Dice {dice:.4f} against the PNG mask"


@pytest.mark.parametrize("scale", [1, 255])
def test_binary_png_masks_read_as_0_1_and_other_values_are_refused(tmp_path, scale):
    path = tmp_path / "mask.png"
    Image.fromarray((expected_mask() * scale).astype(np.uint8)).save(path)
    np.testing.assert_array_equal(read_png_mask(path), expected_mask())
    Image.fromarray((expected_mask() * 7).astype(np.uint8)).save(path)
    with pytest.raises(PreparationError, match=r"mask.png.*\{0, 1\} or \{0, 255\}"):
        read_png_mask(path)


def test_an_annotation_with_no_region_or_most_regions_outside_its_image_is_suspicious():
    square = np.array(SQUARE, float)
    assert annotation_warning([square], (64, 64), Path("a.xml"), Path("a.tif")) is None
    assert "no nucleus annotated" in annotation_warning([], (64, 64), Path("a.xml"), Path("a.tif"))
    far = [square + 100, square + 100, square]  # 2 of 3 centroids outside a 64 x 64 image
    assert "2 of 3 regions lie outside" in annotation_warning(far, (64, 64), Path("a.xml"), Path("a.tif"))
    assert annotation_warning([square + 100, square], (64, 64), Path("a.xml"), Path("a.tif")) is None  # half
