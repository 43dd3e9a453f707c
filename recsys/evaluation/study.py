"""An evaluation study: one data set x one protocol x several seeds, assembled from the stack.

Per seed (:func:`evaluate_seed`): the protocol's split (:mod:`~recsys.evaluation.protocols`), every
model tuned on validation (:mod:`~recsys.evaluation.tuning`), the hybrid blended
(:mod:`~recsys.evaluation.blend`), the chosen configurations refitted and touched once on test, the
reference rows (:mod:`~recsys.evaluation.baselines`, :mod:`~recsys.evaluation.promotion`). Over
seeds (:func:`run_evaluation`): the summary and the comparison (:mod:`~recsys.evaluation.compare`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from features.datasets import Dataset
from features.splits import Split
from recsys.base import Recommender
from recsys.evaluation.baselines import oracle_recommendations, raw_implicit_baselines
from recsys.evaluation.batch import recommend_fold
from recsys.evaluation.blend import tune_hybrid
from recsys.evaluation.compare import compare, summarise
from recsys.evaluation.matrices import MatrixChoice, PrunedMatrices, matrix_choices, prune
from recsys.evaluation.promotion import constrained_rows
from recsys.evaluation.protocols import (
    PROTOCOL_NAMES,
    DataSpec,
    EvaluationError,
    data_spec,
    input_only_events,
    internal_splits,
    make_split,
    prepare_events,
    refit_split,
    with_input_events,
)
from recsys.evaluation.results import SeedResult, scored
from recsys.evaluation.scale import PeakMemory, cornac_peer_rows, sample_fold
from recsys.evaluation.tuning import (
    GRIDS,
    MODEL_CHOICES,
    POOLED_SELECTION,
    SELECTION_METRIC,
    Candidate,
    fit_model,
    pooled_selection,
    tune,
    winner,
)
from recsys.models.hybrid import HybridRecommender

_log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """What to evaluate. ``threads``: BLAS / implicit threads (0 = all cores)."""

    dataset: str
    protocol: str
    models: tuple[str, ...] = ("popular", "itemknn", "als", "bpr", "ease", "rp3beta", "hybrid")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    quick: bool = False
    baselines: bool = True
    threads: int = 0
    #: Refit the chosen configurations (and the baselines) on train + validation before the test step.
    refit: bool = True
    #: ``"targets"``: models see only the protocol's events (MovieLens: positives). ``"all"``
    #: (MovieLens): every rating is also INPUT - low-rated (< 4) ratings join the training rows and
    #: the held-out readers' fold-in (binary, like the positives) but are never targets; the
    #: baselines get the same input.
    inputs: str = "targets"
    #: Parameter grids replacing ``tuning.GRIDS`` (city scale: ``scale.SCALE_GRIDS``); None = GRIDS.
    grids: dict[str, list[dict[str, Any]]] | None = None
    #: Matrix choices kept (by name, e.g. ``("binary",)``); None = every choice of the protocol.
    choices: tuple[str, ...] | None = None
    #: Score at most this many readers per fold, a seeded random sample (validation, test); None = all.
    max_readers: tuple[int | None, int | None] = (None, None)
    #: Filters + promotion rows of a synthetic city; the second peer (Cornac, if installed).
    constrained: bool = True
    peer: bool = False


@dataclass
class SeedData:
    """One seed's split and its matrices, per matrix choice: ``prepared`` for tuning, ``testing``
    for the test step (the refitted split, or ``prepared`` without refit), ``inner`` the pruned
    internal splits of the training readers (empty lists off strong generalisation)."""

    seed: int
    split: Split
    choices: list[MatrixChoice]
    prepared: dict[str, PrunedMatrices]
    testing: dict[str, PrunedMatrices]
    inner: dict[str, list[PrunedMatrices]]
    #: Whether ``inner`` holds any internal split.
    has_inner: bool
    test_target: sp.csr_matrix
    final: Split | None = None
    #: The models scored on test, by row name: (model, the matrices it was fitted on).
    finals: dict[str, tuple[Recommender, PrunedMatrices]] = field(default_factory=dict)


def seed_data(kind: str | DataSpec, dataset: Dataset, events: pl.DataFrame, config: RunConfig, seed: int) -> SeedData:
    """The split of one seed (with input-only events when ``config.inputs == "all"``) and its pruned
    matrices per matrix choice; :class:`EvaluationError` if a held-out fold has no readers."""
    split = make_split(kind, config.protocol, events, seed)
    if config.inputs == "all":
        split = with_input_events(split, input_only_events(dataset, kind, events["reader_id"].unique()))
    elif config.inputs != "targets":
        raise EvaluationError(f"inputs must be 'targets' or 'all', got {config.inputs!r}")
    for fold in ("validation", "test"):
        if not split.folds[fold].readers:
            raise EvaluationError(f"{dataset.name} {config.protocol} seed {seed}: the {fold} fold has no readers")
    choices = matrix_choices(config.protocol, config.quick, config.inputs)
    if config.choices is not None:
        choices = [c for c in choices if c.name in config.choices]
    val_cap, test_cap = config.max_readers
    prepared = {
        c.name: sample_fold(prune(split.to_matrices(c.weighting), c.min_title_readers), "validation", val_cap, seed)
        for c in choices
    }
    final = None
    if config.refit:
        final = refit_split(split)
        testing = {
            c.name: sample_fold(prune(final.to_matrices(c.weighting), c.min_title_readers), "test", test_cap, seed)
            for c in choices
        }
    else:
        testing = {c: sample_fold(m, "test", test_cap, seed) for c, m in prepared.items()}
    test_target = next(iter(testing.values())).full.folds["test"].target.matrix
    inner = internal_splits(split, seed)
    inner_data = {c.name: [prune(p.to_matrices(c.weighting), c.min_title_readers) for p in inner] for c in choices}
    return SeedData(seed, split, choices, prepared, testing, inner_data, bool(inner), test_target, final)


def tuned_rows(
    data: SeedData, config: RunConfig, titles: pl.DataFrame | None, note: Callable[[str], None]
) -> tuple[list[SeedResult], dict[str, dict[str, Candidate]]]:
    """One ``yuedu`` row per model of ``config.models`` (the hybrid aside): tuned on validation,
    refitted if asked, scored once on test. Returns the rows and the tuned candidates."""
    results: list[SeedResult] = []
    tuned: dict[str, dict[str, Candidate]] = {}
    seed = data.seed
    for name in config.models:
        if name == "hybrid":
            continue
        grids = config.grids or GRIDS
        if name not in grids:
            raise EvaluationError(f"no tuning grid for model {name!r}; known: {sorted(grids)} and hybrid")
        note(f"seed {seed}: tuning {name}")
        t0 = time.perf_counter()
        grid = grids[name][:1] if config.quick else grids[name]
        allowed = MODEL_CHOICES.get(name)
        model_choices = [c for c in data.choices if allowed is None or c.name in allowed]
        tuned[name] = tune(name, grid, data.prepared, model_choices, seed, config.threads, titles)
        win = winner(tuned[name])
        testing = data.testing[win.choice.name]
        note(f"seed {seed}: fitting {name} for test")
        with PeakMemory() as mem:
            model = fit_model(name, win.params, seed, config.threads, testing, titles) if config.refit else win.model
        recs = recommend_fold(model, testing, "test")
        data.finals[name] = (model, testing)
        params = {"matrix": win.choice.name, "min_title_readers": win.choice.min_title_readers, **win.params}
        val = dict(win.validation)
        if data.has_inner:
            val[POOLED_SELECTION] = pooled_selection(name, win, data.prepared, data.inner, seed, config.threads, titles)
        elapsed = time.perf_counter() - t0
        results.append(scored(seed, name, "yuedu", recs, data.test_target, val, params, elapsed))
        # the final fit's cost; without refit the test model is the validation fit, measured in tune
        results[-1].cost = mem.cost() if config.refit else dict(win.cost)
        _log.info("%s: test %s, cost %s, params %s", name, results[-1].metrics, results[-1].cost, params)
    return results, tuned


def hybrid_row(
    data: SeedData, tuned: dict[str, dict[str, Candidate]], config: RunConfig, titles: pl.DataFrame | None
) -> SeedResult | None:
    """The ``hybrid`` row: the blend of the tuned components (components missing from ``tuned`` are
    tuned first), refitted if asked and scored once on test; None if no matrix choice has two
    components."""
    t0 = time.perf_counter()
    inner = data.inner if data.has_inner else {}
    blend = tune_hybrid(tuned, data.prepared, data.choices, data.seed, config.quick, config.threads, titles, inner)
    if blend is None:
        return None
    val, model, testing = blend.validation, blend.model, data.testing[blend.choice.name]
    if data.has_inner:
        val = dict(val, **{POOLED_SELECTION: blend.pooled})
    if config.refit:
        parts = {n: fit_model(n, p, data.seed, config.threads, testing, titles) for n, p in blend.components.items()}
        model = HybridRecommender(parts, blend.weights, refit=False).fit(testing.train)
    recs = recommend_fold(model, testing, "test")
    data.finals["hybrid"] = (model, testing)
    params = {"matrix": blend.choice.name, "weights": blend.weights, "components": blend.components}
    return scored(data.seed, "hybrid", "yuedu", recs, data.test_target, val, params, time.perf_counter() - t0)


def baseline_rows(data: SeedData, config: RunConfig) -> list[SeedResult]:
    """Raw implicit ALS, BPR and cosine rows on the binary test matrices (``+inputs`` when the
    baselines got the input-only events too); each row's ``seconds`` is the mean of the three."""
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        base = raw_implicit_baselines(data.testing["binary"].full, config.threads, data.seed)
    if config.inputs == "all":
        # The baselines get the same input (and so skip the same seen titles): named "+inputs".
        base = {f"{name}+inputs": recs for name, recs in base.items()}
    params = {"defaults": True, "inputs": config.inputs}
    rows = [
        scored(data.seed, name, "baseline", recs, data.test_target, params=dict(params)) for name, recs in base.items()
    ]
    for r in rows:
        r.seconds = (time.perf_counter() - t0) / len(base)
        # the three fits and their test lists together (implicit fits and recommends in one call each)
        r.cost = dict(mem.cost(), shared_by=len(base))
    return rows


