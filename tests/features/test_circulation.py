"""Circulation physics: one reader per copy, FIFO holds, capacity, and the synthetic city obeys it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.circulation import AFTER_HOLD, CANCELLED, IMMEDIATE, WALKED_AWAY, QueuePolicy, serve, served_in_window


def _reference(group, t, occ, n_copies, u, patience, policy=QueuePolicy(walk_base=0.15, queue_half=3.0, ring=32)):
    """The same rules, one intent at a time in plain Python (the specification; the documented
    defaults are spelled out so that changing them in the code is caught)."""
    outcome, start, slot = [], [], []
    free = {g: [-np.inf] * int(c) for g, c in enumerate(n_copies)}
    held: dict[int, list[float]] = {g: [] for g in free}
    for g, tk, ok, uk, pk in zip(group, t, occ, u, patience, strict=True):
        f = free[g]
        if not f:
            outcome.append(WALKED_AWAY), start.append(np.nan), slot.append(-1)
            continue
        c = int(np.argmin(f))
        ahead = sum(s > tk for s in held[g][-policy.ring :])
        if f[c] <= tk:
            outcome.append(IMMEDIATE), start.append(tk), slot.append(c)
            f[c] = tk + ok
        elif uk < policy.walk_base + (1 - policy.walk_base) * ahead / (ahead + policy.queue_half):
            outcome.append(WALKED_AWAY), start.append(np.nan), slot.append(-1)
        elif f[c] - tk > pk:
            outcome.append(CANCELLED), start.append(np.nan), slot.append(-1)
        else:
            outcome.append(AFTER_HOLD), start.append(f[c]), slot.append(c)
            held[g].append(f[c])
            f[c] = f[c] + ok
    return np.array(outcome), np.array(start), np.array(slot)


@st.composite
def _intents(draw):
    n_groups = draw(st.integers(1, 6))
    n = draw(st.integers(0, 120))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    group = np.sort(rng.integers(0, n_groups, n))
    t = rng.uniform(0, draw(st.sampled_from([30.0, 200.0, 1000.0])), n)
    order = np.lexsort((t, group))
    n_copies = rng.integers(0, 4, n_groups)
    occ = rng.uniform(2.0, 60.0, n)
    return group[order], t[order], occ, n_copies, rng.random(n), rng.exponential(40.0, n)


@settings(max_examples=150, deadline=None)
@given(_intents())
def test_serve_matches_the_one_at_a_time_specification(case) -> None:
    group, t, occ, n_copies, u, patience = case
    res = serve(group, t, occ, n_copies, u, patience)
    outcome, start, slot = _reference(group, t, occ, n_copies, u, patience)
    assert (res.outcome == outcome).all()
    np.testing.assert_array_equal(res.start, start)
    assert (res.slot == slot).all()


@settings(max_examples=150, deadline=None)
@given(_intents())
def test_a_copy_serves_one_reader_at_a_time_first_come_first_served(case) -> None:
    group, t, occ, n_copies, u, patience = case
    res = serve(group, t, occ, n_copies, u, patience)
    lent = res.lent
    assert (res.slot[lent] < n_copies[group[lent]]).all() and (res.slot[lent] >= 0).all()
    assert (res.start[lent] >= t[lent]).all(), "a loan before the reader wanted the book"
    assert (res.start[res.outcome == IMMEDIATE] == t[res.outcome == IMMEDIATE]).all()
    # No overlap on any copy: each loan starts after the previous one on that copy ended.
    key = group[lent] * 10 + res.slot[lent]
    o = np.lexsort((res.start[lent], key))
    s, e, k = res.start[lent][o], (res.start + occ)[lent][o], key[o]
    same = k[1:] == k[:-1]
    assert (s[1:][same] >= e[:-1][same]).all()
    # FIFO: within a title, loans start in the order the readers asked.
    for g in np.unique(group[lent]):
        starts = res.start[lent & (group == g)]
        assert (np.diff(starts) >= 0).all()
    assert not res.lent[n_copies[group] == 0].any(), "a title without copies lent a book"


def test_unsorted_intents_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        serve(np.array([1, 0]), np.array([0.0, 1.0]), np.ones(2), np.array([1, 1]), np.ones(2), np.ones(2))


def test_one_copy_is_capped_by_its_capacity_and_more_copies_serve_more() -> None:
    rate = np.array([0.5, 5.0, 40.0, 200.0])
    intents, one = served_in_window(rate, 1, np.random.default_rng(3), replications=16)
    _, three = served_in_window(rate, 3, np.random.default_rng(3), replications=16)
    assert (one <= intents + 1e-9).all() and (three <= intents + 1e-9).all()
    # Mean occupancy ~27 days: one copy cannot get near 40 loans a year, let alone 200.
    assert one[3] < 20 and one[2] < 20
    assert three[3] > 2.5 * one[3], "the second and third copies of a hot title serve real readers"
    assert abs(three[0] - one[0]) < 0.1, "extra copies of a cold title add almost nothing"


# --- the synthetic city obeys the physics -------------------------------------------------------


@pytest.fixture(scope="module")
def loans(small_city: Path) -> pl.DataFrame:
    return pl.read_parquet(small_city / "loans.parquet")


def test_no_copy_has_overlapping_loans(loans) -> None:
    end = pl.datetime(2026, 7, 1)
    s = loans.sort("copy_id", "borrowed_at").with_columns(
        prev=pl.col("returned_at").fill_null(end).shift(1).over("copy_id")
    )
    assert (s["borrowed_at"] < s["prev"]).sum() == 0
    assert loans.filter(pl.col("returned_at").is_null())["copy_id"].is_unique().all()


def test_no_copy_exceeds_its_capacity_in_any_year(loans) -> None:
    y = loans.with_columns(
        year=pl.col("borrowed_at").dt.offset_by("-6mo").dt.year(),
        days=(pl.col("returned_at").fill_null(pl.datetime(2026, 7, 1)) - pl.col("borrowed_at")).dt.total_hours() / 24,
    )
    per = y.group_by("copy_id", "year").agg(n=pl.len(), days=pl.col("days").sum(), first=pl.col("days").first())
    # Loans started in a year fit in that year plus the last one's overhang (at most 150 days).
    assert (per["days"] <= 366 + 150).all()
    assert per["n"].max() <= 366 // 2, "more loans than one-day loans with a day of turnaround allow"
    assert per["n"].max() <= 25, per["n"].max()


def test_every_loan_has_an_intent_and_holds_follow_the_queue(small_city: Path, loans) -> None:
    tp = pl.read_parquet(small_city / "truth" / "title_periods.parquet")
    assert tp.group_by("title_id").agg(pl.col("copies").n_unique())["copies"].max() == 1
    per_title = loans.group_by("title_id").len()
    both = per_title.join(tp.group_by("title_id").agg(pl.col("loans", "intents", "unmet").sum()), on="title_id")
    assert len(both) == len(per_title) and (both["len"] == both["loans"]).all()
    assert (both["loans"] <= both["intents"]).all()
    assert tp["loans"].sum() + tp["unmet"].sum() == tp["intents"].sum()
    cum = tp.sort("title_id", "period").with_columns(
        pl.col("loans").cum_sum().over("title_id").alias("cl"), pl.col("intents").cum_sum().over("title_id").alias("ci")
    )
    assert (cum["cl"] <= cum["ci"]).all(), "loans served before anyone wanted the title"
    assert 0.8 < tp["loans"].sum() / tp["intents"].sum() < 0.99
    holds = pl.read_parquet(small_city / "holds.parquet")
    filled = holds.filter(pl.col("fulfilled_at").is_not_null())
    hit = filled.join(
        loans.select("reader_id", "title_id", pl.col("borrowed_at").alias("fulfilled_at")),
        on=["reader_id", "title_id", "fulfilled_at"],
    )
    assert len(hit) == len(filled), "a fulfilled hold without the loan that fulfilled it"
    assert (filled["fulfilled_at"] > filled["placed_at"]).all()


def test_turnover_and_dead_stock_are_realistic(small_city: Path, loans) -> None:
    copies = pl.read_parquet(small_city / "copies.parquet").filter(pl.col("acquired_at") < date(2025, 7, 1))
    last = loans.filter(pl.col("borrowed_at") >= pl.datetime(2025, 7, 1)).group_by("copy_id").len()
    n = copies.select("copy_id").join(last, on="copy_id", how="left")["len"].fill_null(0)
    assert 2.5 <= n.mean() <= 5.0, n.mean()
    assert 0.05 <= (n == 0).mean() <= 0.4, (n == 0).mean()


def test_request_truth_is_capped_by_copies(small_city: Path) -> None:
    rt = pl.read_parquet(small_city / "truth" / "request_titles.parquet")
    assert (rt["expected_loans_per_year"] == rt["intents_first_year"]).all()
    s1, s2, s3 = (rt[f"served_first_year_{k}"] for k in (1, 2, 3))
    assert s1.max() < 20 < rt["intents_first_year"].max()
    assert s1.mean() < s2.mean() < s3.mean() <= rt["intents_first_year"].mean() * 1.05
    cold = rt.filter(pl.col("intents_first_year") < 1)
    assert (cold["served_first_year_3"] - cold["served_first_year_1"]).abs().max() < 0.5
