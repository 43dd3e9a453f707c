"""The Spark engine of training: ``yuedu train CONFIG --engine spark`` (:mod:`training.spark.train`).

Spark is an optional extra (``pip install -e '.[spark]'``): importing this package without pyspark
raises :class:`features.spark.session.SparkUnavailableError`, which says so in one line.
"""

from features.spark.session import require_pyspark

require_pyspark()
