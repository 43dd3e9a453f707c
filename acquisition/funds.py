"""Funds: the programme year's money as a hierarchy, its budget report and the fiscal-year close.

A fund (:class:`acquisition.policy.FundConfig`, from the policy's ``[[funds]]`` or a data directory's
``funds.toml``) is a year budget line (``period = 'YYYY'``, id ``fund_id``) and, with a monthly plan,
twelve month lines (``fund_id-01`` .. ``fund_id-12``) whose parent is the fund. Today's ``budgets``
lines keep working unchanged: a year line is a fund without a plan, a month line is one month of a plan.

The hierarchy (programme year -> district / county -> bookstore, optionally by channel) is checked on
load: a child's scope narrows its parent's (same year, same district / bookstore / channel where the
parent names one) and the hard caps of a fund's children fit in the fund's ceiling. Because a request
draws on every line whose scope matches (:func:`acquisition.ledger.applicable_lines`), money spent
through a bookstore's fund is also spent from its district's fund and from the programme year.

Policy per fund: ``cap = "hard"`` (the amount is never exceeded; the database CHECK enforces it) or
``"soft"`` (the amount is a target, reported as ``planned``; the enforced ceiling is ``hard_cap_yuan``
or the parent's); ``monthly = "hard"`` (each month's share is a cap, as today's monthly lines) or
``"plan"`` (the share is reported only); ``unspent = "return" | "carry"`` (what :func:`close_year` does).

The budget report (:func:`budget_report`) gives per fund and month planned / encumbered / spent / free,
in integer fen, with ``planned == encumbered + spent + free`` on every row, exactly.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select

from acquisition import ledger
from acquisition.audit import audit_rows, record_many
from acquisition.db import BudgetLineRow, Database, FiscalCloseRow, ReservationLineRow, ReservationRow
from acquisition.errors import InvalidPeriod
from acquisition.lifecycle import ReservationStatus
from acquisition.policy import FundConfig, Policy, PolicyError, yuan_to_fen

_log = logging.getLogger(__name__)

#: Columns of a budget-line frame carrying funds (:func:`acquisition.db.load_budget_lines`).
LINE_SCHEMA = {
    "budget_id": pl.String,
    "period": pl.String,
    "bookstore_id": pl.String,
    "district": pl.String,
    "channel": pl.String,
    "parent_id": pl.String,
    "amount": pl.Float64,
    "target": pl.Float64,
    "rollover": pl.String,
}


def split_fen(amount_fen: int, weights: Sequence[float]) -> list[int]:
    """``amount_fen`` split by ``weights`` into integer fen that sum to it exactly (largest remainder)."""
    total = sum(weights)
    exact = [amount_fen * w / total for w in weights]
    parts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (parts[i] - exact[i], i))
    for i in order[: amount_fen - sum(parts)]:
        parts[i] += 1
    return parts


def _check_scope(fund: FundConfig, parent: FundConfig, source: str) -> None:
    """A child fund narrows its parent: same year, and the parent's district / bookstore / channel kept."""
    key = f"funds.{fund.fund_id}.parent"
    if parent.year != fund.year:
        raise PolicyError(source, key, f"parent {parent.fund_id} is for {parent.year}, not {fund.year}")
    for field in ("district", "bookstore_id", "channel"):
        if getattr(parent, field) is not None and getattr(parent, field) != getattr(fund, field):
            raise PolicyError(source, key, f"parent {parent.fund_id} is for {field} {getattr(parent, field)!r}")


def _ceilings(funds: Sequence[FundConfig], source: str) -> dict[str, int]:
    """Each fund's enforced ceiling, fen (parents first), after checking the hierarchy."""
    by_id = {f.fund_id: f for f in funds}
    if len(by_id) != len(funds):
        raise PolicyError(source, "funds", "two funds share one fund_id")
    ceilings: dict[str, int] = {}

    def ceiling(fund: FundConfig, seen: tuple[str, ...] = ()) -> int:
        if fund.fund_id in seen:
            raise PolicyError(source, f"funds.{fund.fund_id}.parent", "the hierarchy has a cycle")
        if fund.fund_id not in ceilings:
            parent = by_id.get(fund.parent) if fund.parent else None
            if fund.parent and parent is None:
                raise PolicyError(source, f"funds.{fund.fund_id}.parent", f"no fund {fund.parent!r}")
            if parent is not None:
                _check_scope(fund, parent, source)
            above = ceiling(parent, (*seen, fund.fund_id)) if parent is not None else None
            if fund.cap == "hard":
                ceilings[fund.fund_id] = yuan_to_fen(fund.amount_yuan)
            elif fund.hard_cap_yuan is not None or above is not None:
                ceilings[fund.fund_id] = yuan_to_fen(fund.hard_cap_yuan) if fund.hard_cap_yuan is not None else above
            else:
                raise PolicyError(
                    source, f"funds.{fund.fund_id}.hard_cap_yuan", "a soft fund without a parent needs one"
                )
        return ceilings[fund.fund_id]

    for fund in funds:
        ceiling(fund)
    _check_children_fit(funds, ceilings, source)
    return ceilings


