"""Stored per-reader preferences (issue 17, PIPL Art. 24) through HTTP on the real app (SQLite; the
same flow runs on PostgreSQL in ``test_postgres_http``)."""

from __future__ import annotations

import polars as pl

from tests.serving._helpers import assert_data_rights_flow, assert_opt_out_flow
from tests.serving.conftest import token


def test_opt_out_flow_on_sqlite(client, city_facts):
    assert_opt_out_flow(client, city_facts["reader"])


def test_staff_may_set_a_readers_preferences_another_reader_may_not(client, city_facts):
    reader = city_facts["other_reader"]
    url = f"/v1/readers/{reader}/preferences"
    assert client.put(url, json={"personalised": False}, headers=token("reader", "R-SOMEONE-ELSE")).status_code == 403
    assert client.put(url, json={"personalised": False}, headers=token("staff", "alice")).status_code == 200
    assert client.get(url, headers=token("reader", reader)).json()["personalised"] is False
    client.put(url, json={"personalised": True}, headers=token("admin", "root"))


def test_preferences_survive_a_restart(client, app):
    """Stored in the service database: a new app on the same database still honours them."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    reader = "R-RESTART"
    client.put(f"/v1/readers/{reader}/preferences", json={"personalised": False}, headers=token("reader", reader))
    again = create_app(app.state.yuedu.settings)
    with TestClient(again) as c:
        assert (
            c.get(f"/v1/readers/{reader}/preferences", headers=token("reader", reader)).json()["personalised"] is False
        )


def test_preferences_body_is_bounded(client):
    h = token("reader", "R-1")
    for bad in [{"personalised": "maybe"}, {"personalised": 2**70}, {}, {"personalised": False, "extra": 1}]:
        r = client.put("/v1/readers/R-1/preferences", json=bad, headers=h)
        assert r.status_code == 422 and r.json()["fields"], (bad, r.text)


def test_data_rights_flow_on_sqlite(erasable_city, model_dir, tmp_path):
    """On its own copy of the city: the erasure rewrites the loans table."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from tests.serving._helpers import eligible_readers
    from tests.serving.conftest import make_settings

    loans = pl.read_parquet(erasable_city / "loans.parquet")
    readers = [r for r in eligible_readers(erasable_city, 200, "Dehui") if r in set(loans["reader_id"])]
    app = create_app(make_settings(erasable_city, tmp_path / "yuedu.db", model_dir))
    with TestClient(app) as client:
        assert_data_rights_flow(client, app, erasable_city, readers[0], "BS-11", tmp_path)


def test_pseudonymising_changes_only_the_readers_id(erasable_city):
    """Every other column and every other reader's row is untouched; a second erasure finds nothing."""
    from features.interactions import load_interactions
    from features.privacy import erased_pseudonym
    from serving.data_rights import pseudonymise_records

    before = pl.read_parquet(erasable_city / "loans.parquet")
    reader = before["reader_id"][0]
    done = pseudonymise_records(erasable_city, reader)
    after = pl.read_parquet(erasable_city / "loans.parquet")
    mine = (before["reader_id"] == reader).to_numpy()
    assert done["loans"] == mine.sum() > 0 and after.schema == before.schema
    assert after.filter(~mine).equals(before.filter(~mine))
    assert after.filter(mine).drop("reader_id").equals(before.filter(mine).drop("reader_id"))
    assert set(after.filter(mine)["reader_id"]) == {erased_pseudonym(reader)}
    assert pseudonymise_records(erasable_city, reader)["loans"] == 0
    events = load_interactions(erasable_city).collect()
    assert reader not in set(events["reader_id"]) and not events["reader_id"].str.starts_with("erased:").any()
