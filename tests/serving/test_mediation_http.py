"""Issue 15 §3 and §5 over HTTP: alternatives in the counter's decision (zh-CN, en by switch) and the
way taken, the mediation queue and staff answers (encumber / release), reader notices, placement."""

from __future__ import annotations

import polars as pl
import pytest

from tests.serving._helpers import counter_body, eligible_readers, key
from tests.serving.conftest import make_settings, token

POLICY = """
books_per_visit = 100
books_per_month = 100
open_books_max = 100
[mediation]
enabled = true
band_limit_yuan = 150.0
answer_hours = 24.0
"""


@pytest.fixture(scope="module")
def client(small_city, model_dir, tmp_path_factory):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    tmp = tmp_path_factory.mktemp("mediation")
    (tmp / "policy.toml").write_text(POLICY, encoding="utf-8")
    settings = make_settings(small_city, tmp / "yuedu.db", model_dir, policy_file=tmp / "policy.toml")
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def readers(small_city):
    return eligible_readers(small_city, 10, "Chaoyang")


@pytest.fixture(scope="module")
def held_isbn(small_city) -> str:
    """An ISBN the network holds at least 3 copies of (ALREADY_HELD at the counter)."""
    copies = pl.read_parquet(small_city / "copies.parquet").filter(
        pl.col("status").is_in(["on_shelf", "on_loan", "in_transit"])
    )
    titles = pl.read_parquet(small_city / "titles.parquet").drop_nulls("isbn13")
    many = copies.group_by("title_id").len().filter(pl.col("len") >= 3).join(titles, on="title_id")
    return many.sort("title_id")["isbn13"][0]


BS = token("bookstore", "BS-01")
STAFF = token("staff", "alice")


def _used(client) -> float:
    body = client.get("/v1/budgets", headers=STAFF).json()
    return next(d["used"] for d in body["districts"] if d["district"] == "Chaoyang")


def _decide(client, body, headers=None):
    r = client.post("/v1/purchase-requests", json=body, headers={**BS, **key(), **(headers or {})})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_held_book_is_declined_with_the_cheapest_way_and_taking_one_is_recorded(client, readers, held_isbn):
    d = _decide(client, counter_body(readers[0], "BS-01", 30.0, isbn=held_isbn))
    assert d["status"] == "declined" and "ALREADY_HELD" in d["reason_codes"]
    alt = d["alternative"]
    assert alt["kind"] in {"hold", "queue", "ebook"} and alt["wait_days"] >= 0
    assert any("\u4e00" <= ch <= "\u9fff" for ch in alt["text"])  # zh-CN first
    en = _decide(client, counter_body(readers[1], "BS-01", 30.0, isbn=held_isbn), {"Accept-Language": "en"})
    assert en["alternative"]["text"] == en["alternative"]["text_en"]
    kinds = [alt["kind"], *(a["kind"] for a in d["other_alternatives"])]
    path = f"/v1/purchase-requests/{d['request_id']}/alternative"
    assert client.post(path, json={"kind": kinds[-1]}, headers=token("bookstore", "BS-02")).status_code == 403
    r = client.post(path, json={"kind": kinds[-1]}, headers=BS)
    assert r.status_code == 200 and r.json()["kind"] == kinds[-1]
    assert r.json()["offered_first"] == (len(kinds) == 1)
    assert client.post(path, json={"kind": kinds[0]}, headers=BS).status_code == 409  # already taken
    assert client.post(path, json={"kind": "teleport"}, headers=BS).status_code == 422
    rep = client.get("/v1/reports/alternatives", headers=STAFF).json()
    assert rep["declines_with_offer"] >= 2 and rep["taken"] == 1 and rep["took_first"] == int(len(kinds) == 1)
    assert {k["kind"] for k in rep["kinds"]} >= set(kinds)
    missing = client.post("/v1/purchase-requests/nope/alternative", json={"kind": "hold"}, headers=STAFF)
    assert missing.status_code == 404


