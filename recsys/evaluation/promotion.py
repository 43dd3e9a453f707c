"""What business filters and reading promotion cost in accuracy, on a synthetic city (issue 3 §4, §6).

Two uses: ``yuedu evaluate promotion`` (:func:`promotion_costs`, the table below) and the
``constrained`` rows of ``yuedu evaluate --dataset city`` (:func:`constrained_rows`).

Protocol: train on the first 2.5 years, test on the last half-year (readers' later loans are the
target). The library context (loan history for "already borrowed", booklists, copies) is built from
data before the cut-off only, so no filter can peek at the test period. Rows:

- the model alone (no filters, no promotion) — the accuracy reference;
- filters on (already borrowed, availability at the reader's branch or by delivery, audience,
  withdrawn): what the reader can actually get;
- filters on + each promotion setting (MMR diversity, novelty, booklists, local literature, new
  arrivals): metric deltas against filters-only;
- the oracle: each reader's expected events after the cut-off under the generator's truth
  (``features.synth_ceiling.ceiling_scores``), the ceiling.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.interactions import load_interactions
from features.matrix import WeightingConfig
from features.schema import table_path
from features.splits import temporal_split
from features.vocab import Vocabulary
from recsys.base import Recommender
from recsys.context import CONTEXT_TABLES, LibraryContext
from recsys.evaluation.batch import LIST_LENGTH
from recsys.evaluation.matrices import PrunedMatrices
from recsys.evaluation.results import SeedResult, scored
from recsys.filters import FilterConfig, allowed_titles, build_exclusions
from recsys.metrics import evaluate
from recsys.models import make_model
from recsys.rerank import PromotionConfig, rerank

_log = logging.getLogger(__name__)

#: Named promotion settings compared against filters-only.
PROMOTION_SETTINGS: dict[str, PromotionConfig] = {
    "default promotion": PromotionConfig(),
    "diversity only (MMR λ=0.5)": PromotionConfig(
        mmr_lambda=0.5, novelty_exponent=0.0, booklist_boost=0.0, local_literature_boost=0.0, new_arrival_boost=0.0
    ),
    "novelty only (exponent 0.5)": PromotionConfig(
        mmr_lambda=1.0, novelty_exponent=0.5, booklist_boost=0.0, local_literature_boost=0.0, new_arrival_boost=0.0
    ),
    "booklists + local + new arrivals": PromotionConfig(mmr_lambda=1.0, novelty_exponent=0.0),
}
#: Columns of the table, at cut-off ``n`` (names of :mod:`recsys.metrics`; the recall here is the
#: unnormalised one, hits / |target|).
METRICS = ("recall_unnormalised", "ndcg", "coverage", "novelty", "diversity")


def _context(data_dir: Path, cutoff: datetime, titles: Vocabulary, readers: Vocabulary) -> LibraryContext:
    frames = {}
    for name in CONTEXT_TABLES:
        if table_path(data_dir, name).exists():
            frames[name] = pl.read_parquet(table_path(data_dir, name))
    # History before the cut-off only: "already borrowed" must not see the test period.
    frames["loans"] = frames["loans"].filter(pl.col("borrowed_at") < cutoff)
    if "ebook_events" in frames:
        frames["ebook_events"] = frames["ebook_events"].filter(pl.col("occurred_at") < cutoff)
    return LibraryContext.from_frames(frames, titles, readers, cutoff.date())


def _filtered_candidates(
    model, history: sp.csr_matrix, ctx: LibraryContext, rows: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``m`` titles per reader that pass the default filters (model title rows, scores)."""
    config = FilterConfig()
    per_reader, _ = build_exclusions(ctx, rows, config)
    return model.recommend(None, m, history=history, candidates=allowed_titles(ctx, config), exclude=per_reader)


def constrained_recommendations(
    model,
    history: sp.csr_matrix,
    titles: Vocabulary,
    readers: list[str],
    data_dir: str | Path,
    cutoff: datetime,
    n: int,
    promotion: PromotionConfig | None = None,
) -> dict[str, np.ndarray]:
    """A fitted model's top-``n`` (rows of ``titles``) for ``readers`` (rows of ``history``) as the
    app would show them on the cut-off date: ``"filters"`` (default :class:`FilterConfig`) and
    ``"filters+promotion"`` (``promotion``, default :class:`PromotionConfig`). The library context
    comes from ``data_dir`` with history before ``cutoff`` only."""
    promotion = promotion or PromotionConfig()
    ctx = _context(Path(data_dir), cutoff, titles, Vocabulary(readers, "reader_id"))
    rows = np.arange(len(readers))
    cand, scores = _filtered_candidates(model, history, ctx, rows, n * promotion.candidate_factor)
    promoted, _, _ = rerank(cand, scores, ctx, rows, promotion, n, on=cutoff.date())
    return {"filters": np.ascontiguousarray(cand[:, :n]), "filters+promotion": promoted}


