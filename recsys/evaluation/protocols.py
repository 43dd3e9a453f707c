"""Offline evaluation on real and synthetic data: protocols, validation-only tuning, baselines.

One run = one data set x one protocol x several seeds. Per seed:

1. the protocol splits the events into train / validation / test (:func:`make_split`);
2. every yuedu model is tuned on VALIDATION only: a small grid over matrix choices (binary,
   BM25, recency decay; titles with fewer than ``min_title_readers`` training readers pruned)
   and model parameters, ranked by NDCG@10 (:data:`GRIDS`); EASE scores its whole ``lambda``
   grid from one spectral decomposition (:class:`recsys.models.ease.EASESpectrum`);
3. a hybrid blends the tuned EASE, RP3beta, ALS and popularity with weights fitted on validation
   (strong generalisation: also on internal splits of the training readers, :func:`internal_splits`,
   which then also decide between the models);
4. with ``refit`` (default) the chosen configurations are refitted on everything the test step may
   know (:func:`refit_split`: train + the validation readers' events, or all events before the test
   cut-off); the TEST fold is then touched once per seed and model;
5. raw ``implicit`` ALS, BPR and cosine item-kNN with their default parameters are fitted on the
   same training matrix and evaluated on the same test fold by the same metric code (baseline
   rows), plus an oracle for synthetic data;
6. on a synthetic city the test model (the hybrid, else the validation winner) is also scored as the
   app would show it on the cut-off date: with the business filters, then with reading promotion
   (``constrained`` rows, :func:`constrained_rows`).

Results are per-seed rows (:class:`SeedResult`); :func:`summarise` gives mean and standard
deviation over seeds; :func:`compare` gives the headline: the model chosen on validation in each
seed and its ratios to raw ALS and tuned EASE with paired reader-bootstrap intervals. Metrics (``recsys.metrics``): normalised Recall@20/50 (hits / min(k, |T|)),
NDCG@10/100 and catalogue coverage of the top 20.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from features.datasets import Dataset
from features.interactions import standardise
from features.matrix import DEFAULT_CHANNEL_WEIGHTS, InteractionMatrix, WeightingConfig
from features.splits import EvalFold, Split, SplitMatrices, strong_generalization, temporal_split
from features.vocab import Vocabulary
from recsys.base import Recommender, top_n_dense
from recsys.metrics import (
    catalogue_coverage,
    ndcg_at_k,
    ndcg_per_reader,
    normalized_recall_at_k,
    readers_with_target,
)
from recsys.models import make_model
from recsys.models.ease import EASERecommender, EASESpectrum
from recsys.models.hybrid import HybridRecommender, search_weights

_log = logging.getLogger(__name__)

#: Longest list evaluated (NDCG@100).
LIST_LENGTH = 100
#: Metric columns of every result row, in report order.
METRICS: tuple[str, ...] = ("recall@20", "recall@50", "ndcg@10", "ndcg@100", "coverage@20")
#: The validation metric hyper-parameters are chosen by.
SELECTION_METRIC = "ndcg@10"
#: Strong generalisation: the ``validation`` entry by which models are compared - NDCG@10 pooled over
#: the validation readers and the held-out readers of :func:`internal_splits` (reader-weighted, target
#: titles restricted to the model's columns).
POOLED_SELECTION = "pooled ndcg@10"
#: Protocols per data set.
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "movielens": ("strong", "temporal"),
    "sco": ("temporal",),
    "city": ("temporal",),
}
#: MovieLens: ratings at or above this are positive feedback.
MOVIELENS_POSITIVE = 4.0
#: MovieLens: readers with fewer positives are dropped.
MOVIELENS_MIN_POSITIVES = 5
#: Channel of input-only events (MovieLens ratings below :data:`MOVIELENS_POSITIVE` with
#: ``inputs="all"``): they tell a model what a reader has seen, are never targets.
INPUT_ONLY_CHANNEL = "rating_low"
#: Weights tried for input-only events relative to a positive (extra matrix choices "low-<w>"),
#: besides 1.0 (the plain binary choice): a watched-but-disliked title is weaker evidence.
INPUT_ONLY_WEIGHTS: tuple[float, ...] = (0.5, 0.25)


class EvaluationError(ValueError):
    """An evaluation cannot run as asked (unknown data set / protocol / model, empty fold...)."""


# --- matrix choices and model grids ----------------------------------------------------------------


@dataclass(frozen=True)
class MatrixChoice:
    """How the training matrix is built for a model: a weighting and a title support cut.

    ``min_title_readers``: titles with fewer training readers are left out of the model (it can
    never recommend them; target events on them still count as misses).
    """

    name: str
    weighting: WeightingConfig
    min_title_readers: int = 1


def matrix_choices(protocol: str, quick: bool, inputs: str = "targets") -> list[MatrixChoice]:
    """The weighting options tuned over: binary and BM25; recency decay for time-based protocols;
    with ``inputs="all"``, input-only events down-weighted to each of :data:`INPUT_ONLY_WEIGHTS`."""
    binary = WeightingConfig(binarize=True)
    out = [MatrixChoice("binary", binary, 1 if quick else 2)]
    if quick:
        return out
    out.append(MatrixChoice("bm25", WeightingConfig(binarize=True, scheme="bm25"), 2))
    if protocol == "temporal":
        out.append(MatrixChoice("recency365", WeightingConfig(binarize=False, aggregate="max", half_life_days=365), 2))
    if inputs == "all":
        for w in INPUT_ONLY_WEIGHTS:
            channels = {**DEFAULT_CHANNEL_WEIGHTS, INPUT_ONLY_CHANNEL: w}
            out.append(MatrixChoice(f"low-{w:g}", WeightingConfig(aggregate="max", channel_weights=channels), 2))
    return out


#: Parameter grid per yuedu model (full run); ``quick`` uses the first entry of each.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "popular": [{"count": "readers"}, {"count": "weight"}],
    "itemknn": [
        {"K": 50, "similarity": "cosine"},
        {"K": 200, "similarity": "cosine"},
        {"K": 100, "similarity": "bm25"},
    ],
    "als": [
        {"factors": 64, "regularization": 0.05, "alpha": 10.0, "iterations": 15},
        {"factors": 128, "regularization": 1.0, "alpha": 5.0, "iterations": 15},
        {"factors": 32, "regularization": 0.1, "alpha": 2.0, "iterations": 15},
    ],
    "bpr": [
        {"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 100},
        {"factors": 128, "learning_rate": 0.01, "regularization": 0.01, "iterations": 200},
    ],
    # One spectral decomposition per matrix choice scores every lambda (about the cost of one fit).
    "ease": [
        {"lambda_": lam}
        for lam in (
            200.0,
            5.0,
            10.0,
            20.0,
            50.0,
            100.0,
            150.0,
            300.0,
            500.0,
            700.0,
            1000.0,
            1500.0,
            2500.0,
            4000.0,
            7000.0,
        )
    ],
    "rp3beta": [
        {"alpha": alpha, "beta": beta, "K": K}
        for alpha, beta, K in itertools.product((1.0, 0.6), (0.5, 0.3, 0.7), (200, 50))
    ],
}
#: Components of the validation-blended hybrid (each with its own tuned parameters).
HYBRID_COMPONENTS: tuple[str, ...] = ("ease", "rp3beta", "als", "popular")
#: Validation readers sampled for fitting the hybrid's blend weights, and the weight grid.
HYBRID_FIT_READERS = 600
HYBRID_GRID: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
#: Strong generalisation holds out only 10 % of readers for validation (about 60 on MovieLens), too
#: few to fit four blend weights reliably: the blend is also fitted on internal splits of the
#: TRAINING readers (:func:`internal_splits`), each holding out this share of them twice.
HYBRID_INTERNAL_SPLITS = 2
HYBRID_INTERNAL_SHARE = 0.15
#: Models tuned on some matrix choices only (BPR's sampling gains little from re-weighting, and
#: each extra fit costs time).
MODEL_CHOICES: dict[str, tuple[str, ...]] = {"bpr": ("binary",)}
#: Models whose seed parameter follows the run seed.
_SEEDED = {"als", "bpr"}


# --- protocols --------------------------------------------------------------------------------------


def prepare_events(dataset: Dataset, kind: str) -> pl.DataFrame:
    """The events a protocol splits: MovieLens positives (rating >= 4, readers with >= 5 of them);
    every event otherwise."""
    events = standardise(dataset.interactions).collect()
    if kind == "movielens":
        events = events.filter(pl.col("value") >= MOVIELENS_POSITIVE)
        events = events.filter(pl.len().over("reader_id") >= MOVIELENS_MIN_POSITIVES)
    if events.height == 0:
        raise EvaluationError(f"{dataset.name}: no events to evaluate")
    return events


def input_only_events(dataset: Dataset, kind: str, readers: pl.Series) -> pl.DataFrame:
    """Events that may serve as model input but are never targets: MovieLens ratings below
    :data:`MOVIELENS_POSITIVE` of the evaluated ``readers``, on channel :data:`INPUT_ONLY_CHANNEL`;
    empty for other data sets."""
    events = standardise(dataset.interactions).collect()
    if kind != "movielens":
        return events.clear()
    low = events.filter((pl.col("value") < MOVIELENS_POSITIVE) & pl.col("reader_id").is_in(readers.implode()))
    return low.with_columns(pl.lit(INPUT_ONLY_CHANNEL).alias("channel"))


def with_input_events(split: Split, extra: pl.DataFrame) -> Split:
    """``split`` with ``extra`` (input-only) events added where a model may see them; targets unchanged.

    * strong generalisation: to the training rows of training readers and to each fold's fold-in
      for the fold's readers;
    * per-reader temporal: by time, per reader, so nothing from a reader's future is seen: events
      before the reader's first validation target join the training rows and both fold-ins, events
      from then until the reader's first test target join the test fold-in only, later ones are
      dropped (counted in ``params["input_events_dropped_future"]``).

    Raises :class:`EvaluationError` for other split kinds."""
    if extra.height == 0:
        return split
    cols = split.train.columns
    extra = extra.select(cols)
    if split.kind == "strong_generalization":
        train_readers = split.train["reader_id"].unique()
        train_extra = extra.filter(pl.col("reader_id").is_in(train_readers.implode()))
        fold_extra = dict.fromkeys(split.folds, extra)
        counts = {"input_events": extra.height}
    elif split.kind == "per_reader_temporal":
        train_extra, test_extra = _split_input_events_by_time(split, extra)
        fold_extra = {name: test_extra if name == "test" else train_extra for name in split.folds}
        counts = {"input_events": test_extra.height, "input_events_dropped_future": extra.height - test_extra.height}
    else:
        raise EvaluationError(
            f"input-only events are supported on the strong and per-reader temporal protocols, not {split.kind!r}"
        )
    folds = {}
    for name, fold in split.folds.items():
        readers = pl.Series(fold.readers, dtype=pl.String).implode()
        mine = fold_extra[name].filter(pl.col("reader_id").is_in(readers))
        folds[name] = EvalFold(pl.concat([fold.foldin, mine]), fold.target, fold.readers, fold.dropped)
    return Split(split.kind, pl.concat([split.train, train_extra]), folds, dict(split.params, **counts))


def _split_input_events_by_time(split: Split, extra: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-reader temporal: (events before the reader's first validation target - or first test
    target without one -, events before the reader's first test target). Readers without targets
    keep all their events; events without a time are dropped."""

    def first_target(fold: str) -> pl.DataFrame:
        target = split.folds[fold].target
        return target.group_by("reader_id").agg(pl.col("occurred_at").min().alias(f"_{fold}_from"))

    timed = (
        extra.join(first_target("validation"), on="reader_id", how="left")
        .join(first_target("test"), on="reader_id", how="left")
        .with_columns(pl.coalesce("_validation_from", "_test_from").alias("_validation_from"))
    )
    known = pl.col("occurred_at").is_not_null()
    early = known & (pl.col("_validation_from").is_null() | (pl.col("occurred_at") < pl.col("_validation_from")))
    before_test = known & (pl.col("_test_from").is_null() | (pl.col("occurred_at") < pl.col("_test_from")))
    return timed.filter(early).select(extra.columns), timed.filter(before_test).select(extra.columns)


