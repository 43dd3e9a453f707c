"""The staff round page as a workbench: filter, search, sort and page the lines; decide in bulk with a
note (the ticked lines, or every line shown); undo back to pending; each refunds or charges exactly."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from acquisition.db import StaffDecisionRow
from acquisition.lifecycle import LineDecision, RoundStatus
from acquisition.rounds import Round, RoundLine
from features.schema import RequestStatus
from serving.line_filters import PAGE_SIZE, LineFilter
from tests.serving._helpers import counter_body, eligible_readers, key
from tests.serving.conftest import make_settings, token

STAFF = token("staff", "alice")


def _line(i: int, **kw) -> RoundLine:
    base = dict(
        rank=i,
        request_id=f"q{i:04d}",
        isbn=f"97871{i:08d}",
        title=f"书{i}",
        clc_class="I247" if i % 2 else "TP3",
        bookstore_id="BS-1",
        district="Dehui" if i % 3 else "Nanguan",
        price=float(10 + i % 7),
        selected=i % 4 == 0,
        predicted_loans=float(i % 5),
        value=None,
        reasons=[],
        reason_codes=["PRICE_OVER_CAP"] if i % 10 == 9 else [],
        decision=LineDecision.PENDING,
        decided_by=None,
        request_status=RequestStatus.PENDING,
    )
    return RoundLine(**(base | kw))


def _round(n: int) -> Round:
    lines = [_line(i) for i in range(1, n + 1)]
    return Round(
        round_id="round-x",
        created_by="staff:a",
        created_at=datetime(2026, 6, 15),
        status=RoundStatus.DRAFT,
        period="2026-06",
        n_lines=n,
        n_selected=0,
        n_approved=0,
        ranker="test",
        lines=lines,
    )


@settings(deadline=None, max_examples=60)  # a loaded CI machine must not turn timing into a failure
@given(
    n=st.integers(0, 260),
    district=st.sampled_from(["", "Dehui", "Nanguan"]),
    clc=st.sampled_from(["", "I", "TP"]),
    eligible=st.sampled_from(["", "yes", "no"]),
    sort=st.sampled_from(["rank", "price", "-price", "predicted", "title"]),
)
def test_filters_keep_exactly_the_matching_lines_and_pages_cover_them(n, district, clc, eligible, sort):
    round_ = _round(n)
    view = LineFilter(district=district, clc=clc, eligible=eligible, sort=sort)
    shown = view.apply(round_)
    expected = {
        x.request_id
        for x in round_.lines
        if (not district or x.district == district)
        and (not clc or x.clc_class.startswith(clc))
        and (not eligible or (not x.reason_codes) == (eligible == "yes"))
    }
    assert {x.request_id for x in shown} == expected
    pages = view.page_of(shown)[1]
    seen = [x for p in range(1, pages + 1) for x in LineFilter(sort=sort, page=p).page_of(shown)[0]]
    assert seen == shown and all(len(LineFilter(page=p).page_of(shown)[0]) <= PAGE_SIZE for p in range(1, pages + 1))
    if sort == "price":
        assert [x.price for x in shown] == sorted(x.price for x in shown)


def test_search_matches_title_isbn_and_request_id_and_bad_params_fall_back():
    round_ = _round(30)
    assert [x.rank for x in LineFilter(q="书12").apply(round_)] == [12]
    assert [x.rank for x in LineFilter(q="9787100000007").apply(round_)] == [7]
    view = LineFilter.from_params({"page": "x", "sort": "evil", "q": " 书3 "})
    assert view.page == 1 and view.sort == "rank" and view.q == "书3"
    assert view.query(page=2) == "q=%E4%B9%A63&sort=rank&page=2"


@pytest.fixture(scope="module")
def app(small_city, model_dir, tmp_path_factory):
    from serving.app import create_app

    return create_app(make_settings(small_city, tmp_path_factory.mktemp("wb") / "yuedu.db", model_dir))


@pytest.fixture(scope="module")
def staff(app, small_city):
    """A logged-in staff client and a round of six 5-yuan online requests at Dehui's bookstore."""
    with TestClient(app) as c:
        h = token("bookstore", "BS-11")
        for i, reader in enumerate(eligible_readers(small_city, 6, "Dehui")):
            body = counter_body(reader, "BS-11", 5.0, channel="online", title=f"工作台{i}")
            assert c.post("/v1/purchase-requests", json=body, headers={**h, **key()}).json()["status"] == "pending"
        assert c.post("/staff/login", data={"username": "alice", "password": "alice-pw"}).status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/staff").text).group(1)
        made = c.post("/staff/rounds", data={"csrf": csrf}, follow_redirects=False)
        yield c, made.headers["location"].rsplit("/", 1)[-1], csrf


def _lines(c, round_id):
    return {x["request_id"]: x for x in c.get(f"/v1/acquisition/rounds/{round_id}", headers=STAFF).json()["lines"]}


def _dehui_used(c) -> float:
    return next(d["used"] for d in c.get("/v1/budgets", headers=STAFF).json()["districts"] if d["district"] == "Dehui")


