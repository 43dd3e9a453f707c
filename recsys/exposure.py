"""Exposure control: how often one copy is recommended stays bounded by what it can serve.

Ten readers told about one copy make one loan and nine disappointments. The nightly lists are a
capacity-constrained assignment: choose ``n`` of each reader's candidates to maximise the summed
(promoted) relevance subject to, for every title ``t``,

    readers shown t  <=  cap_t = exposures_per_loan × loans t can start within the list's lifetime

(:func:`recsys.queues.servable`; ``exposures_per_loan`` is how many readers see a book for one of
them to go for it, so the bound is on the loans the lists cause, not on the showing itself).

**Algorithm: Lagrangian relaxation with dual prices.** Relax the title constraints with prices
``λ_t >= 0``; for given prices the problem splits by reader: each reader takes the top ``n`` of
``relevance - λ_t`` (one ``argpartition`` over the k × m candidate matrix). Prices follow a
projected subgradient step on the constraint violation, normalised by the capacity::

    λ_t <- max(0, λ_t + η_i · (load_t - cap_t) / max(cap_t, 1)),   η_i = η_0 / sqrt(i + 1)

for ``iterations`` rounds (default 30), keeping the prices of the round with the least total
overload. **Cost**: per round O(k·m) for the top-n selection plus O(k·n) for the loads — on the
city's size (200,000 readers × 50 candidates, 180,000 titles) 30 rounds took 60 s on one core of the
shared machine (random candidates; measured for issue 21), a nightly job; the prices are one
float per title (180,000 × 8 bytes), stored next to the model (:func:`save_prices`) and loaded at
serve time, where a request only subtracts ``λ`` from its candidates' relevance (O(m)). Titles with
room to spare keep ``λ = 0``; the relaxation is not exact (a price makes every reader drop the
title alike, so a few titles can stay slightly over or under their cap), which the simulation
measures.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.vocab import Vocabulary

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PriceResult:
    """Dual prices per title (float64, relevance units), the loads of the final assignment and the
    number of titles still over capacity."""

    prices: np.ndarray
    load: np.ndarray
    over: int
    iterations: int


def _top_n(values: np.ndarray, n: int) -> np.ndarray:
    """Positions (k × n) of each row's ``n`` largest values (unordered)."""
    m = values.shape[1]
    if n >= m:
        return np.broadcast_to(np.arange(m), (values.shape[0], m))
    return np.argpartition(-values, n - 1, axis=1)[:, :n]


def _loads(candidates: np.ndarray, values: np.ndarray, n: int, n_titles: int) -> np.ndarray:
    pos = _top_n(values, n)
    chosen = np.take_along_axis(candidates, pos, axis=1)
    ok = np.take_along_axis(np.isfinite(values), pos, axis=1) & (chosen >= 0)
    return np.bincount(chosen[ok], minlength=n_titles).astype(np.float64)


def dual_prices(
    candidates: np.ndarray,
    relevance: np.ndarray,
    capacity: np.ndarray,
    n: int,
    iterations: int = 30,
    step: float = 0.5,
) -> PriceResult:
    """Prices that bound each title's exposures by ``capacity`` (see the module docstring).

    Args:
        candidates: (k × m) title rows per reader, ``-1`` padding.
        relevance: (k × m) promoted relevance, ``-inf`` padding.
        capacity: (n_titles,) exposures each title may get (``inf`` = unbounded).
        n: list length.
        iterations: subgradient rounds.
        step: first step ``η_0`` in relevance units (relevance is normalised to [0, 1] by rerank).
    """
    cand = np.asarray(candidates, np.int64)
    rel = np.asarray(relevance, np.float64)
    cap = np.asarray(capacity, np.float64)
    n_t = len(cap)
    safe = np.where(cand >= 0, cand, 0)
    prices = np.zeros(n_t)
    best, best_over = prices.copy(), np.inf
    load = np.zeros(n_t)
    for i in range(iterations):
        load = _loads(cand, rel - prices[safe], n, n_t)
        excess = np.where(np.isfinite(cap), load - cap, -np.inf)
        over = float(np.maximum(excess, 0).sum())
        if over < best_over:
            best, best_over = prices.copy(), over
        if over == 0 and i > 0:
            break
        with np.errstate(invalid="ignore"):
            grad = np.where(np.isfinite(cap), excess / np.maximum(cap, 1.0), -1.0)
        prices = np.maximum(prices + step / np.sqrt(i + 1.0) * grad, 0.0)
    load = _loads(cand, rel - best[safe], n, n_t)
    n_over = int((load > cap + 1e-9).sum())
    _log.info("dual prices: %d titles priced, %d over capacity after %d rounds", int((best > 0).sum()), n_over, i + 1)
    return PriceResult(best, load, n_over, i + 1)


def exposure_capacity(servable_loans: np.ndarray, exposures_per_loan: float) -> np.ndarray:
    """Exposures each title may get: ``exposures_per_loan`` × the loans it can serve (``inf`` stays)."""
    return np.asarray(servable_loans, np.float64) * float(exposures_per_loan)


def save_prices(path: Path | str, titles: Vocabulary, prices: np.ndarray, meta: dict | None = None) -> Path:
    """Write the non-zero prices as JSON ``{"prices": {title_id: price}, "meta": ...}`` (small: only
    the titles over capacity carry a price)."""
    p = Path(path)
    nz = np.flatnonzero(prices > 0)
    body = {"prices": {str(titles.ids[i]): round(float(prices[i]), 6) for i in nz.tolist()}, "meta": meta or {}}
    p.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    return p


def load_prices(path: Path | str, titles: Vocabulary) -> np.ndarray:
    """Prices per title row of ``titles`` from :func:`save_prices` (titles not in the file: 0;
    titles the vocabulary does not know are ignored)."""
    body = json.loads(Path(path).read_text(encoding="utf-8"))
    ids = list(body.get("prices", {}))
    out = np.zeros(len(titles))
    if ids:
        idx = titles.index(ids)
        vals = np.array([body["prices"][i] for i in ids], np.float64)
        out[idx[idx >= 0]] = vals[idx >= 0]
    return out
