"""Expected waits, exposure prices, the queue-aware service and the library metrics of issue 21."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from features.vocab import Vocabulary
from recsys.explain import ReasonCode, render
from recsys.exposure import dual_prices, load_prices, save_prices
from recsys.metrics import (
    borrowable_share,
    exposure_gini_per_title,
    rank_biased_precision,
    serendipity,
)
from recsys.queues import Circulation, circulation_from_frames, expected_wait, servable
from recsys.rerank import QUEUE_AWARE, PromotionConfig
from recsys.service import RecommendationService
from tests.recsys._promotion_city import TODAY, make_frames, matrix_of


def _spec_wait(copies, free, queue, returns, cycle, digital, here, delivers, transfer, delivery):
    """One title at a time, in plain Python: the rule of recsys.queues written out."""
    if digital:
        return 0.0
    if free > 0:
        return 0.0 if here else (delivery if delivers else transfer)
    if copies == 0:
        return float("inf")
    if returns:
        back = sorted(returns)
        return back[queue % len(back)] + (queue // len(back)) * cycle
    return 2.5 + (queue // copies) * cycle


titles_state = st.lists(
    st.tuples(
        st.integers(0, 4),  # copies
        st.integers(0, 4),  # queue
        st.lists(st.floats(0.5, 60.0), max_size=4),  # returns of loans out
        st.booleans(),  # a copy free
        st.booleans(),  # digital
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(state=titles_state, here=st.booleans(), delivers=st.booleans())
def test_expected_wait_matches_the_one_title_rule(state, here, delivers):
    copies = np.array([max(c, len(r) + f) for c, _, r, f, _ in state])
    free = np.array([int(f) for *_, f, _ in state])
    queue = np.array([q if not f else 0 for _, q, _, f, _ in state])
    digital = np.array([d for *_, d in state])
    t_of = np.concatenate([[i] * len(r) for i, (_, _, r, _, _) in enumerate(state)] + [[]]).astype(np.int64)
    back = np.concatenate([r for _, _, r, _, _ in state] + [[]])
    circ = Circulation.from_returns(copies, free, queue, t_of, back, 21.0, digital)
    titles = np.arange(len(state))[None, :]
    w = expected_wait(circ, titles, np.full(titles.shape, here), np.array([delivers]), 3.0, 2.0)
    for i, (_, _, r, _, _) in enumerate(state):
        spec = _spec_wait(copies[i], free[i], queue[i], r, 21.0, digital[i], here, delivers, 3.0, 2.0)
        assert w.days[0, i] == pytest.approx(spec)
        assert w.days[0, i] >= 0
        assert w.ahead[0, i] == (0 if free[i] or digital[i] else queue[i])


def test_more_holds_never_shorten_the_wait():
    circ = Circulation.from_returns([2, 2], [0, 0], [0, 5], [0, 0, 1, 1], [4.0, 9.0, 4.0, 9.0], 20.0, [False, False])
    w = expected_wait(circ, np.array([[0, 1]]), np.zeros((1, 2), bool), np.array([False]))
    assert w.days[0, 0] == pytest.approx(4.0)  # first back
    assert w.days[0, 1] == pytest.approx(9.0 + 2 * 20.0)  # 5 ahead over 2 copies: second copy, third round


def test_servable_counts_free_and_returning_copies_less_the_queue():
    circ = Circulation.from_returns([3, 1, 1], [1, 0, 0], [0, 2, 0], [0, 0, 1, 2], [2.0, 30.0, 1.0, 3.0], 20.0,
                                    [False, False, False])  # fmt: skip
    cap = servable(circ, 7.0)
    assert cap.tolist() == [2.0, 0.0, 1.0]


def _frames_with_circulation(seed: int = 3):
    frames = make_frames(seed, n_titles=80, n_readers=40, n_loans=700)
    loans = frames["loans"]
    recent = pl.col("borrowed_at") >= datetime(TODAY.year, TODAY.month, TODAY.day) - timedelta(days=20)
    frames["loans"] = loans.with_columns(
        due_at=pl.col("borrowed_at") + pl.duration(days=30),
        returned_at=pl.when(recent).then(None).otherwise(pl.col("borrowed_at") + pl.duration(days=15)),
    )
    out = frames["loans"].filter(pl.col("returned_at").is_null())
    frames["holds"] = pl.DataFrame(
        {
            "hold_id": [f"H{i}" for i in range(len(out))],
            "reader_id": out["reader_id"],
            "title_id": out["title_id"],
            "branch_id": out["branch_id"],
            "placed_at": out["borrowed_at"] + timedelta(days=1),
            "fulfilled_at": pl.Series([None] * len(out), dtype=pl.Datetime("us")),
        }
    )
    return frames


def test_circulation_from_frames_counts_open_loans_and_waiting_holds():
    frames = _frames_with_circulation()
    titles = Vocabulary(frames["titles"]["title_id"], "title_id")
    digital = (frames["titles"]["format"] == "ebook").to_numpy()
    circ = circulation_from_frames(frames["copies"], frames["loans"], frames["holds"], titles, TODAY, digital)
    out = frames["loans"].filter(pl.col("returned_at").is_null())
    assert circ.n_out.sum() == len(out)
    now = datetime(TODAY.year, TODAY.month, TODAY.day)
    placed = frames["holds"].filter(pl.col("placed_at") < now)
    assert 0 < circ.queue.sum() == len(placed) < len(frames["holds"])  # a hold placed later is not waiting yet
    assert (circ.returns >= 0.5).all() and (circ.returns <= 30 + 2.5 + 1e-9).all()
    live = frames["copies"].filter(~pl.col("status").is_in(["lost", "withdrawn"])).group_by("title_id").len()
    t = titles.index(live["title_id"])
    assert (circ.copies[t] == live["len"].to_numpy()).all()


@pytest.fixture(scope="module")
def queue_service():
    from recsys.context import LibraryContext
    from tests.recsys._promotion_city import TinyItemKNN

    frames = _frames_with_circulation()
    model = TinyItemKNN().fit(matrix_of(frames))
    ctx = LibraryContext.from_frames(frames, model.titles_, model.readers_, TODAY)
    cfg = PromotionConfig(**QUEUE_AWARE)
    return ctx, RecommendationService(model, ctx, promotion_config=cfg), cfg


def test_queue_aware_lists_say_when_and_respect_the_wait_limit(queue_service):
    ctx, svc, cfg = queue_service
    readers = list(ctx.readers.ids[:25])
    out = svc.recommend_for_readers(readers, n=8)
    seen_wait = False
    for recs in out.values():
        for r in recs:
            assert r.expected_wait_days is not None and r.expected_wait_days <= cfg.max_wait_days
            access = [x for x in r.reasons if x.code in (ReasonCode.WAIT, ReasonCode.AVAILABLE_AT,
                                                         ReasonCode.HOME_DELIVERY, ReasonCode.EBOOK)]  # fmt: skip
            assert len(access) == 1, r.reasons
            zh = render(access[0], "zh-CN")
            if access[0].code == ReasonCode.WAIT:
                seen_wait = True
                assert r.expected_wait_days > 0 and "天" in zh and "About" in render(access[0], "en")
                if r.readers_waiting:
                    assert f"{r.readers_waiting} 位读者在排队" in zh
            elif r.expected_wait_days == 0 and access[0].code == ReasonCode.AVAILABLE_AT:
                assert "架上可借" in zh
    assert seen_wait, "no title out on loan was recommended: the test data does not exercise the queue"


def test_queue_off_keeps_todays_shelf_filter(queue_service):
    ctx, svc, _ = queue_service
    plain = RecommendationService(svc.model, ctx)
    for recs in plain.recommend_for_readers(list(ctx.readers.ids[:10]), n=8).values():
        for r in recs:
            assert r.expected_wait_days is None
            assert r.available_at or ctx.digital[ctx.titles.get(r.title_id)]


def test_exposure_prices_push_an_overexposed_title_out_of_lists(queue_service):
    ctx, svc, cfg = queue_service
    readers = list(ctx.readers.ids[:25])
    before = svc.recommend_for_readers(readers, n=8)
    counts = pl.Series([r.title_id for recs in before.values() for r in recs]).value_counts(sort=True)
    top = counts[counts.columns[0]][0]
    svc.exposure_prices = np.zeros(len(ctx.titles))
    svc.exposure_prices[ctx.titles.get(top)] = 10.0
    after = svc.recommend_for_readers(readers, n=8)
    svc.exposure_prices = np.zeros(len(ctx.titles))
    assert all(r.title_id != top for recs in after.values() for r in recs)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 30), m=st.integers(2, 12), n=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_dual_prices_never_increase_the_overload(k, m, n, seed):
    rng = np.random.default_rng(seed)
    n_t = 15
    cand = np.stack([rng.choice(n_t, m, replace=False) for _ in range(k)])
    rel = rng.random((k, m))
    cap = rng.integers(0, 6, n_t).astype(float)
    cap[rng.random(n_t) < 0.3] = np.inf
    res = dual_prices(cand, rel, cap, n)
    free = dual_prices(cand, rel, cap, n, iterations=1)  # round 0: no prices
    assert (res.prices >= 0).all()
    assert (res.prices[np.isinf(cap)] == 0).all()
    over = np.maximum(res.load - cap, 0).sum()
    assert over <= np.maximum(free.load - cap, 0).sum() + 1e-9
    assert res.load.sum() == pytest.approx(k * min(n, m))


def test_prices_round_trip_through_their_file(tmp_path):
    titles = Vocabulary(["T1", "T2", "T3"], "title_id")
    p = save_prices(tmp_path / "prices.json", titles, np.array([0.0, 0.25, 1.5]), {"on": "2026-07-01"})
    other = Vocabulary(["T3", "T9", "T2"], "title_id")
    assert load_prices(p, other).tolist() == [1.5, 0.0, 0.25]


lists = st.integers(1, 12).flatmap(
    lambda k: st.tuples(
        st.lists(st.lists(st.integers(-1, 19), min_size=10, max_size=10), min_size=k, max_size=k),
        st.lists(st.lists(st.integers(0, 19), max_size=6), min_size=k, max_size=k),
        st.lists(st.lists(st.integers(-1, 19), min_size=5, max_size=5), min_size=k, max_size=k),
    )
)


def _target(rows: list[list[int]]) -> sp.csr_matrix:
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [t for row in rows for t in row]
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), 20))


@settings(max_examples=80, deadline=None)
@given(data=lists, p=st.floats(0.05, 0.95))
def test_library_metrics_stay_in_range(data, p):
    recs, target_rows, expected = np.array(data[0]), _target(data[1]), np.array(data[2])
    rbp = rank_biased_precision(recs, target_rows, p, 10)
    ser = serendipity(recs, target_rows, expected, 10)
    if np.isnan(rbp):
        assert target_rows.nnz == 0
    else:
        assert 0.0 <= rbp <= 1.0 - p**10 + 1e-12
        assert 0.0 <= ser <= 1.0
    waits = np.random.default_rng(0).exponential(10.0, recs.shape)
    share = borrowable_share(recs, waits, 7.0)
    assert np.isnan(share) or 0.0 <= share <= 1.0
    g = exposure_gini_per_title(recs, 20, 10)
    assert np.isnan(g) or 0.0 <= g <= 1.0


def test_serendipity_is_zero_when_every_hit_was_expected_and_rbp_weights_the_top():
    recs = np.array([[1, 2, 3]])
    target = _target([[1, 2]])
    assert serendipity(recs, target, np.array([[1, 2]]), 3) == 0.0
    assert serendipity(recs, target, np.array([[9, 9]]), 3) == pytest.approx(2 / 3)
    top = rank_biased_precision(np.array([[1, 5, 6]]), _target([[1]]), 0.5)
    low = rank_biased_precision(np.array([[5, 6, 1]]), _target([[1]]), 0.5)
    assert top == pytest.approx(0.5) and low == pytest.approx(0.125)
    assert borrowable_share(np.array([[1, 2, -1]]), np.array([[0.0, 9.0, 0.0]]), 7.0) == 0.5


def test_the_simulations_dense_wait_is_expected_wait():
    from recsys.evaluation.simulation import World, _wait_all

    rng = np.random.default_rng(4)
    n_t, k = 12, 5
    copies = rng.integers(0, 4, n_t)
    free = np.minimum(rng.integers(0, 2, n_t), copies)
    t_of = np.repeat(np.arange(n_t), copies - free)
    circ = Circulation.from_returns(copies, free, rng.integers(0, 4, n_t), t_of, rng.uniform(1, 40, len(t_of)),
                                    21.0, rng.random(n_t) < 0.2)  # fmt: skip
    located = rng.random((k, n_t)) < 0.4
    delivers = rng.random(k) < 0.5
    world = World(None, None, np.arange(k), None, copies, located, delivers, circ.digital, 18.0, None, 0.0)
    cfg = PromotionConfig(**QUEUE_AWARE)
    dense = _wait_all(world, circ, cfg)
    titles = np.broadcast_to(np.arange(n_t), (k, n_t))
    ref = expected_wait(circ, titles, located, delivers, cfg.transfer_days, cfg.delivery_days).days
    assert np.array_equal(dense, ref)


def test_nightly_prices_bound_exposure_when_stored_and_loaded(queue_service, tmp_path):
    ctx, svc, cfg = queue_service
    tight = RecommendationService(svc.model, ctx, promotion_config=cfg.model_copy(update={"exposures_per_loan": 1.0}))
    readers = list(ctx.readers.ids)
    res = tight.exposure_prices_for(readers, n=5, batch=16)
    assert res.prices.shape == (len(ctx.titles),) and (res.prices >= 0).all()
    assert (res.prices > 0).any(), "a tight cap must price some title"

    def shown(service) -> np.ndarray:
        out = service.recommend_for_readers(readers, n=5)
        idx = [ctx.titles.get(r.title_id) for recs in out.values() for r in recs]
        return np.bincount(idx, minlength=len(ctx.titles))

    before = shown(tight)
    save_prices(tmp_path / "p.json", ctx.titles, res.prices)
    tight.load_exposure_prices(tmp_path / "p.json")
    after = shown(tight)
    priced = res.prices > 0
    assert after[priced].sum() < before[priced].sum()
