"""The fast paths of ingestion decide exactly what the plain polars paths decide.

* text dates of the sniffed ISO shape go through arrow's ISO-8601 cast, checked here against
  polars' own ``str.to_datetime`` / ``str.to_date`` on the same texts;
* reference lookups use ``is_in`` for small key sets and hash joins for large ones, checked against
  Python set membership;
* a dirty synthetic export, as CSV in two date styles and as Parquet, is rejected exactly where the
  generator put the defects plus the cells this test corrupts, with the expected reason codes.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from polars.testing import assert_frame_equal, assert_series_equal

from features import validate
from features.ingest import ingest, ingest_table
from features.schema import TABLES
from features.validate import (
    BAD_TYPE,
    DATE_FORMATS,
    DATETIME_FORMATS,
    Lookup,
    _has_shape,
    _iso_shape,
    _temporal_expr,
    parse_temporal_text,
)

DATETIME = pl.Datetime("us")


def reference(values: pl.Series, fmt: str, dtype: pl.DataType) -> pl.Series:
    """polars' own parse of every text, the behaviour the fast path must reproduce."""
    return values.to_frame().select(_temporal_expr(values.name, fmt, dtype)).to_series()


# --- the byte-shape test -------------------------------------------------------------------------


def test_iso_shapes_of_the_known_formats() -> None:
    assert _iso_shape("%Y-%m-%dT%H:%M:%S%.f", 26) == "dddd-dd-ddTdd:dd:dd.dddddd"
    assert _iso_shape("%Y-%m-%dT%H:%M:%S%.f", 21) == "dddd-dd-ddTdd:dd:dd.d"
    assert _iso_shape("%Y-%m-%d %H:%M", 16) == "dddd-dd-dd dd:dd"
    assert _iso_shape("%Y-%m-%d", 10) == "dddd-dd-dd"
    # No fraction digits, or more than a microsecond's, or a length that does not fit: no shape.
    assert _iso_shape("%Y-%m-%dT%H:%M:%S%.f", 19) is None
    assert _iso_shape("%Y-%m-%dT%H:%M:%S%.f", 29) is None
    assert _iso_shape("%Y-%m-%d", 11) is None
    # Formats arrow's ISO-8601 cast does not read keep the polars path.
    assert _iso_shape("%Y/%m/%d %H:%M:%S", 19) is None
    assert _iso_shape("%Y%m%d", 8) is None


SHAPE = "dddd-dd-ddTdd:dd:dd.dddddd"
SHAPE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from([*"0123456789", *"0123456789", "-", ":", "T", ".", " ", "/", "Z", "\x00", "\x7f", "\xe9"]),
            min_size=26,
            max_size=26,
        ).map("".join),
        min_size=1,
        max_size=40,
    ),
    st.data(),
)
def test_shape_test_agrees_with_a_regular_expression(texts: list[str], data: st.DataObject) -> None:
    # Mostly valid texts with a few characters swapped, so both outcomes are common.
    good = [f"{2000 + i % 30:04d}-0{1 + i % 9}-1{i % 10}T0{i % 10}:1{i % 10}:2{i % 10}.{i:06d}" for i in range(10)]
    texts = texts + data.draw(st.lists(st.sampled_from(good), max_size=20))
    texts = [t for t in texts if len(t.encode()) == 26]
    if not texts:
        return
    got = _has_shape(pa.array(texts, type=pa.large_string()), SHAPE)
    want = np.array([SHAPE_RE.fullmatch(t) is not None for t in texts])
    np.testing.assert_array_equal(got, want)


# --- text dates: fast path == polars ---------------------------------------------------------------

MUTATIONS = [*"0123456789", "-", ":", "T", " ", ".", "/", "Z", "+", "x"]


