"""Spark against the single-machine engine on one data directory: wall seconds per stage, CPU seconds
and peak memory, for ``docs/scaling.md``.

Stages: *features* (weighted matrix), *fit* (ALS), *aggregates* (the demand table of
:mod:`benchmarks.spark.demand`, written as Parquet) and *top_n* (the ``n`` best titles for the first
``top_n_readers`` readers, written as Parquet; its cost is linear in readers); Spark adds *start*
(the session). Run one engine per process so that peaks do not mix::

    .venv/bin/python -m benchmarks.spark.engines {local|spark} DATA_DIR OUT
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from features.matrix import InteractionMatrix

_log = logging.getLogger(__name__)

ENGINES = ("local", "spark")


class ResourceMeter:
    """Samples this process and its children (the Spark JVM and its Python workers) every 0.2 s:
    peak resident memory (bytes) and CPU seconds (user + system, summed over every process seen,
    so the figure holds even when other jobs compete for the cores)."""

    def __init__(self) -> None:
        import threading

        import psutil

        self._proc = psutil.Process()
        self.peak = 0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return float(sum(self._cpu.values()))

    def _sample(self) -> int:
        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
                t = p.cpu_times()
                self._cpu[p.pid] = max(self._cpu.get(p.pid, 0.0), t.user + t.system)
            except Exception:  # noqa: BLE001 - a child may exit between listing and reading
                continue
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self._sample())

    def __enter__(self) -> ResourceMeter:
        self.peak = self._sample()
        self.cpu_at_start = self.cpu_seconds
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def _timed(seconds: dict[str, float], stage: str, run: Callable[[], Any]) -> Any:
    """Run one stage, record its wall seconds under ``stage`` and log them; return its result."""
    t = time.perf_counter()
    result = run()
    seconds[stage] = time.perf_counter() - t
    _log.info("measure: %s %.1f s", stage, seconds[stage])
    return result


@dataclass(frozen=True)
class _Workload:
    """What both engines do: ALS with ``factors`` x ``iterations``, top-``n`` for ``top_n_readers``."""

    data_dir: Path
    out: Path
    factors: int
    iterations: int
    n: int
    top_n_readers: int


def _measure_local(w: _Workload, seconds: dict[str, float]) -> InteractionMatrix:
    """The single-machine stages (polars, implicit); returns the matrix they built."""
    from benchmarks.spark.demand import demand_polars
    from features.interactions import load_interactions
    from features.matrix import build_matrix
    from recsys.models import make_model

    matrix = _timed(seconds, "features", lambda: build_matrix(load_interactions(w.data_dir)))
    als = make_model("als", factors=w.factors, iterations=w.iterations, threads=2)
    model = _timed(seconds, "fit", lambda: als.fit(matrix))
    _timed(seconds, "aggregates", lambda: demand_polars(w.data_dir).write_parquet(w.out / "demand.parquet"))

    def top_n() -> None:
        rows = np.arange(min(w.top_n_readers, len(model.readers_)))
        ids, scores = model.recommend(rows, w.n)
        frame = pl.DataFrame({"reader": np.repeat(rows, w.n), "title": ids.ravel(), "score": scores.ravel()})
        frame.write_parquet(w.out / "recs.parquet")

    _timed(seconds, "top_n", top_n)
    return matrix


def _measure_spark(w: _Workload, seconds: dict[str, float], master: str, driver_memory: str) -> InteractionMatrix:
    """The Spark stages (Spark SQL, MLlib ALS, the nightly top-n); returns the matrix they built."""
    from benchmarks.spark.demand import demand_spark
    from features.spark.interactions import build_ratings, load_interactions
    from features.spark.session import spark_session
    from recsys.filters import FilterConfig
    from recsys.spark.als import SparkALS
    from recsys.spark.nightly import nightly_top_n

    session = _timed(seconds, "start", lambda: spark_session(master, "yuedu-measure", driver_memory=driver_memory))

    def features():
        ratings = build_ratings(load_interactions(session, w.data_dir))
        return ratings, ratings.to_matrix()

    ratings, matrix = _timed(seconds, "features", features)
    model = _timed(seconds, "fit", lambda: SparkALS(factors=w.factors, iterations=w.iterations).fit(ratings, matrix))
    demand = demand_spark(session, w.data_dir)
    _timed(seconds, "aggregates", lambda: demand.write.mode("overwrite").parquet(str(w.out / "demand")))
    config = FilterConfig(require_available=False, exclude_withdrawn=False, audience_rules=False)
    rows = np.arange(min(w.top_n_readers, len(model.readers_)))
    _timed(
        seconds,
        "top_n",
        lambda: nightly_top_n(session, model, w.data_dir, w.out / "recs", n=w.n, filters=config, reader_rows=rows),
    )
    session.stop()
    return matrix


def measure_engine(
    engine: str,
    data_dir: str | Path,
    out: str | Path,
    *,
    master: str = "local[2]",
    factors: int = 32,
    iterations: int = 5,
    n: int = 20,
    top_n_readers: int = 20_000,
    driver_memory: str = "2g",
) -> dict[str, Any]:
    """Wall seconds per stage, CPU seconds and peak RSS (bytes; this process and its children) of
    one engine (``local`` or ``spark``) on one data directory (see the module docstring); outputs
    are written under ``out``.

    Raises:
        ValueError: ``engine`` is not one of :data:`ENGINES`.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be 'local' or 'spark', got {engine!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = _Workload(Path(data_dir), out, factors, iterations, n, top_n_readers)
    seconds: dict[str, float] = {}
    with ResourceMeter() as meter:
        if engine == "local":
            matrix = _measure_local(work, seconds)
        else:
            matrix = _measure_spark(work, seconds, master, driver_memory)
    events = matrix.meta["events"]
    return {
        "engine": engine,
        "data_dir": str(data_dir),
        "factors": factors,
        "iterations": iterations,
        "seconds": seconds,
        "events": int(events),
        "nnz": matrix.nnz,
        "readers": matrix.shape[0],
        "titles": matrix.shape[1],
        "top_n_readers": min(top_n_readers, matrix.shape[0]),
        "peak_rss_bytes": meter.peak,
        "cpu_seconds": meter.cpu_seconds - meter.cpu_at_start,
        "load_average": list(os.getloadavg()),
        "events_per_s": {k: events / v for k, v in seconds.items() if k in ("features", "fit") and v > 0},
    }


if __name__ == "__main__":  # pragma: no cover - measurement entry point used by docs/scaling.md
    import sys

    logging.basicConfig(level=logging.WARNING)
    _log.setLevel(logging.INFO)
    print(json.dumps(measure_engine(sys.argv[1], sys.argv[2], sys.argv[3]), indent=2))
