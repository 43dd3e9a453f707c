"""Purchase lists as files for staff review: a ranking (:class:`acquisition.ranking.RankingResult`)
or a stored round (:class:`acquisition.rounds.Round`), as CSV or XLSX.

One writer per format: CSV is UTF-8 with a byte-order mark (so spreadsheet programs read Chinese
titles), XLSX has a ``lines`` sheet (frozen header, auto filter) and a ``summary`` sheet. Reader ids
stay out of files that travel by e-mail.

Both writers neutralise formula injection (OWASP "CSV injection"): a text cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return (a title such as ``=HYPERLINK(...)``) gets
a leading single quote, so no spreadsheet program evaluates it, and XLSX cells of text are written
as explicit string cells. Numbers stay numbers.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Literal

import polars as pl

from acquisition.ranking import RankingResult
from acquisition.rounds import Round

_log = logging.getLogger(__name__)

Format = Literal["csv", "xlsx"]

#: Columns of a round's export, in order, with their types.
_ROUND_SCHEMA = {
    "rank": pl.Int64,
    "request_id": pl.String,
    "isbn": pl.String,
    "title": pl.String,
    "author": pl.String,
    "publisher": pl.String,
    "clc_class": pl.String,
    "bookstore_id": pl.String,
    "district": pl.String,
    "price": pl.Float64,
    "selected": pl.Boolean,
    "predicted_loans": pl.Float64,
    "value": pl.Float64,
    "decision": pl.String,
    "decided_by": pl.String,
    "request_status": pl.String,
    "requested_at": pl.Datetime,
    "reasons": pl.String,
}
ROUND_COLUMNS = tuple(_ROUND_SCHEMA)


def ranking_table(result: RankingResult) -> pl.DataFrame:
    """A ranking's lines with list columns joined (``reason_codes`` as ``A;B``), figures rounded, and
    without reader ids."""
    return result.lines.drop("reader_id", strict=False).with_columns(
        pl.col("reason_codes").list.join(";"),
        pl.col("predicted_loans").round(2),
        pl.col("value").round(3),
        pl.col("gap_multiplier").round(3),
        pl.col("price").round(2),
    )


def round_table(round_: Round) -> pl.DataFrame:
    """A round's lines in rank order with the staff's decisions (reasons joined by ``; ``)."""
    rows = [
        {c: getattr(line, c) for c in ROUND_COLUMNS}
        | {
            "reasons": "; ".join(line.reasons),
            "decision": str(line.decision),
            "request_status": str(line.request_status),
        }
        for line in round_.lines
    ]
    return pl.DataFrame(rows, schema=_ROUND_SCHEMA).with_columns(
        pl.col("price").round(2), pl.col("predicted_loans").round(1), pl.col("value").round(3)
    )


def round_summary(round_: Round) -> dict[str, Any]:
    """The summary sheet of a round's workbook."""
    return {
        "round_id": round_.round_id,
        "status": str(round_.status),
        "period": round_.period,
        "ranker": round_.ranker,
        "lines": round_.n_lines,
        "selected": round_.n_selected,
        "approved": round_.n_approved,
    }


#: Columns of an order sheet, in order, with their types.
_ORDER_SCHEMA = {
    "isbn": pl.String,
    "title": pl.String,
    "author": pl.String,
    "publisher": pl.String,
    "price": pl.Float64,
    "quantity": pl.Int64,
    "branch": pl.String,
    "bookstore_id": pl.String,
    "fund": pl.String,
    "amount": pl.Float64,
}
ORDER_COLUMNS = tuple(_ORDER_SCHEMA)
#: The text of the totals row's first cell.
TOTAL_LABEL = "合计 total"


def order_table(round_: Round, branch_of: dict[str, str | None]) -> pl.DataFrame:
    """The order sheet of a round: its approved lines, one row per ISBN, price and receiving branch
    (``branch_of``: bookstore id -> branch id), with the quantity and the amount (price x quantity,
    yuan), by branch then title; no totals row (:func:`order_totals`)."""
    approved = [line for line in round_.lines if line.decision == "approve"]
    frame = pl.DataFrame(
        {
            "isbn": [x.isbn for x in approved],
            "title": [x.title for x in approved],
            "author": [x.author for x in approved],
            "publisher": [x.publisher for x in approved],
            "price_fen": [round(x.price * 100) for x in approved],
            "branch": [branch_of.get(x.bookstore_id) or "" for x in approved],
            "bookstore_id": [x.bookstore_id for x in approved],
        },
        schema={"isbn": pl.String, "title": pl.String, "author": pl.String, "publisher": pl.String,
                "price_fen": pl.Int64, "branch": pl.String, "bookstore_id": pl.String},
    )  # fmt: skip
    keys = ["isbn", "price_fen", "branch", "bookstore_id"]
    grouped = frame.group_by(keys, maintain_order=True).agg(
        pl.col("title").first(), pl.col("author").first(), pl.col("publisher").first(), pl.len().alias("quantity")
    )
    return grouped.sort("branch", "title", "isbn", nulls_last=True).select(
        "isbn", "title", "author", "publisher", (pl.col("price_fen") / 100).alias("price"),
        pl.col("quantity").cast(pl.Int64), "branch", "bookstore_id", pl.lit(round_.fund_id or "").alias("fund"),
        (pl.col("price_fen") * pl.col("quantity") / 100).alias("amount"),
    )  # fmt: skip


