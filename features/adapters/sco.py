"""Shakespeare and Company lending library (Paris, 1919-1941) -> a yuedu data directory.

Real loans with real messiness. Each oddity has one policy, counted in the report:

* **Partial dates.** ``YYYY-MM`` and ``YYYY`` are imputed to the start of the period (the 1st of the month,
  1 January). An imputed *return* date is clamped up to the borrow date when the period contains it
  (a book borrowed on 1923-11-15 and "returned 1923-11" was returned on or after the 15th). Every loan's
  precision and imputation flags are kept in ``DIR/audit/loans.parquet`` (``date_imputed``).
* **Year unknown** (``--MM-DD``): a start date without a year cannot be placed in time, so the loan is
  rejected (``START_YEAR_UNKNOWN``); an end date without a year takes the first such day on or after the
  borrow date (``END_YEAR_INFERRED`` in the audit).
* **Empty start date**: rejected (``MISSING_START_DATE``); an empty end date means "return not recorded"
  (``returned_at`` null). Unparseable dates (``1923-02-30``) are rejected as ``BAD_DATE``.
* **Return before borrow**: ``returned_at`` is set to null and the audit says ``RETURNED_BEFORE_BORROWED``.
* **Borrowers missing from members.csv** (10 slugs in the 1.3-beta export): the reader is created from the
  loans, flagged ``in_members_file = false`` in ``DIR/audit/readers.parquet`` and counted.
* **Shared loans** (one lending-card event for two members): one loan row per member, ``loan_id`` =
  event id + reader id, flagged ``shared_loan`` in the audit. Each member really had the book.
* **Books missing from books.csv**: the loan is rejected (``DANGLING_REFERENCE``); none in the shipped data.

Member slugs are built from people's names, and yuedu never stores names, so readers get a pseudonym
(``sco-`` + 12 hex digits of BLAKE2b of the slug). Reject files show the pseudonym too.

Catalogue mapping: ``title_id`` = book slug, no ISBN, ``pub_year`` = year of first publication,
``language`` = ``en`` (an English-language library; the export has no language field), ``format`` ``print``
(``audio`` for the phonograph record), ``clc_class`` from the SCO format (Periodical -> Z general works,
Photograph/Prints -> J art, Phonograph Record -> J6 music) or else :func:`features.adapters.clc.clc_from_title`
(default ``I`` literature).
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import date
from pathlib import Path

import polars as pl

from features.adapters.clc import clc_from_title
from features.adapters.report import (
    AdapterError,
    AdapterReport,
    read_export_csv,
    reject_frame,
    write_rejects,
    write_table,
)

_log = logging.getLogger(__name__)

BRANCH_ID = "SCO"
#: The one branch: 12 rue de l'Odéon, Paris (the shop's address from 1921).
BRANCH = {
    "branch_id": BRANCH_ID,
    "name": "Shakespeare and Company lending library",
    "kind": "central",
    "district": "Paris",
    "lat": 48.8508,
    "lon": 2.3387,
    "delivers": False,
}
#: Registration date of a member with no loans and no membership year (the library opened in November 1919).
LIBRARY_OPENED = date(1919, 11, 17)

#: SCO ``format`` -> CLC class; other formats (Book, Article, missing) use the title keyword heuristic.
FORMAT_CLC: dict[str, str] = {"Periodical": "Z", "Photograph": "J", "Prints": "J", "Phonograph Record": "J6"}

LOAN_COLUMNS = ("event_id", "member_id", "book_id", "start_date", "end_date")
BOOK_COLUMNS = ("book_id", "title", "author", "year", "format")
MEMBER_COLUMNS = ("member_id", "membership_years")

_PRECISION_PATTERNS = (
    ("day", r"^\d{4}-\d{2}-\d{2}$"),
    ("month", r"^\d{4}-\d{2}$"),
    ("year", r"^\d{4}$"),
    ("month_day", r"^--\d{2}-\d{2}$"),
)


def pseudonym(slug: str) -> str:
    """The reader id for a member slug (stable across runs and machines)."""
    return "sco-" + hashlib.blake2b(slug.encode(), digest_size=6).hexdigest()


def _pseudonyms(slugs: pl.Series) -> pl.DataFrame:
    """``(member_id, reader_id)`` for the distinct slugs (hashing runs once per member, not per loan)."""
    uniq = slugs.drop_nulls().unique().sort()
    return pl.DataFrame(
        {"member_id": uniq, "reader_id": pl.Series([pseudonym(s) for s in uniq.to_list()], dtype=pl.String)}
    )


def precision(raw: pl.Expr) -> pl.Expr:
    """How precise an ISO-8601 date text is: day, month, year, month_day (year unknown), none or bad."""
    expr = pl.lit("bad")
    for name, pattern in reversed(_PRECISION_PATTERNS):
        expr = pl.when(raw.str.contains(pattern)).then(pl.lit(name)).otherwise(expr)
    return pl.when(raw.is_null()).then(pl.lit("none")).otherwise(expr)


def period_start(raw: pl.Expr, prec: pl.Expr) -> pl.Expr:
    """The first day of the period a full or partial date names (null for month_day/none/bad or invalid)."""
    text = (
        pl.when(prec == "day")
        .then(raw)
        .when(prec == "month")
        .then(raw + "-01")
        .when(prec == "year")
        .then(raw + "-01-01")
        .otherwise(None)
    )
    return text.str.to_date("%Y-%m-%d", strict=False)


#: Reject message per date reason code of a loan.
_DATE_MESSAGES = {
    "MISSING_START_DATE": "no borrow date: the loan cannot be placed in time",
    "START_YEAR_UNKNOWN": "borrow date has no year (--MM-DD): the loan cannot be placed in time",
    "BAD_DATE": "not a valid calendar date",
}
#: The raw columns a loan reject shows.
_LOAN_ORIGINAL = ["event_id", "reader_id", "book_id", "start_date", "end_date"]


def _with_reject_reasons(loans: pl.DataFrame, book_ids: pl.Series) -> pl.DataFrame:
    """Raw loans plus their dates' precision and period start, and why each would be rejected:
    ``_start_reason``, ``_end_reason`` (null when fine) and ``_dangling`` (book not in books.csv)."""
    df = loans.with_columns(
        precision(pl.col("start_date")).alias("start_precision"),
        precision(pl.col("end_date")).alias("end_precision"),
    ).with_columns(
        period_start(pl.col("start_date"), pl.col("start_precision")).alias("start"),
        period_start(pl.col("end_date"), pl.col("end_precision")).alias("end_period"),
    )
    start_reason = (
        pl.when(pl.col("start_precision") == "none")
        .then(pl.lit("MISSING_START_DATE"))
        .when(pl.col("start_precision") == "month_day")
        .then(pl.lit("START_YEAR_UNKNOWN"))
        .when(pl.col("start").is_null())
        .then(pl.lit("BAD_DATE"))
    )
    return df.with_columns(
        start_reason.alias("_start_reason"),
        pl.when(pl.col("end_precision").is_in(["day", "month", "year"]) & pl.col("end_period").is_null())
        .then(pl.lit("BAD_DATE"))
        .when(pl.col("end_precision") == "bad")
        .then(pl.lit("BAD_DATE"))
        .alias("_end_reason"),
        (~pl.col("book_id").is_in(book_ids.implode())).alias("_dangling"),
    )


def _loan_rejects(df: pl.DataFrame, source_file: str) -> list[pl.DataFrame]:
    """Reject frames of :func:`_with_reject_reasons` rows: per date field and reason, then dangling books."""
    rejects = []
    for field, col in (("start_date", "_start_reason"), ("end_date", "_end_reason")):
        bad = df.filter(pl.col(col).is_not_null())
        for reason, rows in bad.group_by(col, maintain_order=True):
            rejects.append(
                reject_frame(
                    rows,
                    source_file=source_file,
                    field=field,
                    reason_code=str(reason[0]),
                    message=pl.format("{}: {}", pl.lit(_DATE_MESSAGES[str(reason[0])]), pl.col(field).fill_null("")),
                    original=_LOAN_ORIGINAL,
                )
            )
    dangling = df.filter(pl.col("_dangling"))
    if dangling.height:
        rejects.append(
            reject_frame(
                dangling,
                source_file=source_file,
                field="book_id",
                reason_code="DANGLING_REFERENCE",
                message=pl.format("book '{}' is not in books.csv", pl.col("book_id")),
                original=_LOAN_ORIGINAL,
            )
        )
    return rejects


def _with_end_dates(ok: pl.DataFrame) -> pl.DataFrame:
    """Accepted loans plus ``end`` (the return date's policy), ``_inverted`` and ``_clamped``.

    End dates: the period start, clamped up to the borrow date; the year of ``--MM-DD`` inferred.
    """
    md_same_year = pl.format("{}{}", pl.col("start").dt.year(), pl.col("end_date").str.slice(1)).str.to_date(
        "%Y-%m-%d", strict=False
    )
    md_next_year = pl.format("{}{}", pl.col("start").dt.year() + 1, pl.col("end_date").str.slice(1)).str.to_date(
        "%Y-%m-%d", strict=False
    )
    inferred = pl.when(md_same_year >= pl.col("start")).then(md_same_year).otherwise(md_next_year)
    partial_end = pl.col("end_precision").is_in(["month", "year"])
    end = (
        pl.when(pl.col("end_precision") == "month_day")
        .then(inferred)
        .when(partial_end & (pl.col("end_period") < pl.col("start")))
        .then(pl.max_horizontal("end_period", "start"))
        .otherwise(pl.col("end_period"))
    )
    # A partial end whose whole period precedes the borrow date is a genuine inversion, not a clamp.
    period_end = (
        pl.when(pl.col("end_precision") == "month")
        .then(pl.col("end_period").dt.month_end())
        .when(pl.col("end_precision") == "year")
        .then(pl.date(pl.col("end_period").dt.year(), 12, 31))
        .otherwise(pl.col("end_period"))
    )
    inverted = pl.col("end_period").is_not_null() & (period_end < pl.col("start"))
    return ok.with_columns(
        end.alias("end"),
        inverted.alias("_inverted"),
        (partial_end & (pl.col("end_period") < pl.col("start")) & ~inverted).alias("_clamped"),
    )


def _with_loan_flags(ok: pl.DataFrame) -> pl.DataFrame:
    """Loans with end dates plus ``loan_id``, ``returned_note``, ``shared_loan`` and the imputation flags."""
    note = (
        pl.when(pl.col("_inverted"))
        .then(pl.lit("RETURNED_BEFORE_BORROWED"))
        .when(pl.col("end_precision") == "month_day")
        .then(pl.lit("END_YEAR_INFERRED"))
        .when(pl.col("_clamped"))
        .then(pl.lit("END_CLAMPED_TO_START"))
    )
    n_members = ok.group_by("event_id").agg(pl.col("reader_id").n_unique().alias("_members"))
    return ok.join(n_members, on="event_id", how="left").with_columns(
        pl.format("{}-{}", pl.col("event_id"), pl.col("reader_id")).alias("loan_id"),
        note.alias("returned_note"),
        (pl.col("_members") > 1).alias("shared_loan"),
        (pl.col("start_precision") != "day").alias("start_imputed"),
        (pl.col("end_precision").is_in(["month", "year", "month_day"])).alias("end_imputed"),
    )


def adapt_loans(loans: pl.DataFrame, book_ids: pl.Series, source_file: str = "loans.csv") -> dict:
    """Turn raw SCO loan rows (strings, with ``row_number`` and ``reader_id``) into yuedu loans.

    Returns ``{"loans": DataFrame, "audit": DataFrame, "rejects": [DataFrame, ...]}``; every input row is
    in exactly one of loans and rejects.
    """
    df = _with_reject_reasons(loans, book_ids)
    rejects = _loan_rejects(df, source_file)
    ok = df.filter(pl.col("_start_reason").is_null() & pl.col("_end_reason").is_null() & ~pl.col("_dangling"))
    ok = _with_loan_flags(_with_end_dates(ok))
    for (event_id,) in ok.filter(pl.col("_inverted")).select("event_id").head(20).iter_rows():
        _log.info("event %s: return date precedes borrow date; returned_at set to null", event_id)
    result = ok.select(
        "loan_id",
        "reader_id",
        pl.col("book_id").alias("title_id"),
        pl.lit(BRANCH_ID).alias("branch_id"),
        pl.lit("counter").alias("channel"),
        pl.col("start").cast(pl.Datetime("us")).alias("borrowed_at"),
        pl.when(pl.col("_inverted")).then(None).otherwise(pl.col("end")).cast(pl.Datetime("us")).alias("returned_at"),
        pl.lit(0, dtype=pl.Int8).alias("renewals"),
    )
    audit = ok.select(
        "loan_id",
        "event_id",
        "row_number",
        "start_date",
        "end_date",
        "start_precision",
        "end_precision",
        (pl.col("start_imputed") | pl.col("end_imputed")).alias("date_imputed"),
        "start_imputed",
        "end_imputed",
        "shared_loan",
        "returned_note",
    )
    return {"loans": result, "audit": audit, "rejects": rejects}


def _source_file(src: Path, stem: str) -> Path:
    """``src/<stem>.csv.gz``, else ``src/<stem>.csv``."""
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (src / name).exists():
            return src / name
    raise AdapterError(src / f"{stem}.csv.gz", "file not found")


def _titles(books: pl.DataFrame) -> pl.DataFrame:
    """The ``titles`` table of books.csv (see the module docstring for the mapping)."""
    return books.select(
        pl.col("book_id").alias("title_id"),
        pl.lit(None, dtype=pl.String).alias("isbn13"),
        pl.coalesce("title", "book_id").alias("title"),
        "author",
        pl.col("year").cast(pl.Int16, strict=False).alias("pub_year"),
        pl.col("format")
        .replace_strict(FORMAT_CLC, default=None)
        .fill_null(clc_from_title(pl.col("title")))
        .alias("clc_class"),
        pl.lit("general").alias("audience"),
        pl.lit("en").alias("language"),
        pl.lit(None, dtype=pl.Float64).alias("list_price"),
        pl.when(pl.col("format") == "Phonograph Record")
        .then(pl.lit("audio"))
        .otherwise(pl.lit("print"))
        .alias("format"),
        pl.lit(False).alias("local_literature"),
        pl.col("format").str.to_lowercase().alias("subjects"),
    )


def _readers(
    members: pl.DataFrame, ids: pl.DataFrame, loans_raw: pl.DataFrame, loans: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(readers, created)``: every member of members.csv plus borrowers missing from it (``created``),
    registered at their first loan or first membership year, whichever is earlier."""
    first_loan = loans.group_by("reader_id").agg(pl.col("borrowed_at").min().dt.date().alias("_first_loan"))
    member_ids = members.join(ids, on="member_id", how="left").select(
        "reader_id",
        pl.col("membership_years").str.slice(0, 4).str.to_date("%Y", strict=False).alias("_first_year"),
        pl.lit(True).alias("in_members_file"),
    )
    borrowers = loans_raw.select("reader_id").unique()
    created = borrowers.join(member_ids, on="reader_id", how="anti").with_columns(
        pl.lit(None, dtype=pl.Date).alias("_first_year"), pl.lit(False).alias("in_members_file")
    )
    readers = (
        pl.concat([member_ids.unique("reader_id", keep="first", maintain_order=True), created])
        .join(first_loan, on="reader_id", how="left")
        .with_columns(
            pl.min_horizontal("_first_loan", "_first_year").fill_null(LIBRARY_OPENED).alias("registered_at"),
            pl.lit(BRANCH_ID).alias("home_branch_id"),
            pl.lit("adult").alias("age_band"),
            pl.lit("standard").alias("card_type"),
            pl.lit(False).alias("blocked"),
        )
        .sort("reader_id")
    )
    return readers, created


def _report_counts(
    loans_raw: pl.DataFrame, loans: pl.DataFrame, audit: pl.DataFrame, created: pl.DataFrame
) -> dict[str, int]:
    """What the adapter read, wrote, created and imputed (``adapter_report.json`` counts)."""
    created_ids = created["reader_id"]
    return {
        "loan_rows_read": loans_raw.height,
        "loan_events_read": loans_raw["event_id"].n_unique(),
        "borrowers": loans_raw["reader_id"].n_unique(),
        "borrowers_with_loans_written": loans["reader_id"].n_unique(),
        "titles_borrowed": loans["title_id"].n_unique(),
        "readers_created_missing_from_members": created.height,
        "loan_rows_of_created_readers": loans_raw.filter(pl.col("reader_id").is_in(created_ids.implode())).height,
        "shared_loan_events": audit.filter("shared_loan")["event_id"].n_unique(),
        "shared_loan_rows": int(audit["shared_loan"].sum()),
        "start_imputed_month": audit.filter(pl.col("start_precision") == "month").height,
        "start_imputed_year": audit.filter(pl.col("start_precision") == "year").height,
        "end_imputed_month": audit.filter(pl.col("end_precision") == "month").height,
        "end_imputed_year": audit.filter(pl.col("end_precision") == "year").height,
        "end_year_inferred": audit.filter(pl.col("returned_note") == "END_YEAR_INFERRED").height,
        "end_clamped_to_start": audit.filter(pl.col("returned_note") == "END_CLAMPED_TO_START").height,
        "returned_before_borrowed": audit.filter(pl.col("returned_note") == "RETURNED_BEFORE_BORROWED").height,
        "returned_unknown": loans.filter(pl.col("returned_at").is_null()).height,
    }


def adapt_sco(src: str | Path, out: str | Path) -> AdapterReport:
    """Write branches, readers, titles and loans (+ rejects/, audit/, adapter_report.json) under ``out``.

    ``src`` is the ``sco-lending-library`` folder with ``loans.csv(.gz)``, ``books.csv(.gz)`` and
    ``members.csv(.gz)``.
    """
    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = AdapterReport(adapter="sco", out=str(out))

    loans_path, books_path, members_path = (_source_file(src, stem) for stem in ("loans", "books", "members"))
    loans_raw = read_export_csv(loans_path, LOAN_COLUMNS)
    books = read_export_csv(books_path, BOOK_COLUMNS)
    members = read_export_csv(members_path, MEMBER_COLUMNS)

    ids = _pseudonyms(pl.concat([members["member_id"], loans_raw["member_id"]]))
    loans_raw = loans_raw.join(ids, on="member_id", how="left", maintain_order="left")
    write_table(out, "titles", _titles(books), report)

    adapted = adapt_loans(loans_raw, books["book_id"], source_file=loans_path.name)
    loans = adapted["loans"]
    write_rejects(out, "loans", adapted["rejects"], report)
    write_table(out, "loans", loans, report)
    (out / "audit").mkdir(exist_ok=True)
    adapted["audit"].write_parquet(out / "audit" / "loans.parquet")

    readers, created = _readers(members, ids, loans_raw, loans)
    write_table(out, "readers", readers, report)
    readers.select("reader_id", "in_members_file").write_parquet(out / "audit" / "readers.parquet")
    write_table(out, "branches", pl.DataFrame([BRANCH]), report)

    report.counts = _report_counts(loans_raw, loans, adapted["audit"], created)
    report.seconds = round(time.perf_counter() - t0, 3)
    report.save(out / "adapter_report.json")
    _log.info("sco: %d loans, %d rejected, %.2fs", loans.height, sum(report.rejects["loans"].values()), report.seconds)
    return report
