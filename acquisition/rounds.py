"""Acquisition rounds (采购批次): online requests ranked against a budget for staff approval.

A round is created from the pending online requests of the ledger (:func:`create_round`), read
(:func:`list_rounds`, :func:`get_round`) and decided line by line (:func:`apply_decisions`). These
functions take a :class:`~acquisition.db.Database` (or a session) and know nothing of HTTP; the staff
routes, the ``/staff`` pages and the CLI are a thin skin on them. They return typed objects
(:class:`Round`, :class:`RoundSummary`, :class:`RoundLine`: frozen pydantic models that the HTTP
API returns as they are).

Money: an approved line is CHARGED at once (:func:`acquisition.ledger.charge`) on every applicable
budget line of the round's month (the month's district/bookstore lines and the year line, exactly the
lines a counter request would draw on), with the same conditional UPDATE the counter uses, so staff
approvals and counter sales share one ledger and can never overspend it together. Un-approving (reject
or back to pending) gives exactly that money back (:func:`acquisition.ledger.refund`). A set of
decisions is one transaction: if one approval does not fit, none is applied and the error names the
line and the budget. Status changes go through :mod:`acquisition.lifecycle`.

Ranking: :func:`acquisition.ranking.rank_requests` (predicted loans x collection-gap multiplier, MILP
selection within the budget, eligibility re-checked) over the pending online requests. When the data
directory cannot feed it (no loan history) or it fails, :func:`acquisition.ranking.rank_pending` ranks
by a transparent demand per yuan; the round's ``ranker`` says which one ranked it (and why).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_serializer
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from acquisition import funds, ledger
from acquisition.analytics import class_demand
from acquisition.audit import record_many
from acquisition.db import (
    AcquisitionRoundRow,
    BookstoreRow,
    BudgetLineRow,
    Database,
    PurchaseRequestRow,
    ReaderRow,
    RoundLineRow,
    StaffDecisionRow,
)
from acquisition.errors import (
    DecisionRefused,
    FundRefused,
    InvalidPeriod,
    InvalidTransition,
    LineNotInRound,
    PeriodWithoutBudget,
    RoundNotFound,
)
from acquisition.lifecycle import (
    DECISION_TARGET,
    REQUESTS,
    ROUND_ACTIONS,
    ROUND_OPEN,
    ROUNDS,
    LineDecision,
    RoundStatus,
)
from acquisition.policy import Policy, yuan_to_fen
from acquisition.ranking import RankingParams, RankingResult, rank_pending, rank_requests
from features.privacy import pseudonymise
from features.schema import LocalDateTime, RequestStatus
from recsys.context import LibraryContext

_log = logging.getLogger(__name__)

#: The ``ranker`` of a round ranked by :func:`acquisition.ranking.rank_pending`.
FALLBACK_RANKER = "demand-per-yuan (fallback)"
#: The ``ranker`` of a round ranked by :func:`acquisition.ranking.rank_requests`.
MODEL_RANKER = "acquisition.ranking (milp)"
#: The budget months a round may name, inclusive (anything else is a typo, or year 0 that no
#: datetime can hold).
PERIOD_RANGE = ("2000-01", "2100-12")


def check_period(period: str) -> datetime:
    """The first day of budget month ``period`` (``'YYYY-MM'`` within :data:`PERIOD_RANGE`), or
    :class:`InvalidPeriod` saying why not."""
    lo, hi = PERIOD_RANGE
    if not (len(period) == 7 and period[4] == "-" and period[:4].isdigit() and period[5:].isdigit()):
        raise InvalidPeriod(f"period: must be a month 'YYYY-MM', got '{period}'")
    if not (lo <= period <= hi) or not 1 <= int(period[5:]) <= 12:
        raise InvalidPeriod(f"period: must be a month between {lo} and {hi}, got '{period}'")
    return datetime(int(period[:4]), int(period[5:]), 1)


def _require_budget(s: Session, period: str) -> None:
    """Refuse a round for a month that no budget line (the month's or its year's) covers."""
    n = s.scalar(select(func.count()).select_from(BudgetLineRow).where(BudgetLineRow.period.in_((period, period[:4]))))
    if not n:
        raise PeriodWithoutBudget(f"period {period}: no budget line covers this month or its year; load budgets first")


def fund_choices(db: Database, period: str) -> list[funds.FundRow]:
    """The funds a round for ``period`` may name: the year lines of its programme year (the rows of
    ``GET /v1/funds`` whose period is the year)."""
    year = period[:4]
    return [r for r in funds.budget_report(db, year).rows if r.period == year]


def fund_free_fen(db: Database, fund_id: str, period: str) -> int:
    """What fund ``fund_id`` has free for month ``period``, fen (>= 0): the least of its year row's and,
    when its plan has the month, that month row's ``free_fen`` and ``room_fen`` (``GET /v1/funds``)."""
    year = period[:4]
    rows = funds.budget_report(db, year).rows
    fund = next((r for r in rows if r.fund_id == fund_id and r.period == year), None)
    if fund is None:
        known = ", ".join(r.fund_id for r in rows if r.period == year) or "none"
        raise FundRefused(f"fund {fund_id!r}: not a fund of programme year {year} (funds: {known})")
    scoped = [fund, *(r for r in rows if r.parent_id == fund_id and r.period == period)]
    return max(0, min(min(r.free_fen, r.room_fen) for r in scoped))


