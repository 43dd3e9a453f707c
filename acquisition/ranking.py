"""Rank a batch of online "you choose, I buy" requests against the budget and the collection's gaps.

:func:`rank_batch` checks every line against the programme rules (:mod:`acquisition.rules`, plus the
collection and duplicate rules over the whole batch), predicts each eligible line's loans in the next
year (:mod:`acquisition.demand`), multiplies by the gap multiplier of the requester's district and the
book's CLC class (:mod:`acquisition.gaps`), and selects within the budget (:mod:`acquisition.optimize`).
Ineligible lines are listed with their reason codes and never selected. Each line carries reasons a
librarian can read. :func:`save_run` persists a run to the ``acquisition_runs`` / ``run_lines`` tables.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from acquisition.demand import YEAR, ContentNeighbours, DemandModel, DemandParams, History, horizon, predict_requests
from acquisition.gaps import gap_table
from acquisition.optimize import EqualisationMode, Selection, SelectionProblem, select_fcfs, select_greedy, select_milp
from acquisition.policy import Policy
from acquisition.rules import Reason, book_violations
from features.schema import clc_top, scan_table

_log = logging.getLogger(__name__)

Method = Literal["milp", "greedy", "fcfs"]


@dataclass
class BatchParams:
    """How a batch is ranked (the policy holds the programme rules; these are the ranking's knobs)."""

    method: Method = "milp"
    #: Lines one reader may have bought in one batch, books.
    reader_cap: int | None = 2
    #: Copies of one ISBN bought in one batch, copies (the policy's default network threshold K = 3).
    title_cap: int | None = 3
    #: Value of each further copy of an ISBN relative to the previous one (diminishing returns).
    extra_copy_factor: float = 0.3
    #: Max share of the budget per CLC top class (0..1; "*" = every class).
    class_cap_share: dict[str, float] = field(default_factory=lambda: {"*": 0.6})
    #: Max spend per bookstore, yuan ("*" = every bookstore).
    bookstore_cap: dict[str, float] = field(default_factory=dict)
    #: Budget line per district for this batch, yuan (e.g. the month's lines; empty = none).
    district_budget: dict[str, float] = field(default_factory=dict)
    #: Min share of the budget per district (0..1).
    district_min_share: dict[str, float] = field(default_factory=dict)
    #: Spend per registered reader within ± this of the city mean (see acquisition.optimize).
    equalisation_band: float = 0.10
    equalisation: EqualisationMode = "soft"
    #: Gap multiplier bounds.
    gap_floor: float = 0.5
    gap_cap: float = 2.0
    #: MILP time limit, seconds, and relative gap.
    time_limit: float = 60.0
    mip_rel_gap: float = 1e-3
    #: Add the recsys content model's ``content_rate`` to the demand features (TF-IDF fit, seconds).
    content_signal: bool = True
    demand: DemandParams = field(default_factory=DemandParams)


@dataclass
class RunResult:
    """One ranking run: a line per request and the selection's summary."""

    run_id: str
    created_at: datetime
    budget: float
    params: dict[str, Any]
    #: One row per request line (see :func:`rank_batch` for the columns).
    lines: pl.DataFrame
    selection: Selection
    #: The request lines as given (purchase_requests schema), so a run can register them in the DB.
    requests: pl.DataFrame | None = None

    def summary(self) -> dict[str, Any]:
        sel = self.lines.filter(pl.col("selected"))
        return {
            "run_id": self.run_id,
            "method": self.selection.method,
            "lines": self.lines.height,
            "eligible": int(self.lines["eligible"].sum()),
            "selected": sel.height,
            "spend_yuan": round(float(sel["price"].sum()), 2),
            "budget_yuan": round(self.budget, 2),
            "predicted_loans": round(float(sel["predicted_loans"].sum()), 1),
            "solver_status": self.selection.status,
            "seconds": round(self.selection.seconds, 3),
        }


def _reader_district(data_dir: str | Path) -> pl.DataFrame:
    branches = scan_table(data_dir, "branches").select(pl.col("branch_id").alias("home_branch_id"), "district")
    readers = scan_table(data_dir, "readers")
    cols = readers.collect_schema().names()
    extra = [c for c in ("blocked", "credit_level") if c in cols]
    return readers.select("reader_id", "home_branch_id", *extra).join(branches, on="home_branch_id").collect()


def _eligibility(requests: pl.DataFrame, data_dir: str | Path, policy: Policy, as_of: datetime) -> pl.DataFrame:
    """Add ``isbn13``, ``district`` and ``reason_codes`` (list, empty = eligible)."""
    checked = book_violations(requests, policy, year=as_of.year)
    readers = _reader_district(data_dir)
    copies = (
        scan_table(data_dir, "copies")
        .filter(~pl.col("status").is_in(["lost", "withdrawn"]))
        .join(scan_table(data_dir, "titles").select("title_id", pl.col("isbn13").alias("held_isbn")), on="title_id")
        .group_by("held_isbn")
        .agg(pl.len().alias("network_copies"))
        .collect()
    )
    checked = checked.join(readers, on="reader_id", how="left").join(
        copies, left_on="isbn13", right_on="held_isbn", how="left"
    )
    names = checked.columns
    blocked = pl.col("blocked").fill_null(False) if "blocked" in names else pl.lit(False)
    credit_low = (
        (pl.col("credit_level").fill_null(5) < policy.min_credit_level) if "credit_level" in names else pl.lit(False)
    )
    dup = pl.col("isbn13").is_not_null() & (pl.int_range(pl.len()).over(["reader_id", "isbn13"]) > 0)
    extra = [
        (pl.col("district").is_null(), Reason.READER_UNKNOWN),
        (blocked, Reason.READER_BLOCKED),
        (credit_low, Reason.READER_CREDIT_LOW),
        (pl.col("network_copies").fill_null(0) >= policy.network_copy_threshold, Reason.ALREADY_HELD),
        (dup, Reason.DUPLICATE_PENDING),
    ]
    more = pl.concat_list(
        [pl.when(c).then(pl.lit([r.value])).otherwise(pl.lit([], dtype=pl.List(pl.String))) for c, r in extra]
    )
    return checked.sort("requested_at").with_columns(pl.concat_list("reason_codes", more).alias("reason_codes"))


def _calibration_cutoff(history: History, as_of: datetime, params: DemandParams) -> datetime:
    """Latest cut-off whose calibration targets end before ``as_of`` (no look-ahead); clamped to
    half a year after the first loan so that the features have some history."""
    latest = as_of - (horizon(as_of, params) - as_of)
    first = history.loans["borrowed_at"].min() + timedelta(days=182)
    return max(latest, first)


def rank_batch(
    requests: pl.DataFrame,
    data_dir: str | Path,
    policy: Policy,
    budget: float,
    params: BatchParams | None = None,
    *,
    as_of: datetime | None = None,
    demand_model: DemandModel | None = None,
    history: History | None = None,
    gaps: pl.DataFrame | None = None,
    content: ContentNeighbours | None = None,
    labels: pl.DataFrame | None = None,
) -> RunResult:
    """Rank and select a batch of requests (``purchase_requests`` schema) within ``budget`` yuan.

    ``as_of`` (default: the latest request) is the decision time; only history before it is read.
    Returns a :class:`RunResult` whose ``lines`` has, per request: ``rank`` (1 = best; selected lines
    first), ``selected``, ``eligible``, ``reason_codes``, ``predicted_loans`` (loans in the next
    year), ``gap_multiplier``, ``value``, ``price`` (yuan), ``district``, ``clc_top``,
    ``requester_count`` and ``reasons`` (readable text).

    ``demand_model``, ``history``, ``gaps`` and ``content`` (:class:`ContentNeighbours`) may be
    passed in to reuse them across batches. Without a model one is calibrated: on ``labels``
    (``isbn``, ``loans``: first-year loans of past purchases) when given, at ``as_of - 365 days``,
    else on catalogue arrivals.
    """
    params = params or BatchParams()
    if requests.is_empty():
        raise ValueError("rank_batch: the batch has no request lines")
    as_of = as_of or requests["requested_at"].max()
    history = history or History.load(data_dir)
    history = history.before(as_of)
    if content is None and params.content_signal:
        content = ContentNeighbours(params.demand.k_content).fit(history.titles)
    lines = _eligibility(requests, data_dir, policy, as_of).with_columns(
        clc_top(pl.col("clc_class").fill_null("")).alias("clc_top"),
        (pl.col("reason_codes").list.len() == 0).alias("eligible"),
    )
    if demand_model is None and labels is not None:
        demand_model = DemandModel(params.demand).fit(history.before(as_of - YEAR), as_of - YEAR, labels, content)
    elif demand_model is None:
        cutoff = _calibration_cutoff(history, as_of, params.demand)
        demand_model = DemandModel(params.demand).fit(history, cutoff, content=content)
    eligible = lines.filter(pl.col("eligible"))
    demand = predict_requests(
        eligible.with_columns(pl.col("isbn13").alias("isbn")), history, as_of, demand_model, content
    )
    if gaps is None:
        gaps = gap_table(data_dir, as_of=as_of, multiplier_floor=params.gap_floor, multiplier_cap=params.gap_cap)
    lines = (
        lines.join(
            demand.select(pl.col("isbn").alias("isbn13"), "predicted_loans", "cf_affinity", "class_rate"),
            on="isbn13",
            how="left",
        )
        .join(
            gaps.select(pl.col("district"), pl.col("top").alias("clc_top"), "gap_multiplier", "holds_per_copy"),
            on=["district", "clc_top"],
            how="left",
        )
        .with_columns(
            pl.col("gap_multiplier").fill_null(1.0),
            pl.col("reader_id").n_unique().over("isbn13").alias("requester_count"),
            # arrival rank of the line among eligible lines of its ISBN: later copies are worth less
            pl.int_range(pl.len()).over(["isbn13", "eligible"]).alias("copy_rank"),
        )
        .with_columns(
            pl.when(pl.col("eligible"))
            .then(
                pl.col("predicted_loans")
                * pl.col("gap_multiplier")
                * pl.lit(params.extra_copy_factor).pow(pl.col("copy_rank"))
            )
            .otherwise(0.0)
            .alias("value")
        )
    )
    elig = lines.filter(pl.col("eligible"))
    problem = build_problem(elig, district_readers(data_dir), params, budget)
    if params.method == "milp":
        selection = select_milp(problem, time_limit=params.time_limit, mip_rel_gap=params.mip_rel_gap)
    elif params.method == "greedy":
        selection = select_greedy(problem)
    else:
        selection = select_fcfs(problem)
    chosen = pl.DataFrame({"request_id": elig["request_id"], "selected": selection.selected})
    lines = (
        lines.join(chosen, on="request_id", how="left")
        .with_columns(pl.col("selected").fill_null(False))
        .sort(["selected", "eligible", "value"], descending=[True, True, True], nulls_last=True)
        .with_columns(pl.int_range(1, pl.len() + 1).alias("rank"), _reasons_expr(params).alias("reasons"))
    )
    run = RunResult(
        run_id=f"run-{as_of:%Y%m%d}-{uuid.uuid4().hex[:8]}",
        created_at=datetime.now(),
        budget=float(budget),
        params={k: v for k, v in asdict(params).items()},
        lines=lines.select(
            "rank",
            "request_id",
            "selected",
            "eligible",
            "reason_codes",
            "predicted_loans",
            "gap_multiplier",
            "value",
            "price",
            "isbn13",
            "district",
            "clc_top",
            "bookstore_id",
            "reader_id",
            "requester_count",
            "requested_at",
            "reasons",
        ),
        selection=selection,
        requests=requests,
    )
    _log.info("rank_batch: %s", run.summary())
    return run


def build_problem(
    eligible: pl.DataFrame, district_readers: dict[str, int], params: BatchParams, budget: float
) -> SelectionProblem:
    """The selection problem of the eligible lines of a batch (columns as in :func:`rank_batch`)."""
    return SelectionProblem(
        value=eligible["value"].to_numpy(),
        price=eligible["price"].to_numpy(),
        budget=float(budget),
        district=eligible["district"].to_numpy(),
        clc_top=eligible["clc_top"].to_numpy(),
        bookstore=eligible["bookstore_id"].to_numpy(),
        reader=eligible["reader_id"].to_numpy(),
        isbn=eligible["isbn13"].to_numpy(),
        arrival=eligible["requested_at"].dt.epoch("us").to_numpy(),
        district_min_share=params.district_min_share,
        class_cap_share=params.class_cap_share,
        bookstore_cap=params.bookstore_cap,
        district_budget=params.district_budget,
        reader_cap=params.reader_cap,
        title_cap=params.title_cap,
        district_readers=district_readers,
        equalisation_band=params.equalisation_band,
        equalisation=params.equalisation,
    )


def district_readers(data_dir: str | Path) -> dict[str, int]:
    """Registered readers per district (by home branch)."""
    return dict(_reader_district(data_dir).group_by("district").len().iter_rows())


def _reasons_expr(params: BatchParams) -> pl.Expr:
    """A sentence per line a librarian can read (and a reader can be told)."""
    loans = pl.col("predicted_loans").round(1).cast(pl.String)
    gap = pl.col("gap_multiplier").round(2).cast(pl.String)
    demand = pl.format(
        "expected {} loans in the first year; {} reader(s) asked for it; {} gap x{} in {}",
        loans,
        pl.col("requester_count"),
        pl.col("clc_top"),
        gap,
        pl.col("district"),
    )
    return (
        pl.when(~pl.col("eligible"))
        .then(pl.format("not eligible: {}", pl.col("reason_codes").list.join(", ")))
        .when(pl.col("selected"))
        .then(pl.format("selected: {}", demand))
        .when(pl.col("copy_rank") > 0)
        .then(pl.format("not selected: another copy of this ISBN is in the batch; {}", demand))
        .otherwise(pl.format("not selected: budget or caps favour higher value per yuan; {}", demand))
    )


def save_run(session: Any, result: RunResult, created_by: str = "batch") -> int:
    """Persist a run to ``acquisition_runs`` and ``run_lines``; returns the number of lines written.

    Request lines not yet in ``purchase_requests`` (online requests usually are; a batch read from a
    data directory is not) are registered first as ``pending`` with their eligibility.
    """
    from sqlalchemy import insert, select

    from acquisition.db import AcquisitionRunRow, PurchaseRequestRow, RunLineRow

    ids = result.lines["request_id"].to_list()
    known = set(session.scalars(select(PurchaseRequestRow.request_id).where(PurchaseRequestRow.request_id.in_(ids))))
    if result.requests is not None and len(known) < len(ids):
        now = datetime.now()
        missing = (
            result.requests.filter(~pl.col("request_id").is_in(list(known)))
            .join(result.lines.select("request_id", "isbn13", "eligible", "reason_codes", "reasons"), on="request_id")
            .select(
                "request_id",
                pl.format("batch:{}", pl.col("request_id")).alias("idempotency_key"),
                "reader_id",
                "bookstore_id",
                "isbn",
                "isbn13",
                *[pl.col(c) for c in ("title", "author", "publisher", "clc_class") if c in result.requests.columns],
                *[pl.col("pub_year").cast(pl.Int64)] if "pub_year" in result.requests.columns else [],
                "category",
                (pl.col("price") * 100).round(0).cast(pl.Int64).alias("price_fen"),
                "channel",
                "requested_at",
                pl.lit("pending").alias("status"),
                "eligible",
                "reason_codes",
                pl.col("reasons").alias("message"),
                pl.lit(now).alias("decided_at"),
                pl.lit(now).alias("updated_at"),
            )
        )
        if missing.height:
            session.execute(insert(PurchaseRequestRow), missing.to_dicts())

    session.add(
        AcquisitionRunRow(
            run_id=result.run_id,
            created_by=created_by,
            created_at=result.created_at,
            params={"budget": result.budget, **_jsonable(result.params), "summary": result.summary()},
            status="draft",
        )
    )
    session.flush()
    rows = result.lines.select(
        pl.lit(result.run_id).alias("run_id"),
        "request_id",
        "rank",
        "selected",
        pl.col("predicted_loans").fill_nan(None),
        "value",
        pl.struct(
            pl.col("reason_codes").alias("codes"),
            pl.col("reasons").alias("text"),
            "gap_multiplier",
            "requester_count",
        ).alias("reasons"),
    ).to_dicts()
    if rows:
        session.execute(insert(RunLineRow), rows)
    return len(rows)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
