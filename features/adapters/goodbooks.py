"""goodbooks-10k catalogue (10,000 popular books from Goodreads) -> ``titles`` and ``tags`` tables.

ISBN recovery. Upstream wrote ``isbn13`` through a float, printed with 12 significant digits
(``9.78043902348e+12``), so the 13th digit (the check digit) is lost and the 12th may have been rounded up.
The policy, applied once per distinct value and joined back:

1. A valid ``isbn`` (ISBN-10, leading zeros restored: upstream also stored it as a number) is converted
   with :func:`stdnum.isbn.to_isbn13` - exact (``isbn_source = 'isbn10'``).
2. Otherwise the float is inverted: the ISBN-13s that print as that float are the two 12-digit prefixes
   ``round(x / 10)`` and ``round(x / 10) - 1`` completed with their check digit
   (:func:`stdnum.ean.calc_check_digit`), validated by :func:`stdnum.isbn.validate` and kept only if they
   print back as the same float. Exactly one survivor -> recovered (``isbn_source = 'isbn13_float'``);
   integers stored without an exponent (``76783609419.0``) are validated as they are.
3. Otherwise ``isbn13`` is null and the row is listed in ``DIR/rejects/titles.parquet`` with
   ``INVALID_ISBN`` (something was there but nothing valid or unambiguous) or ``MISSING_ISBN``
   (both columns empty). The title itself is kept: the reject file lists field-level losses.

Other columns: ``title_id`` = goodbooks ``book_id`` (the id the goodbooks ratings use), ``author`` = first
of the comma-separated authors, ``pub_year`` = ``original_publication_year`` (years before 1400, such as the
Odyssey's -720, do not fit the schema: null + ``OUT_OF_RANGE`` in the reject file), ``language`` = ISO 639-1
where known (``eng``/``en-US`` -> ``en``; missing -> ``und``), ``clc_class`` from
:func:`features.adapters.clc.clc_from_title` (default ``I``), audience ``general``, format ``print``,
``list_price`` null. No subjects: ``book_tags.csv`` is absent, ``tags.csv`` is only a vocabulary, written
as ``DIR/tags.parquet`` (tag_id, tag_name).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import polars as pl
from stdnum import ean, isbn

from features.adapters.clc import clc_from_title
from features.adapters.report import (
    AdapterReport,
    read_export_csv,
    reject_frame,
    write_rejects,
    write_table,
)

_log = logging.getLogger(__name__)

BOOK_COLUMNS = ("book_id", "isbn", "isbn13", "authors", "original_publication_year", "title", "language_code")

#: Goodreads language codes (ISO 639-2 and locale tags) -> ISO 639-1.
LANGUAGE_CODES: dict[str, str] = {
    "eng": "en",
    "en-US": "en",
    "en-GB": "en",
    "en-CA": "en",
    "en": "en",
    "spa": "es",
    "fre": "fr",
    "ger": "de",
    "ara": "ar",
    "ind": "id",
    "por": "pt",
    "jpn": "ja",
    "ita": "it",
    "pol": "pl",
    "nl": "nl",
    "rum": "ro",
    "vie": "vi",
    "tur": "tr",
    "swe": "sv",
    "dan": "da",
    "per": "fa",
    "rus": "ru",
    "nor": "no",
    "fil": "fil",
    "mul": "mul",
}
#: Smallest publication year the ``titles`` schema accepts.
MIN_PUB_YEAR = 1400


def isbn13_from_isbn10(value: str | None) -> str | None:
    """The ISBN-13 of a valid ISBN-10 (digits, possibly missing leading zeros), else None."""
    if not value:
        return None
    candidate = value.strip().upper().zfill(10)
    if isbn.is_valid(candidate) and isbn.isbn_type(candidate) == "ISBN10":
        return isbn.to_isbn13(isbn.compact(candidate))
    return None


def isbn13_candidates_from_float(text: str | None) -> list[str]:
    """The valid ISBN-13s that a float-notation value (``9.78043902348e+12``) could have come from."""
    if not text:
        return []
    try:
        value = float(text)
    except ValueError:
        return []
    if value != value or value < 0 or value >= 1e13:  # NaN, negative, or too many digits
        return []
    if "e" not in text.lower():  # printed in full: the digits are all there
        digits = str(int(value))
        return [digits] if isbn.is_valid(digits) and isbn.isbn_type(digits) == "ISBN13" else []
    prefix = round(value / 10)
    found = []
    for first12 in (prefix, prefix - 1):
        if not 10**11 <= first12 < 10**12:
            continue
        full = f"{first12}{ean.calc_check_digit(str(first12))}"
        # Keep only the numbers that print as the same float: that is what upstream wrote.
        if isbn.is_valid(full) and isbn.isbn_type(full) == "ISBN13" and float(f"{int(full):.12g}") == value:
            found.append(full)
    return found


def _recover(raw: pl.DataFrame) -> pl.DataFrame:
    """Per row: ``isbn13``, ``isbn_source``, ``isbn_problem`` (reason for the reject file) and candidates."""
    from10 = (
        raw.select("isbn")
        .unique()
        .with_columns(pl.col("isbn").map_elements(isbn13_from_isbn10, return_dtype=pl.String).alias("_from10"))
    )
    from_float = (
        raw.select("isbn13")
        .unique()
        .with_columns(
            pl.col("isbn13")
            .map_elements(isbn13_candidates_from_float, return_dtype=pl.List(pl.String))
            .fill_null([])
            .alias("_candidates")
        )
    )
    df = raw.join(from10, on="isbn", how="left", nulls_equal=True).join(
        from_float, on="isbn13", how="left", nulls_equal=True
    )
    n_cand = pl.col("_candidates").list.len()
    unique_float = pl.when(n_cand == 1).then(pl.col("_candidates").list.first())
    return df.with_columns(
        pl.coalesce("_from10", unique_float).alias("isbn13_recovered"),
        pl.when(pl.col("_from10").is_not_null())
        .then(pl.lit("isbn10"))
        .when(n_cand == 1)
        .then(pl.lit("isbn13_float"))
        .alias("isbn_source"),
        (pl.col("_from10").is_not_null() & (n_cand == 1) & (pl.col("_from10") != unique_float)).alias("_mismatch"),
        pl.when(pl.col("_from10").is_not_null() | (n_cand == 1))
        .then(None)
        .when(pl.col("isbn").is_null() & pl.col("isbn13").is_null())
        .then(pl.lit("MISSING_ISBN"))
        .otherwise(pl.lit("INVALID_ISBN"))
        .alias("isbn_problem"),
        pl.when(n_cand > 1)
        .then(pl.format("isbn13 lost digits in float notation; {} valid candidates", n_cand))
        .when(pl.col("isbn").is_not_null())
        .then(pl.lit("isbn is not a valid ISBN-10 and isbn13 cannot be recovered from float notation"))
        .otherwise(pl.lit("isbn13 cannot be recovered from float notation"))
        .alias("_isbn_message"),
    )


def adapt_goodbooks(src: str | Path, out: str | Path) -> AdapterReport:
    """Write ``titles.parquet``, ``tags.parquet``, ``rejects/titles.parquet`` and ``adapter_report.json``.

    ``src`` is the ``goodbooks-10k`` folder with ``books.csv`` (and optionally ``tags.csv``).
    """
    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = AdapterReport(adapter="goodbooks", out=str(out))
    books_path = src / "books.csv"
    raw = read_export_csv(books_path, BOOK_COLUMNS)

    df = _recover(raw).with_columns(
        pl.col("original_publication_year").cast(pl.Float64, strict=False).round(0).cast(pl.Int32).alias("_year"),
    )
    original = list(BOOK_COLUMNS)
    rejects = [
        reject_frame(
            df.filter(pl.col("isbn_problem") == reason),
            source_file=books_path.name,
            field="isbn13",
            reason_code=reason,
            message=pl.col("_isbn_message") if reason == "INVALID_ISBN" else pl.lit("no isbn and no isbn13"),
            original=original,
        )
        for reason in ("INVALID_ISBN", "MISSING_ISBN")
    ]
    rejects.append(
        reject_frame(
            df.filter(pl.col("_year") < MIN_PUB_YEAR),
            source_file=books_path.name,
            field="original_publication_year",
            reason_code="OUT_OF_RANGE",
            message=pl.format("publication year {} is before {}; pub_year set to null", "_year", MIN_PUB_YEAR),
            original=original,
        )
    )
    write_rejects(out, "titles", rejects, report)

    titles = df.select(
        pl.col("book_id").alias("title_id"),
        pl.col("isbn13_recovered").alias("isbn13"),
        "title",
        pl.col("authors").str.split(",").list.first().str.strip_chars().alias("author"),
        pl.when(pl.col("_year") >= MIN_PUB_YEAR).then(pl.col("_year")).cast(pl.Int16).alias("pub_year"),
        clc_from_title(pl.col("title")),
        pl.lit("general").alias("audience"),
        pl.col("language_code").replace(LANGUAGE_CODES).fill_null("und").alias("language"),
        pl.lit(None, dtype=pl.Float64).alias("list_price"),
        pl.lit("print").alias("format"),
        pl.lit(False).alias("local_literature"),
    )
    write_table(out, "titles", titles, report)

    tags_path = src / "tags.csv"
    if tags_path.exists():
        tags = pl.read_csv(tags_path, schema_overrides={"tag_id": pl.Int32, "tag_name": pl.String})
        tags.write_parquet(out / "tags.parquet")
        report.rows["tags"] = tags.height

    isbns = titles["isbn13"].drop_nulls()
    report.counts = {
        "books_read": raw.height,
        "isbn13_from_isbn10": df.filter(pl.col("isbn_source") == "isbn10").height,
        "isbn13_from_float": df.filter(pl.col("isbn_source") == "isbn13_float").height,
        "isbn13_valid": isbns.len(),
        "isbn13_null": titles["isbn13"].null_count(),
        "isbn10_float_mismatch": int(df["_mismatch"].sum()),
        "isbn13_ambiguous_float": df.filter(
            pl.col("_candidates").list.len() > 1, pl.col("isbn_source").is_null()
        ).height,
        "isbn13_duplicated": isbns.len() - isbns.n_unique(),
        "pub_year_out_of_range": df.filter(pl.col("_year") < MIN_PUB_YEAR).height,
        "language_unknown": df["language_code"].null_count(),
    }
    report.seconds = round(time.perf_counter() - t0, 3)
    report.save(out / "adapter_report.json")
    _log.info("goodbooks: %d titles, %d with isbn13, %.2fs", titles.height, isbns.len(), report.seconds)
    return report
