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
