"""The bookstore counter page ``/counter`` over HTTP: terminal set-up with its key, a decision in
Chinese with every failing rule as a sentence, check out, retries never charge twice, forms guarded."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from acquisition import ledger
from tests.serving._helpers import eligible_readers, fresh_isbn
from tests.serving.conftest import make_settings, token

STORE = "BS-11"  # Dehui: 120 yuan in 2026-06


@pytest.fixture(scope="module")
def app(small_city, model_dir, tmp_path_factory):
    from serving.app import create_app

    return create_app(make_settings(small_city, tmp_path_factory.mktemp("counter") / "yuedu.db", model_dir))


@pytest.fixture
def terminal(app):
    with TestClient(app) as c:
        key = token("bookstore", STORE)["Authorization"].split()[1]
        assert c.post("/counter/key", data={"key": key}, follow_redirects=False).status_code == 303
        yield c


def _form(client) -> dict[str, str]:
    page = client.get("/counter").text
    return {name: re.search(rf'name="{name}" value="([^"]*)"', page).group(1) for name in ("csrf", "nonce")}


def test_the_terminal_needs_a_bookstore_key(app):
    with TestClient(app) as c:
        assert 'id="key-form"' in c.get("/counter").text
        staff_key = token("staff", "alice")["Authorization"].split()[1]
        assert c.post("/counter/key", data={"key": staff_key}).status_code == 401
        assert c.post("/counter/key", data={"key": "garbage"}).status_code == 401
        assert 'id="key-form"' in c.get("/counter").text


def test_an_approval_reserves_once_and_checks_out(terminal, app, small_city):
    reader = eligible_readers(small_city, 1, "Dehui")[0]
    db = app.state.yuedu.db
    before = ledger.budgets(db, "2026-06").model_dump()
    form = {
        **_form(terminal),
        "reader_id": reader,
        "isbn": fresh_isbn(),
        "price": "23.50",
        "title": "边城",
        "pub_year": "2026",
    }
    page = terminal.post("/counter/decide", data=form)
    assert page.status_code == 200 and 'data-status="reserved"' in page.text
    assert "可以荐购" in page.text and "《边城》" in page.text and "23.50 元" in page.text
    again = terminal.post("/counter/decide", data=form)  # a double Enter: same nonce, replayed
    request_id = re.search(r'data-request="([^"]+)"', page.text).group(1)
    assert re.search(r'data-request="([^"]+)"', again.text).group(1) == request_id
    dehui = lambda b: next(d for d in b["districts"] if d["district"] == "Dehui")  # noqa: E731
    after = ledger.budgets(db, "2026-06").model_dump()
    assert dehui(after)["used"] == pytest.approx(dehui(before)["used"] + 23.50)
    done = terminal.post(f"/counter/{request_id}/checkout", data={"csrf": _form(terminal)["csrf"]})
    assert done.status_code == 200 and "已借出" in done.text


def test_a_decline_names_every_rule_in_chinese(terminal, small_city):
    reader = eligible_readers(small_city, 2, "Dehui")[1]
    form = {**_form(terminal), "reader_id": reader, "isbn": "9780000000000", "price": "900", "pub_year": "1950"}
    page = terminal.post("/counter/decide", data=form)
    assert 'data-status="declined"' in page.text and "不符合规定" in page.text
    codes = set(re.findall(r'<li data-code="([A-Z_]+)">', page.text))
    assert {"INVALID_ISBN", "PRICE_OVER_CAP", "PUB_YEAR_TOO_OLD"} <= codes
    assert "PRICE_OVER_CAP</li>" not in page.text  # a sentence, not the raw code
    english = terminal.post("/counter/decide?lang=en", data={**form, **_form(terminal)})
    assert "price above the cap" in english.text


def test_bad_input_is_shown_not_a_500(terminal):
    form = {**_form(terminal), "reader_id": "R1", "isbn": "123", "price": "abc", "pub_year": "19x5"}
    page = terminal.post("/counter/decide", data=form)
    assert page.status_code == 422 and 'id="problem"' in page.text and "价格" in page.text


def test_counter_forms_refuse_other_origins_and_missing_tokens(terminal):
    form = {**_form(terminal), "reader_id": "R1", "isbn": "9787020002207", "price": "10"}
    assert terminal.post("/counter/decide", data=form, headers={"origin": "http://evil.example"}).status_code == 403
    assert terminal.post("/counter/decide", data={**form, "csrf": ""}).status_code == 403


def test_a_held_book_shows_the_way_offered_in_the_language_asked(terminal, small_city):
    import polars as pl

    copies = pl.read_parquet(small_city / "copies.parquet").filter(
        pl.col("status").is_in(["on_shelf", "on_loan", "in_transit"])
    )
    titles = pl.read_parquet(small_city / "titles.parquet").drop_nulls("isbn13")
    held = copies.group_by("title_id").len().filter(pl.col("len") >= 3).join(titles, on="title_id").sort("title_id")
    reader = eligible_readers(small_city, 3, "Dehui")[2]
    form = {**_form(terminal), "reader_id": reader, "isbn": held["isbn13"][0], "price": "20", "pub_year": "2026"}
    page = terminal.post("/counter/decide", data=form)
    assert 'data-status="declined"' in page.text and 'id="alternative"' in page.text
    kind = re.search(r'id="alternative" data-kind="([a-z]+)"', page.text).group(1)
    assert kind in {"hold", "queue", "ebook"}
    assert re.search(r'id="alternative"[^>]*><strong>[^<]*[\u4e00-\u9fff]', page.text)
    english = terminal.post("/counter/decide?lang=en", data={**form, **_form(terminal)})
    assert re.search(r'id="alternative"[^>]*><strong>[A-Za-z ]+', english.text)
    assert not re.search(r'id="alternative"[^>]*><strong>[^<]*[\u4e00-\u9fff]', english.text)
