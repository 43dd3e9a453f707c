"""The demand aggregates the Spark benchmark measures: Spark SQL equals the polars reference, and the
reference adds up to the raw tables."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_demand_aggregates_identical(spark, small_city):
    from benchmarks.spark.demand import DEMAND_COLUMNS, demand_polars, demand_spark, to_polars

    expected = demand_polars(small_city)
    got = to_polars(demand_spark(spark, small_city))
    assert got.columns == list(DEMAND_COLUMNS)
    assert got.equals(expected)
    # the aggregate is not trivially empty: loans, holds and supply all appear
    assert expected["loans"].sum() > 30_000 and expected["holds"].sum() > 0 and expected["copies"].max() > 1


def test_demand_counts_match_the_raw_tables(small_city):
    """The polars reference itself: loans and holds add up to the tables, turnover follows copies."""
    import polars as pl

    from benchmarks.spark.demand import demand_polars

    demand = demand_polars(small_city)
    assert demand["loans"].sum() == pl.read_parquet(small_city / "loans.parquet").height
    assert demand["holds"].sum() == pl.read_parquet(small_city / "holds.parquet").height
    with_copies = demand.filter(pl.col("copies") > 0)
    np.testing.assert_allclose(with_copies["turnover"], with_copies["loans"] * 12 / with_copies["copies"])
    assert demand.filter(pl.col("copies") == 0)["turnover"].null_count() == demand.filter(pl.col("copies") == 0).height
