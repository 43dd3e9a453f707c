"""Scaling: how time and peak memory of the pipeline steps grow with the size of the city.

Steps: ingest the loans export, build the interaction matrix, fit ALS. Sizes: the ``small`` city,
the ``city`` profile and the city with its population doubled (``features.synth`` has no larger
profile); with ``--quick``: small, 2x and 4x small. The exponent ``b`` of ``time ~ events ** b`` is
the least-squares slope in log-log space (1 = linear; the steps should all be close to 1).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from datetime import datetime

from benchmarks.data import city_dir, interactions, repeated_loans_csv
from benchmarks.harness import BenchContext, PeakRSS, Row, scaling_exponent
from benchmarks.training import als_params
from features.ingest import ingest_table
from features.matrix import build_matrix
from recsys.models import ALSRecommender

_log = logging.getLogger(__name__)


def sizes(ctx: BenchContext) -> list[tuple[str, str, int]]:
    """(label, profile, population copies) per size, smallest first."""
    if ctx.quick:
        return [("small", "small", 1), ("2x small", "small", 2), ("4x small", "small", 4)]
    return [("small", "small", 1), ("city", "city", 1), ("2x city", "city", 2)]


def run(ctx: BenchContext) -> Iterator[Row]:
    now = datetime.now()
    steps = ("ingest loans CSV", "build matrix", "ALS fit")
    seconds: dict[str, list[float]] = {s: [] for s in steps}
    work: dict[str, list[float]] = {s: [] for s in steps}
    rss: dict[str, list[float]] = {s: [] for s in steps}
    labels = []
    for label, profile, copies in sizes(ctx):
        labels.append(label)
        data = city_dir(ctx, profile)
        csv, keys = repeated_loans_csv(data, copies)
        events = interactions(data, copies)
        state: dict = {}

        def ingest(csv=csv, keys=keys) -> int:
            return ingest_table(csv, "loans", now=now, parent_keys=keys)[1].read

        def build(events=events, state=state) -> int:
            state["matrix"] = build_matrix(events)
            return events.height

        def fit(state=state) -> int:
            ALSRecommender(**als_params(ctx), threads=ctx.threads).fit(state["matrix"])
            return state["matrix"].nnz

        for step, fn in zip(steps, (ingest, build, fit), strict=True):
            sampler = PeakRSS()
            gc.collect()
            with sampler:
                t0 = time.perf_counter()
                size = fn()
                seconds[step].append(time.perf_counter() - t0)
            work[step].append(float(size))
            rss[step].append(sampler.peak_mb)
    units = {"ingest loans CSV": "loan rows", "build matrix": "events", "ALS fit": "nnz"}
    for step in steps:
        yield (
            Row(
                bench="scaling",
                name=f"{step}: exponent b in time ~ {units[step]}^b",
                value=scaling_exponent(work[step], seconds[step]),
                unit="",
                peak_rss_mb=max(rss[step]),
                extra={
                    "sizes": labels,
                    units[step]: work[step],
                    "seconds": seconds[step],
                    "peak_rss_mb": rss[step],
                },
            )
        )
