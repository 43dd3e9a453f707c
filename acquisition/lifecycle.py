"""The lifecycle of a purchase request, its reservation and an acquisition round: the states, the
one table of allowed moves per entity, and the one function every status change goes through.

A status change anywhere in yuedu (the counter's decide / checkout / cancel / expire, a staff
round's decisions, receiving a bought book) calls :meth:`Lifecycle.move` (one row) or
:meth:`Lifecycle.move_many` (set-based); a new row's first state goes through :meth:`Lifecycle.start`.
Each checks the pair against the entity's table and raises :class:`~acquisition.errors.InvalidTransition`
for any other pair, sets the status, and writes the audit row (``audit_log``: entity, id, action, from,
to, actor, time), inside the caller's transaction. Callers that batch audit rows into one INSERT pass
an ``audit`` list to collect them.

Purchase requests (:class:`features.schema.RequestStatus`; ``None`` is "no row yet"):

| from | to | by |
|---|---|---|
| (new) | pending | ``decide``: an eligible online request waits for a round (also a round registering lines) |
| (new) | reserved | ``decide``: an eligible counter request; its price is reserved |
| (new) | declined | ``decide``: a programme rule failed |
| reserved | checked_out | ``checkout``: the reader left with the book; reserved money is committed |
| reserved | cancelled | ``cancel`` or ``expire`` (the domain's "expired"): the reservation is released |
| pending | cancelled | ``cancel`` of an online request |
| pending, declined | approved | staff ``approve`` in a round: the price is committed |
| pending, approved, declined | declined | staff ``reject`` (an approval's money is refunded) |
| pending, approved, declined | pending | staff reset to ``pending`` (an approval's money is refunded) |
| checked_out, approved, ordered | received | ``receive``: the book is catalogued (the domain's "catalogued") |
| (new) | mediated | ``decide``: in the mediation band (:mod:`acquisition.mediation`); its price is held |
| mediated | approved | staff ``approve`` a mediated request: the held price is committed (encumbered) |
| mediated | declined | staff ``decline`` a mediated request: the held price is released |
| mediated | cancelled | ``cancel`` of a mediated request: the held price is released |

``pending -> pending`` and ``declined -> declined`` happen when one request is a line of two rounds.
``ordered`` and ``fulfilled`` come only with data (nothing in yuedu sets them); ``received``,
``fulfilled`` and ``cancelled`` are final.

Reservations (:class:`ReservationStatus`): (new) -> reserved (counter) or confirmed (staff approval);
reserved -> confirmed (checkout) or released (cancel, expire); confirmed -> released (staff refund);
released -> confirmed (staff approve again); confirmed -> invoiced (the bookstore's invoice or the
monthly settlement: encumbrance becomes expenditure); confirmed or invoiced -> returned (the book goes
back to the bookstore: encumbrance released, or the invoice credited). Rounds (:class:`RoundStatus`): (new) -> draft;
draft -> reviewed and reviewed -> reviewed (decisions applied). A round line's staff decision
(:class:`LineDecision`) may change to any other decision; it moves its request as
:data:`DECISION_TARGET` says.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from acquisition.audit import audit_rows, record_many
from acquisition.db import Base
from acquisition.errors import InvalidTransition
from features.schema import RequestStatus

_log = logging.getLogger(__name__)

__all__ = [
    "DECISION_TARGET",
    "REQUESTS",
    "RESERVATIONS",
    "ROUNDS",
    "ROUND_ACTIONS",
    "ROUND_OPEN",
    "LineDecision",
    "Lifecycle",
    "RequestStatus",
    "ReservationStatus",
    "RoundStatus",
]


class ReservationStatus(StrEnum):
    """Money held for a request on its budget lines (:mod:`acquisition.ledger`)."""

    #: Held at the counter until checkout, cancel or expiry (``reserved_fen`` of the lines).
    RESERVED = "reserved"
    #: Spent: checked out at the counter or approved by staff (``committed_fen`` of the lines).
    CONFIRMED = "confirmed"
    #: Given back to the budget lines.
    RELEASED = "released"
    #: Invoiced by the bookstore (or its monthly settlement): expenditure (``spent_fen`` of the lines).
    INVOICED = "invoiced"
    #: The book went back to the bookstore: the encumbrance is released or the invoice credited.
    RETURNED = "returned"


class RoundStatus(StrEnum):
    """An acquisition round (采购批次): online requests ranked against a budget for staff approval."""

    #: Ranked, no decision yet.
    DRAFT = "draft"
    #: Staff have decided at least one line.
    REVIEWED = "reviewed"
    #: Sent for approval: decisions are frozen until it is approved or sent back.
    SUBMITTED = "submitted"
    #: Approved: the order can go out; decisions stay frozen.
    APPROVED = "approved"
    #: Finished (ordered) or abandoned; final.
    CLOSED = "closed"


class LineDecision(StrEnum):
    """A staff member's current decision on one line of a round."""

    APPROVE = "approve"
    REJECT = "reject"
    PENDING = "pending"


