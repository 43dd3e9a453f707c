"""Staff endpoints for the mediation band and placement (issue 15 §5). JSON only: the staff
workbench's queue page reads ``GET /v1/mediations`` (see docs/acquisition-counter.md for what it shows).

- ``GET /v1/mediations``: mediated requests awaiting an answer (oldest promise first), overdue flagged;
- ``POST /v1/mediations/{request_id}/decision``: approve (the held price is encumbered) or decline
  (released), through :func:`acquisition.mediation.answer`;
- ``GET /v1/reports/alternatives``: the ways offered with declines of held books and those taken;
- ``GET /v1/purchase-requests/{request_id}/placement``: the branch with the highest demand after the
  requester, for the copy when it comes back (:func:`acquisition.placement.for_request`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi import Path as PathParam

from acquisition import alternatives, mediation, placement
from serving.deps import StaffCaller, State
from serving.schemas import AlternativesReport, MediationAnswerIn, MediationOut, MediationQueueOut, Placement

router = APIRouter(tags=["staff"])

RequestId = Annotated[str, PathParam(min_length=1, max_length=40, description="Purchase request id.")]


@router.get("/v1/mediations", response_model=MediationQueueOut)
def list_mediations(
    _principal: StaffCaller,
    state: State,
    overdue: Annotated[bool, Query(description="Only those unanswered past their promised time.")] = False,
    answered: Annotated[bool, Query(description="Include answered mediations too.")] = False,
) -> MediationQueueOut:
    """The mediation queue as of the server clock; the count of overdue answers is always given."""
    now = state.now()
    items = mediation.queue(state.db, now, overdue_only=overdue, open_only=not answered)
    late = items if overdue else mediation.queue(state.db, now, overdue_only=True)
    return MediationQueueOut(as_of=now, overdue=len(late), items=items)


@router.post("/v1/mediations/{request_id}/decision", response_model=MediationOut)
def answer_mediation(
    request_id: RequestId, body: MediationAnswerIn, principal: StaffCaller, state: State
) -> MediationOut:
    """Staff's answer to a mediated request (404 unknown, 409 when it is not awaiting mediation)."""
    return mediation.answer(
        state.db,
        request_id,
        body.decision,
        actor=f"{principal.role}:{principal.subject}",
        now=state.now(),
        note=body.note,
    )


@router.get("/v1/reports/alternatives", response_model=AlternativesReport)
def get_alternatives_report(_principal: StaffCaller, state: State) -> AlternativesReport:
    """Ways offered with declines of held books (first and listed) and those readers took, per way."""
    return alternatives.report(state.db)


@router.get("/v1/purchase-requests/{request_id}/placement", response_model=Placement)
def get_placement(
    request_id: RequestId,
    _principal: StaffCaller,
    state: State,
    top: Annotated[int, Query(ge=1, le=50, description="Branches listed.")] = 5,
) -> Placement:
    """Where the request's copy should go when its requester returns it (503 without a data directory)."""
    data = Path(state.settings.data_dir)
    if not (data / "branches.parquet").exists():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no data directory with branches to place copies in")
    return placement.for_request(state.db, data, request_id, at=state.now(), top=top)
