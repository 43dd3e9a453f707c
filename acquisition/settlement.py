"""Monthly settlement with the partner bookstores: what the programme bought through each bookstore in
a month, at the agreed discount, what is due and what was returned, as files an accountant accepts.

:func:`settle` posts the month: every confirmed purchase (checked out at the counter or approved by
staff during the month, not yet invoiced) of the bookstore is invoiced at ``list price x (1 - discount)``
(:func:`acquisition.ledger.invoice`: the encumbrance becomes expenditure, the discount is free money
again), in one audited transaction; running it again invoices nothing twice. :func:`statement` reads
the month back: purchases invoiced in the month, and credits for invoiced books returned in the month.

Money is integer fen throughout; the due of one book is rounded half-up to the fen
(``(list x (10000 - discount_bp) + 5000) // 10000``). The statement's net total equals the ledger's
expenditure of the month for the bookstore (:func:`ledger_spend_fen`, from the audit trail of the
invoices and credits), which :func:`reconcile` checks.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from acquisition import ledger
from acquisition.audit import record_many
from acquisition.db import AuditLog, BookstoreRow, Database, PurchaseRequestRow, ReservationRow
from acquisition.errors import InvalidPeriod
from acquisition.export import csv_bytes, xlsx_bytes
from acquisition.lifecycle import ReservationStatus
from acquisition.policy import Policy

_log = logging.getLogger(__name__)

_MONTH = re.compile(r"^(20\d\d|2100)-(0[1-9]|1[0-2])$")

#: Columns of a statement's lines.
STATEMENT_SCHEMA = {
    "bookstore_id": pl.String,
    "bookstore": pl.String,
    "kind": pl.String,
    "request_id": pl.String,
    "isbn": pl.String,
    "title": pl.String,
    "date": pl.String,
    "list_price_fen": pl.Int64,
    "discount_pct": pl.Float64,
    "due_fen": pl.Int64,
}


def check_month(month: str) -> str:
    """A settlement month 'YYYY-MM' (2000-01..2100-12), or :class:`InvalidPeriod`."""
    if not _MONTH.match(month or ""):
        raise InvalidPeriod(f"month: must be 'YYYY-MM' within 2000-01..2100-12, got {month!r}")
    return month


def _bounds(month: str) -> tuple[datetime, datetime]:
    year, mon = int(month[:4]), int(month[5:])
    return datetime(year, mon, 1), datetime(year + mon // 12, mon % 12 + 1, 1)


def due_fen(list_fen: int, discount_bp: int) -> int:
    """What a bookstore is owed for a book listed at ``list_fen`` with ``discount_bp`` off (half-up)."""
    return max(1, (list_fen * (10_000 - discount_bp) + 5_000) // 10_000)


def _to_invoice(s: Session, month: str, bookstore_id: str | None) -> list[tuple[str, int, str]]:
    """(reservation_id, list price, bookstore) of the month's confirmed purchases not yet invoiced."""
    start, end = _bounds(month)
    r, p = ReservationRow, PurchaseRequestRow
    stmt = (
        select(r.reservation_id, r.amount_fen, p.bookstore_id)
        .join(p, p.request_id == r.request_id)
        .where(r.status == ReservationStatus.CONFIRMED, r.settled_at >= start, r.settled_at < end)
        .order_by(r.reservation_id)
    )
    if bookstore_id is not None:
        stmt = stmt.where(p.bookstore_id == bookstore_id)
    return [tuple(row) for row in s.execute(stmt)]


def settle(
    db: Database, policy: Policy, month: str, *, bookstore_id: str | None = None, actor: str, now: datetime
) -> int:
    """Invoice the month's confirmed purchases (of one bookstore, or all) at the agreed discounts, in one
    audited transaction. Returns the total due invoiced now, fen (0 when the month was already settled)."""
    month = check_month(month)
    with db.session_scope(write=True) as s:
        items = _to_invoice(s, month, bookstore_id)
        due = {rid: due_fen(list_fen, policy.discount_bp(store)) for rid, list_fen, store in items}
        audit: list[dict] = []
        total = ledger.invoice(s, due, month=month, at=now, actor=actor, audit=audit)
        record_many(s, audit)
    _log.info("settled %s (%s): %d purchases, %d fen due", month, bookstore_id or "all bookstores", len(due), total)
    return total