class RoundLine(BaseModel):
    """One ranked request of a round, joined with the request it ranks."""

    model_config = ConfigDict(frozen=True)

    rank: int
    request_id: str
    isbn: str
    title: str | None
    author: str | None = None
    publisher: str | None = None
    clc_class: str | None
    bookstore_id: str
    requester: str = Field("", description="The requesting reader's pseudonym (never the card id).")
    requested_at: LocalDateTime | None = Field(None, description="When the request was made (server clock).")
    district: str | None
    price: float = Field(description="Yuan.")
    selected: bool = Field(description="Recommended for purchase by the ranking.")
    predicted_loans: float | None
    value: float | None
    reasons: list[str]
    reason_codes: list[str] = Field(
        description="Failed programme rules (empty = eligible; only eligible lines can be approved)."
    )
    decision: LineDecision
    decided_by: str | None
    request_status: RequestStatus


class RoundStep(BaseModel):
    """One lifecycle move of a round: to which status, by whom, when, with the note given."""

    model_config = ConfigDict(frozen=True)

    status: RoundStatus
    by: str
    at: datetime = Field(description="RFC 3339 in JSON: the service's local time with its offset.")
    note: str | None = None

    @field_serializer("at", when_used="json")
    def _with_offset(self, at: datetime) -> str:
        return (at if at.tzinfo is not None else at.astimezone()).isoformat()


class RoundSummary(BaseModel):
    """A round with its line, selected and approved counts."""

    model_config = ConfigDict(frozen=True)

    round_id: str
    created_by: str
    created_at: datetime = Field(description="RFC 3339 in JSON: the service's local time with its offset.")
    status: RoundStatus
    period: str = Field(description="Budget month 'YYYY-MM' whose lines approvals draw on.")
    n_lines: int
    n_selected: int
    n_approved: int
    fund_id: str | None = Field(
        None, description="The fund the round's budget was checked against (None: none chosen)."
    )
    history: list[RoundStep] = Field(
        default_factory=list,
        description="Every lifecycle move after creation (submitted, approved, ...), oldest first.",
    )

    @field_serializer("created_at", when_used="json")
    def _with_offset(self, at: datetime) -> str:
        """The database keeps naive local time; JSON says its offset (a date-time without one is not RFC 3339)."""
        return (at if at.tzinfo is not None else at.astimezone()).isoformat()


class Round(RoundSummary):
    """A round and its lines in rank order."""

    ranker: str = Field(description="Which ranking produced the round.")
    lines: list[RoundLine]


@dataclass(frozen=True)
class StaffDecision:
    """A staff member's decision on one line."""

    request_id: str
    decision: LineDecision
    note: str | None = None


# --- creating a round ---------------------------------------------------------------------------------

#: Columns of the pending requests a round ranks.
_REQUEST_COLUMNS = {
    "request_id": pl.String,
    "reader_id": pl.String,
    "bookstore_id": pl.String,
    "isbn": pl.String,
    "isbn13": pl.String,
    "title": pl.String,
    "author": pl.String,
    "publisher": pl.String,
    "pub_year": pl.Int16,
    "clc_class": pl.String,
    "category": pl.String,
    "price_fen": pl.Int64,
    "requested_at": pl.Datetime("us"),
    "channel": pl.String,
    "status": pl.String,
}


