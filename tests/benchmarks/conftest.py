"""The benchmarks' Spark tests share the Spark tests' one session (and, through it, their xdist group)."""

from tests.spark.conftest import spark  # noqa: F401 - a fixture, used by name
