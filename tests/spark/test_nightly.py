"""The nightly top-n lists on Spark equal the local model's recommend() under the same filters."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from features.interactions import load_interactions
from features.matrix import build_matrix
from recsys.context import LibraryContext
from recsys.filters import FilterConfig, build_exclusions
from recsys.models import make_model

pytestmark = pytest.mark.slow


def test_nightly_top_n_matches_local_recommend(spark, small_city, tmp_path):
    from recsys.spark.nightly import nightly_top_n

    # train on the first two years so that later loans must be filtered from the data, not the matrix
    events = load_interactions(small_city, end=date(2025, 7, 1)).collect()
    model = make_model("als", factors=16, iterations=8, seed=1, threads=2).fit(build_matrix(events))
    config = FilterConfig(require_available=False, exclude_withdrawn=False, excluded_title_ids=("T0000010",))
    summary = nightly_top_n(spark, model, small_city, tmp_path / "recs", n=10, filters=config)
    got = pl.read_parquet(tmp_path / "recs" / "*.parquet")
    assert summary.readers == len(model.readers_) and summary.rows == got.height

    context = LibraryContext.from_data_dir(small_city, model.titles_, model.readers_, date(2026, 7, 1))
    rows = np.arange(len(model.readers_))
    per_reader, global_mask = build_exclusions(context, rows, config)
    # the blocklisted title is a global mask locally; Spark folds it into every reader's row
    blocked = sp.csr_matrix(per_reader) + sp.csr_matrix(np.broadcast_to(global_mask, per_reader.shape))
    ids, scores = model.recommend(rows, 10, filter_seen=True, exclude=blocked.astype(bool))
    valid = np.isfinite(scores)
    expected = pl.DataFrame(
        {
            "reader_id": np.repeat(model.readers_.ids, 10)[valid.ravel()],
            "rank": np.tile(np.arange(1, 11, dtype=np.int16), len(rows))[valid.ravel()],
            "title_id": model.titles_.ids[ids[valid]],
        }
    )
    joined = expected.join(got, on=["reader_id", "rank"], how="full", coalesce=True)
    assert joined.height == expected.height == got.height
    assert (joined["title_id"] == joined["title_id_right"]).mean() > 0.99

    # the filters really bit: no child card got adult-only, nothing already borrowed, no blocklisted title
    readers = pl.read_parquet(small_city / "readers.parquet")
    titles = pl.read_parquet(small_city / "titles.parquet")
    enriched = got.join(readers, on="reader_id").join(titles, on="title_id")
    assert enriched.filter((pl.col("card_type") == "child") & (pl.col("audience") == "adult_only")).height == 0
    assert got.filter(pl.col("title_id") == "T0000010").height == 0
    borrowed = load_interactions(small_city).select("reader_id", "title_id").unique().collect()
    assert got.join(borrowed, on=["reader_id", "title_id"], how="semi").height == 0


def test_nightly_leaves_out_readers_who_refused_personalisation(spark, small_city, tmp_path):
    """PIPL Art. 24: a reader's stored opt-out reaches the batch lists (no history-based list)."""
    from recsys.spark.nightly import nightly_top_n

    model = make_model("als", factors=8, iterations=4, seed=1, threads=2).fit(
        build_matrix(load_interactions(small_city).collect())
    )
    refused = list(model.readers_.ids[:3])
    rows = np.arange(50)
    summary = nightly_top_n(spark, model, small_city, tmp_path / "recs", n=5, reader_rows=rows, opted_out=refused)
    got = pl.read_parquet(tmp_path / "recs" / "*.parquet")
    assert not set(refused) & set(got["reader_id"])
    assert summary.readers == 50 - 3 and set(got["reader_id"]) == set(model.readers_.ids[3:50])


def test_yuedu_nightly_on_spark_gives_opted_out_readers_non_personalised_lists(spark, small_city, tmp_path):
    """The CLI wiring: ``yuedu nightly --engine spark --db``: stored opt-outs get the service's
    non-personalised list in their own part file, everyone else the Spark list."""
    from datetime import datetime

    from typer.testing import CliRunner

    from acquisition.db import init_db
    from serving.cli import app as cli
    from serving.preferences import ReaderPreferences

    model = make_model("als", factors=8, iterations=4, seed=1, threads=2).fit(
        build_matrix(load_interactions(small_city).collect())
    )
    model_dir = model.save(tmp_path / "als")
    refused = str(model.readers_.ids[0])
    url = f"sqlite:///{tmp_path / 'service.db'}"
    ReaderPreferences(init_db(url)).put(refused, False, True, datetime(2026, 6, 1))
    args = ["nightly", "--engine", "spark", "--model", str(model_dir), "--data", str(small_city), "--n", "5"]
    result = CliRunner().invoke(cli, [*args, "--today", "2026-06-20", "--out", str(tmp_path / "out"), "--db", url])
    assert result.exit_code == 0, result.output
    got = pl.read_parquet(tmp_path / "out" / "*.parquet")
    assert set(got["reader_id"]) == set(model.readers_.ids)
    mine = pl.read_parquet(tmp_path / "out" / "part-not-personalised.parquet")
    assert set(mine["reader_id"]) == {refused} and mine.height == 5
    assert got.filter(pl.col("reader_id") == refused).height == 5  # one list, not two
