"""Small builders for serving tests: valid fresh ISBNs, eligible readers, counter request bodies."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import polars as pl
from stdnum import ean

_serial = itertools.count(1)


def fresh_isbn() -> str:
    """A valid ISBN-13 under the 979-10 prefix, which the synthetic catalogue never uses."""
    body = f"97910{next(_serial) + uuid.uuid4().int % 10_000_000:08d}"[:12]
    return body + ean.calc_check_digit(body)


def eligible_readers(data_dir: Path, k: int, district: str | None = None) -> list[str]:
    """``k`` readers who pass the reader rules (not blocked, credit level >= 1), optionally living in
    ``district``. Tests pair a bookstore with readers of its own district, so that the budget line
    charged is the same whether the policy draws on the bookstore's or the reader's district."""
    r = pl.read_parquet(data_dir / "readers.parquet").join(
        pl.read_parquet(data_dir / "branches.parquet").select("branch_id", "district"),
        left_on="home_branch_id",
        right_on="branch_id",
        how="left",
    )
    ok = r.filter(~pl.col("blocked") & (pl.col("credit_level") >= 1))
    if district is not None:
        ok = ok.filter(pl.col("district") == district)
    return ok["reader_id"].head(k).to_list()


def counter_body(
    reader: str, bookstore: str, price: float, *, channel: str = "counter", isbn: str | None = None, **kw
) -> dict:
    return {
        "reader_id": reader,
        "bookstore_id": bookstore,
        "isbn": isbn or fresh_isbn(),
        "price": price,
        "title": kw.pop("title", "A new novel"),
        "pub_year": 2026,
        "clc_class": kw.pop("clc_class", "I247"),
        "channel": channel,
        **kw,
    }


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def assert_concurrent_counters_safe(app, url: str, small_city, bookstore: str, line_id: str) -> None:
    """24 readers ask at once at ``bookstore`` (9 yuan each against a 70-yuan month line), every request
    sent twice with its idempotency key: exactly 7 approvals, retries replayed, nothing charged twice,
    nothing over the line, one stored request per reader. Same scenario for SQLite and PostgreSQL."""
    import threading
    import uuid

    import httpx
    from sqlalchemy import select

    from acquisition.db import BudgetLineRow, PurchaseRequestRow
    from tests.serving.conftest import token

    readers = eligible_readers(small_city, 24, "Gongzhuling")
    price = 9.0  # 70 yuan fits 7 books
    results: dict[str, list] = {}
    lock = threading.Lock()
    h = token("bookstore", bookstore)

    def counter(chunk: list[str]) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            for reader in chunk:
                body, key = counter_body(reader, bookstore, price), {"Idempotency-Key": uuid.uuid4().hex}
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

    with app.state.yuedu.db.session_scope() as s:
        line = s.get(BudgetLineRow, line_id)
        n_rows = len(
            s.scalars(select(PurchaseRequestRow.request_id).where(PurchaseRequestRow.bookstore_id == bookstore)).all()
        )
    assert line.reserved_fen == approved * 900  # each approval charged once
    assert line.reserved_fen + line.committed_fen <= line.amount_fen
    assert n_rows == len(readers)  # retries stored nothing new


#: Reasons that cite the reader's own history: never shown to a reader who opted out.
HISTORY_REASONS = {"because_you_borrowed", "also_borrowed"}


def assert_opt_out_flow(client, reader: str) -> None:
    """The personalisation opt-out end to end over HTTP (same scenario on SQLite and PostgreSQL):
    defaults, PUT by the reader, every later list unpersonalised without history reasons, the
    ``?personalised=false`` query on its own, opting back in."""
    h = token_for_reader(reader)
    url = f"/v1/readers/{reader}"
    assert client.get(f"{url}/preferences", headers=h).json() == {
        "reader_id": reader,
        "personalised": True,
        "promotion": True,
        "updated_at": None,
    }
    mine = client.get(f"{url}/recommendations", params={"n": 10}, headers=h).json()
    assert mine["personalised"] and not mine["cold_start"]
    assert any(x["code"] in HISTORY_REASONS for i in mine["items"] for x in i["reasons"])
    queried = client.get(f"{url}/recommendations", params={"n": 10, "personalised": "false"}, headers=h).json()
    assert not queried["personalised"] and queried["cold_start"]
    assert not any(x["code"] in HISTORY_REASONS for i in queried["items"] for x in i["reasons"])
    assert [i["title_id"] for i in queried["items"]] != [i["title_id"] for i in mine["items"]]

    put = client.put(f"{url}/preferences", json={"personalised": False, "promotion": False}, headers=h)
    assert put.status_code == 200, put.text
    assert put.json()["personalised"] is False and put.json()["updated_at"]
    stored = client.get(f"{url}/recommendations", params={"n": 10}, headers=h).json()
    assert not stored["personalised"] and stored["cold_start"] and not stored["promotion"]
    assert not any(x["code"] in HISTORY_REASONS for i in stored["items"] for x in i["reasons"])
    # the query cannot switch a stored opt-out back on
    again = client.get(f"{url}/recommendations", params={"personalised": "true"}, headers=h).json()
    assert not again["personalised"]

    client.put(f"{url}/preferences", json={"personalised": True}, headers=h)
    back = client.get(f"{url}/recommendations", params={"n": 10}, headers=h).json()
    assert back["personalised"] and back["promotion"]  # promotion defaults to on when not sent
    assert [i["title_id"] for i in back["items"]] == [i["title_id"] for i in mine["items"]]


def token_for_reader(reader: str) -> dict[str, str]:
    from tests.serving.conftest import token

    return token("reader", reader)


def assert_data_rights_flow(client, app, data_dir: Path, reader: str, bookstore: str, tmp: Path) -> None:
    """Export and erasure end to end over HTTP (same scenario on SQLite and PostgreSQL): the export holds
    loans, live events, requests and preferences; only the reader and admin may ask; the erasure drops
    live events, stops personalisation, puts the reader on the training exclusion list, keeps loans;
    both are audited."""
    from serving.data_rights import write_exclusions
    from tests.serving.conftest import token

    me, url = token_for_reader(reader), f"/v1/readers/{reader}"
    title = str(app.state.yuedu.bundle.context.title_ids[5])  # in the served catalogue
    n_loans = pl.read_parquet(data_dir / "loans.parquet").filter(pl.col("reader_id") == reader).height
    event = client.post(f"{url}/events", json={"title_id": title}, headers=me)
    assert event.status_code == 202, event.text
    body = counter_body(reader, bookstore, 12.0)
    made = client.post("/v1/purchase-requests", json=body, headers={**token("bookstore", bookstore), **key()})
    assert made.status_code == 201, made.text
    for who in [token("staff", "alice"), token("reader", "R-SOMEONE-ELSE"), token("bookstore", bookstore)]:
        assert client.get(f"{url}/data", headers=who).status_code == 403
        assert client.delete(f"{url}/profile", headers=who).status_code == 403
    data = client.get(f"{url}/data", headers=me).json()
    assert len(data["loans"]) == n_loans > 0 and data["live_events"] == [title]
    assert [r["request_id"] for r in data["requests"]] == [made.json()["request_id"]]
    assert data["preferences"]["personalised"] and not data["excluded_from_training"]
    assert [a["action"] for a in data["audit"]] == ["export"]

    erased = client.delete(f"{url}/profile", headers=me)
    assert erased.status_code == 200, erased.text
    assert erased.json() == {
        "reader_id": reader,
        "live_events_dropped": 1,
        "excluded_from_training": True,
        "loans_kept": n_loans,
    }
    recs = client.get(f"{url}/recommendations", headers=me).json()
    assert not recs["personalised"] and recs["cold_start"]
    after = client.get(f"{url}/data", headers=token("admin", "root")).json()
    assert after["live_events"] == [] and after["excluded_from_training"] and len(after["loans"]) == n_loans
    assert all(loan["pseudonymised"] for loan in after["loans"]) and not any(d["pseudonymised"] for d in data["loans"])
    assert_kept_rows_pseudonymised(data_dir, reader, n_loans)
    assert [(a["action"], a["actor"]) for a in after["audit"]] == [
        ("export", f"reader:{reader}"),
        ("erase", f"reader:{reader}"),
        ("export", "admin:root"),
    ]
    assert write_exclusions(app.state.yuedu.data_rights, tmp / "excluded.txt") >= 1
    assert reader in (tmp / "excluded.txt").read_text().split()
    assert_next_training_leaves_out(data_dir, reader, tmp / "excluded.txt")


def assert_kept_rows_pseudonymised(data_dir: Path, reader: str, n_loans: int) -> None:
    """The loans stay (same number of rows) but none names the reader: each carries the pseudonym."""
    from features.privacy import erased_pseudonym

    loans = pl.read_parquet(data_dir / "loans.parquet")
    assert loans.filter(pl.col("reader_id") == reader).height == 0
    assert loans.filter(pl.col("reader_id") == erased_pseudonym(reader)).height == n_loans
    for table in ("holds", "ebook_events"):
        if (data_dir / f"{table}.parquet").exists():
            assert reader not in set(pl.read_parquet(data_dir / f"{table}.parquet")["reader_id"])


def assert_next_training_leaves_out(data_dir: Path, reader: str, exclusions: Path) -> None:
    """The training pipeline over the data directory (with or without the exclusion list) never sees
    the reader nor the kept, pseudonymised rows."""
    from features.privacy import ERASED_PREFIX
    from training import pipeline
    from training.config import ExperimentConfig

    for extra in ({}, {"exclude_readers": str(exclusions)}):
        config = ExperimentConfig(
            name="t_erased",
            dataset={"kind": "dir", "path": str(data_dir)},
            split={"protocol": "temporal", "cutoff": "2026-01-01", "val_cutoff": "2025-07-01"},
            model={"name": "itemknn"},
            **extra,
        )
        split = pipeline.prepare(config).split
        trained = set(split.train["reader_id"].unique()) | {str(r) for f in split.folds.values() for r in f.readers}
        assert trained and reader not in trained
        assert not any(r.startswith(ERASED_PREFIX) for r in trained)
