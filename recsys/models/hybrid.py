"""Hybrid: a weighted blend of several models' per-reader normalised scores.

Each component's score row is min-max normalised to [0, 1] over the titles (so a model with
large raw scores cannot drown the others), then the rows are summed with the blend weights.
:meth:`HybridRecommender.fit_weights` picks weights by a small grid search on validation data.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.matrix import InteractionMatrix
from recsys.base import ModelError, Recommender, saved_file, top_n_dense
from recsys.metrics import RANKING_METRICS, readers_with_target

_log = logging.getLogger(__name__)


def minmax_rows(scores: np.ndarray) -> np.ndarray:
    """Scale each row's finite scores to [0, 1] (constant rows -> 0); non-finite -> 0."""
    finite = np.isfinite(scores)
    lo = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
    hi = np.where(finite, scores, -np.inf).max(axis=1, keepdims=True)
    span = hi - lo
    span[~np.isfinite(span) | (span <= 0)] = 1.0
    lo[~np.isfinite(lo)] = 0.0
    out = (scores - lo) / span
    out[~finite] = 0.0
    return out.astype(np.float32)


@dataclass(frozen=True)
class BlendSet:
    """Held-out readers to search blend weights on: each component's normalised scores
    (name -> readers x titles), the fold-in ``seen`` (never recommended) and the ``target``."""

    parts: dict[str, np.ndarray]
    seen: sp.csr_matrix
    target: sp.csr_matrix

    @property
    def readers(self) -> int:
        """Readers with a non-empty target (the ones a ranking metric averages over)."""
        return readers_with_target(self.target)


def search_weights(
    sets: Sequence[BlendSet],
    keys: list[str],
    metric: str | Callable[[np.ndarray, sp.csr_matrix], float] = "ndcg",
    k: int = 10,
    grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0),
) -> tuple[dict[str, float], float, int]:
    """The grid point (weights normalised to sum 1) with the best reader-weighted mean ``metric@k``
    over ``sets``; returns (weights, that mean, combinations tried)."""
    score_fn = RANKING_METRICS[metric] if isinstance(metric, str) else metric
    sizes = np.array([s.readers for s in sets], dtype=np.float64)
    if sizes.sum() == 0:
        raise ModelError("hybrid: no held-out reader has a target to fit blend weights on")
    tried: set[tuple[float, ...]] = set()
    best: tuple[float, dict[str, float]] = (-np.inf, dict.fromkeys(keys, 1.0 / len(keys)))
    for combo in itertools.product(grid, repeat=len(keys)):
        total = sum(combo)
        if total <= 0:
            continue
        norm = tuple(round(c / total, 6) for c in combo)
        if norm in tried:
            continue
        tried.add(norm)
        weights = dict(zip(keys, norm, strict=True))
        values = []
        for s, size in zip(sets, sizes, strict=True):
            if size == 0:
                values.append(0.0)
                continue
            allowed = np.arange(s.seen.shape[1], dtype=np.int32)
            recs, _ = top_n_dense(HybridRecommender._blend(s.parts, weights), k, s.seen, allowed)
            values.append(float(score_fn(recs, s.target)))
        value = float(np.dot(values, sizes) / sizes.sum())
        _log.debug("hybrid weights %s -> %s = %.4f", weights, metric, value)
        if value > best[0]:
            best = (value, weights)
    return best[1], best[0], len(tried)