def per_reader_temporal_split(events: pl.DataFrame, target_frac: float = 0.2) -> Split:
    """Each reader's last ``target_frac`` of events by time is the test target, the slice before
    it the validation target, the rest train (readers keep >= 1 train event; ties by title id).

    Validation fold-in = the reader's train events; test fold-in = train + validation events."""
    if not 0.0 < target_frac < 0.5:
        raise EvaluationError(f"per-reader temporal split: target_frac must be in (0, 0.5), got {target_frac}")
    frame = standardise(events).collect().sort(["reader_id", "occurred_at", "title_id"])
    n = pl.len().over("reader_id")
    from_end = pl.int_range(pl.len()).reverse().over("reader_id")
    n_target = (n.cast(pl.Float64) * target_frac).ceil().cast(pl.Int64)
    # Readers with 2 events give 1 test target and no validation; a reader always keeps a train event.
    n_val = pl.min_horizontal(n_target, n - n_target - 1).clip(0)
    frame = frame.with_columns(
        (from_end < pl.min_horizontal(n_target, n - 1)).alias("_test"),
        ((from_end >= n_target) & (from_end < n_target + n_val)).alias("_val"),
    )
    frame = frame.with_columns(pl.col("_val") & ~pl.col("_test"))
    train = frame.filter(~pl.col("_test") & ~pl.col("_val"))

    def fold(foldin: pl.DataFrame, target: pl.DataFrame) -> EvalFold:
        readers = target["reader_id"].unique().sort()
        readers = readers.filter(readers.is_in(foldin["reader_id"].unique().implode()))
        keep = pl.col("reader_id").is_in(readers.implode())
        drop = [c for c in frame.columns if c.startswith("_")]
        return EvalFold(foldin.filter(keep).drop(drop), target.filter(keep).drop(drop), readers.to_list(), {})

    folds = {
        "validation": fold(train, frame.filter(pl.col("_val"))),
        "test": fold(frame.filter(~pl.col("_test")), frame.filter(pl.col("_test"))),
    }
    return Split("per_reader_temporal", train.drop([c for c in frame.columns if c.startswith("_")]), folds, {})


