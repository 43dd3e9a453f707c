"""Reading-promotion re-ranking: diversity, novelty and promotion boosts over a model's candidates.

The model proposes more candidates than needed (``candidate_factor`` × n, already filtered); this
module turns each reader's candidate list into the final n:

1. **Relevance** — the model's scores, min-max normalised per reader into ``[floor, 1]`` so every
   knob below is on the same scale whatever the model (ALS dot products, EASE weights, counts).
2. **Novelty** — relevance × ``(1 + popularity) ** -novelty_exponent`` (popularity = loans and
   e-book events per title), then renormalised to a maximum of 1: the popularity head is
   down-weighted, more for a larger exponent; 0 switches it off.
3. **Boosts** (additive, in relevance units): titles on a booklist/campaign active today (per-theme
   values override the default), local literature, new arrivals added within ``new_arrival_days``.
4. **Diversity** — maximal marginal relevance over CLC top classes: each pick maximises
   ``λ · promoted − (1 − λ) · [class already picked]``. λ = 1 is pure relevance order; λ = 0
   takes one title per class (best first) before any class repeats.

``opt_out`` (the reader turned promotion off) returns the model's own top n, unchanged.
"""

from __future__ import annotations

import logging
from datetime import date
from enum import IntFlag

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recsys.context import CLC_LETTERS, LibraryContext

_log = logging.getLogger(__name__)


class Boost(IntFlag):
    """Which promotion boosts applied to a recommended title (bit flags)."""

    NONE = 0
    BOOKLIST = 1
    LOCAL_LITERATURE = 2
    NEW_ARRIVAL = 4


class PromotionConfig(BaseModel):
    """Reading-promotion settings; the defaults are the library's standing policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    opt_out: bool = Field(False, description="Promotion off: return the model's own ranking.")
    mmr_lambda: float = Field(
        0.7, ge=0.0, le=1.0, description="MMR trade-off: 1 = pure relevance, 0 = maximal CLC class diversity."
    )
    novelty_exponent: float = Field(
        0.2, ge=0.0, description="Relevance is multiplied by (1 + popularity) ** -exponent; 0 = off."
    )
    booklist_boost: float = Field(0.15, ge=0.0, description="Added for titles on an active booklist/campaign.")
    theme_boosts: dict[str, float] = Field(
        default_factory=dict, description="Per booklist theme boost overriding booklist_boost, e.g. {'award': 0.3}."
    )
    local_literature_boost: float = Field(0.1, ge=0.0, description="Added for local literature ('City Memory').")
    new_arrival_boost: float = Field(0.1, ge=0.0, description="Added for titles added within new_arrival_days.")
    new_arrival_days: int = Field(90, ge=0, description="A title is a new arrival for this many days, inclusive.")
    relevance_floor: float = Field(
        0.05, ge=0.0, lt=1.0, description="Lowest normalised relevance of a valid candidate (keeps novelty meaningful)."
    )
    candidate_factor: int = Field(5, ge=1, description="Candidates asked from the model per final result.")
    # --- queues and exposure (issue 21; recsys.queues, recsys.exposure) ---
    max_wait_days: float | None = Field(
        None,
        ge=0.0,
        description="Borrowable within N days: drop print titles whose expected wait is longer; "
        "None = off (then the shelf filter of FilterConfig.require_available applies).",
    )
    wait_penalty: float = Field(
        0.0, ge=0.0, description="Soft penalty, relevance units: wait_penalty × wait / (wait + wait_half_days)."
    )
    wait_half_days: float = Field(14.0, gt=0.0, description="Wait (days) at which half the wait penalty applies.")
    transfer_days: float = Field(3.0, ge=0.0, description="Days to bring a copy on the shelf at another branch.")
    delivery_days: float = Field(2.0, ge=0.0, description="U Book to Home delivery days (branches that deliver).")
    exposure_control: bool = Field(False, description="Subtract the exposure dual prices (recsys.exposure).")
    exposures_per_loan: float = Field(
        30.0,
        gt=0.0,
        description="Readers shown a title per loan it causes: exposure cap = this × spare servable loans.",
    )
    list_lifetime_days: float = Field(7.0, gt=0.0, description="Days a nightly list is shown (capacity horizon).")

    @property
    def queue_aware(self) -> bool:
        """Whether the expected wait enters the list (filter or penalty)."""
        return self.max_wait_days is not None or self.wait_penalty > 0


#: The queue-aware, exposure-controlled setting compared in docs/promotion.md and the simulation.
QUEUE_AWARE = dict(max_wait_days=21.0, wait_penalty=0.3, exposure_control=True)


def boost_vectors(
    context: LibraryContext, config: PromotionConfig, on: date | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per title: (additive boost float64, :class:`Boost` flags uint8) on date ``on`` (default today).

    Memoised on the context per (configuration, date): the arrays are read-only.
    """
    d = on or context.today
    return context.memo(("boosts", config.model_dump_json(), d), lambda: _boost_vectors(context, config, d))


