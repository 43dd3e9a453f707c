"""Reader × title interaction matrices (CSR, float32) with their vocabularies.

The container :class:`InteractionMatrix` is the one data structure handed to every model:
rows are readers, columns are titles, values are interaction weights. :func:`build_matrix` makes
one from interaction events (see :mod:`features.interactions`) under a typed
:class:`WeightingConfig`: the weight of one event is

    channel_weight[channel] × (1 + renewal_weight × renewals) × [value] × 0.5 ** (age_days / half_life_days)

events of one (reader, title) pair are then summed (or maxed), optionally binarised, and the
whole matrix optionally re-weighted by BM25 or TF-IDF.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from features.interactions import standardise
from features.schema import LOAN_CHANNELS
from features.vocab import Vocabulary

_log = logging.getLogger(__name__)

MATRIX_FORMAT_VERSION = 1


@dataclass
class InteractionMatrix:
    """A reader × title CSR matrix with the vocabularies that name its rows and columns."""

    matrix: sp.csr_matrix
    readers: Vocabulary
    titles: Vocabulary
    #: How the weights were built (weighting config, source fingerprint, ...), JSON-serialisable.
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not sp.issparse(self.matrix):
            raise TypeError("matrix must be a scipy sparse matrix")
        if self.matrix.format != "csr":
            self.matrix = self.matrix.tocsr()
        if self.matrix.dtype != np.float32:
            self.matrix = self.matrix.astype(np.float32)
        n_r, n_t = self.matrix.shape
        if n_r != len(self.readers) or n_t != len(self.titles):
            raise ValueError(
                f"matrix shape {self.matrix.shape} does not match vocabularies "
                f"({len(self.readers)} readers, {len(self.titles)} titles)"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    def fingerprint(self) -> str:
        """A stable hash of the matrix contents and vocabularies (for experiment tracking)."""
        import hashlib

        h = hashlib.sha256()
        m = self.matrix
        for arr in (m.indptr, m.indices, m.data):
            h.update(np.ascontiguousarray(arr).tobytes())
        for s in (self.readers.series, self.titles.series):
            h.update("\x1f".join(s.to_list()).encode())
        return h.hexdigest()[:16]

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        sp.save_npz(d / "matrix.npz", self.matrix, compressed=False)
        self.readers.save(d / "readers.parquet")
        self.titles.save(d / "titles.parquet")
        meta = {"format_version": MATRIX_FORMAT_VERSION, "shape": list(self.shape), **self.meta}
        (d / "matrix.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> InteractionMatrix:
        d = Path(directory)
        meta = json.loads((d / "matrix.json").read_text())
        if meta.get("format_version") != MATRIX_FORMAT_VERSION:
            raise ValueError(f"{d}: unsupported matrix format version {meta.get('format_version')}")
        return cls(
            sp.load_npz(d / "matrix.npz").tocsr(),
            Vocabulary.load(d / "readers.parquet"),
            Vocabulary.load(d / "titles.parquet"),
            {k: v for k, v in meta.items() if k not in ("format_version", "shape")},
        )


# --- building matrices from events ---------------------------------------------------------------

#: Default weight per channel: every print-loan channel counts fully, e-book downloads and reads
#: count less (a download is often not read; a read may be a glance), explicit ratings fully.
DEFAULT_CHANNEL_WEIGHTS: dict[str, float] = {
    **{channel: 1.0 for channel in LOAN_CHANNELS},
    "ebook_download": 0.7,
    "ebook_read": 0.5,
    "rating": 1.0,
}


class WeightingConfig(BaseModel):
    """How interaction events become matrix weights. Defaults suit library loans."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_CHANNEL_WEIGHTS),
        description="Weight of one event per channel (loan channel, 'ebook_download', 'ebook_read', "
        "'rating', ...). A weight of 0 drops the channel's events.",
    )
    unknown_channel_weight: float = Field(
        1.0, ge=0.0, description="Weight of events whose channel is not in channel_weights (0 drops them)."
    )
    renewal_weight: float = Field(
        0.25, ge=0.0, description="Extra weight per loan renewal, as a fraction of the channel weight."
    )
    use_value: bool = Field(
        False, description="Multiply each event's weight by its explicit value (e.g. the star rating)."
    )
    half_life_days: float | None = Field(
        None,
        gt=0.0,
        description="Recency decay: an event loses half its weight per half-life, in days, before "
        "reference_time. None turns decay off.",
    )
    reference_time: datetime | None = Field(
        None,
        description="Time the decay is measured from; None = the latest occurred_at in the data. "
        "Events after it are not boosted (age clipped at 0).",
    )
    min_value: float | None = Field(
        None,
        description="Drop events whose value is below this (e.g. 4.0 keeps MovieLens ratings >= 4 "
        "as positive feedback). None keeps every event.",
    )
    aggregate: Literal["sum", "max"] = Field(
        "sum", description="How events of one (reader, title) pair combine: summed or their maximum."
    )
    binarize: bool = Field(False, description="Set every stored (reader, title) weight to 1 after aggregation.")
    scheme: Literal["bm25", "tfidf"] | None = Field(
        None,
        description="Document-style re-weighting of the final matrix (readers = documents, titles = "
        "terms). Positive for every stored entry, so the sparsity pattern never changes.",
    )
    bm25_k1: float = Field(100.0, gt=0.0, description="BM25 saturation K1 (large for implicit feedback).")
    bm25_b: float = Field(0.8, ge=0.0, le=1.0, description="BM25 length normalisation B (0 = none).")


