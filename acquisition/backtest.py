"""Backtest of batch selection on a synthetic city: FCFS, greedy, MILP and the oracle on one held-out
year of requests with the programme's budget.

The held-out year is the last 365 days of requests. Every method sees the same eligible lines, the
same budget and caps; FCFS, greedy and MILP select on *predicted* value (demand model and gap
multipliers fitted on history before the year), the oracle (the same MILP) on the loans the synthetic
city's truth says each requested ISBN would get (``truth/request_titles.parquet``,
``expected_loans_per_year``). Each is scored on those true loans. Results go to
``experiments/results/acquisition_backtest.md``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from acquisition.demand import YEAR, ContentNeighbours, DemandModel, History
from acquisition.gaps import gap_table
from acquisition.optimize import (
    Selection,
    SelectionProblem,
    select_fcfs,
    select_greedy,
    select_milp,
    spend_per_reader,
)
from acquisition.policy import Policy, load_policy
from acquisition.ranking import RankingParams, build_problem, district_readers, rank_requests
from features.schema import scan_table

_log = logging.getLogger(__name__)


@dataclass
class MethodScore:
    """One method's outcome on the held-out year."""

    method: str
    selected: int
    spend: float
    overspend: float
    future_loans: float
    pct_oracle: float
    spread_pct: float
    seconds: float
    status: str


#: The backtest's ranking knobs: monthly batches, the programme's 5 books per reader per month. The
#: months' district budget lines are the equalisation instrument (set per registered reader), so no
#: band rows are added on top of them: a band can only leave money unspent (see the trade-off table
#: in docs/acquisition-batch.md).
BACKTEST_PARAMS = RankingParams(reader_cap=5, time_limit=20.0, mip_rel_gap=5e-3, equalisation="off")


def year_budget(data_dir: str | Path, start, end) -> float:
    """Programme budget for ``[start, end)``: the monthly lines (``YYYY-MM``) whose month falls in it,
    yuan."""
    months = pl.date_range(start.date(), (end - timedelta(days=1)).date(), "1mo", eager=True).dt.strftime("%Y-%m")
    return float(
        scan_table(data_dir, "budgets")
        .filter(pl.col("period").is_in(months.to_list()))
        .select(pl.col("amount").sum())
        .collect()
        .item()
    )


def purchase_labels(data_dir: str | Path) -> pl.DataFrame:
    """``isbn, loans``: first-year loans of each requested book if the programme buys it.

    A real deployment reads them from the circulation of its received reader-choice titles; the
    synthetic generator does not add bought books to the loan history, so the backtest reads the
    truth's expected loans (``truth/request_titles.parquet``). The demand model only ever sees the
    labels of purchases made more than a year before the batch it ranks."""
    path = Path(data_dir) / "truth" / "request_titles.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the backtest needs the synthetic city's truth files")
    return pl.read_parquet(path).select("isbn", pl.col("expected_loans_per_year").alias("loans"))


def month_lines(data_dir: str | Path, periods: list[str], scale: float = 1.0) -> dict[str, dict[str, float]]:
    """Budget lines per month (``YYYY-MM``) and district, yuan, times ``scale``."""
    frame = (
        scan_table(data_dir, "budgets")
        .filter(pl.col("period").is_in(periods) & pl.col("district").is_not_null())
        .group_by("period", "district")
        .agg(pl.col("amount").sum())
        .collect()
    )
    out: dict[str, dict[str, float]] = {p: {} for p in periods}
    for period, district, amount in frame.iter_rows():
        out[period][district] = float(amount) * scale
    return out


@dataclass
class Replay:
    """A held-out year prepared for replay: each month's ranked lines (predictions fixed)."""

    data_dir: Path
    start: datetime
    end: datetime
    #: Eligible lines of every month with ``period``, ``true_value`` (the truth's loans) and the
    #: ranking's ``value``/``predicted_loans``; arrival order within the month.
    lines: pl.DataFrame
    requests: int
    district_readers: dict[str, int]
    prep_seconds: float
    demand_source: str


