"""Booklist endpoints: themed lists and campaigns, with the titles on them."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import polars as pl
from fastapi import APIRouter, HTTPException, Path, Query, status

from features import bounds
from serving.deps import Bundle, Caller
from serving.routes.catalogue import Limit, Offset
from serving.routes.titles import title_out
from serving.schemas import BooklistDetail, BooklistOut, Page

router = APIRouter(prefix="/v1/booklists", tags=["booklists"])


def _rows(bundle) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    ctx = bundle.context
    active = ctx.active_booklists()
    sizes = np.diff(ctx.booklist_items.indptr) if len(ctx.booklists) else np.zeros(0, np.int64)
    return ctx.booklists, active, sizes


def _out(row: dict, active: bool, size: int) -> dict:
    return {
        "booklist_id": str(row["booklist_id"]),
        "name": str(row["name"] or ""),
        "theme": str(row["theme"] or ""),
        "starts_on": row["starts_on"],
        "ends_on": row["ends_on"],
        "active": bool(active),
        "n_titles": int(size),
    }


@router.get("", response_model=Page[BooklistOut])
def list_booklists(
    _principal: Caller,
    bundle: Bundle,
    active: Annotated[bool | None, Query(description="Only lists promoted today (true) or not (false).")] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> Page[BooklistOut]:
    """Every booklist, or only those active (promoted) today, a page at a time (``{items, total, offset,
    limit}``; this list was a bare array before the pagination envelope)."""
    frame, is_active, sizes = _rows(bundle)
    keep = np.ones(len(frame), bool) if active is None else is_active == active
    rows = np.flatnonzero(keep)
    items = [
        BooklistOut(**_out(frame.row(int(i), named=True), is_active[i], sizes[i]))
        for i in rows[offset : offset + limit]
    ]
    return Page[BooklistOut](items=items, total=len(rows), offset=offset, limit=limit)


@router.get("/{booklist_id}", response_model=BooklistDetail)
def get_booklist(
    booklist_id: Annotated[str, Path(min_length=1, max_length=bounds.ID_MAX)], _principal: Caller, bundle: Bundle
) -> BooklistDetail:
    """One booklist with its titles (those in the served catalogue)."""
    frame, is_active, sizes = _rows(bundle)
    hits = np.flatnonzero((frame["booklist_id"] == booklist_id).to_numpy()) if len(frame) else np.zeros(0, int)
    if hits.size == 0:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"booklist '{booklist_id}' not found")
    i = int(hits[0])
    items = bundle.context.booklist_items
    rows = items.indices[items.indptr[i] : items.indptr[i + 1]].astype(np.int64)
    return BooklistDetail(**_out(frame.row(i, named=True), is_active[i], sizes[i]), titles=title_out(bundle, rows))
