"""One SparkSession for every Spark test: local[2], small heap, no UI, 4 shuffle partitions."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark")
    from features.spark.session import spark_session

    session = spark_session(
        "local[2]",
        "yuedu-tests",
        driver_memory="1g",
        shuffle_partitions=4,
        conf={"spark.ui.enabled": "false", "spark.sql.adaptive.coalescePartitions.enabled": "true"},
    )
    yield session
    session.stop()
