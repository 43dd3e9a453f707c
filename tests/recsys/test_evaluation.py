"""Evaluation protocols: disjoint readers, leak-free temporal slices, test touched once per model
and seed, baseline rows, mean/std from per-seed values, CLI modes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from features.datasets import Dataset
from features.matrix import WeightingConfig
from recsys.evaluation import baselines, batch, blend, compare, matrices, promotion, protocols, study, tuning
from recsys.evaluation.results import SeedResult
from recsys.metrics import ndcg_at_k
from recsys.models import make_model
from recsys.models.ease import EASERecommender


def tiny_events(n_readers: int = 90, n_titles: int = 60, seed: int = 0) -> pl.DataFrame:
    """Readers of 3 taste clusters borrow mostly their cluster's titles over one year."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 3, n_readers)
    per_reader = rng.integers(6, 16, n_readers)
    reader = np.repeat(np.arange(n_readers), per_reader)
    own = rng.random(reader.size) < 0.85
    title = np.where(
        own, cluster[reader] + 3 * rng.integers(0, n_titles // 3, reader.size), rng.integers(0, n_titles, reader.size)
    )
    start = datetime(2024, 1, 1)
    frame = pl.DataFrame(
        {
            "reader_id": [f"R{r:03d}" for r in reader],
            "title_id": [f"T{t:03d}" for t in title],
            "occurred_at": [start + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 365, reader.size)],
            "value": np.full(reader.size, 5.0),
        }
    )
    return frame.unique(["reader_id", "title_id"], keep="first", maintain_order=True)


@pytest.fixture(scope="module")
def tiny_report() -> tuple[dict, int]:
    calls = {"test": 0}
    original = batch.recommend_fold

    def counting(model, data, fold, n=batch.LIST_LENGTH):
        calls[fold] = calls.get(fold, 0) + 1
        return original(model, data, fold, n)

    # every module of the stack that scores a fold binds the one recommend_fold: count all of them
    scoring = [m for m in (batch, tuning, blend, study, promotion) if getattr(m, "recommend_fold", None) is original]
    for m in scoring:
        m.recommend_fold = counting
    try:
        ds = Dataset("tiny", tiny_events().lazy())
        config = study.RunConfig(
            "movielens", "strong", models=("popular", "itemknn", "ease", "hybrid"), seeds=(0, 1), quick=True
        )
        report = study.run_evaluation(ds, "movielens", config)
    finally:
        for m in scoring:
            m.recommend_fold = original
    return report, calls["test"]


def test_test_fold_is_touched_once_per_model_and_seed(tiny_report) -> None:
    report, test_calls = tiny_report
    yuedu = [r for r in report["results"] if r["kind"] == "yuedu"]
    assert test_calls == len(yuedu) == 4 * 2
    per_pair = pl.DataFrame(yuedu).group_by("seed", "model").len()
    assert per_pair["len"].to_list() == [1] * per_pair.height


def test_baseline_rows_present_for_every_seed(tiny_report) -> None:
    report, _ = tiny_report
    base = pl.DataFrame([r for r in report["results"] if r["kind"] == "baseline"])
    expected = {"raw-implicit-als", "raw-implicit-bpr", "raw-implicit-cosine"}
    for seed in (0, 1):
        assert set(base.filter(pl.col("seed") == seed)["model"]) == expected
    assert report["comparison"]["ratio_to_raw_als"] is not None


def test_summary_is_mean_and_std_of_the_per_seed_values(tiny_report) -> None:
    report, _ = tiny_report
    for row in report["summary"]:
        values = [r["metrics"]["ndcg@10"] for r in report["results"] if r["model"] == row["model"]]
        assert row["seeds"] == len(values) == 2
        assert row["ndcg@10_mean"] == pytest.approx(float(np.mean(values)))
        assert row["ndcg@10_std"] == pytest.approx(float(np.std(values, ddof=1)))
    for r in report["results"]:
        for m in batch.METRICS:
            assert 0.0 <= r["metrics"][m] <= 1.0


