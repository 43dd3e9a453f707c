"""Load test: mixed traffic at a fixed arrival rate against a yuedu server on loopback; p50/p99 per route.

Open loop: requests are *scheduled* at ``rate`` per second whatever the answers (a closed loop would
slow down with the server and hide queueing), bounded by ``duration_s`` and ``max_requests``, with at
most ``max_in_flight`` outstanding. Latency is measured by the client from the scheduled send time,
so time a request waits for a free connection counts. Only loopback targets are accepted. Requests go
through a minimal keep-alive HTTP/1.1 client (:class:`_Http11Pool`): httpx cost the generator as much
CPU per request as the server, on the same two cores.

Run it (starts ``yuedu serve`` in a subprocess so that server and load generator do not share a GIL)::

    .venv/bin/python -m benchmarks.loadtest --data DIR --model DIR --out experiments/results/loadtest.md

Traffic mix (default): 55 % recommendations (known and unknown readers), 20 % counter decisions,
10 % similar titles, 5 % reader events, 5 % booklists, 5 % budgets.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import psutil

_log = logging.getLogger(__name__)

#: Route template -> (p99 goal in ms) from the issue.
GOALS_MS = {"GET /v1/readers/{reader_id}/recommendations": 20.0, "POST /v1/purchase-requests": 10.0}

DEFAULT_MIX = {
    "recommendations": 0.55,
    "decision": 0.20,
    "similar": 0.10,
    "event": 0.05,
    "booklists": 0.05,
    "budgets": 0.05,
}


class NotLoopback(ValueError):
    """The load test only targets this machine."""


@dataclass(frozen=True)
class LoadConfig:
    rate: float = 200.0
    """Requests scheduled per second."""
    duration_s: float = 20.0
    """Seconds of scheduled traffic."""
    max_requests: int = 10_000
    """Hard cap on requests sent."""
    max_in_flight: int = 256
    """Outstanding requests at most (connection pool size)."""
    warmup_s: float = 2.0
    """Seconds of traffic at the start excluded from the figures (JIT-free, but caches and pools warm)."""
    seed: int = 0
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))


@dataclass
class Sample:
    route: str
    status: int
    ms: float
    at_s: float


@dataclass
class LoadReport:
    config: LoadConfig
    samples: list[Sample]
    wall_s: float

    def table(self) -> list[dict]:
        """Per route: requests, errors (5xx or transport), non-2xx, p50/p90/p99/max ms (after warm-up)."""
        by: dict[str, list[Sample]] = defaultdict(list)
        for s in self.samples:
            if s.at_s >= self.config.warmup_s:
                by[s.route].append(s)
        rows = []
        for route, ss in sorted(by.items()):
            ms = np.array([s.ms for s in ss])
            rows.append(
                {
                    "route": route,
                    "requests": len(ss),
                    "errors": sum(s.status >= 500 or s.status == 0 for s in ss),
                    "non_2xx": sum(not 200 <= s.status < 300 for s in ss),
                    "p50_ms": float(np.percentile(ms, 50)),
                    "p90_ms": float(np.percentile(ms, 90)),
                    "p99_ms": float(np.percentile(ms, 99)),
                    "max_ms": float(ms.max()),
                    "goal_p99_ms": GOALS_MS.get(route),
                }
            )
        return rows

    @property
    def achieved_rate(self) -> float:
        return len(self.samples) / self.wall_s if self.wall_s else 0.0

    def markdown(self, title: str = "Load test", notes: str = "") -> str:
        cfg = self.config
        lines = [
            f"# {title}",
            "",
            f"Open-loop arrivals at {cfg.rate:.0f} req/s for {cfg.duration_s:.0f} s "
            f"({len(self.samples)} requests sent, {self.achieved_rate:.1f} req/s achieved; "
            f"first {cfg.warmup_s:.0f} s excluded), at most {cfg.max_in_flight} in flight, loopback.",
            "",
            "| route | requests | 5xx/transport errors | non-2xx | p50 ms | p90 ms | p99 ms | max ms | p99 goal |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in self.table():
            goal = r["goal_p99_ms"]
            verdict = "" if goal is None else f"<= {goal:.0f} ms: {'met' if r['p99_ms'] <= goal else 'NOT met'}"
            lines.append(
                f"| `{r['route']}` | {r['requests']} | {r['errors']} | {r['non_2xx']} | {r['p50_ms']:.1f} | "
                f"{r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {verdict} |"
            )
        if notes:
            lines += ["", notes]
        return "\n".join(lines) + "\n"


def check_loopback(base_url: str) -> None:
    host = urlparse(base_url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise NotLoopback(f"load test target {base_url!r} is not a loopback address")


#: A request: (route template for the report, method, path, headers, json body or None).
Request = tuple[str, str, str, dict[str, str], dict | None]


class _Http11Pool:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams, for load generation only.

    httpx costs the load generator ~4-5 ms of CPU per request, as much as the server under test; on a
    shared 2-core machine the client then competes with the server it measures. This pool writes the
    request bytes itself and reads a ``Content-Length`` or chunked response (~0.3 ms of CPU per
    request). Connections are opened on demand, at most ``size``, and reused.
    """

    def __init__(self, base_url: str, size: int, timeout_s: float) -> None:
        u = urlparse(base_url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.timeout_s = timeout_s
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._gate = asyncio.Semaphore(size)
        self._all: set[asyncio.StreamWriter] = set()

    async def request(self, method: str, path: str, headers: dict[str, str], body: dict | None) -> int:
        """Send one request; the response status, or 0 on a transport error or timeout. A pooled
        connection the server closed meanwhile (keep-alive timeout) is retried once on a new one."""
        async with self._gate:
            reused = bool(self._idle)
            for attempt in (0, 1):
                conn = self._idle.pop() if attempt == 0 and self._idle else None
                try:
                    if conn is None:
                        conn = await asyncio.open_connection(self.host, self.port)
                        self._all.add(conn[1])
                    status, keep = await asyncio.wait_for(
                        self._exchange(conn, method, path, headers, body), self.timeout_s
                    )
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    if conn is not None:
                        conn[1].close()
                    stale = attempt == 0 and reused and isinstance(exc, (asyncio.IncompleteReadError, OSError))
                    if stale:
                        continue
                    return 0
                if keep:
                    self._idle.append(conn)
                else:
                    conn[1].close()
                return status
            return 0

    async def _exchange(
        self,
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        method: str,
        path: str,
        headers: dict[str, str],
        body: dict | None,
    ) -> tuple[int, bool]:
        reader, writer = conn
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(payload)}"]
        if body is not None:
            lines.append("Content-Type: application/json")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
        if fields.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await reader.readexactly(int(fields.get("content-length", "0")))
        return status, fields.get("connection", "").lower() != "close"

    async def aclose(self) -> None:
        for w in self._all:
            w.close()


