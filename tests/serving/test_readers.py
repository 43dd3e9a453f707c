"""Reader, title and booklist endpoints through HTTP on the real app (small city, item-kNN)."""

from __future__ import annotations

import logging

import polars as pl
import pytest

from tests.serving.conftest import token


def test_recommendations_have_reasons_and_availability(client, city_facts):
    reader = city_facts["reader"]
    r = client.get(f"/v1/readers/{reader}/recommendations", params={"n": 7}, headers=token("reader", reader))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reader_id"] == reader and not body["cold_start"] and body["registered"] is True
    assert len(body["items"]) == 7
    assert len({i["title_id"] for i in body["items"]}) == 7
    assert all(i["reasons"] and all(x["code"] and x["text"] for x in i["reasons"]) for i in body["items"])
    # Availability lists only real branches, never twice.
    assert all(len(set(i["available_at"])) == len(i["available_at"]) for i in body["items"])


def test_titles_already_borrowed_are_not_recommended(client, city_facts, small_city):
    reader = city_facts["reader"]
    borrowed = set(pl.read_parquet(small_city / "loans.parquet").filter(pl.col("reader_id") == reader)["title_id"])
    r = client.get(f"/v1/readers/{reader}/recommendations", params={"n": 20}, headers=token("staff", "alice"))
    assert borrowed and not borrowed & {i["title_id"] for i in r.json()["items"]}


def test_unknown_reader_gets_cold_start_not_an_error(client):
    r = client.get("/v1/readers/NO-SUCH-READER/recommendations", headers=token("reader", "NO-SUCH-READER"))
    assert r.status_code == 200
    assert r.json()["cold_start"] is True and len(r.json()["items"]) == 10
    # ... but flagged: a mistyped card is not silently served as if it were a new reader
    assert r.json()["registered"] is False


def test_event_is_reflected_in_the_next_recommendation(client, city_facts):
    reader = city_facts["other_reader"]
    h = token("reader", reader)
    first = client.get(f"/v1/readers/{reader}/recommendations", params={"n": 10}, headers=h).json()["items"]
    top = first[0]["title_id"]
    r = client.post(f"/v1/readers/{reader}/events", json={"title_id": top, "kind": "loan"}, headers=h)
    assert r.status_code == 202 and r.json()["recorded"]
    after = client.get(f"/v1/readers/{reader}/recommendations", params={"n": 10}, headers=h).json()["items"]
    ids = [i["title_id"] for i in after]
    assert top not in ids
    # The new loan is now evidence for "because you borrowed" reasons.
    assert any(x["code"] == "because_you_borrowed" and x["ref"] == top for i in after for x in i["reasons"]) or ids != [
        i["title_id"] for i in first
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"n": 0}, "query.n"), ({"n": 101}, "query.n"), ({"n": "ten"}, "query.n"), ({"branch": "NOPE"}, "query.branch")],
)
def test_bad_query_is_a_4xx_naming_the_field(client, city_facts, params, field):
    reader = city_facts["reader"]
    r = client.get(f"/v1/readers/{reader}/recommendations", params=params, headers=token("reader", reader))
    assert r.status_code == 422
    assert field in [f["field"] for f in r.json()["fields"]]


def test_event_for_unknown_title_is_422_on_title_id(client, city_facts):
    reader = city_facts["reader"]
    r = client.post(f"/v1/readers/{reader}/events", json={"title_id": "NO-SUCH-TITLE"}, headers=token("reader", reader))
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.title_id"
    r = client.post(f"/v1/readers/{reader}/events", json={"title_id": "x", "bogus": 1}, headers=token("reader", reader))
    assert r.status_code == 422 and "body.bogus" in [f["field"] for f in r.json()["fields"]]


def test_similar_titles(client, city_facts):
    title = city_facts["title"]
    r = client.get(f"/v1/titles/{title}/similar", params={"n": 5}, headers=token("bookstore", "BS-01"))
    assert r.status_code == 200
    items = r.json()["items"]
    assert 0 < len(items) <= 5 and title not in [i["title_id"] for i in items]
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    assert client.get("/v1/titles/NOPE/similar", headers=token("staff", "a")).status_code == 404


def test_booklists_match_the_tables(client, small_city, city_facts):
    lists = pl.read_parquet(small_city / "booklists.parquet")
    items = pl.read_parquet(small_city / "booklist_items.parquet")
    r = client.get("/v1/booklists", params={"limit": 200}, headers=token("reader", "R1"))
    assert r.status_code == 200 and {b["booklist_id"] for b in r.json()["items"]} == set(lists["booklist_id"])
    assert r.json()["total"] == lists.height
    bl = city_facts["booklist"]
    detail = client.get(f"/v1/booklists/{bl}", headers=token("reader", "R1")).json()
    expected = set(items.filter(pl.col("booklist_id") == bl)["title_id"])
    assert {t["title_id"] for t in detail["titles"]} == expected and detail["n_titles"] == len(expected)
    assert client.get("/v1/booklists/NOPE", headers=token("reader", "R1")).status_code == 404
    active = client.get("/v1/booklists", params={"active": True}, headers=token("reader", "R1")).json()
    assert all(b["active"] for b in active["items"]) and active["total"] == len(active["items"])


def test_booklist_pages_tile_the_list(client):
    h = token("reader", "R1")
    whole = client.get("/v1/booklists", params={"limit": 200}, headers=h).json()
    pages = [client.get("/v1/booklists", params={"offset": o, "limit": 3}, headers=h).json() for o in range(0, 30, 3)]
    assert [b for p in pages for b in p["items"]] == whole["items"][:30]
    assert all(p["total"] == whole["total"] and p["offset"] == 3 * i for i, p in enumerate(pages))
    r = client.get("/v1/booklists", params={"limit": 0}, headers=h)
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "query.limit"


def test_logs_and_metrics_never_hold_raw_reader_ids(client, city_facts, caplog):
    reader = city_facts["reader"]
    with caplog.at_level(logging.DEBUG):
        client.get(f"/v1/readers/{reader}/recommendations", headers=token("reader", reader))
        client.post(
            f"/v1/readers/{reader}/events", json={"title_id": city_facts["title"]}, headers=token("reader", reader)
        )
    # The test client's own logger (httpx) prints request URLs; only the service's records count.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    from features.privacy import pseudonymise

    assert f"reader={pseudonymise(reader)}" in logged
    assert reader not in logged
    metrics = client.get("/metrics").text
    assert reader not in metrics
    assert 'route="/v1/readers/{reader_id}/recommendations"' in metrics
    assert "yuedu_model_info{version=" in metrics
