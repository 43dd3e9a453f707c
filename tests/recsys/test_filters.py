"""Filters: exclusions applied before the top-n cut."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.schema import AGE_BANDS, AUDIENCES, CARD_TYPES
from recsys.context import HISTORY_OFFSET, LibraryContext
from recsys.filters import FilterConfig, admissible, build_exclusions
from tests.recsys._promotion_city import TODAY, build, make_frames, matrix_of


@pytest.fixture(scope="module")
def city():
    return build(seed=3)


def _reachable_truth(ctx: LibraryContext, reader: int) -> np.ndarray:
    """Independent per-title availability for one reader, from the copies frame semantics."""
    b = ctx.reader_home_branch[reader]
    shelf = ctx.on_shelf.toarray() > 0
    print_ok = shelf.any(axis=1) if b < 0 or ctx.branch_delivers[b] else shelf[:, b]
    return ctx.digital | print_ok


def test_context_alignment(city):
    frames, model, ctx = city
    titles = frames["titles"]
    # Title arrays follow the model's vocabulary, whatever the frame order.
    t = model.titles_.get("T005")
    assert ctx.title_text[t] == titles.filter(pl.col("title_id") == "T005")["title"][0]
    # Withdrawn = print title none of whose copies is left.
    copies = frames["copies"].filter(pl.col("title_id") == "T005")
    live = copies.filter(~pl.col("status").is_in(["withdrawn", "lost"])).height
    is_print = titles.filter(pl.col("title_id") == "T005")["format"][0] == "print"
    assert bool(ctx.withdrawn[t]) == (is_print and live == 0)
    # History holds exactly the (reader, title) pairs of the loans.
    pairs = set(zip(frames["loans"]["reader_id"], frames["loans"]["title_id"], strict=True))
    h = ctx.history.tocoo()
    got = set(zip(ctx.readers.lookup(h.row), ctx.titles.lookup(h.col), strict=True))
    assert got == pairs


def test_everything_excluded_is_really_inadmissible(city):
    frames, model, ctx = city
    readers = np.arange(len(ctx.readers))
    per, glob = build_exclusions(ctx, readers, FilterConfig())
    ok = admissible(per, glob)
    adult_only = ctx.audience == AUDIENCES.index("adult_only")
    for r in readers:
        allowed = ok[r]
        assert not (allowed & ~_reachable_truth(ctx, r)).any()
        assert not (allowed & ctx.withdrawn).any()
        assert not (allowed & (ctx.history[r].toarray().ravel() > 0)).any()
        minor = AGE_BANDS[ctx.reader_age_band[r]] != "adult" and AGE_BANDS[ctx.reader_age_band[r]] != "senior_60"
        if minor or CARD_TYPES[ctx.reader_card_type[r]] == "child":
            assert not (allowed & adult_only).any()
    # Filters do not over-block: an adult with a standard card may get adult_only titles that are reachable.
    adults = np.flatnonzero(
        (ctx.reader_age_band == AGE_BANDS.index("adult")) & (ctx.reader_card_type == CARD_TYPES.index("standard"))
    )
    for r in adults:
        expect = _reachable_truth(ctx, r) & ~ctx.withdrawn & (ctx.history[r].toarray().ravel() == 0)
        assert (ok[r] == expect).all()


def test_borrowed_window():
    frames, model, ctx = build(seed=4)
    r = int(np.argmax(np.diff(ctx.history.indptr)))
    days = ctx.history[r].data - HISTORY_OFFSET
    window = int(ctx.today_day - np.median(days))
    cfg = FilterConfig(borrowed_window_days=window, require_available=False, audience_rules=False)
    per, _ = build_exclusions(ctx, np.array([r]), cfg)
    blocked = set(per[0].indices.tolist())
    recent = set(ctx.history[r].indices[days >= ctx.today_day - window].tolist())
    assert blocked == recent
    assert 0 < len(recent) < ctx.history[r].nnz
    per_ever, _ = build_exclusions(ctx, np.array([r]), cfg.model_copy(update={"borrowed_window_days": None}))
    assert per_ever.nnz == ctx.history[r].nnz


def test_explicit_exclusions_and_unknown_readers(city):
    frames, model, ctx = city
    cfg = FilterConfig(excluded_title_ids=("T001", "T002", "NOPE"))
    per, glob = build_exclusions(ctx, np.array([-1, 0]), cfg)
    assert glob[model.titles_.get("T001")] and glob[model.titles_.get("T002")]
    # An unknown reader has no history and is protected like a minor by default.
    adult_only = np.flatnonzero(ctx.audience == AUDIENCES.index("adult_only"))
    assert set(adult_only) <= set(per[0].indices) | set(np.flatnonzero(glob))
    per2, _ = build_exclusions(ctx, np.array([-1]), cfg.model_copy(update={"unknown_reader_is_minor": False}))
    assert not set(adult_only) & set(per2[0].indices)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="age band"):
        FilterConfig(minor_age_bands=("toddler",))
    with pytest.raises(ValueError, match="audiences"):
        FilterConfig(audiences_by_age_band={"child_0_6": ("cartoons",)})


def test_no_holdings_means_no_availability_filter():
    frames = make_frames(seed=5)
    im = matrix_of(frames)
    no_copies = {k: v for k, v in frames.items() if k != "copies"}
    ctx = LibraryContext.from_frames(no_copies, im.titles, im.readers, TODAY)
    assert not ctx.has_holdings and not ctx.withdrawn.any()
    per, glob = build_exclusions(ctx, np.arange(5), FilterConfig(audience_rules=False, filter_borrowed=False))
    assert per.nnz == 0 and not glob.any()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 12),
    window=st.one_of(st.none(), st.integers(0, 400)),
    readers=st.lists(st.integers(-1, 39), min_size=1, max_size=8),
)
def test_model_never_returns_an_excluded_title_and_fills_n(seed, n, window, readers):
    frames, model, ctx = build(seed=seed % 7, today=TODAY + timedelta(days=seed % 50))
    rows = np.array(readers)
    cfg = FilterConfig(borrowed_window_days=window)
    per, glob = build_exclusions(ctx, rows, cfg)
    ok = admissible(per, glob)
    m_rows = np.maximum(rows, 0)
    hist = model.user_items_[m_rows].multiply((rows >= 0)[:, None]).tocsr()
    ids, scores = model.recommend(
        None, n, filter_seen=False, exclude=per, candidates=np.flatnonzero(~glob), history=hist
    )
    for i in range(len(rows)):
        got = ids[i][ids[i] >= 0]
        assert ok[i, got].all()
        assert len(got) == min(n, int(ok[i].sum()))


def test_child_cards_never_get_adult_only():
    frames = make_frames(seed=11)
    frames["readers"] = frames["readers"].with_columns(card_type=pl.lit("child"), age_band=pl.lit("adult"))
    im = matrix_of(frames)
    ctx = LibraryContext.from_frames(frames, im.titles, im.readers, date(2026, 6, 15))
    per, glob = build_exclusions(ctx, np.arange(len(ctx.readers)), FilterConfig())
    ok = admissible(per, glob)
    assert not ok[:, ctx.audience == AUDIENCES.index("adult_only")].any()


def test_loans_before_1970_and_undated_loans_count_as_borrowed():
    frames = make_frames(seed=9, n_loans=50)
    loans = frames["loans"].with_columns(
        borrowed_at=pl.when(pl.int_range(pl.len()) % 3 == 0)
        .then(None)
        .otherwise(pl.col("borrowed_at").dt.offset_by("-90y"))
    )
    frames["loans"] = loans
    im = matrix_of(frames)
    ctx = LibraryContext.from_frames(frames, im.titles, im.readers, date(1936, 6, 1))
    assert ctx.history.nnz == im.matrix.nnz and (ctx.history.data > 0).all()
    rows = np.arange(len(ctx.readers))
    every = build_exclusions(ctx, rows, FilterConfig(require_available=False, audience_rules=False))[0]
    assert (every.toarray() == (im.matrix.toarray() > 0)).all()
    # A window only keeps dated loans inside it (undated loans count as long ago).
    recent = ctx.borrowed_since(rows, ctx.today_day - 365)
    dated = loans.filter(pl.col("borrowed_at").dt.date() >= date(1936, 6, 1) - timedelta(days=365))
    expect = set(zip(dated["reader_id"], dated["title_id"], strict=True))
    got = recent.tocoo()
    assert set(zip(ctx.readers.lookup(got.row), ctx.titles.lookup(got.col), strict=True)) == expect
