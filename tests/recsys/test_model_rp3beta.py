"""RP3beta: the random-walk similarity, its popularity penalty, sparsity, the protocol and save/load."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from features.matrix import InteractionMatrix
from features.vocab import Vocabulary
from recsys.metrics import ndcg_at_k
from recsys.models import MODELS, load_model, make_model
from recsys.models.rp3beta import top_k_rows

from ._synthetic import clustered

DATA = clustered(n_readers=200, n_titles=150, seed=1)


def as_matrix(dense: np.ndarray) -> InteractionMatrix:
    m, n = dense.shape
    return InteractionMatrix(
        sp.csr_matrix(dense.astype(np.float32)),
        Vocabulary([f"R{i}" for i in range(m)], "reader_id"),
        Vocabulary([f"T{i}" for i in range(n)], "title_id"),
    )


def dense_rp3(X: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """The walk written out densely (test oracle): reader->title->reader->title, penalised landing."""
    p_rt = X / np.maximum(X.sum(1, keepdims=True), 1e-12)
    p_tr = X.T / np.maximum(X.T.sum(1, keepdims=True), 1e-12)
    W = (p_tr**alpha) @ (p_rt**alpha)
    W = W / np.maximum((X > 0).sum(0), 1)[None, :] ** beta
    np.fill_diagonal(W, 0.0)
    return W


def test_registered() -> None:
    assert MODELS["rp3beta"] is type(make_model("rp3beta"))


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 1000),
    alpha=st.sampled_from([0.5, 1.0]),
    beta=st.floats(0.0, 1.0),
    K=st.integers(1, 12),  # noqa: N803
)
def test_similarity_is_the_top_k_of_the_penalised_walk(seed, alpha, beta, K) -> None:
    rng = np.random.default_rng(seed)
    X = (rng.random((15, 12)) < 0.35).astype(np.float32)
    model = make_model("rp3beta", alpha=alpha, beta=beta, K=K).fit(as_matrix(X))
    W = dense_rp3(X.astype(np.float64), alpha, beta)
    S = model.similarity_.toarray()
    assert np.all(np.diag(S) == 0)
    assert np.all((S > 0).sum(axis=1) <= K)
    nz = S > 0
    np.testing.assert_allclose(S[nz], W[nz], rtol=1e-4)
    # every kept entry is at least as large as every dropped positive entry of its row
    dropped = np.where(~nz & (W > 0), W, -np.inf).max(axis=1)
    kept_min = np.where(nz, W, np.inf).min(axis=1)
    has_both = np.isfinite(dropped) & np.isfinite(kept_min)
    assert np.all(kept_min[has_both] >= dropped[has_both] - 1e-6)


def test_beta_pushes_the_popular_head_down() -> None:
    plain = make_model("rp3beta", alpha=1.0, beta=0.0, K=150).fit(DATA.train)
    penal = make_model("rp3beta", alpha=1.0, beta=0.8, K=150).fit(DATA.train)
    head = np.arange(10)  # the shared popular head of the synthetic data
    share = [np.isin(m.recommend(np.arange(200), 10)[0], head).mean() for m in (plain, penal)]
    assert share[1] < share[0]


def test_learns_the_clusters_and_follows_the_protocol(tmp_path) -> None:
    model = make_model("rp3beta", alpha=1.0, beta=0.3, K=100).fit(DATA.train)
    ids, scores = model.recommend(np.arange(200), 10)
    assert ids.shape == (200, 10) and np.all(ids >= 0) and np.all(np.isfinite(scores))
    seen = DATA.train.matrix.toarray() > 0
    assert not seen[np.arange(200)[:, None], ids].any()
    pop = make_model("popular").fit(DATA.train)
    assert ndcg_at_k(ids, DATA.target, 10) > ndcg_at_k(pop.recommend(np.arange(200), 10)[0], DATA.target, 10) + 0.05
    fold_ids, _ = model.recalculate(DATA.train.matrix[:20], 10)
    np.testing.assert_array_equal(fold_ids, ids[:20])
    sim, _ = model.similar(np.array([0, 5]), 5)
    assert not np.any(sim == np.array([[0], [5]]))
    loaded = load_model(model.save(tmp_path / "rp3"))
    np.testing.assert_array_equal(loaded.recommend(np.arange(200), 10)[0], ids)


def test_top_k_rows_and_bad_parameters() -> None:
    dense = np.array([[0.0, 3.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    kept = top_k_rows(dense, 2).toarray()
    np.testing.assert_array_equal(kept, [[0, 3, 0, 2], [0, 0, 0, 0]])
    with pytest.raises(ValueError, match="K must be"):
        make_model("rp3beta", K=0).fit(DATA.train)
    with pytest.raises(ValueError, match="alpha"):
        make_model("rp3beta", alpha=0.0).fit(DATA.train)