def internal_splits(split: Split, seed: int) -> list[Split]:
    """Strong generalisation: :data:`HYBRID_INTERNAL_SPLITS` splits of the TRAINING readers alone,
    each holding out :data:`HYBRID_INTERNAL_SHARE` of them as a ``validation`` and as a ``test`` fold
    (fold-in / target like the protocol's own held-out readers; input-only events stay input, with
    their reader). Validation and test readers take no part. Empty for other protocols, whose
    validation fold already holds many readers."""
    if split.kind != "strong_generalization":
        return []
    if "channel" in split.train.columns:
        is_input = pl.col("channel") == INPUT_ONLY_CHANNEL
        positives, inputs = split.train.filter(~is_input), split.train.filter(is_input)
    else:
        positives, inputs = split.train, split.train.clear()
    frac = float(split.params.get("target_frac", 0.2))
    out = []
    for j in range(HYBRID_INTERNAL_SPLITS):
        inner = strong_generalization(
            positives, HYBRID_INTERNAL_SHARE, HYBRID_INTERNAL_SHARE, frac, seed=seed * 1009 + j + 1
        )
        out.append(with_input_events(inner, inputs))
    return out


def make_split(kind: str, protocol: str, events: pl.DataFrame, seed: int) -> Split:
    """The split of one seed.

    * ``strong`` (any data set): 10 % validation and 10 % test readers drawn with ``seed``, each
      held-out reader's events 80 % fold-in / 20 % target at random;
    * ``temporal`` on MovieLens: :func:`per_reader_temporal_split` (last 20 % by time);
    * ``temporal`` on SCO: global cut at the 80th percentile of loan dates, validation target the
      70th-80th percentile slice;
    * ``temporal`` on a synthetic city: the last half-year is the test target, the half-year before
      it validation (so the models of the test step train on the first 2.5 of 3 years at most).
    """
    if protocol == "strong":
        return strong_generalization(events, 0.1, 0.1, 0.2, seed=seed)
    if protocol != "temporal":
        raise EvaluationError(f"unknown protocol {protocol!r}; expected strong or temporal")
    if kind == "movielens":
        return per_reader_temporal_split(events, 0.2)
    if kind == "sco":
        return temporal_split(events, quantile=0.8, val_quantile=0.7)
    if kind == "city":
        last = events["occurred_at"].max()
        cut = last - timedelta(days=182)
        return temporal_split(events, cutoff=cut, val_cutoff=cut - timedelta(days=182))
    raise EvaluationError(f"no temporal protocol for data set {kind!r}")


# --- matrices with a title support cut -----------------------------------------------------------


@dataclass
class PrunedMatrices:
    """Split matrices restricted to ``kept`` title columns for fitting and fold-in; targets stay
    over the full train title vocabulary so that pruned titles count as misses."""

    train: InteractionMatrix
    foldin: dict[str, sp.csr_matrix]
    kept: np.ndarray
    full: SplitMatrices


def prune(full: SplitMatrices, min_title_readers: int) -> PrunedMatrices:
    """Keep titles with at least ``min_title_readers`` distinct training readers."""
    X = full.train.matrix
    readers_per_title = np.bincount(X.indices, minlength=X.shape[1])
    kept = np.flatnonzero(readers_per_title >= min_title_readers).astype(np.int32)
    if kept.size == X.shape[1]:
        train = full.train
    else:
        titles = Vocabulary(full.train.titles.series.gather(kept), full.train.titles.name)
        train = InteractionMatrix(X[:, kept], full.train.readers, titles, dict(full.train.meta))
    foldin = {name: f.foldin.matrix[:, kept] for name, f in full.folds.items()}
    return PrunedMatrices(train, foldin, kept, full)


# --- scoring ---------------------------------------------------------------------------------------


def metric_row(recs: np.ndarray, target: sp.csr_matrix) -> dict[str, float]:
    """The reported metrics of a recommendation matrix (title columns of the full vocabulary)."""
    n_titles = target.shape[1]
    return {
        "recall@20": normalized_recall_at_k(recs, target, 20),
        "recall@50": normalized_recall_at_k(recs, target, 50),
        "ndcg@10": ndcg_at_k(recs, target, 10),
        "ndcg@100": ndcg_at_k(recs, target, 100),
        "coverage@20": catalogue_coverage(recs, n_titles, 20),
    }


