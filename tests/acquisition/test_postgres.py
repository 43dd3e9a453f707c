"""The counter's guarantees on a real PostgreSQL (row locks instead of SQLite's single writer).

The same guarantees as ``test_concurrency.py`` proves on SQLite, against one small budget shared by
many threads and processes: total reserved + committed never exceeds any line, every request gets
exactly one decision, retries with the same idempotency key never charge twice (also when the
retries race each other), a reader's per-visit limit and the duplicate-pending rule hold when the
competing requests arrive at the same instant, and checkout / cancel / expiry racing each other settle
every reservation exactly once. Each test gets a fresh database on the server of ``pg_url``
(``tests/pg.py``: ``YUEDU_TEST_PG_URL``, else a throwaway cluster, else skip).
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from acquisition.counter import CounterService
from acquisition.db import (
    AuditLog,
    BudgetLineRow,
    PurchaseRequestRow,
    ReservationRow,
    init_db,
    load_data_dir,
)
from acquisition.errors import InvalidTransition, ReservationExpired
from acquisition.holdings import Holdings
from acquisition.policy import Policy
from tests.pg import drop_database, fresh_database

from ._counter_data import NOW, isbn, request, write_city
from .test_concurrency import (
    BUDGETS,
    EXPECTED_APPROVALS,
    POLICY,
    PRICE,
    _process_worker,
    check_invariants,
    check_ledger,
    checkout_approved_at_once,
    decide_many,
    decide_one,
)

PRICE_FEN = round(PRICE * 100)


@pytest.fixture
def pg_service(pg_url, tmp_path) -> Iterator[Callable[..., CounterService]]:
    """Factory of counters over a fresh PostgreSQL database loaded with the tiny city."""
    made: list[CounterService] = []

    def make(policy: Policy = POLICY, budgets: list[dict] | None = BUDGETS) -> CounterService:
        data = write_city(tmp_path / f"data{len(made)}", budgets=budgets)
        db = init_db(fresh_database(pg_url))
        load_data_dir(db, data)
        svc = CounterService(db, policy, Holdings.from_data_dir(data), clock=lambda: NOW)
        svc.data_dir = data  # type: ignore[attr-defined]  # for process workers
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.db.dispose()
        drop_database(svc.db.url)


def run_at_once(fn: Callable[[int], object], n: int) -> list:
    """Call ``fn(0..n-1)`` on ``n`` threads released together by a barrier; results in order."""
    start = threading.Barrier(n)

    def go(i: int) -> object:
        start.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def test_runs_on_postgresql(pg_service):
    svc = pg_service()
    assert svc.db.engine.dialect.name == "postgresql"
    d = svc.decide(request(price=PRICE), "k1")
    assert d.eligible and d.status == "reserved"
    with svc.db.session_scope() as s:
        assert s.get(BudgetLineRow, "Y2026").reserved_fen == PRICE_FEN


def test_sixteen_threads_never_overspend_or_lose_requests(pg_service):
    svc = pg_service()
    threads, per_thread = 16, 8
    results = [r for chunk in run_at_once(lambda w: decide_many(svc, w, per_thread), threads) for r in chunk]
    check_ledger(svc, results, threads * per_thread)

    checkout_approved_at_once(svc, results, threads)
    with svc.db.session_scope() as s:
        statuses = Counter(s.scalars(select(PurchaseRequestRow.status)))
    assert statuses == {"checked_out": EXPECTED_APPROVALS, "declined": threads * per_thread - EXPECTED_APPROVALS}


@pytest.mark.parametrize("pacing", ["fcfs", "paced"])
def test_two_hundred_counters_at_once_never_overspend(pg_service, pacing):
    """Issue 15's goal on PostgreSQL: 200 counters at the same instant (each with a retry)."""
    from acquisition.policy import PacingConfig

    svc = pg_service(POLICY.model_copy(update={"pacing": PacingConfig(policy=pacing)}))
    results = run_at_once(lambda n: decide_one(svc, n), 200)
    check_invariants(svc, results, 200)
    if pacing == "fcfs":
        check_ledger(svc, results, 200)


def test_processes_share_one_postgresql_budget(pg_service):
    svc = pg_service()
    procs, per_proc = 3, 16
    args = [(svc.db.url, str(svc.data_dir), w, per_proc) for w in range(procs)]
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = [r for chunk in pool.map(_process_worker, args) for r in chunk]
    check_ledger(svc, results, procs * per_proc)


def test_racing_retries_of_one_key_charge_once(pg_service):
    """Twelve copies of one request with one key at the same instant: one row, one reservation, and
    every caller gets that same decision (the losers replay it after the unique key rejects them)."""
    svc = pg_service()
    req = request(price=PRICE, isbn=isbn(77_777))
    decisions = run_at_once(lambda _i: svc.decide(req, "same-key"), 12)
    assert len({d.request_id for d in decisions}) == 1
    assert all(d.eligible for d in decisions)
    assert sum(not d.replayed for d in decisions) == 1
    with svc.db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(PurchaseRequestRow)) == 1
        assert s.scalar(select(func.count()).select_from(ReservationRow)) == 1
        assert s.get(BudgetLineRow, "Y2026").reserved_fen == PRICE_FEN


