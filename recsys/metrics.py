"""Offline evaluation metrics, vectorised over readers, and their one set of names.

Inputs are a recommendation matrix ``recs`` (k readers x n positions, int title columns, ``-1`` =
padding) and a CSR ``target`` (k readers x n_titles) of held-out titles for the same readers.
Accuracy metrics are computed per reader and averaged over readers with a non-empty target
(readers with nothing held out carry no signal). All values are in [0, 1] except novelty (bits).

**Names.** A reported metric is named ``<metric>@<k>`` (``ndcg@10``, ``recall@20``, ``coverage@20``)
everywhere: the :func:`evaluate` table's columns are the ``<metric>`` part, :func:`metrics_by_name`
and :func:`metric_values` give ``<metric>@<k>`` keys, the evaluation tables (``yuedu evaluate
--dataset``), the training pipeline, configs (``metrics.primary``) and reports use them, and MLflow
stores them with ``@`` spelt ``_at_`` (MLflow refuses ``@``): ``val_ndcg_at_10``, ``test_recall_at_20``.

Definitions at cut-off ``k`` (``hit_i`` = 1 if position i is a target title, ``T`` = target set):

* ``precision@k`` = sum hit / k
* ``recall@k`` = sum hit / min(k, |T|): **normalised** recall, so 1.0 is reachable for every reader
  even when |T| > k (the recall of every yuedu table, result file and MLflow run)
* ``recall_unnormalised@k`` = sum hit / |T| (the textbook recall; below 1 whenever |T| > k)
* ``ndcg@k`` = sum hit_i / log2(i + 2) over the ideal DCG of min(k, |T|) hits (binary relevance)
* ``map@k`` = sum_i precision@i * hit_i / min(k, |T|)
* ``hit_rate@k`` = 1 if any hit
* ``coverage@k`` = share of the catalogue's titles in at least one top-k list; ``gini@k`` = Gini of
  title exposure in the top k; ``novelty@k`` (bits) and ``diversity@k`` (intra-list, CLC classes)

implicit's ``ranking_metrics_at_k`` differs in two places (see ``docs/models.md``): its
"precision" is our (normalised) ``recall`` pooled over readers (sum of hits / sum of min(k, |T|))
instead of averaged per reader; its ``map`` and ``ndcg`` match ours.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
import scipy.sparse as sp

_log = logging.getLogger(__name__)


def hit_matrix(recs: np.ndarray, target: sp.csr_matrix) -> np.ndarray:
    """Bool (k x n): whether ``recs[r, i]`` is in reader r's target row. Padding (-1) is never a hit."""
    recs = np.asarray(recs)
    if recs.ndim != 2:
        raise ValueError(f"recs must be 2-D (readers x positions), got shape {recs.shape}")
    t = sp.csr_matrix(target)
    if t.shape[0] != recs.shape[0]:
        raise ValueError(f"recs has {recs.shape[0]} reader rows, target has {t.shape[0]}")
    t.sum_duplicates()  # also sorts indices, so row-major keys below are sorted
    n_titles = np.int64(t.shape[1])
    target_keys = np.repeat(np.arange(t.shape[0], dtype=np.int64), np.diff(t.indptr)) * n_titles + t.indices
    keys = np.arange(recs.shape[0], dtype=np.int64)[:, None] * n_titles + recs.astype(np.int64)
    if target_keys.size == 0:
        return np.zeros(recs.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(target_keys, keys), target_keys.size - 1)
    return (target_keys[pos] == keys) & (recs >= 0) & (recs < n_titles)


def _cut(recs: np.ndarray, k: int | None) -> np.ndarray:
    return np.asarray(recs) if k is None else np.asarray(recs)[:, :k]


def _per_reader(recs: np.ndarray, target: sp.csr_matrix, k: int | None) -> dict[str, np.ndarray]:
    """Per-reader accuracy metrics (NaN for readers with an empty target)."""
    r = _cut(recs, k)
    kk = r.shape[1]
    hits = hit_matrix(r, target)
    n_rel = np.diff(sp.csr_matrix(target).indptr).astype(np.float64)
    has = n_rel > 0
    n_hit = hits.sum(axis=1).astype(np.float64)
    denom = np.minimum(kk, n_rel)
    discount = 1.0 / np.log2(np.arange(kk) + 2.0)
    dcg = (hits * discount).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discount)])
    idcg = ideal_cum[denom.astype(np.int64)]
    prec_at_i = np.cumsum(hits, axis=1) / np.arange(1, kk + 1)
    ap = (prec_at_i * hits).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "precision": n_hit / max(kk, 1),
            "recall": n_hit / denom,
            "recall_unnormalised": n_hit / n_rel,
            "ndcg": dcg / idcg,
            "map": ap / denom,
            "hit_rate": (n_hit > 0).astype(np.float64),
        }
    for v in out.values():
        v[~has] = np.nan
    return out


