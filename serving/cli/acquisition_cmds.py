"""``yuedu acquisition rank | report | backtest``: ranking online requests into an acquisition round,
collection analytics and the selection backtest. Library code lives in ``acquisition``; these are thin skins."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from serving.cli.acquisition_group import ensure_registered
from serving.cli.errors import fail, positive_numbers


def rank(
    data: Path = typer.Option(..., "--data", help="Data directory (Parquet tables)."),
    budget: float = typer.Option(..., "--budget", help="Budget of the round, yuan."),
    since: datetime | None = typer.Option(None, "--since", help="Only requests at or after this time."),
    channel: str = typer.Option("online", "--channel", help="Request channel to rank (online/counter/all)."),
    method: str = typer.Option("milp", "--method", help="milp | greedy | fcfs."),
    policy: Path | None = typer.Option(None, "--policy", help="Policy TOML (default: the built-in policy)."),
    out: Path | None = typer.Option(None, "--out", help="Write the ranked purchase list as .csv or .xlsx."),
    db: str | None = typer.Option(
        None, "--db", help="Save the ranking as a staff round in this acquisition database (URL or path)."
    ),
    time_limit: float = typer.Option(60.0, "--time-limit", help="MILP time limit, seconds."),
) -> None:
    """Rank requests together within a budget (an acquisition round) and show the selection."""
    import polars as pl
    from rich.console import Console
    from rich.table import Table

    from acquisition.optimize import InfeasibleSelection
    from acquisition.policy import PolicyError, load_policy
    from acquisition.ranking import RankingParams, rank_requests
    from features.schema import scan_table

    if method not in ("milp", "greedy", "fcfs"):
        fail(f"--method must be milp, greedy or fcfs, not {method!r}")
    try:
        pol = load_policy(policy)
        requests = scan_table(data, "purchase_requests")
        if channel != "all":
            requests = requests.filter(pl.col("channel") == channel)
        if since is not None:
            requests = requests.filter(pl.col("requested_at") >= since)
        frame = requests.collect()
        if frame.is_empty():
            fail("no requests match the filters")
        result = rank_requests(frame, data, pol, budget, RankingParams(method=method, time_limit=time_limit))
    except (FileNotFoundError, PolicyError, InfeasibleSelection, ValueError) as err:
        fail(str(err))
    console = Console()
    table = Table(title=f"round {result.round_id}")
    for col in ("rank", "request_id", "selected", "predicted_loans", "value", "price", "district", "reasons"):
        table.add_column(col)
    for row in result.lines.head(25).iter_rows(named=True):
        table.add_row(
            str(row["rank"]),
            row["request_id"],
            "yes" if row["selected"] else "",
            "" if row["predicted_loans"] is None else f"{row['predicted_loans']:.1f}",
            f"{row['value']:.2f}",
            f"{row['price']:.2f}",
            str(row["district"]),
            row["reasons"],
        )
    console.print(table)
    console.print(result.summary())
    if out is not None:
        from acquisition.export import export_csv, export_xlsx

        path = export_xlsx(result, out) if out.suffix.lower() == ".xlsx" else export_csv(result, out)
        console.print(f"written {path}")
    if db is not None:
        from acquisition.db import init_db
        from acquisition.rounds import save_round

        database = init_db(db)
        with database.session_scope(write=True) as session:
            n = save_round(session, result, created_by="cli")
        console.print(f"saved round {result.round_id} ({n} lines) to {db}")


def report(
    data: Path = typer.Option(..., "--data", help="Data directory (Parquet tables)."),
    out: Path = typer.Option(Path("collection-report.md"), "--out", help="Markdown file (HTML and PNGs beside it)."),
    window_days: int = typer.Option(365, "--window-days", help="Demand window, days."),
    dead_months: int = typer.Option(24, "--dead-months", help="No loan for this long = dead stock, months."),
) -> None:
    """Collection analytics: turnover, gaps, holds alerts, dead stock, the reader-choice KPI."""
    from acquisition.analytics import collection_metrics, write_report

    try:
        metrics = collection_metrics(data, window_days=window_days, dead_months=dead_months)
    except FileNotFoundError as err:
        fail(str(err))
    md, html = write_report(metrics, out)
    typer.echo(f"written {md} and {html}")


def backtest(
    data: Path = typer.Option(..., "--data", help="Synthetic city directory (with truth/)."),
    out: Path = typer.Option(
        Path("experiments/results/acquisition_backtest.md"), "--out", help="Markdown report to write."
    ),
    scales: str = typer.Option(
        "1,0.5,0.3", "--scales", help="Budget scenarios: comma-separated multiples of the months' budget lines."
    ),
) -> None:
    """Replay a held-out year of requests month by month: FCFS vs greedy vs MILP vs the oracle."""
    from acquisition.backtest import backtest as run

    factors = positive_numbers("--scales", scales)
    try:
        path = run(data, out, scales=factors)
    except FileNotFoundError as err:
        fail(str(err))
    typer.echo(path.read_text())


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add ``rank``, ``report`` and ``backtest`` to the ``yuedu acquisition`` group."""
    group = ensure_registered(app)
    group.command("rank")(rank)
    group.command("report")(report)
    group.command("backtest")(backtest)
