"""Training: yuedu's ALS, BPR and item-kNN fits vs raw ``implicit`` on the same CSR; EASE vs numpy.

Both sides get the same matrix, hyper-parameters, seed and thread count; the raw side is what a
user of ``implicit`` would write (``model.fit(X)``; for ALS under a single-threaded BLAS, as
implicit itself advises). The goal is that the wrapper adds at most 5 % (ratio <= 1.05). EASE is
compared with the reference numpy recipe (dense Gram, ``np.linalg.inv``, column scaling) on the
same float32 Gram matrix.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.nearest_neighbours import CosineRecommender
from threadpoolctl import threadpool_limits

from benchmarks.data import city_dir, interactions, movielens
from benchmarks.harness import BenchContext, Goal, PeakRSS, Row, time_pair
from features.matrix import InteractionMatrix, build_matrix
from features.vocab import Vocabulary
from recsys.models import ALSRecommender, BPRRecommender, EASERecommender, ItemKNNRecommender

_log = logging.getLogger(__name__)

#: Interleaved (yuedu, raw) fit pairs, order alternating; best of each side. A city fit takes 5-8 s
#: on the shared 2-core machine, and the same raw call varies by up to 30 % back to back, so one pair
#: (which also always timed the wrapper cold: 1.06-1.15x for the same work) cannot resolve a 5 % goal.
#: ``--quick``: one.
FIT_PAIRS = 5
#: The wrapper may cost at most 5 % over raw implicit (issue 7).
WRAPPER_GOAL = Goal("<=", 1.05, "x raw implicit")


def city_matrix(ctx: BenchContext) -> InteractionMatrix:
    """The city's default-weighted matrix, built once per run."""
    return ctx.remember(
        "city_matrix", lambda: build_matrix(ctx.remember("city_events", lambda: interactions(city_dir(ctx))))
    )


def als_params(ctx: BenchContext) -> dict:
    return {"factors": 64, "regularization": 0.05, "alpha": 10.0, "iterations": 3 if ctx.quick else 5, "seed": 0}


def _raw_als(X: sp.csr_matrix, p: dict, threads: int) -> AlternatingLeastSquares:
    with threadpool_limits(1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=p["factors"],
            regularization=p["regularization"],
            alpha=p["alpha"],
            iterations=p["iterations"],
            random_state=p["seed"],
            num_threads=threads,
        )
        model.fit(X, show_progress=False)
    return model


def run(ctx: BenchContext) -> Iterator[Row]:
    m = city_matrix(ctx)
    X = m.matrix
    t = ctx.threads
    als = als_params(ctx)
    bpr = {
        "factors": 64,
        "learning_rate": 0.05,
        "regularization": 0.01,
        "iterations": 3 if ctx.quick else 5,
        "seed": 0,
    }
    knn_k = 100

    def raw_bpr() -> None:
        BayesianPersonalizedRanking(
            factors=bpr["factors"],
            learning_rate=bpr["learning_rate"],
            regularization=bpr["regularization"],
            iterations=bpr["iterations"],
            random_state=bpr["seed"],
            num_threads=t,
        ).fit(X, show_progress=False)

    def raw_knn() -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            CosineRecommender(K=knn_k, num_threads=t).fit(X, show_progress=False)

    fitted: dict = {}
    cases = (
        ("ALS", lambda: ALSRecommender(**als, threads=t), lambda: _raw_als(X, als, t), als),
        ("BPR", lambda: BPRRecommender(**bpr, threads=t), raw_bpr, bpr),
        ("item-kNN (cosine)", lambda: ItemKNNRecommender(K=knn_k, threads=t), raw_knn, {"K": knn_k}),
    )
    for label, make, raw, params in cases:

        def ours(make=make, label=label) -> None:
            fitted[label] = make().fit(m)

        rss = PeakRSS()
        pairs = 1 if ctx.quick else FIT_PAIRS
        t_ours, t_raw = time_pair(ours, raw, pairs, sampler=rss)
        yield (
            Row(
                bench="training",
                name=f"{label} fit: seconds",
                value=t_ours,
                unit="s",
                peer="raw implicit, same CSR/params/threads",
                peer_value=t_raw,
                goal=WRAPPER_GOAL,
                goal_on="ratio",
                peak_rss_mb=rss.peak_mb,
                extra={"shape": list(X.shape), "nnz": int(X.nnz), "params": params, "threads": t, "pairs": pairs},
            )
        )
    ctx.memo["city_als"] = fitted["ALS"]
    yield (_ease(ctx))


#: Titles kept for EASE when MovieLens is absent (a dense titles x titles model: 8k titles = 256 MB).
EASE_TITLES = 8_000


def most_borrowed(m: InteractionMatrix, n_titles: int) -> InteractionMatrix:
    """The matrix restricted to its ``n_titles`` titles with the most readers (column order kept)."""
    readers_per_title = np.bincount(m.matrix.indices, minlength=m.shape[1])
    if n_titles >= m.shape[1]:
        return m
    keep = np.sort(np.argpartition(-readers_per_title, n_titles - 1)[:n_titles])
    titles = Vocabulary(m.titles.ids[keep], m.titles.name)
    return InteractionMatrix(m.matrix[:, keep].tocsr(), m.readers, titles)


def _ease(ctx: BenchContext) -> Row:
    """EASE fit vs the numpy reference recipe on the same matrix (MovieLens; small city when quick)."""
    public = None if ctx.quick else movielens()
    if public is not None:
        m, data_name = build_matrix(public.frame), public.name
    else:
        m, data_name = most_borrowed(city_matrix(ctx), EASE_TITLES), f"synthetic city, {EASE_TITLES:,} most-read titles"
    X = m.matrix
    lam = 200.0

    def ours() -> None:
        EASERecommender(lambda_=lam, threads=ctx.threads).fit(m)

    def reference() -> None:
        with threadpool_limits(ctx.threads, user_api="blas"):
            G = (X.T @ X).toarray().astype(np.float32)
            G[np.diag_indices_from(G)] += lam
            P = np.linalg.inv(G)
            B = P / (-np.diag(P))
            B[np.diag_indices_from(B)] = 0.0

    rss = PeakRSS()
    t_ours, t_ref = time_pair(ours, reference, ctx.repeats, sampler=rss)
    return Row(
        bench="training",
        name=f"EASE fit ({data_name}): seconds",
        value=t_ours,
        unit="s",
        peer="numpy reference: dense Gram + np.linalg.inv + scaling (float32)",
        peer_value=t_ref,
        peak_rss_mb=rss.peak_mb,
        extra={"shape": list(X.shape), "nnz": int(X.nnz), "lambda": lam},
    )
