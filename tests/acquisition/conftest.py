"""Acquisition test fixtures: ``pg_url`` (a PostgreSQL server, or skip) for the PostgreSQL tests."""

from tests.pg import pg_url  # noqa: F401 - registers the session fixture for this folder
