"""Benchmark data: synthetic cities generated once into the cache, their CSV exports, a doubled city.

Cities live in ``<cache>/synth-<profile>-s<seed>-<key>/`` where ``key`` hashes the generator's
source files, the profile and the seed: a changed generator makes a new city, an unchanged one is
reused across runs (the city profile takes about a minute to generate). Builds go to a temporary
sibling renamed into place when complete, so an interrupted run never leaves a half city.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from benchmarks.harness import SHARED_DATA, BenchContext, BenchError
from features.schema import scan_table, table_path

_log = logging.getLogger(__name__)

FEATURES_DIR = Path(__file__).resolve().parents[1] / "features"


def _cache_root(ctx: BenchContext) -> Path:
    root = Path(ctx.cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return root


def _generator_key(profile: str, seed: int) -> str:
    h = hashlib.sha256(f"{profile}|{seed}".encode())
    for path in sorted([*FEATURES_DIR.glob("synth*.py"), FEATURES_DIR / "circulation.py"]):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def city_dir(ctx: BenchContext, profile: str | None = None) -> Path:
    """The data directory of a synthetic city (``profile`` default: ``small`` when quick, else
    ``city``), generated into the cache on first use."""
    from features.synth import synthesize

    profile = profile or ("small" if ctx.quick else "city")
    root = _cache_root(ctx)
    out = root / f"synth-{profile}-s{ctx.seed}-{_generator_key(profile, ctx.seed)}"
    if (out / "manifest.json").exists():
        return out
    tmp = root / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    _log.info("generating the %s synthetic city (seed %d) into %s", profile, ctx.seed, out)
    synthesize(profile, ctx.seed, tmp, progress=False)
    tmp.rename(out)
    return out


def loans_csv(data_dir: Path) -> Path:
    """The loans table of ``data_dir`` as a CSV export (what a library system hands over), cached
    beside it in ``exports/loans.csv``."""
    out = data_dir / "exports" / "loans.csv"
    if not out.exists():
        out.parent.mkdir(exist_ok=True)
        tmp = out.with_suffix(".tmp")
        pl.read_parquet(table_path(data_dir, "loans")).write_csv(tmp)
        tmp.rename(out)
    return out


def parent_keys(data_dir: Path) -> dict[str, pl.Series]:
    """Accepted keys of the tables loans reference (``"table.column"`` -> keys), as ingest passes them."""
    keys = {}
    for table, column in (("readers", "reader_id"), ("copies", "copy_id"), ("titles", "title_id")):
        keys[f"{table}.{column}"] = scan_table(data_dir, table).select(column).collect().to_series()
    keys["branches.branch_id"] = scan_table(data_dir, "branches").select("branch_id").collect().to_series()
    return keys


def repeated_loans_csv(data_dir: Path, copies: int) -> tuple[Path, dict[str, pl.Series]]:
    """A city with ``copies`` times the readers and loans (same catalogue and branches): every reader
    and loan of ``data_dir`` appears ``copies`` times, the k-th copy's ids suffixed ``~k``. Returns
    its loans CSV export and the parent keys to ingest it against.

    ``features.synth`` has no larger profile than ``city``; repeating the population keeps the
    taste structure and multiplies exactly the quantities that grow with a bigger network."""
    if copies == 1:
        return loans_csv(data_dir), parent_keys(data_dir)
    out = data_dir / "exports" / f"loans-x{copies}.csv"
    loans = pl.scan_parquet(table_path(data_dir, "loans"))
    if not out.exists():
        out.parent.mkdir(exist_ok=True)
        twins = [
            loans.with_columns(pl.col("loan_id") + f"~{k}", pl.col("reader_id") + f"~{k}") for k in range(2, copies + 1)
        ]
        tmp = out.with_suffix(".tmp")
        pl.concat([loans, *twins]).collect().write_csv(tmp)
        tmp.rename(out)
    keys = parent_keys(data_dir)
    readers = keys["readers.reader_id"]
    keys["readers.reader_id"] = pl.concat([readers] + [readers + f"~{k}" for k in range(2, copies + 1)])
    return out, keys


def interactions(data_dir: Path, copies: int = 1) -> pl.DataFrame:
    """All reader–title events of ``data_dir`` (loans + e-book events) in memory, optionally with the
    population repeated ``copies`` times (reader ids suffixed ``~k``)."""
    from features.interactions import load_interactions

    frame = load_interactions(data_dir).collect()
    if copies > 1:
        frame = pl.concat([frame] + [frame.with_columns(pl.col("reader_id") + f"~{k}") for k in range(2, copies + 1)])
    return frame


@dataclass
class PublicSet:
    """A public data set's interactions (``interactions`` schema) and its name."""

    name: str
    frame: pl.DataFrame


def movielens() -> PublicSet | None:
    """MovieLens latest-small ratings as interaction events (value = the rating), or None when the
    shared data folder is absent."""
    folder = SHARED_DATA / "movielens-latest-small"
    src = next((folder / n for n in ("ratings.csv.gz", "ratings.csv") if (folder / n).exists()), None)
    if src is None:
        _log.warning("MovieLens ratings not found in %s: its rows are skipped", folder)
        return None
    frame = pl.read_csv(src).select(
        pl.col("userId").cast(pl.String).alias("reader_id"),
        pl.col("movieId").cast(pl.String).alias("title_id"),
        pl.from_epoch("timestamp", time_unit="s").alias("occurred_at"),
        pl.lit("rating").alias("channel"),
        pl.col("rating").cast(pl.Float32).alias("value"),
    )
    return PublicSet("movielens", frame)


def require(path: Path, what: str) -> Path:
    """``path`` if it exists, else :class:`BenchError` naming ``what``."""
    if not path.exists():
        raise BenchError(f"{path}: {what} not found")
    return path
