"""Reference rows of an evaluation study: raw ``implicit`` models with default parameters, and the
oracle of a synthetic city (each reader's expected events under its generator's truth, the ceiling)."""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from features.splits import SplitMatrices
from recsys.base import top_n_dense
from recsys.evaluation.batch import LIST_LENGTH


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


def oracle_recommendations(data_dir: Path, full: SplitMatrices, start: datetime | None = None) -> np.ndarray:
    """Ceiling for synthetic data: rank unseen titles by each test reader's expected events from
    ``start`` on (the test cut-off), from the generator's truth (``features.synth_ceiling``);
    without ``start``, by the static true tastes (``features.synth.oracle_scores``), no ceiling."""
    from features.synth import oracle_scores
    from features.synth_ceiling import ceiling_scores

    fold = full.folds["test"]
    readers, titles = fold.foldin.readers.ids, full.train.titles.ids
    raw = (
        oracle_scores(data_dir, readers, titles) if start is None else ceiling_scores(data_dir, readers, titles, start)
    )
    scores = np.asarray(raw, dtype=np.float32)
    allowed = np.arange(scores.shape[1], dtype=np.int32)
    recs, _ = top_n_dense(scores, LIST_LENGTH, fold.foldin.matrix, allowed)
    return recs
