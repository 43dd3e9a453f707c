"""Rolling-origin replay of acquisition demand on real data no one here generated.

For each origin ``t`` (the start of a period, a year by default) the titles whose first event (first
loan at Shakespeare and Company, first rating on MovieLens) falls in ``[t, t + period)`` are that
period's *acquisitions*. Their label is the number of events in the ``horizon_days`` (365) counted from
that first event. Every score for them is computed at ``t`` from:

* the events **strictly before t** (:func:`predict_at` drops every later row before it does anything), and
* the catalogue's static fields (author, classes / genres, publication year), known when a title is bought.

Not used: the acquisition date itself, the first-week borrowers or any other signal from ``[t, ...)``:
for a title acquired in the period they all lie after ``t``. The "early borrowers" count (distinct
readers in the first ``early_days`` after acquisition) is therefore reported only as a *reference that
sees the future*, never as a baseline the model has to beat.

The model (:class:`ReplayConfig` documents its parameters) is a Poisson gradient-boosted regressor
trained at ``t`` on earlier acquisitions whose whole label window ended before ``t``, each with the
features it had at its own origin. Baselines: the author's past loans per title, the class mean of
first-year loans, the newest publication first, the global mean.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from features.errors import InvalidInput

_log = logging.getLogger(__name__)

#: Score columns that are legal at ``t`` (the model and its baselines), in table order.
SCORERS = ("model", "author_loans_per_title", "class_mean", "newest_first", "global_mean")
#: Reference scores that use information after ``t`` (shown apart, not baselines).
REFERENCES = ("early_borrowers",)
#: Model inputs (all computed as of the origin).
FEATURES = (
    "author_titles",
    "author_loans_per_title",
    "author_first_year_mean",
    "author_recent_loans",
    "class_mean",
    "class_recent_per_title",
    "class_trend",
    "class_max",
    "class_new_mean",
    "class_count",
    "pub_age",
)
#: Library-wide state at the origin, the same for every candidate: kept out of the model (it cannot
#: rank titles within an origin, and levels outside the training range only add noise), used by baselines.
CONTEXT = ("global_first_year_mean", "global_recent", "global_trend", "readers_recent")


@dataclass(frozen=True)
class ReplayConfig:
    """Replay parameters.

    ``first_origin`` / ``last_origin``: the held-out origins (inclusive), stepped by ``period_months``;
    ``horizon_days``: the label window from a title's first event, days; ``recent_days``: the window of
    the "recent" features, days; ``early_days``: the window of the early-borrowers reference, days;
    ``model_params``: keyword arguments of ``HistGradientBoostingRegressor`` (Poisson loss); ``bags``: how
    many such models (seeds ``random_state + i``, half the features each split) are averaged;
    ``monotone``: feature -> +1/-1, the sign the prediction must follow (a book long in print draws fewer
    first-year loans than a new one, whatever the few early acquisitions suggest).
    """

    first_origin: datetime
    last_origin: datetime
    period_months: int = 12
    horizon_days: int = 365
    recent_days: int = 365
    early_days: int = 28
    model_params: dict = field(
        default_factory=lambda: {
            "loss": "poisson",
            "learning_rate": 0.05,
            "max_iter": 200,
            "max_leaf_nodes": 7,
            "min_samples_leaf": 30,
            "l2_regularization": 1.0,
            "max_features": 0.5,
            "early_stopping": False,
            "random_state": 0,
        }
    )
    bags: int = 5
    monotone: dict = field(
        default_factory=lambda: {"pub_age": -1, "author_loans_per_title": 1, "author_first_year_mean": 1}
    )

    def origins(self) -> list[datetime]:
        """The origins from ``first_origin`` to ``last_origin``, ``period_months`` apart."""
        if self.period_months <= 0 or self.last_origin < self.first_origin:
            raise InvalidInput(f"replay origins: need period_months > 0 and first <= last, got {self}")
        series = pl.datetime_range(
            self.first_origin, self.last_origin, f"{self.period_months}mo", eager=True, time_unit="us"
        )
        return series.to_list()

    def period_end(self, t: datetime) -> datetime:
        """The end (exclusive) of the period starting at ``t``."""
        return pl.Series([t]).dt.offset_by(f"{self.period_months}mo").item()


def first_year_events(events: pl.DataFrame, horizon_days: int) -> pl.DataFrame:
    """Per title: ``first_at`` (its first event) and ``label``, the events in ``[first_at, first_at + horizon)``."""
    horizon = timedelta(days=horizon_days)
    return (
        events.with_columns(pl.col("occurred_at").min().over("title_id").alias("first_at"))
        .group_by("title_id")
        .agg(
            pl.col("first_at").first(),
            (pl.col("occurred_at") < pl.col("first_at") + horizon).sum().cast(pl.Float64).alias("label"),
        )
    )


def _title_history(past: pl.DataFrame, t: datetime, cfg: ReplayConfig) -> pl.DataFrame:
    """Per title seen before ``t``: events, recent events, and the first-year label when complete by ``t``."""
    recent = t - timedelta(days=cfg.recent_days)
    labels = first_year_events(past, cfg.horizon_days).with_columns(
        pl.when(pl.col("first_at") + timedelta(days=cfg.horizon_days) <= t).then(pl.col("label")).alias("label")
    )
    counts = past.group_by("title_id").agg(
        pl.len().cast(pl.Float64).alias("events"),
        (pl.col("occurred_at") >= recent).sum().cast(pl.Float64).alias("recent"),
        (pl.col("occurred_at") >= recent - timedelta(days=cfg.recent_days)).sum().cast(pl.Float64).alias("recent2"),
    )
    return counts.join(labels.select("title_id", "label", "first_at"), on="title_id", how="left")


def _author_features(history: pl.DataFrame, catalogue: pl.DataFrame) -> pl.DataFrame:
    """Per author: titles seen, past events per title, mean complete first-year label, recent events."""
    return (
        history.join(catalogue.select("title_id", "author"), on="title_id", how="inner")
        .filter(pl.col("author").is_not_null())
        .group_by("author")
        .agg(
            pl.len().cast(pl.Float64).alias("author_titles"),
            (pl.col("events").sum() / pl.len()).alias("author_loans_per_title"),
            pl.col("label").mean().alias("author_first_year_mean"),
            pl.col("recent").sum().alias("author_recent_loans"),
        )
    )


def _class_features(history: pl.DataFrame, catalogue: pl.DataFrame, cands: pl.DataFrame) -> pl.DataFrame:
    """Per candidate: the mean over its classes of each class's first-year mean, recent events per title
    and trend (recent / previous window), as of the origin."""
    fresh = (pl.col("first_at").dt.year() - pl.col("pub_year")) <= 1
    per_class = (
        history.join(catalogue.select("title_id", "classes", "pub_year"), on="title_id", how="inner")
        .explode("classes", empty_as_null=True)
        .group_by("classes")
        .agg(
            pl.col("label").mean().alias("class_mean"),
            pl.col("label").filter(fresh).mean().alias("class_new_mean"),
            (pl.col("recent").sum() / pl.len()).alias("class_recent_per_title"),
            (pl.col("recent").sum() / (pl.col("recent2").sum() - pl.col("recent").sum() + 1.0)).alias("class_trend"),
        )
    )
    return (
        cands.select("title_id", "classes")
        .explode("classes", empty_as_null=True)
        .join(per_class, on="classes", how="left")
        .group_by("title_id")
        .agg(
            pl.col("class_mean", "class_new_mean", "class_recent_per_title", "class_trend").mean(),
            pl.col("class_mean").max().alias("class_max"),
            pl.col("classes").drop_nulls().len().cast(pl.Float64).alias("class_count"),
        )
    )


def _global_features(past: pl.DataFrame, history: pl.DataFrame, t: datetime, cfg: ReplayConfig) -> dict:
    """Library-wide state at ``t``: mean complete first-year label, recent events, trend, recent readers."""
    recent = past.filter(pl.col("occurred_at") >= t - timedelta(days=cfg.recent_days))
    before = past.filter(pl.col("occurred_at") >= t - timedelta(days=2 * cfg.recent_days)).height - recent.height
    label_mean = history["label"].mean()
    return {
        "global_first_year_mean": float(label_mean) if label_mean is not None else float("nan"),
        "global_recent": float(recent.height),
        "global_trend": recent.height / (before + 1.0),
        "readers_recent": float(recent["reader_id"].n_unique()),
    }


def features_at(events: pl.DataFrame, catalogue: pl.DataFrame, t: datetime, titles: pl.Series, cfg: ReplayConfig):
    """Model features and baseline inputs of ``titles`` as of ``t`` (only events before ``t`` are read)."""
    past = events.filter(pl.col("occurred_at") < t)
    history = _title_history(past, t, cfg)
    cands = pl.DataFrame({"title_id": titles}).join(catalogue, on="title_id", how="left")
    globals_ = _global_features(past, history, t, cfg)
    return (
        cands.join(_author_features(history, catalogue), on="author", how="left")
        .join(_class_features(history, catalogue, cands), on="title_id", how="left")
        .with_columns(
            (pl.lit(t.year) - pl.col("pub_year")).cast(pl.Float64).alias("pub_age"),
            *(pl.lit(v, dtype=pl.Float64).alias(k) for k, v in globals_.items()),
        )
        .select("title_id", *FEATURES, *CONTEXT)
    )


def _training_rows(past: pl.DataFrame, catalogue: pl.DataFrame, t: datetime, cfg: ReplayConfig) -> pl.DataFrame:
    """Earlier acquisitions whose label window closed by ``t``, each with its features at its own origin."""
    done = first_year_events(past, cfg.horizon_days).filter(pl.col("first_at") + timedelta(days=cfg.horizon_days) <= t)
    done = done.with_columns(_period_start(pl.col("first_at"), cfg).alias("origin"))
    frames = [
        features_at(past, catalogue, s, group["title_id"], cfg).join(group.select("title_id", "label"), on="title_id")
        for (s,), group in done.group_by("origin", maintain_order=True)
    ]
    return pl.concat(frames) if frames else pl.DataFrame()


def _period_start(at: pl.Expr, cfg: ReplayConfig) -> pl.Expr:
    """The start of the period (anchored on ``first_origin``) holding each timestamp."""
    anchor = cfg.first_origin
    months = (at.dt.year().cast(pl.Int32) - anchor.year) * 12 + (at.dt.month().cast(pl.Int32) - anchor.month)
    k = months.floordiv(cfg.period_months) * cfg.period_months
    return pl.lit(anchor, dtype=pl.Datetime("us")).dt.offset_by(pl.format("{}mo", k))


def _baselines(feats: pl.DataFrame) -> pl.DataFrame:
    """The baseline scores (higher = more loans expected): an author not seen before scores 0, a class
    without a closed window the global mean, a title without a publication year ranks last."""
    g = pl.col("global_first_year_mean")
    return feats.select(
        "title_id",
        pl.col("author_loans_per_title").fill_null(0.0).alias("author_loans_per_title"),
        pl.col("class_mean").fill_null(g).fill_nan(g).alias("class_mean"),
        (-pl.col("pub_age")).fill_null(pl.col("pub_age").max().neg() - 1.0).alias("newest_first"),
        g.alias("global_mean"),
    )


def predict_at(
    events: pl.DataFrame, catalogue: pl.DataFrame, t: datetime, titles: pl.Series, cfg: ReplayConfig
) -> pl.DataFrame:
    """Scores of ``titles`` at origin ``t``: the model and every baseline (columns :data:`SCORERS`).

    The first step drops every event at or after ``t``: nothing later can change a score."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    past = events.filter(pl.col("occurred_at") < t)
    feats = features_at(past, catalogue, t, titles, cfg)
    train = _training_rows(past, catalogue, t, cfg)
    out = _baselines(feats)
    if train.height < 2:
        raise InvalidInput(f"replay origin {t:%Y-%m-%d}: {train.height} earlier acquisitions with a closed window")
    x_train, x_pred = _matrix(train), _matrix(feats)
    # A feature with no value yet (no closed window before the first origins) cannot be binned.
    empty = np.isnan(x_train).all(axis=0)
    x_train[:, empty], x_pred[:, empty] = 0.0, 0.0
    monotone = [cfg.monotone.get(name, 0) for name in FEATURES]
    params = {**cfg.model_params, "monotonic_cst": monotone}
    seed = params.pop("random_state", 0)
    # A few thousand rows: one thread is faster than OpenMP's spin-waits on a busy machine.
    with threadpool_limits(1):
        predicted = np.mean(
            [
                HistGradientBoostingRegressor(**params, random_state=seed + i)
                .fit(x_train, train["label"].to_numpy())
                .predict(x_pred)
                for i in range(cfg.bags)
            ],
            axis=0,
        )
    return out.with_columns(pl.Series("model", predicted)).select("title_id", *SCORERS)


