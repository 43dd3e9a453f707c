"""SANSA (sparse approximate inverse EASE): close to dense EASE when dense enough, sparse when asked,
and a saved model loads and recommends without the fitting package."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.base import ModelFormatError
from recsys.models import load_model, make_model

from ._synthetic import clustered

pytest.importorskip("sansa", reason="SANSA fits through the optional 'scale' extra (sansa, scikit-sparse)")

DATA = clustered(n_readers=200, n_titles=60, seed=4)


def ease_b(X: sp.csr_matrix, lam: float) -> np.ndarray:
    G = (X.T @ X).toarray().astype(np.float64)
    P = np.linalg.inv(G + lam * np.eye(G.shape[0]))
    B = np.eye(G.shape[0]) - P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    return B


def off_diagonal(M: np.ndarray) -> np.ndarray:
    return M[~np.eye(M.shape[0], dtype=bool)]


@pytest.mark.parametrize("factorizer", ["cholmod", "icf"])
def test_full_density_sansa_is_ease(factorizer) -> None:
    lam = 20.0
    model = make_model("sansa", lambda_=lam, density=1.0, factorizer=factorizer, finetune_steps=10, threads=1)
    model.fit(DATA.train)
    B = ease_b(DATA.train.matrix, lam)
    W = (model.encoder_ @ model.decoder_).toarray()
    # off the diagonal SANSA's weights are EASE's B (the diagonal only scores seen titles, filtered)
    np.testing.assert_allclose(off_diagonal(W), off_diagonal(B), atol=1e-2 * np.abs(B).max())
    assert np.corrcoef(off_diagonal(W), off_diagonal(B))[0, 1] > 0.999
    ease = make_model("ease", lambda_=lam, threads=1).fit(DATA.train)
    a, _ = model.recommend(np.arange(50), 10)
    b, _ = ease.recommend(np.arange(50), 10)
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a.tolist(), b.tolist(), strict=True)])
    assert overlap > 0.95, overlap


def test_low_density_keeps_few_weights_and_still_ranks_like_ease() -> None:
    n = DATA.train.shape[1]
    sparse = make_model("sansa", lambda_=20.0, density=0.1, factorizer="icf", threads=1).fit(DATA.train)
    assert sparse.encoder_.nnz <= 0.1 * n * n * 1.05 and sparse.decoder_.nnz <= 0.1 * n * n * 1.05
    ease = make_model("ease", lambda_=20.0, threads=1).fit(DATA.train)
    a, _ = sparse.recommend(np.arange(100), 10)
    b, _ = ease.recommend(np.arange(100), 10)
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a.tolist(), b.tolist(), strict=True)])
    assert overlap > 0.5, overlap


def test_save_load_round_trip_and_shape_check(tmp_path) -> None:
    model = make_model("sansa", lambda_=20.0, density=0.2, factorizer="icf", threads=1).fit(DATA.train)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(model.recommend(np.arange(30), 10)[0], loaded.recommend(np.arange(30), 10)[0])
    hist = DATA.train.matrix[:5]
    np.testing.assert_allclose(model.score(history=hist), loaded.score(history=hist), rtol=1e-6)
    # a decoder of the wrong size is refused with the file's reason, not used
    sp.save_npz(tmp_path / "m" / "decoder.npz", sp.csr_matrix((3, 3), dtype=np.float32))
    with pytest.raises(ModelFormatError, match="decoder"):
        load_model(tmp_path / "m")


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="density"):
        make_model("sansa", density=0.0).fit(DATA.train)
    with pytest.raises(ValueError, match="factorizer"):
        make_model("sansa", factorizer="qr").fit(DATA.train)
