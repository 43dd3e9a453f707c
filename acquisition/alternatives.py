"""Never just "no" (issue 15 §3): when the counter declines a request because the network holds the
book, it offers the cheapest way to get it, with the expected wait.

The ways (``kind``), from the data directory's ``copies``, ``loans``, ``holds``, ``titles`` and
``branches`` (``features.schema``), as known at the decision time ``t`` (the server clock):

- ``hold``: a copy is on the shelf at a branch (the reader's own first, else the nearest): held for
  pick-up there, ``pickup_days``;
- ``transfer``: that copy is sent to the reader's home branch, ``transfer_days``;
- ``delivery``: U Book to Home brings it to the door, ``delivery_days``, where the home branch delivers;
- ``ebook``: the library has the e-book (same ISBN, or same title and author in format ``ebook``), now;
- ``queue``: no copy is on the shelf anywhere: a hold at the home branch, waiting
  ``(holds_ahead + 0.5) * loan_cycle_days / copies`` (on average half a loan cycle for the first copy
  back, one cycle per ``copies`` holds ahead).

On the shelf at ``t`` = held copies of a branch minus its copies on loan at ``t`` (borrowed before,
returned after or never); holds ahead = holds placed before ``t``, not fulfilled by ``t`` and younger
than ``hold_horizon_days``. Each way's score is its cost to the library plus the reader's wait at
``wait_cost_yuan_per_day`` (policy ``[alternatives]``); the lowest is offered first. All ways are
stored (``alternative_offers``, rank 0 = offered) with an audit row; :func:`take` records the one the
reader took.

The index is built once with polars (arrays sorted by ISBN with offsets); one answer slices the
ISBN's rows and counts with numpy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, Field
from sqlalchemy import case, func, insert, select
from sqlalchemy.orm import Session

from acquisition.audit import record_many
from acquisition.db import AlternativeOfferRow, Database, PurchaseRequestRow
from acquisition.errors import InvalidTransition, RequestNotFound
from acquisition.policy import AlternativesConfig, yuan_to_fen
from features.schema import LocalDateTime, scan_table, table_path

_log = logging.getLogger(__name__)

#: Decline codes meaning "the network holds the book": only these get alternatives.
HELD_CODES = frozenset({"ALREADY_HELD", "ON_SHELF_AT_HOME_BRANCH"})
KINDS = ("hold", "transfer", "delivery", "ebook", "queue")
_NEVER = np.iinfo(np.int64).max


class Alternative(BaseModel):
    """One way to get the book, as the counter tells the reader."""

    kind: str = Field(description="hold, transfer, delivery, ebook or queue.")
    branch_id: str | None = Field(default=None, description="Branch of the copy (hold, transfer) or pick-up (queue).")
    wait_days: float = Field(ge=0, description="Expected wait, days, as known at the decision.")
    cost_fen: int = Field(ge=0, description="The library's cost, fen.")
    text: str = Field(description="The sentence for the reader (zh-CN; en with Accept-Language: en).")
    text_en: str = Field(description="The same sentence in English.")


@dataclass(frozen=True)
class _Span:
    """Rows of one ISBN in a sorted column set."""

    start: int
    stop: int


def _offsets(keys: np.ndarray) -> dict[str, _Span]:
    if len(keys) == 0:
        return {}
    uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
    return {k: _Span(int(f), int(f + c)) for k, f, c in zip(uniq.tolist(), first, counts, strict=True)}


def _us(col: pl.Series) -> np.ndarray:
    """Datetimes as int64 microseconds, nulls as 'never'."""
    return col.cast(pl.Datetime("us")).cast(pl.Int64).fill_null(_NEVER).to_numpy()


class Availability:
    """Copies, loans and holds per ISBN-13 and the branches, for answers as of any ``t``."""

    def __init__(
        self, copies: pl.DataFrame, loans: pl.DataFrame, holds: pl.DataFrame, branches: pl.DataFrame, ebooks: set[str]
    ):
        copies, loans, holds = copies.sort("isbn13"), loans.sort("isbn13"), holds.sort("isbn13")
        self.copy_isbn, self.copy_branch = _offsets(copies["isbn13"].to_numpy()), copies["branch_id"].to_numpy()
        self.copy_on_shelf = (copies["status"] == "on_shelf").to_numpy()
        self.loan_isbn, self.loan_branch = _offsets(loans["isbn13"].to_numpy()), loans["branch_id"].to_numpy()
        self.loan_out, self.loan_back = _us(loans["borrowed_at"]), _us(loans["returned_at"])
        self.hold_isbn = _offsets(holds["isbn13"].to_numpy())
        self.hold_placed, self.hold_filled = _us(holds["placed_at"]), _us(holds["fulfilled_at"])
        self.has_loans = loans.height > 0
        self.branches = {r["branch_id"]: r for r in branches.to_dicts()}
        self.ebooks = ebooks

    @classmethod
    def empty(cls) -> Availability:
        return cls.from_frames(pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), pl.DataFrame())

    @classmethod
    def from_frames(cls, titles, copies, loans, holds, branches) -> Availability:
        """From ``features.schema`` frames (any may be empty)."""
        titles = _or_empty(
            titles,
            {"title_id": pl.String, "isbn13": pl.String, "title": pl.String, "author": pl.String, "format": pl.String},
        )
        if "format" not in titles.columns:
            titles = titles.with_columns(pl.lit("print").alias("format"))
        keys = titles.select("title_id", "isbn13").drop_nulls("isbn13")
        c = _or_empty(
            copies, {"title_id": pl.String, "branch_id": pl.String, "status": pl.String, "copy_id": pl.String}
        )
        c = c.join(keys, on="title_id").filter(pl.col("status").is_in(["on_shelf", "on_loan", "in_transit"]))
        loan_cols = {
            "title_id": pl.String,
            "copy_id": pl.String,
            "branch_id": pl.String,
            "borrowed_at": pl.Datetime("us"),
            "returned_at": pl.Datetime("us"),
        }
        ln = _or_empty(loans, loan_cols)
        if "returned_at" not in ln.columns:
            ln = ln.with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("returned_at"))
        if "copy_id" in ln.columns and c.height:  # a loan counts against its copy's owning branch
            ln = ln.join(
                c.select("copy_id", pl.col("branch_id").alias("owner")), on="copy_id", how="left"
            ).with_columns(pl.coalesce("owner", "branch_id").alias("branch_id"))
        ln = ln.join(keys, on="title_id").select("isbn13", "branch_id", "borrowed_at", "returned_at")
        hd = _or_empty(
            holds, {"title_id": pl.String, "placed_at": pl.Datetime("us"), "fulfilled_at": pl.Datetime("us")}
        )
        if "fulfilled_at" not in hd.columns:
            hd = hd.with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("fulfilled_at"))
        hd = hd.join(keys, on="title_id").select("isbn13", "placed_at", "fulfilled_at")
        br = _or_empty(
            branches,
            {
                "branch_id": pl.String,
                "name": pl.String,
                "district": pl.String,
                "lat": pl.Float64,
                "lon": pl.Float64,
                "delivers": pl.Boolean,
            },
        )
        return cls(c.select("isbn13", "branch_id", "status"), ln, hd, br, _ebook_isbns(titles))

    @classmethod
    def from_data_dir(cls, data_dir: str | Path) -> Availability:
        """From a data directory; missing tables count as empty."""

        def read(name: str) -> pl.DataFrame:
            return scan_table(data_dir, name).collect() if table_path(data_dir, name).exists() else pl.DataFrame()

        return cls.from_frames(*(read(n) for n in ("titles", "copies", "loans", "holds", "branches")))

    # --- as of t ---

    def shelf_at(self, isbn13: str, t: datetime) -> tuple[dict[str, int], int, int]:
        """Copies on the shelf per branch at ``t``, copies held and holds waiting at ``t``."""
        span = self.copy_isbn.get(isbn13)
        if span is None:
            return {}, 0, 0
        branches = self.copy_branch[span.start : span.stop]
        if self.has_loans:
            held_ids, held_n = np.unique(branches, return_counts=True)
            out = self._out_at(isbn13, _micros(t))
            shelf = {b: int(n - out.get(b, 0)) for b, n in zip(held_ids.tolist(), held_n, strict=True)}
        else:  # no loan history: the copies' current status is all we know
            on = branches[self.copy_on_shelf[span.start : span.stop]]
            ids, n = np.unique(on, return_counts=True)
            shelf = dict(zip(ids.tolist(), n.tolist(), strict=True))
        return {b: n for b, n in shelf.items() if n > 0}, span.stop - span.start, self._waiting(isbn13, t)

    def _out_at(self, isbn13: str, t_us: int) -> dict[str, int]:
        span = self.loan_isbn.get(isbn13)
        if span is None:
            return {}
        sl = slice(span.start, span.stop)
        out = (self.loan_out[sl] <= t_us) & (self.loan_back[sl] > t_us)
        ids, n = np.unique(self.loan_branch[sl][out], return_counts=True)
        return dict(zip(ids.tolist(), n.tolist(), strict=True))

    def _waiting(self, isbn13: str, t: datetime, horizon_days: float = 90.0) -> int:
        span = self.hold_isbn.get(isbn13)
        if span is None:
            return 0
        t_us, sl = _micros(t), slice(span.start, span.stop)
        placed, filled = self.hold_placed[sl], self.hold_filled[sl]
        young = placed >= t_us - int(horizon_days * 86_400e6)
        return int(((placed <= t_us) & (filled > t_us) & (young | (filled != _NEVER))).sum())

    def nearest(self, home: str | None, candidates: Sequence[str]) -> str:
        """The candidate branch nearest ``home`` (same district first; by lat/lon)."""
        h = self.branches.get(home or "")
        if h is None:
            return sorted(candidates)[0]

        def key(b: str) -> tuple[int, float, str]:
            r = self.branches.get(b) or {}
            same = 0 if r.get("district") == h.get("district") else 1
            dist = math.hypot((r.get("lat") or 0) - (h.get("lat") or 0), (r.get("lon") or 0) - (h.get("lon") or 0))
            return same, dist, b

        return min(candidates, key=key)

    def name(self, branch_id: str | None) -> str:
        r = self.branches.get(branch_id or "")
        return (r.get("name") or branch_id) if r else (branch_id or "")


def _micros(t: datetime) -> int:
    return int(np.datetime64(t.replace(tzinfo=None), "us").astype(np.int64))


def _or_empty(frame: pl.DataFrame | pl.LazyFrame, schema: dict[str, Any]) -> pl.DataFrame:
    frame = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    return pl.DataFrame(schema=schema) if frame.width == 0 else frame


def _ebook_isbns(titles: pl.DataFrame) -> set[str]:
    """Print ISBNs whose e-book the library has (same ISBN, or same title and author)."""
    if titles.height == 0:
        return set()
    eb = titles.filter(pl.col("format") == "ebook")
    same_isbn = eb["isbn13"].drop_nulls().to_list()
    by_work = titles.filter(pl.col("format") != "ebook").join(eb.select("title", "author"), on=["title", "author"])
    return set(same_isbn) | set(by_work["isbn13"].drop_nulls().to_list())


# --- choosing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Way:
    """One way before it is worded."""

    kind: str
    branch_id: str | None
    wait_days: float
    cost_fen: int
    ahead: int = 0


def ways(
    avail: Availability, cfg: AlternativesConfig, isbn13: str, home: str | None, t: datetime, delivers: bool
) -> list[Way]:
    """Every way to get ``isbn13`` for a reader of ``home`` at ``t``, cheapest (cost + wait) first."""
    shelf, held, waiting = avail.shelf_at(isbn13, t)
    out: list[Way] = []
    if shelf:
        at = home if home in shelf else avail.nearest(home, list(shelf))
        out.append(Way("hold", at, cfg.pickup_days, 0))
        if at != home and home is not None:
            out.append(Way("transfer", at, cfg.transfer_days, yuan_to_fen(cfg.transfer_cost_yuan)))
        if delivers:
            out.append(Way("delivery", at, cfg.delivery_days, yuan_to_fen(cfg.delivery_cost_yuan)))
    elif held:
        wait = round((waiting + 0.5) * cfg.loan_cycle_days / held, 1)
        out.append(Way("queue", home, wait, 0, waiting))
    if isbn13 in avail.ebooks:
        out.append(Way("ebook", None, 0.0, yuan_to_fen(cfg.ebook_cost_yuan)))
    per_day = yuan_to_fen(cfg.wait_cost_yuan_per_day)
    return sorted(out, key=lambda w: (w.cost_fen + w.wait_days * per_day, KINDS.index(w.kind)))


def _days(d: float) -> str:
    return f"{d:g}"


def sentences(way: Way, branch_name: str) -> tuple[str, str]:
    """The (zh-CN, en) sentence of one way."""
    d = _days(way.wait_days)
    days = f"{d} day" if way.wait_days == 1 else f"{d} days"
    return {
        "hold": (
            f"{branch_name}有在架副本，可预约后到馆取书，约 {d} 天。",
            f"A copy is on the shelf at {branch_name}: place a hold and pick it up there in about {days}.",
        ),
        "transfer": (
            f"可将{branch_name}的在架副本调拨到您的分馆，预计 {d} 天。",
            f"The copy on the shelf at {branch_name} can be sent to your branch in about {days}.",
        ),
        "delivery": (
            f"可通过“U书到家”送书上门，预计 {d} 天。",
            f"U Book to Home can bring it to your door in about {days}.",
        ),
        "ebook": (
            "馆藏有电子版，可立即在App或小程序阅读。",
            "The library has the e-book: read it now in the app or mini-program.",
        ),
        "queue": (
            f"全部副本已借出，可预约排队（前面 {way.ahead} 人），预计约 {d} 天。",
            f"Every copy is out: place a hold ({way.ahead} ahead of you), expected in about {days}.",
        ),
    }[way.kind]


def offer_sentences(row: AlternativeOfferRow) -> tuple[str, str]:
    """The sentences of a stored offer (branch named by its id)."""
    return sentences(Way(row.kind, row.branch_id, row.wait_days, row.cost_fen), row.branch_id or "")


def worded(avail: Availability, way: Way) -> Alternative:
    zh, en = sentences(way, avail.name(way.branch_id))
    return Alternative(
        kind=way.kind, branch_id=way.branch_id, wait_days=way.wait_days, cost_fen=way.cost_fen, text=zh, text_en=en
    )


def applies(reason_codes: Sequence[str]) -> bool:
    """Whether a decline is "the network holds the book" and nothing else."""
    return bool(reason_codes) and set(reason_codes) <= HELD_CODES


# --- storing ----------------------------------------------------------------------------------------


_INSERT_OFFERS = insert(AlternativeOfferRow.__table__)


def store_offers(
    s: Session, request_id: str, found: Sequence[Way], *, at: datetime, actor: str, audit: list[dict[str, Any]]
) -> None:
    """Store the ways offered with a decline (rank 0 = offered first) and their audit row."""
    if not found:
        return
    s.connection().execute(
        _INSERT_OFFERS,
        [
            {
                "request_id": request_id,
                "rank": i,
                "kind": w.kind,
                "branch_id": w.branch_id,
                "wait_days": w.wait_days,
                "cost_fen": w.cost_fen,
                "offered_at": at,
            }
            for i, w in enumerate(found)
        ],
    )
    audit.append(
        _audit_row(
            request_id,
            "offer",
            actor,
            at,
            {"offered": found[0].kind, "kinds": [w.kind for w in found], "wait_days": found[0].wait_days},
        )
    )


def _audit_row(request_id: str, action: str, actor: str, at: datetime, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "entity": "alternative_offer",
        "entity_id": request_id,
        "action": action,
        "from_state": None,
        "to_state": None,
        "actor": actor,
        "at": at,
        "details": details,
    }


def stored(s: Session, request_id: str) -> list[AlternativeOfferRow]:
    """A request's stored offers, rank order."""
    return list(
        s.scalars(
            select(AlternativeOfferRow)
            .where(AlternativeOfferRow.request_id == request_id)
            .order_by(AlternativeOfferRow.rank)
        )
    )


