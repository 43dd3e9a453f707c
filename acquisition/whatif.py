"""A programme year replayed on arrival under a policy: fcfs, paced and the hindsight oracle, and the
what-if of one policy against another (issue 15 §2 and §4).

The year is :func:`acquisition.backtest.prepare_replay`'s held-out year with every request valued as
of its month's start (``on_arrival=True``: what the counter knows then). Each district has an annual
fund, the year's budget split by registered readers (the equalisation instrument, docs/funds.md).
Requests are decided one by one in arrival order (:func:`run_year`): a request is bought when its
district's fund has the money, the reader's monthly limit and the title's copy cap allow it and,
under ``paced``, :func:`acquisition.pacing.pace` approves it against the fund's bid price, whose
forecast is the fund's own arrivals so far (data known at t only), refreshed daily. The hindsight
oracle is the MILP over the whole year at the truth's intents within the same district funds.

Every run is scored by the loans its copies serve at the truth's intents (capacity-aware,
:func:`acquisition.backtest.served_score`), the requesters served, spend by month, the date money
runs out and the fill rate per resident of each district against the city mean.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from acquisition.backtest import Replay, served_score
from acquisition.funds import split_fen
from acquisition.pacing import Forecast, assess, plan_share
from acquisition.policy import MAX_PRICE_YUAN, Category, Policy
from acquisition.value import copy_value

_log = logging.getLogger(__name__)

#: The city's money "runs out" when what is left falls under this share of the year's budget.
EXHAUSTED_SHARE = 0.02
#: Copies of one ISBN the programme buys at most in the year (as the backtest).
TITLE_CAP = 3


@dataclass
class YearRun:
    """One policy's year: which lines it bought and why the others were not."""

    name: str
    budget: float
    chosen: np.ndarray
    #: Eligible lines declined because the fund had no room.
    no_money: np.ndarray
    #: Eligible lines declined by pacing (below the bid price or over the month ceiling).
    paced_out: np.ndarray
    funds: dict[str, float]


def district_funds(budget: float, readers: dict[str, int]) -> dict[str, float]:
    """The annual ``budget`` (yuan) split over districts by registered readers, exactly in fen."""
    names = sorted(readers)
    parts = split_fen(round(budget * 100), [max(readers[d], 0) + 1e-9 for d in names])
    return {d: p / 100.0 for d, p in zip(names, parts, strict=True)}


def eligible_lines(prepared: Replay, policy: Policy, categories: pl.DataFrame | None = None) -> pl.DataFrame:
    """The year's eligible lines under ``policy``'s book rules that a replay can change: price cap and
    excluded categories (``categories``: ``request_id, category`` of the requests)."""
    lines = prepared.lines.filter(pl.col("price") <= policy.price_cap_yuan + 1e-9)
    if categories is not None and policy.excluded_categories:
        lines = lines.join(categories, on="request_id", how="left").filter(
            ~pl.col("category").fill_null("general").is_in(list(policy.excluded_categories))
        )
    return lines.sort("requested_at", maintain_order=True)


class _State:
    """Running state of one on-arrival year: money used per fund, copies per ISBN, reader months."""

    def __init__(self, lines: pl.DataFrame, funds: dict[str, float], prepared: Replay) -> None:
        self.isbns, self.codes = np.unique(lines["isbn13"].to_numpy().astype(str), return_inverse=True)
        self.copies = np.zeros(len(self.isbns), dtype=np.int64)
        self.used = dict.fromkeys(funds, 0.0)
        self.month_count: dict[tuple[str, str], int] = {}
        lam, self.held = lines["predicted_intents"].to_numpy(), lines["network_copies"].to_numpy().astype(np.int64)
        self.served = copy_value(lam, int(self.held.max(initial=0)) + TITLE_CAP + 1, prepared.circulation).served
        #: arrivals seen per fund: (value per yuan, price) lists, the forecast's sample
        self.seen: dict[str, tuple[list[float], list[float]]] = {d: ([], []) for d in funds}
        self.forecasts: dict[str, Forecast] = {}

    def gain(self, j: int) -> float:
        k = min(self.held[j] + self.copies[self.codes[j]], self.served.shape[1] - 2)
        return float(self.served[j, k + 1] - self.served[j, k])


def _refresh(state: _State, policy: Policy, at: datetime, start: datetime) -> None:
    """Each fund's forecast from its arrivals so far (once a day)."""
    cfg = policy.pacing
    seen = plan_share(cfg.seasonal_plan, at, start)
    warm = (at - start).total_seconds() >= cfg.warmup_days * 86400
    for d, (ratio, price) in state.seen.items():
        if warm and ratio:
            state.forecasts[d] = Forecast.from_arrivals(
                np.array(ratio), np.array(price), seen, cfg.reference_loans_per_yuan
            )
        else:
            state.forecasts[d] = Forecast(np.zeros(0), np.zeros(0), 0.0, cfg.reference_loans_per_yuan)


