"""Request and response bodies of the HTTP API, declared once and reused by the OpenAPI schema.

Counter requests and decisions reuse :class:`acquisition.counter.PurchaseRequestIn` and
:class:`~acquisition.counter.Decision` as they are: the API speaks the acquisition layer's language.
So do round, budget and collection responses (:class:`acquisition.rounds.Round`,
:class:`acquisition.ledger.Budgets`, :class:`acquisition.analytics.CollectionReport`): the services
return them and the routes answer with them, so each shape is declared once.
Money in responses is yuan (two decimals); the database keeps integer fen.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from acquisition.alternatives import Alternative, AlternativesReport, KindCount, Taken
from acquisition.analytics import ClassSupply, CollectionReport, DeadOnArrival, HoldsAlert
from acquisition.burndown import BurnDown, BurnMonth
from acquisition.counter import Decision, PurchaseRequestIn
from acquisition.ledger import BudgetLine, Budgets, DistrictBudget
from acquisition.lifecycle import LineDecision
from acquisition.mediation import MediationOut
from acquisition.placement import BranchDemand, Placement
from acquisition.rounds import Round, RoundLine, RoundStep, RoundSummary, check_period
from acquisition.whatif import WhatIfIn, WhatIfOut
from features import bounds
from features.schema import LocalDateTime, RequestStatus

__all__ = [
    "WhatIfIn",
    "WhatIfOut",
    "Alternative",
    "AlternativeTakenIn",
    "AlternativesReport",
    "KindCount",
    "BranchDemand",
    "MediationAnswerIn",
    "MediationOut",
    "MediationQueueOut",
    "NoticeOut",
    "NoticesOut",
    "Placement",
    "Taken",
    "BooklistDetail",
    "BranchOut",
    "Page",
    "TitleDetail",
    "BooklistOut",
    "BudgetLine",
    "Budgets",
    "ClassSupply",
    "CollectionReport",
    "Decision",
    "DecisionIn",
    "DecisionsIn",
    "DistrictBudget",
    "ErrorBody",
    "EventIn",
    "EventOut",
    "Health",
    "LoginIn",
    "PurchaseRequestIn",
    "PreferencesIn",
    "PreferencesOut",
    "ProfileErasedOut",
    "ReaderDataOut",
    "ReasonOut",
    "RecommendationOut",
    "RecommendationsOut",
    "ReloadIn",
    "ReloadOut",
    "RequestStateOut",
    "RoundIn",
    "RoundTransitionIn",
    "RoundStep",
    "BurnDown",
    "BurnMonth",
    "HoldsAlert",
    "DeadOnArrival",
    "RoundLine",
    "Round",
    "RoundSummary",
    "SimilarOut",
    "TitleOut",
    "TokenOut",
]


T = TypeVar("T")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- errors -----------------------------------------------------------------------------------------


class ErrorItem(_Out):
    field: str = Field(description="Where the problem is: 'body.price', 'query.n', 'path.reader_id', 'header'.")
    reason: str = Field(description="Why it was refused, in words.")


class ErrorBody(_Out):
    """Every 4xx/5xx answer: a machine code, a message and (for bad input) the fields at fault."""

    error: str = Field(description="Machine-readable code, e.g. 'invalid_request', 'forbidden', 'not_found'.")
    message: str
    fields: list[ErrorItem] = Field(default_factory=list)


# --- readers ----------------------------------------------------------------------------------------


class ReasonOut(_Out):
    code: str = Field(description="Reason code (recsys.explain.ReasonCode).")
    text: str = Field(description="The sentence shown to the reader.")
    ref: str | None = Field(None, description="Evidence id: a title, booklist or branch id.")


class RecommendationOut(_Out):
    title_id: str
    title: str
    author: str
    clc_class: str
    score: float = Field(description="Relevance after promotion; comparable within one list only.")
    reasons: list[ReasonOut]
    available_at: list[str] = Field(description="Branches with an on-shelf copy, the reader's branch first.")
    available_names: list[str] = Field(
        default_factory=list,
        description="Names of the available_at branches, same order, in the language asked for (Accept-Language).",
    )
    delivery: bool = Field(description="Home delivery can bring it.")
    expected_wait_days: float | None = Field(
        None, description="Expected days until the reader can have it (0 = now); null when not computed."
    )
    readers_waiting: int | None = Field(None, description="Holds waiting ahead of the reader; null when not computed.")


class RecommendationsOut(_Out):
    reader_id: str
    model_version: str
    cold_start: bool = Field(
        description="No history is used for this list (popular titles shown): the model knows none, or the "
        "reader turned personalisation off."
    )
    registered: bool | None = Field(
        None,
        description="The card is in the library's reader table (false: a mistyped or unknown card, which gets "
        "a cold-start list; null: the data has no reader table).",
    )
    personalised: bool = Field(True, description="The reader's history was used (off: stored preference or query).")
    promotion: bool
    items: list[RecommendationOut]
    limitations: list[ReasonOut] = Field(
        default_factory=list,
        description="What could not be checked because the library's data lacks a table (code, sentence): "
        "e.g. no_holdings when there is no copies table (availability not checked).",
    )


class PreferencesIn(_In):
    """What the reader chose (PIPL Art. 24: refusing personalised recommendation must be easy)."""

    personalised: bool = Field(description="False: never use my reading history (service, batch lists, analytics).")
    promotion: bool = Field(True, description="False: no reading-promotion boosts in my lists.")


class PreferencesOut(_Out):
    reader_id: str
    personalised: bool
    promotion: bool
    updated_at: datetime | None = Field(description="When the reader last chose (null: never, the defaults).")


class ReaderDataOut(_Out):
    """Everything the library holds about a reader's reading (PIPL Art. 45), as JSON."""

    reader_id: str
    loans: list[dict[str, Any]] = Field(
        description="Loans from the library's records; after an erasure the kept ones, pseudonymised, are "
        "marked pseudonymised: true."
    )
    holds: list[dict[str, Any]]
    ebook_events: list[dict[str, Any]]
    live_events: list[str] = Field(description="Titles recorded by the service since the model was built.")
    requests: list[dict[str, Any]] = Field(description="Purchase requests (you choose, I buy).")
    notices: list[dict[str, Any]] = Field(
        default_factory=list, description="Notices of the requests' status changes (zh-CN), newest first."
    )
    preferences: PreferencesOut
    excluded_from_training: bool = Field(description="The profile was erased: the next model leaves you out.")
    audit: list[dict[str, Any]] = Field(description="Earlier exports and erasures (who, when).")


