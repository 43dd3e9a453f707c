"""Ranking metrics of the demand replay: Spearman, NDCG@k and the paired bootstrap."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from acquisition.replay_metrics import ndcg_rows, spearman_rows, summarise


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9)), min_size=3, max_size=30))
def test_spearman_rows_is_scipys_spearman_with_ties(pairs):
    s, y = (np.array(col, dtype=float) for col in zip(*pairs, strict=True))
    got = spearman_rows(s[None, :], y[None, :])[0]
    constant = s.min() == s.max() or y.min() == y.max()
    assert np.isclose(got, 0.0 if constant else spearmanr(s, y).statistic)


def test_a_constant_score_has_no_correlation():
    assert spearman_rows(np.ones((1, 5)), np.arange(5.0)[None, :])[0] == 0.0


def test_ndcg_is_one_for_the_ideal_order_and_less_for_the_reverse():
    y = np.array([[3.0, 1.0, 0.0, 2.0]])
    tb = np.zeros_like(y)
    assert ndcg_rows(y, y, tb, k=4)[0] == 1.0
    reverse = ndcg_rows(-y, y, tb, k=2)[0]
    # reverse order, top 2: titles with gains 0 then 1; ideal: 3 then 2
    assert np.isclose(reverse, (0 + 1 / np.log2(3)) / (3 + 2 / np.log2(3)))


def test_ties_are_broken_by_the_key_not_by_the_label():
    y = np.array([[5.0, 0.0]])
    assert ndcg_rows(np.zeros((1, 2)), y, np.array([[1.0, 0.0]]), k=1)[0] == 0.0
    assert ndcg_rows(np.zeros((1, 2)), y, np.array([[0.0, 1.0]]), k=1)[0] == 1.0


def _replayed(n_origins=4, n=60, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.poisson(3.0, n_origins * n).astype(float) + 1
    return pl.DataFrame(
        {
            "origin": np.repeat([datetime(2000 + i, 1, 1) for i in range(n_origins)], n),
            "label": label,
            "good": label + rng.normal(0, 0.5, label.size),
            "noise": rng.normal(size=label.size),
        }
    )


def test_a_better_scorer_has_an_interval_above_zero_and_a_copy_has_zero():
    frame = _replayed().with_columns(pl.col("good").alias("copy"))
    table, per_origin = summarise(frame, ("good", "noise", "copy"), k=10, n_boot=200)
    rows = {r["scorer"]: r for r in table.to_dicts()}
    assert rows["good"]["spearman"] > 0.8 and abs(rows["noise"]["spearman"]) < 0.2
    assert rows["noise"]["spearman_diff_lo"] > 0 and rows["noise"]["ndcg_diff_lo"] > 0
    assert rows["copy"]["spearman_diff_lo"] == rows["copy"]["spearman_diff_hi"] == 0.0
    assert per_origin.height == 4 * 3 and set(per_origin["titles"]) == {60}
