"""The synthetic city: a whole library network's data, generated from known latent tastes.

:func:`synthesize` writes ``DIR/<table>.parquet`` for every table of :data:`features.schema.TABLES`
(except ``interactions``), ``DIR/truth/`` with the generator's ground truth and
``DIR/manifest.json``. :func:`oracle_scores` scores titles by readers' static true tastes (no
ceiling: it ignores arrivals, formats and copies; the ceiling is
:func:`features.synth_ceiling.ceiling_scores`). ``docs/synthetic-city.md`` describes the model.

The pieces live in ``features/synth_*.py``: the fixed world (network, clusters, word lists),
the population (readers and tastes), the catalogue (titles, copies), activity (borrowing intents
served by the copies through ``features/circulation.py``'s hold queue, e-book events), the programme (purchase requests, budgets, booklists) and dirty-row injection.
Every stage draws from its own seeded generator, so the same profile and seed give byte-identical
Parquet files.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from features.circulation import served_in_window
from features.schema import TABLES, conform, table_path
from features.synth_activity import copy_statuses, sample_circulation, sample_ebook_events, title_periods
from features.synth_catalogue import build_copies, build_titles, cluster_demand
from features.synth_dirty import DEFECTS, inject_defects
from features.synth_population import build_population
from features.synth_programme import build_booklists, sample_requests
from features.synth_sampling import isbn_bodies
from features.synth_world import CLUSTERS, END, N_CLUSTERS, START, build_bookstores, build_branches
from features.vocab import Vocabulary

_log = logging.getLogger(__name__)

GENERATOR_VERSION = 2
YEARS = 3
#: Share of borrowing intents that become loans in the city (measured; see docs/synthetic-city.md):
#: intents are drawn at ``loans_per_year / SERVED_SHARE`` so that the served loans match the profile.
SERVED_SHARE = 0.93


@dataclass(frozen=True)
class SynthProfile:
    """Sizes of a synthetic city (the branch network is the same in every profile)."""

    readers: int
    titles: int
    #: Print loans per year.
    loans_per_year: int
    #: E-book downloads per year (reads come on top, ~45% of downloads).
    ebook_downloads_per_year: int
    #: 'You choose, I buy' requests per year.
    requests_per_year: int
    #: Default dirty rate when none is given.
    dirty_rate: float = 0.0


PROFILES: dict[str, SynthProfile] = {
    "small": SynthProfile(
        readers=2_000, titles=3_000, loans_per_year=11_500, ebook_downloads_per_year=4_000, requests_per_year=300
    ),
    "city": SynthProfile(
        readers=200_000,
        titles=180_000,
        loans_per_year=947_000,
        ebook_downloads_per_year=930_000,
        requests_per_year=20_000,
    ),
}


@dataclass
class SynthSummary:
    """What :func:`synthesize` wrote: row counts per table, injected defects and wall time."""

    profile: str
    seed: int
    out: Path
    counts: dict[str, int]
    seconds: float
    defects: dict[str, int] = field(default_factory=dict)


@contextmanager
def _stages(enabled: bool, total: int) -> Iterator:
    """A rich progress bar over generation stages (a no-op when disabled)."""
    if not enabled:
        yield lambda name: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("synthesising", total=total)

        def step(name: str) -> None:
            bar.update(task, advance=1, description=name)

        yield step


def _rng(seed: int, stage: str) -> np.random.Generator:
    """An independent generator per stage: editing one stage leaves the others' draws unchanged."""
    return np.random.default_rng([seed, int.from_bytes(stage.encode()[:8].ljust(8, b"\0"), "little")])


