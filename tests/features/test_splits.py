"""Leak-freedom, coverage, disjointness and determinism of the three split protocols."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.matrix import WeightingConfig
from features.splits import Split, leave_last_n, strong_generalization, temporal_split

T0 = datetime(2024, 1, 1)
KEY = ["reader_id", "title_id", "occurred_at"]


def frame(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
    """(reader, title, day) -> interactions frame; few days so that ties and duplicates occur."""
    return pl.DataFrame(
        {
            "reader_id": [r for r, _, _ in rows],
            "title_id": [t for _, t, _ in rows],
            "occurred_at": [T0 + timedelta(days=d) for _, _, d in rows],
            "channel": ["counter"] * len(rows),
        },
        schema_overrides={"occurred_at": pl.Datetime("us")},
    )


def generated(n: int, n_readers: int, n_titles: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return frame(
        list(
            zip(
                (f"r{i}" for i in rng.integers(0, n_readers, n)),
                (f"t{i}" for i in rng.integers(0, n_titles, n)),
                rng.integers(0, 365, n).tolist(),
                strict=True,
            )
        )
    )


rows_strategy = st.lists(
    st.tuples(
        st.sampled_from([f"r{i}" for i in range(10)]),
        st.sampled_from([f"t{i}" for i in range(8)]),
        st.integers(0, 6),
    ),
    min_size=1,
    max_size=80,
)


def assert_leak_free(split: Split) -> None:
    """The invariants every protocol promises."""
    for name, fold in split.folds.items():
        target_keys = fold.target.select(KEY).unique()
        for other in (split.train, fold.foldin):
            assert other.join(target_keys, on=KEY, how="semi").height == 0, f"{name}: target leaked"
        readers = sorted(fold.readers)
        assert readers == fold.readers
        assert sorted(fold.foldin["reader_id"].unique().to_list()) == readers, name
        assert sorted(fold.target["reader_id"].unique().to_list()) == readers, name
        assert split.train.columns == fold.target.columns == fold.foldin.columns


@settings(max_examples=40, deadline=None)
@given(rows_strategy, st.integers(1, 5))
def test_temporal_split_properties(rows, cut_day):
    df = frame(rows)
    cutoff = T0 + timedelta(days=cut_day)
    split = temporal_split(df, cutoff=cutoff, val_cutoff=cutoff - timedelta(days=1))
    assert_leak_free(split)
    assert (split.train["occurred_at"] < cutoff - timedelta(days=1)).all()
    assert (split.folds["test"].target["occurred_at"] >= cutoff).all()
    # every future reader is either evaluated or counted as cold
    future_readers = df.filter(pl.col("occurred_at") >= cutoff)["reader_id"].n_unique()
    test = split.folds["test"]
    assert len(test.readers) + test.dropped["cold"] == future_readers


@settings(max_examples=40, deadline=None)
@given(rows_strategy, st.integers(1, 3), st.booleans())
def test_leave_last_n_properties(rows, n, validation):
    split = leave_last_n(frame(rows), n, validation=validation)
    assert_leak_free(split)
    test = split.folds["test"]
    # the target is the reader's latest activity: nothing in its fold-in is later
    last_foldin = test.foldin.group_by("reader_id").agg(pl.col("occurred_at").max().alias("f"))
    first_target = test.target.group_by("reader_id").agg(pl.col("occurred_at").min().alias("t"))
    assert last_foldin.join(first_target, on="reader_id").filter(pl.col("f") > pl.col("t")).height == 0
    if not validation:
        assert split.folds["validation"].readers == []


def test_leave_last_n_without_duplicates_takes_exactly_n_and_loses_nothing():
    df = frame([(f"r{r}", f"t{d}", d) for r in range(5) for d in range(r + 1)])  # reader r has r+1 events
    split = leave_last_n(df, 2)
    test, val = split.folds["test"], split.folds["validation"]
    assert test.readers == ["r2", "r3", "r4"] and test.dropped["too_few"] == 2
    assert val.readers == ["r4"]
    assert test.target.group_by("reader_id").len()["len"].to_list() == [2, 2, 2]
    assert split.train.height + val.target.height + test.target.height == df.height
    assert sorted(test.target.filter(pl.col("reader_id") == "r4")["title_id"].to_list()) == ["t3", "t4"]


def test_leave_last_n_ties_are_deterministic():
    df = frame([("r1", "tb", 1), ("r1", "ta", 1), ("r1", "tc", 0)])
    a = leave_last_n(df, 1, validation=False).folds["test"].target
    b = leave_last_n(df.reverse(), 1, validation=False).folds["test"].target
    assert a.equals(b) and a["title_id"].to_list() == ["tb"]


@settings(max_examples=40, deadline=None)
@given(rows_strategy, st.integers(0, 3), st.integers(0, 3), st.booleans(), st.integers(0, 10_000))
def test_strong_generalization_properties(rows, n_val, n_test, by_time, seed):
    df = frame(rows)
    n_readers = df["reader_id"].n_unique()
    if n_val + n_test > n_readers:
        with pytest.raises(ValueError, match="exceed"):
            strong_generalization(df, n_val, n_test, seed=seed, by_time=by_time)
        return
    split = strong_generalization(df, n_val, n_test, target_frac=0.3, seed=seed, by_time=by_time)
    assert_leak_free(split)
    train = set(split.train["reader_id"].to_list())
    val, test = set(split.folds["validation"].readers), set(split.folds["test"].readers)
    assert not (train & val) and not (train & test) and not (val & test)
    for name, wanted in (("validation", n_val), ("test", n_test)):
        fold = split.folds[name]
        assert len(fold.readers) + fold.dropped["too_few"] + fold.dropped["cold"] == wanted
    again = strong_generalization(df, n_val, n_test, target_frac=0.3, seed=seed, by_time=by_time)
    assert again.train.equals(split.train)
    for name in ("validation", "test"):
        assert again.folds[name].target.equals(split.folds[name].target)
        assert again.folds[name].foldin.equals(split.folds[name].foldin)


def test_strong_generalization_by_time_targets_the_latest_events():
    df = frame([("r1", f"t{d}", d) for d in range(10)])
    split = strong_generalization(df, 0, 1, target_frac=0.2, by_time=True)
    assert split.folds["test"].target["title_id"].sort().to_list() == ["t8", "t9"]
    assert split.folds["test"].foldin.height == 8


def test_strong_generalization_seeds_differ_and_fractions_count():
    df = generated(3000, 200, 100, seed=1)
    a = strong_generalization(df, 0.1, 0.15, seed=1)
    b = strong_generalization(df, 0.1, 0.15, seed=2)
    assert a.folds["test"].readers != b.folds["test"].readers
    assert a.params["n_test_readers"] == 30 and a.params["n_val_readers"] == 20
    desc = a.describe()
    assert desc["train"]["readers"] == 200 - 30 - 20
    assert desc["test"]["readers"] + desc["test"]["dropped_readers"]["too_few"] == 30


def test_random_target_fraction_is_close_to_target_frac():
    df = generated(6000, 100, 500, seed=4)
    split = strong_generalization(df, 0, 50, target_frac=0.25, seed=3)
    fold = split.folds["test"]
    frac = fold.target.height / (fold.target.height + fold.foldin.height)
    assert 0.2 < frac < 0.3


def test_to_matrices_share_train_titles_and_count_unknown_titles():
    df = generated(3000, 150, 120, seed=5)
    # a title only ever borrowed after the cut-off cannot be scored: it must be dropped and counted
    extra = frame([("r1", "t_new", 300), ("r2", "t_new", 301)])
    split = temporal_split(pl.concat([df, extra]), quantile=0.8, val_quantile=0.6)
    mats = split.to_matrices(WeightingConfig(half_life_days=90))
    titles = mats.train.titles
    assert "t_new" not in titles.ids.tolist()
    unknown = split.describe()["test"]["target_events_unknown_title"]
    assert unknown >= 2
    for name, fm in mats.folds.items():
        fold = split.folds[name]
        assert fm.foldin.titles == titles and fm.target.titles == titles
        assert fm.foldin.readers.ids.tolist() == fold.readers == fm.target.readers.ids.tolist()
        assert fm.foldin.shape == (len(fold.readers), len(titles))
        assert set(np.unique(fm.target.matrix.data).tolist()) <= {1.0}
    assert mats.folds["test"].target.meta["dropped_unknown_titles"] == unknown
    # decay in train and fold-in is measured from one reference time
    assert mats.train.meta["reference_time"] == mats.folds["test"].foldin.meta["reference_time"]


def test_temporal_quantile_and_argument_errors():
    df = generated(1000, 50, 40, seed=6)
    split = temporal_split(df, quantile=0.7)
    share = split.train.height / df.height
    assert 0.65 < share < 0.75
    assert split.folds["validation"].readers == []
    with pytest.raises(ValueError, match="exactly one"):
        temporal_split(df)
    with pytest.raises(ValueError, match="after the test cut-off"):
        temporal_split(df, cutoff=T0 + timedelta(days=10), val_cutoff=T0 + timedelta(days=20))
    with pytest.raises(ValueError, match="occurred_at"):
        leave_last_n(df.with_columns(pl.lit(None, pl.Datetime("us")).alias("occurred_at")))
