"""Placement (issue 15 §5, as collectionHQ places copies by branch demand): when a reader-chosen copy
comes back from its requester, suggest the branch where the demand AFTER the requester is highest.

Demand at a branch ``b`` as known at ``t`` (the requester's own loans and holds left out):

- ``title_demand``: holds on the title picked up at ``b`` still waiting at ``t`` (placed by ``t``,
  unfulfilled at ``t``, younger than ``hold_horizon_days``) plus loans of the title at ``b`` in the
  ``window_days`` before ``t``: readers who want THIS book there;
- ``class_turnover``: loans at ``b`` in the window of titles in the book's CLC top class, per copy
  of that class held at ``b`` (the class's demand per copy: high where the shelf is emptied fastest).

Branches rank by title demand, then class turnover, then id (deterministic). Everything is polars
over the data directory's tables, read lazily with the time filters pushed down.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from pydantic import BaseModel, Field

from acquisition.db import Database, PurchaseRequestRow
from acquisition.errors import RequestNotFound
from features.schema import LocalDateTime, scan_table, table_path

_log = logging.getLogger(__name__)

#: Copy statuses that are on a branch's books.
_HELD = ("on_shelf", "on_loan", "in_transit")


class BranchDemand(BaseModel):
    """One branch's demand for the book after its requester."""

    branch_id: str
    district: str | None
    title_demand: int = Field(
        ge=0, description="Waiting holds plus recent loans of the title here (not the requester's)."
    )
    class_loans: int = Field(ge=0, description="Recent loans of the book's CLC top class here (not the requester's).")
    class_copies: int = Field(ge=0, description="Copies of that class held here.")
    class_turnover: float = Field(ge=0, description="class_loans per copy of the class (per 1 when none).")


class Placement(BaseModel):
    """Where a returned reader-chosen copy should go."""

    request_id: str | None = None
    isbn13: str | None
    clc_class: str | None
    as_of: LocalDateTime
    suggested_branch: str | None = Field(description="The branch with the highest demand; null without branches.")
    branches: list[BranchDemand] = Field(description="The best branches, highest demand first.")


def _read(data_dir: Path, name: str) -> pl.LazyFrame | None:
    return scan_table(data_dir, name) if table_path(data_dir, name).exists() else None


def _title_demand(
    data_dir: Path, title_ids: pl.LazyFrame, requester: str, t: datetime, window: timedelta, horizon: timedelta
) -> pl.LazyFrame:
    parts = []
    loans = _read(data_dir, "loans")
    if loans is not None:
        parts.append(
            loans.join(title_ids, on="title_id")
            .filter(pl.col("reader_id") != requester, pl.col("borrowed_at").is_between(t - window, t))
            .select("branch_id")
        )
    holds = _read(data_dir, "holds")
    if holds is not None:
        if "fulfilled_at" not in holds.collect_schema().names():
            holds = holds.with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("fulfilled_at"))
        parts.append(
            holds.join(title_ids, on="title_id")
            .filter(
                pl.col("reader_id") != requester,
                pl.col("placed_at").is_between(t - horizon, t),
                pl.col("fulfilled_at").is_null() | (pl.col("fulfilled_at") > t),
            )
            .select("branch_id")
        )
    if not parts:
        return pl.LazyFrame(schema={"branch_id": pl.String, "title_demand": pl.UInt32})
    return pl.concat(parts).group_by("branch_id").agg(pl.len().alias("title_demand"))


def _class_demand(
    data_dir: Path, class_titles: pl.LazyFrame, requester: str, t: datetime, window: timedelta
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    copies = _read(data_dir, "copies")
    held = (
        copies.join(class_titles, on="title_id")
        .filter(pl.col("status").is_in(_HELD))
        .group_by("branch_id")
        .agg(pl.len().alias("class_copies"))
        if copies is not None
        else pl.LazyFrame(schema={"branch_id": pl.String, "class_copies": pl.UInt32})
    )
    loans = _read(data_dir, "loans")
    lent = (
        loans.join(class_titles, on="title_id")
        .filter(pl.col("reader_id") != requester, pl.col("borrowed_at").is_between(t - window, t))
        .group_by("branch_id")
        .agg(pl.len().alias("class_loans"))
        if loans is not None
        else pl.LazyFrame(schema={"branch_id": pl.String, "class_loans": pl.UInt32})
    )
    return held, lent


def suggest(
    data_dir: str | Path,
    *,
    isbn13: str | None,
    clc_class: str | None,
    requester: str,
    at: datetime,
    window_days: float = 365.0,
    hold_horizon_days: float = 90.0,
    top: int = 5,
) -> Placement:
    """The branches ranked by demand for the book after ``requester``, as known at ``at``."""
    data_dir = Path(data_dir)
    window, horizon = timedelta(days=window_days), timedelta(days=hold_horizon_days)
    titles = _read(data_dir, "titles")
    top_class = (clc_class or "")[:1].upper()
    if titles is None:
        titles = pl.LazyFrame(schema={"title_id": pl.String, "isbn13": pl.String, "clc_class": pl.String})
    same_title = titles.filter(pl.col("isbn13") == (isbn13 or "")).select("title_id")
    same_class = titles.filter(pl.col("clc_class").str.slice(0, 1).str.to_uppercase() == top_class).select("title_id")
    branches = _read(data_dir, "branches")
    if branches is None:
        return Placement(isbn13=isbn13, clc_class=clc_class, as_of=at, suggested_branch=None, branches=[])
    held, lent = _class_demand(data_dir, same_class, requester, at, window)
    ranked = (
        branches.select("branch_id", "district")
        .join(_title_demand(data_dir, same_title, requester, at, window, horizon), on="branch_id", how="left")
        .join(lent, on="branch_id", how="left")
        .join(held, on="branch_id", how="left")
        .with_columns(pl.col("title_demand", "class_loans", "class_copies").fill_null(0).cast(pl.Int64))
        .with_columns(
            (pl.col("class_loans") / pl.max_horizontal(pl.col("class_copies"), pl.lit(1))).alias("class_turnover")
        )
        .sort(["title_demand", "class_turnover", "branch_id"], descending=[True, True, False])
        .head(top)
        .collect()
    )
    rows = [BranchDemand(**r) for r in ranked.to_dicts()]
    return Placement(
        isbn13=isbn13,
        clc_class=clc_class,
        as_of=at,
        suggested_branch=rows[0].branch_id if rows else None,
        branches=rows,
    )


def for_request(db: Database, data_dir: str | Path, request_id: str, *, at: datetime, top: int = 5) -> Placement:
    """The placement of a request's copy once its requester returns it (the requester left out)."""
    with db.session_scope() as s:
        req = s.get(PurchaseRequestRow, request_id)
        if req is None:
            raise RequestNotFound(f"purchase request {request_id}: not found")
        isbn13, clc, reader = req.isbn13, req.clc_class, req.reader_id
    if clc is None and isbn13 is not None and table_path(data_dir, "titles").exists():
        known = scan_table(data_dir, "titles").filter(pl.col("isbn13") == isbn13).select("clc_class").head(1).collect()
        clc = known["clc_class"][0] if known.height else None
    placed = suggest(data_dir, isbn13=isbn13, clc_class=clc, requester=reader, at=at, top=top)
    _log.info("placement of request %s: %s", request_id, placed.suggested_branch)
    return placed.model_copy(update={"request_id": request_id})
