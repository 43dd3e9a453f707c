"""Recommendations replayed in the synthetic city: readers act on their lists, copies are taken.

``yuedu simulate`` (issue 21). Protocol, on a synthetic city data directory:

1. Train the model (EASE) on the events before the cut-off; every reader with a history gets a
   list each week (a nightly list shown for ``list_lifetime_days``, refreshed weekly to bound the
   cost) for ``weeks`` weeks.
2. The world at the cut-off is the data's: the loans out then keep their copies until their real
   return (plus the generator's turnaround), the holds waiting then are served first.
3. Readers act with the generator's own choice model: each reader's expected events per title in
   the window are ``features.synth_ceiling.ceiling_scores`` (taste × popularity among the titles
   held, rate ∝ activity). Their ordinary intents are Poisson draws of it (the background, the
   same draws for every policy); a listed title gets ``lift`` × its expected events more (being
   told about a book makes wanting it likelier), each at a uniform time in the week.
4. Every print intent, background or recommended, goes through the generator's queue
   (``features.circulation.serve``: a free copy lends at once, otherwise the reader walks away or
   holds, FIFO, with the generator's keeping, turnaround, walk-away and patience draws). A week's
   intents are served after the loans and holds carried over from the weeks before, so copies taken
   by one reader are missing for the next.

Measured per policy: loans served through recommendations (print, started in the window),
recommended intents that found every copy out ("found it gone"), the mean wait of the served ones,
NDCG@10 of the first week's lists against the readers' background intents in the window (the
held-out intents), rank-biased precision, the share of the top 10 borrowable within 7 days
(expected wait) and the exposure Gini per title.

Policies: ``availability-blind`` (no availability filter), ``today's filters`` (an on-shelf copy at
the reader's branch, or anywhere by delivery, on the list's night) and ``queue-aware + exposure``
(expected wait ≤ N days, wait penalty, dual prices from :mod:`recsys.exposure` with the exposures
per loan measured on the previous week's lists). All three get the default reading promotion.

Memory: the choice model is a dense readers × titles matrix (``small``: 2,000 × 3,000 floats);
the ``city`` profile (200,000 × 180,000) does not fit and would need the choice model per reader
batch.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.circulation import AFTER_HOLD, IMMEDIATE, keeping_days, patience_days, serve, turnaround_days
from features.interactions import load_interactions
from features.matrix import WeightingConfig
from features.schema import table_path
from features.splits import temporal_split
from features.vocab import Vocabulary
from recsys.context import LibraryContext
from recsys.evaluation.promotion import _context
from recsys.exposure import dual_prices, exposure_capacity
from recsys.filters import FilterConfig, allowed_titles, build_exclusions
from recsys.metrics import borrowable_share, gini_exposure, ndcg_at_k, rank_biased_precision
from recsys.models import make_model
from recsys.queues import TURNAROUND_DAYS, Circulation, queue_wait, servable
from recsys.rerank import QUEUE_AWARE, PromotionConfig, promoted_relevance, rerank

_log = logging.getLogger(__name__)

#: Policy name -> list mode: ``none`` (no lists: the baseline of loans without recommendations),
#: ``blind`` (no availability filter), ``shelf`` (today's filters), ``queue`` (expected wait,
#: penalty and, with ``exposure_control``, the dual prices).
POLICIES: dict[str, str] = {
    "no lists": "none",
    "availability-blind": "blind",
    "today's filters": "shelf",
    "queue-aware, no exposure control": "queue-only",
    "queue-aware + exposure": "queue",
}


@dataclass(frozen=True)
class SimulationConfig:
    """The simulation's settings (days, weeks, list length, the readers' response to a list)."""

    cutoff: datetime = datetime(2026, 3, 1)
    weeks: int = 12
    n: int = 10
    #: A listed title's expected events are multiplied by ``1 + lift``.
    lift: float = 3.0
    seed: int = 0
    model: str = "ease"
    model_params: dict = field(default_factory=lambda: {"lambda_": 100.0})
    candidates: int = 50
    queue_aware: PromotionConfig = PromotionConfig(**QUEUE_AWARE)
    policies: tuple[str, ...] = tuple(POLICIES)


@dataclass
class World:
    """What does not change during a run: model, context, choice model, copies, readers' branches."""

    model: object
    ctx: LibraryContext
    rows: np.ndarray
    expected: np.ndarray  # readers × titles expected events in the window (the choice model)
    n_copies: np.ndarray
    located: np.ndarray  # readers × titles: the title has a copy at the reader's branch
    delivers: np.ndarray
    digital: np.ndarray
    keep_mean: float
    background_week: np.ndarray  # expected non-recommended loans per title per week (from history)
    t0: float  # the cut-off, days since the history's start


