"""Export a ranking run (:class:`acquisition.ranking.RunResult`) as CSV or XLSX for staff review."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from acquisition.ranking import RunResult

_log = logging.getLogger(__name__)


def _flat(result: RunResult) -> pl.DataFrame:
    """Lines with list columns joined (``reason_codes`` as ``A;B``) and money rounded to fen. Reader
    ids stay out of files that travel by e-mail."""
    return result.lines.drop("reader_id", strict=False).with_columns(
        pl.col("reason_codes").list.join(";"),
        pl.col("predicted_loans").round(2),
        pl.col("value").round(3),
        pl.col("gap_multiplier").round(3),
        pl.col("price").round(2),
    )


def export_csv(result: RunResult, path: str | Path) -> Path:
    """Write every line of the run to ``path`` (UTF-8 CSV with header); returns the path."""
    path = Path(path)
    _flat(result).write_csv(path)
    _log.info("run %s: %d lines written to %s", result.run_id, result.lines.height, path)
    return path


def export_xlsx(result: RunResult, path: str | Path) -> Path:
    """Write the run to an Excel workbook: sheet ``lines`` (every line) and ``summary``."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    path = Path(path)
    flat = _flat(result)
    wb = Workbook()
    ws = wb.active
    ws.title = "lines"
    ws.append(flat.columns)
    for row in flat.iter_rows():  # openpyxl appends row by row; there is no columnar writer
        ws.append(list(row))
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(flat.columns))}{flat.height + 1}"
    summary = wb.create_sheet("summary")
    for key, value in result.summary().items():
        summary.append([key, value])
    wb.save(path)
    _log.info("run %s: %d lines written to %s", result.run_id, flat.height, path)
    return path
