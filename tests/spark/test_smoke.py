"""Always-on smoke test: Spark starts, reads a data directory and builds the polars matrix exactly."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from features.interactions import load_interactions
from features.matrix import WeightingConfig, build_matrix
from features.schema import conform


def _tiny_dir(path):
    """Loans and e-book events of 5 readers x 4 titles, with renewals, repeats and unknown channels."""
    rng = np.random.default_rng(3)
    n = 40
    t0 = datetime(2024, 1, 1, 9)
    loans = pl.DataFrame(
        {
            "loan_id": [f"L{i}" for i in range(n)],
            "reader_id": [f"R{r}" for r in rng.integers(0, 5, n)],
            "title_id": [f"T{t}" for t in rng.integers(0, 4, n)],
            "branch_id": "B1",
            "channel": rng.choice(["counter", "self_service", "mobile"], n).tolist(),
            "borrowed_at": [t0 + timedelta(days=int(d), seconds=int(s)) for d, s in rng.integers(0, 900, (n, 2))],
            "renewals": rng.integers(0, 3, n).astype(np.int8),
        }
    )
    conform(loans, "loans").write_parquet(path / "loans.parquet")
    ebooks = pl.DataFrame(
        {
            "event_id": ["E1", "E2", "E3"],
            "reader_id": ["R0", "R9", "R1"],
            "title_id": ["T7", "T0", "T0"],
            "occurred_at": [t0, t0 + timedelta(days=3), t0 + timedelta(days=999)],
            "action": ["download", "read", "read"],
        }
    )
    conform(ebooks, "ebook_events").write_parquet(path / "ebook_events.parquet")
    return path


def test_spark_matrix_equals_polars_matrix(spark, tmp_path):
    from features.spark.interactions import build_ratings
    from features.spark.interactions import load_interactions as spark_interactions

    data = _tiny_dir(tmp_path)
    config = WeightingConfig(half_life_days=200.0)
    expected = build_matrix(load_interactions(data), config)
    got = build_ratings(spark_interactions(spark, data), config).to_matrix()
    assert got.readers == expected.readers and got.titles == expected.titles
    assert got.shape == (6, 5)  # R9 and T7 come only from e-book events
    np.testing.assert_array_equal(got.matrix.indptr, expected.matrix.indptr)
    np.testing.assert_array_equal(got.matrix.indices, expected.matrix.indices)
    np.testing.assert_allclose(got.matrix.data, expected.matrix.data, rtol=1e-5)
    assert got.meta["reference_time"] == expected.meta["reference_time"]
    assert got.meta["events"] == expected.meta["events"] == 43
