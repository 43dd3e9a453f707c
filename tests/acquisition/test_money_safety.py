"""Issue 20's money findings, each pinned: free books, the terminal's clock, a round for year 0000, a
refund across two rounds, and a property test that random operation sequences (counter, staff rounds,
monthly settlements, returns to the bookstore, the year close) conserve money, that the audit trail
replayed equals the ledger, that the funds' budget report adds up and that the settlement equals the
ledger's spend (SQLite here, PostgreSQL when ``pg_url`` is up)."""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select

from acquisition import funds, ledger, settlement
from acquisition.counter import CounterService
from acquisition.db import (
    AuditLog,
    BudgetLineRow,
    Database,
    PurchaseRequestRow,
    ReservationLineRow,
    ReservationRow,
    init_db,
    load_data_dir,
)
from acquisition.errors import (
    DecisionRefused,
    InvalidPeriod,
    InvalidTransition,
    PeriodWithoutBudget,
    ReservationExpired,
)
from acquisition.holdings import Holdings
from acquisition.policy import MAX_PRICE_YUAN, Policy, check_price_fen, yuan_to_fen
from acquisition.rounds import StaffDecision, apply_decisions, check_period, create_round, get_round
from tests.pg import drop_database, fresh_database

from ._counter_data import NOW, decide_at, isbn, make_service, request, write_city

LOOSE = dict(books_per_visit=100, books_per_month=100, open_books_max=100)
BUDGETS = [
    {"budget_id": "Y2026", "period": "2026", "bookstore_id": None, "district": None, "amount": 300.0},
    {"budget_id": "M05-N", "period": "2026-05", "bookstore_id": None, "district": "Chaoyang", "amount": 150.0},
    {"budget_id": "M05-BSS", "period": "2026-05", "bookstore_id": "BS-S", "district": None, "amount": 120.0},
]


# --- free books -----------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [0.001, 0.004, 0.0049, math.inf, -math.inf, math.nan, MAX_PRICE_YUAN + 0.01, 1e12])
def test_a_price_below_one_fen_or_absurd_is_refused_naming_the_field(price):
    with pytest.raises(ValidationError) as err:
        request(price=price)
    assert [e["loc"] for e in err.value.errors()] == [("price",)]


def test_conversion_is_half_up_to_fen():
    assert [yuan_to_fen(y) for y in (0.005, 0.125, 19.995, 45.0, 0.1 + 0.2)] == [1, 13, 2000, 4500, 30]
    assert request(price=0.005).price_fen == 1
    assert check_price_fen(MAX_PRICE_YUAN) == 10_000_000


def test_the_ledger_itself_refuses_a_free_book(tmp_path):
    svc = make_service(tmp_path)
    with svc.db.session_scope(write=True) as s, pytest.raises(DecisionRefused):
        ledger.reserve(s, 0, NOW, "BS-N", "Chaoyang")
    with svc.db.session_scope(write=True) as s, pytest.raises(DecisionRefused):
        ledger.charge(s, "r", 0, ["Y2026"], at=NOW, actor="t", audit=[])


def test_the_counter_never_reserves_zero_fen(tmp_path):
    svc = make_service(tmp_path)
    d = svc.decide(request(price=0.005), "k")  # the smallest price accepted: 1 fen
    assert d.eligible and "0.01 yuan reserved" in d.message
    with svc.db.session_scope() as s:
        assert s.scalar(select(func.min(ReservationRow.amount_fen))) == 1


# --- the server's clock decides ------------------------------------------------------------------

CLIENT_TIMES = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31))