def _boost_vectors(context: LibraryContext, config: PromotionConfig, on: date) -> tuple[np.ndarray, np.ndarray]:
    n_t = len(context.titles)
    boost = np.zeros(n_t)
    flags = np.zeros(n_t, np.uint8)
    active = np.flatnonzero(context.active_booklists(on))
    if active.size:
        themes = context.booklists["theme"].to_numpy()[active]
        values = np.array([config.theme_boosts.get(t, config.booklist_boost) for t in themes])
        per_title = context.booklist_items[active].astype(np.float64).multiply(values[:, None]).tocsc().max(axis=0)
        bl = np.asarray(per_title.toarray()).ravel()
        on_list = np.asarray(context.booklist_items[active].sum(axis=0)).ravel() > 0
        boost += bl
        flags[on_list] |= np.uint8(Boost.BOOKLIST)
    local = context.local_literature.astype(bool)
    boost += local * config.local_literature_boost
    flags[local] |= np.uint8(Boost.LOCAL_LITERATURE)
    new = context.new_arrivals(config.new_arrival_days, on)
    boost += new * config.new_arrival_boost
    flags[new] |= np.uint8(Boost.NEW_ARRIVAL)
    return boost, flags


def _normalise(scores: np.ndarray, valid: np.ndarray, floor: float) -> np.ndarray:
    """Per-row min-max of valid scores into ``[floor, 1]`` (a row of equal scores gets 1)."""
    s = np.where(valid, scores, np.nan).astype(np.float64)
    with np.errstate(all="ignore"):
        lo = np.nanmin(np.where(valid.any(axis=1, keepdims=True), s, 0.0), axis=1, keepdims=True)
        hi = np.nanmax(np.where(valid.any(axis=1, keepdims=True), s, 0.0), axis=1, keepdims=True)
        span = hi - lo
        unit = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(valid, floor + (1.0 - floor) * unit, 0.0)


def mmr_select(relevance: np.ndarray, classes: np.ndarray, valid: np.ndarray, lam: float, n: int) -> np.ndarray:
    """Greedy maximal marginal relevance, batched over readers.

    Args:
        relevance: (k × m) promoted relevance of each candidate.
        classes: (k × m) class index of each candidate (0 .. n_classes-1).
        valid: (k × m) candidate present.
        lam: trade-off (1 = relevance, 0 = diversity).
        n: picks per reader.

    Returns:
        (k × n) int64 positions into the candidate axis, ``-1`` when a reader ran out.
    """
    k, m = relevance.shape
    n_classes = int(classes.max()) + 1 if classes.size else 1
    covered = np.zeros((k, n_classes), bool)
    left = valid.copy()
    picks = np.full((k, n), -1, np.int64)
    rows = np.arange(k)
    for step in range(min(n, m)):
        sim = np.take_along_axis(covered, classes, axis=1)
        value = np.where(left, lam * relevance - (1.0 - lam) * sim, -np.inf)
        best = np.argmax(value, axis=1)
        ok = left[rows, best]
        picks[ok, step] = best[ok]
        left[rows[ok], best[ok]] = False
        covered[rows[ok], classes[rows[ok], best[ok]]] = True
    return picks


