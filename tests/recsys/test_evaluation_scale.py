"""The city-scale study: its grids and matrix choice replace the defaults, every row scores the same
sampled readers, each model's final fit reports its time and peak memory, the Cornac peer row."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

from features.datasets import Dataset
from recsys.evaluation import scale, study

from .test_evaluation import tiny_events

SPEC = study.data_spec("sco")  # a global temporal cut: the city's protocol kind, on tiny data


def tiny_scale_config(**changes) -> study.RunConfig:
    config = scale.scale_config(study.RunConfig("tiny", "temporal", models=("popular", "als"), seeds=(0,), threads=1))
    grids = {
        "popular": [{"count": "readers"}],
        "als": [{"factors": 4, "iterations": 3}, {"factors": 8, "iterations": 3}],
    }
    return dataclasses.replace(config, grids=grids, max_readers=(40, 30), **changes)


@pytest.fixture(scope="module")
def report() -> dict:
    ds = Dataset("tiny", tiny_events(n_readers=120).lazy())
    return study.run_evaluation(ds, SPEC, tiny_scale_config(peer=False))


def test_scale_config_is_the_scale_grid_binary_matrix_and_sampled_readers() -> None:
    config = scale.scale_config(study.RunConfig("city", "temporal"))
    assert config.grids is scale.SCALE_GRIDS and config.choices == ("binary",)
    assert config.max_readers == scale.SCALE_READERS and not config.constrained
    assert "ease" not in scale.SCALE_MODELS and "sansa" in scale.SCALE_MODELS
    assert config.peer == (importlib.util.find_spec("cornac") is not None)


def test_rows_use_the_scale_grid_and_the_binary_matrix_only(report) -> None:
    yuedu = {r["model"]: r for r in report["results"] if r["kind"] == "yuedu"}
    assert set(yuedu) == {"popular", "als"}
    assert yuedu["als"]["params"]["matrix"] == "binary"
    assert yuedu["als"]["params"]["factors"] in (4, 8)
    assert report["choices"] == ["binary"] and report["max_readers"] == [40, 30]


def test_every_row_scores_the_same_sampled_test_readers(report) -> None:
    rows = [r for r in report["results"] if r["kind"] in ("yuedu", "baseline")]
    assert {r["model"] for r in rows} >= {"raw-implicit-als", "raw-implicit-cosine"}
    test = report["splits"][0]["split"]["test"]
    assert test["readers"] > 30  # the fold had more readers than were scored
    # the comparison's paired bootstrap needs per-reader values over one reader set: it ran
    assert report["comparison"]["ratio_to_raw_als_interval"] is not None


def test_final_fits_report_time_and_peak_memory(report) -> None:
    for r in report["results"]:
        if r["kind"] in ("yuedu", "baseline"):
            cost = r["cost"]
            assert cost["fit_seconds"] >= 0 and cost["peak_rss_gb"] > 0.01
            assert cost["peak_rss_gb"] >= cost["fit_extra_gb"]


def test_sample_fold_keeps_reader_order_and_pairs_fold_in_with_targets() -> None:
    from recsys.evaluation.matrices import matrix_choices, prune
    from recsys.evaluation.protocols import make_split

    events = study.prepare_events(Dataset("tiny", tiny_events(n_readers=120).lazy()), SPEC)
    split = make_split(SPEC, "temporal", events, 0)
    data = prune(split.to_matrices(matrix_choices("temporal", True)[0].weighting), 1)
    sampled = scale.sample_fold(data, "validation", 25, seed=3)
    again = scale.sample_fold(data, "validation", 25, seed=3)
    full = data.full.folds["validation"]
    cut = sampled.full.folds["validation"]
    assert cut.foldin.shape[0] == 25 and again.full.folds["validation"].foldin.readers == cut.foldin.readers
    rows = full.foldin.readers.index(cut.foldin.readers.ids)
    assert np.all(np.diff(rows) > 0)  # a subset in the fold's own order
    assert (sampled.foldin["validation"] != data.foldin["validation"][rows]).nnz == 0
    assert (cut.target.matrix != full.target.matrix[rows]).nnz == 0
    assert scale.sample_fold(data, "validation", None, 0) is data
    assert sampled.full.folds["test"] is data.full.folds["test"]


@pytest.mark.skipif(importlib.util.find_spec("cornac") is None, reason="Cornac is in the optional 'scale' extra")
def test_cornac_peer_row_is_tuned_on_validation_and_scored_like_the_others() -> None:
    ds = Dataset("tiny", tiny_events(n_readers=120).lazy())
    small = [{"k": 4, "max_iter": 5, "learning_rate": 0.05, "lambda_reg": 0.01}]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scale, "CORNAC_GRID", small)
        report = study.run_evaluation(ds, SPEC, tiny_scale_config(peer=True))
    peer = [r for r in report["results"] if r["kind"] == "peer"]
    assert [r["model"] for r in peer] == ["cornac-bpr"]
    assert peer[0]["params"] == small[0] and "ndcg@10" in peer[0]["validation"]
    assert 0.0 <= peer[0]["metrics"]["ndcg@10"] <= 1.0 and peer[0]["cost"]["fit_seconds"] >= 0


def test_markdown_reports_the_cost_of_each_final_fit(report) -> None:
    from serving.cli.recsys_cmds import markdown

    text = markdown(dict(report, wall_seconds=1.0))
    section = text.split("## Cost of the final fit")[1].split("## Splits")[0]
    assert "validation 40, test 30" in section
    for model in ("popular", "als", "raw-implicit-als"):
        assert f"| {model} |" in section
