"""Ingest: loan rows per second through yuedu's validated ingest vs a bare polars read of the file.

The yuedu side is :func:`features.ingest.ingest_table` on the loans export (read as strings, every
cell typed and checked, references checked against the parent tables' keys, rejects split off);
the peer is ``pl.read_csv`` of the same file with polars' own type inference, which validates
nothing. Both run with the same polars thread pool (set by ``POLARS_MAX_THREADS`` before import).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

import polars as pl

from benchmarks.data import city_dir, loans_csv, parent_keys
from benchmarks.harness import BenchContext, Goal, PeakRSS, Row, time_pair
from features.ingest import ingest_table

_log = logging.getLogger(__name__)

#: Loan rows per second the validated ingest must sustain (issue 7).
INGEST_GOAL = Goal(">=", 2_000_000, "rows/s")


def run(ctx: BenchContext) -> Iterator[Row]:
    data = city_dir(ctx)
    csv = loans_csv(data)
    parquet = data / "loans.parquet"
    keys = parent_keys(data)
    now = datetime.now()
    for label, path, peer_name, peer in (
        ("loans CSV export", csv, "pl.read_csv (inferred types, no checks)", lambda: pl.read_csv(csv)),
        ("loans Parquet", parquet, "pl.read_parquet", lambda: pl.read_parquet(parquet)),
    ):
        result: dict = {}

        def ours(path=path, result=result) -> None:
            validated, report = ingest_table(path, "loans", now=now, parent_keys=keys)
            result["report"] = report

        rss = PeakRSS()
        t_ours, t_peer = time_pair(ours, peer, ctx.repeats, sampler=rss)
        report = result["report"]
        n = report.read
        yield (
            Row(
                bench="ingest",
                name=f"{label}: rows/s",
                value=n / t_ours,
                unit="rows/s",
                peer=peer_name,
                peer_value=n / t_peer,
                goal=INGEST_GOAL,
                peak_rss_mb=rss.peak_mb,
                extra={
                    "rows": n,
                    "accepted": report.accepted,
                    "rejected": report.rejected_total,
                    "seconds": t_ours,
                    "peer_seconds": t_peer,
                    "file_mb": path.stat().st_size / 1e6,
                },
            )
        )
