"""Filters and promotion costs on the small synthetic city, against the oracle."""

from __future__ import annotations

import polars as pl

from recsys.evaluation.promotion import PROMOTION_SETTINGS, promotion_costs, write_markdown


def test_promotion_costs_on_small_city(small_city, tmp_path):
    table, info = promotion_costs(small_city)
    rows = {r["setting"]: r for r in table.iter_rows(named=True)}
    assert info["readers"] > 100
    oracle = "oracle (expected events after the cut-off, no filters)"
    expected = {"model alone (no filters, no promotion)", "filters on", oracle}
    expected |= {f"filters + {name}" for name in PROMOTION_SETTINGS}
    assert set(rows) == expected
    for r in rows.values():
        for m in ("recall_unnormalised", "ndcg", "coverage", "diversity"):
            assert 0.0 <= r[m] <= 1.0, (r["setting"], m)
    # Diversity re-ranking spreads the lists over more CLC classes than filters alone.
    assert rows["filters + diversity only (MMR λ=0.5)"]["diversity"] > rows["filters on"]["diversity"]
    # Down-weighting the head recommends less popular titles (higher self-information).
    assert rows["filters + novelty only (exponent 0.5)"]["novelty"] > rows["filters on"]["novelty"]
    # The oracle is a ceiling: it beats the model it is the reference for.
    assert rows[oracle]["ndcg"] > rows["model alone (no filters, no promotion)"]["ndcg"]
    # Deltas are against filters-only.
    assert rows["filters on"]["Δndcg vs filters"] == 0.0
    d = rows["filters + default promotion"]
    assert abs(d["Δndcg vs filters"] - (d["ndcg"] - rows["filters on"]["ndcg"])) < 1e-12
    md = write_markdown(table, info, tmp_path / "p.md", "yuedu promotion-report")
    text = md.read_text()
    assert "oracle" in text and "yuedu promotion-report" in text and text.count("\n|") >= table.height + 1
    assert isinstance(table, pl.DataFrame)
