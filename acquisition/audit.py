"""The audit trail of the acquisition ledger, and reader pseudonyms for logs.

Every state change of a purchase request, reservation or budget line is one append-only row of
``audit_log`` (who, when, from which state to which). The table refuses UPDATE and DELETE (database
triggers on SQLite and PostgreSQL, where TRUNCATE is refused too; an ORM guard everywhere). Reader ids never reach logs or audit details raw: they are
replaced by an HMAC-SHA256 pseudonym keyed by ``YUEDU_PSEUDONYM_KEY``. :func:`search` reads it back
for the staff audit view and ``GET /v1/audit``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from acquisition.db import AuditLog, NoticeRow
from acquisition.notices import notice_rows
from features.privacy import pseudonymise  # noqa: F401  (re-exported: the counter logs with it)

_log = logging.getLogger(__name__)


def audit_rows(
    entity: str,
    entity_ids: Iterable[str],
    action: str,
    *,
    actor: str,
    at: datetime,
    from_state: str | None = None,
    to_state: str | None = None,
    details: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows for :func:`record_many`: the same change applied to several entities."""
    return [
        {
            "entity": entity,
            "entity_id": eid,
            "action": action,
            "from_state": from_state,
            "to_state": to_state,
            "actor": actor,
            "at": at,
            "details": details or {},
        }
        for eid in entity_ids
    ]


#: Core INSERT of notice rows (built once; cheaper than the ORM bulk path on the counter's hot path).
_INSERT_NOTICES = insert(NoticeRow.__table__)


def record_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """Append audit rows in one statement (inside the caller's transaction), with the reader's notice
    of every purchase-request status change among them (:mod:`acquisition.notices`)."""
    if rows:
        session.execute(insert(AuditLog), rows)
        notices = notice_rows(rows)
        if notices:
            session.connection().execute(_INSERT_NOTICES, notices)


def record(
    session: Session,
    entity: str,
    entity_id: str,
    action: str,
    *,
    actor: str,
    at: datetime,
    from_state: str | None = None,
    to_state: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit row (inside the caller's transaction, so it commits with the change)."""
    record_many(
        session,
        audit_rows(
            entity, [entity_id], action, actor=actor, at=at, from_state=from_state, to_state=to_state, details=details
        ),
    )


def history(session: Session, entity: str, entity_id: str) -> list[AuditLog]:
    """The audit rows of one entity, oldest first."""
    stmt = select(AuditLog).where(AuditLog.entity == entity, AuditLog.entity_id == entity_id).order_by(AuditLog.id)
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class AuditQuery:
    """Which audit rows to read: each given field must match (``actor`` and ``entity_id`` as a
    prefix), ``since`` / ``until`` bound the time (until exclusive); newest first, ``limit`` from
    ``offset``."""

    entity: str | None = None
    entity_id: str | None = None
    action: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


def search(session: Session, q: AuditQuery) -> tuple[list[AuditLog], int]:
    """The matching audit rows (one page, newest first) and how many match in all."""
    a = AuditLog
    conditions = []
    if q.entity:
        conditions.append(a.entity == q.entity)
    if q.action:
        conditions.append(a.action == q.action)
    if q.entity_id:
        conditions.append(a.entity_id.startswith(q.entity_id, autoescape=True))
    if q.actor:
        conditions.append(a.actor.startswith(q.actor, autoescape=True))
    if q.since:
        conditions.append(a.at >= q.since)
    if q.until:
        conditions.append(a.at < q.until)
    total = session.scalar(select(func.count()).select_from(a).where(*conditions)) or 0
    rows = session.scalars(
        select(a).where(*conditions).order_by(a.at.desc(), a.id.desc()).limit(q.limit).offset(q.offset)
    )
    return list(rows), int(total)
