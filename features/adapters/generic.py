"""Any user-item file (CSV, CSV.GZ, Parquet) -> the ``interactions`` table of a yuedu data directory.

Policies:

* **Compression** is detected from the file's magic bytes (gzip, bzip2, xz), not its name.
* **Encoding**: ``encoding=`` wins; else a byte-order mark decides (UTF-8-SIG, UTF-16); else the bytes
  must be UTF-8, and if they are not the file is decoded as cp1252 (latin-1 when cp1252 fails) with a
  warning naming the first bad byte offset. The choice is in ``report.notes['encoding']``.
* **Separator**: ``sep=`` wins; else the most frequent of ``, \\t ; |`` in the header line.
* **Ids** are kept as strings (``reader_id`` = user column, ``title_id`` = item column). A row with an
  empty id is rejected (``MISSING_VALUE``), a non-numeric weight (``BAD_TYPE``), an unparseable time
  (``BAD_TYPE``); rejects go to ``DIR/rejects/interactions.parquet``.
* **Time**: all-numeric columns are Unix epoch seconds (milliseconds when the median exceeds 1e11);
  text is ISO-8601 (``T`` or space, optional fraction, optional ``Z``/offset -> converted to UTC).
* **Channel / value**: ``rating`` and the weight when a weight column is given; else ``event`` and 1.0.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import logging
import lzma
import time
from pathlib import Path

import polars as pl

from features.adapters.report import AdapterError, AdapterReport, reject_frame, write_rejects, write_table

_log = logging.getLogger(__name__)

SEPARATORS: tuple[str, ...] = (",", "\t", ";", "|")
#: Numeric times above this are taken as milliseconds since the epoch (1e11 s is the year 5138).
MILLISECONDS_THRESHOLD = 1e11
_ISO_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_ISO_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z")


def _decompress(path: Path, data: bytes) -> tuple[bytes, str]:
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data), "gzip"
    if data[:3] == b"BZh":
        return bz2.decompress(data), "bzip2"
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data), "xz"
    return data, "none"


def _to_utf8(path: Path, data: bytes, encoding: str | None) -> tuple[bytes, str]:
    """The file's text re-encoded as UTF-8 (what polars reads) and the encoding that was used."""
    if encoding:
        try:
            return data.decode(encoding).encode(), encoding
        except (UnicodeDecodeError, LookupError) as exc:
            raise AdapterError(path, f"cannot decode as {encoding}: {exc}") from exc
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :], "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16").encode(), "utf-16"
    try:
        data.decode("utf-8")
        return data, "utf-8"
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        for fallback in ("cp1252", "latin-1"):
            try:
                text = data.decode(fallback)
            except UnicodeDecodeError:
                continue
            _log.warning(
                "%s: not UTF-8 (byte offset %d, line %d); decoded as %s - pass --encoding to choose",
                path,
                exc.start,
                line,
                fallback,
            )
            return text.encode(), f"{fallback} (fallback: invalid UTF-8 at byte {exc.start}, line {line})"
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def sniff_separator(header: str) -> str:
    """The most frequent candidate separator in a header line (``,`` when none occurs)."""
    counts = {s: header.count(s) for s in SEPARATORS}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else ","


def read_table_file(
    path: str | Path, *, sep: str | None = None, encoding: str | None = None, notes: dict | None = None
) -> pl.DataFrame:
    """Read a CSV/CSV.GZ/Parquet file as strings (Parquet keeps its types); ``notes`` gets what was detected."""
    path = Path(path)
    notes = notes if notes is not None else {}
    if not path.exists():
        raise AdapterError(path, "file not found")
    if path.suffix == ".parquet":
        notes["format"] = "parquet"
        return pl.read_parquet(path)
    data, compression = _decompress(path, path.read_bytes())
    data, used = _to_utf8(path, data, encoding)
    header = data.split(b"\n", 1)[0].decode()
    separator = sep if sep is not None else sniff_separator(header)
    if separator in ("\\t", "tab"):
        separator = "\t"
    notes.update(format="csv", compression=compression, encoding=used, separator=repr(separator))
    try:
        return pl.read_csv(data, separator=separator, infer_schema=False, truncate_ragged_lines=False)
    except pl.exceptions.PolarsError as exc:
        raise AdapterError(path, f"cannot parse as CSV with separator {separator!r}: {exc}") from exc


def parse_time(col: pl.Expr, numeric_unit: str) -> pl.Expr:
    """Datetime (us, naive UTC) from epoch numbers (``numeric_unit`` 's' or 'ms') or ISO-8601 text."""
    text = col.cast(pl.String).str.strip_chars()
    as_number = text.cast(pl.Float64, strict=False)
    factor = 1_000_000 if numeric_unit == "s" else 1_000
    from_epoch = pl.from_epoch((as_number * factor).round(0).cast(pl.Int64, strict=False), time_unit="us")
    iso = text.str.replace(r"Z$", "+00:00")
    aware = [
        iso.str.to_datetime(f, strict=False, time_unit="us").dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        for f in _ISO_AWARE
    ]
    naive = [iso.str.to_datetime(f, strict=False, time_unit="us") for f in _ISO_NAIVE]
    return pl.when(as_number.is_not_null()).then(from_epoch).otherwise(pl.coalesce(*aware, *naive))


