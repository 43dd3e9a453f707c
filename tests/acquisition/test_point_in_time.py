"""A decision at time t knows only the past: rewriting every row after t changes no decision at t."""

from __future__ import annotations

import shutil
from datetime import datetime

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acquisition.backtest import BACKTEST_PARAMS
from acquisition.demand import YEAR, DemandModel, History
from acquisition.policy import load_policy
from acquisition.ranking import rank_requests

DECISION = ("request_id", "eligible", "reason_codes", "predicted_intents", "predicted_loans", "value", "selected")


def _rewrite_after(src, dst, t: datetime, seed: int) -> None:
    """A copy of ``src`` whose rows after ``t`` are changed (dropped, shifted or their state flipped)."""
    shutil.copytree(src, dst)
    date_t = t.date()
    edits = {
        "loans": lambda f: (
            f.filter(pl.col("borrowed_at") < t)
            .with_columns(
                pl.when(pl.col("returned_at") >= t).then(None).otherwise(pl.col("returned_at")).alias("returned_at")
            )
            .sample(fraction=1.0, shuffle=True, seed=seed)
        ),
        "holds": lambda f: f.filter(pl.col("placed_at") < t),
        "copies": lambda f: f.filter(pl.col("acquired_at") < date_t).with_columns(
            pl.lit("lost" if seed % 2 else "on_shelf").alias("status")
        ),
        "titles": lambda f: f.filter(pl.col("added_at").is_null() | (pl.col("added_at") < date_t)),
        "readers": lambda f: f.with_columns(
            pl.lit(bool(seed % 2)).alias("blocked"), pl.lit(seed % 6).cast(pl.Int8).alias("credit_level")
        ),
    }
    for table, edit in edits.items():
        path = dst / f"{table}.parquet"
        edit(pl.read_parquet(path)).write_parquet(path)


@pytest.fixture(scope="module")
def batch(small_city):
    requests = pl.read_parquet(small_city / "purchase_requests.parquet")
    t = datetime(2026, 4, 1)
    history = History.load(small_city)
    labels = pl.read_parquet(small_city / "truth" / "request_titles.parquet").select(
        "isbn", pl.col("expected_loans_per_year").alias("loans")
    )
    model = DemandModel(BACKTEST_PARAMS.demand).fit(history.before(t - YEAR), t - YEAR, labels)
    march = requests.filter(pl.col("requested_at").is_between(datetime(2026, 3, 1), t, closed="left"))
    return t, march, model


def _decide(data_dir, t, march, model, per_line):
    out = rank_requests(
        march,
        data_dir,
        load_policy(),
        800.0,
        BACKTEST_PARAMS,
        as_of=t,
        demand_model=model,
        point_in_time=True,
        per_line=per_line,
    )
    return out.lines.select(DECISION).sort("request_id")


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1000), per_line=st.booleans())
def test_rows_after_t_change_no_decision_at_t(small_city, batch, tmp_path_factory, seed, per_line):
    t, march, model = batch
    changed = tmp_path_factory.mktemp("after_t") / "city"
    _rewrite_after(small_city, changed, t, seed)
    before = _decide(small_city, t, march, model, per_line)
    after = _decide(changed, t, march, model, per_line)
    assert before.height == march.height
    assert before.equals(after)
