"""Spark MLlib ALS vs implicit ALS on the small city, and the model directory it writes."""

from __future__ import annotations

import numpy as np
import pytest

from features.interactions import load_interactions
from features.matrix import WeightingConfig
from features.splits import temporal_split
from recsys.evaluation.batch import evaluate_fold
from recsys.metrics import metrics_by_name as metrics_dict
from recsys.models import ALSRecommender, load_model, make_model

pytestmark = pytest.mark.slow

PARAMS = {"factors": 32, "regularization": 0.05, "iterations": 12, "seed": 3}


@pytest.fixture(scope="module")
def split_matrices(small_city):
    split = temporal_split(load_interactions(small_city).collect(), quantile=0.8)
    return split.to_matrices(WeightingConfig(half_life_days=365.0))


@pytest.fixture(scope="module")
def spark_model(spark, split_matrices):
    from recsys.spark.als import SparkALS, ratings_from_matrix

    train = split_matrices.train
    return SparkALS(**PARAMS).fit(ratings_from_matrix(spark, train, partitions=4), train)


def test_ndcg_parity_with_implicit(split_matrices, spark_model):
    fold = split_matrices.folds["test"]
    local = make_model("als", threads=2, **PARAMS).fit(split_matrices.train)
    ndcg_local = metrics_dict(evaluate_fold(local, fold, [10]))["ndcg@10"]
    ndcg_spark = metrics_dict(evaluate_fold(spark_model, fold, [10]))["ndcg@10"]
    popular = make_model("popular").fit(split_matrices.train)
    ndcg_popular = metrics_dict(evaluate_fold(popular, fold, [10]))["ndcg@10"]
    # both learn something beyond popularity, and agree within a few percent
    assert ndcg_local > ndcg_popular and ndcg_spark > ndcg_popular
    assert abs(ndcg_spark - ndcg_local) / ndcg_local < 0.05, (ndcg_spark, ndcg_local)


def test_spark_model_saves_as_an_als_directory(spark_model, split_matrices, tmp_path):
    assert spark_model.user_factors_.shape == (split_matrices.train.shape[0], PARAMS["factors"])
    assert np.isfinite(spark_model.item_factors_).all() and np.abs(spark_model.item_factors_).sum() > 0
    spark_model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is ALSRecommender
    assert loaded.readers_ == split_matrices.train.readers and loaded.titles_ == split_matrices.train.titles
    rows = np.arange(50)
    ids, scores = loaded.recommend(rows, 10)
    ids0, scores0 = spark_model.recommend(rows, 10)
    np.testing.assert_array_equal(ids, ids0)
    # seen titles never come back, and fold-in (recalculate) works on the Spark factors
    seen = split_matrices.train.matrix[rows]
    assert not any(seen[i, ids[i]].nnz for i in range(len(rows)))
    again, _ = loaded.recalculate(seen, 10)
    assert (again == ids).mean() > 0.5


def test_reg_param_mapping(split_matrices, spark):
    from recsys.spark.als import SparkALS, ratings_from_matrix

    ratings = ratings_from_matrix(spark, split_matrices.train)
    nnz = split_matrices.train.nnz
    mapped = SparkALS(regularization=0.1).mllib_reg_param(ratings, nnz)
    assert mapped == pytest.approx(0.1 * split_matrices.train.shape[0] / nnz)
    assert SparkALS(regularization=0.1, reg_param=0.3).mllib_reg_param(ratings, nnz) == 0.3
