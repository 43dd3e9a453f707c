"""Point-of-sale decisions of "you choose, I buy": approve or decline at once, never overspend.

:meth:`CounterService.decide` answers a bookstore counter in milliseconds. Inside ONE write
transaction (SQLite ``BEGIN IMMEDIATE``; row locks on PostgreSQL) it

1. returns the stored decision if the idempotency key was seen (a retry never charges twice);
2. gathers the facts (reader, their programme activity, holdings, pending duplicates) and runs the
   pure rules of :mod:`acquisition.rules`;
3. for an eligible counter request, reserves the price on EVERY applicable budget line (month x
   district, month x bookstore, year total...) with a conditional
   ``UPDATE budget_lines SET reserved_fen = reserved_fen + :p WHERE budget_id = :id AND
   amount_fen - reserved_fen - committed_fen >= :p`` per line inside a savepoint; if any line lacks
   room the savepoint rolls back and the request is declined with ``BUDGET_EXHAUSTED``;
4. stores the request, the reservation and the audit rows, and commits.

On PostgreSQL (READ COMMITTED) the facts of step 2 are made to stay true until commit by locks
taken in one fixed order, so that concurrent counters cannot deadlock: a transaction advisory lock
on the ISBN-13 (duplicate-pending rule), the reader's row (per-reader limits), then the budget lines
by id. Checkout, cancel and expiry lock the request, then its reservation, then budget lines by id.

:meth:`checkout` confirms a reservation (reserved -> committed), :meth:`cancel` and
:meth:`expire_reservations` release it. Online requests get the same rules but no reservation:
they wait as ``pending`` for batch ranking.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from acquisition.audit import audit_rows, pseudonymise, record, record_many
from acquisition.db import (
    BookstoreRow,
    BudgetLineRow,
    Database,
    PurchaseRequestRow,
    ReaderRow,
    ReservationLineRow,
    ReservationRow,
)
from acquisition.holdings import Holdings
from acquisition.policy import Category, Policy
from acquisition.rules import (
    BookFacts,
    CollectionFacts,
    ReaderFacts,
    Reason,
    Violation,
    check_request,
    normalise_isbn,
)

_log = logging.getLogger(__name__)

#: Requests that count against a reader's limits (everything not declined or cancelled).
ACTIVE_STATUSES = ("pending", "approved", "reserved", "checked_out", "ordered", "received", "fulfilled")
#: Requests whose book the reader has (or is about to have) and has not returned.
OPEN_STATUSES = ("reserved", "checked_out")
#: Requests for an ISBN that the library is buying but has not catalogued yet.
PIPELINE_STATUSES = ("pending", "approved", "reserved", "checked_out", "ordered")


def _count(cond) -> object:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


class _Statements:
    """The decide path's statements, built once with bind parameters (building SQLAlchemy expressions
    costs more CPU than running them on SQLite; compiled forms are then cached by the engine)."""

    def __init__(self) -> None:
        pr, r, b = PurchaseRequestRow, ReaderRow, BudgetLineRow
        self.by_key = select(PurchaseRequestRow.__table__).where(pr.idempotency_key == bindparam("key"))
        self.reader = (
            select(r.blocked, r.credit_level, r.home_branch_id, r.district)
            .where(r.reader_id == bindparam("reader_id"))
            .with_for_update()
        )
        self.bookstore = select(BookstoreRow.district).where(BookstoreRow.bookstore_id == bindparam("bookstore_id"))
        at = pr.requested_at
        self.reader_facts = select(
            _count(
                and_(pr.bookstore_id == bindparam("bookstore_id"), at >= bindparam("day"), at < bindparam("day_end"))
            ),
            _count(at >= bindparam("month")),
            _count(at >= bindparam("year")),
            _count(pr.status.in_(OPEN_STATUSES)),
            _count(and_(pr.category == "comic", at >= bindparam("month"))),
        ).where(
            pr.reader_id == bindparam("reader_id"),
            pr.status.in_(ACTIVE_STATUSES),
            or_(at >= bindparam("year"), pr.status.in_(OPEN_STATUSES)),
        )
        self.pending = (
            select(func.count())
            .select_from(PurchaseRequestRow)
            .where(pr.isbn13 == bindparam("isbn13"), pr.status.in_(PIPELINE_STATUSES))
        )
        self.lines = (
            select(b.budget_id, b.amount_fen - b.reserved_fen - b.committed_fen)
            .where(
                b.period.in_(bindparam("periods", expanding=True)),
                or_(b.bookstore_id.is_(None), b.bookstore_id == bindparam("bookstore_id")),
                or_(b.district.is_(None), b.district == bindparam("district")),
            )
            .order_by(b.budget_id)
            .with_for_update()
        )
        self.reserve = (
            update(b)
            .where(
                b.budget_id.in_(bindparam("budget_ids", expanding=True)),
                b.amount_fen - b.reserved_fen - b.committed_fen >= bindparam("price"),
            )
            .values(reserved_fen=b.reserved_fen + bindparam("price"))
            .execution_options(synchronize_session=False)
        )
        self.insert_request = insert(PurchaseRequestRow.__table__)
        self.insert_reservation = insert(ReservationRow.__table__)
        self.insert_lines = insert(ReservationLineRow.__table__)


_SQL = _Statements()


class PurchaseRequestIn(BaseModel):
    """A request as the bookstore counter (or the online new-books list) sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reader_id: str = Field(min_length=1, description="Reader card id.")
    bookstore_id: str = Field(min_length=1, description="Partner bookstore code.")
    isbn: str = Field(description="ISBN as scanned (ISBN-10 or -13, hyphens allowed; checked by the rules).")
    price: float = Field(gt=0, description="Price charged, yuan.")
    title: str | None = Field(default=None, description="Title as reported by the bookstore.")
    author: str | None = None
    publisher: str | None = None
    pub_year: int | None = Field(default=None, description="Publication year.")
    clc_class: str | None = Field(default=None, description="CLC class as catalogued by the bookstore.")
    category: Category = Field(default="general", description="Book category (textbook, comic, ...).")
    channel: Literal["counter", "online"] = Field(default="counter", description="Counter or online selection.")
    requested_at: datetime | None = Field(default=None, description="When requested (local time); default now.")

    @property
    def price_fen(self) -> int:
        return round(self.price * 100)


