"""Whole-slide inference (seunet_monai.apps.wsi): readers, the streaming merger, outputs, bad inputs, resume.

Slides are built with tifffile from a genuine MoNuSeg image (skipped when ../shared is absent): tiled,
compressed, pyramidal TIFF (SubIFDs), OME-TIFF and an Aperio-SVS-like file, a few thousand pixels at most.
The network is a small deterministic stand-in with two heads (dark, blob-shaped regions are "nuclei"), so the
masks have real structure and every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from monai.inferers import PatchInferer, SlidingWindowInferer

from seunet_monai.apps.wsi import (
    BandMerger,
    PatchPreprocessing,
    SlideInferenceWorkflow,
    SlideInferer,
    TiffRegionReader,
    TissueWSISplitter,
    choose_level,
    detect_tissue,
    implausible_resolution,
    is_colourless,
    make_reader,
)
from seunet_monai.apps.wsi.outputs import make_staging
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.runtime.run_lock import LOCK_NAME

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
MONUSEG = SHARED / "data" / "monuseg-train" / "images"


class DarkBlobs(MultiHeadNetwork):
    """Two heads: a pixel is a nucleus when its darkness, box-averaged over 3x3 (head 1) or 7x7 (head 2)
    pixels, exceeds a threshold. Eval-mode output: the PEns fusion, like SEUNet."""

    num_scales = 2
    out_channels = 2
    fusion = "pens"

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        dark = 1.0 - x.mean(1, keepdim=True)
        heads = [torch.nn.functional.avg_pool2d(dark, k, 1, k // 2, count_include_pad=False) for k in (3, 7)]
        logits = [torch.cat([torch.zeros_like(h), 40.0 * (h - 0.45)], 1) for h in heads]
        return torch.stack(logits, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # fused in any mode (the tests call it untouched)
        return self.fuse_heads(torch.softmax(self.forward_heads(x), 2))



@pytest.fixture(scope="module")
def tissue() -> np.ndarray:
    files = sorted(MONUSEG.glob("*.tif"))
    if not files:
        pytest.skip(f"MoNuSeg images not found under {MONUSEG}")
    return tifffile.imread(files[0])[:700, :900].copy()


def write_pyramid(path, image, mpp=0.5, ome=False, levels=2):
    """A tiled, zlib-compressed TIFF with ``levels`` levels (factor 2) in SubIFDs and resolution tags."""
    opts = dict(tile=(128, 128), compression="zlib", photometric="rgb", resolutionunit="CENTIMETER")
    meta = {"axes": "YXS", "PhysicalSizeX": mpp, "PhysicalSizeY": mpp} if ome else None
    with tifffile.TiffWriter(path, ome=ome) as tif:
        tif.write(image, subifds=levels - 1, resolution=(1e4 / mpp, 1e4 / mpp), metadata=meta, **opts)
        for k in range(1, levels):
            d = 2**k
            tif.write(image[::d, ::d], subfiletype=1, resolution=(1e4 / (mpp * d), 1e4 / (mpp * d)), **opts)


def write_svs_like(path, image, mpp=0.25):
    """Aperio-like: tiled baseline with an 'Aperio ... MPP = x' description, a stripped thumbnail page, then a
    reduced level (as in SVS files); no resolution tags, so the MPP must come from the description."""
    desc = f"Aperio Image Library v12.0.0\r\n{image.shape[1]}x{image.shape[0]} [0,0 {image.shape[1]}x{image.shape[0]}] |AppMag = 40|MPP = {mpp}"
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(128, 128), compression="jpeg", photometric="rgb", description=desc, metadata=None)
        tif.write(image[::8, ::8], photometric="rgb", description="Aperio Image Library v12.0.0\r\nthumbnail", metadata=None)
        tif.write(image[::4, ::4].copy(), tile=(128, 128), compression="jpeg", photometric="rgb", description=desc, metadata=None)


def embed(image, shape=(1500, 1800), at=(300, 400), background=238):
    slide = np.full((*shape, 3), background, np.uint8)
    slide[at[0] : at[0] + image.shape[0], at[1] : at[1] + image.shape[1]] = image
    return slide


def listing(folder: Path) -> list[str]:
    """Names in an output folder, less the run lock that every inference leaves (as training does)."""
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME)


def hidden(folder: Path) -> list[str]:
    """Hidden entries of an output folder (staging folders), less the run lock."""
    return [n for n in listing(folder) if n.startswith(".")]


def make_workflow(input_dir, output_dir, roi=128, network=None, image_transform=None, **kwargs):
    inferer = SlideInferer([roi, roi], overlap=0.25, sw_batch_size=4, image_transform=image_transform)
    return SlideInferenceWorkflow(input_dir, output_dir, network or DarkBlobs(), inferer, progress=False, **kwargs)


# ---------------------------------------------------------------------------------------------- readers
def test_region_reads_match_the_full_level_and_pad_white(tmp_path, tissue):
    slide = embed(tissue, (700, 1000), (0, 50))
    write_pyramid(tmp_path / "s.tif", slide)
    reader = TiffRegionReader(level=0, channel_dim=0)
    wsi = reader.read(str(tmp_path / "s.tif"))
    np.testing.assert_array_equal(reader.read_region(wsi, (130, 250), (300, 260), 0), slide[130:430, 250:510])
    edge = reader.read_region(wsi, (600, 900), (200, 200), 0)  # reaches beyond the image
    np.testing.assert_array_equal(edge[:100, :100], slide[600:, 900:])
    assert (edge[100:] == 255).all() and (edge[:, 100:] == 255).all()
    np.testing.assert_array_equal(reader.read_region(wsi, (10, 20), (50, 60), 1), slide[::2, ::2][10:60, 20:80])


def test_levels_and_resolution_of_pyramid_ome_and_svs(tmp_path, tissue):
    write_pyramid(tmp_path / "p.tif", tissue, mpp=0.25, levels=3)
    write_pyramid(tmp_path / "o.ome.tif", tissue, mpp=0.5, ome=True)
    write_svs_like(tmp_path / "s.svs", tissue, mpp=0.25)
    reader = TiffRegionReader(channel_dim=0)
    for name, n, mpp0 in (("p.tif", 3, 0.25), ("o.ome.tif", 2, 0.5), ("s.svs", 2, 0.25)):
        wsi = reader.read(str(tmp_path / name))
        assert reader.get_level_count(wsi) == n, name  # the SVS thumbnail page is not a level
        assert reader.get_size(wsi, 0) == tissue.shape[:2]
        assert reader.get_mpp(wsi, 0) == pytest.approx((mpp0, mpp0), rel=1e-3), name
    wsi = reader.read(str(tmp_path / "s.svs"))
    assert reader.get_downsample_ratio(wsi, 1) == pytest.approx(4.0, rel=0.01)
    assert choose_level(reader, wsi, target_mpp=1.0) == (1, pytest.approx(1.0, rel=0.01))
    assert choose_level(reader, wsi, target_mpp=0.25)[0] == 0
    assert choose_level(reader, wsi, target_mpp=1.0, level=0)[0] == 0  # --level wins


# ---------------------------------------------------------------------------------------------- merging
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
    splitter = TissueWSISplitter([128, 128], overlap=0.25, reader=TiffRegionReader(level=0, channel_dim=0),
                                 location_filter=keep)
    inferer = PatchInferer(splitter, merger_cls=BandMerger, batch_size=3, sink=sink)
    inferer(str(tmp_path / "s.tif"), lambda x: x.float())
    merged = np.concatenate([rows[k] for k in sorted(rows)], axis=1)
    covered = (merged >= 0).all(0)
    assert covered[:96].all() and covered[-100:].all()
    np.testing.assert_allclose(merged[:, :96], np.moveaxis(tissue[:96, :600], -1, 0), atol=1e-3)
    np.testing.assert_allclose(merged[:, -100:], np.moveaxis(tissue[400:500, :600], -1, 0), atol=1e-3)
    assert sum(n for _, n in empty) + merged.shape[1] == 500


def test_slide_inference_agrees_with_whole_image_inference(tmp_path, tissue):
    """The streamed, tissue-filtered slide path (pyramidal TIFF) against MONAI's SlidingWindowInferer on the
    whole image in memory: >= 99% of the tissue pixels get the same class."""
    slide = embed(tissue)
    (tmp_path / "in").mkdir()
    write_pyramid(tmp_path / "in" / "slide.tif", slide, mpp=0.5)
    make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.5).run()
    mask = tifffile.imread(tmp_path / "out" / "slide_mask.tif")
    x = torch.as_tensor(slide).permute(2, 0, 1)[None].float() / 255
    ref = SlidingWindowInferer([128, 128], sw_batch_size=4, overlap=0.25, mode="gaussian")(x, DarkBlobs())
    ref = ref[0].argmax(0).numpy()
    region = (slice(300, 1000), slice(400, 1300))
    assert ref[region].mean() > 0.05  # the stand-in network finds nuclei
    assert (mask[region] == ref[region]).mean() >= 0.99
    assert (mask == ref).mean() >= 0.99


# ---------------------------------------------------------------------------------------------- outputs
def test_outputs_geojson_mask_tiff_overlay_and_summary(tmp_path, tissue):
    from skimage.measure import label

    (tmp_path / "in").mkdir()
    write_pyramid(tmp_path / "in" / "slide.tif", embed(tissue, (2600, 2300)), mpp=0.25, levels=3)
    report = make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.5).run()
    out = tmp_path / "out"
    assert report["done"] == ["slide.tif"]
    assert listing(out) == sorted(["slide_mask.tif", "slide.geojson", "slide_overlay.png",
        "slide_regions.png", "slide_heads.png", "slide_scale.png", "slide_summary.json"])
    summary = json.loads((out / "slide_summary.json").read_text())
    assert summary["level"] == 1 and summary["resolution"]["mpp"] == pytest.approx(0.5)  # target 0.5 -> level 1
    with tifffile.TiffFile(out / "slide_mask.tif") as tif:
        levels = tif.series[0].levels
        assert levels[0].shape == (1300, 1150) and len(levels) == 1  # inference level size; longer side <= 2048
        mask = levels[0].asarray()
        assert tif.pages[0].is_tiled and tif.pages[0].compression != 1
        xres = tif.pages[0].tags["XResolution"].value
        assert 1e4 / (xres[0] / xres[1]) == pytest.approx(0.5, rel=1e-3)
    fc = json.loads((out / "slide.geojson").read_text())
    assert fc["type"] == "FeatureCollection"
    num_components = int(label(mask == 1, connectivity=1).max())
    assert len(fc["features"]) == num_components == summary["nuclei"]["count"] > 10
    for feat in fc["features"]:
        ring = np.asarray(feat["geometry"]["coordinates"][0])
        assert feat["geometry"]["type"] == "Polygon" and len(ring) >= 4 and (ring[0] == ring[-1]).all()
        assert (ring >= 0).all() and (ring[:, 0] <= 2300).all() and (ring[:, 1] <= 2600).all()  # level-0 px
        props = feat["properties"]
        assert props["objectType"] == "detection" and props["classification"]["name"] == "Nucleus"
        assert props["measurements"]["Area µm^2"] > 0
    total = sum(f["properties"]["measurements"]["Area µm^2"] for f in fc["features"])
    assert total == pytest.approx((mask == 1).sum() * 0.25, rel=1e-6)  # 0.5 µm pixels
    assert summary["winning_heads"]["num_heads"] == 2
    assert sum(summary["winning_heads"]["inferred_pixels"].values()) == pytest.approx(1.0)
    assert summary["patches"]["run"] < summary["patches"]["total"]  # background patches skipped
    assert summary["tissue"]["area_mm2"] == pytest.approx(700 * 900 * 0.25**2 * 1e-6, rel=0.1)  # level-0 µm²


def test_small_images_get_a_palette_png_mask_and_large_masks_a_pyramid(tmp_path, tissue):
    from PIL import Image

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


# ---------------------------------------------------------------------------------------------- bad input
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


@pytest.mark.parametrize("overwrite", [False, True])
def test_output_folder_equal_to_input_or_output_that_is_an_input_is_refused(tmp_path, tissue, overwrite):
    from PIL import Image

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


def test_existing_outputs_refused_and_resume_after_interruption(tmp_path, tissue, monkeypatch):
    from PIL import Image

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


def test_band_merger_equals_sliding_window_inferer_inside_the_image(tmp_path, tissue):
    """Away from the right/bottom border (where MONAI's SlidingWindowInferer shifts its last window inward and
    the splitter pads instead), the streamed Gaussian blending equals SlidingWindowInferer(mode="gaussian")."""
    from seunet_monai.apps.wsi import HeadsPatchPredictor

    image = tissue[:600, :800]
    tifffile.imwrite(tmp_path / "flat.tif", image, tile=(128, 128), photometric="rgb")
    rows: dict[int, np.ndarray] = {}
    predictor = HeadsPatchPredictor(DarkBlobs())
    splitter = TissueWSISplitter([128, 128], 0.25, reader=TiffRegionReader(level=0, channel_dim=0))
    sink = lambda y0, v, valid: rows.__setitem__(y0, v)  # noqa: E731
    PatchInferer(splitter, merger_cls=BandMerger, batch_size=4, preprocessing=PatchPreprocessing(), sink=sink)(
        str(tmp_path / "flat.tif"), predictor)
    merged = np.concatenate([rows[k] for k in sorted(rows)], axis=1)  # (C + Ω, H, W)
    x = torch.as_tensor(image).permute(2, 0, 1)[None].float() / 255
    ref = SlidingWindowInferer([128, 128], 4, 0.25, mode="gaussian")(x, predictor)[0].numpy()
    assert merged.shape == ref.shape == (4, 600, 800)
    np.testing.assert_allclose(merged[:, :472, :672], ref[:, :472, :672], atol=1e-4)


def test_patch_preprocessing_applies_the_image_transform_per_patch(tmp_path, caplog):
    """The stain-normalisation hook: a per-patch transform on (3, h, w) uint8 before scaling to [0, 1];
    `stain_norm none` or a missing reference file gives no transform (the latter with a notice)."""
    from seunet_monai.apps.wsi import patch_stain_transform

    patches = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    seen = []

    def invert(p):
        seen.append(p.shape)
        return 255 - p

    out = PatchPreprocessing(invert)(patches)
    assert seen == [(3, 8, 8), (3, 8, 8)]
    torch.testing.assert_close(out, (255 - patches).float() / 255)
    assert patch_stain_transform("none", tmp_path / "missing.json") is None
    assert patch_stain_transform("auto", tmp_path / "missing.json") is None
    assert "stain normalisation skipped" in caplog.text and "missing.json" in caplog.text


def test_stain_reference_file_gives_a_channel_first_normaliser(tmp_path, tissue):
    from seunet_monai.apps.wsi import patch_stain_transform
    from seunet_monai.data.stain import DEFAULT_MAX_CONCENTRATIONS, DEFAULT_STAIN_MATRIX

    ref = tmp_path / "stain_reference.json"
    ref.write_text(json.dumps({"method": "macenko", "target_stain_matrix": DEFAULT_STAIN_MATRIX.tolist(),
                               "target_max_concentrations": DEFAULT_MAX_CONCENTRATIONS.tolist()}))
    normalise = patch_stain_transform("auto", ref)
    patch = np.ascontiguousarray(np.moveaxis(tissue[:64, :64], -1, 0))
    out = np.asarray(normalise(patch))
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8 and not np.array_equal(out, patch)


class CalibratedDarkBlobs(DarkBlobs):
    """DarkBlobs with a scale-fusion calibration (buffers as SEUNet's): head 1 best below scale 1, head 2 above."""

    def __init__(self) -> None:
        super().__init__()
        scales = torch.tensor([0.5, 1.0, 2.0])
        self.register_buffer("fusion_scales", scales)
        self.register_buffer("fusion_iou", torch.tensor([[0.8, 0.4], [0.6, 0.6], [0.4, 0.8]]))
        # signatures (margins, log object radii, consensus agreements): objects grow with the scale
        self.register_buffer("fusion_signature", torch.tensor([[0.9, 0.9, 1.0, 1.1, 0.9, 0.7],
                                                               [0.9, 0.9, 1.7, 1.8, 0.8, 0.8],
                                                               [0.9, 0.9, 2.4, 2.5, 0.7, 0.9]]))


def test_summary_reports_the_estimated_scale_per_region_when_calibrated(tmp_path, tissue):
    """Issue 15: the slide summary gives the calibrated scale estimate of every window run (a region)."""
    (tmp_path / "in").mkdir()
    write_pyramid(tmp_path / "in" / "slide.tif", embed(tissue, (1200, 1300)), mpp=0.5, levels=1)
    make_workflow(tmp_path / "in", tmp_path / "out", network=CalibratedDarkBlobs(), target_mpp=0.5).run()
    summary = json.loads((tmp_path / "out" / "slide_summary.json").read_text())
    regions = summary["scale"]["per_region"]
    assert regions["windows"] == summary["patches"]["run"] > 0
    assert sum(regions["histogram"].values()) == regions["windows"]
    p = regions["percentiles"]
    assert 0.5 <= p["p10"] <= p["median"] <= p["p90"] <= 2.0  # within the calibrated range
    assert summary["scale"]["estimated_scale_relative_to_training"] == p["median"]
    make_workflow(tmp_path / "in", tmp_path / "out2", target_mpp=0.5).run()  # uncalibrated: no per-region entry
    assert "per_region" not in json.loads((tmp_path / "out2" / "slide_summary.json").read_text())["scale"]


def _png_declaring_size(path: Path, width: int, height: int) -> None:
    """A small valid PNG whose header is rewritten to declare ``width`` x ``height`` (its data stays small)."""
    import struct
    import zlib

    from PIL import Image

    Image.new("RGB", (8, 8), (200, 100, 150)).save(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"IHDR")
    data[start + 4 : start + 12] = struct.pack(">II", width, height)
    data[start + 17 : start + 21] = struct.pack(">I", zlib.crc32(bytes(data[start : start + 17])))
    path.write_bytes(bytes(data))


def test_huge_png_is_refused_from_its_header_with_the_fix(tmp_path):
    from seunet_monai.apps.wsi import PILImageReader
    from seunet_monai.errors import ImageTooLargeError, SeunetError

    huge = tmp_path / "huge.png"
    _png_declaring_size(huge, 100_000, 80_000)  # 8 Gpx: decoding it would need ~32 GB
    with pytest.raises(ImageTooLargeError, match=r"100000 x 80000 PNG \(8000 Mpx\).*tiled pyramidal TIFF") as info:
        PILImageReader().read(huge)
    assert isinstance(info.value, SeunetError)
    small = tmp_path / "small.png"
    from PIL import Image

    Image.new("RGB", (20, 10), (10, 20, 30)).save(small)
    assert PILImageReader(max_pixels=200).read(small)["image"].shape == (10, 20, 3)
    with pytest.raises(ImageTooLargeError, match="0 Mpx that PNG/JPEG"):
        PILImageReader(max_pixels=199).read(small)


# ---------------------------------------------------------------------------------------------- resampling
@pytest.mark.parametrize("zoom", [1.25, 0.8])
def test_resampled_level_windows_tile_one_grid_and_follow_the_image(tmp_path, tissue, zoom):
    from scipy.ndimage import zoom as nd_zoom

    from seunet_monai.apps.wsi import ResampledLevelReader

    image = tissue[:300, :360]
    write_pyramid(tmp_path / "s.tif", image, mpp=0.3125)
    reader = ResampledLevelReader(TiffRegionReader(channel_dim=0), 0, zoom)
    wsi = reader.read(str(tmp_path / "s.tif"))
    h, w = reader.get_size(wsi, 0)
    assert (h, w) == (round(300 * zoom), round(360 * zoom))
    assert reader.get_mpp(wsi, 0) == pytest.approx((0.3125 / zoom,) * 2)
    assert reader.downsample_to_base(wsi) == pytest.approx(1 / zoom)
    assert reader.get_level_count(wsi) == 3 and reader.get_size(wsi, 2) == (150, 180)  # base levels as stored
    whole = reader.read_region(wsi, (0, 0), (h, w), 0)
    # windows anywhere (also beyond the border: white) are crops of one resampled grid: no seams when stitched
    for loc, size in (((37, 51), (64, 80)), ((h - 30, w - 20), (64, 64))):
        win = reader.read_region(wsi, loc, size, 0)
        inside = whole[loc[0] : loc[0] + size[0], loc[1] : loc[1] + size[1]]
        np.testing.assert_allclose(win[: inside.shape[0], : inside.shape[1]], inside, atol=1)
        assert (win[inside.shape[0] :] == 255).all() and (win[:, inside.shape[1] :] == 255).all()
    # and the grid is the image resampled (scipy's whole-image zoom, grid mode), away from the borders
    ref = nd_zoom(image.astype(np.float32), (zoom, zoom, 1), order=1, grid_mode=True, mode="grid-constant")
    inner = (slice(10, h - 10), slice(10, w - 10))
    err = np.abs(whole[inner].astype(np.float32) - ref[: h, : w][inner])
    assert err.mean() < (6.0 if zoom < 1 else 1.0)  # shrinking: Gaussian pre-smoothing against aliasing
    # the thumbnail (tissue detection, overlay) is read from a stored level at a non-integer factor and still
    # lies on the resampled grid (measured mean error 2.4 grey levels; 20 when misregistered)
    from skimage.transform import downscale_local_mean

    from seunet_monai.apps.wsi import read_thumbnail

    thumb, f = read_thumbnail(reader, wsi, 0, max_size=150)
    assert f > 1 and thumb.shape == (-(-h // f), -(-w // f), 3)
    ref = downscale_local_mean(whole.astype(np.float32), (f, f, 1))
    assert np.abs(thumb[:-1, :-1] - ref[: thumb.shape[0] - 1, : thumb.shape[1] - 1]).mean() < 5.0


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


def test_string_flags_from_the_command_line_are_parsed(tmp_path):
    from seunet_monai.errors import ConfigValueError

    wf = make_workflow(tmp_path, tmp_path / "out", overwrite="false", watershed="True")
    assert wf.overwrite is False and wf.watershed is True
    assert TissueWSISplitter([64, 64], reader=TiffRegionReader(), progress="false").progress is False
    with pytest.raises(ConfigValueError, match="overwrite must be true or false, got 'maybe'"):
        make_workflow(tmp_path, tmp_path / "out", overwrite="maybe")


# ---------------------------------------------------------------------------------------------- instances
def _tall_objects() -> np.ndarray:
    """Objects crossing many bands: a tall bar with two holes, a U open upwards (its arms meet 150 rows
    down), an inverted U (one top, two legs), a snake going down and back up, and small blobs."""
    m = np.zeros((240, 120), np.uint8)
    m[5:230, 5:15] = 1  # tall bar
    m[40:50, 8:12] = 0  # hole 1
    m[150:160, 8:12] = 0  # hole 2
    m[10:200, 25:29] = 1  # U: left arm
    m[10:200, 40:44] = 1  # U: right arm
    m[196:200, 25:44] = 1  # U: bottom joining the arms
    m[60:64, 50:70] = 1  # inverted U: top
    m[60:220, 50:54] = 1
    m[60:220, 66:70] = 1
    m[3:120, 80:83] = 1  # snake: down...
    m[117:120, 80:95] = 1
    m[30:120, 92:95] = 1  # ...and back up
    m[100:104, 105:109] = 1  # small blobs
    m[33:36, 110:118] = 1
    return m


@pytest.mark.parametrize("band,margin", [(32, 8), (50, 0), (1024, 128)])
def test_instances_are_whole_across_bands_and_keep_their_holes(band, margin):
    from skimage.measure import label, regionprops

    from seunet_monai.apps.wsi import iter_instances

    mask = _tall_objects()
    ref = sorted((r.area, r.bbox, round(1 - r.euler_number)) for r in regionprops(label(mask == 1, connectivity=1)))
    insts = list(iter_instances(mask, 2, band=band, margin=margin))
    assert len(insts) == len(ref) == 6
    got = []
    for inst in insts:
        xy = inst.polygon
        assert (xy[0] == xy[-1]).all() and all((h[0] == h[-1]).all() for h in inst.holes)
        bbox = (round(xy[:, 1].min()), round(xy[:, 0].min()), round(xy[:, 1].max()), round(xy[:, 0].max()))
        got.append((inst.area, bbox, len(inst.holes)))
    assert sorted(got) == ref  # same pixels, extents and number of holes as the components of the whole mask
    bar = max(insts, key=lambda i: i.area)
    assert len(bar.holes) == 2 and bar.area == 225 * 10 - 2 * 40

    def signed(ring):
        return 0.5 * float(np.dot(ring[:-1, 0], ring[1:, 1]) - np.dot(ring[1:, 0], ring[:-1, 1]))

    assert signed(bar.polygon) > 0 and all(signed(h) < 0 for h in bar.holes)  # exterior CCW, holes CW
    hole_area = sum(-signed(h) for h in bar.holes)
    assert signed(bar.polygon) - hole_area == pytest.approx(bar.area, rel=0.02)


def test_geojson_polygons_carry_interior_rings(tmp_path):
    from seunet_monai.apps.wsi import GeoJSONWriter, iter_instances

    writer = GeoJSONWriter(tmp_path / "x.geojson", ["background", "Nucleus"], scale=2.0, mpp=0.5)
    for inst in iter_instances(_tall_objects(), 2, band=32, margin=8):
        writer.add(inst)
    writer.close()
    features = json.loads((tmp_path / "x.geojson").read_text())["features"]
    rings = sorted(len(f["geometry"]["coordinates"]) for f in features)
    assert rings == [1, 1, 1, 1, 1, 3]  # the bar: exterior + 2 holes
    bar = next(f for f in features if len(f["geometry"]["coordinates"]) == 3)
    ys = np.asarray(bar["geometry"]["coordinates"][0])[:, 1]
    assert ys.min() == pytest.approx(10) and ys.max() == pytest.approx(460)  # rows 5..229, level-0 (x2)


def test_image_smaller_than_the_window_is_segmented(tmp_path, tissue):
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.fromarray(tissue[:96, :80]).save(tmp_path / "in" / "crop.png")
    make_workflow(tmp_path / "in", tmp_path / "big", roi=512).run()  # one window, larger than the image
    make_workflow(tmp_path / "in", tmp_path / "small", roi=64).run()
    big = tifffile.imread(tmp_path / "big" / "crop_mask.tif")
    small = tifffile.imread(tmp_path / "small" / "crop_mask.tif")
    assert big.shape == (96, 80) and 0.05 < (big == 1).mean() < 0.95
    assert (big == small).mean() >= 0.99


# ------------------------------------------------------------------- issue 25: resolution, lock, provenance
def _png(path: Path, image: np.ndarray, dpi: float | None = None) -> Path:
    from PIL import Image

    Image.fromarray(image).save(path, dpi=(dpi, dpi)) if dpi else Image.fromarray(image).save(path)
    return path


@pytest.mark.parametrize("kind", ["png_144_dpi", "tif_150_dpi", "tif_10_px_per_cm"])
def test_implausible_resolution_tags_are_ignored_with_one_message(tmp_path, tissue, caplog, kind):
    """Item 4: a screen dpi (144 dpi: 176 µm/px) was trusted and the image resampled x705 (days of work)."""
    (tmp_path / "in").mkdir()
    image = tissue[:96, :96]
    if kind == "png_144_dpi":
        name = _png(tmp_path / "in" / "a.png", image, dpi=144).name
    else:
        per_cm = kind == "tif_10_px_per_cm"
        tifffile.imwrite(tmp_path / "in" / "a.tif", image, photometric="rgb", resolution=(10, 10) if per_cm else (150, 150),
                         resolutionunit="CENTIMETER" if per_cm else "INCH")
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
    tifffile.imwrite(tmp_path / "in" / "coarse.tif", tissue[:64, :80], photometric="rgb", resolution=(2000, 2000),
                     resolutionunit="CENTIMETER")
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
    from seunet_monai.errors import ConfigValueError

    with pytest.raises(ConfigValueError, match="target_mpp must be a positive resolution"):
        make_workflow(tmp_path, tmp_path / "out", target_mpp=value)


def test_second_run_into_a_locked_output_folder_is_refused_naming_the_pid(tmp_path, tissue):
    """Item 5: two runs into one output folder mixed their outputs."""
    import subprocess
    import sys

    from seunet_monai.errors import RunLockedError

    (tmp_path / "in").mkdir()
    _png(tmp_path / "in" / "b.png", tissue[:64, :64])
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from seunet_monai.runtime.run_lock import lock_run_folders; "
         f"lock = lock_run_folders([{str(out)!r}]); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}.*--output_dir"):
            make_workflow(tmp_path / "in", out).run()
    finally:
        holder.communicate("", timeout=60)
    assert listing(out) == []
    assert make_workflow(tmp_path / "in", out).run()["done"] == ["b.png"]  # free again once the holder ended


def test_finished_outputs_of_other_settings_or_another_input_are_refused(tmp_path, tissue):
    """Item 6: re-running with other settings, or on a replaced input, skipped the old results."""
    (tmp_path / "in").mkdir()
    image = _png(tmp_path / "in" / "a.png", tissue[:96, :96])
    out = tmp_path / "out"
    torch.save(DarkBlobs().state_dict(), tmp_path / "model.pt")
    make_workflow(tmp_path / "in", out, checkpoint=tmp_path / "model.pt", bundle_version="9.9").run()
    prov = json.loads((out / "a_summary.json").read_text())["provenance"]
    assert prov["model_file"] == str((tmp_path / "model.pt").resolve()) and len(prov["model_sha256"]) == 64
    assert prov["bundle_version"] == "9.9" and prov["fusion"] == "pens" and prov["stain_normalisation"] == {"method": "none"}
    assert prov["settings"]["watershed"] is False and prov["settings"]["roi_size"] == [128, 128]
    assert prov["input_file"]["size_bytes"] == image.stat().st_size
    # the same settings: skipped
    same = make_workflow(tmp_path / "in", out, checkpoint=tmp_path / "model.pt")
    assert same.run()["skipped"] == ["a.png"]
    with pytest.raises(FileExistsError, match=r"a\.png.*watershed: False -> True.*--overwrite true"):
        make_workflow(tmp_path / "in", out, checkpoint=tmp_path / "model.pt", watershed=True).run()
    with pytest.raises(FileExistsError, match="model_sha256"):
        make_workflow(tmp_path / "in", out).run()  # another model (here: none)
    _png(image, tissue[100:196, :96])
    os.utime(image, ns=(1, 1))
    with pytest.raises(FileExistsError, match=r"input_file\.mtime_ns: \d+ -> 1"):
        make_workflow(tmp_path / "in", out, checkpoint=tmp_path / "model.pt").run()
    redo = make_workflow(tmp_path / "in", out, checkpoint=tmp_path / "model.pt", overwrite=True)
    assert redo.run()["done"] == ["a.png"]
    assert json.loads((out / "a_summary.json").read_text())["provenance"]["input_file"]["mtime_ns"] == 1


def test_stain_normalisation_and_its_reference_are_logged_and_recorded(tmp_path, tissue, caplog):
    """Item 7: the log and the summary name the stain reference used."""
    from seunet_monai.apps.wsi import patch_stain_transform
    from seunet_monai.data.stain import DEFAULT_MAX_CONCENTRATIONS, DEFAULT_STAIN_MATRIX

    ref = tmp_path / "ckpt" / "stain_reference.json"
    ref.parent.mkdir()
    ref.write_text(json.dumps({"method": "macenko", "target_stain_matrix": DEFAULT_STAIN_MATRIX.tolist(),
                               "target_max_concentrations": DEFAULT_MAX_CONCENTRATIONS.tolist()}))
    (tmp_path / "in").mkdir()
    _png(tmp_path / "in" / "a.png", tissue[:96, :96])
    caplog.set_level("INFO", logger="seunet_monai.apps.wsi.workflow")
    make_workflow(tmp_path / "in", tmp_path / "out", image_transform=patch_stain_transform("auto", ref)).run()
    assert f"stain normalisation: macenko to the reference {ref}" in caplog.text
    stain = json.loads((tmp_path / "out" / "a_summary.json").read_text())["provenance"]["stain_normalisation"]
    assert stain["method"] == "macenko" and stain["reference"] == str(ref)


def test_outputs_of_one_input_never_replace_those_of_another(tmp_path, tissue):
    """Item 8: `a_overlay.png` beside `a.png` overwrote `a`'s overlay. Such inputs are refused before any work,
    or their outputs are distinct; inputs with one output name (`a.png`, `a.tif`) are refused."""
    from seunet_monai.errors import ConfigValueError

    (tmp_path / "in").mkdir()
    _png(tmp_path / "in" / "a.png", tissue[:64, :64])
    _png(tmp_path / "in" / "a_overlay.png", tissue[64:128, :64])
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


def test_grey_images_are_segmented_with_a_brightness_tissue_detector(tmp_path, tissue, caplog):
    """Item 9: a grey image had no saturation, hence "tissue 0.0%" and 0 objects without a word."""
    (tmp_path / "in").mkdir()
    grey = tissue[:200, :200].mean(axis=-1).astype(np.uint8)
    _png(tmp_path / "in" / "g.png", embed(np.dstack([grey] * 3), (300, 300), (50, 50))[..., 0])
    make_workflow(tmp_path / "in", tmp_path / "out").run()
    summary = json.loads((tmp_path / "out" / "g_summary.json").read_text())
    assert 0.3 < summary["tissue"]["fraction"] < 0.7 and summary["nuclei"]["count"] > 5
    assert summary["tissue"]["detector"].startswith("otsu on brightness")
    assert "g.png: no colour" in caplog.text
    blank = np.full((64, 64, 3), 238, np.uint8)
    assert not detect_tissue(blank).any() and is_colourless(blank) and not is_colourless(tissue)


# ---------------------------------------------------------------------------------------------- names and pictures
def test_output_names_strip_the_whole_image_suffix():
    from seunet_monai.apps.wsi.outputs import OUTPUT_FILES, output_names, output_stem

    for name, stem in (("a.ome.tif", "a"), ("a.OME.TIFF", "a"), ("a.tiff", "a"), ("TCGA-01.2.svs", "TCGA-01.2"),
                       ("b.png", "b"), ("c.d.jpeg", "c.d")):
        assert output_stem(name) == stem, name
    image, slide = output_names("a", True), output_names("a", False)
    assert "a_mask.png" in image and "a_regions.png" not in image and "a.png" not in image
    assert "a_regions.png" in slide and "a_mask.png" not in slide
    assert image[-1] == slide[-1] == "a_summary.json"  # written last: marks a finished input
    assert sorted(output_names("a")) == sorted(f"a{s}" for s in OUTPUT_FILES)
    docs = (Path(__file__).resolve().parents[2] / "bundle" / "docs" / "README.md").read_text()
    assert [s for s in OUTPUT_FILES if f"- `NAME{s}`" not in docs] == []  # every output explained in the docs


def test_ome_tiff_outputs_are_named_without_the_ome_suffix(tmp_path, tissue):
    (tmp_path / "in").mkdir()
    write_pyramid(tmp_path / "in" / "slide.ome.tif", embed(tissue, (1100, 1300)), mpp=0.5, ome=True)
    make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.5).run()
    names = sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith("."))
    assert names == sorted(f"slide{s}" for s in ("_mask.tif", ".geojson", "_overlay.png", "_regions.png", "_heads.png",
                                                  "_scale.png", "_summary.json"))
    summary = json.loads((tmp_path / "out" / "slide_summary.json").read_text())
    assert set(summary["output_files"]) == set(summary["outputs"]) == set(names)
    assert all(summary["output_files"].values())  # every output explained
    assert make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.5).run()["skipped"] == ["slide.ome.tif"]