def create_round(
    db: Database,
    policy: Policy,
    context: LibraryContext | None,
    *,
    created_by: str,
    now: datetime,
    data_dir: Path | None = None,
    period: str | None = None,
    budget_yuan: float | None = None,
    max_lines: int = 500,
    fund_id: str | None = None,
) -> str:
    """Rank the pending online requests into a new round; returns the round id.

    ``budget_yuan`` defaults to what the month's district lines (else the year line) have left, and
    never to more than ``fund_id`` has free (:func:`fund_free_fen`). Raises :class:`InvalidPeriod`
    (not a month in :data:`PERIOD_RANGE`), :class:`PeriodWithoutBudget` (no budget line covers the
    month or its year) or :class:`FundRefused` (no such fund, or a budget above what it has free).
    """
    period = period or now.strftime("%Y-%m")
    check_period(period)
    free_fen = fund_free_fen(db, fund_id, period) if fund_id else None
    with db.session_scope() as s:
        _require_budget(s, period)
        frame = _pending_online(s, max_lines)
        budget_fen = yuan_to_fen(budget_yuan) if budget_yuan is not None else ledger.left_fen(s, period)
        district_fen = ledger.district_left_fen(s, period)
    if free_fen is not None and budget_yuan is not None and budget_fen > free_fen:
        raise FundRefused(
            f"budget {budget_fen / 100:.2f} yuan is above what fund {fund_id} has free for {period}: "
            f"{free_fen / 100:.2f} yuan"
        )
    budget_fen = budget_fen if free_fen is None else min(budget_fen, free_fen)
    result, fallback = _rank_with_model(frame, data_dir, policy, budget_fen, now, district_fen)
    params = {"period": period, "budget_fen": budget_fen, "max_lines": max_lines, "fund_id": fund_id}
    with db.session_scope(write=True) as s:
        if result is not None:
            ranker = MODEL_RANKER
            save_round(s, result, created_by=created_by, now=now, params={**params, "ranker": ranker})
            round_id, n_lines = result.round_id, result.lines.height
        else:
            ranker = FALLBACK_RANKER + (f" — {fallback}" if fallback else "")
            round_id = _save_fallback(s, frame, budget_fen, context, created_by, now, {**params, "ranker": ranker})
            n_lines = frame.height
    _log.info("round %s: %d lines ranked by %s, budget %d fen", round_id, n_lines, ranker, budget_fen)
    return round_id


def _pending_online(s: Session, max_lines: int) -> pl.DataFrame:
    """The oldest ``max_lines`` pending online requests of the ledger."""
    pr = PurchaseRequestRow
    rows = s.execute(
        select(*(getattr(pr, c) for c in _REQUEST_COLUMNS))
        .where(pr.status == RequestStatus.PENDING.value, pr.channel == "online")
        .order_by(pr.requested_at, pr.request_id)
        .limit(max_lines)
    ).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=_REQUEST_COLUMNS, orient="row")


def _rank_with_model(
    frame: pl.DataFrame,
    data_dir: Path | None,
    policy: Policy,
    budget_fen: int,
    now: datetime,
    district_fen: dict[str, int] | None = None,
) -> tuple[RankingResult | None, str | None]:
    """:func:`rank_requests` over ledger rows, or ``(None, why not)`` when the fallback must rank."""
    if not frame.height:
        return None, None
    if data_dir is None or not (Path(data_dir) / "loans.parquet").exists():
        return None, "no loan history in the data directory"
    requests = frame.select(pl.exclude("isbn13", "price_fen"), (pl.col("price_fen") / 100).alias("price")).with_columns(
        pl.col("category").fill_null("general")
    )
    try:
        # each district's selection fits what its month line has left (approvals charge those lines)
        districts = {d: fen / 100 for d, fen in (district_fen or {}).items()}
        params = RankingParams(method="milp", district_budget=districts)
        result = rank_requests(requests, Path(data_dir), policy, budget_fen / 100, params, as_of=now)
    except Exception as exc:  # noqa: BLE001 - the staff still get a ranked round, and are told why
        fallback = f"{type(exc).__name__}: {exc}"
        _log.warning("model ranking failed, using the fallback ranking: %s", fallback)
        return None, fallback
    return result, None