class Decision(BaseModel):
    """The answer to a request. ``reason_codes`` lists EVERY failing rule (empty when eligible)."""

    request_id: str
    eligible: bool
    reason_codes: list[str]
    message: str
    budget_reservation_id: str | None = None
    status: str = Field(description="Request status after the decision: reserved, pending or declined.")
    replayed: bool = Field(default=False, description="True when returned from the idempotency store.")


class CounterError(ValueError):
    """Base of the counter's refusals of an operation (not of a request: those are Decisions)."""


class RequestNotFound(CounterError):
    pass


class InvalidTransition(CounterError):
    """The request or reservation is not in a state that allows the operation."""


class ReservationExpired(CounterError):
    """Checkout came after the reservation timed out; the money has been released."""


class IdempotencyConflict(CounterError):
    """The idempotency key was already used for a different request."""


class BudgetInvariantError(RuntimeError):
    """The ledger disagrees with a reservation (should never happen; the transaction is rolled back)."""


def _decision_from_row(row: PurchaseRequestRow | Row, reservation_id: str | None, replayed: bool) -> Decision:
    return Decision(
        request_id=row.request_id,
        eligible=row.eligible,
        reason_codes=list(row.reason_codes),
        message=row.message,
        budget_reservation_id=reservation_id,
        status=row.status,
        replayed=replayed,
    )