@st.composite
def date_texts(draw: st.DrawFn, fmt: str) -> list[str | None]:
    """Texts written with ``fmt`` (random instants, varied fraction lengths), some mutated."""
    base = datetime(1970, 1, 1)
    out: list[str | None] = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["good", "good", "good", "mutated", "null", "blank", "other"]))
        instant = base + timedelta(microseconds=draw(st.integers(0, 80 * 365 * 86_400 * 10**6)))
        text = instant.strftime(fmt.replace("%.f", ""))
        if fmt.endswith("%.f"):
            text += "." + f"{instant.microsecond:06d}"[: draw(st.integers(1, 6))]
        if kind == "mutated":
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + draw(st.sampled_from(MUTATIONS)) + text[i + 1 :]
        elif kind == "null":
            text = None
        elif kind == "blank":
            text = draw(st.sampled_from(["", " ", "  "]))
        elif kind == "other":
            text = draw(
                st.sampled_from(
                    [
                        "2023-02-29T10:00:00.000000",
                        "2024-02-29T23:59:60.000000",
                        "2023-07-01T24:00:00.000000",
                        "2023-13-01 00:00:00",
                        "2023-07-01T09:05:05.000000+08:00",
                        "2023-07-01T09:05:05.00000Z",
                        "2023-07-01 09:05:05.1234567",
                        "2023/07/01 09:05:05",
                        " 2023-07-01 09:05:05",
                        "2023-07-01",
                        "0000-01-01T00:00:00.000000",
                    ]
                )
            )
        out.append(text)
    return out


@settings(max_examples=40, deadline=None)
@given(st.data(), st.sampled_from(DATETIME_FORMATS))
def test_fast_datetime_parse_equals_polars(data: st.DataObject, fmt: str) -> None:
    values = pl.Series("at", data.draw(date_texts(fmt)), dtype=pl.String)
    assert_series_equal(parse_temporal_text(values, fmt, DATETIME), reference(values, fmt, DATETIME))


@settings(max_examples=30, deadline=None)
@given(st.data(), st.sampled_from(DATE_FORMATS))
def test_fast_date_parse_equals_polars(data: st.DataObject, fmt: str) -> None:
    values = pl.Series("on", data.draw(date_texts(fmt)), dtype=pl.String)
    assert_series_equal(parse_temporal_text(values, fmt, pl.Date), reference(values, fmt, pl.Date))


