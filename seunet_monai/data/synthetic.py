"""Synthetic H&E-like histology: the embedded default dataset and a controlled scale-shift benchmark.

Images follow the Beer-Lambert model of bright-field microscopy with two stains,

    I_c(x) = I0_c * exp(-(C_H(x) * h_c + C_E(x) * e_c)),     c in {R, G, B},

where ``h`` and ``e`` are the optical-density (OD) vectors of haematoxylin and eosin (Ruifrok & Johnston 2001,
slightly perturbed per image to mimic staining variation) and ``C_H``, ``C_E`` are stain concentration maps.
The concentration maps are drawn from a tissue model:

- a *region map*: the arg-max of a few smooth random fields, one per tissue class (tumour, stroma,
  inflammatory infiltrate, necrosis, other/adipose), so regions are blob-shaped with smooth borders;
- *nuclei*: ellipses with a random-Fourier perturbed boundary ``r(phi) = 1 + sum_k A_k cos(k phi + psi_k)``
  (k = 2..5), varied size, elongation and orientation, placed by a Poisson process whose intensity depends on
  the region class, some attached to a previous nucleus so that they touch; a later nucleus occludes an earlier
  one. Chromatin texture, a darker rim and (for tumour nuclei) a paler vesicular centre modulate ``C_H``;
- *background textures* per class: wavy collagen bundles, thin fibres along the zero crossings of an oriented
  random field and pale cracks between bundles (stroma); mottled eosinophilic cytoplasm around each nucleus
  with faint cell borders on the Voronoi edges of the nuclei (tumour); pale blotchy debris with small nuclear
  fragments (necrosis); white fat cells with thin membranes on a Voronoi tessellation (other); sparse
  cytoplasm between dense small round lymphocytes (inflammatory);
- a small optical blur of the concentration maps and per-pixel acquisition noise on the intensities.

Labels are exact: the label is the geometric mask that was rendered. ``task="nuclei"`` gives 0 background /
1 nucleus on tissue made of tumour, stroma and inflammatory regions with a little fat (no necrosis: its nuclear
debris is not annotated as nuclei in MoNuSeg-like data); ``task="tissue"`` gives the region class
of every pixel, see :data:`TISSUE_CLASSES` (nuclei are clipped to their own region there, so every pixel's
texture is decided by its label).

**Scale.** Every length is defined in *physical units* (one unit = one pixel at ``scale=1``) and the image is
rendered by sampling pixel centres at ``(i + 0.5) / scale``. All smooth textures are random-Fourier fields
evaluated analytically, so they are defined at any resolution; the nuclei are drawn by a Poisson process over
the physical field of view ``size / scale``. Hence ``scale=2`` shows the same tissue statistics at twice the
size (nucleus area x4, nuclei per pixel area /4), and with the same sample seed, ``(size=2N, scale=2)`` renders
the same tissue as ``(size=N, scale=1)`` magnified twice (only the per-pixel noise differs). Pixel noise is an
acquisition effect and is not scaled. The sizes are set so that one unit is roughly 1 µm (lymphocyte nuclei
~6 units across, tumour nuclei ~12): ``scale=1`` resembles a 10x scan, ``scale=2`` 20x and ``scale=4`` the 40x
of MoNuSeg (0.25 µm/pixel).

Deterministic: every sample is drawn from its own ``numpy.random.SeedSequence([seed, split, index])``, so a
split does not change when the count of another one does.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from scipy import ndimage
from scipy.spatial import cKDTree
from threadpoolctl import threadpool_limits

from seunet_monai.data.datalist import SPLITS, write_datalist
from seunet_monai.data.io import atomic_save_png
from seunet_monai.runtime.files import atomic_write_json, ordinary_dir_mode, prepare_output_dir

__all__ = [
    "TASKS",
    "check_generator_arguments",
    "TISSUE_CLASSES",
    "NUCLEI_CLASSES",
    "HEMATOXYLIN_OD",
    "EOSIN_OD",
    "class_names",
    "sample_seed",
    "synthesize_sample",
    "make_synthetic_dataset",
    "generation_lock",
    "publish_generated",
    "SYNTHETIC_MARKER",
]

TASKS = ("nuclei", "tissue")
#: Label values of ``task="tissue"`` (the paper's five BCSS classes, same order as the BCSS preparation).
TISSUE_CLASSES = ("tumour", "stroma", "inflammatory", "necrosis", "other")
#: Label values of ``task="nuclei"``.
NUCLEI_CLASSES = ("background", "nucleus")

#: Haematoxylin and eosin optical-density vectors (R, G, B), unit norm (Ruifrok & Johnston 2001).
HEMATOXYLIN_OD = np.array([0.650, 0.704, 0.286])
EOSIN_OD = np.array([0.072, 0.990, 0.105])

_TUMOUR, _STROMA, _INFLAM, _NECROSIS, _OTHER = range(5)


@dataclass(frozen=True)
class _NucleusClass:
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


_NUCLEI = {
    _TUMOUR: _NucleusClass(6.5, 6.2, 0.22, 1.35, 0.20, 0.10, 1.00, 0.45, False),
    _STROMA: _NucleusClass(0.8, 3.8, 0.15, 3.20, 0.20, 0.05, 1.20, 0.00, True),
    _INFLAM: _NucleusClass(14.0, 3.0, 0.12, 1.10, 0.08, 0.04, 1.55, 0.00, False),
    _NECROSIS: _NucleusClass(6.0, 1.5, 0.35, 1.50, 0.30, 0.25, 1.35, 0.00, False),
    _OTHER: _NucleusClass(0.12, 3.0, 0.15, 2.50, 0.20, 0.05, 1.10, 0.00, False),
}
_MARGIN = 16.0  # physical margin around the field of view where nuclei may be centred
_TOUCH_P = 0.3  # probability that a candidate nucleus is attached to an earlier one
_MIN_SEP = 0.75  # centres closer than _MIN_SEP * (r_i + r_j) are rejected (touching allowed, little overlap)
_N_HARM = 4  # boundary harmonics k = 2..5
_IN_PROGRESS = ".synthetic_in_progress"  # present while make_synthetic_dataset writes


def class_names(task: str) -> tuple[str, ...]:
    """Class names indexed by label value for ``task`` (``"nuclei"`` or ``"tissue"``)."""
    _check_task(task)
    return NUCLEI_CLASSES if task == "nuclei" else TISSUE_CLASSES


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")


def sample_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed sequence of sample ``index`` of ``split`` (independent of the other splits' sizes)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    return np.random.SeedSequence([int(seed), SPLITS.index(split), int(index)])


# --------------------------------------------------------------------------------------------- random fields
class _FourierField:
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
        ax = np.outer(self.kx, xs) + self.phase[:, None]  # (J, W)
        by = np.outer(self.ky, ys)  # (J, H)
        f = np.cos(by).T @ np.cos(ax) - np.sin(by).T @ np.sin(ax)
        return (self.amp * f).astype(np.float32)

    def points(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.amp * np.cos(np.outer(x, self.kx) + np.outer(y, self.ky) + self.phase).sum(1)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


# --------------------------------------------------------------------------------------------- tissue model
class _Tissue:
    """Random tissue in physical coordinates: region fields, textures and nuclei (no pixels yet)."""

    def __init__(self, rng: np.random.Generator, extent: float, task: str) -> None:
        self.task = task
        # nuclei task: no necrosis (its nuclear debris is not annotated as nuclei), and a little fat
        self.classes = (_TUMOUR, _STROMA, _INFLAM, _OTHER) if task == "nuclei" else tuple(range(5))
        if task == "nuclei":
            bias = {_TUMOUR: 0.0, _STROMA: 0.1, _INFLAM: -0.3, _OTHER: -1.0}
        else:
            bias = {_TUMOUR: 0.0, _STROMA: 0.0, _INFLAM: 0.0, _NECROSIS: 0.0, _OTHER: 0.0}
        self.region_fields = [_FourierField(rng, 12, (60.0, 180.0)) for _ in self.classes]
        self.region_bias = np.array([bias[c] for c in self.classes], np.float32)
        self.fibre_dir = float(rng.uniform(0, np.pi))
        # collagen: bundles (broad stripes), thin fibres inside them, and cracks between bundles, all running
        # along `fibre_dir` (random-field stripes are wavy because the wave vectors spread around the normal)
        self.bundles = _FourierField(rng, 24, (12.0, 34.0), self.fibre_dir, 0.25)
        self.fibres = _FourierField(rng, 32, (4.0, 10.0), self.fibre_dir, 0.3)
        self.cracks = _FourierField(rng, 16, (14.0, 40.0), self.fibre_dir, 0.2)
        self.fine = _FourierField(rng, 48, (2.2, 5.0))
        self.mid = _FourierField(rng, 32, (5.0, 16.0))
        self.coarse = _FourierField(rng, 16, (16.0, 60.0))
        # fat cells: Voronoi tessellation of a Poisson process (mean cell ~ 22 units across)
        lo, hi = -_MARGIN, extent + _MARGIN
        n_fat = rng.poisson((hi - lo) ** 2 / 22.0**2)
        self.fat_seeds = rng.uniform(lo, hi, (max(n_fat, 2), 2))
        self._draw_nuclei(rng, extent)

    def regions_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        v = np.stack([f.points(x, y) for f in self.region_fields], 1) + self.region_bias
        return np.asarray(self.classes)[v.argmax(1)]

    def regions_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        v = np.stack([f.grid(xs, ys) for f in self.region_fields], 0) + self.region_bias[:, None, None]
        return np.asarray(self.classes, np.uint8)[v.argmax(0)]

    def _draw_nuclei(self, rng: np.random.Generator, extent: float) -> None:
        # All candidate parameters are drawn in bulk, so the random stream does not depend on acceptance.
        lo, hi = -_MARGIN, extent + _MARGIN
        dmax = max(_NUCLEI[c].density for c in self.classes) / 1000.0
        n = int(rng.poisson(dmax * (hi - lo) ** 2))
        pos = rng.uniform(lo, hi, (n, 2))
        attach = rng.random(n) < _TOUCH_P
        parent_u = rng.random(n)
        attach_ang = rng.uniform(0, 2 * np.pi, n)
        attach_gap = rng.uniform(0.85, 1.0, n)
        z_r, z_asp, z_dark = rng.standard_normal((3, n))
        theta_u = rng.uniform(0, np.pi, n)
        theta_n = rng.normal(0, 0.15, n)
        harm = rng.standard_normal((n, 2, _N_HARM))
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
        harmonics = np.arange(2, 2 + _N_HARM)
        for i in range(n):
            x, y = float(pos[i, 0]), float(pos[i, 1])
            c = int(cls0[i])
            if attach[i] and cx:
                j = int(parent_u[i] * len(cx))
                cls_p = keep[j][0]
                r_guess = _NUCLEI[cls_p].radius * math.exp(_NUCLEI[cls_p].radius_sigma * z_r[i])
                d = (r_list[j] + r_guess) * attach_gap[i]
                x, y = cx[j] + d * math.cos(attach_ang[i]), cy[j] + d * math.sin(attach_ang[i])
                if not (lo <= x <= hi and lo <= y <= hi):
                    continue
                c = int(self.regions_at(np.array([x]), np.array([y]))[0])
            p = _NUCLEI[c]
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


def _rasterise_nuclei(
    tissue: _Tissue, xs: np.ndarray, ys: np.ndarray, region: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise the nuclei at pixel centres.

    Returns the instance map (0 = none, i = i-th nucleus drawn), the normalised radius ``rho`` in [0, 1) inside
    nuclei (0 at the centre, 1 on the boundary) and a nucleolus intensity map (vesicular nuclei only).

    A pixel belongs to a nucleus when its centre lies inside the perturbed ellipse; later nuclei occlude earlier
    ones. Loops over nuclei (tens to hundreds), vectorised over the pixels of each nucleus' bounding box.
    """
    h, w = len(ys), len(xs)
    inst = np.zeros((h, w), np.int32)
    rho = np.zeros((h, w), np.float32)
    nucleoli = np.zeros((h, w), np.float32)
    k = np.arange(2, 2 + _N_HARM)[:, None, None]
    for idx, (x0, y0, c, a, b, theta, amp, psi, _dark, ves, nuc) in enumerate(tissue.nuclei, start=1):
        reach = a * (1.0 + np.abs(amp).sum())
        j0 = max(0, int(np.floor((x0 - reach) * scale - 0.5)))
        j1 = min(w, int(np.ceil((x0 + reach) * scale - 0.5)) + 1)
        i0 = max(0, int(np.floor((y0 - reach) * scale - 0.5)))
        i1 = min(h, int(np.ceil((y0 + reach) * scale - 0.5)) + 1)
        if j0 >= j1 or i0 >= i1:
            continue
        dx = xs[None, j0:j1] - x0
        dy = ys[i0:i1, None] - y0
        ct, st = np.cos(theta), np.sin(theta)
        u = (dx * ct + dy * st) / a
        v = (-dx * st + dy * ct) / b
        r0 = np.hypot(u, v)
        phi = np.arctan2(v, u)
        f = 1.0 + (amp[:, None, None] * np.cos(k * phi[None] + psi[:, None, None])).sum(0)
        f = np.maximum(f, 0.5)
        inside = r0 < f
        if tissue.task == "tissue":
            inside &= region[i0:i1, j0:j1] == c
        if not inside.any():
            continue
        inst[i0:i1, j0:j1][inside] = idx
        rho[i0:i1, j0:j1][inside] = (r0 / f)[inside]
        if ves > 0:  # a nucleolus of radius 0.2 (normalised) at a random offset from the centre
            dn = np.exp(-(((u - nuc[0]) ** 2 + (v - nuc[1]) ** 2) / 0.2**2))
            nucleoli[i0:i1, j0:j1][inside] = dn[inside]
    return inst, rho, nucleoli


