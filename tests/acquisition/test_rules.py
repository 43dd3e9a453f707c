"""Pure eligibility rules: scalar checks, and the vectorised batch versions agreeing with them."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import ean
from stdnum import isbn as stdnum_isbn

from acquisition.policy import Blocklist, Policy
from acquisition.rules import (
    BookFacts,
    CollectionFacts,
    DeclineCode,
    ReaderFacts,
    book_violations,
    check_book,
    check_collection,
    check_reader,
    check_request,
    isbn13_expr,
    normalise_isbn,
)
from features.schema import BOOK_CATEGORIES

POLICY = Policy()
GOOD = BookFacts(isbn13="9787111111115", price_fen=4500, pub_year=2025, category="general", title="A novel")
READER = ReaderFacts(blocked=False, credit_level=3)


def codes(violations) -> list[str]:
    return [v.code.value for v in violations]


def test_a_good_request_has_no_violation():
    assert check_request(POLICY, GOOD, READER, CollectionFacts(), year=2026) == []


@pytest.mark.parametrize(("price_fen", "failing"), [(10_000, False), (10_001, True), (1, False), (250_00, True)])
def test_price_cap_is_inclusive(price_fen, failing):
    book = BookFacts(GOOD.isbn13, price_fen, 2025, "general")
    assert (DeclineCode.PRICE_OVER_CAP in codes(check_book(POLICY, book, 2026))) is failing


@pytest.mark.parametrize(("pub_year", "failing"), [(2023, False), (2022, True), (2026, False), (None, False)])
def test_publication_window(pub_year, failing):
    book = BookFacts(GOOD.isbn13, 100, pub_year, "general")
    assert (DeclineCode.PUB_YEAR_TOO_OLD in codes(check_book(POLICY, book, 2026))) is failing


def test_unknown_year_declined_only_when_required():
    book = BookFacts(GOOD.isbn13, 100, None, "general")
    assert codes(check_book(Policy(require_pub_year=True), book, 2026)) == ["PUB_YEAR_UNKNOWN"]


def test_every_failing_rule_is_listed_in_a_stable_order():
    book = BookFacts(None, 20_000, 1999, "textbook", "Fortune telling made easy")
    policy = Policy(blocklist=Blocklist(title_keywords=("fortune",)))
    reader = ReaderFacts(blocked=True, credit_level=0, visit_count=2, month_count=5, open_count=3)
    got = codes(
        check_request(
            policy,
            book,
            reader,
            CollectionFacts(network_copies=3, home_branch_on_shelf=1, pending_requests=1),
            year=2026,
            bookstore_known=False,
        )
    )
    assert got == [
        "INVALID_ISBN",
        "PRICE_OVER_CAP",
        "PUB_YEAR_TOO_OLD",
        "CATEGORY_EXCLUDED",
        "BLOCKLISTED",
        "BOOKSTORE_UNKNOWN",
        "READER_BLOCKED",
        "READER_CREDIT_LOW",
        "READER_VISIT_LIMIT",
        "READER_MONTHLY_LIMIT",
        "READER_OPEN_LIMIT",
        "ALREADY_HELD",
        "ON_SHELF_AT_HOME_BRANCH",
        "DUPLICATE_PENDING",
    ]


def test_reader_limits_and_comic_cap():
    assert codes(check_reader(POLICY, None, "general")) == ["READER_UNKNOWN"]
    assert codes(check_reader(POLICY, ReaderFacts(False, 3, comic_month_count=2), "comic")) == ["COMIC_CAP"]
    assert codes(check_reader(POLICY, ReaderFacts(False, 3, comic_month_count=2), "general")) == []
    assert codes(check_reader(POLICY, ReaderFacts(False, 3, year_count=50), "general")) == []
    assert codes(check_reader(Policy(books_per_year=10), ReaderFacts(False, 3, year_count=10), "general")) == [
        "READER_YEARLY_LIMIT"
    ]


def test_collection_thresholds():
    assert codes(check_collection(POLICY, CollectionFacts(network_copies=2))) == []
    assert codes(check_collection(Policy(network_copy_threshold=2), CollectionFacts(network_copies=2))) == [
        "ALREADY_HELD"
    ]
    assert (
        codes(check_collection(Policy(home_branch_on_shelf_threshold=2), CollectionFacts(home_branch_on_shelf=1))) == []
    )


def test_blocklist_by_isbn_and_keyword_case_insensitive():
    policy = Policy(blocklist=Blocklist(isbns=("978-7-111-11111-5",), title_keywords=("Horoscope",)))
    assert codes(check_book(policy, GOOD, 2026)) == ["BLOCKLISTED"]
    other = BookFacts("9780306406157", 100, 2025, "general", "Your HOROSCOPE for 2026")
    assert codes(check_book(policy, other, 2026)) == ["BLOCKLISTED"]


def test_normalise_isbn():
    assert normalise_isbn("0-306-40615-2") == "9780306406157"
    assert normalise_isbn("978-0-306-40615-7") == "9780306406157"
    assert normalise_isbn("978-0-306-40615-8") is None
    assert normalise_isbn("") is None and normalise_isbn(None) is None


nine = st.text(alphabet="0123456789", min_size=9, max_size=9)
valid13 = nine.map(lambda b: "978" + b + ean.calc_check_digit("978" + b))
isbn_like = st.one_of(
    valid13,
    valid13.map(stdnum_isbn.to_isbn10),  # valid ISBN-10, check digit may be X
    valid13.map(lambda s: f"{s[:3]}-{s[3]}-{s[4:7]}-{s[7:12]}-{s[12]}"),  # hyphenated
    st.tuples(nine, st.sampled_from("0123456789X")).map("".join),  # ISBN-10 with a random check
    st.tuples(nine, st.text(alphabet="0123456789", min_size=1, max_size=1)).map(lambda t: "979" + t[0] + t[1]),
    st.text(alphabet="0123456789X- ", min_size=0, max_size=17),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(isbn_like, min_size=1, max_size=30))
def test_vectorised_isbn_matches_stdnum(raws):
    got = pl.DataFrame({"isbn": raws}).select(isbn13_expr(pl.col("isbn")).alias("x"))["x"].to_list()
    assert got == [normalise_isbn(r) for r in raws]


requests = st.fixed_dictionaries(
    {
        "isbn": st.sampled_from(["9787111111115", "0-306-40615-2", "9780306406158", "", "9784444444444"]),
        "price": st.floats(min_value=0.01, max_value=300, allow_nan=False).map(lambda p: round(p, 2)),
        "category": st.sampled_from(BOOK_CATEGORIES),
        "pub_year": st.one_of(st.none(), st.integers(2015, 2027)),
        "title": st.one_of(st.none(), st.sampled_from(["A novel", "Tarot secrets", "TAROT", "History"])),
    }
)


@settings(max_examples=60, deadline=None)
@given(st.lists(requests, min_size=1, max_size=20), st.booleans())
def test_batch_rules_agree_with_scalar_rules(rows, require_year):
    policy = Policy(
        require_pub_year=require_year,
        blocklist=Blocklist(isbns=("9787111111115",), title_keywords=("tarot",)),
    )
    frame = pl.DataFrame(
        rows,
        schema={
            "isbn": pl.String,
            "price": pl.Float64,
            "category": pl.String,
            "pub_year": pl.Int16,
            "title": pl.String,
        },
    )
    out = book_violations(frame, policy, year=2026)
    for row, batch_codes in zip(rows, out["reason_codes"].to_list(), strict=True):
        book = BookFacts(
            normalise_isbn(row["isbn"]), round(row["price"] * 100), row["pub_year"], row["category"], row["title"]
        )
        assert batch_codes == codes(check_book(policy, book, 2026))


def test_every_decline_code_has_a_sentence_for_staff_and_for_readers_in_both_languages():
    """One catalogue (acquisition.messages) behind the staff pages, the exports and the reader notices."""
    from acquisition import messages

    for table in (messages.STAFF, messages.READER):
        assert set(table) == set(DeclineCode)
        for zh, en in table.values():
            assert zh and en and zh != en
            assert any("\u4e00" <= ch <= "\u9fff" for ch in zh) and en.isascii()
