"""Validated ingestion of library exports into a data directory.

``SRC`` holds one export per table, named ``<table>.csv``, ``<table>.csv.gz`` or ``<table>.parquet``
for the tables in :data:`features.schema.TABLES`. Each file is read once, validated
(:mod:`features.validate`) and split into accepted rows, written to ``DATA/<table>.parquet``, and
rejected rows, written to ``DATA/rejects/<table>.parquet``. Tables are processed in dependency order so
that a row referencing a rejected parent is itself rejected. ``DATA/ingest_report.json`` records the
counts per table and reason.

File-level problems (unreadable file, missing required column, invalid UTF-8) raise
:class:`IngestError` before anything in ``DATA`` is replaced: outputs are staged and moved into place
only when every table has been processed.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from features.errors import InvalidInput
from features.schema import TABLES, table_path
from features.validate import REJECT_COLUMNS, ValidatedTable, validate_table

_log = logging.getLogger(__name__)

#: Accepted file name suffixes, in the order they are looked for.
SUFFIXES: tuple[str, ...] = (".parquet", ".csv", ".csv.gz")
REPORT_FILE = "ingest_report.json"
REJECTS_DIR = "rejects"
_STAGING = ".ingest-staging"


class IngestError(InvalidInput):
    """A file-level problem that stops the whole ingest (CLI exit code 2).

    ``str(error)`` is one line naming the file and the problem.
    """

    def __init__(self, file: Path | str, problem: str) -> None:
        super().__init__(f"{file}: {problem}")
        self.file = str(file)
        self.problem = problem


class RejectedRowsError(InvalidInput):
    """Raised by a strict ingest when any row was rejected (CLI exit code 1).

    The rejects and the report were written; the data tables were left unchanged.
    """

    exit_code = 1

    def __init__(self, report: IngestReport) -> None:
        super().__init__(f"{report.rejected_total} row(s) rejected in strict mode; data tables left unchanged")
        self.report = report


@dataclass
class TableReport:
    """Counts for one ingested table. ``read == accepted + sum(rejected.values())``."""

    table: str
    source_file: str
    read: int
    accepted: int
    #: Rejected rows per reason code.
    rejected: dict[str, int] = field(default_factory=dict)
    #: Wall time to read and validate the file, seconds.
    wall_seconds: float = 0.0
    #: ``"table.column -> parent.column"`` references not checked (parent table unavailable).
    unchecked_references: list[str] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of wall time."""
        return self.read / self.wall_seconds if self.wall_seconds > 0 else float("inf")


@dataclass
class IngestReport:
    """What an ingest run did, per table, plus the files it ignored."""

    src: str
    out: str
    now: str
    append: bool
    strict: bool
    tables: dict[str, TableReport] = field(default_factory=dict)
    #: Names of entries in SRC that are not table exports (logged and skipped).
    ignored: list[str] = field(default_factory=list)
    #: Wall time of the whole run, seconds.
    wall_seconds: float = 0.0

    @property
    def read_total(self) -> int:
        return sum(t.read for t in self.tables.values())

    @property
    def rejected_total(self) -> int:
        return sum(t.rejected_total for t in self.tables.values())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["read_total"] = self.read_total
        d["rejected_total"] = self.rejected_total
        return d

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")


# --- discovering and reading sources -------------------------------------------------------------


def discover_sources(src: Path) -> tuple[dict[str, Path], list[str]]:
    """Map table name -> export file in ``src``; also return the names of ignored entries.

    Raises:
        IngestError: ``src`` is not a directory, or a table has more than one export file.
    """
    if not src.is_dir():
        raise IngestError(src, "source is not a directory")
    found: dict[str, Path] = {}
    ignored: list[str] = []
    for entry in sorted(src.iterdir()):
        table = _table_of(entry.name) if entry.is_file() else None
        if table is None:
            ignored.append(entry.name)
            _log.info("ignoring %s (not a table export)", entry.name)
            continue
        if table in found:
            raise IngestError(entry, f"table '{table}' has two exports ({found[table].name} and {entry.name})")
        found[table] = entry
    ordered = {t: found[t] for t in TABLES if t in found}
    return ordered, ignored


def _table_of(filename: str) -> str | None:
    for suffix in SUFFIXES:
        if filename.endswith(suffix) and filename[: -len(suffix)] in TABLES:
            return filename[: -len(suffix)]
    return None


