"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008), wrapping ``implicit``'s CPU solver."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares

from recsys.models.factorization import FactorizationRecommender, gpu_available
from recsys.threads import limit_threads

_log = logging.getLogger(__name__)


class ALSRecommender(FactorizationRecommender):
    """Weighted matrix factorisation by alternating least squares.

    Args:
        factors: latent dimensions.
        regularization: L2 penalty on factors.
        alpha: confidence scale applied to matrix weights (confidence = 1 + alpha * weight).
        iterations: ALS sweeps.
        seed: random seed of the initial factors (reproducible fits).
        threads: solver / top-n threads (0 = all cores).
        use_gpu: train on a GPU when implicit has CUDA and one is visible; never required.
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        seed: int = 0,
        threads: int = 0,
        use_gpu: bool = False,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.threads = threads
        self.use_gpu = use_gpu

    def _new_solver(self) -> AlternatingLeastSquares:
        # implicit checks the BLAS thread setting when constructed; build it under the limit it wants.
        with limit_threads(1, user_api="blas"):
            return AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=self.threads,
            )

    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:
        if self.use_gpu and gpu_available():
            import implicit.gpu.als

            gpu = implicit.gpu.als.AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
            )
            gpu.fit(X, show_progress=False)
            self.solver_ = gpu.to_cpu()
        else:
            if self.use_gpu:
                _log.info("ALS: no GPU available, training on CPU")
            self.solver_ = self._new_solver()
            # implicit's own advice: a multi-threaded BLAS inside its threaded solver slows it down.
            with limit_threads(1, user_api="blas"):
                self.solver_.fit(X, show_progress=False)
        self.user_factors_ = self.solver_.user_factors
        self.item_factors_ = self.solver_.item_factors

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        # One exact least-squares step against the fixed title factors (implicit's recalculate_user).
        # For a handful of readers an OpenMP team costs more than the solve (tens of ms on a loaded
        # machine against microseconds), so small batches run on one thread.
        solver = self.solver_
        configured = solver.num_threads
        solver.num_threads = self._threads_for(history.shape[0]) or 0
        try:
            return solver.recalculate_user(np.arange(history.shape[0]), sp.csr_matrix(history))
        finally:
            solver.num_threads = configured

    def _set_state(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.user_factors_ = np.ascontiguousarray(state["user_factors"], dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(state["item_factors"], dtype=np.float32)
        self.solver_ = self._new_solver()
        self.solver_.user_factors = self.user_factors_
        self.solver_.item_factors = self.item_factors_