@settings(max_examples=25, deadline=None)
@given(st.lists(CLIENT_TIMES, min_size=3, max_size=3))
def test_no_client_time_changes_a_limit_a_period_or_an_expiry(client_times):
    with tempfile.TemporaryDirectory() as tmp:
        svc = make_service(Path(tmp))
        ds = [
            svc.decide(request(isbn=isbn(20 + i), price=10, requested_at=t), f"k{i}")
            for i, t in enumerate(client_times)
        ]
        # the visit limit (2 books) holds whatever the third request claims
        assert [d.eligible for d in ds] == [True, True, False] and ds[2].reason_codes == ["READER_VISIT_LIMIT"]
        expected_expiry = NOW + timedelta(minutes=svc.policy.reservation_timeout_minutes)
        with svc.db.session_scope() as s:
            assert set(s.scalars(select(PurchaseRequestRow.requested_at))) == {NOW}
            assert set(s.scalars(select(ReservationRow.expires_at))) == {expected_expiry}
            # this month's lines were drawn on (the period of the server's clock)
            used = dict(s.execute(select(BudgetLineRow.budget_id, BudgetLineRow.reserved_fen)).all())
            recorded = [
                a.details["terminal_time"] for a in s.scalars(select(AuditLog).where(AuditLog.action == "decide"))
            ]
        assert used == {"Y2026": 2000, "M05-N": 2000, "M05-BSN": 2000, "M05-S": 0}
        assert recorded == [t.isoformat() for t in client_times]  # recorded, never trusted
        assert svc.expire_reservations(expected_expiry) == 2  # the sweep reaches every reservation
        svc.db.dispose()


# --- a round's period ------------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["0000-01", "1999-12", "2101-01", "2026-13", "2026-00", "26-05", "2026/05"])
def test_a_round_period_outside_the_range_is_refused(tmp_path, period):
    with pytest.raises(InvalidPeriod):
        check_period(period)
    svc = make_service(tmp_path)
    with pytest.raises(InvalidPeriod):
        create_round(svc.db, svc.policy, None, created_by="t", now=NOW, period=period)


def test_a_round_for_a_month_without_budget_lines_is_refused(tmp_path):
    svc = make_service(tmp_path)
    with pytest.raises(PeriodWithoutBudget):
        create_round(svc.db, svc.policy, None, created_by="t", now=NOW, period="2031-01")


# --- one request in two rounds ---------------------------------------------------------------------


@pytest.mark.parametrize(("later", "status"), [(["reject"], "declined"), (["reject", "pending"], "pending")])
def test_a_request_approved_in_one_round_and_undone_in_another_is_refunded(tmp_path, later, status):
    svc = make_service(tmp_path, Policy(**LOOSE))
    d = svc.decide(request(price=30, channel="online"), "k")
    a = create_round(svc.db, svc.policy, None, created_by="t", now=NOW)
    b = create_round(svc.db, svc.policy, None, created_by="t", now=NOW)
    apply_decisions(svc.db, svc.policy, a, [StaffDecision(d.request_id, "approve")], actor="t", now=NOW)
    assert _committed(svc.db)["Y2026"] == 3000
    for decision in later:  # round B's line was still pending: its decision alone never refunded
        apply_decisions(svc.db, svc.policy, b, [StaffDecision(d.request_id, decision)], actor="t", now=NOW)
    assert _committed(svc.db) == {"Y2026": 0, "M05-N": 0, "M05-BSN": 0, "M05-S": 0}
    assert get_round(svc.db, b).lines[0].request_status == status
    assert_audit_replays_to_ledger(svc.db)


def _committed(db: Database) -> dict[str, int]:
    with db.session_scope() as s:
        return dict(s.execute(select(BudgetLineRow.budget_id, BudgetLineRow.committed_fen)).all())


# --- the property test -----------------------------------------------------------------------------

