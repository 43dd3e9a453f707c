"""Pseudonymisation of reader identifiers outside the core store.

Borrowing history is sensitive personal data. Anything that leaves the core tables — logs, metrics,
exports, audit details — names a reader only by a keyed HMAC of the id. The key comes from the
environment (``YUEDU_PSEUDONYM_KEY``); without one, a random per-process key is used, so pseudonyms are
still unlinkable to raw ids (but differ between processes).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

_PROCESS_KEY = secrets.token_bytes(32)


def _key() -> bytes:
    env = os.environ.get("YUEDU_PSEUDONYM_KEY")
    return env.encode() if env else _PROCESS_KEY


def pseudonymise(reader_id: str, key: bytes | None = None) -> str:
    """A stable, non-reversible pseudonym ``p_<16 hex>`` for a reader id (keyed HMAC-SHA256)."""
    digest = hmac.new(key or _key(), str(reader_id).encode(), hashlib.sha256).hexdigest()
    return "p_" + digest[:16]
