"""The one protocol every recommendation model follows.

A :class:`Recommender` is a scikit-learn style estimator over a reader x title
:class:`~features.matrix.InteractionMatrix`:

* ``__init__`` stores hyper-parameters only (``get_params`` / ``set_params``);
* ``fit`` learns state into attributes ending in ``_`` (``readers_``, ``titles_``, ``user_items_``,
  ``popularity_`` and each model's own arrays) and returns ``self``;
* ``score`` / ``recommend`` / ``recalculate`` / ``similar`` are batched over arrays of reader rows
  (or history rows for readers the model never saw) and return ``(title_rows, scores)`` arrays;
* ``save`` writes a versioned directory of ``.npy`` / ``.npz`` arrays, vocabularies as Parquet and a
  ``model.json``; :func:`recsys.models.load_model` reads it back without pickle or training data.

Filtering is shared by every model: seen titles, per-reader blocked titles (CSR) and globally
blocked titles are removed *before* the top-n cut, so each reader gets exactly ``n`` results when
at least ``n`` allowed titles exist; shorter lists are padded with title row ``-1`` and score
``-inf``. Readers with an empty history (cold start) get the training popularity ranking.
"""

from __future__ import annotations

import inspect
import json
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.matrix import InteractionMatrix
from features.vocab import Vocabulary

_log = logging.getLogger(__name__)

#: Version of the on-disk model directory layout written by :meth:`Recommender.save`.
MODEL_FORMAT_VERSION = 1
#: Readers scored per dense block when a model materialises scores (bounds memory: rows x titles x 4 B).
SCORE_BLOCK_ROWS = 1024


class ModelError(Exception):
    """Base class for recommendation model errors."""


class NotFittedError(ModelError):
    """A model was used before ``fit`` (or ``load``)."""


class ModelFormatError(ModelError):
    """A saved model directory is missing, corrupt or of an unsupported version."""


