"""Predicted loans in the next year for requested titles ("you choose, I buy" lines).

A requested book is usually *not* in the catalogue yet, so its demand is read from signals around it
(DOMAIN.md §3 "expected demand"), computed at a cut-off date from history before it:

* ``log_requesters``: distinct readers asking for the same ISBN;
* ``class_rate`` / ``top_class_rate``: loans per title per year of catalogue titles in the same
  fine CLC class / top class (circulation of similar titles);
* ``author_rate``: loans per title per year of the same author's catalogue titles (0 when none);
* ``cf_affinity``: readers similar to the requester (user-kNN, cosine over the reader x title loan
  matrix, ``k`` neighbours) — the share of their loans that fall in the book's top class, i.e. how
  many of the requester's neighbours would borrow a book like it;
* ``holds_per_copy`` when the ISBN is already held (holds in the last year / copies);
* ``log_price`` (yuan).

A Poisson regression (scikit-learn ``PoissonRegressor`` on standardised features) maps them to loans
in the following 365 days. It is calibrated on history with the same feature code: catalogue titles
that arrive in a window after a past cut-off play the requested books, the readers who borrowed them
in their first ``early_days`` play the requesters, and the target is their loans in the 365 days
after that. :func:`validate` fits at one cut-off and scores the next window's arrivals (MAE,
Spearman) against a predict-the-mean baseline.
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
from sklearn.linear_model import PoissonRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features.schema import clc_top, scan_table
from features.vocab import Vocabulary

_log = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = (
    "log_requesters",
    "class_rate",
    "top_class_rate",
    "author_rate",
    "cf_affinity",
    "holds_per_copy",
    "log_price",
)
YEAR = timedelta(days=365)


@dataclass
class DemandParams:
    """Parameters of the demand model."""

    #: Neighbours per requester for the CF signal, readers.
    k_neighbours: int = 50
    #: Days after a catalogue title's arrival whose borrowers act as its "requesters" in calibration.
    early_days: int = 30
    #: Arrival window of the calibration titles after the cut-off, days.
    window_days: int = 180
    #: L2 penalty of the Poisson regression.
    alpha: float = 1e-3
    #: Readers per chunk in the neighbour search (bounds memory: chunk x readers floats).
    chunk: int = 1024


@dataclass
class History:
    """The tables the features read, collected once (loans, titles, copies, holds)."""

    loans: pl.DataFrame
    titles: pl.DataFrame
    copies: pl.DataFrame
    holds: pl.DataFrame

    @classmethod
    def load(cls, data_dir: str | Path) -> History:
        return cls(
            loans=scan_table(data_dir, "loans").select("reader_id", "title_id", "borrowed_at").collect(),
            titles=scan_table(data_dir, "titles")
            .select("title_id", "isbn13", "author", "clc_class", "added_at", "format")
            .collect(),
            copies=scan_table(data_dir, "copies").select("title_id", "status").collect(),
            holds=scan_table(data_dir, "holds").select("title_id", "placed_at").collect(),
        )


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


def _cf_affinity(history: History, cutoff: datetime, pairs: pl.DataFrame, params: DemandParams) -> pl.DataFrame:
    """Per (reader_id, top) pair: share of the reader's k nearest neighbours' loans in class ``top``.

    Neighbours by cosine similarity of binary reader x title rows over the year before ``cutoff``.
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
    x.data[:] = 1.0
    x.sum_duplicates()
    x.data = np.minimum(x.data, 1.0)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    xn = sp.diags(1.0 / np.maximum(norms, 1e-9)) @ x
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
        (np.ones(valid_top.sum()), (np.flatnonzero(valid_top), top_idx[valid_top])), shape=(len(titles), len(tops))
    )
    class_counts = (x @ t2c).toarray()  # readers x classes, loans
    uniq_readers = np.unique(pairs_r[pairs_r >= 0])
    share = np.zeros((len(readers), len(tops)))
    k = params.k_neighbours
    for start in range(0, len(uniq_readers), params.chunk):  # chunks of requesters, not of loans
        block = uniq_readers[start : start + params.chunk]
        sim = (xn[block] @ xn.T).toarray()
        sim[np.arange(len(block)), block] = 0.0  # a reader is not their own neighbour
        kk = min(k, sim.shape[1] - 1)
        if kk <= 0:
            continue
        top_k = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
        weights = np.take_along_axis(sim, top_k, axis=1)
        neigh = (weights[:, :, None] * class_counts[top_k]).sum(axis=1)
        share[block] = neigh / np.maximum(neigh.sum(axis=1, keepdims=True), 1e-9)
    top_of_pair = np.searchsorted(tops, pairs["top"].fill_null("").to_numpy())
    ok = (pairs_r >= 0) & (top_of_pair < len(tops))
    aff = np.zeros(len(pairs))
    aff[ok] = share[pairs_r[ok], top_of_pair[ok]]
    return pairs.with_columns(pl.Series("cf_affinity", aff))


