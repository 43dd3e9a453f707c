"""The monthly backtest replay runs end to end on the small synthetic city and its figures are consistent."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from acquisition.backtest import METHODS, _line_overspend, backtest, month_lines, prepare_replay, replay


@pytest.fixture(scope="module")
def prepared(small_city):
    return prepare_replay(small_city)


def test_replay_keeps_every_months_district_lines(prepared):
    scores, context = replay(prepared, scale=0.5)
    by = {s.method: s for s in scores}
    assert set(by) == set(METHODS)
    lines = prepared.lines
    budget_lines = month_lines(prepared.data_dir, sorted(lines["period"].unique().to_list()), 0.5)
    for m, chosen in context["chosen"].items():
        assert _line_overspend(lines, chosen, budget_lines) == 0.0, m
        spend = lines.filter(pl.Series(chosen)).group_by("period", "district").agg(pl.col("price").sum())
        for period, district, amount in spend.iter_rows():
            assert amount <= budget_lines[period][district] + 1e-6
    for s in scores:
        assert s.overspend == 0.0
        assert s.spend <= context["budget"] + 1e-6
    assert by["oracle"].pct_oracle == pytest.approx(100.0)
    # the oracle knows the true loans: nothing that selects on predictions captures (much) more
    assert max(s.future_loans for s in scores) <= by["oracle"].future_loans * 1.02


def test_scores_are_loans_copies_can_serve_and_counters_are_decided_on_arrival(prepared):
    scores, context = replay(prepared, scale=0.5)
    cap = prepared.circulation.capacity
    lines = prepared.lines
    for s in scores:
        chosen = context["chosen"][s.method]
        bought = lines.filter(pl.Series(chosen))
        # no method buys more than the title cap of an ISBN over the year
        assert int(np.max(bought.group_by("isbn13").len()["len"].to_numpy(), initial=0)) <= 3
        # the score never exceeds what the copies bought can lend, nor the readers who want them
        assert s.future_loans <= s.selected * cap + 1e-6
        assert s.future_loans <= bought.unique("isbn13")["true_intents"].sum() + 1e-6
    # counter lines were valued as of the month's start, alone: their requester count is only the
    # lines of the ISBN that arrived up to them
    raw = (
        pl.read_parquet(prepared.data_dir / "purchase_requests.parquet")
        .filter(pl.col("channel") == "counter")
        .sort("requested_at")
        .select(
            "request_id",
            pl.int_range(1, pl.len() + 1).over(pl.col("requested_at").dt.strftime("%Y-%m"), "isbn").alias("seen"),
        )
    )
    counter = lines.filter(pl.col("channel") == "counter").join(raw, on="request_id")
    assert counter.height and (counter["requester_count"] <= counter["seen"]).all()
    assert (counter["requested_at"] >= prepared.start).all()


def test_backtest_report_written(small_city, tmp_path):
    out = backtest(small_city, tmp_path / "bt.md", scales=(0.5,))
    text = out.read_text()
    assert "| milp |" in text and "% of oracle" in text and "Budget: 50% of the months' budget lines" in text
