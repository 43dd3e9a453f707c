"""The synthetic city's recommendation ceiling: expected events per reader and title in a window."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.synth import oracle_scores
from features.synth_ceiling import ceiling_scores

CUT = datetime(2026, 1, 1)


def _hits_at_10(scores: np.ndarray, readers: list[str], titles: list[str], before, after) -> float:
    ri = {r: i for i, r in enumerate(readers)}
    ti = {t: i for i, t in enumerate(titles)}
    s = scores.copy()
    s[[ri[r] for r in before["reader_id"]], [ti[t] for t in before["title_id"]]] = -np.inf
    truth = np.zeros(s.shape, dtype=bool)
    truth[[ri[r] for r in after["reader_id"]], [ti[t] for t in after["title_id"]]] = True
    truth[np.isneginf(s)] = False
    top = np.argsort(-s, axis=1, kind="stable")[:, :10]
    return float(truth[np.arange(len(readers))[:, None], top].sum(axis=1).mean())


def test_the_ceiling_beats_static_tastes_and_respects_arrivals(small_city: Path) -> None:
    loans = pl.read_parquet(small_city / "loans.parquet").select("reader_id", "title_id", at="borrowed_at")
    ebooks = pl.read_parquet(small_city / "ebook_events.parquet").select("reader_id", "title_id", at="occurred_at")
    events = pl.concat([loans, ebooks])
    after = events.filter(pl.col("at") >= CUT)
    readers = after["reader_id"].unique().sort().head(400).to_list()
    before = events.filter((pl.col("at") < CUT) & pl.col("reader_id").is_in(readers))
    after = after.filter(pl.col("reader_id").is_in(readers))
    meta = pl.read_parquet(small_city / "titles.parquet", columns=["title_id", "added_at"])
    titles = meta["title_id"].to_list()
    ceiling = ceiling_scores(small_city, readers, titles, CUT)
    assert ceiling.shape == (len(readers), len(titles)) and ceiling.dtype == np.float32
    static = oracle_scores(small_city, readers, titles)
    assert _hits_at_10(ceiling, readers, titles, before, after) > 1.3 * _hits_at_10(
        static, readers, titles, before, after
    )
    # A title that arrives after the window's end cannot be borrowed in it.
    late = (meta["added_at"] >= date(2026, 4, 1)).to_numpy()
    window = ceiling_scores(small_city, readers[:20], titles, CUT, datetime(2026, 4, 1))
    assert late.any() and (window[:, late] == 0).all() and (window[:, ~late] > 0).any()
    with pytest.raises(KeyError):
        ceiling_scores(small_city, ["Rnot-a-reader"], titles[:2], CUT)