def test_clustered_data_beats_popularity(tiny_report) -> None:
    report, _ = tiny_report
    mean = {row["model"]: row["ndcg@10_mean"] for row in report["summary"]}
    assert mean["ease"] > mean["popular"]
    assert mean["itemknn"] > mean["popular"]


def test_strong_split_readers_are_disjoint_and_seeded() -> None:
    events = tiny_events()
    a, b = (
        protocols.make_split("movielens", "strong", events, 0),
        protocols.make_split("movielens", "strong", events, 1),
    )
    train = set(a.train["reader_id"])
    val, test = set(a.folds["validation"].readers), set(a.folds["test"].readers)
    assert val and test
    assert not (train & val) and not (train & test) and not (val & test)
    assert a.folds["test"].readers != b.folds["test"].readers  # another seed, another draw


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), frac=st.sampled_from([0.1, 0.2, 0.3]))
def test_per_reader_temporal_split_holds_out_each_readers_latest(seed: int, frac: float) -> None:
    events = tiny_events(30, 30, seed)
    split = protocols.per_reader_temporal_split(events, frac)
    test = split.folds["test"]
    n = events.group_by("reader_id").len()
    got = test.target.group_by("reader_id").len().join(n, on="reader_id", suffix="_all")
    assert (got["len"] == (got["len_all"] * frac).ceil().cast(pl.UInt32)).all()
    # every target event is at or after every fold-in event of the same reader, and not in train
    last_in = test.foldin.group_by("reader_id").agg(pl.col("occurred_at").max().alias("last"))
    first_out = test.target.group_by("reader_id").agg(pl.col("occurred_at").min().alias("first"))
    assert (last_in.join(first_out, on="reader_id").select(pl.col("last") <= pl.col("first"))).to_series().all()
    key = ["reader_id", "title_id", "occurred_at"]
    assert test.target.join(split.train, on=key, how="semi").height == 0
    assert split.folds["validation"].target.join(split.train, on=key, how="semi").height == 0


def test_sco_protocol_cuts_at_the_80th_percentile() -> None:
    events = tiny_events()
    split = protocols.make_split("sco", "temporal", events, 0)
    cut = split.params["cutoff"]
    assert split.train["occurred_at"].max() < split.params["val_cutoff"] <= cut
    assert (split.folds["test"].target["occurred_at"] >= cut).all()
    share = (events["occurred_at"] < cut).mean()
    assert 0.75 < share < 0.85


def test_prune_keeps_supported_titles_and_maps_back() -> None:
    split = protocols.make_split("movielens", "strong", tiny_events(), 0)
    data = matrices.prune(split.to_matrices(WeightingConfig(binarize=True)), 5)
    readers = np.bincount(data.full.train.matrix.indices, minlength=data.full.train.shape[1])
    assert set(data.kept) == set(np.flatnonzero(readers >= 5))
    model = make_model("popular").fit(data.train)
    recs = batch.recommend_fold(model, data, "test", 10)
    assert np.isin(recs[recs >= 0], data.kept).all()


def test_unknown_protocol_and_model_are_errors() -> None:
    ds = Dataset("tiny", tiny_events().lazy())
    with pytest.raises(protocols.EvaluationError, match="protocol"):
        study.run_evaluation(ds, "sco", study.RunConfig("sco", "weekly"))
    with pytest.raises(protocols.EvaluationError, match="unknown model"):
        study.run_evaluation(ds, "sco", study.RunConfig("sco", "temporal", models=("deepfm",)))


