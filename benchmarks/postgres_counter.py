"""decide() latency in process: SQLite file vs PostgreSQL (throwaway clusters), for docs/postgres.md.

Run from the repository root: ``.venv/bin/python -m benchmarks.postgres_counter [N]`` (needs initdb/pg_ctl;
it borrows the test suite's throwaway cluster and tiny city from ``tests/``).
Prints a Markdown table: sequential p50/p99 ms over N decisions, then N more from 8 threads.
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from acquisition.counter import CounterService, PurchaseRequestIn
from acquisition.db import init_db, load_data_dir
from acquisition.holdings import Holdings
from acquisition.policy import Policy
from tests.acquisition._counter_data import NOW, isbn, request, write_city
from tests.pg import ThrowawayCluster, _pg_bin, fresh_database

POLICY = Policy(books_per_visit=100_000, books_per_month=100_000, open_books_max=100_000)
THREADS = 8


def _service(url: str, tmp: Path) -> CounterService:
    data = write_city(tmp / "data")
    db = init_db(url)
    load_data_dir(db, data)
    return CounterService(db, POLICY, Holdings.from_data_dir(data), clock=lambda: NOW)


def _request(i: int) -> PurchaseRequestIn:
    """An eligible 1-yuan request with a fresh ISBN (reserves on 2-3 budget lines)."""
    return request(
        reader_id=("R-ok", "R-ok2", "R-south")[i % 3],
        bookstore_id=("BS-N", "BS-S")[i % 2],
        isbn=isbn(100_000 + i),
        price=1.0,
    )


def measure(name: str, svc: CounterService, n: int) -> str:
    """One Markdown row: sequential and 8-thread latency percentiles (ms) and throughput (decisions/s)."""
    for i in range(20):
        svc.decide(_request(900_000 + i), f"warm{i}")

    def one(i: int) -> float:
        t = time.perf_counter()
        svc.decide(_request(i), f"k{i}")
        return (time.perf_counter() - t) * 1e3

    seq = np.array([one(i) for i in range(n)])
    t0 = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        conc = np.array(list(pool.map(one, range(200_000, 200_000 + n))))
    rate = n / (time.perf_counter() - t0)
    p = np.percentile
    return f"| {name} | {p(seq, 50):.1f} | {p(seq, 99):.1f} | {p(conc, 50):.1f} | {p(conc, 99):.1f} | {rate:.0f} |"


def main(n: int = 400) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="yuedu-bench-"))
    print("| ledger | seq p50 ms | seq p99 ms | 8 threads p50 ms | 8 threads p99 ms | 8 threads decisions/s |")
    print("|---|---|---|---|---|---|")
    print(measure("SQLite file (WAL, synchronous=NORMAL)", _service(f"sqlite:///{tmp / 'ledger.db'}", tmp / "s"), n))
    bin_dir = _pg_bin()
    if bin_dir is None:
        print("(no PostgreSQL binaries: install postgresql)")
        return
    for durable in (False, True):
        with ThrowawayCluster(bin_dir, durable=durable) as cluster:
            label = "fsync on (server defaults)" if durable else "fsync off (test cluster)"
            svc = _service(fresh_database(cluster.url), tmp / f"p{int(durable)}")
            print(measure(f"PostgreSQL, unix socket, {label}", svc, n))
            svc.db.dispose()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
