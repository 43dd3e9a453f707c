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
* ``wait`` — every copy is out: about how many days until the reader can have it, and how many
  readers are waiting ahead (only with the expected waits of ``recsys.queues``; with them the
  delivery and transfer reasons also say the days).
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
from recsys.queues import Waits

_log = logging.getLogger(__name__)

#: Pairs of (history title, recommended title) at most for a dense co-occurrence block (8 B each).
_DENSE_PAIRS_MAX = 2_000_000
#: Title × title co-occurrence entries at most (bound) to precompute per context (~12 B each).
_COOC_MAX = 5_000_000


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
    WAIT = "wait"


@dataclass(frozen=True)
class Reason:
    """One reason: its code, the text shown to the reader and the id of its evidence."""

    code: ReasonCode
    text: str
    #: title_id (borrowed title), booklist_id, or branch_id the reason rests on; None when self-evident.
    ref: str | None = None
    #: Template key of :data:`TEXTS` and its values, so that :func:`render` can say it in zh-CN or en.
    key: str = ""
    params: tuple = ()


#: The sentences of the reasons: zh-CN (the default of the API) with 《》 around titles, and en.
TEXTS: dict[str, dict[str, str]] = {
    "because": {"zh-CN": "因为您借过《{0}》", "en": "Because you borrowed «{0}»"},
    "similar": {"zh-CN": "与您借过的《{0}》相似", "en": "Similar to «{0}», which you borrowed"},
    "also": {"zh-CN": "借过《{0}》的 {1} 位读者也借了它", "en": "{1} {2} of «{0}» also borrowed it"},
    "list": {"zh-CN": "入选《{0}》书单", "en": "On the «{0}» list"},
    "new": {"zh-CN": "{1}类新书", "en": "New arrival in {0}"},
    "local": {"zh-CN": "城市记忆馆藏的本地文献", "en": "Local literature from the City Memory collection"},
    "branch": {"zh-CN": "在{0}很受欢迎", "en": "Popular at {0}"},
    "city": {"zh-CN": "全市热门", "en": "Popular in the city"},
    "ebook": {"zh-CN": "可立即阅读电子书", "en": "Read it now as an e-book"},
    "delivery": {"zh-CN": "可送书上门", "en": "Home delivery available"},
    "available": {"zh-CN": "在{0}架上可借", "en": "On the shelf at {0}"},
    "delivery_days": {"zh-CN": "约 {0} 天送书上门", "en": "Home delivery in about {0} days"},
    "transfer": {"zh-CN": "约 {0} 天：从{1}调来", "en": "About {0} days: sent from {1}"},
    "queue": {"zh-CN": "约 {0} 天：{1} 位读者在排队", "en": "About {0} days: {1} {2} waiting"},
    "returning": {"zh-CN": "约 {0} 天：全部在借，归还后可借", "en": "About {0} days: every copy is out until then"},
}
LANGUAGES = ("zh-CN", "en")


def reason(code: ReasonCode, key: str, *params, ref: str | None = None) -> Reason:
    """A reason whose English text comes from :data:`TEXTS` (other languages through :func:`render`)."""
    return Reason(code, TEXTS[key]["en"].format(*params), ref, key, tuple(params))