def _save_fallback(
    s: Session,
    frame: pl.DataFrame,
    budget_fen: int,
    context: LibraryContext | None,
    created_by: str,
    now: datetime,
    params: dict[str, Any],
) -> str:
    ranked = rank_pending(
        frame.select("request_id", "reader_id", "isbn13", "clc_class", "price_fen"), budget_fen, class_demand(context)
    )
    round_id = uuid.uuid4().hex
    details = {"lines": frame.height, "selected": None, "budget_fen": budget_fen, "ranker": params["ranker"]}
    ROUNDS.start(round_id, RoundStatus.DRAFT, "create", actor=created_by, at=now, details=details, session=s)
    s.add(
        AcquisitionRoundRow(
            round_id=round_id, created_by=created_by, created_at=now, params=params, status=RoundStatus.DRAFT.value
        )
    )
    s.flush()
    if ranked.height:
        s.execute(
            RoundLineRow.__table__.insert(),
            [
                {
                    "round_id": round_id,
                    "request_id": r["request_id"],
                    "rank": r["rank"],
                    "selected": r["selected"],
                    "predicted_loans": None,
                    "value": r["value"],
                    "reasons": {"codes": [], "text": r["reasons"], "requester_count": r["requesters"]},
                    "decision": LineDecision.PENDING.value,
                }
                for r in ranked.iter_rows(named=True)
            ],
        )
    return round_id


def save_round(
    session: Session,
    result: RankingResult,
    created_by: str = "ranking",
    now: datetime | None = None,
    *,
    params: dict[str, Any] | None = None,
) -> int:
    """Persist a ranking as a round (``acquisition_rounds``, ``round_lines``); returns the lines written.

    Request lines not yet in ``purchase_requests`` (online requests usually are; a ranking read from a
    data directory is not) are registered first as ``pending`` with their eligibility. The round's
    creation and every registered request are audited. ``params`` are added to the round's params.
    """
    now = now or datetime.now()
    _register_missing_requests(session, result, now, created_by)
    summary = result.summary()
    details = {
        "lines": result.lines.height,
        "selected": int(result.lines["selected"].sum()) if result.lines.height else 0,
        "budget_fen": yuan_to_fen(result.budget),
        "ranker": (params or {}).get("ranker", MODEL_RANKER),
    }
    ROUNDS.start(
        result.round_id, RoundStatus.DRAFT, "create", actor=created_by, at=now, details=details, session=session
    )
    session.add(
        AcquisitionRoundRow(
            round_id=result.round_id,
            created_by=created_by,
            created_at=now,  # the service clock, as the round's id and its audit row (not the ranking's wall clock)
            params={"budget": result.budget, **_jsonable(result.params), "summary": summary, **(params or {})},
            status=RoundStatus.DRAFT.value,
        )
    )
    session.flush()
    rows = result.lines.select(
        pl.lit(result.round_id).alias("round_id"),
        "request_id",
        "rank",
        "selected",
        pl.col("predicted_loans").fill_nan(None),
        "value",
        pl.struct(
            pl.col("reason_codes").alias("codes"),
            pl.col("reasons").alias("text"),
            "gap_multiplier",
            "requester_count",
            # the figures behind the sentence, so staff can check them
            *[
                pl.col(c).fill_nan(None)
                for c in ("predicted_intents", "loans_lo", "loans_hi", "capacity", "expected_queue")
            ],
        ).alias("reasons"),
        pl.lit(LineDecision.PENDING.value).alias("decision"),
    ).to_dicts()
    if rows:
        session.execute(insert(RoundLineRow), rows)
    return len(rows)


