"""Security regressions of the adversarial review (issue 20), through HTTP on the real app:
non-ASCII credentials, login throttling, server-side logout, the Secure cookie, security headers,
CSRF and Origin checks on the staff forms, and string bounds shared by the API and the database."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acquisition.counter import PurchaseRequestIn
from acquisition.db import PurchaseRequestRow
from features import bounds
from serving.security import LoginGuard, LoginThrottle
from tests.serving._helpers import counter_body, eligible_readers, key
from tests.serving.conftest import make_settings, token

STORE = "BS-11"  # Dehui


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def app(small_city, model_dir, tmp_path_factory):
    from serving.app import create_app

    return create_app(make_settings(small_city, tmp_path_factory.mktemp("hard") / "yuedu.db", model_dir))


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture
def clock(app):
    """A fresh login guard on a fake clock for each test (3 failures lock for 30 s)."""
    fake = FakeClock()
    app.state.yuedu.login_guard = LoginGuard.create(max_failures=3, lockout_s=30.0, clock=fake)
    return fake


def login(client: TestClient, user: str = "alice", password: str = "alice-pw"):
    return client.post("/staff/login", data={"username": user, "password": password}, follow_redirects=False)


def csrf_of(client: TestClient, path: str = "/staff") -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert match, "the staff page carries no CSRF token"
    return match.group(1)


# --- non-ASCII credentials: 401, never 500 ------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer abc.d\xe9f".encode("latin-1")},
        {"x-api-key": "tok.s\xff\xfeg".encode("latin-1")},
        {"authorization": "Bearer 令牌.签名".encode()},
    ],
)
def test_non_ascii_tokens_are_401(client, headers):
    r = client.get("/v1/budgets", headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized"


def test_non_ascii_staff_cookie_is_the_login_page(client):
    r = client.get("/staff", headers={"cookie": "yuedu_staff=abc.caf\xe9".encode("latin-1")})
    assert r.status_code == 200 and 'id="login"' in r.text


# --- login throttling ---------------------------------------------------------------------------


def test_throttle_locks_after_n_failures_and_doubles():
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=3, window_s=600, lockout_s=10, clock=clock)
    keys = ("alice",)
    for _ in range(2):
        throttle.failure(keys)
    assert throttle.retry_after(keys) == 0  # two mistakes: no lockout yet
    throttle.failure(keys)
    assert throttle.retry_after(keys) == 10
    clock.t += 10
    assert throttle.retry_after(keys) == 0
    for _ in range(3):
        throttle.failure(keys)
    assert throttle.retry_after(keys) == 20  # the second lockout lasts twice as long
    assert throttle.retry_after(("bob",)) == 0  # another login is not affected


def test_failures_outside_the_window_are_forgotten():
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=3, window_s=60, lockout_s=10, clock=clock)
    for _ in range(5):
        throttle.failure(("alice",))
        clock.t += 31  # at most two failures inside any 60 s
    assert throttle.retry_after(("alice",)) == 0


def test_api_login_brute_force_is_locked_then_recovers(client, clock):
    wrong = {"username": "alice", "password": "guess"}
    assert [client.post("/v1/auth/token", json=wrong).status_code for _ in range(3)] == [401, 401, 401]
    right = client.post("/v1/auth/token", json={"username": "alice", "password": "alice-pw"})
    assert right.status_code == 429, "the right password must not work during the lockout"
    assert right.headers["retry-after"] == "30"
    assert right.json()["error"] == "too_many_requests" and "try again in 30 s" in right.json()["message"]
    clock.t += 31
    again = client.post("/v1/auth/token", json={"username": "alice", "password": "alice-pw"})
    assert again.status_code == 200 and again.json()["role"] == "staff"


def test_staff_page_login_brute_force_is_locked(client, clock):
    for _ in range(3):
        assert login(client, password="nope").status_code == 401
    locked = login(client)
    assert locked.status_code == 429 and "30 秒后再试" in locked.text
    assert "yuedu_staff" not in locked.cookies
    clock.t += 30
    assert login(client).status_code == 303


# --- sessions: logout revokes, Secure over https -------------------------------------------------


def test_logout_revokes_the_session_server_side(client, clock):
    assert login(client).status_code == 303
    cookie = client.cookies.get("yuedu_staff")
    assert 'id="who"' in client.get("/staff").text
    out = client.post("/staff/logout", data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set("yuedu_staff", cookie, path="/staff")  # a copy of the cookie, replayed
    page = client.get("/staff")
    assert 'id="who"' not in page.text and 'id="login"' in page.text


def test_cookie_is_secure_over_https_only(app, clock):
    with TestClient(app, base_url="https://testserver") as tls:
        assert "secure" in login(tls).headers["set-cookie"].lower()
    with TestClient(app) as plain:
        set_cookie = login(plain).headers["set-cookie"].lower()
        assert "secure" not in set_cookie and "httponly" in set_cookie and "samesite=strict" in set_cookie


# --- security headers -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/staff", "/healthz", "/v1/budgets"])
def test_security_headers_on_every_response(client, path):
    h = client.get(path, headers=token("staff", "alice")).headers
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert "default-src 'self'" in h["content-security-policy"]
    assert h["x-frame-options"] == "DENY"
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "same-origin"


def test_authenticated_answers_are_not_cached(client):
    assert client.get("/v1/budgets", headers=token("staff", "alice")).headers["cache-control"] == "no-store"


# --- CSRF and Origin on the staff forms ----------------------------------------------------------


@pytest.fixture
def pending_round(client, small_city, clock):
    """A round over two fresh online requests, created through the staff form; (round_id, request_id)."""
    for reader in eligible_readers(small_city, 2, "Dehui"):
        body = counter_body(reader, STORE, 11.0, channel="online")
        assert client.post(
            "/v1/purchase-requests", json=body, headers={**token("bookstore", STORE), **key()}
        ).is_success
    assert login(client).status_code == 303
    made = client.post("/staff/rounds", data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert made.status_code == 303
    round_id = made.headers["location"].rsplit("/", 1)[-1]
    page = client.get(f"/staff/rounds/{round_id}").text
    request_id = re.search(r'data-request="([^"]+)" data-eligible="true"', page).group(1)
    return round_id, request_id


def _decision_of(client, round_id: str, request_id: str) -> str:
    lines = client.get(f"/v1/acquisition/rounds/{round_id}", headers=token("staff", "alice")).json()["lines"]
    return next(line["decision"] for line in lines if line["request_id"] == request_id)


def test_cross_origin_decide_is_refused(client, pending_round):
    round_id, request_id = pending_round
    form = {"request_id": request_id, "decision": "approve", "csrf": csrf_of(client, f"/staff/rounds/{round_id}")}
    evil = client.post(
        f"/staff/rounds/{round_id}/decide", data=form, headers={"origin": "http://evil.example"}, follow_redirects=False
    )
    assert evil.status_code == 403 and "跨站" in evil.text
    null = client.post(f"/staff/rounds/{round_id}/decide", data=form, headers={"origin": "null"})
    assert null.status_code == 403
    assert _decision_of(client, round_id, request_id) == "pending"


def test_decide_without_or_with_a_foreign_csrf_token_is_refused(client, pending_round):
    round_id, request_id = pending_round
    base = {"request_id": request_id, "decision": "approve"}
    assert client.post(f"/staff/rounds/{round_id}/decide", data=base).status_code == 403
    stale = csrf_of(client)
    client.post("/staff/logout", data={"csrf": stale})
    assert login(client).status_code == 303  # a new session: the old token no longer fits
    assert client.post(f"/staff/rounds/{round_id}/decide", data={**base, "csrf": stale}).status_code == 403
    assert _decision_of(client, round_id, request_id) == "pending"


def test_same_origin_decide_with_token_works(client, pending_round):
    round_id, request_id = pending_round
    form = {"request_id": request_id, "decision": "approve", "csrf": csrf_of(client, f"/staff/rounds/{round_id}")}
    ok = client.post(
        f"/staff/rounds/{round_id}/decide", data=form, headers={"origin": "http://testserver"}, follow_redirects=False
    )
    assert ok.status_code == 303 and "error" not in ok.headers["location"]
    assert _decision_of(client, round_id, request_id) == "approve"


def test_cross_origin_login_is_refused(client):
    r = client.post(
        "/staff/login", data={"username": "alice", "password": "alice-pw"}, headers={"origin": "http://evil.example"}
    )
    assert r.status_code == 403 and "yuedu_staff" not in r.cookies


# --- string bounds: one source for API and database ----------------------------------------------


def test_api_bounds_equal_database_column_lengths():
    columns = PurchaseRequestRow.__table__.columns
    checked = 0
    for name, field in PurchaseRequestIn.model_fields.items():
        limit = next((m.max_length for m in field.metadata if getattr(m, "max_length", None)), None)
        length = getattr(columns[name].type, "length", None) if name in columns else None
        if not length:
            continue
        if limit is None:  # a closed vocabulary (Literal): every allowed value fits
            values = [v for v in get_args(field.annotation) if isinstance(v, str)]
            assert values and max(map(len, values)) <= length, name
        else:
            assert limit == length, f"{name}: API max {limit}, column {length}"
        checked += 1
    assert checked >= 6  # reader, bookstore, isbn, title, author, publisher, clc_class


@pytest.mark.parametrize(
    ("field", "limit"),
    [("title", bounds.TITLE_MAX), ("author", bounds.AUTHOR_MAX), ("publisher", bounds.PUBLISHER_MAX)],
)
def test_overlong_text_is_422_naming_the_field(client, small_city, field, limit):
    reader = eligible_readers(small_city, 1, "Dehui")[0]
    body = counter_body(reader, STORE, 10.0, channel="online", **{field: "长" * (limit + 1)})
    r = client.post("/v1/purchase-requests", json=body, headers={**token("bookstore", STORE), **key()})
    assert r.status_code == 422
    assert any(f["field"] == f"body.{field}" for f in r.json()["fields"])


def test_text_at_the_bound_is_stored_whole(client, app, small_city):
    reader = eligible_readers(small_city, 3, "Dehui")[2]
    title = "书" * bounds.TITLE_MAX
    body = counter_body(reader, STORE, 10.0, channel="online", title=title)
    r = client.post("/v1/purchase-requests", json=body, headers={**token("bookstore", STORE), **key()})
    assert r.status_code == 201, r.text
    with app.state.yuedu.db.session_scope() as s:
        assert s.get(PurchaseRequestRow, r.json()["request_id"]).title == title


# --- language: Simplified Chinese first, English by a switch ---------------------------------------


def test_staff_pages_are_chinese_by_default_and_switch_to_english(app):
    from serving import i18n

    with TestClient(app) as c:
        page = c.get("/staff")
        assert '<html lang="zh-CN">' in page.text and "馆员登录" in page.text and "Staff log in" not in page.text
        english = c.get("/staff?lang=en")
        assert '<html lang="en">' in english.text and "Staff log in" in english.text
        assert c.cookies.get(i18n.LANG_COOKIE) == "en"
        assert "Staff log in" in c.get("/staff").text  # the switch is remembered
        assert "馆员登录" in c.get("/staff?lang=zh-CN").text


def test_every_rule_code_and_decision_has_both_languages():
    from acquisition.lifecycle import LineDecision, RoundStatus
    from acquisition.rules import DeclineCode
    from serving import i18n

    zh, en = i18n.translator("zh-CN"), i18n.translator("en")
    for code in DeclineCode:
        assert zh(code.value) != code.value and en(code.value) != code.value, code
    for word in [*LineDecision, *RoundStatus]:
        assert zh(word.value) != word.value, word
    assert i18n.money(1234.5, "zh-CN") == "1,234.50 元"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["fail", "ok", "wait"]), st.sampled_from(["a", "b"]), st.floats(0.0, 400.0)),
        max_size=40,
    )
)
def test_the_shared_throttle_locks_exactly_like_the_in_memory_one(tmp_path_factory, steps):
    """The database-backed throttle (every worker of `yuedu serve --workers N`) follows the same rule
    as the in-process one: same waits after any sequence of failures, successes and time passing."""
    from acquisition.db import init_db
    from serving.sessions import SharedLoginThrottle

    now = [1_000_000.0]
    db = init_db(f"sqlite:///{tmp_path_factory.mktemp('throttle') / 'x.db'}")
    shared = SharedLoginThrottle(db, "login", max_failures=3, lockout_s=30.0, clock=lambda: now[0])
    memory = LoginThrottle(max_failures=3, lockout_s=30.0, clock=lambda: now[0])
    for action, who, dt in steps:
        if action == "fail":
            shared.failure((who,))
            memory.failure((who,))
        elif action == "ok":
            shared.success((who,))
            memory.success((who,))
        else:
            now[0] += dt
        assert shared.retry_after((who,)) == memory.retry_after((who,))
    db.dispose()


def test_a_login_locked_on_one_worker_is_locked_on_the_other(small_city, model_dir, tmp_path):
    """Two apps on one database (two workers): the failures made on one count on the other."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from tests.serving.conftest import make_settings

    shared = make_settings(small_city, tmp_path / "shared.db", model_dir, login_max_failures=3)
    a, b = create_app(shared), create_app(shared)
    with TestClient(a) as ca, TestClient(b) as cb:
        for client in (ca, cb, ca):
            r = client.post("/v1/auth/token", json={"username": "alice", "password": "wrong"})
            assert r.status_code == 401
        locked = cb.post("/v1/auth/token", json={"username": "alice", "password": "alice-pw"})
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