def render(r: Reason, lang: str = "zh-CN") -> str:
    """The reason's sentence in ``lang`` ('zh-CN' or 'en'); a reason without a template keeps its text."""
    template = TEXTS.get(r.key, {}).get(lang)
    return r.text if template is None else template.format(*r.params)


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
    both = _co_readers(context, p_h, p_t)
    # The reader's own loans are not "other readers".
    rows = np.asarray(reader_rows, dtype=np.int64)[p_i]
    own = np.zeros(p_i.size)
    known = rows >= 0
    if known.any():
        borrowed = _KeyIndex.of(context, "borrowed", context.borrowed)
        own[known] = borrowed.contains(rows[known], p_h[known]) & borrowed.contains(rows[known], p_t[known])
    others = both - own
    readers_per_title = context.readers_per_title
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
            sel = np.flatnonzero(missing)
            r_of_t = np.searchsorted(m_t, p_t[sel])
            # Score = depth - rank of the history title among the recommendation's neighbours (0 = absent).
            hit = (sim_ids[r_of_t] == p_h[sel][:, None]) & valid[r_of_t]
            score = np.where(hit.any(axis=1), depth - np.argmax(hit, axis=1), 0).astype(np.float64)
            win2 = _first_per_key(keys[sel], score)
            best.ravel()[keys[sel][win2]] = p_h[sel][win2]
            via_model.ravel()[keys[sel][win2]] = True
    return best, co_readers, via_model


