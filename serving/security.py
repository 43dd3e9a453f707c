"""Roles and tokens.

Four roles: ``reader`` (a token bound to one reader id), ``bookstore`` (an API key bound to one
bookstore), ``staff`` and ``admin``. Tokens are ``<payload>.<signature>``: base64url JSON
``{"role", "sub", "exp"[, "sid"]}`` signed with HMAC-SHA256 under the settings' secret key, so a token
cannot be forged or re-targeted to another reader. API tokens are stateless; the staff page's cookie
carries a ``sid`` naming a server-side session (:mod:`serving.sessions`) that logout revokes.

Everything read from a header or cookie is untrusted text: a token with non-ASCII characters is
malformed (401), never a comparison error (500). :class:`LoginThrottle` slows password guessing:
after ``max_failures`` wrong passwords for one login (or from one client) within ``window_s`` the
login is locked for ``lockout_s`` seconds, doubling on every further lockout, even for the right
password; its clock is injectable so tests need not wait.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

ROLES = ("reader", "bookstore", "staff", "admin")


class TokenError(ValueError):
    """A token that is malformed, forged or expired."""


@dataclass(frozen=True)
class Principal:
    role: str
    subject: str  # reader id, bookstore id or staff login
    session: str | None = None  # staff page session id (None for API tokens)

    def can_act_as_staff(self) -> bool:
        return self.role in ("staff", "admin")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret_key: str, payload: str) -> str:
    return _b64(hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).digest())


def issue_token(
    role: str,
    subject: str,
    secret_key: str,
    ttl_s: int = 8 * 3600,
    now: float | None = None,
    session: str | None = None,
) -> str:
    """A signed token for ``role`` bound to ``subject``, valid for ``ttl_s`` seconds (and to ``session``)."""
    if role not in ROLES:
        raise ValueError(f"unknown role '{role}'; expected one of {ROLES}")
    claims = {"role": role, "sub": subject, "exp": int((now or time.time()) + ttl_s)}
    if session is not None:
        claims["sid"] = session
    payload = _b64(json.dumps(claims).encode())
    return f"{payload}.{_sign(secret_key, payload)}"


def verify_token(token: str, secret_key: str, now: float | None = None) -> Principal:
    """The principal of a valid token; :class:`TokenError` otherwise."""
    if not token.isascii():
        # headers and cookies arrive as latin-1 text: compare_digest refuses non-ASCII str (TypeError)
        raise TokenError("malformed token")
    try:
        payload, sig = token.split(".")
    except ValueError:
        raise TokenError("malformed token") from None
    if not hmac.compare_digest(sig.encode(), _sign(secret_key, payload).encode()):
        raise TokenError("bad token signature")
    try:
        data = json.loads(_unb64(payload))
        role, sub, exp = data["role"], str(data["sub"]), float(data["exp"])
        sid = data.get("sid")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise TokenError("malformed token payload") from None
    if exp < (now or time.time()):
        raise TokenError("token expired")
    if role not in ROLES:
        raise TokenError("unknown role")
    return Principal(role, sub, str(sid) if sid is not None else None)


def parse_staff_users(spec: str) -> dict[str, tuple[str, str]]:
    """``'alice:pw[:role],bob:pw2'`` -> ``{login: (password_sha256, role)}``."""
    users: dict[str, tuple[str, str]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        fields = part.split(":")
        if len(fields) not in (2, 3) or not fields[0] or not fields[1]:
            raise ValueError(f"YUEDU_STAFF_USERS: entry '{fields[0] if fields else part}' must be user:password[:role]")
        role = fields[2] if len(fields) == 3 else "staff"
        if role not in ("staff", "admin"):
            raise ValueError(f"YUEDU_STAFF_USERS: role of '{fields[0]}' must be staff or admin, got '{role}'")
        users[fields[0]] = (hashlib.sha256(fields[1].encode()).hexdigest(), role)
    return users


def check_password(users: dict[str, tuple[str, str]], login: str, password: str) -> str | None:
    """The role of a staff login whose password matches, else None (constant-time compare)."""
    entry = users.get(login)
    digest = hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest()
    if entry is None:
        hmac.compare_digest(digest, digest)
        return None
    return entry[1] if hmac.compare_digest(entry[0], digest) else None


def csrf_token(secret_key: str, session: str) -> str:
    """The CSRF token of a staff session: bound to it, so a token from another session is refused."""
    return _sign(secret_key, f"csrf:{session}")


def check_csrf(secret_key: str, session: str | None, token: str) -> bool:
    """True when ``token`` is the CSRF token of ``session`` (constant-time)."""
    if not session or not token or not token.isascii():
        return False
    return hmac.compare_digest(token.encode(), csrf_token(secret_key, session).encode())


@dataclass
class _Attempts:
    failures: list[float] = field(default_factory=list)
    lockouts: int = 0
    locked_until: float = 0.0


@dataclass
class LoginThrottle:
    """Failed-login counting per key (a login name, a client address) with escalating lockout.

    ``retry_after(keys)`` is the seconds until any of ``keys`` may try again (0 = now);
    ``failure(keys)`` counts a wrong password for each key; ``success(keys)`` forgets them.
    """

    max_failures: int = 5
    window_s: float = 15 * 60.0
    lockout_s: float = 60.0
    max_lockout_s: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _state: dict[str, _Attempts] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, keys: tuple[str, ...]) -> int:
        now = self.clock()
        with self._lock:
            waits = [self._state[k].locked_until - now for k in keys if k in self._state]
        return max(0, math.ceil(max(waits, default=0.0)))

    def failure(self, keys: tuple[str, ...]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                entry = self._state.setdefault(key, _Attempts())
                entry.failures = [t for t in entry.failures if now - t < self.window_s] + [now]
                if len(entry.failures) >= self.max_failures:
                    wait = min(self.lockout_s * 2**entry.lockouts, self.max_lockout_s)
                    entry.locked_until, entry.failures = now + wait, []
                    entry.lockouts += 1
            if len(self._state) > 100_000:  # bound the memory an attacker can make us hold
                self._state = {k: v for k, v in self._state.items() if v.locked_until > now or v.failures}

    def success(self, keys: tuple[str, ...]) -> None:
        with self._lock:
            for key in keys:
                self._state.pop(key, None)


class Throttle(Protocol):
    """What :class:`LoginGuard` needs of a throttle: :class:`LoginThrottle` (one process) or
    :class:`serving.sessions.SharedLoginThrottle` (every worker, through the database)."""

    def retry_after(self, keys: tuple[str, ...]) -> int: ...
    def failure(self, keys: tuple[str, ...]) -> None: ...
    def success(self, keys: tuple[str, ...]) -> None: ...


@dataclass
class LoginGuard:
    """Two throttles: per login name (``max_failures``) and per client address (four times as many,
    so one mistyping colleague behind the library's NAT does not lock out the office)."""

    per_login: Throttle
    per_client: Throttle

    @classmethod
    def create(cls, max_failures: int = 5, lockout_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        return cls(
            LoginThrottle(max_failures=max_failures, lockout_s=lockout_s, clock=clock),
            LoginThrottle(max_failures=4 * max_failures, lockout_s=lockout_s, clock=clock),
        )

    @staticmethod
    def _keys(login: str, client: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (login.casefold()[:64],), ((client or "unknown"),)

    def retry_after(self, login: str, client: str | None) -> int:
        by_login, by_client = self._keys(login, client)
        return max(self.per_login.retry_after(by_login), self.per_client.retry_after(by_client))

    def failure(self, login: str, client: str | None) -> None:
        by_login, by_client = self._keys(login, client)
        self.per_login.failure(by_login)
        self.per_client.failure(by_client)

    def success(self, login: str, client: str | None) -> None:
        self.per_login.success(self._keys(login, client)[0])