def synthesize(
    profile: str = "small",
    seed: int = 0,
    out: Path | str = "data/synth",
    catalogue: Path | None = None,
    dirty_rate: float | None = None,
    progress: bool = True,
) -> SynthSummary:
    """Generate a synthetic city into ``out`` and return its summary.

    ``catalogue``: a directory with a ``titles.parquet`` (titles schema) whose real records replace
    part of the synthetic catalogue. ``dirty_rate``: fraction of malformed rows injected into
    loans, titles and copies (default: the profile's, 0)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown synth profile '{profile}'; choose one of {sorted(PROFILES)}")
    p = PROFILES[profile]
    rate = p.dirty_rate if dirty_rate is None else float(dirty_rate)
    if not 0.0 <= rate < 0.5:
        raise ValueError(f"dirty_rate must be in [0, 0.5), got {rate}")
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_loans = p.loans_per_year * YEARS
    with _stages(progress, 8) as step:
        step("network")
        branches = build_branches(_rng(seed, "branches"))
        bookstores = build_bookstores(_rng(seed, "stores"), branches)
        step("readers")
        pop = build_population(_rng(seed, "readers"), seed, p.readers, branches)
        demand = cluster_demand(pop)
        step("titles")
        n_requests = p.requests_per_year * YEARS
        bodies = isbn_bodies(seed, p.titles + n_requests + 200)
        cat = build_titles(_rng(seed, "titles"), p.titles, demand, bodies[: p.titles], catalogue)
        print_w = np.where(cat.ebook, 0.0, cat.weight)
        print_total = np.bincount(cat.cluster, weights=print_w, minlength=N_CLUSTERS)
        ebook_total = np.bincount(cat.cluster, weights=cat.weight - print_w, minlength=N_CLUSTERS)
        p_in_cluster = cat.weight / np.where(cat.ebook, ebook_total[cat.cluster], print_total[cat.cluster])
        intents_by_cluster = p.loans_per_year / SERVED_SHARE * demand
        expected = np.where(cat.ebook, 0.0, p_in_cluster * intents_by_cluster[cat.cluster])
        step("copies")
        copies, first_copy, n_copies = build_copies(_rng(seed, "copies"), cat, branches, expected)
        step("loans and holds")
        loans, holds, intents = sample_circulation(
            _rng(seed, "loans"), int(n_loans / SERVED_SHARE), pop, cat, branches, copies, first_copy, n_copies
        )
        copies = copy_statuses(_rng(seed, "status"), copies, loans)
        step("e-book events")
        ebook_events = sample_ebook_events(_rng(seed, "ebooks"), p.ebook_downloads_per_year * YEARS, pop, cat)
        step("purchase requests")
        prog = sample_requests(
            _rng(seed, "requests"), n_requests, pop, cat, copies, bookstores, branches,
            bodies[p.titles :], print_total, intents_by_cluster,
        )  # fmt: skip
        booklists, booklist_items = build_booklists(_rng(seed, "booklists"), cat)
        tables = {
            "branches": branches,
            "readers": pop.frame,
            "titles": cat.frame,
            "copies": copies,
            "loans": loans,
            "ebook_events": ebook_events,
            "holds": holds,
            "bookstores": bookstores,
            "purchase_requests": prog.requests,
            "budgets": prog.budgets,
            "booklists": booklists,
            "booklist_items": booklist_items,
        }
        defects = pl.DataFrame(schema={"table": pl.String, "key": pl.String, "defect": pl.String})
        if rate > 0:
            tables, defects = inject_defects(_rng(seed, "dirty"), seed, tables, p.readers, rate)
        step("writing")
        counts: dict[str, int] = {}
        for name in TABLES:
            if name == "interactions":
                continue
            frame = conform(tables[name], name)
            frame.write_parquet(table_path(out, name))
            counts[name] = len(frame)
        truth = _truth_frames(pop, cat, p_in_cluster, expected, demand)
        truth["title_periods"] = title_periods(cat, n_copies, intents)
        truth["request_titles"] = request_capacity(_rng(seed, "request capacity"), prog.truth_request_titles)
        truth["requests"] = prog.truth_requests
        truth["defects"] = defects
        for name, frame in truth.items():
            frame.write_parquet(out / "truth" / f"{name}.parquet")
    defect_counts = {k: int(v) for k, v in defects.group_by("defect").len().sort("defect").iter_rows()}
    manifest = {
        "generator": "yuedu synthetic city",
        "version": GENERATOR_VERSION,
        "profile": profile,
        "seed": seed,
        "period": {"start": START.isoformat(), "end": END.isoformat()},
        "catalogue": None if catalogue is None else Path(catalogue).name,
        "dirty_rate": rate,
        "counts": counts,
        "truth": {name: len(frame) for name, frame in truth.items()},
        "defects": {
            k: {"table": DEFECTS[k][0], "rows": defect_counts.get(k, 0), "what": DEFECTS[k][1]} for k in DEFECTS
        }
        if rate > 0
        else {},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    seconds = time.perf_counter() - t0
    _log.info("synthesised profile %s seed %d into %s in %.1f s: %s", profile, seed, out, seconds, counts)
    return SynthSummary(profile, seed, out, counts, seconds, defect_counts)


def _truth_frames(
    pop, cat, p_in_cluster: np.ndarray, expected: np.ndarray, demand: np.ndarray
) -> dict[str, pl.DataFrame]:
    """The latent structure behind the data: clusters, reader tastes, title latents."""
    clusters = pl.DataFrame(
        {
            "cluster": np.arange(N_CLUSTERS, dtype=np.int16),
            "name": [c.name for c in CLUSTERS],
            "audience": [c.audience for c in CLUSTERS],
            "keyword": [c.keyword for c in CLUSTERS],
            "classes": [";".join(f"{k}:{v:g}" for k, v in c.classes.items()) for c in CLUSTERS],
            "demand_share": demand,
        }
    )
    readers = pl.DataFrame(
        {
            "reader_id": pop.frame["reader_id"],
            "top_cluster": pop.taste.argmax(axis=1).astype(np.int16),
            "activity": pop.activity,
            "ebook_affinity": pop.ebook_affinity,
            "taste": pop.taste.astype(np.float32),
        }
    )
    titles = pl.DataFrame(
        {
            "title_id": cat.frame["title_id"],
            "cluster": cat.cluster.astype(np.int16),
            "weight": cat.weight,
            "p_in_cluster": p_in_cluster,
            "intents_per_year": expected,
            "expected_loans_per_year": expected,
        }
    )
    return {"clusters": clusters, "reader_taste": readers, "title_latent": titles}


def request_capacity(rng: np.random.Generator, truth: pl.DataFrame) -> pl.DataFrame:
    """Adds to the requested-title truth its first-year borrowing intents (``intents_first_year``,
    with ``expected_loans_per_year`` kept as its alias) and the loans 1, 2 or 3 copies would serve
    in that year (``served_first_year_k``, the mean of simulated years with the same readers)."""
    rate = truth["expected_loans_per_year"].to_numpy()
    state = rng.bit_generator.state
    served = {}
    for k in (1, 2, 3):
        rng.bit_generator.state = state  # identical readers for every copy count
        served[f"served_first_year_{k}"] = served_in_window(rate, k, rng)[1]
    return truth.with_columns(intents_first_year=pl.col("expected_loans_per_year"), **served)


def oracle_scores(data_dir: Path | str, reader_ids, title_ids) -> np.ndarray:
    """True appeal of each title to each reader: ``taste[reader, cluster(title)] × p_in_cluster``,
    the probability that one of the reader's draws (loan or e-book event of the title's format)
    picks that title, ignoring when it arrived.

    ``title_ids`` may also name requested ISBNs (``truth/request_titles.parquet``), so the value of
    buying a requested new book can be scored. Returns float32 ``len(readers) × len(titles)``.
    Raises ``KeyError`` for ids the truth does not know."""
    truth = Path(data_dir) / "truth"
    taste_df = pl.read_parquet(truth / "reader_taste.parquet", columns=["reader_id", "taste"])
    vocab = Vocabulary(taste_df["reader_id"], "reader_id")
    r = vocab.index(pl.Series(list(reader_ids), dtype=pl.String))
    if (r < 0).any():
        raise KeyError(f"{truth}/reader_taste.parquet: {(r < 0).sum()} of {len(r)} reader ids unknown")
    taste = taste_df["taste"].to_numpy()
    latent = pl.concat(
        [
            pl.read_parquet(truth / "title_latent.parquet", columns=["title_id", "cluster", "p_in_cluster"]),
            pl.read_parquet(truth / "request_titles.parquet", columns=["isbn", "cluster", "p_in_cluster"])
            .filter(pl.col("isbn").is_not_null())
            .rename({"isbn": "title_id"}),
        ]
    ).unique("title_id", keep="first", maintain_order=True)
    wanted = pl.DataFrame({"title_id": pl.Series(list(title_ids), dtype=pl.String)})
    found = wanted.join(latent, on="title_id", how="left", maintain_order="left")
    missing = found.filter(pl.col("cluster").is_null())["title_id"]
    if len(missing):
        raise KeyError(f"{truth}: {len(missing)} title ids unknown, e.g. {missing.head(3).to_list()}")
    cluster = found["cluster"].to_numpy().astype(np.int64)
    p = found["p_in_cluster"].to_numpy()
    return (taste[np.ix_(r, cluster)] * p[None, :]).astype(np.float32)
