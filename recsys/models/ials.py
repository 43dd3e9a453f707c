"""iALS as revisited by Rendle, Krichene, Zhang & Koren (RecSys 2022), in numpy / scipy.

The loss of "Revisiting the performance of iALS on item recommendation benchmarks"::

    sum_{(u,i) observed} w_ui (x_u . y_i - 1)^2  +  alpha0 * sum_{all (u,i)} (x_u . y_i)^2
    + lambda * ( sum_u (|I_u| + alpha0 |I|)^nu ||x_u||^2  +  sum_i (|U_i| + alpha0 |U|)^nu ||y_i||^2 )

``nu = 1`` is the frequency-scaled regularisation the paper tunes (``nu = 0``: the constant penalty of
Hu et al. 2008 and of ``implicit``, whose solver has no per-row penalty - hence this model beside
:class:`~recsys.models.als.ALSRecommender`). Each half-step solves every reader's (title's) normal
equations ``(Y^T W_u Y + alpha0 Y^T Y + lambda_u I) x_u = Y^T W_u 1`` with a few conjugate-gradient
iterations warm-started from the current factors (Takacs, Pilaszy & Tikk 2011, as ``implicit`` does);
every product is a whole-matrix operation: one sparse x dense product per iteration, no loop over
readers or interactions.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.models.factorization import FactorizationRecommender
from recsys.threads import limit_threads

_log = logging.getLogger(__name__)

#: Rows per block of the observed-term product (bounds the gathered factors: rows x nnz/row x f x 4 B).
_BLOCK_NNZ = 2_000_000


class IALSRecommender(FactorizationRecommender):
    """Implicit ALS with the unobserved weight ``alpha0`` and frequency-scaled regularisation.

    Args:
        factors: latent dimensions (the paper goes to thousands; cost grows ~linearly here).
        regularization: lambda, the L2 penalty scale.
        alpha0: weight of every (reader, title) pair as a zero, relative to an observed pair's 1
            (the paper's unobserved weight; typical 0.001-1).
        nu: frequency exponent of the penalty: 1 = frequency-scaled (the paper), 0 = constant.
        iterations: epochs (one reader half-step and one title half-step each).
        cg_steps: conjugate-gradient iterations per half-step.
        init_std: standard deviation of the initial factors, divided by sqrt(factors).
        seed: random seed of the initial factors.
        threads: BLAS threads (0 = library default).
    """

    name = "ials"

    def __init__(
        self,
        factors: int = 128,
        regularization: float = 0.003,
        alpha0: float = 0.1,
        nu: float = 1.0,
        iterations: int = 16,
        cg_steps: int = 3,
        init_std: float = 0.1,
        seed: int = 0,
        threads: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha0 = alpha0
        self.nu = nu
        self.iterations = iterations
        self.cg_steps = cg_steps
        self.init_std = init_std
        self.seed = seed
        self.threads = threads

    def _penalty(self, counts: np.ndarray, n_other: int) -> np.ndarray:
        """Per-row lambda: ``lambda * (count + alpha0 * n_other) ** nu`` (float32 column vector)."""
        return (self.regularization * (counts + self.alpha0 * n_other) ** self.nu).astype(np.float32)[:, None]

    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:
        if self.factors < 1 or self.iterations < 0 or self.cg_steps < 1:
            raise ValueError("iALS: factors and cg_steps must be >= 1, iterations >= 0")
        if self.alpha0 <= 0 or self.regularization < 0:
            raise ValueError("iALS: alpha0 must be > 0 and regularization >= 0")
        rng = np.random.default_rng(self.seed)
        m, n = X.shape
        scale = self.init_std / np.sqrt(self.factors)
        users = (rng.standard_normal((m, self.factors)) * scale).astype(np.float32)
        items = (rng.standard_normal((n, self.factors)) * scale).astype(np.float32)
        X = sp.csr_matrix(X, dtype=np.float32)
        XT = sp.csr_matrix(X.T)
        user_pen = self._penalty(np.diff(X.indptr), n)
        item_pen = self._penalty(np.diff(XT.indptr), m)
        with limit_threads(self.threads or None, user_api="blas"):
            for epoch in range(self.iterations):
                users = self._half_step(X, items, users, user_pen)
                items = self._half_step(XT, users, items, item_pen)
                _log.debug("iALS epoch %d done", epoch + 1)
        self.user_factors_, self.item_factors_ = users, items

    def _half_step(self, R: sp.csr_matrix, fixed: np.ndarray, x: np.ndarray, penalty: np.ndarray) -> np.ndarray:
        """CG steps on every row's normal equations against the ``fixed`` side, from ``x``."""
        gram = self.alpha0 * (fixed.T @ fixed)
        b = R @ fixed  # Y^T W_u 1: the observed weights times the other side's factors
        x = x.copy()
        r = b - _apply(R, fixed, x, gram, penalty)
        p = r.copy()
        rs = np.einsum("ij,ij->i", r, r)
        for _ in range(self.cg_steps):
            Ap = _apply(R, fixed, p, gram, penalty)
            denom = np.einsum("ij,ij->i", p, Ap)
            step = np.divide(rs, denom, out=np.zeros_like(rs), where=denom > 0)[:, None]
            x += step * p
            r -= step * Ap
            rs_new = np.einsum("ij,ij->i", r, r)
            beta = np.divide(rs_new, rs, out=np.zeros_like(rs), where=rs > 0)[:, None]
            p = r + beta * p
            rs = rs_new
        return x

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """Reader factors of history rows: the reader half-step from zero factors, exactly solved for
        small batches (a few readers on the request path) and by CG for large ones."""
        H = sp.csr_matrix(history, dtype=np.float32)
        pen = self._penalty(np.diff(H.indptr), self.item_factors_.shape[0])
        items = self.item_factors_
        with limit_threads(self._threads_for(H.shape[0]), user_api="blas"):
            if H.shape[0] <= 256:
                return _exact_rows(H, items, self.alpha0 * (items.T @ items), pen)
            start = np.zeros((H.shape[0], items.shape[1]), dtype=np.float32)
            steps, self.cg_steps = self.cg_steps, max(self.cg_steps, 8)
            try:
                return self._half_step(H, items, start, pen)
            finally:
                self.cg_steps = steps

    def _set_state(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.user_factors_ = np.ascontiguousarray(state["user_factors"], dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(state["item_factors"], dtype=np.float32)


def _apply(R: sp.csr_matrix, fixed: np.ndarray, v: np.ndarray, gram: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """``A_u v_u`` for every row u: ``sum_i w_ui y_i (y_i . v_u) + gram v_u + lambda_u v_u``. The observed
    sum is the CSR matrix of ``w_ui (y_i . v_u)`` (R's own structure, no re-sorting) times ``fixed``,
    over blocks of rows of about :data:`_BLOCK_NNZ` entries."""
    out = v @ gram
    out += penalty * v
    bounds = np.searchsorted(R.indptr, np.arange(0, R.nnz, _BLOCK_NNZ), side="right") - 1
    starts = np.unique(np.append(bounds, R.shape[0]))
    for r0, r1 in zip(starts[:-1], starts[1:], strict=True):
        lo, hi = R.indptr[r0], R.indptr[r1]
        rows = np.repeat(np.arange(r1 - r0), np.diff(R.indptr[r0 : r1 + 1]))
        cols = R.indices[lo:hi]
        dots = np.einsum("ij,ij->i", fixed[cols], v[r0:r1][rows]) * R.data[lo:hi]
        block = sp.csr_matrix((dots, cols, R.indptr[r0 : r1 + 1] - lo), shape=(r1 - r0, R.shape[1]))
        out[r0:r1] += block @ fixed
    return out


def _exact_rows(H: sp.csr_matrix, items: np.ndarray, gram: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """Exact normal-equation solutions for a few history rows (batched ``solve``)."""
    k, f = H.shape[0], items.shape[1]
    A = np.broadcast_to(gram, (k, f, f)).copy()
    A[:, np.arange(f), np.arange(f)] += penalty
    rows = np.repeat(np.arange(k), np.diff(H.indptr))
    Y = items[H.indices] * np.sqrt(H.data)[:, None]
    np.add.at(A, rows, Y[:, :, None] * Y[:, None, :])
    b = (H @ items)[:, :, None]
    return np.linalg.solve(A, b)[:, :, 0].astype(np.float32)