def test_cli_writes_results_and_table(tiny_report, tmp_path: Path, monkeypatch) -> None:
    from serving.cli import app, recsys_cmds

    report, _ = tiny_report
    monkeypatch.setattr(study, "run_evaluation", lambda *a, **k: dict(report))
    monkeypatch.setattr("features.datasets.load_dataset", lambda *a, **k: Dataset("tiny", tiny_events().lazy()))
    result = CliRunner().invoke(
        app, ["evaluate", "--dataset", "movielens", "--quick", "--seeds", "2", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "raw-implicit-als" in result.output and "±" in result.output
    saved = json.loads((tmp_path / "movielens.json").read_text())
    assert saved["command"].startswith("yuedu ") and saved["machine"]["cpu_count"]
    md = (tmp_path / "movielens.md").read_text()
    assert "| raw-implicit-bpr | baseline |" in md and "ratio to raw implicit ALS" in md
    assert recsys_cmds.markdown(saved).count("| hybrid |") >= 1


def test_cli_target_mode_delegates_to_the_pipeline(monkeypatch) -> None:
    import training.pipeline
    from serving.cli import app

    seen = {}

    def fake(target: str, on: str = "test") -> dict:
        seen.update(target=target, on=on)
        return {"ndcg@10": 0.5}

    monkeypatch.setattr(training.pipeline, "evaluate_target", fake, raising=False)
    result = CliRunner().invoke(app, ["evaluate", "runs:/abc", "--on", "validation"])
    assert result.exit_code == 0, result.output
    assert seen == {"target": "runs:/abc", "on": "validation"} and "0.5" in result.output


def test_cli_without_dataset_or_target_exits_2() -> None:
    from serving.cli import app

    result = CliRunner().invoke(app, ["evaluate"])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("kind", "protocol"), [("movielens", "strong"), ("movielens", "temporal"), ("sco", "temporal")]
)
def test_refit_split_adds_validation_and_never_test_targets(kind: str, protocol: str) -> None:
    split = protocols.make_split(kind, protocol, tiny_events(), 0)
    final = protocols.refit_split(split)
    key = ["reader_id", "title_id", "occurred_at"]
    assert list(final.folds) == ["test"] and final.folds["test"] is split.folds["test"]
    assert final.folds["test"].target.join(final.train, on=key, how="semi").height == 0
    val = split.folds["validation"]
    for part in (split.train, val.foldin, val.target):
        assert part.join(final.train, on=key, how="anti").height == 0
    assert final.train.height == final.train.unique().height
    assert final.train.height > split.train.height


def test_ease_lambda_path_tuning_matches_fitting_each_lambda() -> None:
    split = protocols.make_split("movielens", "strong", tiny_events(), 0)
    choice = matrices.matrix_choices("strong", quick=True)[0]
    prepared = {choice.name: matrices.prune(split.to_matrices(choice.weighting), choice.min_title_readers)}
    grid = [{"lambda_": lam} for lam in (1.0, 30.0, 900.0)]
    best = tuning.tune("ease", grid, prepared, [choice], 0, 1, None)[choice.name]
    data = prepared[choice.name]
    target = data.full.folds["validation"].target.matrix
    by_fit = {
        g["lambda_"]: batch.metric_row(
            batch.recommend_fold(make_model("ease", solver="cholesky", **g).fit(data.train), data, "validation"),
            target,
        )["ndcg@10"]
        for g in grid
    }
    assert best.validation["ndcg@10"] == pytest.approx(max(by_fit.values()), abs=1e-6)
    assert by_fit[best.params["lambda_"]] == pytest.approx(max(by_fit.values()), abs=1e-6)


def test_all_ratings_input_adds_low_ratings_as_input_never_as_targets() -> None:
    events = tiny_events()
    rng = np.random.default_rng(5)
    events = events.with_columns(pl.Series("value", rng.choice([2.0, 5.0], events.height, p=[0.3, 0.7])))
    ds = Dataset("tiny", events.lazy())
    pos = protocols.prepare_events(ds, "movielens")
    extra = protocols.input_only_events(ds, "movielens", pos["reader_id"].unique())
    assert extra.height and (extra["value"] < protocols.MOVIELENS_POSITIVE).all()
    base = protocols.make_split("movielens", "strong", pos, 0)
    split = protocols.with_input_events(base, extra)
    key = ["reader_id", "title_id", "occurred_at"]
    for name, fold in split.folds.items():
        assert fold.target.equals(base.folds[name].target)
        assert (fold.target["value"] >= protocols.MOVIELENS_POSITIVE).all()
        added = fold.foldin.join(base.folds[name].foldin, on=key, how="anti")
        assert added.height and (added["value"] < protocols.MOVIELENS_POSITIVE).all()
        assert set(added["reader_id"]) <= set(fold.readers)
    assert set(split.train["reader_id"]) == set(base.train["reader_id"])
    assert split.train.height > base.train.height
    with pytest.raises(protocols.EvaluationError, match="per-reader temporal"):
        protocols.with_input_events(protocols.make_split("sco", "temporal", pos, 0), extra)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), low_share=st.floats(0.1, 0.6))
