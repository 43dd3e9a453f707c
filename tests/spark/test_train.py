"""train_spark: the config-driven pipeline on Spark writes a loadable model dir and an MLflow run."""

from __future__ import annotations

import json

import pytest

from recsys.models import ALSRecommender, load_model
from training.config import ConfigError, ExperimentConfig, SplitConfig

pytestmark = pytest.mark.slow


def _config(**model) -> ExperimentConfig:
    return ExperimentConfig(
        name="spark_city_als",
        seed=5,
        dataset={"kind": "city", "profile": "small", "synth_seed": 7},
        weighting={"half_life_days": 365.0},
        split={"protocol": "temporal", "cutoff": "2026-01-01", "val_cutoff": "2025-07-01"},
        model=model or {"name": "als", "params": {"factors": 16, "iterations": 8}},
        metrics={"ks": [10], "primary": "ndcg@10"},
    )


def test_train_spark_writes_model_and_run(spark, tmp_path, monkeypatch):
    from training.pipeline import train
    from training.spark.train import train_spark

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = train_spark(_config(), out=tmp_path / "model", track=True, spark=spark)
    model = load_model(result.model_dir)
    assert isinstance(model, ALSRecommender) and model.factors == 16
    meta = json.loads((result.model_dir / "experiment.json").read_text())
    assert meta["engine"] == "spark" and meta["cutoffs"]["validation"].startswith("2025-07-01")
    local = train(_config(), out=tmp_path / "local", track=False)
    # same data, vocabularies and protocol as the local engine; scores within a few percent
    assert model.readers_ == load_model(local.model_dir).readers_
    assert abs(result.validation["ndcg@10"] - local.validation["ndcg@10"]) / local.validation["ndcg@10"] < 0.1

    import mlflow

    run = mlflow.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["engine"] == "spark"
    assert run.data.metrics["val_ndcg_at_10"] == pytest.approx(result.validation["ndcg@10"])


def test_train_spark_refuses_other_models(spark):
    from training.spark.train import train_spark

    with pytest.raises(ConfigError, match="'als' only"):
        train_spark(_config(name="ease"), spark=spark, track=False)


def test_quantile_cutoffs_are_the_local_engines(spark, small_city):
    """Spark applies the cut-offs; features.splits computes them, from the same event times."""
    from features.interactions import load_interactions
    from features.spark.interactions import load_interactions as spark_interactions
    from features.splits import temporal_split
    from training.spark.train import _cutoffs

    config = _config().model_copy(update={"split": SplitConfig(protocol="temporal", quantile=0.8)})
    got = _cutoffs(spark_interactions(spark, small_city), config)
    local = temporal_split(load_interactions(small_city).collect(), quantile=0.8, val_quantile=0.7)
    assert got == (local.params["cutoff"], local.params["val_cutoff"])
    with pytest.raises(ConfigError, match="after the test cut-off"):
        bad = SplitConfig(protocol="temporal", cutoff="2025-01-01", val_cutoff="2025-06-01")
        _cutoffs(spark_interactions(spark, small_city), config.model_copy(update={"split": bad}))
