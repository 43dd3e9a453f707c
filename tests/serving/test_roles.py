"""Every endpoint refuses the wrong caller: 401 without (or with a bad) token, 403 for the wrong role.

The table lists each operation of the OpenAPI schema with the roles it admits; a test checks that the
table covers the whole schema, so a new endpoint without a role test fails here.
"""

from __future__ import annotations

import pytest

from tests.serving.conftest import token

ROLES = ("reader", "bookstore", "staff", "admin")
ANY = ROLES
STAFF = ("staff", "admin")

#: (method, path template, concrete path, admitted roles). Reader routes use subject R-SELF.
ENDPOINTS = [
    ("get", "/v1/readers/{reader_id}/recommendations", "/v1/readers/R-SELF/recommendations", ("reader", *STAFF)),
    ("post", "/v1/readers/{reader_id}/events", "/v1/readers/R-SELF/events", ("reader", *STAFF)),
    ("get", "/v1/readers/{reader_id}/preferences", "/v1/readers/R-SELF/preferences", ("reader", *STAFF)),
    ("put", "/v1/readers/{reader_id}/preferences", "/v1/readers/R-SELF/preferences", ("reader", *STAFF)),
    ("get", "/v1/readers/{reader_id}/data", "/v1/readers/R-SELF/data", ("reader", "admin")),
    ("delete", "/v1/readers/{reader_id}/profile", "/v1/readers/R-SELF/profile", ("reader", "admin")),
    ("get", "/v1/titles/{title_id}/similar", "/v1/titles/T0000001/similar", ANY),
    ("get", "/v1/branches", "/v1/branches", ANY),
    ("get", "/v1/titles", "/v1/titles", ANY),
    ("get", "/v1/titles/{title_id}", "/v1/titles/T0000001", ANY),
    ("get", "/v1/booklists", "/v1/booklists", ANY),
    ("get", "/v1/booklists/{booklist_id}", "/v1/booklists/BL-001", ANY),
    ("post", "/v1/purchase-requests", "/v1/purchase-requests", ("bookstore",)),
    ("post", "/v1/purchase-requests/{request_id}/checkout", "/v1/purchase-requests/x/checkout", ("bookstore",)),
    ("post", "/v1/purchase-requests/{request_id}/cancel", "/v1/purchase-requests/x/cancel", ("bookstore",)),
    ("post", "/v1/acquisition/rounds", "/v1/acquisition/rounds", STAFF),
    ("get", "/v1/acquisition/rounds", "/v1/acquisition/rounds", STAFF),
    ("get", "/v1/acquisition/rounds/{round_id}", "/v1/acquisition/rounds/x", STAFF),
    ("post", "/v1/acquisition/rounds/{round_id}/decisions", "/v1/acquisition/rounds/x/decisions", STAFF),
    ("get", "/v1/acquisition/rounds/{round_id}/export", "/v1/acquisition/rounds/x/export", STAFF),
    ("get", "/v1/acquisition/rounds/{round_id}/order-sheet", "/v1/acquisition/rounds/x/order-sheet", STAFF),
    ("post", "/v1/acquisition/rounds/{round_id}/transitions", "/v1/acquisition/rounds/x/transitions", STAFF),
    ("get", "/v1/budgets", "/v1/budgets", STAFF),
    ("get", "/v1/funds", "/v1/funds", STAFF),
    ("get", "/v1/funds/burndown", "/v1/funds/burndown?fund=BUD-2026-ALL", STAFF),
    ("get", "/v1/settlements", "/v1/settlements?month=2026-06", STAFF),
    ("post", "/v1/acquisition/whatif", "/v1/acquisition/whatif", STAFF),
    ("get", "/v1/reports/programme", "/v1/reports/programme", STAFF),
    ("get", "/v1/reports/collection", "/v1/reports/collection", STAFF),
    (
        "post",
        "/v1/purchase-requests/{request_id}/alternative",
        "/v1/purchase-requests/x/alternative",
        ("bookstore", *STAFF),
    ),
    ("get", "/v1/purchase-requests/{request_id}/placement", "/v1/purchase-requests/x/placement", STAFF),
    ("get", "/v1/mediations", "/v1/mediations", STAFF),
    ("get", "/v1/reports/alternatives", "/v1/reports/alternatives", STAFF),
    ("post", "/v1/mediations/{request_id}/decision", "/v1/mediations/x/decision", STAFF),
    ("get", "/v1/readers/{reader_id}/notices", "/v1/readers/R-SELF/notices", ("reader", *STAFF)),
    ("get", "/v1/audit", "/v1/audit", STAFF),
    ("post", "/v1/admin/reload", "/v1/admin/reload", ("admin",)),
]
#: Open on purpose: probes, metrics (route templates only), and the login that issues tokens.
PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"), ("post", "/v1/auth/token")}

WRONG = [(m, p, role) for m, _, p, ok in ENDPOINTS for role in ROLES if role not in ok]
ALL = [(m, p) for m, _, p, _ in ENDPOINTS]


def _call(client, method: str, path: str, headers: dict):
    return client.request(method.upper(), path, headers=headers, json={})


@pytest.mark.parametrize(("method", "path", "role"), WRONG)
def test_wrong_role_is_403(client, method, path, role):
    r = _call(client, method, path, token(role, "someone"))
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), ALL)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not.a-token"}, {"Authorization": "Basic abc"}, {"X-API-Key": "forged"}],
    ids=["none", "garbage", "basic", "apikey"],
)
def test_missing_or_bad_credentials_are_401(client, method, path, headers):
    r = _call(client, method, path, headers)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_reader_token_is_bound_to_its_reader(client, method):
    path = "/v1/readers/R-SELF/recommendations" if method == "get" else "/v1/readers/R-SELF/events"
    r = _call(client, method, path, token("reader", "R-OTHER"))
    assert r.status_code == 403


def test_expired_token_is_401(client):
    from serving.security import issue_token
    from tests.serving.conftest import SECRET

    old = issue_token("staff", "alice", SECRET, ttl_s=1, now=1_000_000)
    assert client.get("/v1/budgets", headers={"Authorization": f"Bearer {old}"}).status_code == 401


def test_the_table_covers_every_operation(client):
    schema = client.get("/openapi.json").json()
    ops = {(m, p) for p, item in schema["paths"].items() for m in item}
    listed = {(m, t) for m, t, _, _ in ENDPOINTS}
    assert ops - PUBLIC == listed