def from_row(row: AlternativeOfferRow, avail: Availability | None = None) -> Alternative:
    """A stored offer as the decision shows it (branches named when the index is at hand)."""
    name = avail.name(row.branch_id) if avail is not None else (row.branch_id or "")
    zh, en = sentences(Way(row.kind, row.branch_id, row.wait_days, row.cost_fen), name)
    return Alternative(
        kind=row.kind, branch_id=row.branch_id, wait_days=row.wait_days, cost_fen=row.cost_fen, text=zh, text_en=en
    )


class Taken(BaseModel):
    """The way the reader took."""

    request_id: str
    kind: str
    offered_first: bool = Field(description="Whether it was the way offered first (the cheapest).")
    taken_at: LocalDateTime


def take(db: Database, request_id: str, kind: str, *, at: datetime, actor: str) -> Taken:
    """Record that the reader took ``kind`` (one of the ways offered); audited. Taking again is refused."""
    with db.session_scope(write=True) as s:
        if s.get(PurchaseRequestRow, request_id) is None:
            raise RequestNotFound(f"purchase request {request_id}: not found")
        offers = {o.kind: o for o in stored(s, request_id)}
        if kind not in offers:
            raise InvalidTransition(
                f"purchase request {request_id}: '{kind}' was not offered (offered: {sorted(offers) or 'none'})"
            )
        if any(o.taken_at is not None for o in offers.values()):
            raise InvalidTransition(f"purchase request {request_id}: an alternative was already taken")
        row = offers[kind]
        row.taken_at = at
        record_many(s, [_audit_row(request_id, "take", actor, at, {"kind": kind, "rank": row.rank})])
    return Taken(request_id=request_id, kind=kind, offered_first=row.rank == 0, taken_at=at)


