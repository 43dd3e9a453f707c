"""``yuedu acquisition whatif | programme | pacing-goals``: the programme year replayed under another
policy, the programme's own figures, and the pacing experiment. Thin skins over
:mod:`acquisition.whatif`, :mod:`acquisition.programme_figures` and :mod:`acquisition.pacing_experiment`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer

from serving.cli.acquisition_group import ensure_registered
from serving.cli.errors import fail, positive_numbers


def whatif(
    policy: Path = typer.Option(..., "--policy", help="The proposed policy TOML."),
    data: Path = typer.Option(..., "--data", help="Data directory of last year's requests (with truth/ for loans)."),
    base: Path | None = typer.Option(None, "--base", help="The policy in force (default: the built-in policy)."),
    budget: float | None = typer.Option(
        None, "--budget", min=0.01, help="Annual money of both, yuan (default: each policy's funds, else the data's)."
    ),
    out: Path = typer.Option(Path("whatif"), "--out", help="Directory for whatif.json and whatif.png."),
) -> None:
    """Replay last year's requests on arrival under NEW.toml and the policy in force, side by side."""
    from rich.console import Console
    from rich.table import Table

    from acquisition.policy import PolicyError, load_policy
    from acquisition.whatif import plot_whatif, table_rows
    from acquisition.whatif import whatif as run

    try:
        report = run(data, load_policy(policy), load_policy(base), budget=budget)
    except (FileNotFoundError, PolicyError, ValueError) as err:
        fail(str(err))
    out.mkdir(parents=True, exist_ok=True)
    (out / "whatif.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    png = plot_whatif(report, out / "whatif.png")
    table = Table(title=f"what-if {report['year']['start'][:10]} .. {report['year']['end'][:10]}")
    for col in ("", report["in_force"]["policy"], report["proposed"]["policy"]):
        table.add_column(col)
    for row in table_rows(report):
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(f"written {out / 'whatif.json'} and {png}")


def programme(
    data: Path = typer.Option(..., "--data", help="Data directory."),
    as_of: datetime | None = typer.Option(None, "--as-of", help="Figures as of this time (default: last request)."),
    window_days: int = typer.Option(365, "--window-days", min=1, help="Requests of this many days, days."),
    months: int = typer.Option(12, "--months", min=1, max=60, help="Circulation follow-up after acquisition, months."),
    out: Path | None = typer.Option(None, "--out", help="Write the figures as JSON here."),
) -> None:
    """The programme's figures: matched circulation, dead on arrival, requesters served, equity."""
    from acquisition.programme_figures import programme_figures

    try:
        figures = programme_figures(data, as_of=as_of, window_days=window_days, months=months)
    except FileNotFoundError as err:
        fail(str(err))
    text = figures.model_dump_json(indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        typer.echo(f"written {out}")
    else:
        typer.echo(text)


def pacing_goals(
    data: Path = typer.Option(..., "--data", help="Synthetic city directory (with truth/)."),
    out: Path = typer.Option(Path("experiments/results/pacing"), "--out", help="Writes OUT.md and OUT.json."),
    shares: str = typer.Option("0.3,0.5,0.7", "--shares", help="Annual budgets as shares of eligible demand."),
) -> None:
    """The pacing experiment: fcfs vs paced vs the hindsight oracle over a programme year."""
    from acquisition.pacing_experiment import run_experiment

    values = positive_numbers("--shares", shares)
    try:
        md = run_experiment(data, out, shares=values)
    except FileNotFoundError as err:
        fail(str(err))
    typer.echo(md.read_text())


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add ``whatif``, ``programme`` and ``pacing-goals`` to the ``yuedu acquisition`` group."""
    group = ensure_registered(app)
    group.command("whatif")(whatif)
    group.command("programme")(programme)
    group.command("pacing-goals")(pacing_goals)
