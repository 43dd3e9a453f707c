"""Content-based recommendations from catalogue metadata: TF-IDF over title, author, subjects and
CLC class.

Every title gets a TF-IDF vector from two vectorisers: character 2-3-grams of the title (works for
Chinese titles without a word segmenter) and metadata tokens (``a:<author>``, ``s:<subject>``,
``c:<CLC prefix>`` for each prefix I, I2, I24, I247 so that neighbouring classes share tokens).
A reader's profile is the history-weighted mean of their titles' vectors; scores are cosine
similarities. Titles nobody has borrowed score like any other, and :meth:`add_titles` makes a book
bought yesterday recommendable at once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from recsys.base import ModelError, Recommender

_log = logging.getLogger(__name__)

#: Longest CLC prefix turned into a token (I, I2, I24, I247, I247.5, ...).
_CLC_PREFIX_MAX = 8


def metadata_documents(titles: pl.DataFrame) -> pl.DataFrame:
    """``title_id``, ``text`` (the title) and ``meta`` (space-separated metadata tokens) per title."""
    cols = titles.columns
    for need in ("title_id", "title", "clc_class"):
        if need not in cols:
            raise ModelError(f"content model: titles frame lacks column '{need}'")

    def tokenish(expr: pl.Expr) -> pl.Expr:
        return expr.cast(pl.String).str.strip_chars().str.to_lowercase().str.replace_all(r"\s+", "_")

    clc = pl.col("clc_class").cast(pl.String).fill_null("").str.replace_all(r"\s+", "")
    prefixes = pl.concat_list(
        [
            pl.when(clc.str.len_chars() >= i).then(pl.lit("c:") + clc.str.slice(0, i))
            for i in range(1, _CLC_PREFIX_MAX + 1)
        ]
    ).list.drop_nulls()
    author = (
        pl.concat_list([pl.lit("a:") + tokenish(pl.col("author"))]).list.drop_nulls()
        if "author" in cols
        else pl.lit([], dtype=pl.List(pl.String))
    )
    subjects = (
        pl.col("subjects")
        .cast(pl.String)
        .fill_null("")
        .str.split(";")
        .list.eval(pl.lit("s:") + tokenish(pl.element()))
        .list.filter(pl.element() != "s:")
        if "subjects" in cols
        else pl.lit([], dtype=pl.List(pl.String))
    )
    return titles.select(
        pl.col("title_id").cast(pl.String),
        pl.col("title").cast(pl.String).fill_null("").alias("text"),
        pl.concat_list([prefixes, author, subjects]).list.join(" ").alias("meta"),
    )


class ContentRecommender(Recommender):
    """TF-IDF content model over the catalogue.

    Args:
        title_weight: weight of the title n-gram block relative to the metadata block (each block
            is L2-normalised before weighting).
        min_df: ignore tokens in fewer titles than this.
        max_features: cap per vectoriser (most frequent tokens kept).
    """

    name = "content"

    def __init__(self, title_weight: float = 0.5, min_df: int = 1, max_features: int | None = 200_000) -> None:
        self.title_weight = title_weight
        self.min_df = min_df
        self.max_features = max_features

    def _vectorizers(self) -> tuple[TfidfVectorizer, TfidfVectorizer]:
        text = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 3),
            min_df=self.min_df,
            max_features=self.max_features,
            dtype=np.float32,
            sublinear_tf=True,
        )
        meta = TfidfVectorizer(
            token_pattern=r"\S+",
            lowercase=False,
            min_df=self.min_df,
            max_features=self.max_features,
            dtype=np.float32,
        )
        return text, meta

    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:
        if titles is None:
            raise ModelError("content model: fit() needs the titles frame (schema 'titles')")
        docs = metadata_documents(titles)
        order = self.titles_.index(docs["title_id"])
        covered = np.zeros(len(self.titles_), dtype=bool)
        covered[order[order >= 0]] = True
        if not covered.all():
            _log.warning("content model: %d matrix titles have no catalogue record (empty vectors)", (~covered).sum())
        self.text_vectorizer_, self.meta_vectorizer_ = self._vectorizers()
        self.text_vectorizer_.fit(docs["text"].to_list())
        self.meta_vectorizer_.fit(docs["meta"].to_list())
        vectors = self._transform(docs)
        # Catalogue records for titles nobody borrowed extend the vocabulary (recommendable at once).
        if (order < 0).any():
            self._extend_titles(docs.filter(pl.Series(order < 0))["title_id"])
        rows = self.titles_.index(docs["title_id"])
        perm = sp.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, np.arange(rows.size))), shape=(len(self.titles_), rows.size)
        )
        self.title_vectors_ = sp.csr_matrix(perm @ vectors, dtype=np.float32)

    def _transform(self, docs: pl.DataFrame) -> sp.csr_matrix:
        t = normalize(self.text_vectorizer_.transform(docs["text"].to_list()))
        m = normalize(self.meta_vectorizer_.transform(docs["meta"].to_list()))
        return normalize(sp.hstack([t * self.title_weight, m * (1.0 - self.title_weight)], format="csr")).astype(
            np.float32
        )

    def _extend_titles(self, new_ids: pl.Series) -> None:
        """Append titles to the vocabulary; training rows get empty columns for them."""
        self.titles_ = self.titles_.extend(new_ids)
        ui = self.user_items_
        self.user_items_ = sp.csr_matrix((ui.data, ui.indices, ui.indptr), shape=(ui.shape[0], len(self.titles_)))
        self.popularity_ = np.concatenate(
            [self.popularity_, np.zeros(len(self.titles_) - self.popularity_.size, dtype=np.float32)]
        )

    def add_titles(self, titles: pl.DataFrame) -> ContentRecommender:
        """Add catalogue records after fit (e.g. a 'you choose, I buy' purchase); they are scored
        from the next call on. Titles already known are re-vectorised from the new record."""
        self._check_fitted()
        docs = metadata_documents(titles)
        fresh = docs.filter(pl.Series(self.titles_.index(docs["title_id"]) < 0))["title_id"]
        if len(fresh):
            self._extend_titles(fresh)
        vectors = self._transform(docs)
        rows = self.titles_.index(docs["title_id"])
        tv = self.title_vectors_
        tv = sp.vstack([tv, sp.csr_matrix((len(self.titles_) - tv.shape[0], tv.shape[1]), dtype=np.float32)]).tocsr()
        keep = np.ones(tv.shape[0], dtype=np.float32)
        keep[rows] = 0.0
        put = sp.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, np.arange(rows.size))), shape=(tv.shape[0], rows.size)
        )
        self.title_vectors_ = sp.csr_matrix(sp.diags(keep) @ tv + put @ vectors, dtype=np.float32)
        _log.info("content model: added %d titles (%d new)", len(docs), len(fresh))
        return self

    def _profiles(self, history: sp.csr_matrix) -> sp.csr_matrix:
        return normalize(sp.csr_matrix(history, dtype=np.float32) @ self.title_vectors_)

    def _score_readers(self, reader_rows: np.ndarray) -> np.ndarray:
        return self._score_history(self.user_items_[reader_rows])

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((self._profiles(history) @ self.title_vectors_.T).todense(), dtype=np.float32)

    def _state(self) -> dict[str, Any]:
        return {
            "title_vectors": self.title_vectors_,
            "text_idf": self.text_vectorizer_.idf_.astype(np.float64),
            "meta_idf": self.meta_vectorizer_.idf_.astype(np.float64),
        }

    def _extra_meta(self) -> dict[str, Any]:
        def terms(v: TfidfVectorizer) -> list[str]:
            return v.get_feature_names_out().tolist()

        return {"text_terms": terms(self.text_vectorizer_), "meta_terms": terms(self.meta_vectorizer_)}

    def _set_state(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.title_vectors_ = sp.csr_matrix(state["title_vectors"], dtype=np.float32)
        self.text_vectorizer_, self.meta_vectorizer_ = self._vectorizers()
        for vec, key in ((self.text_vectorizer_, "text"), (self.meta_vectorizer_, "meta")):
            vec.vocabulary_ = {t: i for i, t in enumerate(meta[f"{key}_terms"])}
            vec.idf_ = state[f"{key}_idf"]
