"""Explanations: a short, true reason for every recommended title, built from the data.

Each :class:`Reason` carries a code (for the API and analytics), a display text and the id of the
evidence (``ref``: the borrowed title, the booklist, the branch), so a test — or a suspicious
reader — can check it. The facts are computed in batch (sparse co-occurrence, masks); only the
final strings are assembled per recommendation.

Reasons, in display order:

* ``because_you_borrowed`` — the title in the reader's history that co-occurs most (cosine of
  borrower sets) with the recommendation; falls back on the model's own similarity
  (``model.similar``) when no other reader borrowed both.
* ``also_borrowed`` — "N readers of «X» also borrowed it": N other readers borrowed both.
* ``on_booklist`` — on a booklist/campaign active on the day.
* ``new_arrival`` — added to the collection within the promotion window, with its CLC class.
* ``local_literature`` — part of the City Memory collection.
* ``popular_at_branch`` / ``popular_in_city`` — among the most borrowed titles (cold start, or no
  personal evidence).
* ``ebook`` / ``available_at`` / ``home_delivery`` — how the reader can get it now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import numpy as np
import scipy.sparse as sp

from recsys.context import LibraryContext

_log = logging.getLogger(__name__)


class ReasonCode(StrEnum):
    """Why a title is recommended."""

    BECAUSE_YOU_BORROWED = "because_you_borrowed"
    ALSO_BORROWED = "also_borrowed"
    ON_BOOKLIST = "on_booklist"
    NEW_ARRIVAL = "new_arrival"
    LOCAL_LITERATURE = "local_literature"
    POPULAR_AT_BRANCH = "popular_at_branch"
    POPULAR_IN_CITY = "popular_in_city"
    EBOOK = "ebook"
    AVAILABLE_AT = "available_at"
    HOME_DELIVERY = "home_delivery"


@dataclass(frozen=True)
class Reason:
    """One reason: its code, the text shown to the reader and the id of its evidence."""

    code: ReasonCode
    text: str
    #: title_id (borrowed title), booklist_id, or branch_id the reason rests on; None when self-evident.
    ref: str | None = None


#: ``similar(title_rows, n) -> (title_rows (k × n), scores)``, e.g. ``model.similar``.
SimilarFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def _first_per_key(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Positions of the maximum ``values`` per distinct key (positive values only)."""
    keep = values > 0
    pos = np.flatnonzero(keep)
    if pos.size == 0:
        return pos
    order = pos[np.lexsort((-values[pos], keys[pos]))]
    first = np.ones(order.size, bool)
    first[1:] = keys[order][1:] != keys[order][:-1]
    return order[first]


