"""Many counters against one budget THROUGH HTTP on a real uvicorn server: no overspend, no double charge.

Threads of httpx clients send eligible counter requests for one bookstore whose district has a small
monthly budget; every request is sent twice with the same Idempotency-Key (a retry after a lost
answer). Afterwards the ledger must hold: reserved money == sum of approved prices (each charged once)
<= the budget, and every retry must have replayed the first decision.
"""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
from sqlalchemy import select

from acquisition.db import BudgetLineRow, PurchaseRequestRow
from serving.server import running_server
from tests.serving._helpers import counter_body, eligible_readers
from tests.serving.conftest import make_settings, token

BOOKSTORE = "BS-12"  # Gongzhuling: 70 yuan for 2026-06


@pytest.fixture(scope="module")
def server(small_city, model_dir, tmp_path_factory):
    from serving.app import create_app

    app = create_app(make_settings(small_city, tmp_path_factory.mktemp("conc") / "yuedu.db", model_dir))
    with running_server(app) as url:
        yield app, url


def test_concurrent_counters_never_overspend_nor_double_charge(server, small_city):
    app, url = server
    readers = eligible_readers(small_city, 24, "Gongzhuling")
    price = 9.0  # 70 yuan fits 7 books; 24 readers ask at once
    results: dict[str, list[dict]] = {}
    lock = threading.Lock()
    h = token("bookstore", BOOKSTORE)

    def counter(chunk: list[str]) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            for reader in chunk:
                body, key = counter_body(reader, BOOKSTORE, price), {"Idempotency-Key": uuid.uuid4().hex}
                answers = [c.post("/v1/purchase-requests", json=body, headers={**h, **key}) for _ in range(2)]
                with lock:
                    results[reader] = [(a.status_code, a.json()) for a in answers]

    threads = [threading.Thread(target=counter, args=(readers[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(results) == len(readers)
    approved = 0
    for (s1, first), (s2, retry) in results.values():
        assert s1 == 201 and s2 == 200 and retry["replayed"]
        assert retry["request_id"] == first["request_id"] and retry["status"] == first["status"]
        if first["eligible"]:
            approved += 1
        else:
            assert set(first["reason_codes"]) == {"BUDGET_EXHAUSTED"}
    assert approved == 7

    db = app.state.yuedu.db
    with db.session_scope() as s:
        line = s.get(BudgetLineRow, "BUD-2026-06-Gongzhuling")
        n_rows = len(
            s.scalars(select(PurchaseRequestRow.request_id).where(PurchaseRequestRow.bookstore_id == BOOKSTORE)).all()
        )
    assert line.reserved_fen + line.committed_fen <= line.amount_fen
    assert line.reserved_fen == approved * 900
    assert n_rows == len(readers)  # retries stored nothing new