@dataclass
class Items:
    """Lent items carried by the world (one per loan or hold that got a copy): title row, time the
    intent came, loan start, the copy's release (start + keeping + turnaround), due date (days)."""

    title: np.ndarray
    placed: np.ndarray
    begin: np.ndarray
    end: np.ndarray
    due: np.ndarray

    def select(self, mask: np.ndarray) -> Items:
        return Items(self.title[mask], self.placed[mask], self.begin[mask], self.end[mask], self.due[mask])

    @staticmethod
    def concat(parts: list[Items]) -> Items:
        return Items(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in ("title", "placed", "begin", "end", "due"))
        )


def _days(col: pl.Expr, origin: datetime) -> pl.Expr:
    return (col - pl.lit(origin)).dt.total_seconds() / 86_400


def _initial_items(d: Path, titles: Vocabulary, cutoff: datetime) -> Items:
    """Loans out at the cut-off (kept until their real return) and loans that holds waiting at the
    cut-off later got (in the data), in days since the cut-off."""
    loans = pl.read_parquet(table_path(d, "loans"))
    out = loans.filter(
        (pl.col("borrowed_at") < cutoff) & (pl.col("returned_at").is_null() | (pl.col("returned_at") >= cutoff))
    )
    holds = pl.read_parquet(table_path(d, "holds")).filter(
        (pl.col("placed_at") < cutoff) & (pl.col("fulfilled_at") >= cutoff)
    )
    later = loans.join(
        holds.select("reader_id", "title_id", borrowed_at="fulfilled_at", placed="placed_at"),
        on=["reader_id", "title_id", "borrowed_at"],
    )
    frames = []
    for f in (out.with_columns(placed=pl.col("borrowed_at")), later):
        end = pl.col("returned_at").fill_null(pl.col("due_at"))
        frames.append(
            f.select(
                title=pl.Series(titles.index(f["title_id"])) if len(f) else pl.lit(0),
                placed=_days(pl.col("placed"), cutoff),
                begin=_days(pl.col("borrowed_at"), cutoff),
                end=_days(end, cutoff) + TURNAROUND_DAYS,
                due=_days(pl.col("due_at"), cutoff),
            )
        )
    x = pl.concat(frames).filter(pl.col("title") >= 0)
    return Items(*(x[c].to_numpy().astype(np.float64 if c != "title" else np.int64) for c in x.columns))


def _setup(d: Path, cfg: SimulationConfig) -> tuple[World, Items, Vocabulary]:
    """Model, context, choice model and copies at the cut-off (times in days since the cut-off)."""
    from features.synth_ceiling import ceiling_scores

    events = load_interactions(d).collect()
    split = temporal_split(events, cutoff=cfg.cutoff)
    train = split.to_matrices(WeightingConfig(half_life_days=365.0)).train
    model = make_model(cfg.model, **cfg.model_params).fit(train)
    titles, readers = train.titles, train.readers
    ctx = _context(d, cfg.cutoff, titles, readers)
    end = cfg.cutoff + timedelta(days=7 * cfg.weeks)
    expected = ceiling_scores(d, list(readers.ids), list(titles.ids), cfg.cutoff, end)
    copies = pl.read_parquet(table_path(d, "copies"))
    t_copy = titles.index(copies["title_id"])
    b_copy = ctx.branches.index(copies["branch_id"])
    ok = t_copy >= 0
    n_copies = np.bincount(t_copy[ok], minlength=len(titles))
    at = sp.csr_matrix((np.ones(int(ok.sum()), bool), (b_copy[ok], t_copy[ok])), shape=(len(ctx.branches), len(titles)))
    branch = ctx.branch_of(np.arange(len(readers)))
    located = np.asarray(at[np.maximum(branch, 0)].toarray()) & (branch >= 0)[:, None]
    delivers = np.where(branch >= 0, ctx.branch_delivers[np.maximum(branch, 0)], True).astype(bool)
    loans = pl.read_parquet(table_path(d, "loans")).filter(pl.col("borrowed_at") < cfg.cutoff)
    keep = (
        loans.filter(pl.col("returned_at") < cfg.cutoff)
        .select(((pl.col("returned_at") - pl.col("borrowed_at")).dt.total_seconds() / 86_400).mean())
        .item()
    )
    span_weeks = max((cfg.cutoff - loans["borrowed_at"].min()).days / 7.0, 1.0) if len(loans) else 1.0
    world = World(
        model, ctx, np.arange(len(readers)), expected.astype(np.float64), n_copies, located, delivers,
        ctx.digital.copy(), float(keep or 18.0), ctx.popularity / span_weeks, 0.0,
    )  # fmt: skip
    return world, _initial_items(d, titles, cfg.cutoff), titles