def readers_with_target(target: sp.csr_matrix) -> int:
    """Readers (rows) with a non-empty target: the ones the mean ranking metrics average over."""
    return int((np.diff(sp.csr_matrix(target).indptr) > 0).sum())


def _mean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def precision_at_k(recs: np.ndarray, target: sp.csr_matrix, k: int | None = None) -> float:
    """Mean over readers of hits@k / k."""
    return _mean(_per_reader(recs, target, k)["precision"])


def recall_at_k(recs: np.ndarray, target: sp.csr_matrix, k: int | None = None) -> float:
    """``recall@k``: mean over readers of hits@k / min(k, |target|) (normalised recall)."""
    return _mean(_per_reader(recs, target, k)["recall"])


def unnormalised_recall_at_k(recs: np.ndarray, target: sp.csr_matrix, k: int | None = None) -> float:
    """``recall_unnormalised@k``: mean over readers of hits@k / |target|."""
    return _mean(_per_reader(recs, target, k)["recall_unnormalised"])


def ndcg_at_k(recs: np.ndarray, target: sp.csr_matrix, k: int | None = None) -> float:
    """Mean binary-relevance NDCG@k."""
    return _mean(_per_reader(recs, target, k)["ndcg"])


def ndcg_per_reader(recs: np.ndarray, target: sp.csr_matrix, k: int | None = None) -> np.ndarray:
    """Binary-relevance NDCG@k of each reader (NaN where the target is empty), e.g. for a bootstrap."""
    return _per_reader(recs, target, k)["ndcg"]


def map_at_k(recs: np.ndarray, target: sp.csr_matrix, k: int | None = None) -> float:
    """Mean average precision@k (normalised by min(k, |target|))."""
    return _mean(_per_reader(recs, target, k)["map"])


def hit_rate_at_k(recs: np.ndarray, target: sp.csr_matrix, k: int | None = None) -> float:
    """Share of readers with at least one hit in the top k."""
    return _mean(_per_reader(recs, target, k)["hit_rate"])


#: Ranking metrics by name: ``f(recs, target, k=None) -> float`` (``k=None``: the full list length).
RANKING_METRICS: dict[str, Callable[..., float]] = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "recall_unnormalised": unnormalised_recall_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "hit_rate": hit_rate_at_k,
}


def catalogue_coverage(recs: np.ndarray, n_titles: int, k: int | None = None) -> float:
    """Share of the catalogue's titles that appear in at least one list."""
    r = _cut(recs, k)
    valid = r[(r >= 0) & (r < n_titles)]
    return float(np.unique(valid).size / n_titles) if n_titles else float("nan")


def exposure(recs: np.ndarray, n_titles: int, k: int | None = None) -> np.ndarray:
    """How many lists each title appears in (n_titles,)."""
    r = _cut(recs, k)
    return np.bincount(r[(r >= 0) & (r < n_titles)], minlength=n_titles)


