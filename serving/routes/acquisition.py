"""Staff endpoints: batch runs over online requests, decisions, export, budgets, collection report."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from acquisition import rounds as runs
from serving.deps import StaffCaller, State
from serving.errors import field_error
from serving.schemas import BudgetsOut, CollectionReport, DecisionsIn, RunIn, RunOut, RunSummary

router = APIRouter(tags=["staff"])

RunId = Annotated[str, Path(min_length=1, max_length=40, description="Run id.")]
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def get_run_or_404(state, run_id: str) -> dict:
    try:
        return runs.get_run(state.db, run_id, state.policy.budget_district_of, state.now().strftime("%Y-%m"))
    except runs.RunNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


def decide_lines(state, run_id: str, decisions: list[tuple[str, str, str | None]], actor: str) -> None:
    """Apply decisions, turning the ledger's refusals into 404 / 409."""
    try:
        runs.apply_decisions(state.db, state.counter, run_id, decisions, actor=actor, now=state.now())
    except (runs.RunNotFound, runs.LineNotInRun) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except runs.DecisionRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.post("/v1/acquisition/runs", response_model=RunOut, status_code=status.HTTP_201_CREATED)
def create_run(params: RunIn, principal: StaffCaller, state: State) -> RunOut:
    """Rank the pending online requests into a new run (lines with reasons; a budget-fitting prefix selected)."""
    run_id = state.create_run(
        f"{principal.role}:{principal.subject}",
        period=params.period,
        budget_yuan=params.budget_yuan,
        max_lines=params.max_lines,
    )
    return RunOut(**get_run_or_404(state, run_id))


@router.get("/v1/acquisition/runs", response_model=list[RunSummary])
def list_runs(_principal: StaffCaller, state: State) -> list[RunSummary]:
    """Every run, newest first."""
    return [RunSummary(**r) for r in runs.list_runs(state.db, state.now().strftime("%Y-%m"))]


@router.get("/v1/acquisition/runs/{run_id}", response_model=RunOut)
def get_run(run_id: RunId, _principal: StaffCaller, state: State) -> RunOut:
    """A run's ranked lines with reasons and current decisions."""
    return RunOut(**get_run_or_404(state, run_id))


@router.post("/v1/acquisition/runs/{run_id}/decisions", response_model=RunOut)
def post_decisions(run_id: RunId, body: DecisionsIn, principal: StaffCaller, state: State) -> RunOut:
    """Approve / reject / reset lines, all or nothing. An approval charges the budget at once (409 when a
    budget line has no room or the request moved on)."""
    decide_lines(
        state,
        run_id,
        [(d.request_id, d.decision, d.note) for d in body.decisions],
        f"{principal.role}:{principal.subject}",
    )
    return RunOut(**get_run_or_404(state, run_id))


@router.get(
    "/v1/acquisition/runs/{run_id}/export",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}
    },
)
def export(
    run_id: RunId,
    _principal: StaffCaller,
    state: State,
    format: Annotated[Literal["csv", "xlsx"], Query(description="File format.")] = "csv",
) -> Response:
    """The run as a purchase list file."""
    run = get_run_or_404(state, run_id)
    media = (
        "text/csv; charset=utf-8"
        if format == "csv"
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    return Response(
        runs.export_run(run, format),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="run-{run_id[:8]}.{format}"'},
    )


@router.get("/v1/budgets", response_model=BudgetsOut)
def get_budgets(
    _principal: StaffCaller,
    state: State,
    period: Annotated[str | None, Query(max_length=7, description="Month 'YYYY-MM' (default: this month).")] = None,
) -> BudgetsOut:
    """Budget lines of the month and its year; amount, used and left per district (yuan)."""
    if period is not None and not _PERIOD.match(period):
        raise field_error("query.period", f"must be a month 'YYYY-MM', got '{period}'")
    return BudgetsOut(**runs.budgets(state.db, period or state.now().strftime("%Y-%m")))


@router.get("/v1/reports/collection", response_model=CollectionReport)
def collection(_principal: StaffCaller, state: State) -> CollectionReport:
    """Supply vs demand per CLC top class (shares of copies and loans, turnover, over/under-supplied)."""
    bundle = state.bundle
    if bundle is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model/context loaded")
    return CollectionReport(**runs.collection_report(bundle.context))
