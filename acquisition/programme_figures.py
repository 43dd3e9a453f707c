"""The programme's own figures (issue 15 §4, DOMAIN.md §4 and §6), from a data directory as of a time.

* **Circulation, matched**: loans per copy in the first ``months`` after acquisition of reader-chosen
  copies against the library's regular acquisitions of the same CLC top class and audience (the
  regular copies' cell means weighted by the reader-chosen copies in each cell: direct
  standardisation), with and without the requester's own loan of the copy.
* **Dead on arrival**: the share of copies with no loan, or with at most one, in their first 6 months.
* **Requesters served**: the share of readers who asked in the window and got at least one book.
* **Fill rate and spend per resident**, per district and age band of the requester's home.

Only events before ``as_of`` are read; copies younger than the follow-up are left out of its figure.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from pydantic import BaseModel, Field

from features.schema import LocalDateTime, clc_top, scan_table

#: Request statuses in which the programme bought (or is buying) the book.
FILLED = ("approved", "reserved", "checked_out", "ordered", "received", "fulfilled")
MONTH_DAYS = 30.44


class ProgrammeCirculation(BaseModel):
    """Loans per copy in the first months after acquisition, reader-chosen vs regular (matched)."""

    months: int
    reader_choice_copies: int
    regular_copies: int
    reader_choice_loans_per_copy: float
    reader_choice_loans_per_copy_without_requester: float
    regular_loans_per_copy_matched: float = Field(description="Regular copies, standardised to the reader-chosen mix.")
    regular_loans_per_copy_raw: float
    ratio_matched: float | None = Field(description="Reader-chosen (with the requester's loan) / regular matched.")
    ratio_matched_without_requester: float | None


class DeadOnArrivalRate(BaseModel):
    """Share of copies with no loan (``none``) or at most one (``at_most_one``) in their first 6 months."""

    source: str
    copies: int
    none_pct: float
    at_most_one_pct: float


class DistrictBand(BaseModel):
    district: str
    age_band: str
    residents: int
    requests: int
    filled: int
    fill_rate_pct: float
    filled_per_1000_residents: float
    spend_per_resident_yuan: float


class ProgrammeFigures(BaseModel):
    """The programme's figures as of ``as_of`` over the ``window_days`` before it."""

    as_of: LocalDateTime = Field(
        description="Figures as of this time (the last request by default), with its UTC offset."
    )
    window_days: int
    circulation: ProgrammeCirculation
    dead_on_arrival: list[DeadOnArrivalRate]
    requesters: int
    requesters_served_pct: float
    by_district_age: list[DistrictBand]


def _copy_loans(data_dir: Path, as_of: datetime, months: int) -> pl.DataFrame:
    """Reader-chosen and regular copies old enough for the follow-up: class, audience, loans in it,
    and the requester's own loan (a reader-chosen copy's first loan: the programme lends it first to
    the reader who chose it, at the bookstore or on arrival)."""
    follow = timedelta(days=months * MONTH_DAYS)
    titles = scan_table(data_dir, "titles").select(
        "title_id", clc_top(pl.col("clc_class")).alias("top"), pl.col("audience").fill_null("adult")
    )
    loans = scan_table(data_dir, "loans").filter(pl.col("borrowed_at") < as_of).select("copy_id", "borrowed_at")
    # a copy acquired before the loan records begin would look unborrowed in its first months
    first_record = loans.select(pl.col("borrowed_at").min()).collect().item() or as_of
    copies = (
        scan_table(data_dir, "copies")
        .filter(pl.col("acquired_at").cast(pl.Datetime("us")) >= first_record)
        .filter(pl.col("source").is_in(["reader_choice", "regular_order"]))
        .filter(pl.col("acquired_at").cast(pl.Datetime("us")) + follow <= as_of)
        .join(titles, on="title_id")
    )
    per_copy = (
        copies.join(loans, on="copy_id", how="left")
        .with_columns(
            # the requester's own use: a reader-chosen copy is lent first to the reader who chose it
            (
                (pl.col("borrowed_at") == pl.col("borrowed_at").min().over("copy_id"))
                & (pl.col("source") == "reader_choice")
            )
            .fill_null(False)
            .alias("first"),
            (pl.col("borrowed_at") < pl.col("acquired_at").cast(pl.Datetime("us")) + follow)
            .fill_null(False)
            .alias("in_f"),
            (pl.col("borrowed_at") < pl.col("acquired_at").cast(pl.Datetime("us")) + timedelta(days=6 * MONTH_DAYS))
            .fill_null(False)
            .alias("in_6"),
        )
        .group_by("copy_id", "source", "top", "audience")
        .agg(
            pl.col("in_f").sum().alias("loans"),
            (pl.col("in_f") & pl.col("first")).sum().alias("own"),
            pl.col("in_6").sum().alias("loans_6m"),
        )
    )
    return per_copy.collect()