def _co_readers(context: LibraryContext, h: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Readers (in the context) who borrowed both titles, per pair ``(h[i], t[i])`` (float64).

    When the title × title co-occurrence matrix is small (at most :data:`_COOC_MAX` entries bound by
    the sum of squared history lengths, e.g. the small city: ~0.6 M entries, ~7 MB) it is built once per
    context and looked up; otherwise (the city profile) each call multiplies the needed columns.
    """
    cooc = context.memo("cooccurrence", lambda: _cooccurrence_index(context))
    if cooc is not None:
        return cooc.values(h, t)
    network = context.borrowed_csc
    uh, h_col = np.unique(h, return_inverse=True)
    ut, t_col = np.unique(t, return_inverse=True)
    co = network[:, uh].T.tocsr() @ network[:, ut]  # |uh| × |ut|: readers who borrowed both
    if uh.size * ut.size <= _DENSE_PAIRS_MAX:
        return co.toarray()[h_col, t_col].astype(np.float64)
    return np.asarray(co[h_col, t_col], dtype=np.float64).ravel()


def _cooccurrence_index(context: LibraryContext) -> _KeyIndex | None:
    lens = np.diff(context.borrowed.indptr).astype(np.int64)
    if int((lens * lens).sum()) > _COOC_MAX:
        return None
    net = context.borrowed
    return _KeyIndex((net.T @ net).tocsr())


def _popular_masks(context: LibraryContext, branch_rows: np.ndarray, title_rows: np.ndarray, top: int):
    """(popular at the reader's branch, popular in the city) for each recommendation, bool (k × n)."""
    pop = context.popularity
    city_cut, branch_cut = context.memo(("popular_cuts", top), lambda: _popular_cuts(context, top))
    safe_t = np.where(title_rows >= 0, title_rows, 0)
    in_city = (pop[safe_t] >= max(city_cut, 1.0)) & (title_rows >= 0)
    at_branch = np.zeros(title_rows.shape, bool)
    b = np.asarray(branch_rows, dtype=np.int64)
    if context.branch_loans.shape[0] and (b >= 0).any():
        rows = np.flatnonzero(b >= 0)
        loans = _KeyIndex.of(context, "branch_loans", context.branch_loans)
        vals = loans.values(np.broadcast_to(b[rows][:, None], safe_t[rows].shape), safe_t[rows])
        at_branch[rows] = (vals >= np.maximum(branch_cut[b[rows]], 1.0)[:, None]) & (title_rows[rows] >= 0)
    return at_branch, in_city


def _popular_cuts(context: LibraryContext, top: int) -> tuple[float, np.ndarray]:
    """Loans of the ``top``-th most borrowed title: in the city, and per branch (0 when fewer titles)."""
    pop = context.popularity
    city_cut = float(np.sort(pop)[::-1][min(top, len(pop)) - 1]) if len(pop) else 0.0
    bl = sp.csr_matrix(context.branch_loans)
    n_b, n_t = bl.shape
    lens = np.diff(bl.indptr)
    row_of = np.repeat(np.arange(n_b), lens)
    ranked = bl.data[np.lexsort((-bl.data, row_of))]  # per branch row, descending
    pos = min(top, n_t) - 1
    cut = np.zeros(n_b)
    ok = lens > pos
    cut[ok] = ranked[bl.indptr[:-1][ok] + pos]
    return city_cut, cut


class _KeyIndex:
    """Vectorised point look-ups in a CSR matrix: sorted ``row * n_cols + col`` keys and their values.

    Built once per (context, matrix) — nnz × 8 bytes — so a request looks up its (row, col) pairs with
    one ``searchsorted`` instead of scipy fancy indexing.
    """

    def __init__(self, m: sp.csr_matrix) -> None:
        m = sp.csr_matrix(m)
        m.sum_duplicates()  # also sorts the indices of each row
        self.n_cols = m.shape[1]
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        self.keys = rows * self.n_cols + m.indices
        self.data = m.data

    @classmethod
    def of(cls, context: LibraryContext, name: str, m: sp.csr_matrix) -> _KeyIndex:
        return context.memo(("key_index", name), lambda: cls(m))

    def _find(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(rows, dtype=np.int64) * self.n_cols + np.asarray(cols, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, q), max(self.keys.size - 1, 0))
        hit = self.keys[pos] == q if self.keys.size else np.zeros(q.shape, bool)
        return pos, hit

    def values(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Stored values at (rows, cols), 0 where absent (float64, broadcast shape)."""
        pos, hit = self._find(rows, cols)
        return np.where(hit, self.data[pos] if self.data.size else 0, 0).astype(np.float64)

    def contains(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Bool: a non-zero entry is stored at (rows, cols)."""
        pos, hit = self._find(rows, cols)
        return hit & (self.data[pos] != 0) if self.data.size else hit


def _history_rows(context: LibraryContext, rows: np.ndarray, extra_history: sp.csr_matrix | None) -> sp.csr_matrix:
    """(k × n_titles) bool CSR: each reader's context history plus ``extra_history``."""
    k, n_t = len(rows), len(context.titles)
    known = np.flatnonzero(rows >= 0)
    parts_r: list[np.ndarray] = []
    parts_c: list[np.ndarray] = []
    if known.size:
        h = context.history
        starts = h.indptr[rows[known]].astype(np.int64)
        lens = h.indptr[rows[known] + 1].astype(np.int64) - starts
        offs = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(starts, lens)
        keep = h.data[offs] > 0
        parts_r.append(np.repeat(known, lens)[keep])
        parts_c.append(h.indices[offs][keep].astype(np.int64))
    if extra_history is not None and extra_history.nnz:
        extra = sp.coo_matrix(extra_history)
        keep = extra.data != 0
        parts_r.append(extra.row[keep].astype(np.int64))
        parts_c.append(extra.col[keep].astype(np.int64))
    if not parts_r:
        return sp.csr_matrix((k, n_t), dtype=bool)
    key = np.concatenate(parts_r) * n_t + np.concatenate(parts_c)
    if len(parts_r) > 1:
        key = np.unique(key)  # a context history alone is already sorted and duplicate-free
    r, c = key // n_t, key % n_t
    indptr = np.zeros(k + 1, np.int64)
    np.cumsum(np.bincount(r, minlength=k), out=indptr[1:])
    return sp.csr_matrix((np.ones(key.size, bool), c, indptr), shape=(k, n_t))


@dataclass
class _Evidence:
    """The facts behind the reasons of one explain() call, for k readers × n recommended titles.

    Per-recommendation facts are nested Python lists (``[i][j]``): the reasons are assembled one
    title at a time, and a list index costs a fraction of a numpy scalar index.
    """

    #: [k][n] best history title row (-1 none), its co-readers, whether the model's similarity chose it.
    because: list[list[int]]
    co_readers: list[list[int]]
    via_model: list[list[bool]]
    #: [k][n] popular at the reader's branch / in the city; an on-shelf copy at the reader's branch.
    at_branch: list[list[bool]]
    in_city: list[list[bool]]
    here: list[list[bool]]
    #: [k] the reader has a history; branch row (-1 unknown); home delivery reaches the branch.
    has_history: list[bool]
    branches: list[int]
    delivers: list[bool]
    #: Per title (numpy): first active booklist row (-1 none); new arrival.
    first_list: np.ndarray
    new: np.ndarray
    #: Booklist ids and names in row order.
    list_ids: list[str]
    list_names: list[str]
    #: [k][n] expected wait (days), holds ahead, a copy free now; None without waits.
    wait_days: list[list[float]] | None = None
    ahead: list[list[int]] | None = None
    free_now: list[list[bool]] | None = None


def _branch_delivers(context: LibraryContext, branches: np.ndarray) -> np.ndarray:
    """Per row: the reader's branch offers home delivery (False without a branch, or without any
    branch table, as in an interactions-only data directory)."""
    out = np.zeros(branches.shape, bool)
    known = branches >= 0
    if known.any() and len(context.branch_delivers):
        out[known] = context.branch_delivers[branches[known]]
    return out


def _gather_evidence(
    context: LibraryContext,
    rows: np.ndarray,
    recs: np.ndarray,
    branches: np.ndarray,
    extra_history: sp.csr_matrix | None,
    similar: SimilarFn | None,
    on: date | None,
    new_arrival_days: int,
    popular_top: int,
    waits: Waits | None = None,
) -> _Evidence:
    """Every fact :func:`explain` needs, computed with whole-array operations."""
    hist = _history_rows(context, rows, extra_history)
    because, co_readers, via_model = best_history_titles(context, hist, rows, recs, similar)
    at_branch, in_city = _popular_masks(context, branches, recs, popular_top)
    safe = np.where(recs >= 0, recs, 0)
    here = np.zeros(recs.shape, bool)
    okb = branches >= 0
    if okb.any() and context.on_shelf.shape[1]:
        here[okb] = context.on_shelf_at(branches[okb][:, None], safe[okb])
    list_ids, list_names = context.memo(
        "booklist_names",
        lambda: (
            (context.booklists["booklist_id"].to_list(), context.booklists["name"].to_list())
            if len(context.booklists)
            else ([], [])
        ),
    )
    return _Evidence(
        because=because.tolist(),
        co_readers=co_readers.tolist(),
        via_model=via_model.tolist(),
        at_branch=at_branch.tolist(),
        in_city=in_city.tolist(),
        here=here.tolist(),
        has_history=(np.diff(hist.indptr) > 0).tolist(),
        branches=branches.tolist(),
        delivers=_branch_delivers(context, branches).tolist(),
        first_list=context.first_active_booklist(on),
        new=context.new_arrivals(new_arrival_days, on),
        list_ids=list_ids,
        list_names=list_names,
        wait_days=None if waits is None else waits.days.tolist(),
        ahead=None if waits is None else waits.ahead.tolist(),
        free_now=None if waits is None else waits.free_now.tolist(),
    )


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
    waits: Waits | None = None,
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
        waits: expected waits of ``title_rows`` (:func:`recsys.queues.expected_wait`): the access
            reason then says when the reader can have each title, also when every copy is out.
    """
    rows = np.asarray(reader_rows, dtype=np.int64)
    recs = np.asarray(title_rows, dtype=np.int64)
    branches = context.branch_of(rows) if branch_rows is None else np.asarray(branch_rows, dtype=np.int64)
    ev = _gather_evidence(
        context, rows, recs, branches, extra_history, similar, on, new_arrival_days, popular_top, waits
    )
    return [[_title_reasons(context, ev, i, j, t) for j, t in enumerate(row)] for i, row in enumerate(recs.tolist())]


def _title_reasons(context: LibraryContext, ev: _Evidence, i: int, j: int, t: int) -> list[Reason]:
    """The reasons, in display order, for recommendation ``j`` (title row ``t``, -1 none) of reader ``i``."""
    if t < 0:
        return []
    reasons: list[Reason] = []
    h = ev.because[i][j]
    if h >= 0:
        reasons += _history_reasons(context, ev, i, j, h)
    bl = int(ev.first_list[t])
    if bl >= 0:
        reasons.append(reason(ReasonCode.ON_BOOKLIST, "list", ev.list_names[bl], ref=ev.list_ids[bl]))
    if ev.new[t]:
        reasons.append(reason(ReasonCode.NEW_ARRIVAL, "new", context.class_name(t), context.class_name(t, "zh-CN")))
    if context.local_literature[t]:
        reasons.append(reason(ReasonCode.LOCAL_LITERATURE, "local"))
    if h < 0 or not ev.has_history[i]:
        if ev.at_branch[i][j]:
            b = ev.branches[i]
            reasons.append(
                reason(ReasonCode.POPULAR_AT_BRANCH, "branch", context.branch_name[b], ref=context.branch_ids[b])
            )
        elif ev.in_city[i][j]:
            reasons.append(reason(ReasonCode.POPULAR_IN_CITY, "city"))
    access = _access_reason(context, ev, i, j, t)
    if access is not None:
        reasons.append(access)
    return reasons


def _history_reasons(context: LibraryContext, ev: _Evidence, i: int, j: int, h: int) -> list[Reason]:
    """``because_you_borrowed`` (and ``also_borrowed`` when co-readers, not the model, found it)."""
    name = context.title_text[h]
    ref = context.title_ids[h]
    if ev.via_model[i][j]:
        return [reason(ReasonCode.BECAUSE_YOU_BORROWED, "similar", name, ref=ref)]
    c = ev.co_readers[i][j]
    who = "reader" if c == 1 else "readers"
    return [
        reason(ReasonCode.BECAUSE_YOU_BORROWED, "because", name, ref=ref),
        reason(ReasonCode.ALSO_BORROWED, "also", name, c, who, ref=ref),
    ]


def _wait_reason(context: LibraryContext, ev: _Evidence, i: int, j: int, t: int) -> Reason | None:
    """When the reader can have a print title, from the expected waits: on the shelf here, by
    delivery or transfer in about N days, or about N days behind the holds waiting."""
    days = ev.wait_days[i][j]
    if days == float("inf"):
        return None
    d = max(int(np.ceil(days)), 1)
    if not ev.free_now[i][j]:
        ahead = ev.ahead[i][j]
        if ahead == 0:
            return reason(ReasonCode.WAIT, "returning", d)
        return reason(ReasonCode.WAIT, "queue", d, ahead, "reader is" if ahead == 1 else "readers are")
    if context.first_shelf_branch[t] < 0:
        return None
    b = int(context.first_shelf_branch[t])
    if ev.delivers[i]:
        return reason(ReasonCode.HOME_DELIVERY, "delivery_days", d, ref=context.branch_ids[b])
    return reason(ReasonCode.AVAILABLE_AT, "transfer", d, context.branch_name[b], ref=context.branch_ids[b])


def _access_reason(context: LibraryContext, ev: _Evidence, i: int, j: int, t: int) -> Reason | None:
    """How the reader gets the title now: e-book, on shelf at their branch, delivery, another branch."""
    if context.digital[t]:
        return reason(ReasonCode.EBOOK, "ebook")
    if ev.wait_days is not None and not (ev.free_now[i][j] and ev.here[i][j]):
        return _wait_reason(context, ev, i, j, t)
    if ev.here[i][j]:
        b = ev.branches[i]
    elif context.first_shelf_branch[t] >= 0:
        b = int(context.first_shelf_branch[t])
        if ev.delivers[i]:
            return reason(ReasonCode.HOME_DELIVERY, "delivery", ref=context.branch_ids[b])
    else:
        return None
    return reason(ReasonCode.AVAILABLE_AT, "available", context.branch_name[b], ref=context.branch_ids[b])