def _circulation(world: World, items: Items, t: float) -> Circulation:
    """What the library's system knows at time ``t``: copies out (expected back by the mean keeping
    time, not after the due date) and holds waiting, not the simulated true return times."""
    n_t = len(world.n_copies)
    busy = (items.begin <= t) & (items.end > t)
    waiting = (items.placed <= t) & (items.begin > t)
    back = np.minimum(np.maximum(items.begin[busy] + world.keep_mean, t + 0.5), np.maximum(items.due[busy], t + 0.5))
    out = np.bincount(items.title[busy], minlength=n_t)
    return Circulation.from_returns(
        world.n_copies, np.maximum(world.n_copies - out, 0), np.bincount(items.title[waiting], minlength=n_t),
        items.title[busy], back - t + TURNAROUND_DAYS, world.keep_mean + TURNAROUND_DAYS, world.digital,
    )  # fmt: skip


@dataclass
class Lists:
    recs: np.ndarray
    waits: np.ndarray


def _wait_all(world: World, circ: Circulation, cfg: PromotionConfig) -> np.ndarray:
    """Readers × titles expected wait (days): the rule of :func:`recsys.queues.expected_wait`, with
    the queue part (the same for every reader) computed once per title."""
    n_t = len(world.n_copies)
    free = (circ.free > 0) & ~world.digital
    away = np.where(world.delivers, cfg.delivery_days, cfg.transfer_days)[:, None]
    shelf = np.where(world.located, 0.0, away)
    days = np.where(free[None, :], shelf, queue_wait(circ, np.arange(n_t))[None, :])
    return np.where(world.digital[None, :], 0.0, days)


def _lists(world: World, policy: str, circ: Circulation, borrowed: sp.csr_matrix, cfg: SimulationConfig, on,
           exposures_per_loan: float) -> Lists:  # fmt: skip
    """This week's top-n lists of one policy for every reader, and each listed title's expected wait."""
    qa = cfg.queue_aware
    mode = POLICIES[policy]
    if mode == "none":
        empty = np.full((len(world.rows), cfg.n), -1, np.int32)
        return Lists(empty, np.full(empty.shape, np.inf))
    if mode == "queue-only":
        qa = qa.model_copy(update={"exposure_control": False})
    queue = mode.startswith("queue")
    promo = qa if queue else PromotionConfig()
    fc = FilterConfig(require_available=False)
    per_reader, _ = build_exclusions(world.ctx, world.rows, fc, extra_borrowed=borrowed)
    wait = _wait_all(world, circ, qa)
    block = per_reader.toarray()
    if mode == "shelf":
        block |= ~(world.digital[None, :] | ((circ.free > 0)[None, :] & (world.located | world.delivers[:, None])))
    elif queue and qa.max_wait_days is not None:
        block |= wait > qa.max_wait_days
    cand, scores = world.model.recommend(
        world.rows, cfg.candidates, candidates=allowed_titles(world.ctx, fc), exclude=sp.csr_matrix(block)
    )
    adjust = None
    safe = np.where(cand >= 0, cand, 0)
    if queue:
        w = np.take_along_axis(wait, safe.astype(np.int64), axis=1)
        penalty = qa.wait_penalty * np.where(
            np.isfinite(w), w / (np.where(np.isfinite(w), w, 0.0) + qa.wait_half_days), 1.0
        )
        rel, _ = promoted_relevance(cand, scores, world.ctx, promo, on)
        adjust = -penalty
        if qa.exposure_control:
            need = np.maximum(servable(circ, qa.list_lifetime_days) - world.background_week, 0.0)
            cap = exposure_capacity(need, exposures_per_loan)
            adjust = adjust - dual_prices(cand, rel - penalty, cap, cfg.n).prices[safe]
    recs, _, _ = rerank(cand, scores, world.ctx, world.rows, promo, cfg.n, on=on, adjust=adjust)
    return Lists(recs, np.take_along_axis(wait, np.where(recs >= 0, recs, 0).astype(np.int64), axis=1))