def _is_csv(path: Path) -> bool:
    return path.name.endswith((".csv", ".csv.gz"))


def read_header(path: Path) -> list[str]:
    """Column names of an export, reading only its header / footer.

    Raises:
        IngestError: the file cannot be read, is empty, or its header is not UTF-8.
    """
    if not _is_csv(path):
        try:
            return list(pl.read_parquet_schema(path))
        except Exception as exc:  # polars/pyarrow raise several types for corrupt files
            raise IngestError(path, f"not a readable Parquet file ({_first_line(exc)})") from exc
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            first = fh.readline()
    except OSError as exc:
        raise IngestError(path, f"cannot read file ({_first_line(exc)})") from exc
    if not first.strip():
        raise IngestError(path, "empty file: no header line")
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(path, f"not valid UTF-8 at byte {exc.start} (line 1); re-export as UTF-8") from exc
    return [name.strip() for name in next(csv.reader(io.StringIO(text.lstrip("\ufeff"))))]


def check_columns(path: Path, table: str, columns: list[str]) -> None:
    """Raise :class:`IngestError` if the export lacks any of the table's required columns."""
    missing = [c for c in TABLES[table].required if c not in columns]
    if missing:
        raise IngestError(path, f"missing required column(s) for table '{table}': {', '.join(missing)}")


def read_source(path: Path) -> pl.DataFrame:
    """Read an export eagerly, once: CSV cells as strings (typing is validation's job), Parquet
    columns with their stored types.

    Rejected rows must carry their original text, so the raw frame is kept beside the parsed one;
    that is why this is one eager read rather than a lazy scan.

    Raises:
        IngestError: unreadable file, or invalid UTF-8 (with the byte offset and line).
    """
    try:
        if not _is_csv(path):
            return pl.read_parquet(path)
        return pl.read_csv(
            path,
            infer_schema=False,
            raise_if_empty=False,
        ).rename(lambda name: name.lstrip("\ufeff").strip())
    except (pl.exceptions.PolarsError, OSError) as exc:
        if _is_csv(path) and "utf-8" in str(exc).lower():
            raise IngestError(path, _utf8_problem(path)) from exc
        raise IngestError(path, f"cannot read file ({_first_line(exc)})") from exc


