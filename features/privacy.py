"""Pseudonymisation of reader identifiers outside the core store.

Borrowing history is sensitive personal data. Anything that leaves the core tables — logs, metrics,
exports, audit details — names a reader only by a keyed HMAC of the id. The key comes from the
environment (``YUEDU_PSEUDONYM_KEY``); without one, a random per-process key is used (and a warning
logged once), so pseudonyms are still unlinkable to raw ids but differ between processes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from functools import lru_cache

_log = logging.getLogger(__name__)

PSEUDONYM_ENV = "YUEDU_PSEUDONYM_KEY"
#: Reader id of the records a reader's erasure kept (loans the library must keep): these rows are no
#: one's reading history any more, so event readers (:func:`features.interactions.load_interactions`)
#: leave them out and no training or profile sees them.
ERASED_PREFIX = "erased:"


@lru_cache(maxsize=1)
def _random_key() -> bytes:
    _log.warning("%s is not set: reader pseudonyms in logs are random per process", PSEUDONYM_ENV)
    return secrets.token_bytes(32)


def _key() -> bytes:
    env = os.environ.get(PSEUDONYM_ENV)
    return env.encode() if env else _random_key()


def pseudonymise(reader_id: str, key: bytes | str | None = None) -> str:
    """A stable, non-reversible pseudonym ``r:<16 hex>`` for a reader id (keyed HMAC-SHA256)."""
    k = _key() if key is None else (key.encode() if isinstance(key, str) else key)
    return "r:" + hmac.new(k, str(reader_id).encode(), hashlib.sha256).hexdigest()[:16]


def erased_pseudonym(reader_id: str, key: bytes | str | None = None) -> str:
    """The reader id written into the records an erasure keeps: ``erased:<16 hex>`` (the same keyed HMAC
    as :func:`pseudonymise`, so the library, holding the key, can still answer the reader about them)."""
    return ERASED_PREFIX + pseudonymise(reader_id, key)[2:]
