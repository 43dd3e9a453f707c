"""Several workers, one view: live events, erasures and model reloads reach every worker through the
database (serving.live_store), and a killed worker loses nothing.

Two apps over one SQLite file stand in for two workers in-process (deterministic); one test runs the
real thing, ``yuedu serve --workers 2``, and kills a worker."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.server import free_port
from tests.serving.conftest import SECRET, STAFF_USERS, make_settings, token


def _wait(predicate, timeout_s: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {timeout_s} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def second_model(small_city, tmp_path_factory) -> Path:
    from features.interactions import load_interactions
    from features.matrix import build_matrix
    from recsys.models import make_model

    model = make_model("popular").fit(build_matrix(load_interactions(small_city).collect()))
    return model.save(tmp_path_factory.mktemp("model2") / "popular")


@pytest.fixture(scope="module")
def two_workers(small_city, model_dir, tmp_path_factory):
    """Two apps on one database file, each with its own poller (live_sync_s = 0.05), on a copy of the
    city (an erasure pseudonymises the reader's kept loans in the data directory)."""
    import shutil

    from fastapi.testclient import TestClient

    from serving.app import create_app

    shared = tmp_path_factory.mktemp("shared")
    city = Path(shutil.copytree(small_city, shared / "city", ignore=shutil.ignore_patterns("truth")))
    db = shared / "yuedu.db"
    apps = [create_app(make_settings(city, db, model_dir, live_sync_s=0.05)) for _ in range(2)]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        yield apps, a, b


def _live(client, reader: str) -> list[str]:
    r = client.get(f"/v1/readers/{reader}/data", headers=token("admin", "root"))
    assert r.status_code == 200, r.text
    return r.json()["live_events"]


def _version(client) -> str:
    return re.search(r'yuedu_model_info\{version="([^"]+)"\}', client.get("/metrics").text).group(1)


def test_an_event_on_one_worker_reaches_the_other(two_workers, city_facts):
    apps, a, b = two_workers
    reader = city_facts["reader"]
    title = str(apps[0].state.yuedu.bundle.context.title_ids[7])
    r = a.post(f"/v1/readers/{reader}/events", json={"title_id": title}, headers=token("reader", reader))
    assert r.status_code == 202, r.text
    assert title in _live(a, reader)  # read-your-writes on the worker that took it
    _wait(lambda: title in _live(b, reader), what="the event on the other worker")


def test_an_erasure_on_one_worker_empties_both(two_workers, city_facts):
    apps, a, b = two_workers
    reader = city_facts["other_reader"]
    title = str(apps[0].state.yuedu.bundle.context.title_ids[9])
    assert (
        b.post(f"/v1/readers/{reader}/events", json={"title_id": title}, headers=token("reader", reader)).status_code
        == 202
    )
    _wait(lambda: title in _live(a, reader), what="the event on worker a")
    erased = a.delete(f"/v1/readers/{reader}/profile", headers=token("reader", reader))
    assert erased.status_code == 200 and erased.json()["live_events_dropped"] == 1
    assert _live(a, reader) == []
    _wait(lambda: _live(b, reader) == [], what="the erasure on worker b")
    # the stored rows are gone, not only the in-memory copies: a new worker would not see them
    assert all(row.reader_id != reader or row.kind == "forget" for row in apps[0].state.yuedu.live.since(0))


def test_a_reload_on_one_worker_reloads_the_other(two_workers, model_dir, second_model):
    apps, a, b = two_workers
    before = _version(b)
    r = a.post("/v1/admin/reload", json={"model_dir": str(second_model)}, headers=token("admin", "root"))
    assert r.status_code == 200, r.text
    new = r.json()["model_version"]
    assert new != before and _version(a) == new
    _wait(lambda: _version(b) == new, what="the reload on worker b")
    back = a.post("/v1/admin/reload", json={"model_dir": str(model_dir)}, headers=token("admin", "root"))
    assert back.status_code == 200
    _wait(lambda: _version(b) == before, what="the second reload on worker b")


def test_a_failed_reload_is_not_passed_on(two_workers, tmp_path):
    apps, a, b = two_workers
    generation = apps[1].state.yuedu.generation
    r = a.post("/v1/admin/reload", json={"model_dir": str(tmp_path / "nothing")}, headers=token("admin", "root"))
    assert r.status_code == 409
    assert apps[0].state.yuedu.live.generation()[0] == generation


_readers = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["event", "forget"]), st.integers(0, 1), st.integers(0, 2), st.integers(0, 5)),
        max_size=25,
    )
)
def test_every_worker_ends_with_the_same_view_as_the_log(two_workers, ops):
    """Random events and erasures on either worker: once both have synced, each worker's live events
    equal what the sequence implies (set semantics, an erasure empties the reader)."""
    apps, _, _ = two_workers
    states = [app.state.yuedu for app in apps]
    titles = [str(t) for t in states[0].bundle.context.title_ids[:6]]
    batch = next(_readers)
    readers = [f"R-prop-{batch}-{i}" for i in range(3)]
    expected: dict[str, set[str]] = {r: set() for r in readers}
    for kind, worker, who, what in ops:
        state, reader = states[worker], readers[who]
        if kind == "event":
            state.live.append(reader, titles[what], state.now())
            expected[reader].add(titles[what])
        else:
            state.forget_live(reader)
            expected[reader].clear()
    for state in states:
        state.coalescer.call_sync(state.sync_live)
        live = state.bundle.service.live_events()
        assert {r: set(live.get(r, ())) for r in readers} == expected