def recommend_fold(model: Recommender, data: PrunedMatrices, fold: str, n: int = LIST_LENGTH) -> np.ndarray:
    """Top-``n`` full-vocabulary title columns for the fold's readers from their fold-in."""
    hist = data.foldin[fold]
    ids, _ = model.recommend(None, n, history=hist)
    return np.where(ids >= 0, data.kept[np.maximum(ids, 0)], -1).astype(np.int32)


# --- results ---------------------------------------------------------------------------------------


@dataclass
class SeedResult:
    """One model's test metrics on one seed, with what was chosen on validation."""

    seed: int
    model: str
    kind: str  # "yuedu", "constrained" (with filters / promotion), "baseline" or "oracle"
    metrics: dict[str, float]
    validation: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    test_evaluations: int = 1
    #: NDCG@10 of each test reader (NaN: empty target), in the target's row order (for the bootstrap;
    #: not written to the JSON).
    per_reader_ndcg: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "model": self.model,
            "kind": self.kind,
            "metrics": self.metrics,
            "validation": self.validation,
            "params": self.params,
            "seconds": round(self.seconds, 3),
            "test_evaluations": self.test_evaluations,
        }


def scored(
    seed: int,
    model: str,
    kind: str,
    recs: np.ndarray,
    target: sp.csr_matrix,
    validation: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    seconds: float = 0.0,
) -> SeedResult:
    """A :class:`SeedResult` of test recommendations ``recs`` against ``target`` (one scoring)."""
    return SeedResult(
        seed,
        model,
        kind,
        metric_row(recs, target),
        validation or {},
        params or {},
        seconds,
        per_reader_ndcg=ndcg_per_reader(recs, target, 10),
    )


def summarise(results: list[SeedResult]) -> pl.DataFrame:
    """Mean and sample standard deviation (ddof=1; 0 for one seed) of every metric per model,
    computed from the per-seed values. Columns: model, kind, seeds, ``<metric>_mean``, ``<metric>_std``."""
    if not results:
        return pl.DataFrame()
    long = pl.DataFrame(
        [{"model": r.model, "kind": r.kind, "seed": r.seed, **r.metrics} for r in results],
        infer_schema_length=None,
    )
    aggs: list[pl.Expr] = [pl.col("seed").n_unique().alias("seeds")]
    for m in METRICS:
        aggs += [pl.col(m).mean().alias(f"{m}_mean"), pl.col(m).std(ddof=1).fill_null(0.0).alias(f"{m}_std")]
    order = {"yuedu": 0, "constrained": 1, "baseline": 2, "oracle": 3}
    return (
        long.group_by("model", "kind", maintain_order=True)
        .agg(aggs)
        .with_columns(pl.col("kind").replace_strict(order, default=4).alias("_o"))
        .sort("_o", maintain_order=True)
        .drop("_o")
    )


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class RunConfig:
    """What to evaluate. ``threads``: BLAS / implicit threads (0 = all cores)."""

    dataset: str
    protocol: str
    models: tuple[str, ...] = ("popular", "itemknn", "als", "bpr", "ease", "rp3beta", "hybrid")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    quick: bool = False
    baselines: bool = True
    threads: int = 0
    #: Refit the chosen configurations (and the baselines) on train + validation before the test step.
    refit: bool = True
    #: ``"targets"``: models see only the protocol's events (MovieLens: positives). ``"all"``
    #: (MovieLens): every rating is also INPUT - low-rated (< 4) ratings join the training rows and
    #: the held-out readers' fold-in (binary, like the positives) but are never targets; the
    #: baselines get the same input.
    inputs: str = "targets"


@dataclass
class _Candidate:
    model: Recommender
    choice: MatrixChoice
    params: dict[str, Any]
    validation: dict[str, float]


def _fit(name: str, params: dict[str, Any], seed: int, threads: int, data: PrunedMatrices, titles) -> Recommender:
    p = dict(params)
    if name in _SEEDED:
        p["seed"] = seed
    if name in ("itemknn", "als", "bpr", "ease"):
        p["threads"] = threads
    return make_model(name, **p).fit(data.train, titles)


def tune(
    name: str,
    grid: list[dict[str, Any]],
    prepared: dict[str, PrunedMatrices],
    choices: list[MatrixChoice],
    seed: int,
    threads: int,
    titles: pl.DataFrame | None,
    time_budget_s: float | None = None,
) -> dict[str, _Candidate]:
    """Fit every (matrix choice, params) on train and score it on VALIDATION; return the best
    candidate per matrix choice (so the hybrid can combine components built on one matrix).
    ``time_budget_s``: stop trying further configurations once exceeded (the best so far wins)."""
    if name == "ease" and all(set(p) == {"lambda_"} for p in grid):
        return _tune_ease(grid, prepared, choices, threads)
    started = time.perf_counter()
    best: dict[str, _Candidate] = {}
    for choice, params in itertools.product(choices, grid):
        data = prepared[choice.name]
        model = _fit(name, params, seed, threads, data, titles)
        val = metric_row(recommend_fold(model, data, "validation"), data.full.folds["validation"].target.matrix)
        _log.debug("tune %s %s %s: ndcg@10 %.4f", name, choice.name, params, val[SELECTION_METRIC])
        current = best.get(choice.name)
        if current is None or val[SELECTION_METRIC] > current.validation[SELECTION_METRIC]:
            best[choice.name] = _Candidate(model, choice, params, val)
        if time_budget_s is not None and time.perf_counter() - started > time_budget_s:
            _log.info("tune %s: time budget of %.0f s reached", name, time_budget_s)
            break
    return best


def _tune_ease(
    grid: list[dict[str, Any]], prepared: dict[str, PrunedMatrices], choices: list[MatrixChoice], threads: int
) -> dict[str, _Candidate]:
    """EASE's lambda grid scored on VALIDATION from one :class:`EASESpectrum` per matrix choice
    (exact, the same rankings as fitting each lambda); the best lambda is then fitted."""
    best: dict[str, _Candidate] = {}
    lambdas = [float(p["lambda_"]) for p in grid]
    for choice in choices:
        data = prepared[choice.name]
        hist = data.foldin["validation"]
        target = data.full.folds["validation"].target.matrix
        allowed = np.arange(data.train.shape[1], dtype=np.int32)
        spectrum = EASESpectrum(data.train.matrix, threads)
        for lam, scores in spectrum.scores(hist, lambdas):
            ids, _ = top_n_dense(scores, LIST_LENGTH, hist, allowed)
            val = metric_row(np.where(ids >= 0, data.kept[np.maximum(ids, 0)], -1).astype(np.int32), target)
            _log.debug("tune ease %s lambda %g: ndcg@10 %.4f", choice.name, lam, val[SELECTION_METRIC])
            current = best.get(choice.name)
            if current is None or val[SELECTION_METRIC] > current.validation[SELECTION_METRIC]:
                best[choice.name] = _Candidate(None, choice, {"lambda_": lam}, val)  # type: ignore[arg-type]
        cand = best[choice.name]
        model = EASERecommender(lambda_=cand.params["lambda_"], threads=threads)
        model._fit_common(data.train)
        model.weights_ = spectrum.weights(cand.params["lambda_"])
        cand.model = model
    return best