def _matrix(frame: pl.DataFrame) -> np.ndarray:
    return frame.select(pl.col(FEATURES).cast(pl.Float64).fill_null(float("nan"))).to_numpy()


def acquisitions(events: pl.DataFrame, t: datetime, cfg: ReplayConfig) -> pl.DataFrame:
    """The titles first seen in ``[t, t + period)``: ``title_id``, ``label`` (events in the horizon from the
    first event) and ``early_borrowers`` (distinct readers in the first ``early_days``; sees the future)."""
    end = cfg.period_end(t)
    early = timedelta(days=cfg.early_days)
    firsts = first_year_events(events, cfg.horizon_days).filter(pl.col("first_at").is_between(t, end, closed="left"))
    borrowers = (
        events.join(firsts.select("title_id", "first_at"), on="title_id", how="inner")
        .filter(pl.col("occurred_at") < pl.col("first_at") + early)
        .group_by("title_id")
        .agg(pl.col("reader_id").n_unique().cast(pl.Float64).alias("early_borrowers"))
    )
    return firsts.join(borrowers, on="title_id", how="left").select("title_id", "label", "early_borrowers")


def replay(
    events: pl.DataFrame,
    catalogue: pl.DataFrame,
    cfg: ReplayConfig,
    progress: Callable[[int, int, datetime], None] | None = None,
) -> pl.DataFrame:
    """Every origin's acquisitions with their label, scores and reference: one row per (origin, title)."""
    origins = cfg.origins()
    frames = []
    for i, t in enumerate(origins):
        acq = acquisitions(events, t, cfg)
        if progress is not None:
            progress(i, len(origins), t)
        if acq.height < 2:
            _log.info("origin %s: %d acquisitions, skipped", t, acq.height)
            continue
        scores = predict_at(events, catalogue, t, acq["title_id"], cfg)
        frames.append(acq.join(scores, on="title_id").with_columns(pl.lit(t).alias("origin")))
    if not frames:
        raise InvalidInput("replay: no origin has two or more acquisitions")
    return pl.concat(frames).sort("origin", "title_id")


