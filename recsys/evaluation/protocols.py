"""Evaluation protocols: how events become train / validation / test splits.

One implementation for every caller: :func:`split_events` applies a :class:`Protocol` (strong
generalisation, a global or per-reader temporal cut, leave-last-n); :func:`study_protocol` names the
protocol ``yuedu evaluate --dataset`` runs per data set and :func:`make_split` applies it;
``training.pipeline`` builds its :class:`Protocol` from an experiment config's ``[split]``. Also
here: the events a protocol splits (:func:`prepare_events`, input-only events and
:func:`with_input_events`), the internal splits of the training readers (:func:`internal_splits`)
and the split of the test step (:func:`refit_split`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from features.datasets import Dataset
from features.errors import InvalidInput
from features.interactions import standardise
from features.splits import EvalFold, Split, leave_last_n, strong_generalization, temporal_split

#: The protocols of ``yuedu evaluate`` (``leave-last``: each reader's last event is the test target).
PROTOCOL_NAMES = ("strong", "temporal", "leave-last")
#: MovieLens: ratings at or above this are positive feedback.
MOVIELENS_POSITIVE = 4.0
#: MovieLens: readers with fewer positives are dropped.
MOVIELENS_MIN_POSITIVES = 5
#: Channel of input-only events (MovieLens ratings below :data:`MOVIELENS_POSITIVE` with
#: ``inputs="all"``): they tell a model what a reader has seen, are never targets.
INPUT_ONLY_CHANNEL = "rating_low"
#: Strong generalisation holds out only 10 % of readers for validation (about 60 on MovieLens), too
#: few to fit four blend weights reliably: the blend is also fitted on internal splits of the
#: TRAINING readers (:func:`internal_splits`), each holding out this share of them twice.
HYBRID_INTERNAL_SPLITS = 2
HYBRID_INTERNAL_SHARE = 0.15


class EvaluationError(InvalidInput):
    """An evaluation cannot run as asked (unknown data set / protocol / model, empty fold...)."""


@dataclass(frozen=True)
class DataSpec:
    """What a study must know about a data set beyond its events: which events are positives, and
    how its temporal protocol cuts. Built-in data sets have theirs (:data:`SPECS`); any data directory
    gets one from ``yuedu evaluate --data DIR`` options, so ``--dataset movielens`` is exactly
    ``--data <its directory> --positive-threshold 4 --min-positives 5 --temporal per-reader``.

    ``positive_threshold``: events whose value is at least this are positives (targets and input);
    the others are input-only with ``inputs="all"``. None: every event is a positive.
    ``min_positives``: readers with fewer positives are dropped.
    ``temporal``: ``per-reader`` (each reader's last 20 % by time), ``global`` (one cut at the
    ``quantile`` of event times, validation from ``val_quantile``) or ``last-days`` (the last
    ``last_days`` are the test target, the ``last_days`` before them validation).
    ``synthetic_city``: add the synthetic city's oracle and filtered/promoted rows.
    """

    positive_threshold: float | None = None
    min_positives: int = 1
    temporal: str = "global"
    quantile: float = 0.8
    val_quantile: float = 0.7
    last_days: int = 182
    synthetic_city: bool = False

    def __post_init__(self) -> None:
        if self.temporal not in ("per-reader", "global", "last-days"):
            raise EvaluationError(f"temporal must be per-reader, global or last-days, got {self.temporal!r}")
        if not 0.0 < self.val_quantile < self.quantile < 1.0:
            raise EvaluationError(
                f"temporal quantiles must satisfy 0 < validation ({self.val_quantile}) < test ({self.quantile}) < 1"
            )
        if self.min_positives < 1 or self.last_days < 1:
            raise EvaluationError("min_positives and last_days must be >= 1")


#: The built-in data sets of ``yuedu evaluate --dataset``.
SPECS: dict[str, DataSpec] = {
    "movielens": DataSpec(positive_threshold=4.0, min_positives=5, temporal="per-reader"),
    "sco": DataSpec(temporal="global", quantile=0.8, val_quantile=0.7),
    "city": DataSpec(temporal="last-days", last_days=182, synthetic_city=True),
}


def data_spec(kind: str | DataSpec) -> DataSpec:
    """``kind`` itself when it is a :class:`DataSpec`, else the built-in data set's."""
    if isinstance(kind, DataSpec):
        return kind
    try:
        return SPECS[kind]
    except KeyError:
        raise EvaluationError(f"unknown data set {kind!r}; built in: {sorted(SPECS)} (or give --data DIR)") from None