def _register_missing_requests(session: Session, result: RankingResult, now: datetime, actor: str) -> None:
    ids = result.lines["request_id"].to_list()
    known = set(session.scalars(select(PurchaseRequestRow.request_id).where(PurchaseRequestRow.request_id.in_(ids))))
    if result.requests is None or len(known) >= len(ids):
        return
    cols = result.requests.columns
    missing = (
        result.requests.filter(~pl.col("request_id").is_in(list(known)))
        .join(result.lines.select("request_id", "isbn13", "eligible", "reason_codes", "reasons"), on="request_id")
        .select(
            "request_id",
            pl.format("round:{}", pl.col("request_id")).alias("idempotency_key"),
            "reader_id",
            "bookstore_id",
            "isbn",
            "isbn13",
            *[pl.col(c) for c in ("title", "author", "publisher", "clc_class") if c in cols],
            *[pl.col("pub_year").cast(pl.Int64)] if "pub_year" in cols else [],
            "category",
            pl.col("price").map_elements(yuan_to_fen, return_dtype=pl.Int64).alias("price_fen"),
            "channel",
            "requested_at",
            pl.lit(RequestStatus.PENDING.value).alias("status"),
            "eligible",
            "reason_codes",
            pl.col("reasons").alias("message"),
            pl.lit(now).alias("decided_at"),
            pl.lit(now).alias("updated_at"),
        )
    )
    if missing.height:
        rows = missing.to_dicts()
        audit: list[dict[str, Any]] = []
        for r in rows:
            details = {
                "price_fen": r["price_fen"],
                "isbn13": r["isbn13"],
                "reason_codes": list(r["reason_codes"] or []),
            }
            REQUESTS.start(
                r["request_id"], RequestStatus.PENDING, "register", actor=actor, at=now, details=details, audit=audit
            )
        session.execute(insert(PurchaseRequestRow), rows)
        record_many(session, audit)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# --- reading ------------------------------------------------------------------------------------------


def _reason_texts(reasons: dict | None) -> list[str]:
    """Reason sentences of a round line (a list, or one string as :func:`save_round` stores)."""
    text = (reasons or {}).get("text", [])
    return [text] if isinstance(text, str) else [str(t) for t in text]


def list_rounds(db: Database, default_period: str = "") -> list[RoundSummary]:
    """Every round, newest first, with line, selected and approved counts."""
    with db.session_scope() as s:
        rows = s.scalars(select(AcquisitionRoundRow).order_by(AcquisitionRoundRow.created_at.desc())).all()
        counts = s.execute(select(RoundLineRow.round_id, RoundLineRow.selected, RoundLineRow.decision)).all()
    c = pl.DataFrame(
        [tuple(r) for r in counts],
        schema={"round_id": pl.String, "selected": pl.Boolean, "decision": pl.String},
        orient="row",
    )
    agg = {
        r["round_id"]: (r["n"], r["sel"], r["app"])
        for r in c.group_by("round_id")
        .agg(
            pl.len().alias("n"),
            pl.col("selected").sum().alias("sel"),
            (pl.col("decision") == LineDecision.APPROVE.value).sum().alias("app"),
        )
        .iter_rows(named=True)
    }
    return [_summary(r, *agg.get(r.round_id, (0, 0, 0)), default_period=default_period) for r in rows]


def _summary(row: AcquisitionRoundRow, n: int, sel: int, app: int, *, default_period: str = "") -> RoundSummary:
    return RoundSummary(
        round_id=row.round_id,
        created_by=row.created_by,
        created_at=row.created_at,
        status=RoundStatus(row.status),
        period=_period(row, default_period),
        n_lines=int(n),
        n_selected=int(sel),
        n_approved=int(app),
        fund_id=(row.params or {}).get("fund_id"),
        history=[
            RoundStep(**{**h, "at": datetime.fromisoformat(h["at"])}) for h in (row.params or {}).get("history", [])
        ],
    )


def _period(row: AcquisitionRoundRow, default: str) -> str:
    return str((row.params or {}).get("period") or default)


def get_round(db: Database, round_id: str, district_of: str = "bookstore", default_period: str = "") -> Round:
    """A round with its lines in rank order (joined with the requests they rank). ``default_period``
    is the budget month of rounds that do not name one (rounds saved by other tools); ``district_of``
    is the policy's ``budget_district_of``."""
    with db.session_scope() as s:
        row = s.get(AcquisitionRoundRow, round_id)
        if row is None:
            raise RoundNotFound(f"acquisition round {round_id}: not found")
        district = BookstoreRow.district if district_of == "bookstore" else ReaderRow.district
        rows = s.execute(
            select(RoundLineRow, PurchaseRequestRow, district)
            .join(PurchaseRequestRow, PurchaseRequestRow.request_id == RoundLineRow.request_id)
            .outerjoin(BookstoreRow, BookstoreRow.bookstore_id == PurchaseRequestRow.bookstore_id)
            .outerjoin(ReaderRow, ReaderRow.reader_id == PurchaseRequestRow.reader_id)
            .where(RoundLineRow.round_id == round_id)
            .order_by(RoundLineRow.rank)
        ).all()
    lines = [_line(line, req, dist) for line, req, dist in rows]
    n_app = sum(x.decision == LineDecision.APPROVE for x in lines)
    summary = _summary(row, len(lines), sum(x.selected for x in lines), n_app, default_period=default_period)
    return Round(**dict(summary), ranker=str((row.params or {}).get("ranker", "")), lines=lines)


