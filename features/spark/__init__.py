"""The Spark engine of features: the same tables, vocabularies and weighting as the polars path
(:mod:`features.spark.interactions`), for data that outgrows one machine, and the one place that
builds a session (:mod:`features.spark.session`).

Spark is an optional extra (``pip install -e '.[spark]'``). Importing this package and
:mod:`features.spark.session` does not import pyspark (the session module says what is missing);
:mod:`features.spark.interactions` does.
"""
