"""The acquisition database: purchase requests, budget lines, reservations, audit and rounds.

SQLAlchemy 2.0 ORM on any URL; a SQLite file by default (WAL journal, busy timeout, and
``BEGIN IMMEDIATE`` for write transactions so that concurrent counters serialise on the write lock
instead of failing at commit). On PostgreSQL the counter takes row locks (``SELECT ... FOR UPDATE``).

Money is integer fen (1 yuan = 100 fen) so sums are exact. ``budget_lines`` carries a CHECK that
``reserved_fen + committed_fen <= amount_fen``: even a buggy caller cannot overspend.

Times are naive local datetimes, like the analytical tables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from features import bounds
from features.bounds import ID_MAX
from features.schema import conform, scan_table, table_path

_log = logging.getLogger(__name__)

#: A data directory's fund hierarchy (``[[funds]]`` tables as in the policy), loaded when neither the
#: caller (the policy) nor the directory's ``budgets`` table gives lines.
FUNDS_FILE = "funds.toml"

#: Seconds a SQLite writer waits for the write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class ReaderRow(Base):
    """A card holder as the counter needs it (loaded from the data directory's ``readers``)."""

    __tablename__ = "readers"
    reader_id: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    home_branch_id: Mapped[str] = mapped_column(String(ID_MAX))
    district: Mapped[str | None] = mapped_column(String(ID_MAX))
    credit_level: Mapped[int] = mapped_column(Integer, default=5)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)


class BookstoreRow(Base):
    """A partner bookstore (from ``bookstores``); ``branch_id`` catalogues its purchases."""

    __tablename__ = "bookstores"
    bookstore_id: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    district: Mapped[str | None] = mapped_column(String(ID_MAX))
    branch_id: Mapped[str | None] = mapped_column(String(ID_MAX))


class PurchaseRequestRow(Base):
    """One "you choose, I buy" request and its decision. ``idempotency_key`` is unique: a retried
    request finds its stored decision instead of being decided (and charged) twice."""

    __tablename__ = "purchase_requests"
    request_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(bounds.IDEMPOTENCY_KEY_MAX), unique=True)
    reader_id: Mapped[str] = mapped_column(String(ID_MAX))
    bookstore_id: Mapped[str] = mapped_column(String(ID_MAX))
    isbn: Mapped[str] = mapped_column(String(bounds.ISBN_MAX), doc="ISBN as scanned.")
    isbn13: Mapped[str | None] = mapped_column(String(13), doc="Normalised ISBN-13, null if invalid.")
    title: Mapped[str | None] = mapped_column(String(bounds.TITLE_MAX))
    author: Mapped[str | None] = mapped_column(String(bounds.AUTHOR_MAX))
    publisher: Mapped[str | None] = mapped_column(String(bounds.PUBLISHER_MAX))
    pub_year: Mapped[int | None] = mapped_column(Integer)
    clc_class: Mapped[str | None] = mapped_column(String(bounds.CLASS_MAX))
    category: Mapped[str] = mapped_column(String(bounds.CLASS_MAX))
    price_fen: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), doc="features.schema.RequestStatus")
    eligible: Mapped[bool] = mapped_column(Boolean)
    reason_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    message: Mapped[str] = mapped_column(String(bounds.NOTE_MAX), default="")
    decided_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_requests_reader_time", "reader_id", "requested_at"),
        Index("ix_requests_isbn_status", "isbn13", "status"),
        Index("ix_requests_status", "status"),
    )


class BudgetLineRow(Base):
    """A budget envelope (a fund, or one month of a fund's plan): period ('YYYY-MM' or 'YYYY') x
    bookstore (null = all) x district (null = all) x channel (null = all).

    Money: ``reserved_fen`` (held at a counter) and ``committed_fen`` (approved or checked out, not yet
    invoiced) are the line's encumbrance; ``spent_fen`` is invoiced expenditure. ``amount_fen`` is the
    hard cap; ``target_fen`` (null = the amount) is the planned figure a soft target or a monthly plan
    reports against. ``parent_id`` names the fund above in the hierarchy (programme year -> district ->
    bookstore); ``rollover`` says what a year close does with the unspent money (``return`` / ``carry``).
    """

    __tablename__ = "budget_lines"
    budget_id: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    bookstore_id: Mapped[str | None] = mapped_column(String(ID_MAX))
    district: Mapped[str | None] = mapped_column(String(ID_MAX))
    channel: Mapped[str | None] = mapped_column(String(16))
    parent_id: Mapped[str | None] = mapped_column(String(ID_MAX))
    amount_fen: Mapped[int] = mapped_column(Integer)
    target_fen: Mapped[int | None] = mapped_column(Integer)
    rollover: Mapped[str] = mapped_column(String(8), default="return")
    reserved_fen: Mapped[int] = mapped_column(Integer, default=0)
    committed_fen: Mapped[int] = mapped_column(Integer, default=0)
    spent_fen: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        CheckConstraint("reserved_fen >= 0 AND committed_fen >= 0 AND spent_fen >= 0", name="ck_budget_nonnegative"),
        CheckConstraint("reserved_fen + committed_fen + spent_fen <= amount_fen", name="ck_budget_no_overspend"),
    )