def _check_children_fit(funds: Sequence[FundConfig], ceilings: dict[str, int], source: str) -> None:
    """The hard caps of a fund's children never add up to more than the fund's ceiling."""
    children: dict[str, int] = {}
    for f in funds:
        if f.parent and f.cap == "hard":
            children[f.parent] = children.get(f.parent, 0) + ceilings[f.fund_id]
    for parent, total in children.items():
        if total > ceilings[parent]:
            raise PolicyError(
                source,
                f"funds.{parent}",
                f"its children's hard caps add up to {total / 100:.2f} yuan, above its {ceilings[parent] / 100:.2f}",
            )


def fund_lines(funds: Sequence[FundConfig], source: str = "policy") -> pl.DataFrame:
    """The budget lines of ``funds`` (a year line each, and twelve month lines with a monthly plan)."""
    ceilings = _ceilings(funds, source)
    rows = []
    for f in funds:
        ceiling, amount = ceilings[f.fund_id], yuan_to_fen(f.amount_yuan)
        scope = {"bookstore_id": f.bookstore_id, "district": f.district, "channel": f.channel, "rollover": f.unspent}
        target = None if f.cap == "hard" else amount / 100
        rows.append({"budget_id": f.fund_id, "period": str(f.year), "parent_id": f.parent} | scope)
        rows[-1] |= {"amount": ceiling / 100, "target": target}
        for month, share in enumerate(split_fen(amount, f.monthly_plan) if f.monthly_plan else [], start=1):
            cap = share if f.monthly == "hard" else ceiling
            rows.append(
                {"budget_id": f"{f.fund_id}-{month:02d}", "period": f"{f.year}-{month:02d}", "parent_id": f.fund_id}
                | scope
                | {"amount": cap / 100, "target": share / 100, "rollover": "return"}
            )
    return pl.DataFrame(rows, schema=LINE_SCHEMA)


def policy_lines(policy: Policy) -> pl.DataFrame | None:
    """The policy's budget lines and funds as one frame for :func:`acquisition.db.load_budget_lines`
    (None when the policy has neither: the data directory's lines are used)."""
    frames = [
        pl.DataFrame(
            [b.model_dump() | {"amount": b.amount_yuan} for b in policy.budgets],
            schema={c: LINE_SCHEMA[c] for c in ("budget_id", "period", "bookstore_id", "district", "amount")},
        )
    ]
    if policy.funds:
        frames.append(fund_lines(policy.funds))
    lines = pl.concat(frames, how="diagonal_relaxed")
    return lines if lines.height else None


def load_funds_file(path: str | Path) -> pl.DataFrame:
    """A ``funds.toml`` (``[[funds]]`` tables as in the policy) as budget lines; :class:`PolicyError`
    names the file, the key and the reason."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(path.name, "", f"not valid TOML ({exc})") from exc
    funds = []
    for i, raw in enumerate(data.get("funds", [])):
        try:
            funds.append(FundConfig.model_validate(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise PolicyError(path.name, f"funds[{i}].{'.'.join(map(str, err['loc']))}", err["msg"]) from exc
    return fund_lines(funds, path.name)


# --- the budget report ------------------------------------------------------------------------------


class FundRow(BaseModel):
    """One fund (a year line) or one month of a fund's plan (a month line), integer fen.
    ``planned == encumbered + spent + free`` exactly; ``free`` is negative when a soft target is passed."""

    model_config = ConfigDict(frozen=True)

    fund_id: str
    parent_id: str | None
    period: str = Field(description="'YYYY' for the fund, 'YYYY-MM' for one month of its plan.")
    district: str | None
    bookstore_id: str | None
    channel: str | None
    planned_fen: int = Field(description="The plan: the soft target or monthly share, else the amount.")
    encumbered_fen: int = Field(description="Reserved at a counter or approved, not yet invoiced.")
    spent_fen: int = Field(description="Invoiced.")
    free_fen: int = Field(description="planned - encumbered - spent.")
    room_fen: int = Field(description="What the hard cap still allows: amount - encumbered - spent (>= 0).")


class FundMonth(BaseModel):
    """A fund's encumbrance and spend by the month the money was committed (reservation time), fen."""

    model_config = ConfigDict(frozen=True)

    fund_id: str
    month: str
    encumbered_fen: int
    spent_fen: int


class FundReport(BaseModel):
    """The budget report of a programme year: every fund and month line, and each fund's months."""

    model_config = ConfigDict(frozen=True)

    year: str
    closed: bool
    rows: list[FundRow]
    months: list[FundMonth]


