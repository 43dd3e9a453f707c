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

:func:`events_from_tables` does the same for tables already in memory, and can keep the branch a
loan was made at: the library context (``recsys.context``) builds its reading history and
per-branch popularity from it, and ``features.describe`` its summary, so how a loan, a renewal or an
e-book event becomes a reading event is written once, here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import polars as pl

from features.privacy import ERASED_PREFIX
from features.schema import INTERACTIONS, conform, scan_table, table_path

_log = logging.getLogger(__name__)

#: Channel given to generic events whose table has no ``channel`` value.
DEFAULT_CHANNEL = "event"
#: Prefix of e-book event channels (``ebook_download``, ``ebook_read``).
EBOOK_CHANNEL_PREFIX = "ebook_"
#: The tables whose rows are reader–title events, in the order their events are concatenated.
EVENT_TABLES: tuple[str, ...] = ("loans", "ebook_events", "interactions")
#: Extra column of :func:`events_from_tables` with ``with_branch``: the branch a loan was made at.
BRANCH_COLUMN = "branch_id"


def standardise(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Conform any frame with at least ``reader_id`` and ``title_id`` to the interactions schema.

    Absent or null optional fields get their neutral values: channel ``"event"``, renewals 0,
    value 1.0; ``occurred_at`` stays null when unknown.
    """
    return _fill_neutral(conform(frame.lazy(), INTERACTIONS.name))


def _fill_neutral(events: pl.LazyFrame) -> pl.LazyFrame:
    return events.with_columns(
        pl.col("channel").fill_null(DEFAULT_CHANNEL),
        pl.col("renewals").fill_null(0),
        pl.col("value").fill_null(1.0),
    )


def _event_schema(with_branch: bool) -> dict[str, pl.DataType]:
    schema = dict(INTERACTIONS.polars_schema)
    if with_branch:
        schema[BRANCH_COLUMN] = pl.String()
    return schema


def _conform_events(events: pl.LazyFrame, with_branch: bool) -> pl.LazyFrame:
    """``events`` cast to the interactions columns (+ the branch), absent ones as nulls."""
    names = events.collect_schema().names()
    return events.select(
        (pl.col(n) if n in names else pl.lit(None)).cast(dtype).alias(n)
        for n, dtype in _event_schema(with_branch).items()
    )


def _loan_events(loans: pl.LazyFrame) -> pl.LazyFrame:
    """A loan is an event at ``borrowed_at`` with its channel and renewals, at its branch."""
    return conform(loans, "loans").select(
        "reader_id",
        "title_id",
        pl.col("borrowed_at").alias("occurred_at"),
        "channel",
        "renewals",
        pl.lit(1.0).alias("value"),
        BRANCH_COLUMN,
    )


def _ebook_events(events: pl.LazyFrame) -> pl.LazyFrame:
    """An e-book event has channel ``ebook_<action>``, no renewals and no branch."""
    return conform(events, "ebook_events").select(
        "reader_id",
        "title_id",
        "occurred_at",
        (pl.lit(EBOOK_CHANNEL_PREFIX) + pl.col("action")).alias("channel"),
        pl.lit(0).alias("renewals"),
        pl.lit(1.0).alias("value"),
    )


def _generic_events(interactions: pl.LazyFrame) -> pl.LazyFrame:
    """A generic ``interactions`` table already holds events (and no branch)."""
    return interactions


_EVENTS_OF = {"loans": _loan_events, "ebook_events": _ebook_events, "interactions": _generic_events}


def events_from_tables(tables: Mapping[str, pl.DataFrame | pl.LazyFrame], *, with_branch: bool = False) -> pl.LazyFrame:
    """Every reader–title event of the given tables, concatenated, in the ``interactions`` schema.

    Only the :data:`EVENT_TABLES` among ``tables`` are read, in that order (loans, e-book events,
    generic interactions), every row of each; which tables a data directory contributes is the
    caller's choice (:func:`load_interactions` prefers a generic table over the loans). Null
    optional fields get their neutral values, as in :func:`standardise`.

    Args:
        tables: frames keyed by table name, conformed to their schema or not.
        with_branch: also return :data:`BRANCH_COLUMN`, the branch a loan was made at (null for
            e-book and generic events).
    """
    # conform each part first so that the concatenation sees identical schemas
    parts = [
        _conform_events(_EVENTS_OF[name](tables[name].lazy()), with_branch) for name in EVENT_TABLES if name in tables
    ]
    if not parts:
        return pl.LazyFrame(schema=_event_schema(with_branch))
    return _fill_neutral(pl.concat(parts, how="vertical"))


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

    Rows whose reader id carries :data:`features.privacy.ERASED_PREFIX` (loans kept, pseudonymised,
    after a reader erased their profile) are left out: no model and no profile is built from them.

    Raises:
        FileNotFoundError: the directory has neither ``interactions.parquet`` nor ``loans.parquet``.
    """
    d = Path(data_dir)
    if table_path(d, "interactions").exists():
        sources = ["interactions"]
    elif table_path(d, "loans").exists():
        sources = ["loans"]
        if include_ebooks and table_path(d, "ebook_events").exists():
            sources.append("ebook_events")
    else:
        raise FileNotFoundError(f"{d}: no interactions.parquet or loans.parquet: not a yuedu data directory")
    _log.debug("interactions of %s from %s", d, "+".join(sources))
    lf = events_from_tables({name: scan_table(d, name) for name in sources})
    # records kept after a reader erased their profile carry a pseudonym: nobody's history any more
    lf = lf.filter(~pl.col("reader_id").str.starts_with(ERASED_PREFIX))
    if start is not None:
        lf = lf.filter(pl.col("occurred_at") >= pl.lit(start).cast(pl.Datetime("us")))
    if end is not None:
        lf = lf.filter(pl.col("occurred_at") < pl.lit(end).cast(pl.Datetime("us")))
    return lf