def test_outlines_are_two_pixels_wide_inside_the_object():
    from seunet_monai.apps.wsi import OKABE_ITO
    from seunet_monai.apps.wsi.figures import draw_outlines

    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    rgb = draw_outlines(np.zeros((20, 20, 3), np.uint8), mask, OKABE_ITO[0])
    drawn = (rgb == OKABE_ITO[0]).all(-1)
    assert drawn.sum() == 100 - 36 and not (drawn & ~mask).any()  # a 2-px ring inside the 10x10 square


def test_image_overlay_is_full_resolution_and_slide_pictures_crop_to_the_tissue(tmp_path, tissue):
    from PIL import Image

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


def test_winning_head_map_leaves_out_pixels_without_head_values(tmp_path):
    from seunet_monai.apps.wsi import RawMask, SlideAccumulator

    acc = SlideAccumulator(RawMask(tmp_path / "m.raw", (4, 8)), num_classes=2, factor=2)
    values = np.zeros((4, 4, 8), np.float32)  # 2 classes, then 2 heads
    values[1] = 1.0
    values[3] = 1.0  # head 2 wins
    values[2:, :, 4:] = np.nan  # no window interior for the right half
    acc(0, values, np.ones((4, 8), bool))
    assert acc.winner_map().tolist() == [[1, 1, -1, -1], [1, 1, -1, -1]]
    assert acc.winner_pixels.tolist() == [0, 16] and acc.head_confidence().tolist() == [0.0, 1.0]


def test_window_map_averages_the_windows_covering_each_cell():
    from seunet_monai.apps.wsi import window_map

    m = window_map([(0, 0), (0, 4)], [1.0, 2.0], (4, 8), 2, (3, 6))
    assert m[0].tolist() == [1.0, 1.0, 1.5, 1.5, 2.0, 2.0] and np.isnan(m[2]).all()