def test_temporal_input_events_never_come_from_a_readers_future(seed: int, low_share: float) -> None:
    events = tiny_events(n_readers=40, n_titles=30, seed=seed % 7)
    rng = np.random.default_rng(seed)
    low = rng.random(events.height) < low_share
    events = events.with_columns(pl.Series("value", np.where(low, 2.0, 5.0)))
    ds = Dataset("tiny", events.lazy())
    pos = protocols.prepare_events(ds, "movielens")
    extra = protocols.input_only_events(ds, "movielens", pos["reader_id"].unique())
    base = protocols.make_split("movielens", "temporal", pos, 0)
    split = protocols.with_input_events(base, extra)
    key = ["reader_id", "title_id", "occurred_at"]

    def starts(fold: str) -> dict[str, object]:
        t = base.folds[fold].target.group_by("reader_id").agg(pl.col("occurred_at").min())
        return dict(zip(t["reader_id"], t["occurred_at"], strict=True))

    val_from, test_from = starts("validation"), starts("test")
    # what the models see before the validation step: nothing at or after a reader's first validation
    # (or, without one, test) target
    for frame in (split.train, split.folds["validation"].foldin):
        added = frame.join(pl.concat([base.train, base.folds["validation"].foldin]), on=key, how="anti")
        assert (added["value"] < protocols.MOVIELENS_POSITIVE).all()
        for r, t in zip(added["reader_id"], added["occurred_at"], strict=True):
            assert t < val_from.get(r, test_from.get(r, t + timedelta(1)))
    # the test fold-in (and so the refit training rows): nothing at or after the first test target
    test_added = split.folds["test"].foldin.join(base.folds["test"].foldin, on=key, how="anti")
    for r, t in zip(test_added["reader_id"], test_added["occurred_at"], strict=True):
        assert t < test_from.get(r, t + timedelta(1))
    refit = protocols.refit_split(split)
    late = refit.train.join(extra, on=key, how="semi").join(
        pl.DataFrame({"reader_id": list(test_from), "_from": list(test_from.values())}), on="reader_id"
    )
    assert (late["occurred_at"] < late["_from"]).all()
    # every early low rating of an evaluated reader is used, and targets never change
    expected = extra.filter(
        pl.struct("reader_id", "occurred_at").map_elements(
            lambda x: x["occurred_at"] < test_from.get(x["reader_id"], x["occurred_at"] + timedelta(1)),
            return_dtype=pl.Boolean,
        )
        & pl.col("reader_id").is_in(list(test_from))
    )
    assert test_added.height == expected.height
    for name, fold in split.folds.items():
        assert fold.target.equals(base.folds[name].target)


def _with_low_ratings(seed: int = 5) -> Dataset:
    """tiny_events with 30 % of ratings low, plus low ratings of titles nobody rated high (so an
    all-inputs run knows more titles than the positives alone)."""
    events = tiny_events()
    rng = np.random.default_rng(seed)
    events = events.with_columns(pl.Series("value", rng.choice([2.0, 5.0], events.height, p=[0.3, 0.7])))
    disliked = events.head(40).with_columns(
        pl.format("L{}", pl.int_range(pl.len()) % 7).alias("title_id"), pl.lit(1.0).alias("value")
    )
    return Dataset("tiny", pl.concat([events, disliked]).unique(["reader_id", "title_id"]).lazy())


