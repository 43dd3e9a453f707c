"""What every public-data adapter returns and writes besides its tables: a report and reject files.

Reject files use the same layout as ingestion (``DIR/rejects/<table>.parquet``): ``source_file``,
``row_number`` (1-based data row of the source file), ``field``, ``reason_code``, ``message``, then the
original row's values as strings, so a librarian can read why a row (or a field) was set aside.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from features.schema import TABLES, conform, table_path

_log = logging.getLogger(__name__)

#: Leading columns of every reject file, in order.
REJECT_COLUMNS: tuple[str, ...] = ("source_file", "row_number", "field", "reason_code", "message")


class AdapterError(ValueError):
    """A public data set cannot be adapted (missing file, missing column, unreadable bytes)."""

    def __init__(self, path: str | Path, reason: str, *, field: str | None = None, row: int | None = None):
        self.path = str(path)
        self.reason = reason
        self.field = field
        self.row = row
        where = self.path + (f", row {row}" if row is not None else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {reason}")


@dataclass
class AdapterReport:
    """Outcome of one adapter run: rows written per table, rejects by reason, notable counts, wall time."""

    adapter: str
    out: str
    #: Rows written per output table.
    rows: dict[str, int] = field(default_factory=dict)
    #: ``{table: {reason_code: rows}}`` of the reject files.
    rejects: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Adapter-specific facts (imputed dates, created readers, recovered ISBNs, ...).
    counts: dict[str, int] = field(default_factory=dict)
    #: Decisions worth reading (detected separator, encoding, time unit, ...).
    notes: dict[str, str] = field(default_factory=dict)
    #: Wall time of the whole run, seconds.
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))


def reject_frame(
    rows: pl.DataFrame,
    *,
    source_file: str,
    field: str,
    reason_code: str,
    message: str | pl.Expr,
    original: list[str],
) -> pl.DataFrame:
    """Reject records for ``rows`` (which must carry a ``row_number`` column and the ``original`` columns)."""
    msg = message if isinstance(message, pl.Expr) else pl.lit(message)
    return rows.select(
        pl.lit(source_file).alias("source_file"),
        pl.col("row_number").cast(pl.Int64),
        pl.lit(field).alias("field"),
        pl.lit(reason_code).alias("reason_code"),
        msg.cast(pl.String).alias("message"),
        *[pl.col(c).cast(pl.String) for c in original],
    )


def write_rejects(out: Path, table: str, frames: list[pl.DataFrame], report: AdapterReport) -> None:
    """Write ``out/rejects/<table>.parquet`` (even when empty, so a reader can tell "none" from "not run")."""
    frames = [f for f in frames if f.height] or frames[:1]
    rejects = pl.concat(frames, how="diagonal_relaxed").sort("row_number", "field") if frames else pl.DataFrame()
    (out / "rejects").mkdir(parents=True, exist_ok=True)
    rejects.write_parquet(out / "rejects" / f"{table}.parquet")
    if rejects.height:
        by_reason = rejects.group_by("reason_code").len().sort("reason_code")
        report.rejects[table] = dict(zip(by_reason["reason_code"], by_reason["len"], strict=True))
    else:
        report.rejects[table] = {}


def write_table(out: Path, table: str, frame: pl.DataFrame, report: AdapterReport) -> pl.DataFrame:
    """Conform ``frame`` to the schema of ``table``, write ``out/<table>.parquet`` and record its row count."""
    if table not in TABLES:
        raise KeyError(f"unknown table '{table}'")
    conformed = conform(frame, table)
    assert isinstance(conformed, pl.DataFrame)
    pk = TABLES[table].primary_key
    if pk is not None and conformed.get_column(pk).n_unique() != conformed.height:
        raise AssertionError(f"{table}: primary key '{pk}' is not unique after adaptation")
    conformed.write_parquet(table_path(out, table))
    report.rows[table] = conformed.height
    _log.info("wrote %s: %d rows", table, conformed.height)
    return conformed


def read_export_csv(path: Path, columns: tuple[str, ...]) -> pl.DataFrame:
    """A source CSV as text, with a 1-based ``row_number``, the ``columns`` it must have stripped and
    empty cells null; a missing file, an unparsable file or a missing column is an :class:`AdapterError`."""
    if not path.exists():
        raise AdapterError(path, "file not found")
    try:
        df = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.ComputeError as exc:
        raise AdapterError(path, f"cannot parse CSV: {exc}") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AdapterError(path, f"missing column(s) {missing}", field=missing[0])
    return df.with_row_index("row_number", offset=1).with_columns(
        [pl.col(c).str.strip_chars().replace("", None) for c in columns]
    )
