"""Ranking and beyond-accuracy metrics: bounds, perfect lists, loop references, implicit cross-check."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys import metrics as M


def random_case(seed: int, readers: int = 30, titles: int = 25, n: int = 8):
    rng = np.random.default_rng(seed)
    recs = np.array([rng.permutation(titles)[:n] for _ in range(readers)], dtype=np.int32)
    # some padding at the tail
    pad = rng.random(readers) < 0.2
    recs[pad, -2:] = -1
    target = sp.csr_matrix(rng.random((readers, titles)) < 0.15, dtype=np.float32)
    return recs, target


def loop_reference(recs: np.ndarray, target: sp.csr_matrix, k: int) -> dict[str, float]:
    """Textbook definitions written as plain loops (tiny data only)."""
    sums = {m: 0.0 for m in ("precision", "recall", "recall_unnormalised", "ndcg", "map", "hit_rate")}
    users = 0
    for u in range(recs.shape[0]):
        rel = set(target[u].indices.tolist())
        if not rel:
            continue
        users += 1
        lst = [int(t) for t in recs[u, :k]]
        hits = [1.0 if t >= 0 and t in rel else 0.0 for t in lst]
        h = sum(hits)
        sums["precision"] += h / k
        sums["recall"] += h / min(k, len(rel))  # normalised
        sums["recall_unnormalised"] += h / len(rel)
        dcg = sum(x / math.log2(i + 2) for i, x in enumerate(hits))
        idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(rel))))
        sums["ndcg"] += dcg / idcg
        ap, found = 0.0, 0
        for i, x in enumerate(hits):
            if x:
                found += 1
                ap += found / (i + 1)
        sums["map"] += ap / min(k, len(rel))
        sums["hit_rate"] += 1.0 if h else 0.0
    return {m: v / users for m, v in sums.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 8])
def test_matches_loop_reference(seed, k):
    recs, target = random_case(seed)
    ref = loop_reference(recs, target, k)
    for name, fn in M.RANKING_METRICS.items():
        assert fn(recs[:, :k], target) == pytest.approx(ref[name], abs=1e-12), name
    table = M.evaluate(recs, target, ks=[k])
    for name in ref:
        assert table[name][0] == pytest.approx(ref[name], abs=1e-12)


def test_perfect_recommendations_score_one():
    rng = np.random.default_rng(3)
    target_rows = [rng.choice(50, rng.integers(10, 20), replace=False) for _ in range(40)]
    recs = np.array([r[:10] for r in target_rows], dtype=np.int32)
    rows = np.repeat(np.arange(40), [len(r) for r in target_rows])
    target = sp.csr_matrix((np.ones(rows.size), (rows, np.concatenate(target_rows))), shape=(40, 50))
    for name in ("precision", "recall", "ndcg", "map", "hit_rate"):
        assert M.RANKING_METRICS[name](recs, target) == pytest.approx(1.0), name
    assert M.unnormalised_recall_at_k(recs, target) < 1.0  # targets are longer than the list


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), k=st.integers(1, 8), density=st.floats(0.0, 0.6))
def test_metrics_bounded(seed, k, density):
    rng = np.random.default_rng(seed)
    recs = np.array([rng.permutation(20)[:8] for _ in range(12)], dtype=np.int32)
    recs[rng.random(recs.shape) < 0.1] = -1
    target = sp.csr_matrix(rng.random((12, 20)) < density, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no empty-mean warnings either
        table = M.evaluate(recs, target, ks=[k], title_class=np.arange(20) % 4, popularity=np.ones(20), n_readers=12)
    for name in (
        "precision",
        "recall",
        "recall_unnormalised",
        "ndcg",
        "map",
        "hit_rate",
        "coverage",
        "gini",
        "diversity",
    ):
        v = table[name][0]
        assert v is None or math.isnan(v) or -1e-12 <= v <= 1 + 1e-12, (name, v)
    assert M.recall_at_k(recs[:, :k], target) >= M.precision_at_k(recs[:, :k], target) - 1e-12 or (
        math.isnan(M.precision_at_k(recs[:, :k], target))
    )


def test_cross_check_with_implicit():
    """Our MAP and NDCG equal implicit's; implicit's 'precision' is our normalised recall pooled over
    readers (sum hits / sum min(k, |T|)) rather than averaged per reader."""
    implicit_eval = pytest.importorskip("implicit.evaluation")
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    train = sp.csr_matrix(rng.random((200, 80)) < 0.1, dtype=np.float32)
    test = sp.csr_matrix(rng.random((200, 80)) < 0.05, dtype=np.float32)
    test = sp.csr_matrix(test - test.multiply(train))
    test.eliminate_zeros()
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=8, iterations=3, random_state=0, num_threads=1)
    model.fit(train, show_progress=False)
    k = 10
    theirs = implicit_eval.ranking_metrics_at_k(model, train, test, K=k, show_progress=False)
    recs, _ = model.recommend(np.arange(200), train, N=k)
    assert M.map_at_k(recs, test) == pytest.approx(theirs["map"], rel=1e-9)
    assert M.ndcg_at_k(recs, test) == pytest.approx(theirs["ndcg"], rel=1e-9)
    hits = M.hit_matrix(recs, test).sum(axis=1)
    n_rel = np.diff(test.indptr)
    assert hits.sum() / np.minimum(k, n_rel).sum() == pytest.approx(theirs["precision"], rel=1e-9)


def test_coverage_gini_novelty():
    recs = np.array([[0, 1], [0, 1], [0, 1]])
    assert M.catalogue_coverage(recs, 4) == 0.5
    # two titles shown 3 times each, two never: Gini = 0.5 on 4 titles
    assert M.gini_exposure(recs, 4) == pytest.approx(0.5)
    equal = np.array([[0, 1], [2, 3]])
    assert M.gini_exposure(equal, 4) == pytest.approx(0.0)
    one = np.array([[0], [0], [0]])
    assert M.gini_exposure(one, 5) == pytest.approx(4 / 5)
    pop = np.array([100, 1, 50, 0])
    assert M.novelty(np.array([[1]]), pop, 100) > M.novelty(np.array([[0]]), pop, 100)
    assert M.novelty(np.array([[0]]), pop, 100) == pytest.approx(0.0)


def test_intra_list_diversity():
    codes = M.class_codes(["I247", "I24", "K29", "TP3", "I"])
    assert codes[0] == codes[1] == codes[4] and len({codes[0], codes[2], codes[3]}) == 3
    recs = np.array([[0, 1, 4], [0, 2, 3], [0, 2, -1], [0, -1, -1]])
    d = M.intra_list_diversity(recs, codes)
    assert d[0] == pytest.approx(0.0)
    assert d[1] == pytest.approx(1.0)
    assert d[2] == pytest.approx(1.0)
    assert math.isnan(d[3])
    assert M.intra_list_diversity(np.array([[0, 1, 2]]), codes)[0] == pytest.approx(2 / 3)


def test_evaluate_segments_are_consistent_with_overall():
    recs, target = random_case(5, readers=60)
    seg = np.array(["adult", "child_7_12", "senior_60"])[np.arange(60) % 3]
    table = M.evaluate(recs, target, ks=[3, 8], segments=seg)
    assert set(table["segment"]) == {"all", "adult", "child_7_12", "senior_60"}
    for k in (3, 8):
        t = table.filter(table["k"] == k)
        overall = t.filter(t["segment"] == "all")
        parts = t.filter(t["segment"] != "all")
        assert parts["readers"].sum() == overall["readers"][0]
        weighted = (parts["ndcg"] * parts["readers"]).sum() / parts["readers"].sum()
        assert weighted == pytest.approx(overall["ndcg"][0])
        for s in ("adult", "senior_60"):
            mask = seg == s
            assert t.filter(t["segment"] == s)["precision"][0] == pytest.approx(
                M.precision_at_k(recs[mask][:, :k], target[mask])
            )
    with pytest.raises(ValueError, match="exceeds"):
        M.evaluate(recs, target, ks=[50])


def test_hit_matrix_validates_shapes():
    with pytest.raises(ValueError, match="reader rows"):
        M.hit_matrix(np.zeros((3, 2), dtype=int), sp.csr_matrix((4, 5)))
    assert not M.hit_matrix(np.full((2, 3), -1), sp.csr_matrix(np.ones((2, 5)))).any()


def test_metric_names_are_metric_at_k_everywhere():
    recs, target = random_case(4)
    values = M.metric_values(recs, target, ["recall@5", "recall_unnormalised@5", "ndcg@8", "coverage@8"])
    assert values["recall@5"] == M.recall_at_k(recs, target, 5)
    assert values["recall_unnormalised@5"] == M.unnormalised_recall_at_k(recs, target, 5)
    assert values["ndcg@8"] == M.ndcg_at_k(recs, target, 8)
    assert values["coverage@8"] == M.catalogue_coverage(recs, target.shape[1], 8)
    named = M.metrics_by_name(M.evaluate(recs, target, ks=[5, 8]))
    for name, value in values.items():
        assert named[name] == pytest.approx(value, abs=0), name
    assert {n.partition("@")[0] for n in named if "@" in n} <= set(M.METRIC_NAMES)
    assert M.parse_metric_name("map@10") == ("map", 10)
    with pytest.raises(ValueError, match="now called 'recall'"):
        M.parse_metric_name("nrecall@20")
    with pytest.raises(ValueError, match="<metric>@<k>"):
        M.parse_metric_name("auc@10")
