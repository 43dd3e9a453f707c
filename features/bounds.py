"""Length bounds of user-supplied text: the ONE source for the API schemas and the database columns.

A field accepted by the API fits its column on every database (PostgreSQL ``VARCHAR(n)`` refuses a
longer value; SQLite would silently store megabytes), so a bound is declared once here and used by
``serving.schemas`` / ``acquisition.counter`` (``max_length``) and ``acquisition.db``
(``String(n)``). Lengths count characters, as both databases do.
"""

from __future__ import annotations

#: Reader, bookstore, branch, title and staff-login ids.
ID_MAX = 64
#: ISBN as scanned (hyphens and spaces allowed before normalisation).
ISBN_MAX = 32
TITLE_MAX = 500
AUTHOR_MAX = 200
PUBLISHER_MAX = 200
#: CLC class marks such as ``I247.5``, and category codes.
CLASS_MAX = 32
#: Free-text notes and decision messages.
NOTE_MAX = 2000
#: ``Idempotency-Key`` header (a UUID is 36).
IDEMPOTENCY_KEY_MIN = 8
IDEMPOTENCY_KEY_MAX = 200
#: Who did something: ``role:subject`` (``bookstore:BS-11``, ``staff:alice``).
ACTOR_MAX = 80
#: Staff login name and password.
LOGIN_MAX = 64
PASSWORD_MAX = 200

# --- numbers, dates and bodies (issue 17: every field declares its range) ----------------------------

#: Publication years a purchase request may carry (printed books; a later year is a typo).
PUB_YEAR_MIN = 1400
PUB_YEAR_MAX = 2100
#: Timestamps sent by clients (``requested_at``): anything outside is a broken terminal clock.
TIMESTAMP_MIN = "1900-01-01T00:00:00+00:00"
TIMESTAMP_MAX = "2201-01-01T00:00:00+00:00"
#: Request bodies larger than this are refused with 413 before they are parsed.
BODY_MAX_BYTES = 2 * 1024 * 1024
#: Page size of list endpoints (``limit``) and the largest ``offset``.
PAGE_MAX = 200
OFFSET_MAX = 1_000_000
#: Free-text search queries (``GET /v1/titles?q=``).
QUERY_MAX = 100
