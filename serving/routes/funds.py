"""Staff endpoints for the programme's money: the funds' budget report and the monthly settlement with
the bookstores. Thin: :mod:`acquisition.funds` and :mod:`acquisition.settlement` do the work (both read
only here; posting a settlement and closing a year are CLI commands, audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from acquisition import funds, settlement
from serving.deps import StaffCaller, State

router = APIRouter(tags=["staff"])


@router.get("/v1/funds", response_model=funds.FundReport)
def get_funds(
    _principal: StaffCaller,
    state: State,
    year: Annotated[str | None, Query(max_length=4, description="Programme year 'YYYY' (default: this year).")] = None,
) -> funds.FundReport:
    """Planned / encumbered / spent / free (fen) of every fund of the year and of each month of its plan."""
    return funds.budget_report(state.db, year or state.now().strftime("%Y"))


@router.get("/v1/settlements", response_model=settlement.Settlement)
def get_settlement(
    _principal: StaffCaller,
    state: State,
    month: Annotated[str, Query(max_length=7, description="Settlement month 'YYYY-MM'.")],
    bookstore: Annotated[str | None, Query(max_length=64, description="One bookstore id (default: all).")] = None,
) -> settlement.Settlement:
    """The month's statement per bookstore (books, list price, discount, due, returns), reconciled with the ledger."""
    return settlement.settlement_report(state.db, state.policy, month, bookstore_id=bookstore)
