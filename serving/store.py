"""The service's own tables (next to the ledger's, on the same SQLAlchemy URL) share one MetaData.

Each module defines its tables on :data:`metadata`; ``metadata.create_all`` (idempotent) creates
every one of them, so a fresh database gets them all whichever module is used first.
"""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()
