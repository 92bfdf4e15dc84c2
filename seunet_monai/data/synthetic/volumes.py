"""Synthetic fluorescence-like 3D nuclei: the embedded default dataset of the bundle's volume variant.

A sample is a stack of a nuclear stain (DAPI/Hoechst-like): ellipsoidal nuclei of varied size and orientation
with a smooth chromatin texture, blurred by an axially elongated point-spread function, on a dim background,
with Poisson (shot) and Gaussian (read) noise. The label is the 0/1 mask of the nuclei.

**Geometry.** Arrays are ``(X, Y, Z)``, the axis order of NIfTI and of MONAI's ``NibabelReader``/``ITKReader``;
``Z`` is the axial (optical) axis. Every length is defined in *physical units* (one unit = one voxel at
``scale=1`` with isotropic spacing, roughly 0.5 µm: nuclei are 7-14 units across). ``scale`` magnifies every
length (``scale=2``: nuclei twice as large in voxels, as a higher magnification), like the 2D generator
(:mod:`seunet_monai.data.synthetic.histology`). ``spacing`` gives the voxel size per axis in those units at ``scale=1``;
an axial spacing above 1 (e.g. ``(1, 1, 2)``) samples fewer, thicker slices, as confocal and light-sheet
stacks usually do. The written NIfTI files carry the spacing (``spacing / scale``) in their affine and header.

**Noise.** Pixel noise is an acquisition effect and is not scaled: ``photons`` sets the expected photon count
at full brightness (lower: noisier).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from scipy import ndimage

from seunet_monai.data.datalist import SPLITS, write_datalist
from seunet_monai.data.synthetic.common import (
    SYNTHETIC_MARKER,
    check_generator_arguments,
    publish_generated,
    sample_seed,
)
from seunet_monai.runtime.files import atomic_write_bytes, atomic_write_json

__all__ = ["VOLUME_SUFFIX", "make_synthetic_volumes", "save_nifti", "synthesize_volume"]

VOLUME_SUFFIX = ".nii.gz"
_RADIUS = (3.5, 7.0)  # nucleus semi-axis range (physical units) before the per-axis elongation
_ELONGATION = (0.7, 1.3)  # per-axis factor of the semi-axes (varied shapes)
_DENSITY = 0.18  # expected fraction of the volume covered by nuclei (before rejections)
_PSF_SIGMA = (0.8, 0.8, 1.6)  # blur (physical units) along X, Y, Z: the axial PSF is longer


def _as_triple(value: float | Sequence[float], name: str) -> tuple[float, float, float]:
    v = (value,) * 3 if isinstance(value, (int, float, np.integer, np.floating)) else tuple(value)
    if len(v) != 3 or any(isinstance(x, bool) or not np.isfinite(float(x)) or float(x) <= 0 for x in v):
        raise ValueError(f"{name} must be a positive number or three positive numbers, got {value!r}.")
    return tuple(float(x) for x in v)  # type: ignore[return-value]


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation (QR of a Gaussian matrix with the sign fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def synthesize_volume(
    rng: np.random.Generator,
    size: int | Sequence[int] = 48,
    scale: float = 1.0,
    spacing: float | Sequence[float] = 1.0,
    photons: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One fluorescence-like volume and its nucleus mask.

    Args:
        rng: random generator (the sample's content).
        size: voxels per axis ``(X, Y, Z)`` (an int: the same for every axis; each >= 8).
        scale: magnification of every length (> 0).
        spacing: voxel size per axis in physical units at ``scale=1`` (an axial spacing > 1: thicker slices).
        photons: expected photon count at full brightness (Poisson noise; > 0).

    Returns:
        ``(image, label)``: ``(X, Y, Z)`` ``float32`` intensities in about ``[0, 1]`` and ``uint8`` 0/1 mask.
    """
    shape = tuple(int(s) for s in ((size,) * 3 if isinstance(size, (int, np.integer)) else size))
    if len(shape) != 3 or any(s < 8 for s in shape):
        raise ValueError(f"size must be an integer >= 8 or three of them, got {size!r}.")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}.")
    if not (np.isfinite(photons) and photons > 0):
        raise ValueError(f"photons must be a positive number, got {photons!r}.")
    step = np.asarray(_as_triple(spacing, "spacing")) / float(scale)  # physical size of one voxel
    extent = np.asarray(shape) * step
    coords = [(np.arange(n) + 0.5) * d for n, d in zip(shape, step)]  # voxel centres (physical)

    mean_volume = 4.0 / 3.0 * np.pi * np.mean(_RADIUS) ** 3
    n_nuclei = max(1, int(rng.poisson(_DENSITY * float(np.prod(extent)) / mean_volume)))
    label = np.zeros(shape, np.uint8)
    signal = np.zeros(shape, np.float32)
    centres: list[tuple[np.ndarray, float]] = []
    for _ in range(n_nuclei * 4):  # candidates; overlapping ones are rejected
        if len(centres) >= n_nuclei:
            break
        radius = rng.uniform(*_RADIUS)
        axes = radius * rng.uniform(*_ELONGATION, size=3)
        centre = rng.uniform(-0.5 * radius, extent + 0.5 * radius)
        if any(np.linalg.norm(centre - c) < 0.8 * (axes.max() + r) for c, r in centres):
            continue
        centres.append((centre, float(axes.max())))
        rot = _random_rotation(rng)
        lo = [max(0, int(np.floor((centre[a] - axes.max()) / step[a]))) for a in range(3)]
        hi = [min(shape[a], int(np.ceil((centre[a] + axes.max()) / step[a])) + 1) for a in range(3)]
        if any(h <= lo_ for lo_, h in zip(lo, hi)):
            continue
        grid = np.stack(np.meshgrid(*[coords[a][lo[a] : hi[a]] - centre[a] for a in range(3)], indexing="ij"), -1)
        local = grid @ rot  # coordinates in the nucleus frame
        rho = np.sqrt(np.sum((local / axes) ** 2, axis=-1))
        inside = rho <= 1.0
        box = tuple(slice(lo[a], hi[a]) for a in range(3))
        label[box] |= inside.astype(np.uint8)
        brightness = rng.uniform(0.55, 1.0)
        texture = 1.0 + 0.25 * np.cos(local @ rng.normal(scale=0.9, size=3) + rng.uniform(0, 2 * np.pi))
        signal[box] = np.maximum(signal[box], (inside * brightness * texture * (1.0 - 0.3 * rho**2)).astype(np.float32))
    blur = [s / d for s, d in zip(_PSF_SIGMA, step)]  # PSF in voxels: wider where the voxels are smaller
    image = ndimage.gaussian_filter(signal, blur, mode="constant") + 0.06
    counts = rng.poisson(np.clip(image, 0, None) * photons).astype(np.float32)
    image = counts / photons + rng.normal(0.0, 0.01, size=shape).astype(np.float32)
    return np.clip(image, 0.0, None).astype(np.float32), label


