"""Top-n of a factor model for many readers at once, near the rate of the matrix product itself.

For each block of readers: one float32 GEMM into a reused buffer (BLAS threads), blocked titles set
to -inf, then an exact top-n by a group-max threshold instead of a full ``argpartition``: the
titles are cut into groups, the n-th largest group maximum ``t`` of a row is a lower bound of its
n-th largest score (the n largest group maxima are n distinct scores), so the row's top n lie among
its scores ``>= t`` - usually a few dozen - which are then sorted. Each pass over the block is a
streaming, vectorised one; blocks are split over threads (numpy releases the GIL in reductions).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from recsys.threads import limit_threads

#: Reader rows per GEMM block (a 1024 x 160k float32 block is 650 MB).
BLOCK_ROWS = 512
#: Titles per group of the threshold pass.
GROUP = 128


def top_n_factors(
    users: np.ndarray, items: np.ndarray, n: int, blocked: sp.csr_matrix | None, threads: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` titles of ``users @ items.T`` per row, skipping the ``blocked`` (k x n_titles CSR) entries.

    Returns ``(ids int32 (k x n), scores float32 (k x n))`` best first, padded with ``-1`` / ``-inf``
    when a row has fewer than ``n`` allowed titles."""
    k, n_titles = users.shape[0], items.shape[0]
    ids = np.full((k, n), -1, dtype=np.int32)
    scores = np.full((k, n), -np.inf, dtype=np.float32)
    if k == 0 or n == 0 or n_titles == 0:
        return ids, scores
    users = np.ascontiguousarray(users, dtype=np.float32)
    items_t = np.ascontiguousarray(items, dtype=np.float32).T
    workers = max(1, threads)
    buffers = [np.empty((BLOCK_ROWS, n_titles), dtype=np.float32) for _ in range(workers)]
    starts = list(range(0, k, BLOCK_ROWS))

    def run(worker: int) -> None:
        buf = buffers[worker]
        for lo in starts[worker::workers]:
            hi = min(lo + BLOCK_ROWS, k)
            block = buf[: hi - lo]
            np.matmul(users[lo:hi], items_t, out=block)
            if blocked is not None and blocked.nnz:
                b = blocked[lo:hi]
                block[np.repeat(np.arange(hi - lo), np.diff(b.indptr)), b.indices] = -np.inf
            ids[lo:hi], scores[lo:hi] = _select(block, n)

    # one BLAS thread per worker: the workers are the parallelism, as in implicit's own topk
    with limit_threads(1 if workers > 1 else threads, user_api="blas"):
        if workers == 1:
            run(0)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, range(workers)))
    return ids, scores


def _select(block: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``n`` of each row of ``block`` (-inf entries never chosen) by the group-max threshold."""
    rows, width = block.shape
    m = min(n, width)
    groups = width // GROUP
    if groups < 2 * m:  # too few groups for the bound to prune: plain argpartition
        return _finish(block, np.argpartition(-block, m - 1, axis=1)[:, :m], n)
    head = block[:, : groups * GROUP].reshape(rows, groups, GROUP).max(axis=2)
    if groups * GROUP < width:
        head = np.concatenate([head, block[:, groups * GROUP :].max(axis=1, keepdims=True)], axis=1)
    threshold = -np.partition(-head, m - 1, axis=1)[:, m - 1]
    r, c = np.nonzero(block >= threshold[:, None])
    vals = block[r, c]
    # per row, candidates by descending score: sort by (row, -score), keep the first m of each row
    order = np.lexsort((-vals, r))
    r, c, vals = r[order], c[order], vals[order]
    first = np.searchsorted(r, np.arange(rows))
    rank = np.arange(r.size) - first[r]
    keep = rank < m
    ids = np.full((rows, n), -1, dtype=np.int32)
    out = np.full((rows, n), -np.inf, dtype=np.float32)
    ids[r[keep], rank[keep]] = c[keep]
    out[r[keep], rank[keep]] = vals[keep]
    bad = ~np.isfinite(out)
    ids[bad], out[bad] = -1, -np.inf
    return ids, out


def _finish(block: np.ndarray, part: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    vals = np.take_along_axis(block, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    top, vals = np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
    ids = np.full((block.shape[0], n), -1, dtype=np.int32)
    out = np.full((block.shape[0], n), -np.inf, dtype=np.float32)
    m = part.shape[1]
    valid = np.isfinite(vals)
    ids[:, :m] = np.where(valid, top, -1)
    out[:, :m] = np.where(valid, vals, -np.inf)
    return ids, out
