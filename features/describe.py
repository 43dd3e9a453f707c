"""``describe(data_dir)``: what is in a yuedu data directory, as a JSON-serialisable summary.

Works on any data directory: a synthetic or ingested city (loans + ebook_events), an adapted public
data set (SCO loans, MovieLens interactions). Every figure is computed lazily with polars from the
Parquet tables (:func:`features.schema.scan_table`); nothing is loaded row by row.

The interaction events are the union of ``loans`` (at ``borrowed_at``, their channel), ``ebook_events``
(at ``occurred_at``, channel ``ebook_<action>``) and ``interactions`` (their channel, ``event`` if null).
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from features.schema import CLC_TOP_CLASSES, TABLES, clc_top, scan_table, table_path

_log = logging.getLogger(__name__)

#: Quantiles reported for interactions per reader and per title (linear interpolation, as numpy).
QUANTILES: dict[str, float] = {"p10": 0.10, "p50": 0.50, "p90": 0.90, "p99": 0.99}
EVENT_TABLES: tuple[str, ...] = ("loans", "ebook_events", "interactions")
TOP_N = 10


def events(data_dir: str | Path) -> tuple[pl.LazyFrame | None, list[str]]:
    """All reader-title events of a directory as ``(reader_id, title_id, at, channel, branch_id)``."""
    parts: list[pl.LazyFrame] = []
    used: list[str] = []
    if table_path(data_dir, "loans").exists():
        parts.append(
            scan_table(data_dir, "loans").select(
                "reader_id", "title_id", pl.col("borrowed_at").alias("at"), "channel", "branch_id"
            )
        )
        used.append("loans")
    if table_path(data_dir, "ebook_events").exists():
        parts.append(
            scan_table(data_dir, "ebook_events").select(
                "reader_id",
                "title_id",
                pl.col("occurred_at").alias("at"),
                pl.format("ebook_{}", "action").alias("channel"),
                pl.lit(None, dtype=pl.String).alias("branch_id"),
            )
        )
        used.append("ebook_events")
    if table_path(data_dir, "interactions").exists():
        lf = scan_table(data_dir, "interactions")
        names = lf.collect_schema().names()
        parts.append(
            lf.select(
                "reader_id",
                "title_id",
                (pl.col("occurred_at") if "occurred_at" in names else pl.lit(None)).cast(pl.Datetime("us")).alias("at"),
                (pl.col("channel") if "channel" in names else pl.lit(None))
                .cast(pl.String)
                .fill_null("event")
                .alias("channel"),
                pl.lit(None, dtype=pl.String).alias("branch_id"),
            )
        )
        used.append("interactions")
    if not parts:
        return None, used
    casted = [p.with_columns(pl.col("at").cast(pl.Datetime("us"))) for p in parts]
    return pl.concat(casted, how="vertical_relaxed"), used


def _quantiles(counts: pl.LazyFrame) -> pl.LazyFrame:
    c = pl.col("n")
    return counts.select(
        *[c.quantile(q, interpolation="linear").alias(k) for k, q in QUANTILES.items()],
        c.max().cast(pl.Float64).alias("max"),
        c.mean().alias("mean"),
    )


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

    per_reader = ev.group_by("reader_id").agg(pl.len().alias("n"))
    per_title = ev.group_by("title_id").agg(pl.len().alias("n"))
    queries = [
        ev.select(pl.len().alias("count"), pl.col("at").min().alias("first"), pl.col("at").max().alias("last")),
        ev.select(
            pl.col("reader_id").n_unique().alias("readers"),
            pl.col("title_id").n_unique().alias("titles"),
            pl.struct("reader_id", "title_id").n_unique().alias("pairs"),
        ),
        _quantiles(per_reader),
        _quantiles(per_title),
        ev.group_by("channel").agg(pl.len().alias("events")).sort(["events", "channel"], descending=[True, False]),
        ev.filter(pl.col("at").is_not_null())
        .group_by(pl.col("at").dt.strftime("%Y-%m").alias("month"))
        .agg(pl.len().alias("events"))
        .sort("month"),
    ]
    has_loans = "loans" in used
    if has_loans:
        by_branch = (
            scan_table(data_dir, "loans")
            .group_by("branch_id")
            .agg(pl.len().alias("loans"))
            .sort(["loans", "branch_id"], descending=[True, False])
            .head(TOP_N)
        )
        if "branches" in present:
            by_branch = by_branch.join(
                scan_table(data_dir, "branches").select("branch_id", "name", "district"), on="branch_id", how="left"
            ).sort(["loans", "branch_id"], descending=[True, False])
        queries.append(by_branch)
    has_titles = "titles" in present
    if has_titles:
        cat = scan_table(data_dir, "titles").select("title_id", clc_top(pl.col("clc_class")).alias("clc"))
        catalogue = cat.group_by("clc").agg(pl.len().alias("titles"))
        queries.append(
            ev.select("title_id")
            .join(cat, on="title_id", how="left")
            .group_by(pl.col("clc").fill_null("?"))
            .agg(pl.len().alias("events"))
            .join(catalogue, on="clc", how="left")
            .with_columns(pl.col("titles").fill_null(0))
            .sort(["events", "clc"], descending=[True, False])
            .head(TOP_N)
        )
    results = pl.collect_all(queries)
    span, matrix, q_reader, q_title, by_channel, by_month = results[:6]
    rest = results[6:]

    def iso(v: object) -> str | None:
        return None if v is None else v.isoformat()  # type: ignore[attr-defined]

    summary["events"].update(count=int(span["count"][0]), first=iso(span["first"][0]), last=iso(span["last"][0]))
    readers, titles, pairs = (int(matrix[c][0]) for c in ("readers", "titles", "pairs"))
    summary["matrix"] = {
        "readers": readers,
        "titles": titles,
        "pairs": pairs,
        "density": pairs / (readers * titles) if readers and titles else 0.0,
    }
    summary["per_reader"] = {k: float(v) for k, v in q_reader.row(0, named=True).items()}
    summary["per_title"] = {k: float(v) for k, v in q_title.row(0, named=True).items()}
    summary["by_channel"] = by_channel.to_dicts()
    summary["by_month"] = by_month.to_dicts()
    if has_loans:
        summary["by_branch"] = rest.pop(0).to_dicts()
    if has_titles:
        top = rest.pop(0).with_columns(pl.col("clc").replace_strict(CLC_TOP_CLASSES, default="unknown").alias("name"))
        summary["top_clc"] = top.select("clc", "name", "events", "titles").to_dicts()
    return summary
