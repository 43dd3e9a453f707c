"""Server-side staff page sessions, so logging out really ends a session.

The staff cookie is a signed token carrying a session id (``sid``); the session itself is a row in
the service's database (table ``staff_sessions``, created next to the ledger's tables on the same
SQLAlchemy URL), so a revoked session stays revoked across workers and restarts. A cookie is honoured
only while its row exists, is not revoked and has not expired. Logins are recorded by login name and
role only (the staff, not readers).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, String, Table, insert, select, update

from acquisition.db import Database
from features.bounds import ID_MAX
from serving.store import metadata

staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("login", String(ID_MAX), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=True),
)


class StaffSessions:
    """Open, check and revoke staff sessions in ``db`` (times from the caller: the service's clock)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        metadata.create_all(db.engine)

    def open(self, login: str, role: str, ttl_s: int, now: datetime) -> str:
        session_id = secrets.token_urlsafe(24)
        row = {
            "session_id": session_id,
            "login": login,
            "role": role,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl_s),
            "revoked_at": None,
        }
        with self.db.session_scope(write=True) as s:
            s.execute(insert(staff_sessions).values(**row))
        return session_id

    def active(self, session_id: str | None, now: datetime) -> bool:
        if not session_id:
            return False
        t = staff_sessions.c
        with self.db.session_scope() as s:
            row = s.execute(select(t.expires_at, t.revoked_at).where(t.session_id == session_id)).first()
        return row is not None and row.revoked_at is None and row.expires_at > now

    def revoke(self, session_id: str | None, now: datetime) -> bool:
        """End a session; True when it was active."""
        if not session_id:
            return False
        t = staff_sessions.c
        with self.db.session_scope(write=True) as s:
            done = s.execute(
                update(staff_sessions).where(t.session_id == session_id, t.revoked_at.is_(None)).values(revoked_at=now)
            )
        return bool(done.rowcount)