class CounterService:
    """Decisions at the bookstore counter against one ledger, one policy and one holdings index.

    Thread-safe: every call runs in its own transaction; share one instance across threads.
    """

    def __init__(
        self,
        db: Database,
        policy: Policy,
        holdings: Holdings,
        *,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.db = db
        self.policy = policy
        self.holdings = holdings
        self.clock = clock

    # --- decide -----------------------------------------------------------------------------------

    def decide(self, request: PurchaseRequestIn, idempotency_key: str, *, actor: str = "counter") -> Decision:
        """Decide one request; a retry with the same ``idempotency_key`` returns the stored decision."""
        t0 = time.perf_counter()
        try:
            with self.db.session_scope(write=True) as s:
                decision = self._decide_in(s, request, idempotency_key, actor)
        except IntegrityError:
            # Another transaction stored the same key first (PostgreSQL without a table lock).
            with self.db.session_scope() as s:
                decision = self._replay(s, request, idempotency_key)
            if decision is None:
                raise
        _log.debug(
            "decision %s reader=%s eligible=%s codes=%s in %.2f ms",
            decision.request_id,
            pseudonymise(request.reader_id),
            decision.eligible,
            decision.reason_codes,
            (time.perf_counter() - t0) * 1000,
        )
        return decision

    def _replay(self, s: Session, request: PurchaseRequestIn, key: str) -> Decision | None:
        row = s.connection().execute(_SQL.by_key, {"key": key}).first()
        if row is None:
            return None
        if (row.reader_id, row.bookstore_id, row.isbn, row.price_fen) != (
            request.reader_id,
            request.bookstore_id,
            request.isbn,
            request.price_fen,
        ):
            raise IdempotencyConflict(f"idempotency key {key!r} was already used for request {row.request_id}")
        res_id = s.scalar(select(ReservationRow.reservation_id).where(ReservationRow.request_id == row.request_id))
        return _decision_from_row(row, res_id, replayed=True)

    def _reader_facts(self, s: Session, reader: ReaderRow, bookstore_id: str, now: datetime) -> ReaderFacts:
        """The reader's request counts for the limits, in one SELECT (``reader``: a row with
        ``reader_id`` or the id itself given separately, ``blocked`` and ``credit_level``)."""
        return self._facts(s, reader.reader_id, reader.blocked, reader.credit_level, bookstore_id, now)

    @staticmethod
    def _facts(
        s: Session, reader_id: str, blocked: bool, credit_level: int, bookstore_id: str, now: datetime
    ) -> ReaderFacts:
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        params = {
            "reader_id": reader_id,
            "bookstore_id": bookstore_id,
            "day": day,
            "day_end": day + timedelta(days=1),
            "month": day.replace(day=1),
            "year": day.replace(month=1, day=1),
        }
        visit, in_month, in_year, open_, comics = s.connection().execute(_SQL.reader_facts, params).one()
        return ReaderFacts(
            blocked=blocked,
            credit_level=credit_level,
            visit_count=int(visit),
            month_count=int(in_month),
            year_count=int(in_year),
            open_count=int(open_),
            comic_month_count=int(comics),
        )

    def _lock_isbn(self, s: Session, isbn13: str | None) -> None:
        """PostgreSQL: serialise deciders of one ISBN until commit (the duplicate-pending count must
        not change under us). The ISBN-13's digits are the bigint key. No-op elsewhere (SQLite
        already serialises writers)."""
        if isbn13 is not None and self.db.engine.dialect.name == "postgresql":
            s.execute(select(func.pg_advisory_xact_lock(int(isbn13))))

    def _decide_in(self, s: Session, request: PurchaseRequestIn, key: str, actor: str) -> Decision:
        isbn13 = normalise_isbn(request.isbn)
        self._lock_isbn(s, isbn13)  # before the replay: a racing retry of this key then sees the first row
        replay = self._replay(s, request, key)
        if replay is not None:
            return replay
        now = request.requested_at or self.clock()
        price_fen = request.price_fen
        # Per-reader limits hold until commit: the reader row is locked (PostgreSQL; SQLite's write lock).
        reader = s.connection().execute(_SQL.reader, {"reader_id": request.reader_id}).one_or_none()
        bookstore = s.connection().execute(_SQL.bookstore, {"bookstore_id": request.bookstore_id}).one_or_none()
        reader_facts = (
            self._facts(s, request.reader_id, reader.blocked, reader.credit_level, request.bookstore_id, now)
            if reader
            else None
        )
        pending = s.connection().scalar(_SQL.pending, {"isbn13": isbn13}) if isbn13 is not None else 0
        collection = CollectionFacts(
            network_copies=self.holdings.network_copies(isbn13),
            home_branch_on_shelf=self.holdings.on_shelf(isbn13, reader.home_branch_id if reader else None),
            pending_requests=int(pending or 0),
        )
        book = BookFacts(isbn13, price_fen, request.pub_year, request.category, request.title)
        violations = check_request(
            self.policy, book, reader_facts, collection, year=now.year, bookstore_known=bookstore is not None
        )
        request_id = uuid.uuid4().hex
        reservation_id: str | None = None
        lines: list[str] = []
        if not violations and request.channel == "counter":
            district = bookstore.district if self.policy.budget_district_of == "bookstore" else reader.district
            lines, violation = self._reserve(s, price_fen, now, request.bookstore_id, district)
            if violation is not None:
                violations.append(violation)
            else:
                reservation_id = uuid.uuid4().hex
        eligible = not violations
        status = ("reserved" if request.channel == "counter" else "pending") if eligible else "declined"
        expires = now + timedelta(minutes=self.policy.reservation_timeout_minutes)
        message = self._message(violations, request.channel, price_fen, expires)
        reason_codes = [v.code.value for v in violations]
        s.execute(
            _SQL.insert_request,
            {
                "request_id": request_id,
                "idempotency_key": key,
                "reader_id": request.reader_id,
                "bookstore_id": request.bookstore_id,
                "isbn": request.isbn,
                "isbn13": isbn13,
                "title": request.title,
                "author": request.author,
                "publisher": request.publisher,
                "pub_year": request.pub_year,
                "clc_class": request.clc_class,
                "category": request.category,
                "price_fen": price_fen,
                "channel": request.channel,
                "requested_at": now,
                "status": status,
                "eligible": eligible,
                "reason_codes": reason_codes,
                "message": message,
                "decided_at": now,
                "updated_at": now,
            },
        )
        audit = audit_rows(
            "purchase_request",
            [request_id],
            "decide",
            actor=actor,
            at=now,
            to_state=status,
            details={
                "reader": pseudonymise(request.reader_id),
                "isbn13": isbn13,
                "price_fen": price_fen,
                "reason_codes": reason_codes,
            },
        )
        if reservation_id is not None:
            s.execute(
                _SQL.insert_reservation,
                {
                    "reservation_id": reservation_id,
                    "request_id": request_id,
                    "amount_fen": price_fen,
                    "status": "reserved",
                    "created_at": now,
                    "expires_at": expires,
                },
            )
            s.execute(
                _SQL.insert_lines,
                [{"reservation_id": reservation_id, "budget_id": b, "amount_fen": price_fen} for b in lines],
            )
            audit += audit_rows(
                "reservation",
                [reservation_id],
                "reserve",
                actor=actor,
                at=now,
                to_state="reserved",
                details={"request_id": request_id, "amount_fen": price_fen, "budget_ids": lines},
            )
            audit += audit_rows(
                "budget_line",
                lines,
                "reserve",
                actor=actor,
                at=now,
                details={"request_id": request_id, "reserved_fen_delta": price_fen},
            )
        record_many(s, audit)
        return Decision(
            request_id=request_id,
            eligible=eligible,
            reason_codes=reason_codes,
            message=message,
            budget_reservation_id=reservation_id,
            status=status,
        )

    def applicable_lines(self, s: Session, now: datetime, bookstore_id: str, district: str | None) -> list[str]:
        """Budget lines a request draws on: this month's and this year's lines whose bookstore and
        district are null (= any) or match, ordered by id (a fixed lock order: no deadlocks)."""
        b = BudgetLineRow
        stmt = (
            select(b.budget_id)
            .where(
                b.period.in_((now.strftime("%Y-%m"), now.strftime("%Y"))),
                or_(b.bookstore_id.is_(None), b.bookstore_id == bookstore_id),
                or_(b.district.is_(None), b.district == district),
            )
            .order_by(b.budget_id)
            .with_for_update()
        )
        return list(s.scalars(stmt))

    def _reserve(
        self, s: Session, price_fen: int, now: datetime, bookstore_id: str, district: str | None
    ) -> tuple[list[str], Violation | None]:
        """Reserve ``price_fen`` on every applicable line, or on none: the lines are locked and their
        room read in one SELECT (ordered by id), then one conditional UPDATE charges them all."""
        params = {"periods": [now.strftime("%Y-%m"), now.strftime("%Y")], "bookstore_id": bookstore_id}
        rows = s.connection().execute(_SQL.lines, {**params, "district": district}).all()
        lines = [r[0] for r in rows]
        if not lines:
            return [], Violation(Reason.NO_BUDGET_LINE, "No programme budget covers this bookstore this month.")
        short = [r[0] for r in rows if r[1] < price_fen]
        if short:
            _log.info("budget line %s has no room for %d fen", short[0], price_fen)
            return lines, Violation(
                Reason.BUDGET_EXHAUSTED, "The programme budget for this bookstore or period is used up."
            )
        result = s.connection().execute(_SQL.reserve, {"budget_ids": lines, "price": price_fen})
        if result.rowcount != len(lines):
            # The lines are locked, so this cannot happen; fail the whole transaction rather than half-charge.
            raise _NoRoom(", ".join(lines))
        return lines, None

    @staticmethod
    def _message(violations: Sequence[Violation], channel: str, price_fen: int, expires: datetime) -> str:
        if violations:
            return "Declined: " + " ".join(v.message for v in violations)
        if channel == "online":
            return "Accepted for review: library staff will decide in the next batch."
        return f"Approved: {price_fen / 100:.2f} yuan reserved until {expires:%Y-%m-%d %H:%M}; lend the book to the reader."

    # --- after the decision ---------------------------------------------------------------------------

    def checkout(self, request_id: str, *, actor: str = "counter", now: datetime | None = None) -> None:
        """The reader leaves with the book: the reservation is confirmed, reserved money becomes committed.

        Raises :class:`ReservationExpired` (after releasing the money) when the reservation timed out.
        """
        now = now or self.clock()
        expired = False
        with self.db.session_scope(write=True) as s:
            req, res = self._reserved(s, request_id)
            if res.expires_at <= now:
                self._release(s, [(res.reservation_id, request_id)], now, actor, "expire")
                expired = True
            else:
                b = BudgetLineRow
                lines = s.execute(
                    select(ReservationLineRow.budget_id, ReservationLineRow.amount_fen)
                    .where(ReservationLineRow.reservation_id == res.reservation_id)
                    .order_by(ReservationLineRow.budget_id)  # the fixed lock order
                ).all()
                for budget_id, amount in lines:
                    result = s.execute(
                        update(b)
                        .where(b.budget_id == budget_id, b.reserved_fen >= amount)
                        .values(reserved_fen=b.reserved_fen - amount, committed_fen=b.committed_fen + amount)
                        .execution_options(synchronize_session=False)
                    )
                    if result.rowcount != 1:
                        raise BudgetInvariantError(
                            f"budget line {budget_id}: reserved_fen below reservation {res.reservation_id}"
                        )
                res.status, res.settled_at = "confirmed", now
                req.status, req.updated_at = "checked_out", now
                record_many(
                    s,
                    audit_rows(
                        "purchase_request",
                        [request_id],
                        "checkout",
                        actor=actor,
                        at=now,
                        from_state="reserved",
                        to_state="checked_out",
                    )
                    + audit_rows(
                        "reservation",
                        [res.reservation_id],
                        "confirm",
                        actor=actor,
                        at=now,
                        from_state="reserved",
                        to_state="confirmed",
                        details={"amount_fen": res.amount_fen},
                    )
                    + audit_rows(
                        "budget_line",
                        [bid for bid, _ in lines],
                        "commit",
                        actor=actor,
                        at=now,
                        details={"request_id": request_id, "committed_fen_delta": res.amount_fen},
                    ),
                )
        if expired:
            raise ReservationExpired(f"purchase request {request_id}: reservation expired; the money was released")

    def cancel(self, request_id: str, *, actor: str = "counter", now: datetime | None = None) -> None:
        """Cancel a reserved (or pending online) request; reserved money is released."""
        now = now or self.clock()
        with self.db.session_scope(write=True) as s:
            req = s.get(PurchaseRequestRow, request_id, with_for_update=True)
            if req is None:
                raise RequestNotFound(f"purchase request {request_id}: not found")
            if req.status == "pending":
                req.status, req.updated_at = "cancelled", now
                record(
                    s,
                    "purchase_request",
                    request_id,
                    "cancel",
                    actor=actor,
                    at=now,
                    from_state="pending",
                    to_state="cancelled",
                )
                return
            _, res = self._reserved(s, request_id)
            self._release(s, [(res.reservation_id, request_id)], now, actor, "cancel")

    def expire_reservations(self, now: datetime | None = None, *, actor: str = "system") -> int:
        """Release every reservation whose time ran out; returns how many were released."""
        now = now or self.clock()
        res, req = ReservationRow, PurchaseRequestRow
        due = select(res.request_id).where(res.status == "reserved", res.expires_at <= now)
        with self.db.session_scope(write=True) as s:
            # Lock the requests first (the order checkout and cancel use), re-checking their status
            # after any wait: a racing checkout or cancel that won leaves nothing to release here.
            locked = s.scalars(
                select(req.request_id)
                .where(req.request_id.in_(due), req.status == "reserved")
                .order_by(req.request_id)
                .with_for_update()
            ).all()
            pairs = (
                s.execute(
                    select(res.reservation_id, res.request_id)
                    .where(res.request_id.in_(locked), res.status == "reserved", res.expires_at <= now)
                    .order_by(res.request_id)
                    .with_for_update()
                ).all()
                if locked
                else []
            )
            if pairs:
                self._release(s, [(r, q) for r, q in pairs], now, actor, "expire")
        if pairs:
            _log.info("released %d expired reservations", len(pairs))
        return len(pairs)

    def _reserved(self, s: Session, request_id: str) -> tuple[PurchaseRequestRow, ReservationRow]:
        req = s.get(PurchaseRequestRow, request_id, with_for_update=True)
        if req is None:
            raise RequestNotFound(f"purchase request {request_id}: not found")
        res = s.scalar(select(ReservationRow).where(ReservationRow.request_id == request_id).with_for_update())
        if req.status != "reserved" or res is None or res.status != "reserved":
            raise InvalidTransition(
                f"purchase request {request_id}: status '{req.status}', reservation "
                f"'{res.status if res else 'none'}'; the operation needs a live reservation"
            )
        return req, res

    @staticmethod
    def _release(s: Session, pairs: list[tuple[str, str]], now: datetime, actor: str, action: str) -> None:
        """Set-based release of reservations ``(reservation_id, request_id)``: budget lines give back
        the reserved money, reservations -> released, requests -> cancelled."""
        res_ids = [r for r, _ in pairs]
        req_ids = [q for _, q in pairs]
        rl, b = ReservationLineRow, BudgetLineRow
        touched = s.execute(
            select(rl.budget_id, func.sum(rl.amount_fen))
            .where(rl.reservation_id.in_(res_ids))
            .group_by(rl.budget_id)
            .order_by(rl.budget_id)
        ).all()
        # lock the lines in id order before the set-based update (whose row order is the planner's)
        s.execute(
            select(b.budget_id)
            .where(b.budget_id.in_([bid for bid, _ in touched]))
            .order_by(b.budget_id)
            .with_for_update()
        )
        given_back = (
            select(func.coalesce(func.sum(rl.amount_fen), 0))
            .where(rl.budget_id == b.budget_id, rl.reservation_id.in_(res_ids))
            .scalar_subquery()
        )
        s.execute(
            update(b)
            .where(b.budget_id.in_([bid for bid, _ in touched]))
            .values(reserved_fen=b.reserved_fen - given_back)
            .execution_options(synchronize_session=False)
        )
        s.execute(
            update(ReservationRow)
            .where(ReservationRow.reservation_id.in_(res_ids))
            .values(status="released", settled_at=now)
            .execution_options(synchronize_session=False)
        )
        s.execute(
            update(PurchaseRequestRow)
            .where(PurchaseRequestRow.request_id.in_(req_ids))
            .values(status="cancelled", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        rows = audit_rows(
            "purchase_request", req_ids, action, actor=actor, at=now, from_state="reserved", to_state="cancelled"
        )
        rows += audit_rows(
            "reservation",
            res_ids,
            "release",
            actor=actor,
            at=now,
            from_state="reserved",
            to_state="released",
            details={"reason": action},
        )
        for budget_id, amount in touched:
            rows += audit_rows(
                "budget_line",
                [budget_id],
                "release",
                actor=actor,
                at=now,
                details={"reserved_fen_delta": -int(amount), "reason": action},
            )
        record_many(s, rows)


class _NoRoom(Exception):
    def __init__(self, budget_id: str) -> None:
        self.budget_id = budget_id
        super().__init__(budget_id)
