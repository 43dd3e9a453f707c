"""Leak-free evaluation splits of interaction events.

Three protocols, all deterministic (same input and seed -> the same split):

* :func:`temporal_split` - one global cut-off time: the past trains, the future is the target of
  readers who also have a past (cold readers are counted and left out of evaluation);
* :func:`leave_last_n` - per reader, the last ``n`` events are the target;
* :func:`strong_generalization` - disjoint train / validation / test readers; each held-out
  reader's events are split into a fold-in (history given to the model) and a target.

Each returns a :class:`Split`: ``train`` events and, per fold (``"validation"``, ``"test"``), an
:class:`EvalFold` of ``foldin`` and ``target`` events and the evaluated ``readers``. Every evaluated
reader has >= 1 fold-in and >= 1 target event, and no target event (reader, title, time) ever
appears in ``train`` or in its fold's fold-in: exact duplicate events always travel together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from features.interactions import standardise
from features.matrix import InteractionMatrix, WeightingConfig, build_matrix
from features.vocab import Vocabulary

_log = logging.getLogger(__name__)

FOLDS: tuple[str, ...] = ("validation", "test")
#: An exact event: rows sharing these values are the same event and are never separated.
EVENT_KEY: tuple[str, ...] = ("reader_id", "title_id", "occurred_at")
_ROW = "_row"


@dataclass(frozen=True)
class EvalFold:
    """Events of one evaluation fold.

    ``foldin``: history of the evaluated readers that a model may see; ``target``: what they went
    on to do (hidden from the model); ``readers``: the evaluated reader ids, sorted; ``dropped``:
    readers that had target events but could not be evaluated, by reason (``cold`` = no history,
    ``too_few`` = not enough events to give both a fold-in and a target).
    """

    foldin: pl.DataFrame
    target: pl.DataFrame
    readers: list[str]
    dropped: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "readers": len(self.readers),
            "foldin_events": self.foldin.height,
            "target_events": self.target.height,
            "target_titles": self.target["title_id"].n_unique() if self.target.height else 0,
            "dropped_readers": dict(self.dropped),
        }


@dataclass(frozen=True)
class FoldMatrices:
    """Fold-in and target matrices of one fold: rows = the fold's evaluated readers (in
    ``EvalFold.readers`` order), columns = the train title vocabulary."""

    foldin: InteractionMatrix
    target: InteractionMatrix


@dataclass(frozen=True)
class SplitMatrices:
    train: InteractionMatrix
    folds: dict[str, FoldMatrices]


@dataclass(frozen=True)
class Split:
    """A train set and evaluation folds (see the module docstring)."""

    kind: str
    train: pl.DataFrame
    folds: dict[str, EvalFold]
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """Counts: events, readers and titles of train; per fold its readers, events and drops,
        and how many target events name a title that train never saw (those cannot be scored)."""
        train_titles = self.train["title_id"].unique()
        out: dict[str, Any] = {
            "kind": self.kind,
            "params": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.params.items()},
            "train": {
                "events": self.train.height,
                "readers": self.train["reader_id"].n_unique(),
                "titles": len(train_titles),
            },
        }
        for name, fold in self.folds.items():
            desc = fold.describe()
            desc["target_events_unknown_title"] = int((~fold.target["title_id"].is_in(train_titles.implode())).sum())
            out[name] = desc
        return out

    def to_matrices(
        self, config: WeightingConfig | None = None, *, target_config: WeightingConfig | None = None
    ) -> SplitMatrices:
        """Matrices sharing the train title vocabulary.

        Train and fold-in matrices use ``config``; recency decay (if any) is measured from one
        reference time, the latest train or fold-in event, so that the two agree. Targets use
        ``target_config``, by default ``config`` binarised without decay or re-weighting (binary
        relevance; ``min_value`` still applies). Fold-in / target events of titles unknown to
        train are dropped and counted in each matrix's ``meta["dropped_unknown_titles"]``.
        """
        config = config or WeightingConfig()
        if config.half_life_days is not None and config.reference_time is None:
            latest = pl.concat(
                [self.train.select("occurred_at")] + [f.foldin.select("occurred_at") for f in self.folds.values()]
            )["occurred_at"].max()
            config = config.model_copy(update={"reference_time": latest})
        if target_config is None:
            target_config = config.model_copy(
                update={"binarize": True, "scheme": None, "half_life_days": None, "reference_time": None}
            )
        train = build_matrix(self.train, config)
        folds = {}
        for name, fold in self.folds.items():
            readers = Vocabulary(fold.readers, "reader_id")
            folds[name] = FoldMatrices(
                foldin=build_matrix(fold.foldin, config, readers=readers, titles=train.titles),
                target=build_matrix(fold.target, target_config, readers=readers, titles=train.titles),
            )
            lost = folds[name].target.meta["dropped_unknown_titles"]
            if lost:
                _log.info("%s split, %s fold: %d target events of titles unknown to train", self.kind, name, lost)
        return SplitMatrices(train, folds)


# --- helpers ----------------------------------------------------------------------------------------


def _prepare(df: pl.DataFrame | pl.LazyFrame, *, need_time: bool) -> pl.DataFrame:
    """Standard columns, sorted canonically (reader, time, title, channel, input order) with a row id
    so that every later tie-break is deterministic."""
    frame = standardise(df).collect().with_row_index(_ROW)
    if need_time:
        missing = frame["occurred_at"].null_count()
        if missing:
            raise ValueError(f"interactions.occurred_at: {missing} events have no time; this split orders by time")
    return frame.sort(["reader_id", "occurred_at", "title_id", "channel", _ROW], nulls_last=False)


def _whole_events(frame: pl.DataFrame, *flags: str) -> pl.DataFrame:
    """Spread row flags to every copy of the same exact event (any copy flagged -> all flagged).

    A separate step on purpose: a window nested inside another window would be evaluated within
    the outer window's groups."""
    return frame.with_columns(pl.col(f).any().over(list(EVENT_KEY)) for f in flags)


