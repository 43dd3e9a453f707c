"""iALS with frequency-scaled regularisation (Rendle et al. 2022): the CG half-step solves the normal
equations, epochs lower the paper's loss, the penalty scales with frequency, fold-in is exact."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.models import make_model
from recsys.models.ials import IALSRecommender, _exact_rows

from ._synthetic import clustered

DATA = clustered(n_readers=150, n_titles=80, seed=2)


def paper_loss(model: IALSRecommender, X: sp.csr_matrix) -> float:
    """The loss of Rendle et al. 2022 (dense, test oracle only)."""
    U, V = model.user_factors_.astype(np.float64), model.item_factors_.astype(np.float64)
    S, W = U @ V.T, X.toarray()
    m, n = X.shape
    pen_u = model._penalty(np.diff(X.indptr), n)[:, 0]
    pen_v = model._penalty(np.diff(X.tocsc().indptr), m)[:, 0]
    observed = (W * (S - 1) ** 2).sum()
    return observed + model.alpha0 * (S**2).sum() + (pen_u * (U**2).sum(1)).sum() + (pen_v * (V**2).sum(1)).sum()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), alpha0=st.floats(0.01, 1.0), nu=st.sampled_from([0.0, 0.5, 1.0]))
def test_cg_half_step_converges_to_the_exact_solution(seed, alpha0, nu) -> None:
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix((rng.random((40, 30)) < 0.2).astype(np.float32) * rng.integers(1, 3, (40, 30)))
    model = IALSRecommender(factors=6, alpha0=alpha0, nu=nu, regularization=0.05, cg_steps=40)
    V = rng.standard_normal((30, 6)).astype(np.float32)
    pen = model._penalty(np.diff(X.indptr), 30)
    exact = _exact_rows(X, V, alpha0 * (V.T @ V), pen)
    cg = model._half_step(X, V, np.zeros((40, 6), np.float32), pen)
    np.testing.assert_allclose(cg, exact, atol=1e-3 * max(1.0, np.abs(exact).max()))


def test_epochs_lower_the_papers_loss() -> None:
    X = DATA.train.matrix
    losses = []
    for epochs in (1, 3, 8):
        model = make_model("ials", factors=8, iterations=epochs, alpha0=0.2, regularization=0.01, threads=1)
        losses.append(paper_loss(model.fit(DATA.train), X))
    assert losses[0] > losses[1] > losses[2], losses


def test_frequency_scaled_penalty_grows_with_counts_and_nu_zero_is_constant() -> None:
    counts = np.array([0, 1, 10, 100])
    scaled = IALSRecommender(regularization=0.01, alpha0=0.5, nu=1.0)._penalty(counts, 20)[:, 0]
    np.testing.assert_allclose(scaled, 0.01 * (counts + 10), rtol=1e-6)
    flat = IALSRecommender(regularization=0.01, alpha0=0.5, nu=0.0)._penalty(counts, 20)[:, 0]
    np.testing.assert_allclose(flat, 0.01)


def test_fold_in_of_many_readers_matches_the_exact_solve() -> None:
    model = make_model("ials", factors=8, iterations=5, threads=1).fit(DATA.train)
    hist = sp.vstack([DATA.train.matrix] * 2).tocsr()[:300]  # > 256 rows: the CG path
    items = model.item_factors_
    pen = model._penalty(np.diff(hist.indptr), items.shape[0])
    exact = _exact_rows(hist, items, model.alpha0 * (items.T @ items), pen)
    np.testing.assert_allclose(model._fold_in(hist), exact, atol=2e-3 * np.abs(exact).max())
    np.testing.assert_allclose(model._fold_in(hist[:5]), exact[:5], atol=1e-4 * np.abs(exact).max())


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="alpha0"):
        make_model("ials", alpha0=0.0).fit(DATA.train)
    with pytest.raises(ValueError, match="factors"):
        make_model("ials", factors=0).fit(DATA.train)
