"""The mediation band: above the cap up to the band limit (or a marked category) the counter puts the
request to staff with a promised answer; staff approve (encumber) or decline (release) through the
ledger; unanswered past the promise is reported; mediation never overspends."""

from __future__ import annotations

import contextlib
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from acquisition import mediation
from acquisition.db import AuditLog, MediationRow, PurchaseRequestRow
from acquisition.errors import InvalidTransition, RequestNotFound
from acquisition.policy import MediationConfig, Policy
from tests.acquisition._counter_data import NOW, decide_at, isbn, make_service, request
from tests.acquisition.test_counter import LOOSE, assert_ledger_consistent, ledger

BAND = MediationConfig(enabled=True, band_limit_yuan=150.0, categories=("reference",), answer_hours=24)
POLICY = Policy(**LOOSE, mediation=BAND)


def test_in_band_requests_go_to_staff_with_their_price_held_and_a_promise(tmp_path):
    svc = make_service(tmp_path, POLICY)
    d = svc.decide(request(price=120.0), "k-band")
    assert d.status == "mediated" and not d.eligible and d.reason_codes == ["PRICE_OVER_CAP"]
    assert d.answer_by == NOW + timedelta(hours=24) and d.budget_reservation_id
    assert "answer by" in d.message
    assert ledger(svc)["M05-N"][1] == 12_000  # reserved, not yet committed
    ref = svc.decide(request(isbn=isbn(5), category="reference"), "k-ref")
    assert ref.status == "mediated" and ref.reason_codes == ["CATEGORY_EXCLUDED"]
    replay = svc.decide(request(price=120.0), "k-band")
    assert replay.replayed and replay.answer_by == d.answer_by


@pytest.mark.parametrize(
    ("policy", "overrides"),
    [
        (POLICY, dict(price=150.01)),  # above the band limit
        (POLICY, dict(price=120.0, pub_year=2000)),  # another rule fails too
        (POLICY, dict(category="exam_prep")),  # a category the band does not mark
        (Policy(**LOOSE), dict(price=120.0)),  # the band is off by default
        (POLICY, dict(price=120.0, channel="online")),  # online requests wait for rounds as before
    ],
)
def test_outside_the_band_the_counter_declines_as_before(tmp_path, policy, overrides):
    d = make_service(tmp_path, policy).decide(request(**overrides), "k")
    assert d.status == "declined" and d.answer_by is None and d.budget_reservation_id is None


def test_a_band_request_without_budget_room_is_declined_not_mediated(tmp_path):
    svc = make_service(tmp_path, POLICY)
    for i in range(8):  # BS-N's 800 yuan month line: 6 x 120 held, the 7th has no room
        d = svc.decide(request(isbn=isbn(100 + i), price=120.0), f"k{i}")
    assert d.status == "declined" and "BUDGET_EXHAUSTED" in d.reason_codes
    assert_ledger_consistent(svc)


def test_staff_approval_encumbers_and_decline_releases(tmp_path):
    svc = make_service(tmp_path, POLICY)
    a = svc.decide(request(price=120.0), "k-a")
    b = svc.decide(request(isbn=isbn(9), price=130.0), "k-b")
    out = mediation.answer(svc.db, a.request_id, "approve", actor="staff:alice", now=NOW + timedelta(hours=1))
    assert out.status == "approved" and out.decision == "approve" and not out.overdue
    assert ledger(svc)["M05-N"][1:] == (13_000, 12_000)
    mediation.answer(svc.db, b.request_id, "decline", actor="staff:alice", now=NOW + timedelta(hours=2), note="no")
    assert ledger(svc)["M05-N"][1:] == (0, 12_000)
    with pytest.raises(InvalidTransition):
        mediation.answer(svc.db, a.request_id, "decline", actor="staff:bob", now=NOW)
    with pytest.raises(RequestNotFound):
        mediation.answer(svc.db, "nope", "approve", actor="staff:bob", now=NOW)
    with svc.db.session_scope() as s:
        actions = s.scalars(
            select(AuditLog.action).where(AuditLog.entity == "purchase_request", AuditLog.entity_id == a.request_id)
        ).all()
        assert actions == ["decide", "mediate_approve"]
        assert s.get(MediationRow, b.request_id).note == "no"
    assert_ledger_consistent(svc)


def test_unanswered_past_the_promise_is_reported(tmp_path):
    svc = make_service(tmp_path, POLICY)
    a = svc.decide(request(price=120.0), "k-a")
    svc.decide(request(isbn=isbn(9), price=130.0), "k-b")
    assert [m.overdue for m in mediation.queue(svc.db, NOW + timedelta(hours=23))] == [False, False]
    late = mediation.queue(svc.db, NOW + timedelta(hours=30), overdue_only=True)
    assert len(late) == 2 and all(m.hours_late == pytest.approx(6.0) for m in late)
    mediation.answer(svc.db, a.request_id, "approve", actor="staff:alice", now=NOW + timedelta(hours=31))
    assert [m.request_id for m in mediation.queue(svc.db, NOW + timedelta(hours=31), overdue_only=True)] != [
        a.request_id
    ]
    everything = mediation.queue(svc.db, NOW + timedelta(hours=31), open_only=False)
    assert {m.status for m in everything} == {"approved", "mediated"}


def test_the_sweep_never_expires_held_mediation_money_and_cancel_releases_it(tmp_path):
    svc = make_service(tmp_path, POLICY)
    d = svc.decide(request(price=120.0), "k")
    assert svc.expire_reservations(NOW + timedelta(hours=100)) == 0
    svc.cancel(d.request_id, now=NOW + timedelta(hours=1))
    with svc.db.session_scope() as s:
        assert s.get(PurchaseRequestRow, d.request_id).status == "cancelled"
    assert ledger(svc)["M05-N"][1:] == (0, 0)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("decide"), st.integers(1, 40), st.sampled_from([4_000, 9_000, 12_000, 14_900, 20_000])),
        st.tuples(st.sampled_from(["approve", "decline", "cancel"]), st.integers(0, 40)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_mediation_never_overspends(stream):
    with tempfile.TemporaryDirectory() as tmp:
        svc = make_service(Path(tmp), POLICY)
        mediated: list[str] = []
        for i, op in enumerate(stream):
            if op[0] == "decide":
                d = decide_at(svc, NOW + timedelta(minutes=i), request(isbn=isbn(op[1]), price=op[2] / 100), f"k{i}")
                assert (d.status == "mediated") == (d.reason_codes == ["PRICE_OVER_CAP"] and op[2] <= 15_000)
                if d.status == "mediated":
                    mediated.append(d.request_id)
            elif mediated:
                rid = mediated[op[1] % len(mediated)]
                with contextlib.suppress(InvalidTransition):
                    if op[0] == "cancel":
                        svc.cancel(rid, now=NOW + timedelta(minutes=i))
                    else:
                        mediation.answer(svc.db, rid, op[0], actor="staff:x", now=NOW + timedelta(minutes=i))
            assert_ledger_consistent(svc)
        svc.db.dispose()


def test_a_mediated_request_counts_for_the_readers_limits_and_the_duplicate_rule(tmp_path):
    svc = make_service(tmp_path, Policy(books_per_month=1, mediation=BAND))
    assert svc.decide(request(price=120.0), "k1").status == "mediated"
    second = svc.decide(request(isbn=isbn(6)), "k2")
    assert "READER_MONTHLY_LIMIT" in second.reason_codes
    other = svc.decide(request(reader_id="R-ok2", price=120.0), "k3")  # same ISBN, another reader
    assert "DUPLICATE_PENDING" in other.reason_codes and other.status == "declined"