def _apply_scheme(m: sp.csr_matrix, config: WeightingConfig) -> sp.csr_matrix:
    """BM25 / TF-IDF on a canonical CSR (rows = readers). Only ``data`` changes."""
    n_readers, n_titles = m.shape
    if m.nnz == 0 or config.scheme is None:
        return m
    readers_per_title = np.bincount(m.indices, minlength=n_titles).astype(np.float64)
    data = m.data.astype(np.float64)
    if config.scheme == "tfidf":
        # smoothed idf (as scikit-learn): strictly positive even for a title every reader has
        idf = np.log((1.0 + n_readers) / (1.0 + readers_per_title)) + 1.0
        data = data * idf[m.indices]
    else:
        # Lucene's BM25 idf, positive for every df <= N
        idf = np.log1p((n_readers - readers_per_title + 0.5) / (readers_per_title + 0.5))
        row_len = np.asarray(m.sum(axis=1)).ravel()
        mean_len = row_len[row_len > 0].mean()
        norm = (1.0 - config.bm25_b) + config.bm25_b * row_len / mean_len
        row_of_entry = np.repeat(np.arange(n_readers), np.diff(m.indptr))
        k1 = config.bm25_k1
        data = data * (k1 + 1.0) / (k1 * norm[row_of_entry] + data) * idf[m.indices]
    out = m.copy()
    out.data = data.astype(np.float32)
    return out


def _weight_expr(config: WeightingConfig, reference: datetime | None) -> pl.Expr:
    weight = pl.col("channel").replace_strict(
        config.channel_weights, default=config.unknown_channel_weight, return_dtype=pl.Float64
    ) * (1.0 + config.renewal_weight * pl.col("renewals").cast(pl.Float64))
    if config.use_value:
        weight = weight * pl.col("value").cast(pl.Float64)
    if config.half_life_days is not None:
        age_days = (pl.lit(reference).cast(pl.Datetime("us")) - pl.col("occurred_at")).dt.total_microseconds()
        age_days = (age_days.cast(pl.Float64) / 86_400e6).clip(lower_bound=0.0)
        weight = weight * pl.lit(0.5).pow(age_days / config.half_life_days)
    return weight


def _reference_time(lf: pl.LazyFrame, config: WeightingConfig) -> datetime | None:
    """The time recency decay is measured from: the config's, else the latest event (None without decay).

    Raises:
        ValueError: recency decay is on and some events have no ``occurred_at``.
    """
    if config.half_life_days is None:
        return config.reference_time
    times = lf.select(
        pl.col("occurred_at").null_count().alias("missing"), pl.col("occurred_at").max().alias("latest")
    ).collect()
    if times["missing"][0]:
        raise ValueError(
            f"interactions.occurred_at: {times['missing'][0]} events have no time, but recency "
            f"decay (half_life_days={config.half_life_days}) needs one"
        )
    return config.reference_time if config.reference_time is not None else times["latest"][0]


