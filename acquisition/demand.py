"""Predicted loans in the next year for requested titles ("you choose, I buy" lines).

A requested book is usually *not* in the catalogue yet, so its demand is read from signals around it
(DOMAIN.md §3 "expected demand"), computed at a cut-off date from history before it:

* ``log_requesters``: distinct readers asking for the same ISBN in the batch;
* ``log_recent_requests``: distinct readers who asked for it in the 365 days before the cut-off or in
  the batch (purchase requests are a direct sample of a new book's demand);
* ``age_years``: years since publication at the cut-off (older books have spent their demand);
* ``class_rate`` / ``top_class_rate``: loans per title per year of catalogue titles in the same
  fine CLC class / top class (circulation of similar titles);
* ``author_rate``: loans per title per year of the same author's catalogue titles (0 when none);
* ``content_rate``: loans per year of the ``k_content`` catalogue titles most similar to the book in
  :class:`recsys.models.content.ContentRecommender` space (TF-IDF of title, author, subjects, CLC),
  similarity-weighted (0 when no content model is given);
* ``cf_affinity``: readers similar to the requester (user-kNN, cosine over the reader x title loan
  matrix, ``k`` neighbours) — the share of their loans that fall in the book's top class, i.e. how
  many of the requester's neighbours would borrow a book like it;
* ``holds_per_copy`` when the ISBN is already held (holds in the last year / copies);
* ``log_price`` (yuan).

A gradient-boosted Poisson regression (scikit-learn ``HistGradientBoostingRegressor``,
``loss="poisson"``) maps them to loans in the following 365 days. Two calibration sources:

* ``"purchases"`` (preferred, :meth:`DemandModel.fit` with ``labels``): books the programme bought in
  the year before ``cutoff - 365 days``, with the loans their copies got in their first year. This
  is exactly the population the model scores (requested books), so the *level* is right.
* ``"catalogue"`` (no labels needed): catalogue titles that arrive in a window after a past cut-off
  play the requested books, the readers who borrowed them in their first ``early_days`` play the
  requesters, the target is their loans in the 365 days after that. Rank-correct but biased upward
  (a catalogue arrival with early borrowers is more popular than an average requested book).

:func:`validate` fits at one cut-off and scores the next window (MAE, Spearman) against a
predict-the-mean baseline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.stats import spearmanr
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import PoissonRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from features.matrix import InteractionMatrix
from features.schema import RequestStatus, clc_top, scan_table
from features.vocab import Vocabulary
from recsys.models.content import ContentRecommender

_log = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = (
    "log_requesters",
    "log_recent_requests",
    "age_years",
    "class_rate",
    "top_class_rate",
    "author_rate",
    "content_rate",
    "cf_affinity",
    "holds_per_copy",
    "log_price",
)
YEAR = timedelta(days=365)
#: Request statuses that mean the programme bought the book.
BOUGHT = tuple(
    s.value for s in (RequestStatus.RECEIVED, RequestStatus.FULFILLED, RequestStatus.ORDERED, RequestStatus.APPROVED)
)
_REQUEST_SCHEMA = {
    "request_id": pl.String,
    "reader_id": pl.String,
    "isbn": pl.String,
    "title": pl.String,
    "author": pl.String,
    "clc_class": pl.String,
    "pub_year": pl.Int16,
    "price": pl.Float64,
    "requested_at": pl.Datetime("us"),
    "status": pl.String,
}
REQUEST_COLUMNS: tuple[str, ...] = tuple(_REQUEST_SCHEMA)


@dataclass
class DemandParams:
    """Parameters of the demand model."""

    #: Neighbours per requester for the CF signal, readers.
    k_neighbours: int = 50
    #: Days after a catalogue title's arrival whose borrowers act as its "requesters" in calibration.
    early_days: int = 30
    #: Arrival window of the calibration titles after the cut-off, days.
    window_days: int = 180
    #: Boosting rounds / learning rate / leaf size of the Poisson gradient-boosted trees.
    max_iter: int = 200
    learning_rate: float = 0.05
    min_samples_leaf: int = 20
    #: Fewer calibration cases than this: a Poisson GLM (standardised features) instead of trees.
    min_tree_cases: int = 400
    #: L2 penalty of the Poisson GLM.
    alpha: float = 1e-3
    #: Catalogue titles most similar in content whose circulation gives ``content_rate``.
    k_content: int = 20
    #: Readers per chunk in the neighbour search (bounds memory: chunk x readers float32).
    chunk: int = 256


@dataclass
class History:
    """The tables the features read, collected once (loans, titles, copies, holds, past requests)."""

    loans: pl.DataFrame
    titles: pl.DataFrame
    copies: pl.DataFrame
    holds: pl.DataFrame
    #: Past purchase requests (:data:`REQUEST_COLUMNS`); may be empty.
    requests: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_REQUEST_SCHEMA))

    @classmethod
    def load(cls, data_dir: str | Path) -> History:
        titles = scan_table(data_dir, "titles")
        wanted = ("title_id", "isbn13", "title", "author", "clc_class", "subjects", "pub_year", "added_at", "format")
        have = titles.collect_schema().names()
        loans = scan_table(data_dir, "loans")
        loan_cols = [c for c in ("due_at", "returned_at") if c in loans.collect_schema().names()]
        copies = scan_table(data_dir, "copies")
        copy_cols = [c for c in ("acquired_at",) if c in copies.collect_schema().names()]
        return cls(
            loans=loans.select("reader_id", "title_id", "borrowed_at", *loan_cols).collect(),
            titles=titles.select([c for c in wanted if c in have]).collect(),
            copies=copies.select("title_id", "status", *copy_cols).collect(),
            holds=scan_table(data_dir, "holds").select("title_id", "placed_at").collect(),
            requests=scan_table(data_dir, "purchase_requests").select(REQUEST_COLUMNS).collect(),
        )

    def before(self, as_of: datetime) -> History:
        """The history as it was known at ``as_of``: loans, holds and requests before it, titles
        catalogued and copies acquired by then; a return after ``as_of`` is not known yet."""
        loans = self.loans.filter(pl.col("borrowed_at") < as_of)
        if "returned_at" in loans.columns:
            loans = loans.with_columns(
                pl.when(pl.col("returned_at") < as_of).then(pl.col("returned_at")).alias("returned_at")
            )
        return History(
            loans=loans,
            titles=_known(self.titles, "added_at", as_of),
            copies=_known(self.copies, "acquired_at", as_of),
            holds=self.holds.filter(pl.col("placed_at") < as_of),
            requests=self.requests.filter(pl.col("requested_at") < as_of),
        )


def _known(frame: pl.DataFrame, column: str, as_of: datetime) -> pl.DataFrame:
    """Rows of ``frame`` whose date ``column`` is before ``as_of`` (a null date: known all along)."""
    if column not in frame.columns:
        return frame
    return frame.filter(pl.col(column).is_null() | (pl.col(column) < as_of.date()))


def _rates(history: History, cutoff: datetime) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Loans per title in the year before ``cutoff`` aggregated by fine class, top class and author."""
    held = history.titles.filter(pl.col("added_at").is_null() | (pl.col("added_at") < cutoff.date()))
    held = held.filter(pl.col("format") != "ebook") if "format" in held.columns else held
    counts = (
        history.loans.filter(pl.col("borrowed_at").is_between(cutoff - YEAR, cutoff, closed="left"))
        .group_by("title_id")
        .len("n")
    )
    per_title = held.join(counts, on="title_id", how="left").with_columns(
        pl.col("n").fill_null(0).cast(pl.Float64), clc_top(pl.col("clc_class")).alias("top")
    )
    by_class = per_title.group_by("clc_class").agg(pl.col("n").mean().alias("class_rate"))
    by_top = per_title.group_by("top").agg(pl.col("n").mean().alias("top_class_rate"))
    by_author = (
        per_title.filter(pl.col("author").is_not_null()).group_by("author").agg(pl.col("n").mean().alias("author_rate"))
    )
    return by_class, by_top, by_author


