"""``yuedu acquisition funds | settle | close-year``: the programme's money from a shell (the funds'
budget report, the monthly settlement with the bookstores, the fiscal-year close). Thin skins over
:mod:`acquisition.funds` and :mod:`acquisition.settlement`; library imports happen inside the commands."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from serving.cli.acquisition_group import ensure_registered
from serving.cli.counter_cmds import DB_HELP, POLICY_HELP, _open


def funds_cmd(
    year: str = typer.Option(..., "--year", help="Programme year 'YYYY'."),
    db: str = typer.Option("yuedu-acquisition.db", "--db", help=DB_HELP),
    policy: Path | None = typer.Option(None, "--policy", help=POLICY_HELP),
) -> None:
    """The funds' budget report: planned / encumbered / spent / free per fund and month (yuan)."""
    from rich.console import Console
    from rich.table import Table

    from acquisition.funds import budget_report

    _, database, _ = _open(db, policy, None, load=False)
    report = budget_report(database, year)
    table = Table(title=f"funds {report.year}" + (" (closed)" if report.closed else ""))
    for col in ("fund", "period", "parent", "planned", "encumbered", "spent", "free", "room"):
        table.add_column(col, justify="right" if col not in ("fund", "period", "parent") else "left")
    for r in report.rows:
        money = (r.planned_fen, r.encumbered_fen, r.spent_fen, r.free_fen, r.room_fen)
        table.add_row(r.fund_id, r.period, r.parent_id or "", *(f"{v / 100:,.2f}" for v in money))
    Console().print(table)


def settle_cmd(
    month: str = typer.Option(..., "--month", help="Settlement month 'YYYY-MM'."),
    out: Path = typer.Option(..., "--out", help="Directory for the statements (CSV and XLSX per bookstore)."),
    bookstore: str | None = typer.Option(None, "--bookstore", help="One bookstore id (default: all)."),
    db: str = typer.Option("yuedu-acquisition.db", "--db", help=DB_HELP),
    policy: Path | None = typer.Option(None, "--policy", help=POLICY_HELP),
    at: datetime | None = typer.Option(None, "--at", help="Time of the posting (default now)."),
) -> None:
    """Invoice the month's purchases at the agreed discounts, write the statements, check they balance."""
    from acquisition.settlement import reconcile, settle, write_statement
    from serving.cli.errors import fail

    pol, database, _ = _open(db, policy, None, load=False)
    posted = settle(database, pol, month, bookstore_id=bookstore, actor="cli", now=at or datetime.now())
    files = write_statement(database, pol, month, out, bookstore_id=bookstore)
    net, spend = reconcile(database, pol, month, bookstore)
    typer.echo(
        f"invoiced now: {posted / 100:.2f} yuan; month net due {net / 100:.2f} yuan; ledger spend {spend / 100:.2f}"
    )
    for path in files:
        typer.echo(f"wrote {path}")
    if net != spend:
        fail(f"settlement {month}: statement {net} fen differs from the ledger's {spend} fen", exit_code=1)


def close_year_cmd(
    year: str = typer.Argument(..., help="Programme year to close, 'YYYY'."),
    db: str = typer.Option("yuedu-acquisition.db", "--db", help=DB_HELP),
    policy: Path | None = typer.Option(None, "--policy", help=POLICY_HELP),
    at: datetime | None = typer.Option(None, "--at", help="Time of the close (default now)."),
) -> None:
    """Close a programme year: carry open encumbrances, return or carry unspent money (once; audited)."""
    from acquisition.funds import close_year

    _, database, _ = _open(db, policy, None, load=False)
    summary = close_year(database, year, actor="cli", now=at or datetime.now())
    state = "already closed" if summary["already_closed"] else "closed"
    typer.echo(
        f"{year} {state}: encumbrances carried {summary['carried_encumbrance_fen'] / 100:.2f} yuan, "
        f"unspent carried {summary['carried_unspent_fen'] / 100:.2f}, returned {summary['returned_fen'] / 100:.2f}"
    )


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add the money commands to the shared ``acquisition`` group."""
    group = ensure_registered(app)
    group.command("funds")(funds_cmd)
    group.command("settle")(settle_cmd)
    group.command("close-year")(close_year_cmd)