@dataclass
class Intents:
    """Intents of one week: reader row, title row, time (days), whether a recommendation caused it."""

    reader: np.ndarray
    title: np.ndarray
    t: np.ndarray
    recommended: np.ndarray

    @staticmethod
    def concat(a: Intents, b: Intents) -> Intents:
        return Intents(
            *(np.concatenate([getattr(a, f), getattr(b, f)]) for f in ("reader", "title", "t", "recommended"))
        )


def _background(world: World, rng: np.random.Generator, t0: float, weeks: int) -> Intents:
    """The readers' ordinary intents of one week: Poisson draws of the choice model."""
    n = rng.poisson(world.expected / weeks)
    r, t = np.nonzero(n)
    reps = n[r, t]
    r, t = np.repeat(r, reps), np.repeat(t, reps)
    return Intents(r, t, t0 + rng.random(len(r)) * 7.0, np.zeros(len(r), bool))


def _recommended(world: World, rng: np.random.Generator, recs: np.ndarray, t0: float, cfg: SimulationConfig) -> Intents:
    """Intents the lists cause: a listed title gets ``lift`` × its expected events of the week more
    (at most one intent per listed title)."""
    listed = recs >= 0
    r = np.broadcast_to(world.rows[:, None], recs.shape)[listed]
    t = recs[listed].astype(np.int64)
    p = 1.0 - np.exp(-cfg.lift * world.expected[r, t] / cfg.weeks)
    act = rng.random(len(r)) < p
    return Intents(r[act], t[act], t0 + rng.random(int(act.sum())) * 7.0, np.ones(int(act.sum()), bool))


@dataclass
class Outcome:
    """Per intent of the week: lent (start in the window), found every copy out, days waited."""

    lent: np.ndarray
    gone: np.ndarray
    wait: np.ndarray


def _serve_week(world: World, items: Items, x: Intents, t0: float, horizon: float, rng) -> tuple[Items, Outcome]:
    """Serve the week's print intents after the loans and holds carried over (e-books: at once)."""
    print_ = ~world.digital[x.title]
    busy = (items.begin <= t0) & (items.end > t0)
    held = items.begin > t0
    carry_l, carry_h = items.select(busy), items.select(held)
    carry_h = carry_h.select(np.argsort(carry_h.begin, kind="stable"))
    n_l, n_h, n_x = len(carry_l.title), len(carry_h.title), int(print_.sum())
    title = np.concatenate([carry_l.title, carry_h.title, x.title[print_]])
    t = np.concatenate([np.full(n_l, t0 - 1e-3), t0 - 5e-4 + np.arange(n_h) * 1e-9, x.t[print_]])
    keep, renew = keeping_days(rng, n_x)
    occ = np.concatenate([carry_l.end - (t0 - 1e-3), carry_h.end - carry_h.begin, keep + turnaround_days(rng, n_x)])
    u = np.concatenate([np.zeros(n_l), np.ones(n_h), rng.random(n_x)])
    patience = np.concatenate([np.full(n_l + n_h, np.inf), patience_days(rng, n_x)])
    placed = np.concatenate([carry_l.placed, carry_h.placed, x.t[print_]])
    due_new = 30.0 * (1 + renew.astype(np.float64))
    o = np.lexsort((t, title))
    res = serve(title[o], t[o], occ[o], world.n_copies, u[o], patience[o])
    start, outcome = np.empty(len(o)), np.empty(len(o), np.int8)
    start[o], outcome[o] = res.start, res.outcome
    lent = outcome <= AFTER_HOLD
    due = np.concatenate([carry_l.due, carry_h.due, np.nan_to_num(start[n_l + n_h :]) + due_new])
    carried = Items(title, placed, np.nan_to_num(start, nan=np.inf), np.nan_to_num(start) + occ, due).select(lent)
    new = slice(n_l + n_h, None)
    out = _outcome_of(x, print_, lent[new], outcome[new] != IMMEDIATE, start[new], horizon)
    return carried, out


