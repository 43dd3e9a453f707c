"""Staff work on batches of online requests: rank a run, read it, decide its lines, budgets, export, report.

Importable and testable without HTTP; the staff routes and the ``/staff`` page are a thin skin on it.

Money: an approved line is CHARGED at once on every applicable budget line of the run's month (the
month's district/bookstore lines and the year line, exactly the lines a counter request would draw on),
with the same conditional ``UPDATE ... WHERE amount - reserved - committed >= price`` the counter
uses, so staff approvals and counter sales share one ledger and can never overspend it together.
The charge is recorded as a ``confirmed`` reservation of the request, so un-approving (reject or back
to pending) gives exactly that money back. A batch of decisions is one transaction: if one approval
does not fit, none is applied and the error names the line and the budget.

Ranking: :func:`acquisition.ranking.rank_batch` (predicted loans x collection-gap multiplier, MILP
selection within the budget, eligibility re-checked) over the pending online requests of the ledger.
When the data directory cannot feed it (no loan history) or it fails, :func:`rank_pending` ranks with
a transparent demand-per-yuan score (distinct requesters of the ISBN x the loans-per-copy of its CLC
class relative to the city), a prefix of that order within the run budget being ``selected``; the
run's ``ranker`` says which one ranked it (and why the fallback was used).
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from acquisition.audit import audit_rows, record_many
from acquisition.counter import CounterService
from acquisition.db import (
    AcquisitionRunRow,
    BookstoreRow,
    BudgetLineRow,
    Database,
    PurchaseRequestRow,
    ReaderRow,
    ReservationLineRow,
    ReservationRow,
    RunLineRow,
    StaffDecisionRow,
)
from recsys.context import CLC_LETTERS, LibraryContext

_log = logging.getLogger(__name__)

RANKER = "demand-per-yuan (serving fallback)"
EXPORT_COLUMNS = (
    "rank",
    "request_id",
    "isbn",
    "title",
    "clc_class",
    "bookstore_id",
    "district",
    "price",
    "selected",
    "predicted_loans",
    "value",
    "decision",
    "decided_by",
    "request_status",
    "reasons",
)


class RunNotFound(LookupError):
    """No run with this id."""


class LineNotInRun(LookupError):
    """A decision names a request that is not a line of the run."""


class DecisionRefused(ValueError):
    """A decision cannot be applied (the request moved on, or the budget has no room)."""


def _period_start(period: str) -> datetime:
    return datetime.strptime(period, "%Y-%m")


# --- ranking ------------------------------------------------------------------------------------------


def class_demand(context: LibraryContext | None) -> dict[str, float]:
    """Loans per on-shelf copy of each CLC top class relative to the city's (1.0 = average)."""
    if context is None or len(context.titles) == 0:
        return {}
    k = len(CLC_LETTERS)
    cls = np.where(context.clc_top >= 0, context.clc_top, k).astype(np.int64)
    copies = np.asarray(context.on_shelf.sum(axis=1)).ravel()
    loans = np.bincount(cls, weights=context.popularity, minlength=k + 1)[:k]
    stock = np.bincount(cls, weights=copies, minlength=k + 1)[:k]
    city = loans.sum() / max(stock.sum(), 1.0)
    rel = np.where(stock > 0, loans / np.maximum(stock, 1.0) / max(city, 1e-9), 1.0)
    return dict(zip(CLC_LETTERS, rel.tolist(), strict=True))