def order_totals(table: pl.DataFrame) -> dict[str, Any]:
    """Copies and yuan of an order sheet (summed in fen, so the total is exact to the fen)."""
    fen = int((table["amount"] * 100).round(0).sum()) if table.height else 0
    return {
        "titles": table["isbn"].n_unique() if table.height else 0,
        "copies": int(table["quantity"].sum()),
        "amount": fen / 100,
    }


def export_order_sheet(round_: Round, branch_of: dict[str, str | None], fmt: Format) -> bytes:
    """The order sheet as CSV or XLSX bytes, ending with a totals row (copies, amount); the XLSX
    summary sheet names the round, its month, fund and status."""
    table = order_table(round_, branch_of)
    totals = order_totals(table)
    total_row = pl.DataFrame(
        {"isbn": [TOTAL_LABEL], "quantity": [totals["copies"]], "amount": [totals["amount"]]},
        schema={"isbn": pl.String, "quantity": pl.Int64, "amount": pl.Float64},
    )
    sheet = pl.concat([table, total_row], how="diagonal_relaxed").select(ORDER_COLUMNS)
    if fmt == "csv":
        return csv_bytes(sheet)
    summary = {
        "round_id": round_.round_id,
        "period": round_.period,
        "fund": round_.fund_id or "",
        "status": str(round_.status),
        **totals,
    }
    return xlsx_bytes(sheet, summary, bold_last=True, sheet="order")


#: First characters that make a spreadsheet program read a text cell as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` with a leading single quote when it starts like a formula, else unchanged."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _safe_table(table: pl.DataFrame) -> pl.DataFrame:
    """Every text column (and the header) neutralised; other columns untouched."""
    text = [c for c, t in table.schema.items() if t == pl.String]
    formula = r"^[=+\-@\t\r]"
    safe = table.with_columns(
        pl.when(pl.col(c).str.contains(formula)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in text
    )
    return safe.rename({c: neutralise(c) for c in safe.columns if neutralise(c) != c})


def csv_bytes(table: pl.DataFrame) -> bytes:
    """The table as UTF-8 CSV with a header and a byte-order mark, formula-like text neutralised."""
    return "\ufeff".encode() + _safe_table(table).write_csv().encode()


def _cell(ws: Any, value: Any) -> Any:
    """An openpyxl cell for ``value``: text as an explicit string cell (never a formula)."""
    from openpyxl.cell.cell import Cell

    if isinstance(value, str):
        cell = Cell(ws, value=None)
        cell.value = neutralise(value)
        cell.data_type = "s"  # openpyxl would otherwise read a leading '=' as a formula
        return cell
    return value


def _format_sheet(ws: Any, table: pl.DataFrame) -> None:
    """Bold header, two decimals on money and figures, columns as wide as their content (capped)."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    for cell in ws[1]:
        cell.font = Font(bold=True)
    widths = table.select(pl.all().cast(pl.String).str.len_chars().max()).row(0) if table.height else ()
    for i, (name, dtype) in enumerate(table.schema.items(), start=1):
        letter = get_column_letter(i)
        content = widths[i - 1] if widths and widths[i - 1] is not None else 0
        ws.column_dimensions[letter].width = min(60, max(len(name), content) + 2)
        if dtype.is_float():
            for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                cell.number_format = "0.00"


def xlsx_bytes(table: pl.DataFrame, summary: dict[str, Any], *, bold_last: bool = False, sheet: str = "lines") -> bytes:
    """The table as an Excel workbook: sheet ``sheet`` (every row; ``bold_last``: the last is a totals
    row, in bold) and sheet ``summary`` (key, value)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append([_cell(ws, c) for c in table.columns])
    for row in table.iter_rows():  # openpyxl appends row by row; there is no columnar writer
        ws.append([_cell(ws, v) for v in row])
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(max(1, len(table.columns)))}{table.height + 1}"
    _format_sheet(ws, table)
    if bold_last and table.height:
        for cell in ws[table.height + 1]:
            cell.font = Font(bold=True)
    info = wb.create_sheet("summary")
    for key, value in summary.items():
        info.append(
            [_cell(info, str(key)), _cell(info, value if isinstance(value, int | float | None) else str(value))]
        )
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def export_round(round_: Round, fmt: Format) -> bytes:
    """A round's purchase list as CSV or XLSX bytes (the staff API's and pages' download)."""
    table = round_table(round_)
    return csv_bytes(table) if fmt == "csv" else xlsx_bytes(table, round_summary(round_))


def export_csv(result: RankingResult, path: str | Path) -> Path:
    """Write every line of a ranking to ``path`` (CSV as :func:`csv_bytes`); returns the path."""
    path = Path(path)
    path.write_bytes(csv_bytes(ranking_table(result)))
    _log.info("ranking %s: %d lines written to %s", result.round_id, result.lines.height, path)
    return path


def export_xlsx(result: RankingResult, path: str | Path) -> Path:
    """Write a ranking to an Excel workbook (sheets ``lines`` and ``summary``); returns the path."""
    path = Path(path)
    path.write_bytes(xlsx_bytes(ranking_table(result), result.summary()))
    _log.info("ranking %s: %d lines written to %s", result.round_id, result.lines.height, path)
    return path
