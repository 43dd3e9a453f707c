"""Readers' data rights (PIPL Art. 45 and 47): see what the library holds, erase the reading profile.

:func:`export` gathers one reader's loans, holds and e-book events (the library's tables in the data
directory), the live events the service holds, their purchase requests (ledger) and preferences.
:meth:`DataRights.erase_profile` drops the live events, forgets the preferences and puts the reader
on the training exclusion list (table ``training_exclusions``; ``yuedu`` training reads it as a file
of ids, :func:`write_exclusions`) so the next model no longer knows them. The loan records the library
must keep stay in its own tables, pseudonymised (:func:`pseudonymise_records`): their reader id becomes
``erased:<HMAC>`` (:func:`features.privacy.erased_pseudonym`), which every event reader skips, so the
next training cannot use them even without the exclusion list. Both operations are written to
``data_rights_audit`` (who, which reader, what, when) in the service database.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path

import polars as pl
from sqlalchemy import Column, DateTime, Integer, String, Table, insert, select

from acquisition.db import Database, PurchaseRequestRow
from features.bounds import ACTOR_MAX, ID_MAX
from features.privacy import erased_pseudonym
from serving.store import metadata

training_exclusions = Table(
    "training_exclusions",
    metadata,
    Column("reader_id", String(ID_MAX), primary_key=True),
    Column("excluded_at", DateTime, nullable=False),
)

data_rights_audit = Table(
    "data_rights_audit",
    metadata,
    Column("audit_id", Integer, primary_key=True, autoincrement=True),
    Column("reader_id", String(ID_MAX), nullable=False),
    Column("action", String(16), nullable=False),  # export | erase
    Column("actor", String(ACTOR_MAX), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("detail", String(200), nullable=False, default=""),
)

#: Tables of the data directory holding a reader's own records, and their time column.
LIBRARY_TABLES = {"loans": "borrowed_at", "holds": "placed_at", "ebook_events": "occurred_at"}


#: One rewrite of the data directory's tables at a time (in this process).
_REWRITE = threading.Lock()


def library_records(data_dir: Path, reader_id: str) -> dict[str, list[dict]]:
    """The reader's rows of each library table present in ``data_dir`` (lazy scans, one filter each),
    those kept pseudonymised after an erasure included and marked ``pseudonymised``."""
    ids = [reader_id, erased_pseudonym(reader_id)]
    out = {}
    for table, order in LIBRARY_TABLES.items():
        path = Path(data_dir) / f"{table}.parquet"
        if path.exists():
            frame = pl.scan_parquet(path).filter(pl.col("reader_id").is_in(ids)).sort(order).collect()
            out[table] = frame.with_columns(pseudonymised=pl.col("reader_id") != reader_id).drop("reader_id").to_dicts()
        else:
            out[table] = []
    return out


def pseudonymise_records(data_dir: Path, reader_id: str) -> dict[str, int]:
    """Replace ``reader_id`` by its erased pseudonym in every library table of ``data_dir`` (rows kept,
    nothing else changed); rows rewritten per table. Each file is replaced atomically (written beside
    it, then renamed), so a reader of the table sees the old or the new file, never half of one."""
    pseudonym = erased_pseudonym(reader_id)
    done = {}
    with _REWRITE:
        for table in LIBRARY_TABLES:
            path = Path(data_dir) / f"{table}.parquet"
            if not path.exists():
                continue
            frame = pl.read_parquet(path)
            mine = frame["reader_id"] == reader_id
            done[table] = int(mine.sum())
            if done[table]:
                kept = frame.with_columns(
                    reader_id=pl.when(mine).then(pl.lit(pseudonym)).otherwise(pl.col("reader_id"))
                )
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                kept.write_parquet(tmp)
                os.replace(tmp, path)
    return done


class DataRights:
    """Exclusion list and audit trail in ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        metadata.create_all(db.engine)

    def audit(self, reader_id: str, action: str, actor: str, now: datetime, detail: str = "") -> None:
        row = {"reader_id": reader_id, "action": action, "actor": actor, "at": now, "detail": detail[:200]}
        with self.db.session_scope(write=True) as s:
            s.execute(insert(data_rights_audit).values(**row))

    def audit_trail(self, reader_id: str) -> list[dict]:
        t = data_rights_audit.c
        with self.db.session_scope() as s:
            rows = s.execute(
                select(t.action, t.actor, t.at, t.detail).where(t.reader_id == reader_id).order_by(t.audit_id)
            ).all()
        return [r._asdict() for r in rows]

    def requests(self, reader_id: str) -> list[dict]:
        r = PurchaseRequestRow
        cols = (r.request_id, r.bookstore_id, r.isbn, r.title, r.price_fen, r.channel, r.requested_at, r.status)
        with self.db.session_scope() as s:
            rows = s.execute(select(*cols).where(r.reader_id == reader_id).order_by(r.requested_at)).all()
        return [{**row._asdict(), "price": row.price_fen / 100} for row in rows]

    def exclude(self, reader_id: str, now: datetime) -> None:
        t = training_exclusions.c
        with self.db.session_scope(write=True) as s:
            if s.execute(select(t.reader_id).where(t.reader_id == reader_id)).first() is None:
                s.execute(insert(training_exclusions).values(reader_id=reader_id, excluded_at=now))

    def is_excluded(self, reader_id: str) -> bool:
        t = training_exclusions.c
        with self.db.session_scope() as s:
            return s.execute(select(t.reader_id).where(t.reader_id == reader_id)).first() is not None

    def excluded(self) -> list[str]:
        with self.db.session_scope() as s:
            return list(s.scalars(select(training_exclusions.c.reader_id).order_by(training_exclusions.c.reader_id)))


def write_exclusions(rights: DataRights, path: Path) -> int:
    """The exclusion list as a text file (one reader id per line) for ``ExperimentConfig.exclude_readers``."""
    ids = rights.excluded()
    Path(path).write_text("".join(f"{r}\n" for r in ids), encoding="utf-8")
    return len(ids)