#: Default held-out origins per real data set: every year whose 12-month windows close inside the data
#: (SCO lends until the shop closed in December 1941; MovieLens ratings end in September 2018).
DEFAULT_ORIGINS: dict[str, tuple[datetime, datetime]] = {
    "sco": (datetime(1922, 1, 1), datetime(1940, 1, 1)),
    "movielens": (datetime(1998, 1, 1), datetime(2016, 1, 1)),
}


def load_replay_data(
    kind: str, path: str | Path | None = None, cache_dir: str | Path | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(events, catalogue)`` of a real data set: events ``reader_id, title_id, occurred_at``; catalogue
    ``title_id, author, classes (list), pub_year``. SCO classes are the CLC class and the SCO format;
    MovieLens classes are the genres of ``movies.csv`` and ``pub_year`` the release year in the title."""
    from features.datasets import DEFAULT_PATHS, SHARED_DATA, load_dataset

    if kind not in DEFAULT_ORIGINS:
        raise InvalidInput(f"--data must be one of {', '.join(DEFAULT_ORIGINS)}, not {kind!r}")
    ds = load_dataset(kind, path=path, cache_dir=cache_dir)
    events = ds.interactions.select("reader_id", "title_id", "occurred_at").collect()
    titles = ds.titles
    if kind == "sco":
        classes = pl.concat_list("clc_class", "subjects").list.drop_nulls()
        return events, titles.select(
            "title_id", "author", classes.alias("classes"), pl.col("pub_year").cast(pl.Float64)
        )
    src = Path(path) if path is not None else SHARED_DATA / DEFAULT_PATHS[kind]
    found = [src / name for name in ("movies.csv", "movies.csv.gz") if (src / name).exists()]
    if not found:
        raise InvalidInput(f"{src / 'movies.csv'}: file not found (the MovieLens genres and release years)")
    movies = pl.read_csv(found[0], schema_overrides={"movieId": pl.String})
    return events, movies.select(
        pl.col("movieId").alias("title_id"),
        pl.lit(None, dtype=pl.String).alias("author"),
        pl.col("genres").str.split("|").alias("classes"),
        pl.col("title").str.extract(r"\((\d{4})\)\s*$").cast(pl.Float64).alias("pub_year"),
    )
