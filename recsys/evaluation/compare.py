"""Comparing models over seeds: mean and spread per model, the validation pick, bootstrap intervals."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from recsys.evaluation.batch import METRICS
from recsys.evaluation.results import SeedResult
from recsys.evaluation.tuning import POOLED_SELECTION, SELECTION_METRIC


def summarise(results: list[SeedResult]) -> pl.DataFrame:
    """Mean and sample standard deviation (ddof=1; 0 for one seed) of every metric per model,
    computed from the per-seed values. Columns: model, kind, seeds, ``<metric>_mean``, ``<metric>_std``."""
    if not results:
        return pl.DataFrame()
    long = pl.DataFrame(
        [{"model": r.model, "kind": r.kind, "seed": r.seed, **r.metrics} for r in results],
        infer_schema_length=None,
    )
    aggs: list[pl.Expr] = [pl.col("seed").n_unique().alias("seeds")]
    for m in METRICS:
        aggs += [pl.col(m).mean().alias(f"{m}_mean"), pl.col(m).std(ddof=1).fill_null(0.0).alias(f"{m}_std")]
    order = {"yuedu": 0, "constrained": 1, "baseline": 2, "oracle": 3}
    return (
        long.group_by("model", "kind", maintain_order=True)
        .agg(aggs)
        .with_columns(pl.col("kind").replace_strict(order, default=4).alias("_o"))
        .sort("_o", maintain_order=True)
        .drop("_o")
    )


#: Reader-bootstrap resamples for the ratio intervals, and the interval's coverage.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_LEVEL = 0.95


def compare(results: list[SeedResult], seed: int = 0, same_readers: bool = False) -> dict[str, Any]:
    """The headline comparison, with the model chosen on VALIDATION (never by test scores).

    Per seed the yuedu model with the best validation NDCG@10 is the run's pick (``chosen``: its
    name per seed; on strong generalisation, where every row carries :data:`POOLED_SELECTION`, the
    best NDCG@10 pooled over the validation readers and the internal splits' held-out readers:
    ``selected_on`` says which); ``chosen_ndcg@10`` is the mean over seeds of its test NDCG@10. Ratios are of
    mean test NDCG@10 to the raw implicit ALS baseline of the run (``raw-implicit-als``, or
    ``raw-implicit-als+inputs`` when the baselines got the same extra input) and to tuned EASE, each
    with a paired reader bootstrap: the same readers are resampled for both rows within each seed
    (:data:`BOOTSTRAP_RESAMPLES`, percentile interval at :data:`BOOTSTRAP_LEVEL`), so the interval
    shows how much the figure depends on which readers happened to be held out - the seeds' standard
    deviation does not show that on temporal protocols, whose split is fixed. ``same_readers``: every
    seed evaluates the same readers in the same order (temporal protocols), so one draw of readers
    is shared by all seeds instead of one per seed.
    ``best_by_test`` names the model with the best mean test NDCG@10: for reference only."""
    yuedu = [r for r in results if r.kind == "yuedu" and SELECTION_METRIC in r.validation]
    if not yuedu:
        return {}
    seeds = sorted({r.seed for r in yuedu})
    pooled = all(POOLED_SELECTION in r.validation for r in yuedu)
    key = POOLED_SELECTION if pooled else SELECTION_METRIC
    picks = {s: max((r for r in yuedu if r.seed == s), key=lambda r: r.validation[key]) for s in seeds}
    out: dict[str, Any] = {
        "selected_on": "validation + internal splits" if pooled else "validation",
        "chosen": {str(s): picks[s].model for s in seeds},
        "chosen_ndcg@10": float(np.mean([picks[s].metrics[SELECTION_METRIC] for s in seeds])),
    }
    means: dict[str, list[float]] = {}
    for r in results:
        means.setdefault(r.model, []).append(r.metrics[SELECTION_METRIC])
    best = max((m for m in means if any(r.model == m for r in yuedu)), key=lambda m: np.mean(means[m]))
    out["best_by_test"] = {"model": best, "ndcg@10": float(np.mean(means[best]))}
    baseline = "raw-implicit-als+inputs" if "raw-implicit-als+inputs" in means else "raw-implicit-als"
    rng = np.random.default_rng(seed)
    for label, other in (("raw_als", baseline), ("ease", "ease")):
        rows = {r.seed: r for r in results if r.model == other}
        if set(rows) != set(seeds) or not np.mean([rows[s].metrics[SELECTION_METRIC] for s in seeds]):
            continue
        out[f"ratio_to_{label}"] = out["chosen_ndcg@10"] / float(
            np.mean([rows[s].metrics[SELECTION_METRIC] for s in seeds])
        )
        out[f"ratio_to_{label}_interval"] = _bootstrap_ratio(
            [picks[s].per_reader_ndcg for s in seeds], [rows[s].per_reader_ndcg for s in seeds], rng, same_readers
        )
    out["raw_als_row"] = baseline
    return out


def _bootstrap_ratio(
    chosen: list[np.ndarray | None],
    other: list[np.ndarray | None],
    rng: np.random.Generator,
    same_readers: bool = False,
) -> list[float] | None:
    """Percentile interval of mean-over-seeds(chosen) / mean-over-seeds(other) when readers are
    resampled with replacement (paired: one draw for both rows; with ``same_readers`` also one draw
    for all seeds, which must then list the same readers)."""
    if any(a is None or b is None or a.shape != b.shape for a, b in zip(chosen, other, strict=True)):
        return None
    if same_readers and len({a.shape for a in chosen}) != 1:
        raise ValueError("same_readers: the seeds' per-reader arrays differ in length")
    num = np.zeros(BOOTSTRAP_RESAMPLES)
    den = np.zeros(BOOTSTRAP_RESAMPLES)
    shared = None
    for a, b in zip(chosen, other, strict=True):
        keep = np.isfinite(a) & np.isfinite(b)  # readers with an empty target count in neither mean
        a, b = a[keep], b[keep]
        if not a.size:
            return None
        if not same_readers:
            idx = rng.integers(0, a.size, size=(BOOTSTRAP_RESAMPLES, a.size))
        else:
            if shared is None:
                shared = rng.integers(0, a.size, size=(BOOTSTRAP_RESAMPLES, a.size))
            if shared.shape[1] != a.size:
                raise ValueError("same_readers: the seeds' readers with a target differ")
            idx = shared
        num += a[idx].mean(axis=1)
        den += b[idx].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = num / den
    ratios = ratios[np.isfinite(ratios)]
    if not ratios.size:
        return None
    tail = (1.0 - BOOTSTRAP_LEVEL) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return [float(lo), float(hi)]
