"""Experiment pipelines: prepare data and split, fit, evaluate, tune, save and track.

Everything an experiment needs comes from its typed config (:mod:`training.config`); the same config
and seed give the same split, the same model and the same metrics. Test data is touched only by
:func:`evaluate_config` / the final step of :func:`tune`; model selection uses validation only.
Splitting and scoring are the evaluation stack's (:mod:`recsys.evaluation.protocols`,
:mod:`recsys.evaluation.batch`), metric names those of :mod:`recsys.metrics` (``ndcg@10``,
``recall@20`` ...), so ``yuedu train`` and ``yuedu evaluate --dataset`` agree by construction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from features.errors import NotFound
from features.matrix import WeightingConfig
from features.splits import Split, SplitMatrices
from recsys.base import Recommender
from recsys.evaluation.batch import evaluate_fold
from recsys.evaluation.protocols import internal_splits, split_events
from recsys.metrics import class_codes, metrics_by_name, parse_metric_name
from recsys.models import load_model, make_model
from recsys.models.hybrid import BlendSet, search_weights
from training.config import REPO_ROOT, ExperimentConfig, load_config

_log = logging.getLogger(__name__)

MODELS_DIR = REPO_ROOT / "models"


@dataclass
class Prepared:
    """A config's data, split and matrices, ready to fit and evaluate."""

    config: ExperimentConfig
    split: Split
    matrices: SplitMatrices
    titles: pl.DataFrame | None
    fingerprint: str
    seconds: float


@dataclass
class TrainResult:
    run_id: str | None
    model_dir: Path
    validation: dict[str, float]
    test: dict[str, float] | None
    params: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    #: Test metrics per reader segment (activity level, ...), when test was evaluated.
    test_segments: dict[str, dict[str, float]] = field(default_factory=dict)


def _seed_everything(seed: int) -> None:
    np.random.seed(seed % (2**32))
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def _filter_min_events(events: pl.DataFrame, weighting: WeightingConfig, min_events: int) -> pl.DataFrame:
    """Keep readers with at least ``min_events`` events that pass ``min_value`` (e.g. ratings >= 4)."""
    if weighting.min_value is not None:
        events = events.filter(pl.col("value") >= weighting.min_value)
    if min_events <= 1:
        return events
    counts = events.group_by("reader_id").len()
    keep = counts.filter(pl.col("len") >= min_events).select("reader_id")
    return events.join(keep, on="reader_id", how="semi")


