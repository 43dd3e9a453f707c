"""Hybrid blend fitting: weights of the tuned EASE, RP3beta, ALS and popularity fitted on held-out readers.

The weights are searched on the validation readers and, on strong generalisation, also on the
held-out readers of internal splits of the training readers
(:func:`recsys.evaluation.protocols.internal_splits`), which then also re-choose EASE's ``lambda``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from recsys.base import top_n_dense
from recsys.evaluation.batch import metric_row, recommend_fold
from recsys.evaluation.matrices import MatrixChoice, PrunedMatrices
from recsys.evaluation.tuning import GRIDS, Candidate, fit_model, tune
from recsys.metrics import ndcg_at_k, readers_with_target
from recsys.models.ease import EASERecommender, EASESpectrum
from recsys.models.hybrid import HybridRecommender, search_weights

_log = logging.getLogger(__name__)

#: Components of the validation-blended hybrid (each with its own tuned parameters).
HYBRID_COMPONENTS: tuple[str, ...] = ("ease", "rp3beta", "als", "popular")
#: Validation readers sampled for fitting the hybrid's blend weights, and the weight grid.
HYBRID_FIT_READERS = 600
HYBRID_GRID: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)


@dataclass
class BlendResult:
    """The validation-blended hybrid of one matrix choice (:func:`tune_hybrid`)."""

    model: HybridRecommender
    choice: MatrixChoice
    #: Blend weight per component (summing to 1).
    weights: dict[str, float]
    #: Tuned parameters per component.
    components: dict[str, dict[str, Any]]
    #: Metrics of the blend on the validation readers.
    validation: dict[str, float]
    #: NDCG@10 of the blend pooled over the readers its weights were fitted on.
    pooled: float


def tune_hybrid(
    tuned: dict[str, dict[str, Candidate]],
    prepared: dict[str, PrunedMatrices],
    choices: list[MatrixChoice],
    seed: int,
    quick: bool,
    threads: int,
    titles: pl.DataFrame | None,
    inner: dict[str, list[PrunedMatrices]] | None = None,
) -> BlendResult | None:
    """Blend the tuned components that share one matrix choice; weights fitted on validation and,
    with ``inner`` (per matrix choice: the pruned :func:`internal_splits` of the training readers),
    also on their held-out readers (the components refitted on each inner split's training readers,
    EASE's lambda re-chosen on the same readers). Components missing from the run are tuned here
    first (``quick``: the first grid entry only). The matrix choice whose blend scores best on
    those readers wins."""
    for name in HYBRID_COMPONENTS:
        if name not in tuned:
            grid = GRIDS[name][:1] if quick else GRIDS[name]
            tuned[name] = tune(name, grid, prepared, choices, seed, threads, titles)
    best = None
    for choice in choices:
        comps = {n: tuned[n][choice.name] for n in HYBRID_COMPONENTS if choice.name in tuned[n]}
        if len(comps) < 2:
            continue
        data = prepared[choice.name]
        val_target = data.full.folds["validation"].target.matrix
        # The weight search ranks over the pruned columns: give it the pruned view of each target.
        # A bounded reader sample and a coarse grid keep the search to seconds (5^4 blends is minutes).
        rows = np.random.default_rng(seed).permutation(val_target.shape[0])[:HYBRID_FIT_READERS]
        inner_data = (inner or {}).get(choice.name, [])
        if inner_data and "ease" in comps and not quick:
            comps["ease"] = _pooled_ease(comps["ease"], data, rows, inner_data, threads)
        hybrid = HybridRecommender({n: c.model for n, c in comps.items()}, refit=False).fit(data.train)
        sets = [hybrid.blend_set(data.foldin["validation"][rows], val_target[rows][:, data.kept])]
        for m in inner_data:
            fitted = {n: fit_model(n, c.params, seed, threads, m, titles) for n, c in comps.items()}
            refitted = HybridRecommender(fitted, refit=False).fit(m.train)
            sets += [refitted.blend_set(m.foldin[f], m.full.folds[f].target.matrix[:, m.kept]) for f in m.foldin]
        weights, pooled, tried = search_weights(sets, list(comps), "ndcg", 10, HYBRID_GRID)
        hybrid.weights = weights
        _log.info(
            "hybrid %s: weights %s, ndcg@10 %.4f over %d held-out readers (%d sets, %d blends)",
            choice.name,
            weights,
            pooled,
            sum(s.readers for s in sets),
            len(sets),
            tried,
        )
        val = metric_row(recommend_fold(hybrid, data, "validation"), val_target)
        if best is None or pooled > best.pooled:
            params = {n: c.params for n, c in comps.items()}
            best = BlendResult(hybrid, choice, weights, params, val, pooled)
    return best


def _pooled_ease(
    cand: Candidate, data: PrunedMatrices, rows: np.ndarray, inner: list[PrunedMatrices], threads: int
) -> Candidate:
    """The hybrid's EASE component with ``lambda`` re-chosen on the same pool of held-out readers as
    the blend weights (validation ``rows`` plus the inner splits' folds) instead of validation alone:
    one spectrum per training matrix scores the whole lambda grid (:class:`EASESpectrum`)."""
    lambdas = [float(p["lambda_"]) for p in GRIDS["ease"]]
    val_target = data.full.folds["validation"].target.matrix[rows][:, data.kept]
    # per training matrix: its held-out (fold-in, target over its columns) sets
    pools = [(data.train.matrix, [(data.foldin["validation"][rows], val_target)])]
    pools += [
        (m.train.matrix, [(m.foldin[f], m.full.folds[f].target.matrix[:, m.kept]) for f in m.foldin]) for m in inner
    ]
    total = np.zeros(len(lambdas))
    readers = 0
    spectra = []
    for train, held_out in pools:
        spectra.append(EASESpectrum(train, threads))
        allowed = np.arange(train.shape[1], dtype=np.int32)
        for hist, target in held_out:
            size = readers_with_target(target)
            if not size:
                continue
            for i, (_, scores) in enumerate(spectra[-1].scores(hist, lambdas)):
                ids, _ = top_n_dense(scores, 10, hist, allowed)
                total[i] += ndcg_at_k(ids, target, 10) * size
            readers += size
    lam = lambdas[int(np.argmax(total))]
    _log.info(
        "hybrid: EASE lambda %g on %d pooled readers (validation alone chose %g)", lam, readers, cand.params["lambda_"]
    )
    if lam == cand.params["lambda_"]:
        return cand
    model = EASERecommender(lambda_=lam, threads=threads)
    model._fit_common(data.train)
    model.weights_ = spectra[0].weights(lam)
    val = metric_row(recommend_fold(model, data, "validation"), data.full.folds["validation"].target.matrix)
    return Candidate(model, cand.choice, {"lambda_": lam}, val)
