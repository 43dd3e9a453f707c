"""``yuedu train CONFIG --engine spark``: the training pipeline with features and ALS on Spark.

The same experiment config (:mod:`training.config`), the same model directory and the same MLflow
logging as :func:`training.pipeline.train`; what changes is where the work runs:

* events are read from the data directory's Parquet tables as Spark frames
  (:mod:`features.spark.interactions`), filtered (``split.min_events``) and cut in time in Spark;
* the weighted training pairs and the vocabularies are built in Spark with the config's
  ``weighting`` (identical to the polars builder);
* ALS is fitted by MLlib (:class:`recsys.spark_als.SparkALS`) and saved as an ordinary ALS model
  directory, loadable by :func:`recsys.models.load_model`;
* validation metrics use a bounded sample of validation readers (``max_eval_readers``) collected
  to the driver and scored exactly as the local pipeline scores its validation fold.

Only the ``temporal`` protocol is supported: a global time cut is the protocol that scales (the
reader-sampling protocols need per-reader sorting and are for offline research on one machine).
Quantile cut-offs use Spark's approximate quantile (relative error 1e-4), so an explicit
``split.cutoff`` / ``split.val_cutoff`` is the way to get cut-offs identical to the local engine.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features.matrix import InteractionMatrix, WeightingConfig, build_matrix
from features.spark.interactions import build_ratings, load_interactions
from features.spark.session import spark_session
from features.splits import FoldMatrices
from features.vocab import Vocabulary
from recsys.spark_als import SparkALS
from training.config import ConfigError, ExperimentConfig, load_config
from training.pipeline import MODELS_DIR, TrainResult, evaluate_fold, metrics_dict, save_atomically

_log = logging.getLogger(__name__)

#: Config parameters of the ``als`` model that :class:`SparkALS` understands.
_ALS_PARAMS = ("factors", "regularization", "alpha", "iterations", "seed", "reg_param", "blocks")
_EPOCH = datetime(1970, 1, 1)


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
    """(test cut-off, validation cut-off) as in :func:`training.pipeline.make_split` (temporal)."""
    s = config.split
    if s.cutoff:
        cut = datetime.fromisoformat(s.cutoff)
        val = datetime.fromisoformat(s.val_cutoff) if s.val_cutoff else None
        return cut, val
    micros = events.select(F.unix_micros(F.col("occurred_at").cast("timestamp")).alias("us"))
    q_test, q_val = s.quantile, max(s.quantile - 0.1, 0.05)
    test_us, val_us = micros.approxQuantile("us", [q_test, q_val], 1e-4)
    return _EPOCH + timedelta(microseconds=int(test_us)), _EPOCH + timedelta(microseconds=int(val_us))


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
    from training import tracking

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    say = progress or (lambda msg: _log.info(msg))
    if cfg.model.name != "als":
        raise ConfigError(f"{cfg.name}: model.name: the Spark engine trains 'als' only, got '{cfg.model.name}'")
    if cfg.split.protocol != "temporal":
        raise ConfigError(
            f"{cfg.name}: split.protocol: the Spark engine supports 'temporal' only, got '{cfg.split.protocol}'"
        )
    unknown = set(cfg.model.params) - set(_ALS_PARAMS) - {"threads", "use_gpu"}
    if unknown:
        raise ConfigError(f"{cfg.name}: model.params: {sorted(unknown)} not understood by the Spark ALS")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    data_dir = data_directory(cfg)
    timings["dataset_s"] = time.perf_counter() - t

    t = time.perf_counter()
    session = spark or spark_session(master, f"yuedu-train-{cfg.name}", driver_memory=driver_memory)
    timings["spark_start_s"] = time.perf_counter() - t
    say(f"[{cfg.name}] Spark {session.version} on {session.sparkContext.master}; data {data_dir}")

    t = time.perf_counter()
    weighting = WeightingConfig(**cfg.weighting)
    events = _min_events(load_interactions(session, data_dir), weighting, cfg.split.min_events).persist()
    test_cut, val_cut = _cutoffs(events, cfg)
    if val_cut is not None and val_cut > test_cut:
        raise ConfigError(f"{cfg.name}: split.val_cutoff {val_cut} is after split.cutoff {test_cut}")
    train_end = val_cut or test_cut
    if weighting.half_life_days is not None and weighting.reference_time is None:
        latest = events.where(F.col("occurred_at") < _ts(test_cut)).agg(F.max("occurred_at")).first()[0]
        weighting = weighting.model_copy(update={"reference_time": latest})
    train_events = events.where(F.col("occurred_at") < _ts(train_end))
    ratings = build_ratings(train_events, weighting)
    matrix = ratings.to_matrix()
    timings["prepare_s"] = time.perf_counter() - t
    say(
        f"[{cfg.name}] fitting Spark ALS on {matrix.shape[0]} readers x {matrix.shape[1]} titles ({matrix.nnz} entries)"
    )

    t = time.perf_counter()
    params = {k: v for k, v in cfg.model.params.items() if k in _ALS_PARAMS}
    params.setdefault("seed", cfg.seed)
    als = SparkALS(**params)
    model = als.fit(ratings, matrix)
    timings["fit_s"] = time.perf_counter() - t

    t = time.perf_counter()
    validation: dict[str, float] = {}
    val_table = None
    if val_cut is not None:
        fold = _validation_fold(session, events, matrix, val_cut, test_cut, weighting, max_eval_readers, cfg.seed)
        if fold is not None:
            val_table = evaluate_fold(model, fold, cfg.metrics.ks)
            validation = metrics_dict(val_table)
    events.unpersist()
    timings["evaluate_s"] = time.perf_counter() - t
    primary = validation.get(cfg.metrics.primary)
    out = out or MODELS_DIR / cfg.name
    say(
        f"[{cfg.name}] validation {cfg.metrics.primary} = {primary if primary is None else round(primary, 4)}; saving to {out}"
    )
    model_dir = save_atomically(model, Path(out))
    spark_info = {"master": session.sparkContext.master, "version": session.version, **als.fit_info_}
    fingerprint = matrix.fingerprint()
    (model_dir / "experiment.json").write_text(
        json.dumps(
            {
                "config": json.loads(cfg.model_dump_json()),
                "fingerprint": fingerprint,
                "validation": validation,
                "engine": "spark",
                "spark": spark_info,
                "cutoffs": {"test": test_cut.isoformat(), "validation": val_cut.isoformat() if val_cut else None},
            },
            indent=2,
            sort_keys=True,
        )
    )
    run_id = None
    if track:
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
            run_id = active.info.run_id
    return TrainResult(run_id, model_dir, validation, None, model.get_params(), timings)


# --- measuring the two engines ----------------------------------------------------------------------


class _ResourceMeter:
    """Samples this process and its children (the Spark JVM and its Python workers) every 0.2 s:
    peak resident memory (bytes) and CPU seconds (user + system, summed over every process seen,
    so the figure holds even when other jobs compete for the cores)."""

    def __init__(self) -> None:
        import threading

        import psutil

        self._proc = psutil.Process()
        self.peak = 0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return float(sum(self._cpu.values()))

    def _sample(self) -> int:
        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
                t = p.cpu_times()
                self._cpu[p.pid] = max(self._cpu.get(p.pid, 0.0), t.user + t.system)
            except Exception:  # noqa: BLE001 - a child may exit between listing and reading
                continue
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self._sample())

    def __enter__(self) -> _ResourceMeter:
        self.peak = self._sample()
        self.cpu_at_start = self.cpu_seconds
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def measure_engine(
    engine: str,
    data_dir: str | Path,
    out: str | Path,
    *,
    master: str = "local[2]",
    factors: int = 32,
    iterations: int = 5,
    n: int = 20,
    top_n_readers: int = 20_000,
    driver_memory: str = "2g",
) -> dict[str, Any]:
    """Wall seconds per stage, CPU seconds and peak RSS (bytes; this process and its children) of
    one engine on one data directory. Stages: features (weighted matrix), ALS fit, demand
    aggregates, and top-``n`` for the first ``top_n_readers`` readers (outputs written as Parquet
    under ``out``; top-n cost is linear in readers). Run one engine per process (``python -m
    training.spark_train ENGINE DATA_DIR OUT``) so that peaks do not mix."""
    from features.matrix import build_matrix
    from recsys.filters import FilterConfig

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    result: dict[str, Any] = {"engine": engine, "data_dir": str(data_dir), "factors": factors, "iterations": iterations}
    with _ResourceMeter() as meter:
        if engine == "local":
            from features.interactions import load_interactions as local_interactions
            from features.spark.aggregates import demand_polars
            from recsys.models import make_model

            t = time.perf_counter()
            matrix = build_matrix(local_interactions(data_dir))
            seconds["features"] = time.perf_counter() - t
            _log.info("measure %s: features %.1f s", engine, seconds["features"])
            t = time.perf_counter()
            model = make_model("als", factors=factors, iterations=iterations, threads=2).fit(matrix)
            seconds["fit"] = time.perf_counter() - t
            _log.info("measure %s: fit %.1f s", engine, seconds["fit"])
            t = time.perf_counter()
            demand_polars(data_dir).write_parquet(out / "demand.parquet")
            seconds["aggregates"] = time.perf_counter() - t
            _log.info("measure %s: aggregates %.1f s", engine, seconds["aggregates"])
            t = time.perf_counter()
            rows = np.arange(min(top_n_readers, len(model.readers_)))
            ids, scores = model.recommend(rows, n)
            pl.DataFrame({"reader": np.repeat(rows, n), "title": ids.ravel(), "score": scores.ravel()}).write_parquet(
                out / "recs.parquet"
            )
            seconds["top_n"] = time.perf_counter() - t
            _log.info("measure %s: top_n %.1f s", engine, seconds["top_n"])
        elif engine == "spark":
            from features.spark.aggregates import demand_spark
            from recsys.spark_batch import batch_recommend

            t = time.perf_counter()
            session = spark_session(master, "yuedu-measure", driver_memory=driver_memory)
            seconds["start"] = time.perf_counter() - t
            _log.info("measure %s: start %.1f s", engine, seconds["start"])
            t = time.perf_counter()
            ratings = build_ratings(load_interactions(session, data_dir))
            matrix = ratings.to_matrix()
            seconds["features"] = time.perf_counter() - t
            _log.info("measure %s: features %.1f s", engine, seconds["features"])
            t = time.perf_counter()
            model = SparkALS(factors=factors, iterations=iterations).fit(ratings, matrix)
            seconds["fit"] = time.perf_counter() - t
            _log.info("measure %s: fit %.1f s", engine, seconds["fit"])
            t = time.perf_counter()
            demand_spark(session, data_dir).write.mode("overwrite").parquet(str(out / "demand"))
            seconds["aggregates"] = time.perf_counter() - t
            _log.info("measure %s: aggregates %.1f s", engine, seconds["aggregates"])
            t = time.perf_counter()
            config = FilterConfig(require_available=False, exclude_withdrawn=False, audience_rules=False)
            rows = np.arange(min(top_n_readers, len(model.readers_)))
            batch_recommend(session, model, data_dir, out / "recs", n=n, filters=config, reader_rows=rows)
            seconds["top_n"] = time.perf_counter() - t
            _log.info("measure %s: top_n %.1f s", engine, seconds["top_n"])
            session.stop()
        else:
            raise ValueError(f"engine must be 'local' or 'spark', got {engine!r}")
    result.update(
        seconds=seconds,
        events=int(matrix.meta["events"]),
        nnz=matrix.nnz,
        readers=matrix.shape[0],
        titles=matrix.shape[1],
        top_n_readers=min(top_n_readers, matrix.shape[0]),
        peak_rss_bytes=meter.peak,
        cpu_seconds=meter.cpu_seconds - meter.cpu_at_start,
        load_average=list(os.getloadavg()),
        events_per_s={k: matrix.meta["events"] / v for k, v in seconds.items() if k in ("features", "fit") and v > 0},
    )
    return result


if __name__ == "__main__":  # pragma: no cover - measurement entry point used by docs/scaling.md
    import sys

    logging.basicConfig(level=logging.WARNING)
    _log.setLevel(logging.INFO)
    print(json.dumps(measure_engine(sys.argv[1], sys.argv[2], sys.argv[3]), indent=2))
