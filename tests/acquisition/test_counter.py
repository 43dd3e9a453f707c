"""Point-of-sale decisions: every reason code, reservations, idempotency, checkout / cancel / expiry,
audit trail, the closed loop, and a property test that random streams never overspend."""

from __future__ import annotations

import contextlib
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from acquisition.audit import history, pseudonymise
from acquisition.db import (
    AuditLog,
    AuditLogAppendOnly,
    BudgetLineRow,
    PurchaseRequestRow,
    ReservationLineRow,
    ReservationRow,
)
from acquisition.errors import (
    IdempotencyConflict,
    InvalidTransition,
    RequestNotReceivable,
    ReservationExpired,
)
from acquisition.holdings import receive_request
from acquisition.policy import Blocklist, PacingConfig, Policy
from acquisition.rules import DeclineCode

from ._counter_data import FRESH, HELD3, NOW, SHELF_HOME, decide_at, isbn, make_service, request

BROKEN_ISBN = FRESH[:-1] + str((int(FRESH[-1]) + 1) % 10)
LOOSE = dict(books_per_visit=100, books_per_month=100, open_books_max=100)


def ledger(svc) -> dict[str, tuple[int, int, int]]:
    """budget_id -> (amount, reserved, committed) in fen."""
    with svc.db.session_scope() as s:
        return {r.budget_id: (r.amount_fen, r.reserved_fen, r.committed_fen) for r in s.scalars(select(BudgetLineRow))}


NO_SPRING = (0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1)

# (code, policy overrides, earlier requests that must be approved first, the request's overrides)
CASES = [
    (DeclineCode.INVALID_ISBN, {}, [], dict(isbn=BROKEN_ISBN)),
    (DeclineCode.INVALID_ISBN, {}, [], dict(isbn="")),
    (DeclineCode.PRICE_OVER_CAP, {}, [], dict(price=100.01)),
    (DeclineCode.PUB_YEAR_TOO_OLD, {}, [], dict(pub_year=2022)),
    (DeclineCode.PUB_YEAR_UNKNOWN, dict(require_pub_year=True), [], dict(pub_year=None)),
    (DeclineCode.CATEGORY_EXCLUDED, {}, [], dict(category="exam_prep")),
    (DeclineCode.CATEGORY_EXCLUDED, {}, [], dict(category="audio_visual")),
    (
        DeclineCode.COMIC_CAP,
        dict(comic_cap_per_month=1),
        [dict(isbn=isbn(7), category="comic")],
        dict(category="comic"),
    ),
    (DeclineCode.BLOCKLISTED, dict(blocklist=Blocklist(isbns=(FRESH,))), [], {}),
    (DeclineCode.BLOCKLISTED, dict(blocklist=Blocklist(title_keywords=("novel",))), [], {}),
    (DeclineCode.BOOKSTORE_UNKNOWN, {}, [], dict(bookstore_id="BS-nowhere")),
    (DeclineCode.READER_UNKNOWN, {}, [], dict(reader_id="R-nobody")),
    (DeclineCode.READER_BLOCKED, {}, [], dict(reader_id="R-blocked")),
    (DeclineCode.READER_CREDIT_LOW, {}, [], dict(reader_id="R-low")),
    (DeclineCode.READER_VISIT_LIMIT, {}, [dict(isbn=isbn(7)), dict(isbn=isbn(8))], {}),
    (
        DeclineCode.READER_MONTHLY_LIMIT,
        dict(books_per_month=1),
        [dict(isbn=isbn(7), at=NOW - timedelta(days=3))],
        {},
    ),
    (
        DeclineCode.READER_YEARLY_LIMIT,
        dict(books_per_year=1),
        [dict(isbn=isbn(7), at=NOW - timedelta(days=60))],
        {},
    ),
    (
        DeclineCode.READER_OPEN_LIMIT,
        dict(open_books_max=1),
        [dict(isbn=isbn(7), at=NOW - timedelta(days=60))],
        {},
    ),
    (DeclineCode.ALREADY_HELD, {}, [], dict(isbn=HELD3)),
    (DeclineCode.ON_SHELF_AT_HOME_BRANCH, {}, [], dict(isbn=SHELF_HOME)),
    (DeclineCode.DUPLICATE_PENDING, {}, [dict(reader_id="R-ok2")], {}),
    (DeclineCode.NO_BUDGET_LINE, {}, [], dict(at=datetime(2027, 2, 1, 9, 0), pub_year=2026)),
    (DeclineCode.BUDGET_EXHAUSTED, {}, [dict(isbn=isbn(7), price=99.0, reader_id="R-ok2")], dict(price=99.0)),
    # paced, with a plan that gives January to May nothing: May's month ceiling is 0 yuan of the year fund
    (
        DeclineCode.PACED_LOW_VALUE,
        dict(pacing=PacingConfig(policy="paced", seasonal_plan=NO_SPRING, month_slack_pct=0)),
        [],
        {},
    ),
]


