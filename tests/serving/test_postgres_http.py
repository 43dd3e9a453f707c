"""The counter THROUGH HTTP on a real uvicorn server over a PostgreSQL ledger (``YUEDU_DB_URL`` set to
a PostgreSQL URL): concurrent counters with retried keys never overspend nor double-charge, and
concurrent scans of one ISBN buy it once. Skips without a PostgreSQL server (``tests/pg.py``)."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest

from serving.server import running_server
from serving.settings import Settings
from tests.pg import drop_database, fresh_database, pg_url  # noqa: F401 - pg_url is a fixture
from tests.serving._helpers import (
    assert_concurrent_counters_safe,
    assert_data_rights_flow,
    assert_opt_out_flow,
    counter_body,
    eligible_readers,
    fresh_isbn,
)
from tests.serving.conftest import make_settings, token

BOOKSTORE = "BS-12"  # Gongzhuling: 70 yuan for 2026-06
LINE = "BUD-2026-06-Gongzhuling"


@pytest.fixture(scope="module")
def server(pg_url, small_city, model_dir, tmp_path_factory, monkeypatch_module):  # noqa: F811
    from serving.app import create_app

    db_url = fresh_database(pg_url)
    monkeypatch_module.setenv("YUEDU_DB_URL", db_url)
    sqlite = make_settings(small_city, tmp_path_factory.mktemp("pg") / "unused.db", model_dir)
    fields = sqlite.model_dump(include={"data_dir", "model_dir", "secret_key", "staff_users", "today", "model_poll_s"})
    app = create_app(Settings(**fields))  # db_url from YUEDU_DB_URL, as an operator would set it
    try:
        with running_server(app) as url:
            yield app, url
    finally:
        app.state.yuedu.db.dispose()
        drop_database(db_url)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_ledger_is_postgresql(server):
    app, _ = server
    assert app.state.yuedu.settings.db_url.startswith("postgresql+psycopg://")
    assert app.state.yuedu.db.engine.dialect.name == "postgresql"


def test_concurrent_counters_never_overspend_nor_double_charge(server, small_city):
    app, url = server
    assert_concurrent_counters_safe(app, url, small_city, BOOKSTORE, LINE)


def test_one_isbn_scanned_at_once_is_bought_once(server, small_city):
    _, url = server
    readers = eligible_readers(small_city, 6, "Jiutai")  # BS-09's district: 80 yuan, untouched above
    shared = fresh_isbn()
    h = token("bookstore", "BS-09")
    start = threading.Barrier(len(readers))
    answers: list[dict] = []
    lock = threading.Lock()

    def scan(reader: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            start.wait()
            a = c.post(
                "/v1/purchase-requests",
                json=counter_body(reader, "BS-09", 5.0, isbn=shared),
                headers={**h, "Idempotency-Key": uuid.uuid4().hex},
            )
        with lock:
            answers.append(a.json())

    threads = [threading.Thread(target=scan, args=(r,)) for r in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == len(readers)
    assert sum(a["eligible"] for a in answers) == 1
    assert all("DUPLICATE_PENDING" in a["reason_codes"] for a in answers if not a["eligible"])


def test_text_bounds_hold_on_postgresql(server, small_city):
    """VARCHAR(n) on PostgreSQL refuses longer values: the API's bound must come first (422, not 500),
    and a title exactly at the bound (in Chinese characters) is stored whole."""
    from features import bounds

    app, url = server
    reader = eligible_readers(small_city, 1, "Dehui")[0]
    h = token("bookstore", "BS-11")
    with httpx.Client(base_url=url) as c:
        for extra, code in ((1, 422), (0, 201)):
            body = counter_body(reader, "BS-11", 10.0, channel="online", title="书" * (bounds.TITLE_MAX + extra))
            r = c.post("/v1/purchase-requests", json=body, headers={**h, "Idempotency-Key": uuid.uuid4().hex})
            assert r.status_code == code, r.text
    with app.state.yuedu.db.session_scope() as s:
        from acquisition.db import PurchaseRequestRow

        assert len(s.get(PurchaseRequestRow, r.json()["request_id"]).title) == bounds.TITLE_MAX


def test_staff_sessions_live_in_postgresql(server):
    _, url = server
    with httpx.Client(base_url=url, follow_redirects=False) as c:
        r = c.post("/staff/login", data={"username": "alice", "password": "alice-pw"})
        assert r.status_code == 303 and "yuedu_staff" in r.cookies
        assert 'id="who"' in c.get("/staff").text


def test_opt_out_flow_on_postgresql(server, small_city):
    """The personalisation opt-out end to end over HTTP, preferences stored in PostgreSQL."""
    import polars as pl
    from sqlalchemy import inspect

    app, url = server
    loans = pl.read_parquet(small_city / "loans.parquet")
    reader = loans.group_by("reader_id").len().sort("len", descending=True)["reader_id"][2]
    with httpx.Client(base_url=url, timeout=30) as c:
        assert_opt_out_flow(c, reader)
    assert "reader_preferences" in inspect(app.state.yuedu.db.engine).get_table_names()


def test_data_rights_flow_on_postgresql(pg_url, erasable_city, model_dir, tmp_path, monkeypatch):  # noqa: F811
    """Export and erasure end to end over HTTP; exclusion list and audit trail in PostgreSQL; the kept
    loans of the city's own copy pseudonymised."""
    import polars as pl

    from serving.app import create_app

    db_url = fresh_database(pg_url)
    monkeypatch.setenv("YUEDU_DB_URL", db_url)
    sqlite = make_settings(erasable_city, tmp_path / "unused.db", model_dir)
    fields = sqlite.model_dump(include={"data_dir", "model_dir", "secret_key", "staff_users", "today", "model_poll_s"})
    app = create_app(Settings(**fields))
    borrowers = set(pl.read_parquet(erasable_city / "loans.parquet")["reader_id"])
    reader = [r for r in eligible_readers(erasable_city, 200, "Dehui") if r in borrowers][1]
    try:
        with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
            assert app.state.yuedu.db.engine.dialect.name == "postgresql"
            assert_data_rights_flow(c, app, erasable_city, reader, "BS-11", tmp_path)
    finally:
        app.state.yuedu.db.dispose()
        drop_database(db_url)


