"""Public-data adapters: real-file facts from the data sets' READMEs, and one small fixture per oddity."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import ean, isbn

from features.adapters import AdapterError, adapt_goodbooks, adapt_interactions, adapt_sco
from features.adapters.clc import clc_from_title
from features.adapters.generic import sniff_separator
from features.adapters.goodbooks import isbn13_candidates_from_float, isbn13_from_isbn10
from features.adapters.sco import adapt_loans, pseudonym
from features.schema import TABLES

# --- helpers -----------------------------------------------------------------------------------


def _assert_conforms(data_dir: Path, table: str) -> pl.DataFrame:
    df = pl.read_parquet(data_dir / f"{table}.parquet")
    assert df.schema == TABLES[table].polars_schema
    for name, col in TABLES[table].columns.items():
        if col.values is not None:
            assert set(df[name].drop_nulls().unique()) <= set(col.values), name
        if not col.nullable and name not in TABLES[table].optional:
            assert df[name].null_count() == 0, name
    return df


def _write_csv(path: Path, header: list[str], rows: list[list[str | None]]) -> None:
    pl.DataFrame([[r[i] for r in rows] for i in range(len(header))], schema=header, orient="col").write_csv(path)


# --- SCO ---------------------------------------------------------------------------------------

SCO_LOANS = [
    # event, member, book, start, end
    ["E1", "alice", "b1", "1923-05-02", "1923-05-20"],  # clean
    ["E2", "alice", "b1", "1923-05", "1923-06-01"],  # month -> 1923-05-01, imputed
    ["E3", "bob", "b2", "1924", "1924-03-01"],  # year -> 1924-01-01, imputed
    ["E4", "bob", "b2", "--05-02", "1923-05-20"],  # year unknown -> rejected
    ["E5", "bob", "b1", None, "1923-05-20"],  # empty start -> rejected
    ["E6", "ghost", "b2", "1925-01-10", "1925-02-01"],  # borrower missing from members.csv
    ["E7", "alice", "b2", "1926-03-01", "1926-03-15"],  # shared loan ...
    ["E7", "bob", "b2", "1926-03-01", "1926-03-15"],  # ... by two members
    ["E8", "alice", "b1", "1927-06-10", "1927-06-01"],  # returned before borrowed
    ["E9", "bob", "b1", "1927-06-15", "1927-06"],  # partial end in the borrow month -> clamped
    ["E10", "bob", "b1", "1927-12-20", "--01-05"],  # end year unknown -> 1928-01-05
    ["E11", "bob", "b1", "1923-02-30", None],  # impossible date -> BAD_DATE
    ["E12", "bob", "nobook", "1923-03-01", None],  # book not in books.csv
    ["E13", "alice", "b3", "1930-01-02", None],  # not returned
]


@pytest.fixture()
def sco_src(tmp_path: Path) -> Path:
    src = tmp_path / "sco"
    src.mkdir()
    _write_csv(src / "loans.csv", ["event_id", "member_id", "book_id", "start_date", "end_date"], SCO_LOANS)
    _write_csv(
        src / "books.csv",
        ["book_id", "title", "author", "year", "format"],
        [
            ["b1", "Ulysses", "Joyce, James", "1922", "Book"],
            ["b2", "A History of England", "Trevelyan, G. M.", "1926", "Book"],
            ["b3", "The Criterion", None, None, "Periodical"],
        ],
    )
    _write_csv(
        src / "members.csv",
        ["member_id", "membership_years"],
        [["alice", "1922;1923"], ["bob", "1923"], ["carol", "1931"]],
    )
    return src


def test_sco_oddities_each_have_their_policy(sco_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = adapt_sco(sco_src, out)
    loans = _assert_conforms(out, "loans")
    readers = _assert_conforms(out, "readers")
    titles = _assert_conforms(out, "titles")
    branches = _assert_conforms(out, "branches")
    rejects = pl.read_parquet(out / "rejects" / "loans.parquet")
    audit = pl.read_parquet(out / "audit" / "loans.parquet")

    # Every input row is either a loan or a reject, never both.
    assert loans.height + rejects.height == len(SCO_LOANS)
    assert dict(zip(rejects["event_id"], rejects["reason_code"], strict=True)) == {
        "E4": "START_YEAR_UNKNOWN",
        "E5": "MISSING_START_DATE",
        "E11": "BAD_DATE",
        "E12": "DANGLING_REFERENCE",
    }
    assert set(rejects.columns[:5]) == {"source_file", "row_number", "field", "reason_code", "message"}
    assert rejects.filter(pl.col("event_id") == "E4")["row_number"].item() == 4
    assert rejects.filter(pl.col("event_id") == "E4")["field"].item() == "start_date"

    by_event = {r["event_id"]: r for r in audit.join(loans, on="loan_id").iter_rows(named=True)}
    assert by_event["E1"]["date_imputed"] is False
    assert str(by_event["E2"]["borrowed_at"].date()) == "1923-05-01" and by_event["E2"]["start_imputed"]
    assert str(by_event["E3"]["borrowed_at"].date()) == "1924-01-01" and by_event["E3"]["date_imputed"]
    assert by_event["E8"]["returned_at"] is None
    assert by_event["E8"]["returned_note"] == "RETURNED_BEFORE_BORROWED"
    assert str(by_event["E9"]["returned_at"].date()) == "1927-06-15"
    assert by_event["E9"]["returned_note"] == "END_CLAMPED_TO_START"
    assert str(by_event["E10"]["returned_at"].date()) == "1928-01-05"
    assert by_event["E10"]["returned_note"] == "END_YEAR_INFERRED"
    assert by_event["E13"]["returned_at"] is None and by_event["E13"]["returned_note"] is None

    # A shared loan is one loan per member, with distinct ids.
    shared = loans.join(audit.filter("shared_loan"), on="loan_id")
    assert shared.height == 2 and shared["reader_id"].n_unique() == 2 and set(shared["event_id"]) == {"E7"}

    # Borrowers missing from members.csv are created and flagged; members without loans are kept.
    flags = pl.read_parquet(out / "audit" / "readers.parquet")
    assert flags.filter(~pl.col("in_members_file"))["reader_id"].to_list() == [pseudonym("ghost")]
    assert readers.height == 4 and report.counts["readers_created_missing_from_members"] == 1
    assert report.counts["loan_rows_of_created_readers"] == 1
    # Names never enter yuedu: reader ids are pseudonyms.
    assert not set(readers["reader_id"]) & {"alice", "bob", "carol", "ghost"}
    # Registration is no later than the first loan.
    first = loans.group_by("reader_id").agg(pl.col("borrowed_at").min().dt.date())
    joined = readers.join(first, on="reader_id")
    assert (joined["registered_at"] <= joined["borrowed_at"]).all()

    assert branches["district"].to_list() == ["Paris"]
    clc = dict(zip(titles["title_id"], titles["clc_class"], strict=True))
    assert clc == {"b1": "I", "b2": "K", "b3": "Z"}
    assert titles["isbn13"].null_count() == titles.height
    assert report.counts["shared_loan_events"] == 1 and report.rejects["loans"]["BAD_DATE"] == 1


_date_text = st.one_of(
    st.none(),
    st.dates(min_value=date(1919, 1, 1), max_value=date(1962, 12, 31)).map(lambda d: d.isoformat()),
    st.builds(lambda y, m: f"{y}-{m:02d}", st.integers(1919, 1962), st.integers(1, 12)),
    st.integers(1919, 1962).map(str),
    st.builds(lambda m, d: f"--{m:02d}-{d:02d}", st.integers(1, 12), st.integers(1, 31)),
    st.sampled_from(["1923-02-30", "soon", "1923-13"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_date_text, _date_text), min_size=1, max_size=30))
def test_sco_loans_partition_rows_and_never_return_before_borrow(dates: list[tuple[str | None, str | None]]) -> None:
    raw = pl.DataFrame(
        {
            "event_id": [f"E{i}" for i in range(len(dates))],
            "reader_id": ["r"] * len(dates),
            "book_id": ["b"] * len(dates),
            "start_date": [s for s, _ in dates],
            "end_date": [e for _, e in dates],
        },
        schema={c: pl.String for c in ("event_id", "reader_id", "book_id", "start_date", "end_date")},
    ).with_row_index("row_number", offset=1)
    result = adapt_loans(raw, pl.Series(["b"]))
    rejected = (
        pl.concat(result["rejects"])["row_number"].unique() if result["rejects"] else pl.Series([], dtype=pl.Int64)
    )
    assert result["loans"].height + rejected.len() == raw.height
    loans = result["loans"].filter(pl.col("returned_at").is_not_null())
    assert (loans["returned_at"] >= loans["borrowed_at"]).all()
    assert result["loans"]["borrowed_at"].null_count() == 0


def test_sco_real_data(shared_data: Path, tmp_path: Path) -> None:
    report = adapt_sco(shared_data / "sco-lending-library", tmp_path)
    loans = _assert_conforms(tmp_path, "loans")
    rejects = pl.read_parquet(tmp_path / "rejects" / "loans.parquet")
    # README: 21,200 rows, 20,840 loans, 596 borrowers, 360 shared loans, 10 slugs (256 rows) missing.
    assert loans.height + rejects.height == 21_200
    assert report.counts["borrowers"] == 596
    assert report.counts["shared_loan_events"] == 360
    assert report.counts["readers_created_missing_from_members"] == 10
    assert report.counts["loan_rows_of_created_readers"] == 256
    assert set(report.rejects["loans"]) <= {"START_YEAR_UNKNOWN", "MISSING_START_DATE"}
    assert loans["borrowed_at"].dt.year().is_between(1919, 1962).all()
    assert _assert_conforms(tmp_path, "readers").height == 5_175 + 10
    assert _assert_conforms(tmp_path, "titles").height == 6_011
    assert loans["title_id"].is_in(pl.read_parquet(tmp_path / "titles.parquet")["title_id"].implode()).all()


def test_sco_missing_file_is_an_adapter_error(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="loans.csv.gz: file not found"):
        adapt_sco(tmp_path, tmp_path / "out")


# --- goodbooks ---------------------------------------------------------------------------------

GB_HEADER = ["book_id", "isbn", "isbn13", "authors", "original_publication_year", "title", "language_code"]
GB_ROWS = [
    # ISBN-10 stored as a number lost its leading zero; isbn13 in float notation.
    ["1", "439023483", "9.78043902348e+12", "Suzanne Collins", "2008.0", "The Hunger Games", "eng"],
    # No ISBN-10; the float has exactly one valid ISBN-13 behind it (check digit 1).
    ["2", None, "9.78043902348e+12", "Suzanne Collins, Someone Else", "2008.0", "The Hunger Games", "en-US"],
    # No ISBN-10; the float is ambiguous (true check digit 4: two valid candidates print the same).
    ["3", None, "9.78031601584e+12", "Stephenie Meyer", "2005.0", "Twilight (Twilight, #1)", None],
    # Neither column valid (a UPC printed in full).
    ["4", "553609410", "76783609419.0", "L. M. Montgomery", "1908.0", "Anne of Green Gables", "eng"],
    # Nothing at all.
    ["5", None, None, "Tina Fey", "2011.0", "Bossypants", "eng"],
    # Before 1400: pub_year null; ISBN-10 with X check digit.
    ["6", "080442957X", None, "Homer, Robert Fagles", "-720.0", "The Odyssey", "fre"],
]


@pytest.fixture()
def goodbooks_src(tmp_path: Path) -> Path:
    src = tmp_path / "gb"
    src.mkdir()
    _write_csv(src / "books.csv", GB_HEADER, GB_ROWS)
    (src / "tags.csv").write_text("tag_id,tag_name\n0,-\n1,fiction\n")
    return src


def test_goodbooks_isbn_cases(goodbooks_src: Path, tmp_path: Path) -> None:
    report = adapt_goodbooks(goodbooks_src, tmp_path / "out")
    titles = _assert_conforms(tmp_path / "out", "titles")
    rejects = pl.read_parquet(tmp_path / "out" / "rejects" / "titles.parquet")
    isbn13 = dict(zip(titles["title_id"], titles["isbn13"], strict=True))
    assert isbn13 == {
        "1": "9780439023481",
        "2": "9780439023481",
        "3": None,
        "4": None,
        "5": None,
        "6": "9780804429573",
    }
    reasons = {(r["book_id"], r["reason_code"]) for r in rejects.iter_rows(named=True)}
    assert reasons == {("3", "INVALID_ISBN"), ("4", "INVALID_ISBN"), ("5", "MISSING_ISBN"), ("6", "OUT_OF_RANGE")}
    assert "2 valid candidates" in rejects.filter(pl.col("book_id") == "3")["message"].item()
    assert titles.height == len(GB_ROWS)  # invalid ISBNs never drop a title
    row6 = titles.filter(pl.col("title_id") == "6").row(0, named=True)
    assert row6["pub_year"] is None and row6["author"] == "Homer" and row6["language"] == "fr"
    assert titles.filter(pl.col("title_id") == "3")["language"].item() == "und"
    assert report.counts["isbn13_from_isbn10"] == 2 and report.counts["isbn13_from_float"] == 1
    assert pl.read_parquet(tmp_path / "out" / "tags.parquet").height == 2


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["978", "979"]), st.integers(0, 10**9 - 1))
def test_float_isbn_candidates_contain_the_truth(prefix: str, body: int) -> None:
    first12 = f"{prefix}{body:09d}"
    true = first12 + ean.calc_check_digit(first12)
    if not isbn.is_valid(true):  # unassigned ranges
        return
    printed = f"{int(true):.12g}"
    candidates = isbn13_candidates_from_float(printed)
    assert true in candidates and len(candidates) <= 2
    assert all(float(f"{int(c):.12g}") == float(printed) for c in candidates)


def test_isbn10_leading_zero_and_invalid() -> None:
    assert isbn13_from_isbn10("439023483") == "9780439023481"
    assert isbn13_from_isbn10("439023484") is None
    assert isbn13_from_isbn10(None) is None


def test_goodbooks_real_data(shared_data: Path, tmp_path: Path) -> None:
    report = adapt_goodbooks(shared_data / "goodbooks-10k", tmp_path)
    titles = _assert_conforms(tmp_path, "titles")
    assert titles.height == 10_000 and titles["title_id"].n_unique() == 10_000
    valid = titles["isbn13"].drop_nulls()
    assert valid.len() > 9_000  # most ISBNs survive
    assert all(isbn.is_valid(v) and len(v) == 13 for v in valid.to_list())
    rejects = pl.read_parquet(tmp_path / "rejects" / "titles.parquet")
    assert rejects.filter(pl.col("field") == "isbn13").height == titles["isbn13"].null_count()
    assert report.rows["tags"] == 34_252
    assert titles["pub_year"].drop_nulls().min() >= 1400
    assert titles.filter(pl.col("clc_class") == "I").height > 9_000


# --- generic interactions ------------------------------------------------------------------------


def test_movielens_in_one_call(shared_data: Path, tmp_path: Path) -> None:
    ml = shared_data / "movielens-latest-small"
    report = adapt_interactions(
        ml / "ratings.csv.gz",
        tmp_path,
        user_col="userId",
        item_col="movieId",
        weight_col="rating",
        time_col="timestamp",
        items_file=ml / "movies.csv",
        item_title_col="title",
    )
    df = _assert_conforms(tmp_path, "interactions")
    # README: 100,836 ratings by 610 users on 9,724 movies; 0.5..5 stars; 1996-03-29 .. 2018-09-24.
    assert df.height == 100_836
    assert df["reader_id"].n_unique() == 610 and df["title_id"].n_unique() == 9_724
    assert df["value"].min() == 0.5 and df["value"].max() == 5.0
    assert str(df["occurred_at"].min()) == "1996-03-29 18:36:55"  # 828124615 s
    assert str(df["occurred_at"].max().date()) == "2018-09-24"
    assert set(df["channel"]) == {"rating"}
    assert report.notes["compression"] == "gzip"
    assert report.rows["titles"] == 9_742 and report.counts["interaction_titles_missing_from_items"] == 0


def test_interactions_latin1_semicolon_iso_and_rejects(tmp_path: Path) -> None:
    text = (
        "lecteur;livre;quand\n"
        "r1;Les Misérables;2020-01-02T10:00:00Z\n"
        "r2;Ça;2020-01-03 12:30:00\n"
        ";Candide;2020-01-04\n"
        "r3;Zadig;yesterday\n"
    )
    path = tmp_path / "events.csv"
    path.write_bytes(text.encode("latin-1"))
    out = tmp_path / "out"
    report = adapt_interactions(path, out, user_col="lecteur", item_col="livre", time_col="quand")
    df = _assert_conforms(out, "interactions")
    assert df["title_id"].to_list() == ["Les Misérables", "Ça"]
    assert df["channel"].to_list() == ["event", "event"] and df["value"].to_list() == [1.0, 1.0]
    assert str(df["occurred_at"][0]) == "2020-01-02 10:00:00"
    assert report.notes["separator"] == "';'" and report.notes["encoding"].startswith("cp1252")
    rejects = pl.read_parquet(out / "rejects" / "interactions.parquet")
    assert sorted(zip(rejects["row_number"], rejects["reason_code"], strict=True)) == [
        (3, "MISSING_VALUE"),
        (4, "BAD_TYPE"),
    ]
    # Given encoding is honoured, and gives the same rows.
    again = adapt_interactions(
        path, tmp_path / "again", user_col="lecteur", item_col="livre", time_col="quand", encoding="latin-1"
    )
    assert again.notes["encoding"] == "latin-1"


def test_interactions_gzip_tab_epoch_ms_and_parquet(tmp_path: Path) -> None:
    path = tmp_path / "events.tsv.gz"
    path.write_bytes(gzip.compress(b"u\ti\tw\tt\n1\t10\t4.5\t1600000000000\n2\t11\tbad\t1600000000000\n"))
    report = adapt_interactions(path, tmp_path / "a", user_col="u", item_col="i", weight_col="w", time_col="t")
    df = pl.read_parquet(tmp_path / "a" / "interactions.parquet")
    assert df.height == 1 and df["value"].item() == 4.5 and str(df["occurred_at"].item()) == "2020-09-13 12:26:40"
    assert report.notes["separator"] == "'\\t'" and report.rejects["interactions"] == {"BAD_TYPE": 1}
    pq = tmp_path / "events.parquet"
    pl.DataFrame({"u": [1, 1, 2], "i": [5, 6, 5]}).write_parquet(pq)
    report = adapt_interactions(pq, tmp_path / "b", user_col="u", item_col="i")
    assert report.rows["interactions"] == 3 and report.counts["readers"] == 2


def test_interactions_missing_column_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(AdapterError, match=r"x\.csv.*missing column"):
        adapt_interactions(path, tmp_path / "o", user_col="a", item_col="item")


@given(
    st.lists(st.sampled_from(["a", "b", "cc", "d d"]), min_size=2, max_size=6), st.sampled_from([",", "\t", ";", "|"])
)
def test_sniff_separator_finds_the_header_separator(names: list[str], sep: str) -> None:
    assert sniff_separator(sep.join(names)) == sep


def test_clc_heuristic_defaults_to_literature() -> None:
    titles = pl.Series(["Ulysses", "A Dictionary of Modern English Usage", "The Princess Diaries, #5", None])
    got = pl.select(clc_from_title(pl.lit(titles))).to_series().to_list()
    assert got == ["I", "H", "I", "I"]


def test_cli_interactions_and_describe(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from serving.cli import app

    path = tmp_path / "e.csv"
    path.write_text("user,item\n1,a\n1,b\n2,a\n")
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["data", "interactions", str(path), "--user-col", "user", "--item-col", "item", "--out", str(tmp_path / "d")],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["data", "describe", str(tmp_path / "d"), "--json"])
    assert res.exit_code == 0, res.output
    assert '"pairs": 3' in res.output
    res = runner.invoke(app, ["data", "goodbooks", str(tmp_path / "nowhere"), "--out", str(tmp_path / "g")])
    assert res.exit_code == 2 and "file not found" in res.output