class ReservationRow(Base):
    """Money held for an approved counter request until checkout (confirmed) or release."""

    __tablename__ = "reservations"
    reservation_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("purchase_requests.request_id"), unique=True)
    amount_fen: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), doc="acquisition.lifecycle.ReservationStatus")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime)
    list_fen: Mapped[int | None] = mapped_column(Integer, doc="List price when invoiced (amount_fen is then the due).")
    invoice_ref: Mapped[str | None] = mapped_column(String(ID_MAX), doc="Settlement month 'YYYY-MM' of the invoice.")

    __table_args__ = (Index("ix_reservations_status_expiry", "status", "expires_at"),)


class ReservationLineRow(Base):
    """Which budget lines a reservation draws on (every applicable line carries the full price)."""

    __tablename__ = "reservation_lines"
    reservation_id: Mapped[str] = mapped_column(ForeignKey("reservations.reservation_id"), primary_key=True)
    budget_id: Mapped[str] = mapped_column(ForeignKey("budget_lines.budget_id"), primary_key=True)
    amount_fen: Mapped[int] = mapped_column(Integer)


class FiscalCloseRow(Base):
    """A closed programme year (one row per year: the close is idempotent) and what it moved, fen."""

    __tablename__ = "fiscal_closes"
    year: Mapped[str] = mapped_column(String(4), primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(DateTime)
    closed_by: Mapped[str] = mapped_column(String(bounds.ACTOR_MAX))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AuditLog(Base):
    """Append-only trail: one row per state change, with actor and time. ``details`` never holds
    raw reader ids."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(ID_MAX))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(bounds.ACTOR_MAX))
    at: Mapped[datetime] = mapped_column(DateTime)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)


class AcquisitionRoundRow(Base):
    """An acquisition round (采购批次): online requests ranked against a budget for staff approval."""

    __tablename__ = "acquisition_rounds"
    round_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_by: Mapped[str] = mapped_column(String(bounds.ACTOR_MAX))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), doc="acquisition.lifecycle.RoundStatus")


class RoundLineRow(Base):
    """One ranked request of a round, with the model's figures and the staff's current decision."""

    __tablename__ = "round_lines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[str] = mapped_column(ForeignKey("acquisition_rounds.round_id"), index=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("purchase_requests.request_id"))
    rank: Mapped[int] = mapped_column(Integer)
    selected: Mapped[bool] = mapped_column(Boolean, default=False)
    predicted_loans: Mapped[float | None] = mapped_column(Float, doc="Expected loans in the first year.")
    value: Mapped[float | None] = mapped_column(Float, doc="Objective value of the line (model units).")
    reasons: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decision: Mapped[str] = mapped_column(String(16), doc="acquisition.lifecycle.LineDecision")
    decided_by: Mapped[str | None] = mapped_column(String(bounds.ACTOR_MAX))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (UniqueConstraint("round_id", "request_id", name="uq_round_line"),)


class StaffDecisionRow(Base):
    """History of staff decisions on round lines (round_lines holds only the latest)."""

    __tablename__ = "staff_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[str] = mapped_column(ForeignKey("acquisition_rounds.round_id"), index=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("purchase_requests.request_id"))
    decision: Mapped[str] = mapped_column(String(16), doc="acquisition.lifecycle.LineDecision")
    decided_by: Mapped[str] = mapped_column(String(bounds.ACTOR_MAX))
    decided_at: Mapped[datetime] = mapped_column(DateTime)
    note: Mapped[str | None] = mapped_column(String(bounds.NOTE_MAX))


class MediationRow(Base):
    """A request put to staff instead of declined (:mod:`acquisition.mediation`), with the answer promised."""

    __tablename__ = "mediations"
    request_id: Mapped[str] = mapped_column(ForeignKey("purchase_requests.request_id"), primary_key=True)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list, doc="Decline codes staff may override.")
    mediated_at: Mapped[datetime] = mapped_column(DateTime)
    answer_by: Mapped[datetime] = mapped_column(DateTime, index=True, doc="The answer time promised to the reader.")
    decision: Mapped[str | None] = mapped_column(String(16), doc="approve or decline; null while unanswered.")
    decided_by: Mapped[str | None] = mapped_column(String(bounds.ACTOR_MAX))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    note: Mapped[str | None] = mapped_column(String(bounds.NOTE_MAX))


class AlternativeOfferRow(Base):
    """One way to get a held book offered with a decline (:mod:`acquisition.alternatives`); rank 0 is
    the one offered first (the cheapest), ``taken_at`` is set when the reader takes it."""

    __tablename__ = "alternative_offers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("purchase_requests.request_id"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), doc="hold, transfer, delivery, ebook or queue.")
    branch_id: Mapped[str | None] = mapped_column(String(ID_MAX), doc="Where the copy is (or is picked up).")
    wait_days: Mapped[float] = mapped_column(Float, doc="Expected wait, days, as known at the decision.")
    cost_fen: Mapped[int] = mapped_column(Integer, doc="The library's cost of the way, fen.")
    offered_at: Mapped[datetime] = mapped_column(DateTime)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (UniqueConstraint("request_id", "kind", name="uq_offer_kind"),)


class NoticeRow(Base):
    """One notice to the reader per status change of their request (:mod:`acquisition.notices`): written
    with the change's audit row, rendered in zh-CN and en and sent through a channel afterwards."""

    __tablename__ = "notices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(40), index=True)
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), doc="The request's new status.")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    channel: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(200))
    text_zh: Mapped[str | None] = mapped_column(String(bounds.NOTE_MAX))
    text_en: Mapped[str | None] = mapped_column(String(bounds.NOTE_MAX))