_MONEY_STATES = {
    ReservationStatus.RESERVED.value: "encumbered_fen",
    ReservationStatus.CONFIRMED.value: "encumbered_fen",
    ReservationStatus.INVOICED.value: "spent_fen",
}


def _fund_months(s, year_ids: list[str]) -> list[FundMonth]:
    rows = s.execute(
        select(
            ReservationLineRow.budget_id,
            ReservationRow.created_at,
            ReservationRow.status,
            ReservationLineRow.amount_fen,
        )
        .join(ReservationRow, ReservationRow.reservation_id == ReservationLineRow.reservation_id)
        .where(ReservationLineRow.budget_id.in_(year_ids), ReservationRow.status.in_(list(_MONEY_STATES)))
    ).all()
    frame = pl.DataFrame(
        [tuple(r) for r in rows],
        schema={"fund_id": pl.String, "at": pl.Datetime, "status": pl.String, "fen": pl.Int64},
        orient="row",
    )
    months = (
        frame.with_columns(
            pl.col("at").dt.strftime("%Y-%m").alias("month"), pl.col("status").replace_strict(_MONEY_STATES)
        )
        .group_by("fund_id", "month")
        .agg(
            pl.col("fen").filter(pl.col("status") == "encumbered_fen").sum().alias("encumbered_fen"),
            pl.col("fen").filter(pl.col("status") == "spent_fen").sum().alias("spent_fen"),
        )
        .sort("fund_id", "month")
    )
    return [FundMonth(**r) for r in months.iter_rows(named=True)]


def budget_report(db: Database, year: str) -> FundReport:
    """Planned / encumbered / spent / free of every fund of ``year`` and of each month of its plan."""
    year = check_year(year)
    b = BudgetLineRow
    with db.session_scope() as s:
        lines = s.scalars(
            select(b).where((b.period == year) | b.period.like(f"{year}-%")).order_by(b.period, b.budget_id)
        ).all()
        months = _fund_months(s, [line.budget_id for line in lines if line.period == year])
        closed = s.get(FiscalCloseRow, year) is not None
    rows = []
    for line in lines:
        encumbered = line.reserved_fen + line.committed_fen
        planned = line.amount_fen if line.target_fen is None else line.target_fen
        rows.append(
            FundRow(
                fund_id=line.budget_id, parent_id=line.parent_id, period=line.period, district=line.district,
                bookstore_id=line.bookstore_id, channel=line.channel, planned_fen=planned,
                encumbered_fen=encumbered, spent_fen=line.spent_fen, free_fen=planned - encumbered - line.spent_fen,
                room_fen=line.amount_fen - encumbered - line.spent_fen,
            )
        )  # fmt: skip
    return FundReport(year=year, closed=closed, rows=rows, months=months)


# --- the fiscal-year close --------------------------------------------------------------------------


def check_year(year: str | int) -> str:
    """A programme year 2000..2100 as 'YYYY', or :class:`InvalidPeriod`."""
    text = str(year)
    if not (len(text) == 4 and text.isdigit() and 2000 <= int(text) <= 2100):
        raise InvalidPeriod(f"year: must be a year 2000..2100, got {text!r}")
    return text


def close_year(db: Database, year: str | int, *, actor: str, now: datetime) -> dict:
    """Close programme year ``year`` in one audited transaction (:func:`acquisition.ledger.close_year`):
    open encumbrances carried to next year, unspent money carried or returned by each fund's policy.
    Idempotent: a closed year is not closed again; its stored summary comes back with ``already_closed``."""
    year = check_year(year)
    with db.session_scope(write=True) as s:
        # lock the year's lines first: a concurrent close then waits here and sees the first one's row
        s.execute(select(BudgetLineRow.budget_id).where(BudgetLineRow.period == year).with_for_update()).all()
        done = s.get(FiscalCloseRow, year)
        if done is not None:
            return {**done.summary, "already_closed": True}
        audit: list[dict] = []
        summary = ledger.close_year(s, year, at=now, actor=actor, audit=audit)
        audit += audit_rows("fiscal_year", [year], "close", actor=actor, at=now, details=summary)
        s.add(FiscalCloseRow(year=year, closed_at=now, closed_by=actor, summary=summary))
        record_many(s, audit)
    _log.info("programme year %s closed: %s", year, {k: v for k, v in summary.items() if k != "successors"})
    return {**summary, "already_closed": False}


def open_encumbrance_fen(db: Database, year: str) -> int:
    """Reserved + committed money on the year's lines, fen (0 after its close)."""
    with db.session_scope() as s:
        b = BudgetLineRow
        return int(
            s.scalar(select(func.coalesce(func.sum(b.reserved_fen + b.committed_fen), 0)).where(b.period == year))
        )