def _line(line: RoundLineRow, req: PurchaseRequestRow, district: str | None) -> RoundLine:
    return RoundLine(
        rank=line.rank,
        request_id=req.request_id,
        isbn=req.isbn,
        title=req.title,
        author=req.author,
        publisher=req.publisher,
        clc_class=req.clc_class,
        bookstore_id=req.bookstore_id,
        requester=pseudonymise(req.reader_id),
        requested_at=req.requested_at,
        district=district,
        price=req.price_fen / 100,
        selected=line.selected,
        predicted_loans=line.predicted_loans,
        value=line.value,
        reasons=_reason_texts(line.reasons),
        reason_codes=list((line.reasons or {}).get("codes") or []),
        decision=LineDecision(line.decision),
        decided_by=line.decided_by,
        request_status=RequestStatus(req.status),
    )


# --- deciding -----------------------------------------------------------------------------------------


def apply_decisions(
    db: Database,
    policy: Policy,
    round_id: str,
    decisions: Sequence[StaffDecision],
    *,
    actor: str,
    now: datetime,
) -> int:
    """Apply staff decisions to a round's lines; returns how many lines changed.

    All or nothing (one write transaction). Raises :class:`RoundNotFound`, :class:`LineNotInRound`,
    or :class:`DecisionRefused` (request no longer open to staff, ineligible, or a budget line
    without room: the message names the budget line).
    """
    changed = 0
    with db.session_scope(write=True) as s:
        # locked: a concurrent submit waits for these decisions, or they see it and are refused
        row = s.get(AcquisitionRoundRow, round_id, with_for_update=True)
        if row is None:
            raise RoundNotFound(f"acquisition round {round_id}: not found")
        if RoundStatus(row.status) not in ROUND_OPEN:
            raise DecisionRefused(
                f"acquisition round {round_id} is '{row.status}': its decisions are frozen"
                + (" (send it back to change them)" if row.status == RoundStatus.SUBMITTED else "")
            )
        period = _period(row, now.strftime("%Y-%m"))
        for d in decisions:
            if _decide_line(s, policy, round_id, period, d, actor=actor, now=now):
                changed += 1
        if changed:
            ROUNDS.move(s, row, RoundStatus.REVIEWED, "review", actor=actor, at=now, details={"changed": changed})
    _log.info("round %s: %d decisions applied by %s", round_id, changed, actor)
    return changed


def _decide_line(
    s: Session, policy: Policy, round_id: str, period: str, d: StaffDecision, *, actor: str, now: datetime
) -> bool:
    """Apply one decision inside the round's transaction; False when the line already has it."""
    decision = LineDecision(d.decision)
    line = s.scalar(
        select(RoundLineRow)
        .where(RoundLineRow.round_id == round_id, RoundLineRow.request_id == d.request_id)
        .with_for_update()
    )
    if line is None:
        raise LineNotInRound(f"request {d.request_id} is not a line of round {round_id}")
    if line.decision == decision:
        return False
    req = s.get(PurchaseRequestRow, d.request_id, with_for_update=True)
    audit: list[dict[str, Any]] = []
    if req.status == RequestStatus.APPROVED and decision != LineDecision.APPROVE:
        # keyed on the REQUEST being approved, not on this line's old decision: a request that is a
        # line of two rounds may have been approved in the other one, and its money must come back
        ledger.refund(s, req.request_id, at=now, actor=actor, audit=audit)
    if decision == LineDecision.APPROVE:
        _approve(s, policy, req, line, period, actor=actor, now=now, audit=audit)
    else:
        _move_request(s, req, DECISION_TARGET[decision], decision.value, actor=actor, now=now, audit=audit)
    record_many(s, audit)
    line.decision, line.decided_by, line.decided_at = decision.value, actor, now
    s.add(
        StaffDecisionRow(
            round_id=round_id,
            request_id=d.request_id,
            decision=decision.value,
            decided_by=actor,
            decided_at=now,
            note=d.note,
        )
    )
    return True