class AuditLogAppendOnly(RuntimeError):
    """Raised when code tries to change or delete an audit row."""


@event.listens_for(AuditLog, "before_update")
@event.listens_for(AuditLog, "before_delete")
def _refuse_audit_change(_mapper, _conn, target: AuditLog) -> None:
    raise AuditLogAppendOnly(f"audit_log row {target.id}: the audit log is append-only")


_SQLITE_AUDIT_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)


#: PostgreSQL: one trigger function refusing UPDATE / DELETE (per row) and TRUNCATE (per statement).
#: Created only when missing, inside one DO block, so concurrent ``init_db`` calls (several workers
#: starting at once) cannot fail on each other: a lost race is a duplicate, which is fine.
_POSTGRES_AUDIT_GUARD = """
DO $guard$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'yuedu_audit_log_append_only') THEN
    CREATE FUNCTION yuedu_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      RAISE EXCEPTION USING MESSAGE = 'audit_log is append-only: ' || TG_OP || ' refused',
                            ERRCODE = 'insufficient_privilege';
    END
    $fn$;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'audit_log_no_change'
                 AND tgrelid = 'audit_log'::regclass) THEN
    CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
      FOR EACH ROW EXECUTE FUNCTION yuedu_audit_log_append_only();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'audit_log_no_truncate'
                 AND tgrelid = 'audit_log'::regclass) THEN
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
      FOR EACH STATEMENT EXECUTE FUNCTION yuedu_audit_log_append_only();
  END IF;
EXCEPTION WHEN duplicate_object OR duplicate_function OR unique_violation THEN
  NULL;  -- another process created them at the same moment
END
$guard$;
"""


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, and our own BEGIN so that write sessions can ask for BEGIN IMMEDIATE."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # pysqlite must not issue its own BEGIN; we do it below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


