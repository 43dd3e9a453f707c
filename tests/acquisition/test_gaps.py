"""Gap table on a tiny hand-made network whose figures are worked out by hand in the comments."""

from __future__ import annotations

import polars as pl
import pytest

from acquisition.gaps import gap_table, gaps_from_frames, under_served


def _rows(spec: dict[tuple[str, str], int]) -> pl.LazyFrame:
    districts, tops = [], []
    for (d, t), n in spec.items():
        districts += [d] * n
        tops += [t] * n
    return pl.LazyFrame({"district": districts, "top": tops}, schema={"district": pl.String, "top": pl.String})


@pytest.fixture()
def table() -> pl.DataFrame:
    # A: copies I 10, K 10; loans I 40, K 10; holds I 40.   B: copies I 10; loans I 20, K 10.
    copies = _rows({("A", "I"): 10, ("A", "K"): 10, ("B", "I"): 10})
    loans = _rows({("A", "I"): 40, ("A", "K"): 10, ("B", "I"): 20, ("B", "K"): 10})
    holds = _rows({("A", "I"): 40})
    return gaps_from_frames(copies, loans, holds)


def cell(t: pl.DataFrame, d: str, top: str) -> dict:
    return t.filter((pl.col("district") == d) & (pl.col("top") == top)).row(0, named=True)


def test_ratios_by_hand(table):
    a_i = cell(table, "A", "I")
    # city: I 60 loans / 20 copies = 3 per copy; K 20 / 10 = 2; city mix I 60/80 = 0.75, K 0.25
    assert a_i["city_loans_per_copy"] == pytest.approx(3.0)
    assert a_i["city_share"] == pytest.approx(0.75)
    assert a_i["supply_share"] == pytest.approx(0.5)
    assert a_i["holds_per_copy"] == pytest.approx(4.0) and a_i["holds_alert"]
    # pressure 4/3, mix gap 0.25 -> score 4/3 * (1 + 0.25/0.75) = 16/9
    assert a_i["pressure"] == pytest.approx(4 / 3)
    assert a_i["gap_score"] == pytest.approx(16 / 9)
    assert a_i["gap_multiplier"] == pytest.approx(16 / 9)
    a_k = cell(table, "A", "K")
    assert a_k["gap_score"] == pytest.approx(0.5) and not a_k["holds_alert"]
    b_i = cell(table, "B", "I")
    assert b_i["gap_score"] == pytest.approx(2 / 3)


def test_class_without_copies_is_the_biggest_gap(table):
    b_k = cell(table, "B", "K")
    # 10 loans with no copy: pressure 10 / 2 = 5; supply share 0 -> mix gap 0.25 -> score 10
    assert b_k["copies"] == 0 and b_k["holds_per_copy"] is None
    assert b_k["gap_score"] == pytest.approx(10.0)
    assert b_k["gap_multiplier"] == pytest.approx(2.0)  # capped
    top = under_served(table, top_n=1)
    assert dict(zip(top["district"], top["top"], strict=True)) == {"A": "I", "B": "K"}


def test_shares_sum_to_one_per_district(table):
    sums = table.group_by("district").agg(pl.col("supply_share").sum(), pl.col("demand_share").sum())
    assert sums["supply_share"].to_list() == pytest.approx([1.0, 1.0])
    assert sums["demand_share"].to_list() == pytest.approx([1.0, 1.0])


def test_gap_table_on_small_city(small_city):
    t = gap_table(small_city)
    assert t.height > 20
    assert t["gap_multiplier"].is_between(0.5, 2.0).all()
    assert (t["copies"] >= 0).all() and t["district"].n_unique() == 11
