"""Stain estimation of H&E images under the Beer-Lambert model.

A pixel's optical density ``OD = -log(I / I0)`` (per RGB channel) is a non-negative mix of two stain vectors
(haematoxylin, eosin): ``OD = c @ S`` with the ``(2, 3)`` stain matrix ``S`` (rows H and E, unit norm) and the
per-pixel concentrations ``c >= 0``.

- :func:`vahadane_stain_matrix` (Vahadane et al. 2016, "structure-preserving colour normalisation") learns ``S``
  by sparse non-negative dictionary learning (scikit-learn's :class:`~sklearn.decomposition.DictionaryLearning`
  with ``positive_dict``/``positive_code``, l1 penalty, fixed ``random_state``) on a deterministic subsample of
  tissue pixels.
- :func:`nonneg_lasso_2atoms` solves the per-pixel concentrations, the non-negative lasso
  ``min_c 0.5 ||od - c S||^2 + lam ||c||_1, c >= 0``, in closed form for two stains, vectorised over all pixels
  (it equals :func:`sklearn.decomposition.sparse_encode`, which solves one problem per pixel).
- :func:`tissue_mask`: a pixel is tissue when its largest channel optical density is at least ``beta``.

Images are ``(H, W, 3)`` ``uint8`` RGB arrays. The Macenko estimate is MONAI's
(:class:`monai.apps.pathology.transforms.ExtractHEStains`, used by
:class:`~seunet_monai.data.stain.normalizers.NormalizeStainsMacenko`).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.decomposition import DictionaryLearning
from sklearn.exceptions import ConvergenceWarning

__all__ = [
    "I0",
    "DEFAULT_STAIN_MATRIX",
    "DEFAULT_MAX_CONCENTRATIONS",
    "optical_density",
    "tissue_mask",
    "nonneg_lasso_2atoms",
    "vahadane_stain_matrix",
]

#: Incident light intensity of 8-bit images: the white of optical density 0.
I0 = 255.0
#: Built-in reference stains, rows H and E, columns the optical density in R, G, B (MONAI's default Macenko
#: target, transposed; each row has unit norm up to rounding).
DEFAULT_STAIN_MATRIX = np.array([[0.5626, 0.7201, 0.4062], [0.2159, 0.8012, 0.5581]], dtype=np.float64)
#: Built-in 99th-percentile stain concentrations (H, E) of the reference (MONAI's default ``max_cref``).
DEFAULT_MAX_CONCENTRATIONS = np.array([1.9705, 1.0308], dtype=np.float64)


def optical_density(image: np.ndarray) -> np.ndarray:
    """Optical density ``-log(max(I, 1) / 255)`` of a ``(..., 3)`` uint8 image, as float32 ``(..., 3)``."""
    img = np.maximum(np.asarray(image, dtype=np.float32), 1.0)
    return -np.log(img / I0)


def tissue_mask(image: np.ndarray, beta: float = 0.15) -> np.ndarray:
    """Tissue pixels of an ``(H, W, 3)`` uint8 image: largest channel optical density ``>= beta``."""
    return optical_density(image).max(axis=-1) >= beta


def nonneg_lasso_2atoms(od: np.ndarray, stains: np.ndarray, lam: float) -> np.ndarray:
    """Exact solution of ``min_c 0.5 ||x - c @ stains||^2 + lam * sum(c)`` subject to ``c >= 0``, per row ``x``.

    The problem is a convex quadratic programme in two variables; its minimiser is the unconstrained minimiser
    on its support, so it is the best of the four candidates with support {}, {0}, {1}, {0, 1} that are feasible.

    Args:
        od: ``(N, 3)`` optical densities.
        stains: ``(2, 3)`` stain matrix (rows linearly independent).
        lam: l1 penalty (>= 0).

    Returns:
        ``(N, 2)`` non-negative concentrations (float64).
    """
    x = np.asarray(od, dtype=np.float64)
    d = np.asarray(stains, dtype=np.float64)
    if d.shape != (2, 3) or x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"nonneg_lasso_2atoms: expected od (N, 3) and stains (2, 3), got {x.shape}, {d.shape}.")
    chunk = 1 << 20  # bound the temporary memory on large images
    if x.shape[0] > chunk:
        return np.concatenate([nonneg_lasso_2atoms(x[i : i + chunk], d, lam) for i in range(0, x.shape[0], chunk)])
    g = d @ d.T  # (2, 2)
    b = x @ d.T - lam  # (N, 2): the linear term of the objective
    xx = 0.5 * np.einsum("ij,ij->i", x, x)

    def objective(c: np.ndarray) -> np.ndarray:
        return 0.5 * np.einsum("ij,jk,ik->i", c, g, c) - np.einsum("ij,ij->i", c, b) + xx

    candidates = [np.zeros_like(b)]
    for k in (0, 1):
        c = np.zeros_like(b)
        c[:, k] = np.maximum(b[:, k] / g[k, k], 0.0)
        candidates.append(c)
    full = np.linalg.solve(g, b.T).T
    feasible = (full >= 0).all(axis=1)
    full[~feasible] = 0.0  # replaced by the zero candidate (never better than the true optimum)
    candidates.append(full)
    values = np.stack([objective(c) for c in candidates], axis=0)  # (4, N)
    best = values.argmin(axis=0)
    return np.stack(candidates, axis=0)[best, np.arange(x.shape[0])]


def _order_he(stains: np.ndarray) -> np.ndarray:
    """Unit-normalise rows and put haematoxylin first (larger red optical density share than eosin)."""
    stains = stains / np.maximum(np.linalg.norm(stains, axis=1, keepdims=True), 1e-12)
    if stains[0, 0] < stains[1, 0]:
        stains = stains[::-1]
    return np.ascontiguousarray(stains)


def vahadane_stain_matrix(
    image: np.ndarray,
    beta: float = 0.15,
    dict_lambda: float = 0.1,
    max_samples: int = 1000,
    max_iter: int = 30,
    min_tissue_pixels: int = 50,
    random_state: int = 0,
) -> np.ndarray | None:
    """Stain matrix of an H&E image by sparse non-negative dictionary learning (Vahadane et al. 2016).

    Args:
        image: ``(H, W, 3)`` uint8 RGB image.
        beta: optical density threshold of tissue pixels.
        dict_lambda: l1 penalty of the codes during dictionary learning (Vahadane et al. use 0.1).
        max_samples: tissue pixels drawn (deterministically, ``random_state``) to fit the dictionary.
        max_iter: iterations of :class:`sklearn.decomposition.DictionaryLearning`.
        min_tissue_pixels: fewer tissue pixels than this: no estimate.
        random_state: seed of the subsample and of the dictionary initialisation.

    Returns:
        ``(2, 3)`` stain matrix (rows H, E; unit norm; optical density in R, G, B) or ``None`` when the image
        has fewer than ``min_tissue_pixels`` tissue pixels.
    """
    od = optical_density(image).reshape(-1, 3)
    od = od[od.max(axis=1) >= beta]
    if od.shape[0] < max(min_tissue_pixels, 2):
        return None
    if od.shape[0] > max_samples:
        rng = np.random.RandomState(random_state)
        od = od[np.sort(rng.choice(od.shape[0], size=max_samples, replace=False))]
    dl = DictionaryLearning(
        n_components=2,
        alpha=dict_lambda,
        max_iter=max_iter,
        fit_algorithm="cd",
        transform_algorithm="lasso_cd",
        positive_code=True,
        positive_dict=True,
        random_state=random_state,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dl.fit(od.astype(np.float64))
    stains = dl.components_
    if not np.all(np.isfinite(stains)) or np.linalg.matrix_rank(stains, tol=1e-6) < 2:
        return None
    return _order_he(stains)