def class_rates(history: History, cutoff: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(clc_class, class_rate)`` and ``(top, top_class_rate)``: loans per print title in the year
    before ``cutoff`` by fine and top CLC class (the live counter's pacing values, see
    :func:`acquisition.pacing.class_values`)."""
    by_class, by_top, _ = _rates(history, cutoff)
    return by_class, by_top


class ContentNeighbours:
    """Catalogue titles most similar in content to requested books, through the recsys content model
    (:class:`recsys.models.content.ContentRecommender`: TF-IDF of title n-grams, author, subjects and
    CLC prefixes). A requested book joins the model with :meth:`ContentRecommender.add_titles`, so
    it is scored exactly as a book bought yesterday would be recommended."""

    def __init__(self, k: int = 20, block: int = 512) -> None:
        #: Neighbours per book, titles.
        self.k = k
        #: Books per similarity block (bounds memory: block x catalogue float32).
        self.block = block

    def fit(self, titles: pl.DataFrame) -> ContentNeighbours:
        """Fit the content model on the print catalogue (``titles`` schema); returns self."""
        catalogue = titles.filter(pl.col("format") != "ebook") if "format" in titles.columns else titles
        catalogue = catalogue.unique("title_id", keep="first", maintain_order=True)
        vocab = Vocabulary(catalogue["title_id"], "title_id")
        empty = InteractionMatrix(
            sp.csr_matrix((1, len(vocab)), dtype=np.float32), Vocabulary(["-"], "reader_id"), vocab
        )
        self.model_ = ContentRecommender().fit(empty, catalogue)
        self.catalogue_ = vocab
        _log.info("content neighbours: %d catalogue titles", len(vocab))
        return self

    def neighbours(self, books: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(title_ids (n x k) str, similarity (n x k) float32)`` of each book (``isbn``, ``title``,
        ``author``, ``clc_class``), best first; a catalogue record identical to the book (sim > 0.999)
        is skipped."""
        keys = "isbn:" + books["isbn"].fill_null("").cast(pl.String)
        docs = books.select(
            keys.alias("title_id"),
            pl.col("title").fill_null("") if "title" in books.columns else pl.lit(""),
            pl.col("author") if "author" in books.columns else pl.lit(None, pl.String).alias("author"),
            pl.col("clc_class").fill_null(""),
        ).unique("title_id", keep="first", maintain_order=True)
        self.model_.add_titles(docs)
        rows = self.model_.titles_.index(keys)
        n_cat = len(self.catalogue_)
        cat_t = self.model_.title_vectors_[:n_cat].T.tocsr()
        k = min(self.k, n_cat)
        ids = np.empty((len(rows), k), dtype=np.int64)
        sims = np.empty((len(rows), k), dtype=np.float32)
        for start in range(0, len(rows), self.block):  # blocks of books, not of loans
            dense = (self.model_.title_vectors_[rows[start : start + self.block]] @ cat_t).toarray()
            dense[dense > 0.999] = 0.0
            top = np.argpartition(-dense, k - 1, axis=1)[:, :k]
            val = np.take_along_axis(dense, top, axis=1)
            order = np.argsort(-val, axis=1)
            ids[start : start + self.block] = np.take_along_axis(top, order, axis=1)
            sims[start : start + self.block] = np.take_along_axis(val, order, axis=1)
        return self.catalogue_.lookup(ids.ravel()).reshape(ids.shape), sims


def _content_rate(
    cases: pl.DataFrame, history: History, cutoff: datetime, content: ContentNeighbours | None
) -> pl.DataFrame:
    """``isbn, content_rate``: similarity-weighted loans in the year before ``cutoff`` of each book's
    content neighbours (loans per title per year)."""
    books = cases.unique("isbn", keep="first", maintain_order=True)
    if content is None or books.is_empty():
        return books.select("isbn", pl.lit(0.0).alias("content_rate"))
    ids, sims = content.neighbours(books)
    counts = (
        history.loans.filter(pl.col("borrowed_at").is_between(cutoff - YEAR, cutoff, closed="left"))
        .group_by("title_id")
        .len("n")
    )
    n = (
        pl.DataFrame({"title_id": ids.ravel()})
        .join(counts, on="title_id", how="left", maintain_order="left")["n"]
        .fill_null(0)
        .to_numpy()
        .reshape(ids.shape)
    )
    w = np.maximum(sims, 0.0)
    rate = (w * n).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9)
    return books.select("isbn").with_columns(pl.Series("content_rate", rate.astype(np.float64)))