def run_year(prepared: Replay, policy: Policy, budget: float, *, name: str | None = None, lines=None) -> YearRun:
    """Decide the year's eligible lines on arrival under ``policy`` (``policy.pacing.policy``) with an
    annual ``budget`` (yuan) split into district funds."""
    lines = eligible_lines(prepared, policy) if lines is None else lines
    funds = district_funds(budget, prepared.district_readers)
    state, paced = _State(lines, funds, prepared), policy.pacing.policy == "paced"
    n = lines.height
    chosen, no_money, paced_out = (np.zeros(n, dtype=bool) for _ in range(3))
    price, dist = lines["price"].to_numpy(), lines["district"].to_numpy().astype(str)
    reader, period = lines["reader_id"].to_numpy().astype(str), lines["period"].to_numpy().astype(str)
    at = lines["requested_at"].to_list()
    day: date | None = None
    for j in range(n):  # on-arrival decisions are sequential by nature: one request at a time
        if paced and at[j].date() != day:
            day = at[j].date()
            _refresh(state, policy, at[j], prepared.start)
        d, c = dist[j], state.codes[j]
        limit_ok = state.month_count.get((reader[j], period[j]), 0) < policy.books_per_month
        if d not in funds or state.copies[c] >= TITLE_CAP or not limit_ok:
            continue
        gain = state.gain(j)
        state.seen[d][0].append(gain / price[j])
        state.seen[d][1].append(price[j])
        if price[j] > funds[d] - state.used[d] + 1e-9:
            no_money[j] = True
            continue
        if paced:
            verdict = assess(
                policy.pacing, policy.pacing.seasonal_plan, budget=funds[d], used=state.used[d], price=price[j],
                value=gain, at=at[j], forecast=state.forecasts[d], start=prepared.start,
            )  # fmt: skip
            if not verdict.approved:
                paced_out[j] = True
                continue
        chosen[j] = True
        state.copies[c] += 1
        state.used[d] += price[j]
        state.month_count[(reader[j], period[j])] = state.month_count.get((reader[j], period[j]), 0) + 1
    label = name or policy.pacing.policy
    return YearRun(label, budget, chosen, no_money, paced_out, funds)


def oracle_year(prepared: Replay, budget: float, lines: pl.DataFrame, policy: Policy | None = None) -> YearRun:
    """The hindsight oracle: the whole year seen at once at the truth's intents, within the same
    district funds, title cap and monthly limit per reader.

    Every line's value is the marginal first-year loans of its copy at the truth (the k-th cheapest
    line of an ISBN is its k-th copy on top of the network's); lines are taken by loans per yuan,
    best first, while their fund has the money. Copies' values are concave in k, so this is the
    greedy solution of the year's knapsack: with books far smaller than a fund it is within one book
    per fund of the LP bound (the year-long MILP, :func:`acquisition.optimize.select_milp`, takes too
    long on the city: over 10 minutes on a shared 2-core machine)."""
    funds = district_funds(budget, prepared.district_readers)
    limit = (policy or Policy()).books_per_month
    rank = lines.select(pl.col("price").rank("ordinal").over("isbn13").cast(pl.Int64) - 1).to_series().to_numpy()
    held = lines["network_copies"].to_numpy().astype(np.int64)
    served = copy_value(lines["true_intents"].to_numpy(), int(held.max(initial=0)) + TITLE_CAP + 1).served
    k = np.minimum(held + rank, served.shape[1] - 2)
    rows = np.arange(lines.height)
    gain = served[rows, k + 1] - served[rows, k]
    price, dist = lines["price"].to_numpy(), lines["district"].to_numpy().astype(str)
    who = (lines["reader_id"] + "|" + lines["period"]).to_numpy().astype(str)
    left, taken = dict(funds), dict.fromkeys(set(who.tolist()), 0)
    chosen = np.zeros(lines.height, dtype=bool)
    for j in np.argsort(-gain / price, kind="stable"):  # the year's lines, best loans per yuan first
        if rank[j] < TITLE_CAP and price[j] <= left.get(dist[j], 0.0) + 1e-9 and taken[who[j]] < limit:
            chosen[j] = True
            left[dist[j]] -= price[j]
            taken[who[j]] += 1
    none = np.zeros(lines.height, dtype=bool)
    return YearRun("oracle", budget, chosen, none, none.copy(), funds)


# --- figures of a run -------------------------------------------------------------------------------


def _spend_by_month(run: YearRun, lines: pl.DataFrame) -> pl.DataFrame:
    return (
        lines.select("period", pl.Series("spend", np.where(run.chosen, lines["price"].to_numpy(), 0.0)))
        .group_by("period")
        .agg(pl.col("spend").sum())
        .sort("period")
    )


