"""EASE (Steck 2019): a closed-form linear title-title model with zero self-similarity.

``G = X^T X + lambda I``; with ``P = G^-1`` (via a Cholesky factorisation, not a generic inverse),
``B = I - P / diag(P)`` column-wise, so ``B_ii = 0``; scores = ``history @ B``. Memory and time grow
with titles^2 and titles^3: ``max_titles`` guards against accidentally fitting a huge catalogue.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import polars as pl
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.base import ModelError, Recommender

_log = logging.getLogger(__name__)


class EASERecommender(Recommender):
    """Embarrassingly shallow autoencoder.

    Args:
        lambda_: L2 regularisation added to the Gram diagonal (typical 10-1000; larger for
            denser data).
        max_titles: refuse to fit above this many titles (dense titles x titles float32 matrix:
            20,000 titles = 1.6 GB).
        threads: BLAS / LAPACK threads (0 = library default).
    """

    name = "ease"

    def __init__(self, lambda_: float = 200.0, max_titles: int = 25_000, threads: int = 0) -> None:
        self.lambda_ = lambda_
        self.max_titles = max_titles
        self.threads = threads

    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:
        n = X.shape[1]
        if n > self.max_titles:
            raise ModelError(
                f"EASE: {n} titles exceed max_titles={self.max_titles} "
                f"(needs a dense {n}x{n} float32 matrix, {n * n * 4 / 1e9:.1f} GB); prune the catalogue"
            )
        with threadpool_limits(self.threads or None, user_api="blas"):
            G = np.asarray((X.T @ X).todense(), dtype=np.float32)
            G[np.diag_indices(n)] += np.float32(self.lambda_)
            factor = scipy.linalg.cho_factor(G, overwrite_a=True, check_finite=False)
            P = scipy.linalg.cho_solve(factor, np.eye(n, dtype=np.float32), overwrite_b=True, check_finite=False)
        B = -P / np.diag(P)[None, :]
        B[np.diag_indices(n)] = 0.0
        self.weights_ = np.ascontiguousarray(B, dtype=np.float32)

    def _score_readers(self, reader_rows: np.ndarray) -> np.ndarray:
        return self._score_history(self.user_items_[reader_rows])

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        with threadpool_limits(self.threads or None, user_api="blas"):
            return np.asarray(history @ self.weights_, dtype=np.float32)

    def _similar_scores(self, title_rows: np.ndarray) -> np.ndarray:
        return self.weights_[title_rows]

    def _state(self) -> dict[str, Any]:
        return {"weights": self.weights_}

    def _set_state(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.weights_ = np.ascontiguousarray(state["weights"], dtype=np.float32)
