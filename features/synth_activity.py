"""Loans, e-book events and holds of the synthetic city, sampled in bulk.

One loan is drawn as: a reader (by activity) → a day (seasonal; children's days favour school
holidays; squeezed after the reader's registration) → a taste cluster (from the reader's mix) →
a title of that cluster already in the collection on that day (by popularity) → a branch (home
branch ~80%) → a channel (by branch kind) → a copy of the title. Every step is one vectorised
draw over all loans.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from features.circulation import AFTER_HOLD, CANCELLED, keeping_days, patience_days, serve, turnaround_days
from features.schema import EBOOK_ACTIONS, LOAN_CHANNELS, conform
from features.synth_catalogue import Catalogue
from features.synth_population import Population, registration_remap
from features.synth_sampling import cumulative, draw_categorical, draw_in_ranges, draw_rows, numbered_ids
from features.synth_world import END_TS, FOOTFALL, N_DAYS, START, START_TS, day_weights

HOME_SHARE = 0.80
SAME_DISTRICT_SHARE = 0.12
LOAN_PERIOD_DAYS = 30
_US_PER_DAY = 86_400 * 1_000_000
_START_US = np.datetime64(START_TS, "us")
_END_US = np.datetime64(END_TS, "us")


class TitleSampler:
    """Draws titles of a given cluster that were in the collection on a given day.

    Titles are sorted by ``(cluster, added_day)``, so the titles of cluster ``c`` available on day
    ``d`` are one contiguous run; a draw is one inverse-CDF lookup in the run's cumulative weights.
    """

    def __init__(self, cat: Catalogue, mask: np.ndarray, day: np.ndarray | None = None) -> None:
        rows = np.flatnonzero(mask)
        added = cat.added_day[rows] if day is None else day[rows]
        self._span = N_DAYS + 4000
        order = np.lexsort((added, cat.cluster[rows]))
        self.rows_ = rows[order]
        self._key = cat.cluster[self.rows_].astype(np.int64) * self._span + np.clip(added[order], -2000, None) + 2000
        self._cum = cumulative(cat.weight[self.rows_])

    def draw(
        self, rng: np.random.Generator, cluster: np.ndarray, day: np.ndarray, window: int | None = None
    ) -> np.ndarray:
        """Title rows for each (cluster, day); with ``window``, only titles added in the ``window``
        days up to ``day`` (falling back to the latest one available)."""
        first_key = cluster.astype(np.int64) * self._span
        base = first_key + 2000  # key of a title added on day 0
        start = np.searchsorted(self._key, first_key, side="left")
        hi = np.searchsorted(self._key, base + day, side="right")
        if window is None:
            lo = start
        else:
            lo = np.searchsorted(self._key, base + day - window, side="left")
            lo = np.minimum(lo, np.maximum(hi - 1, start))
        hi = np.maximum(hi, lo + 1)  # a cluster with nothing yet: its first title
        hi = np.minimum(hi, len(self.rows_))
        lo = np.minimum(lo, hi - 1)
        return self.rows_[draw_in_ranges(rng, self._cum, lo, hi)]


@dataclass
class Activity:
    loans: pl.DataFrame
    ebook_events: pl.DataFrame
    holds: pl.DataFrame
    copies: pl.DataFrame  #: copies with statuses updated from open loans


def _timestamps(rng: np.random.Generator, day: np.ndarray) -> np.ndarray:
    """Day numbers → datetime64[us] at opening hours (09:00-20:00, most around mid-afternoon)."""
    seconds = (9 * 3600 + rng.beta(2.2, 2.0, len(day)) * 11 * 3600).astype(np.int64)
    return _START_US + (day.astype(np.int64) * _US_PER_DAY + seconds * 1_000_000).astype("timedelta64[us]")


def _branch_of_loan(rng: np.random.Generator, home: np.ndarray, branches: pl.DataFrame) -> np.ndarray:
    """Home branch (80%), another branch of the same district (12%) or anywhere (8%)."""
    district = branches["district"].to_numpy()
    kinds = branches["kind"].to_numpy()
    footfall = np.array([FOOTFALL[k] for k in kinds]) * (kinds != "delivery_hub")
    order = np.argsort(district, kind="stable")
    codes = np.unique(district[order], return_inverse=True)[1]
    starts = np.searchsorted(codes, np.arange(codes.max() + 2))
    code_of_branch = np.empty(len(order), dtype=np.int64)
    code_of_branch[order] = codes
    cum = cumulative(footfall[order])
    c = code_of_branch[home]
    same = order[draw_in_ranges(rng, cum, starts[c], starts[c + 1])]
    anywhere = draw_categorical(rng, footfall, len(home))
    u = rng.random(len(home))
    return np.where(u < HOME_SHARE, home, np.where(u < HOME_SHARE + SAME_DISTRICT_SHARE, same, anywhere))


def _channels(rng: np.random.Generator, branch: np.ndarray, branches: pl.DataFrame) -> np.ndarray:
    """Loan channel codes (index into LOAN_CHANNELS) from the kind of branch where the loan happened
    (bookstore loans come later)."""
    code = {c: i for i, c in enumerate(LOAN_CHANNELS)}
    kinds = branches["kind"].to_numpy()
    # Per branch: the channel of unstaffed kinds, -1 for staffed branches.
    fixed = np.select(
        [np.isin(kinds, ("self_service", "cabinet")), kinds == "mobile_bus", kinds == "delivery_hub"],
        [code["self_service"], code["mobile"], code["delivery"]],
        -1,
    )[branch]
    subway = (kinds == "subway")[branch]
    delivers = branches["delivers"].to_numpy()[branch]
    u = rng.random(len(branch))
    staffed = np.select(
        [u < 0.48, u < 0.89, u < 0.94, delivers],
        [code["counter"], code["self_service"], code["online"], code["delivery"]],
        code["counter"],
    )
    staffed = np.where(subway, np.where(u < 0.7, code["self_service"], code["counter"]), staffed)
    return np.where(fixed >= 0, fixed, staffed).astype(np.int8)


def _draw_intents(
    rng: np.random.Generator, n: int, pop: Population, cat: Catalogue, branches: pl.DataFrame
) -> tuple[np.ndarray, ...]:
    """``n`` borrowing intents: reader, day, title row, branch and channel code of each."""
    reader = draw_categorical(rng, pop.activity, n, ordered=True)
    child = pop.child[reader]
    day = np.where(
        child,
        draw_categorical(rng, day_weights(children=True), n),
        draw_categorical(rng, day_weights(children=False), n),
    )
    day = registration_remap(day, pop.reg_day[reader])
    cluster = draw_rows(rng, pop.taste, reader)
    title = TitleSampler(cat, ~cat.ebook).draw(rng, cluster, day)
    branch = _branch_of_loan(rng, pop.home[reader], branches)
    channel = _channels(rng, branch, branches)
    return reader, day, title, branch, channel


def sample_loans(
    rng: np.random.Generator,
    n: int,
    pop: Population,
    cat: Catalogue,
    branches: pl.DataFrame,
    copies: pl.DataFrame,
    first_copy: np.ndarray,
    n_copies: np.ndarray,
) -> tuple[pl.DataFrame, np.ndarray]:
    """``n`` print loans (sorted by time) and, per loan, the title row (for holds), each on a
    random copy of its title, ignoring whether that copy is out: the unconstrained sampler the
    chunked ``province`` profile still uses (the city uses :func:`sample_circulation`)."""
    reader, day, title, branch, channel = _draw_intents(rng, n, pop, cat, branches)
    copy = first_copy[title] + (rng.random(n) * n_copies[title]).astype(np.int64)

    borrowed = _timestamps(rng, day)
    u = rng.random(n)
    renewals = np.select([u < 0.05, u < 0.23], [2, 1], 0).astype(np.int8)
    keep_days = 1.0 + rng.gamma(2.0, 8.5, n) + renewals * rng.uniform(10, 30, n)
    keep_days = np.minimum(keep_days, 150.0)
    returned = borrowed + (keep_days * _US_PER_DAY).astype("timedelta64[us]")
    due = borrowed + ((LOAN_PERIOD_DAYS * (1 + renewals.astype(np.int64))) * _US_PER_DAY).astype("timedelta64[us]")

    loan = _Lent(reader, copy, title, branch, channel, borrowed, due, returned, renewals)
    return _loan_frame(loan, pop, cat, branches, copies)


@dataclass
class _Lent:
    """Per loan (any order): reader, copy and title rows, branch, channel code, times, renewals."""

    reader: np.ndarray
    copy: np.ndarray
    title: np.ndarray
    branch: np.ndarray
    channel: np.ndarray
    borrowed: np.ndarray
    due: np.ndarray
    returned: np.ndarray
    renewals: np.ndarray


def _loan_frame(
    x: _Lent, pop: Population, cat: Catalogue, branches: pl.DataFrame, copies: pl.DataFrame
) -> tuple[pl.DataFrame, np.ndarray]:
    """The loans table (sorted by time, reader, title) and the title row of each of its rows."""
    order = np.lexsort((x.title, x.reader, x.borrowed))
    frame = pl.DataFrame(
        {
            "loan_id": numbered_ids("L", len(order), 10, start=1),
            "reader_id": pop.frame["reader_id"].gather(x.reader[order]),
            "copy_id": copies["copy_id"].gather(x.copy[order]),
            "title_id": cat.frame["title_id"].gather(x.title[order]),
            "branch_id": branches["branch_id"].gather(x.branch[order]),
            "channel": pl.Series(LOAN_CHANNELS).gather(x.channel[order]),
            "borrowed_at": x.borrowed[order],
            "due_at": x.due[order],
            "returned_at": pl.Series(x.returned[order]),
            "renewals": x.renewals[order],
        }
    ).with_columns(
        returned_at=pl.when(pl.col("returned_at") < pl.lit(END_TS)).then("returned_at"),
    )
    # The reader who chose a book at a partner bookstore walks out with it: the first loan of a
    # reader's-choice copy is a bookstore loan.
    choice = copies.select("copy_id", choice=pl.col("source") == "reader_choice")
    frame = (
        frame.join(choice, on="copy_id", how="left", maintain_order="left")
        .with_columns(
            channel=pl.when(pl.col("choice") & pl.col("copy_id").is_first_distinct())
            .then(pl.lit("bookstore"))
            .otherwise("channel")
        )
        .drop("choice")
    )
    return conform(frame, "loans"), x.title[order]


@dataclass
class Intents:
    """Every borrowing intent of the history, sorted by (title, time): title row, day, outcome
    (:mod:`features.circulation` codes) and loan start in days (NaN if never lent)."""

    title: np.ndarray
    day: np.ndarray
    outcome: np.ndarray
    start: np.ndarray


def _days_to_us(days: np.ndarray) -> np.ndarray:
    return _START_US + (days * _US_PER_DAY).astype(np.int64).astype("timedelta64[us]")


def sample_circulation(
    rng: np.random.Generator,
    n: int,
    pop: Population,
    cat: Catalogue,
    branches: pl.DataFrame,
    copies: pl.DataFrame,
    first_copy: np.ndarray,
    n_copies: np.ndarray,
) -> tuple[pl.DataFrame, pl.DataFrame, Intents]:
    """``n`` borrowing intents served by the copies (:func:`features.circulation.serve`).

    Returns the loans (only intents lent before the end of the history, one reader per copy at
    a time), the holds (intents that found every copy out and queued: fulfilled when lent,
    null when cancelled or still waiting at the end) and the intents themselves (the truth)."""
    reader, day, title, branch, channel = _draw_intents(rng, n, pop, cat, branches)
    t = day + (9 * 3600 + rng.beta(2.2, 2.0, n) * 11 * 3600) / 86_400
    keep, renewals = keeping_days(rng, n)
    occupancy = keep + turnaround_days(rng, n)
    u_walk, patience = rng.random(n), patience_days(rng, n)
    o = np.lexsort((t, title))
    reader, day, title, branch, channel, t, keep, renewals = (
        x[o] for x in (reader, day, title, branch, channel, t, keep, renewals)
    )
    res = serve(title, t, occupancy[o], n_copies, u_walk[o], patience[o])
    lent = res.lent & (res.start < N_DAYS)
    borrowed = _days_to_us(res.start[lent])
    period = (LOAN_PERIOD_DAYS * (1 + renewals[lent].astype(np.int64))) * _US_PER_DAY
    loan = _Lent(
        reader[lent], first_copy[title[lent]] + res.slot[lent], title[lent], branch[lent], channel[lent],
        borrowed, borrowed + period.astype("timedelta64[us]"),
        borrowed + (keep[lent] * _US_PER_DAY).astype(np.int64).astype("timedelta64[us]"), renewals[lent],
    )  # fmt: skip
    loans, _ = _loan_frame(loan, pop, cat, branches, copies)
    held = (res.outcome == AFTER_HOLD) | (res.outcome == CANCELLED)
    holds = _hold_frame(pop, cat, branches, reader[held], title[held], branch[held], t[held],
                        np.where(lent, res.start, np.nan)[held])  # fmt: skip
    return loans, holds, Intents(title, day, res.outcome, res.start)


def _hold_frame(pop, cat, branches, reader, title, branch, placed_day, filled_day) -> pl.DataFrame:
    """Holds placed when every copy was out; ``fulfilled_at`` is null if never lent."""
    filled = pl.Series(_days_to_us(np.nan_to_num(filled_day)))
    frame = pl.DataFrame(
        {
            "hold_id": numbered_ids("H", len(reader), 9, start=1),
            "reader_id": pop.frame["reader_id"].gather(reader),
            "title_id": cat.frame["title_id"].gather(title),
            "branch_id": branches["branch_id"].gather(branch),
            "placed_at": _days_to_us(placed_day),
            "fulfilled_at": filled.set(pl.Series(np.isnan(filled_day)), None),
        }
    ).sort("placed_at", "reader_id", "title_id", maintain_order=True)
    return conform(frame.with_columns(hold_id=numbered_ids("H", len(frame), 9, start=1)), "holds")


def title_periods(cat: Catalogue, n_copies: np.ndarray, x: Intents) -> pl.DataFrame:
    """Truth per print title per year of the history: copies, intents, loans started, holds
    placed and unmet intents (walked away, cancelled or still waiting at the end)."""
    bounds = np.array([(date(START.year + k, 7, 1) - START).days for k in (1, 2)])
    n_titles, n_periods = len(cat.frame), len(bounds) + 1
    lent = (x.outcome <= AFTER_HOLD) & (x.start < N_DAYS)
    key = x.title * n_periods + np.searchsorted(bounds, x.day, side="right")
    lent_key = x.title[lent] * n_periods + np.searchsorted(bounds, x.start[lent], side="right")
    size = n_titles * n_periods
    counts = {
        "intents": np.bincount(key, minlength=size),
        "loans": np.bincount(lent_key, minlength=size),
        "holds": np.bincount(key[(x.outcome == AFTER_HOLD) | (x.outcome == CANCELLED)], minlength=size),
        "unmet": np.bincount(key[~lent], minlength=size),
    }
    rows = np.repeat(np.flatnonzero(~cat.ebook), n_periods) * n_periods + np.tile(
        np.arange(n_periods), (~cat.ebook).sum()
    )
    starts = np.array([START] + [date(START.year + k, 7, 1) for k in (1, 2)], dtype="datetime64[D]")
    return pl.DataFrame(
        {
            "title_id": cat.frame["title_id"].gather(rows // n_periods),
            "period": (rows % n_periods).astype(np.int8),
            "period_start": starts[rows % n_periods],
            "copies": n_copies[rows // n_periods].astype(np.int32),
            **{k: v[rows].astype(np.int32) for k, v in counts.items()},
        }
    )


def sample_ebook_events(rng: np.random.Generator, n_downloads: int, pop: Population, cat: Catalogue) -> pl.DataFrame:
    """E-book downloads (by e-book affinity and taste) and the reads that follow ~45% of them."""
    reader = draw_categorical(rng, pop.ebook_affinity, n_downloads, ordered=True)
    day = registration_remap(draw_categorical(rng, day_weights(children=False), n_downloads), pop.reg_day[reader])
    cluster = draw_rows(rng, pop.taste, reader)
    title = TitleSampler(cat, cat.ebook).draw(rng, cluster, day)
    at = _timestamps(rng, day)
    read = rng.random(n_downloads) < 0.45
    read_at = at[read] + (rng.uniform(0.02, 4.0, read.sum()) * _US_PER_DAY).astype("timedelta64[us]")
    keep = read_at < _END_US
    r_all = np.concatenate([reader, reader[read][keep]])
    t_all = np.concatenate([title, title[read][keep]])
    at_all = np.concatenate([at, read_at[keep]])
    action = np.concatenate([np.zeros(n_downloads, np.int8), np.ones(int(keep.sum()), np.int8)])
    order = np.lexsort((t_all, r_all, at_all))
    frame = pl.DataFrame(
        {
            "event_id": numbered_ids("E", len(order), 10, start=1),
            "reader_id": pop.frame["reader_id"].gather(r_all[order]),
            "title_id": cat.frame["title_id"].gather(t_all[order]),
            "occurred_at": at_all[order],
            "action": pl.Series(EBOOK_ACTIONS).gather(action[order]),
        }
    )
    return conform(frame, "ebook_events")


def sample_holds(
    rng: np.random.Generator, loans: pl.DataFrame, loan_title: np.ndarray, pressure: np.ndarray, n: int
) -> pl.DataFrame:
    """Holds concentrated on titles with high demand per copy: loans are picked with probability
    ∝ pressure**1.5 of their title; the hold was placed 2-25 days before the loan and fulfilled by
    it; ~12% were never fulfilled (cancelled or still waiting)."""
    pick = np.unique(draw_categorical(rng, pressure[loan_title] ** 1.5, n))
    src = loans[pick]
    borrowed = src["borrowed_at"].to_numpy()
    placed = borrowed - (rng.uniform(2.0, 25.0, len(pick)) * _US_PER_DAY).astype("timedelta64[us]")
    placed = np.maximum(placed, _START_US)
    fulfilled = rng.random(len(pick)) >= 0.12
    frame = pl.DataFrame(
        {
            "hold_id": numbered_ids("H", len(pick), 9, start=1),
            "reader_id": src["reader_id"],
            "title_id": src["title_id"],
            "branch_id": src["branch_id"],
            "placed_at": placed,
            "fulfilled_at": pl.Series(borrowed).set(pl.Series(~fulfilled), None),
        }
    ).sort("placed_at", "reader_id", "title_id", maintain_order=True)
    return conform(frame.with_columns(hold_id=numbered_ids("H", len(frame), 9, start=1)), "holds")


def copy_statuses(rng: np.random.Generator, copies: pl.DataFrame, loans: pl.DataFrame) -> pl.DataFrame:
    """Copies out on an open loan are ``on_loan``; of the rest ~1% lost, 3% withdrawn, 1.5% in
    transit, the others on the shelf."""
    out = loans.filter(pl.col("returned_at").is_null()).select("copy_id").unique()
    u = rng.random(len(copies))
    other = np.select([u < 0.01, u < 0.04, u < 0.055], ["lost", "withdrawn", "in_transit"], "on_shelf")
    return copies.with_columns(
        status=pl.when(pl.col("copy_id").is_in(out["copy_id"].implode()))
        .then(pl.lit("on_loan"))
        .otherwise(pl.Series(other))
    )