def test_bulk_approve_with_a_note_then_undo_refunds(staff, app):
    c, round_id, csrf = staff
    ids = [i for i, x in _lines(c, round_id).items() if not x["reason_codes"]][:2]
    before = _dehui_used(c)
    form = {"csrf": csrf, "decision": "approve", "note": "读者需求高", "request_id": ids}
    done = c.post(f"/staff/rounds/{round_id}/decide", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith(f"#r-{ids[0]}")  # back at the line
    assert all(_lines(c, round_id)[i]["decision"] == "approve" for i in ids)
    assert _dehui_used(c) == pytest.approx(before + 10.0)
    with app.state.yuedu.db.session_scope() as s:
        notes = {r.note for r in s.query(StaffDecisionRow).filter(StaffDecisionRow.request_id.in_(ids))}
    assert notes == {"读者需求高"}
    c.post(f"/staff/rounds/{round_id}/decide", data={"csrf": csrf, "decision": "pending", "request_id": ids[0]})
    assert _lines(c, round_id)[ids[0]]["decision"] == "pending"
    assert _dehui_used(c) == pytest.approx(before + 5.0)  # the undone line's money is back


def test_approve_all_shown_applies_to_the_filtered_lines_only(staff):
    c, round_id, csrf = staff
    page = c.get(f"/staff/rounds/{round_id}?q=工作台5").text
    assert re.search(r'id="shown-count">1 /', page)
    c.post(f"/staff/rounds/{round_id}/decide?scope=shown", data={"csrf": csrf, "decision": "approve", "q": "工作台5"})
    lines = _lines(c, round_id)
    assert [x["title"] for x in lines.values() if x["decision"] == "approve" and x["title"] == "工作台5"] == ["工作台5"]
    assert lines[next(i for i, x in lines.items() if x["title"] == "工作台4")]["decision"] == "pending"


def test_a_bulk_decision_without_lines_says_so(staff):
    c, round_id, csrf = staff
    r = c.post(f"/staff/rounds/{round_id}/decide", data={"csrf": csrf, "decision": "approve"}, follow_redirects=False)
    assert "error=" in r.headers["location"]


def test_audit_view_api_and_csv_agree(staff):
    c, round_id, _ = staff
    api = c.get("/v1/audit", params={"actor": "staff:alice", "limit": 1000}, headers=STAFF).json()
    assert api["total"] >= 3 and all(x["actor"].startswith("staff:alice") for x in api["items"])
    assert any(x["entity"] == "acquisition_round" and x["entity_id"] == round_id for x in api["items"])
    page = c.get("/staff/audit", params={"actor": "staff:alice"}).text
    assert f'id="audit-total">{api["total"]}<' in page and "审计记录" in page
    csv_text = c.get("/staff/audit.csv", params={"actor": "staff:alice"}).content.decode("utf-8-sig")
    assert len(csv_text.strip().splitlines()) == api["total"] + 1
    assert c.get("/v1/audit", params={"since": "1999-01-01"}, headers=STAFF).status_code == 422
    assert c.get("/v1/audit", headers=token("reader", "R1")).status_code == 403


def test_a_round_smaller_than_the_pending_requests_still_selects(staff):
    """Regression (issue 16): `{"max_lines": 2}` below the pending count selected nothing."""
    c, _, _ = staff
    r = c.post("/v1/acquisition/rounds", json={"max_lines": 2}, headers=STAFF)
    assert r.status_code == 201, r.text
    assert r.json()["n_lines"] == 2 and r.json()["n_selected"] >= 1


def test_lines_show_the_requester_by_pseudonym_and_the_request_date(staff, small_city):
    from features.privacy import pseudonymise

    c, round_id, _ = staff
    readers = set(eligible_readers(small_city, 6, "Dehui"))
    lines = list(_lines(c, round_id).values())
    assert all(x["requester"] and x["requester"] not in readers for x in lines)  # never the card id
    assert {x["requester"] for x in lines} == {pseudonymise(r) for r in readers}
    assert all(x["requested_at"] and x["requested_at"][-6] in "+-" for x in lines)  # RFC 3339 with offset
    page = c.get(f"/staff/rounds/{round_id}").text
    assert lines[0]["requester"][:10] in page and not any(r in page for r in readers)
    csv_text = c.get(f"/staff/rounds/{round_id}/export.csv").content.decode("utf-8-sig")
    header = csv_text.splitlines()[0].split(",")
    assert {"author", "publisher", "requested_at"} <= set(header) and "requester" not in header


def test_a_round_is_created_from_the_page_with_month_budget_and_line_cap(staff):
    c, _, csrf = staff
    made = c.post(
        "/staff/rounds",
        data={"csrf": csrf, "period": "2026-06", "budget_yuan": "6", "max_lines": "3"},
        follow_redirects=False,
    )
    round_id = made.headers["location"].rsplit("/", 1)[-1]
    r = c.get(f"/v1/acquisition/rounds/{round_id}", headers=STAFF).json()
    assert r["period"] == "2026-06" and r["n_lines"] == 3
    assert sum(x["price"] for x in r["lines"] if x["selected"]) <= 6.0  # the page's budget holds
    for bad in ({"period": "0000-01"}, {"max_lines": "0"}, {"budget_yuan": "-5"}, {"period": "2031-01"}):
        refused = c.post("/staff/rounds", data={"csrf": csrf, **bad}, follow_redirects=False)
        assert refused.status_code == 303 and "error=" in refused.headers["location"], bad
