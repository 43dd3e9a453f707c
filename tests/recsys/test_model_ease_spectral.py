"""EASE's spectral solver: the same B as the explicit inverse, for any lambda, from one decomposition."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.models import make_model
from recsys.models.ease import EASESpectrum

from ._synthetic import clustered


def reference_b(X: sp.csr_matrix, lam: float) -> np.ndarray:
    """EASE by the textbook formula with a generic float64 inverse (test oracle only)."""
    G = (X.T @ X).toarray().astype(np.float64)
    P = np.linalg.inv(G + lam * np.eye(G.shape[0]))
    B = np.eye(G.shape[0]) - P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    return B


@settings(max_examples=25, deadline=None)
@given(
    readers=st.integers(2, 40),
    titles=st.integers(2, 40),
    density=st.floats(0.05, 0.6),
    lam=st.floats(0.5, 500.0),
    weighted=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_spectrum_matches_inverse_for_wide_and_tall_matrices(readers, titles, density, lam, weighted, seed) -> None:
    rng = np.random.default_rng(seed)
    dense = (rng.random((readers, titles)) < density) * (rng.random((readers, titles)) * 3 if weighted else 1.0)
    X = sp.csr_matrix(dense.astype(np.float32))
    spectrum = EASESpectrum(X, threads=1)
    B = reference_b(X, lam)
    np.testing.assert_allclose(spectrum.weights(lam), B, atol=2e-5)
    hist = X[: min(5, readers)]
    (got_lam, scores) = next(spectrum.scores(hist, [lam]))
    assert got_lam == pytest.approx(lam)
    np.testing.assert_allclose(scores, hist.toarray() @ B, atol=5e-5)
    assert np.all(np.isfinite(scores))


def test_solvers_agree_and_lambda_path_reuses_one_decomposition() -> None:
    data = clustered(n_readers=80, n_titles=120, seed=3)  # fewer readers than titles: auto = spectral
    X = data.train.matrix
    chol = make_model("ease", lambda_=30.0, solver="cholesky", threads=1).fit(data.train)
    spec = make_model("ease", lambda_=30.0, solver="spectral", threads=1).fit(data.train)
    auto = make_model("ease", lambda_=30.0, threads=1).fit(data.train)
    np.testing.assert_allclose(spec.weights_, chol.weights_, atol=1e-4)
    np.testing.assert_array_equal(auto.weights_, spec.weights_)
    assert np.all(np.diag(spec.weights_) == 0)
    spectrum = EASESpectrum(X, threads=1)
    lambdas = [5.0, 50.0, 500.0]
    path = dict(spectrum.scores(X[:10], lambdas))
    assert list(path) == lambdas
    for lam in lambdas:
        np.testing.assert_allclose(path[lam], X[:10].toarray() @ reference_b(X, lam), atol=1e-4)
    # Larger lambda shrinks the weights: the path is not returning one matrix for every lambda.
    assert np.abs(path[500.0]).sum() < np.abs(path[5.0]).sum()


def test_invalid_lambda_and_solver_are_rejected() -> None:
    data = clustered(n_readers=20, n_titles=30)
    with pytest.raises(ValueError, match="lambda_"):
        EASESpectrum(data.train.matrix).weights(0.0)
    with pytest.raises(ValueError, match="solver"):
        make_model("ease", solver="qr").fit(data.train)
