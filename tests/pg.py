"""A PostgreSQL server for the tests: ``YUEDU_TEST_PG_URL``, else a throwaway cluster, else skip.

The session fixture :func:`pg_url` yields a SQLAlchemy URL (``postgresql+psycopg://...``) of a
server where the tests may create databases. In order of preference:

1. ``YUEDU_TEST_PG_URL`` when set (a CI service, a developer's server): used as is, never stopped;
2. a throwaway cluster started here when ``initdb``/``pg_ctl`` exist (Debian puts them in
   ``/usr/lib/postgresql/<major>/bin``): ``initdb`` into a temp dir with ``trust`` auth, listening
   on a unix socket only (no TCP port to collide with), run as the ``postgres`` user through
   ``runuser`` when the tests run as root (PostgreSQL refuses to run as root), stopped at the end;
3. otherwise the tests that use it skip, saying why.

:func:`fresh_database` creates an empty database on that server for one test (isolation without a
cluster per test); drop it with :func:`drop_database`. Under pytest-xdist every worker starts its
own cluster (each in its own temp dir), which costs about a second.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_log = logging.getLogger(__name__)

ENV_URL = "YUEDU_TEST_PG_URL"
#: Superuser created by initdb in the throwaway cluster (trust auth over the socket only).
SUPERUSER = "yuedu"
#: Seconds to wait for the throwaway server to accept connections.
START_TIMEOUT_S = 30


def _pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb and pg_ctl, else PATH's."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def _as_user() -> list[str]:
    """Command prefix that drops root to the ``postgres`` user (empty when not root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root without runuser: cannot start PostgreSQL unprivileged")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("running as root and no 'postgres' user exists to run the server") from exc
    return [runuser, "-u", "postgres", "--"]


class ThrowawayCluster:
    """An ``initdb`` cluster in a temp dir, served on a unix socket in that dir. Use as a context manager."""

    def __init__(self, bin_dir: Path, *, durable: bool = False) -> None:
        """``durable=False`` (tests) turns off fsync and synchronous commit; ``True`` keeps the
        server defaults (for measuring what a real deployment would see)."""
        self.bin_dir = bin_dir
        self.durable = durable
        # a short path: unix socket paths are limited to ~107 bytes
        self.root = Path(tempfile.mkdtemp(prefix="yuedu-pg-"))
        self.data = self.root / "data"
        self.port = 5432  # only names the socket file (.s.PGSQL.5432) in our private dir
        self.prefix = _as_user()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/postgres?host={self.root}&port={self.port}"

    def _run(self, *args: str) -> None:
        cmd = [*self.prefix, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-800:]}")

    def start(self) -> ThrowawayCluster:
        if self.prefix:
            shutil.chown(self.root, user="postgres", group="postgres")
        os.chmod(self.root, 0o755)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        opts = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.root}' -c port={self.port} "
            "-c max_connections=100 -c shared_buffers=32MB"
        )
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
        )
        _log.info("throwaway PostgreSQL cluster started in %s", self.root)
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            _log.warning("could not stop the throwaway cluster in %s: %s", self.root, exc)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _driver_missing() -> str | None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg (PostgreSQL driver) is not installed"
    return None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL server the tests may create databases on (see the module docstring)."""
    if reason := _driver_missing():
        pytest.skip(reason)
    if url := os.environ.get(ENV_URL):
        yield url
        return
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip(f"no PostgreSQL: set {ENV_URL} or install the server (apt-get install postgresql)")
    try:
        cluster = ThrowawayCluster(bin_dir).__enter__()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"could not start a throwaway PostgreSQL cluster from {bin_dir}: {exc}")
    try:
        yield cluster.url
    finally:
        cluster.__exit__(None, None, None)


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def fresh_database(server_url: str, prefix: str = "yuedu_t") -> str:
    """Create an empty database on the server of ``server_url`` and return its URL."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return _with_database(server_url, name)


def drop_database(url: str) -> None:
    """Drop the database of ``url`` (made by :func:`fresh_database`), closing its other sessions."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    engine = create_engine(_with_database(url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