def _utf8_problem(path: Path) -> str:
    """Describe where a file stops being UTF-8 (only called on the error path)."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"not valid UTF-8 at byte {exc.start} (line {line}); re-export as UTF-8"
    return "not valid UTF-8; re-export as UTF-8"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- one table -----------------------------------------------------------------------------------


def ingest_table(
    path: Path,
    table: str,
    *,
    now: datetime,
    parent_keys: Mapping[str, pl.Series | None] | None = None,
    existing_keys: pl.Series | None = None,
) -> tuple[ValidatedTable, TableReport]:
    """Read and validate one export file (no writing): the unit a benchmark times.

    Args:
        path: the export (``.csv``, ``.csv.gz`` or ``.parquet``).
        table: its table name in :data:`features.schema.TABLES`.
        now: ingest time (naive local); later dates are rejected.
        parent_keys: ``"table.column"`` -> accepted keys of referenced tables; references without
            keys are not checked (and listed in the report).
        existing_keys: primary keys already in the data directory (append mode).

    Raises:
        IngestError: unreadable file, bad encoding or missing required column.
    """
    start = time.perf_counter()
    raw = read_source(path)
    check_columns(path, table, raw.columns)
    result = validate_table(
        raw, table, source_file=path.name, now=now, parent_keys=parent_keys, existing_keys=existing_keys
    )
    seconds = time.perf_counter() - start
    report = TableReport(
        table=table,
        source_file=path.name,
        read=result.read,
        accepted=result.accepted.height,
        rejected=result.rejected_by_reason,
        wall_seconds=round(seconds, 4),
        unchecked_references=result.unchecked_references,
    )
    _log.info(
        "%s: read %d, accepted %d, rejected %d in %.2f s",
        path.name,
        report.read,
        report.accepted,
        report.rejected_total,
        seconds,
    )
    return result, report


# --- the whole directory -------------------------------------------------------------------------


def ingest(
    src: Path, out: Path, strict: bool = False, append: bool = False, now: datetime | None = None
) -> IngestReport:
    """Ingest every table export in ``src`` into the data directory ``out``.

    Args:
        src: directory of exports (see module docstring); other files and sub-folders are ignored.
        out: data directory; receives ``<table>.parquet``, ``rejects/<table>.parquet`` and
            ``ingest_report.json``. Tables not exported in ``src`` are left as they are.
        strict: if any row is rejected, write only the rejects and the report, leave the data
            tables unchanged and raise :class:`RejectedRowsError`.
        append: add the rows to the existing tables in ``out`` (e.g. a new month of loans): rows whose
            primary key is already there are rejected as ``DUPLICATE_ID`` and references are checked
            against the existing tables too.
        now: ingest time for the future-date check; defaults to the current local time.

    Returns:
        The report (also written to ``out/ingest_report.json``).

    Raises:
        IngestError: a file-level problem; nothing in ``out`` is changed.
        RejectedRowsError: strict mode and some rows were rejected.
    """
    started = time.perf_counter()
    src, out = Path(src), Path(out)
    now = (now or datetime.now()).replace(tzinfo=None)
    sources, ignored = discover_sources(src)
    if not sources:
        _log.warning("no table exports found in %s", src)
    # Headers first, so that a missing column fails before any table is processed.
    for table, path in sources.items():
        check_columns(path, table, read_header(path))

    report = IngestReport(str(src), str(out), now.isoformat(sep=" "), append, strict, ignored=ignored)
    staging = out / _STAGING
    if staging.exists():
        shutil.rmtree(staging)
    (staging / REJECTS_DIR).mkdir(parents=True)
    try:
        keys: dict[str, pl.Series | None] = {}
        for table, path in sources.items():
            existing = _existing_table(out, table) if append else None
            schema = TABLES[table]
            parents = {ref: _parent_keys(ref, keys, out) for ref in _refs(table)}
            existing_keys = (
                existing.get_column(schema.primary_key)
                if existing is not None and schema.primary_key is not None
                else None
            )
            result, table_report = ingest_table(path, table, now=now, parent_keys=parents, existing_keys=existing_keys)
            report.tables[table] = table_report
            accepted = result.accepted if existing is None else pl.concat([existing, result.accepted])
            if schema.primary_key is not None:
                keys[f"{table}.{schema.primary_key}"] = accepted.get_column(schema.primary_key)
            accepted.write_parquet(staging / f"{table}.parquet")
            result.rejects.write_parquet(staging / REJECTS_DIR / f"{table}.parquet")
        report.wall_seconds = round(time.perf_counter() - started, 4)
        _commit(staging, out, replace_tables=not (strict and report.rejected_total))
        report.write_json(out / REPORT_FILE)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    if strict and report.rejected_total:
        raise RejectedRowsError(report)
    return report


def _refs(table: str) -> list[str]:
    return [c.ref for c in TABLES[table].columns.values() if c.ref is not None]


def _existing_table(out: Path, table: str) -> pl.DataFrame | None:
    path = table_path(out, table)
    if not path.exists():
        return None
    try:
        return pl.read_parquet(path)
    except Exception as exc:
        raise IngestError(path, f"existing table is not readable ({_first_line(exc)})") from exc


def _parent_keys(ref: str, keys: Mapping[str, pl.Series | None], out: Path) -> pl.Series | None:
    """Accepted keys of a referenced table: from this run, else from the data directory, else None."""
    if ref in keys:
        return keys[ref]
    table, column = ref.split(".")
    path = table_path(out, table)
    if path.exists():
        return pl.read_parquet(path, columns=[column]).get_column(column)
    return None


def _commit(staging: Path, out: Path, *, replace_tables: bool) -> None:
    """Move staged outputs into ``out`` (rename, so each file appears whole)."""
    (out / REJECTS_DIR).mkdir(parents=True, exist_ok=True)
    for staged in sorted((staging / REJECTS_DIR).glob("*.parquet")):
        os.replace(staged, out / REJECTS_DIR / staged.name)
    if not replace_tables:
        return
    for staged in sorted(staging.glob("*.parquet")):
        os.replace(staged, out / staged.name)


__all__ = [
    "REJECT_COLUMNS",
    "IngestError",
    "IngestReport",
    "RejectedRowsError",
    "TableReport",
    "check_columns",
    "discover_sources",
    "ingest",
    "ingest_table",
    "read_header",
    "read_source",
]
