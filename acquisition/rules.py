"""Eligibility rules of "you choose, I buy", pure (no database): facts in, reason codes out.

The counter (:mod:`acquisition.counter`) gathers the facts for one request and calls
:func:`check_request`; batch ranking calls :func:`book_violations` on a whole frame of requests,
written as polars expressions. Both use the same :class:`DeclineCode` codes, which are stable: the
counter stores them, the API returns them, and clerks and readers are told their messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import polars as pl
from stdnum import isbn as stdnum_isbn

from acquisition.policy import Policy


class DeclineCode(StrEnum):
    """Stable decline reason codes (documented in docs/acquisition-counter.md)."""

    INVALID_ISBN = "INVALID_ISBN"
    PRICE_OVER_CAP = "PRICE_OVER_CAP"
    PUB_YEAR_TOO_OLD = "PUB_YEAR_TOO_OLD"
    PUB_YEAR_UNKNOWN = "PUB_YEAR_UNKNOWN"
    CATEGORY_EXCLUDED = "CATEGORY_EXCLUDED"
    COMIC_CAP = "COMIC_CAP"
    BLOCKLISTED = "BLOCKLISTED"
    BOOKSTORE_UNKNOWN = "BOOKSTORE_UNKNOWN"
    READER_UNKNOWN = "READER_UNKNOWN"
    READER_BLOCKED = "READER_BLOCKED"
    READER_CREDIT_LOW = "READER_CREDIT_LOW"
    READER_VISIT_LIMIT = "READER_VISIT_LIMIT"
    READER_MONTHLY_LIMIT = "READER_MONTHLY_LIMIT"
    READER_YEARLY_LIMIT = "READER_YEARLY_LIMIT"
    READER_OPEN_LIMIT = "READER_OPEN_LIMIT"
    ALREADY_HELD = "ALREADY_HELD"
    ON_SHELF_AT_HOME_BRANCH = "ON_SHELF_AT_HOME_BRANCH"
    DUPLICATE_PENDING = "DUPLICATE_PENDING"
    NO_BUDGET_LINE = "NO_BUDGET_LINE"
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    PACED_LOW_VALUE = "PACED_LOW_VALUE"


@dataclass(frozen=True, slots=True)
class Violation:
    """One failing rule: its code and a sentence a clerk can read to the reader."""

    code: DeclineCode
    message: str


@dataclass(frozen=True, slots=True)
class BookFacts:
    """What the bookstore reports about the book. ``isbn13`` is None when the ISBN is invalid."""

    isbn13: str | None
    price_fen: int
    pub_year: int | None
    category: str
    title: str | None = None


@dataclass(frozen=True, slots=True)
class ReaderFacts:
    """The reader's state and their programme activity (requests counted are the active ones:
    reserved, checked out, approved, ordered, received, fulfilled — not declined or cancelled)."""

    blocked: bool
    credit_level: int
    visit_count: int = 0
    month_count: int = 0
    year_count: int = 0
    open_count: int = 0
    comic_month_count: int = 0


@dataclass(frozen=True, slots=True)
class CollectionFacts:
    """What the network already has of the ISBN."""

    network_copies: int = 0
    home_branch_on_shelf: int = 0
    pending_requests: int = 0


def normalise_isbn(raw: str | None) -> str | None:
    """ISBN-13 (13 digits) of a scanned ISBN-10/13, or None when missing or the check digit fails."""
    if not raw or not stdnum_isbn.is_valid(raw):
        return None
    return stdnum_isbn.to_isbn13(stdnum_isbn.compact(raw))


def _yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


def check_book(policy: Policy, book: BookFacts, year: int) -> list[Violation]:
    """Rules on the book alone (DOMAIN.md §3 "Book"); ``year`` is the request's calendar year."""
    out: list[Violation] = []
    if book.isbn13 is None:
        out.append(Violation(DeclineCode.INVALID_ISBN, "The ISBN is missing or its check digit is wrong."))
    if book.price_fen > policy.price_cap_fen:
        out.append(
            Violation(
                DeclineCode.PRICE_OVER_CAP,
                f"The price {_yuan(book.price_fen)} yuan is above the cap of {_yuan(policy.price_cap_fen)} yuan.",
            )
        )
    oldest = year - policy.pub_year_window_years
    if book.pub_year is None:
        if policy.require_pub_year:
            out.append(Violation(DeclineCode.PUB_YEAR_UNKNOWN, "The publication year is unknown."))
    elif book.pub_year < oldest:
        out.append(
            Violation(
                DeclineCode.PUB_YEAR_TOO_OLD,
                f"Published in {book.pub_year}; the programme buys books published in {oldest} or later.",
            )
        )
    if book.category in policy.excluded_categories:
        out.append(Violation(DeclineCode.CATEGORY_EXCLUDED, f"Books of category '{book.category}' are not bought."))
    title = (book.title or "").casefold()
    if (book.isbn13 is not None and book.isbn13 in policy.blocklist.isbns) or any(
        k in title for k in policy.blocklist.title_keywords
    ):
        out.append(
            Violation(DeclineCode.BLOCKLISTED, "This book cannot be bought under the programme's content rules.")
        )
    return out


