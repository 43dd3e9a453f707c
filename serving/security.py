"""Roles and tokens.

Four roles: ``reader`` (a token bound to one reader id), ``bookstore`` (an API key bound to one
bookstore), ``staff`` and ``admin``. Tokens are ``<payload>.<signature>``: base64url JSON
``{"role", "sub", "exp"}`` signed with HMAC-SHA256 under the settings' secret key, so the service needs
no session store and a token cannot be forged or re-targeted to another reader.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

ROLES = ("reader", "bookstore", "staff", "admin")


class TokenError(ValueError):
    """A token that is malformed, forged or expired."""


@dataclass(frozen=True)
class Principal:
    role: str
    subject: str  # reader id, bookstore id or staff login

    def can_act_as_staff(self) -> bool:
        return self.role in ("staff", "admin")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(role: str, subject: str, secret_key: str, ttl_s: int = 8 * 3600, now: float | None = None) -> str:
    """A signed token for ``role`` bound to ``subject``, valid for ``ttl_s`` seconds."""
    if role not in ROLES:
        raise ValueError(f"unknown role '{role}'; expected one of {ROLES}")
    payload = _b64(json.dumps({"role": role, "sub": subject, "exp": int((now or time.time()) + ttl_s)}).encode())
    sig = _b64(hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{sig}"


def verify_token(token: str, secret_key: str, now: float | None = None) -> Principal:
    """The principal of a valid token; :class:`TokenError` otherwise."""
    try:
        payload, sig = token.split(".")
    except ValueError:
        raise TokenError("malformed token") from None
    expected = _b64(hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(sig, expected):
        raise TokenError("bad token signature")
    try:
        data = json.loads(_unb64(payload))
        role, sub, exp = data["role"], str(data["sub"]), float(data["exp"])
    except (ValueError, KeyError, TypeError):
        raise TokenError("malformed token payload") from None
    if exp < (now or time.time()):
        raise TokenError("token expired")
    if role not in ROLES:
        raise TokenError("unknown role")
    return Principal(role, sub)


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
    digest = hashlib.sha256(password.encode()).hexdigest()
    if entry is None:
        hmac.compare_digest(digest, digest)
        return None
    return entry[1] if hmac.compare_digest(entry[0], digest) else None
