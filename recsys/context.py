"""The library facts that filters, promotion and explanations need, aligned to the vocabularies.

A :class:`LibraryContext` turns the Parquet tables of a data directory (``features.schema``) into
arrays indexed like the model's matrices: one entry per title (column) or per reader (row), plus a
few sparse matrices (title × branch on-shelf copies, reader × title loan history, booklist × title).
Everything is built with polars joins and scipy constructors, never a loop over rows.

Data directories without holdings (public data sets that only carry an ``interactions`` table)
give a context with ``has_holdings = False``: availability and withdrawal are then unknown and the
filters skip them.

A context is treated as immutable once built: derived facts the request path needs (per-branch
on-shelf bitmasks, readers per title, booklists active on a date...) are computed on first use and
memoised on the instance (:meth:`LibraryContext.memo`), so a recommendation request never re-runs a
polars query or a catalogue-wide sparse operation. Memoised arrays are read-only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.interactions import BRANCH_COLUMN, events_from_tables
from features.schema import (
    AGE_BANDS,
    AUDIENCES,
    CARD_TYPES,
    CLC_TOP_CLASSES,
    CLC_TOP_CLASSES_ZH,
    TABLES,
    conform,
    table_path,
)
from features.vocab import Vocabulary
from recsys.queues import Circulation, circulation_from_frames

_log = logging.getLogger(__name__)

#: (table, code, sentence) for each context table whose absence turns something off.
LIMITATIONS: tuple[tuple[str, str, str], ...] = (
    ("copies", "no_holdings", "No holdings (copies): availability on the shelf is not checked."),
    ("branches", "no_branches", "No branches: branch availability and home delivery are not known."),
    ("titles", "no_catalogue", "No catalogue (titles): audience, local literature and new arrivals are off."),
    ("readers", "no_readers", "No reader table: audience by age and home branch are not known."),
    ("booklists", "no_booklists", "No booklists: themed booklist promotion is off."),
)
#: CLC top-class letters in a fixed order; ``clc_top`` arrays index into this tuple.
CLC_LETTERS: tuple[str, ...] = tuple(CLC_TOP_CLASSES)
#: Copy statuses that mean the copy is gone from the collection.
GONE_STATUSES: tuple[str, ...] = ("withdrawn", "lost")
#: Title formats that need no physical copy (always available, never withdrawn).
DIGITAL_FORMATS: tuple[str, ...] = ("ebook",)

_EPOCH = date(1970, 1, 1)
#: Entries memoised per context at most before the memo is emptied (dates x configurations).
_MEMO_MAX = 256

T = TypeVar("T")

#: Added to day numbers stored in ``LibraryContext.history`` so that every date after 700 BC is > 0.
HISTORY_OFFSET = 1_000_000


def day_number(d: date) -> int:
    """Days since 1970-01-01 (the unit of every date array in the context)."""
    return (d - _EPOCH).days


def _codes(values: pl.Series, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Index of each value in ``vocabulary`` (int8); ``-1`` for null or unknown values."""
    lut = pl.DataFrame({"v": list(vocabulary), "code": np.arange(len(vocabulary), dtype=np.int8)})
    out = values.alias("v").cast(pl.String).to_frame().join(lut, on="v", how="left", maintain_order="left")
    return out.get_column("code").fill_null(-1).to_numpy().astype(np.int8, copy=False)


def _align(frame: pl.DataFrame, key: str, vocab: Vocabulary) -> pl.DataFrame:
    """``frame`` reordered (left join) to the vocabulary order on ``key``; missing ids give null rows."""
    ids = vocab.series.alias(key).to_frame()
    return ids.join(frame.unique(subset=key, keep="first"), on=key, how="left", maintain_order="left")


#: The tables a library context reads (absent ones are treated as empty).
CONTEXT_TABLES: tuple[str, ...] = (
    "titles",
    "readers",
    "branches",
    "copies",
    "loans",
    "ebook_events",
    "booklists",
    "booklist_items",
    "interactions",
    "holds",
)


