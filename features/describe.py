"""``describe(data_dir)``: what is in a yuedu data directory, as a JSON-serialisable summary.

Works on any data directory: a synthetic or ingested city (loans + ebook_events), an adapted public
data set (SCO loans, MovieLens interactions). Every figure is computed lazily with polars from the
Parquet tables (:func:`features.schema.scan_table`); nothing is loaded row by row.

The interaction events are the union of ``loans`` (at ``borrowed_at``, their channel), ``ebook_events``
(at ``occurred_at``, channel ``ebook_<action>``) and ``interactions`` (their channel, ``event`` if null),
as :func:`features.interactions.events_from_tables` reads them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from features.interactions import EVENT_TABLES, events_from_tables
from features.schema import CLC_TOP_CLASSES, TABLES, clc_top, scan_table, table_path

_log = logging.getLogger(__name__)

#: Quantiles reported for interactions per reader and per title (linear interpolation, as numpy).
QUANTILES: dict[str, float] = {"p10": 0.10, "p50": 0.50, "p90": 0.90, "p99": 0.99}
TOP_N = 10


def events(data_dir: str | Path) -> tuple[pl.LazyFrame | None, list[str]]:
    """All reader-title events of a directory (``features.interactions`` schema) and the tables
    they came from (None and ``[]`` when it holds none)."""
    used = [t for t in EVENT_TABLES if table_path(data_dir, t).exists()]
    if not used:
        return None, used
    return events_from_tables({t: scan_table(data_dir, t) for t in used}), used


def _quantiles(counts: pl.LazyFrame) -> pl.LazyFrame:
    c = pl.col("n")
    return counts.select(
        *[c.quantile(q, interpolation="linear").alias(k) for k, q in QUANTILES.items()],
        c.max().cast(pl.Float64).alias("max"),
        c.mean().alias("mean"),
    )


def _event_queries(ev: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
    """Figures every event source has: span, matrix size, per-reader/title quantiles, channels, months."""
    at = pl.col("occurred_at")
    return {
        "span": ev.select(pl.len().alias("count"), at.min().alias("first"), at.max().alias("last")),
        "matrix": ev.select(
            pl.col("reader_id").n_unique().alias("readers"),
            pl.col("title_id").n_unique().alias("titles"),
            pl.struct("reader_id", "title_id").n_unique().alias("pairs"),
        ),
        "per_reader": _quantiles(ev.group_by("reader_id").agg(pl.len().alias("n"))),
        "per_title": _quantiles(ev.group_by("title_id").agg(pl.len().alias("n"))),
        "by_channel": ev.group_by("channel")
        .agg(pl.len().alias("events"))
        .sort(["events", "channel"], descending=[True, False]),
        "by_month": ev.filter(at.is_not_null())
        .group_by(at.dt.strftime("%Y-%m").alias("month"))
        .agg(pl.len().alias("events"))
        .sort("month"),
    }


def _by_branch(data_dir: Path, has_branches: bool) -> pl.LazyFrame:
    """The top branches by loans, with name and district when the branches table is there."""
    by_branch = (
        scan_table(data_dir, "loans")
        .group_by("branch_id")
        .agg(pl.len().alias("loans"))
        .sort(["loans", "branch_id"], descending=[True, False])
        .head(TOP_N)
    )
    if has_branches:
        by_branch = by_branch.join(
            scan_table(data_dir, "branches").select("branch_id", "name", "district"), on="branch_id", how="left"
        ).sort(["loans", "branch_id"], descending=[True, False])
    return by_branch


def _top_clc(ev: pl.LazyFrame, data_dir: Path) -> pl.LazyFrame:
    """The top CLC top classes by events, with the catalogue's titles per class."""
    cat = scan_table(data_dir, "titles").select("title_id", clc_top(pl.col("clc_class")).alias("clc"))
    catalogue = cat.group_by("clc").agg(pl.len().alias("titles"))
    return (
        ev.select("title_id")
        .join(cat, on="title_id", how="left")
        .group_by(pl.col("clc").fill_null("?"))
        .agg(pl.len().alias("events"))
        .join(catalogue, on="clc", how="left")
        .with_columns(pl.col("titles").fill_null(0))
        .sort(["events", "clc"], descending=[True, False])
        .head(TOP_N)
    )


def _iso(v: object) -> str | None:
    return None if v is None else v.isoformat()  # type: ignore[attr-defined]


def _event_figures(results: dict[str, pl.DataFrame]) -> dict:
    """The summary keys ``matrix`` to ``by_month`` from the collected :func:`_event_queries`."""
    readers, titles, pairs = (int(results["matrix"][c][0]) for c in ("readers", "titles", "pairs"))
    return {
        "matrix": {
            "readers": readers,
            "titles": titles,
            "pairs": pairs,
            "density": pairs / (readers * titles) if readers and titles else 0.0,
        },
        "per_reader": {k: float(v) for k, v in results["per_reader"].row(0, named=True).items()},
        "per_title": {k: float(v) for k, v in results["per_title"].row(0, named=True).items()},
        "by_channel": results["by_channel"].to_dicts(),
        "by_month": results["by_month"].to_dicts(),
    }


def describe(data_dir: str | Path) -> dict:
    """A JSON-serialisable summary of a data directory.

    Keys: ``data_dir``, ``tables`` (rows per table present), ``events`` (sources, count, first/last
    ISO timestamps), ``matrix`` (readers, titles, distinct pairs, density of the reader x title matrix
    built from the events), ``per_reader`` / ``per_title`` (events per reader / per title: p10, p50, p90,
    p99, max, mean), ``by_branch`` (top 10 branches by loans, with name and district when known),
    ``by_channel``, ``by_month`` (``YYYY-MM``), ``top_clc`` (top 10 CLC top classes by events, with the
    catalogue's titles per class).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: not a data directory")
    present = [t for t in TABLES if table_path(data_dir, t).exists()]
    counts = pl.collect_all([scan_table(data_dir, t).select(pl.len()) for t in present])
    summary: dict = {
        "data_dir": str(data_dir),
        "tables": {t: int(c.item()) for t, c in zip(present, counts, strict=True)},
    }
    ev, used = events(data_dir)
    summary["events"] = {"sources": used, "count": 0, "first": None, "last": None}
    if ev is None:
        _log.info("%s: no loans, ebook_events or interactions", data_dir)
        return summary

    queries = _event_queries(ev)
    if "loans" in used:
        queries["by_branch"] = _by_branch(data_dir, "branches" in present)
    if "titles" in present:
        queries["top_clc"] = _top_clc(ev, data_dir)
    results = dict(zip(queries, pl.collect_all(list(queries.values())), strict=True))

    span = results["span"]
    summary["events"].update(count=int(span["count"][0]), first=_iso(span["first"][0]), last=_iso(span["last"][0]))
    summary.update(_event_figures(results))
    if "by_branch" in results:
        summary["by_branch"] = results["by_branch"].to_dicts()
    if "top_clc" in results:
        top = results["top_clc"].with_columns(
            pl.col("clc").replace_strict(CLC_TOP_CLASSES, default="unknown").alias("name")
        )
        summary["top_clc"] = top.select("clc", "name", "events", "titles").to_dicts()
    return summary