def prepare_replay(
    data_dir: str | Path, *, policy: Policy | None = None, params: RankingParams | None = None
) -> Replay:
    """Rank each month of the last 365 days of requests as one batch at the month's end.

    The demand model is calibrated once, at the start of the year, on purchases whose first year
    is observed (:func:`purchase_labels`); the content model and the gap table are fitted on the
    history before the year. Predictions use all history up to each month's end.
    """
    data_dir = Path(data_dir)
    labels = purchase_labels(data_dir)
    policy = policy or load_policy()
    params = params or BACKTEST_PARAMS
    t0 = time.perf_counter()
    history = History.load(data_dir)
    end = history.requests["requested_at"].max() + timedelta(seconds=1)
    start = end - timedelta(days=365)
    content = ContentNeighbours(params.demand.k_content).fit(history.titles) if params.content_signal else None
    model = DemandModel(params.demand).fit(history.before(start - YEAR), start - YEAR, labels, content)
    gaps = gap_table(data_dir, as_of=start, multiplier_floor=params.gap_floor, multiplier_cap=params.gap_cap)
    year = (
        scan_table(data_dir, "purchase_requests")
        .filter(pl.col("requested_at") >= start)
        .collect()
        .with_columns(pl.col("requested_at").dt.strftime("%Y-%m").alias("period"))
    )
    months = []
    for period in sorted(year["period"].unique().to_list()):  # twelve batches, not rows
        batch = year.filter(pl.col("period") == period)
        as_of = batch["requested_at"].max() + timedelta(seconds=1)
        run = rank_requests(
            batch.drop("period"),
            data_dir,
            policy,
            1.0,
            replace(params, method="fcfs"),
            as_of=as_of,
            demand_model=model,
            history=history,
            gaps=gaps,
            content=content,
        )
        months.append(run.lines.filter("eligible").with_columns(pl.lit(period).alias("period")))
    truth = labels.select(pl.col("isbn").alias("isbn13"), pl.col("loans").alias("true_value"))
    lines = (
        pl.concat(months)
        .sort("requested_at")
        .join(truth, on="isbn13", how="left", maintain_order="left")
        .with_columns(pl.col("true_value").fill_null(0.0))
    )
    return Replay(
        data_dir=data_dir,
        start=start,
        end=end,
        lines=lines,
        requests=year.height,
        district_readers=district_readers(data_dir),
        prep_seconds=time.perf_counter() - t0,
        demand_source=model.source_,
    )


METHODS = ("fcfs", "greedy", "milp", "oracle")


def _select(method: str, p: SelectionProblem, params: RankingParams) -> Selection:
    if method == "fcfs":
        return select_fcfs(p)
    if method == "greedy":
        return select_greedy(p)
    return select_milp(p, method=method, time_limit=params.time_limit, mip_rel_gap=params.mip_rel_gap)


