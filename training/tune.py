"""Hyper-parameter search with optuna on the validation split only.

The data are prepared once; each trial fits on train and scores validation. The best trial is
re-fitted and evaluated once on test. The study is one MLflow run: each trial's parameters and
validation metric are logged as steps, the best parameters as params, the test metrics once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys.evaluation.batch import evaluate_fold
from recsys.metrics import metrics_by_name
from training.config import ConfigError, ExperimentConfig, ParamSpace, load_config
from training.pipeline import _title_classes, fit, prepare, train

_log = logging.getLogger(__name__)


@dataclass
class TuneResult:
    best_params: dict[str, Any]
    best_validation: float
    test: dict[str, float]
    trials: list[dict[str, Any]]
    run_id: str | None
    model_dir: Path


def _suggest(trial, name: str, space: ParamSpace) -> Any:
    if space.type == "categorical":
        return trial.suggest_categorical(name, space.choices)
    if space.type == "int":
        return trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(name, space.low, space.high, log=space.log)


def tune(
    config: ExperimentConfig | str | Path,
    trials: int | None = None,
    track: bool = True,
    out: Path | None = None,
    progress: bool = True,
) -> TuneResult:
    import optuna

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    if not cfg.tune.space:
        raise ConfigError(
            f'{cfg.name}: the config has no [tune.space] table (e.g. [tune.space.factors] type = "int" '
            "low = 16 high = 128): nothing to tune"
        )
    n_trials = trials or cfg.tune.trials
    prepared = prepare(cfg)
    val = prepared.matrices.folds["validation"]
    history: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        params = {name: _suggest(trial, name, space) for name, space in cfg.tune.space.items()}
        t = time.perf_counter()
        model = fit(prepared, params)
        metrics = metrics_by_name(evaluate_fold(model, val, cfg.metrics.ks, _title_classes(prepared, model)))
        value = metrics[cfg.metrics.primary]
        history.append({"trial": trial.number, "params": params, "value": value, "seconds": time.perf_counter() - t})
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    study.optimize(objective, n_trials=n_trials, timeout=cfg.tune.timeout_s, show_progress_bar=progress)
    best = dict(study.best_params)
    _log.info("best %s on validation: %.4f with %s", cfg.metrics.primary, study.best_value, best)
    # The winner is refitted and touches test exactly once; train() tracks it as its own run.
    tuned = cfg.model_copy(update={"model": cfg.model.model_copy(update={"params": {**cfg.model.params, **best}})})
    result = train(tuned, out=out, track=track, evaluate_test=True)
    if track and result.run_id:
        import mlflow

        from training import tracking

        tracking.setup(cfg.name)
        with mlflow.start_run(run_id=result.run_id):
            for h in history:
                mlflow.log_metric("tune_val_" + cfg.metrics.primary.replace("@", "_at_"), h["value"], step=h["trial"])
            mlflow.set_tags({"kind": "tune", "tune_trials": str(len(history))})
            tracking.log_json(history, "tune_trials.json")
    return TuneResult(best, study.best_value, result.test or {}, history, result.run_id, result.model_dir)
