"""Shared machinery of the matrix-factorisation models (ALS, BPR) that wrap ``implicit``.

The wrapper's job is to add nothing measurable: the training CSR is handed to implicit once, and
top-n lists come from implicit's own multi-threaded ``topk`` kernel (the one its ``recommend`` uses),
with seen / blocked titles passed as its per-query filter matrix and candidates as a factor subset.
"""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from typing import Any

import numpy as np
import scipy.sparse as sp
from implicit.cpu.topk import topk

from recsys.base import Recommender
from recsys.models.topn import top_n_factors
from recsys.threads import limit_threads

_log = logging.getLogger(__name__)

#: implicit's topk marks filtered entries with -FLT_MAX.
_FILTERED = -np.finfo(np.float32).max
#: Reader batches up to this size are scored single-threaded.
SMALL_BATCH = 16
#: Reader batches from this size on use the batch kernel (:func:`recsys.models.topn.top_n_factors`):
#: ~1.4x implicit's topk rate on a city catalogue; below it implicit's per-query kernel wins.
BATCH_KERNEL_MIN = 256


def gpu_available() -> bool:
    """Whether implicit was built with CUDA and a GPU is visible (never required)."""
    try:
        import implicit.gpu

        return bool(implicit.gpu.HAS_CUDA)
    except Exception:  # noqa: BLE001 - any import/driver problem means "no GPU"
        return False


class FactorizationRecommender(Recommender):
    """Base for models with reader factors ``user_factors_`` and title factors ``item_factors_``
    (float32); score = reader factors . title factors."""

    threads: int
    user_factors_: np.ndarray
    item_factors_: np.ndarray

    @abstractmethod
    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """Reader factors (k x f) computed from history rows without retraining."""

    def _threads_for(self, k: int) -> int | None:
        """Threads for a call over ``k`` readers: one for a handful (waking a thread pool costs more than
        the work of a single reader, and a loaded machine makes it milliseconds), else the configured count
        (0 = all cores)."""
        return 1 if k <= SMALL_BATCH else (self.threads or None)

    def _score_readers(self, reader_rows: np.ndarray) -> np.ndarray:
        with limit_threads(self._threads_for(len(reader_rows)), user_api="blas"):
            return self.user_factors_[reader_rows] @ self.item_factors_.T

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        with limit_threads(self._threads_for(history.shape[0]), user_api="blas"):
            return self._fold_in(history) @ self.item_factors_.T

    def _top_n(
        self,
        reader_rows: np.ndarray | None,
        history: sp.csr_matrix,
        n: int,
        blocked: sp.csr_matrix,
        allowed: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        k = len(reader_rows) if reader_rows is not None else history.shape[0]
        with limit_threads(self._threads_for(k), user_api="blas"):
            users = self.user_factors_[reader_rows] if reader_rows is not None else self._fold_in(history)
        items = self.item_factors_
        n_items = items.shape[0]
        full = allowed.size == n_items
        if not full and allowed.size >= n_items // 2:
            # Most titles allowed (the usual case: a few withdrawn or blocklisted): block the few others per
            # reader instead of copying the allowed rows of the factor matrix on every call.
            mask = np.ones(n_items, dtype=bool)
            mask[allowed] = False
            others = np.flatnonzero(mask).astype(blocked.indices.dtype if blocked.nnz else np.int32)
            extra = sp.csr_matrix(
                (np.ones(k * others.size, np.float32), np.tile(others, k), np.arange(k + 1) * others.size),
                shape=(k, n_items),
            )
            blocked = sp.csr_matrix(blocked + extra)
            full = True
        if not full:
            items = np.ascontiguousarray(items[allowed])
            blocked = _remap_columns(blocked, allowed)
        if k >= BATCH_KERNEL_MIN:
            # nightly lists, evaluation: blocked GEMM + threshold selection (recsys.models.topn)
            ids, scores = top_n_factors(users, items, n, blocked, self.threads or os.cpu_count() or 1)
            if not full:
                ids = np.where(ids >= 0, allowed[np.maximum(ids, 0)], -1).astype(np.int32)
            return ids, scores
        return self._topk(items, users, n, blocked, None if full else allowed)

    def _topk(
        self, items: np.ndarray, queries: np.ndarray, n: int, blocked: sp.csr_matrix, columns: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """implicit's ``topk`` of ``queries @ items.T`` with ``blocked`` (k x len(items)) filtered out, as
        (ids int32 (k x n), scores float32) padded with -1 / -inf; ``columns`` maps item rows to title
        columns (None: they are the title columns)."""
        k = queries.shape[0]
        m = min(n, items.shape[0])
        ids, scores = topk(
            items,
            np.ascontiguousarray(queries, dtype=items.dtype),
            m,
            filter_query_items=blocked if blocked.nnz else None,
            num_threads=self._threads_for(k) or 0,
        )
        valid = scores > _FILTERED
        out_ids = np.full((k, n), -1, dtype=np.int32)
        out_scores = np.full((k, n), -np.inf, dtype=np.float32)
        mapped = ids if columns is None else columns[ids]
        out_ids[:, :m] = np.where(valid, mapped, -1)
        out_scores[:, :m] = np.where(valid, scores, -np.inf)
        return out_ids, out_scores

    def _unit_item_factors(self) -> np.ndarray:
        """Title factors scaled to unit length (zero rows stay zero), computed once per factor matrix:
        the norms of every title cost ~15 ms on a city catalogue, too much for each explanation."""
        cached = getattr(self, "_unit_items", None)
        if cached is None or cached[0] is not self.item_factors_:
            norms = np.linalg.norm(self.item_factors_, axis=1)
            norms[norms == 0] = 1e-10
            cached = (self.item_factors_, (self.item_factors_ / norms[:, None]).astype(np.float32))
            self._unit_items = cached
        return cached[1]

    def _similar_scores(self, title_rows: np.ndarray) -> np.ndarray:
        """Cosine similarity of title factors (k x n_titles)."""
        unit = self._unit_item_factors()
        with limit_threads(self._threads_for(len(title_rows)), user_api="blas"):
            return unit[title_rows] @ unit.T

    def _similar_top(self, rows: np.ndarray, n: int, itself: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        # The same cosine top-n through implicit's topk: no dense k x n_titles block to sort.
        unit = self._unit_item_factors()
        return self._topk(unit, unit[rows], n, itself, None)

    def _state(self) -> dict[str, Any]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}


def _remap_columns(blocked: sp.csr_matrix, allowed: np.ndarray) -> sp.csr_matrix:
    """Restrict a k x n_titles CSR to the sorted ``allowed`` columns, renumbered 0..len(allowed)-1."""
    coo = blocked.tocoo()
    pos = np.minimum(np.searchsorted(allowed, coo.col), allowed.size - 1)
    keep = allowed[pos] == coo.col
    return sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], pos[keep])), shape=(blocked.shape[0], allowed.size), dtype=np.float32
    )