def _outcome_of(x: Intents, print_, lent_p, gone_p, start_p, horizon) -> Outcome:
    """Per intent of ``x``: e-books are lent at once; print intents as served."""
    n = len(x.title)
    lent, gone, wait = np.ones(n, bool), np.zeros(n, bool), np.zeros(n)
    lent[print_] = lent_p & (start_p < horizon)
    gone[print_] = gone_p
    wait[print_] = np.where(lent_p, start_p - x.t[print_], np.nan)
    return Outcome(lent, gone, wait)


def _borrowed_matrix(shape, readers: np.ndarray, titles: np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(readers), bool), (readers, titles)), shape=shape)


def _run_policy(world: World, items0: Items, policy: str, cfg: SimulationConfig, backgrounds: list[Intents]) -> dict:
    """One policy over every week; the totals of its recommended intents and its first lists."""
    items = items0
    shape = world.located.shape
    borrowed = sp.csr_matrix(shape, dtype=bool)
    horizon = 7.0 * cfg.weeks
    rng = np.random.default_rng([cfg.seed, 21])
    tot = dict.fromkeys(("rec_intents", "loans", "print_loans", "gone", "print_intents", "wait_sum"), 0)
    tot |= dict.fromkeys(("bg_print_intents", "bg_print_loans", "bg_gone"), 0)
    exposures_per_loan, first = cfg.queue_aware.exposures_per_loan, None
    for w in range(cfg.weeks):
        t0 = 7.0 * w
        circ = _circulation(world, items, t0)
        lists = _lists(world, policy, circ, borrowed, cfg, (cfg.cutoff + timedelta(days=t0)).date(), exposures_per_loan)
        first = first or lists
        rec = _recommended(world, np.random.default_rng([cfg.seed, w, 1]), lists.recs, t0, cfg)
        x = Intents.concat(backgrounds[w], rec)
        items, out = _serve_week(world, items, x, t0, horizon, rng)
        _tally(tot, world, x, out)
        lent_any = out.lent | (out.wait >= 0)
        borrowed = borrowed + _borrowed_matrix(shape, x.reader[lent_any], x.title[lent_any])
        shown = int((lists.recs >= 0).sum())
        # measured, as a library can: readers shown a title per intent the lists caused
        exposures_per_loan = max(shown / max(int(rec.title.size), 1), 1.0)
    return {**tot, "first": first}


def _tally(tot: dict, world: World, x: Intents, out: Outcome) -> None:
    """Add one week's recommended and background intents, loans and disappointments to ``tot``."""
    r = x.recommended
    printed = ~world.digital[x.title]
    pr, bg = r & printed, ~r & printed
    tot["rec_intents"] += int(r.sum())
    tot["print_intents"] += int(pr.sum())
    tot["loans"] += int((out.lent & r).sum())
    tot["print_loans"] += int((out.lent & pr).sum())
    tot["gone"] += int((out.gone & pr).sum())
    tot["wait_sum"] += float(np.nansum(out.wait[pr & out.lent]))
    tot["bg_print_intents"] += int(bg.sum())
    tot["bg_print_loans"] += int((out.lent & bg).sum())
    tot["bg_gone"] += int((out.gone & bg).sum())


def simulate(data_dir: str | Path, cfg: SimulationConfig = SimulationConfig()) -> tuple[pl.DataFrame, dict]:
    """Replay the three policies; one row per policy (see the module docstring for the columns)."""
    d = Path(data_dir)
    t_start = time.perf_counter()
    world, items0, titles = _setup(d, cfg)
    backgrounds = [
        _background(world, np.random.default_rng([cfg.seed, w, 0]), 7.0 * w, cfg.weeks) for w in range(cfg.weeks)
    ]
    everything = backgrounds[0]
    for b in backgrounds[1:]:
        everything = Intents.concat(everything, b)
    target = _borrowed_matrix(world.located.shape, everything.reader, everything.title).astype(np.float32)
    rows = [
        _row(policy, _run_policy(world, items0, policy, cfg, backgrounds), target, len(titles))
        for policy in cfg.policies
    ]
    table = pl.DataFrame(rows)
    info = {
        "readers": int(world.located.shape[0]),
        "titles": len(titles),
        "cutoff": cfg.cutoff.isoformat(),
        "weeks": cfg.weeks,
        "lift": cfg.lift,
        "model": cfg.model,
        "background_intents": int(len(everything.title)),
        "seconds": round(time.perf_counter() - t_start, 1),
        "queue_aware": cfg.queue_aware.model_dump(
            include={
                "max_wait_days",
                "wait_penalty",
                "wait_half_days",
                "transfer_days",
                "delivery_days",
                "exposures_per_loan",
                "list_lifetime_days",
            }
        ),
    }
    return table, info


