"""Explanations: every reason is checked against the raw frames, not the context arrays."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.explain import ReasonCode, explain
from tests.recsys._promotion_city import TODAY, build


@pytest.fixture(scope="module")
def city():
    return build(seed=6, n_titles=90, n_readers=40, n_loans=800)


def check_reason(frames, reason, reader_id, title_id, branch_id, extra=(), on=TODAY, new_days=90):
    """Assert one reason is true according to the source frames."""
    loans = frames["loans"]
    titles = frames["titles"].filter(pl.col("title_id") == title_id).row(0, named=True)
    shelf = frames["copies"].filter((pl.col("status") == "on_shelf") & (pl.col("title_id") == title_id))
    code = reason.code
    if code in (ReasonCode.BECAUSE_YOU_BORROWED, ReasonCode.ALSO_BORROWED):
        mine = set(loans.filter(pl.col("reader_id") == reader_id)["title_id"]) | set(extra)
        assert reason.ref in mine and reason.ref != title_id
        if code == ReasonCode.ALSO_BORROWED:
            a = set(loans.filter(pl.col("title_id") == reason.ref)["reader_id"])
            b = set(loans.filter(pl.col("title_id") == title_id)["reader_id"])
            n_others = len((a & b) - {reader_id})
            assert reason.text.startswith(f"{n_others} reader") and n_others >= 1
    elif code == ReasonCode.ON_BOOKLIST:
        bl = frames["booklists"].filter(pl.col("booklist_id") == reason.ref).row(0, named=True)
        assert bl["starts_on"] <= on <= bl["ends_on"]
        items = frames["booklist_items"].filter(pl.col("booklist_id") == reason.ref)
        assert title_id in set(items["title_id"])
        assert bl["name"] in reason.text
    elif code == ReasonCode.NEW_ARRIVAL:
        assert 0 <= (on - titles["added_at"]).days <= new_days
    elif code == ReasonCode.LOCAL_LITERATURE:
        assert titles["local_literature"]
    elif code == ReasonCode.EBOOK:
        assert titles["format"] == "ebook"
    elif code == ReasonCode.AVAILABLE_AT:
        assert reason.ref in set(shelf["branch_id"])
        name = frames["branches"].filter(pl.col("branch_id") == reason.ref)["name"][0]
        assert name in reason.text
    elif code == ReasonCode.HOME_DELIVERY:
        assert frames["branches"].filter(pl.col("branch_id") == branch_id)["delivers"][0]
        assert reason.ref in set(shelf["branch_id"])
    elif code == ReasonCode.POPULAR_AT_BRANCH:
        at = loans.filter(pl.col("branch_id") == reason.ref).group_by("title_id").len()
        mine = at.filter(pl.col("title_id") == title_id)["len"]
        assert len(mine) == 1
        assert (at["len"] > mine[0]).sum() < 50
    elif code == ReasonCode.POPULAR_IN_CITY:
        counts = loans.group_by("title_id").len()
        mine = counts.filter(pl.col("title_id") == title_id)["len"]
        assert len(mine) == 1 and (counts["len"] > mine[0]).sum() < 50
    else:  # pragma: no cover
        raise AssertionError(f"unchecked reason {code}")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    readers=st.lists(st.integers(-1, 39), min_size=1, max_size=6),
    n=st.integers(1, 8),
    seed=st.integers(0, 1000),
    shift=st.integers(-80, 80),
    with_extra=st.booleans(),
)
def test_every_reason_is_true_for_any_title(city, readers, n, seed, shift, with_extra):
    frames, model, ctx = city
    rng = np.random.default_rng(seed)
    rows = np.array(readers)
    recs = rng.integers(-1, len(ctx.titles), (len(rows), n))
    extra = None
    extra_ids: list[list[str]] = [[] for _ in rows]
    if with_extra:
        cols = rng.integers(0, len(ctx.titles), len(rows))
        extra = sp.csr_matrix(
            (np.ones(len(rows), bool), (np.arange(len(rows)), cols)), shape=(len(rows), len(ctx.titles))
        )
        extra_ids = [[ctx.titles.ids[c]] for c in cols]
    on = TODAY + timedelta(days=shift)
    out = explain(ctx, rows, recs, extra_history=extra, similar=model.similar, on=on)
    branches = ctx.branch_of(rows)
    for i, r in enumerate(rows):
        rid = ctx.readers.ids[r] if r >= 0 else "unknown"
        bid = ctx.branches.ids[branches[i]] if branches[i] >= 0 else None
        for j in range(n):
            if recs[i, j] < 0:
                assert out[i][j] == []
                continue
            for reason in out[i][j]:
                check_reason(frames, reason, rid, ctx.titles.ids[recs[i, j]], bid, extra_ids[i], on=on)


def test_personal_reason_uses_strongest_co_borrowed_title(city):
    frames, model, ctx = city
    r = int(np.argmax(np.diff(ctx.history.indptr)))
    recs, _ = model.recommend(np.array([r]), 5)
    out = explain(ctx, np.array([r]), recs)
    network = (ctx.history > 0).astype(np.float64)
    co = (network.T @ network).toarray()
    readers_per = np.diag(co)
    mine = ctx.history[r].indices
    found = 0
    for j, t in enumerate(recs[0]):
        personal = [x for x in out[0][j] if x.code == ReasonCode.BECAUSE_YOU_BORROWED]
        cos = (co[mine, t] - network[r, t]) / np.sqrt(readers_per[mine] * readers_per[t])
        if cos.max() > 0:
            found += 1
            h = model.titles_.get(personal[0].ref)
            assert np.isclose(cos[list(mine).index(h)], cos.max())
    assert found > 0


def test_cold_start_gets_popularity_reasons(city):
    frames, model, ctx = city
    top = np.argsort(-ctx.popularity)[:5]
    out = explain(ctx, np.array([-1]), top[None, :], branch_rows=np.array([-1]))
    assert all(any(x.code == ReasonCode.POPULAR_IN_CITY for x in rs) for rs in out[0])
    assert not any(x.code == ReasonCode.BECAUSE_YOU_BORROWED for rs in out[0] for x in rs)
