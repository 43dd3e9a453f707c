"""``yuedu train | tune | experiment run | model promote``: experiments for data scientists."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
experiment_app = typer.Typer(help="Run and compare several experiment configs.", no_args_is_help=True)
model_app = typer.Typer(help="The MLflow model registry: promote a run's model to an alias.", no_args_is_help=True)


def _config_or_exit(path: Path):
    """The validated config; a bad one is a ConfigError, which the root command turns into one line
    naming the file and the key, and exit 2 (serving.cli.errors)."""
    from training.config import load_config

    return load_config(path)


def _metrics_table(title: str, metrics: dict[str, float]) -> Table:
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in sorted(metrics.items()):
        t.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    return t


def train_cmd(
    config: Path = typer.Argument(..., help="Experiment config (TOML)."),
    out: Path = typer.Option(None, help="Model directory (default: models/<name>)."),
    track: bool = typer.Option(True, help="Log the run to MLflow."),
    engine: str = typer.Option("local", help="local (one machine) or spark (Spark MLlib ALS)."),
    master: str = typer.Option("local[*]", help="Spark master URL (engine spark only)."),
) -> None:
    """Fit the config's model, evaluate on validation, save the model directory, log to MLflow."""
    from training.pipeline import train

    cfg = _config_or_exit(config)
    if engine == "spark":
        from training.spark.train import train_spark

        result = train_spark(cfg, master=master, out=out, track=track)
        console.print(_metrics_table(f"{cfg.name}: validation (spark)", result.validation))
        console.print(f"model directory: {result.model_dir}")
        return
    if engine != "local":
        console.print(f"[red]--engine must be local or spark, got {engine!r}[/red]")
        raise typer.Exit(2)
    with console.status(f"training {cfg.name}") as status:
        result = train(cfg, out=out, track=track, progress=lambda m: status.update(m))
    console.print(_metrics_table(f"{cfg.name}: validation", result.validation))
    console.print(f"model directory: {result.model_dir}")
    if result.run_id:
        console.print(f"MLflow run: {result.run_id}  (promote: yuedu model promote {result.run_id})")


def tune_cmd(
    config: Path = typer.Argument(..., help="Experiment config with a [tune.space] table."),
    trials: int = typer.Option(None, "--trials", min=1, help="Number of trials (default: tune.trials)."),
    track: bool = typer.Option(True, help="Log the run to MLflow."),
) -> None:
    """Search hyper-parameters on validation (optuna); refit the best and evaluate it once on test."""
    from training.tune import tune

    cfg = _config_or_exit(config)
    result = tune(cfg, trials=trials, track=track)
    console.print(f"best params: {result.best_params}  validation {cfg.metrics.primary} = {result.best_validation:.4f}")
    console.print(_metrics_table(f"{cfg.name}: test (best trial, evaluated once)", result.test))
    if result.run_id:
        console.print(f"MLflow run: {result.run_id}  (promote: yuedu model promote {result.run_id})")


@experiment_app.command("run")
def experiment_run(
    configs: list[Path] = typer.Argument(..., help="Experiment configs (TOML), e.g. experiments/movielens_*.toml."),
    name: str = typer.Option(None, help="Study name: the MLflow experiment and the report's name."),
    out: Path = typer.Option(
        None, "--out", help="Report folder (default: a new experiments/runs/<name>-<time>/, never a committed file)."
    ),
    log_models: bool = typer.Option(False, "--log-models", help="Also log each model directory to MLflow."),
    track: bool = typer.Option(True, help="Log the runs to MLflow."),
) -> None:
    """Train and test-evaluate several configs as one study (one MLflow experiment, the models as its
    runs) and write a comparison report with plots."""
    import time

    from training.report import protocol_warning, run_experiments
    from training.tracking import RUNS_DIR

    loaded = [_config_or_exit(c) for c in configs]
    report_name = name or (configs[0].stem.split("_")[0] + "_comparison")
    out = out or RUNS_DIR / f"{report_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    warning = protocol_warning(loaded)
    if warning:
        console.print(warning, markup=False, style="yellow")
    command = "yuedu experiment run " + " ".join(shlex.quote(str(c)) for c in configs)
    from rich.progress import Progress

    with Progress(console=console) as progress:
        task = progress.add_task("experiments", total=len(configs))

        def _step(msg: str) -> None:
            progress.update(task, description=msg[:70])
            if "saving to" in msg:
                progress.advance(task)

        path, rows = run_experiments(
            configs, report_name, command, track=track, progress=_step, out_dir=out, log_models=log_models
        )
    t = Table(title=f"{report_name} (test)")
    for col in ("experiment", "ndcg@10", "recall@20", "recall@50", "coverage@10", "fit s"):
        t.add_column(col)
    for r in sorted(rows, key=lambda r: -r.test.get("ndcg@10", 0)):
        t.add_row(
            r.name,
            *(f"{r.test.get(m, float('nan')):.4f}" for m in ("ndcg@10", "recall@20", "recall@50", "coverage@10")),
            f"{r.timings.get('fit_s', 0):.2f}",
        )
    console.print(t)
    console.print(f"report: {path}")


@model_app.command("promote")
def model_promote(
    run_id: str = typer.Argument(..., help="MLflow run id of a train/tune run."),
    alias: str = typer.Option("production", help="Registry alias to point at the new version."),
    name: str = typer.Option(None, help="Registered model name (default: yuedu-recommender)."),
) -> None:
    """Register a run's model in the MLflow registry and point the alias (serving loads it) at it."""
    from training import tracking

    try:
        version = tracking.promote(run_id, alias, name or tracking.REGISTERED_MODEL)
    except Exception as e:  # MLflow raises its own exception types for unknown runs
        console.print(f"[red]cannot promote run {run_id}: {e}[/red]")
        raise typer.Exit(2) from None
    console.print(f"{name or tracking.REGISTERED_MODEL} version {version} is now @{alias}")


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("tune")(tune_cmd)
    app.add_typer(experiment_app, name="experiment")
    app.add_typer(model_app, name="model")
