"""When can the reader have the book: expected wait per (reader's branch, title), vectorised.

A print title's copies serve one reader at a time (DOMAIN.md §6). :class:`Circulation` is the
state of every title on one day — live copies, copies on the shelf, the days until each copy out
on loan is expected back, the holds waiting — and :func:`expected_wait` turns it into the days a
reader would wait for each candidate title:

* an e-book: 0 days;
* a copy on the shelf at the reader's branch: 0 days; on the shelf elsewhere: the U Book to Home
  delivery days when home delivery reaches the reader's branch, else the transfer days between
  branches (a hold picked up at the reader's branch);
* every copy out: the reader is behind the ``q`` holds already waiting, so the book comes with the
  ``(q + 1)``-th return: with ``c`` loans out returning after ``r_0 <= r_1 <= ...`` days, that is
  ``r_(q mod c) + (q div c) × cycle`` where ``cycle`` is a loan's mean keeping time plus turnaround
  (each returned copy goes to the next hold);
* no live copy: never (``inf``).

An open loan is expected back ``mean keeping days`` after it started (measured on the returned
loans), not before tomorrow and not after its due date (readers mostly return early: 18 days kept
on a 30-day loan in the synthetic city). The queue is one pool per title (One Card: any copy can
go to any branch), as in :mod:`features.circulation`.

The same functions serve the online service (the state built from the copies, loans and holds
tables by :func:`circulation_from_frames`) and the simulation (a state built from simulated
copies, :mod:`recsys.evaluation.simulation`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from features.vocab import Vocabulary

#: Days from a return until the copy can go to the next reader (check-in, reshelving), as the
#: generator's turnaround (1-4 days, features.circulation.turnaround_days) on average.
TURNAROUND_DAYS = 2.5
#: A hold without a fulfilment older than this many days is taken as cancelled (the synthetic
#: city's readers wait 75 days on average before cancelling).
HOLD_ALIVE_DAYS = 75.0


@dataclass(frozen=True)
class Circulation:
    """Per title (arrays of length ``n_titles``) on one day.

    ``returns`` holds, title after title, the days from today until each copy out on loan is
    expected back and lendable again (sorted within a title); title ``t``'s are
    ``returns[return_ptr[t]:return_ptr[t + 1]]``."""

    #: Copies not lost or withdrawn (int32).
    copies: np.ndarray
    #: Copies on the shelf somewhere (int32).
    free: np.ndarray
    #: Holds waiting (int32).
    queue: np.ndarray
    return_ptr: np.ndarray
    returns: np.ndarray
    #: Days a loan keeps its copy on average, turnaround included (float).
    cycle_days: float
    #: Digital titles (always available, no queue).
    digital: np.ndarray
    #: Usual demand: loans started per day over the last year, per title (float; None = unknown).
    loans_per_day: np.ndarray | None = None

    def demand(self, days: float) -> np.ndarray:
        """Loans the title's usual readers start in ``days`` days (0 when unknown)."""
        if self.loans_per_day is None:
            return np.zeros(len(self.copies))
        return self.loans_per_day * days

    @property
    def n_out(self) -> np.ndarray:
        """Copies out on loan per title (int64)."""
        return np.diff(self.return_ptr)

    @classmethod
    def empty(cls, n_titles: int, digital: np.ndarray | None = None) -> Circulation:
        """No holdings known: every print title waits forever, e-books are at hand."""
        z = np.zeros(n_titles, np.int32)
        dig = np.zeros(n_titles, bool) if digital is None else np.asarray(digital, bool)
        return cls(z, z, z, np.zeros(n_titles + 1, np.int64), np.zeros(0), 30.0, dig)

    @classmethod
    def from_returns(cls, copies, free, queue, title_of_loan, days_back, cycle_days: float, digital) -> Circulation:
        """From per-title counts and, per open loan, its title row and days until its copy is back."""
        n_t = len(copies)
        t = np.asarray(title_of_loan, np.int64)
        d = np.asarray(days_back, np.float64)
        order = np.lexsort((d, t))
        ptr = np.zeros(n_t + 1, np.int64)
        np.cumsum(np.bincount(t, minlength=n_t), out=ptr[1:])
        return cls(
            np.asarray(copies, np.int32), np.asarray(free, np.int32), np.asarray(queue, np.int32),
            ptr, d[order], float(cycle_days), np.asarray(digital, bool),
        )  # fmt: skip