class Recommender(ABC):
    """Abstract recommender: hyper-parameters in ``__init__``, learned state in ``*_`` attributes.

    Subclasses implement :meth:`_fit`, :meth:`_score_readers`, :meth:`_score_history`,
    :meth:`_state` and :meth:`_set_state`; they may override :meth:`_top_n` (a faster top-n kernel,
    e.g. implicit's) and :meth:`_similar_scores`.
    """

    #: Registry name (``recsys.models.MODELS`` key).
    name: ClassVar[str] = "base"

    readers_: Vocabulary
    titles_: Vocabulary
    user_items_: sp.csr_matrix
    popularity_: np.ndarray

    # --- parameters ------------------------------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as passed to ``__init__`` (JSON-serialisable for every built-in model)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Recommender:
        """Set hyper-parameters; unknown names raise ``ValueError``. Returns ``self``."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"{type(self).__name__}: unknown parameter {key!r} (valid: {sorted(valid)})")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # --- fitting ---------------------------------------------------------------------------------

    def fit(self, matrix: InteractionMatrix, titles: pl.DataFrame | None = None) -> Recommender:
        """Learn from a reader x title matrix; ``titles`` is the catalogue (schema ``titles``), used
        by content-based models and ignored by the others. Returns ``self``."""
        self._fit_common(matrix)
        _log.info("fitting %s on %d readers x %d titles (%d nnz)", self.name, *matrix.shape, matrix.nnz)
        self._fit(matrix.matrix, titles)
        return self

    def _fit_common(self, matrix: InteractionMatrix) -> None:
        if not isinstance(matrix, InteractionMatrix):
            raise TypeError(f"{type(self).__name__}.fit expects an InteractionMatrix, got {type(matrix)}")
        self.readers_ = matrix.readers
        self.titles_ = matrix.titles
        self.user_items_ = matrix.matrix
        # Readers per title: the cold-start ranking every model falls back on.
        self.popularity_ = np.bincount(matrix.matrix.indices, minlength=matrix.shape[1]).astype(np.float32)

    @abstractmethod
    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:
        """Learn model state from the float32 CSR training matrix ``X`` (readers x titles)."""

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "user_items_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load_model() first")

    @property
    def n_titles(self) -> int:
        self._check_fitted()
        return len(self.titles_)

    # --- scoring ---------------------------------------------------------------------------------

    @abstractmethod
    def _score_readers(self, reader_rows: np.ndarray) -> np.ndarray:
        """Dense float32 scores (k x n_titles) for known reader rows."""

    @abstractmethod
    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Dense float32 scores (k x n_titles) for readers described only by history rows (fold-in)."""

    def score(self, reader_rows: np.ndarray | None = None, history: sp.csr_matrix | None = None) -> np.ndarray:
        """Dense float32 scores (k x n_titles), higher = better.

        Give known ``reader_rows`` (training matrix rows) or ``history`` rows (k x n_titles CSR) for
        readers described by their interactions (new loans, unknown readers). Rows with an empty
        history get the training popularity (readers per title) as scores.
        """
        self._check_fitted()
        rows, hist = self._resolve(reader_rows, history)
        cold = np.diff(hist.indptr) == 0
        out = np.empty((hist.shape[0], self.n_titles), dtype=np.float32)
        for start in range(0, hist.shape[0], SCORE_BLOCK_ROWS):
            stop = min(start + SCORE_BLOCK_ROWS, hist.shape[0])
            block = self._score_history(hist[start:stop]) if rows is None else self._score_readers(rows[start:stop])
            out[start:stop] = block
        if cold.any():
            out[cold] = self.popularity_
        return out

    def _resolve(
        self, reader_rows: np.ndarray | None, history: sp.csr_matrix | None
    ) -> tuple[np.ndarray | None, sp.csr_matrix]:
        """Validate inputs; return (reader rows or None, the history CSR used for seen-filtering)."""
        if (reader_rows is None) == (history is None):
            raise ValueError("give exactly one of reader_rows (known readers) or history (fold-in rows)")
        if history is not None:
            hist = sp.csr_matrix(history, dtype=np.float32)
            if hist.shape[1] != self.n_titles:
                raise ValueError(f"history has {hist.shape[1]} title columns, the model has {self.n_titles}")
            return None, hist
        rows = np.asarray(reader_rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.readers_)):
            bad = rows[(rows < 0) | (rows >= len(self.readers_))][:5]
            raise IndexError(f"reader rows out of range [0, {len(self.readers_)}): e.g. {bad.tolist()}")
        return rows, self.user_items_[rows]

    # --- recommending ----------------------------------------------------------------------------

    def recommend(
        self,
        reader_rows: np.ndarray | None,
        n: int,
        filter_seen: bool = True,
        candidates: np.ndarray | None = None,
        exclude: sp.csr_matrix | np.ndarray | None = None,
        history: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` titles for each reader, batched.

        Args:
            reader_rows: known reader rows (k,), or None when ``history`` is given.
            n: list length.
            filter_seen: drop titles in the reader's history (training row or ``history`` row).
            candidates: 1-D array of allowed title columns (e.g. available at the branch).
            exclude: CSR bool (k x n_titles) of per-reader blocked titles, or a 1-D bool mask
                (n_titles,) of globally blocked titles (e.g. adult-only for a child card).
            history: k x n_titles CSR history rows (fold-in instead of ``reader_rows``).

        Returns:
            ``(title_rows int32 (k x n), scores float32 (k x n))``, best first, padded with
            ``-1`` / ``-inf`` when fewer than ``n`` titles are allowed.
        """
        self._check_fitted()
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rows, hist = self._resolve(reader_rows, history)
        k = hist.shape[0]
        blocked_rows = self._blocked_rows(hist if filter_seen else None, exclude, k)
        allowed = self._allowed_columns(candidates, exclude)
        ids = np.full((k, n), -1, dtype=np.int32)
        scores = np.full((k, n), -np.inf, dtype=np.float32)
        if k == 0 or n == 0 or allowed.size == 0:
            return ids, scores
        cold = np.diff(hist.indptr) == 0
        warm = np.flatnonzero(~cold)
        if warm.size:
            w_ids, w_scores = self._top_n(
                None if rows is None else rows[warm],
                hist[warm],
                n,
                blocked_rows[warm],
                allowed,
            )
            ids[warm], scores[warm] = w_ids, w_scores
        if cold.any():
            c = np.flatnonzero(cold)
            pop = np.broadcast_to(self.popularity_, (c.size, self.n_titles))
            ids[c], scores[c] = top_n_dense(pop, n, blocked_rows[c], allowed)
        return ids, scores

    def recalculate(
        self,
        history: sp.csr_matrix,
        n: int,
        filter_seen: bool = True,
        candidates: np.ndarray | None = None,
        exclude: sp.csr_matrix | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Recommendations for readers given their (possibly new) history rows, without retraining:
        a reader just after a new loan, or a reader never seen in training. Same filters and output
        as :meth:`recommend`."""
        return self.recommend(None, n, filter_seen=filter_seen, candidates=candidates, exclude=exclude, history=history)

    def _blocked_rows(
        self, seen: sp.csr_matrix | None, exclude: sp.csr_matrix | np.ndarray | None, k: int
    ) -> sp.csr_matrix:
        """Per-reader blocked titles (seen + per-reader exclude) as a k x n_titles CSR of ones."""
        parts = []
        if seen is not None:
            parts.append(seen)
        if exclude is not None and sp.issparse(exclude):
            if exclude.shape != (k, self.n_titles):
                raise ValueError(f"exclude CSR has shape {exclude.shape}, expected {(k, self.n_titles)}")
            parts.append(sp.csr_matrix(exclude))
        if not parts:
            return sp.csr_matrix((k, self.n_titles), dtype=np.float32)
        out = parts[0] if len(parts) == 1 else parts[0] + parts[1]
        out = sp.csr_matrix(out, dtype=np.float32)
        out.data = np.ones_like(out.data)
        return out

    def _allowed_columns(self, candidates: np.ndarray | None, exclude: sp.csr_matrix | np.ndarray | None) -> np.ndarray:
        """Sorted int32 title columns allowed for everyone (candidates minus globally blocked)."""
        mask = np.ones(self.n_titles, dtype=bool)
        if candidates is not None:
            cand = np.asarray(candidates, dtype=np.int64).reshape(-1)
            if cand.size and (cand.min() < 0 or cand.max() >= self.n_titles):
                raise IndexError(f"candidate title columns out of range [0, {self.n_titles})")
            mask[:] = False
            mask[cand] = True
        if exclude is not None and not sp.issparse(exclude):
            glob = np.asarray(exclude, dtype=bool)
            if glob.shape != (self.n_titles,):
                raise ValueError(f"global exclude mask has shape {glob.shape}, expected ({self.n_titles},)")
            mask &= ~glob
        return np.flatnonzero(mask).astype(np.int32)

    def _top_n(
        self,
        reader_rows: np.ndarray | None,
        history: sp.csr_matrix,
        n: int,
        blocked: sp.csr_matrix,
        allowed: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-n over ``allowed`` columns minus ``blocked`` entries; models may override with a
        faster kernel. Default: dense scores per block of readers, then argpartition."""
        k = history.shape[0]
        ids = np.empty((k, n), dtype=np.int32)
        scores = np.empty((k, n), dtype=np.float32)
        for start in range(0, k, SCORE_BLOCK_ROWS):
            stop = min(start + SCORE_BLOCK_ROWS, k)
            if reader_rows is None:
                dense = self._score_history(history[start:stop])
            else:
                dense = self._score_readers(reader_rows[start:stop])
            ids[start:stop], scores[start:stop] = top_n_dense(dense, n, blocked[start:stop], allowed)
        return ids, scores

    # --- similar titles --------------------------------------------------------------------------

    def _similar_scores(self, title_rows: np.ndarray) -> np.ndarray:
        """Dense float32 (k x n_titles) similarity of titles to all titles. Default: scores of a
        one-title history (what a reader who borrowed only that title would be offered)."""
        k = title_rows.size
        hist = sp.csr_matrix((np.ones(k, dtype=np.float32), title_rows, np.arange(k + 1)), shape=(k, self.n_titles))
        return self._score_history(hist)

    def similar(self, title_rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` titles most similar to each title (the title itself excluded).

        Returns ``(title_rows int32 (k x n), scores float32 (k x n))`` padded with ``-1`` / ``-inf``.
        """
        self._check_fitted()
        rows = np.asarray(title_rows, dtype=np.int32).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_titles):
            raise IndexError(f"title rows out of range [0, {self.n_titles})")
        k = rows.size
        itself = sp.csr_matrix((np.ones(k, dtype=np.float32), rows, np.arange(k + 1)), shape=(k, self.n_titles))
        return self._similar_top(rows, n, itself)

    def _similar_top(self, rows: np.ndarray, n: int, itself: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` of :meth:`_similar_scores` per title, ``itself`` (k x n_titles) blocked; models may
        override with a faster kernel. Default: dense similarity per block of titles, then argpartition."""
        k = rows.size
        allowed = np.arange(self.n_titles, dtype=np.int32)
        ids = np.empty((k, n), dtype=np.int32)
        scores = np.empty((k, n), dtype=np.float32)
        for start in range(0, k, SCORE_BLOCK_ROWS):
            stop = min(start + SCORE_BLOCK_ROWS, k)
            dense = self._similar_scores(rows[start:stop])
            ids[start:stop], scores[start:stop] = top_n_dense(dense, n, itself[start:stop], allowed)
        return ids, scores

    # --- ids -------------------------------------------------------------------------------------

    def recommend_ids(
        self,
        reader_ids: list[str] | np.ndarray | pl.Series,
        n: int,
        filter_seen: bool = True,
        candidates: np.ndarray | None = None,
        exclude: sp.csr_matrix | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Recommendations by reader id: ``(title ids (k x n) object array, scores)``.

        Unknown readers are cold-start (popularity ranking); padding positions hold ``None``.
        """
        self._check_fitted()
        rows = self.readers_.index(reader_ids)
        known = np.flatnonzero(rows >= 0)
        unknown = np.flatnonzero(rows < 0)
        if unknown.size:
            _log.debug("recommend_ids: %d of %d readers unknown (cold start)", unknown.size, rows.size)
        cols = np.full((rows.size, n), -1, dtype=np.int32)
        scores = np.full((rows.size, n), -np.inf, dtype=np.float32)
        per_reader = exclude is not None and sp.issparse(exclude)
        for part, kwargs in (
            (known, {"reader_rows": rows[known]}),
            # Unknown readers are empty history rows, which recommend() treats as cold start.
            (unknown, {"reader_rows": None, "history": sp.csr_matrix((unknown.size, self.n_titles))}),
        ):
            if part.size:
                excl = sp.csr_matrix(exclude)[part] if per_reader else exclude
                cols[part], scores[part] = self.recommend(
                    n=n, filter_seen=filter_seen, candidates=candidates, exclude=excl, **kwargs
                )
        ids = np.full(cols.shape, None, dtype=object)
        valid = cols >= 0
        ids[valid] = self.titles_.lookup(cols[valid])
        return ids, scores

    # --- persistence -----------------------------------------------------------------------------

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray | sp.spmatrix]:
        """Learned arrays to save (beyond vocabularies, ``user_items_`` and ``popularity_``)."""

    @abstractmethod
    def _set_state(self, state: dict[str, np.ndarray | sp.spmatrix], meta: dict[str, Any]) -> None:
        """Restore learned arrays saved by :meth:`_state`."""

    def _extra_meta(self) -> dict[str, Any]:
        """Extra JSON-serialisable facts for ``model.json`` (e.g. fitted vocabularies of words)."""
        return {}

    def save(self, directory: str | Path) -> Path:
        """Write the model to ``directory``: ``model.json``, ``readers.parquet``, ``titles.parquet``,
        ``user_items.npz``, ``popularity.npy`` and one ``.npy`` / ``.npz`` per learned array."""
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.readers_.save(d / "readers.parquet")
        self.titles_.save(d / "titles.parquet")
        state = {"user_items": self.user_items_, "popularity": self.popularity_, **self._state()}
        files = {}
        for key, value in state.items():
            if sp.issparse(value):
                sp.save_npz(d / f"{key}.npz", sp.csr_matrix(value), compressed=False)
                files[key] = f"{key}.npz"
            else:
                np.save(d / f"{key}.npy", np.asarray(value), allow_pickle=False)
                files[key] = f"{key}.npy"
        meta = {
            "format_version": MODEL_FORMAT_VERSION,
            "model": self.name,
            "class": type(self).__name__,
            "params": self.get_params(),
            "arrays": files,
            "extra": self._extra_meta(),
        }
        (d / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False))
        _log.info("saved %s to %s", self.name, d)
        return d

    @classmethod
    def _from_saved(cls, directory: Path, meta: dict[str, Any]) -> Recommender:
        """Rebuild a model of this class from a directory written by :meth:`save`.

        Nothing in the directory is trusted: every file named by ``model.json`` must lie inside the
        directory, every array must be numeric and finite, and the shapes must fit the vocabularies
        (a model whose weights are NaN would load and then recommend nothing)."""
        model = cls(**meta["params"])
        state: dict[str, np.ndarray | sp.spmatrix] = {}
        arrays = meta.get("arrays")
        if not isinstance(arrays, dict) or not {"user_items", "popularity"} <= set(arrays):
            raise ModelFormatError(f"{directory / 'model.json'}: 'arrays' must name user_items and popularity")
        for key, fname in arrays.items():
            path = saved_file(directory, fname, key)
            if str(fname).endswith(".npz"):
                state[key] = sp.load_npz(path).tocsr()
            else:
                state[key] = np.load(path, allow_pickle=False)
            check_array(path, state[key])
        model.readers_ = Vocabulary.load(directory / "readers.parquet")
        model.titles_ = Vocabulary.load(directory / "titles.parquet")
        model.user_items_ = sp.csr_matrix(state.pop("user_items"), dtype=np.float32)
        model.popularity_ = np.asarray(state.pop("popularity"), dtype=np.float32)
        shapes = {"user_items": (model.user_items_.shape, (len(model.readers_), len(model.titles_)))}
        shapes["popularity"] = (model.popularity_.shape, (len(model.titles_),))
        for key, (got, want) in shapes.items():
            if got != want:
                raise ModelFormatError(f"{directory / arrays[key]}: shape {got}, expected {want} from the vocabularies")
        model._set_state(state, meta.get("extra", {}))
        return model

    @staticmethod
    def load(directory: str | Path) -> Recommender:
        """Load any saved model (dispatches on ``model.json``); see :func:`recsys.models.load_model`."""
        from recsys.models import load_model

        return load_model(directory)


def saved_file(directory: Path, name: object, key: str) -> Path:
    """``directory / name`` for a file listed in ``model.json``, refusing any path that leaves
    ``directory`` (absolute paths, ``..``, symlinks pointing out) or does not exist."""
    if not isinstance(name, str) or not name:
        raise ModelFormatError(f"{directory / 'model.json'}: file of '{key}' must be a relative path, got {name!r}")
    root = directory.resolve()
    path = (directory / name).resolve()
    if not path.is_relative_to(root):
        raise ModelFormatError(f"{directory / 'model.json'}: file of '{key}' ({name}) is outside the model directory")
    if not path.is_file():
        raise ModelFormatError(f"{path}: array file '{key}' listed in model.json is missing")
    return path


def check_array(path: Path, value: np.ndarray | sp.spmatrix) -> None:
    """A loaded model array must be numeric (bool, int, float) or fixed-width text (labels), and finite."""
    data = value.data if sp.issparse(value) else np.asarray(value)
    if data.dtype.kind not in "biufU":
        raise ModelFormatError(f"{path}: dtype {data.dtype} is neither numeric nor text")
    if data.dtype.kind == "f" and data.size and not np.isfinite(data).all():
        bad = int(data.size - np.isfinite(data).sum())
        raise ModelFormatError(f"{path}: {bad} of {data.size} values are NaN or infinite")


def top_n_dense(
    scores: np.ndarray, n: int, blocked: sp.csr_matrix | None, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` columns of dense ``scores`` (k x n_titles) among ``allowed`` columns, skipping the
    per-row ``blocked`` CSR entries. Returns ``(ids int32 (k x n), scores float32 (k x n))`` best
    first, padded with ``-1`` / ``-inf``; non-finite scores are treated as blocked."""
    k = scores.shape[0]
    ids = np.full((k, n), -1, dtype=np.int32)
    out = np.full((k, n), -np.inf, dtype=np.float32)
    if k == 0 or n == 0 or allowed.size == 0:
        return ids, out
    from recsys.models.topn import GROUP, select_top  # the models package imports this module

    full = allowed.size == scores.shape[1]
    # the allowed columns copied into a buffer padded to whole groups of the threshold selection
    cols = allowed.size
    sub = np.empty((k, -(-cols // GROUP) * GROUP), dtype=np.float32)
    sub[:, :cols] = scores if full else scores[:, allowed]
    sub[:, cols:] = -np.inf
    if blocked is not None and blocked.nnz:
        b = blocked.tocoo()
        if full:
            sub[b.row, b.col] = -np.inf
        else:
            pos = np.searchsorted(allowed, b.col)
            pos = np.minimum(pos, allowed.size - 1)
            hit = allowed[pos] == b.col
            sub[b.row[hit], pos[hit]] = -np.inf
    sub[~np.isfinite(sub)] = -np.inf
    if cols >= 4 * GROUP * n:  # wide rows (a catalogue): the threshold selection, exact, ~10x faster
        top, vals = select_top(sub, n, cols)
        ids[:, :], out[:, :] = np.where(top >= 0, allowed[np.maximum(top, 0)], -1), vals
        return ids, out
    sub = sub[:, :cols]
    m = min(n, sub.shape[1])
    if m < sub.shape[1]:
        part = np.argpartition(-sub, m - 1, axis=1)[:, :m]
    else:
        part = np.broadcast_to(np.arange(sub.shape[1]), (k, sub.shape[1]))
    part_scores = np.take_along_axis(sub, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    top_scores = np.take_along_axis(part_scores, order, axis=1)
    valid = np.isfinite(top_scores)
    ids[:, :m] = np.where(valid, allowed[top], -1)
    out[:, :m] = np.where(valid, top_scores, -np.inf)
    return ids, out
