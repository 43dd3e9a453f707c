"""Per-reader choices about personalisation (PIPL Art. 24): stored, and honoured by every path.

Table ``reader_preferences`` lives in the service database next to the ledger (same SQLAlchemy URL,
SQLite or PostgreSQL). A reader without a row has the defaults: personalised and promoted lists.
``personalised = False`` means no use of the reader's history anywhere: the service answers with
filtered popularity and no history-based reasons, the nightly batch lists leave the reader out
(:func:`opted_out`), and profiling analytics skip them. ``promotion = False`` turns the library's
reading-promotion boosts off (the model's own ranking).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Column, DateTime, String, Table, delete, insert, select, update

from acquisition.db import Database
from features.bounds import ID_MAX
from serving.store import metadata

reader_preferences = Table(
    "reader_preferences",
    metadata,
    Column("reader_id", String(ID_MAX), primary_key=True),
    Column("personalised", Boolean, nullable=False),
    Column("promotion", Boolean, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)


@dataclass(frozen=True)
class Preferences:
    personalised: bool = True
    promotion: bool = True
    updated_at: datetime | None = None  # None: never set (the defaults)


class ReaderPreferences:
    """Read and write readers' preferences in ``db`` (times from the caller: the service's clock)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        metadata.create_all(db.engine)

    def get(self, reader_id: str) -> Preferences:
        t = reader_preferences.c
        with self.db.session_scope() as s:
            row = s.execute(select(t.personalised, t.promotion, t.updated_at).where(t.reader_id == reader_id)).first()
        return Preferences() if row is None else Preferences(row.personalised, row.promotion, row.updated_at)

    def put(self, reader_id: str, personalised: bool, promotion: bool, now: datetime) -> Preferences:
        values = {"personalised": personalised, "promotion": promotion, "updated_at": now}
        t = reader_preferences.c
        with self.db.session_scope(write=True) as s:
            done = s.execute(update(reader_preferences).where(t.reader_id == reader_id).values(**values))
            if not done.rowcount:
                s.execute(insert(reader_preferences).values(reader_id=reader_id, **values))
        return Preferences(personalised, promotion, now)

    def forget(self, reader_id: str) -> None:
        with self.db.session_scope(write=True) as s:
            s.execute(delete(reader_preferences).where(reader_preferences.c.reader_id == reader_id))

    def opted_out(self) -> list[str]:
        """Readers who refused personalisation (for batch jobs and analytics)."""
        t = reader_preferences.c
        with self.db.session_scope() as s:
            return list(s.scalars(select(t.reader_id).where(t.personalised.is_(False))).all())

    def promotion_refused(self) -> list[str]:
        """Readers who turned the reading-promotion boosts off (for batch jobs)."""
        t = reader_preferences.c
        with self.db.session_scope() as s:
            return list(s.scalars(select(t.reader_id).where(t.promotion.is_(False))).all())
