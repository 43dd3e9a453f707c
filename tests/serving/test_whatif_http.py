"""The what-if replay and the programme figures through HTTP (staff only; both read, never write)."""

from __future__ import annotations

import pytest

from tests.serving.conftest import token

STAFF = token("staff", "alice")


@pytest.fixture(scope="module")
def paced_vs_fcfs(client):
    r = client.post("/v1/acquisition/whatif", json={"pacing": "paced", "budget_yuan": 4000.0}, headers=STAFF)
    assert r.status_code == 200, r.text
    return r.json()


def test_whatif_replays_both_policies_side_by_side(paced_vs_fcfs):
    base, new = paced_vs_fcfs["in_force"], paced_vs_fcfs["proposed"]
    assert base["policy"].endswith("(fcfs)") and new["policy"].endswith("(paced)")
    for side in (base, new):
        assert side["budget"] == 4000.0
        assert 0 < side["spend"] <= 4000.0  # never over the annual money
        assert len(side["spend_by_month"]) == 12
        assert sum(side["spend_by_month"].values()) == pytest.approx(side["spend"], abs=0.05)
        assert {d["district"] for d in side["district_equity"]} and side["loans_served"] > 0
    assert base["declined_paced"] == 0 and new["declined_paced"] > 0  # only the paced policy paces


def test_whatif_applies_a_lower_price_cap(client):
    body = {"price_cap_yuan": 30.0, "budget_yuan": 4000.0}
    r = client.post("/v1/acquisition/whatif", json=body, headers=STAFF)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["proposed"]["eligible_lines"] < report["in_force"]["eligible_lines"]


@pytest.mark.parametrize(
    "body",
    [{"price_cap_yuan": 0}, {"books_per_month": 0}, {"pacing": "sometimes"}, {"budget_yuan": -1}, {"cap": 1}],
    ids=["cap", "limit", "pacing", "budget", "unknown"],
)
def test_whatif_refuses_out_of_bounds_changes(client, body):
    r = client.post("/v1/acquisition/whatif", json=body, headers=STAFF)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"


def test_programme_figures_add_up(client):
    r = client.get("/v1/reports/programme?window_days=365&months=6", headers=STAFF)
    assert r.status_code == 200, r.text
    f = r.json()
    circ = f["circulation"]
    assert circ["months"] == 6 and circ["reader_choice_copies"] > 0
    assert circ["reader_choice_loans_per_copy_without_requester"] <= circ["reader_choice_loans_per_copy"]
    assert 0 <= f["requesters_served_pct"] <= 100
    for cell in f["by_district_age"]:
        assert cell["filled"] <= cell["requests"]


def test_programme_figures_refuse_out_of_bounds_queries(client):
    assert client.get("/v1/reports/programme?months=0", headers=STAFF).status_code == 422


def test_a_paced_service_values_counter_requests_by_their_class(small_city, model_dir, tmp_path):
    """With [pacing] policy = "paced" the running service's counter values a request by the loans one
    copy of its class would serve (not one loan per book), so the bar is not a price bar."""
    from serving.state import AppState
    from tests.serving.conftest import make_settings

    policy = tmp_path / "paced.toml"
    policy.write_text('[pacing]\npolicy = "paced"\n', encoding="utf-8")
    paced = AppState.from_settings(make_settings(small_city, tmp_path / "p.db", model_dir, policy_file=policy))
    plain = AppState.from_settings(make_settings(small_city, tmp_path / "f.db", model_dir))
    values = {paced.counter.pacer.value_of(c, 40.0) for c in ("I247", "K820", "TP312", "O1")}
    assert len(values) > 1 and all(0 < v < 20 for v in values)
    assert plain.counter.pacer.value_of("I247", 40.0) == plain.counter.pacer.value_of("TP312", 40.0) == 1.0
