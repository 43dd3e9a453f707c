"""Point-of-sale decisions of "you choose, I buy": approve or decline at once, never overspend.

:meth:`CounterService.decide` answers a bookstore counter in milliseconds. Inside ONE write
transaction (SQLite ``BEGIN IMMEDIATE``; row locks on PostgreSQL) it

1. returns the stored decision if the idempotency key was seen (a retry never charges twice);
2. gathers the facts (reader, their programme activity, holdings, pending duplicates) and runs the
   pure rules of :mod:`acquisition.rules`;
3. for an eligible counter request, reserves the price on EVERY applicable budget line (month x
   district, month x bookstore, year total...) through :func:`acquisition.ledger.reserve` (locked
   lines, one conditional UPDATE that charges all or none); if any line lacks room the request is
   declined with ``BUDGET_EXHAUSTED``;
4. stores the request, the reservation and the audit rows, and commits.

Issue 15: a request failing only rules of the policy's mediation band is ``mediated`` instead of
declined (its price reserved, an answer promised; :mod:`acquisition.mediation`), and a decline because
the network holds the book carries the ways to get it (:mod:`acquisition.alternatives`).

Money moves only in :mod:`acquisition.ledger`; status changes only through
:mod:`acquisition.lifecycle` (which writes their audit rows).

On PostgreSQL (READ COMMITTED) the facts of step 2 are made to stay true until commit by locks
taken in one fixed order, so that concurrent counters cannot deadlock: a transaction advisory lock
on the ISBN-13 (duplicate-pending rule), the reader's row (per-reader limits), then the budget lines
by id. Checkout, cancel and expiry lock the request, then its reservation, then budget lines by id.

:meth:`checkout` confirms a reservation (reserved -> committed), :meth:`cancel` and
:meth:`expire_reservations` release it. Online requests get the same rules but no reservation:
they wait as ``pending`` for a staff round (:mod:`acquisition.rounds`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, bindparam, case, func, insert, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from acquisition import alternatives, ledger, mediation
from acquisition.alternatives import Alternative, Availability
from acquisition.audit import pseudonymise, record_many
from acquisition.db import AuditLog, BookstoreRow, Database, MediationRow, PurchaseRequestRow, ReaderRow, ReservationRow
from acquisition.errors import (
    IdempotencyConflict,
    InvalidTransition,
    RequestNotFound,
    ReservationExpired,
)
from acquisition.holdings import Holdings
from acquisition.lifecycle import REQUESTS, ReservationStatus
from acquisition.pacing import Pacer, PacingNote
from acquisition.policy import MAX_PRICE_YUAN, Category, Policy, check_price_fen, yuan_to_fen
from acquisition.rules import (
    BookFacts,
    CollectionFacts,
    DeclineCode,
    ReaderFacts,
    Violation,
    check_request,
    normalise_isbn,
)
from features import bounds
from features.schema import LocalDateTime, RequestStatus

_log = logging.getLogger(__name__)

__all__ = [
    "ACTIVE_STATUSES",
    "OPEN_STATUSES",
    "PIPELINE_STATUSES",
    "CounterService",
    "Decision",
    "PurchaseRequestIn",
]

_R = RequestStatus
#: Requests that count against a reader's limits (everything not declined or cancelled; a mediated
#: request counts while staff decide).
ACTIVE_STATUSES = tuple(
    s.value
    for s in (_R.PENDING, _R.APPROVED, _R.RESERVED, _R.CHECKED_OUT, _R.ORDERED, _R.RECEIVED, _R.FULFILLED, _R.MEDIATED)
)
#: Requests whose book the reader has (or is about to have) and has not returned.
OPEN_STATUSES = (_R.RESERVED.value, _R.CHECKED_OUT.value)
#: Requests for an ISBN that the library is buying but has not catalogued yet.
PIPELINE_STATUSES = tuple(
    s.value for s in (_R.PENDING, _R.APPROVED, _R.RESERVED, _R.CHECKED_OUT, _R.ORDERED, _R.MEDIATED)
)


def _count(cond) -> object:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


class _Statements:
    """The decide path's statements, built once with bind parameters (building SQLAlchemy expressions
    costs more CPU than running them on SQLite; compiled forms are then cached by the engine)."""

    def __init__(self) -> None:
        pr, r = PurchaseRequestRow, ReaderRow
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
        self.insert_request = insert(PurchaseRequestRow.__table__)


_SQL = _Statements()


class PurchaseRequestIn(BaseModel):
    """A request as the bookstore counter (or the online new-books list) sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reader_id: str = Field(min_length=1, max_length=bounds.ID_MAX, description="Reader card id.")
    bookstore_id: str = Field(min_length=1, max_length=bounds.ID_MAX, description="Partner bookstore code.")
    isbn: str = Field(
        max_length=bounds.ISBN_MAX,
        description="ISBN as scanned (ISBN-10 or -13, hyphens allowed; checked by the rules).",
    )
    price: float = Field(
        gt=0,
        le=MAX_PRICE_YUAN,
        allow_inf_nan=False,
        description="Price charged, yuan: at least 0.01 after rounding half-up to fen, at most 100000.",
    )
    title: str | None = Field(
        default=None, max_length=bounds.TITLE_MAX, description="Title as reported by the bookstore."
    )
    author: str | None = Field(default=None, max_length=bounds.AUTHOR_MAX)
    publisher: str | None = Field(default=None, max_length=bounds.PUBLISHER_MAX)
    pub_year: int | None = Field(
        default=None, ge=bounds.PUB_YEAR_MIN, le=bounds.PUB_YEAR_MAX, description="Publication year."
    )
    clc_class: str | None = Field(
        default=None, max_length=bounds.CLASS_MAX, description="CLC class as catalogued by the bookstore."
    )
    category: Category = Field(default="general", description="Book category (textbook, comic, ...).")
    channel: Literal["counter", "online"] = Field(default="counter", description="Counter or online selection.")
    requested_at: datetime | None = Field(
        default=None,
        description="The terminal's own time of the request: recorded in the audit trail, never used to "
        "decide (limits, budget period and reservation expiry follow the server's clock).",
    )

    @field_validator("requested_at", mode="before")
    @classmethod
    def _iso_text(cls, at: object) -> object:
        """An ISO 8601 string as the schema says (pydantic would read a number as Unix seconds)."""
        if at is not None and not isinstance(at, (str, datetime)):
            raise ValueError("must be an ISO 8601 date-time string such as 2026-06-15T10:00:00+08:00")
        return at

    @field_validator("requested_at")
    @classmethod
    def _sane_clock(cls, at: datetime | None) -> datetime | None:
        """Year 1 or 9999 (or a time zone pushing it past either end) is a broken clock: a 422 here,
        not an overflow when the audit trail converts it."""
        if at is None:
            return None
        lo, hi = datetime.fromisoformat(bounds.TIMESTAMP_MIN), datetime.fromisoformat(bounds.TIMESTAMP_MAX)
        aware = at if at.tzinfo is not None else at.replace(tzinfo=lo.tzinfo)
        if not lo <= aware <= hi:
            raise ValueError(f"must be between {bounds.TIMESTAMP_MIN} and {bounds.TIMESTAMP_MAX}")
        return at

    @field_validator("price")
    @classmethod
    def _price_in_fen(cls, price: float) -> float:
        check_price_fen(price)  # a free (sub-fen) or absurd price is refused here, naming the field
        return price

    @property
    def price_fen(self) -> int:
        """The price in integer fen (half-up; :func:`acquisition.policy.yuan_to_fen`)."""
        return yuan_to_fen(self.price)


