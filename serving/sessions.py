"""Server-side staff page sessions, so logging out really ends a session.

The staff cookie is a signed token carrying a session id (``sid``); the session itself is a row in
the service's database (table ``staff_sessions``, created next to the ledger's tables on the same
SQLAlchemy URL), so a revoked session stays revoked across workers and restarts. A cookie is honoured
only while its row exists, is not revoked and has not expired. Logins are recorded by login name and
role only (the staff, not readers).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, Float, Integer, String, Table, delete, func, insert, select, update

from acquisition.db import Database
from features.bounds import ID_MAX
from serving.security import LoginGuard
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


login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(160), primary_key=True),  # "login:<name>" or "client:<address>"
    # times of the failures in the window, seconds since the epoch (every worker's clock), comma-separated
    Column("recent", String(4000), nullable=False),
    Column("lockouts", Integer, nullable=False),
    Column("locked_until", Float, nullable=False),
)


class SharedLoginThrottle:
    """:class:`serving.security.LoginThrottle` with its counts in the database (table
    ``login_failures``), so the workers of ``yuedu serve --workers N`` lock a login together: N
    workers no longer allow N times the failures. Same rule: ``max_failures`` wrong passwords within
    ``window_s`` lock the key for ``lockout_s``, doubling per lockout up to ``max_lockout_s``."""

    def __init__(
        self,
        db: Database,
        scope: str,
        *,
        max_failures: int = 5,
        window_s: float = 15 * 60.0,
        lockout_s: float = 60.0,
        max_lockout_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db, self.scope, self.clock = db, scope, clock
        self.max_failures, self.window_s = max_failures, window_s
        self.lockout_s, self.max_lockout_s = lockout_s, max_lockout_s
        metadata.create_all(db.engine)

    def _key(self, key: str) -> str:
        return f"{self.scope}:{key}"[:160]

    def retry_after(self, keys: tuple[str, ...]) -> int:
        now, t = self.clock(), login_failures.c
        with self.db.session_scope() as s:
            until = s.scalar(select(func.max(t.locked_until)).where(t.key.in_([self._key(k) for k in keys])))
        return max(0, math.ceil((until or 0.0) - now))

    def failure(self, keys: tuple[str, ...]) -> None:
        now, t = self.clock(), login_failures.c
        with self.db.session_scope(write=True) as s:
            for key in map(self._key, keys):
                # two workers failing the same login at once: one inserts, the other waits on the row lock
                s.execute(_insert_absent(s).values(key=key, recent="", lockouts=0, locked_until=0.0))
                row = s.execute(select(login_failures).where(t.key == key).with_for_update()).one()
                times = [float(x) for x in row.recent.split(",") if x]
                lockouts, until = row.lockouts, row.locked_until
                times = [x for x in times if now - x < self.window_s][-self.max_failures :] + [now]
                if len(times) >= self.max_failures:
                    until = now + min(self.lockout_s * 2**lockouts, self.max_lockout_s)
                    times, lockouts = [], lockouts + 1
                recent = ",".join(repr(x) for x in times)
                s.execute(
                    update(login_failures)
                    .where(t.key == key)
                    .values(recent=recent, lockouts=lockouts, locked_until=until)
                )

    def success(self, keys: tuple[str, ...]) -> None:
        with self.db.session_scope(write=True) as s:
            s.execute(delete(login_failures).where(login_failures.c.key.in_([self._key(k) for k in keys])))


def _insert_absent(s):
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``login_failures`` in the session's dialect."""
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(login_failures).on_conflict_do_nothing(index_elements=["key"])


def shared_login_guard(db: Database, max_failures: int, lockout_s: float) -> LoginGuard:
    """The service's login guard: per login and per client address (4x the failures), in the database."""
    return LoginGuard(
        SharedLoginThrottle(db, "login", max_failures=max_failures, lockout_s=lockout_s),
        SharedLoginThrottle(db, "client", max_failures=4 * max_failures, lockout_s=lockout_s),
    )