def city_rows(
    data: SeedData, dataset: Dataset, yuedu: list[SeedResult], note: Callable[[str], None], constrained: bool = True
) -> list[SeedResult]:
    """A synthetic city's extra rows: the oracle, and (``constrained``) the test model (the hybrid,
    else the validation winner) with the business filters and with reading promotion."""
    assert dataset.data_dir is not None
    out: list[SeedResult] = []
    try:
        recs = oracle_recommendations(dataset.data_dir, data.testing["binary"].full, data.split.params.get("cutoff"))
    except (ImportError, FileNotFoundError, KeyError, MemoryError) as exc:
        # MemoryError: the ceiling's dense readers x titles scores (52.6 GB for 50k city readers)
        _log.warning("oracle row skipped: %s", exc)
    else:
        out.append(scored(data.seed, "oracle", "oracle", recs, data.test_target))
    if constrained and data.finals and "cutoff" in data.split.params:
        note(f"seed {data.seed}: filters and promotion")
        name = "hybrid" if "hybrid" in data.finals else max(yuedu, key=lambda r: r.validation[SELECTION_METRIC]).model
        model, matrices = data.finals[name]
        cutoff = data.split.params["cutoff"]
        out += constrained_rows(name, model, matrices, dataset.data_dir, cutoff, data.seed, data.test_target)
    return out


