"""Branches, title detail and title search, so that the codes in ``available_at`` have names.

Branch names come in the language of ``Accept-Language`` (zh-CN by default, or en), from
:func:`features.names.branch_names`: the data's own name in its language, the other derived.

Lists answer a pagination envelope ``{items, total, offset, limit}``. Search matches title, author
(case-insensitive substring) or ISBN (hyphens and spaces ignored) over the served catalogue, most
borrowed first. The catalogue frame is built once per model bundle (vectorised polars, no loops).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Annotated

import numpy as np
import polars as pl
from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from features import bounds
from features.names import NAME_LANGUAGES
from features.names import branch_names as localised
from serving.deps import Bundle, Caller, Language, State
from serving.schemas import BranchOut, Page, TitleDetail

router = APIRouter(tags=["catalogue"])

Offset = Annotated[int, Query(ge=0, le=bounds.OFFSET_MAX, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=bounds.PAGE_MAX, description="Page size.")]

#: Catalogue frames by bundle (the last two bundles: a reload swaps one in).
_CATALOGUES: dict[int, pl.DataFrame] = {}


def catalogue(bundle, data_dir: FsPath) -> pl.DataFrame:
    """Served titles (row order = context rows) with lower-cased search keys and ISBN-13."""
    key = id(bundle.context)
    if key not in _CATALOGUES:
        ctx = bundle.context
        frame = pl.DataFrame(
            {
                "title_id": ctx.title_ids.astype(str),
                "title": ctx.title_text.astype(str),
                "author": ctx.author.astype(str),
                "popularity": np.asarray(ctx.popularity, np.float64),
            }
        ).with_row_index("row")
        path = FsPath(data_dir) / "titles.parquet"
        isbn = pl.read_parquet(path, columns=["title_id", "isbn13"]) if path.exists() else None
        frame = frame.join(isbn, on="title_id", how="left") if isbn is not None else frame.with_columns(isbn13=None)
        frame = frame.with_columns(
            key=(pl.col("title") + "\u0000" + pl.col("author")).str.to_lowercase(),
            isbn13=pl.col("isbn13").cast(pl.String),
        ).sort("row")
        while len(_CATALOGUES) >= 2:
            _CATALOGUES.pop(next(iter(_CATALOGUES)))
        _CATALOGUES[key] = frame
    return _CATALOGUES[key]


#: Branch names by bundle and language, aligned to the context's branch rows (the last two bundles).
_BRANCH_NAMES: dict[int, dict[str, np.ndarray]] = {}


def branch_names(bundle, data_dir: FsPath) -> dict[str, np.ndarray]:
    """Each language's branch names (:func:`features.names.branch_names`), row order = context rows;
    the context's names in both languages when the data directory has no branches table."""
    key = id(bundle.context)
    if key not in _BRANCH_NAMES:
        ctx = bundle.context
        named = pl.DataFrame({"branch_id": np.asarray(ctx.branch_ids).astype(str), "fallback": ctx.branch_name})
        path = FsPath(data_dir) / "branches.parquet"
        if path.exists():
            named = named.join(localised(pl.read_parquet(path)), on="branch_id", how="left")
        while len(_BRANCH_NAMES) >= 2:
            _BRANCH_NAMES.pop(next(iter(_BRANCH_NAMES)))
        _BRANCH_NAMES[key] = {
            lang: named[lang].fill_null(named["fallback"]).to_numpy() if lang in named.columns else ctx.branch_name
            for lang in NAME_LANGUAGES
        }
    return _BRANCH_NAMES[key]


def name_of(bundle, data_dir: FsPath, lang: str) -> Callable[[str], str]:
    """Branch id -> its name in ``lang`` (the id itself for a branch the context does not know)."""
    names, rows = branch_names(bundle, data_dir)[lang], bundle.context.branches

    def name(branch_id: str) -> str:
        row = rows.get(branch_id)
        return branch_id if row is None else str(names[int(row)])

    return name


