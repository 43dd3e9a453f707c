"""Value of buying k copies: the loans they will actually serve in their first year.

A title's demand is its **borrowing intents** in the first year (readers who want it on some day,
predicted by :mod:`acquisition.demand`). Copies turn intents into **loans** only while one is on the
shelf: a copy is with one reader at a time, for the days a reader keeps it plus the days it spends
being returned, reshelved or in transit, so one copy serves at most
``capacity = 365 / (days_out + turnaround_days)`` loans a year (DOMAIN.md §6: about 8-16). A reader
who finds every copy out places a hold and waits; the longer the queue, the more give up.

The model is the stationary Erlang-A queue (M/M/k+M: Poisson intents at rate ``lam`` a year, ``k``
copies each serving ``capacity`` loans a year, patience exponential with mean ``patience_days``):
served = ``capacity x E[copies busy]`` = ``lam - abandonment``. It gives, for every ISBN and k,

* expected loans served in the first year (never above ``lam``, never above ``k x capacity``,
  nondecreasing and concave in k: each further copy adds less);
* expected readers who must queue (place a hold) in the year, ``lam x P(all copies out)``;
* the marginal value of copy 1, 2, 3... (what the optimiser buys on).

``lam`` itself is uncertain: the prediction is treated as a gamma-distributed rate with shape
``dispersion`` (negative-binomial intents). The point value averages the queue over gamma quantile
nodes rescaled to mean ``lam`` (a mixture of concave functions of k stays concave, and its mean stays
below ``lam``); the interval is the served loans at the 10 % and 90 % quantiles of the rate (served is
monotone in ``lam``). :func:`served_loans` with ``dispersion=None`` is the same queue at a known rate:
the score the backtest grades with the true intents is the function the optimiser maximises.

Everything is vectorised over ISBNs x k (a ``(n, K, states)`` array); the only loop is over the few
quantile nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from scipy.special import logsumexp
from scipy.stats import gamma

#: Days in the year the value counts (the first year after the book is on the shelf).
YEAR_DAYS = 365.0


@dataclass(frozen=True)
class Circulation:
    """How a copy circulates (DOMAIN.md §6; estimate ``days_out`` from the loans with :meth:`from_loans`)."""

    #: Mean days a reader keeps a copy, renewals included, days (loan period 30, most return early).
    days_out: float = 21.0
    #: Days between a return and the next loan: check-in, reshelving, transit between branches.
    turnaround_days: float = 2.0
    #: Mean days a reader waits on a hold before giving up, days.
    patience_days: float = 30.0
    #: Gamma shape of the uncertainty of a predicted rate (smaller = wider); None = the rate is known.
    dispersion: float | None = 4.0

    @property
    def capacity(self) -> float:
        """Most loans one copy can serve in a year (every day out or turning round)."""
        return YEAR_DAYS / (self.days_out + self.turnaround_days)

    @classmethod
    def from_loans(cls, loans: pl.DataFrame, as_of: datetime, **kw) -> Circulation:
        """``days_out`` = mean days of the loans returned in the year before ``as_of`` (only the past
        is read; clipped to 7-90 days); the default when there are none."""
        if "returned_at" not in loans.columns or loans.is_empty():
            return cls(**kw)
        days = (
            loans.filter(
                pl.col("returned_at").is_not_null()
                & (pl.col("returned_at") < as_of)
                & (pl.col("borrowed_at") >= as_of - timedelta(days=365))
            )
            .select(((pl.col("returned_at") - pl.col("borrowed_at")).dt.total_seconds() / 86400.0).mean())
            .item()
        )
        if days is None or not np.isfinite(days):
            return cls(**kw)
        # rounded: a measured figure, and the same whatever order the loans are stored in
        return cls(days_out=round(float(np.clip(days, 7.0, 90.0)), 3), **kw)


def _queue(lam: np.ndarray, k: np.ndarray, circ: Circulation, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Stationary Erlang-A at known rates: (served loans a year, readers queueing a year), broadcast
    over ``lam`` (intents a year) and ``k`` (copies, >= 0). Rows are solved in blocks of similar
    rates so that each block needs only the states its own rates reach."""
    lam, k = np.broadcast_arrays(np.asarray(lam, dtype=np.float64), np.asarray(k, dtype=np.int64))
    flat_lam, flat_k = lam.reshape(-1), k.reshape(-1)
    if flat_lam.size <= block:
        return _queue_block(lam, k, circ)
    order = np.argsort(flat_lam, kind="stable")
    served, queued = np.empty(flat_lam.size), np.empty(flat_lam.size)
    for start in range(0, flat_lam.size, block):  # blocks of rows, each sized to its own rates
        rows = order[start : start + block]
        served[rows], queued[rows] = _queue_block(flat_lam[rows], flat_k[rows], circ)
    return served.reshape(lam.shape), queued.reshape(lam.shape)


