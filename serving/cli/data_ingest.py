"""``yuedu data ingest``: validated ingestion of library exports into a data directory."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from features.ingest import IngestReport


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add this module's commands to the ``yuedu`` app."""
    data_app.command("ingest")(ingest_cmd)


def ingest_cmd(
    src: Path = typer.Argument(..., help="Directory of exports: <table>.csv / .csv.gz / .parquet."),
    out: Path = typer.Option(..., "--out", help="Data directory to write (<table>.parquet, rejects/)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 (and keep the data tables) if any row is rejected."),
    append: bool = typer.Option(False, "--append", help="Add rows to the existing tables in --out."),
    now: str = typer.Option(
        None, "--now", help="Ingest time for the future-date check, ISO format (default: current time)."
    ),
) -> None:
    """Validate exports against the data model; accepted rows to DATA, rejected rows to DATA/rejects.

    Exit codes: 0 done (even with rejects), 1 rows rejected under --strict, 2 a file could not be
    ingested (unreadable, missing column, not UTF-8).
    """
    from rich.console import Console

    from features.ingest import IngestError, RejectedRowsError, ingest

    err = Console(stderr=True)
    try:
        when = datetime.fromisoformat(now) if now else None
    except ValueError:
        err.print(f"error: --now '{now}' is not an ISO date/time", markup=False, highlight=False)
        raise typer.Exit(2) from None
    try:
        report = ingest(src, out, strict=strict, append=append, now=when)
    except IngestError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except RejectedRowsError as exc:
        _print_summary(exc.report)
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    _print_summary(report)


def _print_summary(report: IngestReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ingest {report.src} -> {report.out}")
    for name, justify in (
        ("table", "left"),
        ("file", "left"),
        ("read", "right"),
        ("accepted", "right"),
        ("rejected", "right"),
        ("reasons", "left"),
        ("rows/s", "right"),
    ):
        table.add_column(name, justify=justify)
    for t in report.tables.values():
        reasons = ", ".join(f"{code} {n}" for code, n in sorted(t.rejected.items(), key=lambda kv: -kv[1]))
        table.add_row(
            t.table,
            t.source_file,
            f"{t.read:,}",
            f"{t.accepted:,}",
            f"{t.rejected_total:,}",
            reasons,
            f"{t.rows_per_second:,.0f}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"{report.read_total:,} rows read, {report.rejected_total:,} rejected, {report.wall_seconds:.2f} s; "
        f"rejects in {report.out}/rejects/"
    )
    for t in report.tables.values():
        for ref in t.unchecked_references:
            console.print(f"[yellow]note[/]: reference {ref} not checked (parent table not available)")
    if report.ignored:
        console.print(f"ignored: {', '.join(report.ignored)}")
