"""Run the benchmarks, print one table, write ``bench.json`` and ``bench.md``.

:func:`run_bench` runs the benchmarks of :data:`BENCHMARKS` (or one of them) under a fixed thread
budget (threadpoolctl for BLAS/OpenMP, ``threads=`` for every model and its peer) and collects
their :class:`~benchmarks.harness.Row` s with the machine's state (cores, load average, thread
pools, library versions). A benchmark that fails is recorded with its error and the others still
run. :func:`write_report` writes the JSON (every figure and detail) and the Markdown table with the
analysis of each goal that falls short (``benchmarks/NOTES.md``, read by :func:`benchmarks.notes.load_notes`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_info, threadpool_limits

from benchmarks import ingest, latency, matrix, milp, scaling, synth, topn, training
from benchmarks.harness import DEFAULT_CACHE, REPO_ROOT, BenchContext, BenchError, Row, fmt
from benchmarks.notes import load_notes

_log = logging.getLogger(__name__)

#: Benchmarks by name, in run order (later ones reuse the city matrix and ALS model of earlier ones).
BENCHMARKS: dict[str, Callable[[BenchContext], Iterator[Row]]] = {
    "ingest": ingest.run,
    "matrix": matrix.run,
    "training": training.run,
    "topn": topn.run,
    "latency": latency.run,
    "milp": milp.run,
    "scaling": scaling.run,
    "synth": synth.run,
}
DEFAULT_OUT = REPO_ROOT / "experiments" / "results"


@dataclass
class BenchReport:
    """Rows of one run, failures by benchmark name, the environment and wall seconds per benchmark."""

    quick: bool
    rows: list[Row] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "env": self.env,
            "seconds": self.seconds,
            "errors": self.errors,
            "rows": [r.to_dict() for r in self.rows],
        }


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "scipy", "polars", "implicit", "threadpoolctl"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def environment(threads: int) -> dict[str, Any]:
    """Cores, load, thread pools (as limited for the run) and versions: what a figure depends on."""
    import polars as pl

    pools = [
        {k: p.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "architecture")}
        for p in threadpool_info()
    ]
    return {
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "threads": threads,
        "polars_threads": pl.thread_pool_size(),
        "thread_pools": pools,
        "versions": _versions(),
    }


def run_bench(
    quick: bool = False,
    only: str | None = None,
    threads: int | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Run every benchmark (or ``only`` one) and return the report.

    Args:
        quick: small data everywhere (a smoke test: well under a minute, figures not meaningful).
        only: a name of :data:`BENCHMARKS`.
        threads: threads for models, BLAS and peers alike (default: all cores).
        cache_dir: generated-data cache (default ``<repo>/.cache/bench``).
        progress: called with each benchmark's name before it runs.

    Raises:
        BenchError: ``only`` is not a benchmark name.
    """
    if only is not None and only not in BENCHMARKS:
        raise BenchError(f"unknown benchmark {only!r}; choose one of {', '.join(BENCHMARKS)}")
    threads = threads or os.cpu_count() or 1
    ctx = BenchContext(quick=quick, threads=threads, cache_dir=Path(cache_dir or DEFAULT_CACHE))
    report = BenchReport(quick=quick)
    names = [only] if only else list(BENCHMARKS)
    with threadpool_limits(limits=threads):
        report.env = environment(threads)
        for name in names:
            if progress is not None:
                progress(name)
            t0 = time.perf_counter()
            try:
                for row in BENCHMARKS[name](ctx):
                    report.rows.append(row)
            except Exception as exc:  # noqa: BLE001 - one failing benchmark must not lose the others
                _log.error("benchmark %s failed: %s\n%s", name, exc, traceback.format_exc())
                report.errors[name] = f"{type(exc).__name__}: {exc}"
            report.seconds[name] = round(time.perf_counter() - t0, 2)
    report.env["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


# --- writing ---------------------------------------------------------------------------------------


def _details(row: Row) -> str:
    """The row's most telling extra facts, short."""
    e = row.extra
    if row.bench == "latency":
        return f"p50 {fmt(e['p50_ms'])} ms, max {fmt(e['max_ms'])} ms, {e['calls']} calls"
    if row.bench == "milp":
        gain = e.get("gain_over_greedy")
        gap = e.get("mip_gap")
        return (
            f"MIP gap {'-' if gap is None else f'{gap:.2%}'}, value vs greedy "
            f"{'-' if gain is None else f'{gain:+.2%}'}, greedy breaks: {', '.join(e['greedy_violations']) or 'none'}"
        )
    if row.bench == "scaling":
        sizes = e["sizes"]
        units = next(k for k in e if k not in ("sizes", "seconds", "peak_rss_mb"))
        return "; ".join(
            f"{s}: {fmt(n)} {units} {fmt(t)} s {fmt(m)} MB"
            for s, n, t, m in zip(sizes, e[units], e["seconds"], e["peak_rss_mb"], strict=True)
        )
    if "seconds" in e and "peer_seconds" in e:
        return f"{fmt(e['seconds'])} s vs {fmt(e['peer_seconds'])} s"
    if "shape" in e:
        return f"shape {e['shape'][0]:,} x {e['shape'][1]:,}, nnz {e['nnz']:,}"
    if "readers" in e:
        return f"{e['readers']:,} readers x {e['titles']:,} titles in {fmt(e['seconds'])} s"
    return ""


def markdown(report: BenchReport) -> str:
    """The report as Markdown: environment, one table of every figure, analysis of short goals."""
    env = report.env
    pools = ", ".join(f"{p['internal_api']} {p['version']} x{p['num_threads']}" for p in env.get("thread_pools", []))
    lines = [
        f"# yuedu bench{' --quick' if report.quick else ''}",
        "",
        f"Run {env.get('started')} on {env.get('cpu_count')} cores ({env.get('machine')}), "
        f"load average {env.get('load_average_1_5_15')} before and {env.get('load_average_after')} after "
        "(the machine is shared with other engineers: absolute figures are noisy, ratios to peers "
        "measured in the same run less so).",
        f"Threads: {env.get('threads')} for models and peers; thread pools {pools}; polars {env.get('polars_threads')}.",
        f"Versions: {', '.join(f'{k} {v}' for k, v in env.get('versions', {}).items())}.",
        f"Wall time per benchmark (s): {', '.join(f'{k} {v}' for k, v in report.seconds.items())}.",
        "",
        "| benchmark | figure | yuedu | peer | peer value | ratio | goal | status | peak RSS MB | details |",
        "|---|---|---:|---|---:|---:|---|---|---:|---|",
    ]
    for r in report.rows:
        goal = "" if r.goal is None else (f"ratio {r.goal}" if r.goal_on == "ratio" else str(r.goal))
        lines.append(
            f"| {r.bench} | {r.name} | {fmt(r.value)} {r.unit} | {r.peer or ''} | {fmt(r.peer_value)} | "
            f"{fmt(r.ratio)} | {goal} | {r.status or ''} | {fmt(r.peak_rss_mb)} | {_details(r)} |"
        )
    if report.errors:
        lines += ["", "## Benchmarks that failed", ""]
        lines += [f"- **{name}**: {msg}" for name, msg in report.errors.items()]
    short = [r for r in report.rows if r.status == "short"]
    if short:
        notes = load_notes()
        lines += ["", "## Goals short: why, and what would close them", ""]
        for r in short:
            lines.append(f"- **{r.key}**: {notes.get(r.key, 'no analysis recorded yet for this figure.')}")
    return "\n".join(lines) + "\n"


def write_report(report: BenchReport, out_dir: Path) -> tuple[Path, Path]:
    """Write ``bench.json`` and ``bench.md`` into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "bench.json", out_dir / "bench.md"
    js.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    md.write_text(markdown(report))
    return js, md