def refit_split(split: Split) -> Split:
    """The split of the test step: train = everything known before the test (train events plus the
    validation readers' fold-in and target events, duplicates dropped), one fold: ``test``.

    Strong generalisation: the validation readers join the training readers. Temporal protocols:
    all events before the test cut-off (per reader for MovieLens) train. Test is still touched
    once; only validation, already used for choosing, is folded back in."""
    val = split.folds["validation"]
    cols = split.train.columns
    parts = [split.train] + [f.select(cols) for f in (val.foldin, val.target) if f.height]
    if split.kind != "strong_generalization":
        # Temporal: the test fold-in is everything before the test cut-off (already train + validation
        # events, plus any input-only events of that period): all of it may train the test model.
        parts.append(split.folds["test"].foldin.select(cols))
    events = pl.concat(parts, how="vertical_relaxed").unique(maintain_order=True)
    return Split(split.kind, events, {"test": split.folds["test"]}, dict(split.params, refit=True))


def _winner(cands: dict[str, _Candidate]) -> _Candidate:
    return max(cands.values(), key=lambda c: c.validation[SELECTION_METRIC])


def raw_implicit_baselines(full: SplitMatrices, threads: int, seed: int) -> dict[str, np.ndarray]:
    """Test recommendations of raw ``implicit`` models with DEFAULT parameters on the binary
    training matrix, called directly (no yuedu model code).

    * ALS: ``fit`` on train, then ``recommend(..., user_items=fold-in, recalculate_user=True)``;
    * BPR has no fold-in: when every test reader already has a training row holding their whole
      fold-in (temporal protocols after refit) it is fitted on train and recommends for those rows;
      otherwise (strong generalisation: unseen readers) it is fitted on train plus the fold-in rows
      appended as new users and recommends for them;
    * cosine item-kNN: ``fit`` on train, ``recommend`` from the fold-in rows.
    Titles unknown to train cannot be recommended by any model."""
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import CosineRecommender

    train = full.train.matrix.copy()
    train.data[:] = 1.0
    foldin = full.folds["test"].foldin.matrix.copy()
    foldin.data[:] = 1.0
    k = foldin.shape[0]
    users = np.arange(k)
    out: dict[str, np.ndarray] = {}
    with threadpool_limits(1, user_api="blas"):
        als = AlternatingLeastSquares(random_state=seed, num_threads=threads)
        als.fit(train, show_progress=False)
        out["raw-implicit-als"], _ = als.recommend(users, foldin, N=LIST_LENGTH, recalculate_user=True)
        rows = _training_rows_holding(full, foldin, train)
        bpr = BayesianPersonalizedRanking(random_state=seed, num_threads=threads)
        if rows is not None:
            bpr.fit(train, show_progress=False)
        else:
            bpr.fit(sp.vstack([train, foldin]).tocsr(), show_progress=False)
            rows = train.shape[0] + users
        out["raw-implicit-bpr"], _ = bpr.recommend(rows, foldin, N=LIST_LENGTH)
        knn = CosineRecommender(num_threads=threads)
        with warnings.catch_warnings():
            # implicit's own normalisation hands its fit a COO matrix and then warns about it
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            knn.fit(train, show_progress=False)
        out["raw-implicit-cosine"], _ = knn.recommend(users, foldin, N=LIST_LENGTH)
    return {name: np.asarray(ids, dtype=np.int32) for name, ids in out.items()}


def _training_rows_holding(full: SplitMatrices, foldin: sp.csr_matrix, train: sp.csr_matrix) -> np.ndarray | None:
    """Training rows of the test readers if each already holds that reader's whole fold-in, else None."""
    rows = full.train.readers.index(full.folds["test"].foldin.readers.ids)
    if (rows < 0).any():
        return None
    missing = foldin - foldin.multiply(train[rows])  # fold-in entries absent from the training row
    return rows.astype(np.int64) if missing.count_nonzero() == 0 else None


def constrained_rows(
    name: str,
    model: Recommender,
    data: PrunedMatrices,
    data_dir,
    cutoff,
    seed: int,
    target: sp.csr_matrix,
) -> list[SeedResult]:
    """Rows ``<name>+filters`` and ``<name>+filters+promotion`` (kind ``constrained``): the test
    model's lists as the app shows them on the cut-off date (already borrowed, availability at the
    reader's branch or by delivery, audience, withdrawn; then the default reading promotion), scored
    against the same target. The context is built from data before ``cutoff`` only."""
    from recsys.promotion_eval import constrained_recommendations

    readers = list(data.full.folds["test"].foldin.readers.ids)
    got = constrained_recommendations(
        model, data.foldin["test"], data.train.titles, readers, data_dir, cutoff, LIST_LENGTH
    )
    out = []
    for setting, recs in got.items():
        full = np.where(recs >= 0, data.kept[np.maximum(recs, 0)], -1).astype(np.int32)
        params = {"model": name, "setting": setting}
        out.append(scored(seed, f"{name}+{setting}", "constrained", full, target, params=params))
    return out


def oracle_recommendations(data_dir, full: SplitMatrices) -> np.ndarray:
    """Ceiling for synthetic data: rank titles by the generator's true tastes (seen titles skipped)."""
    from features.synth import oracle_scores

    fold = full.folds["test"]
    scores = np.asarray(oracle_scores(data_dir, fold.foldin.readers.ids, full.train.titles.ids), dtype=np.float32)
    allowed = np.arange(scores.shape[1], dtype=np.int32)
    recs, _ = top_n_dense(scores, LIST_LENGTH, fold.foldin.matrix, allowed)
    return recs