def test_the_mediation_band_goes_to_staff_who_approve_or_decline(client, readers):
    a = _decide(client, counter_body(readers[2], "BS-01", 120.0))
    b = _decide(client, counter_body(readers[3], "BS-01", 140.0))
    assert a["status"] == b["status"] == "mediated" and a["answer_by"].startswith("2026-06-16")
    before = _used(client)
    queue = client.get("/v1/mediations", headers=STAFF).json()
    assert {m["request_id"] for m in queue["items"]} >= {a["request_id"], b["request_id"]}
    assert queue["overdue"] == 0 and all(not m["overdue"] for m in queue["items"])
    assert "reader_id" not in queue["items"][0]
    ok = client.post(f"/v1/mediations/{a['request_id']}/decision", json={"decision": "approve"}, headers=STAFF)
    assert ok.status_code == 200 and ok.json()["status"] == "approved" and ok.json()["decided_by"] == "staff:alice"
    no = client.post(
        f"/v1/mediations/{b['request_id']}/decision", json={"decision": "decline", "note": "too dear"}, headers=STAFF
    )
    assert no.status_code == 200 and no.json()["status"] == "declined"
    again = client.post(f"/v1/mediations/{a['request_id']}/decision", json={"decision": "decline"}, headers=STAFF)
    assert again.status_code == 409
    assert client.post("/v1/mediations/nope/decision", json={"decision": "approve"}, headers=STAFF).status_code == 404
    assert _used(client) == pytest.approx(before - 140.0)  # b's held money released; a's stays spent
    answered = client.get("/v1/mediations?answered=true", headers=STAFF).json()["items"]
    assert {m["decision"] for m in answered if m["request_id"] in (a["request_id"], b["request_id"])} == {
        "approve",
        "decline",
    }


def test_readers_see_their_notices_in_their_language(client, readers):
    d = _decide(client, counter_body(readers[4], "BS-01", 20.0, title="城南旧事"))
    client.post(f"/v1/purchase-requests/{d['request_id']}/checkout", headers=BS)
    own = token("reader", readers[4])
    zh = client.get(f"/v1/readers/{readers[4]}/notices", headers=own).json()
    assert [n["status"] for n in zh["items"]] == ["checked_out", "reserved"]
    assert zh["items"][1]["text"].startswith("您荐购的《城南旧事》已通过")
    en = client.get(f"/v1/readers/{readers[4]}/notices", headers={**own, "Accept-Language": "en"}).json()
    assert en["items"][1]["text"].startswith('Your request for "城南旧事" is approved')
    other = client.get(f"/v1/readers/{readers[4]}/notices", headers=token("reader", readers[5]))
    assert other.status_code == 403
    assert client.get(f"/v1/readers/{readers[4]}/notices?limit=0", headers=own).status_code == 422
    export = client.get(f"/v1/readers/{readers[4]}/data", headers=own).json()
    assert [n["status"] for n in export["notices"]] == ["checked_out", "reserved"]


def test_placement_suggests_a_branch_for_a_request(client, readers, held_isbn):
    d = _decide(client, counter_body(readers[6], "BS-01", 30.0, isbn=held_isbn))
    r = client.get(f"/v1/purchase-requests/{d['request_id']}/placement?top=3", headers=STAFF)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["suggested_branch"] == body["branches"][0]["branch_id"] and len(body["branches"]) == 3
    demand = [(b["title_demand"], b["class_turnover"]) for b in body["branches"]]
    assert demand == sorted(demand, reverse=True)
    assert client.get("/v1/purchase-requests/nope/placement", headers=STAFF).status_code == 404


def test_the_service_sends_queued_notices_through_the_policy_channel(small_city, model_dir, tmp_path):
    import json
    import time

    from fastapi.testclient import TestClient

    from serving.app import create_app

    outbox = tmp_path / "outbox.jsonl"
    (tmp_path / "policy.toml").write_text(f'[notices]\noutbox_path = "{outbox}"\n', encoding="utf-8")
    settings = make_settings(
        small_city, tmp_path / "yuedu.db", model_dir, policy_file=tmp_path / "policy.toml", notice_sweep_s=0.05
    )
    reader = eligible_readers(small_city, 1, "Chaoyang")[0]
    with TestClient(create_app(settings)) as c:
        d = c.post("/v1/purchase-requests", json=counter_body(reader, "BS-01", 9.0), headers={**BS, **key()}).json()
        for _ in range(200):  # wait for the background sender (bounded; not a speed assertion)
            if outbox.exists() and outbox.read_text(encoding="utf-8").strip():
                break
            time.sleep(0.05)
    sent = [json.loads(x) for x in outbox.read_text(encoding="utf-8").splitlines()]
    assert [(n["request_id"], n["status"]) for n in sent] == [(d["request_id"], "reserved")]