def _exhaustion(run: YearRun, lines: pl.DataFrame) -> tuple[str | None, str | None, dict[str, str]]:
    """``(first refusal for money in any fund, the day money ran out, each fund's first refusal)``:
    money "runs out" on the day by which the funds holding at least half of the year's money have
    each refused a request for lack of it. ISO dates."""
    refused = (
        lines.filter(pl.Series(run.no_money))
        .group_by("district")
        .agg(pl.col("requested_at").min().alias("at"))
        .sort("at")
    )
    per_fund = {d: at.date().isoformat() for d, at in refused.iter_rows()}
    first = next(iter(per_fund.values()), None)
    held = np.cumsum([run.funds.get(d, 0.0) for d in refused["district"].to_list()])
    half = np.flatnonzero(held >= 0.5 * run.budget - 1e-6)
    out = refused["at"][int(half[0])].date().isoformat() if half.size else None
    return first, out, per_fund


def district_equity(run: YearRun, lines: pl.DataFrame, readers: dict[str, int]) -> pl.DataFrame:
    """Per district: books bought and spend per 1,000 registered readers, and the fill rate per
    resident's deviation from the city mean (%)."""
    bought = (
        lines.select("district", pl.Series("x", run.chosen), "price")
        .group_by("district")
        .agg(pl.col("x").sum().alias("books"), (pl.col("price") * pl.col("x")).sum().alias("spend"))
    )
    frame = pl.DataFrame({"district": list(readers), "readers": list(readers.values())}).join(
        bought, on="district", how="left"
    )
    frame = frame.fill_null(0).with_columns(
        (pl.col("books") * 1000 / pl.col("readers")).alias("books_per_1000"),
        (pl.col("spend") * 1000 / pl.col("readers")).alias("spend_per_1000"),
    )
    mean = frame["books"].sum() * 1000 / max(frame["readers"].sum(), 1)
    return frame.with_columns(((pl.col("books_per_1000") / mean - 1) * 100).alias("deviation_pct")).sort("district")


def run_figures(run: YearRun, prepared: Replay, lines: pl.DataFrame, requesters: int | None = None) -> dict:
    """The what-if's figures of one run: spend by month, money left, exhaustion, loans, requesters
    (share of ``requesters``, default: the readers of ``lines``), equity."""
    sub = replace(prepared, lines=lines)
    months = _spend_by_month(run, lines)
    spent = np.cumsum(months["spend"].to_numpy())
    refusal_months = sorted(set(lines["period"].filter(pl.Series(run.no_money)).to_list()))
    first_refusal, exhausted, per_fund = _exhaustion(run, lines)
    readers = lines["reader_id"]
    equity = district_equity(run, lines, prepared.district_readers)
    return {
        "policy": run.name,
        "budget": round(run.budget, 2),
        "bought": int(run.chosen.sum()),
        "spend": round(float(lines["price"].filter(pl.Series(run.chosen)).sum()), 2),
        "loans_served": round(served_score(sub, run.chosen), 1),
        "requesters_served_pct": round(100.0 * readers.filter(pl.Series(run.chosen)).n_unique() / max(requesters or readers.n_unique(), 1), 2),
        "declined_no_money": int(run.no_money.sum()),
        "declined_paced": int(run.paced_out.sum()),
        "spend_by_month": dict(zip(months["period"].to_list(), [round(x, 2) for x in months["spend"].to_list()], strict=True)),
        "money_left_by_month": dict(zip(months["period"].to_list(), [round(run.budget - x, 2) for x in spent], strict=True)),
        "months_with_money_refusals": refusal_months,
        "first_refusal_for_money": first_refusal,
        "money_ran_out_on": exhausted,
        "fund_first_refusal": per_fund,
        "district_equity": equity.select("district", "readers", "books", "books_per_1000", "spend_per_1000", "deviation_pct").to_dicts(),
        "max_district_deviation_pct": round(float(equity["deviation_pct"].abs().max()), 2),
    }  # fmt: skip


# --- the what-if: one policy against the policy in force ---------------------------------------------


def _permissive(a: Policy, b: Policy) -> Policy:
    """A policy admitting every line either policy could buy (the replay filters per policy after)."""
    keep = tuple(c for c in a.excluded_categories if c in b.excluded_categories)
    return a.model_copy(update={"price_cap_yuan": max(a.price_cap_yuan, b.price_cap_yuan), "excluded_categories": keep})


def policy_budget(policy: Policy, year: int | None = None) -> float | None:
    """The annual money of a policy's top-level funds (of ``year``, else of its first year), yuan."""
    tops = [f for f in policy.funds if f.parent is None]
    years = sorted({f.year for f in tops})
    if not years:
        return None
    pick = year if year in years else years[0]
    return float(sum(f.amount_yuan for f in tops if f.year == pick))


