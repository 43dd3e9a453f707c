"""Behaviour of every model behind the Recommender protocol on clustered synthetic data."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.matrix import InteractionMatrix
from recsys.base import ModelError, ModelFormatError, NotFittedError, top_n_dense
from recsys.metrics import ndcg_at_k
from recsys.models import MODELS, load_model, make_model

from ._synthetic import clustered

DATA = clustered()
FAST_PARAMS = {
    "popular": {},
    "itemknn": {"K": 50, "threads": 1},
    "als": {"factors": 8, "iterations": 15, "threads": 1, "regularization": 0.1, "alpha": 5.0},
    "bpr": {"factors": 16, "iterations": 60, "threads": 1, "learning_rate": 0.05},
    "ease": {"lambda_": 50.0, "threads": 1},
    "content": {},
    "ials": {"factors": 8, "iterations": 10, "threads": 1, "regularization": 0.01, "alpha0": 0.3},
}
try:  # SANSA fits through scikit-sparse, an optional extra ("scale"); loading needs only scipy
    import sansa  # noqa: F401

    FAST_PARAMS["sansa"] = {"lambda_": 50.0, "density": 0.05, "factorizer": "icf", "threads": 1}
except ImportError:
    pass
_FITTED: dict[str, object] = {}


def fitted(name: str):
    """Each model fitted once per test session (fits are the slow part)."""
    if name not in _FITTED:
        if name == "hybrid":
            model = make_model(
                "hybrid",
                components={"ease": fitted("ease"), "pop": fitted("popular")},
                weights={"ease": 0.8, "pop": 0.2},
                refit=False,
            )
        else:
            model = make_model(name, **FAST_PARAMS[name])
        _FITTED[name] = model.fit(DATA.train, DATA.titles)
    return _FITTED[name]


ALL = [*FAST_PARAMS, "hybrid"]
CF = ["itemknn", "als", "bpr", "ease", "ials", "hybrid"]


def test_registry_covers_brief_names():
    assert set(MODELS) == {"popular", "itemknn", "als", "bpr", "ease", "content", "hybrid", "rp3beta", "ials", "sansa"}
    with pytest.raises(ValueError, match="unknown model"):
        make_model("nope")


@pytest.mark.parametrize("name", ALL)
def test_params_round_trip_and_set_params(name):
    model = fitted(name)
    params = model.get_params()
    clone = make_model(name, **params)
    assert clone.get_params() == params
    with pytest.raises(ValueError, match="unknown parameter"):
        clone.set_params(not_a_param=1)


def test_unfitted_model_raises():
    with pytest.raises(NotFittedError):
        make_model("ease").recommend(np.arange(3), 5)


@pytest.mark.parametrize("name", ALL)
def test_scores_finite_and_shaped(name):
    model = fitted(name)
    s = model.score(reader_rows=np.arange(7))
    assert s.shape == (7, DATA.train.shape[1]) and s.dtype == np.float32
    assert np.isfinite(s).all()
    h = model.score(history=DATA.train.matrix[:4])
    assert h.shape == (4, DATA.train.shape[1]) and np.isfinite(h).all()


@pytest.mark.parametrize("name", ["itemknn", "als", "ease", "ials"])
def test_collaborative_models_beat_popularity(name):
    rows = np.arange(DATA.train.shape[0])
    pop, _ = fitted("popular").recommend(rows, 10)
    recs, _ = fitted(name).recommend(rows, 10)
    pop_ndcg, model_ndcg = ndcg_at_k(pop, DATA.target), ndcg_at_k(recs, DATA.target)
    assert model_ndcg > pop_ndcg * 1.5, (name, model_ndcg, pop_ndcg)


@pytest.mark.parametrize("name", ALL)
def test_recommend_filters_seen_and_returns_n(name):
    model = fitted(name)
    rows = np.arange(40)
    ids, scores = model.recommend(rows, 15)
    assert ids.shape == (40, 15) and ids.dtype == np.int32 and scores.dtype == np.float32
    assert (ids >= 0).all()
    seen = DATA.train.matrix[rows].toarray() > 0
    assert not np.take_along_axis(seen, ids, axis=1).any()
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    assert all(len(set(r)) == 15 for r in ids.tolist())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(ALL),
    n=st.integers(0, 30),
    n_cands=st.integers(0, 200),  # up to every title: small and large candidate sets take different paths
    seed=st.integers(0, 10_000),
    per_reader=st.booleans(),
)
def test_filters_property(name, n, n_cands, seed, per_reader):
    """No seen / excluded / non-candidate title is ever returned; exactly n results whenever at
    least n allowed titles remain; padding is -1 / -inf."""
    model = fitted(name)
    rng = np.random.default_rng(seed)
    n_titles = DATA.train.shape[1]
    rows = rng.choice(DATA.train.shape[0], 6, replace=False)
    cands = rng.choice(n_titles, min(n_cands, n_titles), replace=False)
    if per_reader:
        exclude = sp.csr_matrix(rng.random((6, n_titles)) < 0.2)
        blocked = exclude.toarray()
    else:
        glob = rng.random(n_titles) < 0.2
        exclude, blocked = glob, np.broadcast_to(glob, (6, n_titles))
    ids, scores = model.recommend(rows, n, candidates=cands, exclude=exclude)
    seen = DATA.train.matrix[rows].toarray() > 0
    allowed = np.zeros((6, n_titles), dtype=bool)
    allowed[:, cands] = True
    allowed &= ~seen & ~blocked
    for r in range(6):
        got = ids[r][ids[r] >= 0]
        assert allowed[r, got].all()
        assert got.size == min(n, allowed[r].sum())
        assert (ids[r][got.size :] == -1).all() and np.isneginf(scores[r][got.size :]).all()
        assert np.isfinite(scores[r][: got.size]).all()


@pytest.mark.parametrize("name", CF + ["content"])
def test_recalculate_after_new_loan(name):
    """A new loan changes the list and the new title is never offered back."""
    model = fitted(name)
    r = 3
    before, _ = model.recommend(np.array([r]), 10)
    new_title = int(before[0, 0])
    history = DATA.train.matrix[[r]].tolil()
    history[0, new_title] = 1.0
    after, _ = model.recalculate(history.tocsr(), 10)
    assert new_title not in after[0]
    assert not np.array_equal(before, after)


@pytest.mark.parametrize("name", CF)
def test_recalculate_matches_known_reader_ranking(name):
    """Folding in a reader's own training row gives (nearly) the list of the trained reader."""
    model = fitted(name)
    rows = np.arange(20)
    known, _ = model.recommend(rows, 10)
    folded, _ = model.recalculate(DATA.train.matrix[rows], 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(known.tolist(), folded.tolist(), strict=True)])
    assert overlap > (0.5 if name == "bpr" else 0.7), overlap