def evaluate_seed(
    kind: str | DataSpec,
    dataset: Dataset,
    events: pl.DataFrame,
    config: RunConfig,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[SeedResult], dict[str, Any]]:
    """Tune on validation, test once per model, evaluate the baselines: one seed of a run.
    Returns the seed's rows and a description of its split(s)."""
    note = progress or (lambda _msg: None)
    data = seed_data(kind, dataset, events, config, seed)
    titles = dataset.titles
    results, tuned = tuned_rows(data, config, titles, note)
    if "hybrid" in config.models:
        note(f"seed {seed}: blending hybrid")
        row = hybrid_row(data, tuned, config, titles)
        if row is not None:
            results.append(row)
    if config.baselines:
        note(f"seed {seed}: raw implicit baselines")
        results += baseline_rows(data, config)
        _log.info("baselines: %s", {r.model: r.metrics["ndcg@10"] for r in results if r.kind == "baseline"})
    if config.peer:
        note(f"seed {seed}: Cornac peer")
        results += cornac_peer_rows(
            data.testing["binary"], data.prepared["binary"], seed, config.threads, data.test_target
        )
    if data_spec(kind).synthetic_city and dataset.data_dir is not None:
        yuedu_rows = [r for r in results if r.kind == "yuedu"]
        results += city_rows(data, dataset, yuedu_rows, note, constrained=config.constrained)
    info = {"seed": seed, "split": data.split.describe(), "refit": config.refit}
    if data.final is not None:
        info["test_train"] = data.final.describe()["train"]
    return results, info


