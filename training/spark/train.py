"""``yuedu train CONFIG --engine spark``: the training pipeline with features and ALS on Spark.

The same experiment config (:mod:`training.config`), the same model directory and the same MLflow
logging as :func:`training.pipeline.train`; what changes is where the work runs:

* events are read from the data directory's Parquet tables as Spark frames
  (:mod:`features.spark.interactions`), filtered (``split.min_events``) and cut in time in Spark
  (at the local engine's cut-off times);
* the weighted training pairs and the vocabularies are built in Spark with the config's
  ``weighting`` (identical to the polars builder);
* ALS is fitted by MLlib (:class:`recsys.spark.als.SparkALS`) and saved as an ordinary ALS model
  directory, loadable by :func:`recsys.models.load_model`;
* validation metrics use a bounded sample of validation readers (``max_eval_readers``) collected
  to the driver and scored exactly as the local pipeline scores its validation fold.

Only the ``temporal`` protocol is supported: a global time cut is the protocol that scales (the
reader-sampling protocols need per-reader sorting and are for offline research on one machine).
The cut-off times come from the one implementation, :func:`features.splits.temporal_cutoffs`, with
the config's arguments (:meth:`training.config.SplitConfig.temporal_arguments`), so they are those of
the local engine; Spark only applies them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features.matrix import InteractionMatrix, WeightingConfig, build_matrix
from features.spark.interactions import SparkRatings, build_ratings, load_interactions
from features.spark.session import spark_session
from features.splits import FoldMatrices, temporal_cutoffs
from features.vocab import Vocabulary
from recsys.evaluation.batch import evaluate_fold
from recsys.metrics import metrics_by_name as metrics_dict
from recsys.models.als import ALSRecommender
from recsys.spark.als import SparkALS
from training.config import ConfigError, ExperimentConfig, load_config
from training.pipeline import MODELS_DIR, TrainResult, save_atomically

_log = logging.getLogger(__name__)

#: Config parameters of the ``als`` model that :class:`SparkALS` understands.
_ALS_PARAMS = ("factors", "regularization", "alpha", "iterations", "seed", "reg_param", "blocks")


def data_directory(config: ExperimentConfig) -> Path:
    """The yuedu data directory of a config's dataset (synthesised / adapted into the cache if needed).

    Raises:
        ConfigError: the dataset has no data directory the Spark engine can read.
    """
    from features.datasets import load_dataset

    ds = config.dataset
    dataset = load_dataset(
        ds.kind, path=ds.resolved_path() if ds.path else None, profile=ds.profile, seed=ds.synth_seed
    )
    if dataset.data_dir is None:
        raise ConfigError(f"dataset.kind '{ds.kind}': no Parquet data directory, which the Spark engine reads")
    return Path(dataset.data_dir)


def _cutoffs(events: DataFrame, config: ExperimentConfig) -> tuple[datetime, datetime | None]:
    """(test cut-off, validation cut-off) of the config's temporal protocol, computed by
    :func:`features.splits.temporal_cutoffs` exactly as the local engine computes them; quantiles
    need the event times on the driver (one column, 8 bytes per event, collected through Arrow).

    Raises:
        ConfigError: the validation cut-off is after the test cut-off.
    """
    arguments = config.split.temporal_arguments()
    if "quantile" in arguments:
        times = pl.from_arrow(events.select("occurred_at").toArrow())
    else:
        times = pl.DataFrame(schema={"occurred_at": pl.Datetime("us")})
    try:
        return temporal_cutoffs(times, **arguments)
    except ValueError as exc:
        raise ConfigError(f"{config.name}: split: {exc}") from None


def _ts(value: datetime):
    return F.lit(value.isoformat(sep=" ")).cast("timestamp_ntz")


def _min_events(events: DataFrame, weighting: WeightingConfig, min_events: int) -> DataFrame:
    """Keep events passing ``min_value`` of readers with at least ``min_events`` of them."""
    if weighting.min_value is not None:
        events = events.where(F.col("value") >= F.lit(float(weighting.min_value)))
    if min_events <= 1:
        return events
    keep = events.groupBy("reader_id").count().where(F.col("count") >= min_events).select("reader_id")
    return events.join(keep, "reader_id", "left_semi")


def _validation_fold(
    spark: SparkSession,
    events: DataFrame,
    train: InteractionMatrix,
    start: datetime,
    end: datetime,
    weighting: WeightingConfig,
    max_readers: int,
    seed: int,
) -> FoldMatrices | None:
    """Fold-in (train rows) and binary targets of up to ``max_readers`` readers with events in
    ``[start, end)`` and a training history; None when there are none."""
    window = events.where((F.col("occurred_at") >= _ts(start)) & (F.col("occurred_at") < _ts(end)))
    readers = pl.from_arrow(window.select("reader_id").distinct().toArrow())["reader_id"]
    rows = train.readers.index(readers)
    rows = np.sort(rows[rows >= 0])
    if rows.size == 0:
        return None
    if rows.size > max_readers:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_readers, replace=False))
    fold_readers = Vocabulary(train.readers.lookup(rows), "reader_id")
    picked = spark.createDataFrame(fold_readers.series.to_frame().to_arrow())
    target_events = pl.from_arrow(
        window.join(picked, "reader_id", "left_semi")
        .select("reader_id", "title_id", "occurred_at", "channel", "renewals", "value")
        .toArrow()
    )
    target_config = weighting.model_copy(
        update={"binarize": True, "scheme": None, "half_life_days": None, "reference_time": None}
    )
    foldin = InteractionMatrix(train.matrix[rows], fold_readers, train.titles, {"source": "train rows"})
    target = build_matrix(target_events, target_config, readers=fold_readers, titles=train.titles)
    return FoldMatrices(foldin=foldin, target=target)


def train_spark(
    config: ExperimentConfig | str | Path,
    master: str = "local[*]",
    out: Path | None = None,
    track: bool = True,
    *,
    spark: SparkSession | None = None,
    driver_memory: str = "2g",
    max_eval_readers: int = 20_000,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train the config's ALS model on Spark; save the model directory and log the run to MLflow.

    Args:
        config: an :class:`ExperimentConfig` or the path of its TOML file.
        master: Spark master URL (``local[*]``, ``spark://host:7077``, ``yarn``, ``k8s://...``).
        out: model directory (default ``models/<config name>``).
        track: log params, metrics, timings and the model to MLflow (:mod:`training.tracking`).
        spark: an existing session to use instead of starting one for ``master``.
        driver_memory: driver JVM heap when this call starts Spark.
        max_eval_readers: validation readers scored on the driver (a seeded sample when more).
        progress: callback for one-line progress messages (default: the module logger).

    Returns:
        The same :class:`training.pipeline.TrainResult` as the local engine.

    Raises:
        ConfigError: the model is not ``als``, the protocol is not ``temporal``, or the dataset has
            no data directory.
    """
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    say = progress or (lambda msg: _log.info(msg))
    _check_config(cfg)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    data_dir = data_directory(cfg)
    timings["dataset_s"] = time.perf_counter() - t

    t = time.perf_counter()
    session = spark or spark_session(master, f"yuedu-train-{cfg.name}", driver_memory=driver_memory)
    timings["spark_start_s"] = time.perf_counter() - t
    say(f"[{cfg.name}] Spark {session.version} on {session.sparkContext.master}; data {data_dir}")

    t = time.perf_counter()
    prepared = _prepare(session, data_dir, cfg)
    matrix = prepared.matrix
    timings["prepare_s"] = time.perf_counter() - t
    say(
        f"[{cfg.name}] fitting Spark ALS on {matrix.shape[0]} readers x {matrix.shape[1]} titles ({matrix.nnz} entries)"
    )

    t = time.perf_counter()
    params = {k: v for k, v in cfg.model.params.items() if k in _ALS_PARAMS}
    params.setdefault("seed", cfg.seed)
    als = SparkALS(**params)
    model = als.fit(prepared.ratings, matrix)
    timings["fit_s"] = time.perf_counter() - t

    t = time.perf_counter()
    val_table = _validate(session, prepared, model, cfg, max_eval_readers)
    validation = metrics_dict(val_table) if val_table is not None else {}
    prepared.events.unpersist()
    timings["evaluate_s"] = time.perf_counter() - t
    primary = validation.get(cfg.metrics.primary)
    out = out or MODELS_DIR / cfg.name
    say(
        f"[{cfg.name}] validation {cfg.metrics.primary} = {primary if primary is None else round(primary, 4)}; saving to {out}"
    )
    model_dir = save_atomically(model, Path(out))
    spark_info = {"master": session.sparkContext.master, "version": session.version, **als.fit_info_}
    _write_experiment(model_dir, cfg, matrix.fingerprint(), validation, spark_info, prepared)
    run_id = None
    if track:
        run_id = _log_run(cfg, model, model_dir, matrix.fingerprint(), val_table, validation, timings, spark_info)
    return TrainResult(run_id, model_dir, validation, None, model.get_params(), timings)


