"""What the network holds, per ISBN, for O(1) answers at the counter; and the closed loop that turns
a received reader-chosen book into a title, a copy and (for online requests) a hold.

Built once from a data directory's ``titles`` and ``copies`` with polars group-bys into two dicts:
copies per ISBN network-wide (lost and withdrawn copies excluded) and copies on shelf per
(ISBN, branch). :meth:`Holdings.add_copy` keeps them current between rebuilds.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from acquisition.db import BookstoreRow, Database, PurchaseRequestRow
from acquisition.errors import RequestNotFound, RequestNotReceivable
from acquisition.lifecycle import REQUEST_TRANSITIONS, REQUESTS
from features.schema import RequestStatus

_log = logging.getLogger(__name__)

#: Copy statuses that still count as held by the network.
HELD_STATUSES = ("on_shelf", "on_loan", "in_transit")


class Holdings:
    """Copy counts by ISBN-13: ``network_copies(isbn)`` and ``on_shelf(isbn, branch)``, O(1) each.

    Thread-safe: counters read concurrently while :meth:`add_copy` updates under a lock.
    """

    def __init__(
        self,
        network: dict[str, int] | None = None,
        on_shelf: dict[tuple[str, str], int] | None = None,
        title_ids: dict[str, str] | None = None,
    ) -> None:
        self.network_: dict[str, int] = dict(network or {})
        self.on_shelf_: dict[tuple[str, str], int] = dict(on_shelf or {})
        self.title_ids_: dict[str, str] = dict(title_ids or {})
        self._lock = threading.Lock()

    @classmethod
    def from_frames(cls, titles: pl.DataFrame | pl.LazyFrame, copies: pl.DataFrame | pl.LazyFrame) -> Holdings:
        """Count copies of ``copies`` (``title_id, branch_id, status``) by the ``isbn13`` of ``titles``."""
        keyed = (
            copies.lazy()
            .select("title_id", "branch_id", "status")
            .join(titles.lazy().select("title_id", "isbn13").drop_nulls("isbn13"), on="title_id", how="inner")
        )
        network = (
            keyed.filter(pl.col("status").is_in(HELD_STATUSES)).group_by("isbn13").agg(pl.len().alias("n")).collect()
        )
        shelf = (
            keyed.filter(pl.col("status") == "on_shelf")
            .group_by("isbn13", "branch_id")
            .agg(pl.len().alias("n"))
            .collect()
        )
        ids = titles.lazy().select("isbn13", "title_id").drop_nulls("isbn13").unique("isbn13", keep="first").collect()
        holdings = cls(
            dict(zip(network["isbn13"].to_list(), network["n"].to_list(), strict=True)),
            dict(
                zip(
                    zip(shelf["isbn13"].to_list(), shelf["branch_id"].to_list(), strict=True),
                    shelf["n"].to_list(),
                    strict=True,
                )
            ),
            dict(zip(ids["isbn13"].to_list(), ids["title_id"].to_list(), strict=True)),
        )
        _log.info("holdings: %d ISBNs held, %d (ISBN, branch) pairs on shelf", len(holdings.network_), len(shelf))
        return holdings

    @classmethod
    def from_data_dir(cls, data_dir: str | Path) -> Holdings:
        """Holdings of a data directory's ``titles`` and ``copies`` tables."""
        from features.schema import scan_table

        return cls.from_frames(scan_table(data_dir, "titles"), scan_table(data_dir, "copies"))

    def network_copies(self, isbn13: str | None) -> int:
        """Copies of the ISBN held anywhere in the network (on shelf, on loan or in transit)."""
        return self.network_.get(isbn13, 0) if isbn13 else 0

    def on_shelf(self, isbn13: str | None, branch_id: str | None) -> int:
        """Copies of the ISBN on the shelf at ``branch_id``."""
        return self.on_shelf_.get((isbn13, branch_id), 0) if isbn13 and branch_id else 0

    def title_id(self, isbn13: str) -> str | None:
        """The catalogue's title id for an ISBN, if the network has the title."""
        return self.title_ids_.get(isbn13)

    def add_copy(self, isbn13: str, branch_id: str, *, status: str = "on_shelf", title_id: str | None = None) -> None:
        """Count one more copy (e.g. a received reader-chosen book)."""
        with self._lock:
            if status in HELD_STATUSES:
                self.network_[isbn13] = self.network_.get(isbn13, 0) + 1
            if status == "on_shelf":
                self.on_shelf_[(isbn13, branch_id)] = self.on_shelf_.get((isbn13, branch_id), 0) + 1
            if title_id is not None:
                self.title_ids_.setdefault(isbn13, title_id)


