"""Test helpers of the slide-inference tests: a stand-in network and small synthetic slides and images.

Slides are built with tifffile from a genuine MoNuSeg image (the ``tissue`` fixture of ``conftest.py`` skips when
../shared is absent): tiled, compressed, pyramidal TIFF (SubIFDs), OME-TIFF and an Aperio-SVS-like file, a few
thousand pixels at most. The network is a small deterministic stand-in with two heads (dark, blob-shaped regions
are "nuclei"), so the masks have real structure and every test runs in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

from seunet_monai.apps.wsi import SlideInferenceWorkflow, SlideInferer
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.runtime.run_lock import LOCK_NAME

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
MONUSEG = SHARED / "data" / "monuseg-train" / "images"
PINK, PURPLE = (240, 200, 220), (60, 30, 110)


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


class CalibratedDarkBlobs(DarkBlobs):
    """DarkBlobs with a scale-fusion calibration (buffers as SEUNet's): head 1 best below scale 1, head 2 above."""

    def __init__(self) -> None:
        super().__init__()
        scales = torch.tensor([0.5, 1.0, 2.0])
        self.register_buffer("fusion_scales", scales)
        self.register_buffer("fusion_iou", torch.tensor([[0.8, 0.4], [0.6, 0.6], [0.4, 0.8]]))
        # signatures (margins, log object radii, consensus agreements): objects grow with the scale
        self.register_buffer(
            "fusion_signature",
            torch.tensor(
                [[0.9, 0.9, 1.0, 1.1, 0.9, 0.7], [0.9, 0.9, 1.7, 1.8, 0.8, 0.8], [0.9, 0.9, 2.4, 2.5, 0.7, 0.9]]
            ),
        )


class DarkBlobsWithMap(DarkBlobs):
    """DarkBlobs predicting a separation map too (``aux_channels = 1``, both heads alike): high where the colour
    channel ``channel`` (0 red, 1 green) of the window exceeds 0.6, so that a test image draws the map: a green line
    across a nucleus as its boundary, red dots inside it as centres (both still dark enough to be nucleus)."""

    aux_channels = 1

    def __init__(self, channel: int = 1) -> None:
        super().__init__()
        self.channel = int(channel)

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        classes = super().forward_heads(x)
        extra = 40.0 * (x[:, self.channel : self.channel + 1] - 0.6)
        return torch.cat([classes, torch.stack([extra, extra], 1)], 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse_heads(self.head_outputs(self.forward_heads(x)))


class ThreeClasses(DarkBlobs):
    """The dark-blob stand-in with a third, never-winning class: a model without a single nucleus class."""

    out_channels = 3

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        two = super().forward_heads(x)
        return torch.cat([two, torch.full_like(two[:, :, :1], -100.0)], 2)


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
    w, h = image.shape[1], image.shape[0]
    desc = f"Aperio Image Library v12.0.0\r\n{w}x{h} [0,0 {w}x{h}] |AppMag = 40|MPP = {mpp}"
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(128, 128), compression="jpeg", photometric="rgb", description=desc, metadata=None)
        tif.write(
            image[::8, ::8], photometric="rgb", description="Aperio Image Library v12.0.0\r\nthumbnail", metadata=None
        )
        tif.write(
            image[::4, ::4].copy(),
            tile=(128, 128),
            compression="jpeg",
            photometric="rgb",
            description=desc,
            metadata=None,
        )


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


def png(path: Path, image: np.ndarray, dpi: float | None = None) -> Path:
    from PIL import Image

    Image.fromarray(image).save(path, dpi=(dpi, dpi)) if dpi else Image.fromarray(image).save(path)
    return path


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


def tall_objects() -> np.ndarray:
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


def nuclei_across_seams(shape=(400, 300), seams=64) -> np.ndarray:
    """A nucleus mask (bool) whose objects cross the seams of bands of ``seams`` rows: touching pairs of discs
    astride every seam, a chain of touching discs taller than the mask's bands and margins, rings around small
    holes (filled at 0.5 µm/px) holding a speck or a small nucleus that start on the first row of a band, and
    scattered discs."""
    from skimage.draw import disk

    m = np.zeros(shape, dtype=bool)
    for k, y in enumerate(range(seams, shape[0], seams)):
        x = 30 + (k * 53) % (shape[1] - 60)
        m[disk((y - 7, x), 9, shape=shape)] = True  # a pair astride the seam, one nucleus each side
        m[disk((y + 8, x + 3), 8, shape=shape)] = True
        m[disk((y, x + 40), 11, shape=shape)] = True  # a nucleus cut by the seam
    for y in range(20, 380, 14):  # a chain of touching discs, 360 rows tall
        m[disk((y, 280), 8, shape=shape)] = True
    ring = np.zeros(shape, dtype=bool)
    ring[disk((2 * seams, 150), 10, shape=shape)] = True
    ring[disk((2 * seams, 150), 3, shape=shape)] = False  # a hole of 29 px: 7 µm² at 0.5 µm/px
    ring[2 * seams, 150] = True  # a speck in the hole, its row the first of a band
    m |= ring
    y = 3 * seams  # a square ring whose 22-px hole (filled) holds a 4 x 5 px nucleus starting on a band's first row
    if y + 7 <= shape[0]:
        m[y - 3 : y + 7, 205:216] = True
        m[y - 1 : y + 5, 207:214] = False
        m[y : y + 4, 208:213] = True
    rng = np.random.default_rng(0)
    for _ in range(25):
        m[disk(tuple(rng.uniform(10, np.array(shape) - 10)), rng.uniform(4, 9), shape=shape)] = True
    return m


class CountingRows:
    """A mask read as a :class:`~seunet_monai.apps.wsi.accumulator.RawMask` is (``shape``, ``read_rows``),
    recording every read."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.reads: list[tuple[int, int]] = []

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        y0, y1 = max(0, int(y0)), min(self.shape[0], int(y1))
        self.reads.append((y0, y1))
        return self.array[y0:y1].copy()


def painted_image(mask: np.ndarray) -> np.ndarray:
    """An RGB image of a nucleus mask: pink background, dark purple nuclei (what :class:`DarkBlobs` segments)."""
    img = np.empty((*mask.shape, 3), np.uint8)
    img[:] = PINK
    img[mask] = PURPLE
    return img
