"""EASE (Steck 2019): a closed-form linear title-title model with zero self-similarity.

``G = X^T X + lambda I``; with ``P = G^-1``, ``B = I - P / diag(P)`` column-wise, so ``B_ii = 0``;
scores = ``history @ B``. Memory grows with titles^2: ``max_titles`` guards against accidentally
fitting a huge catalogue.

Two exact ways to get ``P``:

* **Cholesky** (``cho_factor`` / ``cho_solve``, float32, no generic inverse): titles^3, used when
  there are at least as many training readers as titles;
* **spectral** (:class:`EASESpectrum`): ``X^T X = Y^T Y`` with orthogonal rows ``y_k`` of squared
  norm ``s_k`` (from the eigen-decomposition of the smaller Gram matrix: ``X X^T`` when readers <
  titles, which is the common case on small public sets). Then for ANY ``lambda``
  ``P = (I - Y^T diag(1 / (s + lambda)) Y) / lambda`` (Woodbury), so one decomposition scores a
  whole grid of ``lambda`` values - a fine tuning grid costs about one fit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import polars as pl
import scipy.linalg
import scipy.sparse as sp

from recsys.base import ModelError, Recommender
from recsys.threads import limit_threads

_log = logging.getLogger(__name__)


class EASESpectrum:
    """``X^T X = Y^T Y`` with mutually orthogonal rows of ``Y`` (float64), for EASE at many ``lambda``.

    Built from the eigen-decomposition of ``X X^T`` (readers x readers) when there are fewer readers
    than titles, else of ``X^T X``. Eigenvalues below ``1e-9 * max`` are dropped (their rows carry no
    signal). ``Y`` has ``rank`` rows and ``n_titles`` columns.
    """

    def __init__(self, X: sp.csr_matrix, threads: int = 0) -> None:
        m, n = X.shape
        Xd = sp.csr_matrix(X, dtype=np.float64)
        with limit_threads(threads or None, user_api="blas"):
            if m < n:
                s, U = scipy.linalg.eigh((Xd @ Xd.T).toarray(), check_finite=False)
                keep = s > max(float(s.max(initial=0.0)), 1.0) * 1e-9
                Y = (Xd.T @ U[:, keep]).T  # rows u_k^T X: pairwise orthogonal, squared norm s_k
            else:
                s, V = scipy.linalg.eigh((Xd.T @ Xd).toarray(), check_finite=False)
                keep = s > max(float(s.max(initial=0.0)), 1.0) * 1e-9
                Y = (V[:, keep] * np.sqrt(s[keep])).T
        self.s = s[keep]
        self.Y = np.ascontiguousarray(Y)
        self.Y_sq = self.Y * self.Y
        self.n_titles = n
        self.threads = threads
        _log.debug("EASE spectrum: %d readers x %d titles, rank %d", m, n, self.s.size)

    def _check(self, lambda_: float) -> None:
        if not lambda_ > 0:
            raise ValueError(f"EASE: lambda_ must be > 0, got {lambda_}")

    def diag_p(self, lambda_: float) -> np.ndarray:
        """``diag((X^T X + lambda I)^-1)`` (n_titles,)."""
        self._check(lambda_)
        return (1.0 - (1.0 / (self.s + lambda_)) @ self.Y_sq) / lambda_

    def weights(self, lambda_: float) -> np.ndarray:
        """The dense EASE matrix ``B`` (float32, zero diagonal) for one ``lambda``."""
        self._check(lambda_)
        with limit_threads(self.threads or None, user_api="blas"):
            P = -(self.Y.T * (1.0 / (self.s + lambda_))) @ self.Y
        P[np.diag_indices(self.n_titles)] += 1.0
        P /= lambda_
        B = -P / np.diag(P)[None, :]
        B[np.diag_indices(self.n_titles)] = 0.0
        return np.ascontiguousarray(B, dtype=np.float32)

    def scores(self, history: sp.csr_matrix, lambdas: Iterable[float]) -> Iterator[tuple[float, np.ndarray]]:
        """``(lambda, history @ B(lambda))`` per ``lambda`` without forming ``B``: k x n float32
        scores, O(k x rank x n) each (k = history rows)."""
        H = sp.csr_matrix(history, dtype=np.float64)
        with limit_threads(self.threads or None, user_api="blas"):
            HY = np.asarray(H @ self.Y.T)  # k x rank
            Hd = H.toarray()
            for lam in lambdas:
                self._check(lam)
                # H @ P = (H - (H Y^T) diag(1/(s+lam)) Y) / lam ;  H @ B = H - (H @ P) / diag(P)
                HP = (Hd - (HY * (1.0 / (self.s + lam))) @ self.Y) / lam
                out = Hd - HP / self.diag_p(lam)[None, :]
                yield float(lam), out.astype(np.float32)


class EASERecommender(Recommender):
    """Embarrassingly shallow autoencoder.

    Args:
        lambda_: L2 regularisation added to the Gram diagonal (typical 10-1000; larger for
            denser data).
        max_titles: refuse to fit above this many titles (dense titles x titles float32 matrix:
            20,000 titles = 1.6 GB).
        threads: BLAS / LAPACK threads (0 = library default).
        solver: ``"auto"`` (spectral when readers < titles, else Cholesky), ``"cholesky"`` or
            ``"spectral"``; all give the same ``B`` up to float rounding.
    """

    name = "ease"

    def __init__(
        self, lambda_: float = 200.0, max_titles: int = 25_000, threads: int = 0, solver: str = "auto"
    ) -> None:
        self.lambda_ = lambda_
        self.max_titles = max_titles
        self.threads = threads
        self.solver = solver

    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:
        m, n = X.shape
        if n > self.max_titles:
            raise ModelError(
                f"EASE: {n} titles exceed max_titles={self.max_titles} "
                f"(needs a dense {n}x{n} float32 matrix, {n * n * 4 / 1e9:.1f} GB); prune the catalogue"
            )
        if self.solver not in ("auto", "cholesky", "spectral"):
            raise ValueError(f"EASE: solver must be auto, cholesky or spectral, got {self.solver!r}")
        if self.solver == "spectral" or (self.solver == "auto" and m < n):
            self.weights_ = EASESpectrum(X, self.threads).weights(self.lambda_)
            return
        with limit_threads(self.threads or None, user_api="blas"):
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
        with limit_threads(self.threads or None, user_api="blas"):
            return np.asarray(history @ self.weights_, dtype=np.float32)

    def _similar_scores(self, title_rows: np.ndarray) -> np.ndarray:
        return self.weights_[title_rows]

    def _state(self) -> dict[str, Any]:
        return {"weights": self.weights_}

    def _set_state(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.weights_ = np.ascontiguousarray(state["weights"], dtype=np.float32)