def _fingerprint(matrices: SplitMatrices, split: Split) -> str:
    h = hashlib.sha256(matrices.train.fingerprint().encode())
    for name, fold in sorted(matrices.folds.items()):
        h.update(name.encode() + fold.foldin.fingerprint().encode() + fold.target.fingerprint().encode())
    h.update(json.dumps(split.describe(), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def excluded_readers(path: Path | None) -> list[str]:
    """Reader ids of an exclusion list file (blank lines ignored); none without a file."""
    if path is None:
        return []
    if not Path(path).is_file():
        raise NotFound(f"exclude_readers {path}: no such file")
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _without_excluded(events: pl.DataFrame, path: Path | None) -> pl.DataFrame:
    """The events of readers not on the exclusion list (erased profiles are never trained on)."""
    excluded = excluded_readers(path)
    if not excluded:
        return events
    kept = events.filter(~pl.col("reader_id").is_in(excluded))
    _log.info("training exclusion list: %d readers, %d events left out", len(excluded), events.height - kept.height)
    return kept


def prepare(config: ExperimentConfig) -> Prepared:
    """Load the data set, apply the protocol, build weighted matrices (train + folds)."""
    from features.datasets import load_dataset

    t0 = time.perf_counter()
    ds_cfg = config.dataset
    dataset = load_dataset(
        ds_cfg.kind,
        path=ds_cfg.resolved_path() if ds_cfg.path else None,
        profile=ds_cfg.profile,
        seed=ds_cfg.synth_seed,
    )
    weighting = WeightingConfig(**config.weighting)
    events = _filter_min_events(
        _without_excluded(dataset.interactions.collect(), config.exclude_readers), weighting, config.split.min_events
    )
    split = split_events(events, config.split.to_protocol(), config.seed)
    matrices = split.to_matrices(weighting)
    return Prepared(config, split, matrices, dataset.titles, _fingerprint(matrices, split), time.perf_counter() - t0)


def build_model(config: ExperimentConfig, params: dict[str, Any] | None = None) -> Recommender:
    p = dict(config.model.params)
    p.update(params or {})
    if "seed" in _param_names(config.model.name) and "seed" not in p:
        p["seed"] = config.seed
    return make_model(config.model.name, **p)


def _param_names(model_name: str) -> list[str]:
    from recsys.models import MODELS

    return MODELS[model_name]._param_names()


def fit(prepared: Prepared, params: dict[str, Any] | None = None) -> Recommender:
    """Fit the config's model on train; a hybrid also fits its blend weights on validation (and, on a
    strong-generalisation split, on the held-out readers of internal splits of the training readers:
    :func:`recsys.evaluation.protocols.internal_splits`, as ``yuedu evaluate`` does)."""
    model = build_model(prepared.config, params)
    model.fit(prepared.matrices.train, prepared.titles)
    if prepared.config.model.name == "hybrid" and "validation" in prepared.matrices.folds:
        fold = prepared.matrices.folds["validation"]
        metric, k = parse_metric_name(prepared.config.metrics.primary)
        sets = [model.blend_set(fold.foldin.matrix, fold.target.matrix), *_inner_blend_sets(prepared, params)]
        model.weights, value, _ = search_weights(sets, list(model.components), metric, k)
        _log.info(
            "hybrid weights %s (%s %.4f over %d held-out readers)",
            model.weights,
            metric,
            value,
            sum(x.readers for x in sets),
        )
    return model


def _inner_blend_sets(prepared: Prepared, params: dict[str, Any] | None) -> list[BlendSet]:
    """Blend sets of the components refitted on each internal split of the training readers (none
    unless the split is strong generalisation)."""
    out: list[BlendSet] = []
    for inner in internal_splits(prepared.split, prepared.config.seed):
        matrices = inner.to_matrices(WeightingConfig(**prepared.config.weighting))
        part = build_model(prepared.config, params).fit(matrices.train, prepared.titles)
        out += [part.blend_set(f.foldin.matrix, f.target.matrix) for f in matrices.folds.values()]
    return out


def _title_classes(prepared: Prepared, model: Recommender) -> np.ndarray | None:
    if prepared.titles is None or "clc_class" not in prepared.titles.columns:
        return None
    frame = pl.DataFrame({"title_id": model.titles_.series}).join(
        prepared.titles.select("title_id", "clc_class"), on="title_id", how="left", maintain_order="left"
    )
    return class_codes(frame["clc_class"])


def primary_value(metrics: dict[str, float], config: ExperimentConfig) -> float:
    return metrics[config.metrics.primary]


def save_atomically(model: Recommender, target: Path) -> Path:
    """Save into a temporary sibling and rename, so Ctrl-C never leaves a half-written model directory."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _run_params(config: ExperimentConfig, model: Recommender, prepared: Prepared) -> dict[str, Any]:
    return {
        "config": json.loads(config.model_dump_json()),
        "model_params": model.get_params() if config.model.name != "hybrid" else {"weights": model.weights},
        "dataset_fingerprint": prepared.fingerprint,
    }


def run_metrics(val_table, test_table, primary: str) -> dict[str, float]:
    """What a run logs: every metric at every cut-off for all readers (``val_ndcg@10``, ...), and per
    reader segment only the primary metric (``val_segment_cold_ndcg@10``): tens of series a person
    would chart, not hundreds."""
    out: dict[str, float] = {}
    for fold, table in (("val", val_table), ("test", test_table)):
        if table is None:
            continue
        out.update({f"{fold}_{k}": v for k, v in metrics_by_name(table).items()})
        for seg in table["segment"].unique().sort().to_list():
            value = metrics_by_name(table, seg).get(primary) if seg != "all" else None
            if value is not None:
                out[f"{fold}_segment_{seg}_{primary}"] = value
    return out


def train(
    config: ExperimentConfig | str | Path,
    out: Path | None = None,
    track: bool = True,
    params: dict[str, Any] | None = None,
    evaluate_test: bool = False,
    progress: Callable[[str], None] | None = None,
    experiment: str | None = None,
    log_model: bool = True,
) -> TrainResult:
    """Fit on train, evaluate on validation (and test if asked), save the model directory, log to MLflow.

    ``experiment``: the MLflow experiment (default: the config's name; a study passes its own name so
    its models are runs of one experiment, side by side in MLflow's compare view). ``log_model``: log
    the model directory as run artifacts (needed to promote or serve the run; a study's runs skip it
    unless asked, keeping a study's artifacts to its reports and configs)."""
    from training import tracking

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    say = progress or (lambda msg: _log.info(msg))
    _seed_everything(cfg.seed)
    timings: dict[str, float] = {}
    say(f"[{cfg.name}] preparing {cfg.dataset.kind} data, {cfg.split.protocol} split")
    prepared = prepare(cfg)
    timings["prepare_s"] = prepared.seconds
    t = time.perf_counter()
    say(
        f"[{cfg.name}] fitting {cfg.model.name} on {prepared.matrices.train.shape[0]} readers x "
        f"{prepared.matrices.train.shape[1]} titles"
    )
    model = fit(prepared, params)
    timings["fit_s"] = time.perf_counter() - t
    classes = _title_classes(prepared, model)
    t = time.perf_counter()
    val_table = evaluate_fold(model, prepared.matrices.folds["validation"], cfg.metrics.ks, classes)
    validation = metrics_by_name(val_table)
    test_table = None
    if evaluate_test:
        test_table = evaluate_fold(model, prepared.matrices.folds["test"], cfg.metrics.ks, classes)
    timings["evaluate_s"] = time.perf_counter() - t
    out = out or MODELS_DIR / cfg.name
    say(f"[{cfg.name}] validation {cfg.metrics.primary} = {validation[cfg.metrics.primary]:.4f}; saving to {out}")
    model_dir = save_atomically(model, out)
    (model_dir / "experiment.json").write_text(
        json.dumps(
            {
                "config": json.loads(cfg.model_dump_json()),
                "fingerprint": prepared.fingerprint,
                "validation": validation,
            },
            indent=2,
            sort_keys=True,
        )
    )
    run_id = None
    test = metrics_by_name(test_table) if test_table is not None else None
    if track:
        with tracking.run(
            experiment or cfg.name,
            cfg.name if experiment else f"train-{cfg.model.name}",
            _run_params(cfg, model, prepared),
            tags={"dataset_fingerprint": prepared.fingerprint, "kind": "train", "protocol": cfg.split.protocol},
        ) as active:
            tracking.log_metrics(run_metrics(val_table, test_table, cfg.metrics.primary))
            tracking.log_metrics(timings)
            tracking.log_json(json.loads(cfg.model_dump_json()), "config.json")
            tracking.log_json(prepared.split.describe(), "split.json")
            if log_model:
                tracking.log_model_dir(model_dir)
            run_id = active.info.run_id
    segments = {}
    if test_table is not None:
        segments = {s: metrics_by_name(test_table, s) for s in test_table["segment"].unique().to_list() if s != "all"}
    params_out = model.get_params() if cfg.model.name != "hybrid" else {"weights": model.weights}
    return TrainResult(run_id, model_dir, validation, test, params_out, timings, segments)


def evaluate_config(config: ExperimentConfig | str | Path, on: str = "test", track: bool = True) -> dict[str, Any]:
    """Fit the config's model on train and evaluate once on ``on`` (test by default)."""
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    _seed_everything(cfg.seed)
    prepared = prepare(cfg)
    model = fit(prepared)
    table = evaluate_fold(model, prepared.matrices.folds[on], cfg.metrics.ks, _title_classes(prepared, model))
    result = {
        "name": cfg.name,
        "on": on,
        "metrics": metrics_by_name(table),
        "table": table.to_dicts(),
        "fingerprint": prepared.fingerprint,
    }
    if track:
        from training import tracking

        with tracking.run(
            cfg.name,
            f"evaluate-{cfg.model.name}",
            _run_params(cfg, model, prepared),
            tags={"dataset_fingerprint": prepared.fingerprint, "kind": "evaluate"},
        ):
            tracking.log_metrics(result["metrics"], prefix=f"{on}_")
    return result


def _model_dir_of(target: str) -> Path:
    """The local model directory of ``runs:/<id>``, ``models:/<name>@<alias>`` or a directory;
    :class:`NotFound` (one line) when the registry or the tracking store has no such thing."""
    from training import tracking

    try:
        if target.startswith("runs:/"):
            return tracking.download_model_dir(target.removeprefix("runs:/").split("/")[0])
        if target.startswith("models:/"):
            name, _, alias = target.removeprefix("models:/").partition("@")
            _, run_id = tracking.resolve_alias(alias or "production", name)
            return tracking.download_model_dir(run_id)
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds; each means "not there"
        reason = " ".join(str(exc).split())[:200]
        raise NotFound(f"{target}: not found in the MLflow store {tracking.tracking_uri()} ({reason})") from None
    if (Path(target) / "model.json").exists():
        return Path(target)
    raise NotFound(f"{target}: not a config (.toml), a runs:/ or models:/ URI, or a model directory")


def evaluate_target(target: str, on: str = "test") -> dict[str, Any]:
    """``yuedu evaluate CONFIG|MODEL_URI``: a config file, or a trained model (``runs:/<id>``,
    ``models:/<name>@<alias>`` or a model directory) evaluated on its experiment's ``on`` fold."""
    p = Path(target)
    if p.suffix == ".toml":
        return evaluate_config(p, on=on)
    model_dir = _model_dir_of(target)
    if not (model_dir / "experiment.json").is_file():
        raise NotFound(f"{target}: the model directory has no experiment.json (was it made by `yuedu train`?)")
    meta = json.loads((model_dir / "experiment.json").read_text())
    cfg = ExperimentConfig(**meta["config"])
    prepared = prepare(cfg)
    if prepared.fingerprint != meta["fingerprint"]:
        _log.warning("data fingerprint differs from training (%s != %s)", prepared.fingerprint, meta["fingerprint"])
    model = load_model(model_dir)
    table = evaluate_fold(model, prepared.matrices.folds[on], cfg.metrics.ks, _title_classes(prepared, model))
    return {
        "name": cfg.name,
        "on": on,
        "metrics": metrics_by_name(table),
        "table": table.to_dicts(),
        "fingerprint": prepared.fingerprint,
        "model_dir": str(model_dir),
    }