@dataclass
class Database:
    """An engine and its session factories. Use :meth:`session_scope` for every unit of work."""

    url: str
    engine: Engine

    def __post_init__(self) -> None:
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(write_engine, expire_on_commit=False)

    @contextmanager
    def session_scope(self, *, write: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any exception.

        ``write=True`` takes the write lock at the start (SQLite ``BEGIN IMMEDIATE``), so that what
        the transaction reads stays true until it commits.
        """
        session = (self._write if write else self._read)()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def init_db(url: str | Path = "sqlite:///yuedu-acquisition.db", *, echo: bool = False) -> Database:
    """Connect to ``url`` (a SQLAlchemy URL, or a path taken as a SQLite file) and create the tables."""
    url = str(url)
    if "://" not in url:
        url = f"sqlite:///{Path(url).resolve()}"
    engine = create_engine(
        url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S} if url.startswith("sqlite") else {}
    )
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    Base.metadata.create_all(engine)
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            for ddl in _SQLITE_AUDIT_TRIGGERS:
                conn.execute(text(ddl))
    elif engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(_POSTGRES_AUDIT_GUARD)
    _log.info("acquisition database ready (%s)", engine.url.render_as_string(hide_password=True))
    return Database(url, engine)


# --- loading reference data ---------------------------------------------------------------------------


#: Optional fund columns of a budget-line frame and their defaults (today's lines have none of them).
_FUND_COLUMNS = {"channel": None, "parent_id": None, "target": None, "rollover": "return"}


def load_budget_lines(db: Database, lines: pl.DataFrame) -> int:
    """Upsert budget lines (``budget_id, period, bookstore_id, district, amount`` in yuan; optionally
    the fund columns ``channel, parent_id, target`` (yuan) and ``rollover``, see :mod:`acquisition.funds`).

    Amounts, targets and the fund columns of existing lines are updated; their reserved, committed and
    spent money is kept. Returns the number of lines loaded.
    """
    for name, default in _FUND_COLUMNS.items():
        if name not in lines.columns:
            lines = lines.with_columns(pl.lit(default, dtype=pl.Float64 if name == "target" else pl.String).alias(name))
    rows = lines.select(
        "budget_id",
        "period",
        "bookstore_id",
        "district",
        "channel",
        "parent_id",
        (pl.col("amount") * 100).round(0).cast(pl.Int64).alias("amount_fen"),
        (pl.col("target") * 100).round(0).cast(pl.Int64).alias("target_fen"),
        pl.col("rollover").fill_null("return"),
    ).to_dicts()
    with db.session_scope(write=True) as s:
        existing = set(s.scalars(select(BudgetLineRow.budget_id)))
        new = [r for r in rows if r["budget_id"] not in existing]
        old = [r for r in rows if r["budget_id"] in existing]
        if new:
            s.execute(
                insert(BudgetLineRow), [{**r, "reserved_fen": 0, "committed_fen": 0, "spent_fen": 0} for r in new]
            )
        if old:
            s.execute(update(BudgetLineRow), old)
    _log.info("loaded %d budget lines (%d new)", len(rows), len(new))
    return len(rows)


def load_data_dir(db: Database, data_dir: str | Path, *, budgets: pl.DataFrame | None = None) -> dict[str, int]:
    """Load readers, bookstores and budget lines of a data directory (``features.schema`` tables).

    Readers and bookstores are replaced; budget lines are upserted (``budgets`` overrides the
    directory's ``budgets`` table, e.g. lines from the policy file). Readers without a credit level
    get 5 and without a blocked flag are not blocked. Returns rows loaded per table.
    """
    branches = conform(scan_table(data_dir, "branches"), "branches").select("branch_id", "district")
    readers = (
        conform(scan_table(data_dir, "readers"), "readers")
        .join(branches, left_on="home_branch_id", right_on="branch_id", how="left")
        .select(
            "reader_id",
            "home_branch_id",
            "district",
            pl.col("credit_level").fill_null(5).cast(pl.Int64),
            pl.col("blocked").fill_null(False),
        )
        .collect()
    )
    bookstores = (
        conform(scan_table(data_dir, "bookstores"), "bookstores")
        .select("bookstore_id", "name", "district", "branch_id")
        .collect()
    )
    with db.session_scope(write=True) as s:
        s.execute(delete(ReaderRow))
        s.execute(delete(BookstoreRow))
        if readers.height:
            s.execute(insert(ReaderRow), readers.to_dicts())
        if bookstores.height:
            s.execute(insert(BookstoreRow), bookstores.to_dicts())
    counts = {"readers": readers.height, "bookstores": bookstores.height, "budget_lines": 0}
    if budgets is None and table_path(data_dir, "budgets").exists():
        budgets = conform(scan_table(data_dir, "budgets"), "budgets").collect()
    if budgets is None and (Path(data_dir) / FUNDS_FILE).exists():
        from acquisition.funds import load_funds_file  # funds build on this module

        budgets = load_funds_file(Path(data_dir) / FUNDS_FILE)
    if budgets is not None:
        counts["budget_lines"] = load_budget_lines(db, budgets)
    _log.info("loaded data directory %s: %s", data_dir, counts)
    return counts


def policy_budget_frame(lines: Any) -> pl.DataFrame | None:
    """The policy's ``budgets`` as a frame for :func:`load_budget_lines` (None when there are none)."""
    if not lines:
        return None
    return pl.DataFrame(
        [
            {
                "budget_id": b.budget_id,
                "period": b.period,
                "bookstore_id": b.bookstore_id,
                "district": b.district,
                "amount": b.amount_yuan,
            }
            for b in lines
        ],
        schema={
            "budget_id": pl.String,
            "period": pl.String,
            "bookstore_id": pl.String,
            "district": pl.String,
            "amount": pl.Float64,
        },
    )
