"""Reader–title interaction events in one standard shape, from whatever a data directory holds.

A data directory either has a generic ``interactions.parquet`` (public data sets such as MovieLens)
or the library export tables ``loans.parquet`` (+ ``ebook_events.parquet``). :func:`load_interactions`
turns either into the columns of the ``interactions`` schema so that the matrix builder and the
splitters never need to know where events came from:

============  ============================================================================
reader_id     pseudonymous reader id
title_id      title id (loans already carry it, so copies aggregate to titles)
occurred_at   when (loans: ``borrowed_at``)
channel       loan channel (``counter``, ``self_service``, ...), ``ebook_download``,
              ``ebook_read``, or the generic table's own value (``rating``, ...)
renewals      loan renewals, 0 for everything else
value         explicit value (a star rating); 1.0 for plain events
============  ============================================================================
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import polars as pl

from features.schema import INTERACTIONS, conform, scan_table, table_path

_log = logging.getLogger(__name__)

#: Channel given to generic events whose table has no ``channel`` value.
DEFAULT_CHANNEL = "event"
#: Prefix of e-book event channels (``ebook_download``, ``ebook_read``).
EBOOK_CHANNEL_PREFIX = "ebook_"


def standardise(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Conform any frame with at least ``reader_id`` and ``title_id`` to the interactions schema.

    Absent or null optional fields get their neutral values: channel ``"event"``, renewals 0,
    value 1.0; ``occurred_at`` stays null when unknown.
    """
    conformed = conform(frame.lazy(), INTERACTIONS.name)
    return conformed.with_columns(
        pl.col("channel").fill_null(DEFAULT_CHANNEL),
        pl.col("renewals").fill_null(0),
        pl.col("value").fill_null(1.0),
    )


def _from_loans(data_dir: Path) -> pl.LazyFrame:
    loans = conform(scan_table(data_dir, "loans"), "loans")
    return loans.select(
        "reader_id",
        "title_id",
        pl.col("borrowed_at").alias("occurred_at"),
        "channel",
        "renewals",
        pl.lit(1.0).alias("value"),
    )


def _from_ebook_events(data_dir: Path) -> pl.LazyFrame:
    events = scan_table(data_dir, "ebook_events")
    return events.select(
        "reader_id",
        "title_id",
        "occurred_at",
        (pl.lit(EBOOK_CHANNEL_PREFIX) + pl.col("action")).alias("channel"),
        pl.lit(0).alias("renewals"),
        pl.lit(1.0).alias("value"),
    )


def load_interactions(
    data_dir: str | Path,
    *,
    include_ebooks: bool = True,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.LazyFrame:
    """Lazily read every reader–title event of a data directory in the ``interactions`` schema.

    Args:
        data_dir: directory of Parquet tables.
        include_ebooks: also read ``ebook_events.parquet`` (library exports only; ignored when the
            directory holds a generic ``interactions.parquet``).
        start: keep events with ``occurred_at >= start`` (inclusive); events without a time are
            then dropped.
        end: keep events with ``occurred_at < end`` (exclusive).

    Raises:
        FileNotFoundError: the directory has neither ``interactions.parquet`` nor ``loans.parquet``.
    """
    d = Path(data_dir)
    if table_path(d, "interactions").exists():
        lf = scan_table(d, "interactions")
        source = "interactions"
    elif table_path(d, "loans").exists():
        parts = [_from_loans(d)]
        source = "loans"
        if include_ebooks and table_path(d, "ebook_events").exists():
            parts.append(_from_ebook_events(d))
            source = "loans+ebook_events"
        # conform each part first so that the concatenation sees identical schemas
        lf = pl.concat([conform(p, INTERACTIONS.name) for p in parts], how="vertical")
    else:
        raise FileNotFoundError(f"{d}: no interactions.parquet or loans.parquet: not a yuedu data directory")
    _log.debug("interactions of %s from %s", d, source)
    lf = standardise(lf)
    if start is not None:
        lf = lf.filter(pl.col("occurred_at") >= pl.lit(start).cast(pl.Datetime("us")))
    if end is not None:
        lf = lf.filter(pl.col("occurred_at") < pl.lit(end).cast(pl.Datetime("us")))
    return lf
