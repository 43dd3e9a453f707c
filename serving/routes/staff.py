"""The staff page ``/staff``: server-rendered (Jinja2), plain HTML forms, no JavaScript needed.

Log in (staff users from ``YUEDU_STAFF_USERS``), pick or start an acquisition round, read the ranked purchase list
with its reasons, see budget used/left per district, approve or reject lines, export CSV. The login
sets an HttpOnly, SameSite=Strict cookie holding a signed staff token; it is honoured only by these
pages. Every POST answers with a redirect (post/redirect/get), carrying an error message if any.

Every POST is checked twice against cross-site forgery: the request's ``Origin`` (or ``Referer``)
must be this site (or one of ``YUEDU_ALLOWED_ORIGINS``), and forms carry a CSRF token bound to the
session (:func:`serving.security.csrf_token`). Logins are throttled per login and per client
(:class:`serving.security.LoginGuard`); logout revokes the session in the database
(:mod:`serving.sessions`), so a copied cookie stops working too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse

from acquisition import ledger, rounds
from acquisition.lifecycle import ROUND_OPEN, LineDecision, RoundStatus
from features import bounds
from features.errors import YueduError
from serving import i18n
from serving.deps import STAFF_COOKIE, State
from serving.line_filters import LineFilter
from serving.pages import back, cookie_secure, page_lang, render, same_origin
from serving.routes.acquisition import decide_lines, export_response, load_round, order_sheet_response
from serving.security import (
    Principal,
    TokenError,
    check_csrf,
    check_password,
    csrf_token,
    issue_token,
    verify_token,
)

router = APIRouter(prefix="/staff", include_in_schema=False)

#: The lifecycle buttons a round's page shows in each status (the table may allow more: closing an
#: abandoned round is refused while lines are approved, and the page says so).
ROUND_MOVES = {
    RoundStatus.DRAFT: ("submit", "close"),
    RoundStatus.REVIEWED: ("submit", "close"),
    RoundStatus.SUBMITTED: ("approve", "return", "close"),
    RoundStatus.APPROVED: ("close",),
}


def _staff(request: Request, state) -> Principal | None:
    token = request.cookies.get(STAFF_COOKIE)
    if not token:
        return None
    try:
        principal = verify_token(token, state.settings.secret_key)
    except TokenError:
        return None
    if not principal.can_act_as_staff() or not state.sessions.active(principal.session, state.now()):
        return None
    return principal


def _refused(request: Request, why: str) -> HTMLResponse:
    return render(request, "base.html", {"error": why}, 403)


def _guard(request: Request, state, csrf: str) -> Principal | Response:
    """The staff principal of a state-changing POST, or the response refusing it."""
    if not same_origin(request, state.settings.allowed_origins):
        return _refused(request, "Refused: this form was not sent from the staff page (cross-site request).")
    principal = _staff(request, state)
    if principal is None:
        return back("/staff")
    if not check_csrf(state.settings.secret_key, principal.session, csrf):
        return _refused(request, "Refused: the form's security token is missing or stale; reload the page.")
    return principal


def _page(request: Request, name: str, principal: Principal, state, **context) -> HTMLResponse:
    csrf = csrf_token(state.settings.secret_key, principal.session or "")
    return render(request, name, {"user": principal, "csrf": csrf, **context})


def _login_page(request: Request, error: str | None = None, code: int = 200) -> HTMLResponse:
    return render(request, "login.html", {"error": error}, code)


@router.get("", response_class=HTMLResponse)
def home(request: Request, state: State, error: str | None = None) -> Response:
    principal = _staff(request, state)
    if principal is None:
        return _login_page(request)
    period = state.now().strftime("%Y-%m")
    return _page(
        request,
        "rounds.html",
        principal,
        state,
        rounds=rounds.list_rounds(state.db, period),
        budget=ledger.budgets(state.db, period),
        funds=rounds.fund_choices(state.db, period),
        error=error,
        model=state.bundle.version if state.bundle else None,
    )


@router.post("/login")
def login(
    request: Request,
    state: State,
    username: Annotated[str, Form(max_length=bounds.LOGIN_MAX)] = "",
    password: Annotated[str, Form(max_length=bounds.PASSWORD_MAX)] = "",
) -> Response:
    if not same_origin(request, state.settings.allowed_origins):
        return _refused(request, "Refused: log in from the staff page itself (cross-site request).")
    client = request.client.host if request.client else None
    wait = state.login_guard.retry_after(username, client)
    if wait:
        message = i18n.translator(page_lang(request))("Too many failed logins: try again in {wait} s.")
        page = _login_page(request, message.format(wait=wait), 429)
        page.headers["Retry-After"] = str(wait)
        return page
    role = check_password(state.staff_users, username, password) if username and password else None
    if role is None:
        state.login_guard.failure(username, client)
        return _login_page(request, "Unknown user or wrong password.", 401)
    state.login_guard.success(username, client)
    ttl = state.settings.token_ttl_s
    session = state.sessions.open(username, role, ttl, state.now())
    secure = state.settings.cookie_secure
    resp = back("/staff")
    resp.set_cookie(
        STAFF_COOKIE,
        issue_token(role, username, state.settings.secret_key, ttl, session=session),
        max_age=ttl,
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request, secure),
        path="/staff",
    )
    return resp


@router.post("/logout")
def logout(request: Request, state: State, csrf: Annotated[str, Form()] = "") -> Response:
    guard = _guard(request, state, csrf)
    if isinstance(guard, Response):
        return guard
    state.sessions.revoke(guard.session, state.now())
    resp = back("/staff")
    resp.delete_cookie(STAFF_COOKIE, path="/staff")
    return resp


@router.post("/rounds")
def new_round(
    request: Request,
    state: State,
    csrf: Annotated[str, Form()] = "",
    period: Annotated[str, Form(max_length=7)] = "",
    budget_yuan: Annotated[str, Form(max_length=20)] = "",
    max_lines: Annotated[str, Form(max_length=6)] = "",
    fund_id: Annotated[str, Form(max_length=bounds.ID_MAX)] = "",
) -> Response:
    """Rank the pending online requests into a new round: for a month, within a budget and a line cap
    when given (the same checks as ``POST /v1/acquisition/rounds``)."""
    from pydantic import ValidationError

    from serving.schemas import RoundIn

    principal = _guard(request, state, csrf)
    if isinstance(principal, Response):
        return principal
    given = {"period": period.strip(), "budget_yuan": budget_yuan.strip(), "max_lines": max_lines.strip()}
    given["fund_id"] = fund_id.strip()
    try:
        params = RoundIn(**{k: v for k, v in given.items() if v})
    except ValidationError as exc:
        first = exc.errors()[0]
        return back("/staff", f"{first['loc'][0]}: {first['msg']}")
    try:
        round_id = state.create_round(f"{principal.role}:{principal.subject}", **params.model_dump())
    except YueduError as exc:
        return back("/staff", str(exc))
    return back(f"/staff/rounds/{round_id}")


@router.get("/rounds/{round_id}", response_class=HTMLResponse)
def round_page(round_id: str, request: Request, state: State, error: str | None = None) -> Response:
    """A round's lines, filtered / searched / sorted / paged by the query string, with the budget."""
    principal = _staff(request, state)
    if principal is None:
        return back("/staff")
    try:
        round_ = load_round(state, round_id)
    except YueduError as exc:
        return back("/staff", str(exc))
    view = LineFilter.from_params(request.query_params)
    shown = view.apply(round_)
    lines, pages = view.page_of(shown)
    context = {
        "round": round_,
        "lines": lines,
        "n_shown": len(shown),
        "pages": pages,
        "view": view,
        "districts": sorted({x.district for x in round_.lines if x.district}),
        "budget": ledger.budgets(state.db, round_.period),
        "open": round_.status in ROUND_OPEN,
        "actions": ROUND_MOVES.get(round_.status, ()),
        "error": error,
    }
    return _page(request, "round.html", principal, state, **context)