def rank_pending(requests: pl.DataFrame, budget_fen: int, demand: dict[str, float]) -> pl.DataFrame:
    """Rank pending requests (``request_id, reader_id, isbn13, clc_class, price_fen``) by demand per yuan.

    Returns the frame with ``rank`` (1 = buy first), ``value``, ``requesters``, ``class_demand``,
    ``selected`` (the prefix of the ranking that fits ``budget_fen``) and ``reasons`` (list of str).
    """
    lut = pl.DataFrame(
        {"letter": list(demand), "class_demand": list(demand.values())},
        schema={"letter": pl.String, "class_demand": pl.Float64},
    )
    ranked = (
        requests.lazy()
        .with_columns(
            pl.col("reader_id").n_unique().over(pl.col("isbn13").fill_null(pl.col("request_id"))).alias("requesters"),
            pl.col("clc_class").fill_null("").str.slice(0, 1).alias("letter"),
        )
        .join(lut.lazy(), on="letter", how="left")
        .with_columns(pl.col("class_demand").fill_null(1.0))
        .with_columns((pl.col("requesters") * pl.col("class_demand")).alias("value"))
        .with_columns((pl.col("value") / (pl.col("price_fen") / 100)).alias("per_yuan"))
        .sort(["per_yuan", "request_id"], descending=[True, False])
        .with_columns(
            pl.int_range(1, pl.len() + 1).alias("rank"),
            (pl.col("price_fen").cum_sum() <= budget_fen).alias("selected"),
        )
        .with_columns(
            pl.concat_list(
                pl.format("{} reader(s) asked for this book", pl.col("requesters")),
                pl.when(pl.col("letter") != "")
                .then(
                    pl.format(
                        "class {}: {}x the city's loans per copy", pl.col("letter"), pl.col("class_demand").round(2)
                    )
                )
                .otherwise(pl.lit("class unknown: city average demand assumed")),
                pl.format("{} yuan", (pl.col("price_fen") / 100).round(2)),
                pl.when(pl.col("selected"))
                .then(pl.lit("fits the run budget"))
                .otherwise(pl.lit("beyond the run budget")),
            ).alias("reasons")
        )
        .drop("letter", "per_yuan")
        .collect()
    )
    return ranked