def check_reader(policy: Policy, reader: ReaderFacts | None, category: str) -> list[Violation]:
    """Rules on the reader (DOMAIN.md §3 "Reader"); ``None`` = card not registered."""
    if reader is None:
        return [Violation(DeclineCode.READER_UNKNOWN, "The reader card is not registered.")]
    out: list[Violation] = []
    if reader.blocked:
        out.append(Violation(DeclineCode.READER_BLOCKED, "The card is blocked (overdue items or unpaid fines)."))
    if reader.credit_level < policy.min_credit_level:
        out.append(
            Violation(
                DeclineCode.READER_CREDIT_LOW,
                f"Credit level {reader.credit_level} is below the required {policy.min_credit_level}.",
            )
        )
    if reader.visit_count >= policy.books_per_visit:
        out.append(Violation(DeclineCode.READER_VISIT_LIMIT, f"At most {policy.books_per_visit} books per visit."))
    if reader.month_count >= policy.books_per_month:
        out.append(Violation(DeclineCode.READER_MONTHLY_LIMIT, f"At most {policy.books_per_month} books per month."))
    if policy.books_per_year is not None and reader.year_count >= policy.books_per_year:
        out.append(Violation(DeclineCode.READER_YEARLY_LIMIT, f"At most {policy.books_per_year} books per year."))
    if reader.open_count >= policy.open_books_max:
        out.append(
            Violation(
                DeclineCode.READER_OPEN_LIMIT,
                f"{reader.open_count} programme books are still unreturned (limit {policy.open_books_max}).",
            )
        )
    if category == "comic" and reader.comic_month_count >= policy.comic_cap_per_month:
        out.append(Violation(DeclineCode.COMIC_CAP, f"At most {policy.comic_cap_per_month} comics per month."))
    return out


def check_collection(policy: Policy, collection: CollectionFacts) -> list[Violation]:
    """Rules on what the network already holds or is about to buy (DOMAIN.md §3 "Collection")."""
    out: list[Violation] = []
    if collection.network_copies >= policy.network_copy_threshold:
        out.append(
            Violation(
                DeclineCode.ALREADY_HELD,
                f"The library network already holds {collection.network_copies} copies; please reserve one.",
            )
        )
    if collection.home_branch_on_shelf >= policy.home_branch_on_shelf_threshold:
        out.append(
            Violation(
                DeclineCode.ON_SHELF_AT_HOME_BRANCH,
                f"{collection.home_branch_on_shelf} copies are on the shelf at your home branch.",
            )
        )
    if collection.pending_requests > 0:
        out.append(Violation(DeclineCode.DUPLICATE_PENDING, "This ISBN has already been requested and is pending."))
    return out


def check_request(
    policy: Policy,
    book: BookFacts,
    reader: ReaderFacts | None,
    collection: CollectionFacts,
    *,
    year: int,
    bookstore_known: bool = True,
) -> list[Violation]:
    """Every failing rule for one request, in a stable order (book, bookstore, reader, collection).

    Budget rules are not here: they need the ledger and are applied atomically by the counter.
    """
    out = check_book(policy, book, year)
    if not bookstore_known:
        out.append(Violation(DeclineCode.BOOKSTORE_UNKNOWN, "This bookstore is not a programme partner."))
    out += check_reader(policy, reader, book.category)
    out += check_collection(policy, collection)
    return out


# --- vectorised rules for batches -----------------------------------------------------------------