def _cf_affinity(history: History, cutoff: datetime, pairs: pl.DataFrame, params: DemandParams) -> pl.DataFrame:
    """Per (reader_id, top) pair: share of the reader's k nearest neighbours' loans in class ``top``.

    Neighbours by cosine similarity of binary reader x title rows over the year before ``cutoff``
    (user-kNN collaborative filtering; float32 blocks of ``params.chunk`` requesters).
    """
    recent = history.loans.filter(pl.col("borrowed_at").is_between(cutoff - YEAR, cutoff, closed="left"))
    if recent.is_empty() or pairs.is_empty():
        return pairs.with_columns(pl.lit(0.0).alias("cf_affinity"))
    readers = Vocabulary.from_values(recent["reader_id"], "reader_id")
    titles = Vocabulary.from_values(recent["title_id"], "title_id")
    tops = sorted(history.titles["clc_class"].str.slice(0, 1).unique().drop_nulls().to_list())
    pairs_r = readers.index(pairs["reader_id"])
    rows, cols = readers.index(recent["reader_id"]), titles.index(recent["title_id"])
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(readers), len(titles)))
    x.sum_duplicates()
    x.data = np.minimum(x.data, 1.0)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    xn = sp.csr_matrix(sp.diags((1.0 / np.maximum(norms, 1e-9)).astype(np.float32)) @ x, dtype=np.float32)
    xnt = xn.T.tocsr()
    title_top = (
        pl.DataFrame({"title_id": titles.series})
        .join(history.titles.select("title_id", clc_top(pl.col("clc_class")).alias("top")), on="title_id", how="left")
        .get_column("top")
        .fill_null("")
        .to_numpy()
    )
    top_idx = np.searchsorted(tops, title_top)
    valid_top = (top_idx < len(tops)) & (np.asarray(tops + [""])[np.minimum(top_idx, len(tops))] == title_top)
    t2c = sp.csr_matrix(
        (np.ones(valid_top.sum(), np.float32), (np.flatnonzero(valid_top), top_idx[valid_top])),
        shape=(len(titles), len(tops)),
    )
    class_counts = (x @ t2c).toarray()  # readers x classes, loans
    uniq_readers = np.unique(pairs_r[pairs_r >= 0])
    share = np.zeros((len(readers), len(tops)), dtype=np.float32)
    k = params.k_neighbours
    for start in range(0, len(uniq_readers), params.chunk):  # chunks of requesters, not of loans
        block = uniq_readers[start : start + params.chunk]
        sim = (xn[block] @ xnt).toarray()
        sim[np.arange(len(block)), block] = 0.0  # a reader is not their own neighbour
        kk = min(k, sim.shape[1] - 1)
        if kk <= 0:
            continue
        top_k = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
        weights = np.take_along_axis(sim, top_k, axis=1)
        neigh = np.einsum("bk,bkc->bc", weights, class_counts[top_k])
        share[block] = neigh / np.maximum(neigh.sum(axis=1, keepdims=True), 1e-9)
    top_of_pair = np.searchsorted(tops, pairs["top"].fill_null("").to_numpy())
    ok = (pairs_r >= 0) & (top_of_pair < len(tops))
    aff = np.zeros(len(pairs))
    aff[ok] = share[pairs_r[ok], top_of_pair[ok]]
    return pairs.with_columns(pl.Series("cf_affinity", aff))


