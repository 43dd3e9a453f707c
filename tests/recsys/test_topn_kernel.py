"""The batch top-n kernel of factor models gives exactly the lists of the dense reference."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.base import top_n_dense
from recsys.models import topn
from recsys.models.topn import top_n_factors


# the patched sizes are constants for every example: the fixture's sharing is what is wanted
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    k=st.integers(1, 40),
    n_titles=st.integers(1, 700),
    n=st.integers(1, 15),
    blocked_share=st.floats(0.0, 1.0),
    ties=st.booleans(),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 10_000),
)
def test_kernel_matches_dense_top_n(k, n_titles, n, blocked_share, ties, threads, seed, monkeypatch) -> None:
    monkeypatch.setattr(topn, "BLOCK_ROWS", 8)  # several blocks and both workers on small data
    monkeypatch.setattr(topn, "GROUP", 16)  # the threshold path, not only argpartition
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((k, 4)).astype(np.float32)
    items = rng.standard_normal((n_titles, 4)).astype(np.float32)
    if ties:
        users, items = np.round(users), np.round(items)  # many equal scores
    blocked = sp.csr_matrix((rng.random((k, n_titles)) < blocked_share).astype(np.float32))
    ids, scores = top_n_factors(users, items, n, blocked, threads)
    ref_ids, ref_scores = top_n_dense(users @ items.T, n, blocked, np.arange(n_titles, dtype=np.int32))
    # the padded product may round differently in the last bit (another BLAS kernel shape)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ids >= 0, ref_ids >= 0)
    dense = users @ items.T
    valid = ids >= 0
    rows = np.nonzero(valid)[0]
    # same scores at every rank (ties may pick different titles), never a blocked title, no repeats
    np.testing.assert_allclose(dense[rows, ids[valid]], scores[valid], rtol=1e-5, atol=1e-5)
    assert blocked[rows, ids[valid]].sum() == 0
    assert all(len(set(r[r >= 0])) == (r >= 0).sum() for r in ids)


@settings(max_examples=30, deadline=None)
@given(
    k=st.integers(1, 6),
    n_titles=st.integers(1, 3000),
    n=st.integers(1, 5),
    subset=st.booleans(),
    ties=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_dense_top_n_threshold_path_matches_a_full_sort(k, n_titles, n, subset, ties, seed) -> None:
    """``top_n_dense`` on wide rows (the threshold selection) against a plain sort of the allowed scores."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((k, n_titles)).astype(np.float32)
    if ties:
        scores = np.round(scores * 2) / 2
    scores[rng.random((k, n_titles)) < 0.05] = np.nan  # non-finite: treated as blocked
    allowed = np.flatnonzero(rng.random(n_titles) < 0.7) if subset else np.arange(n_titles)
    allowed = allowed.astype(np.int32)
    blocked = sp.csr_matrix((rng.random((k, n_titles)) < 0.1).astype(np.float32))
    ids, got = top_n_dense(scores, n, blocked, allowed)
    masked = np.full_like(scores, -np.inf)
    masked[:, allowed] = scores[:, allowed]
    masked[blocked.toarray() > 0] = -np.inf
    masked[~np.isfinite(masked)] = -np.inf
    want = -np.sort(-masked, axis=1)[:, :n]
    np.testing.assert_array_equal(np.where(np.isfinite(got), got, -np.inf)[:, : want.shape[1]], want)
    valid = ids >= 0
    rows = np.nonzero(valid)[0]
    np.testing.assert_array_equal(masked[rows, ids[valid]], got[valid])