PRICES = st.one_of(
    st.integers(1, 9999).map(lambda fen: fen / 100),
    st.sampled_from([0.001, 0.004, 0.005, 0.0051, 99.995, 100.0, 150.0, MAX_PRICE_YUAN, 1e6, math.inf, math.nan]),
    st.floats(min_value=0, max_value=1e7, allow_nan=False),
)
OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("decide"),
            st.sampled_from(["R-ok", "R-ok2", "R-south"]),
            st.sampled_from(["BS-N", "BS-S"]),
            st.integers(1, 30),  # isbn number: collisions exercise DUPLICATE_PENDING
            PRICES,
            st.sampled_from(["counter", "online"]),
        ),
        st.tuples(st.sampled_from(["checkout", "cancel"]), st.integers(0, 50)),
        st.tuples(st.just("expire")),
        st.tuples(st.just("round")),
        st.tuples(
            st.just("staff"), st.integers(0, 5), st.integers(0, 50), st.sampled_from(["approve", "reject", "pending"])
        ),
        st.tuples(st.just("wait"), st.integers(1, 40)),  # minutes pass on the server's clock
        st.tuples(st.just("settle")),  # the month's settlement with the bookstores (invoices)
        st.tuples(st.just("return"), st.integers(0, 50)),  # a bought book goes back to the bookstore
        st.tuples(st.just("close")),  # the programme year 2026 is closed (again: a no-op)
    ),
    min_size=1,
    max_size=40,
)

#: The money's later life: purchases, settlements, returns, cancels, staff rounds and the year close,
#: in longer sequences so that most of them invoice, credit and carry money (OPS alone rarely does).
BUY = st.tuples(
    st.just("buy"),
    st.sampled_from(["R-ok", "R-ok2", "R-south"]),
    st.sampled_from(["BS-N", "BS-S"]),
    st.integers(31, 60),
    st.integers(1, 4000).map(lambda fen: fen / 100),
)
FLOW_OPS = st.lists(
    st.one_of(
        BUY,
        BUY,
        st.tuples(st.just("settle")),
        st.tuples(st.just("return"), st.integers(0, 50)),
        st.tuples(st.just("close"), st.integers(0, 4)),  # only 0 closes: a close leaves no room in 2026
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("wait"), st.integers(1, 40)),
        st.tuples(
            st.just("decide"),
            st.sampled_from(["R-ok", "R-south"]),
            st.sampled_from(["BS-N", "BS-S"]),
            st.integers(61, 80),
            st.integers(1, 4000).map(lambda fen: fen / 100),
            st.sampled_from(["counter", "online"]),
        ),
        st.tuples(st.just("round")),
        st.tuples(st.just("staff"), st.integers(0, 5), st.integers(0, 50), st.sampled_from(["approve", "reject"])),
    ),
    min_size=12,
    max_size=40,
)


class _Run:
    """One sequence of operations against one ledger, with a clock that only moves forward."""

    def __init__(self, svc: CounterService) -> None:
        self.svc, self.t = svc, NOW
        svc.clock = lambda: self.t
        self.requests: list[str] = []
        self.rounds: list[str] = []
        self.closed = False

    def apply(self, i: int, op: tuple) -> None:
        kind = op[0]
        if kind == "decide":
            self._decide(i, *op[1:])
        elif kind == "wait":
            self.t += timedelta(minutes=op[1])
        elif kind == "expire":
            self.svc.expire_reservations(self.t)
        elif kind == "round":
            with contextlib.suppress(PeriodWithoutBudget):
                self.rounds.append(create_round(self.svc.db, self.svc.policy, None, created_by="t", now=self.t))
        elif kind == "staff" and self.rounds and self.requests:
            round_ = get_round(self.svc.db, self.rounds[op[1] % len(self.rounds)])
            if round_.lines:
                line = round_.lines[op[2] % len(round_.lines)]
                with contextlib.suppress(DecisionRefused):
                    decision = StaffDecision(line.request_id, op[3])
                    apply_decisions(self.svc.db, self.svc.policy, round_.round_id, [decision], actor="t", now=self.t)
        elif kind == "buy":
            self._decide(i, *op[1:], "counter")
            with contextlib.suppress(InvalidTransition):
                self.svc.checkout(self.requests[-1], now=self.t)
        elif kind == "settle":
            settlement.settle(self.svc.db, self.svc.policy, self.t.strftime("%Y-%m"), actor="t", now=self.t)
        elif kind == "return" and self.requests:
            with contextlib.suppress(DecisionRefused):
                settlement.return_to_bookstore(
                    self.svc.db, self.requests[op[1] % len(self.requests)], actor="t", now=self.t
                )
        elif kind == "close" and op[1:] in ((), (0,)):
            summary = funds.close_year(self.svc.db, "2026", actor="t", now=self.t)
            assert summary["already_closed"] == self.closed
            self.closed = True
        elif kind in ("checkout", "cancel") and self.requests:
            with contextlib.suppress(InvalidTransition, ReservationExpired):
                getattr(self.svc, kind)(self.requests[op[1] % len(self.requests)], now=self.t)

    def _decide(self, i: int, reader: str, store: str, n: int, price: float, channel: str) -> None:
        try:
            req = request(reader_id=reader, bookstore_id=store, isbn=isbn(n), price=price, channel=channel)
        except ValidationError:
            assert not math.isfinite(price) or not 1 <= yuan_to_fen(price) <= yuan_to_fen(MAX_PRICE_YUAN)
            return
        assert req.price_fen >= 1
        self.requests.append(self.svc.decide(req, f"k{i}").request_id)