def synthesize_sample(
    rng: np.random.Generator | np.random.SeedSequence | int,
    size: int = 128,
    scale: float = 1.0,
    task: str = "nuclei",
    return_instances: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate one H&E-like image and its exact label in memory.

    Args:
        rng: a ``numpy.random.Generator`` (three child streams are spawned from it: tissue, stain, noise), or
            a seed / ``SeedSequence`` to build one.
        size: height and width in pixels (>= 8).
        scale: magnification; every length is multiplied by it (> 0).
        task: ``"nuclei"`` (labels 0 background / 1 nucleus) or ``"tissue"`` (labels 0..4, see
            :data:`TISSUE_CLASSES`).
        return_instances: also return the instance map.

    Returns:
        ``(image, label)``: ``(size, size, 3) uint8`` RGB and ``(size, size) uint8`` class ids; with
        ``return_instances`` a third ``(size, size) int32`` instance map (0 = no nucleus; ids follow the drawing
        order, so ids of nuclei that are hidden or outside the image are absent and the ids of one tissue
        agree between renderings of the same field of view at different scales; for ``"tissue"`` nuclei of
        every class are numbered).
    """
    _check_task(task)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8 pixels, got {size!r}.")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}.")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    # Small matrix products below: a multi-threaded BLAS is ~100x slower than one thread on a busy machine.
    with threadpool_limits(1, user_api="blas"):
        return _synthesize(rng, int(size), float(scale), task, return_instances)


def _synthesize(
    rng: np.random.Generator, size: int, scale: float, task: str, return_instances: bool
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    tissue_rng, stain_rng, noise_rng = rng.spawn(3)

    extent = size / scale
    tissue = _Tissue(tissue_rng, extent, task)
    xs = ((np.arange(size) + 0.5) / scale).astype(np.float64)
    ys = xs.copy()

    region = tissue.regions_grid(xs, ys)
    inst, rho, nucleoli = _rasterise_nuclei(tissue, xs, ys, region, scale)

    # ---- background stain concentrations per region class
    fine, mid, coarse = tissue.fine.grid(xs, ys), tissue.mid.grid(xs, ys), tissue.coarse.grid(xs, ys)
    bundle = 1.0 - _smoothstep(np.abs(tissue.bundles.grid(xs, ys)), 0.25, 1.0)
    fibre = np.exp(-((tissue.fibres.grid(xs, ys) / 0.3) ** 2))
    crack = _smoothstep(tissue.cracks.grid(xs, ys), 1.1, 1.6)
    fib = (0.55 * bundle + 0.35 * fibre * (0.4 + 0.6 * bundle)) * (1.0 - 0.85 * crack)
    c_h = np.zeros((size, size), np.float32)
    c_e = np.zeros((size, size), np.float32)
    present = set(np.unique(region).tolist())
    for c in present:
        m = region == c
        if c == _TUMOUR:
            e, hh = 0.30 + 0.07 * mid + 0.03 * fine, 0.10 + 0.03 * mid
        elif c == _STROMA:
            e, hh = 0.12 + 0.5 * fib + 0.04 * coarse + 0.02 * fine, 0.03 + 0.01 * fine
        elif c == _INFLAM:
            e, hh = 0.16 + 0.05 * mid + 0.03 * fine, 0.07 + 0.02 * mid
        elif c == _NECROSIS:
            e, hh = 0.40 + 0.12 * coarse + 0.08 * mid, 0.13 + 0.05 * coarse + 0.03 * fine
        else:  # other: adipose tissue, white fat cells with thin eosinophilic membranes
            gy, gx = np.nonzero(m)
            d, _ = cKDTree(tissue.fat_seeds).query(np.stack([xs[gx], ys[gy]], 1), k=2)
            membrane = np.exp(-(((d[:, 1] - d[:, 0]) / 0.9) ** 2))
            e_m = 0.02 + 0.45 * membrane + 0.02 * fine[m]
            c_e[m] = e_m
            c_h[m] = 0.01 + 0.03 * membrane
            continue
        c_e[m], c_h[m] = e[m], hh[m]
    # cytoplasm of tumour cells: eosinophilic halo around tumour nuclei
    if tissue.nuclei:
        cls = np.array([0] + [n[2] for n in tissue.nuclei])
        halo = ndimage.gaussian_filter(((cls[inst] == _TUMOUR) & (inst > 0)).astype(np.float32), 3.0 * scale)
        c_e += 0.25 * halo * (region == _TUMOUR)
        # faint cell borders between tumour cells: the Voronoi edges of the tumour nuclei centres
        centres = np.array([(n[0], n[1]) for n in tissue.nuclei if n[2] == _TUMOUR])
        mt = region == _TUMOUR
        if len(centres) >= 2 and mt.any():
            gy, gx = np.nonzero(mt)
            d, _ = cKDTree(centres).query(np.stack([xs[gx], ys[gy]], 1), k=2)
            c_e[mt] += 0.12 * np.exp(-(((d[:, 1] - d[:, 0]) / 0.8) ** 2))

        # ---- nuclei: chromatin texture, darker rim, paler vesicular centre
        dark = np.array([0.0] + [n[8] for n in tissue.nuclei], np.float32)
        ves = np.array([0.0] + [n[9] for n in tissue.nuclei], np.float32)
        m = inst > 0
        r = rho[m]
        ch_n = dark[inst[m]] * (0.82 + 0.18 * fine[m]) * (1.0 - ves[inst[m]] * (1.0 - r**2) * 0.6)
        ch_n *= 1.0 + 0.3 * _smoothstep(r, 0.75, 1.0)
        ch_n += 0.9 * nucleoli[m]
        c_h[m] = ch_n
        c_e[m] = 0.10 + 0.03 * mid[m]
    np.clip(c_h, 0.0, None, out=c_h)
    np.clip(c_e, 0.0, None, out=c_e)

    # ---- optics: blur of the concentration maps (0.5 units), then Beer-Lambert and acquisition noise
    c_h = ndimage.gaussian_filter(c_h, 0.5 * scale, mode="reflect")
    c_e = ndimage.gaussian_filter(c_e, 0.5 * scale, mode="reflect")
    h_od = np.abs(HEMATOXYLIN_OD + stain_rng.normal(0, 0.03, 3))
    e_od = np.abs(EOSIN_OD + stain_rng.normal(0, 0.03, 3))
    h_od /= np.linalg.norm(h_od)
    e_od /= np.linalg.norm(e_od)
    s_h, s_e = stain_rng.uniform(0.85, 1.15, 2)
    i0 = np.clip(246.0 + stain_rng.normal(0, 3.0, 3), 225, 255)
    od = (s_h * c_h)[..., None] * h_od + (s_e * c_e)[..., None] * e_od
    img = i0 * np.exp(-od) + noise_rng.normal(0, 2.0, (size, size, 3))
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    label = (inst > 0).astype(np.uint8) if task == "nuclei" else region.astype(np.uint8)
    if return_instances:
        return image, label, inst
    return image, label


# --------------------------------------------------------------------------------------------- dataset
SYNTHETIC_MARKER = "synthetic_report.json"
"""The file that marks a folder written by :func:`make_synthetic_dataset` (only such a folder is replaced)."""


def generation_lock(dst: str | os.PathLike) -> Any:
    """The inter-process lock that serialises every generation into ``dst``: a ``filelock.FileLock`` on the
    hidden sibling file ``.<name>.lock`` (``dst`` itself may not exist yet). Re-entrant within a process.

    Use as a context manager: ``with generation_lock(dst): ...``.
    """
    dst = Path(dst).expanduser().absolute()
    dst.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(dst.parent / f".{dst.name}.lock"), is_singleton=True)


def _check_replaceable(dst: Path, overwrite: bool) -> None:
    """Refuse, before any work, a non-empty ``dst`` without ``overwrite`` or one this generator did not write."""
    if dst.exists() and not dst.is_dir():
        raise FileExistsError(f"output path {dst} exists and is not a folder.")
    cwd = Path.cwd().resolve()
    if dst.resolve() == cwd or dst.resolve() in cwd.parents:
        raise ValueError(f"output folder {dst} is (or contains) the working directory; choose a folder inside it.")
    if dst.is_dir() and any(dst.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"output folder {dst} is not empty; choose another folder or pass overwrite=True (--overwrite) "
                "to replace a synthetic dataset written there earlier."
            )
        if not (dst / SYNTHETIC_MARKER).is_file():
            raise ValueError(
                f"refusing to replace {dst}: it has no {SYNTHETIC_MARKER}, so it was not written by the synthetic "
                "generator (raw or prepared data?); choose an empty or new folder."
            )


def _remove_stale_partials(dst: Path) -> None:
    """Remove the partial folders of interrupted generations into ``dst`` (call under :func:`generation_lock`).

    Only hidden siblings named ``.<name>.partial-*`` that hold the in-progress marker are removed.
    """
    for old in dst.parent.glob(f".{dst.name}.partial-*"):
        if old.is_dir() and not old.is_symlink() and (old / _IN_PROGRESS).is_file():
            shutil.rmtree(old)


def _new_partial_folder(dst: Path) -> Path:
    """A new hidden sibling of ``dst`` to generate into, with the permissions of an ordinary new folder."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    tmp.chmod(ordinary_dir_mode())  # mkdtemp makes 0700; the renamed folder is the dataset
    return tmp



def check_generator_arguments(counts: dict[str, Any], size: Any, scale: Any, seed: Any, unit: str) -> float:
    """Validate the arguments shared by the synthetic generators (2D and 3D); returns ``scale`` as a float.

    Args:
        counts: number of items per split name (integers >= 0).
        size: image side (integer >= 8).
        scale: magnification (positive, finite).
        seed: random seed (integer >= 0).
        unit: what an item is called in messages ("samples", "volumes").

    Raises:
        ValueError: naming the first bad argument.
    """
    for name, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"number of {name} {unit} must be an integer >= 0, got {n!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}.")
    value = float(scale)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")
    return value

