"""``yuedu bench``: benchmarks of every pipeline step, each printed beside the best peer measured
in the same run (bare polars, bare scipy, raw implicit, the GEMM bound, greedy) as a ratio, with the
issue-7 goals marked pass / short. One module per benchmark; :mod:`benchmarks.runner` runs them.

Tooling, not product: no layer imports this package (``yuedu bench`` does, inside the command); it
imports any layer. Beside the suite: the HTTP load test (:mod:`benchmarks.loadtest`), the counter on
SQLite vs PostgreSQL (:mod:`benchmarks.postgres_counter`) and Spark against the local engine
(:mod:`benchmarks.spark`). ``python -m benchmarks`` runs the suite like ``yuedu bench``.
"""

from benchmarks.harness import BenchContext, BenchError, Goal, Row
from benchmarks.runner import BENCHMARKS, BenchReport, markdown, run_bench, write_report

__all__ = [
    "BENCHMARKS",
    "BenchContext",
    "BenchError",
    "BenchReport",
    "Goal",
    "Row",
    "markdown",
    "run_bench",
    "write_report",
]
