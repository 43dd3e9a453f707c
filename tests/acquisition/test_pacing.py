"""Pacing of annual funds: the bid price, the month ceiling and the on-arrival year replay."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from acquisition.backtest import Replay
from acquisition.pacing import Forecast, bid_price, month_end_share, pace, plan_share
from acquisition.policy import SEASONAL_PLAN, PacingConfig, Policy, load_policy
from acquisition.whatif import run_year

START = datetime(2025, 7, 1)
PACED = PacingConfig(policy="paced", warmup_days=3)
DISTRICTS = {"Chaoyang": 300, "Yushu": 100}


def fake_year(n: int, seed: int) -> Replay:
    """``n`` eligible requests spread over a programme year from START (two districts, 40 titles)."""
    rng = np.random.default_rng(seed)
    at = sorted(START + timedelta(minutes=int(m)) for m in rng.integers(0, 365 * 1440, n))
    lines = pl.DataFrame(
        {
            "request_id": [f"PR-{i}" for i in range(n)],
            "requested_at": at,
            "price": np.round(rng.uniform(10, 90, n), 2),
            "district": rng.choice(list(DISTRICTS), n),
            "reader_id": [f"R-{i}" for i in rng.integers(0, max(n // 3, 1), n)],
            "isbn13": [f"978{i:010d}" for i in rng.integers(0, 40, n)],
            "predicted_intents": rng.gamma(2.0, 5.0, n),
            "true_intents": rng.gamma(2.0, 5.0, n),
            "network_copies": np.zeros(n, dtype=np.int64),
        }
    ).with_columns(pl.col("requested_at").dt.strftime("%Y-%m").alias("period"))
    return Replay(None, START, START + timedelta(days=365), lines, n, DISTRICTS, 0.0, "test")


def paced_policy(**pacing) -> Policy:
    return load_policy().model_copy(update={"pacing": PACED.model_copy(update=pacing)})


# --- the bid price ---------------------------------------------------------------------------------


@given(
    dual=st.floats(0, 10),
    lead=st.floats(-1, 1),
    more=st.floats(0, 1),
    sensitivity=st.floats(0, 50),
)
def test_bid_price_is_monotone_in_the_funds_lead_over_plan(dual, lead, more, sensitivity):
    assert bid_price(dual, lead, sensitivity) <= bid_price(dual, lead + more, sensitivity) + 1e-12


@settings(max_examples=60, deadline=None)
@given(
    used=st.floats(0, 1000),
    more=st.floats(0, 1000),
    day=st.integers(0, 364),
    seed=st.integers(0, 10_000),
)
def test_a_fund_further_ahead_never_lowers_its_bar(used, more, day, seed):
    """Using more money (a bigger lead, less money left for the forecast) never lowers the bid price."""
    rng = np.random.default_rng(seed)
    forecast = Forecast.from_arrivals(rng.uniform(0, 1, 50), rng.uniform(10, 90, 50), 0.3)
    at = START + timedelta(days=day)
    args = dict(budget=2000.0, price=30.0, value=5.0, at=at, forecast=forecast, start=START)
    low = pace(PACED, SEASONAL_PLAN, used=used, **args)
    high = pace(PACED, SEASONAL_PLAN, used=used + more, **args)
    assert low.bid_price <= high.bid_price + 1e-9


@given(day=st.integers(0, 400), later=st.integers(0, 400))
def test_the_plan_only_grows_through_the_year_and_ends_at_one(day, later):
    a, b = START + timedelta(days=day), START + timedelta(days=day + later)
    assert 0.0 <= plan_share(SEASONAL_PLAN, a, START) <= plan_share(SEASONAL_PLAN, b, START) <= 1.0
    assert plan_share(SEASONAL_PLAN, a, START) <= month_end_share(SEASONAL_PLAN, a, START) + 1e-12
    assert plan_share(SEASONAL_PLAN, START + timedelta(days=366), START) == 1.0


def test_world_book_day_and_the_summer_draw_more_of_the_plan_than_march():
    share = np.array(SEASONAL_PLAN) / sum(SEASONAL_PLAN)
    assert share[3] > share[2] and share[6] > share[2] and share[7] > share[2]


def test_dual_price_prices_money_that_cannot_buy_every_forecast_request():
    f = Forecast.from_arrivals(np.array([0.1, 0.5, 0.3]), np.array([10.0, 10.0, 10.0]), seen_share=0.5)
    # the rest of the year is forecast to bring the same three requests again (0.5 of the year left)
    assert f.dual_price(money_left=100.0, share_left=0.5) == 0.0  # all fit
    assert f.dual_price(money_left=15.0, share_left=0.5) == 0.3  # only the best fits: the bar is the next
    assert Forecast(np.zeros(0), np.zeros(0), 0.0, reference=0.2).dual_price(5.0, 0.5) == 0.2


def test_a_declined_request_is_told_why_in_both_languages():
    f = Forecast.from_arrivals(np.array([1.0]), np.array([10.0]), seen_share=0.5)
    note = pace(
        PACED, SEASONAL_PLAN, budget=1000.0, used=600.0, price=50.0, value=1.0, at=START, forecast=f, start=START
    )
    assert not note.approved
    assert "全年" in note.message or "本月" in note.message
    assert "next month" in note.message_en


# --- the year replayed on arrival ----------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(n=st.integers(20, 300), seed=st.integers(0, 10_000), budget=st.floats(50, 20_000))
def test_paced_never_overspends_a_fund_nor_its_month_ceiling(n, seed, budget):
    prepared = fake_year(n, seed)
    policy = paced_policy()
    run = run_year(prepared, policy, budget)
    lines = prepared.lines.with_columns(pl.Series("x", run.chosen))
    spent = lines.filter("x").group_by("district").agg(pl.col("price").sum())
    for district, amount in spent.iter_rows():
        assert amount <= run.funds[district] + 1e-6
    slack = policy.pacing.month_slack_pct / 100
    for district, fund in run.funds.items():
        mine = lines.filter((pl.col("district") == district) & pl.col("x")).sort("requested_at")
        used = np.cumsum(mine["price"].to_numpy())
        ceiling = [(min(month_end_share(SEASONAL_PLAN, at, START), 1.0) + slack) * fund for at in mine["requested_at"]]
        assert np.all(used <= np.array(ceiling) + 1e-6)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(30, 250), seed=st.integers(0, 10_000), cut_day=st.integers(1, 364), paced=st.booleans())
def test_a_replay_with_the_future_truncated_makes_the_same_decisions_up_to_t(n, seed, cut_day, paced):
    prepared = fake_year(n, seed)
    policy = paced_policy(policy="paced" if paced else "fcfs")
    t = START + timedelta(days=cut_day)
    full = run_year(prepared, policy, 3000.0)
    past = prepared.lines.filter(pl.col("requested_at") < t)
    truncated = run_year(prepared, policy, 3000.0, lines=past)
    assert np.array_equal(full.chosen[: past.height], truncated.chosen)
    assert np.array_equal(full.paced_out[: past.height], truncated.paced_out)


def test_fcfs_never_paces_and_paced_keeps_money_for_the_end_of_the_year():
    prepared = fake_year(600, 3)
    fcfs = run_year(prepared, load_policy(), 4000.0)
    paced = run_year(prepared, paced_policy(), 4000.0)
    assert not fcfs.paced_out.any() and paced.paced_out.any()
    late = prepared.lines["requested_at"] >= START + timedelta(days=330)
    assert paced.chosen[late.to_numpy()].sum() > fcfs.chosen[late.to_numpy()].sum()


# --- the live counter ------------------------------------------------------------------------------


def test_every_counter_decision_explains_its_pacing_and_a_retry_returns_the_same_note(tmp_path):
    from tests.acquisition._counter_data import make_service, request

    svc = make_service(tmp_path)
    d = svc.decide(request(), "k1")
    assert d.eligible and d.pacing.outcome == "fcfs" and d.pacing.message.startswith("本计划")
    assert svc.decide(request(), "k1").pacing == d.pacing


def test_paced_counter_declines_below_the_bid_price_without_moving_money(tmp_path):
    from tests.acquisition._counter_data import FRESH, isbn, make_service, request
    from tests.acquisition.test_counter import ledger

    # before the forecast has data the reference price is the bar: 1 loan per yuan; a 45-yuan book
    # expected to serve one loan (the default value) is 1/45 of that
    policy = paced_policy(reference_loans_per_yuan=1.0)
    svc = make_service(tmp_path, policy)
    before = ledger(svc)
    d = svc.decide(request(isbn=FRESH), "k-paced")
    assert not d.eligible and d.reason_codes == ["PACED_LOW_VALUE"] and d.status == "declined"
    assert d.pacing.outcome == "below_bid" and d.pacing.fund_id == "Y2026"
    assert d.pacing.value_per_yuan < d.pacing.bid_price
    assert "预计借阅较少" in d.pacing.message and "expected use is below that bar" in d.message
    assert ledger(svc) == before
    again = svc.decide(request(isbn=FRESH), "k-paced")
    assert again.replayed and again.pacing == d.pacing
    # the other rules stay in force before pacing: an ineligible book is declined for its own reason
    held = svc.decide(request(isbn=isbn(1)), "k-held")
    assert held.reason_codes == ["ALREADY_HELD"] and held.pacing is None


def test_the_hindsight_oracle_keeps_to_the_funds_and_serves_at_least_what_fcfs_does():
    from acquisition.backtest import served_score
    from acquisition.whatif import oracle_year

    prepared = fake_year(400, 11)
    oracle = oracle_year(prepared, 3000.0, prepared.lines)
    fcfs = run_year(prepared, load_policy(), 3000.0)
    lines = prepared.lines.with_columns(pl.Series("x", oracle.chosen))
    for district, amount in lines.filter("x").group_by("district").agg(pl.col("price").sum()).iter_rows():
        assert amount <= oracle.funds[district] + 1e-6
    assert lines.filter("x").group_by("isbn13").len()["len"].max() <= 3
    assert served_score(prepared, oracle.chosen) >= served_score(prepared, fcfs.chosen)


def test_the_live_counter_values_a_request_by_its_class_within_one_copys_capacity(small_city):
    """class_values: the live counter's value of a request is the loans one copy of its class would
    serve, from loans before t only: different across classes, never above one copy's capacity, and
    a class the library never lent falls back to the network's mean."""
    from acquisition.demand import History
    from acquisition.pacing import class_values
    from acquisition.value import Circulation

    history = History.load(small_city)
    as_of = datetime(2026, 1, 1)
    circ = Circulation.from_loans(history.loans, as_of)
    value_of = class_values(history, as_of, circ)
    classes = history.titles["clc_class"].drop_nulls().unique().to_list()
    values = np.array([value_of(c, 40.0) for c in classes])
    assert len(set(np.round(values, 6))) > 3
    assert np.all(values > 0) and np.all(values <= circ.capacity + 1e-9)
    unknown = value_of("W999", 40.0)  # no CLC class starts with W
    assert unknown == value_of(None, 40.0) > 0
    # loans after t change nothing at t
    later = replace(history, loans=history.loans.filter(pl.col("borrowed_at") < as_of))
    assert [class_values(later, as_of, circ)(c, 40.0) for c in classes] == values.tolist()
