"""SANSA: EASE at catalogue scale through a sparse approximate inverse (Spisak et al., RecSys 2023).

EASE needs ``P = (X^T X + lambda I)^-1`` as a dense titles x titles matrix (163k titles: ~100 GB).
SANSA keeps it sparse: a sparse approximate LDL^T factorisation of the (permuted) Gram matrix,
then a sparse approximate inverse ``W`` of the unit lower triangle, so that
``P ~ W^T D^-1 W``. Scores are ``-(x P) / diag(P)`` - EASE's ``x B`` on every title the reader has
not seen (``B``'s identity part only touches seen titles, which are filtered) - computed as two
sparse products ``(x @ encoder_) @ decoder_`` with ``encoder_ = W^T`` and
``decoder_ = D^-1 W diag(-1 / diag(P))``. Both have about ``density * n_titles^2`` entries.

The factorisation and inversion are the ``sansa`` package's (CHOLMOD through ``scikit-sparse``,
which builds against the system SuiteSparse, ``libsuitesparse-dev``); it is imported only by
``fit``, so a saved model loads and serves without it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.base import ModelError, ModelFormatError, Recommender
from recsys.threads import limit_threads

_log = logging.getLogger(__name__)


class SANSARecommender(Recommender):
    """Scalable EASE by a sparse approximate inverse of the Gram matrix.

    Args:
        lambda_: L2 regularisation added to the Gram diagonal (EASE's lambda).
        density: target density of each weight factor (entries / n_titles^2); memory and scoring cost
            grow linearly with it (163k titles at 5e-4: 13M entries, ~160 MB per factor).
        factorizer: ``"cholmod"`` (exact Cholesky of the sparsified Gram matrix, then pruned) or
            ``"icf"`` (incomplete Cholesky, cheaper on very dense Gram matrices).
        scans: UMR sweeps over the columns when inverting the unit lower triangle.
        finetune_steps: UMR refinement steps on the worst columns after the scans.
        threads: BLAS / OpenMP threads for fitting and scoring (0 = library default).
    """

    name = "sansa"

    def __init__(
        self,
        lambda_: float = 100.0,
        density: float = 5e-4,
        factorizer: str = "cholmod",
        scans: int = 1,
        finetune_steps: int = 5,
        threads: int = 0,
    ) -> None:
        self.lambda_ = lambda_
        self.density = density
        self.factorizer = factorizer
        self.scans = scans
        self.finetune_steps = finetune_steps
        self.threads = threads

    def _solver(self):
        """The ``sansa`` package's model for these parameters (imported here: fitting only)."""
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            import sansa
        except ImportError as exc:  # scikit-sparse needs the system SuiteSparse to build
            raise ModelError(
                f"SANSA: fitting needs the 'sansa' package and scikit-sparse (libsuitesparse-dev): {exc}"
            ) from exc
        finally:
            # sansa calls logging.basicConfig on import; leave the application's logging as it was.
            root.handlers[:], root.level = handlers, level
        if self.factorizer == "cholmod":
            factorizer = sansa.CHOLMODGramianFactorizerConfig()
        elif self.factorizer == "icf":
            factorizer = sansa.ICFGramianFactorizerConfig()
        else:
            raise ValueError(f"SANSA: factorizer must be cholmod or icf, got {self.factorizer!r}")
        inverter = sansa.UMRUnitLowerTriangleInverterConfig(scans=self.scans, finetune_steps=self.finetune_steps)
        config = sansa.SANSAConfig(
            l2=float(self.lambda_),
            weight_matrix_density=float(self.density),
            gramian_factorizer_config=factorizer,
            lower_triangle_inverter_config=inverter,
        )
        return sansa.SANSA(config)

    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"SANSA: density must be in (0, 1], got {self.density}")
        if self.lambda_ <= 0:
            raise ValueError(f"SANSA: lambda_ must be > 0, got {self.lambda_}")
        solver = self._solver()
        with limit_threads(self.threads or None, user_api=None):
            solver.fit(sp.csr_matrix(X, dtype=np.float32))
        encoder, decoder = solver.weights
        self.encoder_ = sp.csr_matrix(encoder, dtype=np.float32)
        self.decoder_ = sp.csr_matrix(decoder, dtype=np.float32)
        _log.info("SANSA: %d + %d weights for %d titles", self.encoder_.nnz, self.decoder_.nnz, X.shape[1])

    def _score_readers(self, reader_rows: np.ndarray) -> np.ndarray:
        return self._score_history(self.user_items_[reader_rows])

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        latent = sp.csr_matrix(history, dtype=np.float32) @ self.encoder_
        return (latent @ self.decoder_).toarray().astype(np.float32, copy=False)

    def _state(self) -> dict[str, Any]:
        return {"encoder": self.encoder_, "decoder": self.decoder_}

    def _set_state(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        n = len(self.titles_)
        for key in ("encoder", "decoder"):
            if state[key].shape != (n, n):
                raise ModelFormatError(f"SANSA {key}: shape {state[key].shape}, expected {(n, n)} from the titles")
        self.encoder_ = sp.csr_matrix(state["encoder"], dtype=np.float32)
        self.decoder_ = sp.csr_matrix(state["decoder"], dtype=np.float32)