def test_same_isbn_at_once_is_one_purchase_and_duplicates(pg_service):
    """Ten counters scan the same new ISBN for different readers at the same instant: exactly one is
    approved, the others are declined as DUPLICATE_PENDING, and only one price is reserved."""
    svc = pg_service()
    readers = ("R-ok", "R-ok2", "R-south")
    shared = isbn(55_555)
    n = 10
    decisions = run_at_once(
        lambda i: svc.decide(
            request(reader_id=readers[i % 3], bookstore_id=("BS-N", "BS-S")[i % 2], isbn=shared, price=PRICE),
            f"dup-{i}",
        ),
        n,
    )
    assert sum(d.eligible for d in decisions) == 1
    assert all(d.reason_codes == ["DUPLICATE_PENDING"] for d in decisions if not d.eligible)
    with svc.db.session_scope() as s:
        assert s.get(BudgetLineRow, "Y2026").reserved_fen == PRICE_FEN
        assert s.scalar(select(func.count()).select_from(PurchaseRequestRow)) == n


def test_one_reader_at_once_respects_the_visit_limit(pg_service):
    """One reader's eight books scanned at eight counters of one bookstore at the same instant, with a
    limit of two books per visit: exactly two approved, the rest READER_VISIT_LIMIT."""
    svc = pg_service(Policy(books_per_visit=2, books_per_month=1000, open_books_max=1000))
    n = 8
    decisions = run_at_once(lambda i: svc.decide(request(isbn=isbn(20_000 + i), price=PRICE), f"visit-{i}"), n)
    assert sum(d.eligible for d in decisions) == 2
    assert all("READER_VISIT_LIMIT" in d.reason_codes for d in decisions if not d.eligible)
    with svc.db.session_scope() as s:
        assert s.get(BudgetLineRow, "Y2026").reserved_fen == 2 * PRICE_FEN


def test_checkout_cancel_and_expiry_race_settle_each_reservation_once(pg_service):
    """Twenty live reservations; at the same instant threads check out half, cancel a quarter, and
    four sweepers expire everything due an hour later. Each reservation ends settled exactly once
    (confirmed xor released), no money stays reserved, and committed money is exactly the price of
    the checked-out books."""
    svc = pg_service()
    ids = [
        svc.decide(
            request(
                reader_id=("R-ok", "R-ok2", "R-south")[i % 3],
                bookstore_id=("BS-N", "BS-S")[i % 2],
                isbn=isbn(30_000 + i),
                price=PRICE,
            ),
            f"r{i}",
        )
        for i in range(EXPECTED_APPROVALS)  # fills the year line exactly
    ]
    assert all(d.eligible for d in ids)
    req_ids = [d.request_id for d in ids]
    later = NOW + timedelta(minutes=svc.policy.reservation_timeout_minutes + 60)
    errors: list[Exception] = []
    lock = threading.Lock()

    def act(i: int) -> None:
        try:
            if i < 10:
                svc.checkout(req_ids[i], now=NOW)
            elif i < 15:
                svc.cancel(req_ids[i], now=NOW)
            else:
                svc.expire_reservations(later)
        except (InvalidTransition, ReservationExpired) as exc:  # lost the race to a sweeper: fine
            with lock:
                errors.append(exc)

    run_at_once(act, 19)  # 10 checkouts, 5 cancels, 4 sweepers
    assert all(isinstance(e, InvalidTransition) for e in errors)
    with svc.db.session_scope() as s:
        reqs = {r.request_id: r.status for r in s.scalars(select(PurchaseRequestRow))}
        res = {r.request_id: r.status for r in s.scalars(select(ReservationRow))}
        lines = list(s.scalars(select(BudgetLineRow)))
        settle = Counter(
            s.scalars(
                select(AuditLog.entity_id).where(
                    AuditLog.entity == "reservation", AuditLog.action.in_(("confirm", "release"))
                )
            )
        )
        ended_by = dict(
            s.execute(
                select(AuditLog.entity_id, AuditLog.action).where(
                    AuditLog.entity == "purchase_request", AuditLog.action.in_(("checkout", "cancel", "expire"))
                )
            ).all()
        )
        n_request_endings = s.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.entity == "purchase_request", AuditLog.action.in_(("checkout", "cancel", "expire")))
        )
    checked_out = [q for q, st in reqs.items() if st == "checked_out"]
    assert set(reqs.values()) <= {"checked_out", "cancelled"}
    assert all((reqs[q] == "checked_out") == (res[q] == "confirmed") for q in req_ids)
    assert all(res[q] in ("confirmed", "released") for q in req_ids)
    assert len(settle) == EXPECTED_APPROVALS and set(settle.values()) == {1}
    assert set(checked_out) <= set(req_ids[:10])  # only the checkouts can confirm
    assert n_request_endings == len(ended_by) == EXPECTED_APPROVALS  # one ending per request
    assert set(checked_out) == {q for q, a in ended_by.items() if a == "checkout"}
    cancelled_by_clerk = sum(ended_by[q] == "cancel" for q in req_ids[10:15])
    assert len(errors) == (10 - len(checked_out)) + (5 - cancelled_by_clerk)  # every loser was told
    for line in lines:
        assert line.reserved_fen == 0
        assert line.committed_fen <= line.amount_fen
    year = next(b for b in lines if b.budget_id == "Y2026")
    assert year.committed_fen == len(checked_out) * PRICE_FEN


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
def test_the_database_itself_refuses_to_change_the_audit_log(pg_service, statement):
    svc = pg_service()
    svc.decide(request(price=PRICE), "k1")
    with svc.db.session_scope() as s:
        before = [(a.id, a.actor, a.action) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert before
    with pytest.raises(Exception, match="append-only"), svc.db.engine.begin() as conn:
        conn.execute(text(statement))  # raw SQL: no ORM guard in the way
    with svc.db.session_scope() as s:
        assert [(a.id, a.actor, a.action) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))] == before
    # init_db on a database that already has the guard is a no-op (workers restart, several start at once)
    again = init_db(svc.db.url)
    again.dispose()
