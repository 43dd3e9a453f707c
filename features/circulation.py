"""Circulation physics: borrowing intents served by a finite number of copies through FIFO holds.

An **intent** is a reader wanting a title at an instant (the latent demand). A title has a fixed
number of copies; a copy is with one reader at a time and is lendable again only after the
reader's keeping time plus a turnaround (return, reshelving or transit to the next reader's
branch). Intents of one title are served in time order:

- a copy is free: the loan starts at once on the copy that has been free longest;
- every copy is out: the reader sees ``q`` holds ahead and walks away with probability
  ``walk_base + (1 - walk_base) * q / (q + queue_half)``; otherwise places a hold, which is filled
  by the first copy to come back (first come, first served) unless the wait exceeds the reader's
  patience, when the hold is cancelled.

:func:`serve` runs every title at once: titles are sorted by their number of intents, and round
``k`` handles the ``k``-th intent of every title that has one, as a handful of numpy operations
over those titles (so the rounds number the busiest title's intents, not all intents). Same
inputs give the same outputs; all randomness comes in as arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Outcome codes of an intent.
IMMEDIATE, AFTER_HOLD, WALKED_AWAY, CANCELLED = 0, 1, 2, 3


@dataclass(frozen=True)
class QueuePolicy:
    """How readers behave when every copy is out (defaults documented in docs/synthetic-city.md)."""

    #: Share of readers who do not place a hold even when nobody is queueing yet.
    walk_base: float = 0.15
    #: Queue length ahead at which half of the remaining readers walk away.
    queue_half: float = 3.0
    #: Holds remembered per title to measure the queue (longer queues count as this many).
    ring: int = 32


@dataclass
class Served:
    """Per intent (in the input order): outcome code, loan start (days, NaN if never lent) and the
    copy slot within its title (``-1`` if never lent)."""

    outcome: np.ndarray
    start: np.ndarray
    slot: np.ndarray

    @property
    def lent(self) -> np.ndarray:
        return self.outcome <= AFTER_HOLD


def _group_layout(group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups ordered by intent count (descending), their first intent and their count."""
    counts = np.bincount(group, minlength=n_groups)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    order = np.argsort(-counts, kind="stable")
    return order, offsets[order], counts[order]


def serve(
    group: np.ndarray,
    t: np.ndarray,
    occupancy: np.ndarray,
    n_copies: np.ndarray,
    u_walk: np.ndarray,
    patience: np.ndarray,
    policy: QueuePolicy = QueuePolicy(),
) -> Served:
    """Serve intents FIFO with ``n_copies[g]`` copies per group (title).

    ``group`` (int, per intent) and ``t`` (float days) must be sorted by ``(group, t)``;
    ``occupancy`` is the days a loan keeps its copy busy (keeping + turnaround), ``u_walk`` a
    uniform draw deciding walking away, ``patience`` the days a holder is willing to wait.
    Groups with no copy lend nothing (every intent walks away)."""
    n = len(group)
    if n and (np.any(np.diff(group) < 0) or np.any((np.diff(t) < 0) & (np.diff(group) == 0))):
        raise ValueError("serve: intents must be sorted by (group, t)")
    order, first, count = _group_layout(group, len(n_copies))
    width = max(int(n_copies.max(initial=0)), 1)
    copies = n_copies[order]
    free = np.where(np.arange(width)[None, :] < copies[:, None], -np.inf, np.inf)
    ring = np.full((len(order), policy.ring), -np.inf)
    n_held = np.zeros(len(order), dtype=np.int64)
    outcome = np.full(n, WALKED_AWAY, dtype=np.int8)
    start = np.full(n, np.nan)
    slot = np.full(n, -1, dtype=np.int64)
    active = np.searchsorted(-count, -np.arange(int(count.max(initial=0))), side="left")
    for k, a in enumerate(active):
        idx = first[:a] + k
        _round(idx, t[idx], free[:a], ring[:a], n_held[:a], occupancy, u_walk, patience, policy,
               outcome, start, slot)  # fmt: skip
    return Served(outcome, start, slot)


def _round(idx, tk, free, ring, n_held, occupancy, u_walk, patience, policy, outcome, start, slot) -> None:
    """One intent of each active group: lend, hold or walk away; updates the state in place."""
    rows = np.arange(len(idx))
    copy = free.argmin(axis=1)
    ready = free[rows, copy]
    now = ready <= tk
    ahead = (ring > tk[:, None]).sum(axis=1)
    p_walk = policy.walk_base + (1.0 - policy.walk_base) * ahead / (ahead + policy.queue_half)
    walk = ~now & ((u_walk[idx] < p_walk) | ~np.isfinite(ready))
    cancel = ~now & ~walk & (ready - tk > patience[idx])
    lent = now | ~(walk | cancel)
    begin = np.where(now, tk, ready)
    r = rows[lent]
    free[r, copy[r]] = begin[r] + occupancy[idx[r]]
    h = rows[lent & ~now]
    ring[h, n_held[h] % ring.shape[1]] = begin[h]
    n_held[h] += 1
    outcome[idx] = np.select([now, lent, cancel], [IMMEDIATE, AFTER_HOLD, CANCELLED], WALKED_AWAY)
    start[idx[r]] = begin[r]
    slot[idx[r]] = copy[r]


def served_in_window(
    rate: np.ndarray,
    copies: int,
    rng: np.random.Generator,
    horizon: float = 365.0,
    replications: int = 4,
    policy: QueuePolicy = QueuePolicy(),
) -> tuple[np.ndarray, np.ndarray]:
    """Mean intents and mean loans started within ``horizon`` days for titles with Poisson intent
    ``rate`` per horizon and ``copies`` copies each, over ``replications`` simulated windows.

    The draws depend only on ``rng``'s state, so calling it with the same seed for 1, 2 and 3
    copies compares the copy counts on identical readers."""
    rate = np.asarray(rate, dtype=np.float64)
    g = np.repeat(np.arange(len(rate)), replications)
    n = rng.poisson(np.repeat(rate, replications))
    group = np.repeat(np.arange(len(g)), n)
    t = rng.random(len(group)) * horizon
    order = np.lexsort((t, group))
    group, t = group[order], t[order]
    occ = keeping_days(rng, len(group))[0] + turnaround_days(rng, len(group))
    res = serve(group, t, occ, np.full(len(g), copies), rng.random(len(group)), patience_days(rng, len(group)), policy)
    lent = res.lent & (res.start < horizon)
    per_rep = np.bincount(group[lent], minlength=len(g))
    return (
        np.bincount(g, weights=n, minlength=len(rate)) / replications,
        np.bincount(g, weights=per_rep, minlength=len(rate)) / replications,
    )


def keeping_days(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Days a reader keeps a book and the renewals behind it: 30-day loans, 18% renewed once and
    5% twice; most are back well before the due date (1 + Gamma(2, 8.5) days plus 10-30 a renewal,
    at most 150)."""
    u = rng.random(n)
    renewals = np.select([u < 0.05, u < 0.23], [2, 1], 0).astype(np.int8)
    keep = 1.0 + rng.gamma(2.0, 8.5, n) + renewals * rng.uniform(10, 30, n)
    return np.minimum(keep, 150.0), renewals


def turnaround_days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Days between a return and the copy's next loan start: check-in and reshelving, or transit
    to the next reader's branch and pick-up (1-4 days)."""
    return rng.uniform(1.0, 4.0, n)


def patience_days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Days a reader with a hold waits before cancelling (exponential, mean 75)."""
    return rng.exponential(75.0, n)
