"""One place that builds a SparkSession configured for yuedu.

Every Spark path in yuedu takes a session from :func:`spark_session`, so that the settings that
decide whether results match the polars path are the same everywhere:

* ``spark.sql.session.timeZone = UTC``: yuedu timestamps are naive local times stored as Parquet
  ``TIMESTAMP`` without time zone; reading and doing arithmetic on them in UTC keeps them naive
  (no daylight-saving shifts) exactly as polars does.
* Arrow transfer on, so collecting vocabularies and matrices to the driver is columnar.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from typing import TYPE_CHECKING

from features.errors import Unavailable

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_log = logging.getLogger(__name__)

#: Settings every yuedu session gets (callers may override any of them through ``conf``).
BASE_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
    "spark.ui.showConsoleProgress": "false",
}


class SparkUnavailableError(Unavailable, ImportError):
    """pyspark or a Java runtime is missing (the message says which and how to install it).

    An :class:`ImportError` too: importing a Spark subpackage without pyspark raises it, and code
    that treats Spark as optional (``pytest.importorskip``, ``except ImportError``) keeps working.
    """


def require_pyspark() -> None:
    """Raise :class:`SparkUnavailableError` unless pyspark can be imported.

    Each layer's ``spark`` subpackage calls it when imported, so that a command needing Spark
    stops with one line saying what to install instead of a traceback from deep inside.
    """
    if importlib.util.find_spec("pyspark") is None:
        raise SparkUnavailableError(
            "pyspark is not installed: the Spark engine needs the spark extra "
            "(pip install -e '.[spark]', or make install) and a Java 17 runtime"
        )


def require_java() -> None:
    """Raise :class:`SparkUnavailableError` when no Java runtime is found (``JAVA_HOME`` or ``java`` on PATH)."""
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise SparkUnavailableError(
            "no Java runtime: Spark needs Java 17 (e.g. apt-get install openjdk-17-jre-headless, or set JAVA_HOME)"
        )


def spark_session(
    master: str = "local[*]",
    app_name: str = "yuedu",
    *,
    driver_memory: str = "2g",
    shuffle_partitions: int | None = None,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """Get or create the SparkSession for ``master`` (``local[*]``, ``spark://host:7077``, ``yarn``, ...).

    Args:
        master: Spark master URL.
        app_name: application name shown by the cluster manager.
        driver_memory: JVM heap of the driver (only effective when this call starts the JVM).
        shuffle_partitions: ``spark.sql.shuffle.partitions``; None = 4 per local core, or Spark's
            default (200) on a cluster.
        conf: extra Spark settings, applied last.

    Raises:
        SparkUnavailableError: pyspark cannot be imported, or there is no Java runtime.
    """
    require_pyspark()
    require_java()
    from pyspark.sql import SparkSession

    # Python workers must run the same interpreter (the venv) as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = dict(BASE_CONF)
    settings["spark.driver.memory"] = driver_memory
    if shuffle_partitions is None and master.startswith("local"):
        cores = os.cpu_count() or 2
        inner = master[len("local[") : -1] if master.startswith("local[") else "1"
        n = cores if inner in ("*", "") else int(inner.split(",")[0])
        shuffle_partitions = max(4, 4 * n)
    if shuffle_partitions is not None:
        settings["spark.sql.shuffle.partitions"] = str(shuffle_partitions)
    settings.update(conf or {})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    _log.info(
        "Spark %s session on %s (%s shuffle partitions)",
        spark.version,
        master,
        settings.get("spark.sql.shuffle.partitions"),
    )
    return spark
