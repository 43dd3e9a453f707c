"""The ``province`` synthetic profile: a provincial One Card network with tens of millions of loans.

Built from the synthetic city's building blocks (``features/synth_*``, imported, not changed): the
same branch network, population, catalogue, copies and activity samplers, at provincial sizes.
Readers, titles and copies fit in memory; loans, holds and e-book events do not, so they are drawn
in chunks of ``chunk_rows`` and appended to one Parquet file per table (one row group per chunk)
through a :class:`pyarrow.parquet.ParquetWriter`. Peak memory is that of one chunk plus the
population, whatever ``n_loans`` is.

Differences from :func:`features.synth.synthesize`, all consequences of chunking: loans are sorted
by time within a chunk, not across the file; ids (``L…``, ``H…``, ``E…``) are numbered across
chunks; copy statuses use the open loans of every chunk. ``truth/`` keeps the reader tastes and
title latents (the oracle); purchase requests and budgets use the city's sampler at province size.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from features.schema import TABLES, conform, table_path
from features.synth import GENERATOR_VERSION, _rng, _truth_frames
from features.synth_activity import copy_statuses, sample_ebook_events, sample_holds, sample_loans
from features.synth_catalogue import Catalogue, build_copies, build_titles, cluster_demand
from features.synth_population import Population, build_population
from features.synth_programme import build_booklists, sample_requests
from features.synth_sampling import isbn_bodies, numbered_ids
from features.synth_world import END, N_CLUSTERS, START, build_bookstores, build_branches

_log = logging.getLogger(__name__)

#: Loans per reader over the three years in the province (the city has ~14).
LOANS_PER_READER = 15.0
#: Loans per title over three years (the city has ~16; a province holds a wider catalogue).
LOANS_PER_TITLE = 60.0
#: E-book downloads per print loan (the city: ~1 : 1; the province keeps e-books lighter).
EBOOK_SHARE = 0.3
HOLD_RATE = 0.07
#: Purchase requests per 1,000 loans (the city: ~21).
REQUESTS_PER_1000_LOANS = 2.0


@dataclass
class ProvinceSummary:
    """What :func:`synthesize_province` wrote: rows per table, chunks, wall time (s), peak RSS (bytes)."""

    seed: int
    out: Path
    counts: dict[str, int]
    chunks: int
    seconds: float
    peak_rss_bytes: int = 0
    sizes: dict[str, int] = field(default_factory=dict)


class _ChunkWriter:
    """Appends conformed frames of one table to ``DIR/<table>.parquet`` (one row group each)."""

    def __init__(self, out: Path, table: str) -> None:
        self.table = table
        self.path = table_path(out, table)
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pl.DataFrame) -> None:
        arrow = conform(frame, self.table).to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, arrow.schema, compression="zstd")
        self._writer.write_table(arrow)
        self.rows += frame.height

    def close(self) -> None:
        if self._writer is None:
            conform(TABLES[self.table].empty(), self.table).write_parquet(self.path)
        else:
            self._writer.close()


def _peak_rss() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def synthesize_province(
    seed: int,
    out: Path | str,
    n_loans: int = 30_000_000,
    chunk_rows: int = 2_000_000,
    readers: int | None = None,
    titles: int | None = None,
) -> ProvinceSummary:
    """Generate a province into ``out`` (every table of :data:`features.schema.TABLES` but
    ``interactions``, plus ``truth/`` and ``manifest.json``).

    Args:
        seed: generator seed (the same seed, sizes and ``chunk_rows`` give the same files).
        out: data directory to write.
        n_loans: print loans over the three years.
        chunk_rows: loans drawn and written per chunk (memory bound: ~0.5 kB per loan in flight).
        readers: card holders (default ``n_loans / LOANS_PER_READER``).
        titles: catalogue size (default ``n_loans / LOANS_PER_TITLE``, at least 3,000).

    Raises:
        ValueError: a size is not positive.
    """
    if n_loans <= 0 or chunk_rows <= 0:
        raise ValueError(f"n_loans and chunk_rows must be > 0, got {n_loans} and {chunk_rows}")
    n_readers = int(readers or max(2_000, round(n_loans / LOANS_PER_READER)))
    n_titles = int(titles or max(3_000, round(n_loans / LOANS_PER_TITLE)))
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    world = _build_world(seed, n_readers, n_titles, n_loans)
    _log.info(
        "province: %d readers, %d titles, %d copies; %d loans in chunks of %d",
        n_readers,
        n_titles,
        len(world.copies),
        n_loans,
        chunk_rows,
    )
    counts, open_copies, n_chunks = _write_activity(seed, out, world, n_loans, chunk_rows)
    counts.update(_write_catalogue_tables(seed, out, world, open_copies))
    for name, frame in _truth_frames(world.pop, world.cat, world.p_in_cluster, world.expected, world.demand).items():
        frame.write_parquet(out / "truth" / f"{name}.parquet")
    seconds = time.perf_counter() - t0
    sizes = {name: table_path(out, name).stat().st_size for name in counts}
    manifest = {
        "generator": "yuedu synthetic province",
        "version": GENERATOR_VERSION,
        "profile": "province",
        "seed": seed,
        "period": {"start": START.isoformat(), "end": END.isoformat()},
        "chunk_rows": chunk_rows,
        "counts": counts,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    summary = ProvinceSummary(seed, out, counts, n_chunks, seconds, _peak_rss(), sizes)
    _log.info("synthesised province seed %d into %s in %.1f s: %s", seed, out, seconds, counts)
    return summary


@dataclass
class _World:
    """What fits in memory: branches, bookstores, population, catalogue and copies, and the
    expected demand the activity samplers draw from."""

    branches: pl.DataFrame
    bookstores: pl.DataFrame
    pop: Population
    cat: Catalogue
    demand: np.ndarray
    copies: pl.DataFrame
    first_copy: np.ndarray
    n_copies: np.ndarray
    #: Expected print loans per title per year, its share in its cluster, loans per copy.
    expected: np.ndarray
    p_in_cluster: np.ndarray
    pressure: np.ndarray
    #: Print weight per cluster and yearly loans per cluster (the request sampler's inputs).
    print_total: np.ndarray
    loans_by_cluster: np.ndarray
    n_requests: int
    request_isbns: np.ndarray


def _build_world(seed: int, n_readers: int, n_titles: int, n_loans: int) -> _World:
    """Branches, population, catalogue and copies at province size (the city's building blocks)."""
    branches = build_branches(_rng(seed, "branches"))
    bookstores = build_bookstores(_rng(seed, "stores"), branches)
    pop = build_population(_rng(seed, "readers"), seed, n_readers, branches)
    demand = cluster_demand(pop)
    n_requests = max(100, round(n_loans * REQUESTS_PER_1000_LOANS / 1000))
    bodies = isbn_bodies(seed, n_titles + n_requests + 200)
    cat = build_titles(_rng(seed, "titles"), n_titles, demand, bodies[:n_titles], None)
    loans_per_year = n_loans / 3.0
    print_w = np.where(cat.ebook, 0.0, cat.weight)
    print_total = np.bincount(cat.cluster, weights=print_w, minlength=N_CLUSTERS)
    ebook_total = np.bincount(cat.cluster, weights=cat.weight - print_w, minlength=N_CLUSTERS)
    p_in_cluster = cat.weight / np.where(cat.ebook, ebook_total[cat.cluster], print_total[cat.cluster])
    loans_by_cluster = loans_per_year * demand
    expected = np.where(cat.ebook, 0.0, p_in_cluster * loans_by_cluster[cat.cluster])
    copies, first_copy, n_copies = build_copies(_rng(seed, "copies"), cat, branches, expected)
    pressure = expected / np.maximum(n_copies, 1)
    return _World(
        branches, bookstores, pop, cat, demand, copies, first_copy, n_copies, expected, p_in_cluster, pressure,
        print_total, loans_by_cluster, n_requests, bodies[n_titles:],
    )  # fmt: skip


def _write_activity(
    seed: int, out: Path, world: _World, n_loans: int, chunk_rows: int
) -> tuple[dict[str, int], list[pl.Series], int]:
    """Loans, holds and e-book events drawn and appended chunk by chunk.

    Returns:
        rows written per table, the copies on an open loan per chunk, and the number of chunks.
    """
    writers = {t: _ChunkWriter(out, t) for t in ("loans", "holds", "ebook_events")}
    open_copies: list[pl.Series] = []
    n_chunks = -(-n_loans // chunk_rows)
    pop, cat = world.pop, world.cat
    for chunk in range(n_chunks):
        size = min(chunk_rows, n_loans - chunk * chunk_rows)
        rng = _rng(seed + chunk * 1_000_003, "loans")
        loans, loan_title = sample_loans(
            rng, size, pop, cat, world.branches, world.copies, world.first_copy, world.n_copies
        )
        loans = loans.with_columns(loan_id=numbered_ids("L", size, 11, start=writers["loans"].rows + 1))
        open_copies.append(loans.filter(pl.col("returned_at").is_null())["copy_id"].unique())
        holds = sample_holds(
            _rng(seed + chunk * 1_000_003, "holds"), loans, loan_title, world.pressure, int(HOLD_RATE * size)
        )
        holds = holds.with_columns(hold_id=numbered_ids("H", holds.height, 10, start=writers["holds"].rows + 1))
        writers["loans"].write(loans)
        writers["holds"].write(holds)
        del loans, loan_title, holds
        n_ebooks = int(EBOOK_SHARE * size)
        if n_ebooks:
            events = sample_ebook_events(_rng(seed + chunk * 1_000_003, "ebooks"), n_ebooks, pop, cat)
            events = events.with_columns(
                event_id=numbered_ids("E", events.height, 11, start=writers["ebook_events"].rows + 1)
            )
            writers["ebook_events"].write(events)
            del events
        _log.info("province: chunk %d/%d written (%d loans so far)", chunk + 1, n_chunks, writers["loans"].rows)
    for w in writers.values():
        w.close()
    return {name: w.rows for name, w in writers.items()}, open_copies, n_chunks


def _write_catalogue_tables(seed: int, out: Path, world: _World, open_copies: list[pl.Series]) -> dict[str, int]:
    """Every other table (copies with their statuses, readers, titles, the programme); rows per table."""
    open_loans = pl.DataFrame({"copy_id": pl.concat(open_copies).unique()}).with_columns(
        returned_at=pl.lit(None, dtype=pl.Datetime("us"))
    )
    copies = copy_statuses(_rng(seed, "status"), world.copies, open_loans)
    prog = sample_requests(
        _rng(seed, "requests"), world.n_requests, world.pop, world.cat, copies, world.bookstores, world.branches,
        world.request_isbns, world.print_total, world.loans_by_cluster,
    )  # fmt: skip
    booklists, booklist_items = build_booklists(_rng(seed, "booklists"), world.cat)
    tables = {
        "branches": world.branches,
        "readers": world.pop.frame,
        "titles": world.cat.frame,
        "copies": copies,
        "bookstores": world.bookstores,
        "purchase_requests": prog.requests,
        "budgets": prog.budgets,
        "booklists": booklists,
        "booklist_items": booklist_items,
    }
    for name, frame in tables.items():
        conform(frame, name).write_parquet(table_path(out, name))
    return {name: frame.height for name, frame in tables.items()}