def assert_ledger_conserved(db: Database) -> None:
    """Every line: reserved + committed + spent + free == amount with each part >= 0, and reserved /
    committed / spent equal the live / confirmed / invoiced reservations drawn on it (exact fen)."""
    with db.session_scope() as s:
        held = defaultdict(int)
        for status, budget_id, fen in s.execute(
            select(ReservationRow.status, ReservationLineRow.budget_id, func.sum(ReservationLineRow.amount_fen))
            .join(ReservationRow, ReservationRow.reservation_id == ReservationLineRow.reservation_id)
            .group_by(ReservationRow.status, ReservationLineRow.budget_id)
        ):
            held[(status, budget_id)] = int(fen)
        for line in s.scalars(select(BudgetLineRow)):
            free = line.amount_fen - line.reserved_fen - line.committed_fen - line.spent_fen
            assert min(line.reserved_fen, line.committed_fen, line.spent_fen, free) >= 0, line.budget_id
            assert line.reserved_fen == held[("reserved", line.budget_id)]
            assert line.committed_fen == held[("confirmed", line.budget_id)]
            assert line.spent_fen == held[("invoiced", line.budget_id)]


def assert_audit_replays_to_ledger(db: Database) -> None:
    """The audit trail, replayed from empty, gives every line's reserved, committed and spent money and every
    request's and reservation's status."""
    money: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    state: dict[tuple[str, str], str] = {}
    with db.session_scope() as s:
        for a in s.scalars(select(AuditLog).order_by(AuditLog.id)):
            if a.entity == "budget_line":
                money[a.entity_id][0] += int(a.details.get("reserved_fen_delta", 0))
                money[a.entity_id][1] += int(a.details.get("committed_fen_delta", 0))
                money[a.entity_id][2] += int(a.details.get("spent_fen_delta", 0))
            elif a.entity in ("purchase_request", "reservation"):
                state[(a.entity, a.entity_id)] = a.to_state
        lines = {
            b: [r, c, sp]
            for b, r, c, sp in s.execute(
                select(
                    BudgetLineRow.budget_id,
                    BudgetLineRow.reserved_fen,
                    BudgetLineRow.committed_fen,
                    BudgetLineRow.spent_fen,
                )
            )
        }
        requests = dict(s.execute(select(PurchaseRequestRow.request_id, PurchaseRequestRow.status)).all())
        reservations = dict(s.execute(select(ReservationRow.reservation_id, ReservationRow.status)).all())
    assert {b: money[b] for b in lines} == lines
    assert set(money) <= set(lines)
    assert {k[1]: v for k, v in state.items() if k[0] == "purchase_request"} == requests
    assert {k[1]: v for k, v in state.items() if k[0] == "reservation"} == reservations