def return_to_bookstore(db: Database, request_id: str, *, actor: str, now: datetime) -> int:
    """A bought book goes back to its bookstore (:func:`acquisition.ledger.return_purchase`), audited in
    one transaction: the fen released or credited."""
    with db.session_scope(write=True) as s:
        audit: list[dict] = []
        fen = ledger.return_purchase(s, request_id, at=now, actor=actor, audit=audit)
        record_many(s, audit)
    return fen


def _statement_rows(s: Session, month: str, bookstore_id: str | None) -> list[tuple]:
    start, end = _bounds(month)
    r, p, b = ReservationRow, PurchaseRequestRow, BookstoreRow
    base = (
        select(p.bookstore_id, b.name, p.request_id, p.isbn, p.title, r.settled_at, r.list_fen, r.amount_fen, r.status)
        .join(p, p.request_id == r.request_id)
        .join(b, b.bookstore_id == p.bookstore_id, isouter=True)
        .where(r.list_fen.is_not(None))
    )
    if bookstore_id is not None:
        base = base.where(p.bookstore_id == bookstore_id)
    bought = [("purchase", *row) for row in s.execute(base.where(r.invoice_ref == month))]
    returned = s.execute(
        base.where(r.status == ReservationStatus.RETURNED, r.settled_at >= start, r.settled_at < end)
    ).all()
    return bought + [("return", *row) for row in returned]


def statement(db: Database, policy: Policy, month: str, *, bookstore_id: str | None = None) -> pl.DataFrame:
    """The month's statement lines (purchases invoiced in the month, credits for returns in the month),
    sorted by bookstore, kind and date; a credit's due is negative."""
    month = check_month(month)
    with db.session_scope() as s:
        rows = _statement_rows(s, month, bookstore_id)
    lines = [
        {
            "bookstore_id": store,
            "bookstore": name or "",
            "kind": kind,
            "request_id": rid,
            "isbn": isbn,
            "title": title or "",
            "date": at.date().isoformat() if at else "",
            "list_price_fen": list_fen,
            "discount_pct": policy.discount_bp(store) / 100,
            "due_fen": due if kind == "purchase" else -due,
        }
        for kind, store, name, rid, isbn, title, at, list_fen, due, _ in rows
    ]
    return pl.DataFrame(lines, schema=STATEMENT_SCHEMA).sort("bookstore_id", "kind", "date", "request_id")


class BookstoreTotals(BaseModel):
    """One bookstore's month, fen."""

    model_config = ConfigDict(frozen=True)

    bookstore_id: str
    bookstore: str
    books: int = Field(description="Books invoiced in the month.")
    list_fen: int = Field(description="Their list prices.")
    purchases_due_fen: int = Field(description="Due for them at the agreed discount.")
    returns: int = Field(description="Invoiced books returned in the month.")
    returns_fen: int = Field(description="Credited for the returns (negative).")
    net_due_fen: int = Field(description="purchases_due + returns: what the library pays.")


def totals(lines: pl.DataFrame) -> list[BookstoreTotals]:
    """Per bookstore: books, list total, due, returns and the net due of a statement."""
    purchase = pl.col("kind") == "purchase"
    frame = (
        lines.group_by("bookstore_id", "bookstore")
        .agg(
            purchase.sum().cast(pl.Int64).alias("books"),
            pl.col("list_price_fen").filter(purchase).sum().alias("list_fen"),
            pl.col("due_fen").filter(purchase).sum().alias("purchases_due_fen"),
            (~purchase).sum().cast(pl.Int64).alias("returns"),
            pl.col("due_fen").filter(~purchase).sum().alias("returns_fen"),
            pl.col("due_fen").sum().alias("net_due_fen"),
        )
        .sort("bookstore_id")
    )
    return [BookstoreTotals(**r) for r in frame.iter_rows(named=True)]


def ledger_spend_fen(db: Database, month: str, bookstore_id: str | None = None) -> int:
    """The ledger's expenditure of ``month`` for a bookstore (or all), from the audit trail: invoices
    posted for the month minus credits for invoiced books returned in the month, fen."""
    start, end = _bounds(check_month(month))
    d, p = AuditLog.details, PurchaseRequestRow

    def total(amount, *where) -> int:
        stmt = select(func.coalesce(func.sum(d[amount].as_integer()), 0)).where(
            AuditLog.entity == "reservation", *where
        )
        if bookstore_id is not None:
            stmt = stmt.join(p, p.request_id == d["request_id"].as_string()).where(p.bookstore_id == bookstore_id)
        return int(s.scalar(stmt))

    with db.session_scope() as s:
        invoiced = total("due_fen", AuditLog.action == "invoice", d["month"].as_string() == month)
        credited = total(
            "amount_fen",
            AuditLog.action == "return",
            d["invoiced"].as_boolean(),
            AuditLog.at >= start,
            AuditLog.at < end,
        )
    return invoiced - credited


