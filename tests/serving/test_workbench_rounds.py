"""The round lifecycle (draft -> submitted -> approved -> closed, with who and when; decisions frozen
once submitted) and the fund a round is checked against, over HTTP: the API and the staff page."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.serving._helpers import counter_body, eligible_readers, key
from tests.serving.conftest import make_settings, token

STAFF = token("staff", "alice")
FUND = "BUD-2026-ALL"  # the small city's programme-year line


@pytest.fixture(scope="module")
def client(small_city, model_dir, tmp_path_factory):
    from serving.app import create_app

    app = create_app(make_settings(small_city, tmp_path_factory.mktemp("life") / "yuedu.db", model_dir))
    with TestClient(app) as c:
        h = token("bookstore", "BS-11")
        for i, reader in enumerate(eligible_readers(small_city, 4, "Dehui")):
            body = counter_body(reader, "BS-11", 6.0, channel="online", title=f"流程{i}")
            assert c.post("/v1/purchase-requests", json=body, headers={**h, **key()}).json()["status"] == "pending"
        yield c


def _new(c, **body) -> dict:
    r = c.post("/v1/acquisition/rounds", json=body, headers=STAFF)
    assert r.status_code == 201, r.text
    return r.json()


def _move(c, round_id, action, note=None):
    return c.post(
        f"/v1/acquisition/rounds/{round_id}/transitions", json={"action": action, "note": note}, headers=STAFF
    )


def _eligible(round_: dict) -> list[str]:
    return [x["request_id"] for x in round_["lines"] if not x["reason_codes"]]


def test_a_round_goes_draft_submitted_approved_closed_with_who_and_when(client):
    c = client
    r = _new(c, fund_id=FUND)
    assert r["status"] == "draft" and r["fund_id"] == FUND and r["history"] == []
    rid = r["round_id"]
    first = _eligible(r)[0]
    decided = c.post(
        f"/v1/acquisition/rounds/{rid}/decisions", json={"decisions": [{"request_id": first, "decision": "approve"}]},
        headers=STAFF,
    )  # fmt: skip
    assert decided.json()["status"] == "reviewed"
    sub = _move(c, rid, "submit", "请科长审批")
    assert sub.status_code == 200 and sub.json()["status"] == "submitted"
    step = sub.json()["history"][-1]
    assert step["status"] == "submitted" and step["by"] == "staff:alice" and step["note"] == "请科长审批"
    assert step["at"].startswith("2026-06-15") and step["at"][-6] in "+-"
    frozen = c.post(
        f"/v1/acquisition/rounds/{rid}/decisions", json={"decisions": [{"request_id": first, "decision": "pending"}]},
        headers=STAFF,
    )  # fmt: skip
    assert frozen.status_code == 409 and "frozen" in frozen.text
    assert _move(c, rid, "approve").json()["status"] == "approved"
    refused = _move(c, rid, "submit")
    assert refused.status_code == 409 and "'approved' cannot become 'submitted'" in refused.text
    assert _move(c, rid, "close").json()["status"] == "closed"
    assert [h["status"] for h in c.get(f"/v1/acquisition/rounds/{rid}", headers=STAFF).json()["history"]] == [
        "submitted", "approved", "closed",
    ]  # fmt: skip
    assert _move(c, rid, "return").status_code == 409  # closed is final
    audit = c.get("/v1/audit", params={"entity": "acquisition_round", "entity_id": rid}, headers=STAFF).json()
    assert {x["action"] for x in audit["items"]} >= {"create", "review", "submit", "approve", "close"}


def test_sent_back_a_round_opens_again_and_an_abandoned_round_keeps_no_approval(client):
    c = client
    r = _new(c)
    rid, line = r["round_id"], _eligible(r)[-1]
    assert _move(c, rid, "submit").status_code == 200
    assert _move(c, rid, "return", "价格再核").json()["status"] == "reviewed"
    ok = c.post(
        f"/v1/acquisition/rounds/{rid}/decisions", json={"decisions": [{"request_id": line, "decision": "approve"}]},
        headers=STAFF,
    )  # fmt: skip
    assert ok.status_code == 200
    closing = _move(c, rid, "close")
    assert closing.status_code == 409 and "never approved" in closing.text
    c.post(
        f"/v1/acquisition/rounds/{rid}/decisions", json={"decisions": [{"request_id": line, "decision": "pending"}]},
        headers=STAFF,
    )  # fmt: skip
    assert _move(c, rid, "close").json()["status"] == "closed"
    assert (
        c.post(f"/v1/acquisition/rounds/{rid}/transitions", json={"action": "reopen"}, headers=STAFF).status_code == 422
    )


def test_the_fund_bounds_the_budget_and_an_unknown_fund_is_refused(client):
    c = client
    fund = next(
        r for r in c.get("/v1/funds", params={"year": "2026"}, headers=STAFF).json()["rows"] if r["fund_id"] == FUND
    )
    free = min(fund["free_fen"], fund["room_fen"]) / 100
    over = c.post("/v1/acquisition/rounds", json={"fund_id": FUND, "budget_yuan": free + 1}, headers=STAFF)
    assert over.status_code == 409 and f"fund {FUND} has free" in over.text
    unknown = c.post("/v1/acquisition/rounds", json={"fund_id": "NOPE"}, headers=STAFF)
    assert unknown.status_code == 409 and FUND in unknown.text  # names the funds there are
    assert _new(c, fund_id=FUND, budget_yuan=free)["fund_id"] == FUND


def test_the_page_creates_a_round_on_a_fund_and_moves_it_by_its_buttons(client):
    c = client
    assert c.post("/staff/login", data={"username": "alice", "password": "alice-pw"}).status_code == 200
    home = c.get("/staff").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', home).group(1)
    assert f'<option value="{FUND}">' in home
    made = c.post("/staff/rounds", data={"csrf": csrf, "fund_id": FUND}, follow_redirects=False)
    rid = made.headers["location"].rsplit("/", 1)[-1]
    page = c.get(f"/staff/rounds/{rid}").text
    assert 'id="round-submit"' in page and 'id="round-fund">BUD-2026-ALL' in page and 'id="bulk"' in page
    moved = c.post(
        f"/staff/rounds/{rid}/status", data={"csrf": csrf, "action": "submit", "note": "月度"}, follow_redirects=False
    )
    assert moved.status_code == 303 and "error" not in moved.headers["location"]
    page = c.get(f"/staff/rounds/{rid}").text
    assert 'data-status="submitted"' in page and "已提交审批" in page and "决定已冻结" in page
    assert 'id="bulk"' not in page and 'id="round-approve"' in page  # no decision forms once frozen
    again = c.post(f"/staff/rounds/{rid}/status", data={"csrf": csrf, "action": "submit"}, follow_redirects=False)
    assert "error=" in again.headers["location"]
    refused = c.post(f"/staff/rounds/{rid}/status", data={"csrf": "x", "action": "approve"}, follow_redirects=False)
    assert refused.status_code == 403


def _page_rows(html: str) -> dict[tuple[str, str], list[int]]:
    rows = re.findall(r'<tr data-fund="([^"]+)" data-period="([^"]+)">(.*?)</tr>', html, re.S)
    return {(html_lib.unescape(f), p): [int(x) for x in re.findall(r'data-fen="(-?\d+)"', body)] for f, p, body in rows}


def test_the_budgets_page_shows_the_figures_of_get_funds_and_its_filters_keep_rows(client):
    c = client
    c.post("/staff/login", data={"username": "alice", "password": "alice-pw"})
    api = c.get("/v1/funds", params={"year": "2026"}, headers=STAFF).json()["rows"]
    page = c.get("/staff/budgets", params={"year": "2026", "month": "2026-06"}).text
    shown = _page_rows(page)
    expected = {
        (r["fund_id"], r["period"]): [r["planned_fen"], r["encumbered_fen"], r["spent_fen"], r["free_fen"]]
        for r in api
        if r["period"] in ("2026", "2026-06")
    }
    assert shown == expected and len(shown) > 5
    dehui = _page_rows(c.get("/staff/budgets", params={"month": "2026-06", "district": "Dehui"}).text)
    assert dehui and all("Dehui" in f for f, p in dehui if p == "2026-06")
    may = _page_rows(c.get("/staff/budgets", params={"month": "2026-05"}).text)
    assert {p for _, p in may} == {"2026", "2026-05"}


def test_the_burn_down_moves_with_an_approval_and_the_page_shows_the_api_figures(client):
    c = client
    before = c.get("/v1/funds/burndown", params={"fund": FUND}, headers=STAFF).json()
    assert [m["month"] for m in before["months"]][:2] == ["2026-01", "2026-02"]
    assert before["months"][-1]["planned_fen"] == before["planned_fen"]
    assert before["months"][5]["used_fen"] is not None and before["months"][6]["used_fen"] is None  # July is ahead
    r = _new(c)
    line = next(x for x in r["lines"] if not x["reason_codes"])
    c.post(
        f"/v1/acquisition/rounds/{r['round_id']}/decisions",
        json={"decisions": [{"request_id": line["request_id"], "decision": "approve"}]}, headers=STAFF,
    )  # fmt: skip
    after = c.get("/v1/funds/burndown", params={"fund": FUND}, headers=STAFF).json()
    price = round(line["price"] * 100)
    assert after["used_fen"] == before["used_fen"] + price
    assert after["months"][5]["used_fen"] == before["months"][5]["used_fen"] + price
    page = c.get("/staff/budgets", params={"fund": FUND}).text
    assert f'data-used="{after["used_fen"]}"' in page and 'id="used-line"' in page
    assert re.search(r'data-month="2026-06" data-fen="(\d+)"', page).group(1) == str(after["months"][5]["used_fen"])
    assert f'data-exhaustion="{after["projected_exhaustion"] or ""}"' in page
    assert c.get("/v1/funds/burndown", params={"fund": "NOPE"}, headers=STAFF).status_code == 409


@settings(deadline=None, max_examples=80)
@given(used=st.integers(0, 10**8), planned=st.integers(1, 10**8), day=st.integers(0, 364))
def test_the_projection_runs_out_when_the_pace_reaches_the_plan(used, planned, day):
    from datetime import date, timedelta

    from acquisition.burndown import _projection

    as_of = date(2026, 1, 1) + timedelta(days=day)
    rate, end = _projection(used, planned, 2026, as_of)
    if used == 0:
        assert end is None
    elif end is not None:
        days = (end - date(2026, 1, 1)).days + 1
        assert end.year == 2026 and (used >= planned or rate * days >= planned > rate * (days - 1) - 1e-6)
    else:
        assert rate * 365 < planned


def test_the_order_sheet_lists_approved_lines_with_branch_fund_and_exact_totals(client, small_city):
    import csv
    import io

    from openpyxl import load_workbook

    c = client
    h = token("bookstore", "BS-11")
    reader = eligible_readers(small_city, 5, "Dehui")[4]
    body = counter_body(reader, "BS-11", 7.35, channel="online", title="=HYPERLINK(1)")
    assert c.post("/v1/purchase-requests", json=body, headers={**h, **key()}).json()["status"] == "pending"
    r = _new(c, fund_id=FUND)
    ids = _eligible(r)[:3]
    c.post(
        f"/v1/acquisition/rounds/{r['round_id']}/decisions",
        json={"decisions": [{"request_id": i, "decision": "approve"} for i in ids]}, headers=STAFF,
    )  # fmt: skip
    lines = {
        x["request_id"]: x for x in c.get(f"/v1/acquisition/rounds/{r['round_id']}", headers=STAFF).json()["lines"]
    }
    want_fen = sum(round(lines[i]["price"] * 100) for i in ids)
    got = c.get(f"/v1/acquisition/rounds/{r['round_id']}/order-sheet", headers=STAFF)
    assert got.status_code == 200 and got.headers["content-disposition"].startswith(
        'attachment; filename="order-2026-06'
    )
    wb = load_workbook(io.BytesIO(got.content))
    rows = list(wb["order"].iter_rows(values_only=True))
    header, body_rows, total = rows[0], rows[1:-1], rows[-1]
    assert header == (
        "isbn",
        "title",
        "author",
        "publisher",
        "price",
        "quantity",
        "branch",
        "bookstore_id",
        "fund",
        "amount",
    )
    assert total[0] == "合计 total" and total[5] == 3 and round(total[9] * 100) == want_fen
    assert (
        sum(x[5] for x in body_rows) == 3
        and {x[6] for x in body_rows} == {"D-Dehui"}
        and {x[8] for x in body_rows} == {FUND}
    )
    assert wb["order"]["E2"].number_format == "0.00" and wb["order"].cell(len(rows), 1).font.b
    assert not any(str(x[1]).startswith("=") for x in body_rows)  # a formula-like title is neutralised
    summary = dict(wb["summary"].iter_rows(values_only=True))
    assert summary["copies"] == 3 and round(summary["amount"] * 100) == want_fen and summary["fund"] == FUND
    text = c.get(f"/staff/rounds/{r['round_id']}/order-sheet.csv").content.decode("utf-8-sig")
    csv_rows = list(csv.DictReader(io.StringIO(text)))
    assert csv_rows[-1]["isbn"] == "合计 total" and round(float(csv_rows[-1]["amount"]) * 100) == want_fen


def test_the_settlement_page_shows_the_figures_of_get_settlements(client):
    c = client
    api = c.get("/v1/settlements", params={"month": "2026-06"}, headers=STAFF).json()
    page = c.get("/staff/settlement", params={"month": "2026-06"}).text
    assert f'id="settlement-total" data-fen="{api["net_due_fen"]}"' in page and "书店结算" in page
    for b in api["bookstores"]:
        assert f'data-bookstore="{b["bookstore_id"]}"' in page
    assert (
        "error=" in c.get("/staff/settlement", params={"month": "0000-01"}, follow_redirects=False).headers["location"]
    )


def test_analytics_page_lists_holds_alerts_and_dead_on_arrival_as_the_api_and_explains_the_heat_map(client):
    c = client
    api = c.get("/v1/reports/collection", headers=STAFF).json()
    assert api["holds_alerts"] and api["dead_on_arrival_total"] == sum(api["dead_on_arrival_by_source"].values())
    assert all(x["holds_per_copy"] > 2 for x in api["holds_alerts"])
    cap = api["copy_capacity_per_year"]
    assert all(cell["home_loans_per_copy_per_year"] <= cap for cell in api["cells"])  # never impossible
    page = c.get("/staff/analytics").text
    assert f'id="doa-total">{api["dead_on_arrival_total"]}<' in page
    assert f'id="holds-alerts-title">预约与馆藏比预警 · {len(api["holds_alerts"])}<' in page
    assert all(f'data-copy="{d["copy_id"]}"' in page for d in api["dead_on_arrival"][:50])
    cells = re.findall(r'data-district="([^"]+)" data-class="([A-Z])">([\d.]+)', page)
    want = {(x["district"], x["clc_top"]): f"{x['home_loans_per_copy_per_year']:.1f}" for x in api["cells"]}
    assert cells and all(want[(html_lib.unescape(d), k)] == v for d, k, v in cells)
    assert 'class="over"' not in page and "一册书一年最多可借出约" in page
    demand = c.get("/staff/analytics", params={"heat": "demand"}).text
    over = [x for x in api["cells"] if x["loans_per_copy_per_year"] > cap]
    assert over and demand.count('class="over"') == len(over) and "标 * 的格子" in demand