def create_run(
    db: Database,
    counter: CounterService,
    context: LibraryContext | None,
    *,
    created_by: str,
    now: datetime,
    data_dir: Path | None = None,
    period: str | None = None,
    budget_yuan: float | None = None,
    max_lines: int = 500,
) -> str:
    """Rank the pending online requests into a new run; returns the run id.

    ``budget_yuan`` defaults to what the month's district lines (else the year line) have left.
    """
    period = period or now.strftime("%Y-%m")
    pr = PurchaseRequestRow
    columns = {
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
    with db.session_scope() as s:
        rows = s.execute(
            select(*(getattr(pr, c) for c in columns))
            .where(pr.status == "pending", pr.channel == "online")
            .order_by(pr.requested_at, pr.request_id)
            .limit(max_lines)
        ).all()
        budget_fen = round(budget_yuan * 100) if budget_yuan is not None else _left_fen(s, period)
    frame = pl.DataFrame([tuple(r) for r in rows], schema=columns, orient="row")
    ranker, fallback = "acquisition.ranking (milp)", None
    result = None
    if frame.height and data_dir is not None and (Path(data_dir) / "loans.parquet").exists():
        try:
            result = _rank_with_batch(frame, Path(data_dir), counter, budget_fen, now)
        except Exception as exc:  # noqa: BLE001 - the staff still get a ranked run, and are told why
            fallback = f"{type(exc).__name__}: {exc}"
            _log.warning("batch ranking failed, using the fallback ranking: %s", fallback)
    elif frame.height:
        fallback = "no loan history in the data directory"
    params = {"period": period, "budget_fen": budget_fen, "max_lines": max_lines}
    with db.session_scope(write=True) as s:
        if result is not None:
            from acquisition.ranking import save_run

            save_run(s, result, created_by=created_by)
            run_id = result.run_id
            run = s.get(AcquisitionRunRow, run_id)
            run.params = {**(run.params or {}), **params, "ranker": ranker}
            n_lines, n_selected = result.lines.height, int(result.lines["selected"].sum())
        else:
            ranker = RANKER + (f" — {fallback}" if fallback else "")
            run_id = _save_fallback(s, frame, budget_fen, context, created_by, now, {**params, "ranker": ranker})
            n_lines, n_selected = frame.height, None
        record_many(
            s,
            audit_rows(
                "acquisition_run",
                [run_id],
                "create",
                actor=created_by,
                at=now,
                to_state="draft",
                details={"lines": n_lines, "selected": n_selected, "budget_fen": budget_fen, "ranker": ranker},
            ),
        )
    _log.info("run %s: %d lines ranked by %s, budget %d fen", run_id, n_lines, ranker, budget_fen)
    return run_id


def _rank_with_batch(frame: pl.DataFrame, data_dir: Path, counter: CounterService, budget_fen: int, now: datetime):
    """:func:`acquisition.ranking.rank_batch` over ledger rows (converted to the ``purchase_requests`` schema)."""
    from acquisition.ranking import BatchParams, rank_batch

    requests = frame.select(pl.exclude("isbn13", "price_fen"), (pl.col("price_fen") / 100).alias("price")).with_columns(
        pl.col("category").fill_null("general")
    )
    return rank_batch(requests, data_dir, counter.policy, budget_fen / 100, BatchParams(method="milp"), as_of=now)


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
    run_id = uuid.uuid4().hex
    s.add(AcquisitionRunRow(run_id=run_id, created_by=created_by, created_at=now, params=params, status="draft"))
    s.flush()
    if ranked.height:
        s.execute(
            RunLineRow.__table__.insert(),
            [
                {
                    "run_id": run_id,
                    "request_id": r["request_id"],
                    "rank": r["rank"],
                    "selected": r["selected"],
                    "predicted_loans": None,
                    "value": r["value"],
                    "reasons": {"codes": [], "text": r["reasons"], "requester_count": r["requesters"]},
                    "decision": "pending",
                }
                for r in ranked.iter_rows(named=True)
            ],
        )
    return run_id


def _left_fen(s: Session, period: str) -> int:
    """Money left in a month: the sum over its lines without a bookstore (district lines), else its
    year line, else 0."""
    b = BudgetLineRow
    left = b.amount_fen - b.reserved_fen - b.committed_fen
    rows = s.execute(
        select(b.period, b.district, left).where(b.period.in_((period, period[:4])), b.bookstore_id.is_(None))
    ).all()
    month = sum(v for p, _, v in rows if p == period)
    year = sum(v for p, _, v in rows if p == period[:4])
    return int(month if any(p == period for p, _, _ in rows) else year)


# --- reading ------------------------------------------------------------------------------------------


def _reason_texts(reasons: dict | None) -> list[str]:
    """Reason sentences of a run line (a list, or one string as :func:`acquisition.ranking.save_run` stores)."""
    text = (reasons or {}).get("text", [])
    return [text] if isinstance(text, str) else [str(t) for t in text]


def list_runs(db: Database, default_period: str = "") -> list[dict[str, Any]]:
    """Every run, newest first, with line, selected and approved counts."""
    with db.session_scope() as s:
        runs = s.scalars(select(AcquisitionRunRow).order_by(AcquisitionRunRow.created_at.desc())).all()
        counts = s.execute(select(RunLineRow.run_id, RunLineRow.selected, RunLineRow.decision)).all()
    c = pl.DataFrame(
        [tuple(r) for r in counts],
        schema={"run_id": pl.String, "selected": pl.Boolean, "decision": pl.String},
        orient="row",
    )
    agg = {
        r["run_id"]: r
        for r in c.group_by("run_id")
        .agg(
            pl.len().alias("n"),
            pl.col("selected").sum().alias("sel"),
            (pl.col("decision") == "approve").sum().alias("app"),
        )
        .iter_rows(named=True)
    }
    return [_summary(r, agg.get(r.run_id, {}), default_period) for r in runs]


def _summary(run: AcquisitionRunRow, agg: dict, default_period: str = "") -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "created_by": run.created_by,
        "created_at": run.created_at,
        "status": run.status,
        "period": str((run.params or {}).get("period") or default_period),
        "n_lines": int(agg.get("n", 0)),
        "n_selected": int(agg.get("sel", 0)),
        "n_approved": int(agg.get("app", 0)),
    }


