"""The bookstore counter page ``/counter``: scan a reader card and an ISBN, get the decision at once.

For the clerk at a partner bookstore's till (a 1024 x 768 terminal, a barcode scanner that types
and presses Enter). The terminal is set up once with its bookstore key (the token of ``yuedu token
issue --role bookstore``), kept in an HttpOnly, SameSite=Strict cookie on ``/counter``; a key of any
other role is refused. Each decision goes through the same :class:`acquisition.counter.CounterService`
as the API, with a fresh idempotency key per form, so a double Enter or a retried post never charges
twice. The answer is in Chinese first (English by the switch): approved with the amount reserved, or
declined with every failing rule as a sentence; then check out or cancel.

Forms are protected like the staff pages: same-origin check and a CSRF token bound to the key.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from acquisition.counter import PurchaseRequestIn
from features import bounds
from features.errors import YueduError
from features.privacy import pseudonymise
from serving.deps import State
from serving.pages import back, cookie_secure, render, same_origin
from serving.security import Principal, TokenError, check_csrf, csrf_token, verify_token

_log = logging.getLogger(__name__)

router = APIRouter(prefix="/counter", include_in_schema=False)
COUNTER_COOKIE = "yuedu_counter"


def _terminal(request: Request, state) -> tuple[Principal, str] | None:
    """The bookstore this terminal is set up for, and its key's signature (the CSRF binding)."""
    key = request.cookies.get(COUNTER_COOKIE)
    if not key:
        return None
    try:
        principal = verify_token(key, state.settings.secret_key)
    except TokenError:
        return None
    return (principal, key.rsplit(".", 1)[-1]) if principal.role == "bookstore" else None


def _guard(request: Request, state, csrf: str) -> tuple[Principal, str] | Response:
    if not same_origin(request, state.settings.allowed_origins):
        return render(request, "base.html", {"error": "Refused: this form was not sent from the counter page."}, 403)
    terminal = _terminal(request, state)
    if terminal is None:
        return back("/counter")
    if not check_csrf(state.settings.secret_key, terminal[1], csrf):
        return render(
            request,
            "base.html",
            {"error": "Refused: the form's security token is missing or stale; reload the page."},
            403,
        )
    return terminal


def _page(request: Request, state, terminal: tuple[Principal, str], code: int = 200, **context) -> HTMLResponse:
    """The counter form (with a fresh idempotency nonce) and whatever the last action produced."""
    principal, binding = terminal
    csrf = csrf_token(state.settings.secret_key, binding)
    page = {"store": principal.subject, "csrf": csrf, "nonce": uuid.uuid4().hex, **context}
    return render(request, "counter.html", page, code)


@router.get("", response_class=HTMLResponse)
def counter_home(request: Request, state: State, error: str | None = None) -> Response:
    terminal = _terminal(request, state)
    if terminal is None:
        return render(request, "counter_key.html", {"error": error})
    return _page(request, state, terminal, error=error)


@router.post("/key")
def set_key(request: Request, state: State, key: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Set the terminal up with its bookstore key (once per terminal)."""
    if not same_origin(request, state.settings.allowed_origins):
        return render(request, "base.html", {"error": "Refused: this form was not sent from the counter page."}, 403)
    try:
        principal = verify_token(key.strip(), state.settings.secret_key)
    except TokenError:
        principal = None
    if principal is None or principal.role != "bookstore":
        return render(request, "counter_key.html", {"error": "This is not a valid bookstore key."}, 401)
    resp = back("/counter")
    resp.set_cookie(
        COUNTER_COOKIE,
        key.strip(),
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request, state.settings.cookie_secure),
        path="/counter",
    )
    return resp


@router.post("/decide", response_class=HTMLResponse)
def decide(
    request: Request,
    state: State,
    reader_id: Annotated[str, Form(max_length=bounds.ID_MAX)] = "",
    isbn: Annotated[str, Form(max_length=bounds.ISBN_MAX)] = "",
    price: Annotated[str, Form(max_length=20)] = "",
    title: Annotated[str, Form(max_length=bounds.TITLE_MAX)] = "",
    pub_year: Annotated[str, Form(max_length=4)] = "",
    nonce: Annotated[str, Form(max_length=bounds.IDEMPOTENCY_KEY_MAX)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Decide one request on the spot (the API's decision, rendered for the clerk)."""
    terminal = _guard(request, state, csrf)
    if isinstance(terminal, Response):
        return terminal
    principal, _ = terminal
    try:
        body = PurchaseRequestIn(
            reader_id=reader_id.strip(),
            bookstore_id=principal.subject,
            isbn=isbn.strip(),
            price=price.strip() or "0",
            title=title.strip() or None,
            pub_year=pub_year.strip() or None,
            channel="counter",
        )
    except ValidationError as exc:
        fields = sorted({str(e["loc"][0]) for e in exc.errors()})
        return _page(
            request,
            state,
            terminal,
            problem=fields,
            form=locals_form(reader_id, isbn, price, title, pub_year),
            code=422,
        )
    key = nonce if len(nonce) >= bounds.IDEMPOTENCY_KEY_MIN else uuid.uuid4().hex
    try:
        decision = state.counter.decide(body, key, actor=f"bookstore:{principal.subject}")
    except YueduError as exc:
        return _page(request, state, terminal, error=str(exc), code=exc.http_status)
    _log.info("counter page decision for %s: %s", pseudonymise(body.reader_id), decision.status)
    return _page(request, state, terminal, decision=decision, price=body.price, book=title.strip() or isbn.strip())


def locals_form(reader_id: str, isbn: str, price: str, title: str, pub_year: str) -> dict[str, str]:
    """What the clerk typed, to show it again next to the problem."""
    return {"reader_id": reader_id, "isbn": isbn, "price": price, "title": title, "pub_year": pub_year}


@router.post("/{request_id}/{action}", response_class=HTMLResponse)
def finish(
    request_id: str, action: str, request: Request, state: State, csrf: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    """Check out (the reader leaves with the book) or cancel (the sale did not happen)."""
    terminal = _guard(request, state, csrf)
    if isinstance(terminal, Response):
        return terminal
    principal, _ = terminal
    if action not in ("checkout", "cancel") or len(request_id) > 40:
        return back("/counter", "choose check out or cancel")
    from acquisition.db import PurchaseRequestRow

    with state.db.session_scope() as s:
        row = s.get(PurchaseRequestRow, request_id)
        owner = row.bookstore_id if row is not None else None
    if owner != principal.subject:
        return back("/counter", "This request is not this bookstore's.")
    op = state.counter.checkout if action == "checkout" else state.counter.cancel
    try:
        op(request_id, actor=f"bookstore:{principal.subject}", now=state.now())
    except YueduError as exc:
        return back("/counter", str(exc))
    return _page(request, state, terminal, done=action)
