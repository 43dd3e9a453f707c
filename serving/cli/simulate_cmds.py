"""``yuedu simulate``: recommendations replayed in the synthetic city (issue 21)."""

from __future__ import annotations

import shlex
import sys
from datetime import datetime
from pathlib import Path

import typer

from serving.cli.recsys_cmds import RESULTS_DIR


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add this module's commands to the ``yuedu`` app."""
    app.command("simulate")(simulate_cmd)


def simulate_cmd(
    data: Path = typer.Option(None, "--data", help="A synthetic city directory (default: the profile, generated)."),
    profile: str = typer.Option("small", "--profile", help="Synthetic profile when --data is not given."),
    weeks: int = typer.Option(12, "--weeks", min=1, max=52, help="Weekly lists replayed."),
    lift: float = typer.Option(3.0, "--lift", min=0.0, help="A listed title's expected events × (1 + lift)."),
    cutoff: str = typer.Option("2026-03-01", "--cutoff", help="Train before this day; the replay starts on it."),
    seed: int = typer.Option(0, "--seed", help="Seed of the readers' draws."),
    out: Path = typer.Option(
        None, "--out", help="Directory for simulation.md/.json/.png (default: experiments/results)."
    ),
) -> None:
    """Availability-blind, today's filters and queue-aware + exposure-controlled lists, replayed:
    loans served, readers who found the book gone, waits, NDCG@10."""
    from rich.console import Console
    from rich.table import Table

    from features.datasets import load_dataset
    from recsys.evaluation.simulation import SimulationConfig, simulate, write_results

    data_dir = data or load_dataset("city", profile=profile).data_dir
    cfg = SimulationConfig(cutoff=datetime.fromisoformat(cutoff), weeks=weeks, lift=lift, seed=seed)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    with console.status("replaying the lists"):
        table, info = simulate(data_dir, cfg)
    t = Table(title=f"lists replayed in the synthetic city ({info['readers']:,} readers, {weeks} weeks)")
    for c in table.columns:
        t.add_column(c, justify="left" if c == "policy" else "right")
    for row in table.iter_rows():
        t.add_row(*(v if isinstance(v, str) else f"{v:,.3f}" if isinstance(v, float) else f"{v:,}" for v in row))
    console.print(t)
    command = "yuedu simulate" + (f" --data {shlex.quote(str(data))}" if data else f" --profile {profile}")
    command += f" --weeks {weeks} --lift {lift:g} --cutoff {cutoff} --seed {seed}"
    for p in write_results(table, info, out or RESULTS_DIR, command):
        console.print(f"written: {p}")
