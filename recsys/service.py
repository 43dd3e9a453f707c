"""The recommendation service: model + filters + promotion + explanations, by reader id.

:class:`RecommendationService` is what the API and the CLI call. For a batch of reader ids it

1. maps ids through the vocabularies (unknown readers are cold start);
2. builds the exclusions (``recsys.filters``) so the model cuts its top list *after* filtering;
3. asks the model for ``candidate_factor × n`` candidates — known readers by row, readers with live
   events (``record_event``) or unknown to the model through ``model.recalculate`` with their
   history, readers with no history at all from the branch's (else the city's) loan popularity;
4. re-ranks them for reading promotion (``recsys.rerank``) unless promotion is off;
5. explains each title (``recsys.explain``) and returns :class:`Recommendation` objects.

:func:`accuracy_cost` measures what each promotion setting costs in accuracy on an evaluation fold.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.base import Recommender, top_n_dense
from recsys.context import CLC_LETTERS, LibraryContext
from recsys.explain import Reason, explain
from recsys.exposure import PriceResult, dual_prices, exposure_capacity, load_prices
from recsys.filters import FilterConfig, allowed_titles, build_exclusions
from recsys.queues import Waits, expected_wait, queue_wait, servable
from recsys.rerank import PromotionConfig, boost_vectors, promoted_relevance, rerank

_log = logging.getLogger(__name__)


class UnknownTitleError(KeyError):
    """A title id is not in the model's title vocabulary."""


@dataclass(frozen=True)
class Recommendation:
    """One recommended title for a reader, with its reasons and where to get it."""

    title_id: str
    title: str
    author: str
    clc_class: str
    #: Promoted relevance (model score when promotion is off); comparable within one list only.
    score: float
    reasons: list[Reason] = field(default_factory=list)
    #: Branches with an on-shelf copy, the reader's branch first; empty for e-books.
    available_at: list[str] = field(default_factory=list)
    #: Home delivery reaches the reader's branch and a copy is on shelf somewhere.
    delivery: bool = False
    #: Expected days until the reader can have it (0 = now; None when not computed: queue-aware
    #: promotion off or no holdings known).
    expected_wait_days: float | None = None
    #: Holds waiting ahead of the reader (0 when a copy is free; None when not computed).
    readers_waiting: int | None = None


@dataclass
class _Candidates:
    """What :meth:`RecommendationService._candidates` hands to the re-ranking."""

    titles: np.ndarray
    scores: np.ndarray
    adjust: np.ndarray
    c_rows: np.ndarray
    branches: np.ndarray
    live: sp.csr_matrix
    config: PromotionConfig