def make_synthetic_dataset(
    dst: str | os.PathLike,
    task: str = "nuclei",
    n_train: int = 16,
    n_val: int = 4,
    n_test: int = 4,
    size: int = 128,
    scale: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset in the ``datalist.json`` layout.

    Writes ``dst/images/<split>_<index>.png`` (RGB uint8), ``dst/labels/<split>_<index>.png`` (uint8 class ids),
    ``dst/synthetic_report.json`` (parameters, counts, class names, label frequencies; it marks the folder as
    generated here) and, last, ``dst/datalist.json``.

    The dataset is generated into a hidden sibling folder ``.<name>.partial-XXXX`` and renamed into place
    when complete, under :func:`generation_lock`, so ``dst`` is never seen half written and two processes
    generating into the same ``dst`` do not mix their files (the second waits, then finds ``dst`` taken). A
    partial folder left by a killed run is removed by the next run.

    Args:
        dst: output folder; must be missing or empty, unless ``overwrite`` and it holds a dataset written
            by this function (``synthetic_report.json``). Any other folder is never replaced.
        task: ``"nuclei"`` or ``"tissue"``.
        n_train: number of ``training`` samples (>= 0).
        n_val: number of ``validation`` samples (>= 0).
        n_test: number of ``test`` samples (>= 0).
        size: image height and width in pixels (>= 8).
        scale: magnification of every length (> 0); see the module docstring.
        seed: base seed; sample ``i`` of a split uses ``SeedSequence([seed, split_index, i])``.
        overwrite: replace a synthetic dataset in ``dst``.

    Returns:
        the path of the written ``datalist.json``.

    Raises:
        ValueError: for a bad argument, or a non-empty ``dst`` not written by this function.
        FileExistsError: when ``dst`` is not empty and ``overwrite`` is false.
    """
    _check_task(task)
    counts = {"training": n_train, "validation": n_val, "test": n_test}
    scale = check_generator_arguments(counts, size, scale, seed, "samples")
    params = {"task": task, "n_train": int(n_train), "n_val": int(n_val), "n_test": int(n_test),
              "size": int(size), "scale": scale, "seed": int(seed)}  # fmt: skip
    return publish_generated(dst, overwrite, lambda tmp: _write_dataset(tmp, params))


def publish_generated(dst: str | os.PathLike, overwrite: bool, write: Callable[[Path], Any]) -> Path:
    """Generate a dataset into ``dst`` atomically (both synthetic generators): under :func:`generation_lock`,
    ``write(tmp)`` fills a new hidden partial folder beside ``dst``, which then replaces ``dst`` (only when it is
    missing, empty, or a synthetic dataset and ``overwrite``); a failure removes the partial folder.

    Returns:
        the path of the written ``datalist.json``.

    Raises:
        ValueError / FileExistsError: as :func:`make_synthetic_dataset` (``dst`` not replaceable).
    """
    dst = Path(dst).expanduser().absolute()
    _check_replaceable(dst, overwrite)
    with generation_lock(dst):
        _check_replaceable(dst, overwrite)  # again: another process may have written dst while we waited
        _remove_stale_partials(dst)
        tmp = _new_partial_folder(dst)
        try:
            write(tmp)
            prepare_output_dir(dst, overwrite=overwrite, marker=SYNTHETIC_MARKER)
            dst.rmdir()  # empty now; os.replace of a folder needs a missing or empty target
            os.replace(tmp, dst)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dst / "datalist.json"


def _write_dataset(dst: Path, params: dict[str, Any]) -> Path:
    """Generate the samples, the report and the datalist of ``params`` into the (new, empty) folder ``dst``."""
    task, size, scale, seed = params["task"], params["size"], params["scale"], params["seed"]
    counts = {"training": params["n_train"], "validation": params["n_val"], "test": params["n_test"]}
    marker = dst / _IN_PROGRESS
    atomic_write_json(marker, params)
    names = class_names(task)
    freq = np.zeros(len(names), np.int64)
    splits: dict[str, list[dict[str, str]]] = {}
    n_nuclei = 0
    for split in SPLITS:
        entries = []
        for i in range(int(counts[split])):
            rng = np.random.default_rng(sample_seed(seed, split, i))
            image, label, inst = synthesize_sample(rng, size=size, scale=scale, task=task, return_instances=True)
            stem = f"{split}_{i:04d}.png"
            atomic_save_png(dst / "images" / stem, image)
            atomic_save_png(dst / "labels" / stem, label)
            freq += np.bincount(label.ravel(), minlength=len(names))[: len(names)]
            n_nuclei += int(len(np.unique(inst)) - 1)
            entries.append({"image": f"images/{stem}", "label": f"labels/{stem}"})
        splits[split] = entries

    report: dict[str, Any] = {
        "generator": "seunet_monai.data.synthetic.make_synthetic_dataset",
        "parameters": params,
        "counts": {k: len(v) for k, v in splits.items()},
        "class_names": list(names),
        "label_fraction": (freq / max(int(freq.sum()), 1)).round(5).tolist(),
        "visible_nuclei": n_nuclei,
        "stain_od": {"hematoxylin": HEMATOXYLIN_OD.tolist(), "eosin": EOSIN_OD.tolist()},
        "nucleus_classes": {TISSUE_CLASSES[c]: asdict(p) for c, p in _NUCLEI.items()},
    }
    atomic_write_json(dst / SYNTHETIC_MARKER, report)
    path = write_datalist(dst, splits)
    marker.unlink()
    return path