def get_run(db: Database, run_id: str, district_of: str = "bookstore", default_period: str = "") -> dict[str, Any]:
    """A run with its lines in rank order (joined with the requests they rank). ``default_period`` is
    the budget month of runs that do not name one (runs saved by other tools)."""
    with db.session_scope() as s:
        run = s.get(AcquisitionRunRow, run_id)
        if run is None:
            raise RunNotFound(f"acquisition run {run_id}: not found")
        district = BookstoreRow.district if district_of == "bookstore" else ReaderRow.district
        rows = s.execute(
            select(RunLineRow, PurchaseRequestRow, district)
            .join(PurchaseRequestRow, PurchaseRequestRow.request_id == RunLineRow.request_id)
            .outerjoin(BookstoreRow, BookstoreRow.bookstore_id == PurchaseRequestRow.bookstore_id)
            .outerjoin(ReaderRow, ReaderRow.reader_id == PurchaseRequestRow.reader_id)
            .where(RunLineRow.run_id == run_id)
            .order_by(RunLineRow.rank)
        ).all()
    lines = [
        {
            "rank": line.rank,
            "request_id": req.request_id,
            "isbn": req.isbn,
            "title": req.title,
            "clc_class": req.clc_class,
            "bookstore_id": req.bookstore_id,
            "district": dist,
            "price": req.price_fen / 100,
            "selected": line.selected,
            "predicted_loans": line.predicted_loans,
            "value": line.value,
            "reasons": _reason_texts(line.reasons),
            "reason_codes": list((line.reasons or {}).get("codes") or []),
            "decision": line.decision,
            "decided_by": line.decided_by,
            "request_status": req.status,
        }
        for line, req, dist in rows
    ]
    agg = {
        "n": len(lines),
        "sel": sum(x["selected"] for x in lines),
        "app": sum(x["decision"] == "approve" for x in lines),
    }
    return {**_summary(run, agg, default_period), "ranker": str((run.params or {}).get("ranker", "")), "lines": lines}


# --- deciding -----------------------------------------------------------------------------------------


def apply_decisions(
    db: Database,
    counter: CounterService,
    run_id: str,
    decisions: list[tuple[str, str, str | None]],
    *,
    actor: str,
    now: datetime,
) -> int:
    """Apply staff decisions ``(request_id, 'approve'|'reject'|'pending', note)`` to a run's lines.

    All or nothing (one write transaction). Returns how many lines changed. Raises
    :class:`RunNotFound`, :class:`LineNotInRun`, or :class:`DecisionRefused` (request no longer
    pending, or a budget line without room: the message names the budget line).
    """
    changed = 0
    with db.session_scope(write=True) as s:
        run = s.get(AcquisitionRunRow, run_id)
        if run is None:
            raise RunNotFound(f"acquisition run {run_id}: not found")
        period = str((run.params or {}).get("period") or now.strftime("%Y-%m"))
        for request_id, decision, note in decisions:
            line = s.scalar(
                select(RunLineRow)
                .where(RunLineRow.run_id == run_id, RunLineRow.request_id == request_id)
                .with_for_update()
            )
            if line is None:
                raise LineNotInRun(f"request {request_id} is not a line of run {run_id}")
            if line.decision == decision:
                continue
            req = s.get(PurchaseRequestRow, request_id, with_for_update=True)
            if line.decision == "approve":
                _refund(s, req, actor, now)
            if decision == "approve":
                codes = list((line.reasons or {}).get("codes") or [])
                if codes:
                    raise DecisionRefused(
                        f"request {request_id} is not eligible ({', '.join(codes)}); it cannot be approved"
                    )
                _charge(s, counter, req, period, actor, now)
            else:
                to = "declined" if decision == "reject" else "pending"
                if req.status not in ("pending", "approved", "declined"):
                    raise DecisionRefused(f"request {request_id} is '{req.status}'; staff can no longer decide it")
                frm, req.status, req.updated_at = req.status, to, now
                record_many(
                    s,
                    audit_rows(
                        "purchase_request", [request_id], decision, actor=actor, at=now, from_state=frm, to_state=to
                    ),
                )
            line.decision, line.decided_by, line.decided_at = decision, actor, now
            s.add(
                StaffDecisionRow(
                    run_id=run_id, request_id=request_id, decision=decision, decided_by=actor, decided_at=now, note=note
                )
            )
            changed += 1
        if changed:
            run.status = "reviewed"
    _log.info("run %s: %d decisions applied by %s", run_id, changed, actor)
    return changed