def _strip(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop([c for c in frame.columns if c.startswith("_")])


def _fold(foldin: pl.DataFrame, target: pl.DataFrame, dropped: dict[str, int]) -> EvalFold:
    """Keep only readers with both fold-in and target; count the others."""
    have_history = foldin["reader_id"].unique()
    target_readers = target["reader_id"].unique()
    evaluated = target_readers.filter(target_readers.is_in(have_history.implode())).sort()
    dropped = dict(dropped)
    dropped["cold"] = dropped.get("cold", 0) + len(target_readers) - len(evaluated)
    return EvalFold(
        foldin=_strip(foldin.filter(pl.col("reader_id").is_in(evaluated.implode()))),
        target=_strip(target.filter(pl.col("reader_id").is_in(evaluated.implode()))),
        readers=evaluated.to_list(),
        dropped=dropped,
    )


def _empty_fold(frame: pl.DataFrame) -> EvalFold:
    empty = _strip(frame.clear())
    return EvalFold(empty, empty, [], {})


def _time_at_quantile(frame: pl.DataFrame, q: float) -> datetime:
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    return frame.select(pl.col("occurred_at").quantile(q, interpolation="nearest"))[0, 0]


# --- protocols ----------------------------------------------------------------------------------


def temporal_cutoffs(
    events: pl.DataFrame,
    cutoff: datetime | None = None,
    quantile: float | None = None,
    val_cutoff: datetime | None = None,
    val_quantile: float | None = None,
) -> tuple[datetime, datetime | None]:
    """The (test, validation) cut-off times of :func:`temporal_split` (same arguments), from the
    ``occurred_at`` column of ``events``: a quantile is the event time nearest to it.

    The one implementation of the cut-offs: engines that apply them elsewhere (Spark) collect the
    event times and ask this function. The validation cut-off is None when neither is given.

    Raises:
        ValueError: not exactly one of ``cutoff`` / ``quantile``, both validation arguments, a
            quantile outside (0, 1), or a validation cut-off after the test cut-off.
    """
    if (cutoff is None) == (quantile is None):
        raise ValueError("temporal_split: give exactly one of cutoff or quantile")
    if val_cutoff is not None and val_quantile is not None:
        raise ValueError("temporal_split: give at most one of val_cutoff or val_quantile")
    test_cut = cutoff if cutoff is not None else _time_at_quantile(events, quantile)
    val_cut = val_cutoff if val_quantile is None else _time_at_quantile(events, val_quantile)
    if val_cut is not None and val_cut > test_cut:
        raise ValueError(f"temporal_split: validation cut-off {val_cut} is after the test cut-off {test_cut}")
    return test_cut, val_cut


def temporal_split(
    df: pl.DataFrame | pl.LazyFrame,
    cutoff: datetime | None = None,
    quantile: float | None = None,
    val_cutoff: datetime | None = None,
    val_quantile: float | None = None,
) -> Split:
    """Split at a global cut-off time (events at or after it are the future).

    Give the test cut-off as ``cutoff`` or as a ``quantile`` of event times (0.8 -> about 80 % of
    events before it); optionally a validation cut-off before it (``val_cutoff`` /
    ``val_quantile``). Then ``train`` = events before the validation cut-off (or the cut-off);
    validation target = events in [val_cutoff, cutoff), fold-in = the reader's train events;
    test target = events from ``cutoff`` on, fold-in = all the reader's events before ``cutoff``
    (the validation period included). Target readers without earlier events are ``cold``: counted
    in ``EvalFold.dropped`` and not evaluated. Without a validation cut-off the validation fold is
    empty.
    """
    frame = _prepare(df, need_time=True)
    test_cut, val_cut = temporal_cutoffs(frame, cutoff, quantile, val_cutoff, val_quantile)
    t = pl.col("occurred_at")
    before_test = frame.filter(t < test_cut)
    train = frame.filter(t < val_cut) if val_cut is not None else before_test
    test = _fold(before_test, frame.filter(t >= test_cut), {})
    validation = (
        _fold(train, frame.filter((t >= val_cut) & (t < test_cut)), {}) if val_cut is not None else _empty_fold(frame)
    )
    split = Split(
        "temporal",
        _strip(train),
        {"validation": validation, "test": test},
        {"cutoff": test_cut, "val_cutoff": val_cut, "quantile": quantile, "val_quantile": val_quantile},
    )
    _log.info("temporal split: %s", split.describe())
    return split


def leave_last_n(df: pl.DataFrame | pl.LazyFrame, n: int = 1, *, validation: bool = True) -> Split:
    """Per reader, the last ``n`` events by time are the test target and (``validation=True``) the
    ``n`` before them the validation target; everything earlier is ``train``.

    Ties in time are broken by title id, channel, then input order. A reader needs more than
    ``n`` events to be tested (more than ``2n`` to be validated too); shorter histories stay whole in
    ``train`` and are counted as ``too_few``. Validation fold-in = the reader's train events; test
    fold-in = everything before the test target (the validation target included).
    """
    if n < 1:
        raise ValueError(f"leave_last_n: n must be >= 1, got {n}")
    frame = _prepare(df, need_time=True)
    from_end = pl.int_range(pl.len()).reverse().over("reader_id")  # 0 = the reader's last event
    events = pl.len().over("reader_id")
    frame = frame.with_columns(
        ((from_end < n) & (events > n)).alias("_test"),
        ((from_end >= n) & (from_end < 2 * n) & (events > 2 * n) & pl.lit(validation)).alias("_val"),
    )
    frame = _whole_events(frame, "_test", "_val").with_columns(pl.col("_val") & ~pl.col("_test"))
    too_few_test = frame.filter(pl.len().over("reader_id") <= n)["reader_id"].n_unique()
    too_few_val = frame.filter(pl.len().over("reader_id").is_between(n + 1, 2 * n))["reader_id"].n_unique()
    train = frame.filter(~pl.col("_test") & ~pl.col("_val"))
    test = _fold(frame.filter(~pl.col("_test")), frame.filter(pl.col("_test")), {"too_few": too_few_test})
    val = (
        _fold(train, frame.filter(pl.col("_val")), {"too_few": too_few_test + too_few_val})
        if validation
        else _empty_fold(frame)
    )
    split = Split("leave_last_n", _strip(train), {"validation": val, "test": test}, {"n": n})
    _log.info("leave-last-%d split: %s", n, split.describe())
    return split


def _reader_count(value: int | float, n_readers: int, name: str) -> int:
    if isinstance(value, float):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"strong_generalization: {name} as a fraction must be in [0, 1), got {value}")
        return int(round(value * n_readers))
    if value < 0:
        raise ValueError(f"strong_generalization: {name} must be >= 0, got {value}")
    return int(value)


