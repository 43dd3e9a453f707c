"""build_matrix weighting, vocabularies and the interactions loader, on tiny hand-made frames."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.interactions import BRANCH_COLUMN, events_from_tables, load_interactions
from features.matrix import InteractionMatrix, WeightingConfig, build_matrix, seen_matrix
from features.vocab import Vocabulary

T0 = datetime(2024, 3, 1, 10, 0)


def events(rows: list[tuple]) -> pl.DataFrame:
    """(reader, title, channel, renewals, value, occurred_at) tuples as an interactions frame."""
    return pl.DataFrame(
        rows,
        schema={
            "reader_id": pl.String,
            "title_id": pl.String,
            "channel": pl.String,
            "renewals": pl.Int8,
            "value": pl.Float32,
            "occurred_at": pl.Datetime("us"),
        },
        orient="row",
    )


def cell(m: InteractionMatrix, reader: str, title: str) -> float:
    return float(m.matrix[m.readers.get(reader), m.titles.get(title)])


def test_channel_and_renewal_weights_follow_the_spec():
    df = events(
        [
            ("r1", "t1", "counter", 2, 1.0, T0),  # 1 + 2 * 0.25
            ("r1", "t2", "ebook_download", 0, 1.0, T0),
            ("r2", "t2", "ebook_read", 0, 1.0, T0),
            ("r2", "t1", "self_service", 0, 1.0, T0),
            ("r2", "t1", "ebook_read", 0, 1.0, T0),  # summed with the loan above
        ]
    )
    m = build_matrix(df)
    assert cell(m, "r1", "t1") == pytest.approx(1.5)
    assert cell(m, "r1", "t2") == pytest.approx(0.7)
    assert cell(m, "r2", "t2") == pytest.approx(0.5)
    assert cell(m, "r2", "t1") == pytest.approx(1.5)
    assert m.matrix.dtype == np.float32 and m.nnz == 4
    assert m.meta["events"] == 5


def test_custom_weights_unknown_channel_and_zero_weight_drops():
    df = events(
        [
            ("r1", "t1", "counter", 1, 1.0, T0),
            ("r1", "t2", "holds", 0, 1.0, T0),
            ("r1", "t3", "ebook_read", 0, 1.0, T0),
        ]
    )
    cfg = WeightingConfig(
        channel_weights={"counter": 2.0, "ebook_read": 0.0}, renewal_weight=0.5, unknown_channel_weight=0.3
    )
    m = build_matrix(df, cfg)
    assert cell(m, "r1", "t1") == pytest.approx(2.0 * (1 + 0.5))
    assert cell(m, "r1", "t2") == pytest.approx(0.3)
    assert m.nnz == 2 and m.meta["dropped_zero_weight"] == 1
    assert "t3" not in m.titles.ids.tolist()


def test_decay_halves_weight_after_one_half_life():
    df = events(
        [
            ("r1", "t1", "counter", 0, 1.0, T0),
            ("r1", "t2", "counter", 0, 1.0, T0 - timedelta(days=30)),
            ("r1", "t3", "counter", 0, 1.0, T0 - timedelta(days=60)),
            ("r2", "t1", "counter", 0, 1.0, T0 + timedelta(days=5)),  # the latest: reference time
        ]
    )
    m = build_matrix(df, WeightingConfig(half_life_days=30, reference_time=T0))
    assert cell(m, "r1", "t1") == pytest.approx(1.0)
    assert cell(m, "r1", "t2") == pytest.approx(0.5)
    assert cell(m, "r1", "t3") == pytest.approx(0.25)
    assert cell(m, "r2", "t1") == pytest.approx(1.0)  # after the reference: not boosted
    default_ref = build_matrix(df, WeightingConfig(half_life_days=5))
    assert cell(default_ref, "r1", "t1") == pytest.approx(0.5)
    assert default_ref.meta["reference_time"] == (T0 + timedelta(days=5)).isoformat()


def test_decay_without_times_is_an_error():
    df = events([("r1", "t1", "counter", 0, 1.0, None)])
    with pytest.raises(ValueError, match="occurred_at"):
        build_matrix(df, WeightingConfig(half_life_days=10))


def test_min_value_drops_low_ratings_and_use_value_scales():
    df = events(
        [
            ("u1", "m1", "rating", 0, 5.0, T0),
            ("u1", "m2", "rating", 0, 3.5, T0),
            ("u2", "m2", "rating", 0, 4.0, T0),
        ]
    )
    m = build_matrix(df, WeightingConfig(min_value=4.0))
    assert m.nnz == 2 and m.meta["dropped_low_value"] == 1
    assert cell(m, "u1", "m2") == 0.0 and cell(m, "u2", "m2") == 1.0
    scaled = build_matrix(df, WeightingConfig(use_value=True))
    assert cell(scaled, "u1", "m2") == pytest.approx(3.5)


def test_aggregate_max_and_binarize():
    df = events(
        [
            ("r1", "t1", "counter", 0, 1.0, T0),
            ("r1", "t1", "ebook_read", 0, 1.0, T0),
            ("r1", "t1", "ebook_download", 0, 1.0, T0),
        ]
    )
    assert cell(build_matrix(df), "r1", "t1") == pytest.approx(2.2)
    assert cell(build_matrix(df, WeightingConfig(aggregate="max")), "r1", "t1") == pytest.approx(1.0)
    assert cell(build_matrix(df, WeightingConfig(binarize=True)), "r1", "t1") == 1.0


def test_given_vocabularies_order_rows_and_drop_unknown_ids():
    df = events(
        [
            ("r1", "t1", "counter", 0, 1.0, T0),
            ("r2", "t2", "counter", 0, 1.0, T0),
            ("stranger", "t1", "counter", 0, 1.0, T0),
            ("r1", "t9", "counter", 0, 1.0, T0),
        ]
    )
    readers = Vocabulary(["r2", "r1", "r3"], "reader_id")
    titles = Vocabulary(["t2", "t1"], "title_id")
    m = build_matrix(df, readers=readers, titles=titles)
    assert m.shape == (3, 2)
    assert m.matrix.toarray().tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    assert m.meta["dropped_unknown_readers"] == 1
    assert m.meta["dropped_unknown_titles"] == 1


def test_minimal_frame_and_save_load(tmp_path):
    m = build_matrix(pl.DataFrame({"reader_id": ["b", "a", "b"], "title_id": ["x", "x", "x"]}))
    assert m.readers.ids.tolist() == ["a", "b"]
    assert m.matrix.toarray().tolist() == [[1.0], [2.0]]
    m.save(tmp_path)
    back = InteractionMatrix.load(tmp_path)
    assert back.meta["weighting"] == WeightingConfig().model_dump(mode="json")
    assert back.fingerprint() == m.fingerprint()


frames = st.lists(
    st.tuples(
        st.sampled_from([f"r{i}" for i in range(8)]),
        st.sampled_from([f"t{i}" for i in range(6)]),
        st.sampled_from(["counter", "mobile", "ebook_read", "ebook_download"]),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=40, deadline=None)
@given(frames)
def test_matrix_matches_naive_sum_and_vocabularies(rows):
    df = events([(r, t, c, n, 1.0, T0) for r, t, c, n in rows])
    m = build_matrix(df)
    assert m.shape == (len(m.readers), len(m.titles))
    assert m.readers.ids.tolist() == sorted({r for r, *_ in rows})
    assert m.titles.ids.tolist() == sorted({t for _, t, *_ in rows})
    channel = {"counter": 1.0, "mobile": 1.0, "ebook_read": 0.5, "ebook_download": 0.7}
    expected = np.zeros(m.shape)
    for r, t, c, n in rows:
        expected[m.readers.get(r), m.titles.get(t)] += channel[c] * (1 + 0.25 * n)
    np.testing.assert_allclose(m.matrix.toarray(), expected, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(frames, st.sampled_from(["bm25", "tfidf"]))
def test_schemes_change_weights_not_sparsity(rows, scheme):
    df = events([(r, t, c, n, 1.0, T0) for r, t, c, n in rows])
    plain = build_matrix(df)
    weighted = build_matrix(df, WeightingConfig(scheme=scheme))
    assert np.array_equal(plain.matrix.indptr, weighted.matrix.indptr)
    assert np.array_equal(plain.matrix.indices, weighted.matrix.indices)
    assert (weighted.matrix.data > 0).all()


def test_bm25_rewards_rare_titles():
    # t_common is borrowed by every reader, t_rare by one: same raw weight, bm25 favours the rare one
    rows = [(f"r{i}", "t_common", "counter", 0, 1.0, T0) for i in range(6)]
    rows.append(("r0", "t_rare", "counter", 0, 1.0, T0))
    m = build_matrix(events(rows), WeightingConfig(scheme="bm25"))
    assert cell(m, "r0", "t_rare") > cell(m, "r0", "t_common") > 0


def test_seen_matrix_window():
    df = events(
        [
            ("r1", "t1", "ebook_read", 0, 1.0, T0 - timedelta(days=400)),
            ("r1", "t2", "counter", 3, 1.0, T0 - timedelta(days=10)),
            ("r1", "t2", "counter", 0, 1.0, T0 - timedelta(days=5)),
        ]
    )
    readers, titles = Vocabulary(["r1", "r2"], "reader_id"), Vocabulary(["t1", "t2", "t3"], "title_id")
    seen = seen_matrix(df, readers, titles, start=T0 - timedelta(days=365), end=T0)
    assert seen.matrix.toarray().tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


# --- loader -------------------------------------------------------------------------------------


def test_load_interactions_from_loans_and_ebooks(tmp_path):
    pl.DataFrame(
        {
            "loan_id": ["L1", "L2"],
            "reader_id": ["r1", "r2"],
            "title_id": ["t1", "t2"],
            "branch_id": ["CEN", "CEN"],
            "channel": ["counter", "bookstore"],
            "borrowed_at": [T0, T0 + timedelta(days=40)],
            "renewals": pl.Series([2, 0], dtype=pl.Int8),
        }
    ).write_parquet(tmp_path / "loans.parquet")
    pl.DataFrame(
        {
            "event_id": ["E1"],
            "reader_id": ["r1"],
            "title_id": ["t3"],
            "occurred_at": [T0 + timedelta(days=1)],
            "action": ["read"],
        }
    ).write_parquet(tmp_path / "ebook_events.parquet")

    df = load_interactions(tmp_path).collect().sort("title_id")
    assert df.columns == ["reader_id", "title_id", "occurred_at", "channel", "renewals", "value"]
    assert df["channel"].to_list() == ["counter", "bookstore", "ebook_read"]
    assert df["renewals"].to_list() == [2, 0, 0]
    assert df["value"].to_list() == [1.0, 1.0, 1.0]
    assert df["occurred_at"][1] == T0 + timedelta(days=40)

    assert load_interactions(tmp_path, include_ebooks=False).collect().height == 2
    window = load_interactions(tmp_path, start=T0 + timedelta(days=1), end=T0 + timedelta(days=40)).collect()
    assert window["title_id"].to_list() == ["t3"]
    m = build_matrix(load_interactions(tmp_path))
    assert cell(m, "r1", "t1") == pytest.approx(1.5) and cell(m, "r1", "t3") == pytest.approx(0.5)


def test_load_interactions_prefers_generic_table(tmp_path):
    pl.DataFrame({"reader_id": ["u1"], "title_id": ["m1"], "value": [4.5]}).write_parquet(
        tmp_path / "interactions.parquet"
    )
    df = load_interactions(tmp_path).collect()
    assert df["channel"].to_list() == ["event"] and df["renewals"].to_list() == [0]
    assert df["value"].dtype == pl.Float32


def test_events_from_tables_reads_every_table_given_and_keeps_the_loan_branch():
    loans = pl.DataFrame(
        {"reader_id": ["r1"], "title_id": ["t1"], "branch_id": ["CEN"], "channel": ["counter"], "borrowed_at": [T0]}
    )
    ebooks = pl.DataFrame({"reader_id": ["r2"], "title_id": ["t2"], "occurred_at": [T0], "action": ["download"]})
    generic = pl.DataFrame({"reader_id": ["r3"], "title_id": ["t3"]})
    frames = {"interactions": generic, "ebook_events": ebooks, "loans": loans, "titles": pl.DataFrame({"x": [1]})}
    df = events_from_tables(frames, with_branch=True).collect()
    # loans, e-book events, generic interactions, in that order whatever the mapping's order
    assert df.columns == ["reader_id", "title_id", "occurred_at", "channel", "renewals", "value", BRANCH_COLUMN]
    assert df["reader_id"].to_list() == ["r1", "r2", "r3"]
    assert df["channel"].to_list() == ["counter", "ebook_download", "event"]
    assert df[BRANCH_COLUMN].to_list() == ["CEN", None, None]
    assert df["renewals"].to_list() == [0, 0, 0] and df["value"].to_list() == [1.0, 1.0, 1.0]
    assert events_from_tables(frames).collect().columns == df.columns[:-1]
    empty = events_from_tables({}, with_branch=True).collect()
    assert empty.height == 0 and empty.columns == df.columns


def test_load_interactions_missing_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match="loans.parquet"):
        load_interactions(tmp_path)


def test_movielens_ratings_threshold(shared_data):
    path = shared_data / "movielens-latest-small" / "ratings.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} absent")
    ratings = pl.read_csv(path).select(
        pl.col("userId").cast(pl.String).alias("reader_id"),
        pl.col("movieId").cast(pl.String).alias("title_id"),
        pl.from_epoch("timestamp").alias("occurred_at"),
        pl.lit("rating").alias("channel"),
        pl.col("rating").alias("value"),
    )
    m = build_matrix(ratings, WeightingConfig(min_value=4.0, binarize=True))
    assert m.nnz == ratings.filter(pl.col("value") >= 4.0).select(pl.struct("reader_id", "title_id").n_unique()).item()
    assert set(np.unique(m.matrix.data).tolist()) == {1.0}


def test_benchmark_reports_both_rates():
    from features.matrix import benchmark_build

    result = benchmark_build(n_events=5_000, n_readers=300, n_titles=100, seed=1)
    assert 0 < result["nnz"] <= 5_000
    assert result["build_events_per_s"] > 0 and result["bare_scipy_events_per_s"] > 0
    assert result["slowdown_vs_bare_scipy"] == pytest.approx(result["build_seconds"] / result["bare_scipy_seconds"])


def test_small_city_loans_and_ebooks_build(small_city):
    lf = load_interactions(small_city)
    df = lf.collect()
    assert df["reader_id"].null_count() == 0 and df["title_id"].null_count() == 0
    assert set(df["channel"].unique().to_list()) <= set(WeightingConfig().channel_weights)
    m = build_matrix(lf)
    assert m.meta["events"] == df.height and m.nnz <= df.height
