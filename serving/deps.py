"""FastAPI dependencies: the app state, the caller (principal) and role checks, the served model bundle.

Credentials: ``Authorization: Bearer <token>`` or ``X-API-Key: <token>`` (bookstore terminals). The
staff page's cookie (``yuedu_staff``) is accepted only by the ``/staff`` pages, never by the JSON API,
so a cross-site form cannot spend budget through the API. Missing or invalid credentials give 401; a valid caller whose role
(or subject) does not fit the endpoint gives 403.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from serving.security import Principal, TokenError, verify_token
from serving.state import AppState, ModelBundle

_log = logging.getLogger(__name__)

# The dependencies below never block, so they are coroutines: as plain functions FastAPI would hand
# each one to its thread pool, four or five hand-offs per request.

STAFF_COOKIE = "yuedu_staff"


async def get_state(request: Request) -> AppState:
    return request.app.state.yuedu


State = Annotated[AppState, Depends(get_state)]


def _credential(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Authorization header must be 'Bearer <token>'")
        return token.strip()
    return request.headers.get("x-api-key")


async def get_principal(request: Request, state: State) -> Principal:
    """The authenticated caller; 401 without valid credentials."""
    token = _credential(request)
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "credentials required", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        return verify_token(token, state.settings.secret_key)
    except TokenError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}
        ) from None


Caller = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting only ``roles`` (403 for any other authenticated role)."""

    async def check(principal: Caller) -> Principal:
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role '{principal.role}' may not use this endpoint")
        return principal

    return check


StaffCaller = Annotated[Principal, Depends(require_roles("staff", "admin"))]
AdminCaller = Annotated[Principal, Depends(require_roles("admin"))]
BookstoreCaller = Annotated[Principal, Depends(require_roles("bookstore"))]
ReaderOrStaff = Annotated[Principal, Depends(require_roles("reader", "staff", "admin"))]


async def own_reader(reader_id: str, principal: ReaderOrStaff) -> Principal:
    """Readers may only act on their own id (staff and admin on any); checked before the body is read."""
    if principal.role == "reader" and principal.subject != reader_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a reader token may only access its own reader")
    return principal


OwnReader = Annotated[Principal, Depends(own_reader)]


async def self_or_admin(reader_id: str, principal: Caller) -> Principal:
    """Data rights (export, erasure): the reader themself or an admin; staff and others get 403."""
    if principal.role == "admin" or (principal.role == "reader" and principal.subject == reader_id):
        return principal
    raise HTTPException(status.HTTP_403_FORBIDDEN, "only the reader themself or an admin may use this endpoint")


SelfOrAdmin = Annotated[Principal, Depends(self_or_admin)]


async def get_bundle(state: State) -> ModelBundle:
    """The model bundle to use for the WHOLE request (taken once, so a reload never mixes models)."""
    bundle = state.bundle
    if bundle is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"no model loaded: {state.last_reload_error or 'starting'}"
        )
    return bundle


Bundle = Annotated[ModelBundle, Depends(get_bundle)]


def require_own_request(state: AppState, principal: Principal, request_id: str) -> None:
    """A bookstore may act only on its own purchase requests: 404 when the request does not exist,
    403 when another bookstore sent it."""
    from acquisition.db import PurchaseRequestRow
    from acquisition.errors import RequestNotFound

    with state.db.session_scope() as s:
        row = s.get(PurchaseRequestRow, request_id)
        bookstore = row.bookstore_id if row is not None else None
    if bookstore is None:
        raise RequestNotFound(f"purchase request {request_id}: not found")
    if bookstore != principal.subject:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this request belongs to another bookstore")


def choose_language(accept_language: str | None) -> str:
    """'en' when the caller's first acceptable language is English, else 'zh-CN' (the default)."""
    for part in (accept_language or "").split(",")[:20]:
        tag, _, q = part.strip().partition(";")
        if q.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        tag = tag.strip().lower()
        if tag.startswith("en"):
            return "en"
        if tag.startswith("zh") or tag == "*":
            return "zh-CN"
    return "zh-CN"


async def get_language(
    accept_language: Annotated[
        str | None,
        Header(max_length=500, description="zh-CN (default) or en: the language of reasons and class names."),
    ] = None,
) -> str:
    return choose_language(accept_language)


Language = Annotated[str, Depends(get_language)]