@dataclass(frozen=True)
class Protocol:
    """How a protocol splits events into train / validation / test (:func:`split_events`).

    ``name``: ``strong`` (held-out readers, :func:`features.splits.strong_generalization`),
    ``temporal`` (a global cut-off, :func:`features.splits.temporal_split`; with ``per_reader``
    each reader's own last events instead, :func:`per_reader_temporal_split`) or ``leave_last``
    (each reader's last ``n`` events, :func:`features.splits.leave_last_n`).
    """

    name: str
    #: strong: shares of readers held out for validation and for test.
    val_frac: float = 0.1
    test_frac: float = 0.1
    #: strong / per-reader temporal: share of a held-out reader's events that are targets.
    target_frac: float = 0.2
    #: strong: a held-out reader's targets are their latest events, not random ones.
    by_time: bool = False
    #: temporal: the test cut-off as a date or as a quantile of event times, and the validation one.
    cutoff: datetime | None = None
    val_cutoff: datetime | None = None
    quantile: float | None = None
    val_quantile: float | None = None
    #: temporal: per reader (each reader's last ``target_frac`` of events) instead of a global cut.
    per_reader: bool = False
    #: leave_last: events per reader held out.
    n: int = 1


def split_events(events: pl.DataFrame, protocol: Protocol, seed: int = 0) -> Split:
    """The split of ``events`` under ``protocol`` (``seed``: which readers a strong split holds out).

    The one implementation of every protocol: ``yuedu evaluate --dataset`` (via :func:`make_split`)
    and the training pipeline (``yuedu train / evaluate CONFIG / tune / experiment run``) both
    split through it."""
    if protocol.name == "strong":
        return strong_generalization(
            events,
            n_val_readers=protocol.val_frac,
            n_test_readers=protocol.test_frac,
            target_frac=protocol.target_frac,
            seed=seed,
            by_time=protocol.by_time,
        )
    if protocol.name == "temporal":
        if protocol.per_reader:
            return per_reader_temporal_split(events, protocol.target_frac)
        if protocol.cutoff is not None:
            return temporal_split(events, cutoff=protocol.cutoff, val_cutoff=protocol.val_cutoff)
        return temporal_split(events, quantile=protocol.quantile, val_quantile=protocol.val_quantile)
    if protocol.name == "leave_last":
        return leave_last_n(events, n=protocol.n)
    raise EvaluationError(f"unknown protocol {protocol.name!r}; expected strong, temporal or leave_last")


def study_protocol(kind: str | DataSpec, protocol: str, events: pl.DataFrame | None) -> Protocol:
    """The protocol ``yuedu evaluate`` runs on data set ``kind`` (a name or a :class:`DataSpec`).

    * ``strong`` (any data set): 10 % validation and 10 % test readers, each held-out reader's
      events 80 % fold-in / 20 % target at random;
    * ``temporal``, by the spec's ``temporal``: ``per-reader`` (MovieLens: each reader's last 20 % by
      time, :func:`per_reader_temporal_split`), ``global`` (SCO: one cut at the 80th percentile of
      event times, validation target the 70th-80th percentile slice) or ``last-days`` (a synthetic
      city: the last half-year is the test target, the half-year before it validation);
    * ``leave-last``: each reader's last event is the test target, the one before it validation.
    """
    spec = data_spec(kind)
    if protocol == "strong":
        return Protocol("strong", val_frac=0.1, test_frac=0.1, target_frac=0.2)
    if protocol in ("leave-last", "leave_last"):
        return Protocol("leave_last", n=1)
    if protocol != "temporal":
        raise EvaluationError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOL_NAMES)}")
    if spec.temporal == "per-reader":
        return Protocol("temporal", per_reader=True, target_frac=0.2)
    if spec.temporal == "global":
        return Protocol("temporal", quantile=spec.quantile, val_quantile=spec.val_quantile)
    if events is None or events["occurred_at"].null_count() == events.height:
        raise EvaluationError("a last-days temporal protocol needs event times")
    cut = events["occurred_at"].max() - timedelta(days=spec.last_days)
    return Protocol("temporal", cutoff=cut, val_cutoff=cut - timedelta(days=spec.last_days))


