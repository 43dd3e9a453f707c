"""Implicit-feedback ALS on Spark MLlib, saved as yuedu's own ALS model directory.

MLlib's :class:`pyspark.ml.recommendation.ALS` (``implicitPrefs=True``) solves the same weighted
factorisation as :class:`recsys.models.als.ALSRecommender` (Hu, Koren & Volinsky 2008: confidence
``1 + alpha × weight``), distributed over reader and title blocks. The fitted factors are placed in
an ordinary :class:`ALSRecommender`, so ``save`` writes the usual directory (``model.json`` says
``"model": "als"``) and :func:`recsys.models.load_model`, ``recommend``, ``recalculate`` and the
HTTP service use a Spark-trained model exactly like a local one.

Regularisation differs between the two solvers: implicit adds ``regularization × I`` to every
least-squares system, MLlib adds ``regParam × n_u × I`` (ALS-WR: ``n_u`` = the reader's, or title's,
number of stored entries). :class:`SparkALS` therefore maps ``regularization`` to
``regParam = regularization / mean entries per reader`` unless ``reg_param`` is given, so the
average penalty matches (tests/spark/test_als.py measures the resulting NDCG parity).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features.matrix import InteractionMatrix
from features.spark.interactions import SparkRatings
from recsys.models.als import ALSRecommender

_log = logging.getLogger(__name__)


def ratings_from_matrix(spark: SparkSession, matrix: InteractionMatrix, partitions: int | None = None) -> SparkRatings:
    """A driver-side matrix as distributed ratings (for tests and for models trained from a split
    built on one machine)."""
    coo = matrix.matrix.tocoo()
    table = pa.table(
        {
            "reader_index": pa.array(coo.row.astype(np.int32)),
            "title_index": pa.array(coo.col.astype(np.int32)),
            "weight": pa.array(coo.data.astype(np.float32)),
        }
    )
    frame = spark.createDataFrame(table)
    if partitions:
        frame = frame.repartition(partitions)
    return SparkRatings(frame, matrix.readers, matrix.titles, dict(matrix.meta))


def _factor_matrix(factors: DataFrame, n: int, rank: int) -> np.ndarray:
    """MLlib ``(id, features)`` rows as a dense float32 (n × rank) array; ids never fitted stay 0."""
    table = factors.select(F.col("id").cast("int").alias("id"), "features").toArrow()
    out = np.zeros((n, rank), dtype=np.float32)
    ids = table.column("id").to_numpy()
    if ids.size:
        flat = table.column("features").combine_chunks().flatten().to_numpy()
        out[ids] = flat.reshape(ids.size, rank)
    return out


@dataclass
class SparkALS:
    """Hyper-parameters of an MLlib ALS fit, named as :class:`ALSRecommender`'s.

    Args:
        factors: latent dimensions (MLlib ``rank``).
        regularization: implicit-style L2 penalty (see the module docstring for the mapping).
        alpha: confidence scale (confidence = 1 + alpha × weight), as implicit.
        iterations: ALS sweeps (MLlib ``maxIter``).
        seed: random seed of the initial factors.
        reg_param: MLlib ``regParam`` used as is (None = mapped from ``regularization``).
        blocks: reader and title blocks (MLlib ``numUserBlocks`` / ``numItemBlocks``); None = the
            session's shuffle partitions.
        checkpoint_interval: checkpoint every this many iterations when the SparkContext has a
            checkpoint directory (cuts lineage on long fits; ignored otherwise).
    """

    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    seed: int = 0
    reg_param: float | None = None
    blocks: int | None = None
    checkpoint_interval: int = 10
    #: What the last :meth:`fit` did: regParam used, seconds, entries.
    fit_info_: dict[str, Any] = field(default_factory=dict)

    def mllib_reg_param(self, ratings: SparkRatings, n_entries: int) -> float:
        """``reg_param`` if set, else ``regularization / (entries / readers)``."""
        if self.reg_param is not None:
            return float(self.reg_param)
        per_reader = n_entries / max(len(ratings.readers), 1)
        return float(self.regularization) / max(per_reader, 1.0)

    def fit(self, ratings: SparkRatings, matrix: InteractionMatrix | None = None) -> ALSRecommender:
        """Fit MLlib ALS on ``ratings`` and return a fitted :class:`ALSRecommender`.

        ``matrix``: the same ratings on the driver (the model directory stores the training CSR for
        seen-filtering and fold-in); None = collected from ``ratings``.
        """
        from pyspark.ml.recommendation import ALS

        spark = ratings.frame.sparkSession
        started = time.perf_counter()
        frame = ratings.frame.select("reader_index", "title_index", "weight").persist()
        n_entries = frame.count()
        reg = self.mllib_reg_param(ratings, n_entries)
        blocks = self.blocks or int(spark.conf.get("spark.sql.shuffle.partitions", "8"))
        als = ALS(
            rank=self.factors,
            maxIter=self.iterations,
            regParam=reg,
            alpha=self.alpha,
            implicitPrefs=True,
            userCol="reader_index",
            itemCol="title_index",
            ratingCol="weight",
            seed=self.seed,
            numUserBlocks=blocks,
            numItemBlocks=blocks,
            checkpointInterval=self.checkpoint_interval,
            coldStartStrategy="drop",
        )
        fitted = als.fit(frame)
        reader_factors = _factor_matrix(fitted.userFactors, len(ratings.readers), self.factors)
        title_factors = _factor_matrix(fitted.itemFactors, len(ratings.titles), self.factors)
        frame.unpersist()
        fit_seconds = time.perf_counter() - started
        if matrix is None:
            matrix = ratings.to_matrix()
        model = ALSRecommender(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            seed=self.seed,
        )
        model._fit_common(matrix)
        model._set_state({"user_factors": reader_factors, "item_factors": title_factors}, {})
        self.fit_info_ = {
            "mllib_reg_param": reg,
            "blocks": blocks,
            "entries": int(n_entries),
            "fit_seconds": fit_seconds,
            "total_seconds": time.perf_counter() - started,
        }
        _log.info(
            "Spark ALS: %d readers x %d titles, %d entries, regParam %.5g, %.1f s",
            len(ratings.readers),
            len(ratings.titles),
            n_entries,
            reg,
            fit_seconds,
        )
        return model