def _check_config(cfg: ExperimentConfig) -> None:
    """Refuse what the Spark engine does not do (see the module docstring).

    Raises:
        ConfigError: the model is not ``als``, the protocol is not ``temporal``, or a model
            parameter is not understood by :class:`SparkALS`.
    """
    if cfg.model.name != "als":
        raise ConfigError(f"{cfg.name}: model.name: the Spark engine trains 'als' only, got '{cfg.model.name}'")
    if cfg.split.protocol != "temporal":
        raise ConfigError(
            f"{cfg.name}: split.protocol: the Spark engine supports 'temporal' only, got '{cfg.split.protocol}'"
        )
    unknown = set(cfg.model.params) - set(_ALS_PARAMS) - {"threads", "use_gpu"}
    if unknown:
        raise ConfigError(f"{cfg.name}: model.params: {sorted(unknown)} not understood by the Spark ALS")


@dataclass
class _Prepared:
    """The filtered events (persisted), the cut-offs, the weighting (with its reference time) and
    the training ratings, distributed and as a driver-side matrix."""

    events: DataFrame
    test_cut: datetime
    val_cut: datetime | None
    weighting: WeightingConfig
    ratings: SparkRatings
    matrix: InteractionMatrix


def _prepare(session: SparkSession, data_dir: Path, cfg: ExperimentConfig) -> _Prepared:
    """Read and filter the events, cut them at the config's cut-offs, weight the training part."""
    weighting = WeightingConfig(**cfg.weighting)
    events = _min_events(load_interactions(session, data_dir), weighting, cfg.split.min_events).persist()
    test_cut, val_cut = _cutoffs(events, cfg)
    train_end = val_cut or test_cut
    if weighting.half_life_days is not None and weighting.reference_time is None:
        latest = events.where(F.col("occurred_at") < _ts(test_cut)).agg(F.max("occurred_at")).first()[0]
        weighting = weighting.model_copy(update={"reference_time": latest})
    ratings = build_ratings(events.where(F.col("occurred_at") < _ts(train_end)), weighting)
    return _Prepared(events, test_cut, val_cut, weighting, ratings, ratings.to_matrix())


