"""Batch acquisition selection: MILP time for 1k / 10k / 50k request lines and its gain over greedy.

Lines are the synthetic city's own purchase requests in arrival order (the first ``n``), valued by
the generator's true expected loans per year of each ISBN (what an ideal demand model would
predict), under the programme constraints of :mod:`acquisition.optimize`: a budget of 30 % of the
requested spend, district floors (half of each district's share of requests), class caps (40 %),
bookstore caps (25 %), at most 2 lines per reader and 2 copies per ISBN, and the soft ±10 %
equalisation band. The peer is the greedy value/price baseline on the same lines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import polars as pl

from benchmarks.data import city_dir
from benchmarks.harness import BenchContext, BenchError, Goal, PeakRSS, Row

_log = logging.getLogger(__name__)

#: Seconds a 50k-line selection may take (issue 7); checked on the largest size only.
MILP_GOAL = Goal("<=", 10.0, "s")
SIZES = (1_000, 10_000, 50_000)
QUICK_SIZES = (200, 500, 800)


def request_lines(ctx: BenchContext) -> pl.DataFrame:
    """The city's purchase requests in arrival order with value, district and CLC top class."""
    data = city_dir(ctx)
    truth_req = pl.read_parquet(data / "truth" / "requests.parquet").select("request_id", "budget_district")
    truth_titles = pl.read_parquet(data / "truth" / "request_titles.parquet").select("isbn", "expected_loans_per_year")
    return (
        pl.read_parquet(data / "purchase_requests.parquet")
        .join(truth_req, on="request_id", how="left")
        .join(truth_titles, on="isbn", how="left")
        .sort("requested_at")
        .select(
            pl.col("expected_loans_per_year").fill_null(0.0).alias("value"),
            "price",
            pl.col("budget_district").fill_null("").alias("district"),
            pl.col("clc_class").fill_null("").str.slice(0, 1).alias("clc_top"),
            "bookstore_id",
            "reader_id",
            "isbn",
            pl.col("requested_at").dt.epoch("us").alias("arrival"),
        )
    )


def problem(lines: pl.DataFrame, district_readers: dict[str, int]):
    """A :class:`~acquisition.optimize.SelectionProblem` over ``lines`` with the module's constraints."""
    from acquisition.optimize import SelectionProblem

    budget = 0.3 * float(lines["price"].sum())
    share = lines.group_by("district").agg(pl.col("price").sum() / lines["price"].sum())
    return SelectionProblem(
        value=lines["value"].to_numpy(),
        price=lines["price"].to_numpy(),
        budget=budget,
        district=lines["district"].to_numpy(),
        clc_top=lines["clc_top"].to_numpy(),
        bookstore=lines["bookstore_id"].to_numpy(),
        reader=lines["reader_id"].to_numpy(),
        isbn=lines["isbn"].to_numpy(),
        arrival=lines["arrival"].to_numpy(),
        district_min_share={d: 0.5 * s for d, s in share.iter_rows() if d},
        class_cap_share={"*": 0.4},
        bookstore_cap={"*": 0.25 * budget},
        reader_cap=2,
        title_cap=2,
        district_readers=district_readers,
        equalisation="soft",
        equalisation_band=0.10,
    )


def run(ctx: BenchContext) -> Iterator[Row]:
    try:
        from acquisition.optimize import select_greedy, select_milp
    except ImportError as exc:
        raise BenchError(f"acquisition.optimize is not available ({exc})") from exc
    data = city_dir(ctx)
    lines = request_lines(ctx)
    branches = pl.read_parquet(data / "branches.parquet").select("branch_id", "district")
    district_readers = dict(
        pl.read_parquet(data / "readers.parquet")
        .join(branches, left_on="home_branch_id", right_on="branch_id")
        .group_by("district")
        .len()
        .iter_rows()
    )
    sizes = QUICK_SIZES if ctx.quick else SIZES
    for n in sizes:
        if n > lines.height:
            raise BenchError(f"milp: {n} lines asked, the city has {lines.height} purchase requests")
        p = problem(lines.head(n), district_readers)
        rss = PeakRSS()
        with rss:
            chosen = select_milp(p, time_limit=60.0)
        greedy = select_greedy(p)
        yield (
            Row(
                bench="milp",
                name=f"select {n:,} lines: seconds",
                value=chosen.seconds,
                unit="s",
                peer="greedy value/price (upper caps only)",
                peer_value=greedy.seconds,
                goal=MILP_GOAL if n == sizes[-1] else None,
                peak_rss_mb=rss.peak_mb,
                extra={
                    "lines": n,
                    "status": chosen.status,
                    "mip_gap": chosen.mip_gap,
                    "milp_value": chosen.value,
                    "greedy_value": greedy.value,
                    "gain_over_greedy": chosen.value / greedy.value - 1.0 if greedy.value else None,
                    "milp_spend": chosen.spend,
                    "greedy_spend": greedy.spend,
                    "budget": p.budget,
                    "greedy_violations": greedy.violations,
                    "milp_violations": chosen.violations,
                },
            )
        )