def assert_funds_add_up(db: Database, year: str = "2026") -> None:
    """The budget report of ``year``: planned == encumbered + spent + free on every fund and month row,
    the hard room never negative, and each fund's months sum to its encumbrance and spend (exact fen)."""
    report = funds.budget_report(db, year)
    for r in report.rows:
        assert r.planned_fen == r.encumbered_fen + r.spent_fen + r.free_fen, r.fund_id
        assert r.room_fen >= 0, r.fund_id
    for r in (r for r in report.rows if r.period == year):
        months = [m for m in report.months if m.fund_id == r.fund_id]
        assert sum(m.encumbered_fen for m in months) == r.encumbered_fen, r.fund_id
        assert sum(m.spent_fen for m in months) == r.spent_fen, r.fund_id


def _run(svc: CounterService, ops: list[tuple]) -> None:
    run = _Run(svc)
    for i, op in enumerate(ops):
        run.apply(i, op)
        assert_ledger_conserved(svc.db)
    assert_audit_replays_to_ledger(svc.db)
    assert_funds_add_up(svc.db, "2026")
    assert_funds_add_up(svc.db, "2027")
    if run.closed:  # the close left no encumbrance on the closed year
        assert funds.open_encumbrance_fen(svc.db, "2026") == 0
    # every purchase draws on the year line (or, once closed, on its successor) and the clock stays in
    # May: the month's settlement is their spend
    net, spend = settlement.reconcile(svc.db, svc.policy, "2026-05")
    with svc.db.session_scope() as s:
        spent = s.scalars(select(BudgetLineRow.spent_fen).where(BudgetLineRow.budget_id.in_(("Y2026", "Y2027"))))
        assert net == spend == sum(spent)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPS)
def test_random_sequences_conserve_money_and_the_audit_equals_the_ledger(ops):
    with tempfile.TemporaryDirectory() as tmp:
        svc = make_service(Path(tmp), Policy(**LOOSE), budgets=BUDGETS)
        try:
            _run(svc, ops)
        finally:
            svc.db.dispose()


def _run_on_postgresql(pg_url: str, data: Path, ops: list[tuple], policy: Policy) -> None:
    db = init_db(fresh_database(pg_url))
    try:
        load_data_dir(db, data)
        _run(CounterService(db, policy, Holdings.from_data_dir(data), clock=lambda: NOW), ops)
    finally:
        db.dispose()
        drop_database(db.url)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_sequences_on_postgresql(pg_url, tmp_path_factory, ops):
    _run_on_postgresql(pg_url, write_city(tmp_path_factory.mktemp("pgdata"), budgets=BUDGETS), ops, Policy(**LOOSE))


#: A discount, so that invoices differ from encumbrances and the discount's money comes back.
DISCOUNTED = Policy(**LOOSE, discount_pct=7.5, bookstore_discount_pct={"BS-S": 12.0})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(FLOW_OPS)
def test_random_money_flows_settle_return_and_close_exactly(ops):
    with tempfile.TemporaryDirectory() as tmp:
        svc = make_service(Path(tmp), DISCOUNTED, budgets=BUDGETS)
        try:
            _run(svc, ops)
        finally:
            svc.db.dispose()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=FLOW_OPS)
def test_random_money_flows_on_postgresql(pg_url, tmp_path_factory, ops):
    _run_on_postgresql(pg_url, write_city(tmp_path_factory.mktemp("pgdata"), budgets=BUDGETS), ops, DISCOUNTED)


def test_decide_at_sets_the_clock_for_one_decision(tmp_path):
    svc = make_service(tmp_path)
    d = decide_at(svc, NOW + timedelta(days=1), request(price=5), "k")
    with svc.db.session_scope() as s:
        assert s.get(PurchaseRequestRow, d.request_id).requested_at == NOW + timedelta(days=1)
    assert svc.clock() == NOW
