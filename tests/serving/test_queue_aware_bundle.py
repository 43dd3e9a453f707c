"""The served bundle with queue-aware lists (YUEDU_QUEUE_AWARE) and its stored exposure prices."""

from __future__ import annotations

from datetime import date

import numpy as np

from recsys.base import Recommender
from recsys.explain import ReasonCode
from recsys.exposure import save_prices
from serving.state import build_bundle


def test_queue_aware_bundle_says_when_and_loads_the_prices(small_city, model_dir, tmp_path):
    model = Recommender.load(model_dir)
    plain = build_bundle(model, "v", "test", small_city, date(2026, 7, 1))
    readers = list(model.readers_.ids[:40])
    lists = plain.service.recommend_for_readers(readers, n=10)
    assert all(r.expected_wait_days is None for recs in lists.values() for r in recs)
    top = lists[readers[0]][0].title_id
    prices = np.zeros(len(model.titles_))
    prices[model.titles_.get(top)] = 5.0
    path = save_prices(tmp_path / "prices.json", model.titles_, prices)

    bundle = build_bundle(model, "v", "test", small_city, date(2026, 7, 1), queue_aware=True, exposure_prices=path)
    assert bundle.service.exposure_prices[model.titles_.get(top)] == 5.0
    out = bundle.service.recommend_for_readers(readers, n=10)
    recs = [r for rs in out.values() for r in rs]
    assert recs and all(r.title_id != top for r in recs)
    assert all(r.expected_wait_days is not None and r.expected_wait_days <= 21.0 for r in recs)
    codes = {x.code for r in recs for x in r.reasons}
    assert ReasonCode.WAIT in codes  # some listed title is out on loan now, and the list says until when


def test_the_api_says_when_a_reader_can_have_each_book(small_city, model_dir, tmp_path, city_facts):
    """YUEDU_QUEUE_AWARE over HTTP: every listed title carries its expected wait and queue, within the
    configured limit; without it both stay null."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from tests.serving.conftest import make_settings, token

    reader = city_facts["reader"]
    for queue_aware in (False, True):
        app = create_app(make_settings(small_city, tmp_path / f"q{queue_aware}.db", model_dir, queue_aware=queue_aware))
        with TestClient(app) as c:
            r = c.get(f"/v1/readers/{reader}/recommendations?n=10", headers=token("reader", reader))
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert items
        waits = [i["expected_wait_days"] for i in items]
        if queue_aware:
            assert all(w is not None and 0 <= w <= 21.0 for w in waits)
            assert all(i["readers_waiting"] is not None and i["readers_waiting"] >= 0 for i in items)
        else:
            assert waits == [None] * len(items)
