"""Evaluation at the city's real scale (``yuedu evaluate --dataset city --profile city``).

The study of :mod:`~recsys.evaluation.study` with what fits 2 cores and a city catalogue: the
models whose training state is not dense titles x titles (:data:`SCALE_MODELS`; dense EASE needs
~100 GB there, SANSA is its sparse stand-in), a small validation grid per model
(:data:`SCALE_GRIDS`), the binary matrix only, and per model the wall time and the peak resident
memory of its final fit (:class:`PeakMemory`). The second peer - a tuned model of another
maintained toolkit, Cornac's BPR, on the same splits and metric code - is :func:`cornac_peer_rows`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import psutil
import scipy.sparse as sp

from features.matrix import InteractionMatrix
from features.splits import FoldMatrices, SplitMatrices
from features.vocab import Vocabulary
from recsys.base import top_n_dense
from recsys.evaluation.batch import LIST_LENGTH, metric_row
from recsys.evaluation.matrices import PrunedMatrices
from recsys.evaluation.results import SeedResult, scored

_log = logging.getLogger(__name__)

#: Models of a city-scale run (dense EASE does not fit; the hybrid's blend search costs one scoring
#: of every validation reader per weight vector, hours at this size).
SCALE_MODELS: tuple[str, ...] = ("popular", "itemknn", "als", "sansa")
#: Matrix choices of a city-scale run (each one multiplies every fit).
SCALE_CHOICES: tuple[str, ...] = ("binary",)
#: Validation grids at city scale: a few points around what the small city and the papers choose.
#: ALS follows Rendle et al. 2022's advice (more factors and epochs, a stronger penalty).
SCALE_GRIDS: dict[str, list[dict[str, Any]]] = {
    "popular": [{"count": "readers"}],
    "itemknn": [{"K": 100, "similarity": "bm25"}],
    "als": [
        {"factors": 128, "regularization": 1.0, "alpha": 5.0, "iterations": 20},
        {"factors": 64, "regularization": 0.1, "alpha": 2.0, "iterations": 15},
    ],
    "ials": [{"factors": 64, "regularization": 0.003, "alpha0": 0.1, "nu": 1.0, "iterations": 8}],
    # The ICF factorizer scales the Gram matrix to unit-order columns first: lambda is relative to that
    # (the package's examples use 20).
    "sansa": [
        {"lambda_": 20.0, "density": 2e-4, "factorizer": "icf"},
        {"lambda_": 5.0, "density": 2e-4, "factorizer": "icf"},
    ],
    "rp3beta": [{"alpha": 0.6, "beta": 0.3, "K": 200}],
}
#: The Cornac peer's validation grid (its BPR: factors ``k``, ``learning_rate``, ``lambda_reg``).
CORNAC_GRID: list[dict[str, Any]] = [
    {"k": 128, "max_iter": 30, "learning_rate": 0.05, "lambda_reg": 0.001},
    {"k": 64, "max_iter": 30, "learning_rate": 0.05, "lambda_reg": 0.01},
]


class PeakMemory:
    """Peak resident memory (bytes) of this process while the ``with`` block runs, sampled every
    ``interval`` seconds by a background thread (BLAS / OpenMP allocations included, which
    ``tracemalloc`` cannot see)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self.start = 0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = psutil.Process().memory_info().rss
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, psutil.Process().memory_info().rss)
        self.seconds = time.perf_counter() - self._t0

    def cost(self) -> dict[str, float]:
        """``fit_seconds``, ``peak_rss_gb`` (the whole process) and ``fit_extra_gb`` (above its start)."""
        return {
            "fit_seconds": round(self.seconds, 2),
            "peak_rss_gb": round(self.peak / 1e9, 3),
            "fit_extra_gb": round((self.peak - self.start) / 1e9, 3),
        }


def _cornac_fit(train: sp.csr_matrix, params: dict[str, Any], seed: int, threads: int):
    """Cornac's BPR fitted on the binary ``train`` matrix, as a Cornac user would: a
    ``cornac.data.Dataset`` of (reader, title, 1) triples, then ``fit``."""
    from cornac.data import Dataset
    from cornac.models import BPR

    coo = train.tocoo()
    uid = {str(i): i for i in range(train.shape[0])}
    iid = {str(i): i for i in range(train.shape[1])}
    ds = Dataset(
        train.shape[0],
        train.shape[1],
        uid,
        iid,
        (coo.row.astype(np.int64), coo.col.astype(np.int64), np.ones(coo.nnz, dtype=np.float64)),
        seed=seed,
    )
    model = BPR(**params, seed=seed, num_threads=threads, verbose=False)
    return model.fit(ds)


def _cornac_recommend(model, rows: np.ndarray, seen: sp.csr_matrix) -> np.ndarray:
    """Top :data:`LIST_LENGTH` of Cornac BPR's own score (reader factors . title factors + title
    bias) for trained reader ``rows``, seen titles skipped, in blocks of readers."""
    U = np.asarray(model.u_factors, dtype=np.float32)
    V = np.asarray(model.i_factors, dtype=np.float32)
    bias = np.asarray(model.i_biases, dtype=np.float32) if model.use_bias else np.zeros(V.shape[0], np.float32)
    allowed = np.arange(V.shape[0], dtype=np.int32)
    out = np.empty((rows.size, LIST_LENGTH), dtype=np.int32)
    for lo in range(0, rows.size, 2048):
        hi = min(lo + 2048, rows.size)
        scores = U[rows[lo:hi]] @ V.T + bias
        out[lo:hi], _ = top_n_dense(scores, LIST_LENGTH, seen[lo:hi], allowed)
    return out


