"""Small BCSS-like inputs for the preparation tests: RGB regions and code masks named like the download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def code_mask(h: int = 48, w: int = 64) -> np.ndarray:
    """Codes laid out in 16 x 16 blocks; the top-left 16 x 32 tiles are all outside_roi (dropped)."""
    m = np.zeros((h, w), np.uint8)
    m[16:32, 0:16] = 1  # tumor
    m[16:32, 16:32] = 20  # dcis -> tumour
    m[16:32, 32:48] = 3  # lymphocytic -> inflammatory
    m[16:32, 48:64] = 10  # plasma cells -> inflammatory
    m[32:48, 0:16] = 2  # stroma
    m[32:48, 16:32] = 4  # necrosis
    m[32:48, 32:48] = 9  # fat -> other
    m[32:40, 48:64] = 7  # exclude -> ignore
    m[40:48, 48:64] = 6  # blood -> other
    m[0:16, 32:64] = 15  # undetermined -> ignore
    return m


def make_bcss(root: Path, names, size=(48, 64)) -> tuple[Path, Path]:
    """Folders ``images`` (random RGB) and ``masks`` (:func:`code_mask`) of the regions ``names``."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for n in names:
        Image.fromarray(rng.randint(100, 255, size=(*size, 3)).astype(np.uint8)).save(images / f"{n}.png")
        Image.fromarray(code_mask(*size)).save(masks / f"{n}.png")
    return images, masks


#: Region names of four training institutions, two regions of one slide, and two default test institutions.
NAMES = [
    "TCGA-A1-A0SK-DX1_xmin1_ymin2_MPP-0.2500",
    "TCGA-A2-A0CM-DX1_xmin1_ymin2_MPP-0.2500",
    "TCGA-A2-A0CM-DX1_xmin9_ymin9_MPP-0.2500",  # second region of the same slide
    "TCGA-BH-A0BG-DX1_xmin1_ymin2_MPP-0.2500",
    "TCGA-OL-A5D6-DX1_xmin1_ymin2_MPP-0.2500",  # default test institution
    "TCGA-E2-A14N-DX1_xmin1_ymin2_MPP-0.2500",  # default test institution
]