def _parse_columns(
    raw: pl.DataFrame, user_col: str, item_col: str, weight_col: str | None, time_col: str | None, notes: dict
) -> pl.DataFrame:
    """``raw`` plus ``reader_id``, ``title_id`` (trimmed, empty = null), ``value`` and ``occurred_at``
    (null where unparseable); ``notes`` gets the time unit chosen."""
    ids = [pl.col(c).cast(pl.String).str.strip_chars().replace("", None) for c in (user_col, item_col)]
    df = raw.with_columns(ids[0].alias("reader_id"), ids[1].alias("title_id"))
    if weight_col:
        df = df.with_columns(
            pl.col(weight_col).cast(pl.String).str.strip_chars().cast(pl.Float32, strict=False).alias("value")
        )
    else:
        df = df.with_columns(pl.lit(1.0, dtype=pl.Float32).alias("value"))
    if time_col:
        numbers = raw.get_column(time_col).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
        unit = "ms" if numbers.drop_nulls().len() and numbers.median() > MILLISECONDS_THRESHOLD else "s"
        notes["time_unit"] = f"epoch {unit} for numbers, else ISO-8601"
        df = df.with_columns(parse_time(pl.col(time_col), unit).alias("occurred_at"))
    else:
        df = df.with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("occurred_at"))
    return df


def _row_checks(
    user_col: str, item_col: str, weight_col: str | None, time_col: str | None
) -> list[tuple[str, str, pl.Expr, str]]:
    """``(field, reason_code, condition, message)`` of every reason a parsed row is rejected."""
    checks: list[tuple[str, str, pl.Expr, str]] = [
        (user_col, "MISSING_VALUE", pl.col("reader_id").is_null(), "empty user id"),
        (item_col, "MISSING_VALUE", pl.col("title_id").is_null(), "empty item id"),
    ]
    if weight_col:
        checks.append((weight_col, "BAD_TYPE", pl.col("value").is_null(), "weight is not a number"))
    if time_col:
        checks.append(
            (time_col, "BAD_TYPE", pl.col("occurred_at").is_null(), "time is neither epoch seconds nor ISO-8601")
        )
    return checks


def _item_titles(
    items_file: str | Path, item_col: str, item_title_col: str | None, item_clc_class: str, encoding: str | None
) -> pl.DataFrame:
    """The ``titles`` table of an items file: one row per item id (first wins), with its title."""
    items = read_table_file(items_file, sep=None, encoding=encoding, notes={})
    title_col = item_title_col or item_col
    for c in (item_col, title_col):
        if c not in items.columns:
            raise AdapterError(items_file, f"missing column '{c}'; columns are {items.columns}", field=c)
    return items.select(
        pl.col(item_col).cast(pl.String).str.strip_chars().alias("title_id"),
        pl.col(title_col).cast(pl.String).alias("title"),
        pl.lit(item_clc_class).alias("clc_class"),
        pl.lit("general").alias("audience"),
        pl.lit("und").alias("language"),
        pl.lit("print").alias("format"),
        pl.lit(False).alias("local_literature"),
    ).unique("title_id", keep="first", maintain_order=True)


def adapt_interactions(
    path: str | Path,
    out: str | Path,
    *,
    user_col: str,
    item_col: str,
    weight_col: str | None = None,
    time_col: str | None = None,
    sep: str | None = None,
    encoding: str | None = None,
    items_file: str | Path | None = None,
    item_title_col: str | None = None,
    item_clc_class: str = "I",
) -> AdapterReport:
    """Write ``out/interactions.parquet`` (+ ``rejects/interactions.parquet``, optional ``titles.parquet``).

    ``items_file`` (with ``item_title_col``) describes the items: its ``item_col`` column and titles become
    a ``titles`` table with class ``item_clc_class``, audience general, language ``und``.
    """
    t0 = time.perf_counter()
    path, out = Path(path), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = AdapterReport(adapter="interactions", out=str(out))
    raw = read_table_file(path, sep=sep, encoding=encoding, notes=report.notes)
    wanted = [c for c in (user_col, item_col, weight_col, time_col) if c]
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise AdapterError(path, f"missing column(s) {missing}; columns are {raw.columns}", field=missing[0])
    raw = raw.select(wanted).with_row_index("row_number", offset=1)
    df = _parse_columns(raw, user_col, item_col, weight_col, time_col, report.notes)

    checks = _row_checks(user_col, item_col, weight_col, time_col)
    rejects = [
        reject_frame(
            df.filter(cond),
            source_file=path.name,
            field=field,
            reason_code=code,
            message=pl.format("{}: '{}'", pl.lit(msg), pl.col(field).cast(pl.String).fill_null("")),
            original=wanted,
        )
        for field, code, cond, msg in checks
    ]
    write_rejects(out, "interactions", rejects, report)
    bad = pl.any_horizontal(*[cond for _, _, cond, _ in checks])
    interactions = df.filter(~bad).with_columns(
        pl.lit("rating" if weight_col else "event").alias("channel"), pl.lit(0, dtype=pl.Int8).alias("renewals")
    )
    written = write_table(out, "interactions", interactions, report)

    if items_file is not None:
        titles = _item_titles(items_file, item_col, item_title_col, item_clc_class, encoding)
        write_table(out, "titles", titles.filter(pl.col("title_id").is_not_null()), report)
        report.counts["interaction_titles_missing_from_items"] = (
            written.select("title_id").unique().join(titles, on="title_id", how="anti").height
        )

    report.counts.update(
        rows_read=raw.height,
        readers=written["reader_id"].n_unique(),
        titles=written["title_id"].n_unique(),
        duplicate_pairs=written.height - written.select("reader_id", "title_id").n_unique(),
    )
    report.seconds = round(time.perf_counter() - t0, 3)
    report.save(out / "adapter_report.json")
    _log.info("interactions: %d rows, %.2fs", written.height, report.seconds)
    return report
