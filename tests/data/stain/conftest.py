"""Synthetic H&E images with known stains for the stain tests: concentration maps rendered with a stain pair."""

from __future__ import annotations

import numpy as np

H = np.array([0.65, 0.70, 0.29])
E = np.array([0.07, 0.99, 0.11])
STAINS = np.stack([H / np.linalg.norm(H), E / np.linalg.norm(E)])
# a shifted stain pair (bluer haematoxylin, more orange eosin), as from another lab or scanner
H2 = np.array([0.80, 0.55, 0.25])
E2 = np.array([0.20, 0.90, 0.40])
SHIFTED = np.stack([H2 / np.linalg.norm(H2), E2 / np.linalg.norm(E2)])


def concentrations(size: int = 64, seed: int = 0) -> np.ndarray:
    """(size, size, 2) H and E concentrations: round nuclei (H) on eosin stroma, with a strip of glass.

    Stained as strongly as real H&E: MONAI's Macenko keeps only pixels whose optical density exceeds ``beta``
    in *every* channel, so on faint images (pure eosin has a red optical density near 0) its stain estimate
    degenerates; Vahadane is robust to that (measured while writing this test).
    """
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:size, :size]
    h = np.zeros((size, size))
    for _ in range(12):
        cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(3, 6)
        h = np.maximum(h, 2.0 * np.clip(1.5 - np.hypot(yy - cy, xx - cx) / r, 0, 1))
    e = (1.2 + 0.5 * rng.rand(size, size)) * (1 - 0.7 * h / 2.0)  # nuclei displace the eosin-stained stroma
    h = np.maximum(h, 0.3 + 0.1 * rng.rand(size, size))  # faint haematoxylin background, as in real stroma
    e[:, : size // 8] = 0.0  # glass
    h[:, : size // 8] = 0.0
    return np.stack([h, e], axis=-1)


def render(conc: np.ndarray, stains: np.ndarray) -> np.ndarray:
    """The uint8 RGB image of the concentrations ``(..., 2)`` under Beer-Lambert with ``stains`` ``(2, 3)``."""
    od = conc @ stains
    return np.clip(np.rint(255 * np.exp(-od)), 0, 255).astype(np.uint8)
