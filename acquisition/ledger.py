"""The budget ledger: the only code that moves money on ``budget_lines``.

Money is integer fen on budget lines (``amount_fen``, ``reserved_fen``, ``committed_fen``,
``spent_fen``; a CHECK keeps ``reserved + committed + spent <= amount``). Reserved and committed money
is the line's *encumbrance*; spent money is invoiced *expenditure*. A request draws its full price
from EVERY applicable line (:func:`applicable_lines`: this month's and this year's lines whose
bookstore, district and channel are null or match): a bookstore's fund, its district's fund and the
programme year (:mod:`acquisition.funds`) all carry it. Each function runs inside the caller's write transaction and writes its audit rows there.

| function | who calls it | money |
|---|---|---|
| :func:`reserve` + :func:`open_reservation` | counter ``decide`` (approved counter request) | ``reserved += price`` on every line, or on none |
| :func:`commit_reservation` | counter ``checkout`` | ``reserved -= price, committed += price`` |
| :func:`release_reservations` | counter ``cancel``, ``expire``, a checkout too late | ``reserved -= price`` (set-based) |
| :func:`charge` | staff ``approve`` in a round | ``committed += price`` on every line, or the decision is refused |
| :func:`refund` | staff ``reject`` / reset of an approved line | ``committed -= price`` |
| :func:`invoice` | the monthly settlement (:mod:`acquisition.settlement`) | ``committed -= price, spent += due`` |
| :func:`return_purchase` | a book returned to the bookstore | ``committed -= price`` or ``spent -= due`` |
| :func:`close_year` | ``yuedu acquisition close-year`` | encumbrances and (by policy) unspent money move to next year |

Never overspend, under any number of concurrent counters and staff: every charge is a conditional
``UPDATE ... SET reserved_fen = reserved_fen + :p WHERE ... amount_fen - reserved_fen - committed_fen
>= :p`` whose row count is checked, after the lines were locked in id order (PostgreSQL
``SELECT ... FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` write lock), so that concurrent
transactions cannot deadlock and a line without room fails the whole request.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from acquisition.audit import audit_rows
from acquisition.db import BudgetLineRow, Database, FiscalCloseRow, ReservationLineRow, ReservationRow
from acquisition.errors import BudgetInvariantError, DecisionRefused
from acquisition.lifecycle import RESERVATIONS, ReservationStatus
from acquisition.policy import Policy
from acquisition.rules import DeclineCode

_log = logging.getLogger(__name__)

_b = BudgetLineRow
#: Money left on a line, fen.
_ROOM = _b.amount_fen - _b.reserved_fen - _b.committed_fen - _b.spent_fen


class _Statements:
    """The counter path's statements, built once with bind parameters (building SQLAlchemy
    expressions costs more CPU than running them on SQLite; the engine caches their compiled form)."""

    def __init__(self) -> None:
        self.lines = (
            select(_b.budget_id, _ROOM)
            .where(
                _b.period.in_(bindparam("periods", expanding=True)),
                or_(_b.bookstore_id.is_(None), _b.bookstore_id == bindparam("bookstore_id")),
                or_(_b.district.is_(None), _b.district == bindparam("district")),
                or_(_b.channel.is_(None), _b.channel == bindparam("channel")),
            )
            .order_by(_b.budget_id)
            .with_for_update()
        )
        self.reserve = (
            update(_b)
            .where(_b.budget_id.in_(bindparam("budget_ids", expanding=True)), bindparam("price") <= _ROOM)
            .values(reserved_fen=_b.reserved_fen + bindparam("price"))
            .execution_options(synchronize_session=False)
        )
        self.insert_reservation = insert(ReservationRow.__table__)
        self.insert_lines = insert(ReservationLineRow.__table__)


_SQL = _Statements()


def _periods(at: datetime) -> list[str]:
    """The budget periods a request at ``at`` draws on: its month and its year."""
    return [at.strftime("%Y-%m"), at.strftime("%Y")]


def budget_district(policy: Policy, bookstore_district: str | None, reader_district: str | None) -> str | None:
    """The district whose lines a request uses: the bookstore's or the reader's (``budget_district_of``)."""
    return bookstore_district if policy.budget_district_of == "bookstore" else reader_district


def applicable_lines(
    s: Session, at: datetime, bookstore_id: str, district: str | None, channel: str = "online"
) -> list[str]:
    """Budget lines a request at ``at`` draws on, locked and ordered by id (a fixed lock order: no
    deadlocks): this month's and this year's lines whose bookstore, district and channel are null or
    match (staff rounds buy online requests, hence the default channel)."""
    params = {"periods": _periods(at), "bookstore_id": bookstore_id, "district": district, "channel": channel}
    return [r[0] for r in s.connection().execute(_SQL.lines, params)]


# --- the counter: reserve, commit, release -----------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    """The outcome of :func:`reserve`: the lines drawn on, or why nothing was reserved."""

    #: Applicable budget lines (ids, lock order).
    budget_ids: list[str]
    #: None when the price was reserved on every line; else the decline code.
    refused: DeclineCode | None = None


def _check_price(request_id: str, price_fen: int) -> None:
    """Refuse to move a price that is not at least 1 fen: a free book is bought outside the budget
    (the API refuses such prices first; this guards every other caller, e.g. a loaded ranking)."""
    if not isinstance(price_fen, int) or price_fen < 1:
        raise DecisionRefused(f"request {request_id}: price {price_fen!r} fen is not at least 1 fen")


def reserve(
    s: Session, price_fen: int, at: datetime, bookstore_id: str, district: str | None, channel: str = "counter"
) -> Hold:
    """Reserve ``price_fen`` on every applicable line, or on none: the lines are locked and their
    room read in one SELECT (ordered by id), then one conditional UPDATE charges them all."""
    _check_price("(counter)", price_fen)
    params = {"periods": _periods(at), "bookstore_id": bookstore_id, "district": district, "channel": channel}
    rows = s.connection().execute(_SQL.lines, params).all()
    lines = [r[0] for r in rows]
    if not lines:
        return Hold([], DeclineCode.NO_BUDGET_LINE)
    short = [r[0] for r in rows if r[1] < price_fen]
    if short:
        _log.info("budget line %s has no room for %d fen", short[0], price_fen)
        return Hold(lines, DeclineCode.BUDGET_EXHAUSTED)
    result = s.connection().execute(_SQL.reserve, {"budget_ids": lines, "price": price_fen})
    if result.rowcount != len(lines):
        # The lines are locked, so this cannot happen; fail the whole transaction rather than half-charge.
        raise BudgetInvariantError(f"budget lines {', '.join(lines)}: room changed under a lock")
    return Hold(lines)


def open_reservation(
    s: Session,
    hold: Hold,
    request_id: str,
    price_fen: int,
    *,
    at: datetime,
    expires_at: datetime,
    actor: str,
    audit: list[dict[str, Any]],
) -> str:
    """Record the reservation of a successful :func:`reserve` for ``request_id``; returns its id.
    Audit rows (the reservation and each budget line) are appended to ``audit``."""
    reservation_id = uuid.uuid4().hex
    RESERVATIONS.start(
        reservation_id,
        ReservationStatus.RESERVED,
        "reserve",
        actor=actor,
        at=at,
        details={"request_id": request_id, "amount_fen": price_fen, "budget_ids": hold.budget_ids},
        audit=audit,
    )
    s.execute(
        _SQL.insert_reservation,
        {
            "reservation_id": reservation_id,
            "request_id": request_id,
            "amount_fen": price_fen,
            "status": ReservationStatus.RESERVED.value,
            "created_at": at,
            "expires_at": expires_at,
        },
    )
    s.execute(
        _SQL.insert_lines,
        [{"reservation_id": reservation_id, "budget_id": b, "amount_fen": price_fen} for b in hold.budget_ids],
    )
    audit += audit_rows(
        "budget_line",
        hold.budget_ids,
        "reserve",
        actor=actor,
        at=at,
        details={"request_id": request_id, "reserved_fen_delta": price_fen},
    )
    return reservation_id


def commit_reservation(
    s: Session, res: ReservationRow, *, at: datetime, actor: str, audit: list[dict[str, Any]]
) -> None:
    """Checkout: the reservation's money moves from reserved to committed on each of its lines
    (locked in id order), and the reservation is confirmed."""
    lines = s.execute(
        select(ReservationLineRow.budget_id, ReservationLineRow.amount_fen)
        .where(ReservationLineRow.reservation_id == res.reservation_id)
        .order_by(ReservationLineRow.budget_id)  # the fixed lock order
    ).all()
    for budget_id, amount in lines:
        result = s.execute(
            update(_b)
            .where(_b.budget_id == budget_id, _b.reserved_fen >= amount)
            .values(reserved_fen=_b.reserved_fen - amount, committed_fen=_b.committed_fen + amount)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise BudgetInvariantError(f"budget line {budget_id}: reserved_fen below reservation {res.reservation_id}")
    res.settled_at = at
    RESERVATIONS.move(
        s,
        res,
        ReservationStatus.CONFIRMED,
        "confirm",
        actor=actor,
        at=at,
        details={"amount_fen": res.amount_fen},
        audit=audit,
    )
    audit += audit_rows(
        "budget_line",
        [bid for bid, _ in lines],
        "commit",
        actor=actor,
        at=at,
        details={
            "request_id": res.request_id,
            "reserved_fen_delta": -res.amount_fen,
            "committed_fen_delta": res.amount_fen,
        },
    )


def release_reservations(
    s: Session, reservation_ids: list[str], *, at: datetime, actor: str, reason: str, audit: list[dict[str, Any]]
) -> None:
    """Set-based release of live reservations (cancel, expire): each budget line gives back the
    reserved money of these reservations, and the reservations become released."""
    rl = ReservationLineRow
    touched = s.execute(
        select(rl.budget_id, func.sum(rl.amount_fen))
        .where(rl.reservation_id.in_(reservation_ids))
        .group_by(rl.budget_id)
        .order_by(rl.budget_id)
    ).all()
    budget_ids = [bid for bid, _ in touched]
    # lock the lines in id order before the set-based update (whose row order is the planner's)
    s.execute(select(_b.budget_id).where(_b.budget_id.in_(budget_ids)).order_by(_b.budget_id).with_for_update())
    given_back = (
        select(func.coalesce(func.sum(rl.amount_fen), 0))
        .where(rl.budget_id == _b.budget_id, rl.reservation_id.in_(reservation_ids))
        .scalar_subquery()
    )
    s.execute(
        update(_b)
        .where(_b.budget_id.in_(budget_ids))
        .values(reserved_fen=_b.reserved_fen - given_back)
        .execution_options(synchronize_session=False)
    )
    RESERVATIONS.move_many(
        s,
        ReservationRow,
        reservation_ids,
        ReservationStatus.RESERVED,
        ReservationStatus.RELEASED,
        "release",
        actor=actor,
        at=at,
        values={"settled_at": at},
        details={"reason": reason},
        audit=audit,
    )
    for budget_id, amount in touched:
        audit += audit_rows(
            "budget_line",
            [budget_id],
            "release",
            actor=actor,
            at=at,
            details={"reserved_fen_delta": -int(amount), "reason": reason},
        )


# --- staff rounds: charge, refund ---------------------------------------------------------------------


def charge(
    s: Session,
    request_id: str,
    price_fen: int,
    budget_ids: list[str],
    *,
    at: datetime,
    actor: str,
    audit: list[dict[str, Any]],
) -> None:
    """A staff approval: commit ``price_fen`` at once on every line of ``budget_ids`` (from
    :func:`applicable_lines`), recorded as a confirmed reservation of the request so that a refund
    gives exactly that money back. Raises :class:`DecisionRefused` naming the first line without
    room (the caller's transaction then rolls every line back)."""
    _check_price(request_id, price_fen)
    if not budget_ids:
        raise DecisionRefused(f"request {request_id}: no budget line covers this period for this bookstore/district")
    for budget_id in budget_ids:
        done = s.execute(
            update(_b)
            .where(_b.budget_id == budget_id, price_fen <= _ROOM)
            .values(committed_fen=_b.committed_fen + price_fen)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            raise DecisionRefused(
                f"request {request_id}: budget line {budget_id} has no room for {price_fen / 100:.2f} yuan"
            )
    _confirmed_reservation(s, request_id, price_fen, budget_ids, at=at, actor=actor, audit=audit)
    audit += audit_rows(
        "budget_line",
        budget_ids,
        "commit",
        actor=actor,
        at=at,
        details={"request_id": request_id, "committed_fen_delta": price_fen},
    )


def _confirmed_reservation(
    s: Session,
    request_id: str,
    price_fen: int,
    budget_ids: list[str],
    *,
    at: datetime,
    actor: str,
    audit: list[dict[str, Any]],
) -> None:
    """The request's reservation row, confirmed on ``budget_ids`` (a new one, or its released one
    reused), audited like every reservation change."""
    res = s.scalar(select(ReservationRow).where(ReservationRow.request_id == request_id))
    details = {"request_id": request_id, "amount_fen": price_fen, "budget_ids": budget_ids}
    if res is None:
        reservation_id = uuid.uuid4().hex
        RESERVATIONS.start(
            reservation_id, ReservationStatus.CONFIRMED, "confirm", actor=actor, at=at, details=details, audit=audit
        )
        res = ReservationRow(
            reservation_id=reservation_id,
            request_id=request_id,
            amount_fen=price_fen,
            status=ReservationStatus.CONFIRMED.value,
            created_at=at,
            expires_at=at,
            settled_at=at,
        )
        s.add(res)
        s.flush()
    else:
        res.amount_fen, res.settled_at = price_fen, at
        RESERVATIONS.move(
            s, res, ReservationStatus.CONFIRMED, "confirm", actor=actor, at=at, details=details, audit=audit
        )
        s.execute(ReservationLineRow.__table__.delete().where(ReservationLineRow.reservation_id == res.reservation_id))
    s.add_all(
        ReservationLineRow(reservation_id=res.reservation_id, budget_id=bid, amount_fen=price_fen) for bid in budget_ids
    )


def refund(s: Session, request_id: str, *, at: datetime, actor: str, audit: list[dict[str, Any]]) -> None:
    """Withdraw a staff approval: the confirmed reservation's money goes back to each of its lines
    (``committed -= price``) and the reservation is released. No confirmed reservation: nothing to do.
    An invoiced purchase is refused (:class:`DecisionRefused`): the bookstore was paid; return the book."""
    invoiced = s.scalar(
        select(ReservationRow.reservation_id).where(
            ReservationRow.request_id == request_id, ReservationRow.status == ReservationStatus.INVOICED
        )
    )
    if invoiced is not None:
        raise DecisionRefused(f"request {request_id} is invoiced by the bookstore; return the book instead")
    res = s.scalar(
        select(ReservationRow).where(
            ReservationRow.request_id == request_id, ReservationRow.status == ReservationStatus.CONFIRMED
        )
    )
    if res is None:
        return
    lines = s.scalars(
        select(ReservationLineRow.budget_id).where(ReservationLineRow.reservation_id == res.reservation_id)
    ).all()
    s.execute(
        update(_b)
        .where(_b.budget_id.in_(lines))
        .values(committed_fen=_b.committed_fen - res.amount_fen)
        .execution_options(synchronize_session=False)
    )
    res.settled_at = at
    RESERVATIONS.move(
        s,
        res,
        ReservationStatus.RELEASED,
        "release",
        actor=actor,
        at=at,
        details={"request_id": request_id, "reason": "refund"},
        audit=audit,
    )
    audit += audit_rows(
        "budget_line",
        list(lines),
        "refund",
        actor=actor,
        at=at,
        details={"request_id": request_id, "committed_fen_delta": -res.amount_fen},
    )


# --- invoices, returns ---------------------------------------------------------------------------------

_rl = ReservationLineRow


def _lock(s: Session, budget_ids: list[str]) -> None:
    """Lock lines in id order (the fixed lock order of every writer: no deadlocks)."""
    s.execute(select(_b.budget_id).where(_b.budget_id.in_(budget_ids)).order_by(_b.budget_id).with_for_update())


def _move_money(s: Session, budget_id: str, frm: str, amount: int, to: str | None = None, to_amount: int = 0) -> None:
    """On one locked line: ``frm -= amount`` (refused below zero) and ``to += to_amount``."""
    values = {frm: getattr(_b, frm) - amount}
    if to is not None:
        values[to] = getattr(_b, to) + to_amount
    done = s.execute(
        update(_b)
        .where(_b.budget_id == budget_id, getattr(_b, frm) >= amount)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        raise BudgetInvariantError(f"budget line {budget_id}: {frm} below {amount} fen")


def invoice(
    s: Session, due_fen: dict[str, int], *, month: str, at: datetime, actor: str, audit: list[dict[str, Any]]
) -> int:
    """Invoice confirmed reservations (``reservation_id -> amount due``, 1 <= due <= the encumbered
    price): on each of their lines ``committed -= price, spent += due`` (the discount is free money
    again), and each reservation becomes invoiced in settlement ``month``. Returns the total due, fen."""
    if not due_fen:
        return 0
    reservations = list(s.scalars(select(ReservationRow).where(ReservationRow.reservation_id.in_(due_fen))))
    for res in reservations:
        if not 1 <= due_fen[res.reservation_id] <= res.amount_fen:
            raise BudgetInvariantError(f"reservation {res.reservation_id}: due {due_fen[res.reservation_id]} fen")
    per_line: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for rid, bid, amount in s.execute(
        select(_rl.reservation_id, _rl.budget_id, _rl.amount_fen).where(_rl.reservation_id.in_(due_fen))
    ):
        per_line[bid][0] += amount
        per_line[bid][1] += due_fen[rid]
    _lock(s, sorted(per_line))
    for bid, (encumbered, due) in sorted(per_line.items()):
        _move_money(s, bid, "committed_fen", encumbered, "spent_fen", due)
        audit += audit_rows(
            "budget_line", [bid], "invoice", actor=actor, at=at,
            details={"month": month, "committed_fen_delta": -encumbered, "spent_fen_delta": due},
        )  # fmt: skip
    for res in reservations:
        due = due_fen[res.reservation_id]
        details = {"request_id": res.request_id, "list_fen": res.amount_fen, "due_fen": due, "month": month}
        RESERVATIONS.move(
            s, res, ReservationStatus.INVOICED, "invoice", actor=actor, at=at, details=details, audit=audit
        )
        res.list_fen, res.amount_fen, res.invoice_ref = res.amount_fen, due, month
    s.execute(
        update(_rl.__table__)
        .where(_rl.__table__.c.reservation_id == bindparam("rid"))
        .values(amount_fen=bindparam("due")),
        [{"rid": rid, "due": due} for rid, due in due_fen.items()],
    )
    return sum(due_fen.values())


def return_purchase(s: Session, request_id: str, *, at: datetime, actor: str, audit: list[dict[str, Any]]) -> int:
    """A bought book goes back to the bookstore: a confirmed reservation's encumbrance is released
    (``committed -= price``), an invoiced one is credited (``spent -= due``). Returns the fen given back;
    raises :class:`DecisionRefused` when the request has no checked-out or invoiced purchase."""
    res = s.scalar(
        select(ReservationRow).where(
            ReservationRow.request_id == request_id,
            ReservationRow.status.in_((ReservationStatus.CONFIRMED, ReservationStatus.INVOICED)),
        )
    )
    if res is None:
        raise DecisionRefused(f"request {request_id}: no checked-out or invoiced purchase to return")
    column = "spent_fen" if res.status == ReservationStatus.INVOICED else "committed_fen"
    lines = list(s.scalars(select(_rl.budget_id).where(_rl.reservation_id == res.reservation_id)))
    _lock(s, lines)
    closed = _closed_lines(s, lines)
    for bid in sorted(lines):
        _move_money(s, bid, column, res.amount_fen)
        if bid in closed:  # a credit on a closed year goes back to the treasury, never to new purchases
            _move_money(s, bid, "amount_fen", res.amount_fen)
    res.settled_at = at
    details = {"request_id": request_id, "amount_fen": res.amount_fen, "invoiced": column == "spent_fen"}
    RESERVATIONS.move(s, res, ReservationStatus.RETURNED, "return", actor=actor, at=at, details=details, audit=audit)
    audit += audit_rows(
        "budget_line", lines, "return", actor=actor, at=at,
        details={"request_id": request_id, column.replace("_fen", "_fen_delta"): -res.amount_fen},
    )  # fmt: skip
    return res.amount_fen


# --- the fiscal-year close ------------------------------------------------------------------------------


def _closed_lines(s: Session, budget_ids: list[str]) -> set[str]:
    """Those of ``budget_ids`` whose programme year is closed (``fiscal_closes``)."""
    rows = s.execute(select(_b.budget_id, _b.period).where(_b.budget_id.in_(budget_ids))).all()
    years = {p[:4] for _, p in rows}
    closed = set(s.scalars(select(FiscalCloseRow.year).where(FiscalCloseRow.year.in_(years))))
    return {bid for bid, p in rows if p[:4] in closed}


#: Reservation states that hold an encumbrance (reserved_fen / committed_fen of their lines).
_OPEN = (ReservationStatus.RESERVED.value, ReservationStatus.CONFIRMED.value)
_COLUMN_OF = {ReservationStatus.RESERVED.value: "reserved_fen", ReservationStatus.CONFIRMED.value: "committed_fen"}


def _open_on(s: Session, budget_ids: list[str]) -> list[tuple[str, str, int, str]]:
    """(budget_id, reservation_id, amount, status) of the open encumbrances on these lines."""
    return [
        tuple(r)
        for r in s.execute(
            select(_rl.budget_id, _rl.reservation_id, _rl.amount_fen, ReservationRow.status)
            .join(ReservationRow, ReservationRow.reservation_id == _rl.reservation_id)
            .where(_rl.budget_id.in_(budget_ids), ReservationRow.status.in_(_OPEN))
        )
    ]


def _close_months(s: Session, year: str, *, at: datetime, actor: str, audit: list[dict[str, Any]]) -> None:
    """The year's month lines give back their open encumbrances (they live on in next year's year lines)."""
    months = list(s.scalars(select(_b.budget_id).where(_b.period.like(f"{year}-%")).order_by(_b.budget_id)))
    held: dict[tuple[str, str], int] = defaultdict(int)
    for bid, rid, amount, status in _open_on(s, months):
        held[(bid, _COLUMN_OF[status])] += amount
        s.execute(_rl.__table__.delete().where(_rl.__table__.c.reservation_id == rid, _rl.__table__.c.budget_id == bid))
    for (bid, column), amount in sorted(held.items()):
        _move_money(s, bid, column, amount)
        delta = {column.replace("_fen", "_fen_delta"): -amount, "reason": "year close"}
        audit += audit_rows("budget_line", [bid], "close", actor=actor, at=at, details=delta)
    # a closed month keeps its plan as the target and only its expenditure as money: no room is left
    s.execute(
        update(_b)
        .where(_b.budget_id.in_(months))
        .values(target_fen=func.coalesce(_b.target_fen, _b.amount_fen), amount_fen=_b.spent_fen)
        .execution_options(synchronize_session=False)
    )


def _successor(s: Session, line: BudgetLineRow, next_year: str) -> str:
    """Next year's line of the same scope (bookstore, district, channel), created empty when missing."""
    found = s.scalar(
        select(_b.budget_id)
        .where(
            _b.period == next_year,
            _b.bookstore_id.is_not_distinct_from(line.bookstore_id),
            _b.district.is_not_distinct_from(line.district),
            _b.channel.is_not_distinct_from(line.channel),
        )
        .order_by(_b.budget_id)
    )
    if found is not None:
        return found
    new_id = (
        line.budget_id.replace(line.period, next_year)
        if line.period in line.budget_id
        else f"{line.budget_id}-{next_year}"
    )
    s.add(
        BudgetLineRow(
            budget_id=new_id, period=next_year, bookstore_id=line.bookstore_id, district=line.district,
            channel=line.channel, parent_id=None, amount_fen=0, target_fen=None, rollover=line.rollover,
            reserved_fen=0, committed_fen=0, spent_fen=0,
        )
    )  # fmt: skip
    s.flush()
    return new_id


def _unspent(line: BudgetLineRow) -> int:
    """Money a line did not use, fen: its room, and for a soft target no more than the target left."""
    room = line.amount_fen - line.reserved_fen - line.committed_fen - line.spent_fen
    if line.target_fen is None:
        return room
    return max(0, min(room, line.target_fen - line.reserved_fen - line.committed_fen - line.spent_fen))


def close_year(s: Session, year: str, *, at: datetime, actor: str, audit: list[dict[str, Any]]) -> dict[str, Any]:
    """Close programme year ``year`` (the caller checks it was not closed before): open encumbrances
    move to next year's line of the same scope (with the money that covers them); unspent money is
    carried there (``rollover = carry``) or returned; every closed line keeps only its expenditure."""
    next_year = str(int(year) + 1)
    lines = list(s.scalars(select(_b).where(_b.period == year).order_by(_b.budget_id).with_for_update()))
    _close_months(s, year, at=at, actor=actor, audit=audit)
    totals = {"carried_encumbrance_fen": 0, "carried_unspent_fen": 0, "returned_fen": 0}
    successors: dict[str, str] = {}
    for line in lines:
        succ = successors[line.budget_id] = _successor(s, line, next_year)
        reserved, committed, unspent = line.reserved_fen, line.committed_fen, _unspent(line)
        carried = unspent if line.rollover == "carry" else 0
        s.execute(
            update(_b).where(_b.budget_id == succ).execution_options(synchronize_session=False).values(
                amount_fen=_b.amount_fen + reserved + committed + carried,
                reserved_fen=_b.reserved_fen + reserved, committed_fen=_b.committed_fen + committed,
            )
        )  # fmt: skip
        s.execute(
            update(_b).where(_b.budget_id == line.budget_id).execution_options(synchronize_session=False).values(
                amount_fen=_b.spent_fen, reserved_fen=0, committed_fen=0
            )
        )  # fmt: skip
        moved = [rid for _, rid, _, _ in _open_on(s, [line.budget_id])]
        if moved:
            s.execute(
                update(_rl)
                .where(_rl.budget_id == line.budget_id, _rl.reservation_id.in_(moved))
                .values(budget_id=succ)
                .execution_options(synchronize_session=False)
            )
        figures = {"carried_fen": carried, "returned_fen": unspent - carried, "to": succ}
        audit += audit_rows(
            "budget_line",
            [line.budget_id],
            "close",
            actor=actor,
            at=at,
            details={"reserved_fen_delta": -reserved, "committed_fen_delta": -committed, **figures},
        )
        audit += audit_rows(
            "budget_line",
            [succ],
            "carry_in",
            actor=actor,
            at=at,
            details={
                "reserved_fen_delta": reserved,
                "committed_fen_delta": committed,
                "from": line.budget_id,
                "carried_fen": carried,
            },
        )
        totals["carried_encumbrance_fen"] += reserved + committed
        totals["carried_unspent_fen"] += carried
        totals["returned_fen"] += unspent - carried
    _link_parents(s, lines, successors)
    return {"year": year, "next_year": next_year, "lines": len(lines), **totals, "successors": successors}


def _link_parents(s: Session, lines: list[BudgetLineRow], successors: dict[str, str]) -> None:
    """A successor created by the close gets its fund's parent's successor as parent (the hierarchy lives on)."""
    for line in lines:
        succ, parent = successors[line.budget_id], successors.get(line.parent_id or "")
        if parent is not None:
            s.execute(
                update(_b)
                .where(_b.budget_id == succ, _b.parent_id.is_(None))
                .values(parent_id=parent)
                .execution_options(synchronize_session=False)
            )


# --- reading the ledger -------------------------------------------------------------------------------


def left_fen(s: Session, period: str) -> int:
    """Money left in a month, fen: the sum over its lines without a bookstore (district lines), else
    its year line, else 0."""
    rows = s.execute(
        select(_b.period, _b.district, _ROOM).where(_b.period.in_((period, period[:4])), _b.bookstore_id.is_(None))
    ).all()
    month = sum(v for p, _, v in rows if p == period)
    year = sum(v for p, _, v in rows if p == period[:4])
    return int(month if any(p == period for p, _, _ in rows) else year)


def district_left_fen(s: Session, period: str) -> dict[str, int]:
    """Money left in a month per district, fen (its district lines without a bookstore): what a round
    may spend in each district, so that its selection fits the lines its approvals will charge."""
    rows = s.execute(
        select(_b.district, _ROOM).where(_b.period == period, _b.bookstore_id.is_(None), _b.district.is_not(None))
    ).all()
    out: dict[str, int] = {}
    for district, room in rows:
        out[district] = out.get(district, 0) + int(room)
    return out


class BudgetLine(BaseModel):
    """One budget line of a period, yuan."""

    model_config = ConfigDict(frozen=True)

    budget_id: str
    period: str
    bookstore_id: str | None
    district: str | None
    amount: float = Field(description="Yuan.")
    reserved: float = Field(description="Held for counter reservations, yuan.")
    committed: float = Field(description="Encumbered: checked out or approved by staff, not yet invoiced, yuan.")
    spent: float = Field(default=0.0, description="Invoiced (settled with the bookstore), yuan.")
    left: float = Field(description="amount - reserved - committed - spent, yuan.")


class DistrictBudget(BaseModel):
    """A district's lines of one month summed, yuan."""

    model_config = ConfigDict(frozen=True)

    district: str
    amount: float
    used: float = Field(description="Reserved + committed + spent, yuan.")
    left: float


class Budgets(BaseModel):
    """The lines of a month and of its year, and per district of the month."""

    model_config = ConfigDict(frozen=True)

    period: str
    lines: list[BudgetLine]
    districts: list[DistrictBudget]


_LINE_SCHEMA = {
    "budget_id": pl.String,
    "period": pl.String,
    "bookstore_id": pl.String,
    "district": pl.String,
    "amount_fen": pl.Int64,
    "reserved_fen": pl.Int64,
    "committed_fen": pl.Int64,
    "spent_fen": pl.Int64,
}


def budgets(db: Database, period: str) -> Budgets:
    """Budget lines of a month ``'YYYY-MM'`` and its year, and per district of the month: amount,
    used and left (yuan)."""
    with db.session_scope() as s:
        rows = s.execute(
            select(*(getattr(_b, c) for c in _LINE_SCHEMA))
            .where(_b.period.in_((period, period[:4])))
            .order_by(_b.period, _b.budget_id)
        ).all()
    frame = pl.DataFrame([tuple(r) for r in rows], schema=_LINE_SCHEMA, orient="row")
    lines = frame.select(
        "budget_id",
        "period",
        "bookstore_id",
        "district",
        (pl.col("amount_fen") / 100).alias("amount"),
        (pl.col("reserved_fen") / 100).alias("reserved"),
        (pl.col("committed_fen") / 100).alias("committed"),
        (pl.col("spent_fen") / 100).alias("spent"),
        ((pl.col("amount_fen") - pl.col("reserved_fen") - pl.col("committed_fen") - pl.col("spent_fen")) / 100).alias(
            "left"
        ),
    )
    districts = (
        frame.filter((pl.col("period") == period) & pl.col("district").is_not_null())
        .group_by("district")
        .agg(
            (pl.col("amount_fen").sum() / 100).alias("amount"),
            ((pl.col("reserved_fen") + pl.col("committed_fen") + pl.col("spent_fen")).sum() / 100).alias("used"),
        )
        .with_columns((pl.col("amount") - pl.col("used")).alias("left"))
        .sort("district")
    )
    return Budgets(
        period=period,
        lines=[BudgetLine(**r) for r in lines.iter_rows(named=True)],
        districts=[DistrictBudget(**r) for r in districts.iter_rows(named=True)],
    )
