"""Staff endpoints for the programme's own figures and the what-if replay (issue 15 §4). Thin:
:mod:`acquisition.whatif` and :mod:`acquisition.programme_figures` do the work; both only read.

``POST /v1/acquisition/whatif`` replays last year's requests of the served data directory on arrival
under the policy in force and under the policy in force with the body's changes, side by side. It
needs the data's ``truth/`` (loans served are scored at the synthetic city's truth) and takes seconds
on a small city (the year is prepared once and kept in memory).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from acquisition.programme_figures import ProgrammeFigures, programme_figures
from acquisition.whatif import WhatIfIn, WhatIfOut, whatif
from features.errors import NotFound
from serving.deps import StaffCaller, State

router = APIRouter(tags=["staff"])


@router.post("/v1/acquisition/whatif", response_model=WhatIfOut)
def post_whatif(body: WhatIfIn, _principal: StaffCaller, state: State) -> WhatIfOut:
    """Replay last year's requests under the policy in force and under it with these changes."""
    base = state.policy
    change = body.model_dump(exclude_none=True, exclude={"pacing", "budget_yuan"})
    if "excluded_categories" in change:
        change["excluded_categories"] = tuple(change["excluded_categories"])
    if body.pacing is not None:
        change["pacing"] = base.pacing.model_copy(update={"policy": body.pacing})
    proposed = base.model_validate({**base.model_dump(), **change})
    try:
        report = whatif(state.settings.data_dir, proposed, base, budget=body.budget_yuan)
    except FileNotFoundError as err:
        raise NotFound(f"the what-if needs last year's requests and the truth's loans: {err}") from err
    return WhatIfOut(**report)


@router.get("/v1/reports/programme", response_model=ProgrammeFigures)
def get_programme(
    _principal: StaffCaller,
    state: State,
    window_days: Annotated[int, Query(ge=1, le=3650, description="Requests of this many days, days.")] = 365,
    months: Annotated[int, Query(ge=1, le=60, description="Circulation follow-up after acquisition, months.")] = 12,
) -> ProgrammeFigures:
    """Reader-chosen vs regular circulation (matched), dead on arrival, requesters served, equity."""
    try:
        return programme_figures(state.settings.data_dir, window_days=window_days, months=months)
    except FileNotFoundError as err:
        raise NotFound(f"the programme figures need the data directory's tables: {err}") from err