def run_evaluation(
    dataset: Dataset,
    kind: str | DataSpec,
    config: RunConfig,
    progress: Callable[[str], None] | None = None,
    collect: list[SeedResult] | None = None,
) -> dict[str, Any]:
    """Evaluate ``config.models`` on ``dataset`` over ``config.seeds`` (``collect``, if given, receives
    the :class:`SeedResult` rows with their per-reader values, e.g. to merge runs of model subsets).

    Returns a JSON-serialisable report: per-seed results, the summary (mean / std per model), the
    split descriptions, the ratio of the best yuedu model's NDCG@10 to raw implicit ALS, wall time
    (seconds) and thread settings.
    """
    spec = data_spec(kind)
    if config.protocol not in PROTOCOL_NAMES:
        raise EvaluationError(f"unknown protocol {config.protocol!r}; expected one of {', '.join(PROTOCOL_NAMES)}")
    grids = config.grids or GRIDS
    unknown = [m for m in config.models if m not in grids and m != "hybrid"]
    if unknown:
        raise EvaluationError(f"unknown model(s) {unknown}; known: {sorted(grids)} and hybrid")
    started = time.perf_counter()
    events = prepare_events(dataset, kind)
    results: list[SeedResult] = []
    splits = []
    with threadpool_limits(config.threads or None, user_api="blas"):
        for seed in config.seeds:
            res, info = evaluate_seed(kind, dataset, events, config, seed, progress)
            results += res
            splits.append(info)
    if collect is not None:
        collect.extend(results)
    summary = summarise(results)
    report = {
        "dataset": dataset.name,
        "kind": kind if isinstance(kind, str) else "dir",
        "spec": dataclasses.asdict(spec),
        "protocol": config.protocol,
        "models": list(config.models),
        "seeds": list(config.seeds),
        "quick": config.quick,
        "grids": config.grids,
        "choices": list(config.choices) if config.choices else None,
        "max_readers": list(config.max_readers),
        "refit": config.refit,
        "inputs": config.inputs,
        "events": events.height,
        "readers": events["reader_id"].n_unique(),
        "titles": events["title_id"].n_unique(),
        "results": [r.to_dict() for r in results],
        "summary": summary.to_dicts(),
        "splits": splits,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "threads": {"cpu_count": os.cpu_count(), "requested": config.threads},
    }
    # Temporal splits do not depend on the seed: every seed holds out the same readers.
    report["comparison"] = compare(results, same_readers=config.protocol == "temporal")
    return report
