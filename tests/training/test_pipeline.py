"""Pipelines against the small synthetic city and a real (temporary) MLflow store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.config import ExperimentConfig


def _config(city, model="ease", params=None, name="t_city", **extra) -> ExperimentConfig:
    raw = {
        "name": name,
        "seed": 3,
        "dataset": {"kind": "dir", "path": str(city)},
        "split": {"protocol": "temporal", "cutoff": "2026-01-01", "val_cutoff": "2025-07-01"},
        "model": {"name": model, "params": params or {}},
        "metrics": {"ks": [10, 20], "primary": "ndcg@10"},
        **extra,
    }
    return ExperimentConfig(**raw)


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_same_config_and_seed_give_same_metrics(small_city, tmp_path):
    from training.pipeline import train

    cfg = _config(small_city, "als", {"factors": 16, "iterations": 5, "threads": 1})
    a = train(cfg, out=tmp_path / "a", track=False, evaluate_test=True)
    b = train(cfg, out=tmp_path / "b", track=False, evaluate_test=True)
    assert a.validation == b.validation and a.test == b.test
    assert 0.0 < a.validation["ndcg@10"] <= 1.0
    other = train(cfg.model_copy(update={"seed": 4}), out=tmp_path / "c", track=False)
    assert other.validation != a.validation  # the seed matters (ALS initialisation)


def test_train_logs_to_mlflow_and_promoted_model_loads_by_alias(small_city, tmp_path, mlflow_store):
    import mlflow
    from mlflow.tracking import MlflowClient

    from training import tracking
    from training.pipeline import train

    result = train(_config(small_city, "ease", {"lambda_": 50.0}), out=tmp_path / "m", track=True)
    mlflow.set_tracking_uri(mlflow_store)
    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["config.model.name"] == "ease"
    assert run.data.metrics["val_ndcg_at_10"] == pytest.approx(result.validation["ndcg@10"])
    assert "fit_s" in run.data.metrics and "val_segment_activity:heavy_ndcg_at_10" in run.data.metrics
    # per segment only the primary metric: tens of metrics, not hundreds
    assert "val_segment_activity:heavy_recall_at_20" not in run.data.metrics
    assert len(run.data.metrics) < 60
    assert len(run.data.tags["dataset_fingerprint"]) == 16
    assert run.data.tags["version.implicit"] not in ("", "absent")
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id)}
    assert {"model_dir", "config.json", "split.json"} <= artifacts

    version = tracking.promote(result.run_id, "production")
    model, served = tracking.load_by_alias("production")
    assert served == str(version)
    from recsys.models import load_model

    original = load_model(result.model_dir)
    rows = np.arange(min(20, len(original.readers_)))
    np.testing.assert_array_equal(model.recommend(rows, 10)[0], original.recommend(rows, 10)[0])
    # The pyfunc flavour loads through MLflow alone.
    pyfunc = mlflow.pyfunc.load_model(f"models:/{tracking.REGISTERED_MODEL}@production")
    reader = original.readers_.ids[0]
    out = pyfunc.predict({"reader_id": [reader]}, params={"n": 5})
    assert list(out["title_ids"].iloc[0]) == list(original.recommend_ids([reader], 5)[0][0])


def test_interrupt_marks_run_killed_and_leaves_no_model(small_city, tmp_path, mlflow_store, monkeypatch):
    import mlflow

    from recsys.models.ease import EASERecommender
    from training.pipeline import train

    def boom(self, directory):
        raise KeyboardInterrupt

    monkeypatch.setattr(EASERecommender, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        train(_config(small_city, "ease"), out=tmp_path / "never", track=True)
    assert not (tmp_path / "never").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]
    mlflow.set_tracking_uri(mlflow_store)
    runs = mlflow.search_runs(experiment_names=["t_city"], output_format="list")
    assert all(r.info.status != "FINISHED" for r in runs)


def test_tune_uses_validation_then_tests_once(small_city, tmp_path, mlflow_store):
    from training.tune import tune

    cfg = _config(
        small_city, "ease", tune={"trials": 3, "space": {"lambda_": {"low": 1.0, "high": 1000.0, "log": True}}}
    )
    result = tune(cfg, out=tmp_path / "tuned", progress=False)
    assert len(result.trials) == 3
    assert result.best_validation == max(t["value"] for t in result.trials)
    assert set(result.best_params) == {"lambda_"}
    assert 0.0 <= result.test["ndcg@10"] <= 1.0
    saved = json.loads((tmp_path / "tuned" / "experiment.json").read_text())
    assert saved["config"]["model"]["params"]["lambda_"] == result.best_params["lambda_"]


def test_experiment_run_writes_comparison_report(small_city, tmp_path, mlflow_store):
    from training.report import run_experiments

    paths = []
    for model, params in (("popular", {}), ("ease", {"lambda_": 50.0})):
        cfg = _config(small_city, model, params, name=f"t_{model}")
        p = tmp_path / f"t_{model}.toml"
        p.write_text(_toml(cfg))
        paths.append(p)
    report, rows = run_experiments(
        paths, "t_comparison", "yuedu experiment run ...", out_dir=tmp_path / "results", models_dir=tmp_path / "models"
    )
    text = report.read_text()
    assert "t_popular" in text and "t_ease" in text and "yuedu experiment run" in text
    for png in ("t_comparison_vs_k.png", "t_comparison_time_vs_quality.png", "t_comparison_segments.png"):
        assert (tmp_path / "results" / png).stat().st_size > 1000
    assert (tmp_path / "results" / "t_comparison.html").exists()
    assert {r.model for r in rows} == {"popular", "ease"}
    assert all(r.run_id for r in rows)
    # one study = one MLflow experiment, its models the runs (MLflow's compare view works)
    import mlflow

    mlflow.set_tracking_uri(mlflow_store)
    runs = mlflow.search_runs(experiment_names=["t_comparison"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == ["t_ease", "t_popular"]
    assert mlflow.get_experiment_by_name("t_popular") is None
    # without --log-models a study's runs hold their config and split, not the model files
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(runs[0].info.run_id)}
    assert artifacts == {"config.json", "split.json"}
    assert "mix" not in text  # one protocol: no warning


def test_a_study_mixing_protocols_says_so(small_city):
    from training.report import protocol_warning

    temporal = _config(small_city, "popular")
    strong = temporal.model_copy(update={"split": temporal.split.model_copy(update={"protocol": "strong"})})
    assert protocol_warning([temporal, temporal]) is None
    assert "protocols strong, temporal" in protocol_warning([temporal, strong])


def test_experiment_run_cli_writes_to_a_new_folder_not_committed_results(small_city, tmp_path, mlflow_store):
    from typer.testing import CliRunner

    from serving.cli import app

    cfg = tmp_path / "t_pop.toml"
    cfg.write_text(_toml(_config(small_city, "popular", name="t_pop")))
    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["experiment", "run", str(cfg), "--name", "t_cli", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "t_cli.md").exists() and "\x1b[" not in result.output


def _toml(cfg: ExperimentConfig) -> str:
    d = json.loads(cfg.model_dump_json(exclude_defaults=True))
    lines = [f'name = "{d["name"]}"', f"seed = {cfg.seed}"]
    for section in ("dataset", "split", "metrics"):
        lines.append(f"[{section}]")
        for k, v in d.get(section, {}).items():
            lines.append(f"{k} = {json.dumps(v)}")
    lines.append("[model]")
    lines.append(f'name = "{cfg.model.name}"')
    if cfg.model.params:
        lines.append("[model.params]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in cfg.model.params.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("protocol", ["strong", "temporal"])
def test_hybrid_blend_uses_internal_splits_of_training_readers_on_strong_splits(small_city, monkeypatch, protocol):
    import training.pipeline as pipeline

    pooled: list[tuple[int, int]] = []
    original = pipeline.search_weights

    def spy(sets, *args, **kwargs):
        pooled.append((len(sets), sum(s.readers for s in sets)))
        return original(sets, *args, **kwargs)

    monkeypatch.setattr(pipeline, "search_weights", spy)
    components = {
        "ease": {"model": "ease", "params": {"lambda_": 100.0}},
        "pop": {"model": "popular", "params": {}},
    }
    split = {"protocol": "strong", "val_frac": 0.1, "test_frac": 0.1} if protocol == "strong" else None
    cfg = _config(small_city, "hybrid", {"components": components})
    if split:
        cfg = cfg.model_copy(update={"split": cfg.split.model_copy(update=split)})
    prepared = pipeline.prepare(cfg)
    model = pipeline.fit(prepared)
    validation = len(prepared.split.folds["validation"].readers)
    sets, readers = pooled[-1]
    if protocol == "strong":
        assert sets == 1 + 2 * 2 and readers > 2 * validation  # validation + two internal splits x two folds
    else:
        assert sets == 1 and readers <= validation
    assert set(model.weights) == {"ease", "pop"} and abs(sum(model.weights.values()) - 1.0) < 1e-6


def test_readers_on_the_exclusion_list_are_not_trained_on(small_city, tmp_path):
    """An erased profile (serving.data_rights) never reaches the next model."""
    import polars as pl

    from training import pipeline

    loans = pl.read_parquet(small_city / "loans.parquet")
    erased = loans.group_by("reader_id").len().sort("len", descending=True)["reader_id"].head(3).to_list()
    listing = tmp_path / "excluded.txt"
    listing.write_text("\n".join(erased) + "\n\n", encoding="utf-8")
    base = pipeline.prepare(_config(small_city))
    cut = pipeline.prepare(_config(small_city, exclude_readers=str(listing)))

    def readers(prepared) -> set[str]:
        folds = {str(r) for fold in prepared.split.folds.values() for r in fold.readers}
        return set(prepared.split.train["reader_id"].unique()) | folds

    before, after = readers(base), readers(cut)
    assert set(erased) <= before and not set(erased) & after
    assert before - after == set(erased)
    with pytest.raises(Exception, match="no such file"):
        pipeline.prepare(_config(small_city, exclude_readers=str(tmp_path / "missing.txt")))