async def run_load(base_url: str, next_request: Callable[[random.Random], Request], config: LoadConfig) -> LoadReport:
    """Send ``next_request`` draws at ``config.rate`` per second; return every sample."""
    check_loopback(base_url)
    rng = random.Random(config.seed)
    total = min(config.max_requests, int(config.rate * config.duration_s))
    samples: list[Sample] = []
    client = _Http11Pool(base_url, config.max_in_flight, timeout_s=30.0)
    start = time.perf_counter()

    async def one(i: int, req: Request) -> None:
        route, method, path, headers, body = req
        scheduled = start + i / config.rate
        status = await client.request(method, path, headers, body)
        done = time.perf_counter()
        samples.append(Sample(route, status, (done - scheduled) * 1000, scheduled - start))

    tasks = []
    try:
        for i in range(total):
            delay = start + i / config.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, next_request(rng))))
        await asyncio.gather(*tasks)
    finally:
        await client.aclose()
    wall = time.perf_counter() - start
    return LoadReport(config, samples, wall)


def city_traffic(data_dir: Path, secret_key: str, mix: dict[str, float]) -> Callable[[random.Random], Request]:
    """A request generator for a synthetic-city data directory (tokens signed with ``secret_key``)."""
    import polars as pl
    from stdnum import ean

    from serving.security import issue_token

    readers = pl.read_parquet(data_dir / "readers.parquet")
    ok = readers.filter(~pl.col("blocked") & (pl.col("credit_level") >= 1))["reader_id"].to_list()
    # Titles that circulate (the served model's catalogue is built from loans and e-book events).
    titles = pl.read_parquet(data_dir / "loans.parquet", columns=["title_id"])["title_id"].unique().sort().to_list()
    bookstores = pl.read_parquet(data_dir / "bookstores.parquet", columns=["bookstore_id"])["bookstore_id"].to_list()
    staff = {"Authorization": f"Bearer {issue_token('staff', 'loadtest', secret_key)}"}
    store_h = {b: {"Authorization": f"Bearer {issue_token('bookstore', b, secret_key)}"} for b in bookstores}
    reader_h: dict[str, dict[str, str]] = {}
    kinds, weights = list(mix), list(mix.values())

    def reader_headers(r: str) -> dict[str, str]:
        if r not in reader_h:
            reader_h[r] = {"Authorization": f"Bearer {issue_token('reader', r, secret_key)}"}
        return reader_h[r]

    def isbn(rng: random.Random) -> str:
        body = f"97910{rng.randrange(10**7):07d}"
        return body + ean.calc_check_digit(body)

    def draw(rng: random.Random) -> Request:
        kind = rng.choices(kinds, weights)[0]
        reader = rng.choice(ok) if rng.random() > 0.1 else f"NEW-{rng.randrange(10**6)}"
        if kind == "recommendations":
            return (
                "GET /v1/readers/{reader_id}/recommendations",
                "GET",
                f"/v1/readers/{reader}/recommendations?n=10",
                reader_headers(reader),
                None,
            )
        if kind == "event":
            path = f"/v1/readers/{reader}/events"
            body = {"title_id": rng.choice(titles), "kind": "loan"}
            return "POST /v1/readers/{reader_id}/events", "POST", path, reader_headers(reader), body
        if kind == "decision":
            store = rng.choice(bookstores)
            body = {
                "reader_id": rng.choice(ok),
                "bookstore_id": store,
                "isbn": isbn(rng),
                "price": round(rng.uniform(15, 60), 2),
                "title": "load test",
                "pub_year": 2026,
                "clc_class": "I247",
            }
            headers = {**store_h[store], "Idempotency-Key": uuid.UUID(int=rng.getrandbits(128)).hex}
            return "POST /v1/purchase-requests", "POST", "/v1/purchase-requests", headers, body
        if kind == "similar":
            t = rng.choice(titles)
            return "GET /v1/titles/{title_id}/similar", "GET", f"/v1/titles/{t}/similar?n=10", staff, None
        if kind == "booklists":
            return "GET /v1/booklists", "GET", "/v1/booklists", staff, None
        return "GET /v1/budgets", "GET", "/v1/budgets", staff, None

    return draw


