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


def pytest_collection_modifyitems(config, items):
    """All Spark tests on one xdist worker (``--dist loadgroup``), so the suite starts one JVM, not two:
    those under tests/spark and any other that takes the ``spark`` fixture (tests/benchmarks)."""
    for item in items:
        if "tests/spark/" in str(item.fspath).replace("\\", "/") or "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("spark"))