def _detail(bundle, frame: pl.DataFrame, row: int, lang: str, names: np.ndarray) -> TitleDetail:
    ctx = bundle.context
    shelves = sp_row(ctx.on_shelf, row)
    rec = frame.row(row, named=True)
    return TitleDetail(
        title_id=rec["title_id"],
        title=rec["title"],
        author=rec["author"],
        clc_class=str(ctx.clc_class[row]),
        clc_name=ctx.class_name(row, lang),
        isbn13=rec["isbn13"],
        ebook=bool(ctx.digital[row]),
        available_at=[str(b) for b in np.asarray(ctx.branch_ids)[shelves]],
        available_names=[str(b) for b in names[shelves]],
        popularity=float(rec["popularity"]),
    )


def sp_row(matrix, row: int) -> np.ndarray:
    """Column indices with a positive value in one CSR row."""
    lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
    return matrix.indices[lo:hi][matrix.data[lo:hi] > 0]


@router.get("/v1/branches", response_model=Page[BranchOut], operation_id="listBranches", summary="List branches")
def list_branches(
    _principal: Caller,
    bundle: Bundle,
    state: State,
    lang: Language,
    response: Response,
    offset: Offset = 0,
    limit: Limit = 50,
) -> Page[BranchOut]:
    """Every branch of the network with its name (in the language asked for), district and whether it delivers."""
    ctx = bundle.context
    ids = np.asarray(ctx.branch_ids).astype(str)
    names = branch_names(bundle, state.settings.data_dir)[lang]
    page = range(offset, min(offset + limit, len(ids)))
    items = [
        BranchOut(
            branch_id=ids[i],
            name=str(names[i]),
            district=str(ctx.branch_district[i]),
            delivers=bool(ctx.branch_delivers[i]),
        )
        for i in page
    ]
    response.headers["Content-Language"] = lang
    return Page[BranchOut](items=items, total=len(ids), offset=offset, limit=limit)


@router.get("/v1/titles", response_model=Page[TitleDetail], operation_id="searchTitles", summary="Search titles")
def search_titles(
    _principal: Caller,
    bundle: Bundle,
    state: State,
    lang: Language,
    response: Response,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=bounds.QUERY_MAX, description="Words of the title or author, or an ISBN."),
    ] = None,
    offset: Offset = 0,
    limit: Limit = 20,
) -> Page[TitleDetail]:
    """Titles of the served catalogue matching ``q`` (all titles without it), most borrowed first."""
    frame = catalogue(bundle, state.settings.data_dir)
    hits = frame
    if q is not None and q.strip():
        text = q.strip().lower()
        digits = "".join(ch for ch in text if ch not in "- ")
        match = pl.col("key").str.contains(text, literal=True)
        if digits.isdigit() and len(digits) >= 4:
            match = match | pl.col("isbn13").fill_null("").str.contains(digits, literal=True)
        hits = frame.filter(match)
    hits = hits.sort(["popularity", "row"], descending=[True, False])
    rows = hits["row"].slice(offset, limit).to_list()
    names = branch_names(bundle, state.settings.data_dir)[lang]
    response.headers["Content-Language"] = lang
    return Page[TitleDetail](
        items=[_detail(bundle, frame, r, lang, names) for r in rows], total=hits.height, offset=offset, limit=limit
    )


@router.get("/v1/titles/{title_id}", response_model=TitleDetail, operation_id="getTitle", summary="Get a title")
def get_title(
    title_id: Annotated[str, Path(min_length=1, max_length=bounds.ID_MAX)],
    _principal: Caller,
    bundle: Bundle,
    state: State,
    lang: Language,
    response: Response,
) -> TitleDetail:
    """One title: names, ISBN, e-book or print, and the branches with a copy on the shelf now."""
    row = bundle.context.titles.get(title_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"title '{title_id}' is not in the served catalogue")
    response.headers["Content-Language"] = lang
    data_dir = state.settings.data_dir
    return _detail(bundle, catalogue(bundle, data_dir), int(row), lang, branch_names(bundle, data_dir)[lang])