class ProfileErasedOut(_Out):
    reader_id: str
    live_events_dropped: int
    excluded_from_training: bool = True
    loans_kept: int = Field(
        description="Loan records the library must keep: pseudonymised, never used for recommendation again."
    )


class EventIn(_In):
    title_id: str = Field(min_length=1, max_length=bounds.ID_MAX, description="Title borrowed, returned or downloaded.")
    kind: Literal["loan", "return", "ebook_download", "ebook_read"] = "loan"


class EventOut(_Out):
    recorded: bool
    reader_id: str
    title_id: str


class TitleOut(_Out):
    title_id: str
    title: str
    author: str
    clc_class: str
    score: float | None = None


class Page(_Out, Generic[T]):
    """A page of a list: ``items`` from ``offset``, at most ``limit`` of ``total``."""

    items: list[T]
    total: int = Field(description="Items in the whole list.")
    offset: int
    limit: int


class BranchOut(_Out):
    branch_id: str = Field(description="The code used in available_at (e.g. 'O-0022').")
    name: str = Field(
        description="The branch's name in the language asked for (Accept-Language: zh-CN, the default, or en): "
        "the data's own name in its language, derived from the kind and district in the other."
    )
    district: str
    delivers: bool = Field(description="Home delivery from this branch.")


class TitleDetail(_Out):
    title_id: str
    title: str
    author: str
    clc_class: str
    clc_name: str = Field(description="CLC top class in the language asked for (Accept-Language).")
    isbn13: str | None = None
    ebook: bool
    available_at: list[str] = Field(description="Branches with an on-shelf copy now.")
    available_names: list[str] = Field(
        default_factory=list, description="Names of the available_at branches, same order (Accept-Language)."
    )
    popularity: float = Field(description="Loans and e-book events over the history.")


