"""Shared state and scoring of title-title neighbourhood models (item-kNN, RP3beta).

Such a model learns one sparse title x title matrix ``similarity_`` (a few neighbours per title);
scoring a batch of readers is the sparse product ``history @ similarity_``, and a title's
similar titles are its row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.base import Recommender


class NeighbourhoodRecommender(Recommender):
    """A :class:`Recommender` whose learned state is the sparse ``similarity_`` matrix."""

    similarity_: sp.csr_matrix

    def _score_readers(self, reader_rows: np.ndarray) -> np.ndarray:
        return self._score_history(self.user_items_[reader_rows])

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((history @ self.similarity_).todense(), dtype=np.float32)

    def _similar_scores(self, title_rows: np.ndarray) -> np.ndarray:
        # Titles outside a title's neighbours are not similar at all: -inf keeps them out of lists.
        dense = np.asarray(self.similarity_[title_rows].todense(), dtype=np.float32)
        dense[dense <= 0] = -np.inf
        return dense

    def _state(self) -> dict[str, Any]:
        return {"similarity": self.similarity_.astype(np.float32, copy=False)}

    def _set_state(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.similarity_ = sp.csr_matrix(state["similarity"], dtype=np.float32)
