"""The staff page ``/staff``: server-rendered (Jinja2), plain HTML forms, no JavaScript needed.

Log in (staff users from ``YUEDU_STAFF_USERS``), pick or start an acquisition round, read the ranked purchase list
with its reasons, see budget used/left per district, approve or reject lines, export CSV. The login
sets an HttpOnly, SameSite=Strict cookie holding a signed staff token; it is honoured only by these
pages. Every POST answers with a redirect (post/redirect/get), carrying an error message if any.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from acquisition import ledger, rounds
from acquisition.lifecycle import LineDecision
from features.errors import YueduError
from serving.deps import STAFF_COOKIE, State
from serving.routes.acquisition import decide_lines, export_response, load_round
from serving.security import Principal, TokenError, check_password, issue_token, verify_token

router = APIRouter(prefix="/staff", include_in_schema=False)
templates = Jinja2Templates(directory=FsPath(__file__).resolve().parents[1] / "templates")


def _staff(request: Request, state) -> Principal | None:
    token = request.cookies.get(STAFF_COOKIE)
    if not token:
        return None
    try:
        principal = verify_token(token, state.settings.secret_key)
    except TokenError:
        return None
    return principal if principal.can_act_as_staff() else None


def _back(url: str, error: str | None = None) -> RedirectResponse:
    return RedirectResponse(url + (f"?error={quote(error)}" if error else ""), status_code=303)


def _login_page(request: Request, error: str | None = None, code: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {"error": error}, status_code=code)


@router.get("", response_class=HTMLResponse)
def home(request: Request, state: State, error: str | None = None) -> Response:
    principal = _staff(request, state)
    if principal is None:
        return _login_page(request)
    period = state.now().strftime("%Y-%m")
    return templates.TemplateResponse(
        request,
        "rounds.html",
        {
            "user": principal,
            "rounds": rounds.list_rounds(state.db, period),
            "budget": ledger.budgets(state.db, period),
            "error": error,
            "model": state.bundle.version if state.bundle else None,
        },
    )


@router.post("/login")
def login(
    request: Request, state: State, username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = ""
) -> Response:
    role = check_password(state.staff_users, username, password) if username and password else None
    if role is None:
        return _login_page(request, "Unknown user or wrong password.", 401)
    resp = _back("/staff")
    resp.set_cookie(
        STAFF_COOKIE,
        issue_token(role, username, state.settings.secret_key, state.settings.token_ttl_s),
        max_age=state.settings.token_ttl_s,
        httponly=True,
        samesite="strict",
        path="/staff",
    )
    return resp


@router.post("/logout")
def logout() -> Response:
    resp = _back("/staff")
    resp.delete_cookie(STAFF_COOKIE, path="/staff")
    return resp


@router.post("/rounds")
def new_round(request: Request, state: State) -> Response:
    principal = _staff(request, state)
    if principal is None:
        return _back("/staff")
    round_id = state.create_round(f"{principal.role}:{principal.subject}")
    return _back(f"/staff/rounds/{round_id}")


@router.get("/rounds/{round_id}", response_class=HTMLResponse)
def round_page(round_id: str, request: Request, state: State, error: str | None = None) -> Response:
    principal = _staff(request, state)
    if principal is None:
        return _back("/staff")
    try:
        round_ = load_round(state, round_id)
    except YueduError as exc:
        return _back("/staff", str(exc))
    return templates.TemplateResponse(
        request,
        "round.html",
        {"user": principal, "round": round_, "budget": ledger.budgets(state.db, round_.period), "error": error},
    )


@router.post("/rounds/{round_id}/decide")
def decide(
    round_id: str,
    request: Request,
    state: State,
    request_id: Annotated[str, Form()] = "",
    decision: Annotated[str, Form()] = "",
) -> Response:
    principal = _staff(request, state)
    if principal is None:
        return _back("/staff")
    if decision not in tuple(LineDecision) or not request_id:
        return _back(f"/staff/rounds/{round_id}", "choose approve or reject for a line")
    try:
        decide_lines(
            state,
            round_id,
            [rounds.StaffDecision(request_id, LineDecision(decision))],
            f"{principal.role}:{principal.subject}",
        )
    except YueduError as exc:
        return _back(f"/staff/rounds/{round_id}", str(exc))
    return _back(f"/staff/rounds/{round_id}")


@router.get("/rounds/{round_id}/export.csv")
def export_csv(round_id: str, request: Request, state: State) -> Response:
    if _staff(request, state) is None:
        return _back("/staff")
    return export_response(load_round(state, round_id), "csv")
