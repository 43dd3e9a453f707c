"""Staff endpoints: acquisition rounds over online requests, decisions, export, budgets, collection report.

A thin skin over :mod:`acquisition.rounds`, :mod:`acquisition.ledger`, :mod:`acquisition.export` and
:mod:`acquisition.analytics`: their errors (round not found 404, decision refused 409, ...) become
HTTP answers in one place (:mod:`serving.errors`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from acquisition import ledger, rounds
from acquisition.burndown import BurnDown, burn_down
from acquisition.errors import InvalidPeriod
from acquisition.export import export_order_sheet, export_round
from serving.deps import StaffCaller, State
from serving.errors import field_error
from serving.routes.catalogue import Limit, Offset
from serving.schemas import (
    Budgets,
    CollectionReport,
    DecisionsIn,
    Page,
    Round,
    RoundIn,
    RoundSummary,
    RoundTransitionIn,
)

router = APIRouter(tags=["staff"])

RoundId = Annotated[str, Path(min_length=1, max_length=40, description="Round id.")]

#: Media types of the export formats.
MEDIA = {"csv": "text/csv; charset=utf-8", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def load_round(state, round_id: str) -> Round:
    """The round (raises :class:`acquisition.errors.RoundNotFound`: a 404)."""
    return rounds.get_round(state.db, round_id, state.policy.budget_district_of, state.now().strftime("%Y-%m"))


def decide_lines(state, round_id: str, decisions: list[rounds.StaffDecision], actor: str) -> None:
    """Apply decisions (refusals raise :mod:`acquisition.errors`: 404 / 409)."""
    rounds.apply_decisions(state.db, state.policy, round_id, decisions, actor=actor, now=state.now())


def export_name(round_: Round) -> str:
    """A file name people can tell apart: month, creation time and the id's head."""
    return f"round-{round_.period}-{round_.created_at:%Y%m%d-%H%M}-{round_.round_id[:6]}"


def export_response(round_: Round, fmt: Literal["csv", "xlsx"]) -> Response:
    """The round as a downloadable purchase list file."""
    return Response(
        export_round(round_, fmt),
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{export_name(round_)}.{fmt}"'},
    )


@router.post("/v1/acquisition/rounds", response_model=Round, status_code=status.HTTP_201_CREATED)
def create_round(params: RoundIn, principal: StaffCaller, state: State) -> Round:
    """Rank the pending online requests into a new round (lines with reasons; a budget-fitting prefix selected)."""
    round_id = state.create_round(f"{principal.role}:{principal.subject}", **params.model_dump())
    return load_round(state, round_id)


@router.get("/v1/acquisition/rounds", response_model=Page[RoundSummary])
def list_rounds(_principal: StaffCaller, state: State, offset: Offset = 0, limit: Limit = 50) -> Page[RoundSummary]:
    """Every round, newest first, a page at a time (``{items, total, offset, limit}``; a bare array before)."""
    every = rounds.list_rounds(state.db, state.now().strftime("%Y-%m"))
    return Page[RoundSummary](items=every[offset : offset + limit], total=len(every), offset=offset, limit=limit)


@router.get("/v1/acquisition/rounds/{round_id}", response_model=Round)
def get_round(round_id: RoundId, _principal: StaffCaller, state: State) -> Round:
    """A round's ranked lines with reasons and current decisions."""
    return load_round(state, round_id)


@router.post("/v1/acquisition/rounds/{round_id}/decisions", response_model=Round)
def post_decisions(round_id: RoundId, body: DecisionsIn, principal: StaffCaller, state: State) -> Round:
    """Approve / reject / reset lines, all or nothing. An approval charges the budget at once (409 when a
    budget line has no room or the request moved on)."""
    decide_lines(
        state,
        round_id,
        [rounds.StaffDecision(d.request_id, d.decision, d.note) for d in body.decisions],
        f"{principal.role}:{principal.subject}",
    )
    return load_round(state, round_id)


def order_sheet_response(state, round_: Round, fmt: Literal["csv", "xlsx"]) -> Response:
    """The round's order sheet (approved lines per ISBN and branch, quantities, fund, totals) as a file."""
    return Response(
        export_order_sheet(round_, rounds.bookstore_branches(state.db), fmt),
        media_type=MEDIA[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="order-{export_name(round_).removeprefix("round-")}.{fmt}"'
        },
    )


@router.get(
    "/v1/acquisition/rounds/{round_id}/order-sheet",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, MEDIA["xlsx"]: {}}}},
)
def order_sheet(
    round_id: RoundId,
    _principal: StaffCaller,
    state: State,
    format: Annotated[Literal["csv", "xlsx"], Query(description="File format.")] = "xlsx",
) -> Response:
    """The order sheet for the bookstores: title, author, publisher, ISBN, price, quantity, branch, fund,
    amount, and a totals row (copies, yuan)."""
    return order_sheet_response(state, load_round(state, round_id), format)


@router.post("/v1/acquisition/rounds/{round_id}/transitions", response_model=Round)
def post_transition(round_id: RoundId, body: RoundTransitionIn, principal: StaffCaller, state: State) -> Round:
    """Submit a round for approval, approve it, return it for changes or close it; who and when are kept
    (``history``). 409 when the lifecycle does not allow the move; a submitted round's decisions are frozen."""
    rounds.move_round(
        state.db, round_id, body.action, actor=f"{principal.role}:{principal.subject}", now=state.now(), note=body.note
    )
    return load_round(state, round_id)


@router.get(
    "/v1/acquisition/rounds/{round_id}/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, MEDIA["xlsx"]: {}}}},
)
def export(
    round_id: RoundId,
    _principal: StaffCaller,
    state: State,
    format: Annotated[Literal["csv", "xlsx"], Query(description="File format.")] = "csv",
) -> Response:
    """The round as a purchase list file."""
    return export_response(load_round(state, round_id), format)


@router.get("/v1/budgets", response_model=Budgets)
def get_budgets(
    _principal: StaffCaller,
    state: State,
    period: Annotated[str | None, Query(max_length=7, description="Month 'YYYY-MM' (default: this month).")] = None,
) -> Budgets:
    """Budget lines of the month and its year; amount, used and left per district (yuan)."""
    if period is not None:
        try:
            rounds.check_period(period)  # 'YYYY-MM' within 2000-01..2100-12, like a round's period
        except InvalidPeriod as exc:
            raise field_error("query.period", str(exc).removeprefix("period: ")) from None
    return ledger.budgets(state.db, period or state.now().strftime("%Y-%m"))


@router.get("/v1/reports/collection", response_model=CollectionReport)
def collection(_principal: StaffCaller, state: State) -> CollectionReport:
    """Turnover per class and per district x class over the last 365 days of loans, supply vs demand,
    dead stock, reader-chosen vs regular copies: the same figures as ``yuedu acquisition report``."""
    return state.collection_report()


@router.get("/v1/funds/burndown", response_model=BurnDown)
def get_burndown(
    _principal: StaffCaller,
    state: State,
    fund: Annotated[str, Query(min_length=1, max_length=64, description="A fund: a year line of GET /v1/funds.")],
    year: Annotated[
        str | None,
        Query(pattern=r"^(20\d\d|2100)$", description="Programme year 'YYYY', 2000-2100 (default: this year)."),
    ] = None,
) -> BurnDown:
    """A fund's burn-down: cumulative plan and use (encumbered + spent) per month, fen, and the date the
    plan runs out at the pace so far (409 when the fund is not one of the year)."""
    now = state.now()
    return burn_down(state.db, year or now.strftime("%Y"), fund, now.date())
