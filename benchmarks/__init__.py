"""``yuedu bench``: benchmarks of every pipeline step, each printed beside the best peer measured
in the same run (bare polars, bare scipy, raw implicit, the GEMM bound, greedy) as a ratio, with the
issue-7 goals marked pass / short. One module per benchmark; :mod:`benchmarks.runner` runs them.
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
