"""Promotion re-ranking: opt-out, MMR diversity, novelty, date-windowed boosts."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.filters import FilterConfig, build_exclusions
from recsys.rerank import Boost, PromotionConfig, boost_vectors, mmr_select, rerank
from tests.recsys._promotion_city import TODAY, build

NO_PROMO = dict(novelty_exponent=0.0, booklist_boost=0.0, local_literature_boost=0.0, new_arrival_boost=0.0)


@pytest.fixture(scope="module")
def city():
    frames, model, ctx = build(seed=1, n_titles=120, n_readers=30, n_loans=900)
    rows = np.arange(len(ctx.readers))
    per, glob = build_exclusions(ctx, rows, FilterConfig(require_available=False))
    cand, scores = model.recommend(rows, 40, exclude=per, candidates=np.flatnonzero(~glob))
    return model, ctx, rows, cand, scores


def _classes(ctx, ids):
    return [len(set(ctx.clc_top[r[r >= 0]].tolist())) for r in ids]


def test_opt_out_is_the_models_own_ranking(city):
    model, ctx, rows, cand, scores = city
    ids, sc, flags = rerank(cand, scores, ctx, rows, PromotionConfig(opt_out=True, mmr_lambda=0.0), 10)
    np.testing.assert_array_equal(ids, cand[:, :10])
    np.testing.assert_allclose(sc, scores[:, :10])
    assert not flags.any()


def test_returns_n_distinct_candidates(city):
    model, ctx, rows, cand, scores = city
    ids, sc, _ = rerank(cand, scores, ctx, rows, PromotionConfig(), 10)
    assert ids.shape == (len(rows), 10) and (ids >= 0).all()
    for i in range(len(rows)):
        assert len(set(ids[i])) == 10
        assert set(ids[i]) <= set(cand[i])


def test_lambda_one_without_promotion_keeps_model_order(city):
    model, ctx, rows, cand, scores = city
    ids, _, _ = rerank(cand, scores, ctx, rows, PromotionConfig(mmr_lambda=1.0, **NO_PROMO), 10)
    np.testing.assert_array_equal(ids, cand[:, :10])


def test_lambda_zero_takes_one_title_per_class_first(city):
    model, ctx, rows, cand, scores = city
    ids, _, _ = rerank(cand, scores, ctx, rows, PromotionConfig(mmr_lambda=0.0, **NO_PROMO), 10)
    for i in range(len(rows)):
        available = len(set(ctx.clc_top[cand[i]].tolist()))
        assert _classes(ctx, ids[i : i + 1])[0] == min(10, available)


def test_class_diversity_is_monotone_in_lambda(city):
    model, ctx, rows, cand, scores = city
    div = []
    for lam in np.linspace(0, 1, 6):
        ids, _, _ = rerank(cand, scores, ctx, rows, PromotionConfig(mmr_lambda=float(lam)), 10)
        div.append(np.mean(_classes(ctx, ids)))
    assert all(a >= b for a, b in zip(div, div[1:], strict=False)), div
    assert div[0] > div[-1]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    m=st.integers(2, 40),
    n=st.integers(1, 10),
    n_classes=st.integers(1, 6),
)
def test_mmr_distinct_classes_monotone_property(seed, m, n, n_classes):
    rng = np.random.default_rng(seed)
    rel = np.sort(rng.random((3, m)), axis=1)[:, ::-1]
    classes = rng.integers(0, n_classes, (3, m))
    valid = np.ones((3, m), bool)
    counts = []
    for lam in (0.0, 0.25, 0.5, 0.75, 1.0):
        picks = mmr_select(rel, classes, valid, lam, n)
        assert (picks >= 0).sum(axis=1).tolist() == [min(n, m)] * 3
        got = np.take_along_axis(classes, np.maximum(picks, 0), axis=1)
        counts.append([len(set(g[p >= 0].tolist())) for g, p in zip(got, picks, strict=True)])
    counts = np.array(counts)
    assert (np.diff(counts, axis=0) <= 0).all(), counts


def test_novelty_exponent_lowers_popularity_monotonically(city):
    model, ctx, rows, cand, scores = city
    totals = []
    for beta in (0.0, 0.2, 0.5, 1.0, 3.0):
        cfg = PromotionConfig(mmr_lambda=1.0, **{**NO_PROMO, "novelty_exponent": beta})
        ids, _, _ = rerank(cand, scores, ctx, rows, cfg, 10)
        totals.append(ctx.popularity[ids].sum(axis=1))
    totals = np.array(totals)
    assert (np.diff(totals, axis=0) <= 1e-9).all()
    assert totals[-1].sum() < totals[0].sum()


def test_booklist_boost_only_inside_its_window(city):
    model, ctx, rows, cand, scores = city
    bl = ctx.booklists
    cfg = PromotionConfig(**{**NO_PROMO, "booklist_boost": 0.5})
    for day in (TODAY, TODAY - timedelta(days=70), TODAY + timedelta(days=40), TODAY + timedelta(days=400)):
        boost, flags = boost_vectors(ctx, cfg, on=day)
        active = ((bl["starts_on"] <= day) & (bl["ends_on"] >= day)).to_numpy()
        members = np.asarray(ctx.booklist_items[np.flatnonzero(active)].sum(axis=0)).ravel() > 0
        np.testing.assert_array_equal((flags & Boost.BOOKLIST) > 0, members)
        np.testing.assert_allclose(boost, 0.5 * members)
        ids, _, applied = rerank(cand, scores, ctx, rows, cfg, 10, on=day)
        np.testing.assert_array_equal((applied & Boost.BOOKLIST) > 0, members[ids])
    # Inside the window a large boost lifts every candidate on the list into the top n.
    big = PromotionConfig(mmr_lambda=1.0, **{**NO_PROMO, "booklist_boost": 5.0})
    ids, _, _ = rerank(cand, scores, ctx, rows, big, 10)
    _, flags = boost_vectors(ctx, big)
    for i in range(len(rows)):
        listed = [t for t in cand[i] if flags[t] & Boost.BOOKLIST]
        assert set(listed[:10]) <= set(ids[i])


def test_theme_boost_overrides_default(city):
    model, ctx, rows, cand, scores = city
    theme = ctx.booklists["theme"][0]
    boost, _ = boost_vectors(ctx, PromotionConfig(**{**NO_PROMO, "theme_boosts": {theme: 0.9}}))
    assert set(np.unique(boost)) <= {0.0, 0.9}
    assert (boost == 0.9).any()


def test_local_and_new_arrival_flags(city):
    model, ctx, rows, cand, scores = city
    cfg = PromotionConfig(new_arrival_days=30)
    ids, _, applied = rerank(cand, scores, ctx, rows, cfg, 10)
    local = (applied & Boost.LOCAL_LITERATURE) > 0
    new = (applied & Boost.NEW_ARRIVAL) > 0
    np.testing.assert_array_equal(local, ctx.local_literature[ids])
    age = ctx.today_day - ctx.added_at[ids]
    np.testing.assert_array_equal(new, (age >= 0) & (age <= 30))


def test_padding_and_short_lists():
    frames, model, ctx = build(seed=2)
    cand = np.array([[3, 5, -1, -1]], np.int32)
    scores = np.array([[2.0, 1.0, -np.inf, -np.inf]], np.float32)
    ids, sc, _ = rerank(cand, scores, ctx, None, PromotionConfig(), 3)
    assert sorted(ids[0][:2].tolist()) == [3, 5] and ids[0][2] == -1 and np.isneginf(sc[0][2])
    with pytest.raises(ValueError, match="equal 2-D"):
        rerank(cand, scores[:, :2], ctx, None, PromotionConfig(), 3)
