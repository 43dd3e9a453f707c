"""Spark vs polars on the small synthetic city: vocabularies and weighted matrices."""

from __future__ import annotations

import numpy as np
import pytest

from features.interactions import load_interactions
from features.matrix import WeightingConfig, build_matrix

pytestmark = pytest.mark.slow


def test_matrix_parity(spark, small_city):
    # every weighting step at once: channel weights (one dropping a channel), renewals, recency
    # decay, max aggregation and BM25 (the default config is covered by the smoke test)
    config = WeightingConfig(
        half_life_days=365.0, scheme="bm25", aggregate="max", channel_weights={"counter": 2.0, "ebook_read": 0.0}
    )
    from features.spark.interactions import build_ratings
    from features.spark.interactions import load_interactions as spark_interactions

    expected = build_matrix(load_interactions(small_city), config)
    got = build_ratings(spark_interactions(spark, small_city), config).to_matrix()
    assert got.readers == expected.readers
    assert got.titles == expected.titles
    assert (got.matrix != 0).nnz == expected.nnz
    np.testing.assert_array_equal(got.matrix.indices, expected.matrix.indices)
    # float32 sums in a different order: equal to float32 rounding
    np.testing.assert_allclose(got.matrix.data, expected.matrix.data, rtol=2e-6, atol=1e-6)
    for key in ("events", "dropped_zero_weight", "dropped_low_value", "reference_time"):
        assert got.meta[key] == expected.meta[key], key
