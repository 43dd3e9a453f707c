"""Validated ingestion: reason codes, row numbers, exit codes, references, append, determinism."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from features.ingest import IngestError, RejectedRowsError, discover_sources, ingest
from features.isbn import normalize_isbn_series, to_isbn13
from features.schema import TABLES
from features.validate import REASON_CODES, validate_table
from serving.cli import app

CLEAN = Path(__file__).parent / "fixtures" / "ingest" / "clean"
NOW = "2025-01-01T00:00:00"
runner = CliRunner()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A writable copy of the clean export directory."""
    out = tmp_path / "src"
    shutil.copytree(CLEAN, out)
    return out


def run(src: Path, out: Path, *args: str):
    return runner.invoke(app, ["data", "ingest", str(src), "--out", str(out), "--now", NOW, *args])


def edit(src: Path, table: str, data_row: int, column: str, value: str | None) -> None:
    """Set one cell of ``src/<table>.csv`` (``data_row`` is 1-based, header excluded)."""
    path = src / f"{table}.csv"
    df = pl.read_csv(path, infer_schema=False)
    df = df.with_columns(
        pl.when(pl.int_range(1, pl.len() + 1) == data_row)
        .then(pl.lit(value, pl.String))
        .otherwise(pl.col(column))
        .alias(column)
    )
    df.write_csv(path)