def make_split(kind: str | DataSpec, protocol: str, events: pl.DataFrame, seed: int) -> Split:
    """The split of one seed of ``yuedu evaluate``: :func:`study_protocol` applied by
    :func:`split_events`."""
    return split_events(events, study_protocol(kind, protocol, events), seed)


def prepare_events(dataset: Dataset, kind: str | DataSpec) -> pl.DataFrame:
    """The events a protocol splits: the positives (value >= the spec's threshold; all events without
    one) of readers with at least ``min_positives`` of them (MovieLens: rating >= 4, >= 5 of them)."""
    spec = data_spec(kind)
    events = standardise(dataset.interactions).collect()
    if spec.positive_threshold is not None:
        events = events.filter(pl.col("value") >= spec.positive_threshold)
    if spec.min_positives > 1:
        events = events.filter(pl.len().over("reader_id") >= spec.min_positives)
    if events.height == 0:
        raise EvaluationError(f"{dataset.name}: no events to evaluate")
    return events


def input_only_events(dataset: Dataset, kind: str | DataSpec, readers: pl.Series) -> pl.DataFrame:
    """Events that may serve as model input but are never targets: the evaluated ``readers``' events
    below the spec's positive threshold (MovieLens: ratings below 4), on channel
    :data:`INPUT_ONLY_CHANNEL`; empty without a threshold."""
    spec = data_spec(kind)
    events = standardise(dataset.interactions).collect()
    if spec.positive_threshold is None:
        return events.clear()
    below = pl.col("value") < spec.positive_threshold
    low = events.filter(below & pl.col("reader_id").is_in(readers.implode()))
    return low.with_columns(pl.lit(INPUT_ONLY_CHANNEL).alias("channel"))


def with_input_events(split: Split, extra: pl.DataFrame) -> Split:
    """``split`` with ``extra`` (input-only) events added where a model may see them; targets unchanged.

    * strong generalisation: to the training rows of training readers and to each fold's fold-in
      for the fold's readers;
    * per-reader temporal: by time, per reader, so nothing from a reader's future is seen: events
      before the reader's first validation target join the training rows and both fold-ins, events
      from then until the reader's first test target join the test fold-in only, later ones are
      dropped (counted in ``params["input_events_dropped_future"]``).

    Raises :class:`EvaluationError` for other split kinds."""
    if extra.height == 0:
        return split
    cols = split.train.columns
    extra = extra.select(cols)
    if split.kind == "strong_generalization":
        train_readers = split.train["reader_id"].unique()
        train_extra = extra.filter(pl.col("reader_id").is_in(train_readers.implode()))
        fold_extra = dict.fromkeys(split.folds, extra)
        counts = {"input_events": extra.height}
    elif split.kind == "per_reader_temporal":
        train_extra, test_extra = _split_input_events_by_time(split, extra)
        fold_extra = {name: test_extra if name == "test" else train_extra for name in split.folds}
        counts = {"input_events": test_extra.height, "input_events_dropped_future": extra.height - test_extra.height}
    else:
        raise EvaluationError(
            f"input-only events are supported on the strong and per-reader temporal protocols, not {split.kind!r}"
        )
    folds = {}
    for name, fold in split.folds.items():
        readers = pl.Series(fold.readers, dtype=pl.String).implode()
        mine = fold_extra[name].filter(pl.col("reader_id").is_in(readers))
        folds[name] = EvalFold(pl.concat([fold.foldin, mine]), fold.target, fold.readers, fold.dropped)
    return Split(split.kind, pl.concat([split.train, train_extra]), folds, dict(split.params, **counts))


