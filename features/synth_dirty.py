"""Malformed rows injected into a synthetic city so that ingestion has something to reject.

``dirty_rate`` is the fraction of a table's rows that are made malformed, split evenly between
that table's defect kinds (at least one row per kind when the rate is positive). Every injected
row is listed in ``truth/defects.parquet`` (table, key, defect) and counted in the manifest.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from features.synth_sampling import pseudonyms

#: Defect kinds: name -> (table, what is wrong).
DEFECTS: dict[str, tuple[str, str]] = {
    "loan_returned_before_borrowed": ("loans", "returned_at is 1-10 days before borrowed_at"),
    "loan_unknown_reader": ("loans", "reader_id is well-formed but not in readers"),
    "loan_borrowed_in_future": ("loans", "borrowed_at (and due_at) moved to the year 2099; returned_at null"),
    "title_bad_isbn_check_digit": ("titles", "isbn13 has 13 digits but a wrong check digit"),
    "title_negative_price": ("titles", "list_price is negative"),
    "copy_duplicate_id": ("copies", "an extra row repeats an existing copy_id at another branch"),
}


def _pick(rng: np.random.Generator, n_rows: int, rate: float, kinds: int) -> list[np.ndarray]:
    """Disjoint random row sets, one per defect kind, each ~rate/kinds of the rows."""
    per = max(1, round(n_rows * rate / kinds))
    per = min(per, n_rows // kinds)
    perm = rng.permutation(n_rows)
    return [np.sort(perm[i * per : (i + 1) * per]) for i in range(kinds)]


def inject_defects(
    rng: np.random.Generator, seed: int, tables: dict[str, pl.DataFrame], n_readers: int, rate: float
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Return the tables with defects injected and the defect list ``(table, key, defect)``."""
    out = dict(tables)
    log: list[pl.DataFrame] = []

    def note(table: str, keys: pl.Series, defect: str) -> None:
        log.append(pl.DataFrame({"table": table, "key": keys.cast(pl.String), "defect": defect}))

    loans = tables["loans"]
    back, unknown, future = _pick(rng, len(loans), rate, 3)
    idx = pl.Series(np.arange(len(loans)))
    shift = pl.Series(rng.integers(1, 11, len(loans))).cast(pl.Int64) * 86_400_000_000
    fake = pl.Series(pseudonyms(seed, n_readers + 1_000_000, len(loans)))
    loans = loans.with_columns(
        returned_at=pl.when(idx.is_in(back))
        .then(pl.col("borrowed_at") - pl.duration(microseconds=shift))
        .when(idx.is_in(future))
        .then(None)
        .otherwise("returned_at"),
        reader_id=pl.when(idx.is_in(unknown)).then(fake).otherwise("reader_id"),
        borrowed_at=pl.when(idx.is_in(future))
        .then(pl.col("borrowed_at").dt.offset_by(pl.format("{}y", 2099 - pl.col("borrowed_at").dt.year())))
        .otherwise("borrowed_at"),
    ).with_columns(
        due_at=pl.when(idx.is_in(future)).then(pl.col("borrowed_at") + pl.duration(days=30)).otherwise("due_at")
    )
    for rows, name in (
        (back, "loan_returned_before_borrowed"),
        (unknown, "loan_unknown_reader"),
        (future, "loan_borrowed_in_future"),
    ):
        note("loans", loans["loan_id"].gather(rows), name)
    out["loans"] = loans

    titles = tables["titles"]
    has_isbn = np.flatnonzero(titles["isbn13"].is_not_null().to_numpy())
    bad, negative = _pick(rng, len(has_isbn), rate, 2)
    bad, negative = has_isbn[bad], has_isbn[negative]
    idx = pl.Series(np.arange(len(titles)))
    bump = pl.Series(rng.integers(1, 10, len(titles)))
    last = pl.col("isbn13").str.slice(12, 1).cast(pl.Int64)
    titles = titles.with_columns(
        isbn13=pl.when(idx.is_in(bad))
        .then(pl.col("isbn13").str.slice(0, 12) + ((last + bump) % 10).cast(pl.String))
        .otherwise("isbn13"),
        list_price=pl.when(idx.is_in(negative)).then(-pl.col("list_price").fill_null(30.0)).otherwise("list_price"),
    )
    note("titles", titles["title_id"].gather(bad), "title_bad_isbn_check_digit")
    note("titles", titles["title_id"].gather(negative), "title_negative_price")
    out["titles"] = titles

    copies = tables["copies"]
    (dup,) = _pick(rng, len(copies), rate, 1)
    extra = copies[dup].with_columns(branch_id=pl.col("branch_id").shift(1, fill_value="CEN"))
    out["copies"] = pl.concat([copies, extra])
    note("copies", extra["copy_id"], "copy_duplicate_id")
    return out, pl.concat(log)