def evaluate_seed(
    kind: str,
    dataset: Dataset,
    events: pl.DataFrame,
    config: RunConfig,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[SeedResult], dict[str, Any]]:
    """Tune on validation, test once per model, evaluate the baselines: one seed of a run."""
    note = progress or (lambda _msg: None)
    split = make_split(kind, config.protocol, events, seed)
    if config.inputs == "all":
        split = with_input_events(split, input_only_events(dataset, kind, events["reader_id"].unique()))
    elif config.inputs != "targets":
        raise EvaluationError(f"inputs must be 'targets' or 'all', got {config.inputs!r}")
    for fold in ("validation", "test"):
        if not split.folds[fold].readers:
            raise EvaluationError(f"{dataset.name} {config.protocol} seed {seed}: the {fold} fold has no readers")
    choices = matrix_choices(config.protocol, config.quick, config.inputs)
    prepared = {c.name: prune(split.to_matrices(c.weighting), c.min_title_readers) for c in choices}
    if config.refit:
        final = refit_split(split)
        testing = {c.name: prune(final.to_matrices(c.weighting), c.min_title_readers) for c in choices}
    else:
        testing = prepared
    test_target = next(iter(testing.values())).full.folds["test"].target.matrix
    titles = dataset.titles
    inner = internal_splits(split, seed)
    inner_data = {c.name: [prune(p.to_matrices(c.weighting), c.min_title_readers) for p in inner] for c in choices}
    results: list[SeedResult] = []
    tuned: dict[str, dict[str, _Candidate]] = {}
    finals: dict[str, tuple[Recommender, PrunedMatrices]] = {}  # the models scored on test
    for name in config.models:
        if name == "hybrid":
            continue
        if name not in GRIDS:
            raise EvaluationError(f"no tuning grid for model {name!r}; known: {sorted(GRIDS)} and hybrid")
        note(f"seed {seed}: tuning {name}")
        t0 = time.perf_counter()
        grid = GRIDS[name][:1] if config.quick else GRIDS[name]
        allowed = MODEL_CHOICES.get(name)
        model_choices = [c for c in choices if allowed is None or c.name in allowed]
        tuned[name] = tune(name, grid, prepared, model_choices, seed, config.threads, titles)
        win = _winner(tuned[name])
        model = (
            _fit(name, win.params, seed, config.threads, testing[win.choice.name], titles)
            if config.refit
            else win.model
        )
        recs = recommend_fold(model, testing[win.choice.name], "test")
        finals[name] = (model, testing[win.choice.name])
        params = {"matrix": win.choice.name, "min_title_readers": win.choice.min_title_readers, **win.params}
        val = dict(win.validation)
        if inner:
            val[POOLED_SELECTION] = _pooled_selection(name, win, prepared, inner_data, seed, config, titles)
        results.append(scored(seed, name, "yuedu", recs, test_target, val, params, time.perf_counter() - t0))
    if "hybrid" in config.models:
        note(f"seed {seed}: blending hybrid")
        t0 = time.perf_counter()
        hybrid = _tune_hybrid(tuned, prepared, choices, seed, config, titles, inner_data if inner else {})
        if hybrid is not None:
            model, choice, weights, comps, val, pooled = hybrid
            if inner:
                val = dict(val, **{POOLED_SELECTION: pooled})
            if config.refit:
                parts = {n: _fit(n, p, seed, config.threads, testing[choice.name], titles) for n, p in comps.items()}
                model = HybridRecommender(parts, weights, refit=False).fit(testing[choice.name].train)
            recs = recommend_fold(model, testing[choice.name], "test")
            finals["hybrid"] = (model, testing[choice.name])
            params = {"matrix": choice.name, "weights": weights, "components": comps}
            results.append(scored(seed, "hybrid", "yuedu", recs, test_target, val, params, time.perf_counter() - t0))
    if config.baselines:
        note(f"seed {seed}: raw implicit baselines")
        t0 = time.perf_counter()
        base = raw_implicit_baselines(testing["binary"].full, config.threads, seed)
        if config.inputs == "all":
            # The baselines get the same input (and so skip the same seen titles): named "+inputs".
            base = {f"{name}+inputs": recs for name, recs in base.items()}
        for name, recs in base.items():
            params = {"defaults": True, "inputs": config.inputs}
            results.append(scored(seed, name, "baseline", recs, test_target, params=params))
        for r in results[-len(base) :]:
            r.seconds = (time.perf_counter() - t0) / len(base)
    if kind == "city" and dataset.data_dir is not None:
        try:
            recs = oracle_recommendations(dataset.data_dir, testing["binary"].full)
        except (ImportError, FileNotFoundError, KeyError) as exc:
            _log.warning("oracle row skipped: %s", exc)
        else:
            results.append(scored(seed, "oracle", "oracle", recs, test_target))
        if finals and "cutoff" in split.params:
            note(f"seed {seed}: filters and promotion")
            yuedu = [r for r in results if r.kind == "yuedu"]
            name = "hybrid" if "hybrid" in finals else max(yuedu, key=lambda r: r.validation[SELECTION_METRIC]).model
            results += constrained_rows(
                name, *finals[name], dataset.data_dir, split.params["cutoff"], seed, test_target
            )
    info = {"seed": seed, "split": split.describe(), "refit": config.refit}
    if config.refit:
        info["test_train"] = final.describe()["train"]
    return results, info


