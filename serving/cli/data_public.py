"""``yuedu data sco | goodbooks | interactions | describe``: public data sets and data-directory summaries."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from features.adapters import AdapterReport


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add this module's commands to the ``yuedu`` app."""
    data_app.command("sco")(sco_cmd)
    data_app.command("goodbooks")(goodbooks_cmd)
    data_app.command("interactions")(interactions_cmd)
    data_app.command("describe")(describe_cmd)


def _run(fn, *args, **kwargs) -> None:
    """Run an adapter, print its summary; an AdapterError becomes one line on stderr and exit code 2."""
    from rich.console import Console

    from features.adapters import AdapterError

    try:
        report = fn(*args, **kwargs)
    except AdapterError as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    _print_report(report)


def _print_report(report: AdapterReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{report.adapter} -> {report.out}  ({report.seconds:.2f} s)")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("rejects", justify="left")
    for name, rows in report.rows.items():
        reasons = report.rejects.get(name, {})
        table.add_row(name, f"{rows:,}", ", ".join(f"{k} {v:,}" for k, v in reasons.items()))
    console.print(table)
    facts = Table(show_header=False, box=None)
    for k, v in {**report.counts, **report.notes}.items():
        facts.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    console.print(facts)


def sco_cmd(
    src: Path = typer.Argument(..., help="The sco-lending-library folder (loans, books, members .csv[.gz])."),
    out: Path = typer.Option(..., "--out", help="Data directory to write."),
) -> None:
    """Shakespeare and Company lending-library loans -> branches, readers, titles, loans (+ rejects/, audit/)."""
    from features.adapters import adapt_sco

    _run(adapt_sco, src, out)


def goodbooks_cmd(
    src: Path = typer.Argument(..., help="The goodbooks-10k folder (books.csv, tags.csv)."),
    out: Path = typer.Option(..., "--out", help="Data directory to write."),
) -> None:
    """goodbooks-10k catalogue -> titles (ISBN-13 recovered where possible) and tags (+ rejects/)."""
    from features.adapters import adapt_goodbooks

    _run(adapt_goodbooks, src, out)


def interactions_cmd(
    file: Path = typer.Argument(..., help="User-item events: .csv, .csv.gz or .parquet."),
    user_col: str = typer.Option(..., "--user-col", help="Column of user (reader) ids."),
    item_col: str = typer.Option(..., "--item-col", help="Column of item (title) ids."),
    out: Path = typer.Option(..., "--out", help="Data directory to write."),
    weight_col: str = typer.Option(None, "--weight-col", help="Column of explicit values (ratings)."),
    time_col: str = typer.Option(None, "--time-col", help="Column of times: epoch seconds/ms or ISO-8601."),
    sep: str = typer.Option(None, "--sep", help="Separator (default: detected from the header; 'tab' for \\t)."),
    encoding: str = typer.Option(None, "--encoding", help="Text encoding (default: BOM, else UTF-8)."),
    items_file: Path = typer.Option(None, "--items-file", help="Item metadata file -> titles table."),
    item_title_col: str = typer.Option(None, "--item-title-col", help="Title column of --items-file."),
) -> None:
    """Any user-item file -> interactions (reader_id, title_id, occurred_at, channel, value)."""
    from features.adapters import adapt_interactions

    _run(
        adapt_interactions,
        file,
        out,
        user_col=user_col,
        item_col=item_col,
        weight_col=weight_col,
        time_col=time_col,
        sep=sep,
        encoding=encoding,
        items_file=items_file,
        item_title_col=item_title_col,
    )


def describe_cmd(
    data_dir: Path = typer.Argument(..., help="A data directory (<table>.parquet files)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Counts, matrix density, interactions per reader/title, loans by branch, channel, month, CLC class."""
    import json

    from rich.console import Console

    from features.describe import describe

    try:
        summary = describe(data_dir)
    except FileNotFoundError as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    render_summary(summary, Console())


def render_summary(summary: dict, console) -> None:
    """Rich rendering of :func:`features.describe.describe`'s summary."""
    from rich.table import Table

    def table(title: str, columns: list[str], rows: list[list]) -> None:
        t = Table(title=title, title_justify="left")
        for i, c in enumerate(columns):
            t.add_column(c, justify="left" if i == 0 else "right")
        for r in rows:
            t.add_row(*[f"{v:,}" if isinstance(v, int) else f"{v:,.2f}" if isinstance(v, float) else str(v) for v in r])
        console.print(t)

    table("tables", ["table", "rows"], [[k, v] for k, v in summary["tables"].items()])
    ev = summary["events"]
    console.print(f"events: {ev['count']:,} from {', '.join(ev['sources']) or 'none'}  ({ev['first']} .. {ev['last']})")
    if "matrix" not in summary:
        return
    m = summary["matrix"]
    console.print(
        f"reader x title matrix: {m['readers']:,} x {m['titles']:,}, {m['pairs']:,} pairs, density {m['density']:.3%}"
    )
    keys = ["p10", "p50", "p90", "p99", "max", "mean"]
    table(
        "events per reader / title",
        ["", *keys],
        [
            ["per reader", *(summary["per_reader"][k] for k in keys)],
            ["per title", *(summary["per_title"][k] for k in keys)],
        ],
    )
    if summary.get("by_branch"):
        table(
            "loans by branch (top 10)",
            ["branch", "name", "district", "loans"],
            [[r["branch_id"], r.get("name") or "", r.get("district") or "", r["loans"]] for r in summary["by_branch"]],
        )
    table("events by channel", ["channel", "events"], [[r["channel"], r["events"]] for r in summary["by_channel"]])
    months = summary["by_month"]
    shown = months[-24:]
    title = "events by month" + (f" (last 24 of {len(months)})" if len(months) > 24 else "")
    table(title, ["month", "events"], [[r["month"], r["events"]] for r in shown])
    if summary.get("top_clc"):
        table(
            "top CLC classes",
            ["class", "name", "events", "titles"],
            [[r["clc"], r["name"], r["events"], r["titles"]] for r in summary["top_clc"]],
        )