@dataclass(frozen=True)
class Received:
    """Rows for the analytical tables after a reader-chosen book is received (``features.schema``
    ``titles``, ``copies`` and ``holds`` columns); ``title`` is None when the title already existed."""

    title: dict[str, Any] | None
    copy: dict[str, Any]
    hold: dict[str, Any] | None


#: Request statuses from which the library can receive the book (from the lifecycle table).
RECEIVABLE = tuple(
    s.value for s in REQUEST_TRANSITIONS if s is not None and RequestStatus.RECEIVED in REQUEST_TRANSITIONS[s]
)


@dataclass(frozen=True)
class _Bought:
    """What receiving needs to know of a bought request (read inside its transaction)."""

    request_id: str
    isbn13: str
    channel: str
    reader_id: str
    branch_id: str
    title: str | None
    author: str | None
    publisher: str | None
    pub_year: int | None
    clc_class: str | None
    price_fen: int


def receive_request(
    db: Database,
    holdings: Holdings,
    request_id: str,
    *,
    actor: str,
    now: datetime | None = None,
    branch_id: str | None = None,
    copy_id: str | None = None,
) -> Received:
    """Close the loop for a bought book: mark the request ``received``, count the copy, and return
    the new ``titles`` / ``copies`` / ``holds`` rows for the catalogue and the content model.

    The copy goes to ``branch_id`` (default: the branch that catalogues the bookstore's purchases)
    with source ``reader_choice``. Counter requests were already lent to the reader at the bookstore,
    so the copy goes on the shelf; online requests get a hold for the requester and the copy waits
    in transit. Raises :class:`RequestNotFound` or :class:`RequestNotReceivable`.
    """
    now = now or datetime.now()
    with db.session_scope(write=True) as s:
        bought = _mark_received(s, request_id, branch_id, actor=actor, now=now)
    existing_title = holdings.title_id(bought.isbn13)
    title_id = existing_title or f"RC-{bought.isbn13}"
    title_row = _title_row(bought, title_id, now) if existing_title is None else None
    status = "in_transit" if bought.channel == "online" else "on_shelf"
    copy_row = {
        "copy_id": copy_id or f"RC-{uuid.uuid4().hex[:12]}",
        "title_id": title_id,
        "branch_id": bought.branch_id,
        "status": status,
        "acquired_at": now.date() if isinstance(now, datetime) else date.today(),
        "source": "reader_choice",
    }
    hold_row = None
    if bought.channel == "online":
        hold_row = {
            "hold_id": f"H-{request_id}",
            "reader_id": bought.reader_id,
            "title_id": title_id,
            "branch_id": bought.branch_id,
            "placed_at": now,
            "fulfilled_at": None,
        }
    holdings.add_copy(bought.isbn13, bought.branch_id, status=status, title_id=title_id)
    _log.info("received request %s as copy %s of %s", request_id, copy_row["copy_id"], title_id)
    return Received(title_row, copy_row, hold_row)


def _mark_received(s: Session, request_id: str, branch_id: str | None, *, actor: str, now: datetime) -> _Bought:
    """Move the request to ``received`` (through the lifecycle, which audits it) and read what the
    catalogue needs."""
    req = s.get(PurchaseRequestRow, request_id)
    if req is None:
        raise RequestNotFound(f"purchase request {request_id}: not found")
    if req.status not in RECEIVABLE or req.isbn13 is None:
        raise RequestNotReceivable(
            f"purchase request {request_id}: status '{req.status}' cannot be received (needs one of {RECEIVABLE})"
        )
    if branch_id is None:
        branch_id = s.scalar(select(BookstoreRow.branch_id).where(BookstoreRow.bookstore_id == req.bookstore_id))
    if branch_id is None:
        raise RequestNotReceivable(f"purchase request {request_id}: no branch to catalogue the book at")
    REQUESTS.move(s, req, RequestStatus.RECEIVED, "receive", actor=actor, at=now, details={"branch_id": branch_id})
    return _Bought(
        request_id,
        req.isbn13,
        req.channel,
        req.reader_id,
        branch_id,
        req.title,
        req.author,
        req.publisher,
        req.pub_year,
        req.clc_class,
        req.price_fen,
    )


def _title_row(bought: _Bought, title_id: str, now: datetime) -> dict[str, Any]:
    """A ``titles`` row for a reader-chosen book the catalogue did not have."""
    return {
        "title_id": title_id,
        "isbn13": bought.isbn13,
        "title": bought.title or bought.isbn13,
        "author": bought.author,
        "publisher": bought.publisher,
        "pub_year": bought.pub_year,
        "clc_class": bought.clc_class or "Z",
        "audience": "general",
        "language": "zh",
        "list_price": bought.price_fen / 100,
        "format": "print",
        "local_literature": False,
        "subjects": None,
        "added_at": now.date(),
    }