def _tune_hybrid(
    tuned: dict[str, dict[str, _Candidate]],
    prepared: dict[str, PrunedMatrices],
    choices: list[MatrixChoice],
    seed: int,
    config: RunConfig,
    titles: pl.DataFrame | None,
    inner: dict[str, list[PrunedMatrices]] | None = None,
) -> tuple[HybridRecommender, MatrixChoice, dict[str, float], dict[str, Any], dict[str, float], float] | None:
    """Blend the tuned components that share one matrix choice; weights fitted on validation and,
    with ``inner`` (per matrix choice: the pruned :func:`internal_splits` of the training readers),
    also on their held-out readers (the components refitted on each inner split's training readers,
    EASE's lambda re-chosen on the same readers). Components missing from the run are tuned here
    first. The matrix choice whose blend scores best on those readers wins. Returns (model, choice,
    weights, component parameters, validation metrics, pooled NDCG@10 of the blend)."""
    for name in HYBRID_COMPONENTS:
        if name not in tuned:
            grid = GRIDS[name][:1] if config.quick else GRIDS[name]
            tuned[name] = tune(name, grid, prepared, choices, seed, config.threads, titles)
    best = None
    for choice in choices:
        comps = {n: tuned[n][choice.name] for n in HYBRID_COMPONENTS if choice.name in tuned[n]}
        if len(comps) < 2:
            continue
        data = prepared[choice.name]
        val_target = data.full.folds["validation"].target.matrix
        # The weight search ranks over the pruned columns: give it the pruned view of each target.
        # A bounded reader sample and a coarse grid keep the search to seconds (5^4 blends is minutes).
        rows = np.random.default_rng(seed).permutation(val_target.shape[0])[:HYBRID_FIT_READERS]
        inner_data = (inner or {}).get(choice.name, [])
        if inner_data and "ease" in comps and not config.quick:
            comps["ease"] = _pooled_ease(comps["ease"], data, rows, inner_data, config.threads)
        hybrid = HybridRecommender({n: c.model for n, c in comps.items()}, refit=False).fit(data.train)
        sets = [hybrid.blend_set(data.foldin["validation"][rows], val_target[rows][:, data.kept])]
        for m in inner_data:
            fitted = {n: _fit(n, c.params, seed, config.threads, m, titles) for n, c in comps.items()}
            refitted = HybridRecommender(fitted, refit=False).fit(m.train)
            sets += [refitted.blend_set(m.foldin[f], m.full.folds[f].target.matrix[:, m.kept]) for f in m.foldin]
        weights, pooled, tried = search_weights(sets, list(comps), "ndcg", 10, HYBRID_GRID)
        hybrid.weights = weights
        _log.info(
            "hybrid %s: weights %s, ndcg@10 %.4f over %d held-out readers (%d sets, %d blends)",
            choice.name,
            weights,
            pooled,
            sum(s.readers for s in sets),
            len(sets),
            tried,
        )
        val = metric_row(recommend_fold(hybrid, data, "validation"), val_target)
        if best is None or pooled > best[5]:
            params = {n: c.params for n, c in comps.items()}
            best = (hybrid, choice, weights, params, val, pooled)
    return best


def _pooled_ndcg(pairs: list[tuple[Recommender, sp.csr_matrix, sp.csr_matrix]]) -> float:
    """NDCG@10 of each (model, fold-in, target over the model's columns), pooled over their readers
    with a non-empty target."""
    total = readers = 0.0
    for model, hist, target in pairs:
        size = readers_with_target(target)
        if size:
            ids, _ = model.recommend(None, 10, history=hist)
            total += ndcg_at_k(ids, target, 10) * size
            readers += size
    return total / readers if readers else 0.0


def _pooled_selection(
    name: str,
    cand: _Candidate,
    prepared: dict[str, PrunedMatrices],
    inner: dict[str, list[PrunedMatrices]],
    seed: int,
    config: RunConfig,
    titles: pl.DataFrame | None,
) -> float:
    """:data:`POOLED_SELECTION` of a tuned model: its validation readers plus the held-out readers of
    the inner splits, the chosen configuration refitted on each inner split's training readers."""
    data = prepared[cand.choice.name]
    pairs = [(cand.model, data.foldin["validation"], data.full.folds["validation"].target.matrix[:, data.kept])]
    for m in inner[cand.choice.name]:
        model = _fit(name, cand.params, seed, config.threads, m, titles)
        pairs += [(model, m.foldin[f], m.full.folds[f].target.matrix[:, m.kept]) for f in m.foldin]
    return _pooled_ndcg(pairs)


def _pooled_ease(
    cand: _Candidate, data: PrunedMatrices, rows: np.ndarray, inner: list[PrunedMatrices], threads: int
) -> _Candidate:
    """The hybrid's EASE component with ``lambda`` re-chosen on the same pool of held-out readers as
    the blend weights (validation ``rows`` plus the inner splits' folds) instead of validation alone:
    one spectrum per training matrix scores the whole lambda grid (:class:`EASESpectrum`)."""
    lambdas = [float(p["lambda_"]) for p in GRIDS["ease"]]
    val_target = data.full.folds["validation"].target.matrix[rows][:, data.kept]
    # per training matrix: its held-out (fold-in, target over its columns) sets
    pools = [(data.train.matrix, [(data.foldin["validation"][rows], val_target)])]
    pools += [
        (m.train.matrix, [(m.foldin[f], m.full.folds[f].target.matrix[:, m.kept]) for f in m.foldin]) for m in inner
    ]
    total = np.zeros(len(lambdas))
    readers = 0
    spectra = []
    for train, held_out in pools:
        spectra.append(EASESpectrum(train, threads))
        allowed = np.arange(train.shape[1], dtype=np.int32)
        for hist, target in held_out:
            size = readers_with_target(target)
            if not size:
                continue
            for i, (_, scores) in enumerate(spectra[-1].scores(hist, lambdas)):
                ids, _ = top_n_dense(scores, 10, hist, allowed)
                total[i] += ndcg_at_k(ids, target, 10) * size
            readers += size
    lam = lambdas[int(np.argmax(total))]
    _log.info(
        "hybrid: EASE lambda %g on %d pooled readers (validation alone chose %g)", lam, readers, cand.params["lambda_"]
    )
    if lam == cand.params["lambda_"]:
        return cand
    model = EASERecommender(lambda_=lam, threads=threads)
    model._fit_common(data.train)
    model.weights_ = spectra[0].weights(lam)
    val = metric_row(recommend_fold(model, data, "validation"), data.full.folds["validation"].target.matrix)
    return _Candidate(model, cand.choice, {"lambda_": lam}, val)


