"""A fund's burn-down across its programme year: money used (encumbered + spent) against the plan,
month by month, and the date the fund runs out at the pace so far.

Built on the budget report (:func:`acquisition.funds.budget_report`, the figures of ``GET /v1/funds``):
the plan per month is the fund's month lines (``parent_id`` = the fund) when it has a monthly plan, else
its planned amount spread evenly over twelve months (integer fen, summing exactly); the money used per
month is the report's ``months`` (by the month the money was committed). The projection is linear:
the average daily use from 1 January to ``as_of`` carried forward until it reaches the plan.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from itertools import accumulate

from pydantic import BaseModel, ConfigDict, Field

from acquisition.db import Database
from acquisition.errors import FundRefused
from acquisition.funds import FundReport, budget_report, split_fen


class BurnMonth(BaseModel):
    """One month of a burn-down, cumulative from January, fen."""

    model_config = ConfigDict(frozen=True)

    month: str = Field(description="'YYYY-MM'.")
    planned_fen: int = Field(description="The plan up to the end of this month.")
    used_fen: int | None = Field(description="Encumbered + spent up to the end of this month (None: still ahead).")


class BurnDown(BaseModel):
    """A fund's year: cumulative plan and use per month, and the projected exhaustion date."""

    model_config = ConfigDict(frozen=True)

    fund_id: str
    year: str
    as_of: date
    planned_fen: int = Field(description="The fund's plan for the year (its row's planned_fen in GET /v1/funds).")
    used_fen: int = Field(description="Encumbered + spent so far (the fund row's encumbered_fen + spent_fen).")
    daily_use_fen: float = Field(description="Average use per day from 1 January to as_of (0 outside the year).")
    projected_exhaustion: date | None = Field(
        description="When the plan is used up at the pace so far; None when not within the year."
    )
    months: list[BurnMonth]


def _month_plan(report: FundReport, fund_id: str, planned: int) -> list[int]:
    """The fund's plan per month: its month lines', else an even split of the year."""
    months = {r.period: r.planned_fen for r in report.rows if r.parent_id == fund_id and len(r.period) == 7}
    if months:
        return [months.get(f"{report.year}-{m:02d}", 0) for m in range(1, 13)]
    return split_fen(planned, [1.0] * 12)


def _projection(used: int, planned: int, year: int, as_of: date) -> tuple[float, date | None]:
    """(average daily use, exhaustion date within the year or None) at the pace up to ``as_of``."""
    if as_of.year != year:
        return 0.0, None
    start = date(year, 1, 1)
    rate = used / ((as_of - start).days + 1)
    if rate <= 0:
        return 0.0, None
    if used >= planned:
        return rate, as_of
    days = math.ceil(planned / rate)  # may be far beyond any date: compare before making one
    if days > (date(year, 12, 31) - start).days + 1:
        return rate, None
    return rate, start + timedelta(days=days - 1)


def burn_down(db: Database, year: str, fund_id: str, as_of: date) -> BurnDown:
    """The burn-down of fund ``fund_id`` (a year line of ``year``); :class:`FundRefused` when none."""
    report = budget_report(db, year)
    fund = next((r for r in report.rows if r.fund_id == fund_id and r.period == report.year), None)
    if fund is None:
        known = ", ".join(r.fund_id for r in report.rows if r.period == report.year) or "none"
        raise FundRefused(f"fund {fund_id!r}: not a fund of programme year {report.year} (funds: {known})")
    used = {m.month: m.encumbered_fen + m.spent_fen for m in report.months if m.fund_id == fund_id}
    labels = [f"{report.year}-{m:02d}" for m in range(1, 13)]
    used_cum = list(accumulate(used.get(m, 0) for m in labels))
    ahead = f"{as_of:%Y-%m}" if as_of.year == int(report.year) else ("9999" if as_of.year > int(report.year) else "")
    months = [
        BurnMonth(month=m, planned_fen=p, used_fen=u if m <= ahead else None)
        for m, p, u in zip(labels, accumulate(_month_plan(report, fund_id, fund.planned_fen)), used_cum, strict=True)
    ]
    used_now = fund.encumbered_fen + fund.spent_fen
    rate, end = _projection(used_now, fund.planned_fen, int(report.year), as_of)
    return BurnDown(
        fund_id=fund_id,
        year=report.year,
        as_of=as_of,
        planned_fen=fund.planned_fen,
        used_fen=used_now,
        daily_use_fen=round(rate, 2),
        projected_exhaustion=end,
        months=months,
    )
