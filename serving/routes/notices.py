"""The reader's side of issue 15: their notices (the app channel reads them here) and the way they
took when a decline offered alternatives.

- ``GET /v1/readers/{reader_id}/notices``: the reader's notices, newest first, in the language asked
  (the reader themself, or staff);
- ``POST /v1/purchase-requests/{request_id}/alternative``: record the way taken (the bookstore that
  decided the request, or staff), through :func:`acquisition.alternatives.take` (audited).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from acquisition import alternatives, notices
from features import bounds
from serving.deps import Language, OwnReader, State, require_own_request, require_roles
from serving.schemas import AlternativeTakenIn, NoticeOut, NoticesOut, Taken
from serving.security import Principal

router = APIRouter()

ReaderId = Annotated[str, Path(min_length=1, max_length=bounds.ID_MAX, description="Reader card id.")]
RequestId = Annotated[str, Path(min_length=1, max_length=40, description="Purchase request id.")]
BookstoreOrStaff = Annotated[Principal, Depends(require_roles("bookstore", "staff", "admin"))]


@router.get("/v1/readers/{reader_id}/notices", response_model=NoticesOut, tags=["readers"])
def list_notices(
    reader_id: ReaderId,
    _principal: OwnReader,
    state: State,
    lang: Language,
    limit: Annotated[int, Query(ge=1, le=bounds.PAGE_MAX, description="Notices listed, newest first.")] = 50,
) -> NoticesOut:
    """The reader's notices of their requests' status changes (queued ones too)."""
    rows = notices.reader_notices(state.db, reader_id, language=lang, limit=limit)
    items = [NoticeOut(**vars(n)) for n in rows]
    return NoticesOut(reader_id=reader_id, items=items)


@router.post("/v1/purchase-requests/{request_id}/alternative", response_model=Taken, tags=["counter"])
def take_alternative(
    request_id: RequestId, body: AlternativeTakenIn, principal: BookstoreOrStaff, state: State
) -> Taken:
    """The reader took one of the ways offered with a decline (409 when not offered or already taken)."""
    if principal.role == "bookstore":
        require_own_request(state, principal, request_id)
    return alternatives.take(
        state.db, request_id, body.kind, at=state.now(), actor=f"{principal.role}:{principal.subject}"
    )
