"""Bookstore counter endpoints: point-of-sale decisions with a budget reservation, checkout, cancel.

A bookstore terminal's key is bound to its bookstore: it may decide only for its own bookstore id and
check out or cancel only its own requests. Retrying a request with the same ``Idempotency-Key``
returns the stored decision (``replayed: true``) and never charges the budget twice.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Response, status

from features import bounds
from features.schema import RequestStatus
from serving.deps import BookstoreCaller, Language, State, require_own_request
from serving.schemas import Decision, PurchaseRequestIn, RequestStateOut
from serving.security import Principal

_log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/purchase-requests", tags=["counter"])

RequestId = Annotated[str, Path(min_length=1, max_length=40, description="Request id from the decision.")]


@router.post(
    "",
    response_model=Decision,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": Decision, "description": "A replayed decision (same Idempotency-Key)."}},
)
def decide(
    request: PurchaseRequestIn,
    principal: BookstoreCaller,
    state: State,
    response: Response,
    lang: Language,
    idempotency_key: Annotated[
        str,
        Header(
            alias="Idempotency-Key",
            min_length=bounds.IDEMPOTENCY_KEY_MIN,
            max_length=bounds.IDEMPOTENCY_KEY_MAX,
            description="Unique per request; a retry with the same key returns the first decision.",
        ),
    ],
) -> Decision:
    """Approve (reserving the price on every applicable budget line), put to staff (the mediation band) or
    decline with reason codes, at once; a decline because the network holds the book offers the cheapest
    way to get it with the expected wait."""
    if request.bookstore_id != principal.subject:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this terminal may only send requests for its own bookstore")
    # a reused key (acquisition.errors.IdempotencyConflict) is a 409 through serving.errors
    decision = state.counter.decide(request, idempotency_key, actor=f"bookstore:{principal.subject}")
    if decision.replayed:
        response.status_code = status.HTTP_200_OK
    return decision.in_language(lang)  # the alternatives' sentences: zh-CN, or en by Accept-Language


def _transition(state, principal: Principal, request_id: str, action: str) -> RequestStateOut:
    require_own_request(state, principal, request_id)
    checkout = action == "checkout"
    op = state.counter.checkout if checkout else state.counter.cancel
    # refusals (acquisition.errors: not found 404, invalid transition / expired 409) map in serving.errors
    op(request_id, actor=f"bookstore:{principal.subject}", now=state.now())
    return RequestStateOut(
        request_id=request_id, status=RequestStatus.CHECKED_OUT if checkout else RequestStatus.CANCELLED
    )


@router.post("/{request_id}/checkout", response_model=RequestStateOut)
def checkout(request_id: RequestId, principal: BookstoreCaller, state: State) -> RequestStateOut:
    """The reader leaves with the book: the reserved money is committed (409 when expired or not reserved)."""
    return _transition(state, principal, request_id, "checkout")


@router.post("/{request_id}/cancel", response_model=RequestStateOut)
def cancel(request_id: RequestId, principal: BookstoreCaller, state: State) -> RequestStateOut:
    """The sale did not happen: the reserved money goes back to the budget."""
    return _transition(state, principal, request_id, "cancel")
