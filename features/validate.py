"""Row validation of one exported table against :mod:`features.schema`.

A raw frame (strings for CSV exports, native types for Parquet) is parsed to the schema's dtypes and
checked with whole-column polars expressions. Every row ends up either *accepted* (conformed to the
schema) or *rejected* with exactly one reason: the first failing check in a fixed order (per column
in schema order: missing value, bad type / invalid ISBN, bad enum value, out of range, invalid CLC,
future date; then cross-column rules, references, duplicate ids). So ``read == accepted + rejected``
always holds.

Reason codes are the stable strings in :data:`REASON_CODES`.

Two fast paths keep large exports cheap without changing any decision: text dates of the sniffed
ISO shape are converted by arrow's ISO-8601 cast (on worker threads, shape-checked per row; every
other text goes through polars as before), and reference checks probe small key sets with
``is_in`` and large ones with a hash join. ``tests/features/test_ingest_speed.py`` checks both
against the plain paths.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from features.isbn import normalize_isbn_series
from features.schema import CLC_PATTERN, TABLES, TableSchema, conform

_log = logging.getLogger(__name__)

MISSING_VALUE = "MISSING_VALUE"
BAD_TYPE = "BAD_TYPE"
BAD_VALUE = "BAD_VALUE"
OUT_OF_RANGE = "OUT_OF_RANGE"
INVALID_ISBN = "INVALID_ISBN"
INVALID_CLC = "INVALID_CLC"
FUTURE_DATE = "FUTURE_DATE"
RETURNED_BEFORE_BORROWED = "RETURNED_BEFORE_BORROWED"
DANGLING_REFERENCE = "DANGLING_REFERENCE"
DUPLICATE_ID = "DUPLICATE_ID"

#: Every reason code a rejected row can carry.
REASON_CODES: tuple[str, ...] = (
    MISSING_VALUE,
    BAD_TYPE,
    BAD_VALUE,
    OUT_OF_RANGE,
    INVALID_ISBN,
    INVALID_CLC,
    FUTURE_DATE,
    RETURNED_BEFORE_BORROWED,
    DANGLING_REFERENCE,
    DUPLICATE_ID,
)

#: Columns holding an ISBN that must have a valid check digit; normalised to compact ISBN-13.
#: ``purchase_requests.isbn`` is deliberately absent: the counter decision judges it and keeps the
#: reader's request even when the scanned ISBN is wrong.
ISBN_COLUMNS: frozenset[tuple[str, str]] = frozenset({("titles", "isbn13")})
#: Columns that must match :data:`features.schema.CLC_PATTERN`. A bookstore's own CLC guess on a
#: purchase request is not a reason to lose the request, so only the catalogue is checked.
CLC_COLUMNS: frozenset[tuple[str, str]] = frozenset({("titles", "clc_class")})
#: Date columns that may legitimately lie in the future (due dates, planned promotion windows).
FORWARD_LOOKING_COLUMNS: frozenset[tuple[str, str]] = frozenset(
    {("loans", "due_at"), ("booklists", "starts_on"), ("booklists", "ends_on")}
)
#: ``(table, later, earlier, reason)``: ``later`` must not be before ``earlier`` when both are set.
ORDERED_PAIRS: tuple[tuple[str, str, str, str], ...] = (
    ("loans", "returned_at", "borrowed_at", RETURNED_BEFORE_BORROWED),
)

#: Formats tried for text dates / timestamps; the first that parses a sample of the column is the
#: fast path, the rest are a fallback applied only to the rows the fast path could not parse.
DATE_FORMATS: tuple[str, ...] = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d")
DATETIME_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d",
)
_TRUE = ("true", "t", "1", "yes", "y")
_FALSE = ("false", "f", "0", "no", "n")
_SNIFF_ROWS = 200
ROW = "__row"
#: Key sets up to this size are probed with ``is_in``, larger ones with a hash join.
_SMALL_KEY_SET = 10_000
CHECK = "__check"


def _missing_name(col: str) -> str:
    return f"__missing__{col}"


def _bad_name(col: str) -> str:
    return f"__bad__{col}"


@dataclass(frozen=True)
class Check:
    """One rule: rows where ``failed`` is true are rejected with ``reason_code`` on ``field``.

    ``failed`` is evaluated on the parsed frame; ``message`` on the raw frame (original strings).
    """

    field: str
    reason_code: str
    failed: pl.Expr
    message: pl.Expr


@dataclass
class ValidatedTable:
    """The outcome of validating one table: accepted rows, rejected rows, and counts."""

    table: str
    accepted: pl.DataFrame
    rejects: pl.DataFrame
    read: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    #: References that could not be checked because the parent table was not available.
    unchecked_references: list[str] = field(default_factory=list)


def _raw_text(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.String)


def _is_temporal(dtype: pl.DataType) -> bool:
    return dtype == pl.Date or isinstance(dtype, pl.Datetime)


def _sniff_format(sample: pl.Series, formats: tuple[str, ...], dtype: pl.DataType) -> str:
    """The format in ``formats`` that parses most of ``sample`` (ties: earliest)."""
    best, best_ok = formats[0], -1
    for fmt in formats:
        parsed = sample.to_frame("v").select(_temporal_expr("v", fmt, dtype)).to_series()
        ok = parsed.is_not_null().sum()
        if ok > best_ok:
            best, best_ok = fmt, ok
        if ok == len(sample):
            break
    return best


def _parse_text_column(values: pl.Series, dtype: pl.DataType) -> pl.Series:
    """A text date column parsed with its sniffed format."""
    return parse_temporal_text(values, _sniffed_format(values, dtype), dtype)


def _sniffed_format(values: pl.Series, dtype: pl.DataType) -> str:
    """The known format that parses most of the first non-null texts of ``values``."""
    formats = DATE_FORMATS if dtype == pl.Date else DATETIME_FORMATS
    sample = values.drop_nulls().head(_SNIFF_ROWS)
    return _sniff_format(sample, formats, dtype) if len(sample) else formats[0]


def _temporal_expr(col: str, fmt: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Date:
        return pl.col(col).str.to_date(fmt, strict=False)
    return pl.col(col).str.to_datetime(fmt, strict=False, time_unit="us").cast(dtype)


def _may_have_blanks(values: pl.Series) -> bool:
    """Whether a text column might hold empty or whitespace-only values.

    Such values consist of bytes <= 0x20, so they sort before "!"; one comparison of the inline
    string-view prefixes is much cheaper than stripping every value.
    """
    return bool((values < "!").any())


# --- text dates: a vectorised fast path for the ISO shapes -------------------------------------
#
# ``str.to_datetime`` costs ~0.25 us per value (chrono on every row). pyarrow's ISO-8601 cast is
# ~10x cheaper, but it accepts more than one format (time-zone suffixes, either separator, any
# fraction length), so it is only trusted on texts that have the sniffed format's exact byte shape:
# digits where the format has digit fields, the format's own separators elsewhere. For such a text,
# when arrow accepts it the fields are in range and both parsers read the same fields, so the value
# is the one ``_temporal_expr`` would give. Every other text goes through ``_temporal_expr``.

#: Sniffable formats with fixed-width digit fields that arrow's ISO-8601 cast reads.
_ISO_FORMATS: frozenset[str] = frozenset(
    f for f in DATE_FORMATS + DATETIME_FORMATS if f.startswith("%Y-%m-%d") and "/" not in f
)
_DIGIT_FIELDS: dict[str, str] = {"%Y": "dddd", "%m": "dd", "%d": "dd", "%H": "dd", "%M": "dd", "%S": "dd"}
#: Rows converted per block by the fast path (temporaries of a few MB, not of the whole column).
_BLOCK_ROWS = 1 << 18
#: Most fraction digits the fast path takes (one microsecond; longer fractions take the slow path).
_MAX_FRACTION_DIGITS = 6


def _iso_shape(fmt: str, length: int) -> str | None:
    """The byte shape of ``fmt`` for texts of ``length`` bytes (``d`` = an ASCII digit, any other
    character = itself), or ``None`` when ``fmt`` has no fixed shape of that length.

    ``%.f`` takes the fraction digits that make up the length (1 to 6).
    """
    if fmt not in _ISO_FORMATS:
        return None
    base = fmt.removesuffix("%.f")
    shape = base
    for field_, digits in _DIGIT_FIELDS.items():
        shape = shape.replace(field_, digits)
    if base != fmt:
        fraction = length - len(shape) - 1
        if not 1 <= fraction <= _MAX_FRACTION_DIGITS:
            return None
        shape += "." + "d" * fraction
    return shape if len(shape) == length else None


def _has_shape(text: pa.LargeStringArray, shape: str) -> np.ndarray:
    """Per text of ``text`` (no nulls, every value ``len(shape)`` bytes): does it have ``shape``?

    The values are contiguous fixed-width rows, read eight bytes at a time as unaligned ``uint64``
    words and tested with bit masks (SWAR). XOR with the expected bytes (``0x30`` for a digit, the
    character for a separator) leaves ``x``; a digit byte is valid iff ``x <= 9``, i.e. neither ``x``
    nor ``x + 6`` has a bit in the high nibble; a separator byte iff ``x == 0``. A carry out of a byte
    happens only when that byte is already invalid, so it can reject a row but never accept one.
    """
    width, n = len(shape), len(text)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64, count=n + 1, offset=text.offset * 8)
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    ok = np.ones(n, dtype=bool)
    for start in sorted({*range(0, width - 7, 8), width - 8}):
        expected = six = high = 0
        for i, ch in enumerate(shape[start : start + 8]):
            digit = ch == "d"
            expected |= (0x30 if digit else ord(ch)) << (8 * i)
            six |= (0x06 if digit else 0) << (8 * i)
            high |= (0xF0 if digit else 0xFF) << (8 * i)
        words = np.ndarray((n,), dtype="<u8", buffer=data, offset=start, strides=(width,))
        x = words ^ np.uint64(expected)
        y = x + np.uint64(six)
        y |= x
        y &= np.uint64(high)
        ok &= y == 0
    return ok


def _arrow_type(dtype: pl.DataType) -> pa.DataType | None:
    if dtype == pl.Date:
        return pa.date32()
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is None and dtype.time_unit == "us":
        return pa.timestamp("us")
    return None


def parse_temporal_text(values: pl.Series, fmt: str, dtype: pl.DataType) -> pl.Series:
    """``values`` (text) parsed with ``fmt`` to ``dtype``, null where unparseable: the same result
    as ``_temporal_expr(name, fmt, dtype)``, computed cheaply for texts of the format's ISO shape.

    The shape's length is that of the first non-null text; texts of other lengths or shapes, and
    every text when arrow rejects one of the shaped ones, take ``_temporal_expr``. The shaped texts
    are converted in blocks of :data:`_BLOCK_ROWS` so that the temporaries stay small.
    """
    name = values.name
    target = _arrow_type(dtype)
    first = values.drop_nulls().head(1)
    shape = _iso_shape(fmt, len(first[0].encode())) if target is not None and len(first) else None
    if shape is None:
        return values.to_frame().select(_temporal_expr(name, fmt, dtype)).to_series()
    n = len(values)
    physical = np.zeros(n, dtype=np.int32 if dtype == pl.Date else np.int64)
    valid = np.zeros(n, dtype=bool)
    sized = (values.str.len_bytes() == len(shape)).fill_null(False).to_numpy()
    for start in range(0, n, _BLOCK_ROWS):
        block = sized[start : start + _BLOCK_ROWS]
        rows = np.flatnonzero(block)
        if not len(rows):
            continue
        chunk = values.slice(start, len(block))
        text = (chunk if len(rows) == len(block) else chunk.filter(pl.Series(block))).to_arrow()
        if not pa.types.is_large_string(text.type):
            text = text.cast(pa.large_string())
        shaped = _has_shape(text, shape)
        if not shaped.all():
            rows, text = rows[shaped], text.filter(pa.array(shaped))
        try:
            fast = pc.cast(text, target)
        except pa.ArrowInvalid:
            # A shaped text out of range (e.g. 2023-02-30): let polars judge the whole column.
            _log.debug("%s: a text of shape %s is not a valid date; parsing every value with %s", name, shape, fmt)
            return values.to_frame().select(_temporal_expr(name, fmt, dtype)).to_series()
        physical[start + rows] = fast.cast(pa.int32() if dtype == pl.Date else pa.int64()).to_numpy()
        valid[start + rows] = True
    rest = values.is_not_null().to_numpy() & ~valid
    if rest.any():
        idx = np.flatnonzero(rest)
        slow = values.gather(idx).to_frame().select(_temporal_expr(name, fmt, dtype)).to_series()
        physical[idx] = slow.to_physical().fill_null(0).to_numpy()
        valid[idx] = slow.is_not_null().to_numpy()
    return pl.Series(name, pa.array(physical, mask=~valid)).cast(dtype)


def _parse_expr(raw: pl.DataFrame, table: str, col: str, dtype: pl.DataType) -> tuple[pl.Expr | None, pl.Expr]:
    """``(parsed value, missing flag)`` expressions for one present column of the raw frame; the
    value is ``None`` for a text date column (see :func:`parse_temporal_text`)."""
    src = raw.schema[col]
    c = pl.col(col)
    missing = c.is_null()
    blanks = src == pl.String and _may_have_blanks(raw.get_column(col))
    if blanks:
        missing = missing | (c.str.strip_chars().str.len_bytes() == 0)
    if dtype == pl.String and src == pl.String and not blanks:
        value = c  # nothing to blank out: the text column as it is, without a copy
    elif dtype == pl.String:
        value = pl.when(missing).then(None).otherwise(c.cast(pl.String))
    elif src != pl.String:
        value = c.cast(dtype, strict=False)
    elif dtype == pl.Boolean:
        value = (
            c.str.strip_chars()
            .str.to_lowercase()
            .replace_strict(
                _TRUE + _FALSE, [True] * len(_TRUE) + [False] * len(_FALSE), default=None, return_dtype=pl.Boolean
            )
        )
    elif _is_temporal(dtype):
        # Text dates are parsed outside the expression engine (parse_temporal_text).
        return None, missing.alias(_missing_name(col))
    else:
        value = c.str.strip_chars().cast(dtype, strict=False)
    if dtype.is_float():
        value = pl.when(value.is_finite()).then(value)
    return value.alias(col), missing.alias(_missing_name(col))


def parse_table(raw: pl.DataFrame, table: str, lookups: Sequence[Lookup] = ()) -> pl.DataFrame:
    """Parse a raw frame to the table's dtypes in one pass.

    Returns the schema's columns (absent optional columns as nulls) plus, per present column,
    ``__missing__<col>`` (null or blank) and ``__bad__<col>`` (present but unparseable, or an
    invalid ISBN), ``__row`` (1-based data row number) and one flag column per lookup.

    Text date columns are parsed on worker threads (arrow and numpy release the GIL) while polars
    parses the other columns and runs the lookups' joins on the main thread.
    """
    schema = TABLES[table]
    present = [c for c in schema.columns if c in raw.columns]
    texts = [c for c in present if raw.schema[c] == pl.String and _is_temporal(schema.columns[c].dtype)]
    exprs: list[pl.Expr] = [pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(ROW)]
    order = [ROW]
    for name, column in schema.columns.items():
        order.append(name)
        if name not in raw.columns:
            exprs.append(pl.lit(None, dtype=column.dtype).alias(name))
            continue
        value, missing = _parse_expr(raw, table, name, column.dtype)
        exprs += [missing] if value is None else [value, missing]
        order.append(_missing_name(name))
    early = [lookup for lookup in lookups if lookup.column not in texts]
    late = [lookup for lookup in lookups if lookup.column in texts]
    with ThreadPoolExecutor(max_workers=max(1, min(len(texts), pl.thread_pool_size()))) as pool:
        dates = [pool.submit(_parse_text_column, raw.get_column(c), schema.columns[c].dtype) for c in texts]
        parsed = raw.lazy().select(exprs).collect()
        flags = [lookup.mask(parsed) for lookup in early]
        parsed = parsed.hstack([date.result() for date in dates])
    parsed = parsed.hstack(flags + [lookup.mask(parsed) for lookup in late])
    parsed = parsed.select(order + [lookup.flag for lookup in early + late])

    flags = []
    for name in present:
        dtype = schema.columns[name].dtype
        if (table, name) in ISBN_COLUMNS:
            parsed = parsed.with_columns(normalize_isbn_series(parsed.get_column(name)).alias(name))
        if (table, name) in ISBN_COLUMNS or dtype != pl.String:
            flags.append((~pl.col(_missing_name(name)) & pl.col(name).is_null()).alias(_bad_name(name)))
    parsed = parsed.with_columns(flags)
    return _fallback_temporal(raw, parsed, table)


def _fallback_temporal(raw: pl.DataFrame, parsed: pl.DataFrame, table: str) -> pl.DataFrame:
    """Re-parse the few text dates the sniffed format missed, trying every known format."""
    schema = TABLES[table]
    for name, column in schema.columns.items():
        if name not in raw.columns or raw.schema[name] != pl.String or not _is_temporal(column.dtype):
            continue
        bad = parsed.get_column(_bad_name(name))
        if not bad.any():
            continue
        idx = bad.arg_true()
        formats = DATE_FORMATS if column.dtype == pl.Date else DATETIME_FORMATS
        sub = raw.get_column(name).gather(idx).str.strip_chars().to_frame(name)
        retry = sub.select(pl.coalesce([_temporal_expr(name, f, column.dtype) for f in formats])).to_series()
        fixed = retry.is_not_null()
        if not fixed.any():
            continue
        value = parsed.get_column(name).clone().scatter(idx.filter(fixed), retry.filter(fixed))
        parsed = parsed.with_columns(value.alias(name), (bad & value.is_null()).alias(_bad_name(name)))
    return parsed


@dataclass(frozen=True)
class Lookup:
    """A key-membership flag computed by a join: ``flag`` is true for rows whose non-null ``column``
    is in ``keys`` (``how="semi"``) or not in them (``how="anti"``)."""

    flag: str
    column: str
    keys: pl.Series
    how: str

    def mask(self, parsed: pl.DataFrame) -> pl.Series:
        """The flag over ``parsed`` (which has ``__row``); a hash join beats ``is_in`` on big key
        sets, ``is_in`` beats the join on small ones (branches, bookstores)."""
        if self.keys.len() <= _SMALL_KEY_SET:
            column = pl.col(self.column)
            found = column.is_in(self.keys.cast(pl.String).drop_nulls().implode())
            flag = column.is_not_null() & (found if self.how == "semi" else ~found)
            return parsed.select(flag.alias(self.flag)).to_series()
        keys = self.keys.cast(pl.String).drop_nulls().unique().to_frame(self.column)
        rows = (
            parsed.lazy()
            .select(ROW, self.column)
            .filter(pl.col(self.column).is_not_null())
            .join(keys.lazy(), on=self.column, how=self.how)
            .select(ROW)
            .collect()
            .get_column(ROW)
            .to_numpy()
        )
        flags = np.zeros(parsed.height, dtype=bool)
        flags[rows - 1] = True
        return pl.Series(self.flag, flags)


def build_checks(
    raw_columns: list[str],
    table: str,
    *,
    now: datetime,
    parent_keys: Mapping[str, pl.Series | None],
    existing_keys: pl.Series | None = None,
) -> tuple[list[Check], list[str], list[Lookup]]:
    """The ordered checks for a table (all but within-file duplicates), unchecked references, and
    the key lookups the checks read (flag columns to add to the parsed frame first).

    ``parent_keys`` maps ``"table.column"`` to the accepted keys of the referenced table (``None``
    or absent: the reference cannot be checked). ``existing_keys`` are primary keys already in the
    data directory (``--append``).
    """
    schema = TABLES[table]
    now = now.replace(tzinfo=None)
    checks: list[Check] = []
    unchecked: list[str] = []
    lookups: list[Lookup] = []
    for name, column in schema.columns.items():
        if name not in raw_columns:
            continue
        value, text = pl.col(name), _raw_text(name)
        if not column.nullable and name not in schema.optional:
            checks.append(
                Check(name, MISSING_VALUE, pl.col(_missing_name(name)), pl.lit(f"{name} is required but empty"))
            )
        if (table, name) in ISBN_COLUMNS:
            msg = pl.format("'{}' is not a valid ISBN-10 or ISBN-13 (format or check digit)", text)
            checks.append(Check(name, INVALID_ISBN, pl.col(_bad_name(name)), msg))
        elif column.dtype != pl.String:
            msg = pl.format("'{}' is not a valid {}", text, pl.lit(str(column.dtype)))
            checks.append(Check(name, BAD_TYPE, pl.col(_bad_name(name)), msg))
        if column.values is not None:
            allowed = ", ".join(column.values)
            msg = pl.format("'{}' is not one of: {}", text, pl.lit(allowed))
            checks.append(Check(name, BAD_VALUE, ~value.is_in(list(column.values)), msg))
        if column.min is not None:
            msg = pl.format("{} is below the minimum {}", text, pl.lit(str(column.min)))
            checks.append(Check(name, OUT_OF_RANGE, value < column.min, msg))
        if (table, name) in CLC_COLUMNS:
            msg = pl.format("'{}' is not a CLC class", text)
            checks.append(Check(name, INVALID_CLC, ~value.str.contains(CLC_PATTERN), msg))
        if _is_temporal(column.dtype) and (table, name) not in FORWARD_LOOKING_COLUMNS:
            limit = now.date() if column.dtype == pl.Date else now
            msg = pl.format("{} is after the ingest time {}", text, pl.lit(now.isoformat(sep=" ")))
            checks.append(Check(name, FUTURE_DATE, value > pl.lit(limit), msg))
    for pair_table, later, earlier, code in ORDERED_PAIRS:
        if pair_table == table and later in raw_columns and earlier in raw_columns:
            msg = pl.format(
                "{} {} is before {} {}", pl.lit(later), _raw_text(later), pl.lit(earlier), _raw_text(earlier)
            )
            checks.append(Check(later, code, pl.col(later) < pl.col(earlier), msg))
    for name, column in schema.columns.items():
        if column.ref is None or name not in raw_columns:
            continue
        keys = parent_keys.get(column.ref)
        if keys is None:
            unchecked.append(f"{table}.{name} -> {column.ref}")
            continue
        msg = pl.format("{} '{}' not found in {}", pl.lit(name), _raw_text(name), pl.lit(column.ref))
        flag = f"__dangling__{name}"
        lookups.append(Lookup(flag, name, keys, "anti"))
        checks.append(Check(name, DANGLING_REFERENCE, pl.col(flag), msg))
    pk = schema.primary_key
    if pk is not None and existing_keys is not None and pk in raw_columns:
        msg = pl.format("{} '{}' is already in the data directory", pl.lit(pk), _raw_text(pk))
        lookups.append(Lookup("__existing__", pk, existing_keys, "semi"))
        checks.append(Check(pk, DUPLICATE_ID, pl.col("__existing__"), msg))
    return checks, unchecked, lookups


def _duplicate_check(schema: TableSchema) -> Check:
    pk = schema.primary_key
    assert pk is not None
    msg = pl.format("{} '{}' repeats an earlier row", pl.lit(pk), _raw_text(pk))
    return Check(pk, DUPLICATE_ID, pl.lit(False), msg)


def _duplicate_rows(frame: pl.DataFrame, key: str) -> pl.Series:
    """Row numbers of rows whose ``key`` repeats an earlier row of ``frame``."""
    keys = frame.get_column(key)
    # Exports usually list ids in ascending order: a strictly increasing column has no repeats, and
    # one vectorised comparison is far cheaper than hashing every key.
    if len(keys) < 2 or (keys.slice(1) > keys.slice(0, len(keys) - 1)).all():
        return pl.Series(ROW, [], dtype=pl.Int64)
    return frame.filter(~pl.col(key).is_first_distinct()).get_column(ROW)


def validate_table(
    raw: pl.DataFrame,
    table: str,
    *,
    source_file: str,
    now: datetime,
    parent_keys: Mapping[str, pl.Series | None] | None = None,
    existing_keys: pl.Series | None = None,
) -> ValidatedTable:
    """Validate a raw frame of ``table`` exported from ``source_file``.

    Args:
        raw: the file's rows as read (strings for CSV), in file order; must contain the table's
            required columns (the caller checks this and raises a file-level error otherwise).
        table: a name in :data:`features.schema.TABLES`.
        source_file: file name recorded in the rejects.
        now: ingest time; dates after it are rejected (naive local time).
        parent_keys: ``"table.column"`` -> accepted keys of referenced tables.
        existing_keys: primary keys already in the data directory (append mode).

    Returns:
        Accepted rows conformed to the schema, rejects (``source_file``, ``row_number``, ``field``,
        ``reason_code``, ``message`` and the original values as strings), and counts.
    """
    schema = TABLES[table]
    missing = [c for c in schema.required if c not in raw.columns]
    if missing:
        raise KeyError(f"{source_file}: missing required column(s) {', '.join(missing)}")
    checks, unchecked, lookups = build_checks(
        raw.columns, table, now=now, parent_keys=parent_keys or {}, existing_keys=existing_keys
    )
    parsed = parse_table(raw, table, lookups)
    chain = None
    for i, check in enumerate(checks):
        chain = (pl.when(check.failed) if chain is None else chain.when(check.failed)).then(pl.lit(i, pl.UInt16))
    check_expr = pl.lit(None, pl.UInt16) if chain is None else chain.otherwise(pl.lit(None, pl.UInt16))
    parsed = parsed.with_columns(check_expr.alias(CHECK))

    if schema.primary_key is not None:
        # Keep the first of the rows that pass every other check; later copies are duplicates.
        checks.append(_duplicate_check(schema))
        ok = parsed.get_column(CHECK).is_null()
        dup_rows = _duplicate_rows(parsed.filter(ok), schema.primary_key)
        if len(dup_rows):
            parsed = parsed.with_columns(
                pl.when(pl.col(ROW).is_in(dup_rows.implode()))
                .then(pl.lit(len(checks) - 1, pl.UInt16))
                .otherwise(pl.col(CHECK))
                .alias(CHECK)
            )

    rejected_mask = parsed.get_column(CHECK).is_not_null()
    accepted = conform(parsed.filter(~rejected_mask), table)
    rejects = _build_rejects(raw, parsed, rejected_mask, checks, source_file)
    by_reason = rejects.get_column("reason_code").value_counts(sort=True, name="n")
    counts = dict(sorted(zip(by_reason["reason_code"].to_list(), by_reason["n"].to_list(), strict=True)))
    if counts:
        _log.info("%s: %d of %d rows rejected %s", source_file, len(rejects), raw.height, counts)
    return ValidatedTable(table, accepted, rejects, raw.height, counts, unchecked)


#: Leading columns of every rejects file.
REJECT_COLUMNS: tuple[str, ...] = ("source_file", "row_number", "field", "reason_code", "message")


def _build_rejects(
    raw: pl.DataFrame, parsed: pl.DataFrame, mask: pl.Series, checks: list[Check], source_file: str
) -> pl.DataFrame:
    """Rejected rows with their reason and original values (as strings), in file order."""
    sub = raw.filter(mask).with_columns(
        parsed.get_column(CHECK).filter(mask).alias(CHECK), parsed.get_column(ROW).filter(mask).alias(ROW)
    )
    idx = list(range(len(checks)))
    message = pl.lit(None, pl.String)
    if checks:
        chain = pl.when(pl.col(CHECK) == 0).then(checks[0].message)
        for i, check in enumerate(checks[1:], start=1):
            chain = chain.when(pl.col(CHECK) == i).then(check.message)
        message = chain.otherwise(pl.lit(None, pl.String))
    originals = [
        _raw_text(c).alias(f"src_{c}" if c in REJECT_COLUMNS else c) for c in raw.columns if c not in (CHECK, ROW)
    ]
    return sub.select(
        pl.lit(source_file, pl.String).alias("source_file"),
        pl.col(ROW).alias("row_number"),
        pl.col(CHECK).replace_strict(idx, [c.field for c in checks], return_dtype=pl.String).alias("field"),
        pl.col(CHECK).replace_strict(idx, [c.reason_code for c in checks], return_dtype=pl.String).alias("reason_code"),
        message.cast(pl.String).alias("message"),
        *originals,
    )
