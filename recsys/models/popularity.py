"""Popularity: the same ranked list for everyone (global), per segment (branch, age band), or trending.

The baseline every personalised model must beat, and the cold-start list of the network.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.matrix import InteractionMatrix
from recsys.base import Recommender

_log = logging.getLogger(__name__)


class PopularityRecommender(Recommender):
    """Rank titles by popularity, optionally within a reader segment.

    Args:
        count: ``"readers"`` counts distinct readers per title; ``"weight"`` sums matrix weights
            (so a builder that applies time decay makes this a trending list).
        half_life_days: when ``fit`` gets an ``events`` frame, weight each event by
            ``0.5 ** (age_days / half_life_days)`` (trending); None = no decay.
        min_segment_readers: segments with fewer readers fall back to the global list (avoids
            ranking by one or two readers' loans).
    """

    name = "popular"

    def __init__(
        self,
        count: Literal["readers", "weight"] = "readers",
        half_life_days: float | None = None,
        min_segment_readers: int = 20,
    ) -> None:
        self.count = count
        self.half_life_days = half_life_days
        self.min_segment_readers = min_segment_readers

    def fit(
        self,
        matrix: InteractionMatrix,
        titles: pl.DataFrame | None = None,
        *,
        segments: np.ndarray | pl.Series | None = None,
        events: pl.DataFrame | None = None,
        now: datetime | None = None,
    ) -> PopularityRecommender:
        """Fit the ranking.

        Args:
            matrix: reader x title weights.
            titles: ignored.
            segments: label per matrix row (reader -> branch / age band / district); readers in a
                segment get that segment's list. None = one global list.
            events: optional timestamped frame with ``title_id``, ``occurred_at`` (and optionally
                ``reader_id``) for trending counts with ``half_life_days`` decay; replaces the
                matrix as the source of title weights (the global list only).
            now: reference time for the decay (default: latest event).
        """
        self._fit_common(matrix)
        seg = None if segments is None else pl.Series("segment", segments, dtype=pl.String)
        self._fit_popularity(matrix.matrix, seg, events, now)
        return self

    def _title_weights(self, X: sp.csr_matrix) -> np.ndarray:
        if self.count == "readers":
            return np.bincount(X.indices, minlength=X.shape[1]).astype(np.float32)
        if self.count == "weight":
            return np.asarray(X.sum(axis=0)).ravel().astype(np.float32)
        raise ValueError(f"PopularityRecommender: count must be 'readers' or 'weight', got {self.count!r}")

    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:
        self._fit_popularity(X, None, None, None)

    def _fit_popularity(
        self, X: sp.csr_matrix, seg: pl.Series | None, events: pl.DataFrame | None, now: datetime | None
    ) -> None:
        self.global_scores_ = self._title_weights(X)
        if events is not None:
            self.global_scores_ = self._trending(events, now)
        if seg is None:
            self.segment_labels_ = np.array([], dtype=str)
            self.reader_segment_ = np.full(X.shape[0], -1, dtype=np.int32)
            self.segment_scores_ = np.zeros((0, X.shape[1]), dtype=np.float32)
            return
        if len(seg) != X.shape[0]:
            raise ValueError(f"segments has {len(seg)} labels, the matrix has {X.shape[0]} reader rows")
        labels = seg.fill_null("").unique().sort()
        codes = (
            seg.fill_null("")
            .to_frame()
            .join(labels.to_frame().with_row_index("code"), on="segment", how="left", maintain_order="left")["code"]
            .to_numpy()
            .astype(np.int32)
        )
        # Segment x title weights in one sparse product: (segments x readers) @ (readers x titles).
        member = sp.csr_matrix(
            (np.ones(X.shape[0], dtype=np.float32), (codes, np.arange(X.shape[0]))),
            shape=(len(labels), X.shape[0]),
        )
        base = X.copy()
        if self.count == "readers":
            base.data = np.ones_like(base.data)
        scores = np.asarray((member @ base).todense(), dtype=np.float32)
        small = np.asarray(member.sum(axis=1)).ravel() < self.min_segment_readers
        scores[small] = self.global_scores_
        if small.any():
            _log.info(
                "popularity: %d segments below %d readers use the global list", small.sum(), self.min_segment_readers
            )
        self.segment_labels_ = labels.to_numpy().astype(str)
        self.reader_segment_ = codes
        self.segment_scores_ = scores

    def _trending(self, events: pl.DataFrame, now: datetime | None) -> np.ndarray:
        if "title_id" not in events.columns or "occurred_at" not in events.columns:
            raise ValueError("trending events frame needs columns 'title_id' and 'occurred_at'")
        ref = pl.lit(now) if now is not None else pl.col("occurred_at").max()
        age_days = (ref - pl.col("occurred_at")).dt.total_seconds() / 86400.0
        w = (0.5 ** (age_days / self.half_life_days)) if self.half_life_days else pl.lit(1.0)
        per_title = (
            events.lazy()
            .select(pl.col("title_id").cast(pl.String), w.alias("w"))
            .group_by("title_id")
            .agg(pl.col("w").sum())
            .collect()
        )
        idx = self.titles_.index(per_title["title_id"])
        ok = idx >= 0
        if (~ok).any():
            _log.warning("trending: %d event titles are not in the matrix vocabulary (ignored)", int((~ok).sum()))
        out = np.zeros(len(self.titles_), dtype=np.float32)
        np.add.at(out, idx[ok], per_title["w"].to_numpy()[ok].astype(np.float32))
        return out

    def _score_readers(self, reader_rows: np.ndarray) -> np.ndarray:
        seg = self.reader_segment_[reader_rows]
        out = np.broadcast_to(self.global_scores_, (reader_rows.size, self.global_scores_.size)).copy()
        has = seg >= 0
        if has.any():
            out[has] = self.segment_scores_[seg[has]]
        return out

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        # A reader's history does not change the popularity list; recommend() removes what was seen.
        return np.broadcast_to(self.global_scores_, (history.shape[0], self.global_scores_.size)).copy()

    def score_segment(self, label: str) -> np.ndarray:
        """Scores (n_titles,) of one segment's list (the global list for an unknown label)."""
        hit = np.flatnonzero(self.segment_labels_ == label)
        return self.segment_scores_[hit[0]] if hit.size else self.global_scores_

    def _similar_scores(self, title_rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.global_scores_, (title_rows.size, self.global_scores_.size)).copy()

    def _state(self) -> dict[str, Any]:
        return {
            "global_scores": self.global_scores_,
            "segment_labels": self.segment_labels_.astype(str),
            "reader_segment": self.reader_segment_,
            "segment_scores": self.segment_scores_,
        }

    def _set_state(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.global_scores_ = state["global_scores"]
        self.segment_labels_ = state["segment_labels"]
        self.reader_segment_ = state["reader_segment"]
        self.segment_scores_ = state["segment_scores"]
