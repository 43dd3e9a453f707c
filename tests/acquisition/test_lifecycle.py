"""The lifecycle tables: every pair not in a table is refused, every pair in it works and is audited."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from sqlalchemy import select

from acquisition.audit import history
from acquisition.db import AcquisitionRoundRow, PurchaseRequestRow, ReservationRow, init_db
from acquisition.errors import InvalidTransition
from acquisition.lifecycle import (
    DECISION_TARGET,
    REQUEST_TRANSITIONS,
    REQUESTS,
    RESERVATIONS,
    ROUNDS,
    LineDecision,
    RequestStatus,
    ReservationStatus,
    RoundStatus,
)
from features.schema import REQUEST_STATUSES

NOW = datetime(2026, 5, 12, 10, 0)
LIFECYCLES = {"request": REQUESTS, "reservation": RESERVATIONS, "round": ROUNDS}


def _pairs(name: str, allowed: bool) -> list[tuple[str, str | None, str]]:
    lc = LIFECYCLES[name]
    states = list(lc.states)
    return [
        (name, frm, to)
        for frm, to in itertools.product([None, *states], states)
        if (to in lc.transitions.get(frm, frozenset())) is allowed
    ]


REFUSED = [p for name in LIFECYCLES for p in _pairs(name, allowed=False)]
ALLOWED = [p for name in LIFECYCLES for p in _pairs(name, allowed=True)]


def test_stored_values_are_unchanged():
    assert [s.value for s in RequestStatus] == [
        "pending",
        "approved",
        "declined",
        "reserved",
        "checked_out",
        "cancelled",
        "ordered",
        "received",
        "fulfilled",
        "mediated",
    ]
    assert tuple(s.value for s in RequestStatus) == REQUEST_STATUSES
    assert [s.value for s in ReservationStatus] == ["reserved", "confirmed", "released", "invoiced", "returned"]
    assert [s.value for s in RoundStatus] == ["draft", "reviewed", "submitted", "approved", "closed"]
    assert [s.value for s in LineDecision] == ["approve", "reject", "pending"]


def test_the_tables_name_only_states_and_decisions_land_on_allowed_moves():
    for lc in LIFECYCLES.values():
        for frm, targets in lc.transitions.items():
            assert frm is None or frm in set(lc.states)
            assert targets <= set(lc.states)
    # a staff decision may follow any other decision on a pending or declined request
    for target in DECISION_TARGET.values():
        assert REQUESTS.allowed(RequestStatus.PENDING, target)
    assert not any(
        REQUESTS.allowed(s, RequestStatus.APPROVED) for s in (RequestStatus.RECEIVED, RequestStatus.APPROVED)
    )
    # final states
    for final in (RequestStatus.RECEIVED, RequestStatus.FULFILLED, RequestStatus.CANCELLED):
        assert final not in REQUEST_TRANSITIONS


@pytest.mark.parametrize(("name", "frm", "to"), REFUSED)
def test_every_move_outside_the_table_is_refused(name, frm, to):
    lc = LIFECYCLES[name]
    assert not lc.allowed(frm, to)
    with pytest.raises(InvalidTransition, match="cannot become"):
        lc.check(frm, to, "x")


@pytest.mark.parametrize(("name", "frm", "to"), ALLOWED)
def test_every_move_in_the_table_is_allowed(name, frm, to):
    LIFECYCLES[name].check(frm, to, "x")


def test_unknown_states_are_refused():
    assert not REQUESTS.allowed("ordered-twice", RequestStatus.RECEIVED)
    assert not REQUESTS.allowed(RequestStatus.PENDING, "lost")
    assert not ROUNDS.allowed(RoundStatus.REVIEWED, "archived")
    assert not ROUNDS.allowed(RoundStatus.CLOSED, RoundStatus.DRAFT)  # closed is final


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    database = init_db(tmp_path_factory.mktemp("lifecycle") / "lc.db")
    yield database
    database.dispose()


def _request(s, request_id: str, status: str) -> PurchaseRequestRow:
    row = PurchaseRequestRow(
        request_id=request_id,
        idempotency_key=request_id,
        reader_id="R1",
        bookstore_id="BS-1",
        isbn="9787111111115",
        isbn13="9787111111115",
        category="general",
        price_fen=1000,
        channel="online",
        requested_at=NOW,
        status=status,
        eligible=True,
        reason_codes=[],
        message="",
        decided_at=NOW,
        updated_at=NOW,
    )
    s.add(row)
    s.flush()
    return row


REQUEST_PAIRS = [(frm, to) for _, frm, to in _pairs("request", True) + _pairs("request", False) if frm is not None]


@pytest.mark.parametrize(("frm", "to"), REQUEST_PAIRS)
def test_moving_a_stored_request(db, frm, to):
    request_id = f"q-{frm}-{to}"
    later = datetime(2026, 5, 13)
    with db.session_scope(write=True) as s:
        row = _request(s, request_id, frm)
        if REQUESTS.allowed(frm, to):
            assert REQUESTS.move(s, row, to, "test", actor="t", at=later) == frm
            assert (row.status, row.updated_at) == (to, later)
        else:
            with pytest.raises(InvalidTransition):
                REQUESTS.move(s, row, to, "test", actor="t", at=later)
            assert (row.status, row.updated_at) == (frm, NOW)
    with db.session_scope() as s:
        trail = [(a.from_state, a.to_state) for a in history(s, "purchase_request", request_id)]
        stored = s.get(PurchaseRequestRow, request_id).status
    assert trail == ([(frm, to)] if REQUESTS.allowed(frm, to) else [])
    assert stored == (to if REQUESTS.allowed(frm, to) else frm)


def test_set_based_moves_refuse_a_row_in_another_state(db):
    with db.session_scope(write=True) as s:
        _request(s, "m-1", RequestStatus.RESERVED)
        _request(s, "m-2", RequestStatus.RESERVED)
        _request(s, "m-3", RequestStatus.PENDING)
    args = (RequestStatus.RESERVED, RequestStatus.CANCELLED, "cancel")
    with pytest.raises(InvalidTransition, match="not all were"), db.session_scope(write=True) as s:
        REQUESTS.move_many(s, PurchaseRequestRow, ["m-1", "m-3"], *args, actor="t", at=NOW)
    with pytest.raises(InvalidTransition), db.session_scope(write=True) as s:  # not in the table at all
        REQUESTS.move_many(
            s, PurchaseRequestRow, ["m-1"], RequestStatus.RESERVED, RequestStatus.RECEIVED, "x", actor="t", at=NOW
        )
    with db.session_scope(write=True) as s:
        REQUESTS.move_many(s, PurchaseRequestRow, ["m-1", "m-2"], *args, actor="t", at=NOW)
    with db.session_scope() as s:
        got = dict(
            s.execute(
                select(PurchaseRequestRow.request_id, PurchaseRequestRow.status).where(
                    PurchaseRequestRow.request_id.in_(["m-1", "m-2", "m-3"])
                )
            ).all()
        )
        assert [a.action for a in history(s, "purchase_request", "m-1")] == ["cancel"]
    assert got == {"m-1": "cancelled", "m-2": "cancelled", "m-3": "pending"}


def test_reservations_and_rounds_move_through_their_tables(db):
    with db.session_scope(write=True) as s:
        _request(s, "r-1", RequestStatus.RESERVED)
        res = ReservationRow(
            reservation_id="res-1", request_id="r-1", amount_fen=1000, status="reserved", created_at=NOW, expires_at=NOW
        )
        rnd = AcquisitionRoundRow(round_id="round-1", created_by="t", created_at=NOW, params={}, status="draft")
        s.add_all([res, rnd])
        s.flush()
        RESERVATIONS.move(s, res, ReservationStatus.CONFIRMED, "confirm", actor="t", at=NOW)
        with pytest.raises(InvalidTransition):
            RESERVATIONS.move(s, res, ReservationStatus.RESERVED, "again", actor="t", at=NOW)
        ROUNDS.move(s, rnd, RoundStatus.REVIEWED, "review", actor="t", at=NOW)
        with pytest.raises(InvalidTransition):
            ROUNDS.move(s, rnd, RoundStatus.DRAFT, "reopen", actor="t", at=NOW)
    with db.session_scope() as s:
        assert s.get(ReservationRow, "res-1").status == "confirmed"
        assert s.get(AcquisitionRoundRow, "round-1").status == "reviewed"
        assert [a.to_state for a in history(s, "reservation", "res-1")] == ["confirmed"]
        assert [a.to_state for a in history(s, "acquisition_round", "round-1")] == ["reviewed"]