def _split_input_events_by_time(split: Split, extra: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-reader temporal: (events before the reader's first validation target - or first test
    target without one -, events before the reader's first test target). Readers without targets
    keep all their events; events without a time are dropped."""

    def first_target(fold: str) -> pl.DataFrame:
        target = split.folds[fold].target
        return target.group_by("reader_id").agg(pl.col("occurred_at").min().alias(f"_{fold}_from"))

    timed = (
        extra.join(first_target("validation"), on="reader_id", how="left")
        .join(first_target("test"), on="reader_id", how="left")
        .with_columns(pl.coalesce("_validation_from", "_test_from").alias("_validation_from"))
    )
    known = pl.col("occurred_at").is_not_null()
    early = known & (pl.col("_validation_from").is_null() | (pl.col("occurred_at") < pl.col("_validation_from")))
    before_test = known & (pl.col("_test_from").is_null() | (pl.col("occurred_at") < pl.col("_test_from")))
    return timed.filter(early).select(extra.columns), timed.filter(before_test).select(extra.columns)


def per_reader_temporal_split(events: pl.DataFrame, target_frac: float = 0.2) -> Split:
    """Each reader's last ``target_frac`` of events by time is the test target, the slice before
    it the validation target, the rest train (readers keep >= 1 train event; ties by title id).

    Validation fold-in = the reader's train events; test fold-in = train + validation events."""
    if not 0.0 < target_frac < 0.5:
        raise EvaluationError(f"per-reader temporal split: target_frac must be in (0, 0.5), got {target_frac}")
    frame = standardise(events).collect().sort(["reader_id", "occurred_at", "title_id"])
    n = pl.len().over("reader_id")
    from_end = pl.int_range(pl.len()).reverse().over("reader_id")
    n_target = (n.cast(pl.Float64) * target_frac).ceil().cast(pl.Int64)
    # Readers with 2 events give 1 test target and no validation; a reader always keeps a train event.
    n_val = pl.min_horizontal(n_target, n - n_target - 1).clip(0)
    frame = frame.with_columns(
        (from_end < pl.min_horizontal(n_target, n - 1)).alias("_test"),
        ((from_end >= n_target) & (from_end < n_target + n_val)).alias("_val"),
    )
    frame = frame.with_columns(pl.col("_val") & ~pl.col("_test"))
    train = frame.filter(~pl.col("_test") & ~pl.col("_val"))

    def fold(foldin: pl.DataFrame, target: pl.DataFrame) -> EvalFold:
        readers = target["reader_id"].unique().sort()
        readers = readers.filter(readers.is_in(foldin["reader_id"].unique().implode()))
        keep = pl.col("reader_id").is_in(readers.implode())
        drop = [c for c in frame.columns if c.startswith("_")]
        return EvalFold(foldin.filter(keep).drop(drop), target.filter(keep).drop(drop), readers.to_list(), {})

    folds = {
        "validation": fold(train, frame.filter(pl.col("_val"))),
        "test": fold(frame.filter(~pl.col("_test")), frame.filter(pl.col("_test"))),
    }
    return Split("per_reader_temporal", train.drop([c for c in frame.columns if c.startswith("_")]), folds, {})


def internal_splits(split: Split, seed: int) -> list[Split]:
    """Strong generalisation: :data:`HYBRID_INTERNAL_SPLITS` splits of the TRAINING readers alone,
    each holding out :data:`HYBRID_INTERNAL_SHARE` of them as a ``validation`` and as a ``test`` fold
    (fold-in / target like the protocol's own held-out readers; input-only events stay input, with
    their reader). Validation and test readers take no part. Empty for other protocols, whose
    validation fold already holds many readers."""
    if split.kind != "strong_generalization":
        return []
    if "channel" in split.train.columns:
        is_input = pl.col("channel") == INPUT_ONLY_CHANNEL
        positives, inputs = split.train.filter(~is_input), split.train.filter(is_input)
    else:
        positives, inputs = split.train, split.train.clear()
    frac = float(split.params.get("target_frac", 0.2))
    out = []
    for j in range(HYBRID_INTERNAL_SPLITS):
        inner = strong_generalization(
            positives, HYBRID_INTERNAL_SHARE, HYBRID_INTERNAL_SHARE, frac, seed=seed * 1009 + j + 1
        )
        out.append(with_input_events(inner, inputs))
    return out


def refit_split(split: Split) -> Split:
    """The split of the test step: train = everything known before the test (train events plus the
    validation readers' fold-in and target events, duplicates dropped), one fold: ``test``.

    Strong generalisation: the validation readers join the training readers. Temporal protocols:
    all events before the test cut-off (per reader for MovieLens) train. Test is still touched
    once; only validation, already used for choosing, is folded back in."""
    val = split.folds["validation"]
    cols = split.train.columns
    parts = [split.train] + [f.select(cols) for f in (val.foldin, val.target) if f.height]
    if split.kind != "strong_generalization":
        # Temporal: the test fold-in is everything before the test cut-off (already train + validation
        # events, plus any input-only events of that period): all of it may train the test model.
        parts.append(split.folds["test"].foldin.select(cols))
    events = pl.concat(parts, how="vertical_relaxed").unique(maintain_order=True)
    return Split(split.kind, events, {"test": split.folds["test"]}, dict(split.params, refit=True))