class Decision(BaseModel):
    """The answer to a request. ``reason_codes`` lists EVERY failing rule (empty when eligible)."""

    request_id: str
    eligible: bool
    reason_codes: list[str]
    message: str
    budget_reservation_id: str | None = None
    status: str = Field(description="Request status after the decision: reserved, pending, mediated or declined.")
    replayed: bool = Field(default=False, description="True when returned from the idempotency store.")
    pacing: PacingNote | None = Field(
        default=None, description="What the pacing policy did (counter requests that passed the rules)."
    )
    alternative: Alternative | None = Field(
        default=None, description="Declined because the network holds the book: the cheapest way to get it."
    )
    other_alternatives: list[Alternative] = Field(default_factory=list, description="The other ways, cheapest first.")
    answer_by: LocalDateTime | None = Field(default=None, description="Mediated: the staff answer promised by then.")

    def in_language(self, lang: str) -> Decision:
        """The decision with the alternatives' sentences in ``lang`` (zh-CN as stored, or en)."""
        if lang != "en" or self.alternative is None:
            return self
        en = [a.model_copy(update={"text": a.text_en}) for a in (self.alternative, *self.other_alternatives)]
        return self.model_copy(update={"alternative": en[0], "other_alternatives": en[1:]})


def _decision_from_row(
    row: PurchaseRequestRow | Row, reservation_id: str | None, replayed: bool, extras: dict | None = None
) -> Decision:
    return Decision(
        **(extras or {}),
        request_id=row.request_id,
        eligible=row.eligible,
        reason_codes=list(row.reason_codes),
        message=row.message,
        budget_reservation_id=reservation_id,
        status=row.status,
        replayed=replayed,
    )


