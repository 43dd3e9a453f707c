"""Never just "no": a decline because the network holds the book offers the cheapest way to get it,
with the expected wait as known at the decision time; offered and taken ways are stored and audited."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from acquisition import alternatives
from acquisition.alternatives import Availability, ways
from acquisition.db import AlternativeOfferRow, AuditLog
from acquisition.errors import InvalidTransition
from acquisition.policy import AlternativesConfig, Policy
from tests.acquisition._counter_data import HELD3, NOW, SHELF_HOME, make_service, request, write_city

CFG = AlternativesConfig()
T = datetime(2026, 5, 1, 12, 0)
ISBN = "9787000000001"


def _world(loans: list[dict], holds: list[dict], *, n_copies: int = 2, ebook: bool = False) -> Availability:
    titles = [{"title_id": "T", "isbn13": ISBN, "title": "Book", "author": "A", "format": "print"}]
    if ebook:
        titles.append({"title_id": "TE", "isbn13": None, "title": "Book", "author": "A", "format": "ebook"})
    copies = pl.DataFrame(
        {
            "copy_id": [f"C{i}" for i in range(n_copies)],
            "title_id": ["T"] * n_copies,
            "branch_id": ["FAR"] + ["HOME"] * (n_copies - 1),
            "status": ["on_shelf"] * n_copies,
        }
    )
    loan_schema = {
        "copy_id": pl.String,
        "title_id": pl.String,
        "branch_id": pl.String,
        "borrowed_at": pl.Datetime("us"),
        "returned_at": pl.Datetime("us"),
    }
    hold_schema = {"title_id": pl.String, "placed_at": pl.Datetime("us"), "fulfilled_at": pl.Datetime("us")}
    branches = pl.DataFrame(
        {
            "branch_id": ["HOME", "FAR"],
            "name": ["Home", "Far"],
            "district": ["D1", "D2"],
            "lat": [0.0, 1.0],
            "lon": [0.0, 1.0],
            "delivers": [True, False],
        }
    )
    return Availability.from_frames(
        pl.DataFrame(titles),
        copies,
        pl.DataFrame(loans, schema=loan_schema),
        pl.DataFrame(holds, schema=hold_schema),
        branches,
    )


def _loan(copy: str, out: datetime, back: datetime | None) -> dict:
    return {"copy_id": copy, "title_id": "T", "branch_id": "X", "borrowed_at": out, "returned_at": back}


def test_a_copy_on_the_home_shelf_is_a_hold_there():
    found = ways(_world([], []), CFG, ISBN, "HOME", T, delivers=True)
    assert found[0].kind == "hold" and found[0].branch_id == "HOME" and found[0].wait_days == CFG.pickup_days
    assert "transfer" not in {w.kind for w in found}  # nothing to transfer: it is already at home


def test_loans_out_at_t_take_copies_off_the_shelf_and_returned_ones_come_back():
    # the home copy is out at T (borrowed before, returned after), the far one is on the shelf
    avail = _world([_loan("C1", T - timedelta(days=5), T + timedelta(days=3))], [])
    found = ways(avail, CFG, ISBN, "HOME", T, delivers=True)
    assert [w.kind for w in found] == ["hold", "transfer", "delivery"]
    assert found[0].branch_id == "FAR"
    # after the return the home copy is back on its shelf
    later = ways(avail, CFG, ISBN, "HOME", T + timedelta(days=4), delivers=True)
    assert later[0].branch_id == "HOME"


def test_every_copy_out_means_a_queue_whose_wait_grows_with_the_holds_ahead():
    out = [_loan(c, T - timedelta(days=2), None) for c in ("C0", "C1")]
    holds = [{"title_id": "T", "placed_at": T - timedelta(days=i + 1), "fulfilled_at": None} for i in range(3)]
    empty_queue = ways(_world(out, []), CFG, ISBN, "HOME", T, delivers=False)
    three_ahead = ways(_world(out, holds), CFG, ISBN, "HOME", T, delivers=False)
    assert empty_queue[0].kind == three_ahead[0].kind == "queue"
    assert empty_queue[0].wait_days == pytest.approx(0.5 * CFG.loan_cycle_days / 2, abs=0.05)
    assert three_ahead[0].wait_days == pytest.approx(3.5 * CFG.loan_cycle_days / 2, abs=0.05)
    assert three_ahead[0].ahead == 3
    # a hold placed after t is not known at t; one older than the horizon counts as given up
    future = [{"title_id": "T", "placed_at": T + timedelta(days=1), "fulfilled_at": None}]
    stale = [{"title_id": "T", "placed_at": T - timedelta(days=CFG.hold_horizon_days + 1), "fulfilled_at": None}]
    assert ways(_world(out, future + stale), CFG, ISBN, "HOME", T, delivers=False)[0].ahead == 0


def test_the_ebook_is_offered_first_when_free_and_waits_are_costed():
    out = [_loan(c, T - timedelta(days=2), None) for c in ("C0", "C1")]
    found = ways(_world(out, [], ebook=True), CFG, ISBN, "HOME", T, delivers=False)
    assert [w.kind for w in found] == ["ebook", "queue"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(-40, 0), st.integers(-40, 40)), max_size=8),
    st.integers(0, 6),
)
def test_offers_are_sorted_by_cost_plus_wait_and_waits_are_never_negative(loans, n_holds):
    rows = [
        _loan(f"C{c}", T + timedelta(days=a), T + timedelta(days=a + max(b - a, 1)) if b > a else None)
        for c, a, b in loans
    ]
    holds = [{"title_id": "T", "placed_at": T - timedelta(days=i + 1), "fulfilled_at": None} for i in range(n_holds)]
    found = ways(_world(rows, holds), CFG, ISBN, "HOME", T, delivers=True)
    assert found, "a held book always has a way"
    per_day = round(CFG.wait_cost_yuan_per_day * 100)
    scores = [w.cost_fen + w.wait_days * per_day for w in found]
    assert scores == sorted(scores) and all(w.wait_days >= 0 for w in found)
    assert len({w.kind for w in found}) == len(found)


def _counter(tmp_path):
    svc = make_service(tmp_path)
    svc.availability = Availability.from_data_dir(tmp_path / "data")
    return svc


def test_the_counter_offers_the_cheapest_way_and_stores_every_way_offered(tmp_path):
    svc = _counter(tmp_path)
    d = svc.decide(request(isbn=HELD3), "k-held")
    assert d.status == "declined" and d.reason_codes == ["ALREADY_HELD"]
    assert d.alternative is not None and d.alternative.kind == "hold" and d.alternative.branch_id == "B-S1"
    assert d.alternative.text.startswith("South 1") and "South 1" in d.alternative.text_en
    assert {a.kind for a in d.other_alternatives} == {"transfer", "delivery"}  # R-ok's branch delivers
    with svc.db.session_scope() as s:
        rows = s.scalars(select(AlternativeOfferRow).order_by(AlternativeOfferRow.rank)).all()
        assert [r.kind for r in rows] == [d.alternative.kind, *(a.kind for a in d.other_alternatives)]
        audit = s.scalars(select(AuditLog).where(AuditLog.entity == "alternative_offer")).all()
        assert [a.action for a in audit] == ["offer"] and audit[0].details["offered"] == "hold"
    replay = svc.decide(request(isbn=HELD3), "k-held")
    assert replay.replayed and replay.alternative == d.alternative
    assert d.in_language("en").alternative.text == d.alternative.text_en


def test_home_shelf_decline_offers_the_hold_at_home(tmp_path):
    d = _counter(tmp_path).decide(request(isbn=SHELF_HOME), "k-home")
    assert d.reason_codes == ["ON_SHELF_AT_HOME_BRANCH"]
    assert d.alternative.kind == "hold" and d.alternative.branch_id == "B-N1"


def test_other_declines_and_approvals_offer_nothing(tmp_path):
    svc = _counter(tmp_path)
    assert svc.decide(request(), "k-ok").alternative is None
    blocked = svc.decide(request(isbn=HELD3, reader_id="R-blocked"), "k-blocked")
    assert blocked.status == "declined" and blocked.alternative is None  # a hold would not help a blocked card


def test_taking_a_way_is_recorded_once_and_only_for_a_way_offered(tmp_path):
    svc = _counter(tmp_path)
    d = svc.decide(request(isbn=HELD3), "k-take")
    with pytest.raises(InvalidTransition, match="not offered"):
        alternatives.take(svc.db, d.request_id, "ebook", at=NOW, actor="bookstore:BS-N")
    taken = alternatives.take(svc.db, d.request_id, "transfer", at=NOW, actor="bookstore:BS-N")
    assert taken.kind == "transfer" and not taken.offered_first
    with pytest.raises(InvalidTransition, match="already taken"):
        alternatives.take(svc.db, d.request_id, "hold", at=NOW, actor="bookstore:BS-N")
    with svc.db.session_scope() as s:
        row = s.scalar(select(AlternativeOfferRow).where(AlternativeOfferRow.kind == "transfer"))
        assert row.taken_at == NOW
        take = s.scalar(select(AuditLog).where(AuditLog.entity == "alternative_offer", AuditLog.action == "take"))
        assert take.details == {"kind": "transfer", "rank": 1}
    rep = alternatives.report(svc.db)
    assert (rep.declines_with_offer, rep.taken, rep.took_first) == (1, 1, 0)
    assert {k.kind: (k.offered_first, k.listed, k.taken) for k in rep.kinds} == {
        "hold": (1, 1, 0),
        "transfer": (0, 1, 1),
        "delivery": (0, 1, 0),
    }


def test_an_empty_data_directory_gives_no_ways(tmp_path):
    avail = Availability.empty()
    assert ways(avail, Policy().alternatives, HELD3, "B-N1", NOW, delivers=True) == []
    write_city(tmp_path)
    assert Availability.from_data_dir(tmp_path).shelf_at(HELD3, NOW)[1] == 3