def _queue_block(lam: np.ndarray, k: np.ndarray, circ: Circulation) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_queue` on arrays already broadcast to one shape."""
    mu = circ.capacity
    theta = YEAR_DAYS / circ.patience_days
    # enough states that the truncated tail is negligible: queue beyond k is at most ~ lam / theta
    top = float(np.max(lam, initial=0.0))
    n_states = int(np.max(k, initial=0) + top / min(mu, theta) + 8.0 * np.sqrt(top / min(mu, theta) + 1.0) + 10)
    n = np.arange(1, n_states + 1, dtype=np.float64)
    kk = k[..., None].astype(np.float64)
    death = np.minimum(n, kk) * mu + np.maximum(n - kk, 0.0) * theta
    safe_lam = np.maximum(lam, 1e-300)[..., None]
    logp = np.concatenate([np.zeros(lam.shape + (1,)), np.cumsum(np.log(safe_lam) - np.log(death), axis=-1)], axis=-1)
    p = np.exp(logp - logsumexp(logp, axis=-1, keepdims=True))
    states = np.arange(n_states + 1, dtype=np.float64)
    busy = (p * np.minimum(states, kk)).sum(axis=-1)
    all_out = (p * (states >= kk)).sum(axis=-1)
    served = np.minimum(busy * mu, lam)  # mu E[busy] = lam - theta E[queue] <= lam (rounding aside)
    queued = lam * all_out
    zero = lam <= 0
    return np.where(zero, 0.0, served), np.where(zero, 0.0, queued)


def _nodes(circ: Circulation, n_nodes: int = 7) -> np.ndarray:
    """Multipliers of the rate at gamma quantile midpoints, rescaled to mean 1 (one node if known)."""
    if circ.dispersion is None:
        return np.ones(1)
    q = gamma.ppf((np.arange(n_nodes) + 0.5) / n_nodes, circ.dispersion, scale=1.0 / circ.dispersion)
    return q / q.mean()


def served_loans(intents, copies, circ: Circulation | None = None) -> np.ndarray:
    """Expected loans served in the first year by ``copies`` copies of a title with ``intents``
    borrowing intents a year (predicted: averaged over the rate's uncertainty; ``dispersion=None``:
    a known rate). Broadcasts; never above ``intents`` nor ``copies x capacity``."""
    circ = circ or Circulation()
    lam = np.asarray(intents, dtype=np.float64)
    out = sum(_queue(lam * m, copies, circ)[0] for m in _nodes(circ))
    return out / len(_nodes(circ))


@dataclass
class CopyValue:
    """Value of 0..K copies per ISBN (arrays ``(n, K + 1)``; column k = k copies)."""

    #: Expected first-year loans served.
    served: np.ndarray
    #: 10 % and 90 % bounds of the served loans (the rate's uncertainty).
    served_lo: np.ndarray
    served_hi: np.ndarray
    #: Expected readers who find every copy out and must queue in the year.
    queued: np.ndarray
    #: Most loans one copy can serve in a year.
    capacity: float

    def marginal(self) -> np.ndarray:
        """``(n, K)``: loans added by copy 1, 2, ..., K (decreasing along each row)."""
        return np.diff(self.served, axis=1)


def copy_value(intents, max_copies: int = 3, circ: Circulation | None = None) -> CopyValue:
    """:class:`CopyValue` of 0..``max_copies`` copies for each predicted intent rate in ``intents``."""
    circ = circ or Circulation()
    lam = np.asarray(intents, dtype=np.float64).reshape(-1, 1)
    k = np.arange(max_copies + 1).reshape(1, -1)
    nodes = _nodes(circ)
    served, queued = np.zeros((lam.shape[0], k.shape[1])), np.zeros((lam.shape[0], k.shape[1]))
    for m in nodes:  # a handful of quantile nodes, not rows
        s, q = _queue(lam * m, k, circ)
        served += s / len(nodes)
        queued += q / len(nodes)
    lo_hi = [1.0, 1.0]
    if circ.dispersion is not None:
        lo_hi = list(gamma.ppf([0.1, 0.9], circ.dispersion, scale=1.0 / circ.dispersion))
    known = Circulation(circ.days_out, circ.turnaround_days, circ.patience_days, None)
    lo = _queue(lam * lo_hi[0], k, known)[0]
    hi = _queue(lam * lo_hi[1], k, known)[0]
    return CopyValue(served, np.minimum(lo, served), np.maximum(hi, served), queued, circ.capacity)


def intent_interval(intents, circ: Circulation | None = None, level: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` interval of the first-year intents: negative binomial with mean ``intents``
    and shape ``dispersion`` (Poisson when the rate is known)."""
    from scipy.stats import nbinom, poisson

    circ = circ or Circulation()
    lam = np.maximum(np.asarray(intents, dtype=np.float64), 1e-9)
    tails = ((1 - level) / 2, (1 + level) / 2)
    if circ.dispersion is None:
        return poisson.ppf(tails[0], lam), poisson.ppf(tails[1], lam)
    r = circ.dispersion
    prob = r / (r + lam)
    return nbinom.ppf(tails[0], r, prob), nbinom.ppf(tails[1], r, prob)


def portfolio_loans(
    isbn: np.ndarray,
    selected: np.ndarray,
    intents: dict[str, float],
    held: dict[str, int] | None = None,
    circ: Circulation | None = None,
) -> float:
    """The score: first-year loans served by the copies bought (lines ``selected`` of ``isbn``),
    ``served(held + bought) - served(held)`` per ISBN at its ``intents`` (ISBN -> intents a year),
    summed. The optimiser's objective and the backtest's grade are both this function."""
    frame = (
        pl.DataFrame({"isbn": np.asarray(isbn).astype(str), "bought": np.asarray(selected, dtype=np.int64)})
        .group_by("isbn")
        .agg(pl.col("bought").sum())
    )
    lut = pl.DataFrame(
        {"isbn": list(intents), "lam": list(intents.values())}, schema={"isbn": pl.String, "lam": pl.Float64}
    )
    have = pl.DataFrame(
        {"isbn": list(held or {}), "held": list((held or {}).values())}, schema={"isbn": pl.String, "held": pl.Int64}
    )
    frame = frame.join(lut, on="isbn", how="left").join(have, on="isbn", how="left").fill_null(0)
    lam, base = frame["lam"].to_numpy(), frame["held"].to_numpy()
    return float((served_loans(lam, base + frame["bought"].to_numpy(), circ) - served_loans(lam, base, circ)).sum())


def line_values(intents, copies_before, circ: Circulation | None = None) -> pl.DataFrame:
    """Per request line, the copy it would add to ``copies_before`` copies (network + earlier lines of
    its ISBN) of a title with ``intents`` a year: ``predicted_loans`` (its marginal first-year loans),
    ``loans_lo``/``loans_hi`` (10-90 % of the rate), ``expected_queue`` (readers who still queue with
    it bought) and ``capacity`` (loans one copy can serve)."""
    circ = circ or Circulation()
    before = np.asarray(copies_before, dtype=np.int64).reshape(-1, 1)
    lam = np.nan_to_num(np.asarray(intents, dtype=np.float64), nan=0.0)
    v = copy_value(lam, int(before.max(initial=0)) + 1, circ)

    def step(a: np.ndarray) -> np.ndarray:
        return (np.take_along_axis(a, before + 1, axis=1) - np.take_along_axis(a, before, axis=1)).ravel()

    point, lo, hi = step(v.served), step(v.served_lo), step(v.served_hi)
    return pl.DataFrame(
        {
            "predicted_loans": point,
            "loans_lo": np.minimum.reduce([lo, hi, point]),
            "loans_hi": np.maximum.reduce([lo, hi, point]),
            "expected_queue": np.take_along_axis(v.queued, before + 1, axis=1).ravel(),
            "capacity": np.full(len(point), v.capacity),
        }
    )