def _known_rows(data: PrunedMatrices, fold: str) -> np.ndarray:
    """Training rows of the fold's readers (-1: not in training; the temporal protocol has none)."""
    ids = data.full.folds[fold].foldin.readers.ids
    return np.asarray(data.train.readers.index(ids), dtype=np.int64)


def cornac_peer_rows(
    testing: PrunedMatrices, prepared: PrunedMatrices, seed: int, threads: int, target: sp.csr_matrix
) -> list[SeedResult]:
    """The ``cornac-bpr`` peer row: Cornac's BPR tuned on VALIDATION over :data:`CORNAC_GRID`
    (``prepared``), the best refitted on ``testing`` and scored once on test. Readers without a
    training row (none under the temporal protocol) get the training popularity."""
    t0 = time.perf_counter()
    best: tuple[float, dict[str, Any]] | None = None
    for params in CORNAC_GRID:
        model = _cornac_fit(prepared.train.matrix, params, seed, threads)
        val = metric_row(_peer_lists(model, prepared, "validation"), prepared.full.folds["validation"].target.matrix)
        _log.info("cornac-bpr %s: validation ndcg@10 %.4f", params, val["ndcg@10"])
        if best is None or val["ndcg@10"] > best[0]:
            best = (val["ndcg@10"], params)
    assert best is not None
    with PeakMemory() as mem:
        model = _cornac_fit(testing.train.matrix, best[1], seed, threads)
    recs = _peer_lists(model, testing, "test")
    row = scored(seed, "cornac-bpr", "peer", recs, target, {"ndcg@10": best[0]}, dict(best[1]))
    row.seconds = time.perf_counter() - t0
    row.cost = mem.cost()
    _log.info("cornac-bpr: test %s, cost %s, params %s", row.metrics, row.cost, best[1])
    return [row]


def _peer_lists(model, data: PrunedMatrices, fold: str) -> np.ndarray:
    rows = _known_rows(data, fold)
    seen = data.foldin[fold]
    known = rows >= 0
    lists = np.full((rows.size, LIST_LENGTH), -1, dtype=np.int32)
    if known.any():
        lists[known] = _cornac_recommend(model, rows[known], seen[np.flatnonzero(known)])
    if (~known).any():
        pop = np.bincount(data.train.matrix.indices, minlength=data.train.shape[1]).astype(np.float32)
        cold = np.flatnonzero(~known)
        scores = np.broadcast_to(pop, (cold.size, pop.size))
        lists[cold], _ = top_n_dense(scores, LIST_LENGTH, seen[cold], np.arange(pop.size, dtype=np.int32))
    return data.full_columns(lists)


def sample_fold(data: PrunedMatrices, fold: str, limit: int | None, seed: int) -> PrunedMatrices:
    """``data`` with ``fold`` restricted to a seeded random sample of at most ``limit`` readers (kept in
    their order; the same sample for every matrix choice of a seed); ``data`` itself when it is small
    enough or ``limit`` is None. Scoring cost is linear in readers: a city's 150k readers per fold
    take minutes per model and grid point on 2 cores."""
    target_fold = data.full.folds[fold]
    n = target_fold.foldin.shape[0]
    if limit is None or n <= limit:
        return data
    rows = np.sort(np.random.default_rng([seed, n]).choice(n, size=limit, replace=False))
    readers = Vocabulary(target_fold.foldin.readers.series.gather(rows), target_fold.foldin.readers.name)

    def cut(m: InteractionMatrix) -> InteractionMatrix:
        return InteractionMatrix(m.matrix[rows], readers, m.titles, dict(m.meta, sampled_readers=int(limit)))

    folds = dict(data.full.folds)
    folds[fold] = FoldMatrices(cut(target_fold.foldin), cut(target_fold.target))
    foldin = dict(data.foldin)
    foldin[fold] = data.foldin[fold][rows]
    return PrunedMatrices(data.train, foldin, data.kept, SplitMatrices(data.full.train, folds))


#: Readers scored per fold at city scale (validation, test): seeded samples of ~145k and ~150k.
SCALE_READERS: tuple[int, int] = (20_000, 50_000)


def scale_config(config):
    """``config`` (a :class:`~recsys.evaluation.study.RunConfig`) as a city-scale run: the scale grids
    and matrix choice, sampled fold readers, no filter / promotion rows (their context build per reader
    is the service's, minutes per 10k readers), the Cornac peer when Cornac is installed."""
    import dataclasses
    import importlib.util

    return dataclasses.replace(
        config,
        grids=SCALE_GRIDS,
        choices=SCALE_CHOICES,
        max_readers=SCALE_READERS,
        constrained=False,
        peer=importlib.util.find_spec("cornac") is not None,
    )