def _as_datetime(today: date) -> datetime:
    return today if isinstance(today, datetime) else datetime(today.year, today.month, today.day)


def circulation_from_frames(
    copies: pl.DataFrame, loans: pl.DataFrame, holds: pl.DataFrame, titles: Vocabulary, today: date,
    digital: np.ndarray,
) -> Circulation:  # fmt: skip
    """The state on ``today`` from the copies, loans and holds tables (conformed frames).

    Open loans are those borrowed before ``today`` and not returned by then (a later return date is
    not looked at: the state must not know the future). Holds waiting were placed before ``today``,
    within :data:`HOLD_ALIVE_DAYS`, and not fulfilled by then."""
    now = _as_datetime(today)
    n_t = len(titles)
    t_copy = titles.index(copies["title_id"]) if len(copies) else np.zeros(0, np.int64)
    gone = copies["status"].is_in(["lost", "withdrawn"]).to_numpy() if len(copies) else np.zeros(0, bool)
    shelf = (copies["status"] == "on_shelf").to_numpy() if len(copies) else np.zeros(0, bool)
    ok = t_copy >= 0
    live = np.bincount(t_copy[ok & ~gone], minlength=n_t)
    free = np.bincount(t_copy[ok & shelf], minlength=n_t)
    keep = _mean_keep_days(loans, now)
    out = loans.filter(
        (pl.col("borrowed_at") < now) & (pl.col("returned_at").is_null() | (pl.col("returned_at") >= now))
    )
    t_loan = titles.index(out["title_id"]) if len(out) else np.zeros(0, np.int64)
    back = _days_back(out, now, keep)
    okl = t_loan >= 0
    queue = _waiting_holds(holds, titles, now)
    circ = Circulation.from_returns(live, free, queue, t_loan[okl], back[okl], keep + TURNAROUND_DAYS, digital)
    year = loans.filter((pl.col("borrowed_at") < now) & (pl.col("borrowed_at") >= now - timedelta(days=365)))
    t_year = titles.index(year["title_id"]) if len(year) else np.zeros(0, np.int64)
    per_day = np.bincount(t_year[t_year >= 0], minlength=n_t) / 365.0
    return replace(circ, loans_per_day=per_day)


def _mean_keep_days(loans: pl.DataFrame, now: datetime) -> float:
    """Mean days a returned loan was kept (returned before ``now``); 18 when nothing is known."""
    done = loans.filter(pl.col("returned_at").is_not_null() & (pl.col("returned_at") < now))
    if len(done) == 0:
        return 18.0
    days = (done["returned_at"] - done["borrowed_at"]).dt.total_seconds() / 86_400
    return float(max(days.mean() or 18.0, 1.0))


def _days_back(out: pl.DataFrame, now: datetime, keep: float) -> np.ndarray:
    """Days from ``now`` until each open loan's copy is lendable again: started + mean keep, not
    before half a day from now, not after the due date, plus the turnaround."""
    if len(out) == 0:
        return np.zeros(0)
    started = ((out["borrowed_at"] - now).dt.total_seconds() / 86_400).to_numpy()
    due = (out["due_at"].fill_null(out["borrowed_at"] + pl.duration(days=30)) - now).dt.total_seconds() / 86_400
    due = due.to_numpy()
    back = np.minimum(np.maximum(started + keep, 0.5), np.maximum(due, 0.5))
    return back + TURNAROUND_DAYS


