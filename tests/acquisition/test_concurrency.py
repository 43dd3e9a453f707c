"""Many counters at once against one small SQLite budget: never overspend, never lose a request,
never charge a retry twice — with threads and with processes."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from acquisition.counter import CounterService
from acquisition.db import BudgetLineRow, PurchaseRequestRow, init_db
from acquisition.holdings import Holdings
from acquisition.policy import Policy

from ._counter_data import isbn, make_service, request

PRICE = 30.0
#: The year line has room for 20 books; the bookstore lines for 10 (BS-N) and 13 (BS-S) more than
#: that together, so whatever the interleaving exactly 20 requests must be approved.
BUDGETS = [
    {"budget_id": "Y2026", "period": "2026", "bookstore_id": None, "district": None, "amount": 600.0},
    {"budget_id": "M05-BSN", "period": "2026-05", "bookstore_id": "BS-N", "district": None, "amount": 300.0},
    {"budget_id": "M05-S", "period": "2026-05", "bookstore_id": None, "district": "Nanguan", "amount": 400.0},
]
EXPECTED_APPROVALS = 20
POLICY = Policy(books_per_visit=1000, books_per_month=1000, open_books_max=1000)
READERS = ("R-ok", "R-ok2", "R-south")


def one_request(worker: int, j: int):
    n = worker * 1000 + j
    return request(reader_id=READERS[n % 3], bookstore_id=("BS-N", "BS-S")[n % 2], isbn=isbn(10_000 + n), price=PRICE)


def decide_many(svc: CounterService, worker: int, count: int) -> list[tuple[str, str, bool, tuple[str, ...]]]:
    """Decide ``count`` requests, retrying each once with the same key; returns
    (key, request_id, eligible, reason codes) per key after checking the retry agreed."""
    out = []
    for j in range(count):
        key = f"w{worker}-{j}"
        first = svc.decide(one_request(worker, j), key)
        retry = svc.decide(one_request(worker, j), key)
        assert retry.request_id == first.request_id and retry.eligible == first.eligible
        out.append((key, first.request_id, first.eligible, tuple(first.reason_codes)))
    return out


def check_ledger(svc: CounterService, results, total_requests: int) -> None:
    assert len({r[0] for r in results}) == total_requests  # every request got a decision
    approved = [r for r in results if r[2]]
    assert len(approved) == EXPECTED_APPROVALS
    assert all(r[3] == ("BUDGET_EXHAUSTED",) for r in results if not r[2])
    with svc.db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(PurchaseRequestRow)) == total_requests  # no double row
        lines = {b.budget_id: b for b in s.scalars(select(BudgetLineRow))}
    for line in lines.values():
        assert line.reserved_fen + line.committed_fen <= line.amount_fen
    assert lines["Y2026"].reserved_fen + lines["Y2026"].committed_fen == EXPECTED_APPROVALS * round(PRICE * 100)


def checkout_approved_at_once(svc: CounterService, results, threads: int) -> None:
    """Check out every approved request from ``threads`` threads at once: all money moves from
    reserved to committed, exactly once."""
    approved = [r[1] for r in results if r[2]]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(svc.checkout, approved))
    with svc.db.session_scope() as s:
        year = s.get(BudgetLineRow, "Y2026")
        assert (year.reserved_fen, year.committed_fen) == (0, EXPECTED_APPROVALS * round(PRICE * 100))


def test_sixteen_threads_never_overspend_or_lose_requests(tmp_path):
    svc = make_service(tmp_path, POLICY, budgets=BUDGETS)
    threads, per_thread = 16, 8
    start = threading.Barrier(threads)

    def work(worker: int):
        start.wait()
        return decide_many(svc, worker, per_thread)

    with ThreadPoolExecutor(threads) as pool:
        results = [r for chunk in pool.map(work, range(threads)) for r in chunk]
    check_ledger(svc, results, threads * per_thread)

    checkout_approved_at_once(svc, results, threads)


def _process_worker(args: tuple[str, str, int, int]):
    url, data_dir, worker, count = args
    db = init_db(url)
    svc = CounterService(db, POLICY, Holdings.from_data_dir(data_dir))
    try:
        return decide_many(svc, worker, count)
    finally:
        db.dispose()


@pytest.mark.slow
def test_processes_share_one_sqlite_budget(tmp_path):
    svc = make_service(tmp_path, POLICY, budgets=BUDGETS)
    svc.db.dispose()  # workers are spawned (polars is not fork-safe) and open their own engines
    url, data = svc.db.url, str(Path(tmp_path) / "data")
    procs, per_proc = 3, 16
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = [
            r for chunk in pool.map(_process_worker, [(url, data, w, per_proc) for w in range(procs)]) for r in chunk
        ]
    check_ledger(svc, results, procs * per_proc)


def decide_one(svc: CounterService, n: int) -> tuple[str, str, bool, tuple[str, ...]]:
    """Request ``n`` (readers and bookstores alternate with n) decided and retried once."""
    key = f"c{n}"
    first = svc.decide(one_request(0, n), key)
    retry = svc.decide(one_request(0, n), key)
    assert retry.request_id == first.request_id and retry.eligible == first.eligible
    return key, first.request_id, first.eligible, tuple(first.reason_codes)


def check_invariants(svc: CounterService, results, total_requests: int) -> None:
    """Whatever the policy: every request decided once, no line past its amount, the year line's money
    equal to the approvals' prices, and every refusal one the policy can give."""
    assert len({r[0] for r in results}) == total_requests
    approved = [r for r in results if r[2]]
    assert 0 < len(approved) <= EXPECTED_APPROVALS
    assert all(set(r[3]) <= {"BUDGET_EXHAUSTED", "PACED_LOW_VALUE"} for r in results if not r[2])
    with svc.db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(PurchaseRequestRow)) == total_requests
        lines = {b.budget_id: b for b in s.scalars(select(BudgetLineRow))}
    for line in lines.values():
        assert line.reserved_fen + line.committed_fen + line.spent_fen <= line.amount_fen
    assert lines["Y2026"].reserved_fen + lines["Y2026"].committed_fen == len(approved) * round(PRICE * 100)


@pytest.mark.parametrize("pacing", ["fcfs", "paced"])
def test_two_hundred_counters_at_once_never_overspend(tmp_path, pacing):
    """Issue 15's goal: 200 counters deciding at the same instant (each with a retry), fcfs and paced."""
    from acquisition.policy import PacingConfig

    policy = POLICY.model_copy(update={"pacing": PacingConfig(policy=pacing)})
    svc = make_service(tmp_path, policy, budgets=BUDGETS)
    threads = 200
    start = threading.Barrier(threads)

    def work(n: int):
        start.wait()
        return decide_one(svc, n)

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(work, range(threads)))
    check_invariants(svc, results, threads)
    if pacing == "fcfs":
        check_ledger(svc, results, threads)