def promotion_costs(
    data_dir: str | Path,
    cutoff: datetime = datetime(2026, 1, 1),
    model_name: str = "ease",
    model_params: dict | None = None,
    n: int = 10,
) -> tuple[pl.DataFrame, dict]:
    """One row per setting with :data:`METRICS` at ``n`` and deltas against filters-only."""
    d = Path(data_dir)
    t0 = time.perf_counter()
    events = load_interactions(d).collect()
    split = temporal_split(events, cutoff=cutoff)
    mats = split.to_matrices(WeightingConfig(half_life_days=365.0))
    model = make_model(model_name, **(model_params or {"lambda_": 100.0})).fit(mats.train)
    fold, readers = mats.folds["test"], split.folds["test"].readers
    hist, target = fold.foldin.matrix, fold.target.matrix
    ctx = _context(d, cutoff, mats.train.titles, Vocabulary(readers, "reader_id"))
    rows_ctx = np.arange(len(readers))
    classes = np.where(ctx.clc_top >= 0, ctx.clc_top, 99).astype(np.int64)

    def score(recs: np.ndarray) -> dict[str, float]:
        table = evaluate(
            recs, target, ks=(n,), popularity=model.popularity_, n_readers=hist.shape[0], title_class=classes
        )
        row = table.filter(pl.col("segment") == "all").row(0, named=True)
        return {m: float(row[m]) for m in METRICS}

    out = []
    plain, _ = model.recommend(None, n, history=hist)
    out.append({"setting": "model alone (no filters, no promotion)", **score(plain)})
    factor = max(c.candidate_factor for c in PROMOTION_SETTINGS.values())
    cand, cand_scores = _filtered_candidates(model, hist, ctx, rows_ctx, n * factor)
    filtered = cand[:, :n]
    out.append({"setting": "filters on", **score(filtered)})
    for name, cfg in PROMOTION_SETTINGS.items():
        recs, _, _ = rerank(cand, cand_scores, ctx, rows_ctx, cfg, n, on=cutoff.date())
        out.append({"setting": f"filters + {name}", **score(recs)})
    try:
        from features.synth_ceiling import ceiling_scores

        oracle = ceiling_scores(d, list(readers), list(mats.train.titles.ids), cutoff)
        seen = sp.csr_matrix(hist, dtype=bool)
        oracle[seen.nonzero()] = -np.inf
        top = np.argsort(-oracle, axis=1)[:, :n].astype(np.int32)
        out.append({"setting": "oracle (expected events after the cut-off, no filters)", **score(top)})
    except (FileNotFoundError, KeyError) as exc:  # not a synthetic city
        _log.info("no oracle: %s", exc)
    table = pl.DataFrame(out)
    ref = table.filter(pl.col("setting") == "filters on").row(0, named=True)
    table = table.with_columns(
        (pl.col("ndcg") - ref["ndcg"]).alias("Δndcg vs filters"),
        (pl.col("recall_unnormalised") - ref["recall_unnormalised"]).alias("Δrecall_unnormalised vs filters"),
        (pl.col("diversity") - ref["diversity"]).alias("Δdiversity vs filters"),
    )
    info = {
        "readers": len(readers),
        "titles": len(mats.train.titles),
        "cutoff": cutoff.isoformat(),
        "model": model_name,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return table, info


def write_markdown(table: pl.DataFrame, info: dict, path: Path, command: str) -> Path:
    cols = table.columns
    lines = [
        "# Synthetic city: what filters and reading promotion cost",
        "",
        f"Train before {info['cutoff'][:10]}, test on the following half-year; {info['readers']:,} test readers, "
        f"{info['titles']:,} titles; model {info['model']}; metrics at 10; wall time {info['seconds']} s.",
        "The context (already borrowed, booklists, copies) is built from data before the cut-off only.",
        "",
        "Reproduce: `" + command + "`",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for row in table.iter_rows():
        lines.append(
            "| "
            + " | ".join(
                v if isinstance(v, str) else f"{v:+.4f}" if "Δ" in c else f"{v:.4f}"
                for c, v in zip(cols, row, strict=True)
            )
            + " |"
        )
    lines += [
        "",
        "Reading the table: filters make the list honest (only what the reader can get now), so accuracy",
        "against what readers later borrowed anywhere drops; promotion then trades a little NDCG for",
        "diversity across CLC classes and for novelty (less popular titles), which is the library's goal.",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def constrained_rows(
    name: str,
    model: Recommender,
    data: PrunedMatrices,
    data_dir: Path,
    cutoff: datetime,
    seed: int,
    target: sp.csr_matrix,
) -> list[SeedResult]:
    """Rows ``<name>+filters`` and ``<name>+filters+promotion`` (kind ``constrained``): the test
    model's lists as the app shows them on the cut-off date (already borrowed, availability at the
    reader's branch or by delivery, audience, withdrawn; then the default reading promotion), scored
    against the same target. The context is built from data before ``cutoff`` only."""
    readers = list(data.full.folds["test"].foldin.readers.ids)
    got = constrained_recommendations(
        model, data.foldin["test"], data.train.titles, readers, data_dir, cutoff, LIST_LENGTH
    )
    out = []
    for setting, recs in got.items():
        full = data.full_columns(recs)
        params = {"model": name, "setting": setting}
        out.append(scored(seed, f"{name}+{setting}", "constrained", full, target, params=params))
    return out