def isbn13_expr(raw: pl.Expr) -> pl.Expr:
    """Vectorised ISBN normalisation: ISBN-13 digits of a scanned ISBN-10/13 column, null if invalid.

    Same result as :func:`normalise_isbn` (property-tested against python-stdnum), but as one polars
    expression so a batch of requests is checked without a Python loop.
    """
    s = raw.str.replace_all(r"[ -]", "").str.strip_chars().str.to_uppercase()
    # a 9-digit SBN is an ISBN-10 with a leading 0 (as python-stdnum reads it)
    s = pl.when(s.str.contains(r"^[0-9]{9}$")).then(pl.lit("0") + s).otherwise(s)
    n = s.str.len_chars()
    digits13 = [s.str.slice(i, 1).cast(pl.Int32, strict=False) for i in range(13)]
    sum13 = pl.sum_horizontal([d * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits13)])
    ok13 = (n == 13) & s.str.contains(r"^97[89][0-9]{10}$") & (sum13 % 10 == 0)
    d10 = [s.str.slice(i, 1).cast(pl.Int32, strict=False) for i in range(9)]
    last10 = s.str.slice(9, 1)
    check10 = pl.when(last10 == "X").then(10).otherwise(last10.cast(pl.Int32, strict=False))
    sum10 = pl.sum_horizontal([d * (10 - i) for i, d in enumerate(d10)]) + check10
    ok10 = (n == 10) & s.str.contains(r"^[0-9]{9}[0-9X]$") & (sum10 % 11 == 0)
    body = pl.lit("978") + s.str.slice(0, 9)
    body_digits = [body.str.slice(i, 1).cast(pl.Int32) for i in range(12)]
    check13 = (10 - pl.sum_horizontal([d * (1 if i % 2 == 0 else 3) for i, d in enumerate(body_digits)]) % 10) % 10
    from10 = body + check13.cast(pl.String)
    return pl.when(ok13).then(s).when(ok10).then(from10).otherwise(None)


def book_violations(frame: pl.DataFrame | pl.LazyFrame, policy: Policy, *, year: int) -> pl.DataFrame:
    """Book-level rules over a whole frame of requests, vectorised.

    ``frame`` needs ``isbn`` (as scanned), ``price`` (yuan), ``category`` and optionally ``pub_year``
    and ``title`` (the ``purchase_requests`` schema). Returns it with ``isbn13`` (null if invalid) and
    ``reason_codes`` (list of :class:`DeclineCode` values, empty when the book itself is eligible).
    """
    lf = frame.lazy()
    names = lf.collect_schema().names()
    pub_year = pl.col("pub_year") if "pub_year" in names else pl.lit(None, dtype=pl.Int16)
    title = (pl.col("title") if "title" in names else pl.lit(None, dtype=pl.String)).fill_null("")
    price_fen = (pl.col("price") * 100).round(0).cast(pl.Int64)
    oldest = year - policy.pub_year_window_years
    keywords = list(policy.blocklist.title_keywords)
    blocked_title = (
        title.str.to_lowercase().str.contains_any(keywords, ascii_case_insensitive=True) if keywords else pl.lit(False)
    )
    checks = [
        (pl.col("isbn13").is_null(), DeclineCode.INVALID_ISBN),
        (price_fen > policy.price_cap_fen, DeclineCode.PRICE_OVER_CAP),
        (pub_year.is_not_null() & (pub_year < oldest), DeclineCode.PUB_YEAR_TOO_OLD),
        (pl.lit(policy.require_pub_year) & pub_year.is_null(), DeclineCode.PUB_YEAR_UNKNOWN),
        (pl.col("category").is_in(list(policy.excluded_categories)), DeclineCode.CATEGORY_EXCLUDED),
        (
            pl.col("isbn13").is_in(list(policy.blocklist.isbns)).fill_null(False) | blocked_title,
            DeclineCode.BLOCKLISTED,
        ),
    ]
    codes = pl.concat_list(
        [
            pl.when(cond).then(pl.lit([code.value])).otherwise(pl.lit([], dtype=pl.List(pl.String)))
            for cond, code in checks
        ]
    )
    return (
        lf.with_columns(isbn13_expr(pl.col("isbn")).alias("isbn13")).with_columns(codes.alias("reason_codes")).collect()
    )