def _recent_requests(cases: pl.DataFrame, history: History, cutoff: datetime) -> pl.DataFrame:
    """``case_id, n_recent``: a case's own requesters and its ISBN's requesters in the 365 days before
    the case's ``asked_at`` (default the cut-off; never after it), not other cases'."""
    if "asked_at" not in cases.columns:
        cases = cases.with_columns(pl.lit(cutoff).alias("asked_at"))
    case_isbn = cases.select(
        "case_id", "isbn", pl.col("asked_at").cast(pl.Datetime("us")).clip(upper_bound=cutoff)
    ).unique("case_id")
    past = history.requests.filter(
        pl.col("requested_at").is_between(cutoff - 2 * YEAR, cutoff, closed="left")
        & pl.col("isbn").is_in(cases["isbn"].unique().implode())
    ).select("isbn", "reader_id", "requested_at")
    before = case_isbn.join(past, on="isbn").filter(
        pl.col("requested_at").is_between(pl.col("asked_at") - YEAR, pl.col("asked_at"), closed="left")
    )
    return (
        pl.concat([before.select("case_id", "reader_id"), cases.select("case_id", "reader_id")])
        .group_by("case_id")
        .agg(pl.col("reader_id").n_unique().alias("n_recent"))
    )


def demand_features(
    cases: pl.DataFrame,
    history: History,
    cutoff: datetime,
    params: DemandParams,
    content: ContentNeighbours | None = None,
) -> pl.DataFrame:
    """Feature frame, one row per case, in :data:`FEATURES` order after ``case_id``.

    ``cases`` has ``case_id``, ``reader_id`` (one row per requester; a case may repeat), ``isbn``,
    ``clc_class``, ``author`` and ``price`` (yuan), optionally ``title`` and ``pub_year``. Only
    history before ``cutoff`` is read. ``content`` adds ``content_rate`` (0 without it).
    """
    by_class, by_top, by_author = _rates(history, cutoff)
    for col, dtype in (("title", pl.String), ("pub_year", pl.Int32)):
        if col not in cases.columns:
            cases = cases.with_columns(pl.lit(None, dtype).alias(col))
    cases = cases.with_columns(
        pl.col("reader_id", "isbn", "clc_class", "author", "title").cast(pl.String),
        pl.col("price").cast(pl.Float64),
        pl.col("pub_year").cast(pl.Int32),
    )
    cases = cases.with_columns(clc_top(pl.col("clc_class").fill_null("")).alias("top"))
    pairs = cases.select("reader_id", "top").unique()
    aff = _cf_affinity(history, cutoff, pairs, params)
    recent_requests = _recent_requests(cases, history, cutoff)
    content_rate = _content_rate(cases, history, cutoff, content)
    copies = history.copies.filter(~pl.col("status").is_in(["lost", "withdrawn"])).group_by("title_id").len("n_copies")
    holds = (
        history.holds.filter(pl.col("placed_at").is_between(cutoff - YEAR, cutoff, closed="left"))
        .group_by("title_id")
        .len("n_holds")
    )
    held = (
        history.titles.select("title_id", pl.col("isbn13").alias("isbn"))
        .drop_nulls("isbn")
        .unique("isbn")
        .join(copies, on="title_id", how="left")
        .join(holds, on="title_id", how="left")
        .select("isbn", (pl.col("n_holds").fill_null(0) / pl.col("n_copies").fill_null(0).clip(1)).alias("hpc"))
    )
    per_case = (
        cases.join(aff, on=["reader_id", "top"], how="left")
        .group_by("case_id", maintain_order=True)
        .agg(
            pl.col("reader_id").n_unique().alias("n_requesters"),
            pl.col("cf_affinity").mean(),
            pl.col("isbn").first(),
            pl.col("clc_class").first(),
            pl.col("top").first(),
            pl.col("author").first(),
            pl.col("price").first(),
            pl.col("pub_year").first(),
        )
    )
    top_mean = by_top["top_class_rate"].mean() if by_top.height else 0.0
    return (
        per_case.join(by_class, on="clc_class", how="left")
        .join(by_top, on="top", how="left")
        .join(by_author, on="author", how="left")
        .join(held, on="isbn", how="left")
        .join(recent_requests, on="case_id", how="left")
        .join(content_rate, on="isbn", how="left")
        .select(
            "case_id",
            pl.col("n_requesters").cast(pl.Float64).log1p().alias("log_requesters"),
            pl.max_horizontal(pl.col("n_recent").fill_null(0), pl.col("n_requesters"))
            .cast(pl.Float64)
            .log1p()
            .alias("log_recent_requests"),
            (pl.lit(cutoff.year) - pl.col("pub_year")).clip(0, 10).fill_null(1).cast(pl.Float64).alias("age_years"),
            pl.coalesce("class_rate", "top_class_rate", pl.lit(top_mean)).fill_null(0.0).alias("class_rate"),
            pl.col("top_class_rate").fill_null(top_mean or 0.0),
            pl.col("author_rate").fill_null(0.0),
            pl.col("content_rate").fill_null(0.0),
            pl.col("cf_affinity").fill_null(0.0),
            pl.col("hpc").fill_null(0.0).alias("holds_per_copy"),
            pl.col("price").fill_null(0.0).log1p().alias("log_price"),
        )
    )