def _validate(
    session: SparkSession, prepared: _Prepared, model: ALSRecommender, cfg: ExperimentConfig, max_readers: int
) -> pl.DataFrame | None:
    """The validation metrics table (as :func:`training.pipeline.evaluate_fold`), or None without a
    validation cut-off or validation readers."""
    if prepared.val_cut is None:
        return None
    fold = _validation_fold(
        session,
        prepared.events,
        prepared.matrix,
        prepared.val_cut,
        prepared.test_cut,
        prepared.weighting,
        max_readers,
        cfg.seed,
    )
    return evaluate_fold(model, fold, cfg.metrics.ks) if fold is not None else None


def _write_experiment(
    model_dir: Path,
    cfg: ExperimentConfig,
    fingerprint: str,
    validation: dict[str, float],
    spark_info: dict[str, Any],
    prepared: _Prepared,
) -> None:
    """``experiment.json`` beside the model: config, data fingerprint, validation, engine, cut-offs."""
    val_cut = prepared.val_cut
    (model_dir / "experiment.json").write_text(
        json.dumps(
            {
                "config": json.loads(cfg.model_dump_json()),
                "fingerprint": fingerprint,
                "validation": validation,
                "engine": "spark",
                "spark": spark_info,
                "cutoffs": {
                    "test": prepared.test_cut.isoformat(),
                    "validation": val_cut.isoformat() if val_cut else None,
                },
            },
            indent=2,
            sort_keys=True,
        )
    )


def _log_run(
    cfg: ExperimentConfig,
    model: ALSRecommender,
    model_dir: Path,
    fingerprint: str,
    val_table: pl.DataFrame | None,
    validation: dict[str, float],
    timings: dict[str, float],
    spark_info: dict[str, Any],
) -> str:
    """Log the run to MLflow (params, validation metrics per segment, timings, the model); its id."""
    from training import tracking

    run_params: dict[str, Any] = {
        "config": json.loads(cfg.model_dump_json()),
        "model_params": model.get_params(),
        "dataset_fingerprint": fingerprint,
        "engine": "spark",
        "spark": spark_info,
    }
    with tracking.run(
        cfg.name,
        f"train-{cfg.model.name}-spark",
        run_params,
        tags={"dataset_fingerprint": fingerprint, "kind": "train", "engine": "spark"},
    ) as active:
        if validation:
            tracking.log_metrics(validation, prefix="val_")
        if val_table is not None:
            for seg in val_table["segment"].unique().to_list():
                if seg != "all":
                    tracking.log_metrics(metrics_dict(val_table, seg), prefix=f"val_{seg}_")
        tracking.log_metrics(timings)
        tracking.log_json(json.loads(cfg.model_dump_json()), "config.json")
        tracking.log_json(spark_info, "spark.json")
        tracking.log_model_dir(model_dir)
        return active.info.run_id