def test_round_lifecycle_and_fund_on_postgresql(server, small_city):
    """A round on a fund goes draft -> reviewed -> submitted (decisions frozen) -> approved -> closed, its
    history (a JSON column rewritten at each move) kept by PostgreSQL; the order sheet totals the approval."""
    _, url = server
    staff, h = token("staff", "alice"), token("bookstore", "BS-04")
    with httpx.Client(base_url=url, timeout=60) as c:
        for reader in eligible_readers(small_city, 2, "Nanguan"):
            body = counter_body(reader, "BS-04", 12.5, channel="online", title="审批流程")
            assert (
                c.post("/v1/purchase-requests", json=body, headers={**h, "Idempotency-Key": uuid.uuid4().hex}).json()[
                    "status"
                ]
                == "pending"
            )
        made = c.post("/v1/acquisition/rounds", json={"fund_id": "BUD-2026-ALL"}, headers=staff)
        assert made.status_code == 201, made.text
        rid = made.json()["round_id"]
        line = next(x["request_id"] for x in made.json()["lines"] if not x["reason_codes"] and x["title"] == "审批流程")
        decide = {"decisions": [{"request_id": line, "decision": "approve"}]}
        assert (
            c.post(f"/v1/acquisition/rounds/{rid}/decisions", json=decide, headers=staff).json()["status"] == "reviewed"
        )
        for action in ("submit", "approve", "close"):
            moved = c.post(f"/v1/acquisition/rounds/{rid}/transitions", json={"action": action}, headers=staff)
            assert moved.status_code == 200, moved.text
            if action == "submit":
                assert c.post(f"/v1/acquisition/rounds/{rid}/decisions", json=decide, headers=staff).status_code == 409
        got = c.get(f"/v1/acquisition/rounds/{rid}", headers=staff).json()
        assert got["status"] == "closed" and [x["status"] for x in got["history"]] == [
            "submitted",
            "approved",
            "closed",
        ]
        sheet = c.get(f"/v1/acquisition/rounds/{rid}/order-sheet", params={"format": "csv"}, headers=staff)
        assert sheet.content.decode("utf-8-sig").strip().splitlines()[-1].endswith(",1,,,,12.5")


def test_workers_failing_one_login_at_once_lock_it_together_on_postgresql(pg_url):  # noqa: F811
    """Eight workers' failures for one login at the same instant (the shared throttle's row is created
    once and locked): the login ends locked, no failure is lost and none raises."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from acquisition.db import init_db
    from serving.sessions import SharedLoginThrottle

    db = init_db(fresh_database(pg_url))
    try:
        throttles = [SharedLoginThrottle(db, "login", max_failures=8, lockout_s=30.0) for _ in range(8)]
        start = threading.Barrier(8)

        def fail(i: int) -> None:
            start.wait()
            throttles[i].failure(("alice",))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(fail, range(8)))
        assert 0 < throttles[0].retry_after(("alice",)) <= 30
    finally:
        db.dispose()
        drop_database(db.url)