class SimilarOut(_Out):
    title_id: str
    model_version: str
    items: list[TitleOut]


class BooklistOut(_Out):
    booklist_id: str
    name: str
    theme: str
    starts_on: date | None
    ends_on: date | None
    active: bool = Field(description="Promoted today.")
    n_titles: int


class BooklistDetail(BooklistOut):
    titles: list[TitleOut]


# --- counter ----------------------------------------------------------------------------------------


class RequestStateOut(_Out):
    request_id: str
    status: RequestStatus = Field(description="Status after the operation: checked_out or cancelled.")


# --- staff ------------------------------------------------------------------------------------------


class RoundIn(_In):
    """Options of a new acquisition round."""

    period: str | None = Field(
        None,
        pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
        description="Budget month 'YYYY-MM' (2000-01..2100-12) whose lines approvals draw on (default: this month).",
    )
    budget_yuan: float | None = Field(
        None,
        ge=0.01,
        le=1e9,
        allow_inf_nan=False,
        description="Money to spend in this round, yuan (default: what the month has left).",
    )
    max_lines: int = Field(500, ge=1, le=10_000, description="Pending requests ranked at most.")
    fund_id: str | None = Field(
        None,
        min_length=1,
        max_length=bounds.ID_MAX,
        description="A fund of the month's year (GET /v1/funds): the budget must fit what it has free.",
    )

    @field_validator("period")
    @classmethod
    def _period_in_range(cls, period: str | None) -> str | None:
        if period is not None:
            check_period(period)  # year 0000 and the like: a 422 naming body.period, not a 500 later
        return period


class RoundTransitionIn(_In):
    """A lifecycle move of a round: submit for approval, approve, return (send back), close."""

    action: Literal["submit", "approve", "return", "close"]
    note: str | None = Field(None, max_length=bounds.NOTE_MAX, description="Why (kept with who and when).")


class DecisionIn(_In):
    request_id: str = Field(min_length=1, max_length=40)
    decision: LineDecision
    note: str | None = Field(None, max_length=bounds.NOTE_MAX)


class DecisionsIn(_In):
    decisions: list[DecisionIn] = Field(min_length=1, max_length=1000)


# --- auth and operations ----------------------------------------------------------------------------


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=bounds.LOGIN_MAX)
    password: str = Field(min_length=1, max_length=bounds.PASSWORD_MAX)


class TokenOut(_Out):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    role: str
    expires_in: int = Field(description="Seconds.")


class Health(_Out):
    status: str
    model_loaded: bool = False
    model_version: str | None = None
    database: bool = False
    detail: dict[str, str] = Field(default_factory=dict)


class ReloadIn(_In):
    model_dir: str | None = Field(
        None, max_length=1000, description="Serve this model directory (default: the configured source)."
    )


class ReloadOut(_Out):
    reloaded: bool
    model_version: str
    previous_version: str | None = None
    reason: str | None = Field(None, description="Why the reload failed (the old model keeps serving).")
    seconds: float


# --- issue 15 §3 and §5: alternatives taken, mediation, notices, placement ---------------------------------


class AlternativeTakenIn(_In):
    kind: Literal["hold", "transfer", "delivery", "ebook", "queue"] = Field(
        description="The way the reader took (one of those the decision offered)."
    )


class MediationAnswerIn(_In):
    decision: Literal["approve", "decline"] = Field(
        description="approve: the held price is encumbered; decline: it is released."
    )
    note: str | None = Field(None, max_length=bounds.NOTE_MAX, description="Staff's note (kept with the answer).")


class MediationQueueOut(_Out):
    as_of: LocalDateTime = Field(description="Server time the overdue flags are computed at.")
    overdue: int = Field(ge=0, description="Mediations unanswered past their promised answer time.")
    items: list[MediationOut]


class NoticeOut(_Out):
    notice_id: int
    request_id: str
    status: str = Field(description="The request's status the notice announces.")
    created_at: LocalDateTime
    delivered_at: LocalDateTime | None = Field(None, description="When the channel took it; null while queued.")
    text: str = Field(description="The notice in the language asked for (Accept-Language, zh-CN by default).")


class NoticesOut(_Out):
    reader_id: str
    items: list[NoticeOut]