def replay(
    prepared: Replay, *, scale: float = 1.0, params: RankingParams | None = None
) -> tuple[list[MethodScore], dict]:
    """Replay the prepared year month by month against each month's district budget lines x ``scale``.

    Every method sees the same eligible lines and caps. Money left in a month does not carry over.
    A book a method bought in an earlier month counts as held: its further copies are worth
    ``extra_copy_factor`` less per copy and none is bought past ``title_cap`` copies in all.
    FCFS, greedy and MILP select on predicted value, the oracle on the truth's loans (one copy per
    ISBN). Scores count each ISBN's true loans once.
    """
    params = params or BACKTEST_PARAMS
    lines = prepared.lines
    periods = sorted(lines["period"].unique().to_list())
    budget_lines = month_lines(prepared.data_dir, periods, scale)
    isbn_all, isbn_code = np.unique(lines["isbn13"].to_numpy().astype(str), return_inverse=True)
    true_by_isbn = np.zeros(len(isbn_all))
    true_by_isbn[isbn_code] = lines["true_value"].to_numpy()
    period = lines["period"].to_numpy()
    chosen = {m: np.zeros(lines.height, dtype=bool) for m in METHODS}
    copies = {m: np.zeros(len(isbn_all), dtype=np.int64) for m in METHODS}
    seconds = dict.fromkeys(METHODS, 0.0)
    status: dict[str, set[str]] = {m: set() for m in METHODS}
    title_cap = params.title_cap or 10**9
    for per in periods:  # twelve monthly batches
        idx = np.flatnonzero(period == per)
        month = lines[idx]
        codes = isbn_code[idx]
        # arrival rank of each line among the month's lines of its ISBN
        rank = month.select(pl.int_range(pl.len()).over("isbn13")).to_series().to_numpy()
        base = build_problem(month, prepared.district_readers, params, sum(budget_lines[per].values()))
        base = replace(base, district_budget=budget_lines[per])
        for m in METHODS:
            held = copies[m][codes]
            cap = 1 if m == "oracle" else title_cap
            ok = held + rank < cap
            if m == "oracle":
                value = month["true_value"].to_numpy()
            else:
                value = month["value"].to_numpy() * params.extra_copy_factor ** held.astype(np.float64)
            sub = _subset(replace(base, value=value, title_cap=cap, equalisation_penalty=None), ok)
            sel = _select(m, sub, params)
            seconds[m] += sel.seconds
            status[m].add(sel.status.split(".")[0][:40])
            took = idx[np.flatnonzero(ok)[sel.selected]]
            chosen[m][took] = True
            np.add.at(copies[m], isbn_code[took], 1)
    price = lines["price"].to_numpy()
    total_budget = sum(sum(v.values()) for v in budget_lines.values())
    year_problem = build_problem(lines, prepared.district_readers, params, total_budget)

    def captured(x: np.ndarray) -> float:
        bought = np.zeros(len(isbn_all), dtype=bool)
        bought[isbn_code[x]] = True
        return float(true_by_isbn[bought].sum())

    oracle_loans = captured(chosen["oracle"])
    scores = []
    for m in METHODS:
        x = chosen[m]
        spend_by_month = pl.DataFrame({"period": period, "spend": np.where(x, price, 0.0)}).group_by("period").sum()
        over = sum(
            max(0.0, s - sum(budget_lines[p].values()) - 1e-6) for p, s in spend_by_month.iter_rows()
        ) + _line_overspend(lines, x, budget_lines)
        spr = spend_per_reader(year_problem, x)
        loans = captured(x)
        scores.append(
            MethodScore(
                method=m,
                selected=int(x.sum()),
                spend=float(price[x].sum()),
                overspend=over,
                future_loans=loans,
                pct_oracle=100.0 * loans / oracle_loans if oracle_loans > 0 else float("nan"),
                spread_pct=float(np.abs(spr["deviation_pct"].to_numpy()).max()) if spr.height else 0.0,
                seconds=seconds[m],
                status="; ".join(sorted(status[m])),
            )
        )
    context = {
        "data_dir": str(prepared.data_dir),
        "start": prepared.start,
        "end": prepared.end,
        "budget": total_budget,
        "eligible_spend": float(price.sum()),
        "requests": prepared.requests,
        "eligible": lines.height,
        "prep_seconds": prepared.prep_seconds,
        "equalisation": f"{params.equalisation} ±{params.equalisation_band:.0%}",
        "demand_source": prepared.demand_source,
        "spearman_predicted_vs_true": float(
            lines.select(pl.corr("predicted_loans", "true_value", method="spearman")).item()
        ),
        "median_predicted": float(lines["predicted_loans"].median()),
        "median_true": float(lines["true_value"].median()),
        "spread_by_district": {
            m: spend_per_reader(year_problem, chosen[m]).select("district", "deviation_pct") for m in METHODS
        },
        "chosen": chosen,
    }
    return scores, context


def _subset(p: SelectionProblem, keep: np.ndarray) -> SelectionProblem:
    """The problem restricted to the lines in ``keep``."""
    return replace(
        p,
        value=p.value[keep],
        price=p.price[keep],
        district=p.district[keep],
        clc_top=p.clc_top[keep],
        bookstore=p.bookstore[keep],
        reader=p.reader[keep],
        isbn=p.isbn[keep],
        arrival=None if p.arrival is None else p.arrival[keep],
    )


def _line_overspend(lines: pl.DataFrame, x: np.ndarray, budget_lines: dict[str, dict[str, float]]) -> float:
    """Yuan spent above any month x district budget line."""
    spent = (
        lines.select("period", "district", pl.Series("spend", np.where(x, lines["price"].to_numpy(), 0.0)))
        .group_by("period", "district")
        .agg(pl.col("spend").sum())
    )
    over = 0.0
    for per, dist, amount in spent.iter_rows():
        limit = budget_lines.get(per, {}).get(dist, 0.0)
        over += max(0.0, amount - limit - 1e-6)
    return over