#: The request status a line decision moves its request to.
DECISION_TARGET: Mapping[LineDecision, RequestStatus] = {
    LineDecision.APPROVE: RequestStatus.APPROVED,
    LineDecision.REJECT: RequestStatus.DECLINED,
    LineDecision.PENDING: RequestStatus.PENDING,
}

_R = RequestStatus
#: Allowed request moves, from -> to (``None``: the row does not exist yet).
REQUEST_TRANSITIONS: Mapping[RequestStatus | None, frozenset[RequestStatus]] = {
    None: frozenset({_R.PENDING, _R.RESERVED, _R.DECLINED, _R.MEDIATED}),
    _R.MEDIATED: frozenset({_R.APPROVED, _R.DECLINED, _R.CANCELLED}),
    _R.RESERVED: frozenset({_R.CHECKED_OUT, _R.CANCELLED}),
    _R.PENDING: frozenset({_R.CANCELLED, _R.APPROVED, _R.DECLINED, _R.PENDING}),
    _R.DECLINED: frozenset({_R.APPROVED, _R.DECLINED, _R.PENDING}),
    _R.APPROVED: frozenset({_R.DECLINED, _R.PENDING, _R.RECEIVED}),
    _R.CHECKED_OUT: frozenset({_R.RECEIVED}),
    _R.ORDERED: frozenset({_R.RECEIVED}),
}

_S = ReservationStatus
#: Allowed reservation moves.
RESERVATION_TRANSITIONS: Mapping[ReservationStatus | None, frozenset[ReservationStatus]] = {
    None: frozenset({_S.RESERVED, _S.CONFIRMED}),
    _S.RESERVED: frozenset({_S.CONFIRMED, _S.RELEASED}),
    _S.CONFIRMED: frozenset({_S.RELEASED, _S.INVOICED, _S.RETURNED}),
    _S.RELEASED: frozenset({_S.CONFIRMED}),
    _S.INVOICED: frozenset({_S.RETURNED}),
}

_D = RoundStatus
#: Allowed round moves.
ROUND_TRANSITIONS: Mapping[RoundStatus | None, frozenset[RoundStatus]] = {
    None: frozenset({_D.DRAFT}),
    _D.DRAFT: frozenset({_D.REVIEWED, _D.SUBMITTED, _D.CLOSED}),
    _D.REVIEWED: frozenset({_D.REVIEWED, _D.SUBMITTED, _D.CLOSED}),
    _D.SUBMITTED: frozenset({_D.APPROVED, _D.REVIEWED, _D.CLOSED}),
    _D.APPROVED: frozenset({_D.CLOSED}),
}
#: The round states whose lines staff may still decide (later ones are frozen).
ROUND_OPEN: frozenset[RoundStatus] = frozenset({_D.DRAFT, _D.REVIEWED})
#: A round's lifecycle actions (staff buttons, ``POST .../transitions``) and the state each moves to.
ROUND_ACTIONS: Mapping[str, RoundStatus] = {
    "submit": _D.SUBMITTED,
    "approve": _D.APPROVED,
    "return": _D.REVIEWED,
    "close": _D.CLOSED,
}