def _serve(
    data: Path, model: Path, db_url: str, port: int, today: str, secret: str, log: Path | None = None
) -> subprocess.Popen:
    """``yuedu serve`` in a subprocess; its stderr goes to ``log`` (a pipe nobody reads could fill and stall it)."""
    yuedu = Path(sys.executable).parent / "yuedu"
    env = {**os.environ, "YUEDU_SECRET_KEY": secret, "YUEDU_MODEL_POLL_S": "0", "YUEDU_LOG_LEVEL": "WARNING"}
    cmd = [str(yuedu), "serve", "--data", str(data), "--model", str(model), "--db", db_url, "--port", str(port)]
    cmd += ["--today", today, "--log-level", "warning"]
    err = open(log or os.devnull, "w")  # noqa: SIM115 - handed to the child, closed when it exits
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--db", default=None, help="Ledger URL (default: a fresh SQLite file beside --out).")
    ap.add_argument("--today", default="2026-06-15")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=None, help="Markdown report.")
    args = ap.parse_args(argv)
    # WARNING: httpx logs every request URL at INFO (raw reader ids, and load-generator CPU).
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from serving.server import free_port

    secret = uuid.uuid4().hex
    port = free_port()
    db_file = Path(f"/tmp/yuedu-loadtest-{port}.db")
    log = Path(f"/tmp/yuedu-loadtest-{port}.log")
    proc = _serve(args.data, args.model, args.db or f"sqlite:///{db_file}", port, args.today, secret, log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"yuedu serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server not ready within 90 s")
            time.sleep(0.3)
        config = LoadConfig(rate=args.rate, duration_s=args.duration)
        traffic = city_traffic(args.data, secret, config.mix)
        server, load0 = psutil.Process(proc.pid), os.getloadavg()[0]
        s0, c0 = server.cpu_times(), time.process_time()
        report = asyncio.run(run_load(url, traffic, config))
        s1, c1 = server.cpu_times(), time.process_time()
        cpu = (
            f"Server CPU {(s1.user + s1.system - s0.user - s0.system) / max(len(report.samples), 1) * 1000:.1f} ms "
            f"per request, load generator CPU {(c1 - c0) / max(len(report.samples), 1) * 1000:.1f} ms per request; "
            f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f} (2-core machine shared with other jobs)."
        )
    finally:
        proc.terminate()
        proc.wait(15)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    print(f"server log: {log}")
    md = report.markdown(
        notes=f"Server: `yuedu serve` (1 uvicorn process), model `{args.model.name}`, data `{args.data}`. {cpu}"
    )
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