def _approve(
    s: Session,
    policy: Policy,
    req: PurchaseRequestRow,
    line: RoundLineRow,
    period: str,
    *,
    actor: str,
    now: datetime,
    audit: list[dict[str, Any]],
) -> None:
    """Charge an eligible line's price on the round month's lines and move its request to approved."""
    codes = list((line.reasons or {}).get("codes") or [])
    if codes:
        raise DecisionRefused(f"request {req.request_id} is not eligible ({', '.join(codes)}); it cannot be approved")
    if not REQUESTS.allowed(req.status, RequestStatus.APPROVED):
        raise DecisionRefused(f"request {req.request_id} is '{req.status}'; only pending requests can be approved")
    bookstore = s.get(BookstoreRow, req.bookstore_id)
    reader = s.get(ReaderRow, req.reader_id)
    district = ledger.budget_district(
        policy, bookstore.district if bookstore else None, reader.district if reader else None
    )
    lines = ledger.applicable_lines(s, check_period(period), req.bookstore_id, district)
    if not lines:
        raise DecisionRefused(f"request {req.request_id}: no budget line covers {period} for this bookstore/district")
    ledger.charge(s, req.request_id, req.price_fen, lines, at=now, actor=actor, audit=audit)
    _move_request(
        s, req, RequestStatus.APPROVED, LineDecision.APPROVE.value, actor=actor, now=now, audit=audit, first=True
    )


def _move_request(
    s: Session,
    req: PurchaseRequestRow,
    to: RequestStatus,
    action: str,
    *,
    actor: str,
    now: datetime,
    audit: list[dict[str, Any]],
    first: bool = False,
) -> None:
    """A staff move of the request, refused in the staff's words when the lifecycle does not allow it.
    ``first``: its audit row goes before the money's (an approval), else after (a refund)."""
    rows: list[dict[str, Any]] = []
    try:
        REQUESTS.move(s, req, to, action, actor=actor, at=now, audit=rows)
    except InvalidTransition:
        raise DecisionRefused(f"request {req.request_id} is '{req.status}'; staff can no longer decide it") from None
    if first:
        audit[:0] = rows
    else:
        audit.extend(rows)


# --- the round's lifecycle ----------------------------------------------------------------------------


def move_round(db: Database, round_id: str, action: str, *, actor: str, now: datetime, note: str | None = None) -> str:
    """Move a round by a lifecycle action (:data:`acquisition.lifecycle.ROUND_ACTIONS`: submit, approve,
    return, close); who, when and the note are stored on the round and audited. Returns the new status.

    Raises :class:`RoundNotFound`, :class:`InvalidTransition` (the table refuses the move: a 409), or
    :class:`DecisionRefused` (closing a round that was never approved while lines are approved).
    """
    to = ROUND_ACTIONS.get(action)
    if to is None:
        raise InvalidTransition(
            f"acquisition round {round_id}: unknown action {action!r} (one of {', '.join(ROUND_ACTIONS)})"
        )
    with db.session_scope(write=True) as s:
        row = s.get(AcquisitionRoundRow, round_id, with_for_update=True)
        if row is None:
            raise RoundNotFound(f"acquisition round {round_id}: not found")
        if to == RoundStatus.CLOSED and row.status != RoundStatus.APPROVED and _n_approved(s, round_id):
            raise DecisionRefused(
                f"acquisition round {round_id} was never approved and has approved lines: "
                "undo them or submit the round for approval before closing it"
            )
        ROUNDS.move(s, row, to, action, actor=actor, at=now, details={"note": note} if note else None)
        step = {"status": to.value, "by": actor, "at": now.isoformat(), "note": note}
        row.params = {**(row.params or {}), "history": [*(row.params or {}).get("history", []), step]}
    _log.info("round %s: %s by %s", round_id, action, actor)
    return to.value


def _n_approved(s: Session, round_id: str) -> int:
    return int(
        s.scalar(
            select(func.count())
            .select_from(RoundLineRow)
            .where(RoundLineRow.round_id == round_id, RoundLineRow.decision == LineDecision.APPROVE.value)
        )
    )


def bookstore_branches(db: Database) -> dict[str, str | None]:
    """Bookstore id -> the branch that catalogues its purchases (an order sheet's receiving branch)."""
    with db.session_scope() as s:
        return {b: branch for b, branch in s.execute(select(BookstoreRow.bookstore_id, BookstoreRow.branch_id))}