@dataclass(frozen=True)
class _Facts:
    """What ``decide`` knows about a request at the moment it decides (read under the locks)."""

    isbn13: str | None
    #: Decision time: the service clock, never the terminal's ``requested_at``.
    now: datetime
    #: ``blocked, credit_level, home_branch_id, district`` of the card, None when unknown.
    reader: Row | None
    #: ``district`` of the bookstore, None when not a partner.
    bookstore: Row | None


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
        pacer: Pacer | None = None,
        availability: Availability | None = None,
    ) -> None:
        """``clock`` is the service's time (naive local, like every time in the ledger): it alone
        decides limits, budget periods and expiry. Replays and tools that decide "as of" a past time
        pass their own clock; a client never can."""
        self.db = db
        self.policy = policy
        self.holdings = holdings
        self.clock = clock
        #: Pacing of annual funds (acquisition.pacing); reads ``policy.pacing`` (fcfs by default).
        self.pacer = pacer or Pacer(policy)
        #: Copies, loans and holds for the ways to get a held book (issue 15 §3); none without data.
        self.availability = availability

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
        extras = _stored_extras(s, row.request_id, self.availability)
        decided = s.scalar(
            select(AuditLog.details).where(
                AuditLog.entity == "purchase_request", AuditLog.entity_id == row.request_id, AuditLog.action == "decide"
            )
        )
        paced = (decided or {}).get("pacing")
        if paced:
            extras["pacing"] = PacingNote(**paced)
        return _decision_from_row(row, res_id, replayed=True, extras=extras)

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
        facts = self._gather(s, request, isbn13)
        violations = self._check(s, request, facts)
        hold, band, paced = None, None, None
        if violations and request.channel == "counter":
            band = mediation.in_band(self.policy, violations, request.price_fen, request.category)
        if (not violations or band) and request.channel == "counter":
            district = ledger.budget_district(
                self.policy, facts.bookstore.district, facts.reader.district if facts.reader else None
            )
            if not band:  # staff answer a mediated request; pacing bars only the counter's own approvals
                paced = self.pacer.check(s, request, facts.now, district)  # the pacing hook (acquisition.pacing)
            if paced is not None and not paced.approved:
                violations.append(Violation(DeclineCode.PACED_LOW_VALUE, paced.message_en))
            else:
                hold = ledger.reserve(s, request.price_fen, facts.now, request.bookstore_id, district)
                if hold.refused is not None:
                    violations.append(Violation(hold.refused, _BUDGET_MESSAGES[hold.refused]))
                    band = None
        return self._store(s, request, key, actor, facts, violations, hold, band, paced)

    def _gather(self, s: Session, request: PurchaseRequestIn, isbn13: str | None) -> _Facts:
        now = self.clock()  # the server decides; a terminal's requested_at is only recorded
        # Per-reader limits hold until commit: the reader row is locked (PostgreSQL; SQLite's write lock).
        reader = s.connection().execute(_SQL.reader, {"reader_id": request.reader_id}).one_or_none()
        bookstore = s.connection().execute(_SQL.bookstore, {"bookstore_id": request.bookstore_id}).one_or_none()
        return _Facts(isbn13, now, reader, bookstore)

    def _check(self, s: Session, request: PurchaseRequestIn, facts: _Facts) -> list[Violation]:
        """Every failing programme rule of the request (budget rules excepted: they need money)."""
        reader, isbn13 = facts.reader, facts.isbn13
        reader_facts = (
            self._facts(s, request.reader_id, reader.blocked, reader.credit_level, request.bookstore_id, facts.now)
            if reader
            else None
        )
        pending = s.connection().scalar(_SQL.pending, {"isbn13": isbn13}) if isbn13 is not None else 0
        collection = CollectionFacts(
            network_copies=self.holdings.network_copies(isbn13),
            home_branch_on_shelf=self.holdings.on_shelf(isbn13, reader.home_branch_id if reader else None),
            pending_requests=int(pending or 0),
        )
        book = BookFacts(isbn13, request.price_fen, request.pub_year, request.category, request.title)
        return check_request(
            self.policy,
            book,
            reader_facts,
            collection,
            year=facts.now.year,
            bookstore_known=facts.bookstore is not None,
        )

    def _store(
        self,
        s: Session,
        request: PurchaseRequestIn,
        key: str,
        actor: str,
        facts: _Facts,
        violations: list[Violation],
        hold: ledger.Hold | None,
        band: list[str] | None = None,
        paced: PacingNote | None = None,
    ) -> Decision:
        """Insert the decided request (and its reservation when the price was reserved) with its audit rows."""
        now, price_fen = facts.now, request.price_fen
        eligible = not violations
        if band:
            status = RequestStatus.MEDIATED
        elif not eligible:
            status = RequestStatus.DECLINED
        else:
            status = RequestStatus.RESERVED if request.channel == "counter" else RequestStatus.PENDING
        expires = now + timedelta(minutes=self.policy.reservation_timeout_minutes)
        if band:  # held until staff answer: the sweep expires only requests in 'reserved', not 'mediated'
            expires = now + timedelta(hours=self.policy.mediation.answer_hours)
        message = self._message(violations, request.channel, price_fen, expires, mediated=bool(band))
        reason_codes = [v.code.value for v in violations]
        request_id = uuid.uuid4().hex
        audit: list[dict[str, Any]] = []
        details = {
            "reader": pseudonymise(request.reader_id),
            "isbn13": facts.isbn13,
            "price_fen": price_fen,
            "reason_codes": reason_codes,
            # what the terminal claimed, for the record: never a rule's, a period's or an expiry's input
            "terminal_time": request.requested_at.isoformat() if request.requested_at else None,
        }
        if paced is not None:
            details["pacing"] = paced.model_dump()
        REQUESTS.start(request_id, status, "decide", actor=actor, at=now, details=details, audit=audit)
        row = _request_row(request, request_id, key, facts.isbn13, now)
        s.execute(
            _SQL.insert_request,
            {**row, "status": status.value, "eligible": eligible, "reason_codes": reason_codes, "message": message},
        )
        reservation_id = None
        if (eligible or band) and hold is not None:
            reservation_id = ledger.open_reservation(
                s, hold, request_id, price_fen, at=now, expires_at=expires, actor=actor, audit=audit
            )
        extras = self._extras(s, request_id, status, reason_codes, facts, band, actor, audit)
        record_many(s, audit)
        return Decision(
            request_id=request_id,
            eligible=eligible,
            reason_codes=reason_codes,
            message=message,
            budget_reservation_id=reservation_id,
            status=status.value,
            pacing=paced,
            **extras,
        )

    def _extras(
        self,
        s: Session,
        request_id: str,
        status: RequestStatus,
        reason_codes: list[str],
        facts: _Facts,
        band: list[str] | None,
        actor: str,
        audit: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Issue 15's additions to a decision: the mediation promise, or the ways to get a held book."""
        if band:
            return {"answer_by": mediation.open_mediation(s, request_id, band, at=facts.now, policy=self.policy)}
        if status != RequestStatus.DECLINED or self.availability is None or not alternatives.applies(reason_codes):
            return {}
        avail, home = self.availability, facts.reader.home_branch_id if facts.reader else None
        delivers = bool((avail.branches.get(home or "") or {}).get("delivers"))
        found = alternatives.ways(avail, self.policy.alternatives, facts.isbn13, home, facts.now, delivers)
        alternatives.store_offers(s, request_id, found, at=facts.now, actor=actor, audit=audit)
        worded = [alternatives.worded(avail, w) for w in found]
        return {"alternative": worded[0], "other_alternatives": worded[1:]} if worded else {}

    @staticmethod
    def _message(
        violations: Sequence[Violation], channel: str, price_fen: int, expires: datetime, *, mediated: bool = False
    ) -> str:
        if mediated:
            return (
                f"Put to library staff: {price_fen / 100:.2f} yuan held; an answer by {expires:%Y-%m-%d %H:%M}. "
                + " ".join(v.message for v in violations)
            )
        if violations:
            return "Declined: " + " ".join(v.message for v in violations)
        if channel == "online":
            return "Accepted for review: library staff will decide in the next round."
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
            audit: list[dict[str, Any]] = []
            if res.expires_at <= now:
                self._release(s, [(res.reservation_id, request_id)], now, actor, "expire")
                expired = True
            else:
                REQUESTS.move(s, req, RequestStatus.CHECKED_OUT, "checkout", actor=actor, at=now, audit=audit)
                ledger.commit_reservation(s, res, at=now, actor=actor, audit=audit)
            record_many(s, audit)
        if expired:
            raise ReservationExpired(f"purchase request {request_id}: reservation expired; the money was released")

    def cancel(self, request_id: str, *, actor: str = "counter", now: datetime | None = None) -> None:
        """Cancel a reserved (or pending online) request; reserved money is released."""
        now = now or self.clock()
        with self.db.session_scope(write=True) as s:
            req = s.get(PurchaseRequestRow, request_id, with_for_update=True)
            if req is None:
                raise RequestNotFound(f"purchase request {request_id}: not found")
            if req.status == RequestStatus.PENDING:
                REQUESTS.move(s, req, RequestStatus.CANCELLED, "cancel", actor=actor, at=now)
                return
            if req.status == RequestStatus.MEDIATED:
                mediation.cancel(s, req, actor=actor, now=now)
                return
            _, res = self._reserved(s, request_id)
            self._release(s, [(res.reservation_id, request_id)], now, actor, "cancel")

    def expire_reservations(self, now: datetime | None = None, *, actor: str = "system") -> int:
        """Release every reservation whose time ran out; returns how many were released."""
        now = now or self.clock()
        res, req = ReservationRow, PurchaseRequestRow
        live = ReservationStatus.RESERVED.value
        due = select(res.request_id).where(res.status == live, res.expires_at <= now)
        with self.db.session_scope(write=True) as s:
            # Lock the requests first (the order checkout and cancel use), re-checking their status
            # after any wait: a racing checkout or cancel that won leaves nothing to release here.
            locked = s.scalars(
                select(req.request_id)
                .where(req.request_id.in_(due), req.status == RequestStatus.RESERVED.value)
                .order_by(req.request_id)
                .with_for_update()
            ).all()
            pairs = (
                s.execute(
                    select(res.reservation_id, res.request_id)
                    .where(res.request_id.in_(locked), res.status == live, res.expires_at <= now)
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
        if req.status != RequestStatus.RESERVED or res is None or res.status != ReservationStatus.RESERVED:
            raise InvalidTransition(
                f"purchase request {request_id}: status '{req.status}', reservation "
                f"'{res.status if res else 'none'}'; the operation needs a live reservation"
            )
        return req, res

    @staticmethod
    def _release(s: Session, pairs: list[tuple[str, str]], now: datetime, actor: str, action: str) -> None:
        """Set-based release of reservations ``(reservation_id, request_id)``: requests -> cancelled,
        then the ledger gives the reserved money back and releases the reservations."""
        audit: list[dict[str, Any]] = []
        REQUESTS.move_many(
            s,
            PurchaseRequestRow,
            [q for _, q in pairs],
            RequestStatus.RESERVED,
            RequestStatus.CANCELLED,
            action,
            actor=actor,
            at=now,
            values={"updated_at": now},
            audit=audit,
        )
        ledger.release_reservations(s, [r for r, _ in pairs], at=now, actor=actor, reason=action, audit=audit)
        record_many(s, audit)


#: The counter's words for the ledger's refusals.
_BUDGET_MESSAGES = {
    DeclineCode.NO_BUDGET_LINE: "No programme budget covers this bookstore this month.",
    DeclineCode.BUDGET_EXHAUSTED: "The programme budget for this bookstore or period is used up.",
}


def _stored_extras(s: Session, request_id: str, avail: Availability | None) -> dict[str, Any]:
    """A replayed decision's mediation promise or alternatives, from their stored rows."""
    med = s.get(MediationRow, request_id)
    if med is not None:
        return {"answer_by": med.answer_by}
    offers = [alternatives.from_row(o, avail) for o in alternatives.stored(s, request_id)]
    return {"alternative": offers[0], "other_alternatives": offers[1:]} if offers else {}


def _request_row(request: PurchaseRequestIn, request_id: str, key: str, isbn13: str | None, now: datetime) -> dict:
    """The ``purchase_requests`` columns a decision stores (status and outcome added by the caller)."""
    return {
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
        "price_fen": request.price_fen,
        "channel": request.channel,
        "requested_at": now,
        "decided_at": now,
        "updated_at": now,
    }
