"""Spark readers of yuedu's Parquet tables, vocabularies and weighted reader × title pairs.

The Spark twin of :mod:`features.interactions` + :func:`features.matrix.build_matrix`: the same
tables, the same interactions columns, the same :class:`~features.matrix.WeightingConfig` formula

    channel_weight[channel] × (1 + renewal_weight × renewals) × [value] × 0.5 ** (age_days / half_life_days)

and the same vocabularies (sorted distinct ids), so that a matrix built here equals the polars one
(tests/spark/test_parity.py). The weighted pairs stay distributed (:class:`SparkRatings`) for
MLlib; :meth:`SparkRatings.to_matrix` collects them to the driver as an
:class:`~features.matrix.InteractionMatrix` when a model directory needs the CSR.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import scipy.sparse as sp
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.interactions import DEFAULT_CHANNEL, EBOOK_CHANNEL_PREFIX
from features.matrix import InteractionMatrix, WeightingConfig
from features.privacy import ERASED_PREFIX
from features.schema import INTERACTIONS, TABLES, table_path
from features.vocab import Vocabulary

_log = logging.getLogger(__name__)

_US_PER_DAY = 86_400e6
_EPOCH = datetime(1970, 1, 1)


def spark_type(dtype: pl.DataType) -> T.DataType:
    """The Spark SQL type of a polars schema dtype (naive datetimes are ``TIMESTAMP_NTZ``)."""
    mapping: dict[type, T.DataType] = {
        pl.String: T.StringType(),
        pl.Int8: T.ByteType(),
        pl.Int16: T.ShortType(),
        pl.Int32: T.IntegerType(),
        pl.Int64: T.LongType(),
        pl.Float32: T.FloatType(),
        pl.Float64: T.DoubleType(),
        pl.Boolean: T.BooleanType(),
        pl.Date: T.DateType(),
    }
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            return T.TimestampType()
        return T.TimestampNTZType()
    for cls, out in mapping.items():
        if dtype == cls:
            return out
    raise TypeError(f"no Spark type for polars dtype {dtype}")


def conform(df: DataFrame, table: str) -> DataFrame:
    """Select and cast ``df`` to a table's schema (:data:`features.schema.TABLES`), absent optional
    columns as typed nulls: the Spark twin of :func:`features.schema.conform`.

    Raises:
        ValueError: a required column is missing (names the table and the column).
    """
    schema = TABLES[table]
    present = set(df.columns)
    missing = [c for c in schema.required if c not in present]
    if missing:
        raise ValueError(f"table '{table}': required columns {missing} missing (have {sorted(present)})")
    return df.select(
        [
            (F.col(n) if n in present else F.lit(None)).cast(spark_type(c.dtype)).alias(n)
            for n, c in schema.columns.items()
        ]
    )


def read_table(spark: SparkSession, data_dir: str | Path, table: str) -> DataFrame:
    """One table of a data directory (``DIR/<table>.parquet``, a file or a folder of parts), conformed.

    Raises:
        FileNotFoundError: the table is not in the directory.
    """
    path = table_path(data_dir, table)
    if not path.exists():
        raise FileNotFoundError(f"{path}: table '{table}' not found in data directory {data_dir}")
    return conform(spark.read.parquet(str(path)), table)


def _ts_literal(value: datetime) -> Column:
    # A string cast keeps the literal naive, whatever the Python process's time zone.
    return F.lit(value.isoformat(sep=" ")).cast(T.TimestampNTZType())


def standardise(df: DataFrame) -> DataFrame:
    """Conform to the interactions schema and fill neutral values (channel ``"event"``, renewals 0,
    value 1.0), as :func:`features.interactions.standardise`."""
    out = conform(df, INTERACTIONS.name)
    return out.fillna({"channel": DEFAULT_CHANNEL, "renewals": 0, "value": 1.0})


def load_interactions(
    spark: SparkSession,
    data_dir: str | Path,
    *,
    include_ebooks: bool = True,
    start: datetime | None = None,
    end: datetime | None = None,
) -> DataFrame:
    """Every reader–title event of a data directory in the ``interactions`` schema (lazy Spark plan).

    Same sources and rules as :func:`features.interactions.load_interactions`: a generic
    ``interactions`` table, or ``loans`` (+ ``ebook_events``); ``start`` inclusive, ``end`` exclusive;
    rows kept pseudonymised after an erasure left out.

    Raises:
        FileNotFoundError: the directory has neither ``interactions.parquet`` nor ``loans.parquet``.
    """
    d = Path(data_dir)
    if table_path(d, "interactions").exists():
        df = spark.read.parquet(str(table_path(d, "interactions")))
    elif table_path(d, "loans").exists():
        loans = read_table(spark, d, "loans").select(
            "reader_id",
            "title_id",
            F.col("borrowed_at").alias("occurred_at"),
            "channel",
            "renewals",
            F.lit(1.0).cast(T.FloatType()).alias("value"),
        )
        df = standardise(loans)
        if include_ebooks and table_path(d, "ebook_events").exists():
            ebooks = read_table(spark, d, "ebook_events").select(
                "reader_id",
                "title_id",
                "occurred_at",
                F.concat(F.lit(EBOOK_CHANNEL_PREFIX), F.col("action")).alias("channel"),
                F.lit(0).alias("renewals"),
                F.lit(1.0).alias("value"),
            )
            df = df.unionByName(standardise(ebooks))
    else:
        raise FileNotFoundError(f"{d}: no interactions.parquet or loans.parquet: not a yuedu data directory")
    df = standardise(df)
    df = df.filter(~F.col("reader_id").startswith(ERASED_PREFIX))  # kept after an erasure: nobody's history
    if start is not None:
        df = df.filter(F.col("occurred_at") >= _ts_literal(start))
    if end is not None:
        df = df.filter(F.col("occurred_at") < _ts_literal(end))
    return df


def _micros(ts: Column) -> Column:
    """Microseconds since the epoch of a naive timestamp (the session time zone is UTC)."""
    return F.unix_micros(ts.cast(T.TimestampType()))


def weight_column(config: WeightingConfig, reference: datetime | None) -> Column:
    """The per-event weight (double) of :func:`features.matrix.build_matrix` as a Spark column."""
    if config.channel_weights:
        pairs = [x for k, v in config.channel_weights.items() for x in (F.lit(k), F.lit(float(v)))]
        channel = F.coalesce(F.create_map(*pairs)[F.col("channel")], F.lit(float(config.unknown_channel_weight)))
    else:
        channel = F.lit(float(config.unknown_channel_weight))
    weight = channel * (F.lit(1.0) + F.lit(float(config.renewal_weight)) * F.col("renewals").cast(T.DoubleType()))
    if config.use_value:
        weight = weight * F.col("value").cast(T.DoubleType())
    if config.half_life_days is not None:
        if reference is None:
            raise ValueError("weight_column: recency decay needs a reference time")
        ref_us = (reference - _EPOCH) // timedelta(microseconds=1)
        age_days = F.greatest((F.lit(ref_us) - _micros(F.col("occurred_at"))) / F.lit(_US_PER_DAY), F.lit(0.0))
        weight = weight * F.pow(F.lit(0.5), age_days / F.lit(float(config.half_life_days)))
    return weight


def vocabulary_frame(ids: DataFrame, column: str) -> tuple[DataFrame, Vocabulary]:
    """Sorted distinct ids of ``column`` with their index, computed in Spark, plus the driver-side
    :class:`Vocabulary` (same order as :meth:`Vocabulary.from_values`: byte-wise sorted strings).

    The index is dense without a single-partition window: after a range-partitioned sort,
    ``monotonically_increasing_id`` is (partition << 33) + position, and per-partition offsets
    (one small collect) turn it into 0..n-1.

    Returns:
        ``(frame (<column>, <column>_index int), vocabulary)``.
    """
    spark = ids.sparkSession
    distinct = ids.select(column).where(F.col(column).isNotNull()).distinct().orderBy(column)
    numbered = distinct.withColumn("_mid", F.monotonically_increasing_id()).withColumn("_pid", F.shiftright("_mid", 33))
    numbered = numbered.persist()
    counts = sorted(numbered.groupBy("_pid").count().collect())
    starts, total = [], 0
    for pid, n in counts:
        starts.append((int(pid), total))
        total += int(n)
    offsets = spark.createDataFrame(starts or [(0, 0)], "_pid long, _offset long")
    frame = (
        numbered.join(F.broadcast(offsets), "_pid")
        .select(
            column,
            (F.col("_offset") + F.col("_mid") - F.shiftleft(F.col("_pid"), 33)).cast("int").alias(f"{column}_index"),
        )
        .persist()
    )
    table = frame.toArrow()
    numbered.unpersist()
    order = np.argsort(table.column(f"{column}_index").to_numpy())
    values = pl.from_arrow(table.column(column)).gather(order)
    return frame, Vocabulary(values, column)


def vocabulary_to_frame(spark: SparkSession, vocabulary: Vocabulary) -> DataFrame:
    """A driver-side vocabulary as a Spark frame ``(<name>, <name>_index)`` for joins."""
    name = vocabulary.name
    table = pa.table(
        {name: vocabulary.series.to_arrow(), f"{name}_index": pa.array(np.arange(len(vocabulary), dtype=np.int32))}
    )
    return spark.createDataFrame(table)


@dataclass
class SparkRatings:
    """Weighted (reader, title) pairs as a distributed frame, with the vocabularies naming them.

    ``frame`` columns: ``reader_index`` (int), ``title_index`` (int), ``weight`` (float32): one row
    per stored matrix entry, exactly the entries of the polars-built matrix.
    """

    frame: DataFrame
    readers: Vocabulary
    titles: Vocabulary
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.readers), len(self.titles)

    def to_matrix(self) -> InteractionMatrix:
        """Collect to the driver as a float32 CSR :class:`InteractionMatrix` (Arrow transfer)."""
        table = self.frame.select("reader_index", "title_index", "weight").toArrow()
        rows = table.column("reader_index").to_numpy()
        cols = table.column("title_index").to_numpy()
        data = table.column("weight").to_numpy().astype(np.float32, copy=False)
        m = sp.csr_matrix((data, (rows, cols)), shape=self.shape, dtype=np.float32)
        m.sort_indices()
        return InteractionMatrix(m, self.readers, self.titles, {**self.meta, "nnz": int(m.nnz)})


def _apply_scheme(pairs: DataFrame, config: WeightingConfig, n_readers: int) -> DataFrame:
    """BM25 / TF-IDF of :func:`features.matrix._apply_scheme`, distributed (readers = documents)."""
    if config.scheme is None:
        return pairs
    df_t = pairs.groupBy("title_index").agg(F.count(F.lit(1)).cast("double").alias("_df"))
    out = pairs.join(df_t, "title_index")
    if config.scheme == "tfidf":
        idf = F.log((F.lit(1.0 + n_readers)) / (F.lit(1.0) + F.col("_df"))) + F.lit(1.0)
        return out.select("reader_index", "title_index", (F.col("weight") * idf).alias("weight"))
    row_len = pairs.groupBy("reader_index").agg(F.sum("weight").alias("_len"))
    mean_len = row_len.where(F.col("_len") > 0).agg(F.avg("_len")).first()[0] or 1.0
    out = out.join(row_len, "reader_index")
    idf = F.log1p((F.lit(float(n_readers)) - F.col("_df") + F.lit(0.5)) / (F.col("_df") + F.lit(0.5)))
    norm = F.lit(1.0 - config.bm25_b) + F.lit(config.bm25_b) * F.col("_len") / F.lit(float(mean_len))
    k1 = F.lit(float(config.bm25_k1))
    w = F.col("weight")
    return out.select("reader_index", "title_index", (w * (k1 + F.lit(1.0)) / (k1 * norm + w) * idf).alias("weight"))


def build_ratings(
    events: DataFrame,
    config: WeightingConfig | None = None,
    *,
    readers: Vocabulary | None = None,
    titles: Vocabulary | None = None,
) -> SparkRatings:
    """Weighted (reader, title) pairs of interaction events, as :func:`features.matrix.build_matrix`.

    Args:
        events: Spark frame with at least ``reader_id`` and ``title_id`` (see :func:`load_interactions`).
        config: weighting; defaults to ``WeightingConfig()``.
        readers / titles: fixed vocabularies (events outside them are dropped and counted);
            None = the sorted distinct ids of the kept events.

    Raises:
        ValueError: recency decay is on and some events have no ``occurred_at``.
    """
    config = config or WeightingConfig()
    df = standardise(events)
    reference = _reference_time(df, config)
    kept, n_events, kept_value, n_kept = _weighted_events(df, config, reference)
    known, readers, titles, drops = _indexed(kept, readers, titles)
    pairs = _pairs(known, config, len(readers))
    meta = {
        "weighting": config.model_dump(mode="json"),
        "reference_time": reference.isoformat() if reference is not None else None,
        "events": n_events,
        "dropped_low_value": n_events - kept_value,
        "dropped_zero_weight": kept_value - n_kept,
        "dropped_unknown_readers": drops[0],
        "dropped_unknown_titles": drops[1],
        "engine": "spark",
    }
    if drops[0] or drops[1]:
        _log.info(
            "build_ratings: dropped %d events of readers and %d of titles outside the vocabularies",
            drops[0],
            drops[1],
        )
    _log.debug("build_ratings: %d events -> %d x %d", n_events, len(readers), len(titles))
    return SparkRatings(pairs, readers, titles, meta)


def _reference_time(df: DataFrame, config: WeightingConfig) -> datetime | None:
    """The recency-decay reference: the config's, else the latest event (None without decay).

    Raises:
        ValueError: recency decay is on and some events have no ``occurred_at``.
    """
    if config.half_life_days is None:
        return config.reference_time
    row = df.agg(
        F.count(F.when(F.col("occurred_at").isNull(), 1)).alias("missing"),
        F.max("occurred_at").alias("latest"),
    ).first()
    if row["missing"]:
        raise ValueError(
            f"interactions.occurred_at: {row['missing']} events have no time, but recency "
            f"decay (half_life_days={config.half_life_days}) needs one"
        )
    return config.reference_time if config.reference_time is not None else row["latest"]


def _weighted_events(
    df: DataFrame, config: WeightingConfig, reference: datetime | None
) -> tuple[DataFrame, int, int, int]:
    """``(reader_id, title_id, weight)`` of the events passing ``min_value`` with a positive weight,
    and the counts: all events, those passing ``min_value``, those kept."""
    keep_value = F.lit(True) if config.min_value is None else F.col("value") >= F.lit(float(config.min_value))
    weighted = df.select(
        "reader_id",
        "title_id",
        keep_value.alias("_keep"),
        weight_column(config, reference).cast(T.FloatType()).alias("weight"),
    ).persist()  # read the tables once: counts, vocabularies and pairs all scan these events
    kept = weighted.where(F.col("_keep") & (F.col("weight") > 0)).drop("_keep")
    counts = weighted.agg(
        F.count(F.lit(1)).alias("events"),
        F.sum(F.col("_keep").cast("long")).alias("kept_value"),
        F.sum((F.col("_keep") & (F.col("weight") > 0)).cast("long")).alias("kept"),
    ).first()
    return kept, int(counts["events"]), int(counts["kept_value"] or 0), int(counts["kept"] or 0)


def _indexed(
    kept: DataFrame, readers: Vocabulary | None, titles: Vocabulary | None
) -> tuple[DataFrame, Vocabulary, Vocabulary, tuple[int, int]]:
    """Kept events with ``reader_id_index`` and ``title_id_index`` in the given vocabularies (or
    the sorted distinct ids of ``kept``), the vocabularies, and the events dropped as outside
    them: ``(of unknown readers, of known readers but unknown titles)``."""
    spark = kept.sparkSession
    if readers is None:
        reader_frame, readers = vocabulary_frame(kept, "reader_id")
    else:
        reader_frame = vocabulary_to_frame(spark, readers)
    if titles is None:
        title_frame, titles = vocabulary_frame(kept, "title_id")
    else:
        title_frame = vocabulary_to_frame(spark, titles)
    indexed = kept.join(reader_frame, "reader_id", "left").join(title_frame, "title_id", "left")
    drops = indexed.agg(
        F.count(F.when(F.col("reader_id_index").isNull(), 1)).alias("readers"),
        F.count(F.when(F.col("reader_id_index").isNotNull() & F.col("title_id_index").isNull(), 1)).alias("titles"),
    ).first()
    known = indexed.where(F.col("reader_id_index").isNotNull() & F.col("title_id_index").isNotNull())
    return known, readers, titles, (int(drops["readers"]), int(drops["titles"]))


def _pairs(known: DataFrame, config: WeightingConfig, n_readers: int) -> DataFrame:
    """One weighted row per (reader, title): aggregated, binarised and re-weighted as the config says."""
    agg = F.sum(F.col("weight").cast("double")) if config.aggregate == "sum" else F.max("weight")
    pairs = known.groupBy(
        F.col("reader_id_index").alias("reader_index"), F.col("title_id_index").alias("title_index")
    ).agg(agg.alias("weight"))
    if config.binarize:
        pairs = pairs.withColumn("weight", F.lit(1.0))
    pairs = _apply_scheme(pairs, config, n_readers)
    return pairs.select("reader_index", "title_index", F.col("weight").cast(T.FloatType()).alias("weight"))
