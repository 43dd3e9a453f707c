"""The nightly top-n lists: every reader's best titles from a factorisation model, on Spark, written as Parquet.

The nightly refresh of the app: each reader's ``n`` best titles under the same business filters as
:func:`recsys.filters.build_exclusions` — **already borrowed** (loans and e-book events in the data
directory, optionally within ``borrowed_window_days`` before ``today``) and **audience** (adult-only
titles never reach minors or child cards; per-age-band audience whitelists) plus the explicit title
blocklist. Readers who refused personalisation (``opted_out``) get no list here (`yuedu nightly` adds the
service's non-personalised list for them, :mod:`serving.cli.nightly_cmds`). Availability is a live, per-branch fact and stays with the online service.

The title factors and the audience masks are broadcast once; readers stream through
``mapInArrow`` in Arrow batches, each scored with one matrix product and cut with
``argpartition`` (the same kernel as :func:`recsys.base.top_n_dense`). Output rows:
``reader_id`` (string), ``rank`` (int16, 1 = best), ``title_id`` (string), ``score`` (float32).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features.schema import AGE_BANDS, AUDIENCES, CARD_TYPES
from features.spark.interactions import load_interactions, read_table, vocabulary_to_frame
from recsys.filters import FilterConfig, audience_blocks
from recsys.models.factorization import FactorizationRecommender

_log = logging.getLogger(__name__)

#: Arrow schema of the written recommendations.
OUTPUT_SCHEMA = pa.schema(
    [("reader_id", pa.string()), ("rank", pa.int16()), ("title_id", pa.string()), ("score", pa.float32())]
)


@dataclass
class NightlySummary:
    """What :func:`nightly_top_n` wrote: readers, rows, wall seconds and where."""

    out: Path
    readers: int
    rows: int
    seconds: float


def title_audience_codes(spark: SparkSession, data_dir: str | Path, model: FactorizationRecommender) -> np.ndarray:
    """Audience code (index into ``AUDIENCES``, -1 unknown) of each model title column."""
    table = read_table(spark, data_dir, "titles").select("title_id", "audience").toArrow()
    frame = pl.from_arrow(table).unique("title_id", keep="first")
    codes = pl.DataFrame({"audience": list(AUDIENCES), "code": np.arange(len(AUDIENCES), dtype=np.int8)})
    aligned = (
        model.titles_.series.alias("title_id")
        .to_frame()
        .join(frame, on="title_id", how="left", maintain_order="left")
        .join(codes, on="audience", how="left", maintain_order="left")
    )
    return aligned["code"].fill_null(-1).to_numpy().astype(np.int8)


def reader_groups(spark: SparkSession, data_dir: str | Path, config: FilterConfig) -> DataFrame:
    """``(reader_id, group)``: the audience group of :func:`recsys.filters.audience_groups`
    (``age_band_code + 1``, plus ``len(AGE_BANDS) + 1`` for a child card), computed in Spark."""
    band = F.create_map(*[x for i, b in enumerate(AGE_BANDS) for x in (F.lit(b), F.lit(i))])
    child_cards = [c for c in config.child_card_types if c in CARD_TYPES]
    readers = read_table(spark, data_dir, "readers")
    band_code = F.coalesce(band[F.col("age_band")], F.lit(-1))
    child = F.col("card_type").isin(child_cards) if child_cards else F.lit(False)
    return readers.select(
        "reader_id",
        (band_code + 1 + F.coalesce(child, F.lit(False)).cast("int") * (len(AGE_BANDS) + 1)).alias("group"),
    )


def _reader_factors(
    spark: SparkSession, model: FactorizationRecommender, reader_rows: np.ndarray | None = None
) -> DataFrame:
    rows = np.arange(len(model.readers_)) if reader_rows is None else np.asarray(reader_rows, dtype=np.int64)
    factors = np.ascontiguousarray(model.user_factors_[rows], dtype=np.float32)
    rank = factors.shape[1]
    features = pa.FixedSizeListArray.from_arrays(pa.array(factors.reshape(-1)), rank)
    table = pa.table(
        {
            "reader_id": model.readers_.series.gather(rows).to_arrow(),
            "reader_index": pa.array(rows.astype(np.int32)),
            "factors": features.cast(pa.list_(pa.float32())),
        }
    )
    return spark.createDataFrame(table)


def _top_n_batches(
    batches: Iterator[pa.RecordBatch], title_factors, blocks, title_ids, n: int
) -> Iterator[pa.RecordBatch]:
    """Score one Arrow batch of readers against every title and keep the n best allowed ones."""
    v = title_factors.value
    masks = blocks.value
    ids = title_ids.value
    n_titles = v.shape[0]
    m = min(n, n_titles)
    for batch in batches:
        k = batch.num_rows
        if k == 0:
            continue
        rank = v.shape[1]
        u = batch.column("factors").flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(k, rank)
        scores = u @ v.T
        group = batch.column("group").to_numpy(zero_copy_only=False)
        scores[masks[group]] = -np.inf
        seen = batch.column("seen")
        if seen.null_count < k:
            lengths = pc.list_value_length(seen).fill_null(0).to_numpy(zero_copy_only=False)
            cols = pc.list_flatten(seen).to_numpy(zero_copy_only=False).astype(np.int64)
            scores[np.repeat(np.arange(k), lengths), cols] = -np.inf
        part = np.argpartition(-scores, m - 1, axis=1)[:, :m] if m < n_titles else np.tile(np.arange(n_titles), (k, 1))
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
        top_scores = np.take_along_axis(part_scores, order, axis=1)
        valid = np.isfinite(top_scores)
        reader_ids = batch.column("reader_id").to_numpy(zero_copy_only=False)
        rows = np.repeat(np.arange(k), m).reshape(k, m)
        ranks = np.broadcast_to(np.arange(1, m + 1, dtype=np.int16), (k, m))
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(reader_ids[rows[valid]], pa.string()),
                pa.array(ranks[valid], pa.int16()),
                pa.array(ids[top[valid]], pa.string()),
                pa.array(top_scores[valid].astype(np.float32), pa.float32()),
            ],
            schema=OUTPUT_SCHEMA,
        )


def recommend_frame(
    spark: SparkSession,
    model: FactorizationRecommender,
    data_dir: str | Path,
    n: int = 20,
    filters: FilterConfig | None = None,
    today: date | None = None,
    batch_rows: int = 1024,
    reader_rows: np.ndarray | None = None,
    opted_out: Collection[str] = (),
) -> DataFrame:
    """The lazy Spark frame of every model reader's top-``n`` (see the module docstring).

    Args:
        model: a fitted factorisation model (ALS, BPR, or a loaded model directory).
        data_dir: the data directory whose ``readers``, ``titles``, ``loans`` and ``ebook_events``
            give the audience and already-borrowed filters.
        n: list length per reader.
        filters: which filters apply (``filter_borrowed``, ``borrowed_window_days``,
            ``audience_rules``, ``excluded_title_ids``; availability is left to the service).
        today: reference day of the borrowed window (default: today).
        batch_rows: readers per Arrow batch (memory: batch_rows × titles × 4 bytes per task).
        reader_rows: only these model reader rows (a trial run or a measured sample); None = all.
        opted_out: readers who refused personalisation (``serving.preferences.ReaderPreferences
            .opted_out()``): they get no history-based list (the service shows them popularity).
    """
    config = filters or FilterConfig()
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n}")
    n_titles = len(model.titles_)
    if config.audience_rules:
        audience = title_audience_codes(spark, data_dir, model)
        blocks = audience_blocks(audience, config)
    else:
        blocks = np.zeros((2 * (len(AGE_BANDS) + 1), n_titles), dtype=bool)
    if config.excluded_title_ids:
        idx = model.titles_.index(list(config.excluded_title_ids))
        blocks[:, idx[idx >= 0]] = True

    readers = _reader_factors(spark, model, reader_rows).join(
        reader_groups(spark, data_dir, config), "reader_id", "left"
    )
    if opted_out:
        refused = spark.createDataFrame([(str(r),) for r in dict.fromkeys(opted_out)], "reader_id string")
        readers = readers.join(F.broadcast(refused), "reader_id", "left_anti")
    readers = readers.withColumn("group", F.coalesce(F.col("group"), F.lit(0)).cast("int"))
    if config.filter_borrowed:
        start = None
        if config.borrowed_window_days is not None:
            day = today or date.today()
            start = datetime.combine(day - timedelta(days=config.borrowed_window_days), datetime.min.time())
        events = load_interactions(spark, data_dir, start=start).select("reader_id", "title_id")
        seen = (
            events.join(vocabulary_to_frame(spark, model.titles_), "title_id")
            .groupBy("reader_id")
            .agg(F.array_distinct(F.collect_list("title_id_index")).alias("seen"))
        )
        readers = readers.join(seen, "reader_id", "left")
    else:
        readers = readers.withColumn("seen", F.lit(None).cast("array<int>"))

    sc = spark.sparkContext
    b_factors = sc.broadcast(np.ascontiguousarray(model.item_factors_, dtype=np.float32))
    b_blocks = sc.broadcast(blocks)
    b_ids = sc.broadcast(model.titles_.ids)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return _top_n_batches(batches, b_factors, b_blocks, b_ids, n)

    return readers.select("reader_id", "factors", "group", "seen").mapInArrow(
        score, "reader_id string, rank smallint, title_id string, score float"
    )


def nightly_top_n(
    spark: SparkSession,
    model: FactorizationRecommender,
    data_dir: str | Path,
    out: str | Path,
    n: int = 20,
    filters: FilterConfig | None = None,
    today: date | None = None,
    batch_rows: int = 1024,
    reader_rows: np.ndarray | None = None,
    opted_out: Collection[str] = (),
) -> NightlySummary:
    """Compute every model reader's top-``n`` on Spark and write it as Parquet to ``out`` (a folder
    of part files, replaced if present). See :func:`recommend_frame` for the arguments."""
    started = time.perf_counter()
    frame = recommend_frame(spark, model, data_dir, n, filters, today, batch_rows, reader_rows, opted_out)
    frame.write.mode("overwrite").parquet(str(out))
    written = spark.read.parquet(str(out))
    stats = written.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("reader_id").alias("readers")).first()
    seconds = time.perf_counter() - started
    _log.info("nightly top-%d: %d readers, %d rows to %s in %.1f s", n, stats["readers"], stats["rows"], out, seconds)
    return NightlySummary(Path(out), int(stats["readers"]), int(stats["rows"]), seconds)
