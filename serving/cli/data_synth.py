"""``yuedu data synth``: generate the synthetic city (see docs/synthetic-city.md)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add this module's commands to the ``yuedu`` app."""

    @data_app.command("synth")
    def synth(
        profile: str = typer.Option("small", "--profile", help="Size: 'small' (tests, demo) or 'city' (full scale)."),
        seed: int = typer.Option(0, "--seed", help="Random seed; same profile and seed give identical files."),
        out: Path = typer.Option(Path("data/synth"), "--out", help="Output directory (Parquet tables + truth/)."),
        catalogue: Path | None = typer.Option(
            None, "--catalogue", help="Directory with a titles.parquet of real titles to mix in."
        ),
        dirty_rate: float = typer.Option(
            0.0, "--dirty-rate", help="Fraction of malformed rows to inject into loans, titles and copies."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Generate a synthetic city network's data with known latent reader tastes."""
        from rich.console import Console
        from rich.table import Table

        from features.synth import PROFILES, synthesize

        console = Console()
        if profile not in PROFILES:
            console.print(f"[red]unknown profile '{profile}'[/red]; choose one of {', '.join(sorted(PROFILES))}")
            raise typer.Exit(2)
        if catalogue is not None and not (catalogue / "titles.parquet").is_file():
            console.print(f"[red]{catalogue}/titles.parquet not found[/red] (make it with `yuedu data goodbooks`)")
            raise typer.Exit(2)
        try:
            summary = synthesize(profile, seed, out, catalogue=catalogue, dirty_rate=dirty_rate, progress=not quiet)
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
        table = Table(title=f"synthetic city '{profile}' (seed {seed}) → {out}")
        table.add_column("table")
        table.add_column("rows", justify="right")
        for name, n in summary.counts.items():
            table.add_row(name, f"{n:,}")
        for name, n in summary.defects.items():
            table.add_row(f"[yellow]defect: {name}[/yellow]", f"{n:,}")
        console.print(table)
        console.print(f"done in {summary.seconds:.1f} s")