@pytest.mark.parametrize(
    ("code", "policy", "earlier", "overrides"), CASES, ids=[f"{c[0].value}-{i}" for i, c in enumerate(CASES)]
)
def test_each_reason_code_is_triggered_alone_by_a_minimal_request(tmp_path, code, policy, earlier, overrides):
    budgets = None
    if code is DeclineCode.BUDGET_EXHAUSTED:  # a bookstore line with room for one 99-yuan book only
        budgets = [
            {"budget_id": "M05-BSN", "period": "2026-05", "bookstore_id": "BS-N", "district": None, "amount": 150.0}
        ]
    svc = make_service(tmp_path, Policy(**policy), budgets=budgets)
    for i, e in enumerate(earlier):
        e = dict(e)
        when = e.pop("at", NOW)
        assert decide_at(svc, when, request(**e), f"earlier-{i}").eligible, "set-up request must be approved"
    before = ledger(svc)
    overrides = dict(overrides)
    d = decide_at(svc, overrides.pop("at", NOW), request(**overrides), "the-request")
    assert not d.eligible
    assert d.reason_codes == [code.value]
    assert d.status == "declined" and d.budget_reservation_id is None
    assert d.message.startswith("Declined: ")
    assert ledger(svc) == before  # a decline never moves money


def test_every_reason_code_has_a_case():
    assert {c[0] for c in CASES} == set(DeclineCode)


def test_valid_request_is_eligible_and_reserves_on_every_applicable_line(tmp_path):
    svc = make_service(tmp_path)
    d = svc.decide(request(price=45.5), "k")
    assert d.eligible and d.reason_codes == [] and d.status == "reserved" and d.budget_reservation_id
    led = ledger(svc)
    # BS-N is in Chaoyang: the year total, May x Chaoyang and May x BS-N lines all carry the price
    for line in ("Y2026", "M05-N", "M05-BSN"):
        assert led[line][1:] == (4550, 0)
    assert led["M05-S"][1:] == (0, 0)
    with svc.db.session_scope() as s:
        res = s.get(ReservationRow, d.budget_reservation_id)
        assert res.status == "reserved" and res.expires_at == NOW + timedelta(minutes=30)
        assert sorted(s.scalars(select(ReservationLineRow.budget_id))) == ["M05-BSN", "M05-N", "Y2026"]


def test_reader_district_budgets_when_configured(tmp_path):
    svc = make_service(tmp_path, Policy(budget_district_of="reader"))
    d = svc.decide(request(reader_id="R-south"), "k")  # southern reader at the northern bookstore
    assert d.eligible
    led = ledger(svc)
    assert led["M05-S"][1] == 4500 and led["M05-N"][1] == 0 and led["M05-BSN"][1] == 4500


def test_idempotent_retry_returns_the_same_decision_and_charges_once(tmp_path):
    svc = make_service(tmp_path)
    first = svc.decide(request(), "retry-me")
    again = svc.decide(request(), "retry-me")
    assert again.replayed and not first.replayed
    assert again.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})
    assert ledger(svc)["Y2026"][1] == 4500
    with svc.db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(PurchaseRequestRow)) == 1
    declined = svc.decide(request(isbn=HELD3), "declined-key")
    assert svc.decide(request(isbn=HELD3), "declined-key").reason_codes == declined.reason_codes
    with pytest.raises(IdempotencyConflict):
        svc.decide(request(isbn=isbn(9)), "retry-me")


def test_checkout_moves_reserved_to_committed(tmp_path):
    svc = make_service(tmp_path)
    d = svc.decide(request(price=30), "k")
    svc.checkout(d.request_id, actor="clerk-7", now=NOW + timedelta(minutes=5))
    led = ledger(svc)
    assert led["Y2026"][1:] == (0, 3000) and led["M05-BSN"][1:] == (0, 3000)
    with pytest.raises(InvalidTransition):
        svc.checkout(d.request_id)  # no double commit
    with pytest.raises(InvalidTransition):
        svc.cancel(d.request_id)
    assert ledger(svc) == led


def test_cancel_releases(tmp_path):
    svc = make_service(tmp_path)
    d = svc.decide(request(price=30), "k")
    svc.cancel(d.request_id, actor="clerk-7", now=NOW + timedelta(minutes=1))
    assert all(v[1:] == (0, 0) for v in ledger(svc).values())
    with svc.db.session_scope() as s:
        assert s.get(PurchaseRequestRow, d.request_id).status == "cancelled"
        assert s.get(ReservationRow, d.budget_reservation_id).status == "released"
    # the cancelled request no longer blocks the ISBN or counts against the reader
    assert svc.decide(request(price=30), "k2").eligible