@dataclass
class LibraryContext:
    """Title, reader, branch and booklist facts aligned to the model's vocabularies.

    Title arrays have length ``len(titles)``, reader arrays ``len(readers)``, branch arrays
    ``len(branches)``. Dates are day numbers (days since 1970-01-01, int32; ``-1`` = unknown).
    """

    titles: Vocabulary
    readers: Vocabulary
    branches: Vocabulary
    today: date
    # --- per title ---
    title_text: np.ndarray
    author: np.ndarray
    clc_class: np.ndarray
    #: Index into :data:`CLC_LETTERS` (int8, -1 unknown).
    clc_top: np.ndarray
    #: Index into ``features.schema.AUDIENCES`` (int8, -1 unknown).
    audience: np.ndarray
    #: Day number the title entered the collection (int32, -1 unknown).
    added_at: np.ndarray
    local_literature: np.ndarray
    #: Digital format: needs no copy, always available.
    digital: np.ndarray
    #: Print title whose copies are all withdrawn or lost (or that has no copy at all).
    withdrawn: np.ndarray
    #: Loans + e-book events per title over the whole history (float64): the popularity signal.
    popularity: np.ndarray
    # --- title × branch ---
    #: On-shelf copies per (title, branch), CSR int32.
    on_shelf: sp.csr_matrix
    #: Loans per (branch, title), CSR float32, for "popular at <branch>".
    branch_loans: sp.csr_matrix
    # --- per branch ---
    branch_name: np.ndarray
    branch_district: np.ndarray
    #: Home delivery reaches readers of this branch.
    branch_delivers: np.ndarray
    # --- per reader ---
    #: Index into ``AGE_BANDS`` (int8, -1 unknown).
    reader_age_band: np.ndarray
    #: Index into ``CARD_TYPES`` (int8, -1 unknown).
    reader_card_type: np.ndarray
    #: Home branch row (int32, -1 unknown).
    reader_home_branch: np.ndarray
    reader_district: np.ndarray
    #: Reader × title: day number of the latest loan / e-book event + :data:`HISTORY_OFFSET` (CSR int32;
    #: absent = never; 1 = borrowed on an unknown date). Use :meth:`borrowed_since`, not raw values.
    history: sp.csr_matrix
    # --- booklists ---
    #: ``booklist_id, name, theme, starts_on, ends_on`` (all booklists, in row order of ``booklist_items``).
    booklists: pl.DataFrame
    #: Booklist × title membership (CSR bool).
    booklist_items: sp.csr_matrix
    #: Whether copies were known (False for interaction-only data sets).
    has_holdings: bool = True
    #: Copies, loans out and holds waiting per title on ``today`` (recsys.queues); None without holdings.
    circulation: Circulation | None = None
    #: The context tables the data directory had (the others were treated as empty).
    tables: frozenset[str] = frozenset(CONTEXT_TABLES)
    meta: dict = field(default_factory=dict)
    #: Derived facts computed on first use (see :meth:`memo`); not part of the context's value.
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_data_dir(
        cls, data_dir: str | Path, titles: Vocabulary, readers: Vocabulary, today: date
    ) -> LibraryContext:
        """Read every table present in ``data_dir`` (absent optional tables become empty)."""
        frames: dict[str, pl.DataFrame] = {}
        for name in CONTEXT_TABLES:
            path = table_path(data_dir, name)
            if path.exists():
                frames[name] = pl.read_parquet(path)
        _log.info("context from %s: tables %s", data_dir, sorted(frames))
        return cls.from_frames(frames, titles, readers, today)

    @classmethod
    def from_frames(
        cls,
        frames: dict[str, pl.DataFrame],
        titles: Vocabulary,
        readers: Vocabulary,
        today: date,
    ) -> LibraryContext:
        """Build from in-memory frames keyed by table name; each is conformed to its schema.

        Missing tables are treated as empty. ``copies`` absent means holdings are unknown
        (``has_holdings = False``).
        """
        f = {name: conform(frames[name], name) if name in frames else TABLES[name].empty() for name in CONTEXT_TABLES}
        has_holdings = "copies" in frames
        branches = _branch_vocabulary(f)
        title_facts = _title_facts(f["titles"], titles)
        branch_facts = _branch_facts(f["branches"], branches)
        ctx = cls(
            titles=titles,
            readers=readers,
            branches=branches,
            today=today,
            **title_facts,
            **_holdings(f["copies"], titles, branches, title_facts["digital"], has_holdings),
            **_reading_history(f, titles, readers, branches),
            **branch_facts,
            **_reader_facts(f["readers"], readers, branches, branch_facts["branch_district"]),
            **_booklists(f["booklists"], f["booklist_items"], titles),
            has_holdings=has_holdings,
            tables=frozenset(frames) & frozenset(CONTEXT_TABLES),
            circulation=circulation_from_frames(
                f["copies"], f["loans"], f["holds"], titles, today, title_facts["digital"]
            )
            if has_holdings
            else None,
        )
        _log.info(
            "context: %d titles (%d withdrawn, %d digital), %d readers, %d branches, %d booklists (%d active on %s)",
            len(titles),
            int(ctx.withdrawn.sum()),
            int(ctx.digital.sum()),
            len(readers),
            len(branches),
            len(ctx.booklists),
            int(ctx.active_booklists().sum()),
            today,
        )
        return ctx

    # ------------------------------------------------------------------ queries

    def limitations(self) -> list[tuple[str, str]]:
        """What this context cannot check because its data directory lacks a table, as
        ``(code, sentence)``: an interactions-only directory (public data, a library's own loan export)
        still recommends, with these filters and promotions off, and says so."""
        missing = [(table, code, text) for table, code, text in LIMITATIONS if table not in self.tables]
        return [(code, text) for _table, code, text in missing]

    @cached_property
    def title_ids(self) -> np.ndarray:
        """Title ids in row order (object array, computed once)."""
        return self.titles.ids

    @cached_property
    def branch_ids(self) -> np.ndarray:
        """Branch ids in row order (object array, computed once)."""
        return self.branches.ids

    @cached_property
    def borrowed(self) -> sp.csr_matrix:
        """Reader × title 0/1 float32: ever borrowed (the network's co-occurrence basis, computed once)."""
        return (self.history > 0).astype(np.float32).tocsr()

    @property
    def today_day(self) -> int:
        """``today`` as a day number."""
        return day_number(self.today)

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()`` once per ``key`` on this context, then the stored result (arrays made read-only).

        For facts derived from the (immutable) context alone, or from the context and a frozen
        configuration / date given in ``key``. Concurrent first calls may both build; either result is kept.
        """
        try:
            return self._memo[key]
        except KeyError:
            pass
        value = build()
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, np.ndarray):
                v.flags.writeable = False
        if len(self._memo) > _MEMO_MAX:  # dates and configurations come and go; bound the growth
            self._memo.clear()
        self._memo[key] = value
        return value

    def active_booklists(self, on: date | None = None) -> np.ndarray:
        """Bool mask over booklist rows: promoted on ``on`` (default ``today``), window inclusive (read-only)."""
        d = on or self.today
        return self.memo(("active_booklists", d), lambda: self._active_booklists(d))

    def _active_booklists(self, d: date) -> np.ndarray:
        if len(self.booklists) == 0:
            return np.zeros(0, bool)
        return ((self.booklists["starts_on"] <= d) & (self.booklists["ends_on"] >= d)).fill_null(False).to_numpy()

    def on_active_booklist(self, on: date | None = None) -> np.ndarray:
        """Bool per title: on at least one booklist active on ``on`` (default ``today``; read-only)."""
        d = on or self.today

        def build() -> np.ndarray:
            active = self.active_booklists(d)
            if not active.any():
                return np.zeros(len(self.titles), bool)
            return np.asarray(self.booklist_items[np.flatnonzero(active)].sum(axis=0)).ravel() > 0

        return self.memo(("on_active_booklist", d), build)

    def first_active_booklist(self, on: date | None = None) -> np.ndarray:
        """Per title: row of the first booklist (in row order) active on ``on`` that holds it, -1 if none
        (int64, read-only)."""
        d = on or self.today

        def build() -> np.ndarray:
            out = np.full(len(self.titles), -1, np.int64)
            active = np.flatnonzero(self.active_booklists(d))
            if active.size:
                by_title = self.booklist_items[active].T.tocsr()
                by_title.sort_indices()
                has = np.diff(by_title.indptr) > 0
                out[has] = active[by_title.indices[by_title.indptr[:-1][has]]]
            return out

        return self.memo(("first_active_booklist", d), build)

    def new_arrivals(self, within_days: int, on: date | None = None) -> np.ndarray:
        """Bool per title: added within ``within_days`` days (inclusive) before ``on`` (default today),
        and not after it (read-only)."""
        day = day_number(on or self.today)

        def build() -> np.ndarray:
            age = day - self.added_at
            return (self.added_at >= 0) & (age >= 0) & (age <= within_days)

        return self.memo(("new_arrivals", int(within_days), day), build)

    # ------------------------------------------------------------------ prepared per-context facts

    @cached_property
    def borrowed_csc(self) -> sp.csc_matrix:
        """:attr:`borrowed` in CSC form (fast title-column slices for co-occurrence counts)."""
        return self.borrowed.tocsc()

    @cached_property
    def readers_per_title(self) -> np.ndarray:
        """Distinct readers who ever borrowed each title (float32 like :attr:`borrowed`, read-only)."""
        out = np.bincount(self.borrowed.indices, minlength=len(self.titles)).astype(np.float32)
        out.flags.writeable = False
        return out

    @cached_property
    def shelf_bits(self) -> np.ndarray:
        """Packed bitmask (n_branches × ceil(n_titles / 8), uint8, big bit order): title has an on-shelf
        copy at the branch. ~n_branches × n_titles / 8 bytes (120 × 3,000 → 45 KB). Read with
        :meth:`on_shelf_at` or ``np.unpackbits(..., axis=1, count=n_titles)``."""
        bt = sp.csr_matrix((self.on_shelf > 0).T, dtype=bool)
        out = _pack_csr_rows(bt, len(self.titles))
        out.flags.writeable = False
        return out

    def on_shelf_at(self, branch_rows: np.ndarray, title_rows: np.ndarray) -> np.ndarray:
        """Bool, elementwise: an on-shelf copy of ``title_rows`` at ``branch_rows`` (broadcast; rows >= 0)."""
        b = np.asarray(branch_rows, dtype=np.int64)
        t = np.asarray(title_rows, dtype=np.int64)
        if self.shelf_bits.shape[0] == 0:
            return np.zeros(np.broadcast_shapes(b.shape, t.shape), bool)
        byte = self.shelf_bits[b, t >> 3]
        return ((byte >> (7 - (t & 7)).astype(np.uint8)) & 1).astype(bool)

    @cached_property
    def on_shelf_anywhere(self) -> np.ndarray:
        """Bool per title: an on-shelf copy at some branch (read-only)."""
        out = np.diff(sp.csr_matrix(self.on_shelf > 0).indptr) > 0
        out.flags.writeable = False
        return out

    @cached_property
    def first_shelf_branch(self) -> np.ndarray:
        """Per title: the lowest branch row with an on-shelf copy, -1 if none (int64, read-only)."""
        shelf = sp.csr_matrix(self.on_shelf > 0)
        shelf.sort_indices()
        out = np.full(len(self.titles), -1, np.int64)
        has = np.diff(shelf.indptr) > 0
        out[has] = shelf.indices[shelf.indptr[:-1][has]]
        out.flags.writeable = False
        return out

    def borrowed_since(self, reader_rows: np.ndarray, since_day: int | None) -> sp.csr_matrix:
        """Reader rows × titles, bool: borrowed on/after day number ``since_day`` (None = ever)."""
        h = self.history[np.asarray(reader_rows)]
        if since_day is not None:
            h = h.multiply(h >= since_day + HISTORY_OFFSET).tocsr()
        h.eliminate_zeros()
        return h.astype(bool)

    def branch_of(self, reader_rows: np.ndarray, branch: str | None = None) -> np.ndarray:
        """Branch row per reader: ``branch`` when given (a reader at a kiosk), else the home branch."""
        reader_rows = np.asarray(reader_rows)
        if branch is not None:
            b = self.branches.get(branch)
            if b is None:
                raise KeyError(f"branch '{branch}' is not a known branch_id")
            return np.full(len(reader_rows), b, np.int32)
        out = np.full(len(reader_rows), -1, np.int32)
        known = reader_rows >= 0
        out[known] = self.reader_home_branch[reader_rows[known]]
        return out

    def class_name(self, title_row: int, lang: str = "en") -> str:
        """Readable CLC top-class name of a title ('Literature'; '文学' for zh-CN), or its raw class."""
        top = int(self.clc_top[title_row])
        names = CLC_TOP_CLASSES_ZH if lang == "zh-CN" else CLC_TOP_CLASSES
        return names[CLC_LETTERS[top]] if top >= 0 else str(self.clc_class[title_row])


# ---------------------------------------------------------------------- builders of from_frames
# Each takes conformed frames and returns keyword arguments of LibraryContext (its field names).


def _branch_vocabulary(f: dict[str, pl.DataFrame]) -> Vocabulary:
    """Branches of the ``branches`` table in its order, then any other branch a copy or a reader names."""
    branch_ids = pl.concat([f["branches"]["branch_id"], f["copies"]["branch_id"], f["readers"]["home_branch_id"]])
    return Vocabulary(
        pl.concat([f["branches"]["branch_id"], Vocabulary.from_values(branch_ids).series])
        .drop_nulls()
        .unique(maintain_order=True),
        "branch_id",
    )


def _title_facts(titles_table: pl.DataFrame, titles: Vocabulary) -> dict[str, np.ndarray]:
    """Catalogue facts per title row: text, author, classes, audience, date added, format."""
    t = _align(titles_table, "title_id", titles)
    return {
        "title_text": t["title"].fill_null(t["title_id"]).to_numpy(),
        "author": t["author"].fill_null("").to_numpy(),
        "clc_class": t["clc_class"].fill_null("").to_numpy(),
        "clc_top": _codes(t["clc_class"].str.slice(0, 1), CLC_LETTERS),
        "audience": _codes(t["audience"], AUDIENCES),
        "added_at": t["added_at"].cast(pl.Int32).fill_null(-1).to_numpy().astype(np.int32),
        "local_literature": t["local_literature"].fill_null(False).to_numpy(),
        "digital": t["format"].fill_null("print").is_in(list(DIGITAL_FORMATS)).to_numpy(),
    }


def _holdings(
    copies: pl.DataFrame, titles: Vocabulary, branches: Vocabulary, digital: np.ndarray, has_holdings: bool
) -> dict[str, object]:
    """Availability from the copies: on-shelf copies per (title, branch) and withdrawn print titles."""
    n_t, n_b = len(titles), len(branches)
    if len(copies):
        c = copies.with_columns(
            pl.Series("t", titles.index(copies["title_id"])),
            pl.Series("b", branches.index(copies["branch_id"])),
        ).filter(pl.col("t") >= 0)
        shelf = c.filter((pl.col("status") == "on_shelf") & (pl.col("b") >= 0))
        on_shelf = sp.csr_matrix(
            (np.ones(len(shelf), np.int32), (shelf["t"].to_numpy(), shelf["b"].to_numpy())), shape=(n_t, n_b)
        )
        on_shelf.sum_duplicates()
        live = c.filter(~pl.col("status").is_in(list(GONE_STATUSES)))["t"].to_numpy()
        live_count = np.bincount(live, minlength=n_t)
    else:
        on_shelf = sp.csr_matrix((n_t, n_b), dtype=np.int32)
        live_count = np.zeros(n_t, np.int64)
    withdrawn = (live_count == 0) & ~digital if has_holdings else np.zeros(n_t, bool)
    return {"on_shelf": on_shelf, "withdrawn": withdrawn}


def _reading_history(
    f: dict[str, pl.DataFrame], titles: Vocabulary, readers: Vocabulary, branches: Vocabulary
) -> dict[str, object]:
    """Popularity, each reader's latest event per title, and loans per branch, from every event of
    ``features.interactions.events_from_tables`` (loans, e-book events, generic interactions)."""
    n_t, n_r, n_b = len(titles), len(readers), len(branches)
    ev = events_from_tables(f, with_branch=True).select("reader_id", "title_id", BRANCH_COLUMN, "occurred_at").collect()
    r_idx = readers.index(ev["reader_id"]) if len(ev) else np.zeros(0, np.int32)
    t_idx = titles.index(ev["title_id"]) if len(ev) else np.zeros(0, np.int32)
    # Offset so that loans before 1970 (historical lending records) stay positive, i.e. stored;
    # an event with an unknown date still counts as borrowed, "long ago" (value 1).
    days = (ev["occurred_at"].dt.date().cast(pl.Int32) + HISTORY_OFFSET).fill_null(1).to_numpy().astype(np.int32)
    known_t = t_idx >= 0
    ok = known_t & (r_idx >= 0)
    b_idx = branches.index(ev[BRANCH_COLUMN].fill_null("")) if len(ev) else np.zeros(0, np.int32)
    okb = known_t & (b_idx >= 0)
    branch_loans = sp.csr_matrix((np.ones(int(okb.sum()), np.float32), (b_idx[okb], t_idx[okb])), shape=(n_b, n_t))
    branch_loans.sum_duplicates()
    return {
        "popularity": np.bincount(t_idx[known_t], minlength=n_t).astype(np.float64),
        "history": _latest(r_idx[ok], t_idx[ok], days[ok], (n_r, n_t)),
        "branch_loans": branch_loans,
    }


def _branch_facts(branches_table: pl.DataFrame, branches: Vocabulary) -> dict[str, np.ndarray]:
    """Name, district and home delivery per branch row."""
    br = _align(branches_table, "branch_id", branches)
    return {
        "branch_name": br["name"].fill_null(br["branch_id"]).to_numpy(),
        "branch_district": br["district"].fill_null("").to_numpy(),
        "branch_delivers": br["delivers"].fill_null(False).to_numpy(),
    }


def _reader_facts(
    readers_table: pl.DataFrame, readers: Vocabulary, branches: Vocabulary, branch_district: np.ndarray
) -> dict[str, np.ndarray]:
    """Age band, card type, home branch and its district per reader row."""
    rd = _align(readers_table, "reader_id", readers)
    home = branches.index(rd["home_branch_id"].fill_null(""))
    return {
        "reader_age_band": _codes(rd["age_band"], AGE_BANDS),
        "reader_card_type": _codes(rd["card_type"], CARD_TYPES),
        "reader_home_branch": home.astype(np.int32),
        "reader_district": np.where(home >= 0, branch_district[np.maximum(home, 0)] if len(branches) else "", ""),
    }


def _booklists(booklists: pl.DataFrame, items: pl.DataFrame, titles: Vocabulary) -> dict[str, object]:
    """The booklists and their booklist × title membership."""
    bl_vocab = Vocabulary(booklists["booklist_id"], "booklist_id") if len(booklists) else Vocabulary([], "booklist_id")
    li = bl_vocab.index(items["booklist_id"]) if len(items) else np.zeros(0, np.int32)
    ti = titles.index(items["title_id"]) if len(items) else np.zeros(0, np.int32)
    okl = (li >= 0) & (ti >= 0)
    membership = sp.csr_matrix((np.ones(int(okl.sum()), bool), (li[okl], ti[okl])), shape=(len(bl_vocab), len(titles)))
    return {"booklists": booklists, "booklist_items": membership}


def _latest(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR with the maximum of ``values`` per (row, col) (duplicates reduced by max, not sum)."""
    if len(rows) == 0:
        return sp.csr_matrix(shape, dtype=np.int32)
    key = rows.astype(np.int64) * shape[1] + cols
    order = np.lexsort((-values, key))
    first = np.ones(len(order), bool)
    first[1:] = key[order][1:] != key[order][:-1]
    pick = order[first]
    m = sp.csr_matrix((values[pick].astype(np.int32), (rows[pick], cols[pick])), shape=shape)
    m.sort_indices()
    return m


def _pack_csr_rows(m: sp.csr_matrix, n_cols: int) -> np.ndarray:
    """Rows of a bool CSR as a packed bitmask (rows × ceil(n_cols / 8) uint8, big bit order)."""
    n_rows = m.shape[0]
    width = (n_cols + 7) // 8
    out = np.zeros((n_rows, width), np.uint8)
    if m.nnz:
        coo = m.tocoo()
        keep = coo.data != 0
        r, c = coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64)
        np.bitwise_or.at(out, (r, c >> 3), (np.uint8(128) >> (c & 7).astype(np.uint8)).astype(np.uint8))
    return out