def test_unknown_readers_get_cold_start_popularity():
    model = fitted("als")
    ids, _ = model.recommend_ids(["R0001", "nobody", "R0002"], 5)
    pop_ids, _ = fitted("popular").recommend_ids(["nobody"], 5)
    assert list(ids[1]) == list(pop_ids[0])
    known, _ = model.recommend(np.array([1]), 5)
    assert list(ids[0]) == list(DATA.train.titles.lookup(known[0]))
    assert all(isinstance(t, str) for t in ids.ravel())


@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trip(tmp_path, name):
    model = fitted(name)
    model.save(tmp_path / name)
    assert not list((tmp_path / name).rglob("*.pkl"))
    loaded = load_model(tmp_path / name)
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    rows = np.arange(25)
    a_ids, a_scores = model.recommend(rows, 10)
    b_ids, b_scores = loaded.recommend(rows, 10)
    np.testing.assert_array_equal(a_ids, b_ids)
    np.testing.assert_allclose(a_scores, b_scores, rtol=1e-5)
    hist = DATA.train.matrix[30:35]
    np.testing.assert_array_equal(model.recalculate(hist, 10)[0], loaded.recalculate(hist, 10)[0])


def test_itemknn_keeps_implicits_similarity_and_saves_it_as_float32(tmp_path):
    model = fitted("itemknn")
    # no float32 copy at fit time (the wrapper's only extra cost); the saved state is float32
    assert model.similarity_.dtype == np.float64
    model.save(tmp_path / "knn")
    assert sp.load_npz(tmp_path / "knn" / "similarity.npz").dtype == np.float32
    assert load_model(tmp_path / "knn").similarity_.dtype == np.float32