def rejects(out: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(out / "rejects" / f"{table}.parquet")


# --- the clean export ----------------------------------------------------------------------------


def test_clean_export_has_no_rejects_and_conforms(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = run(src, out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["rejected_total"] == 0
    for table, path in discover_sources(src)[0].items():
        df = pl.read_parquet(out / f"{table}.parquet")
        assert df.schema == TABLES[table].polars_schema
        assert df.height == pl.read_csv(path).height
        assert rejects(out, table).height == 0
    titles = pl.read_parquet(out / "titles.parquet")
    isbns = dict(zip(titles["title_id"], titles["isbn13"], strict=True))
    # ISBN-10 0-306-40615-2 is ISBN-13 978-0-306-40615-7; hyphens are removed.
    assert isbns["T002"] == "9780306406157"
    assert isbns["T001"] == "9787040001235"
    assert isbns["T004"] is None
    # The purchase request's ISBN and CLC are kept as scanned: the counter decision judges them.
    requests = pl.read_parquet(out / "purchase_requests.parquet")
    assert requests.filter(pl.col("request_id") == "P0002")["isbn"].item() == "not-an-isbn"


# --- one malformed cell per case -----------------------------------------------------------------

CASES = [
    # (table, data row, column, new value, reason code)
    ("titles", 3, "isbn13", "978-7-5399-2345-2", "INVALID_ISBN"),
    ("titles", 2, "isbn13", "0-306-40615-3", "INVALID_ISBN"),
    ("titles", 4, "clc_class", "Y12", "INVALID_CLC"),
    ("titles", 1, "list_price", "0", "OUT_OF_RANGE"),
    ("titles", 5, "list_price", "-3.5", "OUT_OF_RANGE"),
    ("titles", 2, "audience", "everyone", "BAD_VALUE"),
    ("titles", 1, "pub_year", "two thousand", "BAD_TYPE"),
    ("loans", 2, "reader_id", "R999", "DANGLING_REFERENCE"),
    ("loans", 4, "branch_id", "O-9999", "DANGLING_REFERENCE"),
    ("loans", 3, "loan_id", "L0001", "DUPLICATE_ID"),
    ("loans", 5, "borrowed_at", "2031-05-01 10:00:00", "FUTURE_DATE"),
    ("loans", 1, "returned_at", "2024-02-28 10:00:00", "RETURNED_BEFORE_BORROWED"),
    ("loans", 2, "channel", "drone", "BAD_VALUE"),
    ("loans", 3, "borrowed_at", "yesterday", "BAD_TYPE"),
    ("loans", 4, "renewals", "-1", "OUT_OF_RANGE"),
    ("loans", 1, "reader_id", None, "MISSING_VALUE"),
    ("readers", 2, "registered_at", "2099-01-01", "FUTURE_DATE"),
    ("copies", 3, "copy_id", "C0002", "DUPLICATE_ID"),
    ("copies", 5, "title_id", "T404", "DANGLING_REFERENCE"),
]


@pytest.mark.parametrize(("table", "row", "column", "value", "code"), CASES)
def test_malformed_cell_is_rejected_with_reason_and_row(
    src: Path, tmp_path: Path, table: str, row: int, column: str, value: str | None, code: str
) -> None:
    edit(src, table, row, column, value)
    out = tmp_path / "data"
    result = run(src, out)
    assert result.exit_code == 0, result.output
    rej = rejects(out, table)
    assert rej.select("row_number", "field", "reason_code").rows() == [(row, column, code)]
    assert rej["source_file"].item() == f"{table}.csv"
    original = pl.read_csv(src / f"{table}.csv", infer_schema=False)
    assert rej.select(original.columns).row(0) == original.row(row - 1)
    assert rej["message"].item()
    accepted = pl.read_parquet(out / f"{table}.parquet")
    assert accepted.height == original.height - 1
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["tables"][table]["rejected"] == {code: 1}


def test_rejected_parent_cascades_to_children(src: Path, tmp_path: Path) -> None:
    # Reader R001 gets a bad age band, so its loans (rows 1 and 4) and e-book event dangle.
    edit(src, "readers", 1, "age_band", "toddler")
    out = tmp_path / "data"
    assert run(src, out).exit_code == 0
    assert rejects(out, "readers")["reason_code"].to_list() == ["BAD_VALUE"]
    loans = rejects(out, "loans")
    assert loans.select("row_number", "field", "reason_code").rows() == [
        (1, "reader_id", "DANGLING_REFERENCE"),
        (4, "reader_id", "DANGLING_REFERENCE"),
    ]
    assert rejects(out, "ebook_events")["row_number"].to_list() == [1]


# --- file-level problems: exit 2, one line, DATA untouched --------------------------------------


def test_missing_required_column_exits_2_naming_file_and_column(src: Path, tmp_path: Path) -> None:
    pl.read_csv(src / "loans.csv").drop("channel").write_csv(src / "loans.csv")
    out = tmp_path / "data"
    result = run(src, out)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "loans.csv" in lines[0] and "channel" in lines[0]
    assert "Traceback" not in result.output
    assert not (out / "titles.parquet").exists()


def test_missing_optional_column_is_filled_with_nulls(src: Path, tmp_path: Path) -> None:
    pl.read_csv(src / "loans.csv").drop("copy_id", "renewals").write_csv(src / "loans.csv")
    out = tmp_path / "data"
    assert run(src, out).exit_code == 0
    loans = pl.read_parquet(out / "loans.parquet")
    assert loans.height == 5 and loans["copy_id"].null_count() == 5
    assert loans.schema == TABLES["loans"].polars_schema


def test_latin1_file_exits_2_with_byte_offset_and_line(src: Path, tmp_path: Path) -> None:
    text = (src / "branches.csv").read_text(encoding="utf-8")
    text = text.replace("Subway Reading Room", "Café Reading Room")
    data = text.encode("latin-1")
    (src / "branches.csv").write_bytes(data)
    out = tmp_path / "data"
    result = run(src, out)
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "branches.csv" in line and "UTF-8" in line
    offset = data.index(b"\xe9")
    assert f"byte {offset}" in line and "(line 4)" in line


def test_gzip_and_parquet_exports_match_csv(src: Path, tmp_path: Path) -> None:
    out_csv, out_mixed = tmp_path / "csv", tmp_path / "mixed"
    assert run(src, out_csv).exit_code == 0
    (src / "loans.csv.gz").write_bytes(gzip.compress((src / "loans.csv").read_bytes()))
    (src / "loans.csv").unlink()
    pl.read_parquet(out_csv / "titles.parquet").write_parquet(src / "titles.parquet")
    (src / "titles.csv").unlink()
    assert run(src, out_mixed).exit_code == 0
    for table in ("loans", "titles"):
        assert pl.read_parquet(out_csv / f"{table}.parquet").equals(pl.read_parquet(out_mixed / f"{table}.parquet"))


def test_two_exports_of_one_table_is_an_error(src: Path, tmp_path: Path) -> None:
    (src / "loans.csv.gz").write_bytes(gzip.compress((src / "loans.csv").read_bytes()))
    with pytest.raises(IngestError, match="two exports"):
        ingest(src, tmp_path / "data")


def test_unknown_files_and_folders_are_ignored(src: Path, tmp_path: Path) -> None:
    (src / "truth").mkdir()
    (src / "truth" / "loans.csv").write_text("garbage")
    (src / "notes.txt").write_text("hello")
    (src / "visitors.csv").write_text("a,b\n1,2\n")
    report = ingest(src, tmp_path / "data", now=datetime(2025, 1, 1))
    assert report.ignored == ["notes.txt", "truth", "visitors.csv"]
    assert "visitors" not in report.tables


# --- strict, determinism, append -----------------------------------------------------------------


def test_strict_exits_1_and_keeps_data_tables(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert run(src, out, "--strict").exit_code == 0
    before = (out / "loans.parquet").read_bytes()
    edit(src, "loans", 2, "channel", "drone")
    edit(src, "loans", 3, "loan_id", "L0099")
    result = run(src, out, "--strict")
    assert result.exit_code == 1
    assert (out / "loans.parquet").read_bytes() == before
    assert rejects(out, "loans")["reason_code"].to_list() == ["BAD_VALUE"]
    with pytest.raises(RejectedRowsError):
        ingest(src, tmp_path / "other", strict=True, now=datetime(2025, 1, 1))


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*.parquet"))
    }


def test_rerun_is_byte_identical(src: Path, tmp_path: Path) -> None:
    edit(src, "loans", 2, "channel", "drone")
    edit(src, "titles", 3, "isbn13", "123")
    first, second = tmp_path / "a", tmp_path / "b"
    assert run(src, first).exit_code == 0
    assert run(src, second).exit_code == 0
    digest = _digest(first)
    assert digest == _digest(second)
    assert run(src, first).exit_code == 0
    assert _digest(first) == digest


def test_append_adds_a_month_and_checks_existing_tables(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert run(src, out).exit_code == 0
    month = tmp_path / "april"
    month.mkdir()
    pl.DataFrame(
        {
            "loan_id": ["L0101", "L0003", "L0102", "L0101"],
            "reader_id": ["R002", "R003", "R777", "R001"],
            "title_id": ["T003", "T003", "T001", "T001"],
            "branch_id": ["CEN", "O-0001", "CEN", "CEN"],
            "channel": ["counter", "counter", "counter", "counter"],
            "borrowed_at": ["2024-04-02 10:00:00"] * 4,
        }
    ).write_csv(month / "loans.csv")
    result = run(month, out, "--append")
    assert result.exit_code == 0, result.output
    loans = pl.read_parquet(out / "loans.parquet")
    assert loans["loan_id"].to_list() == ["L0001", "L0002", "L0003", "L0004", "L0005", "L0101"]
    assert loans.filter(pl.col("loan_id") == "L0101")["reader_id"].item() == "R002"
    assert rejects(out, "loans").select("row_number", "reason_code").rows() == [
        (2, "DUPLICATE_ID"),
        (3, "DANGLING_REFERENCE"),
        (4, "DUPLICATE_ID"),
    ]
    # Tables not in the new month's exports are left as they were.
    assert pl.read_parquet(out / "readers.parquet").height == 4


# --- ISBN normalisation --------------------------------------------------------------------------


def test_isbn_normalisation() -> None:
    assert to_isbn13("0-306-40615-2") == "9780306406157"
    assert to_isbn13("0 306 40615 2") == "9780306406157"
    assert to_isbn13("978-0-306-40615-7") == "9780306406157"
    assert to_isbn13("978-0-306-40615-8") is None
    assert to_isbn13("x") is None
    s = pl.Series("isbn", ["0-306-40615-2", None, "bad", "0-306-40615-2", "9780306406157"])
    assert normalize_isbn_series(s).to_list() == ["9780306406157", None, None, "9780306406157", "9780306406157"]


# --- property: nothing is silently dropped -------------------------------------------------------

_READERS = pl.Series(["R1", "R2", "R3"])
_cell = {
    "loan_id": st.sampled_from(["L1", "L2", "L3", "L4", "", None]),
    "reader_id": st.sampled_from(["R1", "R2", "R3", "R9", None]),
    "title_id": st.sampled_from(["T1", "T2"]),
    "branch_id": st.sampled_from(["B1"]),
    "channel": st.sampled_from(["counter", "online", "drone", None]),
    "borrowed_at": st.sampled_from(["2024-01-01 10:00:00", "2024-01-05T08:00:00", "2030-01-01 00:00:00", "soon"]),
    "returned_at": st.sampled_from([None, "2023-12-31 00:00:00", "2024-02-01 12:00:00", "bad"]),
    "renewals": st.sampled_from(["0", "2", "-1", "x", None]),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries(_cell), min_size=0, max_size=25))
def test_every_row_is_accepted_or_rejected_once(rows: list[dict]) -> None:
    raw = pl.DataFrame(rows, schema=dict.fromkeys(_cell, pl.String))
    result = validate_table(
        raw, "loans", source_file="loans.csv", now=datetime(2025, 1, 1), parent_keys={"readers.reader_id": _READERS}
    )
    assert result.read == raw.height == result.accepted.height + result.rejects.height
    assert sum(result.rejected_by_reason.values()) == result.rejects.height
    assert set(result.rejected_by_reason) <= set(REASON_CODES)
    row_numbers = result.rejects["row_number"].to_list()
    assert len(set(row_numbers)) == len(row_numbers) and all(1 <= r <= raw.height for r in row_numbers)
    acc = result.accepted
    assert acc.schema == TABLES["loans"].polars_schema
    assert acc["loan_id"].is_unique().all() and acc["loan_id"].null_count() == 0
    assert acc["reader_id"].is_in(_READERS.implode()).all()
    assert (acc["renewals"].drop_nulls() >= 0).all()
    assert (acc["borrowed_at"] <= datetime(2025, 1, 1)).all()
    assert acc.filter(pl.col("returned_at") < pl.col("borrowed_at")).is_empty()
    # Accepted ids are the first valid occurrence: none of them appears in an earlier rejected-duplicate row.
    dup_rows = result.rejects.filter(pl.col("reason_code") == "DUPLICATE_ID")
    assert dup_rows["loan_id"].is_in(acc["loan_id"].implode()).all()


# --- the synthetic city --------------------------------------------------------------------------


def test_small_city_ingests_without_rejects(small_city: Path, tmp_path: Path) -> None:
    report = ingest(small_city, tmp_path / "data", now=datetime(2100, 1, 1))
    assert report.tables, "no tables found in the small city"
    assert report.rejected_total == 0, {t: r.rejected for t, r in report.tables.items() if r.rejected}
    assert "truth" in report.ignored


EXPECTED_CODE = {
    "loan_returned_before_borrowed": "RETURNED_BEFORE_BORROWED",
    "loan_unknown_reader": "DANGLING_REFERENCE",
    "loan_borrowed_in_future": "FUTURE_DATE",
    "title_bad_isbn_check_digit": "INVALID_ISBN",
    "title_negative_price": "OUT_OF_RANGE",
    "copy_duplicate_id": "DUPLICATE_ID",
}


def test_dirty_city_defects_are_all_caught(tmp_path: Path) -> None:
    synth = pytest.importorskip("features.synth")
    city = tmp_path / "city"
    synth.synthesize(profile="small", seed=11, out=city, dirty_rate=0.01, progress=False)
    out = tmp_path / "data"
    report = ingest(city, out, now=datetime(2030, 1, 1))
    defects = pl.read_parquet(city / "truth" / "defects.parquet")
    assert set(defects["defect"]) <= set(EXPECTED_CODE)
    for (table, defect), group in defects.group_by("table", "defect"):
        pk = TABLES[table].primary_key
        rej = rejects(out, table).filter(pl.col(pk).is_in(group["key"].implode()))
        # Every injected row is rejected, for its own reason or because its parent was rejected.
        assert set(group["key"]) == set(rej[pk]), defect
        assert set(rej["reason_code"]) <= {EXPECTED_CODE[defect], "DANGLING_REFERENCE"}, defect
        if defect not in ("loan_unknown_reader", "copy_duplicate_id"):
            assert (rej["reason_code"] == EXPECTED_CODE[defect]).sum() == group.height, defect
    # Anything else rejected is collateral: a child of a rejected row.
    for table, t in report.tables.items():
        own = defects.filter(pl.col("table") == table)["key"]
        pk = TABLES[table].primary_key
        rej = rejects(out, table)
        other = rej if pk is None else rej.filter(~pl.col(pk).is_in(own.implode()))
        assert set(other["reason_code"]) <= {"DANGLING_REFERENCE"}, table
        assert t.read == t.accepted + t.rejected_total