def calibration_set(
    history: History, cutoff: datetime, params: DemandParams, content: ContentNeighbours | None = None
) -> pl.DataFrame:
    """Catalogue print titles added in ``[cutoff, cutoff + window_days)`` as training cases.

    Their "requesters" are the readers who borrowed them in their first ``early_days``; features use
    history before ``cutoff`` only; ``target`` is their loans in the 365 days after those early days.
    Reads loans up to ``cutoff + window_days + early_days + 365 days`` (:func:`horizon`).
    """
    early = timedelta(days=params.early_days)
    end = cutoff + timedelta(days=params.window_days)
    new = history.titles.filter(
        pl.col("added_at").is_not_null()
        & pl.col("added_at").is_between(cutoff.date(), end.date(), closed="left")
        & (pl.col("format") != "ebook")
    ).with_columns(pl.col("added_at").cast(pl.Datetime("us")).alias("t0"))
    loans = history.loans.join(new.select("title_id", "t0"), on="title_id")
    requesters = loans.filter(pl.col("borrowed_at") < pl.col("t0") + early).select("title_id", "reader_id").unique()
    target = (
        loans.filter(pl.col("borrowed_at").is_between(pl.col("t0") + early, pl.col("t0") + early + YEAR))
        .group_by("title_id")
        .len("target")
    )
    cases = new.join(requesters, on="title_id", how="inner").select(
        pl.col("title_id").alias("case_id"),
        "reader_id",
        pl.col("isbn13").alias("isbn"),
        "clc_class",
        "author",
        *[c for c in ("title", "pub_year") if c in new.columns],
        pl.lit(40.0).alias("price"),  # catalogue records carry list prices, not bookstore quotes
    )
    feats = demand_features(cases, history, cutoff, params, content)
    return feats.join(target, left_on="case_id", right_on="title_id", how="left").with_columns(
        pl.col("target").fill_null(0).cast(pl.Float64)
    )


