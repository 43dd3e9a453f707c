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
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from acquisition.batch import BatchParams, build_problem, district_readers, rank_batch
from acquisition.optimize import Selection, select_fcfs, select_greedy, select_milp, spend_per_reader
from acquisition.policy import Policy, load_policy
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


def run_backtest(
    data_dir: str | Path,
    *,
    policy: Policy | None = None,
    params: BatchParams | None = None,
    budget: float | None = None,
    budget_share: float | None = None,
) -> tuple[list[MethodScore], dict]:
    """Replay the last year of requests as one batch; returns per-method scores and context figures.

    The budget is ``budget`` yuan if given, else ``budget_share`` x the price of all eligible lines if
    given, else the year's monthly budget lines.
    """
    data_dir = Path(data_dir)
    truth_path = data_dir / "truth" / "request_titles.parquet"
    if not truth_path.exists():
        raise FileNotFoundError(f"{truth_path}: the backtest needs the synthetic city's truth files")
    policy = policy or load_policy()
    # one batch for a whole year: the per-batch reader cap becomes the programme's yearly limit
    params = params or BatchParams(reader_cap=10, time_limit=20.0, mip_rel_gap=5e-3)
    requests = scan_table(data_dir, "purchase_requests").collect()
    end = requests["requested_at"].max() + timedelta(seconds=1)
    start = end - timedelta(days=365)
    year = requests.filter(pl.col("requested_at") >= start)
    t0 = time.perf_counter()
    run = rank_batch(year, data_dir, policy, 1.0, replace(params, method="fcfs"), as_of=start)
    if budget is None:
        if budget_share is not None:
            budget = budget_share * float(run.lines.filter("eligible")["price"].sum())
        else:
            budget = year_budget(data_dir, start, end)
    prep_seconds = time.perf_counter() - t0
    truth = pl.read_parquet(truth_path).select(pl.col("isbn").alias("isbn13"), "expected_loans_per_year")
    elig = (
        run.lines.filter("eligible")
        .join(truth, on="isbn13", how="left")
        .with_columns(pl.col("expected_loans_per_year").fill_null(0.0))
        .with_columns(pl.col("expected_loans_per_year").alias("true_value"))
    )
    isbn_codes = np.unique(elig["isbn13"].to_numpy().astype(str), return_inverse=True)[1]

    def captured(x: np.ndarray) -> float:
        # the truth gives a title's loans: count each ISBN bought once, whichever line bought it
        first = np.zeros(isbn_codes.max() + 1 if len(isbn_codes) else 0, dtype=bool)
        first[isbn_codes[x]] = True
        per_isbn = np.zeros(len(first))
        per_isbn[isbn_codes] = elig["true_value"].to_numpy()
        return float(per_isbn[first].sum())

    readers = district_readers(data_dir)
    problem = build_problem(elig, readers, params, budget)
    true_value = elig["true_value"].to_numpy()
    # the truth is per title: a second copy adds no loans, so the oracle buys each ISBN at most once
    oracle_problem = replace(problem, value=true_value, equalisation_penalty=None, title_cap=1)
    selections: list[Selection] = [
        select_fcfs(problem),
        select_greedy(problem),
        select_milp(problem, time_limit=params.time_limit, mip_rel_gap=params.mip_rel_gap),
        select_milp(
            replace(problem, value=(elig["value"] / elig["gap_multiplier"]).to_numpy(), equalisation_penalty=None),
            method="milp (no gap multiplier)",
            time_limit=params.time_limit,
            mip_rel_gap=params.mip_rel_gap,
        ),
        select_milp(oracle_problem, method="oracle", time_limit=params.time_limit, mip_rel_gap=params.mip_rel_gap),
    ]
    oracle_loans = captured(selections[-1].selected)
    scores = []
    for sel in selections:
        loans = captured(sel.selected)
        spr = spend_per_reader(problem, sel.selected)
        scores.append(
            MethodScore(
                method=sel.method,
                selected=int(sel.selected.sum()),
                spend=sel.spend,
                overspend=max(0.0, sel.spend - budget),
                future_loans=loans,
                pct_oracle=100.0 * loans / oracle_loans if oracle_loans > 0 else float("nan"),
                spread_pct=float(np.abs(spr["deviation_pct"].to_numpy()).max()) if spr.height else 0.0,
                seconds=sel.seconds,
                status=sel.status,
            )
        )
    context = {
        "data_dir": str(data_dir),
        "start": start,
        "end": end,
        "budget": budget,
        "eligible_spend": float(elig["price"].sum()),
        "requests": year.height,
        "eligible": elig.height,
        "prep_seconds": prep_seconds,
        "equalisation": f"{params.equalisation} ±{params.equalisation_band:.0%}",
        "spearman_predicted_vs_true": float(
            elig.select(pl.corr("predicted_loans", "expected_loans_per_year", method="spearman")).item()
        ),
        "spread_by_district": {
            s.method: spend_per_reader(problem, s.selected).select("district", "deviation_pct") for s in selections
        },
    }
    return scores, context


def report_section(scores: list[MethodScore], context: dict) -> str:
    """One backtest scenario as a Markdown section."""
    by = {s.method: s for s in scores}
    fcfs = by["fcfs"].future_loans
    lines = [
        f"## {context['title']}",
        "",
        f"Data: `{context['data_dir']}`; held-out year {context['start']:%Y-%m-%d} to {context['end']:%Y-%m-%d}; "
        f"{context['requests']} requests, {context['eligible']} eligible costing {context['eligible_spend']:.2f} "
        f"yuan; budget {context['budget']:.2f} yuan ({context['budget_source']}). Equalisation: {context['equalisation']}. Demand model and gap "
        f"table fitted on history before the year ({context['prep_seconds']:.1f} s). Spearman of predicted vs "
        f"true loans per eligible line: {context['spearman_predicted_vs_true']:.3f}.",
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


def backtest(data_dir: str | Path, out: str | Path, *, budget_shares: tuple[float, ...] = (0.5, 0.3)) -> Path:
    """The standard backtest: the programme's own budget, then binding budgets (share of the eligible
    lines' price). Writes ``out`` (Markdown)."""
    sections = []
    scenarios: list[tuple[str, float | None]] = [("the year's budget lines", None)]
    scenarios += [(f"{share:.0%} of the eligible lines' price", share) for share in budget_shares]
    for label, share in scenarios:
        scores, context = run_backtest(data_dir, budget_share=share)
        context["title"] = f"Budget: {label}"
        context["budget_source"] = label
        sections.append(report_section(scores, context))
    return write_report(sections, out, PREAMBLE)


PREAMBLE = """The last 365 days of requests of a synthetic city are replayed as one batch. FCFS takes lines in
arrival order while they fit; greedy by predicted value per yuan; MILP maximises predicted value
(predicted loans x gap multiplier) under the budget, caps and the soft ±10% equalisation band of
spend per registered reader; the oracle is the same MILP on the true loans. All share the rules,
reader cap (10 per year), at most 3 copies per ISBN (later copies valued x0.3) and a 60%
class cap. Future loans are counted per title (a second copy adds none), so the oracle buys each
ISBN once. Produced by
`yuedu acquisition backtest --data DIR`.

"""
