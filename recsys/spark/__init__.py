"""The Spark engine of recsys: MLlib ALS saved as yuedu's ALS model directory (:mod:`recsys.spark.als`)
and the nightly top-n lists of every reader written as Parquet (:mod:`recsys.spark.nightly`).

Spark is an optional extra (``pip install -e '.[spark]'``): importing this package without pyspark
raises :class:`features.spark.session.SparkUnavailableError`, which says so in one line.
"""

from features.spark.session import require_pyspark

require_pyspark()