class KindCount(BaseModel):
    """Offers and takes of one way."""

    kind: str
    offered_first: int = Field(ge=0, description="Declines where this way was offered first (the cheapest).")
    listed: int = Field(ge=0, description="Declines that listed this way at all.")
    taken: int = Field(ge=0, description="Readers who took it.")


class AlternativesReport(BaseModel):
    """What was offered with declines of held books, and what readers took."""

    declines_with_offer: int = Field(ge=0)
    taken: int = Field(ge=0, description="Declines whose reader took one of the ways.")
    took_first: int = Field(ge=0, description="... of which the way offered first.")
    kinds: list[KindCount]


def report(db: Database) -> AlternativesReport:
    """Counts per way of the stored offers (one GROUP BY)."""
    o = AlternativeOfferRow
    first = func.sum(case((o.rank == 0, 1), else_=0))
    taken = func.sum(case((o.taken_at.is_not(None), 1), else_=0))
    taken_first = func.sum(case(((o.taken_at.is_not(None)) & (o.rank == 0), 1), else_=0))
    with db.session_scope() as s:
        rows = s.execute(
            select(o.kind, first, func.count(), taken, taken_first).group_by(o.kind).order_by(o.kind)
        ).all()
    kinds = [KindCount(kind=k, offered_first=int(f), listed=int(n), taken=int(t)) for k, f, n, t, _ in rows]
    return AlternativesReport(
        declines_with_offer=sum(k.offered_first for k in kinds),
        taken=sum(k.taken for k in kinds),
        took_first=sum(int(r[4]) for r in rows),
        kinds=kinds,
    )
