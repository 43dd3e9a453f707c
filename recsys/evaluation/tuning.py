"""Per-model tuning on VALIDATION only: parameter grids, matrix choices, the pick.

Every yuedu model is tuned over a small grid (:data:`GRIDS`) times the matrix choices
(:mod:`recsys.evaluation.matrices`), ranked by :data:`SELECTION_METRIC`; EASE scores its whole
``lambda`` grid from one spectral decomposition (:class:`recsys.models.ease.EASESpectrum`). On
strong generalisation models are compared by :data:`POOLED_SELECTION` (:func:`pooled_selection`).
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.base import Recommender, top_n_dense
from recsys.evaluation.batch import LIST_LENGTH, metric_row, recommend_fold
from recsys.evaluation.matrices import MatrixChoice, PrunedMatrices
from recsys.evaluation.scale import PeakMemory
from recsys.metrics import ndcg_at_k, readers_with_target
from recsys.models import make_model
from recsys.models.ease import EASERecommender, EASESpectrum

_log = logging.getLogger(__name__)

#: The validation metric hyper-parameters are chosen by.
SELECTION_METRIC = "ndcg@10"
#: Strong generalisation: the ``validation`` entry by which models are compared - NDCG@10 pooled over
#: the validation readers and the held-out readers of :func:`internal_splits` (reader-weighted, target
#: titles restricted to the model's columns).
POOLED_SELECTION = "pooled ndcg@10"
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
    # Not in the default study (EASE is exact below 25k titles); for runs that name them.
    "ials": [
        {"factors": 64, "regularization": 0.003, "alpha0": 0.1, "nu": 1.0, "iterations": 16},
        {"factors": 128, "regularization": 0.01, "alpha0": 0.03, "nu": 1.0, "iterations": 16},
    ],
    "sansa": [{"lambda_": lam, "density": 0.01, "factorizer": "icf"} for lam in (50.0, 150.0, 500.0)],
    "rp3beta": [
        {"alpha": alpha, "beta": beta, "K": K}
        for alpha, beta, K in itertools.product((1.0, 0.6), (0.5, 0.3, 0.7), (200, 50))
    ],
}
#: Models tuned on some matrix choices only (BPR's sampling gains little from re-weighting, and
#: each extra fit costs time).
MODEL_CHOICES: dict[str, tuple[str, ...]] = {"bpr": ("binary",)}
#: Models whose seed parameter follows the run seed.
_SEEDED = {"als", "bpr", "ials"}


@dataclass
class Candidate:
    """A tuned configuration: the model fitted on train, its matrix choice, its parameters and its
    validation metrics."""

    model: Recommender
    choice: MatrixChoice
    params: dict[str, Any]
    validation: dict[str, float]
    #: What its fit cost (:meth:`recsys.evaluation.scale.PeakMemory.cost`); empty when not measured.
    cost: dict[str, float] = field(default_factory=dict)


def fit_model(
    name: str, params: dict[str, Any], seed: int, threads: int, data: PrunedMatrices, titles: pl.DataFrame | None
) -> Recommender:
    """Model ``name`` with ``params`` fitted on ``data``'s training matrix (seeded models take the
    run's ``seed``, threaded ones ``threads``)."""
    p = dict(params)
    if name in _SEEDED:
        p["seed"] = seed
    if name in ("itemknn", "als", "bpr", "ease", "ials", "sansa"):
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
) -> dict[str, Candidate]:
    """Fit every (matrix choice, params) on train and score it on VALIDATION; return the best
    candidate per matrix choice (so the hybrid can combine components built on one matrix).
    ``time_budget_s``: stop trying further configurations once exceeded (the best so far wins)."""
    if name == "ease" and all(set(p) == {"lambda_"} for p in grid):
        return _tune_ease(grid, prepared, choices, threads)
    started = time.perf_counter()
    best: dict[str, Candidate] = {}
    for choice, params in itertools.product(choices, grid):
        data = prepared[choice.name]
        with PeakMemory() as mem:
            model = fit_model(name, params, seed, threads, data, titles)
        val = metric_row(recommend_fold(model, data, "validation"), data.full.folds["validation"].target.matrix)
        _log.debug("tune %s %s %s: ndcg@10 %.4f", name, choice.name, params, val[SELECTION_METRIC])
        current = best.get(choice.name)
        if current is None or val[SELECTION_METRIC] > current.validation[SELECTION_METRIC]:
            best[choice.name] = Candidate(model, choice, params, val, mem.cost())
        if time_budget_s is not None and time.perf_counter() - started > time_budget_s:
            _log.info("tune %s: time budget of %.0f s reached", name, time_budget_s)
            break
    return best


def _tune_ease(
    grid: list[dict[str, Any]], prepared: dict[str, PrunedMatrices], choices: list[MatrixChoice], threads: int
) -> dict[str, Candidate]:
    """EASE's lambda grid scored on VALIDATION from one :class:`EASESpectrum` per matrix choice
    (exact, the same rankings as fitting each lambda); the best lambda is then fitted."""
    best: dict[str, Candidate] = {}
    lambdas = [float(p["lambda_"]) for p in grid]
    for choice in choices:
        data = prepared[choice.name]
        hist = data.foldin["validation"]
        target = data.full.folds["validation"].target.matrix
        allowed = np.arange(data.train.shape[1], dtype=np.int32)
        spectrum = EASESpectrum(data.train.matrix, threads)
        for lam, scores in spectrum.scores(hist, lambdas):
            ids, _ = top_n_dense(scores, LIST_LENGTH, hist, allowed)
            val = metric_row(data.full_columns(ids), target)
            _log.debug("tune ease %s lambda %g: ndcg@10 %.4f", choice.name, lam, val[SELECTION_METRIC])
            current = best.get(choice.name)
            if current is None or val[SELECTION_METRIC] > current.validation[SELECTION_METRIC]:
                best[choice.name] = Candidate(None, choice, {"lambda_": lam}, val)  # type: ignore[arg-type]
        cand = best[choice.name]
        model = EASERecommender(lambda_=cand.params["lambda_"], threads=threads)
        model._fit_common(data.train)
        model.weights_ = spectrum.weights(cand.params["lambda_"])
        cand.model = model
    return best


def winner(cands: dict[str, Candidate]) -> Candidate:
    """The candidate (over matrix choices) with the best validation :data:`SELECTION_METRIC`."""
    return max(cands.values(), key=lambda c: c.validation[SELECTION_METRIC])


def pooled_ndcg(pairs: list[tuple[Recommender, sp.csr_matrix, sp.csr_matrix]]) -> float:
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


def pooled_selection(
    name: str,
    cand: Candidate,
    prepared: dict[str, PrunedMatrices],
    inner: dict[str, list[PrunedMatrices]],
    seed: int,
    threads: int,
    titles: pl.DataFrame | None,
) -> float:
    """:data:`POOLED_SELECTION` of a tuned model: its validation readers plus the held-out readers of
    the inner splits, the chosen configuration refitted on each inner split's training readers."""
    data = prepared[cand.choice.name]
    pairs = [(cand.model, data.foldin["validation"], data.full.folds["validation"].target.matrix[:, data.kept])]
    for m in inner[cand.choice.name]:
        model = fit_model(name, cand.params, seed, threads, m, titles)
        pairs += [(model, m.foldin[f], m.full.folds[f].target.matrix[:, m.kept]) for f in m.foldin]
    return pooled_ndcg(pairs)