def purchase_set(
    history: History,
    cutoff: datetime,
    labels: pl.DataFrame,
    params: DemandParams,
    content: ContentNeighbours | None = None,
    per_line: bool = False,
) -> pl.DataFrame:
    """Books the programme bought in the year before ``cutoff`` as training cases.

    A case is one ISBN with its requesters in that year, or (``per_line``) one request line of such
    an ISBN with its reader alone and the ISBN's requests in the 365 days before it (what a counter
    knows on arrival). Features are read at ``cutoff``; ``labels`` (``isbn``, ``loans``: first-year
    intents of the bought title) gives ``target``. ISBNs without a label are left out.
    """
    in_year = pl.col("requested_at").is_between(cutoff - YEAR, cutoff, closed="left")
    bought = history.requests.filter(in_year & pl.col("status").is_in(BOUGHT))
    bought = bought.join(labels.select("isbn").unique(), on="isbn", how="semi")
    cases = history.requests.filter(in_year & pl.col("isbn").is_in(bought["isbn"].unique().implode())).select(
        pl.col("request_id" if per_line else "isbn").alias("case_id"),
        "reader_id",
        "isbn",
        "clc_class",
        "author",
        "title",
        "pub_year",
        "price",
        pl.col("requested_at").alias("asked_at") if per_line else pl.lit(cutoff).alias("asked_at"),
    )
    feats = demand_features(cases, history, cutoff, params, content)
    isbn = cases.select("case_id", "isbn").unique("case_id")
    return (
        feats.join(isbn, on="case_id")
        .join(labels.select("isbn", pl.col("loans").cast(pl.Float64).alias("target")), on="isbn", how="inner")
        .rename({"isbn": "group"})  # the cases of one ISBN: one fold when the model measures its error
    )


def horizon(cutoff: datetime, params: DemandParams) -> datetime:
    """Last instant of history a catalogue calibration at ``cutoff`` reads (targets included)."""
    return cutoff + timedelta(days=params.window_days + params.early_days) + YEAR