def test_low_input_choices_down_weight_input_only_events_and_still_mark_them_seen() -> None:
    ds = _with_low_ratings()
    pos = protocols.prepare_events(ds, "movielens")
    extra = protocols.input_only_events(ds, "movielens", pos["reader_id"].unique())
    assert (extra["channel"] == protocols.INPUT_ONLY_CHANNEL).all()
    split = protocols.with_input_events(protocols.make_split("movielens", "strong", pos, 0), extra)
    choices = {c.name: c for c in matrices.matrix_choices("strong", quick=False, inputs="all")}
    assert {f"low-{w:g}" for w in matrices.INPUT_ONLY_WEIGHTS} <= set(choices)
    assert not any(n.startswith("low-") for n in (c.name for c in matrices.matrix_choices("strong", quick=False)))
    for w in matrices.INPUT_ONLY_WEIGHTS:
        mats = split.to_matrices(choices[f"low-{w:g}"].weighting)
        for frame, matrix in [(split.train, mats.train)] + [
            (split.folds[f].foldin, mats.folds[f].foldin) for f in ("validation", "test")
        ]:
            rows = matrix.readers.index(frame["reader_id"])
            cols = matrix.titles.index(frame["title_id"])
            known = cols >= 0
            got = np.asarray(matrix.matrix[rows[known], cols[known]]).ravel()
            expected = np.where(frame["value"].to_numpy()[known] >= protocols.MOVIELENS_POSITIVE, 1.0, w)
            # every input event is in the matrix (a seen title is never recommended) at its weight
            np.testing.assert_allclose(got, expected)


def test_all_inputs_run_gives_the_baselines_the_same_input() -> None:
    ds = _with_low_ratings()
    config = study.RunConfig("movielens", "strong", models=("ease",), seeds=(0,), quick=True, inputs="all")
    report = study.run_evaluation(ds, "movielens", config)
    rows = {r["model"]: r for r in report["results"] if r["kind"] == "baseline"}
    assert set(rows) == {"raw-implicit-als+inputs", "raw-implicit-bpr+inputs", "raw-implicit-cosine+inputs"}
    assert all(r["params"]["inputs"] == "all" for r in rows.values())
    comp = report["comparison"]
    assert comp["raw_als_row"] == "raw-implicit-als+inputs"
    assert comp["ratio_to_raw_als"] == pytest.approx(
        comp["chosen_ndcg@10"] / rows["raw-implicit-als+inputs"]["metrics"]["ndcg@10"]
    )


def _result(seed: int, model: str, kind: str, val: float | None, per_reader: list[float]) -> SeedResult:
    arr = np.array(per_reader, dtype=float)
    return SeedResult(
        seed,
        model,
        kind,
        {"ndcg@10": float(np.nanmean(arr))},
        {} if val is None else {"ndcg@10": val},
        per_reader_ndcg=arr,
    )


def test_compare_picks_by_validation_never_by_test() -> None:
    # "lucky" wins on test but loses validation on both seeds: the pick stays "steady"
    results = []
    for seed in (0, 1):
        results += [
            _result(seed, "steady", "yuedu", 0.30, [0.4, 0.2, 0.3, 0.5]),
            _result(seed, "lucky", "yuedu", 0.20, [0.9, 0.8, 0.7, 0.9]),
            _result(seed, "ease", "yuedu", 0.25, [0.2, 0.2, 0.2, 0.2]),
            _result(seed, "raw-implicit-als", "baseline", None, [0.2, 0.1, 0.3, 0.2]),
        ]
    comp = compare.compare(results)
    assert comp["chosen"] == {"0": "steady", "1": "steady"}
    assert comp["chosen_ndcg@10"] == pytest.approx(0.35)
    assert comp["best_by_test"]["model"] == "lucky"
    assert comp["ratio_to_raw_als"] == pytest.approx(0.35 / 0.2)
    assert comp["ratio_to_ease"] == pytest.approx(0.35 / 0.2)
    lo, hi = comp["ratio_to_raw_als_interval"]
    assert lo <= 0.35 / 0.2 <= hi


