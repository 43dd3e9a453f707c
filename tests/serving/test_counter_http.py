"""Bookstore counter endpoints through HTTP: decisions, idempotent retries, checkout, cancel, budgets."""

from __future__ import annotations

import pytest

from tests.serving._helpers import counter_body, eligible_readers, key
from tests.serving.conftest import token


@pytest.fixture(scope="module")
def readers(small_city):
    """Chaoyang readers (bookstores BS-01..03 are in Chaoyang)."""
    return eligible_readers(small_city, 40, "Chaoyang")


def _district_used(client, district: str) -> float:
    body = client.get("/v1/budgets", headers=token("staff", "alice")).json()
    return next(d["used"] for d in body["districts"] if d["district"] == district)


def test_approval_reserves_once_and_a_retry_replays(client, readers, city_facts):
    district = city_facts["bookstores"]["BS-01"]
    before = _district_used(client, district)
    body, k, h = counter_body(readers[0], "BS-01", 23.45), key(), token("bookstore", "BS-01")
    first = client.post("/v1/purchase-requests", json=body, headers={**h, **k})
    assert first.status_code == 201, first.text
    d = first.json()
    assert d["eligible"] and d["status"] == "reserved" and d["budget_reservation_id"] and not d["replayed"]
    again = client.post("/v1/purchase-requests", json=body, headers={**h, **k})
    assert again.status_code == 200 and again.json()["replayed"]
    assert again.json()["request_id"] == d["request_id"]
    assert _district_used(client, district) == pytest.approx(before + 23.45)


def test_same_key_for_another_request_is_409(client, readers):
    h, k = token("bookstore", "BS-01"), key()
    assert (
        client.post("/v1/purchase-requests", json=counter_body(readers[1], "BS-01", 10), headers={**h, **k}).status_code
        == 201
    )
    r = client.post("/v1/purchase-requests", json=counter_body(readers[1], "BS-01", 11), headers={**h, **k})
    assert r.status_code == 409 and r.json()["error"] == "conflict"


def test_declines_carry_reason_codes(client, readers):
    h = token("bookstore", "BS-02")
    r = client.post("/v1/purchase-requests", json=counter_body(readers[2], "BS-02", 150.0), headers={**h, **key()})
    assert r.status_code == 201
    d = r.json()
    assert not d["eligible"] and d["status"] == "declined" and d["reason_codes"] and d["message"]


def test_checkout_commits_and_cancel_releases(client, small_city, city_facts):
    h = token("bookstore", "BS-04")
    district = city_facts["bookstores"]["BS-04"]
    nanguan = eligible_readers(small_city, 2, district)
    base = _district_used(client, district)
    a = client.post("/v1/purchase-requests", json=counter_body(nanguan[0], "BS-04", 12.0), headers={**h, **key()})
    b = client.post("/v1/purchase-requests", json=counter_body(nanguan[1], "BS-04", 8.0), headers={**h, **key()})
    a, b = a.json(), b.json()
    assert a["eligible"] and b["eligible"]
    assert _district_used(client, district) == pytest.approx(base + 20.0)
    r = client.post(f"/v1/purchase-requests/{a['request_id']}/checkout", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "checked_out"
    assert client.post(f"/v1/purchase-requests/{a['request_id']}/checkout", headers=h).status_code == 409
    assert client.post(f"/v1/purchase-requests/{a['request_id']}/cancel", headers=h).status_code == 409
    r = client.post(f"/v1/purchase-requests/{b['request_id']}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert _district_used(client, district) == pytest.approx(base + 12.0)


def test_terminal_is_bound_to_its_bookstore(client, readers):
    h = token("bookstore", "BS-01")
    r = client.post("/v1/purchase-requests", json=counter_body(readers[5], "BS-02", 10), headers={**h, **key()})
    assert r.status_code == 403
    own = client.post(
        "/v1/purchase-requests", json=counter_body(readers[5], "BS-01", 10), headers={**h, **key()}
    ).json()
    other = token("bookstore", "BS-02")
    assert client.post(f"/v1/purchase-requests/{own['request_id']}/checkout", headers=other).status_code == 403
    assert client.post("/v1/purchase-requests/nope/cancel", headers=other).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": -1}, "body.price"),
        ({"price": 0.004}, "body.price"),  # rounds to 0 fen: a free book
        ({"price": 0.0049}, "body.price"),
        ({"price": 100_000.01}, "body.price"),
        ({"price": "cheap"}, "body.price"),
        ({"channel": "fax"}, "body.channel"),
        ({"unknown": 1}, "body.unknown"),
        ({"reader_id": ""}, "body.reader_id"),
    ],
)
def test_bad_request_bodies_name_the_field(client, readers, change, field):
    body = {**counter_body(readers[6], "BS-01", 10), **change}
    r = client.post("/v1/purchase-requests", json=body, headers={**token("bookstore", "BS-01"), **key()})
    assert r.status_code == 422
    assert field in [f["field"] for f in r.json()["fields"]]


