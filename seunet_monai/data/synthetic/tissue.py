"""The tissue model of the synthetic H&E generator, in physical coordinates (no pixels yet).

One unit of length is one pixel at ``scale=1`` (about 1 µm). A :class:`Tissue` holds

- a *region map*: the arg-max of a few smooth random fields, one per tissue class (:data:`TISSUE_CLASSES`), so
  regions are blob-shaped with smooth borders;
- *nuclei*: ellipses with a random-Fourier perturbed boundary ``r(phi) = 1 + sum_k A_k cos(k phi + psi_k)``
  (k = 2..5), varied size, elongation and orientation (:data:`NUCLEUS_STATISTICS`), placed by a Poisson process
  whose intensity depends on the region class, some attached to a previous nucleus so that they touch, with a
  hard-core rejection of large overlaps;
- the random fields of the background textures (collagen bundles, fibres and cracks along one fibre direction,
  fine/mid/coarse mottling) and the seeds of the fat-cell tessellation.

Every field is a :class:`FourierField`, an analytic function of physical position, so the same tissue can be
rendered at any resolution (:mod:`seunet_monai.data.synthetic.histology` renders it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "TISSUE_CLASSES",
    "TUMOUR",
    "STROMA",
    "INFLAMMATORY",
    "NECROSIS",
    "OTHER",
    "N_HARMONICS",
    "NucleusClass",
    "NUCLEUS_STATISTICS",
    "FourierField",
    "smoothstep",
    "Tissue",
]

#: The region classes, indexed by class id (the paper's five BCSS classes, same order as the BCSS preparation).
TISSUE_CLASSES = ("tumour", "stroma", "inflammatory", "necrosis", "other")
TUMOUR, STROMA, INFLAMMATORY, NECROSIS, OTHER = range(5)


@dataclass(frozen=True)
class NucleusClass:
    """Nucleus statistics of one tissue class, lengths in physical units (pixels at scale 1)."""

    density: float  # nuclei per 1000 unit^2 of this region
    radius: float  # median geometric-mean radius sqrt(a * b)
    radius_sigma: float  # lognormal sigma of the radius
    aspect: float  # median a / b
    aspect_sigma: float
    perturb: float  # boundary perturbation amplitude (k = 2 term; k-th term / k)
    darkness: float  # mean haematoxylin concentration
    vesicular: float  # paleness of the centre, 0..1
    aligned: bool  # orientation follows the stroma fibres


#: Nucleus statistics per region class.
NUCLEUS_STATISTICS = {
    TUMOUR: NucleusClass(6.5, 6.2, 0.22, 1.35, 0.20, 0.10, 1.00, 0.45, False),
    STROMA: NucleusClass(0.8, 3.8, 0.15, 3.20, 0.20, 0.05, 1.20, 0.00, True),
    INFLAMMATORY: NucleusClass(14.0, 3.0, 0.12, 1.10, 0.08, 0.04, 1.55, 0.00, False),
    NECROSIS: NucleusClass(6.0, 1.5, 0.35, 1.50, 0.30, 0.25, 1.35, 0.00, False),
    OTHER: NucleusClass(0.12, 3.0, 0.15, 2.50, 0.20, 0.05, 1.10, 0.00, False),
}
_MARGIN = 16.0  # physical margin around the field of view where nuclei may be centred
_TOUCH_P = 0.3  # probability that a candidate nucleus is attached to an earlier one
_MIN_SEP = 0.75  # centres closer than _MIN_SEP * (r_i + r_j) are rejected (touching allowed, little overlap)
#: Number of boundary harmonics of a nucleus (k = 2..5).
N_HARMONICS = 4


class FourierField:
    """A stationary Gaussian-like random field as a sum of random plane waves (random Fourier features).

    ``f(x, y) = sqrt(2 / J) * sum_j cos(kx_j x + ky_j y + phi_j)`` has zero mean and unit variance. Being an
    analytic function of physical position, it is the same field at every rendering scale. Evaluated on a grid
    through the identity cos(A + B) = cos A cos B - sin A sin B as two (H, J) @ (J, W) products.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        n: int,
        wavelength: tuple[float, float],
        direction: float | None = None,
        spread: float = 0.25,
    ) -> None:
        lam = np.exp(rng.uniform(np.log(wavelength[0]), np.log(wavelength[1]), n))
        if direction is None:
            ang = rng.uniform(0.0, np.pi, n)
        else:  # wave vectors perpendicular to `direction`: stripes run along it
            ang = direction + np.pi / 2 + rng.normal(0.0, spread, n)
        k = 2 * np.pi / lam
        self.kx, self.ky = k * np.cos(ang), k * np.sin(ang)
        self.phase = rng.uniform(0.0, 2 * np.pi, n)
        self.amp = np.sqrt(2.0 / n)

    def grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """The field on the grid ``ys x xs`` (physical coordinates), ``(H, W)`` float32."""
        ax = np.outer(self.kx, xs) + self.phase[:, None]  # (J, W)
        by = np.outer(self.ky, ys)  # (J, H)
        f = np.cos(by).T @ np.cos(ax) - np.sin(by).T @ np.sin(ax)
        return (self.amp * f).astype(np.float32)

    def points(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The field at the points ``(x[i], y[i])``, ``(N,)``."""
        return self.amp * np.cos(np.outer(x, self.kx) + np.outer(y, self.ky) + self.phase).sum(1)


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Cubic Hermite step from 0 at ``lo`` to 1 at ``hi``."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


class Tissue:
    """Random tissue in physical coordinates: region fields, textures and nuclei (no pixels yet).

    Args:
        rng: the tissue's random stream.
        extent: side of the field of view in physical units (``size / scale``).
        task: ``"nuclei"`` (tumour, stroma and inflammatory regions with a little fat, no necrosis) or
            ``"tissue"`` (all five classes alike).

    Attributes:
        nuclei: one tuple per nucleus in drawing order: ``(x, y, class, a, b, theta, amplitudes, phases,
            darkness, vesicular, nucleolus offset)``.
    """

    def __init__(self, rng: np.random.Generator, extent: float, task: str) -> None:
        self.task = task
        # nuclei task: no necrosis (its nuclear debris is not annotated as nuclei), and a little fat
        self.classes = (TUMOUR, STROMA, INFLAMMATORY, OTHER) if task == "nuclei" else tuple(range(5))
        if task == "nuclei":
            bias = {TUMOUR: 0.0, STROMA: 0.1, INFLAMMATORY: -0.3, OTHER: -1.0}
        else:
            bias = {TUMOUR: 0.0, STROMA: 0.0, INFLAMMATORY: 0.0, NECROSIS: 0.0, OTHER: 0.0}
        self.region_fields = [FourierField(rng, 12, (60.0, 180.0)) for _ in self.classes]
        self.region_bias = np.array([bias[c] for c in self.classes], np.float32)
        self.fibre_dir = float(rng.uniform(0, np.pi))
        # collagen: bundles (broad stripes), thin fibres inside them, and cracks between bundles, all running
        # along `fibre_dir` (random-field stripes are wavy because the wave vectors spread around the normal)
        self.bundles = FourierField(rng, 24, (12.0, 34.0), self.fibre_dir, 0.25)
        self.fibres = FourierField(rng, 32, (4.0, 10.0), self.fibre_dir, 0.3)
        self.cracks = FourierField(rng, 16, (14.0, 40.0), self.fibre_dir, 0.2)
        self.fine = FourierField(rng, 48, (2.2, 5.0))
        self.mid = FourierField(rng, 32, (5.0, 16.0))
        self.coarse = FourierField(rng, 16, (16.0, 60.0))
        # fat cells: Voronoi tessellation of a Poisson process (mean cell ~ 22 units across)
        lo, hi = -_MARGIN, extent + _MARGIN
        n_fat = rng.poisson((hi - lo) ** 2 / 22.0**2)
        self.fat_seeds = rng.uniform(lo, hi, (max(n_fat, 2), 2))
        self._draw_nuclei(rng, extent)

    def regions_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Region class at the points ``(x[i], y[i])``, ``(N,)``."""
        v = np.stack([f.points(x, y) for f in self.region_fields], 1) + self.region_bias
        return np.asarray(self.classes)[v.argmax(1)]

    def regions_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Region classes on the grid ``ys x xs``, ``(H, W)`` uint8."""
        v = np.stack([f.grid(xs, ys) for f in self.region_fields], 0) + self.region_bias[:, None, None]
        return np.asarray(self.classes, np.uint8)[v.argmax(0)]

    def _draw_nuclei(self, rng: np.random.Generator, extent: float) -> None:
        # All candidate parameters are drawn in bulk, so the random stream does not depend on acceptance.
        lo, hi = -_MARGIN, extent + _MARGIN
        dmax = max(NUCLEUS_STATISTICS[c].density for c in self.classes) / 1000.0
        n = int(rng.poisson(dmax * (hi - lo) ** 2))
        pos = rng.uniform(lo, hi, (n, 2))
        attach = rng.random(n) < _TOUCH_P
        parent_u = rng.random(n)
        attach_ang = rng.uniform(0, 2 * np.pi, n)
        attach_gap = rng.uniform(0.85, 1.0, n)
        z_r, z_asp, z_dark = rng.standard_normal((3, n))
        theta_u = rng.uniform(0, np.pi, n)
        theta_n = rng.normal(0, 0.15, n)
        harm = rng.standard_normal((n, 2, N_HARMONICS))
        nucleolus = rng.uniform(-0.35, 0.35, (n, 2))
        acc_u = rng.random(n)
        cls0 = self.regions_at(pos[:, 0], pos[:, 1]) if n else np.zeros(0, int)

        # Sequential hard-core rejection against the accepted nuclei, looked up in a grid of cells (a plain
        # list scan would be quadratic in the number of nuclei, which grows as (size / scale)^2).
        cell = 16.0
        grid: dict[tuple[int, int], list[int]] = {}
        cx, cy, r_list = [], [], []
        r_max = 0.0
        keep: list[tuple] = []
        harmonics = np.arange(2, 2 + N_HARMONICS)
        for i in range(n):
            x, y = float(pos[i, 0]), float(pos[i, 1])
            c = int(cls0[i])
            if attach[i] and cx:
                j = int(parent_u[i] * len(cx))
                cls_p = keep[j][0]
                r_guess = NUCLEUS_STATISTICS[cls_p].radius * math.exp(NUCLEUS_STATISTICS[cls_p].radius_sigma * z_r[i])
                d = (r_list[j] + r_guess) * attach_gap[i]
                x, y = cx[j] + d * math.cos(attach_ang[i]), cy[j] + d * math.sin(attach_ang[i])
                if not (lo <= x <= hi and lo <= y <= hi):
                    continue
                c = int(self.regions_at(np.array([x]), np.array([y]))[0])
            p = NUCLEUS_STATISTICS[c]
            if acc_u[i] >= p.density / 1000.0 / dmax:
                continue
            r = p.radius * math.exp(p.radius_sigma * z_r[i])
            reach = _MIN_SEP * (r + r_max)
            gx0, gx1 = math.floor((x - reach) / cell), math.floor((x + reach) / cell)
            gy0, gy1 = math.floor((y - reach) / cell), math.floor((y + reach) / cell)
            clash = any(
                math.hypot(cx[j] - x, cy[j] - y) < _MIN_SEP * (r_list[j] + r)
                for gx in range(gx0, gx1 + 1)
                for gy in range(gy0, gy1 + 1)
                for j in grid.get((gx, gy), ())
            )
            if clash:
                continue
            asp = max(1.0, p.aspect * math.exp(p.aspect_sigma * z_asp[i]))
            a, b = r * math.sqrt(asp), r / math.sqrt(asp)
            theta = self.fibre_dir + theta_n[i] if p.aligned else theta_u[i]
            amp = p.perturb * harm[i, 0] * 2.0 / harmonics
            psi = np.pi * harm[i, 1]
            dark = p.darkness * math.exp(0.12 * z_dark[i])
            grid.setdefault((math.floor(x / cell), math.floor(y / cell)), []).append(len(cx))
            cx.append(x)
            cy.append(y)
            r_list.append(r)
            r_max = max(r_max, r)
            keep.append((c, a, b, theta, amp, psi, dark, p.vesicular, nucleolus[i]))
        self.nuclei = [(cx[i], cy[i]) + keep[i] for i in range(len(keep))]