def _row(policy: str, tot: dict, target: sp.csr_matrix, n_titles: int) -> dict:
    recs, waits = tot["first"].recs, tot["first"].waits
    served = max(tot["print_loans"], 1)
    return {
        "policy": policy,
        "recommended intents": tot["rec_intents"],
        "loans served (print)": tot["print_loans"],
        "loans served (all)": tot["loans"],
        "found it gone": tot["gone"],
        "found it gone %": 100.0 * tot["gone"] / max(tot["print_intents"], 1),
        "mean wait days": tot["wait_sum"] / served,
        "all print loans": tot["print_loans"] + tot["bg_print_loans"],
        "others found it gone %": 100.0 * tot["bg_gone"] / max(tot["bg_print_intents"], 1),
        "ndcg@10": ndcg_at_k(recs, target, 10),
        "rbp(0.8)": rank_biased_precision(recs, target, 0.8, 10),
        "borrowable ≤7 d %": 100.0 * borrowable_share(recs, waits, 7.0, 10),
        "exposure gini": gini_exposure(recs, n_titles, 10),
    }


def write_results(table: pl.DataFrame, info: dict, out_dir: Path, command: str, stem: str = "simulation") -> list[Path]:
    """``<stem>.md`` (the table and how to read it), ``<stem>.json`` and ``<stem>.png`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js, png = (out_dir / f"{stem}.{ext}" for ext in ("md", "json", "png"))
    js.write_text(json.dumps({"info": info, "rows": table.to_dicts()}, indent=1, ensure_ascii=False), encoding="utf-8")
    cols = table.columns
    lines = [
        "# Recommendations replayed in the synthetic city (issue 21)",
        "",
        f"Train before {info['cutoff'][:10]}; {info['weeks']} weekly lists of 10 for {info['readers']:,} readers "
        f"over {info['titles']:,} titles; readers' response lift {info['lift']}; model {info['model']}; "
        f"{info['background_intents']:,} background intents; wall time {info['seconds']} s (shared 2-core machine).",
        f"Queue-aware setting: {info['queue_aware']}.",
        "",
        "Reproduce: `" + command + "`",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for row in table.iter_rows():
        lines.append("| " + " | ".join(v if isinstance(v, str) else f"{v:,.3f}" if isinstance(v, float) else f"{v:,}"
                                       for v in row) + " |")  # fmt: skip
    lines += ["", *SIMULATION_NOTES, ""]
    md.write_text("\n".join(lines), encoding="utf-8")
    _plot(table, png)
    return [md, js, png]


#: How to read the table (written under it).
SIMULATION_NOTES = (
    "Columns: *recommended intents* are the intents the lists caused (print and e-book); *loans served* the",
    "print ones lent within the window; *found it gone* the print ones that found every copy out (they",
    "walked away or queued); *mean wait* is over the served ones (days from wanting to borrowing);",
    "*all print loans* adds the background readers' loans; *others found it gone* is the background",
    "readers' share (what the lists take from readers who did not follow them); NDCG@10 and RBP are the",
    "first week's lists against every reader's background intents in the window (the held-out intents);",
    "*borrowable ≤7 d* is the share of the first week's top 10 whose expected wait is at most 7 days.",
)


def _plot(table: pl.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = table.filter(pl.col("policy") != "no lists")
    names = [p.replace(", ", ",\n").replace(" + ", " +\n") for p in shown["policy"]]
    metrics = ("loans served (print)", "found it gone %", "ndcg@10")
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, m in zip(axes, metrics, strict=True):
        ax.bar(range(len(names)), shown[m].to_list(), color=["#999999", "#4c72b0", "#dd8452", "#55a868"][: len(names)])
        ax.set_xticks(range(len(names)), names, fontsize=7)
        ax.set_title(m)
    fig.suptitle("lists replayed in the synthetic city")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