def _waiting_holds(holds: pl.DataFrame, titles: Vocabulary, now: datetime) -> np.ndarray:
    """Holds waiting on ``now`` per title row (int64)."""
    n_t = len(titles)
    if len(holds) == 0:
        return np.zeros(n_t, np.int64)
    alive = now - pl.duration(days=int(HOLD_ALIVE_DAYS))
    w = holds.filter(
        (pl.col("placed_at") < now)
        & (pl.col("placed_at") >= alive)
        & (pl.col("fulfilled_at").is_null() | (pl.col("fulfilled_at") >= now))
    )
    t = titles.index(w["title_id"]) if len(w) else np.zeros(0, np.int64)
    return np.bincount(t[t >= 0], minlength=n_t)


@dataclass(frozen=True)
class Waits:
    """Per candidate (k × m): expected days until the reader can have the title (``inf`` never),
    holds ahead of the reader (0 when a copy is free) and whether a copy is free now."""

    days: np.ndarray
    ahead: np.ndarray
    free_now: np.ndarray


def queue_wait(circ: Circulation, titles: np.ndarray) -> np.ndarray:
    """Days until the ``(queue + 1)``-th copy comes back, per title row (any shape; 0 when a copy
    is free or the title is digital, ``inf`` without live copies)."""
    t = np.asarray(titles, np.int64)
    q = circ.queue[t].astype(np.int64)
    out = circ.n_out[t]
    servers = np.maximum(out, 1)
    idx = np.minimum(circ.return_ptr[t] + q % servers, max(len(circ.returns) - 1, 0))
    back = circ.returns[idx] if len(circ.returns) else np.zeros(t.shape)
    by_returns = np.where(out > 0, back + (q // servers) * circ.cycle_days, np.nan)
    # Copies neither on the shelf nor on loan (in transit): about one turnaround per round.
    copies = np.maximum(circ.copies[t], 1)
    in_transit = TURNAROUND_DAYS + (q // copies) * circ.cycle_days
    wait = np.where(np.isnan(by_returns), in_transit, by_returns)
    wait = np.where(circ.copies[t] > 0, wait, np.inf)
    return np.where((circ.free[t] > 0) | circ.digital[t], 0.0, wait)


def expected_wait(
    circ: Circulation,
    titles: np.ndarray,
    here: np.ndarray,
    delivers: np.ndarray,
    transfer_days: float = 3.0,
    delivery_days: float = 2.0,
) -> Waits:
    """Expected wait of each candidate: ``titles`` (k × m title rows, ``-1`` padding), ``here``
    (k × m: a copy on the shelf at the reader's branch), ``delivers`` (k: home delivery reaches the
    reader's branch). Padding gets ``inf``."""
    t = np.asarray(titles, np.int64)
    valid = t >= 0
    safe = np.where(valid, t, 0)
    free = (circ.free[safe] > 0) & ~circ.digital[safe]
    away = np.where(np.asarray(delivers, bool)[:, None], delivery_days, transfer_days)
    shelf = np.where(np.asarray(here, bool), 0.0, away)
    days = np.where(free, shelf, queue_wait(circ, safe))
    days = np.where(circ.digital[safe], 0.0, days)
    ahead = np.where(free | circ.digital[safe], 0, circ.queue[safe]).astype(np.int32)
    return Waits(np.where(valid, days, np.inf), np.where(valid, ahead, 0), free & valid)


def servable(circ: Circulation, horizon_days: float) -> np.ndarray:
    """Loans each title can start within ``horizon_days`` (float per title; ``inf`` for e-books):
    the free copies plus the copies back within the horizon, less the holds they go to first, plus
    the further cycles a copy can make in the horizon."""
    ptr, back = circ.return_ptr, circ.returns
    title_of = np.repeat(np.arange(len(circ.copies)), np.diff(ptr))
    back_soon = np.bincount(title_of[back <= horizon_days], minlength=len(circ.copies))
    cycles = np.floor(max(horizon_days, 0.0) / max(circ.cycle_days, 1e-9))
    cap = circ.free + back_soon - circ.queue + cycles * circ.copies
    return np.where(circ.digital, np.inf, np.maximum(cap, 0).astype(np.float64))
