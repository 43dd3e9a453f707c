"""The mediation band (issue 15 §5, as Ebook Central's "mediate" setting): instead of declining, the
counter puts a request to staff with a promised answer time.

A counter request is mediated when EVERY rule it fails is one the policy's ``[mediation]`` lets staff
override: ``PRICE_OVER_CAP`` with a price up to ``band_limit_yuan``, or ``CATEGORY_EXCLUDED`` for a
category in ``categories``. Its price is then reserved like an approval's (so staff can never approve
money the budget does not have; a budget without room declines as usual), it becomes ``mediated``
(:mod:`acquisition.lifecycle`) and a :class:`~acquisition.db.MediationRow` records the promise
(``answer_hours`` after the decision, server clock).

Staff answer with :func:`answer`: ``approve`` moves the request to ``approved`` and the held money from
reserved to committed (encumbered, :func:`acquisition.ledger.commit_reservation`); ``decline`` moves it
to ``declined`` and releases the money (:func:`acquisition.ledger.release_reservations`). Both in one
transaction with their audit rows (and the reader's notice). :func:`queue` lists the open mediations
with those past their promise marked ``overdue``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from acquisition import ledger
from acquisition.audit import record_many
from acquisition.db import Database, MediationRow, PurchaseRequestRow, ReservationRow
from acquisition.errors import InvalidTransition, RequestNotFound
from acquisition.lifecycle import REQUESTS, ReservationStatus
from acquisition.policy import Policy, yuan_to_fen
from acquisition.rules import DeclineCode, Violation
from features.schema import LocalDateTime, RequestStatus

_log = logging.getLogger(__name__)


def in_band(policy: Policy, violations: Sequence[Violation], price_fen: int, category: str) -> list[str] | None:
    """The codes staff may override when every violation is in the band, else None."""
    cfg = policy.mediation
    if not cfg.enabled or not violations:
        return None
    limit = yuan_to_fen(cfg.band_limit_yuan) if cfg.band_limit_yuan is not None else 0
    ok = {
        DeclineCode.PRICE_OVER_CAP: price_fen <= limit,
        DeclineCode.CATEGORY_EXCLUDED: category in cfg.categories,
    }
    if all(ok.get(v.code, False) for v in violations):
        return [v.code.value for v in violations]
    return None


def open_mediation(s: Session, request_id: str, reasons: list[str], *, at: datetime, policy: Policy) -> datetime:
    """Record the promise for a mediated request; returns the answer time promised."""
    answer_by = at + timedelta(hours=policy.mediation.answer_hours)
    s.execute(
        insert(MediationRow),
        {"request_id": request_id, "reasons": reasons, "mediated_at": at, "answer_by": answer_by},
    )
    return answer_by


class MediationOut(BaseModel):
    """A mediated request as the staff queue shows it (no reader id)."""

    request_id: str
    title: str | None
    isbn13: str | None
    category: str
    price_fen: int
    bookstore_id: str
    reasons: list[str] = Field(description="Decline codes staff are asked to override.")
    mediated_at: LocalDateTime
    answer_by: LocalDateTime = Field(description="The answer time promised to the reader.")
    status: str = Field(description="Request status: mediated while unanswered, then approved or declined.")
    decision: str | None = None
    decided_by: str | None = None
    decided_at: LocalDateTime | None = None
    overdue: bool = Field(description="Unanswered past the promise (as of the server clock).")
    hours_late: float = Field(ge=0, description="Hours past the promise while unanswered, else 0.")


def _out(req: PurchaseRequestRow, med: MediationRow, now: datetime) -> MediationOut:
    late = max(0.0, (now - med.answer_by).total_seconds() / 3600) if med.decision is None else 0.0
    return MediationOut(
        request_id=req.request_id,
        title=req.title,
        isbn13=req.isbn13,
        category=req.category,
        price_fen=req.price_fen,
        bookstore_id=req.bookstore_id,
        reasons=list(med.reasons or []),
        mediated_at=med.mediated_at,
        answer_by=med.answer_by,
        status=req.status,
        decision=med.decision,
        decided_by=med.decided_by,
        decided_at=med.decided_at,
        overdue=late > 0,
        hours_late=round(late, 2),
    )


def queue(db: Database, now: datetime, *, overdue_only: bool = False, open_only: bool = True) -> list[MediationOut]:
    """Mediations, oldest promise first: the open ones (or all), with overdue marked as of ``now``."""
    m, r = MediationRow, PurchaseRequestRow
    stmt = select(r, m).join(m, m.request_id == r.request_id).order_by(m.answer_by, m.request_id)
    if open_only or overdue_only:
        stmt = stmt.where(m.decision.is_(None))
    if overdue_only:
        stmt = stmt.where(m.answer_by < now)
    with db.session_scope() as s:
        out = [_out(req, med, now) for req, med in s.execute(stmt).all()]
    late = sum(o.overdue for o in out)
    if late:
        _log.warning("%d mediated requests are unanswered past their promised time", late)
    return out


def answer(
    db: Database,
    request_id: str,
    decision: Literal["approve", "decline"],
    *,
    actor: str,
    now: datetime,
    note: str | None = None,
) -> MediationOut:
    """Staff's answer to a mediated request: approve (the held money is encumbered) or decline (released)."""
    with db.session_scope(write=True) as s:
        req = s.get(PurchaseRequestRow, request_id, with_for_update=True)
        med = s.get(MediationRow, request_id, with_for_update=True)
        if req is None:
            raise RequestNotFound(f"purchase request {request_id}: not found")
        if med is None or req.status != RequestStatus.MEDIATED:
            raise InvalidTransition(f"purchase request {request_id}: status '{req.status}' is not awaiting mediation")
        res = s.scalar(select(ReservationRow).where(ReservationRow.request_id == request_id).with_for_update())
        if res is None or res.status != ReservationStatus.RESERVED:
            raise InvalidTransition(f"purchase request {request_id}: no held money to {decision}")
        audit: list[dict[str, Any]] = []
        details = {"mediation": decision, "late": now > med.answer_by}
        if decision == "approve":
            REQUESTS.move(
                s, req, RequestStatus.APPROVED, "mediate_approve", actor=actor, at=now, details=details, audit=audit
            )
            ledger.commit_reservation(s, res, at=now, actor=actor, audit=audit)
        else:
            REQUESTS.move(
                s, req, RequestStatus.DECLINED, "mediate_decline", actor=actor, at=now, details=details, audit=audit
            )
            ledger.release_reservations(s, [res.reservation_id], at=now, actor=actor, reason="mediation", audit=audit)
        med.decision, med.decided_by, med.decided_at, med.note = decision, actor, now, note
        record_many(s, audit)
        s.flush()
        return _out(req, med, now)


def cancel(s: Session, req: PurchaseRequestRow, *, actor: str, now: datetime) -> None:
    """The reader gives up a mediated request: it is cancelled and the held money released."""
    res = s.scalar(select(ReservationRow).where(ReservationRow.request_id == req.request_id).with_for_update())
    audit: list[dict[str, Any]] = []
    REQUESTS.move(s, req, RequestStatus.CANCELLED, "cancel", actor=actor, at=now, audit=audit)
    if res is not None and res.status == ReservationStatus.RESERVED:
        ledger.release_reservations(s, [res.reservation_id], at=now, actor=actor, reason="cancel", audit=audit)
    record_many(s, audit)
