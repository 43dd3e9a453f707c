"""Extreme but well-formed JSON never gives a 5xx nor costs the connection (issue 17).

A real uvicorn server (:func:`serving.server.running_server`) and ONE ``httpx.Client``: for every
operation of ``/openapi.json``, hypothesis puts an extreme value (huge and tiny floats, infinities,
NaN, 64-bit+ integers, years 1 and 9999, megabyte strings, deep nesting) into one of its fields
(body, query or path) of an otherwise valid request. The answer must be a 4xx in the project's error
body that keeps the connection open, and the next request on the same client must be answered.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.server import running_server
from tests.serving.conftest import make_settings, token

MAX_EXAMPLES = 25

DEEP = "[" * 5000 + "]" * 5000  # JSON deeper than any parser's recursion limit
MEGA = "x" * (1 << 20)
#: Numbers no field accepts (every numeric field declares a range far inside these).
NUMBERS = ["1e308", "-1e308", "5e-324", "-5e-324", "Infinity", "-Infinity", "NaN", str(2**70), str(-(2**64)), "1e400"]
DATES = ['"0001-01-01"', '"9999-12-31"', '"9999-12-31T23:59:59-14:00"', '"0001-01-01T00:00:00+14:00"']
STRINGS = [json.dumps(MEGA), DEEP, '{"a":' * 400 + "1" + "}" * 400]

#: Valid bodies the extreme value is put into (so that only that value can be at fault).
BODIES = {
    "/v1/readers/{reader_id}/events": {"title_id": "T0000001", "kind": "loan"},
    "/v1/purchase-requests": {
        "reader_id": "R-1",
        "bookstore_id": "BS-11",
        "isbn": "9787020002207",
        "price": 30.0,
        "title": "t",
        "pub_year": 2020,
        "channel": "counter",
        "requested_at": "2026-06-15T10:00:00+08:00",
    },
    "/v1/acquisition/rounds": {"period": "2026-06", "budget_yuan": 100.0, "max_lines": 10},
    "/v1/acquisition/rounds/{round_id}/decisions": {"decisions": [{"request_id": "x", "decision": "approve"}]},
    "/v1/auth/token": {"username": "alice", "password": "wrong-pw"},
    "/v1/admin/reload": {"model_dir": "/nonexistent"},
}

PATH_VALUES = {"reader_id": "R-1", "title_id": "T0000001", "round_id": "x", "request_id": "x", "booklist_id": "BL-001"}


def _extremes(kind: str) -> list[str]:
    """Raw JSON texts extreme for a field of schema type ``kind``: never valid there."""
    if kind == "string":
        return STRINGS + NUMBERS
    if kind == "date":
        return DATES + NUMBERS + STRINGS
    return NUMBERS + DATES + STRINGS


def _kind(prop: dict) -> str:
    types = {prop.get("type")} | {a.get("type") for a in prop.get("anyOf", [])}
    formats = {prop.get("format")} | {a.get("format") for a in prop.get("anyOf", [])}
    if formats & {"date", "date-time"}:
        return "date"
    return "string" if "string" in types and not prop.get("enum") and not prop.get("$ref") else "other"


def _targets(schema: dict) -> list[tuple[str, str, str, str, str]]:
    """(method, path, where, name, kind) for every field of every operation."""
    comps = schema.get("components", {}).get("schemas", {})
    out = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            for p in op.get("parameters", []):
                if p["in"] in ("query", "path"):
                    out.append((method, path, p["in"], p["name"], _kind(p.get("schema", {}))))
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ref = (ref.get("$ref") or next((a.get("$ref") for a in ref.get("anyOf", []) if "$ref" in a), "")) or ""
            for name, prop in comps.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}).items():
                out.append((method, path, "body", name, _kind(prop)))
    return out


@pytest.fixture(scope="module")
def served(small_city, model_dir, tmp_path_factory):
    from serving.app import create_app

    app = create_app(make_settings(small_city, tmp_path_factory.mktemp("extreme") / "yuedu.db", model_dir))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield app, client


def _url_value(raw: str, kind: str) -> str:
    """``raw`` as a path or query value (a URL line has its own, smaller, limit: 4000 characters). Free
    text there is extreme when overlong: short ones get padded past every id and query bound."""
    value = raw.strip('"')[:4000]
    return value + "~" * 200 if kind == "string" and len(value) <= 200 else value


def _request(target: tuple, raw: str) -> tuple[str, str, dict, bytes | None]:
    method, path, where, name, kind = target
    if where == "path":
        path = path.replace("{" + name + "}", _url_value(raw, kind))
    for key, value in PATH_VALUES.items():
        path = path.replace("{" + key + "}", value)
    params = {name: _url_value(raw, kind)} if where == "query" else {}
    body = dict(BODIES.get(target[1], {}))
    if where != "body":
        return method.upper(), path, params, json.dumps(body).encode() if target[1] in BODIES else None
    body.pop(name, None)
    inner = json.dumps(body)[1:-1]
    return method.upper(), path, params, ("{" + (inner + ", " if inner else "") + f'"{name}": {raw}}}').encode()


def test_extreme_values_are_4xx_and_the_connection_survives(served):
    app, client = served
    schema = client.get("/openapi.json").json()
    targets = _targets(schema)
    assert len(targets) >= 30  # every operation's fields, not a handful

    @given(target=st.sampled_from(targets), data=st.data())
    @settings(max_examples=MAX_EXAMPLES * 16, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def post_extreme(target, data):
        method, path, where, name, kind = target
        raw = data.draw(st.sampled_from(_extremes(kind)))
        verb, url, params, content = _request(target, raw)
        role = ("bookstore", "BS-11") if path.startswith("/v1/purchase-requests") else ("admin", "root")
        headers = {**token(*role), "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}
        r = client.request(verb, url, params=params, content=content, headers=headers)
        assert 400 <= r.status_code < 500, (verb, path, where, name, raw[:80], r.status_code, r.text[:300])
        assert set(r.json()) == {"error", "message", "fields"}
        assert r.headers.get("connection", "").lower() != "close"
        assert client.get("/healthz").status_code == 200  # the same connection answers next

    post_extreme()


def test_invalid_json_names_line_and_column(served):
    _, client = served
    r = client.post(
        "/v1/acquisition/rounds",
        content=b'{\n  "period": "2026-06",\n  "max_lines": 5,,\n}',
        headers={**token("staff", "alice"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "body"
    assert r.json()["message"].startswith("body: invalid JSON at line 3 column 18")


def test_a_bug_answers_500_and_keeps_the_connection(served):
    """The catch-all answers a handler's bug without closing the connection (uvicorn used to reset it)."""
    app, client = served
    state = app.state.yuedu
    broken = state.counter.decide

    def boom(*args, **kwargs):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    state.counter.decide = boom
    try:
        body = json.dumps(BODIES["/v1/purchase-requests"])
        r = client.post(
            "/v1/purchase-requests",
            content=body,
            headers={**token("bookstore", "BS-11"), "Idempotency-Key": "k" * 10, "Content-Type": "application/json"},
        )
    finally:
        state.counter.decide = broken
    assert r.status_code == 500 and r.json()["error"] == "internal" and "SQLite" not in r.text
    assert client.get("/healthz").status_code == 200
