"""Ranking metrics of the demand replay: Spearman and NDCG@k per origin, and paired bootstrap intervals.

Every metric works on whole ``(resamples, titles)`` arrays, one origin at a time. Ties in a score are
broken by a fixed random key (never by the label), so a constant score ranks titles in random order:
its NDCG is that of a random ranking and its Spearman is 0 (a constant has no correlation).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.stats import rankdata

#: Bootstrap resamples and the interval's coverage.
N_BOOT = 1000
COVERAGE = 0.95


def spearman_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of ``scores`` against the same row of ``labels`` (0 when either is constant)."""
    rs = rankdata(scores, axis=1)
    rl = rankdata(labels, axis=1)
    rs -= rs.mean(axis=1, keepdims=True)
    rl -= rl.mean(axis=1, keepdims=True)
    den = np.sqrt((rs**2).sum(axis=1) * (rl**2).sum(axis=1))
    return np.divide((rs * rl).sum(axis=1), den, out=np.zeros(len(den)), where=den > 0)


def ndcg_rows(scores: np.ndarray, labels: np.ndarray, tiebreak: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k per row with linear gains (the label: loans served), titles ordered by score then ``tiebreak``."""
    order = np.lexsort((tiebreak, -scores), axis=-1)[:, :k]
    discount = 1.0 / np.log2(np.arange(2, order.shape[1] + 2))
    dcg = (np.take_along_axis(labels, order, axis=1) * discount).sum(axis=1)
    ideal = (-np.sort(-labels, axis=1)[:, : order.shape[1]] * discount).sum(axis=1)
    return np.divide(dcg, ideal, out=np.zeros(len(dcg)), where=ideal > 0)


def _origin_draws(group: pl.DataFrame, scorers: tuple[str, ...], k: int, rng: np.random.Generator, n_boot: int):
    """``{scorer: (spearman[n_boot + 1], ndcg[n_boot + 1])}`` for one origin; row 0 is the sample itself,
    rows 1.. resample its titles with replacement (the same titles for every scorer: paired)."""
    n = group.height
    idx = np.vstack([np.arange(n), rng.integers(0, n, size=(n_boot, n))])
    tiebreak = rng.random(idx.shape)
    labels = group["label"].to_numpy()[idx]
    out = {}
    for name in scorers:
        s = group[name].to_numpy()[idx]
        out[name] = (spearman_rows(s, labels), ndcg_rows(s, labels, tiebreak, k))
    return out


def summarise(replayed: pl.DataFrame, scorers: tuple[str, ...], k: int = 20, n_boot: int = N_BOOT, seed: int = 0):
    """Per scorer: mean over origins of Spearman and NDCG@k, and the paired bootstrap interval of
    (first scorer - this scorer) for both. Returns ``(table, per_origin)`` data frames."""
    rng = np.random.default_rng(seed)
    draws, per_origin = [], []
    for (origin,), group in replayed.group_by("origin", maintain_order=True):
        d = _origin_draws(group, scorers, k, rng, n_boot)
        draws.append(d)
        per_origin += [
            {"origin": origin, "scorer": s, "titles": group.height, "spearman": d[s][0][0], "ndcg": d[s][1][0]}
            for s in scorers
        ]
    lo, hi = 100 * (1 - COVERAGE) / 2, 100 * (1 + COVERAGE) / 2
    rows = []
    for s in scorers:
        sp = np.mean([d[s][0] for d in draws], axis=0)  # mean over origins, per resample
        nd = np.mean([d[s][1] for d in draws], axis=0)
        sp_diff = np.mean([d[scorers[0]][0] for d in draws], axis=0) - sp
        nd_diff = np.mean([d[scorers[0]][1] for d in draws], axis=0) - nd
        rows.append(
            {
                "scorer": s,
                "spearman": float(sp[0]),
                "ndcg": float(nd[0]),
                "spearman_diff": float(sp_diff[0]),
                "spearman_diff_lo": float(np.percentile(sp_diff[1:], lo)),
                "spearman_diff_hi": float(np.percentile(sp_diff[1:], hi)),
                "ndcg_diff": float(nd_diff[0]),
                "ndcg_diff_lo": float(np.percentile(nd_diff[1:], lo)),
                "ndcg_diff_hi": float(np.percentile(nd_diff[1:], hi)),
            }
        )
    return pl.DataFrame(rows), pl.DataFrame(per_origin)
