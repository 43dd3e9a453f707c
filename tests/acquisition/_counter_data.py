"""A tiny generated library for the counter tests: two districts, a handful of readers, titles,
copies, two bookstores and budget lines, written as a data directory of Parquet tables."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
from stdnum import ean

from acquisition.counter import CounterService, PurchaseRequestIn
from acquisition.db import Database, init_db, load_data_dir
from acquisition.holdings import Holdings
from acquisition.policy import Policy
from features.schema import conform, table_path

NOW = datetime(2026, 5, 12, 10, 30)


def isbn(n: int) -> str:
    """A valid ISBN-13 built from a number (978 prefix + 9 digits + check digit)."""
    body = f"978{n:09d}"
    return body + ean.calc_check_digit(body)


#: ISBNs with known holdings: HELD3 has 3 copies in the network, SHELF_HOME one on shelf at B-N1.
HELD3 = isbn(1)
SHELF_HOME = isbn(2)
FRESH = isbn(1000)


def write_city(out: Path, *, budgets: list[dict] | None = None) -> Path:
    """Write the tiny city into ``out`` and return it."""
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "branches": pl.DataFrame(
            {
                "branch_id": ["B-N1", "B-S1"],
                "name": ["North 1", "South 1"],
                "kind": ["model_branch", "model_branch"],
                "district": ["Chaoyang", "Nanguan"],
                "lat": [43.9, 43.8],
                "lon": [125.3, 125.4],
                "delivers": [True, False],
            }
        ),
        "readers": pl.DataFrame(
            {
                "reader_id": ["R-ok", "R-ok2", "R-blocked", "R-low", "R-south"],
                "home_branch_id": ["B-N1", "B-N1", "B-N1", "B-N1", "B-S1"],
                "age_band": ["adult"] * 5,
                "card_type": ["standard"] * 5,
                "registered_at": [date(2020, 1, 1)] * 5,
                "credit_level": [3, 4, 3, 0, 5],
                "blocked": [False, False, True, False, False],
            }
        ),
        "titles": pl.DataFrame(
            {
                "title_id": ["T1", "T2"],
                "isbn13": [HELD3, SHELF_HOME],
                "title": ["Held thrice", "On the shelf"],
                "pub_year": [2025, 2025],
                "clc_class": ["I247", "K2"],
                "audience": ["general", "general"],
                "list_price": [40.0, 30.0],
            }
        ),
        "copies": pl.DataFrame(
            {
                "copy_id": ["C1", "C2", "C3", "C4", "C5"],
                "title_id": ["T1", "T1", "T1", "T2", "T1"],
                "branch_id": ["B-S1", "B-S1", "B-S1", "B-N1", "B-S1"],
                "status": ["on_shelf", "on_loan", "in_transit", "on_shelf", "withdrawn"],
                "acquired_at": [date(2025, 6, 1)] * 5,
                "source": ["regular_order"] * 5,
            }
        ),
        "bookstores": pl.DataFrame(
            {
                "bookstore_id": ["BS-N", "BS-S"],
                "name": ["North books", "South books"],
                "district": ["Chaoyang", "Nanguan"],
                "branch_id": ["B-N1", "B-S1"],
                "lat": [43.9, 43.8],
                "lon": [125.3, 125.4],
            }
        ),
        "budgets": pl.DataFrame(
            budgets
            or [
                {"budget_id": "Y2026", "period": "2026", "bookstore_id": None, "district": None, "amount": 100_000.0},
                {
                    "budget_id": "M05-N",
                    "period": "2026-05",
                    "bookstore_id": None,
                    "district": "Chaoyang",
                    "amount": 1_000.0,
                },
                {
                    "budget_id": "M05-BSN",
                    "period": "2026-05",
                    "bookstore_id": "BS-N",
                    "district": None,
                    "amount": 800.0,
                },
                {
                    "budget_id": "M05-S",
                    "period": "2026-05",
                    "bookstore_id": None,
                    "district": "Nanguan",
                    "amount": 1_000.0,
                },
            ],
            schema={
                "budget_id": pl.String,
                "period": pl.String,
                "bookstore_id": pl.String,
                "district": pl.String,
                "amount": pl.Float64,
            },
        ),
    }
    for name, frame in tables.items():
        conform(frame, name).write_parquet(table_path(out, name))
    return out


def make_service(tmp: Path, policy: Policy | None = None, *, budgets: list[dict] | None = None) -> CounterService:
    """A counter on a fresh SQLite file loaded with the tiny city."""
    data = write_city(tmp / "data", budgets=budgets)
    db: Database = init_db(f"sqlite:///{tmp / 'ledger.db'}")
    load_data_dir(db, data)
    return CounterService(db, policy or Policy(), Holdings.from_data_dir(data), clock=lambda: NOW)


def request(**overrides) -> PurchaseRequestIn:
    """A request that passes every rule in the tiny city (reader R-ok at BS-N, a fresh ISBN, 45 yuan)."""
    base = dict(
        reader_id="R-ok",
        bookstore_id="BS-N",
        isbn=FRESH,
        price=45.0,
        title="A new novel",
        pub_year=2025,
        category="general",
    )
    base.update(overrides)
    return PurchaseRequestIn(**base)


def decide_at(svc: CounterService, when: datetime, req: PurchaseRequestIn, key: str):
    """Decide ``req`` with the service clock at ``when`` (the server's time decides; a replay sets it)."""
    clock = svc.clock
    svc.clock = lambda: when
    try:
        return svc.decide(req, key)
    finally:
        svc.clock = clock
