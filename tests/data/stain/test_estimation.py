"""Stain estimation (:mod:`seunet_monai.data.stain.estimation`): the closed-form non-negative lasso and the
Vahadane stain matrix."""

from __future__ import annotations

import numpy as np

from seunet_monai.data.stain.estimation import nonneg_lasso_2atoms, vahadane_stain_matrix

from .conftest import STAINS, concentrations, render


def test_closed_form_lasso_matches_sklearn():
    from sklearn.decomposition import sparse_encode

    rng = np.random.RandomState(1)
    od = np.abs(rng.randn(300, 3)) * 0.6
    od[:50] *= 0.01  # near-zero rows: the zero solution
    for lam in (0.001, 0.01, 0.3):
        ours = nonneg_lasso_2atoms(od, STAINS, lam)
        ref = sparse_encode(od, STAINS, algorithm="lasso_cd", alpha=lam, positive=True, max_iter=20000)
        np.testing.assert_allclose(ours, ref, atol=1e-5)
        assert (ours >= 0).all()


def test_vahadane_recovers_stains():
    img = render(concentrations(), STAINS)
    est = vahadane_stain_matrix(img)
    assert est is not None and est.shape == (2, 3)
    cos = np.sum(est * STAINS, axis=1)  # rows are unit norm; H first
    assert (cos > 0.97).all(), cos