@dataclass
class DemandModel:
    """Poisson gradient-boosted trees (a Poisson GLM below ``min_tree_cases`` calibration cases) from
    :data:`FEATURES` to loans in the next 365 days."""

    params: DemandParams = field(default_factory=DemandParams)

    def fit(
        self,
        history: History,
        cutoff: datetime,
        labels: pl.DataFrame | None = None,
        content: ContentNeighbours | None = None,
    ) -> DemandModel:
        """Calibrate at ``cutoff``; returns self.

        With ``labels`` (``isbn``, ``loans``): on the programme's purchases of the year before
        ``cutoff`` (:func:`purchase_set`; pass ``cutoff = decision time - 365 days`` so that their
        first year is observed). Without: on catalogue arrivals after ``cutoff``
        (:func:`calibration_set`). Raises ``ValueError`` when fewer than 10 cases are found.
        """
        if labels is not None:
            # both views a decision has: a batch of an ISBN's requesters, and one line on arrival
            train = pl.concat(
                [purchase_set(history, cutoff, labels, self.params, content, per_line=v) for v in (False, True)]
            )
            self.source_ = "purchases"
        else:
            train, self.source_ = calibration_set(history, cutoff, self.params, content), "catalogue"
        if train.height < 10:
            raise ValueError(f"demand calibration ({self.source_}): only {train.height} cases before {cutoff:%Y-%m-%d}")
        x = train.select(FEATURES).to_numpy()
        if train.height >= self.params.min_tree_cases:
            self.regressor_ = HistGradientBoostingRegressor(
                loss="poisson",
                max_iter=self.params.max_iter,
                learning_rate=self.params.learning_rate,
                min_samples_leaf=self.params.min_samples_leaf,
                random_state=0,
            )
        else:  # trees overfit a few dozen cases; a GLM with clipped inputs extrapolates less wildly
            self.regressor_ = make_pipeline(
                FunctionTransformer(np.clip, kw_args={"a_min": x.min(axis=0), "a_max": x.max(axis=0)}),
                StandardScaler(),
                PoissonRegressor(alpha=self.params.alpha, max_iter=1000),
            )
        y = train["target"].to_numpy()
        groups = train["group" if "group" in train.columns else "case_id"].to_numpy()
        self.dispersion_ = _dispersion(self.regressor_, x, y, groups)
        self.regressor_.fit(x, y)
        self.n_train_ = train.height
        self.train_mean_ = float(train["target"].mean())
        self.cutoff_ = cutoff
        self.uses_content_ = content is not None
        _log.info("demand model calibrated on %d %s cases at %s", train.height, self.source_, cutoff.date())
        return self

    def predict(self, feats: pl.DataFrame) -> np.ndarray:
        """Predicted loans in the next 365 days per row of a :func:`demand_features` frame."""
        return self.regressor_.predict(feats.select(FEATURES).to_numpy())


#: Folds of the out-of-fold predictions that measure the model's own uncertainty.
DISPERSION_FOLDS = 4
#: Bounds of the estimated gamma shape (0.2: a rate uncertain by a factor of ~5; 50: nearly known).
DISPERSION_RANGE = (0.2, 50.0)