def test_compare_picks_by_the_pooled_readers_when_every_row_has_them() -> None:
    def rows(pooled_steady: float | None) -> list[SeedResult]:
        out = [
            _result(0, "steady", "yuedu", 0.30, [0.4, 0.2, 0.3, 0.5]),
            _result(0, "ease", "yuedu", 0.25, [0.2, 0.2, 0.2, 0.2]),
            _result(0, "raw-implicit-als", "baseline", None, [0.2, 0.1, 0.3, 0.2]),
        ]
        out[1].validation[tuning.POOLED_SELECTION] = 0.28  # ease: worse on validation, better on the pool
        if pooled_steady is not None:
            out[0].validation[tuning.POOLED_SELECTION] = pooled_steady
        return out

    comp = compare.compare(rows(0.26))
    assert comp["chosen"] == {"0": "ease"} and comp["selected_on"] == "validation + internal splits"
    assert compare.compare(rows(0.29))["chosen"] == {"0": "steady"}
    # a row without the pooled figure: every model is compared on validation alone
    fallback = compare.compare(rows(None))
    assert fallback["chosen"] == {"0": "steady"} and fallback["selected_on"] == "validation"


@settings(max_examples=25, deadline=None)
@given(
    a=st.lists(st.floats(0.05, 1.0), min_size=3, max_size=30),
    shift=st.floats(0.01, 0.5),
    seed=st.integers(0, 1000),
)
def test_bootstrap_interval_is_paired_and_skips_empty_targets(a: list[float], shift: float, seed: int) -> None:
    y = np.array(a)
    x = y + shift  # every reader better by `shift`: every paired resample favours x
    rng = np.random.default_rng(seed)
    lo, hi = compare._bootstrap_ratio([x, x], [y, y], rng)
    assert 1.0 < lo <= hi <= x.max() / y.min() + 1e-9
    assert compare._bootstrap_ratio([x], [x], rng) == pytest.approx([1.0, 1.0])
    # a reader with an empty target (NaN) is left out of both rows
    lo2, hi2 = compare._bootstrap_ratio([np.append(x, np.nan)], [np.append(y, 1e6)], rng)
    assert 1.0 < lo2 <= hi2


def test_city_run_adds_filtered_and_promoted_rows_of_the_chosen_model(small_city) -> None:
    from features.datasets import load_dataset

    ds = load_dataset("city", path=small_city)
    config = study.RunConfig("city", "temporal", models=("ease", "popular"), seeds=(0,), quick=True, baselines=False)
    report = study.run_evaluation(ds, "city", config)
    rows = {r["model"]: r for r in report["results"]}
    yuedu = [r for r in rows.values() if r["kind"] == "yuedu"]
    chosen = max(yuedu, key=lambda r: r["validation"]["ndcg@10"])["model"]
    for setting in ("filters", "filters+promotion"):
        row = rows[f"{chosen}+{setting}"]
        assert row["kind"] == "constrained" and row["params"] == {"model": chosen, "setting": setting}
        assert all(0.0 <= v <= 1.0 for v in row["metrics"].values())
    # Filters remove titles readers cannot get now, so the lists differ from the model alone.
    assert rows[f"{chosen}+filters"]["metrics"] != rows[chosen]["metrics"]
    assert set(report["comparison"]["chosen"].values()) <= {r["model"] for r in yuedu}


