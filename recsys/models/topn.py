"""Top-n of a factor model for many readers at once, near the rate of the matrix product itself.

For each block of readers: one float32 GEMM into a reused buffer (BLAS threads), blocked titles set
to -inf, then an exact top-n by a group-max threshold instead of a full ``argpartition``: the
titles are cut into groups, the n-th largest group maximum ``t`` of a row is a lower bound of its
n-th largest score (the n largest group maxima are n distinct scores), so the row's top n lie in
the groups whose maximum is ``>= t`` - about n of them - which alone are gathered and sorted. Each pass over the block is a
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
    # Zero title rows pad the catalogue to whole groups: every block is contiguous and reshapes into
    # groups without a copy; the padding columns are set to -inf after each product.
    width = -(-n_titles // GROUP) * GROUP
    padded = np.zeros((width, items.shape[1]), dtype=np.float32)
    padded[:n_titles] = items
    items_t = padded.T
    workers = max(1, threads)
    buffers = [np.empty((BLOCK_ROWS, width), dtype=np.float32) for _ in range(workers)]
    starts = list(range(0, k, BLOCK_ROWS))

    def run(worker: int) -> None:
        buf = buffers[worker]
        for lo in starts[worker::workers]:
            hi = min(lo + BLOCK_ROWS, k)
            block = buf[: hi - lo]
            np.matmul(users[lo:hi], items_t, out=block)
            block[:, n_titles:] = -np.inf
            if blocked is not None and blocked.nnz:
                b = blocked[lo:hi]
                block[np.repeat(np.arange(hi - lo), np.diff(b.indptr)), b.indices] = -np.inf
            ids[lo:hi], scores[lo:hi] = select_top(block, n, n_titles)

    # one BLAS thread per worker: the workers are the parallelism, as in implicit's own topk
    with limit_threads(1 if workers > 1 else threads, user_api="blas"):
        if workers == 1:
            run(0)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, range(workers)))
    return ids, scores


def select_top(block: np.ndarray, n: int, n_titles: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``n`` of each row of ``block`` (-inf entries never chosen; width a multiple of
    :data:`GROUP`, columns past ``n_titles`` padding) by the group-max threshold.

    Group ``g`` holds the columns ``g, g + G, g + 2G, ...`` (``G`` = width / GROUP groups): the group
    maxima are then one element-wise maximum over GROUP contiguous slices (vectorised), and only the
    groups whose maximum reaches the threshold - about ``n`` per row - are gathered and sorted."""
    rows, width = block.shape
    m = min(n, n_titles)
    groups = width // GROUP
    if groups < 2 * m:  # too few groups for the bound to prune: plain argpartition
        return _finish(block[:, :n_titles], np.argpartition(-block[:, :n_titles], m - 1, axis=1)[:, :m], n)
    head = block.reshape(rows, GROUP, groups).max(axis=1)
    threshold = -np.partition(-head, m - 1, axis=1)[:, m - 1]
    r, g = np.nonzero(head >= threshold[:, None])  # row-major: each row's groups together
    first = np.searchsorted(r, np.arange(rows))
    slot = np.arange(r.size) - first[r]
    width_c = int(np.bincount(r, minlength=rows).max())
    # each row's candidate groups side by side in a small dense array (rows x slots*GROUP)
    cand = np.full((rows, width_c, GROUP), -np.inf, dtype=np.float32)
    cols = np.zeros((rows, width_c, GROUP), dtype=np.int32)
    cols[r, slot] = g[:, None] + groups * np.arange(GROUP, dtype=np.int32)[None, :]
    cand[r, slot] = block[r[:, None], cols[r, slot]]
    cand, cols = cand.reshape(rows, -1), cols.reshape(rows, -1)
    part = np.argpartition(-cand, m - 1, axis=1)[:, :m] if m < cand.shape[1] else np.argsort(-cand, axis=1)[:, :m]
    return _finish(cand, part, n, np.take_along_axis(cols, part, axis=1))


def _finish(
    block: np.ndarray, part: np.ndarray, n: int, columns: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sort the ``part`` positions of each row of ``block`` by score; ``columns`` maps them to title
    columns (None: they are the columns). Padded to ``n`` with -1 / -inf; -inf never chosen."""
    vals = np.take_along_axis(block, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    top = np.take_along_axis(part if columns is None else columns, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    ids = np.full((block.shape[0], n), -1, dtype=np.int32)
    out = np.full((block.shape[0], n), -np.inf, dtype=np.float32)
    m = part.shape[1]
    valid = np.isfinite(vals)
    ids[:, :m] = np.where(valid, top, -1)
    out[:, :m] = np.where(valid, vals, -np.inf)
    return ids, out