def run_evaluation(
    dataset: Dataset,
    kind: str,
    config: RunConfig,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``config.models`` on ``dataset`` over ``config.seeds``.

    Returns a JSON-serialisable report: per-seed results, the summary (mean / std per model), the
    split descriptions, the ratio of the best yuedu model's NDCG@10 to raw implicit ALS, wall time
    (seconds) and thread settings.
    """
    if kind not in PROTOCOLS or config.protocol not in PROTOCOLS[kind] + ("strong",):
        raise EvaluationError(f"protocol {config.protocol!r} is not defined for data set {kind!r}")
    unknown = [m for m in config.models if m not in GRIDS and m != "hybrid"]
    if unknown:
        raise EvaluationError(f"unknown model(s) {unknown}; known: {sorted(GRIDS)} and hybrid")
    started = time.perf_counter()
    events = prepare_events(dataset, kind)
    results: list[SeedResult] = []
    splits = []
    with threadpool_limits(config.threads or None, user_api="blas"):
        for seed in config.seeds:
            res, info = evaluate_seed(kind, dataset, events, config, seed, progress)
            results += res
            splits.append(info)
    summary = summarise(results)
    report = {
        "dataset": dataset.name,
        "kind": kind,
        "protocol": config.protocol,
        "models": list(config.models),
        "seeds": list(config.seeds),
        "quick": config.quick,
        "refit": config.refit,
        "inputs": config.inputs,
        "events": events.height,
        "readers": events["reader_id"].n_unique(),
        "titles": events["title_id"].n_unique(),
        "results": [r.to_dict() for r in results],
        "summary": summary.to_dicts(),
        "splits": splits,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "threads": {"cpu_count": os.cpu_count(), "requested": config.threads},
    }
    # Temporal splits do not depend on the seed: every seed holds out the same readers.
    report["comparison"] = compare(results, same_readers=config.protocol == "temporal")
    return report


#: Reader-bootstrap resamples for the ratio intervals, and the interval's coverage.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_LEVEL = 0.95


def compare(results: list[SeedResult], seed: int = 0, same_readers: bool = False) -> dict[str, Any]:
    """The headline comparison, with the model chosen on VALIDATION (never by test scores).

    Per seed the yuedu model with the best validation NDCG@10 is the run's pick (``chosen``: its
    name per seed; on strong generalisation, where every row carries :data:`POOLED_SELECTION`, the
    best NDCG@10 pooled over the validation readers and the internal splits' held-out readers:
    ``selected_on`` says which); ``chosen_ndcg@10`` is the mean over seeds of its test NDCG@10. Ratios are of
    mean test NDCG@10 to the raw implicit ALS baseline of the run (``raw-implicit-als``, or
    ``raw-implicit-als+inputs`` when the baselines got the same extra input) and to tuned EASE, each
    with a paired reader bootstrap: the same readers are resampled for both rows within each seed
    (:data:`BOOTSTRAP_RESAMPLES`, percentile interval at :data:`BOOTSTRAP_LEVEL`), so the interval
    shows how much the figure depends on which readers happened to be held out - the seeds' standard
    deviation does not show that on temporal protocols, whose split is fixed. ``same_readers``: every
    seed evaluates the same readers in the same order (temporal protocols), so one draw of readers
    is shared by all seeds instead of one per seed.
    ``best_by_test`` names the model with the best mean test NDCG@10: for reference only."""
    yuedu = [r for r in results if r.kind == "yuedu" and SELECTION_METRIC in r.validation]
    if not yuedu:
        return {}
    seeds = sorted({r.seed for r in yuedu})
    pooled = all(POOLED_SELECTION in r.validation for r in yuedu)
    key = POOLED_SELECTION if pooled else SELECTION_METRIC
    picks = {s: max((r for r in yuedu if r.seed == s), key=lambda r: r.validation[key]) for s in seeds}
    out: dict[str, Any] = {
        "selected_on": "validation + internal splits" if pooled else "validation",
        "chosen": {str(s): picks[s].model for s in seeds},
        "chosen_ndcg@10": float(np.mean([picks[s].metrics[SELECTION_METRIC] for s in seeds])),
    }
    means: dict[str, list[float]] = {}
    for r in results:
        means.setdefault(r.model, []).append(r.metrics[SELECTION_METRIC])
    best = max((m for m in means if any(r.model == m for r in yuedu)), key=lambda m: np.mean(means[m]))
    out["best_by_test"] = {"model": best, "ndcg@10": float(np.mean(means[best]))}
    baseline = "raw-implicit-als+inputs" if "raw-implicit-als+inputs" in means else "raw-implicit-als"
    rng = np.random.default_rng(seed)
    for label, other in (("raw_als", baseline), ("ease", "ease")):
        rows = {r.seed: r for r in results if r.model == other}
        if set(rows) != set(seeds) or not np.mean([rows[s].metrics[SELECTION_METRIC] for s in seeds]):
            continue
        out[f"ratio_to_{label}"] = out["chosen_ndcg@10"] / float(
            np.mean([rows[s].metrics[SELECTION_METRIC] for s in seeds])
        )
        out[f"ratio_to_{label}_interval"] = _bootstrap_ratio(
            [picks[s].per_reader_ndcg for s in seeds], [rows[s].per_reader_ndcg for s in seeds], rng, same_readers
        )
    out["raw_als_row"] = baseline
    return out


def _bootstrap_ratio(
    chosen: list[np.ndarray | None],
    other: list[np.ndarray | None],
    rng: np.random.Generator,
    same_readers: bool = False,
) -> list[float] | None:
    """Percentile interval of mean-over-seeds(chosen) / mean-over-seeds(other) when readers are
    resampled with replacement (paired: one draw for both rows; with ``same_readers`` also one draw
    for all seeds, which must then list the same readers)."""
    if any(a is None or b is None or a.shape != b.shape for a, b in zip(chosen, other, strict=True)):
        return None
    if same_readers and len({a.shape for a in chosen}) != 1:
        raise ValueError("same_readers: the seeds' per-reader arrays differ in length")
    num = np.zeros(BOOTSTRAP_RESAMPLES)
    den = np.zeros(BOOTSTRAP_RESAMPLES)
    shared = None
    for a, b in zip(chosen, other, strict=True):
        keep = np.isfinite(a) & np.isfinite(b)  # readers with an empty target count in neither mean
        a, b = a[keep], b[keep]
        if not a.size:
            return None
        if not same_readers:
            idx = rng.integers(0, a.size, size=(BOOTSTRAP_RESAMPLES, a.size))
        else:
            if shared is None:
                shared = rng.integers(0, a.size, size=(BOOTSTRAP_RESAMPLES, a.size))
            if shared.shape[1] != a.size:
                raise ValueError("same_readers: the seeds' readers with a target differ")
            idx = shared
        num += a[idx].mean(axis=1)
        den += b[idx].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = num / den
    ratios = ratios[np.isfinite(ratios)]
    if not ratios.size:
        return None
    tail = (1.0 - BOOTSTRAP_LEVEL) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return [float(lo), float(hi)]
