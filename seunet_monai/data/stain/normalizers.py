"""H&E stain normalisation as MONAI transforms: Vahadane (the paper's choice) and Macenko.

Normalisation estimates the source image's stain matrix and per-pixel stain concentrations
(:mod:`~seunet_monai.data.stain.estimation`), rescales the concentrations so that their 99th percentile matches
the reference's, and rebuilds the image with the *reference* stain matrix.

- :class:`NormalizeStainsVahadane`: stains by :func:`~seunet_monai.data.stain.estimation.vahadane_stain_matrix`,
  concentrations by :func:`~seunet_monai.data.stain.estimation.nonneg_lasso_2atoms`.
- :class:`NormalizeStainsMacenko` wraps MONAI's :class:`monai.apps.pathology.transforms.NormalizeHEStains` /
  :class:`~monai.apps.pathology.transforms.ExtractHEStains` (Macenko et al. 2009); it only adds a reference
  image (MONAI's transform takes a target stain matrix, not an image), the channel-layout handling, the
  low-tissue fallback, and the H/E column order MONAI needs (see :class:`NormalizeStainsMacenko`).

Images are ``(H, W, 3)`` ``uint8`` numpy arrays (channel last, as MONAI's stain transforms want);
``channel_dim=0`` accepts ``(3, H, W)`` instead and torch tensors are converted and returned in
their input type.

In a MONAI pipeline, after ``LoadImaged`` and ``EnsureChannelFirstd`` (a float ``(3, W, H)`` MetaTensor with
PIL's reversed spatial axes: irrelevant here, the operation is per pixel), use ``channel_dim=0``, e.g. in a bundle
config ``{"_target_": "seunet_monai.data.stain.normalizers.NormalizeStainsVahadaned", "keys": "image",
"channel_dim": 0, "reference": "$@dataset_dir + '/stain_reference.png'"}``; the metadata is kept.

Low tissue: when an image has fewer than ``min_tissue_pixels`` tissue pixels
(:func:`~seunet_monai.data.stain.estimation.tissue_mask`) its stains cannot be estimated: the transform returns
the image unchanged, emits a :class:`LowTissueWarning` and increments ``fallback_count`` (the preparation
scripts report that count). Background pixels (optical density below ``beta``) are rebuilt like the rest and
stay near white because their concentrations are near zero.

Reference: when ``reference`` is ``None`` the transforms use a fixed built-in H&E reference (MONAI's default
Macenko target stain matrix and maximal concentrations); the preparation scripts instead pass a fixed training
tile and record it in ``prepare_report.json``; :mod:`~seunet_monai.data.stain.reference` stores and reads the
fitted target.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from monai.apps.pathology.transforms import ExtractHEStains, NormalizeHEStains
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type, convert_to_numpy

from seunet_monai.data.io import read_rgb
from seunet_monai.data.stain.estimation import (
    DEFAULT_MAX_CONCENTRATIONS,
    DEFAULT_STAIN_MATRIX,
    I0,
    nonneg_lasso_2atoms,
    optical_density,
    tissue_mask,
    vahadane_stain_matrix,
)
from seunet_monai.errors import DataError

__all__ = [
    "LowTissueWarning",
    "STAIN_METHODS",
    "StainNormalizer",
    "NormalizeStainsVahadane",
    "NormalizeStainsMacenko",
    "NormalizeStainsVahadaned",
    "NormalizeStainsMacenkod",
    "get_stain_normalizer",
]

STAIN_METHODS = ("vahadane", "macenko", "none")


class LowTissueWarning(UserWarning):
    """An image had too little tissue to estimate its stains; it was returned unchanged."""


def _load_reference(reference: str | os.PathLike | np.ndarray) -> tuple[np.ndarray, str]:
    if isinstance(reference, (str, os.PathLike)):
        img, _ = read_rgb(reference)
        return img, str(Path(reference))
    arr = np.asarray(reference)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"stain reference: expected an (H, W, 3) uint8 image or a path, got shape {arr.shape}.")
    return _as_uint8(arr, "stain reference"), "array"


def _as_uint8(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer):
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    raise ValueError(f"{what}: expected a uint8 RGB image, got dtype {arr.dtype}.")


def _red_blue_ratio(stains: np.ndarray) -> np.ndarray:
    """Red / blue optical density of each stain row (MONAI's H/E ordering criterion)."""
    return stains[:, 0] / (stains[:, 2] + np.finfo(np.float32).eps)


@functools.lru_cache(maxsize=1)
def _monai_extracts_eosin_first() -> bool:
    """Whether MONAI's :class:`ExtractHEStains` returns eosin in its first column (probed on a synthetic image)."""
    rng = np.random.RandomState(0)
    conc = np.stack([rng.uniform(0.2, 2.0, 4096) * (rng.rand(4096) < 0.5), rng.uniform(0.3, 1.5, 4096)], axis=1)
    conc[:, 0] += 0.3
    image = np.clip(np.rint(I0 * np.exp(-(conc @ DEFAULT_STAIN_MATRIX))), 0, 255).astype(np.uint8)
    he = ExtractHEStains()(image.reshape(64, 64, 3))  # (3, 2)
    first = he[:, 0] / np.linalg.norm(he[:, 0])
    h, e = DEFAULT_STAIN_MATRIX / np.linalg.norm(DEFAULT_STAIN_MATRIX, axis=1, keepdims=True)
    return bool(first @ e > first @ h)


class StainNormalizer(Transform):
    """Shared layout handling and low-tissue fallback of the stain transforms."""

    def __init__(self, channel_dim: int, beta: float, min_tissue_pixels: int) -> None:
        if channel_dim not in (0, -1, 2):
            raise ValueError(f"channel_dim must be 0 (C, H, W) or -1 (H, W, C), got {channel_dim}.")
        if min_tissue_pixels < 2:
            raise ValueError(f"min_tissue_pixels must be >= 2, got {min_tissue_pixels}.")
        self.channel_dim = channel_dim
        self.beta = float(beta)
        self.min_tissue_pixels = int(min_tissue_pixels)
        self.fallback_count = 0
        self.source: tuple[np.ndarray, np.ndarray] | None = None  # fixed source stains (fit_source)
        self.reference_name = "built-in"
        self.target_stains = DEFAULT_STAIN_MATRIX.copy()
        self.target_max = DEFAULT_MAX_CONCENTRATIONS.copy()

    def _normalize_hwc(self, image: np.ndarray) -> np.ndarray | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit_source(self, image: np.ndarray, mask: np.ndarray | None = None) -> bool:
        """Fix the *source* stains (matrix and 99th-percentile concentrations) from one image, e.g. a whole
        image or a slide thumbnail, so that every later call normalises with them instead of refitting.

        Windows of one slide are then normalised alike, as the preparation normalises a whole image before
        tiling it (a window fitted on its own, padded or with little tissue, drifts). Returns False, leaving
        per-call fitting, when the method does not support it or ``image`` has too little tissue.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            mask: optional ``(H, W)`` bool: pixels over which the percentiles are taken (default all, as the
                preparation does on whole images).
        """
        self.source = None
        return False

    def clear_source(self) -> None:
        """Back to fitting the source stains on every image."""
        self.source = None

    def __call__(self, img: Any) -> Any:
        """Normalise one RGB image; returns the same type, layout and dtype as ``img``."""
        arr = convert_to_numpy(img)
        if arr.ndim != 3:
            raise ValueError(f"{type(self).__name__}: expected a 3-D RGB image, got shape {arr.shape}.")
        hwc = np.moveaxis(arr, 0, -1) if self.channel_dim == 0 else arr
        if hwc.shape[-1] != 3:
            raise ValueError(
                f"{type(self).__name__}: expected 3 colour channels on axis {self.channel_dim}, got shape {arr.shape}."
            )
        u8 = _as_uint8(hwc, type(self).__name__)
        if self.source is None and int(tissue_mask(u8, self.beta).sum()) < self.min_tissue_pixels:
            out = None
        else:
            out = self._normalize_hwc(u8)
        if out is None:
            self.fallback_count += 1
            warnings.warn(
                f"{type(self).__name__}: fewer than {self.min_tissue_pixels} tissue pixels (optical density >= "
                f"{self.beta}); image returned unchanged.",
                LowTissueWarning,
                stacklevel=2,
            )
            return img
        if self.channel_dim == 0:
            out = np.moveaxis(out, -1, 0)
        return convert_to_dst_type(out.astype(arr.dtype, copy=False), img)[0]

    def set_target(
        self, stains: Any, max_concentrations: Any, name: str = "stain_reference.json", fix: str = ""
    ) -> None:
        """Use a fitted reference (stain matrix rows H, E; 99th-percentile concentrations) as the target.

        Args:
            stains: the target stain matrix, rows H and E, columns the optical density in R, G, B.
            max_concentrations: the target 99th-percentile concentrations of H and E.
            name: where the target comes from (in error messages).
            fix: appended to error messages (how to get a valid target).

        Raises:
            DataError: naming ``name``, unless the matrix is 2x3, finite, non-negative with two independent stains
                and the two concentrations are finite and positive (a zero concentration would turn every
                image white).
        """
        try:
            stains = np.asarray(stains, dtype=np.float64)
            maxc = np.asarray(max_concentrations, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(
                f"{name}: target_stain_matrix and target_max_concentrations must be numbers: {e}{fix}."
            ) from e
        if stains.shape != (2, 3) or maxc.shape != (2,) or not (np.isfinite(stains).all() and np.isfinite(maxc).all()):
            raise DataError(
                f"{name}: expected a 2x3 target_stain_matrix and 2 target_max_concentrations (finite), got "
                f"shapes {stains.shape} and {maxc.shape}{fix}."
            )
        if (stains < 0).any() or np.linalg.matrix_rank(stains, tol=1e-6) < 2 or not (maxc > 0).all():
            raise DataError(
                f"{name}: target_stain_matrix must hold two independent non-negative stain vectors and "
                f"target_max_concentrations two positive values, got {stains.tolist()} and {maxc.tolist()}{fix}."
            )
        self.target_stains, self.target_max, self.reference_name = stains, maxc, name

    def reference_record(self) -> dict[str, Any]:
        """The fitted target as stored in :data:`STAIN_REFERENCE_FILE` (read back by :func:`load_stain_reference`)."""
        return {
            "method": self.method,  # type: ignore[attr-defined]
            "reference": self.reference_name,
            "target_stain_matrix": self.target_stains.tolist(),
            "target_max_concentrations": self.target_max.tolist(),
        }

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (method, reference, target stain matrix and concentrations, fallbacks)."""
        return {
            "method": self.method,  # type: ignore[attr-defined]
            "reference": self.reference_name,
            "target_stain_matrix": np.round(self.target_stains, 6).tolist(),
            "target_max_concentrations": np.round(self.target_max, 6).tolist(),
            "fallback_count": self.fallback_count,
        }


class NormalizeStainsVahadane(StainNormalizer):
    """Vahadane stain normalisation of an RGB H&E image to a reference (array transform).

    Args:
        reference: path of a reference RGB image, an ``(H, W, 3)`` uint8 array, or ``None`` for the built-in
            reference stains (:data:`DEFAULT_STAIN_MATRIX`, :data:`DEFAULT_MAX_CONCENTRATIONS`).
        channel_dim: 0 for ``(3, H, W)`` input, -1 for ``(H, W, 3)`` (default).
        beta: optical density threshold of tissue pixels.
        dict_lambda: l1 penalty of dictionary learning (0.1, Vahadane et al.).
        code_lambda: l1 penalty of the concentrations (0.01).
        max_samples: tissue pixels used to fit a dictionary.
        min_tissue_pixels: fewer tissue pixels: the image is returned unchanged (:class:`LowTissueWarning`).
        random_state: seed of the subsample and of dictionary learning (the result is deterministic).
    """

    method = "vahadane"

    def __init__(
        self,
        reference: str | os.PathLike | np.ndarray | None = None,
        channel_dim: int = -1,
        beta: float = 0.15,
        dict_lambda: float = 0.1,
        code_lambda: float = 0.01,
        max_samples: int = 1000,
        min_tissue_pixels: int = 50,
        random_state: int = 0,
    ) -> None:
        super().__init__(channel_dim, beta, min_tissue_pixels)
        self.dict_lambda = float(dict_lambda)
        self.code_lambda = float(code_lambda)
        self.max_samples = int(max_samples)
        self.random_state = int(random_state)
        if reference is not None:
            ref, self.reference_name = _load_reference(reference)
            stains = self._stains(ref)
            if stains is None:
                raise ValueError(
                    f"NormalizeStainsVahadane: the reference {self.reference_name} has fewer than "
                    f"{self.min_tissue_pixels} tissue pixels; choose a reference with tissue."
                )
            conc = nonneg_lasso_2atoms(optical_density(ref).reshape(-1, 3), stains, self.code_lambda)
            self.target_stains = stains
            self.target_max = np.percentile(conc, 99, axis=0)

    def _stains(self, image: np.ndarray) -> np.ndarray | None:
        return vahadane_stain_matrix(
            image,
            beta=self.beta,
            dict_lambda=self.dict_lambda,
            max_samples=self.max_samples,
            min_tissue_pixels=self.min_tissue_pixels,
            random_state=self.random_state,
        )

    def fit_source(self, image: np.ndarray, mask: np.ndarray | None = None) -> bool:
        u8 = _as_uint8(np.asarray(image), type(self).__name__)
        self.source = None
        stains = self._stains(u8)
        if stains is None:
            return False
        conc = nonneg_lasso_2atoms(optical_density(u8).reshape(-1, 3), stains, self.code_lambda)
        if mask is not None and int(np.asarray(mask).sum()) >= self.min_tissue_pixels:
            conc = conc[np.asarray(mask, dtype=bool).reshape(-1)]
        self.source = (stains, np.percentile(conc, 99, axis=0))
        return True

    def _normalize_hwc(self, image: np.ndarray) -> np.ndarray | None:
        od = optical_density(image).reshape(-1, 3)
        if self.source is not None:
            stains, src_max = self.source
            conc = nonneg_lasso_2atoms(od, stains, self.code_lambda)
        else:
            stains = self._stains(image)
            if stains is None:
                return None
            conc = nonneg_lasso_2atoms(od, stains, self.code_lambda)
            src_max = np.percentile(conc, 99, axis=0)
        conc *= self.target_max / np.maximum(src_max, 1e-6)
        out = I0 * np.exp(-(conc @ self.target_stains))
        return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(image.shape)


class NormalizeStainsMacenko(StainNormalizer):
    """Macenko stain normalisation to a reference image, wrapping MONAI's ``NormalizeHEStains``.

    MONAI's transform takes the target stain matrix and maximal concentrations; here they are estimated from
    the reference image with MONAI's :class:`ExtractHEStains` and the same least-squares concentrations and
    99th percentile that :class:`NormalizeHEStains` applies to the source.

    Args:
        reference: path of a reference RGB image, an ``(H, W, 3)`` uint8 array, or ``None`` for MONAI's default
            target stains.
        channel_dim: 0 for ``(3, H, W)`` input, -1 for ``(H, W, 3)`` (default).
        tli: transmitted light intensity (MONAI's default 240).
        alpha: angle percentile of the Macenko extremes (MONAI's default 1).
        beta: optical density threshold of tissue pixels (MONAI's default 0.15).
        min_tissue_pixels: fewer pixels with every channel's optical density above ``beta`` (MONAI's own tissue
            criterion): the image is returned unchanged (:class:`LowTissueWarning`).
    """

    method = "macenko"

    def __init__(
        self,
        reference: str | os.PathLike | np.ndarray | None = None,
        channel_dim: int = -1,
        tli: float = 240,
        alpha: float = 1,
        beta: float = 0.15,
        min_tissue_pixels: int = 50,
    ) -> None:
        super().__init__(channel_dim, beta, min_tissue_pixels)
        self.tli = float(tli)
        self.alpha = float(alpha)
        if reference is not None:
            ref, self.reference_name = _load_reference(reference)
            if self._macenko_tissue(ref) < self.min_tissue_pixels:
                raise ValueError(
                    f"NormalizeStainsMacenko: the reference {self.reference_name} has fewer than "
                    f"{self.min_tissue_pixels} tissue pixels; choose a reference with tissue."
                )
            he = ExtractHEStains(tli=self.tli, alpha=self.alpha, beta=self.beta)(ref)  # (3, 2), MONAI's order
            absorbance = -np.log(np.minimum(ref.reshape(-1, 3).astype(np.float32) + 1.0, self.tli) / self.tli)
            conc = np.linalg.lstsq(he, absorbance.T, rcond=None)[0]
            stains, maxc = np.asarray(he, dtype=np.float64).T, np.percentile(conc, 99, axis=1)
            order = np.argsort(-_red_blue_ratio(stains), kind="stable")  # store H first, like Vahadane
            self.target_stains, self.target_max = stains[order], maxc[order]
        # MONAI 1.6.1's ExtractHEStains returns the stain with the *lower* red/blue optical-density ratio (eosin)
        # first (the ordering heuristic of MONAI PR #8551 compares the ratio on absorbance), while its default
        # ``target_he`` lists haematoxylin first, which swaps the H and E colours. The target is passed in the
        # extractor's own order, probed once on a synthetic H&E image so that a future MONAI fix keeps working.
        self._rebuild()

    def set_target(
        self, stains: Any, max_concentrations: Any, name: str = "stain_reference.json", fix: str = ""
    ) -> None:
        """As :meth:`StainNormalizer.set_target`; MONAI's transform is rebuilt for the new target."""
        super().set_target(stains, max_concentrations, name, fix)
        self._rebuild()

    def _rebuild(self) -> None:
        """(Re)build MONAI's transform for the current target."""
        order = np.array([1, 0]) if _monai_extracts_eosin_first() else np.array([0, 1])
        self._normalizer = NormalizeHEStains(
            tli=self.tli,
            alpha=self.alpha,
            beta=self.beta,
            target_he=self.target_stains[order].T,
            max_cref=self.target_max[order],
        )

    def _macenko_tissue(self, image: np.ndarray) -> int:
        absorbance = -np.log(np.minimum(image.reshape(-1, 3).astype(np.float32) + 1.0, self.tli) / self.tli)
        return int(np.all(absorbance > self.beta, axis=1).sum())

    def _normalize_hwc(self, image: np.ndarray) -> np.ndarray | None:
        # MONAI's extractor needs pixels with *every* channel above beta: check its own criterion too
        if self._macenko_tissue(image) < self.min_tissue_pixels:
            return None
        return self._normalizer(np.ascontiguousarray(image))


class _StainNormalizerd(MapTransform):
    def __init__(self, keys: KeysCollection, normalizer: StainNormalizer, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.normalizer = normalizer

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.normalizer(d[key])
        return d


class NormalizeStainsVahadaned(_StainNormalizerd):
    """Dictionary form of :class:`NormalizeStainsVahadane` (same arguments after ``keys``)."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, NormalizeStainsVahadane(**kwargs), allow_missing_keys)


class NormalizeStainsMacenkod(_StainNormalizerd):
    """Dictionary form of :class:`NormalizeStainsMacenko` (same arguments after ``keys``)."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, NormalizeStainsMacenko(**kwargs), allow_missing_keys)


def get_stain_normalizer(
    method: str, reference: str | os.PathLike | np.ndarray | None = None, **kwargs: Any
) -> StainNormalizer | None:
    """Array stain transform for ``method`` in :data:`STAIN_METHODS` (``"none"`` gives ``None``).

    Args:
        method: ``"vahadane"``, ``"macenko"`` or ``"none"``.
        reference: reference image (path or array) or ``None`` for the built-in reference.
        kwargs: passed to the transform.
    """
    m = str(method).lower()
    if m == "none":
        return None
    if m == "vahadane":
        return NormalizeStainsVahadane(reference=reference, **kwargs)
    if m == "macenko":
        return NormalizeStainsMacenko(reference=reference, **kwargs)
    raise ValueError(f"unknown stain normalisation {method!r}; expected one of {list(STAIN_METHODS)}.")
