"""Synthetic H&E-like histology: the embedded default dataset and a controlled scale-shift benchmark.

Images follow the Beer-Lambert model of bright-field microscopy with two stains,

    I_c(x) = I0_c * exp(-(C_H(x) * h_c + C_E(x) * e_c)),     c in {R, G, B},

where ``h`` and ``e`` are the optical-density (OD) vectors of haematoxylin and eosin (Ruifrok & Johnston 2001,
slightly perturbed per image to mimic staining variation) and ``C_H``, ``C_E`` are stain concentration maps
rendered from a random tissue (:class:`~seunet_monai.data.synthetic.tissue.Tissue`: region map, nuclei, texture
fields):

- *nuclei*: chromatin texture, a darker rim and (for tumour nuclei) a paler vesicular centre modulate ``C_H``;
  a later nucleus occludes an earlier one;
- *background textures* per class: wavy collagen bundles, thin fibres and pale cracks between bundles (stroma);
  mottled eosinophilic cytoplasm around each nucleus with faint cell borders on the Voronoi edges of the nuclei
  (tumour); pale blotchy debris with small nuclear fragments (necrosis); white fat cells with thin membranes on
  a Voronoi tessellation (other); sparse cytoplasm between dense small round lymphocytes (inflammatory);
- a small optical blur of the concentration maps and per-pixel acquisition noise on the intensities.

Labels are exact: the label is the geometric mask that was rendered. ``task="nuclei"`` gives 0 background /
1 nucleus on tissue made of tumour, stroma and inflammatory regions with a little fat (no necrosis: its nuclear
debris is not annotated as nuclei in MoNuSeg-like data); ``task="tissue"`` gives the region class
of every pixel, see :data:`~seunet_monai.data.synthetic.tissue.TISSUE_CLASSES` (nuclei are clipped to their own
region there, so every pixel's texture is decided by its label).

**Scale.** Every length is defined in *physical units* (one unit = one pixel at ``scale=1``) and the image is
rendered by sampling pixel centres at ``(i + 0.5) / scale``. All smooth textures are random-Fourier fields
evaluated analytically, so they are defined at any resolution; the nuclei are drawn by a Poisson process over
the physical field of view ``size / scale``. Hence ``scale=2`` shows the same tissue statistics at twice the
size (nucleus area x4, nuclei per pixel area /4), and with the same sample seed, ``(size=2N, scale=2)`` renders
the same tissue as ``(size=N, scale=1)`` magnified twice (only the per-pixel noise differs). Pixel noise is an
acquisition effect and is not scaled. The sizes are set so that one unit is roughly 1 µm (lymphocyte nuclei
~6 units across, tumour nuclei ~12): ``scale=1`` resembles a 10x scan, ``scale=2`` 20x and ``scale=4`` the 40x
of MoNuSeg (0.25 µm/pixel).

Deterministic: every sample is drawn from its own ``numpy.random.SeedSequence([seed, split, index])``
(:func:`~seunet_monai.data.synthetic.common.sample_seed`), so a split does not change when the count of another
one does.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from threadpoolctl import threadpool_limits

from seunet_monai.data.datalist import SPLITS, write_datalist
from seunet_monai.data.io import atomic_save_png
from seunet_monai.data.synthetic.common import (
    SYNTHETIC_MARKER,
    check_generator_arguments,
    publish_generated,
    sample_seed,
)
from seunet_monai.data.synthetic.tissue import (
    INFLAMMATORY,
    N_HARMONICS,
    NECROSIS,
    NUCLEUS_STATISTICS,
    STROMA,
    TISSUE_CLASSES,
    TUMOUR,
    Tissue,
    smoothstep,
)
from seunet_monai.runtime.files import atomic_write_json

__all__ = [
    "TASKS",
    "NUCLEI_CLASSES",
    "HEMATOXYLIN_OD",
    "EOSIN_OD",
    "class_names",
    "synthesize_sample",
    "make_synthetic_dataset",
]

TASKS = ("nuclei", "tissue")
#: Label values of ``task="nuclei"`` (``task="tissue"``: :data:`~seunet_monai.data.synthetic.tissue.TISSUE_CLASSES`).
NUCLEI_CLASSES = ("background", "nucleus")

#: Haematoxylin and eosin optical-density vectors (R, G, B), unit norm (Ruifrok & Johnston 2001).
HEMATOXYLIN_OD = np.array([0.650, 0.704, 0.286])
EOSIN_OD = np.array([0.072, 0.990, 0.105])


def class_names(task: str) -> tuple[str, ...]:
    """Class names indexed by label value for ``task`` (``"nuclei"`` or ``"tissue"``)."""
    _check_task(task)
    return NUCLEI_CLASSES if task == "nuclei" else TISSUE_CLASSES


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")


def _rasterise_nuclei(
    tissue: Tissue, xs: np.ndarray, ys: np.ndarray, region: np.ndarray, scale: float
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
    k = np.arange(2, 2 + N_HARMONICS)[:, None, None]
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
    tissue = Tissue(tissue_rng, extent, task)
    xs = ((np.arange(size) + 0.5) / scale).astype(np.float64)
    ys = xs.copy()

    region = tissue.regions_grid(xs, ys)
    inst, rho, nucleoli = _rasterise_nuclei(tissue, xs, ys, region, scale)

    # ---- background stain concentrations per region class
    fine, mid, coarse = tissue.fine.grid(xs, ys), tissue.mid.grid(xs, ys), tissue.coarse.grid(xs, ys)
    bundle = 1.0 - smoothstep(np.abs(tissue.bundles.grid(xs, ys)), 0.25, 1.0)
    fibre = np.exp(-((tissue.fibres.grid(xs, ys) / 0.3) ** 2))
    crack = smoothstep(tissue.cracks.grid(xs, ys), 1.1, 1.6)
    fib = (0.55 * bundle + 0.35 * fibre * (0.4 + 0.6 * bundle)) * (1.0 - 0.85 * crack)
    c_h = np.zeros((size, size), np.float32)
    c_e = np.zeros((size, size), np.float32)
    present = set(np.unique(region).tolist())
    for c in present:
        m = region == c
        if c == TUMOUR:
            e, hh = 0.30 + 0.07 * mid + 0.03 * fine, 0.10 + 0.03 * mid
        elif c == STROMA:
            e, hh = 0.12 + 0.5 * fib + 0.04 * coarse + 0.02 * fine, 0.03 + 0.01 * fine
        elif c == INFLAMMATORY:
            e, hh = 0.16 + 0.05 * mid + 0.03 * fine, 0.07 + 0.02 * mid
        elif c == NECROSIS:
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
        halo = ndimage.gaussian_filter(((cls[inst] == TUMOUR) & (inst > 0)).astype(np.float32), 3.0 * scale)
        c_e += 0.25 * halo * (region == TUMOUR)
        # faint cell borders between tumour cells: the Voronoi edges of the tumour nuclei centres
        centres = np.array([(n[0], n[1]) for n in tissue.nuclei if n[2] == TUMOUR])
        mt = region == TUMOUR
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
        ch_n *= 1.0 + 0.3 * smoothstep(r, 0.75, 1.0)
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

    The dataset is generated into a hidden sibling folder ``.<name>.partial-XXXX`` and renamed into place when
    complete, under :func:`~seunet_monai.data.synthetic.common.generation_lock`, so ``dst`` is never seen half
    written and two processes generating into the same ``dst`` do not mix their files (the second waits, then
    finds ``dst`` taken). A partial folder left by a killed run is removed by the next run.

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


def _write_dataset(dst: Path, params: dict[str, Any]) -> Path:
    """Generate the samples, the report and the datalist of ``params`` into the (new, empty) folder ``dst``."""
    task, size, scale, seed = params["task"], params["size"], params["scale"], params["seed"]
    counts = {"training": params["n_train"], "validation": params["n_val"], "test": params["n_test"]}
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
        "generator": "seunet_monai.data.synthetic.histology.make_synthetic_dataset",
        "parameters": params,
        "counts": {k: len(v) for k, v in splits.items()},
        "class_names": list(names),
        "label_fraction": (freq / max(int(freq.sum()), 1)).round(5).tolist(),
        "visible_nuclei": n_nuclei,
        "stain_od": {"hematoxylin": HEMATOXYLIN_OD.tolist(), "eosin": EOSIN_OD.tolist()},
        "nucleus_classes": {TISSUE_CLASSES[c]: asdict(p) for c, p in NUCLEUS_STATISTICS.items()},
    }
    atomic_write_json(dst / SYNTHETIC_MARKER, report)
    return write_datalist(dst, splits)
