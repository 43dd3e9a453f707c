"""Demand aggregates for acquisition, per title × district × month, in Spark SQL and in polars.

One row per (title, district, month) that had a loan or a hold, with

===================  =================================================================================
``title_id``         title
``district``         district of the branch where the loan was made / the hold is picked up
``month``            first day of the calendar month (Date)
``loans``            print loans borrowed that month (int64)
``holds``            holds placed that month (int64)
``copies``           copies of the title at the district's branches acquired before the month's end
                     and not withdrawn or lost (int64; status is today's, the tables keep no history)
``turnover``         loans per copy per year: ``loans × 12 / copies`` (float64, null without copies)
``holds_to_copies``  ``holds / copies`` (float64, null without copies; buy more above ~3)
===================  =================================================================================

:func:`demand_spark` is the scale-out path (one Spark SQL statement over the Parquet tables);
:func:`demand_polars` is the single-machine reference it must equal (tests/spark/test_parity.py).
Both sort by ``(title_id, district, month)``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
from pyspark.sql import DataFrame, SparkSession

from features.schema import conform, scan_table
from features.spark.interactions import read_table

_log = logging.getLogger(__name__)

#: Copy statuses that no longer count as supply.
GONE_STATUSES: tuple[str, ...] = ("withdrawn", "lost")
#: Output columns, in order.
DEMAND_COLUMNS: tuple[str, ...] = (
    "title_id",
    "district",
    "month",
    "loans",
    "holds",
    "copies",
    "turnover",
    "holds_to_copies",
)

_DEMAND_SQL = """
WITH branch AS (SELECT branch_id, district FROM yuedu_branches),
loan_m AS (
    SELECT l.title_id, b.district, trunc(CAST(l.borrowed_at AS DATE), 'MM') AS month, count(*) AS loans
    FROM yuedu_loans l JOIN branch b ON l.branch_id = b.branch_id
    GROUP BY 1, 2, 3
),
hold_m AS (
    SELECT h.title_id, b.district, trunc(CAST(h.placed_at AS DATE), 'MM') AS month, count(*) AS holds
    FROM yuedu_holds h JOIN branch b ON h.branch_id = b.branch_id
    GROUP BY 1, 2, 3
),
keyed AS (
    SELECT coalesce(l.title_id, h.title_id) AS title_id,
           coalesce(l.district, h.district) AS district,
           coalesce(l.month, h.month) AS month,
           coalesce(l.loans, 0) AS loans,
           coalesce(h.holds, 0) AS holds
    FROM loan_m l FULL OUTER JOIN hold_m h
      ON l.title_id = h.title_id AND l.district = h.district AND l.month = h.month
),
supply AS (
    SELECT c.title_id, b.district, c.acquired_at
    FROM yuedu_copies c JOIN branch b ON c.branch_id = b.branch_id
    WHERE c.status NOT IN ({gone})
),
stock AS (
    SELECT k.title_id, k.district, k.month, count(*) AS copies
    FROM keyed k JOIN supply s ON k.title_id = s.title_id AND k.district = s.district
    WHERE s.acquired_at < add_months(k.month, 1)
    GROUP BY 1, 2, 3
)
SELECT k.title_id, k.district, k.month, k.loans, k.holds,
       coalesce(s.copies, 0) AS copies,
       CASE WHEN s.copies > 0 THEN k.loans * 12.0D / s.copies END AS turnover,
       CASE WHEN s.copies > 0 THEN CAST(k.holds AS DOUBLE) / s.copies END AS holds_to_copies
FROM keyed k LEFT JOIN stock s
  ON k.title_id = s.title_id AND k.district = s.district AND k.month = s.month
ORDER BY k.title_id, k.district, k.month
"""


def demand_spark(spark: SparkSession, data_dir: str | Path) -> DataFrame:
    """Demand per title × district × month (see the module docstring) as a lazy Spark frame.

    Registers the conformed ``branches``, ``loans``, ``holds`` and ``copies`` tables as temporary
    views ``yuedu_<table>`` and runs one Spark SQL statement over them.

    Raises:
        FileNotFoundError: one of the four tables is missing from ``data_dir``.
    """
    for table in ("branches", "loans", "holds", "copies"):
        read_table(spark, data_dir, table).createOrReplaceTempView(f"yuedu_{table}")
    gone = ", ".join(f"'{s}'" for s in GONE_STATUSES)
    return spark.sql(_DEMAND_SQL.format(gone=gone))


def demand_polars(data_dir: str | Path) -> pl.DataFrame:
    """The single-machine reference of :func:`demand_spark` (same rows, columns and order).

    Raises:
        FileNotFoundError: one of the four tables is missing from ``data_dir``.
    """
    branch = conform(scan_table(data_dir, "branches"), "branches").select("branch_id", "district")
    loans = (
        conform(scan_table(data_dir, "loans"), "loans")
        .join(branch, on="branch_id")
        .group_by("title_id", "district", month=pl.col("borrowed_at").dt.date().dt.truncate("1mo"))
        .agg(loans=pl.len().cast(pl.Int64))
    )
    holds = (
        conform(scan_table(data_dir, "holds"), "holds")
        .join(branch, on="branch_id")
        .group_by("title_id", "district", month=pl.col("placed_at").dt.date().dt.truncate("1mo"))
        .agg(holds=pl.len().cast(pl.Int64))
    )
    key = ["title_id", "district", "month"]
    keyed = loans.join(holds, on=key, how="full", coalesce=True).with_columns(
        pl.col("loans").fill_null(0), pl.col("holds").fill_null(0)
    )
    supply = (
        conform(scan_table(data_dir, "copies"), "copies")
        .filter(~pl.col("status").is_in(GONE_STATUSES))
        .join(branch, on="branch_id")
        .select("title_id", "district", "acquired_at")
    )
    stock = (
        keyed.select(key)
        .join(supply, on=["title_id", "district"])
        .filter(pl.col("acquired_at") < pl.col("month").dt.offset_by("1mo"))
        .group_by(key)
        .agg(copies=pl.len().cast(pl.Int64))
    )
    copies = pl.col("copies")
    out = (
        keyed.join(stock, on=key, how="left")
        .with_columns(copies.fill_null(0))
        .with_columns(
            turnover=pl.when(copies > 0).then(pl.col("loans") * 12.0 / copies),
            holds_to_copies=pl.when(copies > 0).then(pl.col("holds").cast(pl.Float64) / copies),
        )
        .select(DEMAND_COLUMNS)
        .sort(key)
    )
    return out.collect()


def to_polars(frame: DataFrame) -> pl.DataFrame:
    """Collect a Spark frame to polars through Arrow (no pandas round-trip)."""
    return pl.from_arrow(frame.toArrow())