def reconcile(db: Database, policy: Policy, month: str, bookstore_id: str | None = None) -> tuple[int, int]:
    """(statement's net total, ledger's spend) of the month, fen: equal when the books balance."""
    net = int(statement(db, policy, month, bookstore_id=bookstore_id)["due_fen"].sum())
    return net, ledger_spend_fen(db, month, bookstore_id)


def _file_table(lines: pl.DataFrame) -> pl.DataFrame:
    """Statement lines for people: money in yuan (two decimals), and a totals row."""
    yuan = lines.with_columns(
        (pl.col("list_price_fen") / 100).alias("list_price"), (pl.col("due_fen") / 100).alias("amount_due")
    ).drop("list_price_fen", "due_fen")
    total = {c: None for c in yuan.columns} | {
        "kind": "total 合计",
        "list_price": float(yuan["list_price"].filter(yuan["kind"] == "purchase").sum()),
        "amount_due": round(float(lines["due_fen"].sum()) / 100, 2),
    }
    return pl.concat([yuan, pl.DataFrame([total], schema=yuan.schema)])


def write_statement(
    db: Database, policy: Policy, month: str, out_dir: str | Path, *, bookstore_id: str | None = None
) -> list[Path]:
    """One CSV and one XLSX (lines with a totals row; a summary sheet) per bookstore with any line in
    the month: ``settlement-YYYY-MM-<bookstore>.csv|xlsx`` in ``out_dir``. Returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = statement(db, policy, month, bookstore_id=bookstore_id)
    written = []
    for t in totals(lines):
        table = _file_table(lines.filter(pl.col("bookstore_id") == t.bookstore_id))
        summary = {"month": month, **t.model_dump()} | {
            k.replace("_fen", "_yuan"): v / 100 for k, v in t.model_dump().items() if k.endswith("_fen")
        }
        summary = {k: v for k, v in summary.items() if not k.endswith("_fen")}
        stem = f"settlement-{month}-{t.bookstore_id}"
        written += [out / f"{stem}.csv", out / f"{stem}.xlsx"]
        written[-2].write_bytes(csv_bytes(table))
        written[-1].write_bytes(xlsx_bytes(table, summary))
    return written


class StatementLine(BaseModel):
    """One book on a bookstore's statement (a credit's due is negative), fen."""

    model_config = ConfigDict(frozen=True)

    bookstore_id: str
    bookstore: str
    kind: str = Field(description="purchase or return.")
    request_id: str
    isbn: str
    title: str
    date: str = Field(description="Checkout / approval date of a purchase, return date of a return.")
    list_price_fen: int
    discount_pct: float
    due_fen: int


class Settlement(BaseModel):
    """A month's settlement with the bookstores, reconciled with the ledger."""

    model_config = ConfigDict(frozen=True)

    month: str
    bookstores: list[BookstoreTotals]
    lines: list[StatementLine]
    net_due_fen: int = Field(description="What the library pays for the month, all bookstores listed.")
    ledger_spend_fen: int = Field(description="The ledger's expenditure of the month for the same bookstores.")
    balanced: bool = Field(description="net_due_fen == ledger_spend_fen.")
    unsettled: int = Field(description="Confirmed purchases of the month not invoiced yet (run the settlement).")


def settlement_report(db: Database, policy: Policy, month: str, *, bookstore_id: str | None = None) -> Settlement:
    """The month's statement, totals per bookstore and the reconciliation (reads only; :func:`settle` posts)."""
    month = check_month(month)
    lines = statement(db, policy, month, bookstore_id=bookstore_id)
    net = int(lines["due_fen"].sum())
    spend = ledger_spend_fen(db, month, bookstore_id)
    with db.session_scope() as s:
        unsettled = len(_to_invoice(s, month, bookstore_id))
    return Settlement(
        month=month, bookstores=totals(lines), lines=[StatementLine(**r) for r in lines.iter_rows(named=True)],
        net_due_fen=net, ledger_spend_fen=spend, balanced=net == spend, unsettled=unsettled,
    )  # fmt: skip