@router.post("/rounds/{round_id}/decide")
async def decide(round_id: str, request: Request, state: State) -> Response:
    """One line's decision, or a bulk one (the ticked lines, or every line the filter shows) with a
    note; ``pending`` undoes. All or nothing; back to the same view, at the first line decided."""
    form = await request.form()
    principal = _guard(request, state, str(form.get("csrf", "")))
    if isinstance(principal, Response):
        return principal
    view = LineFilter.from_params(form)
    here = f"/staff/rounds/{round_id}" + (f"?{view.query()}" if view.query() else "")
    decision = str(form.get("decision", ""))
    if decision not in tuple(LineDecision):
        return back(here, "choose approve or reject for a line")
    note = str(form.get("note", ""))[: bounds.NOTE_MAX] or None
    ids = [str(x)[:40] for x in form.getlist("request_id")][:1000]
    if request.query_params.get("scope") == "shown":
        round_ = load_round(state, round_id)
        ids = [x.request_id for x in view.apply(round_) if decision != "approve" or not x.reason_codes]
    if not ids:
        return back(here, "tick at least one line")
    try:
        decide_lines(
            state,
            round_id,
            [rounds.StaffDecision(i, LineDecision(decision), note) for i in ids],
            f"{principal.role}:{principal.subject}",
        )
    except YueduError as exc:
        return back(here, str(exc))
    return back(here + f"#r-{ids[0]}")