def strong_generalization(
    df: pl.DataFrame | pl.LazyFrame,
    n_val_readers: int | float = 0.1,
    n_test_readers: int | float = 0.1,
    target_frac: float = 0.2,
    seed: int = 0,
    by_time: bool = False,
) -> Split:
    """Hold out whole readers: disjoint train, validation and test readers.

    ``n_val_readers`` / ``n_test_readers``: a count (int) or a fraction of all readers (float).
    Readers are drawn with ``seed``. Each held-out reader's events are split into fold-in and
    target: ``round(target_frac * events)`` target events, at least 1 and at most all but one,
    drawn at random (``seed``) or, with ``by_time=True``, the last ones by time. Held-out readers
    with a single event (or whose events are all one duplicated event) are dropped from evaluation
    and counted as ``too_few``; their events are in no part of the split.
    """
    if not 0.0 < target_frac < 1.0:
        raise ValueError(f"strong_generalization: target_frac must be in (0, 1), got {target_frac}")
    frame = _prepare(df, need_time=by_time)
    rng = np.random.default_rng(seed)
    all_readers = frame["reader_id"].unique().sort()
    n_test = _reader_count(n_test_readers, len(all_readers), "n_test_readers")
    n_val = _reader_count(n_val_readers, len(all_readers), "n_val_readers")
    if n_test + n_val > len(all_readers):
        raise ValueError(
            f"strong_generalization: {n_test} test + {n_val} validation readers exceed the {len(all_readers)} readers"
        )
    order = rng.permutation(len(all_readers))
    role = np.full(len(all_readers), "train", dtype=object)
    role[order[:n_test]] = "test"
    role[order[n_test : n_test + n_val]] = "validation"
    roles = pl.DataFrame({"reader_id": all_readers, "_role": pl.Series(role, dtype=pl.String)})
    frame = frame.join(roles, on="reader_id", how="left")

    # position of each event in the order that decides the target: random, or by time (canonical order)
    if by_time:
        position = pl.int_range(pl.len()).over("reader_id")
    else:
        frame = frame.with_columns(pl.Series("_key", rng.random(frame.height)))
        position = pl.col("_key").rank("ordinal").over("reader_id") - 1
    events = pl.len().over("reader_id")
    n_target = (events.cast(pl.Float64) * target_frac).round().clip(1, events - 1)
    frame = _whole_events(frame.with_columns((position >= events - n_target).alias("_target")), "_target")

    folds = {}
    for name in FOLDS:
        held = frame.filter(pl.col("_role") == name)
        per_reader = held.group_by("reader_id").agg(
            pl.col("_target").any().alias("has_target"), (~pl.col("_target")).any().alias("has_foldin")
        )
        ok = per_reader.filter(pl.col("has_target") & pl.col("has_foldin"))["reader_id"]
        held = held.filter(pl.col("reader_id").is_in(ok.implode()))
        folds[name] = _fold(
            held.filter(~pl.col("_target")),
            held.filter(pl.col("_target")),
            {"too_few": per_reader.height - len(ok)},
        )
    train = frame.filter(pl.col("_role") == "train")
    split = Split(
        "strong_generalization",
        _strip(train),
        folds,
        {
            "n_val_readers": n_val,
            "n_test_readers": n_test,
            "target_frac": target_frac,
            "seed": seed,
            "by_time": by_time,
        },
    )
    _log.info("strong-generalisation split: %s", split.describe())
    return split
