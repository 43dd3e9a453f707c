"""Funds (hierarchy, policy, budget report), invoices and returns, the year close and the settlement
with bookstores, on the tiny city of ``_counter_data``."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from acquisition import funds, settlement
from acquisition.db import AuditLog, BudgetLineRow, load_budget_lines
from acquisition.errors import DecisionRefused, InvalidPeriod
from acquisition.policy import FundConfig, Policy, PolicyError, policy_from_dict
from acquisition.rounds import StaffDecision, apply_decisions, create_round

from ._counter_data import NOW, isbn, make_service, request
from .test_money_safety import LOOSE, assert_audit_replays_to_ledger, assert_funds_add_up, assert_ledger_conserved

#: A placeholder line of another year (the tiny city's data always has a budgets table).
ELSEWHERE = [{"budget_id": "Y2020", "period": "2020", "bookstore_id": None, "district": None, "amount": 1.0}]
PLAN = (6, 6, 8, 12, 8, 6, 10, 10, 8, 8, 8, 10)  # World Book Day in April, the summer holidays


def hierarchy(**bookstore) -> list[FundConfig]:
    """Programme year 2026 (1,000 yuan, hard monthly plan) -> Chaoyang (600) -> bookstore BS-N (soft 300)."""
    return [
        FundConfig(fund_id="P2026", year=2026, amount_yuan=1000, monthly_plan=PLAN),
        FundConfig(fund_id="CY2026", year=2026, parent="P2026", district="Chaoyang", amount_yuan=600, unspent="carry"),
        FundConfig(
            fund_id="BSN2026", year=2026, parent="CY2026", district="Chaoyang", bookstore_id="BS-N",
            amount_yuan=300, cap="soft", **bookstore,
        ),
    ]  # fmt: skip


def service(tmp_path, fund_list=None, **policy):
    svc = make_service(tmp_path, Policy(**(LOOSE | policy)), budgets=ELSEWHERE)
    load_budget_lines(svc.db, funds.fund_lines(fund_list or hierarchy()))
    return svc


def bought(svc, n: int, price: float, **kw) -> str:
    """A counter request decided and checked out (encumbered): its request id."""
    d = svc.decide(request(isbn=isbn(100 + n), price=price, **kw), f"k{n}")
    assert d.eligible, d.reason_codes
    svc.checkout(d.request_id)
    return d.request_id


def report_rows(svc, year="2026") -> dict[str, funds.FundRow]:
    return {r.fund_id: r for r in funds.budget_report(svc.db, year).rows}


def assert_report_adds_up(svc, year="2026") -> None:
    assert_funds_add_up(svc.db, year)


# --- the hierarchy --------------------------------------------------------------------------------


def test_a_fund_becomes_a_year_line_and_a_monthly_plan_that_adds_up_exactly():
    lines = funds.fund_lines(hierarchy())
    p = lines.filter(pl.col("parent_id") == "P2026", pl.col("period").str.len_chars() == 7)
    assert p.height == 12 and round(p["amount"].sum() * 100) == 100_000
    assert p.filter(pl.col("period") == "2026-04")["amount"].item() == 120.0
    bsn = lines.filter(pl.col("budget_id") == "BSN2026").row(0, named=True)
    assert (bsn["amount"], bsn["target"], bsn["rollover"]) == (600.0, 300.0, "return")  # ceiling: the parent's


def test_split_fen_is_exact_for_awkward_weights():
    assert funds.split_fen(100, [1, 1, 1]) == [34, 33, 33]
    assert sum(funds.split_fen(1_000_003, [0.1] * 12)) == 1_000_003


@pytest.mark.parametrize(
    ("change", "key", "why"),
    [
        ({"parent": "nope"}, "funds.BSN2026.parent", "no fund"),
        ({"district": "Nanguan"}, "funds.BSN2026.parent", "district 'Chaoyang'"),
        ({"cap": "hard", "amount_yuan": 700}, "funds.CY2026", "add up to 700.00 yuan"),
        ({"year": 2027}, "funds.BSN2026.parent", "is for 2026"),
    ],
)
def test_a_wrong_hierarchy_is_refused_naming_the_fund(change, key, why):
    fund_list = hierarchy()
    fund_list[2] = fund_list[2].model_copy(update=change)
    with pytest.raises(PolicyError) as err:
        funds.fund_lines(fund_list)
    assert err.value.key == key and why in err.value.reason


def test_funds_load_from_the_policy_toml_and_a_soft_root_needs_a_ceiling():
    data = {"funds": [{"fund_id": "P", "year": 2026, "amount_yuan": 10, "monthly_plan": [1] * 12}]}
    assert funds.policy_lines(policy_from_dict(data)).height == 13
    with pytest.raises(PolicyError, match="monthly_plan"):
        policy_from_dict({"funds": [{"fund_id": "P", "year": 2026, "amount_yuan": 1, "monthly_plan": [1]}]})
    with pytest.raises(PolicyError, match="hard_cap_yuan"):
        funds.fund_lines([FundConfig(fund_id="P", year=2026, amount_yuan=1, cap="soft")])


def test_a_data_directory_funds_toml_is_loaded(tmp_path):
    (tmp_path / "funds.toml").write_text('[[funds]]\nfund_id = "P2026"\nyear = 2026\namount_yuan = 50\n')
    assert funds.load_funds_file(tmp_path / "funds.toml")["amount"].to_list() == [50.0]
    (tmp_path / "bad.toml").write_text('[[funds]]\nfund_id = "P"\nyear = 1999\namount_yuan = 50\n')
    with pytest.raises(PolicyError, match=r"bad.toml: funds\[0\].year"):
        funds.load_funds_file(tmp_path / "bad.toml")


# --- spending through the hierarchy ---------------------------------------------------------------


def test_a_purchase_is_encumbered_on_every_fund_above_it_and_the_report_adds_up(tmp_path):
    svc = service(tmp_path)
    bought(svc, 1, 45.0)
    rows = report_rows(svc)
    assert {k: r.encumbered_fen for k, r in rows.items() if r.encumbered_fen} == {
        "P2026": 4500, "P2026-05": 4500, "CY2026": 4500, "BSN2026": 4500,
    }  # fmt: skip
    assert rows["BSN2026"].free_fen == 30_000 - 4500 and rows["P2026-05"].planned_fen == 8000
    assert_report_adds_up(svc)


def test_a_soft_target_can_be_passed_but_the_hard_caps_hold(tmp_path):
    svc = service(tmp_path)
    for n in range(4):  # 4 x 20 = 80 yuan in May, the plan's share; the bookstore's target is 300
        bought(svc, n, 20.0)
    d = svc.decide(request(isbn=isbn(109), price=1.0), "k9")
    assert not d.eligible and d.reason_codes == ["BUDGET_EXHAUSTED"]  # May's hard share is used up
    rows = report_rows(svc)
    assert rows["P2026-05"].room_fen == 0 and rows["P2026-05"].free_fen == 0
    assert_report_adds_up(svc)


def test_a_soft_target_passed_shows_negative_free_money(tmp_path):
    fund_list = hierarchy()
    fund_list[0] = fund_list[0].model_copy(update={"monthly_plan": None})
    fund_list[2] = fund_list[2].model_copy(update={"amount_yuan": 50})
    svc = service(tmp_path, fund_list)
    bought(svc, 1, 40.0)
    bought(svc, 2, 40.0)  # the bookstore's soft 50 is passed; the district's hard 600 is not
    rows = report_rows(svc)
    assert rows["BSN2026"].free_fen == 5000 - 8000 and rows["BSN2026"].room_fen == 60_000 - 8000
    assert_report_adds_up(svc)


def test_a_channel_fund_only_carries_its_channel(tmp_path):
    fund_list = [
        FundConfig(fund_id="P2026", year=2026, amount_yuan=1000),
        FundConfig(fund_id="ON2026", year=2026, parent="P2026", channel="online", amount_yuan=10),
    ]
    svc = service(tmp_path, fund_list)
    bought(svc, 1, 45.0)  # a counter purchase: the online fund is untouched
    online = svc.decide(request(isbn=isbn(102), price=30.0, channel="online"), "k2")
    round_id = create_round(svc.db, svc.policy, None, created_by="t", now=NOW)
    with pytest.raises(DecisionRefused, match="ON2026"):  # 30 yuan do not fit the online fund's 10
        apply_decisions(svc.db, svc.policy, round_id, [StaffDecision(online.request_id, "approve")], actor="t", now=NOW)
    assert report_rows(svc)["ON2026"].encumbered_fen == 0 and report_rows(svc)["P2026"].encumbered_fen == 4500


# --- invoices, returns and the settlement ---------------------------------------------------------


def test_the_settlement_invoices_at_the_discount_and_equals_the_ledger_spend(tmp_path):
    svc = service(tmp_path, discount_pct=10.0, bookstore_discount_pct={"BS-S": 5.0})
    a = bought(svc, 1, 45.0)
    bought(svc, 2, 33.33)
    bought(svc, 3, 1.5, reader_id="R-south", bookstore_id="BS-S")  # 142.5 fen due: half-up
    assert settlement.settle(svc.db, svc.policy, "2026-05", actor="t", now=NOW) == 4050 + 3000 + 143
    assert settlement.settle(svc.db, svc.policy, "2026-05", actor="t", now=NOW) == 0  # idempotent
    p2026 = report_rows(svc)["P2026"]
    assert (p2026.encumbered_fen, p2026.spent_fen) == (0, 7193)  # the discounts are free money again
    net, spend = settlement.reconcile(svc.db, svc.policy, "2026-05")
    assert net == spend == p2026.spent_fen
    by_store = {t.bookstore_id: t for t in settlement.totals(settlement.statement(svc.db, svc.policy, "2026-05"))}
    assert (by_store["BS-N"].books, by_store["BS-N"].list_fen, by_store["BS-N"].net_due_fen) == (2, 7833, 7050)
    # June: an invoiced book comes back and is credited
    assert settlement.return_to_bookstore(svc.db, a, actor="t", now=datetime(2026, 6, 3)) == 4050
    june = settlement.statement(svc.db, svc.policy, "2026-06")
    assert june["kind"].to_list() == ["return"] and june["due_fen"].to_list() == [-4050]
    assert settlement.reconcile(svc.db, svc.policy, "2026-06") == (-4050, -4050)
    assert report_rows(svc)["P2026"].spent_fen == 7193 - 4050
    assert_ledger_conserved(svc.db)
    assert_audit_replays_to_ledger(svc.db)
    assert_report_adds_up(svc)


def test_the_settlement_files_have_totals_and_neutralise_formulas(tmp_path):
    svc = service(tmp_path, discount_pct=10.0)
    bought(svc, 1, 45.0, title="=HYPERLINK(1)")
    bought(svc, 2, 10.0)
    settlement.settle(svc.db, svc.policy, "2026-05", actor="t", now=NOW)
    files = settlement.write_statement(svc.db, svc.policy, "2026-05", tmp_path / "out")
    assert sorted(p.name for p in files) == ["settlement-2026-05-BS-N.csv", "settlement-2026-05-BS-N.xlsx"]
    text = files[0].read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK(1)" in text and "total 合计" in text
    wb = load_workbook(files[1])
    rows = list(wb["lines"].iter_rows(values_only=True))
    header = rows[0]
    assert rows[-1][header.index("amount_due")] == 49.5 and rows[-1][header.index("list_price")] == 55.0
    assert dict(wb["summary"].iter_rows(values_only=True))["net_due_yuan"] == 49.5


def test_a_month_outside_the_range_is_refused():
    with pytest.raises(InvalidPeriod):
        settlement.check_month("2026-13")


def test_an_invoiced_approval_cannot_be_refunded_only_returned(tmp_path):
    svc = service(tmp_path)
    d = svc.decide(request(isbn=isbn(120), price=30.0, channel="online"), "k")
    round_id = create_round(svc.db, svc.policy, None, created_by="t", now=NOW)
    apply_decisions(svc.db, svc.policy, round_id, [StaffDecision(d.request_id, "approve")], actor="t", now=NOW)
    assert settlement.settle(svc.db, svc.policy, "2026-05", actor="t", now=NOW) == 3000
    with pytest.raises(DecisionRefused, match="invoiced"):
        apply_decisions(svc.db, svc.policy, round_id, [StaffDecision(d.request_id, "reject")], actor="t", now=NOW)
    assert report_rows(svc)["P2026"].spent_fen == 3000
    assert settlement.return_to_bookstore(svc.db, d.request_id, actor="t", now=NOW) == 3000
    with pytest.raises(DecisionRefused, match="no checked-out or invoiced"):
        settlement.return_to_bookstore(svc.db, d.request_id, actor="t", now=NOW)


# --- the fiscal-year close ------------------------------------------------------------------------


def test_the_year_close_carries_encumbrances_and_unspent_money_by_policy_once(tmp_path):
    svc = service(tmp_path)
    first = bought(svc, 1, 45.0)
    bought(svc, 2, 20.0)
    settlement.settle(svc.db, svc.policy, "2026-05", actor="t", now=NOW)  # both invoiced: 65 yuan spent
    open_one = bought(svc, 3, 10.0)  # checked out after the settlement: still encumbered at the year end
    end = datetime(2027, 1, 2)
    summary = funds.close_year(svc.db, 2026, actor="t", now=end)
    assert summary["carried_encumbrance_fen"] == 3 * 1000  # on P2026, CY2026 and BSN2026
    # CY2026 (carry): 600 - 75 = 525 carried; P2026 returns 1000 - 75; BSN2026 (soft) returns 300 - 75
    assert summary["carried_unspent_fen"] == 52_500
    assert summary["returned_fen"] == 92_500 + 22_500
    again = funds.close_year(svc.db, "2026", actor="t", now=end + timedelta(days=1))
    assert again["already_closed"] and again["returned_fen"] == summary["returned_fen"]
    old, new = report_rows(svc), report_rows(svc, "2027")
    assert (old["CY2026"].encumbered_fen, old["CY2026"].room_fen, old["CY2026"].spent_fen) == (0, 0, 6500)
    assert new["CY2027"].encumbered_fen == 1000 and new["CY2027"].room_fen == 52_500
    assert funds.open_encumbrance_fen(svc.db, "2026") == 0
    # the carried encumbrance is still the request's: a return releases it from next year's funds
    assert settlement.return_to_bookstore(svc.db, open_one, actor="t", now=end) == 1000
    # a credit on the closed year goes back to the treasury: no room reappears for 2026 purchases
    assert settlement.return_to_bookstore(svc.db, first, actor="t", now=end) == 4500
    closed = report_rows(svc)
    assert closed["CY2026"].spent_fen == 2000 and closed["CY2026"].room_fen == closed["P2026-05"].room_fen == 0
    assert closed["P2026-05"].planned_fen == 8000  # the closed month keeps its plan
    assert svc.decide(request(isbn=isbn(130), price=0.01), "late").reason_codes == ["BUDGET_EXHAUSTED"]
    assert report_rows(svc, "2027")["CY2027"].encumbered_fen == 0
    with svc.db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.entity == "fiscal_year")) == 1
        assert s.scalar(select(BudgetLineRow.parent_id).where(BudgetLineRow.budget_id == "BSN2027")) == "CY2027"
    assert_ledger_conserved(svc.db)
    assert_audit_replays_to_ledger(svc.db)
    assert_report_adds_up(svc)
    assert_report_adds_up(svc, "2027")


def test_a_year_outside_the_range_is_refused(tmp_path):
    svc = service(tmp_path)
    with pytest.raises(InvalidPeriod):
        funds.close_year(svc.db, "26", actor="t", now=NOW)


# --- the commands ---------------------------------------------------------------------------------


def test_settle_and_close_year_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from serving.cli import app as cli

    svc = service(tmp_path, discount_pct=10.0)
    bought(svc, 1, 45.0)
    db = str(tmp_path / "ledger.db")
    policy = tmp_path / "p.toml"
    policy.write_text("discount_pct = 10.0\n")
    out = CliRunner().invoke(cli, ["acquisition", "settle", "--month", "2026-05", "--out", str(tmp_path / "o"),
                                   "--db", db, "--policy", str(policy), "--at", "2026-05-31T18:00:00"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "month net due 40.50 yuan; ledger spend 40.50" in out.output
    assert (tmp_path / "o" / "settlement-2026-05-BS-N.xlsx").exists()
    args = ["acquisition", "close-year", "2026", "--db", db, "--at", "2027-01-01T00:00:00"]
    first, second = CliRunner().invoke(cli, args), CliRunner().invoke(cli, args)
    assert "2026 closed" in first.output and "2026 already closed" in second.output, first.output
    report = CliRunner().invoke(cli, ["acquisition", "funds", "--year", "2026", "--db", db])
    assert report.exit_code == 0 and "(closed)" in report.output
