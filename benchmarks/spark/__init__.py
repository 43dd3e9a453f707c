"""Spark against the single-machine engine: time, CPU and memory per stage
(:mod:`benchmarks.spark.engines`, for docs/scaling.md) and the demand aggregates it measures
(:mod:`benchmarks.spark.demand`). Needs the spark extra (``pip install -e '.[spark]'``).
"""

from features.spark.session import require_pyspark

require_pyspark()