class RecommendationService:
    """Recommendations by reader id, with filters, reading promotion and explanations.

    Args:
        model: a fitted :class:`~recsys.base.Recommender`.
        context: library facts aligned to ``model.titles_`` (same title vocabulary).
        filter_config: business filters (default policy when None).
        promotion_config: promotion settings (default policy when None).
    """

    def __init__(
        self,
        model: Recommender,
        context: LibraryContext,
        filter_config: FilterConfig | None = None,
        promotion_config: PromotionConfig | None = None,
    ) -> None:
        if context.titles != model.titles_:
            raise ValueError(
                f"context titles ({len(context.titles)}) differ from the model's ({len(model.titles_)}): "
                "build the context with the model's title vocabulary"
            )
        self.model = model
        self.context = context
        self.filter_config = filter_config or FilterConfig()
        self.promotion_config = promotion_config or PromotionConfig()
        #: Live events since the model and context were built: reader id -> title rows.
        self._live: dict[str, set[int]] = {}
        #: Exposure dual prices per title row (recsys.exposure), subtracted when exposure control is on.
        self.exposure_prices = np.zeros(len(context.titles))

    def load_exposure_prices(self, path) -> None:
        """Load the nightly exposure prices (:func:`recsys.exposure.save_prices`) for this model's titles."""
        self.exposure_prices = load_prices(path, self.context.titles)
        _log.info("exposure prices loaded: %d titles priced", int((self.exposure_prices > 0).sum()))

    def prepare(self) -> None:
        """Build the per-context facts every request uses (availability bitmasks, exclusion masks,
        today's boosts, co-occurrence, popularity cuts) now rather than in the first request."""
        ctx = self.context
        known = np.flatnonzero(np.diff(ctx.history.indptr) > 0)[:1].astype(np.int64)
        rows = np.concatenate([known, [-1]])
        branches = ctx.branch_of(rows)
        build_exclusions(ctx, rows, self.filter_config, branches)
        boost_vectors(ctx, self.promotion_config)
        if known.size:
            sample = np.asarray(ctx.history[known].indices[:2], dtype=np.int64)
            if sample.size:
                explain(ctx, known, sample[None, :], branch_rows=branches[:1], similar=self.model.similar)
        if self.model.n_titles:
            self.model.similar(np.zeros(1, np.int32), 1)  # whatever the model builds once for "similar"
        _ = self._city_popularity
        _log.info("recommendation service prepared (%d titles, %d branches)", len(ctx.titles), len(ctx.branches))

    @functools.cached_property
    def _city_popularity(self) -> np.ndarray:
        """City loans per title scaled to a maximum of 1 (float32): the cold-start base score."""
        pop = self.context.popularity
        return (pop / max(float(pop.max(initial=0.0)), 1.0)).astype(np.float32)

    # ------------------------------------------------------------------ live events

    def record_event(self, reader_id: str, title_id: str) -> None:
        """Remember that a reader just borrowed / read a title; the next recommendation reflects it."""
        t = self.context.titles.get(title_id)
        if t is None:
            raise UnknownTitleError(f"record_event: title '{title_id}' is not in the model's catalogue")
        self._live.setdefault(reader_id, set()).add(t)
        _log.debug("recorded a live event (%d readers with live events)", len(self._live))

    def live_events(self) -> dict[str, list[str]]:
        """A snapshot of the live events recorded since the model was built: reader id -> title ids."""
        snapshot = list(self._live.items())  # record_event may run on another thread meanwhile
        return {rid: [str(t) for t in self.context.title_ids[sorted(rows)]] for rid, rows in snapshot}

    def forget_reader(self, reader_id: str) -> int:
        """Drop the reader's live events (data erasure); the number of titles dropped."""
        return len(self._live.pop(reader_id, ()))

    def has_live_events(self, reader_id: str) -> bool:
        return reader_id in self._live

    def _live_matrix(self, reader_ids: Sequence[str], extra: Mapping[str, Iterable[str]] | None) -> sp.csr_matrix:
        """(k × n_titles) bool of recorded plus per-call extra history."""
        rows: list[int] = []
        cols: list[int] = []
        for i, rid in enumerate(reader_ids):
            titles = set(self._live.get(rid, ()))
            if extra and rid in extra:
                ids = list(extra[rid])
                idx = self.context.titles.index(ids)
                if (idx < 0).any():
                    bad = [ids[p] for p in np.flatnonzero(idx < 0)[:3]]
                    raise UnknownTitleError(f"extra_history: titles not in the catalogue: {bad}")
                titles |= set(idx.tolist())
            rows += [i] * len(titles)
            cols += sorted(titles)
        return sp.csr_matrix(
            (np.ones(len(rows), bool), (rows, cols)), shape=(len(reader_ids), len(self.context.titles))
        )

    # ------------------------------------------------------------------ recommending

    def recommend_for_reader(
        self,
        reader_id: str,
        n: int = 10,
        branch: str | None = None,
        promotion: bool = True,
        extra_history: Iterable[str] | None = None,
        personalised: bool = True,
    ) -> list[Recommendation]:
        """Up to ``n`` recommendations for one reader (fewer only when fewer titles pass the filters).

        Args:
            reader_id: the reader's (pseudonymous) id; unknown ids are cold start.
            n: list length.
            branch: branch id the reader is at (default: home branch) for availability and reasons.
            promotion: False = the model's own ranking (the reader turned promotion off).
            extra_history: title ids just borrowed, not yet recorded.
            personalised: False = the reader turned personalisation off: what is popular at their
                branch and in the city, still filtered (not already borrowed, available, audience).
        """
        extra = {reader_id: list(extra_history)} if extra_history is not None else None
        return self.recommend_for_readers([reader_id], n, branch, promotion, extra, personalised)[reader_id]

    def recommend_for_readers(
        self,
        reader_ids: Sequence[str],
        n: int = 10,
        branch: str | None = None,
        promotion: bool = True,
        extra_history: Mapping[str, Iterable[str]] | None = None,
        personalised: bool = True,
    ) -> dict[str, list[Recommendation]]:
        """Recommendations for a batch of readers, keyed by reader id (same arguments as
        :meth:`recommend_for_reader`; ``extra_history`` maps reader id -> title ids)."""
        ids = list(dict.fromkeys(reader_ids))
        titles, scores, c_rows, branches, live = self._rank(ids, n, branch, promotion, extra_history, personalised)
        qcfg = self._queue_config(promotion)
        waits = self._waits(titles, branches, qcfg) if qcfg is not None else None
        reasons = explain(
            self.context,
            # Without personalisation no reason may cite the reader's history.
            c_rows if personalised else np.full_like(c_rows, -1),
            titles,
            branch_rows=branches,
            extra_history=live if personalised else None,
            similar=self.model.similar,
            new_arrival_days=self.promotion_config.new_arrival_days,
            waits=waits,
        )
        return {
            rid: self._assemble(titles[i], scores[i], reasons[i], int(branches[i]), waits, i)
            for i, rid in enumerate(ids)
        }

    # ------------------------------------------------------------------ queues and exposure

    def _queue_config(self, promotion: bool) -> PromotionConfig | None:
        """The promotion config when the expected wait enters the list (queue-aware, promotion on,
        holdings known), else None."""
        cfg = self.promotion_config
        if not promotion or cfg.opt_out or not cfg.queue_aware or self.context.circulation is None:
            return None
        return cfg

    def _waits(self, titles: np.ndarray, branches: np.ndarray, cfg: PromotionConfig) -> Waits:
        """Expected wait of each title (k × m rows, -1 padding) at each reader's branch."""
        ctx = self.context
        t = np.asarray(titles, np.int64)
        here = np.zeros(t.shape, bool)
        ok = branches >= 0
        if ok.any() and ctx.on_shelf.shape[1]:
            here[ok] = ctx.on_shelf_at(branches[ok][:, None], np.where(t[ok] >= 0, t[ok], 0))
        delivers = np.ones(len(branches), bool)  # unknown branch: like a delivery reader (filters)
        if ok.any() and len(ctx.branch_delivers):
            delivers[ok] = ctx.branch_delivers[branches[ok]]
        return expected_wait(ctx.circulation, t, here & (t >= 0), delivers, cfg.transfer_days, cfg.delivery_days)

    def _queue_filters(self, cfg: PromotionConfig) -> tuple[FilterConfig, np.ndarray]:
        """Filters without the shelf rule (the wait replaces it) and the titles whose wait can be
        within ``max_wait_days`` for some reader (a copy free, or a short queue), memoised."""
        ctx = self.context
        fc = self.filter_config.model_copy(update={"require_available": False})

        def build() -> np.ndarray:
            allowed = allowed_titles(ctx, fc)
            if cfg.max_wait_days is None:
                return allowed.copy()
            return allowed[queue_wait(ctx.circulation, allowed) <= cfg.max_wait_days]

        return fc, ctx.memo(("queue_allowed", cfg.model_dump_json(), fc.model_dump_json()), build)

    def _queue_adjust(
        self, cand: np.ndarray, scores: np.ndarray, branches: np.ndarray, cfg: PromotionConfig
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Drop candidates the reader cannot have within ``max_wait_days``; the wait penalty and the
        exposure prices as rerank's ``adjust``."""
        w = self._waits(cand, branches, cfg).days
        if cfg.max_wait_days is not None:
            late = w > cfg.max_wait_days
            cand, scores = np.where(late, -1, cand), np.where(late, -np.inf, scores)
        adjust = -cfg.wait_penalty * np.where(
            np.isfinite(w), w / (np.where(np.isfinite(w), w, 0.0) + cfg.wait_half_days), 1.0
        )
        if cfg.exposure_control:
            adjust = adjust - self.exposure_prices[np.where(cand >= 0, cand, 0)]
        return cand, scores, adjust

    def _rank(
        self,
        ids: list[str],
        n: int,
        branch: str | None,
        promotion: bool,
        extra_history: Mapping[str, Iterable[str]] | None,
        personalised: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, sp.csr_matrix]:
        """Title rows and scores (k × n) plus the context rows, branch rows and live history used."""
        c = self._candidates(ids, n, branch, promotion, extra_history, personalised)
        titles, scores, _ = rerank(c.titles, c.scores, self.context, c.c_rows, c.config, n, adjust=c.adjust)
        return titles, scores, c.c_rows, c.branches, c.live

    def exposure_prices_for(self, reader_ids: Sequence[str], n: int = 10, batch: int = 5_000) -> PriceResult:
        """The nightly exposure prices (:mod:`recsys.exposure`) over these readers' candidates: each
        title's exposures bounded by ``exposures_per_loan`` × the loans it can start within the
        list's lifetime beyond its usual demand. Store them with :func:`recsys.exposure.save_prices`;
        the service loads them with :meth:`load_exposure_prices`."""
        cfg = self._queue_config(True)
        if cfg is None:
            raise ValueError("exposure prices need queue-aware promotion and holdings (PromotionConfig.queue_aware)")
        ids = list(dict.fromkeys(reader_ids))
        saved, self.exposure_prices = self.exposure_prices, np.zeros(len(self.context.titles))
        try:
            parts = [self._candidates(ids[i : i + batch], n, None, True, None) for i in range(0, len(ids), batch)]
        finally:
            self.exposure_prices = saved
        cand = np.vstack([p.titles for p in parts])
        rel = np.vstack([promoted_relevance(p.titles, p.scores, self.context, cfg)[0] + p.adjust for p in parts])
        circ = self.context.circulation
        spare = np.maximum(servable(circ, cfg.list_lifetime_days) - circ.demand(cfg.list_lifetime_days), 0.0)
        return dual_prices(cand, rel, exposure_capacity(spare, cfg.exposures_per_loan), n)

    def _candidates(
        self,
        ids: list[str],
        n: int,
        branch: str | None,
        promotion: bool,
        extra_history: Mapping[str, Iterable[str]] | None,
        personalised: bool = True,
    ) -> _Candidates:
        """Each reader's filtered candidates (k × m) with their scores and the queue adjustment."""
        ctx, model = self.context, self.model
        k, n_t = len(ids), len(ctx.titles)
        c_rows = ctx.readers.index(ids).astype(np.int64)
        m_rows = model.readers_.index(ids).astype(np.int64)
        branches = ctx.branch_of(c_rows, branch)
        live = self._live_matrix(ids, extra_history)
        qcfg = self._queue_config(promotion)
        fc, allowed = (self.filter_config, allowed_titles(ctx, self.filter_config))
        if qcfg is not None:
            fc, allowed = self._queue_filters(qcfg)
        per_reader, _ = build_exclusions(ctx, c_rows, fc, branches, extra_borrowed=live)
        cfg = self.promotion_config if promotion else self.promotion_config.model_copy(update={"opt_out": True})
        m = n if cfg.opt_out else n * cfg.candidate_factor

        cand = np.full((k, m), -1, np.int32)
        cand_scores = np.full((k, m), -np.inf, np.float32)
        known = m_rows >= 0
        has_live = np.diff(live.indptr) > 0
        train_len = np.zeros(k, np.int64)
        train_len[known] = np.diff(model.user_items_.indptr)[m_rows[known]]
        cold = ((train_len == 0) & ~has_live) | (not personalised)
        by_row = known & ~has_live & ~cold
        by_history = ~by_row & ~cold
        if by_row.any():
            sel = np.flatnonzero(by_row)
            cand[sel], cand_scores[sel] = model.recommend(m_rows[sel], m, candidates=allowed, exclude=per_reader[sel])
        if by_history.any():
            sel = np.flatnonzero(by_history)
            base = sp.csr_matrix((len(sel), n_t), dtype=np.float32)
            ks = np.flatnonzero(known[sel])
            if ks.size:
                scatter = sp.csr_matrix(
                    (np.ones(ks.size, np.float32), (ks, np.arange(ks.size))), shape=(len(sel), ks.size)
                )
                base = scatter @ model.user_items_[m_rows[sel][ks]]
            hist = sp.csr_matrix(base + live[sel].astype(np.float32))
            cand[sel], cand_scores[sel] = model.recalculate(hist, m, candidates=allowed, exclude=per_reader[sel])
        if cold.any():
            sel = np.flatnonzero(cold)
            cand[sel], cand_scores[sel] = self._popular(branches[sel], m, per_reader[sel], allowed)
        _log.info(
            "recommending for %d readers: %d by row, %d with live/fold-in history, %d cold start",
            k,
            int(by_row.sum()),
            int(by_history.sum()),
            int(cold.sum()),
        )
        adjust = np.zeros(cand.shape)
        if qcfg is not None:
            cand, cand_scores, adjust = self._queue_adjust(cand, cand_scores, branches, qcfg)
        return _Candidates(cand, cand_scores, adjust, c_rows, branches, live, cfg)

    def _popular(
        self, branches: np.ndarray, m: int, blocked: sp.csr_matrix, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cold start: loans at the reader's branch, ties (and unknown branches) broken by city loans."""
        ctx = self.context
        city = self._city_popularity
        scores = np.broadcast_to(city, (len(branches), len(city))).astype(np.float32)
        ok = branches >= 0
        if ok.any() and ctx.branch_loans.shape[0]:
            scores[ok] += ctx.branch_loans[branches[ok]].toarray()
        return top_n_dense(scores, m, blocked, allowed)

    def _assemble(
        self, titles: np.ndarray, scores: np.ndarray, reasons: list, branch: int, waits: Waits | None = None, i: int = 0
    ) -> list[Recommendation]:
        ctx = self.context
        out = []
        valid = np.flatnonzero(titles >= 0)
        shelf = ctx.on_shelf[titles[valid]] if valid.size else None
        delivers = bool(branch >= 0 and ctx.branch_delivers[branch])
        for pos, j in enumerate(valid):
            t = int(titles[j])
            span = slice(shelf.indptr[pos], shelf.indptr[pos + 1])
            at = shelf.indices[span][shelf.data[span] > 0]
            at = sorted(at.tolist(), key=lambda b: b != branch)
            out.append(
                Recommendation(
                    title_id=str(ctx.title_ids[t]),
                    title=str(ctx.title_text[t]),
                    author=str(ctx.author[t]),
                    clc_class=str(ctx.clc_class[t]),
                    score=float(scores[j]),
                    reasons=list(reasons[j]),
                    available_at=[str(ctx.branch_ids[b]) for b in at],
                    delivery=delivers and bool(at) and not bool(ctx.digital[t]),
                    expected_wait_days=None
                    if waits is None or not np.isfinite(waits.days[i, j])
                    else round(float(waits.days[i, j]), 1),
                    readers_waiting=None if waits is None else int(waits.ahead[i, j]),
                )
            )
        return out


def accuracy_cost(
    model: Recommender,
    fold_in: sp.csr_matrix,
    target: sp.csr_matrix,
    context: LibraryContext,
    configs: Mapping[str, PromotionConfig],
    n: int = 10,
) -> pl.DataFrame:
    """What each promotion setting costs (or gains) against the model's own ranking on a fold.

    Args:
        model: fitted model (its title vocabulary = the fold's columns = the context's titles).
        fold_in: (k × n_titles) history the model may see (e.g. ``FoldMatrices.foldin.matrix``).
        target: (k × n_titles) held-out titles (``FoldMatrices.target.matrix``).
        context: library facts for the promotion.
        configs: named promotion settings to compare.
        n: list length.

    Returns:
        One row per (config, metric): ``config, metric, value, baseline, delta`` where baseline is
        promotion off (``opt_out``); metrics are those of ``recsys.metrics.evaluate`` at ``n``
        (precision, recall, ndcg, ... novelty in bits, CLC diversity).
    """
    from recsys.metrics import evaluate

    hist = sp.csr_matrix(fold_in, dtype=np.float32)
    factor = max((c.candidate_factor for c in configs.values()), default=5)
    cand, cand_scores = model.recalculate(hist, n * factor)
    classes = np.where(context.clc_top >= 0, context.clc_top, len(CLC_LETTERS)).astype(np.int64)

    def table(cfg: PromotionConfig) -> dict[str, float]:
        recs, _, _ = rerank(cand, cand_scores, context, None, cfg, n)
        df = evaluate(recs, target, ks=(n,), popularity=model.popularity_, n_readers=hist.shape[0], title_class=classes)
        row = df.filter(pl.col("segment") == "all").row(0, named=True)
        return {k: float(v) for k, v in row.items() if k not in ("segment", "k", "readers") and v is not None}

    baseline = table(PromotionConfig(opt_out=True))
    rows = []
    for name, cfg in configs.items():
        for metric, value in table(cfg).items():
            rows.append(
                {
                    "config": name,
                    "metric": metric,
                    "value": value,
                    "baseline": baseline.get(metric, float("nan")),
                    "delta": value - baseline.get(metric, float("nan")),
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "config": pl.String,
            "metric": pl.String,
            "value": pl.Float64,
            "baseline": pl.Float64,
            "delta": pl.Float64,
        },
    )
