"""``yuedu serve --workers N``: N uvicorn worker processes on one port, each with its own
``SO_REUSEPORT`` socket, under a small supervisor that restarts a worker that dies.

Why not uvicorn's own ``--workers``: there all workers accept from ONE shared socket, and Linux wakes
the same busy process again and again. Measured with wrk (8 connections, recommendations only):
every request went to one of the two workers. With ``SO_REUSEPORT`` the kernel spreads connections
over the workers' sockets by hash, so both work.

Each worker builds its app from the environment (``YUEDU_*``, set by the caller) with
``serving.app.create_app``; the workers share live events, erasures and reload requests through the
database (:mod:`serving.live_store`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import socket
import time
from multiprocessing.process import BaseProcess

_log = logging.getLogger(__name__)

#: A worker that dies sooner than this after its start is not restarted again at once (crash loop).
MIN_UPTIME_S = 5.0


def _reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # accepted connections inherit it (Linux): without it, the event loop serving a socket it did not
    # create leaves Nagle on, and every keep-alive answer waited ~40 ms for a delayed ACK (measured)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def port_is_free(host: str, port: int) -> None:
    """OSError when something already listens on ``host:port`` (SO_REUSEPORT would otherwise let a
    second server share the port silently)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, port))


def _worker(host: str, port: int, log_level: str) -> None:
    """One worker process: the app from the environment first (model loaded), then its own socket on
    the shared port, so the kernel never hands connections to a worker that cannot answer yet."""
    import uvicorn

    from serving.app import create_app

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops workers with SIGTERM
    app = create_app()
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[_reuseport_socket(host, port)])


class Supervisor:
    """Start ``n`` workers, restart any that exits, stop them all on SIGINT / SIGTERM."""

    def __init__(self, n: int, host: str, port: int, log_level: str) -> None:
        self.n, self.host, self.port, self.log_level = n, host, port, log_level
        self._ctx = mp.get_context("spawn")
        self._workers: list[tuple[BaseProcess, float]] = []
        self._stopping = False

    def _start(self) -> tuple[BaseProcess, float]:
        proc = self._ctx.Process(target=_worker, args=(self.host, self.port, self.log_level), name="yuedu-worker")
        proc.start()
        return proc, time.monotonic()

    def _stop(self, *_: object) -> None:
        self._stopping = True

    def run(self) -> None:
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        self._workers = [self._start() for _ in range(self.n)]
        try:
            while not self._stopping:
                time.sleep(0.2)
                self._restart_dead()
        finally:
            for proc, _ in self._workers:
                if proc.is_alive():
                    proc.terminate()
            for proc, _ in self._workers:
                proc.join(15)
                if proc.is_alive():
                    proc.kill()

    def _restart_dead(self) -> None:
        for i, (proc, started) in enumerate(self._workers):
            if proc.is_alive():
                continue
            if time.monotonic() - started < MIN_UPTIME_S:
                time.sleep(MIN_UPTIME_S)  # a worker that cannot start: do not spin
            _log.warning("worker %s exited with %s; starting a replacement", proc.pid, proc.exitcode)
            self._workers[i] = self._start()


def serve_workers(n: int, host: str, port: int, log_level: str) -> None:
    """Run ``n`` workers until interrupted (the caller has set the ``YUEDU_*`` environment)."""
    logging.basicConfig(level=os.environ.get("YUEDU_LOG_LEVEL", "WARNING"))
    Supervisor(n, host, port, log_level).run()
