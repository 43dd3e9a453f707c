"""Booklist endpoints: themed lists and campaigns, with the titles on them."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import polars as pl
from fastapi import APIRouter, HTTPException, Path, Query, status

from features import bounds
from serving.deps import Bundle, Caller
from serving.routes.titles import title_out
from serving.schemas import BooklistDetail, BooklistOut

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


@router.get("", response_model=list[BooklistOut])
def list_booklists(
    _principal: Caller,
    bundle: Bundle,
    active: Annotated[bool | None, Query(description="Only lists promoted today (true) or not (false).")] = None,
) -> list[BooklistOut]:
    """Every booklist, or only those active (promoted) today."""
    frame, is_active, sizes = _rows(bundle)
    keep = np.ones(len(frame), bool) if active is None else is_active == active
    return [
        BooklistOut(**_out(row, is_active[i], sizes[i])) for i, row in enumerate(frame.iter_rows(named=True)) if keep[i]
    ]


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
