"""``yuedu acquisition demand-check``: the acquisition demand model replayed on real loans (SCO) or
ratings (MovieLens) against simple baselines. The work lives in :mod:`acquisition.demand_check`."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli.acquisition_group import ensure_registered
from serving.cli.errors import fail

#: Data sets the check knows.
KINDS = ("sco", "movielens")


def demand_check(
    data: str = typer.Option(..., "--data", help="Real data set: sco | movielens."),
    out: Path = typer.Option(Path("experiments/results"), "--out", help="Folder of demand-real.md and .json."),
    path: Path | None = typer.Option(None, "--path", help="Source folder (default ../shared/data/<set>)."),
    resamples: int = typer.Option(1000, "--resamples", help="Paired bootstrap resamples."),
) -> None:
    """Replay each year's acquisitions, predict their first-year loans as of the year's start, grade the ranking."""
    from acquisition.demand_check import render_table, run_check, write_results

    if data not in KINDS:
        fail(f"--data must be sco or movielens, not {data!r}")
    if resamples < 10:
        fail(f"--resamples must be at least 10, got {resamples}")
    if path is not None and not path.is_dir():
        fail(f"{path}: --path is not a folder")

    def progress(i: int, n: int, t) -> None:
        typer.echo(f"origin {i + 1}/{n}: {t:%Y-%m-%d}", err=True)

    result = run_check(data, path=path, n_boot=resamples, progress=progress)
    js, md = write_results(result, out)
    typer.echo(render_table(result))
    typer.echo(f"written {md} and {js}")


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add ``demand-check`` to the ``yuedu acquisition`` group."""
    ensure_registered(app).command("demand-check")(demand_check)