class HybridRecommender(Recommender):
    """Blend of component models.

    Args:
        components: name -> model (unfitted: ``fit`` fits them; already fitted: pass
            ``refit=False``).
        weights: name -> blend weight (default: equal weights).
        refit: fit the components in :meth:`fit` (False = they are fitted already on the same
            matrix).
    """

    name = "hybrid"

    def __init__(
        self,
        components: dict[str, Recommender] | None = None,
        weights: dict[str, float] | None = None,
        refit: bool = True,
    ) -> None:
        self.components = components if components is not None else {}
        self.weights = weights
        self.refit = refit

    def get_params(self) -> dict[str, Any]:
        """Component parameters are reported as ``{name: {"model": ..., "params": ...}}``."""
        return {
            "components": {k: {"model": m.name, "params": m.get_params()} for k, m in self.components.items()},
            "weights": self._weights(),
            "refit": self.refit,
        }

    def _weights(self) -> dict[str, float]:
        if self.weights is None:
            return {k: 1.0 / max(len(self.components), 1) for k in self.components}
        unknown = set(self.weights) - set(self.components)
        if unknown:
            raise ValueError(f"hybrid: weights for unknown components {sorted(unknown)}")
        return {k: float(self.weights.get(k, 0.0)) for k in self.components}

    def fit(self, matrix: InteractionMatrix, titles: pl.DataFrame | None = None) -> HybridRecommender:
        if not self.components:
            raise ModelError("hybrid: no components given")
        self._fit_common(matrix)
        for key, model in self.components.items():
            if self.refit or not model.is_fitted:
                _log.info("hybrid: fitting component %s (%s)", key, model.name)
                model.fit(matrix, titles)
            elif len(model.titles_) < self.n_titles or not np.array_equal(
                model.titles_.ids[: self.n_titles], self.titles_.ids
            ):
                raise ModelError(f"hybrid: component {key!r} was fitted on a different title vocabulary")
        return self

    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:  # pragma: no cover - fit() overrides
        raise NotImplementedError

    def _component_scores(self, reader_rows: np.ndarray | None, history: sp.csr_matrix | None) -> dict[str, np.ndarray]:
        n = self.n_titles
        out = {}
        for key, model in self.components.items():
            hist = history
            if hist is not None and model.n_titles > n:
                # e.g. a content model whose catalogue extends the matrix titles: pad empty columns
                hist = sp.csr_matrix((hist.data, hist.indices, hist.indptr), shape=(hist.shape[0], model.n_titles))
            raw = model.score(reader_rows=reader_rows, history=hist)[:, :n]
            out[key] = minmax_rows(raw)
        return out

    @staticmethod
    def _blend(parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
        total = None
        for key, w in weights.items():
            if w == 0.0:
                continue
            total = parts[key] * np.float32(w) if total is None else total + parts[key] * np.float32(w)
        if total is None:
            total = np.zeros_like(next(iter(parts.values())))
        return total

    def _score_readers(self, reader_rows: np.ndarray) -> np.ndarray:
        return self._blend(self._component_scores(reader_rows, None), self._weights())

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self._blend(self._component_scores(None, history), self._weights())

    def blend_set(self, history: sp.csr_matrix, target: sp.csr_matrix) -> BlendSet:
        """The normalised component scores of readers with fold-in ``history`` and held-out ``target``
        (both over this model's title columns): one set the blend weights can be searched on."""
        self._check_fitted()
        hist = sp.csr_matrix(history, dtype=np.float32)
        return BlendSet(self._component_scores(None, hist), hist, sp.csr_matrix(target))

    def fit_weights(
        self,
        validation: sp.csr_matrix,
        target: sp.csr_matrix,
        metric: str | Callable[[np.ndarray, sp.csr_matrix], float] = "ndcg",
        k: int = 10,
        grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0),
    ) -> dict[str, float]:
        """Grid-search blend weights on validation readers and keep the best (several held-out sets:
        :meth:`blend_set` and :func:`search_weights`).

        Args:
            validation: fold-in history rows (k_readers x n_titles) the components score from.
            target: held-out titles of the same readers (k_readers x n_titles).
            metric: a name from :data:`recsys.metrics.RANKING_METRICS` or ``f(recs, target) -> float``.
            k: list length evaluated.
            grid: weight values tried per component (all-zero combinations skipped; weights are
                normalised to sum 1, so proportional combinations are evaluated once).

        Returns the chosen weights (also stored in ``self.weights``).
        """
        sets = [self.blend_set(validation, target)]
        self.weights, value, tried = search_weights(sets, list(self.components), metric, k, grid)
        _log.info("hybrid: best weights %s (%s@%d = %.4f, %d combinations)", self.weights, metric, k, value, tried)
        return self.weights

    # --- persistence: one sub-directory per component ------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {}

    def save(self, directory: str | Path) -> Path:
        d = super().save(directory)
        for key, model in self.components.items():
            model.save(d / "components" / key)
        return d

    def _extra_meta(self) -> dict[str, Any]:
        return {"component_dirs": {k: f"components/{k}" for k in self.components}}

    @classmethod
    def _from_saved(cls, directory: Path, meta: dict[str, Any]) -> Recommender:
        from recsys.models import load_model

        comps = {
            k: load_model(saved_file(directory, f"{rel}/model.json", k).parent)
            for k, rel in meta["extra"]["component_dirs"].items()
        }
        params = dict(meta["params"], components=comps)
        meta = dict(meta, params=params)
        return super()._from_saved(directory, meta)

    def _set_state(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        return None