def test_expiry_releases_only_timed_out_reservations(tmp_path):
    svc = make_service(tmp_path, Policy(**LOOSE))
    old = svc.decide(request(price=10, isbn=isbn(11)), "a")
    new = decide_at(svc, NOW + timedelta(minutes=20), request(price=20, isbn=isbn(12)), "b")
    kept = svc.decide(request(price=40, isbn=isbn(13)), "c")
    svc.checkout(kept.request_id, now=NOW + timedelta(minutes=1))
    assert svc.expire_reservations(NOW + timedelta(minutes=29)) == 0
    assert svc.expire_reservations(NOW + timedelta(minutes=31)) == 1
    assert ledger(svc)["Y2026"][1:] == (2000, 4000)
    with pytest.raises(ReservationExpired):
        svc.checkout(new.request_id, now=NOW + timedelta(minutes=55))
    assert ledger(svc)["Y2026"][1:] == (0, 4000)
    with svc.db.session_scope() as s:
        statuses = {r.request_id: r.status for r in s.scalars(select(PurchaseRequestRow))}
    assert statuses == {old.request_id: "cancelled", new.request_id: "cancelled", kept.request_id: "checked_out"}


def test_audit_rows_for_each_change_and_no_raw_reader_id(tmp_path, monkeypatch):
    monkeypatch.setenv("YUEDU_PSEUDONYM_KEY", "test-key")
    svc = make_service(tmp_path)
    d = svc.decide(request(), "k", actor="BS-N/till-2")
    svc.checkout(d.request_id, actor="BS-N/till-2", now=NOW + timedelta(minutes=2))
    with svc.db.session_scope() as s:
        trail = [(a.action, a.from_state, a.to_state, a.actor) for a in history(s, "purchase_request", d.request_id)]
        assert trail == [
            ("decide", None, "reserved", "BS-N/till-2"),
            ("checkout", "reserved", "checked_out", "BS-N/till-2"),
        ]
        res = [(a.action, a.to_state) for a in history(s, "reservation", d.budget_reservation_id)]
        assert res == [("reserve", "reserved"), ("confirm", "confirmed")]
        assert [a.action for a in history(s, "budget_line", "M05-BSN")] == ["reserve", "commit"]
        details = [a.details for a in s.scalars(select(AuditLog))]
        assert all(a.at is not None for a in s.scalars(select(AuditLog)))
    assert "R-ok" not in repr(details)
    assert details[0]["reader"] == pseudonymise("R-ok", "test-key")


def test_audit_log_is_append_only(tmp_path):
    svc = make_service(tmp_path)
    svc.decide(request(), "k")
    with pytest.raises(AuditLogAppendOnly), svc.db.session_scope() as s:
        row = s.scalars(select(AuditLog)).first()
        row.actor = "someone else"
        s.flush()
    with pytest.raises(Exception, match="append-only"), svc.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))


def test_online_requests_wait_for_the_batch_without_reserving(tmp_path):
    svc = make_service(tmp_path)
    d = svc.decide(request(channel="online"), "k")
    assert d.eligible and d.status == "pending" and d.budget_reservation_id is None
    assert all(v[1:] == (0, 0) for v in ledger(svc).values())
    assert svc.decide(request(channel="online", reader_id="R-ok2"), "k2").reason_codes == ["DUPLICATE_PENDING"]


def test_receive_closes_the_loop(tmp_path):
    svc = make_service(tmp_path, Policy(**LOOSE))
    d = svc.decide(request(title="A new novel", clc_class="I247"), "k")
    with pytest.raises(RequestNotReceivable):
        receive_request(svc.db, svc.holdings, d.request_id, actor="cataloguer")  # not checked out yet
    svc.checkout(d.request_id, now=NOW)
    got = receive_request(svc.db, svc.holdings, d.request_id, actor="cataloguer", now=NOW + timedelta(days=20))
    assert got.title["isbn13"] == FRESH and got.title["clc_class"] == "I247"
    assert got.copy["source"] == "reader_choice" and got.copy["branch_id"] == "B-N1"
    assert got.hold is None  # the counter reader already borrowed it
    # the network now holds the book on the requester's home shelf: a second request is declined
    again = svc.decide(request(reader_id="R-ok2"), "k2")
    assert again.reason_codes == ["ON_SHELF_AT_HOME_BRANCH"]


def test_receive_online_request_places_a_hold(tmp_path):
    svc = make_service(tmp_path)
    d = svc.decide(request(channel="online"), "k")
    with svc.db.session_scope(write=True) as s:
        s.get(PurchaseRequestRow, d.request_id).status = "ordered"  # what batch approval will do
    got = receive_request(svc.db, svc.holdings, d.request_id, actor="cataloguer", now=NOW)
    assert got.hold is not None and got.hold["reader_id"] == "R-ok" and got.copy["status"] == "in_transit"
    assert svc.holdings.network_copies(FRESH) == 1 and svc.holdings.on_shelf(FRESH, "B-N1") == 0