def promoted_relevance(
    candidates: np.ndarray, scores: np.ndarray, context: LibraryContext, config: PromotionConfig, on: date | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(k × m) relevance after normalisation, novelty and boosts (``-inf`` for padding), and the
    per-title boost flags: what the diversity step (and the exposure prices) work on."""
    cand = np.asarray(candidates, dtype=np.int64)
    sc = np.asarray(scores, dtype=np.float64)
    valid = (cand >= 0) & np.isfinite(sc)
    safe = np.where(valid, cand, 0)
    rel = _normalise(sc, valid, config.relevance_floor)
    if config.novelty_exponent > 0:
        rel = rel * (1.0 + context.popularity[safe]) ** -config.novelty_exponent
        top = rel.max(axis=1, keepdims=True)
        rel = np.where(top > 0, rel / np.where(top > 0, top, 1.0), rel)
    boost, flags = boost_vectors(context, config, on)
    return np.where(valid, rel + boost[safe], -np.inf), flags


def rerank(
    candidates: np.ndarray,
    scores: np.ndarray,
    context: LibraryContext,
    reader_rows: np.ndarray | None,
    config: PromotionConfig,
    n: int,
    on: date | None = None,
    adjust: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Choose n of each reader's candidates with promotion applied.

    Args:
        candidates: (k × m) title rows from the model, ``-1`` padding.
        scores: (k × m) model scores, ``-inf`` padding.
        context: library facts (popularity, classes, booklists, arrivals).
        reader_rows: context reader rows (reserved for per-reader promotion; may be None).
        config: promotion settings.
        n: results per reader.
        on: date for booklist windows and arrivals (default ``context.today``).
        adjust: (k × m) added to the promoted relevance before the diversity step (the wait
            penalty and exposure prices, negative); ignored for ``opt_out``.

    Returns:
        ``(title_rows int32 (k × n), scores float32 (k × n), applied_boosts uint8 (k × n))``; scores
        are the promoted relevance (model score for ``opt_out``); padding is ``-1`` / ``-inf`` / 0.
    """
    cand = np.asarray(candidates, dtype=np.int64)
    sc = np.asarray(scores, dtype=np.float64)
    if cand.shape != sc.shape or cand.ndim != 2:
        raise ValueError(f"rerank: candidates {cand.shape} and scores {sc.shape} must be equal 2-D shapes")
    k, m = cand.shape
    valid = (cand >= 0) & np.isfinite(sc)
    out_ids = np.full((k, n), -1, np.int32)
    out_scores = np.full((k, n), -np.inf, np.float32)
    out_flags = np.zeros((k, n), np.uint8)
    if k == 0 or n == 0 or m == 0:
        return out_ids, out_scores, out_flags
    safe = np.where(valid, cand, 0)

    if config.opt_out:
        order = np.argsort(np.where(valid, -sc, np.inf), axis=1, kind="stable")[:, :n]
        take = np.take_along_axis(valid, order, axis=1)
        w = order.shape[1]
        out_ids[:, :w] = np.where(take, np.take_along_axis(cand, order, axis=1), -1)
        out_scores[:, :w] = np.where(take, np.take_along_axis(sc, order, axis=1), -np.inf)
        return out_ids, out_scores, out_flags

    promoted, flags = promoted_relevance(cand, sc, context, config, on)
    if adjust is not None:
        promoted = promoted + np.asarray(adjust, np.float64)
    # Sort by promoted relevance first so that MMR ties (e.g. λ = 0) go to the more relevant title.
    order = np.argsort(-promoted, axis=1, kind="stable")
    cand_s = np.take_along_axis(safe, order, axis=1)
    prom_s = np.take_along_axis(promoted, order, axis=1)
    valid_s = np.take_along_axis(valid, order, axis=1)
    top_cls = context.clc_top[cand_s].astype(np.int64)
    classes = np.where(top_cls >= 0, top_cls, len(CLC_LETTERS))  # unknown class: one shared bucket
    picks = mmr_select(np.where(valid_s, prom_s, 0.0), classes, valid_s, config.mmr_lambda, n)
    got = picks >= 0
    pos = np.where(got, picks, 0)
    w = picks.shape[1]
    chosen = np.take_along_axis(cand_s, pos, axis=1)
    out_ids[:, :w] = np.where(got, chosen, -1)
    out_scores[:, :w] = np.where(got, np.take_along_axis(prom_s, pos, axis=1), -np.inf)
    out_flags[:, :w] = np.where(got, flags[chosen], 0)
    _log.debug(
        "reranked %d readers: %d -> %d, lambda=%.2f, %d boosted picks",
        k,
        m,
        n,
        config.mmr_lambda,
        int((out_flags > 0).sum()),
    )
    return out_ids, out_scores, out_flags
