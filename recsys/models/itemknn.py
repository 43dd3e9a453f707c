"""Item-based k-nearest neighbours, wrapping ``implicit``'s Cosine / BM25 item-item recommenders.

implicit computes the sparse title x title similarity (top ``K`` neighbours per title) in compiled
code; scoring a batch of readers is then one sparse product ``history @ S``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import polars as pl
import scipy.sparse as sp
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

from recsys.models.neighbourhood import NeighbourhoodRecommender

_log = logging.getLogger(__name__)


class ItemKNNRecommender(NeighbourhoodRecommender):
    """Title-title neighbourhood model.

    Args:
        K: neighbours kept per title.
        similarity: ``"cosine"`` or ``"bm25"`` (BM25-weighted readers damp very active readers).
        bm25_k1: BM25 term saturation (bm25 only).
        bm25_b: BM25 length normalisation (bm25 only).
        threads: threads for the similarity computation (0 = all cores).
    """

    name = "itemknn"

    def __init__(
        self,
        K: int = 100,  # noqa: N803 - implicit's and the literature's name
        similarity: Literal["cosine", "bm25"] = "cosine",
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        threads: int = 0,
    ) -> None:
        self.K = K
        self.similarity = similarity
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.threads = threads

    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:
        if self.similarity == "cosine":
            knn = CosineRecommender(K=self.K, num_threads=self.threads)
        elif self.similarity == "bm25":
            knn = BM25Recommender(K=self.K, K1=self.bm25_k1, B=self.bm25_b, num_threads=self.threads)
        else:
            raise ValueError(f"ItemKNNRecommender: similarity must be 'cosine' or 'bm25', got {self.similarity!r}")
        with warnings.catch_warnings():
            # implicit's own weighting returns COO and then warns about converting it to CSR.
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            knn.fit(X, show_progress=False)
        # implicit's own CSR (float64), not a float32 copy: the copy of K x n_titles entries was the
        # wrapper's only extra cost (~5 % of a fit). Saved as float32 (NeighbourhoodRecommender._state).
        self.similarity_ = knn.similarity.tocsr()