def _dispersion(regressor, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """How uncertain a prediction is, as the shape ``r`` of a gamma-distributed rate (negative-binomial
    counts: ``Var(y | mu) = mu + mu^2 / r``), by the method of moments on out-of-fold predictions
    (cases of one ISBN stay in one fold): ``r = sum(mu^2) / sum((y - mu)^2 - mu)``. In-sample
    residuals would understate it. Clipped to :data:`DISPERSION_RANGE`."""
    from sklearn.base import clone
    from sklearn.model_selection import GroupKFold

    folds = min(DISPERSION_FOLDS, len(np.unique(groups)))
    if folds < 2:
        return DISPERSION_RANGE[1]
    mu = np.empty(len(y))
    for fit_idx, out_idx in GroupKFold(folds).split(x, y, groups):
        mu[out_idx] = clone(regressor).fit(x[fit_idx], y[fit_idx]).predict(x[out_idx])
    excess = float(np.sum((y - mu) ** 2 - mu))
    if excess <= 0:
        return DISPERSION_RANGE[1]
    return float(np.clip(np.sum(mu**2) / excess, *DISPERSION_RANGE))


@dataclass
class Validation:
    """Held-out quality of the demand model: fitted at ``fit_cutoff``, scored at ``eval_cutoff``."""

    fit_cutoff: datetime
    eval_cutoff: datetime
    n_train: int
    n_eval: int
    mae: float
    spearman: float
    mae_baseline: float
    #: Median predicted and median true loans of the held-out cases (the level check).
    median_predicted: float = float("nan")
    median_true: float = float("nan")


def _score(model: DemandModel, test: pl.DataFrame, fit_cutoff: datetime, eval_cutoff: datetime) -> Validation:
    pred = model.predict(test)
    y = test["target"].to_numpy()
    return Validation(
        fit_cutoff=fit_cutoff,
        eval_cutoff=eval_cutoff,
        n_train=model.n_train_,
        n_eval=test.height,
        mae=float(np.abs(pred - y).mean()),
        spearman=float(spearmanr(pred, y).statistic),
        mae_baseline=float(np.abs(model.train_mean_ - y).mean()),
        median_predicted=float(np.median(pred)),
        median_true=float(np.median(y)),
    )


def validate(history: History, eval_cutoff: datetime | None = None, params: DemandParams | None = None) -> Validation:
    """Catalogue calibration: fit at ``eval_cutoff - window_days`` and score the titles that arrive
    in the next window (disjoint titles, a later period) against their following loans. The default
    ``eval_cutoff`` is the latest whose targets are fully observed. The baseline predicts the
    training mean."""
    params = params or DemandParams()
    if eval_cutoff is None:
        data_end = history.loans["borrowed_at"].max()
        eval_cutoff = data_end - (horizon(data_end, params) - data_end)
    fit_cutoff = eval_cutoff - timedelta(days=params.window_days)
    model = DemandModel(params).fit(history, fit_cutoff)
    return _score(model, calibration_set(history, eval_cutoff, params), fit_cutoff, eval_cutoff)


def validate_purchases(
    history: History,
    labels: pl.DataFrame,
    eval_cutoff: datetime,
    params: DemandParams | None = None,
    content: ContentNeighbours | None = None,
) -> Validation:
    """Purchase calibration: fit on the purchases of ``[eval_cutoff - 2y, eval_cutoff - 1y)`` (read
    at ``eval_cutoff - 1y``) and score those of the year before ``eval_cutoff`` (a later period)."""
    params = params or DemandParams()
    fit_cutoff = eval_cutoff - YEAR
    model = DemandModel(params).fit(history.before(fit_cutoff), fit_cutoff, labels, content)
    test = purchase_set(history.before(eval_cutoff), eval_cutoff, labels, params, content)
    return _score(model, test, fit_cutoff, eval_cutoff)


def request_cases(requests: pl.DataFrame, per_line: bool = False) -> pl.DataFrame:
    """Cases for :func:`demand_features` from purchase request lines: one case per ISBN with all its
    requesters, or (``per_line``) one per request line with its reader alone."""
    return requests.select(
        pl.col("request_id" if per_line else "isbn").alias("case_id"),
        "reader_id",
        "isbn",
        pl.col("clc_class").fill_null(""),
        "author",
        *[c for c in ("title", "pub_year") if c in requests.columns],
        "price",
    )


def predict_requests(
    requests: pl.DataFrame,
    history: History,
    cutoff: datetime,
    model: DemandModel,
    content: ContentNeighbours | None = None,
    per_line: bool = False,
) -> pl.DataFrame:
    """``case_id, isbn, predicted_loans, <features>``: predicted first-year borrowing intents per
    requested ISBN (``case_id`` = the ISBN), or per request line (``per_line``: ``case_id`` = its
    ``request_id``)."""
    feats = demand_features(request_cases(requests, per_line), history, cutoff, model.params, content)
    isbn = request_cases(requests, per_line).select("case_id", "isbn").unique("case_id")
    return feats.with_columns(pl.Series("predicted_loans", model.predict(feats))).join(isbn, on="case_id", how="left")