# --- property: random request streams never overspend ---------------------------------------------------

BUDGETS = [
    {"budget_id": "Y2026", "period": "2026", "bookstore_id": None, "district": None, "amount": 300.0},
    {"budget_id": "M05-N", "period": "2026-05", "bookstore_id": None, "district": "Chaoyang", "amount": 150.0},
    {"budget_id": "M05-BSS", "period": "2026-05", "bookstore_id": "BS-S", "district": None, "amount": 120.0},
]
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("decide"),
            st.sampled_from(["R-ok", "R-ok2", "R-south"]),
            st.sampled_from(["BS-N", "BS-S"]),
            st.integers(1, 40),  # isbn number: collisions exercise DUPLICATE_PENDING
            st.integers(100, 9999),  # price, fen
            st.integers(0, 90),  # minutes after NOW
            st.booleans(),  # retry with the same key
        ),
        st.tuples(st.sampled_from(["checkout", "cancel"]), st.integers(0, 50), st.integers(0, 90)),
        st.tuples(st.just("expire"), st.integers(0, 120)),
    ),
    min_size=1,
    max_size=25,
)


def assert_ledger_consistent(svc) -> None:
    with svc.db.session_scope() as s:
        for line in s.scalars(select(BudgetLineRow)):
            assert line.reserved_fen >= 0 and line.committed_fen >= 0
            assert line.reserved_fen + line.committed_fen <= line.amount_fen
            by_status = dict(
                s.execute(
                    select(ReservationRow.status, func.sum(ReservationLineRow.amount_fen))
                    .join(ReservationRow, ReservationRow.reservation_id == ReservationLineRow.reservation_id)
                    .where(ReservationLineRow.budget_id == line.budget_id)
                    .group_by(ReservationRow.status)
                ).all()
            )
            assert line.reserved_fen == (by_status.get("reserved") or 0)
            assert line.committed_fen == (by_status.get("confirmed") or 0)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_random_streams_never_take_any_budget_line_over(stream):
    with tempfile.TemporaryDirectory() as tmp:
        svc = make_service(Path(tmp), Policy(**LOOSE), budgets=BUDGETS)
        decided: list[str] = []
        for i, op in enumerate(stream):
            if op[0] == "decide":
                _, reader, store, n, fen, minute, retry = op
                r = request(reader_id=reader, bookstore_id=store, isbn=isbn(n), price=fen / 100)
                d = decide_at(svc, NOW + timedelta(minutes=minute), r, f"k{i}")
                if retry:
                    assert svc.decide(r, f"k{i}").request_id == d.request_id
                if d.eligible:
                    decided.append(d.request_id)
            elif op[0] == "expire":
                svc.expire_reservations(NOW + timedelta(minutes=op[1]))
            elif decided:
                request_id = decided[op[1] % len(decided)]
                with contextlib.suppress(InvalidTransition, ReservationExpired):
                    getattr(svc, op[0])(request_id, now=NOW + timedelta(minutes=op[2]))
            assert_ledger_consistent(svc)
        svc.db.dispose()


def test_cli_decide_checkout_and_policy_error(tmp_path):
    import json

    from typer.testing import CliRunner

    from serving.cli import app

    from ._counter_data import write_city

    data = write_city(tmp_path / "data")
    db = str(tmp_path / "cli.db")
    common = ["acquisition", "decide", "--data", str(data), "--db", db, "--bookstore", "BS-N", "--json"]
    runner = CliRunner()
    ok = runner.invoke(
        app, [*common, "--reader", "R-ok", "--isbn", FRESH, "--price", "45", "--at", "2026-05-12T10:00:00"]
    )
    assert ok.exit_code == 0, ok.output
    decision = json.loads(ok.output)
    assert decision["eligible"] and decision["budget_reservation_id"]
    held = runner.invoke(
        app, [*common, "--reader", "R-ok", "--isbn", HELD3, "--price", "45", "--at", "2026-05-12T10:01:00"]
    )
    assert json.loads(held.output)["reason_codes"] == ["ALREADY_HELD"]
    out = runner.invoke(
        app, ["acquisition", "checkout", decision["request_id"], "--db", db, "--at", "2026-05-12T10:05:00"]
    )
    assert out.exit_code == 0 and "checkout" in out.output
    bad = tmp_path / "policy.toml"
    bad.write_text("price_cap_yuan = -5\n", encoding="utf-8")
    refused = runner.invoke(app, [*common, "--reader", "R-ok", "--isbn", FRESH, "--price", "1", "--policy", str(bad)])
    assert refused.exit_code == 2