def test_bootstrap_with_the_same_readers_in_every_seed_is_wider_than_pretending_they_differ() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(40)
    x = y * rng.uniform(0.6, 1.8, 40)
    shared = compare._bootstrap_ratio([x] * 5, [y] * 5, np.random.default_rng(1), same_readers=True)
    independent = compare._bootstrap_ratio([x] * 5, [y] * 5, np.random.default_rng(1), same_readers=False)
    one_seed = compare._bootstrap_ratio([x], [y], np.random.default_rng(1))
    # five copies of one seed carry no more information than one seed: the shared draw says so
    assert shared[1] - shared[0] == pytest.approx(one_seed[1] - one_seed[0], rel=0.15)
    assert independent[1] - independent[0] < 0.7 * (shared[1] - shared[0])


@pytest.mark.parametrize("protocol", ["strong", "temporal"])
def test_raw_bpr_uses_existing_training_rows_only_when_they_hold_the_fold_in(protocol: str) -> None:
    ds = Dataset("tiny", tiny_events().lazy())
    events = protocols.prepare_events(ds, "movielens")
    split = protocols.refit_split(protocols.make_split("movielens", protocol, events, 0))
    full = split.to_matrices(WeightingConfig(binarize=True))
    train = full.train.matrix.copy()
    train.data[:] = 1.0
    foldin = full.folds["test"].foldin.matrix.copy()
    foldin.data[:] = 1.0
    rows = baselines._training_rows_holding(full, foldin, train)
    if protocol == "strong":
        assert rows is None  # held-out readers are not training readers
    else:
        assert rows is not None
        assert list(full.train.readers.lookup(rows)) == list(full.folds["test"].foldin.readers.ids)
        # drop one fold-in entry from its reader's training row: the rows no longer hold the fold-in
        r, c = foldin.nonzero()
        patched = train.tolil()
        patched[rows[r[0]], c[0]] = 0
        patched = sp.csr_matrix(patched)
        patched.eliminate_zeros()
        assert baselines._training_rows_holding(full, foldin, patched) is None
    recs = baselines.raw_implicit_baselines(full, threads=1, seed=0)["raw-implicit-bpr"][:, :10]
    hist = foldin.toarray() > 0
    assert recs.shape[0] == foldin.shape[0] and (recs >= 0).all()
    for i, row in enumerate(recs):
        assert not hist[i, row].any()  # the top 10 never repeats the reader's own fold-in


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_internal_splits_hold_out_training_readers_only_and_keep_inputs_as_input(seed: int) -> None:
    events = tiny_events(n_readers=60, n_titles=30, seed=seed % 5)
    rng = np.random.default_rng(seed)
    events = events.with_columns(pl.Series("value", rng.choice([2.0, 5.0], events.height, p=[0.3, 0.7])))
    ds = Dataset("tiny", events.lazy())
    pos = protocols.prepare_events(ds, "movielens")
    split = protocols.with_input_events(
        protocols.make_split("movielens", "strong", pos, seed),
        protocols.input_only_events(ds, "movielens", pos["reader_id"].unique()),
    )
    inner = protocols.internal_splits(split, seed)
    assert len(inner) == protocols.HYBRID_INTERNAL_SPLITS
    train_readers = set(split.train["reader_id"])
    held_out = {r for fold in split.folds.values() for r in fold.readers}
    key = ["reader_id", "title_id", "occurred_at"]
    for part in inner:
        everything = pl.concat(
            [part.train] + [f.foldin for f in part.folds.values()] + [f.target for f in part.folds.values()]
        )
        # built from the training readers' events alone: validation and test readers take no part
        assert set(everything["reader_id"]) <= train_readers and not set(everything["reader_id"]) & held_out
        for fold in part.folds.values():
            assert fold.readers and not set(fold.readers) & set(part.train["reader_id"])
            assert (fold.target["channel"] != protocols.INPUT_ONLY_CHANNEL).all()  # inputs are never targets
            assert fold.target.join(fold.foldin, on=key, how="semi").height == 0
        # every input-only event of a reader that takes part stays input (train or fold-in)
        inputs = split.train.filter(pl.col("channel") == protocols.INPUT_ONLY_CHANNEL)
        seen = pl.concat([part.train] + [f.foldin for f in part.folds.values()])
        kept = inputs.filter(pl.col("reader_id").is_in(everything["reader_id"].unique().implode()))
        assert kept.join(seen, on=key, how="anti").height == 0
    assert inner[0].folds["validation"].readers != inner[1].folds["validation"].readers
    assert protocols.internal_splits(protocols.make_split("movielens", "temporal", pos, seed), seed) == []


