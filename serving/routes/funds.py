"""Staff endpoints for the programme's money: the funds' budget report and the monthly settlement with
the bookstores. Thin: :mod:`acquisition.funds` and :mod:`acquisition.settlement` do the work (both read
only here; posting a settlement and closing a year are CLI commands, audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from acquisition import funds, settlement
from features import bounds
from serving.deps import StaffCaller, State

router = APIRouter(tags=["staff"])


@router.get("/v1/funds", response_model=funds.FundReport)
def get_funds(
    _principal: StaffCaller,
    state: State,
    year: Annotated[
        str | None,
        Query(pattern=r"^(20\d\d|2100)$", description="Programme year 'YYYY', 2000-2100 (default: this year)."),
    ] = None,
) -> funds.FundReport:
    """Planned / encumbered / spent / free (fen) of every fund of the year and of each month of its plan."""
    return funds.budget_report(state.db, year or state.now().strftime("%Y"))


@router.get("/v1/settlements", response_model=settlement.Settlement)
def get_settlement(
    _principal: StaffCaller,
    state: State,
    month: Annotated[
        str,
        Query(pattern=r"^(20\d\d|2100)-(0[1-9]|1[0-2])$", description="Settlement month 'YYYY-MM', 2000-01..2100-12."),
    ],
    bookstore: Annotated[
        str | None, Query(min_length=1, max_length=bounds.ID_MAX, description="One bookstore id (default: all).")
    ] = None,
) -> settlement.Settlement:
    """The month's statement per bookstore (books, list price, discount, due, returns), reconciled with the ledger."""
    return settlement.settlement_report(state.db, state.policy, month, bookstore_id=bookstore)