def report_section(scores: list[MethodScore], context: dict) -> str:
    """One backtest scenario as a Markdown section."""
    by = {s.method: s for s in scores}
    fcfs = by["fcfs"].future_loans
    lines = [
        f"## {context['title']}",
        "",
        f"Data: `{context['data_dir']}`; held-out year {context['start']:%Y-%m-%d} to {context['end']:%Y-%m-%d}; "
        f"{context['requests']} requests, {context['eligible']} eligible costing {context['eligible_spend']:.2f} "
        f"yuan; budget {context['budget']:.2f} yuan ({context['budget_source']}). "
        f"Equalisation: {context['equalisation']}. Demand model calibrated on {context['demand_source']} "
        f"before the year, content model and gap table fitted on history before it; twelve monthly "
        f"rankings took {context['prep_seconds']:.1f} s. Spearman of predicted vs true loans per eligible "
        f"line: {context['spearman_predicted_vs_true']:.3f}; median predicted {context['median_predicted']:.1f} "
        f"vs true {context['median_true']:.1f} loans.",
        "",
        "Future loans = the synthetic truth's expected loans in the first year of every ISBN bought.",
        "Spread = largest |deviation| of a district's spend per registered reader from the city mean.",
        "",
        "| method | lines | spend (yuan) | overspend | future loans | x FCFS | % of oracle | spread | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        ratio = s.future_loans / fcfs if fcfs > 0 else float("nan")
        lines.append(
            f"| {s.method} | {s.selected} | {s.spend:.2f} | {s.overspend:.2f} | {s.future_loans:.1f} | "
            f"{ratio:.2f} | {s.pct_oracle:.1f}% | {s.spread_pct:.1f}% | {s.seconds:.2f} |"
        )
    milp = by["milp"]
    lines += [
        "",
        "### Goals",
        "",
        f"- MILP >= 1.5x FCFS future loans: **{milp.future_loans / fcfs:.2f}x** "
        f"({'met' if milp.future_loans >= 1.5 * fcfs else 'not met'})",
        f"- MILP >= 90% of the oracle: **{milp.pct_oracle:.1f}%** ({'met' if milp.pct_oracle >= 90 else 'not met'})",
        f"- district spend per reader within ±10%: **{milp.spread_pct:.1f}%** "
        f"({'met' if milp.spread_pct <= 10 + 1e-9 else 'not met'})",
        f"- overspend 0: **{max(s.overspend for s in scores):.2f}**",
        "",
        "### Spend per registered reader by district (deviation from the city mean, %)",
        "",
    ]
    spreads = context["spread_by_district"]
    methods = list(spreads)
    table = spreads[methods[0]].rename({"deviation_pct": methods[0]})
    for m in methods[1:]:
        table = table.join(spreads[m].rename({"deviation_pct": m}), on="district")
    lines.append("| district | " + " | ".join(methods) + " |")
    lines.append("|---" * (len(methods) + 1) + "|")
    for row in table.iter_rows():
        lines.append(f"| {row[0]} | " + " | ".join(f"{v:+.1f}" for v in row[1:]) + " |")
    return "\n".join(lines) + "\n"


def write_report(sections: list[str], out: str | Path, preamble: str = "") -> Path:
    """Write the backtest sections under one title."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "# Acquisition backtest: FCFS vs greedy vs MILP vs oracle\n\n" + preamble + "\n".join(sections)
    out.write_text(text)
    _log.info("backtest report written to %s", out)
    return out


def backtest(
    data_dir: str | Path,
    out: str | Path,
    *,
    scales: tuple[float, ...] = (1.0, 0.5, 0.3),
    params: RankingParams | None = None,
) -> Path:
    """The standard backtest: the held-out year replayed month by month against the programme's
    budget lines, then against the same lines scaled down (a tighter programme). Writes ``out``."""
    params = params or BACKTEST_PARAMS
    prepared = prepare_replay(data_dir, params=params)
    sections = []
    for scale in scales:
        scores, context = replay(prepared, scale=scale, params=params)
        label = "the months' budget lines" if scale == 1.0 else f"{scale:.0%} of the months' budget lines"
        context["title"] = f"Budget: {label}"
        context["budget_source"] = label
        sections.append(report_section(scores, context))
    return write_report(sections, out, PREAMBLE)


PREAMBLE = """The last 365 days of requests of a synthetic city (counter and online) are replayed as twelve
monthly batches. Each month every method gets the same eligible lines and the month's budget line of
each district (no carry-over). FCFS takes lines in arrival order while the district's line lasts (how
bookstore programmes spend today); greedy by predicted value per yuan; MILP maximises predicted value
(predicted loans x gap multiplier) under the lines, caps and equalisation; the oracle is the same
MILP on the true loans. Shared rules: 5 books per reader per month, at most 3 copies of an ISBN in
all (later copies valued x0.3), a 60% class cap. A book bought in an earlier month counts as held.
Future loans are counted per title (a second copy adds none), so the oracle buys each ISBN once.
Produced by `yuedu acquisition backtest --data DIR`.

"""