def best_history_titles(
    context: LibraryContext,
    history: sp.csr_matrix,
    reader_rows: np.ndarray,
    title_rows: np.ndarray,
    similar: SimilarFn | None = None,
    similar_depth: int = 50,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each recommendation (i, j), the reader's history title that best explains it.

    Args:
        context: gives the network's borrowing history (co-occurrence).
        history: (k × n_titles) the readers' own history (context rows + live events), bool.
        reader_rows: (k,) context rows of the readers (``-1`` = not in the context).
        title_rows: (k × n) recommended title rows (``-1`` padding).
        similar: model similarity used when no co-occurrence exists.
        similar_depth: neighbours asked from ``similar`` per recommended title.

    Returns:
        ``(history title row (k × n), co-readers (k × n), via_model (k × n) bool)``; ``-1`` / 0 when
        nothing explains the pair. Co-readers = other readers who borrowed both titles.
    """
    k, n = title_rows.shape
    best = np.full((k, n), -1, np.int64)
    co_readers = np.zeros((k, n), np.int64)
    via_model = np.zeros((k, n), bool)
    hist = sp.csr_matrix(history, dtype=bool)
    if hist.nnz == 0 or k == 0 or n == 0:
        return best, co_readers, via_model
    # Pairs (reader i, slot j, history title h): every history title against every recommendation.
    lens = np.diff(hist.indptr)
    p_i = np.repeat(np.repeat(np.arange(k), lens), n)
    p_h = np.repeat(hist.indices, n)
    p_j = np.tile(np.arange(n), int(lens.sum())) if lens.sum() else np.zeros(0, np.int64)
    # The tile above is per history entry: entry e covers slots 0..n-1 in order.
    p_t = title_rows[p_i, p_j]
    ok = (p_t >= 0) & (p_t != p_h)
    p_i, p_j, p_h, p_t = p_i[ok], p_j[ok], p_h[ok], p_t[ok]
    if p_i.size == 0:
        return best, co_readers, via_model
    uniq, col = np.unique(p_t, return_inverse=True)
    network = context.borrowed
    co = (network.T @ network[:, uniq]).tocsr()  # n_titles × |uniq|: readers who borrowed both
    both = np.asarray(co[p_h, col]).ravel()
    # The reader's own loans are not "other readers".
    rows = np.asarray(reader_rows)[p_i]
    own = np.zeros(p_i.size)
    known = rows >= 0
    if known.any():
        own[known] = (
            np.asarray(network[rows[known], p_h[known]]).ravel() * np.asarray(network[rows[known], p_t[known]]).ravel()
        )
    others = both - own
    readers_per_title = np.asarray(network.sum(axis=0)).ravel()
    cosine = others / np.sqrt(np.maximum(readers_per_title[p_h] * readers_per_title[p_t], 1.0))
    keys = p_i * n + p_j
    win = _first_per_key(keys, cosine)
    best.ravel()[keys[win]] = p_h[win]
    co_readers.ravel()[keys[win]] = others[win].astype(np.int64)

    if similar is not None:
        missing = best.ravel()[keys] < 0
        if missing.any():
            m_t = np.unique(p_t[missing])
            sim_ids, _ = similar(m_t.astype(np.int32), similar_depth)
            depth = sim_ids.shape[1]
            valid = sim_ids >= 0
            # Rank matrix: |m_t| × n_titles, value = depth - rank (higher = more similar).
            rank = sp.csr_matrix(
                (
                    np.broadcast_to(depth - np.arange(depth), sim_ids.shape)[valid].astype(np.float64),
                    (np.broadcast_to(np.arange(len(m_t))[:, None], sim_ids.shape)[valid], sim_ids[valid]),
                ),
                shape=(len(m_t), len(context.titles)),
            )
            sel = np.flatnonzero(missing)
            r_of_t = np.searchsorted(m_t, p_t[sel])
            score = np.asarray(rank[r_of_t, p_h[sel]]).ravel()
            win2 = _first_per_key(keys[sel], score)
            best.ravel()[keys[sel][win2]] = p_h[sel][win2]
            via_model.ravel()[keys[sel][win2]] = True
    return best, co_readers, via_model


def _popular_masks(context: LibraryContext, branch_rows: np.ndarray, title_rows: np.ndarray, top: int):
    """(popular at the reader's branch, popular in the city) for each recommendation, bool (k × n)."""
    pop = context.popularity
    city_cut = np.sort(pop)[::-1][min(top, len(pop)) - 1] if len(pop) else 0.0
    safe_t = np.where(title_rows >= 0, title_rows, 0)
    in_city = (pop[safe_t] >= max(city_cut, 1.0)) & (title_rows >= 0)
    at_branch = np.zeros(title_rows.shape, bool)
    b = np.asarray(branch_rows)
    if context.branch_loans.shape[0] and (b >= 0).any():
        ub, inv = np.unique(b[b >= 0], return_inverse=True)
        loans = context.branch_loans[ub].toarray()  # few branches × titles
        cut = np.sort(loans, axis=1)[:, ::-1][:, min(top, loans.shape[1]) - 1]
        rows = np.flatnonzero(b >= 0)
        vals = loans[inv[:, None], safe_t[rows]]
        at_branch[rows] = (vals >= np.maximum(cut[inv], 1.0)[:, None]) & (title_rows[rows] >= 0)
    return at_branch, in_city


def explain(
    context: LibraryContext,
    reader_rows: np.ndarray,
    title_rows: np.ndarray,
    branch_rows: np.ndarray | None = None,
    extra_history: sp.csr_matrix | None = None,
    similar: SimilarFn | None = None,
    on: date | None = None,
    new_arrival_days: int = 90,
    popular_top: int = 50,
) -> list[list[list[Reason]]]:
    """Reasons for each recommended title: ``result[i][j]`` explains ``title_rows[i, j]``.

    Args:
        context: library facts.
        reader_rows: (k,) context reader rows, ``-1`` for readers the context does not know.
        title_rows: (k × n) recommended title rows, ``-1`` padding (gets no reasons).
        branch_rows: (k,) branch per reader (default: home branch; ``-1`` = unknown).
        extra_history: (k × n_titles) live events not in the context yet.
        similar: model similarity for ``because_you_borrowed`` when no co-readers exist.
        on: day for booklists and new arrivals (default ``context.today``).
        new_arrival_days: the promotion's new-arrival window, days.
        popular_top: a title is "popular" when within the top this-many by loans.
    """
    rows = np.asarray(reader_rows, dtype=np.int64)
    recs = np.asarray(title_rows, dtype=np.int64)
    k, n = recs.shape
    n_t = len(context.titles)
    branches = context.branch_of(rows) if branch_rows is None else np.asarray(branch_rows, dtype=np.int64)

    known = rows >= 0
    hist = sp.csr_matrix((k, n_t), dtype=np.int8)
    if known.any():
        scatter = sp.csr_matrix(
            (np.ones(int(known.sum()), np.int8), (np.flatnonzero(known), np.arange(int(known.sum())))),
            shape=(k, int(known.sum())),
        )
        hist = scatter @ (context.history[rows[known]] > 0).astype(np.int8)
    if extra_history is not None:
        hist = hist + sp.csr_matrix(extra_history, dtype=np.int8)
    hist = sp.csr_matrix(hist).astype(bool)
    has_history = np.diff(hist.indptr) > 0

    because, co_readers, via_model = best_history_titles(context, hist, rows, recs, similar)
    at_branch, in_city = _popular_masks(context, branches, recs, popular_top)

    safe = np.where(recs >= 0, recs, 0)
    active = np.flatnonzero(context.active_booklists(on))
    first_list = np.full(n_t, -1, np.int64)
    if active.size:
        by_title = context.booklist_items[active].T.tocsr()
        has = np.diff(by_title.indptr) > 0
        first_list[has] = active[by_title.indices[by_title.indptr[:-1][has]]]
    new = context.new_arrivals(new_arrival_days, on)
    shelf = context.on_shelf
    here = np.zeros((k, n), bool)
    okb = branches >= 0
    if okb.any() and shelf.shape[1]:
        vals = shelf[safe[okb].ravel(), np.repeat(branches[okb], n)]
        here[okb] = (np.asarray(vals).ravel() > 0).reshape(-1, n)
    anywhere_branch = np.full(n_t, -1, np.int64)
    has_copy = np.diff(shelf.indptr) > 0
    shelf_sorted = shelf.copy()
    shelf_sorted.sort_indices()
    anywhere_branch[has_copy] = shelf_sorted.indices[shelf_sorted.indptr[:-1][has_copy]]
    delivers = np.where(okb, context.branch_delivers[np.maximum(branches, 0)], False)

    ids = context.title_ids
    list_ids = context.booklists["booklist_id"].to_list() if len(context.booklists) else []
    list_names = context.booklists["name"].to_list() if len(context.booklists) else []
    branch_ids = context.branch_ids
    out: list[list[list[Reason]]] = []
    for i in range(k):
        row: list[list[Reason]] = []
        for j in range(n):
            t = int(recs[i, j])
            if t < 0:
                row.append([])
                continue
            reasons: list[Reason] = []
            h = int(because[i, j])
            if h >= 0:
                name = context.title_text[h]
                if via_model[i, j]:
                    reasons.append(
                        Reason(ReasonCode.BECAUSE_YOU_BORROWED, f"Similar to «{name}», which you borrowed", ids[h])
                    )
                else:
                    reasons.append(Reason(ReasonCode.BECAUSE_YOU_BORROWED, f"Because you borrowed «{name}»", ids[h]))
                    c = int(co_readers[i, j])
                    who = "reader" if c == 1 else "readers"
                    reasons.append(Reason(ReasonCode.ALSO_BORROWED, f"{c} {who} of «{name}» also borrowed it", ids[h]))
            bl = int(first_list[t])
            if bl >= 0:
                reasons.append(Reason(ReasonCode.ON_BOOKLIST, f"On the «{list_names[bl]}» list", list_ids[bl]))
            if new[t]:
                reasons.append(Reason(ReasonCode.NEW_ARRIVAL, f"New arrival in {context.class_name(t)}"))
            if context.local_literature[t]:
                reasons.append(Reason(ReasonCode.LOCAL_LITERATURE, "Local literature from the City Memory collection"))
            if h < 0 or not has_history[i]:
                if at_branch[i, j]:
                    b = int(branches[i])
                    reasons.append(
                        Reason(ReasonCode.POPULAR_AT_BRANCH, f"Popular at {context.branch_name[b]}", branch_ids[b])
                    )
                elif in_city[i, j]:
                    reasons.append(Reason(ReasonCode.POPULAR_IN_CITY, "Popular in the city"))
            if context.digital[t]:
                reasons.append(Reason(ReasonCode.EBOOK, "Read it now as an e-book"))
            elif here[i, j]:
                b = int(branches[i])
                reasons.append(
                    Reason(ReasonCode.AVAILABLE_AT, f"Available now at {context.branch_name[b]}", branch_ids[b])
                )
            elif anywhere_branch[t] >= 0:
                b = int(anywhere_branch[t])
                if delivers[i]:
                    reasons.append(Reason(ReasonCode.HOME_DELIVERY, "Home delivery available", branch_ids[b]))
                else:
                    reasons.append(
                        Reason(ReasonCode.AVAILABLE_AT, f"Available now at {context.branch_name[b]}", branch_ids[b])
                    )
            row.append(reasons)
        out.append(row)
    return out