@router.post("/rounds/{round_id}/status")
def round_status(
    round_id: str,
    request: Request,
    state: State,
    csrf: Annotated[str, Form()] = "",
    action: Annotated[str, Form(max_length=10)] = "",
    note: Annotated[str, Form(max_length=bounds.NOTE_MAX)] = "",
) -> Response:
    """Submit, approve, return or close the round (``acquisition.rounds.move_round``; refusals shown)."""
    principal = _guard(request, state, csrf)
    if isinstance(principal, Response):
        return principal
    here = f"/staff/rounds/{round_id}"
    try:
        rounds.move_round(
            state.db,
            round_id,
            action,
            actor=f"{principal.role}:{principal.subject}",
            now=state.now(),
            note=note or None,
        )
    except YueduError as exc:
        return back(here, str(exc))
    return back(here + "#lifecycle")


@router.get("/rounds/{round_id}/export.{fmt}")
def export_file(round_id: str, fmt: str, request: Request, state: State) -> Response:
    """The round as CSV or formatted XLSX (the same file as the API's export)."""
    if _staff(request, state) is None:
        return back("/staff")
    if fmt not in ("csv", "xlsx"):
        return back(f"/staff/rounds/{round_id}", "export as csv or xlsx")
    return export_response(load_round(state, round_id), fmt)


@router.get("/rounds/{round_id}/order-sheet.{fmt}")
def order_sheet_file(round_id: str, fmt: str, request: Request, state: State) -> Response:
    """The round's order sheet as formatted XLSX or CSV (the API's ``.../order-sheet``)."""
    if _staff(request, state) is None:
        return back("/staff")
    if fmt not in ("csv", "xlsx"):
        return back(f"/staff/rounds/{round_id}", "export as csv or xlsx")
    return order_sheet_response(state, load_round(state, round_id), fmt)


@router.get("/settlement", response_class=HTMLResponse)
def settlement_page(request: Request, state: State) -> Response:
    """The month's settlement with the bookstores: the figures of GET /v1/settlements."""
    from acquisition import settlement

    principal = _staff(request, state)
    if principal is None:
        return back("/staff")
    month = (request.query_params.get("month") or "").strip()[:7] or state.now().strftime("%Y-%m")
    try:
        rounds.check_period(month)
        report = settlement.settlement_report(state.db, state.policy, month)
    except YueduError as exc:
        return back("/staff/settlement", str(exc))
    return _page(request, "settlement.html", principal, state, report=report, month=month)


def _audit_rows(request: Request, state, limit: int) -> tuple[dict, list, int]:
    """The audit filter of the page's query string, one page of rows and the total."""
    from datetime import date

    from acquisition import audit as trail
    from serving.routes.audit import audit_query

    params = {k: (request.query_params.get(k) or "").strip()[: bounds.ACTOR_MAX] for k in AUDIT_FIELDS}
    days = {}
    for k in ("since", "until"):
        try:
            days[k] = date.fromisoformat(params[k]) if params[k] else None
        except ValueError:
            days[k] = None
    try:
        offset = max(0, min(10_000_000, int(request.query_params.get("offset") or 0)))
    except ValueError:
        offset = 0
    text = {k: params[k] or None for k in ("entity", "entity_id", "action", "actor")}
    q = audit_query(**text, **days, limit=limit, offset=offset)
    with state.db.session_scope() as s:
        rows, total = trail.search(s, q)
        rows = [dict(r.__dict__) for r in rows]
    return params | {"offset": offset}, rows, total


AUDIT_FIELDS = ("entity", "entity_id", "action", "actor", "since", "until")


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, state: State) -> Response:
    """Who did what and when: the audit trail, filtered, 100 rows a page, exportable."""
    principal = _staff(request, state)
    if principal is None:
        return back("/staff")
    params, rows, total = _audit_rows(request, state, 100)
    return _page(request, "audit.html", principal, state, rows=rows, total=total, params=params)