def _circulation(per_copy: pl.DataFrame, months: int) -> ProgrammeCirculation:
    rc = per_copy.filter(pl.col("source") == "reader_choice")
    reg = per_copy.filter(pl.col("source") == "regular_order")
    cells = reg.group_by("top", "audience").agg(pl.col("loans").mean().alias("reg_mean"))
    mix = rc.group_by("top", "audience").len("n").join(cells, on=["top", "audience"], how="inner")
    matched = float((mix["n"] * mix["reg_mean"]).sum() / mix["n"].sum()) if mix.height else 0.0
    with_own = float(rc["loans"].mean() or 0.0)
    without = float((rc["loans"] - rc["own"]).mean() or 0.0)

    def ratio(x: float) -> float | None:
        return round(x / matched, 3) if matched > 0 else None

    return ProgrammeCirculation(
        months=months,
        reader_choice_copies=rc.height,
        regular_copies=reg.height,
        reader_choice_loans_per_copy=round(with_own, 3),
        reader_choice_loans_per_copy_without_requester=round(without, 3),
        regular_loans_per_copy_matched=round(matched, 3),
        regular_loans_per_copy_raw=round(float(reg["loans"].mean() or 0.0), 3),
        ratio_matched=ratio(with_own),
        ratio_matched_without_requester=ratio(without),
    )


def _dead_on_arrival(per_copy: pl.DataFrame) -> list[DeadOnArrivalRate]:
    rows = (
        per_copy.group_by("source")
        .agg(
            pl.len().alias("copies"),
            ((pl.col("loans_6m") == 0).mean() * 100).round(2).alias("none_pct"),
            ((pl.col("loans_6m") <= 1).mean() * 100).round(2).alias("at_most_one_pct"),
        )
        .sort("source")
    )
    return [DeadOnArrivalRate(**r) for r in rows.to_dicts()]


def _district_age(data_dir: Path, requests: pl.LazyFrame) -> pl.DataFrame:
    """Requests, filled ones and spend per district and age band of the requester's home."""
    branches = scan_table(data_dir, "branches").select(pl.col("branch_id").alias("home_branch_id"), "district")
    readers = (
        scan_table(data_dir, "readers").join(branches, on="home_branch_id").select("reader_id", "district", "age_band")
    )
    residents = readers.group_by("district", "age_band").len("residents")
    filled = pl.col("status").is_in(FILLED)
    asked = (
        requests.join(readers, on="reader_id")
        .group_by("district", "age_band")
        .agg(
            pl.len().alias("requests"),
            filled.sum().alias("filled"),
            pl.col("price").filter(filled).sum().alias("spend"),
        )
    )
    return (
        residents.join(asked, on=["district", "age_band"], how="left")
        .with_columns(pl.col("requests", "filled").fill_null(0), pl.col("spend").fill_null(0.0))
        .with_columns(
            (pl.col("filled") * 100 / pl.col("requests")).fill_nan(0.0).fill_null(0.0).round(2).alias("fill_rate_pct"),
            (pl.col("filled") * 1000 / pl.col("residents")).round(3).alias("filled_per_1000_residents"),
            (pl.col("spend") / pl.col("residents")).round(4).alias("spend_per_resident_yuan"),
        )
        .drop("spend")
        .sort("district", "age_band")
        .collect()
    )


def programme_figures(
    data_dir: str | Path, *, as_of: datetime | None = None, window_days: int = 365, months: int = 12
) -> ProgrammeFigures:
    """Every figure of the programme as of ``as_of`` (default: the last request)."""
    data_dir = Path(data_dir)
    all_requests = scan_table(data_dir, "purchase_requests")
    if as_of is None:
        as_of = all_requests.select(pl.col("requested_at").max()).collect().item() + timedelta(seconds=1)
    window = all_requests.filter(pl.col("requested_at").is_between(as_of - timedelta(days=window_days), as_of, "left"))
    per_copy = _copy_loans(data_dir, as_of, months)
    served = window.group_by("reader_id").agg(pl.col("status").is_in(FILLED).any().alias("served")).collect()
    return ProgrammeFigures(
        as_of=as_of,
        window_days=window_days,
        circulation=_circulation(per_copy, months),
        dead_on_arrival=_dead_on_arrival(per_copy),
        requesters=served.height,
        requesters_served_pct=round(float(served["served"].mean() or 0.0) * 100, 2),
        by_district_age=[DistrictBand(**r) for r in _district_age(data_dir, window).to_dicts()],
    )
