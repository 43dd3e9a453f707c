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


def test_oracle_buys_each_isbn_at_most_once_across_months(prepared):
    _, context = replay(prepared, scale=1.0)
    bought = prepared.lines.filter(pl.Series(context["chosen"]["oracle"]))
    assert bought["isbn13"].n_unique() == bought.height
    # a value-ranking method does not buy more copies of an ISBN than the title cap over the year
    greedy = prepared.lines.filter(pl.Series(context["chosen"]["greedy"]))
    assert int(np.max(greedy.group_by("isbn13").len()["len"].to_numpy(), initial=0)) <= 3


def test_backtest_report_written(small_city, tmp_path):
    out = backtest(small_city, tmp_path / "bt.md", scales=(0.5,))
    text = out.read_text()
    assert "| milp |" in text and "% of oracle" in text and "Budget: 50% of the months' budget lines" in text
