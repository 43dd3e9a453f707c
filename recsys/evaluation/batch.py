"""Batch scoring: recommend for a fold's held-out readers and score the lists.

Two shapes of the same step: :func:`recommend_fold` + :func:`metric_row` (the study's pruned
matrices and its :data:`METRICS`) and :func:`evaluate_fold` (the training pipeline's fold, the full
:func:`recsys.metrics.evaluate` table with segments). Both use the metric functions and names of
:mod:`recsys.metrics`.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.splits import FoldMatrices
from recsys.base import Recommender
from recsys.evaluation.matrices import PrunedMatrices
from recsys.metrics import evaluate, metric_values

#: Longest list evaluated (NDCG@100).
LIST_LENGTH = 100
#: Metric columns of every result row, in report order.
METRICS: tuple[str, ...] = ("recall@20", "recall@50", "ndcg@10", "ndcg@100", "coverage@20")


def metric_row(recs: np.ndarray, target: sp.csr_matrix) -> dict[str, float]:
    """The reported :data:`METRICS` of a recommendation matrix (title columns of the full vocabulary)."""
    return metric_values(recs, target, METRICS)


def recommend_fold(model: Recommender, data: PrunedMatrices, fold: str, n: int = LIST_LENGTH) -> np.ndarray:
    """Top-``n`` full-vocabulary title columns for the fold's readers from their fold-in."""
    hist = data.foldin[fold]
    ids, _ = model.recommend(None, n, history=hist)
    return data.full_columns(ids)


def activity_segments(history: sp.csr_matrix) -> np.ndarray:
    """Reader activity level from the number of fold-in titles: light (< p33), medium, heavy (>= p67)."""
    counts = np.diff(history.indptr)
    lo, hi = np.quantile(counts, [1 / 3, 2 / 3]) if counts.size else (0, 0)
    return np.where(counts < lo, "activity:light", np.where(counts >= hi, "activity:heavy", "activity:medium"))


def evaluate_fold(
    model: Recommender, fold: FoldMatrices, ks: list[int], title_class: np.ndarray | None = None
) -> pl.DataFrame:
    """The :func:`recsys.metrics.evaluate` table of a fitted model on one fold: recommend from the
    fold-in histories (seen titles skipped), compare with the targets, per activity segment too."""
    recs, _ = model.recommend(None, max(ks), filter_seen=True, history=fold.foldin.matrix)
    return evaluate(
        recs,
        fold.target.matrix,
        ks=ks,
        segments=activity_segments(fold.foldin.matrix),
        popularity=model.popularity_,
        n_readers=model.user_items_.shape[0],
        title_class=title_class,
    )
