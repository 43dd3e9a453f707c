"""MLflow tracking and registry for yuedu runs.

The default store is a SQLite database under the project (``mlflow.db``, artifacts in ``mlartifacts/``);
``MLFLOW_TRACKING_URI`` overrides it. View it with::

    .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db

Each run logs its parameters, metrics, the dataset fingerprint, the config snapshot, package versions,
wall times and the model directory (also as an MLflow pyfunc model, so ``mlflow.pyfunc.load_model``
works). ``promote`` registers a run's model and points an alias (e.g. ``production``) at it; serving
loads by alias.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
REGISTERED_MODEL = "yuedu-recommender"
#: Where studies and evaluations on a user's data write by default (git-ignored).
RUNS_DIR = REPO_ROOT / "experiments" / "runs"
_VERSIONED_PACKAGES = ("numpy", "scipy", "polars", "scikit-learn", "implicit", "mlflow", "optuna", "yuedu")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{REPO_ROOT / 'mlflow.db'}"


def _artifact_root(uri: str) -> str | None:
    """Artifacts beside a SQLite store (``<db dir>/mlartifacts``), so a temporary store stays self-contained."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return None


def _quiet_mlflow() -> None:
    """MLflow's artifact progress bars and advice about input examples would drown our own progress output."""
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", message=".*input example was not provided.*")
    warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")
    # MLflow colours its own warnings with raw ANSI codes, which end up as garbage in log files, and
    # its store logs schema migrations at INFO: keep both out of our output.
    warnings.filterwarnings("ignore", module="mlflow.*")
    warnings.filterwarnings("ignore", message="\x1b\\[")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def setup(experiment: str) -> str:
    """Point MLflow at the store and select (creating if needed) the experiment; returns its id."""
    import mlflow

    _quiet_mlflow()
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else mlflow.create_experiment(experiment, artifact_location=_artifact_root(uri))
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}`` for MLflow params (lists/values stringified by MLflow)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


@contextmanager
def run(experiment: str, run_name: str, params: dict[str, Any], tags: dict[str, str] | None = None) -> Iterator[Any]:
    """An MLflow run that ends FINISHED on success, KILLED on Ctrl-C and FAILED on error."""
    import mlflow

    setup(experiment)
    active = mlflow.start_run(run_name=run_name)
    try:
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
        mlflow.set_tags(
            {
                "git_commit": git_commit(),
                **{f"version.{k}": v for k, v in package_versions().items()},
                **(tags or {}),
            }
        )
        yield active
    except KeyboardInterrupt:
        mlflow.end_run(status="KILLED")
        raise
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


def log_metrics(metrics: dict[str, float], prefix: str = "") -> None:
    import mlflow

    clean = {}
    for k, v in metrics.items():
        if v is None:
            continue
        # MLflow metric names allow alphanumerics, _ - . space : /
        name = (prefix + k).replace("@", "_at_")
        clean[name] = float(v)
    mlflow.log_metrics(clean)


def log_json(obj: Any, artifact_file: str) -> None:
    import mlflow

    mlflow.log_text(json.dumps(obj, indent=2, sort_keys=True, default=str), artifact_file)


def log_model_dir(model_dir: str | Path) -> str:
    """Log a saved yuedu model directory as artifacts (``model_dir/``) and as a pyfunc model; returns the
    pyfunc model URI."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    mlflow.log_artifacts(str(model_dir), "model_dir")
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "reader_id")]),
        params=ParamSchema([ParamSpec("n", "long", 10)]),
    )
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).with_name("pyfunc_model.py")),
        artifacts={"model_dir": str(model_dir)},
        signature=signature,
    )
    mlflow.set_tag("pyfunc_model_uri", info.model_uri)
    return info.model_uri


def promote(run_id: str, alias: str = "production", name: str = REGISTERED_MODEL) -> int:
    """Register the run's model in the registry and point ``alias`` at the new version; returns the version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    _quiet_mlflow()
    mlflow.set_tracking_uri(tracking_uri())
    client = MlflowClient()
    run_ = client.get_run(run_id)
    uri = run_.data.tags.get("pyfunc_model_uri")
    if not uri:
        raise ValueError(f"run {run_id} has no logged model (was it a train run?)")
    mv = mlflow.register_model(uri, name, tags={"run_id": run_id})
    client.set_model_version_tag(name, mv.version, "run_id", run_id)
    client.set_registered_model_alias(name, alias, mv.version)
    _log.info("registered %s version %s as @%s (run %s)", name, mv.version, alias, run_id)
    return int(mv.version)


def resolve_alias(alias: str = "production", name: str = REGISTERED_MODEL) -> tuple[str, str]:
    """``(version, run_id)`` the alias points at."""
    import mlflow
    from mlflow.tracking import MlflowClient

    _quiet_mlflow()
    mlflow.set_tracking_uri(tracking_uri())
    mv = MlflowClient().get_model_version_by_alias(name, alias)
    run_id = (mv.tags or {}).get("run_id") or mv.run_id
    return str(mv.version), run_id


def download_model_dir(run_id: str, dst: str | Path | None = None) -> Path:
    """Download a run's ``model_dir`` artifacts (a loadable yuedu model directory)."""
    import mlflow

    _quiet_mlflow()
    mlflow.set_tracking_uri(tracking_uri())
    return Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model_dir", dst_path=str(dst) if dst else None))


def load_by_alias(alias: str = "production", name: str = REGISTERED_MODEL):
    """Load the yuedu model the registry alias points at; returns ``(model, version)``."""
    from recsys.models import load_model

    version, run_id = resolve_alias(alias, name)
    return load_model(download_model_dir(run_id)), version