@dataclass(frozen=True)
class Lifecycle:
    """The states of one entity, its table of allowed moves, and the audit entity name."""

    #: ``audit_log.entity`` of the rows written for this entity.
    entity: str
    #: Label used in error messages ("purchase request", "reservation", "acquisition round").
    label: str
    states: type[StrEnum]
    transitions: Mapping[Any, frozenset[Any]]

    def allowed(self, frm: str | None, to: str) -> bool:
        """Whether the table allows ``frm -> to`` (``frm=None``: a new row starting in ``to``)."""
        try:
            key = None if frm is None else self.states(frm)
            return self.states(to) in self.transitions.get(key, frozenset())
        except ValueError:  # not a state of this entity at all
            return False

    def check(self, frm: str | None, to: str, entity_id: str) -> None:
        """Raise :class:`InvalidTransition` unless the table allows ``frm -> to``."""
        if not self.allowed(frm, to):
            shown = "(new)" if frm is None else f"'{frm}'"
            raise InvalidTransition(f"{self.label} {entity_id}: status {shown} cannot become '{to}'")

    def start(
        self,
        entity_id: str,
        to: str,
        action: str,
        *,
        actor: str,
        at: datetime,
        details: dict[str, Any] | None = None,
        audit: list[dict[str, Any]] | None = None,
        session: Session | None = None,
    ) -> None:
        """A new row begins in ``to`` (the caller inserts it): check and audit its first state.

        The audit row goes to ``audit`` when given, else is written at once through ``session``.
        """
        self.check(None, to, entity_id)
        self._audit(session, audit, [entity_id], action, None, to, actor, at, details)

    def move(
        self,
        session: Session,
        row: Base,
        to: str,
        action: str,
        *,
        actor: str,
        at: datetime,
        details: dict[str, Any] | None = None,
        audit: list[dict[str, Any]] | None = None,
    ) -> str:
        """Move one ORM row (with ``status``; ``updated_at`` is set when it has one) to ``to``.

        Returns the previous status. Every move is audited: there is no way round the trail.
        """
        frm = row.status
        entity_id = str(getattr(row, _ID[self.entity]))
        self.check(frm, to, entity_id)
        row.status = self.states(to).value
        if hasattr(row, "updated_at"):
            row.updated_at = at
        self._audit(session, audit, [entity_id], action, frm, to, actor, at, details)
        return frm

    def move_many(
        self,
        session: Session,
        model: type[Base],
        ids: Iterable[str],
        frm: str,
        to: str,
        action: str,
        *,
        actor: str,
        at: datetime,
        values: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        audit: list[dict[str, Any]] | None = None,
    ) -> None:
        """Set-based move of the rows ``ids`` of ``model``, all in ``frm``, to ``to`` (one UPDATE,
        plus ``values``). Raises :class:`InvalidTransition` if any row was not in ``frm``."""
        ids = list(ids)
        self.check(frm, to, ", ".join(ids[:3]) + (" ..." if len(ids) > 3 else ""))
        key = getattr(model, _ID[self.entity])
        done = session.execute(
            update(model)
            .where(key.in_(ids), model.status == self.states(frm).value)
            .values(status=self.states(to).value, **(values or {}))
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != len(ids):
            raise InvalidTransition(f"{self.label}s {ids}: not all were '{frm}'; none became '{to}'")
        self._audit(session, audit, ids, action, frm, to, actor, at, details)

    def _audit(
        self,
        session: Session | None,
        audit: list[dict[str, Any]] | None,
        ids: list[str],
        action: str,
        frm: str | None,
        to: str,
        actor: str,
        at: datetime,
        details: dict[str, Any] | None,
    ) -> None:
        frm = None if frm is None else self.states(frm).value
        rows = audit_rows(
            self.entity,
            ids,
            action,
            actor=actor,
            at=at,
            from_state=frm,
            to_state=self.states(to).value,
            details=details,
        )
        if audit is not None:
            audit.extend(rows)
        elif session is not None:
            record_many(session, rows)
        else:
            raise ValueError(f"{self.entity} {ids}: an audit row needs a session or an audit list")


#: Primary-key attribute of each entity's ORM row.
_ID = {"purchase_request": "request_id", "reservation": "reservation_id", "acquisition_round": "round_id"}

REQUESTS = Lifecycle("purchase_request", "purchase request", RequestStatus, REQUEST_TRANSITIONS)
RESERVATIONS = Lifecycle("reservation", "reservation", ReservationStatus, RESERVATION_TRANSITIONS)
ROUNDS = Lifecycle("acquisition_round", "acquisition round", RoundStatus, ROUND_TRANSITIONS)