def _charge(
    s: Session, counter: CounterService, req: PurchaseRequestRow, period: str, actor: str, now: datetime
) -> None:
    if req.status not in ("pending", "declined"):
        raise DecisionRefused(f"request {req.request_id} is '{req.status}'; only pending requests can be approved")
    bookstore = s.get(BookstoreRow, req.bookstore_id)
    reader = s.get(ReaderRow, req.reader_id)
    if counter.policy.budget_district_of == "bookstore":
        district = bookstore.district if bookstore else None
    else:
        district = reader.district if reader else None
    lines = counter.applicable_lines(s, _period_start(period), req.bookstore_id, district)
    if not lines:
        raise DecisionRefused(f"request {req.request_id}: no budget line covers {period} for this bookstore/district")
    b = BudgetLineRow
    for budget_id in lines:
        done = s.execute(
            update(b)
            .where(b.budget_id == budget_id, b.amount_fen - b.reserved_fen - b.committed_fen >= req.price_fen)
            .values(committed_fen=b.committed_fen + req.price_fen)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            raise DecisionRefused(
                f"request {req.request_id}: budget line {budget_id} has no room for {req.price_fen / 100:.2f} yuan"
            )
    res = s.scalar(select(ReservationRow).where(ReservationRow.request_id == req.request_id))
    if res is None:
        res = ReservationRow(
            reservation_id=uuid.uuid4().hex,
            request_id=req.request_id,
            amount_fen=req.price_fen,
            status="confirmed",
            created_at=now,
            expires_at=now,
            settled_at=now,
        )
        s.add(res)
        s.flush()
    else:
        res.amount_fen, res.status, res.settled_at = req.price_fen, "confirmed", now
        s.execute(ReservationLineRow.__table__.delete().where(ReservationLineRow.reservation_id == res.reservation_id))
    s.add_all(
        ReservationLineRow(reservation_id=res.reservation_id, budget_id=bid, amount_fen=req.price_fen) for bid in lines
    )
    frm, req.status, req.updated_at = req.status, "approved", now
    record_many(
        s,
        audit_rows(
            "purchase_request", [req.request_id], "approve", actor=actor, at=now, from_state=frm, to_state="approved"
        )
        + audit_rows(
            "budget_line",
            lines,
            "commit",
            actor=actor,
            at=now,
            details={"request_id": req.request_id, "committed_fen_delta": req.price_fen},
        ),
    )


def _refund(s: Session, req: PurchaseRequestRow, actor: str, now: datetime) -> None:
    if req.status != "approved":
        raise DecisionRefused(f"request {req.request_id} is '{req.status}'; its approval can no longer be withdrawn")
    res = s.scalar(
        select(ReservationRow).where(ReservationRow.request_id == req.request_id, ReservationRow.status == "confirmed")
    )
    if res is None:
        return
    lines = s.scalars(
        select(ReservationLineRow.budget_id).where(ReservationLineRow.reservation_id == res.reservation_id)
    ).all()
    b = BudgetLineRow
    s.execute(
        update(b)
        .where(b.budget_id.in_(lines))
        .values(committed_fen=b.committed_fen - res.amount_fen)
        .execution_options(synchronize_session=False)
    )
    res.status, res.settled_at = "released", now
    record_many(
        s,
        audit_rows(
            "budget_line",
            list(lines),
            "refund",
            actor=actor,
            at=now,
            details={"request_id": req.request_id, "committed_fen_delta": -res.amount_fen},
        ),
    )


# --- budgets, export, report ------------------------------------------------------------------------------


def budgets(db: Database, period: str) -> dict[str, Any]:
    """Budget lines of a month and its year, and per district of the month: amount, used, left (yuan)."""
    b = BudgetLineRow
    with db.session_scope() as s:
        rows = s.execute(
            select(b.budget_id, b.period, b.bookstore_id, b.district, b.amount_fen, b.reserved_fen, b.committed_fen)
            .where(b.period.in_((period, period[:4])))
            .order_by(b.period, b.budget_id)
        ).all()
    frame = pl.DataFrame(
        [tuple(r) for r in rows],
        schema={
            "budget_id": pl.String,
            "period": pl.String,
            "bookstore_id": pl.String,
            "district": pl.String,
            "amount_fen": pl.Int64,
            "reserved_fen": pl.Int64,
            "committed_fen": pl.Int64,
        },
        orient="row",
    )
    lines = frame.select(
        "budget_id",
        "period",
        "bookstore_id",
        "district",
        (pl.col("amount_fen") / 100).alias("amount"),
        (pl.col("reserved_fen") / 100).alias("reserved"),
        (pl.col("committed_fen") / 100).alias("committed"),
        ((pl.col("amount_fen") - pl.col("reserved_fen") - pl.col("committed_fen")) / 100).alias("left"),
    )
    districts = (
        frame.filter((pl.col("period") == period) & pl.col("district").is_not_null())
        .group_by("district")
        .agg(
            (pl.col("amount_fen").sum() / 100).alias("amount"),
            ((pl.col("reserved_fen") + pl.col("committed_fen")).sum() / 100).alias("used"),
        )
        .with_columns((pl.col("amount") - pl.col("used")).alias("left"))
        .sort("district")
    )
    return {"period": period, "lines": lines.to_dicts(), "districts": districts.to_dicts()}


def export_run(run: dict[str, Any], fmt: str) -> bytes:
    """A run's lines as CSV (UTF-8 with BOM, so spreadsheet programs read Chinese titles) or XLSX."""
    rows = [[("; ".join(line[c]) if c == "reasons" else line[c]) for c in EXPORT_COLUMNS] for line in run["lines"]]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(EXPORT_COLUMNS)
        writer.writerows(rows)
        return ("\ufeff" + buf.getvalue()).encode()
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(f"run {run['run_id'][:8]}")
    ws.append(list(EXPORT_COLUMNS))
    for r in rows:
        ws.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def collection_report(context: LibraryContext) -> dict[str, Any]:
    """Supply vs demand per CLC top class: titles, on-shelf copies, loans, shares and turnover.

    A class is ``under``-supplied when its share of loans exceeds its share of copies by more than a
    quarter (and ``over`` when it falls short by more than a quarter).
    """
    k = len(CLC_LETTERS)
    cls = np.where(context.clc_top >= 0, context.clc_top, k).astype(np.int64)
    copies = np.asarray(context.on_shelf.sum(axis=1)).ravel()
    titles = np.bincount(cls, minlength=k + 1)[:k]
    stock = np.bincount(cls, weights=copies, minlength=k + 1)[:k]
    loans = np.bincount(cls, weights=context.popularity, minlength=k + 1)[:k]
    s_share = stock / max(stock.sum(), 1.0)
    l_share = loans / max(loans.sum(), 1.0)
    ratio = np.where(s_share > 0, l_share / np.maximum(s_share, 1e-12), np.inf)
    supply = np.where(ratio > 1.25, "under", np.where(ratio < 0.8, "over", "balanced"))
    from features.schema import CLC_TOP_CLASSES

    classes = [
        {
            "clc_top": letter,
            "name": str(CLC_TOP_CLASSES[letter]),
            "titles": int(titles[i]),
            "copies_on_shelf": int(stock[i]),
            "loans": float(loans[i]),
            "share_of_collection": float(s_share[i]),
            "share_of_loans": float(l_share[i]),
            "turnover": float(loans[i] / stock[i]) if stock[i] > 0 else None,
            "supply": str(supply[i]),
        }
        for i, letter in enumerate(CLC_LETTERS)
        if titles[i] > 0
    ]
    return {
        "titles": int(len(context.titles)),
        "copies_on_shelf": int(copies.sum()),
        "loans": float(context.popularity.sum()),
        "classes": classes,
    }