_PREPARED: dict[tuple, Replay] = {}


def prepared_year(data_dir: str | Path, policy: Policy) -> Replay:
    """The held-out year valued on arrival (cached per data directory and book rules)."""
    from acquisition.backtest import prepare_replay

    key = (str(Path(data_dir).resolve()), policy.price_cap_yuan, policy.excluded_categories)
    if key not in _PREPARED:
        _PREPARED.clear()  # one year in memory at a time
        _PREPARED[key] = prepare_replay(data_dir, policy=policy, on_arrival=True)
    return _PREPARED[key]


def whatif(data_dir: str | Path, proposed: Policy, in_force: Policy, *, budget: float | None = None) -> dict[str, Any]:
    """Replay last year's requests on arrival under ``in_force`` and ``proposed``, side by side.

    The annual money of each is ``budget`` (yuan) if given, else its policy's top-level funds, else the
    data's month budget lines of the year."""
    from acquisition.backtest import history_requests, year_budget

    prepared = prepared_year(data_dir, _permissive(in_force, proposed))
    categories = history_requests(data_dir).select("request_id", "category")
    default = year_budget(data_dir, prepared.start, prepared.end)
    out: dict[str, Any] = {
        "data": str(data_dir),
        "year": {"start": prepared.start.isoformat(), "end": prepared.end.isoformat(), "requests": prepared.requests},
    }
    for name, policy in (("in_force", in_force), ("proposed", proposed)):
        money = budget if budget is not None else policy_budget(policy, prepared.end.year) or default
        lines = eligible_lines(prepared, policy, categories)
        run = run_year(prepared, policy, money, name=f"{name} ({policy.pacing.policy})", lines=lines)
        figures = run_figures(run, prepared, lines, prepared.lines["reader_id"].n_unique())
        out[name] = {"eligible_lines": lines.height, **figures}
    return out


ROWS = (
    ("budget", "年度经费（元） / annual money (yuan)"),
    ("eligible_lines", "符合规定的荐购 / eligible requests"),
    ("bought", "采购册数 / books bought"),
    ("spend", "支出（元） / spend (yuan)"),
    ("loans_served", "预计借阅 / loans served"),
    ("requesters_served_pct", "获得图书的读者 % / requesters served %"),
    ("declined_no_money", "因经费用完拒绝 / declined: no money"),
    ("declined_paced", "因节奏控制拒绝 / declined: paced"),
    ("first_refusal_for_money", "首次因经费拒绝 / first refusal for money"),
    ("money_ran_out_on", "经费用完日期 / money ran out on"),
    ("max_district_deviation_pct", "区县人均采购最大偏差 % / max district deviation %"),
)


def table_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(figure, in force, proposed)`` rows of a what-if report, zh-CN first."""

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:,.2f}" if isinstance(v, float) else str(v)

    return [(label, fmt(report["in_force"][k]), fmt(report["proposed"][k])) for k, label in ROWS]


def plot_whatif(report: dict[str, Any], out: str | Path) -> Path:
    """A PNG of the money left at each month's end under both policies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name in ("in_force", "proposed"):
        left = report[name]["money_left_by_month"]
        ax.plot(list(left), list(left.values()), marker="o", label=report[name]["policy"])
    ax.set_ylabel("money left (yuan)")
    ax.set_title("What-if: money left at each month's end")
    ax.tick_params(axis="x", rotation=45)
    ax.legend()
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


class WhatIfIn(BaseModel):
    """Changes to the policy in force to replay against it; an absent field keeps the policy's value."""

    model_config = ConfigDict(extra="forbid")

    price_cap_yuan: float | None = Field(
        default=None,
        ge=0.01,
        le=MAX_PRICE_YUAN,
        allow_inf_nan=False,
        description="Price cap per book, yuan (>= 1 fen).",
    )
    books_per_month: int | None = Field(default=None, ge=1, le=1000, description="Books per reader per month.")
    excluded_categories: list[Category] | None = Field(
        default=None, max_length=7, description="Book categories never bought."
    )
    pacing: Literal["fcfs", "paced"] | None = Field(default=None, description="Pacing of the annual funds.")
    budget_yuan: float | None = Field(
        default=None,
        ge=0.01,
        le=1e10,
        allow_inf_nan=False,
        description="Annual money of both policies, yuan (>= 1 fen).",
    )


class WhatIfOut(BaseModel):
    """The year replayed under both policies: spend by month, money left, the date money runs out,
    loans served, requesters served and district equity of each."""

    data: str
    year: dict[str, Any]
    in_force: dict[str, Any]
    proposed: dict[str, Any]