def save_nifti(path: str | os.PathLike, array: np.ndarray, spacing: Sequence[float]) -> Path:
    """Write ``array`` ``(X, Y, Z)`` as NIfTI with ``nibabel`` (affine ``diag(spacing)``, header zooms ``spacing``),
    atomically (serialised in memory, then :func:`seunet_monai.runtime.files.atomic_write_bytes`)."""
    img = nib.Nifti1Image(np.asarray(array), np.diag([*map(float, spacing), 1.0]))
    img.header.set_zooms(tuple(float(s) for s in spacing))
    img.header.set_xyzt_units("mm")
    data = img.to_bytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    return atomic_write_bytes(path, data)


def make_synthetic_volumes(
    dst: str | os.PathLike,
    n_train: int = 8,
    n_val: int = 2,
    n_test: int = 2,
    size: int = 64,
    scale: float = 1.0,
    spacing: float | Sequence[float] = 1.0,
    photons: float = 60.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic volume dataset in the ``datalist.json`` layout.

    Writes ``dst/images/<split>_<index>.nii.gz`` (``float32``), ``dst/labels/<split>_<index>.nii.gz``
    (``uint8`` 0/1), ``dst/synthetic_report.json`` (parameters and counts; it marks the folder as generated
    here, so ``--overwrite`` may empty it) and, last, ``dst/datalist.json``. The voxel size written in the
    files is ``spacing / scale``. Generated in a hidden sibling folder and renamed into place under
    :func:`~seunet_monai.data.synthetic.common.generation_lock`, as the 2D generator does.

    Args:
        dst: output folder; missing or empty, unless ``overwrite`` and it holds a synthetic dataset.
        n_train: number of ``training`` volumes (>= 0).
        n_val: number of ``validation`` volumes (>= 0).
        n_test: number of ``test`` volumes (>= 0).
        size: voxels per axis (>= 8).
        scale: magnification of every length (> 0).
        spacing: voxel size at ``scale=1`` (one number or ``(x, y, z)``), e.g. ``[1, 1, 2]`` for anisotropic stacks.
        photons: photon count at full brightness (noise level).
        seed: base seed; volume ``i`` of a split uses ``SeedSequence([seed, split_index, i])``.
        overwrite: replace a synthetic dataset in ``dst``.

    Returns:
        the path of the written ``datalist.json``.

    Raises:
        ValueError: for a bad argument or a non-empty ``dst`` not written by a synthetic generator.
        FileExistsError: when ``dst`` is not empty and ``overwrite`` is false.
    """
    counts = {"training": n_train, "validation": n_val, "test": n_test}
    scale = check_generator_arguments(counts, size, scale, seed, "volumes")
    params = {"n_train": int(n_train), "n_val": int(n_val), "n_test": int(n_test), "size": int(size),
              "scale": scale, "spacing": list(_as_triple(spacing, "spacing")), "photons": float(photons),
              "seed": int(seed)}  # fmt: skip
    return publish_generated(dst, overwrite, lambda tmp: _write_volumes(tmp, params))


def _write_volumes(dst: Path, params: dict[str, Any]) -> Path:
    counts = {"training": params["n_train"], "validation": params["n_val"], "test": params["n_test"]}
    voxel = [s / params["scale"] for s in params["spacing"]]
    splits: dict[str, list[dict[str, str]]] = {}
    fraction = []
    for split in SPLITS:
        entries = []
        for i in range(int(counts[split])):
            rng = np.random.default_rng(sample_seed(params["seed"], split, i))
            image, label = synthesize_volume(rng, params["size"], params["scale"], params["spacing"], params["photons"])
            stem = f"{split}_{i:04d}{VOLUME_SUFFIX}"
            save_nifti(dst / "images" / stem, image, voxel)
            save_nifti(dst / "labels" / stem, label, voxel)
            fraction.append(float(label.mean()))
            entries.append({"image": f"images/{stem}", "label": f"labels/{stem}"})
        splits[split] = entries
    report = {
        "generator": "seunet_monai.data.synthetic.volumes.make_synthetic_volumes",
        "parameters": params,
        "counts": {k: len(v) for k, v in splits.items()},
        "class_names": ["background", "nucleus"],
        "voxel_size": voxel,
        "axes": "X, Y, Z (Z axial)",
        "nucleus_fraction": round(float(np.mean(fraction)), 5) if fraction else None,
    }
    atomic_write_json(dst / SYNTHETIC_MARKER, report)
    return write_datalist(dst, splits)
