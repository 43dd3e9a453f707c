"""Rank a set of online "you choose, I buy" requests together against the budget and the collection's gaps.

:func:`rank_requests` checks every line against the programme rules (:mod:`acquisition.rules`, plus the
collection and duplicate rules over the whole set), predicts each eligible ISBN's first-year borrowing
intents (:mod:`acquisition.demand`), values each line as the loans its copy would serve on top of the
network's copies and the earlier lines of its ISBN (:mod:`acquisition.value`: capped by what a copy
can lend, the holds queue and readers who give up), and selects within the budget
(:mod:`acquisition.optimize`) on that value. The gap multiplier of the requester's district and the
book's CLC class (:mod:`acquisition.gaps`) is shown in the reasons, not optimised: the objective is
the loans the backtest grades.
Ineligible lines are listed with their reason codes and never selected. Each line carries reasons a
librarian can read. :func:`rank_pending` is the transparent fallback (demand per yuan) a staff round
uses when there is no loan history to model. Persisting a ranking as a staff round is
:func:`acquisition.rounds.save_round`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

from acquisition.demand import YEAR, ContentNeighbours, DemandModel, DemandParams, History, horizon, predict_requests
from acquisition.gaps import gap_table
from acquisition.optimize import EqualisationMode, Selection, SelectionProblem, select_fcfs, select_greedy, select_milp
from acquisition.policy import Policy
from acquisition.rules import DeclineCode, book_violations
from acquisition.value import Circulation, intent_interval, line_values
from features.names import CLC_TOP_ZH, DISTRICT_ZH
from features.schema import clc_top, scan_table

_log = logging.getLogger(__name__)

Method = Literal["milp", "greedy", "fcfs"]


@dataclass
class RankingParams:
    """How requests are ranked (the policy holds the programme rules; these are the ranking's knobs)."""

    method: Method = "milp"
    #: Lines one reader may have bought in one ranking, books.
    reader_cap: int | None = 2
    #: Copies of one ISBN bought in one ranking, copies (the policy's default network threshold K = 3).
    title_cap: int | None = 3
    #: How a copy circulates (loan days, turnaround, patience on a hold); None = estimated from the
    #: loans before the decision (:meth:`acquisition.value.Circulation.from_loans`).
    circulation: Circulation | None = None
    #: Language of the reasons shown to staff: "zh-CN" (default) or "en".
    lang: Literal["zh-CN", "en"] = "zh-CN"
    #: Max share of the budget per CLC top class (0..1; "*" = every class).
    class_cap_share: dict[str, float] = field(default_factory=lambda: {"*": 0.6})
    #: Max spend per bookstore, yuan ("*" = every bookstore).
    bookstore_cap: dict[str, float] = field(default_factory=dict)
    #: Budget line per district for this ranking, yuan (e.g. the month's lines; empty = none).
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
class RankingResult:
    """One ranking: a line per request and the selection's summary (saved as a staff round by
    :func:`acquisition.rounds.save_round`)."""

    round_id: str
    created_at: datetime
    budget: float
    params: dict[str, Any]
    #: One row per request line (see :func:`rank_requests` for the columns).
    lines: pl.DataFrame
    selection: Selection
    #: The request lines as given (purchase_requests schema), so a round can register them in the DB.
    requests: pl.DataFrame | None = None
    #: How copies were assumed to circulate (capacity, patience) when the lines were valued.
    circulation: Circulation | None = None

    def summary(self) -> dict[str, Any]:
        sel = self.lines.filter(pl.col("selected"))
        return {
            "round_id": self.round_id,
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
    extra = [c for c in ("blocked", "credit_level", "registered_at") if c in cols]
    return readers.select("reader_id", "home_branch_id", *extra).join(branches, on="home_branch_id").collect()


def _readers_as_of(readers: pl.DataFrame, history: History, as_of: datetime) -> pl.DataFrame:
    """Reader state at ``as_of`` from the past alone: readers registered by then; blocked when they
    hold a loan overdue at ``as_of`` (the table's ``blocked`` and ``credit_level`` are today's state,
    so they are not used; the credit level of the past is not recorded)."""
    if "registered_at" in readers.columns:
        readers = readers.filter(
            pl.col("registered_at").is_null() | (pl.col("registered_at").cast(pl.Date) < as_of.date())
        )
    readers = readers.drop([c for c in ("blocked", "credit_level") if c in readers.columns])
    if "due_at" not in history.loans.columns:
        return readers
    overdue = history.loans.filter((pl.col("due_at") < as_of) & pl.col("returned_at").is_null())
    return readers.with_columns(pl.col("reader_id").is_in(overdue["reader_id"].unique().implode()).alias("blocked"))


def _network_copies(data_dir: str | Path, history: History | None) -> pl.DataFrame:
    """``held_isbn, network_copies``: today's copies not lost or withdrawn, or (point in time) the
    copies ``history`` knows were acquired by then (whether one is lost later is not known then)."""
    if history is not None:
        copies, titles = history.copies.lazy(), history.titles.lazy()
    else:
        copies = scan_table(data_dir, "copies").filter(~pl.col("status").is_in(["lost", "withdrawn"]))
        titles = scan_table(data_dir, "titles")
    return (
        copies.join(titles.select("title_id", pl.col("isbn13").alias("held_isbn")), on="title_id")
        .group_by("held_isbn")
        .agg(pl.len().alias("network_copies"))
        .collect()
    )


def _eligibility(
    requests: pl.DataFrame, data_dir: str | Path, policy: Policy, as_of: datetime, past: History | None = None
) -> pl.DataFrame:
    """Add ``isbn13``, ``district`` and ``reason_codes`` (list, empty = eligible). With ``past`` (the
    history before ``as_of``) every fact is as of ``as_of``: copies, reader registration and blocks."""
    checked = book_violations(requests, policy, year=as_of.year)
    readers = _reader_district(data_dir)
    if past is not None:
        readers = _readers_as_of(readers, past, as_of)
    copies = _network_copies(data_dir, past)
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
        (pl.col("district").is_null(), DeclineCode.READER_UNKNOWN),
        (blocked, DeclineCode.READER_BLOCKED),
        (credit_low, DeclineCode.READER_CREDIT_LOW),
        (pl.col("network_copies").fill_null(0) >= policy.network_copy_threshold, DeclineCode.ALREADY_HELD),
        (dup, DeclineCode.DUPLICATE_PENDING),
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


def rank_requests(
    requests: pl.DataFrame,
    data_dir: str | Path,
    policy: Policy,
    budget: float,
    params: RankingParams | None = None,
    *,
    as_of: datetime | None = None,
    demand_model: DemandModel | None = None,
    history: History | None = None,
    gaps: pl.DataFrame | None = None,
    content: ContentNeighbours | None = None,
    labels: pl.DataFrame | None = None,
    point_in_time: bool = False,
    per_line: bool = False,
) -> RankingResult:
    """Rank and select requests (``purchase_requests`` schema) together within ``budget`` yuan.

    ``as_of`` (default: the latest request) is the decision time; only history before it is read.
    Returns a :class:`RankingResult` whose ``lines`` has, per request: ``rank`` (1 = best; selected lines
    first), ``selected``, ``eligible``, ``reason_codes``, ``predicted_intents`` (first-year borrowing
    intents of the ISBN, ``intents_lo``/``intents_hi`` its 80 % interval), ``predicted_loans`` (loans
    the line's copy adds in the first year, ``loans_lo``/``loans_hi``), ``capacity`` (loans one copy
    can serve a year), ``expected_queue``, ``copy_rank``, ``gap_multiplier``, ``value``, ``price`` (yuan), ``district``, ``clc_top``,
    ``requester_count`` and ``reasons`` (readable text).

    ``demand_model``, ``history``, ``gaps`` and ``content`` (:class:`ContentNeighbours`) may be
    passed in to reuse them across rankings. Without a model one is calibrated: on ``labels``
    (``isbn``, ``loans``: first-year loans of past purchases) when given, at ``as_of - 365 days``,
    else on catalogue arrivals.

    ``point_in_time`` (the backtest) takes every fact as of ``as_of`` from ``history``: copies
    acquired by then, reader state then (:func:`_readers_as_of`). ``per_line`` values each line as
    if it were alone (a counter request decided on arrival does not know who asks later).
    """
    params = params or RankingParams()
    if requests.is_empty():
        raise ValueError("rank_requests: there are no request lines to rank")
    as_of = as_of or requests["requested_at"].max()
    history = history or History.load(data_dir)
    history = history.before(as_of)
    if content is None and params.content_signal:
        content = ContentNeighbours(params.demand.k_content).fit(history.titles)
    past = history if point_in_time else None
    lines = _eligibility(requests, data_dir, policy, as_of, past).with_columns(
        clc_top(pl.col("clc_class").fill_null("")).alias("clc_top"),
        (pl.col("reason_codes").list.len() == 0).alias("eligible"),
    )
    if demand_model is None:
        demand_model = _calibrated_model(history, as_of, params, content, labels)
    if gaps is None:
        gaps = gap_table(data_dir, as_of=as_of, multiplier_floor=params.gap_floor, multiplier_cap=params.gap_cap)
    circulation = with_model_uncertainty(
        params.circulation or Circulation.from_loans(history.loans, as_of), demand_model
    )
    lines = _valued(
        lines, history, as_of, demand_model, content, gaps, replace(params, circulation=circulation), per_line
    )
    elig = lines.filter(pl.col("eligible"))
    readers = district_readers(data_dir, as_of if point_in_time else None)
    selection = _select(build_problem(elig, readers, params, budget), params)
    chosen = pl.DataFrame({"request_id": elig["request_id"], "selected": selection.selected})
    lines = (
        lines.join(chosen, on="request_id", how="left")
        .with_columns(pl.col("selected").fill_null(False))
        .sort(["selected", "eligible", "value"], descending=[True, True, True], nulls_last=True)
        .with_columns(pl.int_range(1, pl.len() + 1).alias("rank"), _reasons_expr(params).alias("reasons"))
    )
    result = RankingResult(
        round_id=f"round-{as_of:%Y%m%d}-{uuid.uuid4().hex[:8]}",
        created_at=datetime.now(),
        budget=float(budget),
        params={k: v for k, v in asdict(params).items()},
        lines=lines.select(*LINE_COLUMNS),
        selection=selection,
        requests=requests,
        circulation=circulation,
    )
    _log.info("rank_requests: %s", result.summary())
    return result


#: Columns of :attr:`RankingResult.lines`, in order.
LINE_COLUMNS = (
    "rank",
    "request_id",
    "selected",
    "eligible",
    "reason_codes",
    "predicted_intents",
    "intents_lo",
    "intents_hi",
    "predicted_loans",
    "loans_lo",
    "loans_hi",
    "capacity",
    "expected_queue",
    "copy_rank",
    "network_copies",
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
)


def with_model_uncertainty(circulation: Circulation, model: DemandModel) -> Circulation:
    """``circulation`` with the rate uncertainty the demand model measured on its own training cases
    (:attr:`DemandModel.dispersion_`), so the values and the 80 % intervals staff see are as wide as
    the model's real errors (a fixed shape of 4 covered 34 % of true intents on the city backtest)."""
    measured = getattr(model, "dispersion_", None)
    return circulation if measured is None else replace(circulation, dispersion=round(float(measured), 3))


def _calibrated_model(
    history: History,
    as_of: datetime,
    params: RankingParams,
    content: ContentNeighbours | None,
    labels: pl.DataFrame | None,
) -> DemandModel:
    """A demand model fitted on past purchases' first-year loans (``labels``), else on catalogue arrivals."""
    if labels is not None:
        return DemandModel(params.demand).fit(history.before(as_of - YEAR), as_of - YEAR, labels, content)
    cutoff = _calibration_cutoff(history, as_of, params.demand)
    return DemandModel(params.demand).fit(history, cutoff, content=content)


def _valued(
    lines: pl.DataFrame,
    history: History,
    as_of: datetime,
    demand_model: DemandModel,
    content: ContentNeighbours | None,
    gaps: pl.DataFrame,
    params: RankingParams,
    per_line: bool = False,
) -> pl.DataFrame:
    """Lines with ``predicted_intents`` (first-year borrowing intents of the ISBN, and their 80 %
    interval), ``copy_rank`` (earlier eligible lines of the ISBN), the copy's first-year loans
    (:func:`acquisition.value.line_values`: ``predicted_loans``, ``loans_lo``/``loans_hi``,
    ``expected_queue``, ``capacity``) on top of the network's copies, ``gap_multiplier`` (shown, not
    optimised) and ``value`` = ``predicted_loans`` (0 if ineligible)."""
    eligible = lines.filter(pl.col("eligible"))
    key = "request_id" if per_line else "isbn13"
    demand = predict_requests(
        eligible.with_columns(pl.col("isbn13").alias("isbn")), history, as_of, demand_model, content, per_line
    )
    lines = (
        lines.join(
            demand.select(pl.col("case_id").alias(key), pl.col("predicted_loans").alias("predicted_intents")),
            on=key,
            how="left",
        )
        .join(
            gaps.select(pl.col("district"), pl.col("top").alias("clc_top"), "gap_multiplier", "holds_per_copy"),
            on=["district", "clc_top"],
            how="left",
        )
        .with_columns(
            pl.col("gap_multiplier").fill_null(1.0),
            pl.col("predicted_intents").fill_null(0.0),
            # requesters known when the line is decided: all of the batch's, or (on arrival) the earlier ones
            (
                pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).over("isbn13", order_by="requested_at")
                if per_line
                else pl.col("reader_id").n_unique().over("isbn13")
            ).alias("requester_count"),
            # copy 1, 2, 3... of the ISBN among the eligible lines: cheapest first (optimize.copy_order)
            pl.col("price")
            .rank("ordinal")
            .over(["isbn13", "eligible"], order_by="requested_at")
            .sub(1)
            .cast(pl.Int64)
            .alias("copy_rank"),
        )
    )
    circ = params.circulation or Circulation.from_loans(history.loans, as_of)
    lam = lines["predicted_intents"].to_numpy()
    before = lines["network_copies"].fill_null(0).to_numpy() + lines["copy_rank"].to_numpy()
    lo, hi = intent_interval(lam, circ)
    return lines.hstack(line_values(lam, before, circ)).with_columns(
        pl.Series("intents_lo", lo),
        pl.Series("intents_hi", hi),
        pl.when(pl.col("eligible")).then(pl.col("predicted_loans")).otherwise(0.0).alias("value"),
    )


def _select(problem: SelectionProblem, params: RankingParams) -> Selection:
    if params.method == "milp":
        return select_milp(problem, time_limit=params.time_limit, mip_rel_gap=params.mip_rel_gap)
    if params.method == "greedy":
        return select_greedy(problem)
    return select_fcfs(problem)


def build_problem(
    eligible: pl.DataFrame, district_readers: dict[str, int], params: RankingParams, budget: float
) -> SelectionProblem:
    """The selection problem of the eligible lines of a ranking (columns as in :func:`rank_requests`)."""
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


def district_readers(data_dir: str | Path, as_of: datetime | None = None) -> dict[str, int]:
    """Registered readers per district (by home branch); with ``as_of``, those registered before it."""
    readers = _reader_district(data_dir)
    if as_of is not None and "registered_at" in readers.columns:
        readers = readers.filter(
            pl.col("registered_at").is_null() | (pl.col("registered_at").cast(pl.Date) < as_of.date())
        )
    return dict(readers.group_by("district").len().iter_rows())


#: Reason sentences shown to staff, zh-CN first, English by ``RankingParams.lang``. Every figure can be
#: checked: the loans the copy adds, their range, one copy's capacity, the queue, the requesters.
REASON_TEXT = {
    "zh-CN": {
        "demand": "预计首年借阅 {} 次（区间 {}–{}；一册最多约 {} 次；想借约 {} 人次）；约 {} 位读者需排队；{} 位读者推荐",
        "extra": "第 {} 册：预计首年再增加借阅 {} 次（区间 {}–{}；一册最多约 {} 次；想借约 {} 人次）；约 {} 位读者仍需排队；{} 位读者推荐",
        "gap": "；{}（{}类）在{}的馆藏缺口系数 {}",
        "gap_high": "：该区此类借阅需求高于馆藏",
        "gap_low": "：该区此类馆藏相对充足",
        "gap_even": "：与全市持平",
        "ineligible": "不符合条件：{}",
        "selected": "入选：",
        "another": "未入选：本批已有此书的其他副本；",
        "budget": "未入选：预算或限额优先给每元借阅更多的书；",
    },
    "en": {
        "demand": "expected {} loans in the first year (range {}-{}; one copy can serve ~{}; ~{} readers want it); "
        "about {} readers would queue; {} reader(s) asked for it",
        "extra": "copy {}: expected {} more loans in the first year (range {}-{}; one copy can serve ~{}; ~{} readers want it); "
        "about {} readers would still queue; {} reader(s) asked for it",
        "gap": "; collection gap x{} for class {} in {}",
        "gap_high": ": demand for the class outruns its copies there",
        "gap_low": ": the class is well stocked there",
        "gap_even": ": in line with the city",
        "ineligible": "not eligible: {}",
        "selected": "selected: ",
        "another": "not selected: another copy of this ISBN is among these requests; ",
        "budget": "not selected: budget or caps favour more loans per yuan; ",
    },
}


def _reasons_expr(params: RankingParams) -> pl.Expr:
    """A sentence per line a librarian can check (and a reader can be told), in ``params.lang``."""
    t = REASON_TEXT[params.lang]
    whole = [pl.col(c).round(0).cast(pl.Int64).cast(pl.String) for c in ("loans_lo", "loans_hi", "capacity")]
    loans = pl.col("predicted_loans").round(0).cast(pl.Int64).cast(pl.String)
    queue = pl.col("expected_queue").round(0).cast(pl.Int64).cast(pl.String)
    wants = pl.col("predicted_intents").round(0).cast(pl.Int64).cast(pl.String)
    first = pl.format(t["demand"], loans, *whole, wants, queue, pl.col("requester_count"))
    copy_no = pl.col("copy_rank") + pl.col("network_copies").fill_null(0) + 1
    extra = pl.format(t["extra"], copy_no, loans, *whole, wants, queue, pl.col("requester_count"))
    gap = pl.col("gap_multiplier").round(2).cast(pl.String)
    if params.lang == "en":
        gap_args = (gap, pl.col("clc_top"), pl.col("district"))
    else:
        name = pl.col("clc_top").replace_strict(CLC_TOP_ZH, default=pl.col("clc_top"), return_dtype=pl.String)
        district = pl.col("district").replace_strict(DISTRICT_ZH, default=pl.col("district"), return_dtype=pl.String)
        gap_args = (name, pl.col("clc_top"), district, gap)
    level = (
        pl.when(pl.col("gap_multiplier") >= 1.05)
        .then(pl.lit(t["gap_high"]))
        .when(pl.col("gap_multiplier") <= 0.95)
        .then(pl.lit(t["gap_low"]))
        .otherwise(pl.lit(t["gap_even"]))
    )
    demand = pl.concat_str(
        pl.when(pl.col("copy_rank") + pl.col("network_copies").fill_null(0) > 0).then(extra).otherwise(first),
        pl.format(t["gap"], *gap_args),
        level,
    )
    return (
        pl.when(~pl.col("eligible"))
        .then(pl.format(t["ineligible"], pl.col("reason_codes").list.join(", ")))
        .when(pl.col("selected"))
        .then(pl.concat_str(pl.lit(t["selected"]), demand))
        .when(pl.col("copy_rank") > 0)
        .then(pl.concat_str(pl.lit(t["another"]), demand))
        .otherwise(pl.concat_str(pl.lit(t["budget"]), demand))
    )


# --- the transparent fallback: demand per yuan ---------------------------------------------------------


def rank_pending(requests: pl.DataFrame, budget_fen: int, demand: dict[str, float]) -> pl.DataFrame:
    """Rank pending requests (``request_id, reader_id, isbn13, clc_class, price_fen``) by demand per yuan.

    Demand is the ISBN's distinct requesters x ``demand`` of its CLC top class (loans per copy
    relative to the city, :func:`acquisition.analytics.class_demand`; 1.0 when unknown). Returns the
    frame with ``rank`` (1 = buy first), ``value``, ``requesters``, ``class_demand``, ``selected``
    (the prefix of the ranking that fits ``budget_fen``) and ``reasons`` (list of str).
    """
    lut = pl.DataFrame(
        {"letter": list(demand), "class_demand": list(demand.values())},
        schema={"letter": pl.String, "class_demand": pl.Float64},
    )
    ranked = (
        requests.lazy()
        .with_columns(
            pl.col("reader_id").n_unique().over(pl.col("isbn13").fill_null(pl.col("request_id"))).alias("requesters"),
            pl.col("clc_class").fill_null("").str.slice(0, 1).alias("letter"),
        )
        .join(lut.lazy(), on="letter", how="left")
        .with_columns(pl.col("class_demand").fill_null(1.0))
        .with_columns((pl.col("requesters") * pl.col("class_demand")).alias("value"))
        .with_columns((pl.col("value") / (pl.col("price_fen") / 100)).alias("per_yuan"))
        .sort(["per_yuan", "request_id"], descending=[True, False])
        .with_columns(
            pl.int_range(1, pl.len() + 1).alias("rank"),
            (pl.col("price_fen").cum_sum() <= budget_fen).alias("selected"),
        )
        .with_columns(_fallback_reasons().alias("reasons"))
        .drop("letter", "per_yuan")
        .collect()
    )
    return ranked


def _fallback_reasons() -> pl.Expr:
    return pl.concat_list(
        pl.format("{} reader(s) asked for this book", pl.col("requesters")),
        pl.when(pl.col("letter") != "")
        .then(pl.format("class {}: {}x the city's loans per copy", pl.col("letter"), pl.col("class_demand").round(2)))
        .otherwise(pl.lit("class unknown: city average demand assumed")),
        pl.format("{} yuan", (pl.col("price_fen") / 100).round(2)),
        pl.when(pl.col("selected")).then(pl.lit("fits the round budget")).otherwise(pl.lit("beyond the round budget")),
    )