def test_missing_idempotency_key_is_422_on_the_header(client, readers):
    r = client.post(
        "/v1/purchase-requests", json=counter_body(readers[7], "BS-01", 10), headers=token("bookstore", "BS-01")
    )
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "header.Idempotency-Key"


def test_api_key_header_is_accepted(client, readers):
    from serving.security import issue_token
    from tests.serving.conftest import SECRET

    h = {"X-API-Key": issue_token("bookstore", "BS-03", SECRET), **key()}
    assert client.post("/v1/purchase-requests", json=counter_body(readers[8], "BS-03", 5), headers=h).status_code == 201


def test_expired_reservations_are_swept_back_into_the_budget(client, app, small_city, city_facts):
    import asyncio
    from datetime import timedelta

    state = app.state.yuedu
    district = city_facts["bookstores"]["BS-05"]
    reader = eligible_readers(small_city, 1, district)[0]
    base = _district_used(client, district)
    an_hour_ago = state.now() - timedelta(hours=1)
    body = counter_body(reader, "BS-05", 14.0)
    clock = state.counter.clock
    state.counter.clock = lambda: an_hour_ago  # the server's clock decides the expiry, so turn it back
    try:
        d = client.post("/v1/purchase-requests", json=body, headers={**token("bookstore", "BS-05"), **key()}).json()
    finally:
        state.counter.clock = clock
    assert d["status"] == "reserved" and _district_used(client, district) == pytest.approx(base + 14.0)

    async def sweep_once():
        task = asyncio.create_task(state.sweep_reservations(0.01))
        await asyncio.sleep(0.5)
        task.cancel()

    asyncio.run(sweep_once())
    assert _district_used(client, district) == pytest.approx(base)
    r = client.post(f"/v1/purchase-requests/{d['request_id']}/checkout", headers=token("bookstore", "BS-05"))
    assert r.status_code == 409


def test_a_back_dated_request_cannot_escape_the_visit_limit_or_the_sweep(client, app, readers):
    from datetime import datetime, timedelta

    from sqlalchemy import select

    from acquisition.db import ReservationRow

    state, h = app.state.yuedu, token("bookstore", "BS-02")
    now = state.now()
    claims = [now, now, now - timedelta(days=1)]  # the third claims yesterday's visit
    ds = []
    for claim in [*claims, datetime(1970, 1, 1), now + timedelta(days=400)]:
        body = counter_body(readers[30], "BS-02", 5.0, requested_at=claim.isoformat())
        ds.append(client.post("/v1/purchase-requests", json=body, headers={**h, **key()}).json())
    assert [d["eligible"] for d in ds] == [True, True, False, False, False]
    assert all(d["reason_codes"] == ["READER_VISIT_LIMIT"] for d in ds[2:])
    with state.db.session_scope() as s:
        expiries = [
            s.scalar(select(ReservationRow.expires_at).where(ReservationRow.request_id == d["request_id"]))
            for d in ds[:2]
        ]
    timeout = timedelta(minutes=state.policy.reservation_timeout_minutes)
    assert all(now <= e <= state.now() + timeout for e in expiries)  # the server's clock, not the claim
