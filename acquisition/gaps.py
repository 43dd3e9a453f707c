"""Collection gaps: supply (copies) against demand (loans, holds) per district x CLC top class.

For every (district, top class) cell, over a demand window:

* ``copies``: copies held in the district (not lost / withdrawn), ``loans``, ``holds``;
* ``holds_per_copy``: holds / copies (the classic buy-more signal; alert above 3:1);
* ``loans_per_copy``: turnover of the cell (loans per copy in the window);
* ``supply_share`` / ``demand_share``: the class's share of the district's copies / loans;
* ``city_share``: the class's share of the *city's* loans, the standard mix a district is compared to;
* ``pressure``: ``loans_per_copy`` relative to the city's loans per copy in the class (> 1 means the
  district's copies of this class work harder than the city's: demand outruns supply);
* ``mix_gap``: ``max(0, city_share - supply_share)``, what the district's collection lacks against the
  city's standard mix;
* ``gap_score`` = ``pressure x (1 + mix_gap / city_share)`` (0 when the city never borrows the class)
  and ``gap_multiplier`` = ``clip(gap_score, floor, cap)``, the factor batch ranking multiplies the
  predicted loans of a line with.

Everything is a lazy polars pipeline over the Parquet tables (:func:`gap_table`) or over frames
(:func:`gaps_from_frames`, used by the tests with hand-made numbers).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from features.schema import clc_top, scan_table

_log = logging.getLogger(__name__)

HOLDS_ALERT_RATIO = 3.0


def gaps_from_frames(
    copies: pl.LazyFrame,
    loans: pl.LazyFrame,
    holds: pl.LazyFrame,
    *,
    multiplier_floor: float = 0.5,
    multiplier_cap: float = 2.0,
) -> pl.DataFrame:
    """Gap table from frames already keyed by ``district`` and ``top`` (CLC top class).

    ``copies`` has one row per copy, ``loans`` one per loan, ``holds`` one per hold (each with
    ``district`` and ``top``). Returns one row per (district, top) seen in any of them.
    """
    keys = ["district", "top"]
    n_copies = copies.group_by(keys).agg(pl.len().alias("copies"))
    n_loans = loans.group_by(keys).agg(pl.len().alias("loans"))
    n_holds = holds.group_by(keys).agg(pl.len().alias("holds"))
    cells = (
        pl.concat([f.select(keys) for f in (copies, loans, holds)])
        .unique()
        .join(n_copies, on=keys, how="left")
        .join(n_loans, on=keys, how="left")
        .join(n_holds, on=keys, how="left")
        .with_columns(pl.col("copies", "loans", "holds").fill_null(0).cast(pl.Float64))
    )
    city = (
        cells.group_by("top")
        .agg(
            (pl.col("loans").sum() / pl.col("copies").sum()).alias("city_loans_per_copy"),
            pl.col("loans").sum().alias("city_class_loans"),
        )
        .with_columns((pl.col("city_class_loans") / pl.col("city_class_loans").sum()).alias("city_share"))
    )
    out = (
        cells.join(city, on="top", how="left")
        .with_columns(
            (pl.col("copies") / pl.col("copies").sum().over("district")).fill_nan(0.0).alias("supply_share"),
            (pl.col("loans") / pl.col("loans").sum().over("district")).fill_nan(0.0).alias("demand_share"),
            pl.when(pl.col("copies") > 0).then(pl.col("holds") / pl.col("copies")).alias("holds_per_copy"),
            pl.when(pl.col("copies") > 0).then(pl.col("loans") / pl.col("copies")).alias("loans_per_copy"),
        )
        .with_columns(
            # no copies but loans (borrowed from elsewhere): the pressure is the cell's loans per
            # city-average copy, i.e. the copies it would take to serve them
            pl.when(pl.col("city_loans_per_copy") > 0)
            .then(
                pl.when(pl.col("copies") > 0)
                .then(pl.col("loans_per_copy") / pl.col("city_loans_per_copy"))
                .otherwise(pl.col("loans") / pl.col("city_loans_per_copy"))
            )
            .otherwise(0.0)
            .alias("pressure"),
            (pl.col("city_share") - pl.col("supply_share")).clip(lower_bound=0.0).alias("mix_gap"),
        )
        .with_columns(
            pl.when(pl.col("city_share") > 0)
            .then(pl.col("pressure") * (1.0 + pl.col("mix_gap") / pl.col("city_share")))
            .otherwise(0.0)
            .alias("gap_score"),
            (pl.col("holds_per_copy").fill_null(pl.col("holds")) > HOLDS_ALERT_RATIO).alias("holds_alert"),
        )
        .with_columns(pl.col("gap_score").clip(multiplier_floor, multiplier_cap).alias("gap_multiplier"))
        .drop("city_class_loans")
        .sort(["district", "top"])
    )
    return out.collect()


def _district_keyed(data_dir: str | Path) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    branches = scan_table(data_dir, "branches").select("branch_id", "district")
    titles = scan_table(data_dir, "titles").select("title_id", clc_top(pl.col("clc_class")).alias("top"))
    return branches, titles


def gap_table(
    data_dir: str | Path,
    *,
    as_of: datetime | None = None,
    window_days: int = 365,
    multiplier_floor: float = 0.5,
    multiplier_cap: float = 2.0,
) -> pl.DataFrame:
    """Gap table of a data directory, demand over the ``window_days`` before ``as_of`` (default: the
    last loan). Copies are those acquired before ``as_of`` and not lost or withdrawn; a district's
    demand is loans made at its branches and holds picked up there."""
    branches, titles = _district_keyed(data_dir)
    loans = scan_table(data_dir, "loans")
    if as_of is None:
        as_of = loans.select(pl.col("borrowed_at").max()).collect().item()
    start = as_of - timedelta(days=window_days)
    copies = (
        scan_table(data_dir, "copies")
        .filter(~pl.col("status").is_in(["lost", "withdrawn"]) & (pl.col("acquired_at") <= as_of.date()))
        .join(branches, on="branch_id")
        .join(titles, on="title_id")
    )
    loans = (
        loans.filter(pl.col("borrowed_at").is_between(start, as_of))
        .join(branches, on="branch_id")
        .join(titles, on="title_id")
    )
    holds = (
        scan_table(data_dir, "holds")
        .filter(pl.col("placed_at").is_between(start, as_of))
        .join(branches, on="branch_id")
        .join(titles, on="title_id")
    )
    out = gaps_from_frames(
        copies.select("district", "top"),
        loans.select("district", "top"),
        holds.select("district", "top"),
        multiplier_floor=multiplier_floor,
        multiplier_cap=multiplier_cap,
    )
    _log.info("gap table: %d (district, class) cells as of %s", out.height, as_of.date())
    return out


def under_served(gaps: pl.DataFrame, top_n: int = 3) -> pl.DataFrame:
    """Per district, the ``top_n`` classes with the highest gap score (ties by class letter)."""
    return (
        gaps.filter(pl.col("gap_score") > 1.0)
        .sort(["district", "gap_score", "top"], descending=[False, True, False])
        .group_by("district", maintain_order=True)
        .head(top_n)
    )
