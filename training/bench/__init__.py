"""``yuedu bench``: benchmarks of every pipeline step, each printed beside the best peer measured
in the same run (bare polars, bare scipy, raw implicit, the GEMM bound, greedy) as a ratio, with the
issue-7 goals marked pass / short. One module per benchmark; :mod:`training.bench.runner` runs them.
"""

from training.bench.harness import BenchContext, BenchError, Goal, Row
from training.bench.runner import BENCHMARKS, BenchReport, markdown, run_bench, write_report

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