@router.get("/audit.csv")
def audit_csv(request: Request, state: State) -> Response:
    """The filtered audit trail as CSV (up to 100,000 rows; formula-like text neutralised)."""
    import json

    import polars as pl

    from acquisition.export import csv_bytes

    if _staff(request, state) is None:
        return back("/staff")
    _, rows, _ = _audit_rows(request, state, 100_000)
    cols = ("id", "at", "entity", "entity_id", "action", "from_state", "to_state", "actor")
    table = pl.DataFrame(
        {
            **{c: [r[c] for r in rows] for c in cols},
            "details": [json.dumps(r["details"], ensure_ascii=False) for r in rows],
        },
        schema={**{c: pl.String for c in cols}, "id": pl.Int64, "at": pl.Datetime, "details": pl.String},
    )
    return Response(
        csv_bytes(table),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


@router.get("/analytics", response_class=HTMLResponse)
def analytics_page(request: Request, state: State) -> Response:
    """Collection analytics: turnover per class and per district x class (a heat map), supply vs
    demand, dead stock, reader-chosen vs regular copies; the figures of GET /v1/reports/collection."""
    from features.names import CLC_TOP_ZH

    principal = _staff(request, state)
    if principal is None:
        return back("/staff")
    try:
        report = state.collection_report()
    except YueduError as exc:
        return back("/staff", str(exc))
    measure = (
        "loans_per_copy_per_year" if request.query_params.get("heat") == "demand" else "home_loans_per_copy_per_year"
    )
    grid = {(c.district, c.clc_top): getattr(c, measure) for c in report.cells}
    top = max(grid.values(), default=1.0) or 1.0
    context = {
        "report": report,
        "districts": sorted({c.district for c in report.cells}),
        "letters": [c.clc_top for c in report.classes],
        "grid": grid,
        "heat": {key: min(5, int(5 * value / top)) for key, value in grid.items()},
        "measure": measure,
        "class_zh": CLC_TOP_ZH,
    }
    return _page(request, "analytics.html", principal, state, **context)


def _budget_view(request: Request, state) -> dict:
    """The budgets page's choice (year, month, fund, district, bookstore) from the query string, with
    the funds report rows it keeps (the year's funds and the month's lines) and the options to pick."""
    from acquisition import funds

    now = state.now()
    q = {k: (request.query_params.get(k) or "").strip()[: bounds.ID_MAX] for k in BUDGET_FIELDS}
    year = q["year"] if len(q["year"]) == 4 and q["year"].isdigit() and "2000" <= q["year"] <= "2100" else f"{now:%Y}"
    month = q["month"] if q["month"][:5] == f"{year}-" and len(q["month"]) == 7 else None
    month = month or (f"{now:%Y-%m}" if now.year == int(year) else f"{year}-01")
    report = funds.budget_report(state.db, year)
    kept = [
        r
        for r in report.rows
        if r.period in (year, month)
        and (not q["fund"] or q["fund"] in (r.fund_id, r.parent_id))
        and (not q["district"] or r.district == q["district"])
        and (not q["bookstore"] or r.bookstore_id == q["bookstore"])
    ]
    return {
        "q": q | {"year": year, "month": month},
        "rows": kept,
        "fund_ids": [r.fund_id for r in report.rows if r.period == year],
        "districts": sorted({r.district for r in report.rows if r.district}),
        "bookstores": sorted({r.bookstore_id for r in report.rows if r.bookstore_id}),
        "closed": report.closed,
    }


BUDGET_FIELDS = ("year", "month", "fund", "district", "bookstore")


@router.get("/budgets", response_class=HTMLResponse)
def budgets_page(request: Request, state: State) -> Response:
    """Budgets by year, month, fund, district and bookstore (planned / encumbered / spent / free: the
    rows of GET /v1/funds) and the chosen fund's burn-down (GET /v1/funds/burndown)."""
    from acquisition.burndown import burn_down
    from serving.charts import burn_chart

    principal = _staff(request, state)
    if principal is None:
        return back("/staff")
    view = _budget_view(request, state)
    fund = view["q"]["fund"] if view["q"]["fund"] in view["fund_ids"] else next(iter(view["fund_ids"]), None)
    bd = burn_down(state.db, view["q"]["year"], fund, state.now().date()) if fund else None
    chart = burn_chart(bd) if bd else None
    return _page(request, "budgets.html", principal, state, **view, burn=bd, chart=chart)