def _pids(metrics_text: str) -> set[str]:
    return set(re.findall(r'yuedu_worker_info\{pid="(\d+)"\}', metrics_text))


def _client_on_other_worker(base: str, pid: str, tries: int = 50) -> tuple[httpx.Client, str] | None:
    """A keep-alive client whose connection landed on a worker other than ``pid`` (None when ``tries``
    connections all landed on ``pid``: the other worker may still be starting; the caller retries)."""
    for _ in range(tries):
        c = httpx.Client(base_url=base, timeout=10)
        try:
            (other,) = _pids(c.get("/metrics").text)
        except httpx.TransportError:  # a connection queued on a worker as it was killed is reset: retry
            c.close()
            continue
        if other != pid:
            return c, other
        c.close()
    return None


def test_yuedu_serve_with_two_workers_shares_events_and_survives_a_killed_worker(
    small_city, model_dir, tmp_path, city_facts
):
    yuedu = Path(sys.executable).parent / "yuedu"
    if not yuedu.exists():
        pytest.skip(f"{yuedu} not installed (pip install -e .)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "YUEDU_SECRET_KEY": SECRET, "YUEDU_STAFF_USERS": STAFF_USERS, "YUEDU_MODEL_POLL_S": "0"}
    cmd = [str(yuedu), "serve", "--data", str(small_city), "--db", f"sqlite:///{tmp_path / 'w.db'}", "--workers", "2"]
    cmd += ["--model", str(model_dir), "--port", str(port), "--today", "2026-06-15", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    clients: list[httpx.Client] = []
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"yuedu serve exited {proc.returncode}: {proc.stdout.read()[-3000:]}")
            try:
                return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        _wait(ready, 90, "both workers ready")
        first = httpx.Client(base_url=base, timeout=10)
        clients.append(first)
        (pid_a,) = _pids(first.get("/metrics").text)
        second, pid_b = _wait(lambda: _client_on_other_worker(base, pid_a), 120, "a second worker")
        clients.append(second)
        reader, title = city_facts["reader"], city_facts["title"]
        r = first.post(f"/v1/readers/{reader}/events", json={"title_id": title}, headers=token("reader", reader))
        assert r.status_code == 202, r.text
        _wait(lambda: title in _live(second, reader), what="the event on the second worker")

        os.kill(int(pid_b), signal.SIGKILL)  # uvicorn's supervisor starts a replacement
        second.close()
        third, pid_c = _wait(lambda: _client_on_other_worker(base, pid_a), 120, "the replacement worker")
        clients.append(third)
        assert pid_c != pid_b
        assert title in _live(third, reader)  # replayed from the database: nothing lost
    finally:
        for c in clients:
            c.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
