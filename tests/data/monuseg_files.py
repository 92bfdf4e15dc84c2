"""Small MoNuSeg-like inputs for the annotation and preparation tests: Aperio XML of known polygons, the mask they
rasterise to, and the official or flat folder layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

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
    """The official MoNuSeg layout under ``root``: 64-px TIFF images, each with the XML of :data:`ALL_REGIONS`."""
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


def make_flat(root: Path, n=4, xml_for=(0, 1), png_for=(1, 2, 3), png_scale=255) -> Path:
    """Flat folders ``images``, ``annotations`` (XML for ``xml_for``) and ``masks`` (PNG for ``png_for``)."""
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
    return [
        "--images",
        str(root / "images"),
        "--annotations",
        str(root / "annotations"),
        "--masks",
        str(root / "masks"),
        "--dst",
        str(dst),
        "--tile",
        "32",
        "--stride",
        "32",
        "--stain-norm",
        "none",
        *extra,
    ]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def flat_kwargs(root: Path) -> dict:
    return {
        "images": root / "images",
        "annotations": root / "annotations",
        "masks": root / "masks",
        "tile": 32,
        "stride": 32,
        "stain_norm": "none",
    }