@pytest.mark.parametrize("block_rows", [1 << 18, 1000, 777])
def test_fast_parse_on_a_large_mixed_column(block_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of rows: the shaped ones take arrow, the rest polars, results in file order (also
    when the column spans many conversion blocks)."""
    monkeypatch.setattr(validate, "_BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(5)
    n = 20_000
    us = rng.integers(0, 50 * 365 * 86_400 * 10**6, n)
    texts = pl.Series("at", us).cast(DATETIME).dt.to_string("%Y-%m-%dT%H:%M:%S%.6f")
    odd = rng.choice(n, 300, replace=False)
    texts = texts.scatter(odd[:100], None).scatter(odd[100:200], "2023-07-01 09:05:05").scatter(odd[200:], "bad")
    fmt = "%Y-%m-%dT%H:%M:%S%.f"
    got = parse_temporal_text(texts, fmt, DATETIME)
    assert_series_equal(got, reference(texts, fmt, DATETIME))
    keep = np.setdiff1d(np.arange(n), odd)
    np.testing.assert_array_equal(got.gather(keep).to_physical().to_numpy(), us[keep])
    # An impossible date in a late block sends the whole column to polars, with the same result.
    late = texts.scatter(n - 5, "2023-02-29T10:00:00.000000")
    assert_series_equal(parse_temporal_text(late, fmt, DATETIME), reference(late, fmt, DATETIME))


@pytest.mark.parametrize(
    "lookalike",
    [
        "2023-07-01 09:05:05.000000",  # the other separator: arrow reads it, the sniffed format does not
        "2023-07-01T09:05:05.00000Z",  # a time-zone suffix in place of the last digit
        "2023-07-01T09:05:05.123+08",  # an offset
        "2023-07-01T09:05:05,000000",  # a comma
        "+023-07-01T09:05:05.000000",  # a sign (chrono reads year 23)
    ],
)
def test_texts_of_the_right_length_but_another_shape_take_the_polars_path(lookalike: str) -> None:
    fmt = "%Y-%m-%dT%H:%M:%S%.f"
    values = pl.Series("at", ["2023-07-01T09:05:05.000000"] * 50 + [lookalike] + ["2024-01-31T23:59:59.999999"] * 50)
    got = parse_temporal_text(values, fmt, DATETIME)
    assert_series_equal(got, reference(values, fmt, DATETIME))


def test_a_shaped_but_impossible_date_sends_the_column_to_polars() -> None:
    fmt = "%Y-%m-%dT%H:%M:%S%.f"
    for odd in ("2023-02-29T10:00:00.000000", "2024-02-29T23:59:60.000000", "2023-07-01T24:00:00.000000"):
        values = pl.Series("at", ["2023-07-01T09:05:05.000000", odd, "2024-02-29T00:00:00.000001"])
        assert_series_equal(parse_temporal_text(values, fmt, DATETIME), reference(values, fmt, DATETIME))


# --- reference lookups ----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "b", "c", "R1", "R2", "é", "R10"])), max_size=30),
    st.lists(st.sampled_from(["a", "b", "R1", "R10", "zz"]), max_size=6),
    st.sampled_from(["semi", "anti"]),
    st.booleans(),
)
def test_lookup_flags_equal_set_membership(column: list, keys: list, how: str, big: bool) -> None:
    if big:  # pad the key set past the is_in threshold so the join path runs
        keys = keys + [f"pad{i}" for i in range(20_000)]
    parsed = pl.DataFrame(
        {"__row": pl.int_range(1, len(column) + 1, eager=True), "k": pl.Series(column, dtype=pl.String)}
    )
    flags = Lookup("f", "k", pl.Series(keys, dtype=pl.String), how).mask(parsed).to_list()
    key_set = set(keys)
    want = [v is not None and ((v in key_set) == (how == "semi")) for v in column]
    assert flags == want


# --- a dirty synthetic export --------------------------------------------------------------------

DEFECT_CODE = {
    "loan_returned_before_borrowed": "RETURNED_BEFORE_BORROWED",
    "loan_borrowed_in_future": "FUTURE_DATE",
    "loan_unknown_reader": "DANGLING_REFERENCE",
}
NOW = datetime(2030, 1, 1)


@pytest.fixture(scope="module")
def dirty_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    synth = pytest.importorskip("features.synth")
    city = tmp_path_factory.mktemp("dirty") / "city"
    synth.synthesize(profile="small", seed=23, out=city, dirty_rate=0.02, progress=False)
    return city


def _loan_parents(city: Path) -> dict[str, pl.Series]:
    keys = {}
    for ref in {c.ref for c in TABLES["loans"].columns.values() if c.ref}:
        table, column = ref.split(".")
        keys[ref] = pl.read_parquet(city / f"{table}.parquet", columns=[column]).get_column(column)
    return keys


def _outcome(rejects: pl.DataFrame) -> pl.DataFrame:
    return rejects.select("row_number", "field", "reason_code").sort("row_number")


def test_dirty_loans_export_rejects_exactly_the_known_rows(dirty_city: Path, tmp_path: Path) -> None:
    loans = pl.read_parquet(dirty_city / "loans.parquet")
    defects = pl.read_parquet(dirty_city / "truth" / "defects.parquet").filter(pl.col("table") == "loans")
    parents = _loan_parents(dirty_city)
    row_of = dict(zip(loans["loan_id"], range(1, loans.height + 1), strict=True))

    # Two CSV styles: polars' ISO export ("T", six fraction digits) and "YYYY-MM-DD HH:MM:SS" with
    # every 7th date written "YYYY/MM/DD HH:MM:SS" (the fallback format).
    iso = tmp_path / "iso.csv"
    loans.write_csv(iso)
    plain = tmp_path / "plain.csv"
    dates = ["borrowed_at", "due_at", "returned_at"]
    every7 = pl.int_range(pl.len()) % 7 == 0
    loans.with_columns(
        pl.when(every7)
        .then(pl.col(c).dt.to_string("%Y/%m/%d %H:%M:%S"))
        .otherwise(pl.col(c).dt.to_string("%Y-%m-%d %H:%M:%S"))
        for c in dates
    ).write_csv(plain)

    # Corrupt one date cell in some rows the generator left clean; each must become BAD_TYPE there.
    rng = np.random.default_rng(1)
    clean_rows = np.setdiff1d(np.arange(1, loans.height + 1), [row_of[k] for k in defects["key"]])
    corrupt = np.sort(rng.choice(clean_rows, 40, replace=False))
    fields = [dates[i % 2] for i in range(len(corrupt))]  # borrowed_at / due_at (both required to parse)
    junk = ["2023-02-30T10:00:00.000000", "not a date", "2023-07-01T09:05:05+08:00", "2023-07-01T09:05:05.00000Z"]
    text = pl.read_csv(iso, infer_schema=False)
    for k, (row, field) in enumerate(zip(corrupt, fields, strict=True)):
        text = text.with_columns(
            pl.when(pl.int_range(1, pl.len() + 1) == row)
            .then(pl.lit(junk[k % 4]))
            .otherwise(pl.col(field))
            .alias(field)
        )
    corrupted = tmp_path / "corrupted.csv"
    text.write_csv(corrupted)

    # The generator's truth: rows and reason codes (an unknown reader is DANGLING on reader_id).
    expected = pl.DataFrame(
        {
            "row_number": [row_of[k] for k in defects["key"]],
            "reason_code": [DEFECT_CODE[d] for d in defects["defect"]],
        }
    ).sort("row_number")

    outcomes = {}
    for name, path in (("parquet", dirty_city / "loans.parquet"), ("iso", iso), ("plain", plain)):
        result, report = ingest_table(path, "loans", now=NOW, parent_keys=parents)
        outcomes[name] = result
        assert report.read == loans.height == report.accepted + report.rejected_total
        assert_frame_equal(
            result.rejects.select("row_number", "reason_code").sort("row_number"), expected, check_dtypes=False
        )
        for defect, code in DEFECT_CODE.items():
            assert report.rejected.get(code, 0) == (defects["defect"] == defect).sum(), (name, defect)
    # The text paths accept exactly the typed rows, value for value.
    assert_frame_equal(outcomes["iso"].accepted, outcomes["parquet"].accepted)
    assert_frame_equal(
        outcomes["plain"].accepted, outcomes["parquet"].accepted.with_columns(pl.col(dates).dt.truncate("1s"))
    )
    assert_frame_equal(_outcome(outcomes["iso"].rejects), _outcome(outcomes["parquet"].rejects))

    result, _ = ingest_table(corrupted, "loans", now=NOW, parent_keys=parents)
    extra = pl.DataFrame({"row_number": corrupt, "field": fields, "reason_code": [BAD_TYPE] * len(corrupt)})
    want = pl.concat([_outcome(outcomes["iso"].rejects), extra.cast({"row_number": pl.Int64})]).sort("row_number")
    assert_frame_equal(_outcome(result.rejects), want, check_dtypes=False)
    bad = result.rejects.filter(pl.col("reason_code") == BAD_TYPE)
    assert bad["message"].to_list() == [
        f"'{junk[k % 4]}' is not a valid Datetime(time_unit='us', time_zone=None)" for k in range(len(corrupt))
    ]
    assert_frame_equal(
        result.accepted,
        outcomes["iso"].accepted.filter(~pl.col("loan_id").is_in(loans["loan_id"].gather(corrupt - 1).implode())),
    )


def test_dirty_city_csv_and_parquet_directories_agree(dirty_city: Path, tmp_path: Path) -> None:
    """The whole directory (every table, references in dependency order) as CSV and as Parquet."""
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    for path in dirty_city.glob("*.parquet"):
        pl.read_parquet(path).write_csv(csv_dir / f"{path.stem}.csv")
    a = ingest(dirty_city, tmp_path / "a", now=NOW)
    b = ingest(csv_dir, tmp_path / "b", now=NOW)
    assert {t: r.rejected for t, r in a.tables.items()} == {t: r.rejected for t, r in b.tables.items()}
    for table in a.tables:
        assert_frame_equal(
            pl.read_parquet(tmp_path / "a" / f"{table}.parquet"), pl.read_parquet(tmp_path / "b" / f"{table}.parquet")
        )
        ra, rb = (pl.read_parquet(d / "rejects" / f"{table}.parquet") for d in (tmp_path / "a", tmp_path / "b"))
        assert_frame_equal(_outcome(ra), _outcome(rb))
