"""``GET /v1/audit``: who did what and when (the acquisition audit trail), filtered and paged; the
staff page ``/staff/audit`` shows the same rows and exports them as CSV."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from acquisition import audit
from features import bounds
from features.schema import LocalDateTime
from serving.deps import StaffCaller, State

router = APIRouter(tags=["acquisition"])


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: LocalDateTime
    entity: str = Field(description="purchase_request, reservation, budget_line, round ...")
    entity_id: str
    action: str
    from_state: str | None
    to_state: str | None
    actor: str = Field(description="role:subject, e.g. staff:alice or bookstore:BS-11.")
    details: dict = Field(description="Never holds raw reader ids (pseudonyms only).")


class AuditPage(BaseModel):
    items: list[AuditEntry]
    total: int = Field(description="Rows matching the filter, over all pages.")
    offset: int
    limit: int


def audit_query(
    entity: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: date | None = None,
    until: date | None = None,
    limit: int = 100,
    offset: int = 0,
) -> audit.AuditQuery:
    """The query of a filter form or query string (dates are whole days, ``until`` inclusive)."""
    return audit.AuditQuery(
        entity=entity or None,
        entity_id=entity_id or None,
        action=action or None,
        actor=actor or None,
        since=datetime.combine(since, time()) if since else None,
        until=datetime.combine(until, time.max) if until else None,
        limit=limit,
        offset=offset,
    )


Text = Annotated[str | None, Query(max_length=bounds.ACTOR_MAX)]
Day = Annotated[date | None, Query(ge=date(2000, 1, 1), le=date(2100, 12, 31))]


@router.get("/v1/audit", response_model=AuditPage, summary="Read the audit trail")
def read_audit(
    state: State,
    _principal: StaffCaller,
    entity: Text = None,
    entity_id: Text = None,
    action: Text = None,
    actor: Text = None,
    since: Day = None,
    until: Day = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditPage:
    """Every state change of money or a request, newest first: who, when, from which state to which."""
    q = audit_query(entity, entity_id, action, actor, since, until, limit, offset)
    with state.db.session_scope() as s:
        rows, total = audit.search(s, q)
        items = [AuditEntry.model_validate(r) for r in rows]
    return AuditPage(items=items, total=total, offset=offset, limit=limit)