def gini_exposure(recs: np.ndarray, n_titles: int, k: int | None = None) -> float:
    """Gini coefficient of title exposure over the whole catalogue: 0 = every title shown equally,
    near 1 = a few titles take all the slots."""
    x = np.sort(exposure(recs, n_titles, k)).astype(np.float64)
    n = x.size
    total = x.sum()
    if n == 0 or total == 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def rank_biased_precision(recs: np.ndarray, target: sp.csr_matrix, p: float = 0.8, k: int | None = None) -> float:
    """Rank-biased precision (Moffat & Zobel 2008): ``(1 - p) · Σ_i hit_i · p^i`` (i from 0), the
    expected share of relevant titles seen by a reader who goes on to the next position with
    probability ``p``; in [0, 1 - p^k]. Mean over readers with a non-empty target."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"rank_biased_precision: persistence p must be in (0, 1), got {p}")
    r = _cut(recs, k)
    hits = hit_matrix(r, target)
    per = (1.0 - p) * (hits * p ** np.arange(r.shape[1])).sum(axis=1)
    has = np.diff(sp.csr_matrix(target).indptr) > 0
    return _mean(np.where(has, per, np.nan))


def serendipity(recs: np.ndarray, target: sp.csr_matrix, expected: np.ndarray, k: int | None = None) -> float:
    """Share of listed titles that are relevant (in the target) and *unexpected*: not in the
    reader's ``expected`` list (k × n', e.g. the most popular titles or a popularity model's top
    list), after Ge et al. 2010 and Kaminskas & Bridge 2016. Mean over readers with a non-empty
    target; in [0, 1]."""
    r = _cut(recs, k)
    hits = hit_matrix(r, target)
    exp = np.asarray(expected)
    if exp.shape[0] != r.shape[0]:
        raise ValueError(f"serendipity: expected has {exp.shape[0]} rows, recs {r.shape[0]}")
    width = max(int(exp.max(initial=-1)), int(r.max(initial=-1))) + 2
    rows = np.arange(r.shape[0], dtype=np.int64)[:, None] * width
    known = np.sort((rows + np.where(exp >= 0, exp, -1) + 1).ravel())
    key = (rows + r + 1).ravel()
    pos = np.minimum(np.searchsorted(known, key), known.size - 1)
    in_expected = (known[pos] == key).reshape(r.shape) if known.size else np.zeros(r.shape, bool)
    listed = np.maximum((r >= 0).sum(axis=1), 1)
    per = (hits & ~in_expected).sum(axis=1) / listed
    has = np.diff(sp.csr_matrix(target).indptr) > 0
    return _mean(np.where(has, per, np.nan))


def exposure_gini_per_title(recs: np.ndarray, n_titles: int, k: int | None = None) -> float:
    """Gini of how many lists show each title, over the whole catalogue (the library's "one copy
    shown to everyone" figure; the same number as :func:`gini_exposure`, named for the reports)."""
    return gini_exposure(recs, n_titles, k)


def borrowable_share(recs: np.ndarray, wait_days: np.ndarray, within_days: float = 7.0, k: int | None = 10) -> float:
    """Share of listed titles (over all lists) the reader can have within ``within_days`` days:
    ``wait_days`` (same shape as ``recs``) is each listed title's expected wait
    (:func:`recsys.queues.expected_wait`, ``inf`` = never). In [0, 1]; NaN when nothing is listed."""
    r = _cut(recs, k)
    w = _cut(wait_days, k)
    if r.shape != w.shape:
        raise ValueError(f"borrowable_share: recs {r.shape} and wait_days {w.shape} differ")
    listed = r >= 0
    if not listed.any():
        return float("nan")
    return float(((w <= within_days) & listed).sum() / listed.sum())


def novelty(recs: np.ndarray, popularity: np.ndarray, n_readers: int, k: int | None = None) -> float:
    """Mean self-information ``-log2 p(title)`` of recommended titles, bits; ``p`` = share of the
    ``n_readers`` training readers who borrowed the title (unborrowed titles count as 1 reader)."""
    r = _cut(recs, k)
    valid = r[(r >= 0) & (r < popularity.size)]
    if valid.size == 0:
        return float("nan")
    p = np.maximum(np.asarray(popularity, dtype=np.float64)[valid], 1.0) / max(n_readers, 1)
    return float(np.mean(-np.log2(np.minimum(p, 1.0))))


def intra_list_diversity(recs: np.ndarray, title_class: np.ndarray, k: int | None = None) -> np.ndarray:
    """Per reader: share of pairs of listed titles in different classes (e.g. CLC top classes).

    ``title_class`` is an int code per title column (see :func:`class_codes`). Lists with fewer
    than two titles get NaN.
    """
    r = _cut(recs, k)
    valid = r >= 0
    m = valid.sum(axis=1).astype(np.float64)
    codes = np.asarray(title_class)[np.where(valid, r, 0)]
    n_classes = int(codes.max()) + 1 if codes.size else 1
    rows = np.repeat(np.arange(r.shape[0]), r.shape[1])
    counts = sp.csr_matrix((valid.ravel().astype(np.float64), (rows, codes.ravel())), shape=(r.shape[0], n_classes))
    same_pairs = np.asarray(counts.multiply(counts).sum(axis=1)).ravel() - m
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 - same_pairs / (m * (m - 1))
    out[m < 2] = np.nan
    return out


def class_codes(classes: Sequence[str] | pl.Series | np.ndarray, top_only: bool = True) -> np.ndarray:
    """Int codes per title of their CLC class (top letter when ``top_only``), for diversity."""
    s = pl.Series("c", classes, dtype=pl.String).fill_null("")
    if top_only:
        s = s.str.slice(0, 1)
    return s.rank("dense").cast(pl.Int64).to_numpy() - 1


def evaluate(
    recs: np.ndarray,
    target: sp.csr_matrix,
    ks: Sequence[int] = (10,),
    segments: np.ndarray | pl.Series | None = None,
    popularity: np.ndarray | None = None,
    n_readers: int | None = None,
    title_class: np.ndarray | None = None,
) -> pl.DataFrame:
    """A metrics table: one row per (segment, k), overall rows under segment ``"all"``.

    Args:
        recs: k readers x n positions of title columns (-1 padding).
        target: held-out titles (k readers x n_titles).
        ks: cut-offs (each <= n positions).
        segments: label per reader row (age band, district, activity level...) for per-segment rows.
        popularity: readers per title in training (enables ``novelty``).
        n_readers: training readers for novelty (default: number of rows of ``recs``).
        title_class: int class code per title (enables ``diversity``).

    Columns: segment, k, readers (with a non-empty target), precision, recall (normalised),
    recall_unnormalised, ndcg, map, hit_rate, coverage, gini, [novelty], [diversity].
    """
    target = sp.csr_matrix(target)
    n_titles = target.shape[1]
    labels = (
        pl.Series("segment", ["all"] * recs.shape[0])
        if segments is None
        else pl.Series("segment", segments, dtype=pl.String).fill_null("unknown")
    )
    if len(labels) != recs.shape[0]:
        raise ValueError(f"segments has {len(labels)} labels, recs has {recs.shape[0]} readers")
    groups = [("all", np.ones(recs.shape[0], dtype=bool))]
    if segments is not None:
        groups += [(str(g), (labels == g).to_numpy()) for g in labels.unique().sort().to_list()]
    rows = []
    for k in ks:
        if k > recs.shape[1]:
            raise ValueError(f"k={k} exceeds the list length {recs.shape[1]}")
        per = _per_reader(recs, target, k)
        div = intra_list_diversity(recs, title_class, k) if title_class is not None else None
        for name, mask in groups:
            row: dict[str, object] = {
                "segment": name,
                "k": k,
                "readers": int((np.diff(target.indptr)[mask] > 0).sum()),
            }
            for metric, values in per.items():
                row[metric] = _mean(values[mask])
            row["coverage"] = catalogue_coverage(recs[mask], n_titles, k)
            row["gini"] = gini_exposure(recs[mask], n_titles, k)
            if popularity is not None:
                row["novelty"] = novelty(recs[mask], popularity, n_readers or recs.shape[0], k)
            if div is not None:
                row["diversity"] = _mean(div[mask])
            rows.append(row)
    return pl.DataFrame(rows)


#: Every ``<metric>`` part of a ``<metric>@<k>`` name: the ranking metrics, then the list metrics.
METRIC_NAMES: tuple[str, ...] = (*RANKING_METRICS, "coverage", "gini", "novelty", "diversity")
#: Names used before one name per metric (0.x): the old name -> the name it is now.
RENAMED_METRICS: dict[str, str] = {"nrecall": "recall", "norm_recall": "recall"}


def parse_metric_name(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; :class:`ValueError` naming the known metrics (and the new
    name of a renamed one) otherwise."""
    metric, _, k = name.partition("@")
    if metric in RENAMED_METRICS:
        raise ValueError(f"metric '{metric}' is now called '{RENAMED_METRICS[metric]}' ({name!r})")
    if metric not in METRIC_NAMES or not k.isdigit() or int(k) <= 0:
        raise ValueError(f"metric name {name!r} must look like <metric>@<k>, <metric> one of {list(METRIC_NAMES)}")
    return metric, int(k)


def metric_values(recs: np.ndarray, target: sp.csr_matrix, names: Sequence[str]) -> dict[str, float]:
    """``{name: value}`` of ``<metric>@<k>`` names over all readers of ``recs``: the ranking metrics
    and ``coverage`` (the per-call figures of :func:`evaluate`'s ``all`` rows)."""
    out = {}
    for name in names:
        metric, k = parse_metric_name(name)
        if metric == "coverage":
            out[name] = catalogue_coverage(recs, target.shape[1], k)
        elif metric in RANKING_METRICS:
            out[name] = RANKING_METRICS[metric](recs, target, k)
        else:
            raise ValueError(f"metric_values: {metric!r} needs more than recs and target; use evaluate()")
    return out


def metrics_by_name(table: pl.DataFrame, segment: str = "all") -> dict[str, float]:
    """``{"ndcg@10": ..., "coverage@10": ..., "readers": ...}`` for one segment of an :func:`evaluate`
    table (NaN cells kept, missing ones left out)."""
    out: dict[str, float] = {}
    for row in table.filter(pl.col("segment") == segment).iter_rows(named=True):
        k = row["k"]
        for name, value in row.items():
            if name in ("segment", "k") or value is None:
                continue
            if name == "readers":
                out["readers"] = float(value)
                continue
            out[f"{name}@{k}"] = float(value)
    return out