def test_load_rejects_bad_directories(tmp_path):
    with pytest.raises(ModelFormatError, match="model.json"):
        load_model(tmp_path)
    fitted("popular").save(tmp_path / "m")
    meta = tmp_path / "m" / "model.json"
    meta.write_text(meta.read_text().replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(ModelFormatError, match="format_version"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("name", ["itemknn", "als", "bpr", "ease", "content"])
def test_similar_titles_exclude_self_and_share_cluster(name):
    model = fitted(name)
    titles = np.arange(10, 40)
    ids, scores = model.similar(titles, 5)
    assert not (ids == titles[:, None]).any()
    valid = ids >= 0
    same = DATA.title_cluster[ids[valid]] == np.broadcast_to(DATA.title_cluster[titles][:, None], ids.shape)[valid]
    assert same.mean() > 0.6, same.mean()


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_factor_similarity_is_the_cosine_of_the_current_title_factors(name):
    model = make_model(name, **FAST_PARAMS[name]).fit(DATA.train)

    def brute(items: np.ndarray, t: int) -> np.ndarray:
        norms = np.maximum(np.linalg.norm(items, axis=1), 1e-10)
        cos = items @ items[t] / norms / norms[t]
        cos[t] = -np.inf
        return np.sort(cos)[::-1][:5]

    for _ in range(2):  # the second round runs on new factors: a cached normalisation must not go stale
        _, scores = model.similar(np.array([3, 17]), 5)
        for row, t in enumerate((3, 17)):
            np.testing.assert_allclose(scores[row], brute(model.item_factors_, t), rtol=1e-4, atol=1e-5)
        model.item_factors_ = np.ascontiguousarray(model.item_factors_[::-1] * 2.0)


def test_ease_matches_explicit_inverse_and_zero_diagonal():
    X = DATA.train.matrix.toarray().astype(np.float64)
    lam = 50.0
    P = np.linalg.inv(X.T @ X + lam * np.eye(X.shape[1]))
    B = np.eye(X.shape[1]) - P / np.diag(P)
    model = fitted("ease")
    np.testing.assert_allclose(model.weights_, B, atol=2e-4)
    assert (np.diag(model.weights_) == 0).all()


def test_ease_refuses_huge_catalogue():
    with pytest.raises(Exception, match="max_titles"):
        make_model("ease", max_titles=10).fit(DATA.train)


def test_popularity_segments_and_trending():
    seg = np.where(DATA.reader_cluster == 0, "Chaoyang", "Nanguan")
    model = make_model("popular", min_segment_readers=5).fit(DATA.train, segments=seg)
    rows = np.flatnonzero(seg == "Chaoyang")[:5]
    s = model.score(reader_rows=rows)
    np.testing.assert_array_equal(s[0], model.score_segment("Chaoyang"))
    counts = (DATA.train.matrix[np.flatnonzero(seg == "Chaoyang")] > 0).sum(axis=0).A1
    np.testing.assert_array_equal(s[0], counts)
    # trending: a title borrowed many times long ago loses to one borrowed a few times this week
    events = pl.DataFrame(
        {
            "title_id": ["T0100"] * 10 + ["T0101"] * 3,
            "occurred_at": [datetime(2024, 1, 1)] * 10 + [datetime(2025, 6, 1)] * 3,
        }
    )
    trend = make_model("popular", half_life_days=30.0).fit(DATA.train, events=events)
    assert trend.global_scores_[101] > trend.global_scores_[100] > 0


def test_hybrid_fit_weights_prefers_the_informative_component():
    model = make_model("hybrid", components={"ease": fitted("ease"), "pop": fitted("popular")}, refit=False).fit(
        DATA.train
    )
    weights = model.fit_weights(DATA.train.matrix, DATA.target, metric="ndcg", k=10)
    assert weights["ease"] > weights["pop"]
    assert abs(sum(weights.values()) - 1.0) < 1e-6


def test_top_n_dense_pads_and_orders():
    scores = np.array([[0.1, 0.5, 0.3, np.nan]], dtype=np.float32)
    blocked = sp.csr_matrix(np.array([[0, 1, 0, 0]], dtype=np.float32))
    ids, s = top_n_dense(scores, 4, blocked, np.arange(4, dtype=np.int32))
    assert ids.tolist() == [[2, 0, -1, -1]]
    assert np.isneginf(s[0, 2:]).all()


def test_fit_rejects_wrong_input():
    with pytest.raises(TypeError, match="InteractionMatrix"):
        make_model("ease").fit(DATA.train.matrix)
    with pytest.raises(ValueError, match="does not match"):
        InteractionMatrix(DATA.train.matrix[:5], DATA.train.readers, DATA.train.titles)
    with pytest.raises(IndexError, match="reader rows out of range"):
        fitted("ease").recommend(np.array([10_000]), 5)
    with pytest.raises(ValueError, match="exactly one"):
        fitted("ease").score()


def test_blend_weight_search_pools_sets_by_their_readers():
    from recsys.models.hybrid import BlendSet, search_weights

    rng = np.random.default_rng(0)

    def one_set(readers: int, good: str) -> BlendSet:
        target = sp.random(readers, 30, density=0.1, random_state=int(rng.integers(1 << 30)), format="csr")
        target.data[:] = 1.0
        hits = target.toarray().astype(np.float32)
        informative = hits + rng.random((readers, 30), dtype=np.float32) * 0.1
        misleading = 1.0 - hits + rng.random((readers, 30), dtype=np.float32) * 0.1  # ranks the targets last
        parts = {"a": informative, "b": misleading} if good == "a" else {"a": misleading, "b": informative}
        return BlendSet(parts, sp.csr_matrix((readers, 30), dtype=np.float32), target)

    big_a, small_b = one_set(60, "a"), one_set(5, "b")
    weights, value, tried = search_weights([big_a, small_b], ["a", "b"], "ndcg", 5, (0.0, 1.0))
    assert weights == {"a": 1.0, "b": 0.0} and tried == 3 and 0.0 < value <= 1.0
    weights, _, _ = search_weights([one_set(5, "a"), one_set(60, "b")], ["a", "b"], "ndcg", 5, (0.0, 1.0))
    assert weights == {"a": 0.0, "b": 1.0}
    empty = BlendSet(big_a.parts, big_a.seen, sp.csr_matrix(big_a.target.shape, dtype=np.float32))
    assert empty.readers == 0
    with pytest.raises(ModelError, match="no held-out reader"):
        search_weights([empty], ["a", "b"])
