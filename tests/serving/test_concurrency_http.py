"""Many counters against one budget THROUGH HTTP on a real uvicorn server: no overspend, no double charge.

Threads of httpx clients send eligible counter requests for one bookstore whose district has a small
monthly budget; every request is sent twice with the same Idempotency-Key (a retry after a lost
answer). Afterwards the ledger must hold: reserved money == sum of approved prices (each charged once)
<= the budget, and every retry must have replayed the first decision.
"""

from __future__ import annotations

import pytest

from serving.server import running_server
from tests.serving._helpers import assert_concurrent_counters_safe
from tests.serving.conftest import make_settings

BOOKSTORE = "BS-12"  # Gongzhuling: 70 yuan for 2026-06


@pytest.fixture(scope="module")
def server(small_city, model_dir, tmp_path_factory):
    from serving.app import create_app

    app = create_app(make_settings(small_city, tmp_path_factory.mktemp("conc") / "yuedu.db", model_dir))
    with running_server(app) as url:
        yield app, url


def test_concurrent_counters_never_overspend_nor_double_charge(server, small_city):
    app, url = server
    assert_concurrent_counters_safe(app, url, small_city, BOOKSTORE, "BUD-2026-06-Gongzhuling")
