"""Bayesian Personalised Ranking (Rendle et al. 2009), wrapping ``implicit``'s CPU SGD solver."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from implicit.cpu.bpr import BayesianPersonalizedRanking

from recsys.models.factorization import FactorizationRecommender, gpu_available

_log = logging.getLogger(__name__)


class BPRRecommender(FactorizationRecommender):
    """Pairwise ranking factorisation.

    implicit stores a title bias as the last factor column (reader factors hold 1 there).

    Args:
        factors: latent dimensions (implicit adds one bias column).
        learning_rate: SGD step size.
        regularization: L2 penalty.
        iterations: epochs over the interactions.
        seed: random seed (initial factors and negative sampling).
        threads: solver / top-n threads (0 = all cores; >1 makes SGD non-deterministic).
        use_gpu: train on a GPU when available; never required.
    """

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int = 0,
        threads: int = 0,
        use_gpu: bool = False,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.seed = seed
        self.threads = threads
        self.use_gpu = use_gpu

    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:
        kwargs = dict(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.seed,
        )
        if self.use_gpu and gpu_available():
            import implicit.gpu.bpr

            solver = implicit.gpu.bpr.BayesianPersonalizedRanking(**kwargs)
            solver.fit(X, show_progress=False)
            solver = solver.to_cpu()
        else:
            solver = BayesianPersonalizedRanking(**kwargs, num_threads=self.threads)
            solver.fit(X, show_progress=False)
        self.user_factors_ = np.ascontiguousarray(solver.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(solver.item_factors, dtype=np.float32)

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """BPR has no closed-form fold-in; use the weight-averaged factors of the history's titles
        (bias column fixed at 1, as for trained readers)."""
        h = sp.csr_matrix(history, dtype=np.float32)
        totals = np.asarray(h.sum(axis=1)).ravel()
        totals[totals == 0] = 1.0
        users = np.asarray(sp.diags(1.0 / totals) @ h @ self.item_factors_, dtype=np.float32)
        users[:, -1] = 1.0
        return users

    def _set_state(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.user_factors_ = np.ascontiguousarray(state["user_factors"], dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(state["item_factors"], dtype=np.float32)