def test_hybrid_blend_is_fitted_on_inner_training_readers_besides_validation(monkeypatch) -> None:
    seen_sets: list[int] = []
    original = blend.search_weights

    def spy(sets, *args, **kwargs):
        seen_sets.append(sum(s.readers for s in sets))
        return original(sets, *args, **kwargs)

    monkeypatch.setattr(blend, "search_weights", spy)
    ds = Dataset("tiny", tiny_events().lazy())
    config = study.RunConfig("movielens", "strong", models=("ease", "popular", "hybrid"), seeds=(0,), quick=True)
    report = study.run_evaluation(ds, "movielens", config)
    validation_readers = report["splits"][0]["split"]["validation"]["readers"]
    # one search per matrix choice, on the validation readers plus two inner splits' held-out readers
    assert seen_sets and all(n > 2 * validation_readers for n in seen_sets)
    assert any(r["model"] == "hybrid" for r in report["results"])
    # every model is then compared on the same pooled readers
    yuedu = [r for r in report["results"] if r["kind"] == "yuedu"]
    assert all(0.0 <= r["validation"][tuning.POOLED_SELECTION] <= 1.0 for r in yuedu)
    assert report["comparison"]["selected_on"] == "validation + internal splits"


def test_hybrid_ease_lambda_is_rechosen_on_the_pooled_readers() -> None:
    ds = Dataset("tiny", tiny_events(n_readers=120, n_titles=60).lazy())
    pos = protocols.prepare_events(ds, "movielens")
    split = protocols.make_split("movielens", "strong", pos, 1)
    binary = matrices.matrix_choices("strong", quick=True)[0]
    data = matrices.prune(split.to_matrices(binary.weighting), binary.min_title_readers)
    inner = [
        matrices.prune(p.to_matrices(binary.weighting), binary.min_title_readers)
        for p in protocols.internal_splits(split, 1)
    ]
    rows = np.arange(data.foldin["validation"].shape[0])
    start = tuning.Candidate(None, binary, {"lambda_": 7000.0}, {})  # type: ignore[arg-type]
    chosen = blend._pooled_ease(start, data, rows, inner, 1)

    def pooled(lam: float) -> float:
        """Brute force: fit EASE per training matrix and pool NDCG@10 by readers with a target."""
        total = readers = 0.0
        pools = [(data.train, data.foldin["validation"], data.full.folds["validation"].target.matrix[:, data.kept])]
        pools += [(m.train, m.foldin[f], m.full.folds[f].target.matrix[:, m.kept]) for m in inner for f in m.foldin]
        for train, hist, target in pools:
            model = EASERecommender(lambda_=lam, solver="cholesky").fit(train)
            ids, _ = model.recommend(None, 10, history=hist)
            size = int((np.diff(target.indptr) > 0).sum())
            total += ndcg_at_k(ids, target, 10) * size
            readers += size
        return total / readers

    values = {float(p["lambda_"]): pooled(float(p["lambda_"])) for p in tuning.GRIDS["ease"]}
    assert np.isclose(values[chosen.params["lambda_"]], max(values.values()), atol=1e-9)
    if chosen.params["lambda_"] != 7000.0:
        assert chosen.model.lambda_ == chosen.params["lambda_"]
        fresh = EASERecommender(lambda_=chosen.params["lambda_"], solver="cholesky").fit(data.train)
        np.testing.assert_allclose(chosen.model.weights_, fresh.weights_, atol=1e-4)
