"""MoNuSeg preparation: Aperio XML parsing, rasterisation rule, tiling, splits, report, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from seunet_monai.cli.prepare_monuseg import main
from seunet_monai.data.datalist import load_datalist
from seunet_monai.data.monuseg import parse_aperio_xml, prepare_monuseg, rasterise_regions
from seunet_monai.data.preparation import pick_validation, tile_starts
from seunet_monai.errors import PreparationError

FIXTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "monuseg-sample"

SQUARE = [(10, 10), (20, 10), (20, 20), (10, 20)]
TRIANGLE = [(30, 10), (50, 10), (30, 30)]
FRACTIONAL = [(10.6, 40.6), (19.4, 40.6), (19.4, 49.4), (10.6, 49.4)]
OUT_LEFT_TOP = [(-5, -5), (4, -5), (4, 4), (-5, 4)]  # 3 vertices outside
OUT_RIGHT = [(60, 30), (70, 30), (70, 40), (60, 40)]  # 2 vertices outside a 64-wide image
DEGENERATE = [(5, 50), (9, 55)]  # fewer than 3 vertices


def xml_text(regions, mpp: str | None = "0.252000") -> str:
    head = f'<Annotations MicronsPerPixel="{mpp}">' if mpp is not None else "<Annotations>"
    body = []
    for k, reg in enumerate(regions, 1):
        verts = "".join(f'<Vertex X="{x}" Y="{y}"/>' for x, y in reg)
        body.append(f'<Region Id="{k}" Type="0"><Attributes/><Vertices>{verts}</Vertices></Region>')
    return f'{head}<Annotation Id="1"><Regions>{"".join(body)}</Regions></Annotation></Annotations>'


def expected_mask(shape=(64, 64)) -> np.ndarray:
    """Pixel-exact expectation of SQUARE + TRIANGLE + FRACTIONAL + OUT_* with pixel (i, j) at the point (X=j, Y=i)."""
    ii, jj = np.mgrid[: shape[0], : shape[1]]
    m = np.zeros(shape, np.uint8)
    m[10:21, 10:21] = 1  # closed square [10, 20]^2: points 10 .. 20, the border included
    m[(jj >= 30) & (ii >= 10) & (ii + jj <= 60)] = 1  # closed triangle: points on the hypotenuse included
    m[41:50, 11:20] = 1  # points in [10.6, 19.4] x [40.6, 49.4] -> columns 11 .. 19, rows 41 .. 49
    m[0:5, 0:5] = 1  # [-5, 4]^2 clipped to the image: points 0 .. 4
    m[30:41, 60:64] = 1
    return m


ALL_REGIONS = [SQUARE, TRIANGLE, FRACTIONAL, OUT_LEFT_TOP, OUT_RIGHT, DEGENERATE]


def rgb(shape, seed, mode="rgb") -> np.ndarray:
    rng = np.random.RandomState(seed)
    img = rng.randint(120, 250, size=(*shape, 3)).astype(np.uint8)
    if mode == "grey":
        return img[..., 0]
    if mode == "rgba":
        return np.concatenate([img, np.full((*shape, 1), 255, np.uint8)], axis=2)
    return img


def make_monuseg(root: Path, n_train=4, n_test=1, sizes=None, modes=None) -> Path:
    tr_img, tr_xml = root / "MoNuSegTrainingData" / "Tissue Images", root / "MoNuSegTrainingData" / "Annotations"
    te = root / "MoNuSegTestData"
    for d in (tr_img, tr_xml, te):
        d.mkdir(parents=True, exist_ok=True)
    sizes = sizes or {}
    modes = modes or {}
    for k in range(n_train):
        stem = f"TCGA-TR-{k:04d}"
        tifffile.imwrite(tr_img / f"{stem}.tif", rgb(sizes.get(stem, (64, 64)), k, modes.get(stem, "rgb")))
        (tr_xml / f"{stem}.xml").write_text(xml_text(ALL_REGIONS, mpp=None if k == 0 else "0.25"))
    for k in range(n_test):
        stem = f"TCGA-TE-{k:04d}"
        tifffile.imwrite(te / f"{stem}.tif", rgb((64, 64), 100 + k))
        (te / f"{stem}.xml").write_text(xml_text(ALL_REGIONS))
    return root


# ------------------------------------------------------------------------------------------- parsing, raster
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
    p.write_text('<Annotations><Annotation><Regions><Region><Vertices><Vertex X="a" Y="1"/>'
                 "</Vertices></Region></Regions></Annotation></Annotations>")
    with pytest.raises(PreparationError, match="broken.xml.*non-numeric X"):
        parse_aperio_xml(p)
    p.write_text("<Other/>")
    with pytest.raises(PreparationError, match="broken.xml.*Annotations"):
        parse_aperio_xml(p)


def test_tile_starts_and_validation_pick():
    assert tile_starts(1000, 400, 200) == [0, 200, 400, 600]  # 16 tiles per 1000 x 1000 image
    assert tile_starts(1100, 400, 200) == [0, 200, 400, 600, 700]  # last tile flush with the border
    assert tile_starts(400, 400, 200) == [0]
    with pytest.raises(ValueError, match="smaller than the tile"):
        tile_starts(300, 400, 200)
    names = [f"n{k}" for k in range(10)]
    v = pick_validation(names, 0.2, seed=3)
    assert len(v) == 2 and v == pick_validation(list(reversed(names)), 0.2, seed=3)
    assert len(pick_validation(["a", "b"], 0.2, 0)) == 1  # at least one validation, one training
    assert pick_validation(["a"], 0.5, 0) == set()


# ------------------------------------------------------------------------------------------- end to end
def test_prepare_end_to_end(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=4, sizes={"TCGA-TR-0003": (70, 64)})
    dst = tmp_path / "dst"
    rep = prepare_monuseg(src, dst, val_fraction=0.25, tile=32, stride=16, stain_norm="none", seed=1)
    assert rep["images"] == {"training": 3, "validation": 1, "test": 1}
    per = rep["per_image"]
    assert {s: per[s]["tiles"] for s in per} == {
        "TCGA-TR-0000": 9, "TCGA-TR-0001": 9, "TCGA-TR-0002": 9, "TCGA-TR-0003": 12, "TCGA-TE-0000": 1
    }
    assert rep["regions"] == 25 and rep["skipped_regions"] == 5 and rep["clipped_vertices"] == 25
    assert rep["microns_per_pixel"]["TCGA-TR-0000"] is None and rep["microns_per_pixel"]["TCGA-TR-0001"] == 0.25
    assert rep["stain_normalisation"]["method"] == "none"
    assert json.loads((dst / "prepare_report.json").read_text())["tiles"] == rep["tiles"]

    dl = load_datalist(dst, check_sizes=True)
    assert sum(rep["tiles"].values()) == sum(len(v) for v in dl.values())
    train_src = {e["source"] for e in dl["training"]}
    val_src = {e["source"] for e in dl["validation"]}
    assert train_src and val_src and not train_src & val_src  # split by whole image
    assert {e["source"] for e in dl["test"]} == {"TCGA-TE-0000"}

    # a training tile's label is the right crop of the full-image mask; the test image is kept whole
    full = expected_mask()
    entry = next(e for e in dl["training"] + dl["validation"] if e["name"] == "TCGA-TR-0001_r16_c32")
    np.testing.assert_array_equal(np.asarray(Image.open(entry["label"])), full[16:48, 32:64])
    test = dl["test"][0]
    np.testing.assert_array_equal(np.asarray(Image.open(test["label"])), full)
    inst = np.asarray(Image.open(test["instance"]))  # made absolute like image and label
    assert inst.dtype in (np.uint16, np.int32) and inst.max() == 5 and inst.shape == (64, 64)
    img = tifffile.imread(src / "MoNuSegTestData" / "TCGA-TE-0000.tif")
    np.testing.assert_array_equal(np.asarray(Image.open(test["image"])), img)


def test_training_part_only_and_seed_determinism(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=5, n_test=0)
    (src / "MoNuSegTestData").rmdir()
    r1 = prepare_monuseg(src, tmp_path / "a", tile=32, stride=32, stain_norm="none", seed=7)
    r2 = prepare_monuseg(src, tmp_path / "b", tile=32, stride=32, stain_norm="none", seed=7)
    split = lambda r: {s: v["split"] for s, v in r["per_image"].items()}  # noqa: E731
    assert split(r1) == split(r2) and r1["images"] == {"training": 4, "validation": 1, "test": 0}
    assert r1["tiles"] == {"training": 16, "validation": 4, "test": 0}


def test_stain_norm_reference_recorded(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    rep = prepare_monuseg(src, tmp_path / "dst", tile=32, stride=32, stain_norm="macenko", val_fraction=0.0)
    st = rep["stain_normalisation"]
    assert st["method"] == "macenko" and st["reference"]["image"] == "TCGA-TR-0000"
    assert (tmp_path / "dst" / "stain_reference.png").is_file()
    assert np.asarray(st["target_stain_matrix"]).shape == (2, 3)


# ------------------------------------------------------------------------------------------- bad inputs
def test_image_without_annotation_and_skip_bad(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=3)
    (src / "MoNuSegTrainingData" / "Annotations" / "TCGA-TR-0001.xml").unlink()
    with pytest.raises(PreparationError, match="TCGA-TR-0001.tif.*without an annotation"):
        prepare_monuseg(src, tmp_path / "dst", tile=32, stride=32, stain_norm="none")
    assert not (tmp_path / "dst").exists()  # checked before writing anything
    (src / "MoNuSegTestData" / "TCGA-TE-0000.xml").write_text("<Annotations><Annotation>")  # truncated
    code = main(["--src", str(src), "--dst", str(tmp_path / "dst"), "--tile", "32", "--stride", "32",
                 "--stain-norm", "none", "--skip-bad"])
    assert code == 0
    rep = json.loads((tmp_path / "dst" / "prepare_report.json").read_text())
    skipped = {Path(s["file"]).name for s in rep["skipped_files"]}
    assert skipped == {"TCGA-TR-0001.tif", "TCGA-TE-0000.xml"}
    assert rep["images"]["training"] + rep["images"]["validation"] == 2 and rep["images"]["test"] == 0


def test_nothing_written_exits_nonzero(tmp_path, capsys):
    src = make_monuseg(tmp_path / "src", n_train=1, n_test=0)
    (src / "MoNuSegTrainingData" / "Tissue Images" / "TCGA-TR-0000.tif").write_bytes(b"not a tiff")
    args = ["--src", str(src), "--dst", str(tmp_path / "dst"), "--stain-norm", "none", "--tile", "32"]
    assert main(args) == 1 and "TCGA-TR-0000.tif" in capsys.readouterr().err  # unreadable image named
    assert main(args + ["--skip-bad"]) == 1
    assert main(["--src", str(tmp_path / "nowhere"), "--dst", str(tmp_path / "d2")]) == 1


def test_grey_rgba_converted_and_counted(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0,
                       modes={"TCGA-TR-0000": "grey", "TCGA-TR-0001": "rgba"})
    rep = prepare_monuseg(src, tmp_path / "dst", tile=32, stride=32, stain_norm="none", val_fraction=0)
    assert rep["conversions"] == {"grey->rgb": 1, "rgba->rgb": 1}
    dl = load_datalist(tmp_path / "dst")
    assert all(np.asarray(Image.open(e["image"])).shape == (32, 32, 3) for e in dl["training"])


def test_small_image_refused(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=1, n_test=0, sizes={"TCGA-TR-0000": (20, 64)})
    with pytest.raises(PreparationError, match="TCGA-TR-0000.tif.*smaller than the tile"):
        prepare_monuseg(src, tmp_path / "dst", tile=32, stain_norm="none")


def test_non_empty_dst_refused_and_overwrite_clean(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "stale.png").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not empty"):
        prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none")
    assert (dst / "stale.png").exists()
    assert main(["--src", str(src), "--dst", str(dst), "--tile", "32", "--stain-norm", "none"]) == 1
    # --overwrite never cleans a folder this project did not write (no prepare_report.json)
    with pytest.raises(ValueError, match="did not write it"):
        prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none", overwrite=True)
    assert (dst / "stale.png").exists()
    (dst / "stale.png").unlink()
    prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none")
    (dst / "training" / "stale.png").write_bytes(b"x")  # left over in a folder we wrote: removed
    rep = prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none", overwrite=True)
    assert not (dst / "training" / "stale.png").exists()
    files = {p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()}
    assert not any(".tmp" in f for f in files)
    assert len([f for f in files if f.startswith(("training/images", "validation/images"))]) == sum(
        rep["tiles"].values()
    )


# ------------------------------------------------------------------------------------------- genuine files
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


def test_bad_stain_reference_fails_before_touching_dst(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "keep.txt").write_text("previous run")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((32, 32, 3), 250, np.uint8)).save(blank)
    with pytest.raises(ValueError, match="blank.png.*tissue"):
        prepare_monuseg(src, dst, tile=32, stain_norm="vahadane", stain_reference=blank, overwrite=True)
    assert (dst / "keep.txt").read_text() == "previous run"


def test_dst_overlapping_the_inputs_is_refused_and_inputs_survive(tmp_path):
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    for dst in (src, tmp_path, src / "MoNuSegTrainingData" / "out"):
        with pytest.raises(ValueError, match="overlaps the input"):
            prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none", overwrite=True)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before


# ------------------------------------------------------------------------------------------- flat folders
def make_flat(root: Path, n=4, xml_for=(0, 1), png_for=(1, 2, 3), png_scale=255) -> Path:
    for d in ("images", "annotations", "masks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for k in range(n):
        stem = f"TCGA-FL-{k:04d}"
        tifffile.imwrite(root / "images" / f"{stem}.tif", rgb((64, 64), k))
        if k in xml_for:
            (root / "annotations" / f"{stem}.xml").write_text(xml_text(ALL_REGIONS))
        if k in png_for:
            Image.fromarray((expected_mask() * png_scale).astype(np.uint8)).save(root / "masks" / f"{stem}.png")
    return root


def flat_args(root: Path, dst: Path, *extra: str) -> list[str]:
    return ["--images", str(root / "images"), "--annotations", str(root / "annotations"), "--masks",
            str(root / "masks"), "--dst", str(dst), "--tile", "32", "--stride", "32", "--stain-norm", "none", *extra]


def test_flat_folders_xml_first_then_png_and_sources_recorded(tmp_path):
    root = make_flat(tmp_path / "raw")
    dst = tmp_path / "dst"
    assert main(flat_args(root, dst, "--val-images", "TCGA-FL-0003")) == 0
    rep = json.loads((dst / "prepare_report.json").read_text())
    assert rep["label_sources"] == {"TCGA-FL-0000": "xml", "TCGA-FL-0001": "xml", "TCGA-FL-0002": "png",
                                    "TCGA-FL-0003": "png"}
    assert rep["images"] == {"training": 3, "validation": 1, "test": 0}  # no test split without --test-images
    assert rep["split_images"]["validation"] == ["TCGA-FL-0003"]
    dl = load_datalist(dst)
    for e in dl["training"] + dl["validation"]:  # both sources give the same 0/1 mask
        r, c = (int(v[1:]) for v in e["name"].split("_")[-2:])
        np.testing.assert_array_equal(np.asarray(Image.open(e["label"])), expected_mask()[r : r + 32, c : c + 32])
    inst = np.asarray(Image.open(dst / dl["validation"][0]["instance"]))
    assert inst.max() >= 3  # PNG masks: connected components stand in for instances


def test_flat_folders_test_images_tiles_and_bad_stems(tmp_path):
    root = make_flat(tmp_path / "raw", png_scale=1)
    rep = prepare_monuseg(None, tmp_path / "a", images=root / "images", annotations=root / "annotations",
                          masks=root / "masks", tile=32, stride=32, stain_norm="none",
                          val_images="TCGA-FL-0001", test_images=["TCGA-FL-0002"])
    assert rep["images"] == {"training": 2, "validation": 1, "test": 1}
    assert rep["per_image"]["TCGA-FL-0002"]["tiles"] == 1  # test images whole by default
    rep = prepare_monuseg(None, tmp_path / "b", images=root / "images", masks=root / "masks",
                          annotations=root / "annotations", tile=32, stride=32, stain_norm="none",
                          test_images="TCGA-FL-0002", test_tiles=True)
    assert rep["per_image"]["TCGA-FL-0002"]["tiles"] == 4 and rep["settings"]["test_protocol"] == "tiles"
    with pytest.raises(PreparationError, match="--val-images.*TCGA-XX"):
        prepare_monuseg(None, tmp_path / "c", images=root / "images", annotations=root / "annotations",
                        masks=root / "masks", tile=32, stain_norm="none", val_images="TCGA-XX")
    assert not (tmp_path / "c").exists()


def test_flat_folders_bad_masks_and_unlabelled_images(tmp_path, capsys):
    root = make_flat(tmp_path / "raw", xml_for=(), png_for=(0, 1))
    dst = tmp_path / "dst"
    assert main(flat_args(root, dst)) == 1  # images 2 and 3 have neither XML nor PNG
    assert "TCGA-FL-0002.tif" in capsys.readouterr().err and not dst.exists()
    assert main(flat_args(root, dst, "--skip-bad")) == 0
    rep = json.loads((dst / "prepare_report.json").read_text())
    assert {Path(s["file"]).name for s in rep["skipped_files"]} == {"TCGA-FL-0002.tif", "TCGA-FL-0003.tif"}
    root = make_flat(tmp_path / "raw2", xml_for=(), png_for=(0, 1, 2, 3))
    Image.fromarray((expected_mask() * 7).astype(np.uint8)).save(root / "masks" / "TCGA-FL-0000.png")
    assert main(flat_args(root, tmp_path / "d2")) == 1
    err = capsys.readouterr().err
    assert "TCGA-FL-0000.png" in err and "{0, 1} or {0, 255}" in err


# ------------------------------------------------------------------------------------------- real data
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


# ------------------------------------------------------------------------------------------- issue 12
def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["src", "parent", "images"])
def test_overwrite_never_touches_the_inputs(tmp_path, capsys, where):
    """Item 1 of issue 12: --dst equal to the source, a parent of it or inside it: refused before any work,
    whatever --overwrite says; the raw images and XML survive."""
    src = make_monuseg(tmp_path / "data" / "src", n_train=2, n_test=0)
    before = _tree(src)
    dst = {"src": src, "parent": tmp_path / "data", "images": src / "MoNuSegTrainingData"}[where]
    code = main(["--src", str(src), "--dst", str(dst), "--overwrite", "--stain-norm", "none", "--tile", "32"])
    assert code == 1 and "overlaps the input" in capsys.readouterr().err
    assert _tree(src) == before


def test_suspicious_annotations_warn_and_fail_with_strict(tmp_path, capsys):
    """Item 10 of issue 12: an annotation with no region, or whose regions mostly fall outside the image (here
    the image was halved), is reported per file; --strict makes it a bad file."""
    src = make_monuseg(tmp_path / "src", n_train=3, n_test=0, sizes={"TCGA-TR-0002": (40, 40)})
    xml = src / "MoNuSegTrainingData" / "Annotations"
    (xml / "TCGA-TR-0001.xml").write_text(xml_text([]))
    far = [[(x + 45, y + 45) for x, y in SQUARE], [(x + 40, y + 30) for x, y in SQUARE], SQUARE]
    (xml / "TCGA-TR-0002.xml").write_text(xml_text(far))  # 2 of 3 regions outside the 40 x 40 image
    args = ["--src", str(src), "--stain-norm", "none", "--tile", "32", "--val-fraction", "0"]
    assert main([*args, "--dst", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "TCGA-TR-0001.xml: no nucleus annotated" in err and "TCGA-TR-0002.xml: 2 of 3 regions lie outside" in err
    assert "TCGA-TR-0000" not in err
    report = json.loads((tmp_path / "a" / "prepare_report.json").read_text())
    assert sorted(Path(w["file"]).name for w in report["annotation_warnings"]) == ["TCGA-TR-0001.xml", "TCGA-TR-0002.xml"]
    assert main([*args, "--dst", str(tmp_path / "b"), "--strict"]) == 1
    assert "TCGA-TR-0001.xml: no nucleus annotated" in capsys.readouterr().err and not (tmp_path / "b").exists()
    assert main([*args, "--dst", str(tmp_path / "c"), "--strict", "--skip-bad"]) == 0
    report = json.loads((tmp_path / "c" / "prepare_report.json").read_text())
    assert len(report["skipped_files"]) == 2 and report["images"]["training"] == 1


def test_bit_depth_scaling_is_reported(tmp_path, capsys):
    """Item 13 of issue 12: a 12-bit TIFF is scaled by its stated depth (>> 4), and the report and the log say so."""
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    img = src / "MoNuSegTrainingData" / "Tissue Images" / "TCGA-TR-0000.tif"
    rgb8 = tifffile.imread(img)
    tifffile.imwrite(img, (rgb8.astype(np.uint16) << 4), photometric="rgb", bitspersample=12)  # packed 12-bit
    rep = prepare_monuseg(src, tmp_path / "dst", tile=32, stride=32, stain_norm="none", val_fraction=0)
    desc = "uint16->uint8: 12-bit values >> 4 (x 255/4095, truncated)"
    assert rep["conversions"] == {desc: 1} and rep["per_image"]["TCGA-TR-0000"]["conversion"] == desc
    assert f"TCGA-TR-0000.tif: {desc}" in capsys.readouterr().err
    tile = load_datalist(tmp_path / "dst")["training"][0]
    assert np.array_equal(np.asarray(Image.open(tile["image"])), rgb8[:32, :32])


# ------------------------------------------------------------------------------------------- issue 25
def test_stain_reference_inside_dst_is_refused_and_kept(tmp_path):
    """Item 3: --dst D --overwrite --stain-reference D/ref.png would delete the reference it reads."""
    src = make_monuseg(tmp_path / "src", n_train=2, n_test=0)
    dst = tmp_path / "dst"
    prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="none", val_fraction=0.0)
    ref = dst / "ref.png"
    Image.fromarray(rgb((32, 32), seed=3)).save(ref)
    before = ref.read_bytes()
    with pytest.raises(ValueError, match="lies inside --dst"):
        prepare_monuseg(src, dst, tile=32, stride=32, stain_norm="macenko", stain_reference=ref, overwrite=True)
    assert ref.read_bytes() == before and (dst / "datalist.json").is_file()


def test_two_images_of_one_name_are_refused(tmp_path):
    """Issue 25, item 11: `X.tif` and a different `X.png` in --images: the PNG was silently ignored."""
    root = make_flat(tmp_path / "flat", n=2)
    Image.fromarray(rgb((64, 64), 7)).save(root / "images" / "TCGA-FL-0001.png")
    with pytest.raises(PreparationError, match=r"TCGA-FL-0001.png and TCGA-FL-0001.tif have the same name"):
        prepare_monuseg(None, tmp_path / "dst", **_flat_kwargs(root))
    assert not (tmp_path / "dst").exists()


def _flat_kwargs(root: Path) -> dict:
    return {"images": root / "images", "annotations": root / "annotations", "masks": root / "masks", "tile": 32,
            "stride": 32, "stain_norm": "none"}


def test_overwrite_on_a_full_disk_keeps_the_old_dataset(tmp_path, monkeypatch, capsys):
    """Issue 25: `--overwrite` on a full disk wiped the complete old dataset first, then failed (22-line traceback)
    and a rerun was refused. The new dataset is written beside the old one and swapped in when complete."""
    import errno

    import seunet_monai.data.monuseg as io_module  # the module whose writes fail

    root = make_flat(tmp_path / "flat", n=3)
    dst = tmp_path / "dst"
    prepare_monuseg(None, dst, **_flat_kwargs(root))
    before = _tree(dst)
    real_save, calls = io_module.atomic_save_png, []

    def full_disk(path, array):
        calls.append(path)
        if len(calls) > 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(path, array)

    monkeypatch.setattr(io_module, "atomic_save_png", full_disk)
    assert main(flat_args(root, dst, "--overwrite")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and f"--dst {dst} is unchanged" in err[0]
    assert _tree(dst) == before and sorted(p.name for p in tmp_path.iterdir()) == ["dst", "flat"]
    monkeypatch.setattr(io_module, "atomic_save_png", real_save)
    report = prepare_monuseg(None, dst, **_flat_kwargs(root), overwrite=True, seed=1)
    assert json.loads((dst / "prepare_report.json").read_text())["settings"]["seed"] == 1 == report["settings"]["seed"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "flat"]