def features(cases: pl.DataFrame, history: History, cutoff: datetime, params: DemandParams) -> pl.DataFrame:
    """Feature frame, one row per case, in :data:`FEATURES` order after ``case_id``.

    ``cases`` has ``case_id``, ``reader_id`` (one row per requester; a case may repeat), ``isbn``,
    ``clc_class``, ``author`` and ``price`` (yuan). Only history before ``cutoff`` is read.
    """
    by_class, by_top, by_author = _rates(history, cutoff)
    cases = cases.with_columns(
        pl.col("reader_id", "isbn", "clc_class", "author").cast(pl.String), pl.col("price").cast(pl.Float64)
    )
    cases = cases.with_columns(clc_top(pl.col("clc_class").fill_null("")).alias("top"))
    pairs = cases.select("reader_id", "top").unique()
    aff = _cf_affinity(history, cutoff, pairs, params)
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
        )
    )
    top_mean = by_top["top_class_rate"].mean() if by_top.height else 0.0
    return (
        per_case.join(by_class, on="clc_class", how="left")
        .join(by_top, on="top", how="left")
        .join(by_author, on="author", how="left")
        .join(held, on="isbn", how="left")
        .select(
            "case_id",
            pl.col("n_requesters").cast(pl.Float64).log1p().alias("log_requesters"),
            pl.coalesce("class_rate", "top_class_rate", pl.lit(top_mean)).fill_null(0.0).alias("class_rate"),
            pl.col("top_class_rate").fill_null(top_mean or 0.0),
            pl.col("author_rate").fill_null(0.0),
            pl.col("cf_affinity").fill_null(0.0),
            pl.col("hpc").fill_null(0.0).alias("holds_per_copy"),
            pl.col("price").fill_null(0.0).log1p().alias("log_price"),
        )
    )


def calibration_set(history: History, cutoff: datetime, params: DemandParams) -> pl.DataFrame:
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
        pl.lit(40.0).alias("price"),  # catalogue records carry list prices, not bookstore quotes
    )
    feats = features(cases, history, cutoff, params)
    return feats.join(target, left_on="case_id", right_on="title_id", how="left").with_columns(
        pl.col("target").fill_null(0).cast(pl.Float64)
    )


def horizon(cutoff: datetime, params: DemandParams) -> datetime:
    """Last instant of history a calibration at ``cutoff`` reads (targets included)."""
    return cutoff + timedelta(days=params.window_days + params.early_days) + YEAR


@dataclass
class DemandModel:
    """Poisson regression from :data:`FEATURES` to loans in the next 365 days."""

    params: DemandParams = field(default_factory=DemandParams)

    def fit(self, history: History, cutoff: datetime) -> DemandModel:
        """Calibrate on catalogue arrivals of the year before ``cutoff``; returns self."""
        train = calibration_set(history, cutoff, self.params)
        if train.height < 10:
            raise ValueError(f"demand calibration: only {train.height} new titles before {cutoff:%Y-%m-%d}")
        x = train.select(FEATURES).to_numpy()
        self.pipeline_ = make_pipeline(StandardScaler(), PoissonRegressor(alpha=self.params.alpha, max_iter=1000)).fit(
            x, train["target"].to_numpy()
        )
        # the exponential link extrapolates wildly outside the calibration range: clip inputs to it
        self.feature_min_, self.feature_max_ = x.min(axis=0), x.max(axis=0)
        self.n_train_ = train.height
        self.train_mean_ = float(train["target"].mean())
        self.cutoff_ = cutoff
        _log.info("demand model calibrated on %d titles before %s", train.height, cutoff.date())
        return self

    def predict(self, feats: pl.DataFrame) -> np.ndarray:
        """Predicted loans in the next 365 days per row of a :func:`features` frame."""
        x = np.clip(feats.select(FEATURES).to_numpy(), self.feature_min_, self.feature_max_)
        return self.pipeline_.predict(x)


@dataclass
class Validation:
    """Held-out quality of the demand model: fitted at ``fit_cutoff``, scored at the next year."""

    fit_cutoff: datetime
    eval_cutoff: datetime
    n_train: int
    n_eval: int
    mae: float
    spearman: float
    mae_baseline: float


def validate(history: History, eval_cutoff: datetime | None = None, params: DemandParams | None = None) -> Validation:
    """Fit at ``eval_cutoff - window_days`` and score the titles that arrive in the next window
    (disjoint titles, a later period) against their following loans. The default ``eval_cutoff`` is
    the latest whose targets are fully observed. The baseline predicts the training mean."""
    params = params or DemandParams()
    if eval_cutoff is None:
        data_end = history.loans["borrowed_at"].max()
        eval_cutoff = data_end - (horizon(data_end, params) - data_end)
    fit_cutoff = eval_cutoff - timedelta(days=params.window_days)
    model = DemandModel(params).fit(history, fit_cutoff)
    test = calibration_set(history, eval_cutoff, params)
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
    )


def request_cases(requests: pl.DataFrame) -> pl.DataFrame:
    """Cases for :func:`features` from purchase request lines: one case per ISBN, all its requesters."""
    return requests.select(
        pl.col("isbn").alias("case_id"),
        "reader_id",
        "isbn",
        pl.col("clc_class").fill_null(""),
        "author",
        "price",
    )


def predict_requests(requests: pl.DataFrame, history: History, cutoff: datetime, model: DemandModel) -> pl.DataFrame:
    """``isbn, predicted_loans, <features>``: predicted loans in the next year per requested ISBN."""
    feats = features(request_cases(requests), history, cutoff, model.params)
    return feats.with_columns(pl.Series("predicted_loans", model.predict(feats))).rename({"case_id": "isbn"})
