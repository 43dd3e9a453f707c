"""``yuedu bench [--quick] [--only NAME]``: the benchmark suite (issue 7).

The suite is tooling, not product: it lives in the top-level ``benchmarks`` package, imported here
inside the command only (the one place a product module may import it), so an installation without
``benchmarks`` still runs every other command and this one says what is missing.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from features.errors import Unavailable

console = Console(stderr=True, width=200)


def bench_cmd(
    quick: bool = typer.Option(False, "--quick", help="Small data everywhere: a smoke test in under a minute."),
    only: str = typer.Option(
        None, "--only", help="Run one benchmark: ingest, matrix, training, topn, latency, milp, scaling."
    ),
    threads: int = typer.Option(
        None, "--threads", min=1, help="Threads for models, BLAS and peers (default: all cores)."
    ),
    out: Path = typer.Option(
        None,
        help="Where bench.json and bench.md go (default: experiments/results; with --quick or --only under .cache/bench/).",
    ),
    cache: Path = typer.Option(None, help="Generated-data cache (default: .cache/bench)."),
) -> None:
    """Benchmark every step against its best peer in the same run; write bench.json and bench.md."""
    try:
        from benchmarks import BenchError, run_bench, write_report
        from benchmarks.harness import DEFAULT_CACHE, fmt
        from benchmarks.runner import DEFAULT_OUT
    except ModuleNotFoundError as exc:
        if exc.name != "benchmarks":
            raise
        raise Unavailable(
            "the benchmarks package is not installed: run `yuedu bench` from a source checkout (make install)"
        ) from None

    try:
        with console.status("benchmarking") as status:
            report = run_bench(
                quick=quick,
                only=only,
                threads=threads,
                cache_dir=cache,
                progress=lambda n: status.update(f"bench: {n}"),
            )
    except BenchError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    table = Table(title=f"yuedu bench{' --quick' if quick else ''} ({report.env['threads']} threads)")
    for col, justify in (
        ("figure", "left"),
        ("yuedu", "right"),
        ("peer", "right"),
        ("ratio", "right"),
        ("goal", "left"),
        ("status", "left"),
    ):
        table.add_column(col, justify=justify)
    for r in report.rows:
        goal = "" if r.goal is None else (f"ratio {r.goal}" if r.goal_on == "ratio" else str(r.goal))
        status = {"pass": "[green]pass[/green]", "short": "[red]short[/red]"}.get(r.status or "", "")
        table.add_row(f"{r.bench}: {r.name}", f"{fmt(r.value)} {r.unit}", fmt(r.peer_value), fmt(r.ratio), goal, status)
    console.print(table)
    # Only a full run replaces the committed results; --quick and --only go to the cache unless --out says so.
    if out is not None:
        out_dir = out
    elif quick:
        out_dir = DEFAULT_CACHE / "quick"
    elif only:
        out_dir = DEFAULT_CACHE / f"only-{only}"
    else:
        out_dir = DEFAULT_OUT
    js, md = write_report(report, out_dir)
    console.print(f"wrote {js} and {md}")
    for name, msg in report.errors.items():
        console.print(f"[red]{name} failed:[/red] {msg}")
    if report.errors:
        raise typer.Exit(1)


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add ``yuedu bench``."""
    app.command("bench")(bench_cmd)
