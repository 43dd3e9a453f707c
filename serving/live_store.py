"""Live reader events and the served-model generation, shared by every worker through the database.

``yuedu serve --workers N`` runs N processes. What one of them learns at run time must reach all of
them, and survive any one of them being killed:

* **Live events** (``POST /v1/readers/{id}/events``) are appended to ``live_events`` (an ordered
  log, ``seq`` ascending) and committed *before* the 202 answer, so a worker killed after answering
  loses nothing, and a worker killed before answering never said it had the event (the app retries).
  Every worker applies the log to its in-memory recommendation service in ``seq`` order: at once for
  its own writes (read-your-writes), and by polling for the others' (``live_sync_s``, 0.2 s by
  default: the stated delay within which every worker has the same view).
* **Erasure** (``DELETE /v1/readers/{id}/profile``) deletes the reader's event rows and appends one
  ``forget`` marker, so the other workers drop the reader's events from memory too; markers are
  pruned once no running worker can still need them (:data:`FORGET_KEEP_S`).
* **Model reloads** (``POST /v1/admin/reload``) bump ``served_model.generation``; every other worker
  sees the new generation in its next poll and reloads the same source.

The tables live in the service's database (the ledger's SQLAlchemy URL: SQLite file or PostgreSQL),
the core store, next to the readers table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, delete, func, insert, select, update

from acquisition.db import Database
from features.bounds import ID_MAX
from serving.store import metadata

#: How long a ``forget`` marker is kept: far longer than any worker's poll interval.
FORGET_KEEP_S = 3600.0
#: Most log rows applied per poll (a worker that fell far behind catches up over a few polls).
SYNC_BATCH = 10_000

live_events = Table(
    "live_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("reader_id", String(ID_MAX), nullable=False),
    Column("title_id", String(ID_MAX), nullable=True),  # None for a forget marker
    Column("kind", String(8), nullable=False),  # "event" | "forget"
    Column("at", DateTime, nullable=False),
    Index("ix_live_events_reader", "reader_id"),
    # never reuse a deleted row's seq (SQLite would, after an erasure deletes the newest rows)
    sqlite_autoincrement=True,
)

served_model = Table(
    "served_model",
    metadata,
    Column("slot", Integer, primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("model_dir", String(1024), nullable=True),
    Column("requested_at", DateTime, nullable=False),
)


@dataclass(frozen=True)
class LogRow:
    seq: int
    reader_id: str
    title_id: str | None
    kind: str


class LiveStore:
    """Append to and read the shared live-event log and the served-model generation in ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        metadata.create_all(db.engine)

    # ------------------------------------------------------------------ events

    def append(self, reader_id: str, title_id: str, now: datetime) -> int:
        """Store one event (committed on return); its position in the log."""
        with self.db.session_scope(write=True) as s:
            row = s.execute(
                insert(live_events)
                .values(reader_id=reader_id, title_id=title_id, kind="event", at=now)
                .returning(live_events.c.seq)
            )
            return int(row.scalar_one())

    def forget(self, reader_id: str, now: datetime) -> tuple[int, int]:
        """Delete the reader's stored events and log a forget marker: (events deleted, marker's seq).
        Old markers are pruned in the same transaction."""
        t = live_events.c
        with self.db.session_scope(write=True) as s:
            gone = s.execute(delete(live_events).where(t.reader_id == reader_id, t.kind == "event")).rowcount
            s.execute(delete(live_events).where(t.kind == "forget", t.at < now - timedelta(seconds=FORGET_KEEP_S)))
            seq = s.execute(
                insert(live_events).values(reader_id=reader_id, title_id=None, kind="forget", at=now).returning(t.seq)
            ).scalar_one()
        return int(gone or 0), int(seq)

    def since(self, seq: int, limit: int = SYNC_BATCH) -> list[LogRow]:
        """Log rows after ``seq``, in order (at most ``limit``)."""
        t = live_events.c
        with self.db.session_scope() as s:
            rows = s.execute(
                select(t.seq, t.reader_id, t.title_id, t.kind).where(t.seq > seq).order_by(t.seq).limit(limit)
            ).all()
        return [LogRow(int(r.seq), r.reader_id, r.title_id, r.kind) for r in rows]

    def count(self) -> int:
        with self.db.session_scope() as s:
            return int(s.scalar(select(func.count()).select_from(live_events).where(live_events.c.kind == "event")))

    # ------------------------------------------------------------------ served model

    def generation(self) -> tuple[int, str | None]:
        """The current served-model generation and the model directory it asked for (None: configured)."""
        with self.db.session_scope() as s:
            row = s.execute(select(served_model.c.generation, served_model.c.model_dir)).first()
        return (0, None) if row is None else (int(row.generation), row.model_dir)

    def bump_generation(self, model_dir: str | None, now: datetime) -> int:
        """Ask every worker to reload (``model_dir`` or the configured source); the new generation."""
        c = served_model.c
        with self.db.session_scope(write=True) as s:
            current = s.execute(select(c.generation).where(c.slot == 1).with_for_update()).scalar()
            if current is None:
                s.execute(insert(served_model).values(slot=1, generation=1, model_dir=model_dir, requested_at=now))
                return 1
            s.execute(
                update(served_model)
                .where(c.slot == 1)
                .values(generation=current + 1, model_dir=model_dir, requested_at=now)
            )
            return int(current) + 1