def _weighted_events(
    lf: pl.LazyFrame, config: WeightingConfig, reference: datetime | None
) -> tuple[pl.DataFrame, dict[str, int]]:
    """``reader_id, title_id, weight`` (float32) of the events kept (value >= ``min_value``, weight > 0),
    and the counts for ``meta``: ``events``, ``dropped_low_value``, ``dropped_zero_weight``."""
    keep_value = pl.lit(True) if config.min_value is None else pl.col("value") >= config.min_value
    events = lf.select(
        "reader_id",
        "title_id",
        keep_value.alias("keep_value"),
        _weight_expr(config, reference).cast(pl.Float32).alias("weight"),
    ).collect()
    n_events = events.height
    dropped_low_value = n_events - int(events["keep_value"].sum())
    events = events.filter(pl.col("keep_value"))
    dropped_zero_weight = events.height - int((events["weight"] > 0).sum())
    events = events.filter(pl.col("weight") > 0)
    counts = {"events": n_events, "dropped_low_value": dropped_low_value, "dropped_zero_weight": dropped_zero_weight}
    return events, counts


def _index_events(
    events: pl.DataFrame, readers: Vocabulary, titles: Vocabulary
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """``(rows, cols, weights)`` of the events inside both vocabularies, and the counts for ``meta``:
    ``dropped_unknown_readers``, ``dropped_unknown_titles`` (events of known readers only)."""
    rows = readers.index(events["reader_id"])
    cols = titles.index(events["title_id"])
    weights = events["weight"].to_numpy()
    known_reader, known_title = rows >= 0, cols >= 0
    dropped_readers = int(np.count_nonzero(~known_reader))
    dropped_titles = int(np.count_nonzero(known_reader & ~known_title))
    if dropped_readers or dropped_titles:
        _log.info(
            "build_matrix: dropped %d events of readers and %d events of titles outside the vocabularies",
            dropped_readers,
            dropped_titles,
        )
    keep = known_reader & known_title
    if not keep.all():
        rows, cols, weights = rows[keep], cols[keep], weights[keep]
    return rows, cols, weights, {"dropped_unknown_readers": dropped_readers, "dropped_unknown_titles": dropped_titles}


def _weights_to_csr(
    rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, shape: tuple[int, int], config: WeightingConfig
) -> sp.csr_matrix:
    """One float32 CSR of the event weights: pairs summed (or maxed), optionally binarised and re-weighted."""
    if config.aggregate == "max":
        pairs = pl.DataFrame({"r": rows, "c": cols, "w": weights}).group_by("r", "c").agg(pl.col("w").max())
        rows, cols, weights = (pairs[c].to_numpy() for c in ("r", "c", "w"))
    # one COO -> CSR construction; scipy sums duplicate (reader, title) entries and sorts indices
    m = sp.coo_matrix((weights, (rows, cols)), shape=shape, dtype=np.float32).tocsr()
    if config.binarize:
        m.data[:] = 1.0
    return _apply_scheme(m, config)


def build_matrix(
    interactions: pl.LazyFrame | pl.DataFrame,
    config: WeightingConfig | None = None,
    *,
    readers: Vocabulary | None = None,
    titles: Vocabulary | None = None,
) -> InteractionMatrix:
    """Build the reader × title weight matrix of interaction events.

    Args:
        interactions: events with at least ``reader_id`` and ``title_id`` (other columns of the
            ``interactions`` schema are filled with neutral values when absent).
        config: weighting; defaults to :class:`WeightingConfig()`.
        readers: row vocabulary. Events of readers not in it are dropped (counted in
            ``meta["dropped_unknown_readers"]``). None = the sorted distinct readers of the data.
        titles: column vocabulary, same rules (``meta["dropped_unknown_titles"]``).

    Returns:
        A float32 CSR :class:`InteractionMatrix`; ``meta`` holds the config and event counts.

    Raises:
        ValueError: recency decay is on and some events have no ``occurred_at``.
    """
    config = config or WeightingConfig()
    started = time.perf_counter()
    lf = standardise(interactions)
    reference = _reference_time(lf, config)
    events, event_counts = _weighted_events(lf, config, reference)
    readers = readers if readers is not None else Vocabulary.from_values(events["reader_id"], "reader_id")
    titles = titles if titles is not None else Vocabulary.from_values(events["title_id"], "title_id")
    rows, cols, weights, dropped = _index_events(events, readers, titles)
    m = _weights_to_csr(rows, cols, weights, (len(readers), len(titles)), config)

    meta = {
        "weighting": config.model_dump(mode="json"),
        "reference_time": reference.isoformat() if reference is not None else None,
        **event_counts,
        **dropped,
        "nnz": int(m.nnz),
    }
    _log.debug(
        "build_matrix: %d events -> %dx%d, nnz %d in %.2fs",
        event_counts["events"],
        m.shape[0],
        m.shape[1],
        m.nnz,
        time.perf_counter() - started,
    )
    return InteractionMatrix(m, readers, titles, meta)


def seen_matrix(
    interactions: pl.LazyFrame | pl.DataFrame,
    readers: Vocabulary,
    titles: Vocabulary,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> InteractionMatrix:
    """Binary reader × title matrix of what each reader had in ``[start, end)`` (the 'already
    borrowed' filter). Rows and columns follow the given vocabularies; events without a time count
    only when no window is given."""
    lf = standardise(interactions)
    if start is not None:
        lf = lf.filter(pl.col("occurred_at") >= pl.lit(start).cast(pl.Datetime("us")))
    if end is not None:
        lf = lf.filter(pl.col("occurred_at") < pl.lit(end).cast(pl.Datetime("us")))
    config = WeightingConfig(channel_weights={}, unknown_channel_weight=1.0, renewal_weight=0.0, binarize=True)
    return build_matrix(lf, config, readers=readers, titles=titles)


def benchmark_build(n_events: int = 3_000_000, n_readers: int = 200_000, n_titles: int = 50_000, seed: int = 0) -> dict:
    """Time :func:`build_matrix` (default config) on generated events against a bare
    ``coo_matrix((data, (r, c))).tocsr()`` of the same integer arrays.

    Returns events/s for both (wall-clock seconds measured with ``perf_counter``) and their ratio
    (how many times slower the full builder is: weighting, id mapping, vocabularies included).
    """
    rng = np.random.default_rng(seed)
    r = rng.integers(0, n_readers, n_events)
    c = np.minimum(rng.zipf(1.3, n_events) - 1, n_titles - 1)
    channels = np.array(list(DEFAULT_CHANNEL_WEIGHTS))
    frame = pl.DataFrame(
        {
            "reader_id": pl.Series(r).cast(pl.String),
            "title_id": pl.Series(c).cast(pl.String),
            "occurred_at": pl.Series(rng.integers(1_500_000_000, 1_700_000_000, n_events) * 1_000_000).cast(
                pl.Datetime("us")
            ),
            "channel": channels[rng.integers(0, len(channels), n_events)],
            "renewals": rng.integers(0, 3, n_events).astype(np.int8),
            "value": np.ones(n_events, dtype=np.float32),
        }
    )
    t0 = time.perf_counter()
    built = build_matrix(frame)
    t_build = time.perf_counter() - t0
    data = np.ones(n_events, dtype=np.float32)
    t0 = time.perf_counter()
    sp.coo_matrix((data, (r, c)), shape=(n_readers, n_titles)).tocsr()
    t_bare = time.perf_counter() - t0
    return {
        "events": n_events,
        "nnz": built.nnz,
        "build_seconds": t_build,
        "build_events_per_s": n_events / t_build,
        "bare_scipy_seconds": t_bare,
        "bare_scipy_events_per_s": n_events / t_bare,
        "slowdown_vs_bare_scipy": t_build / t_bare,
    }
