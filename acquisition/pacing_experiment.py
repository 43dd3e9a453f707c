"""Issue 15's pacing goals measured: a programme year of the synthetic city replayed on arrival at
annual budgets of 30 / 50 / 70 % of the year's eligible demand, fcfs vs paced vs the hindsight oracle.
Writes ``OUT.md`` and ``OUT.json`` (``yuedu acquisition pacing-goals --data DIR``)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from acquisition.backtest import Replay
from acquisition.policy import Policy, load_policy
from acquisition.whatif import eligible_lines, oracle_year, prepared_year, run_figures, run_year

_log = logging.getLogger(__name__)


def scenario(prepared: Replay, policy: Policy, share: float) -> dict[str, Any]:
    """fcfs, paced and the oracle at an annual budget of ``share`` x the year's eligible spend."""
    lines = eligible_lines(prepared, policy)
    budget = share * float(lines["price"].sum())
    requesters = lines["reader_id"].n_unique()
    out: dict[str, Any] = {"share": share, "budget": round(budget, 2), "eligible": lines.height}
    for mode in ("fcfs", "paced"):
        pol = policy.model_copy(update={"pacing": policy.pacing.model_copy(update={"policy": mode})})
        t0 = time.perf_counter()
        run = run_year(prepared, pol, budget, lines=lines)
        out[mode] = {**run_figures(run, prepared, lines, requesters), "seconds": round(time.perf_counter() - t0, 2)}
    # diagnostic, not a policy: paced deciding on the truth's intents (what perfect demand prediction gives)
    knows = replace(prepared, lines=prepared.lines.with_columns(pl.col("true_intents").alias("predicted_intents")))
    pol = policy.model_copy(update={"pacing": policy.pacing.model_copy(update={"policy": "paced"})})
    run = run_year(knows, pol, budget, lines=lines.with_columns(pl.col("true_intents").alias("predicted_intents")))
    out["paced_at_truth"] = {**run_figures(run, prepared, lines, requesters), "seconds": 0.0}
    t0 = time.perf_counter()
    run = oracle_year(prepared, budget, lines, policy)
    out["oracle"] = {**run_figures(run, prepared, lines, requesters), "seconds": round(time.perf_counter() - t0, 2)}
    out["goals"] = goals(out)
    return out


def goals(s: dict[str, Any]) -> dict[str, Any]:
    """Each goal of issue 15 §2 with its measured figure."""
    fcfs, paced, oracle = s["fcfs"], s["paced"], s["oracle"]
    ratio = paced["loans_served"] / fcfs["loans_served"] if fcfs["loans_served"] else float("nan")
    pct = 100 * paced["loans_served"] / oracle["loans_served"] if oracle["loans_served"] else float("nan")
    months = list(paced["money_left_by_month"].values())
    return {
        "paced_over_fcfs": round(ratio, 3),
        "paced_over_fcfs_met": bool(ratio >= 1.3) if s["share"] <= 0.5 else None,
        "paced_pct_of_oracle": round(pct, 1),
        "paced_pct_of_oracle_met": bool(pct >= 85),
        "paced_money_left_every_month": bool(min(months[:-1], default=1.0) > 0 and not paced["money_ran_out_on"]),
        "paced_months_with_money_refusals": paced["months_with_money_refusals"],
        "fcfs_money_ran_out_on": fcfs["money_ran_out_on"],
        "fcfs_first_refusal_for_money": fcfs["first_refusal_for_money"],
        "requesters_points_vs_fcfs": round(paced["requesters_served_pct"] - fcfs["requesters_served_pct"], 2),
        "requesters_within_5_points": bool(abs(paced["requesters_served_pct"] - fcfs["requesters_served_pct"]) <= 5),
        "paced_max_district_deviation_pct": paced["max_district_deviation_pct"],
        "district_within_10_pct": bool(paced["max_district_deviation_pct"] <= 10),
    }


def _section(s: dict[str, Any]) -> str:
    g = s["goals"]
    rows = [
        f"## Annual budget {s['share']:.0%} of eligible demand ({s['budget']:,.2f} yuan, {s['eligible']} eligible requests)",
        "",
        "| policy | bought | spend (yuan) | loans served | requesters served % | declined: no money | declined: paced "
        "| first refusal for money | money ran out on | max district deviation % | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in ("fcfs", "paced", "paced_at_truth", "oracle"):
        f = s[k]
        rows.append(
            f"| {k} | {f['bought']} | {f['spend']:,.2f} | {f['loans_served']:,.1f} | {f['requesters_served_pct']:.2f} "
            f"| {f['declined_no_money']} | {f['declined_paced']} | {f['first_refusal_for_money'] or '-'} "
            f"| {f['money_ran_out_on'] or '-'} | {f['max_district_deviation_pct']:.2f} | {f['seconds']:.2f} |"
        )
    left = ", ".join(f"{m}: {v:,.0f}" for m, v in s["paced"]["money_left_by_month"].items())
    rows += [
        "",
        f"- paced / fcfs loans: **{g['paced_over_fcfs']:.2f}x** (goal >= 1.3x at 30 % and 50 %: "
        f"{'-' if g['paced_over_fcfs_met'] is None else 'met' if g['paced_over_fcfs_met'] else 'not met'})",
        f"- paced / hindsight oracle: **{g['paced_pct_of_oracle']:.1f} %** (goal >= 85 %: "
        f"{'met' if g['paced_pct_of_oracle_met'] else 'not met'})",
        f"- paced money left at each month's end (yuan): {left}; months in which a fund refused for money: "
        f"{', '.join(g['paced_months_with_money_refusals']) or 'none'}",
        f"- fcfs: first refusal for money {g['fcfs_first_refusal_for_money'] or '-'}, money ran out on "
        f"**{g['fcfs_money_ran_out_on'] or 'never'}**",
        f"- requesters served, paced minus fcfs: **{g['requesters_points_vs_fcfs']:+.2f} points** (goal within 5: "
        f"{'met' if g['requesters_within_5_points'] else 'not met'})",
        f"- paced district books per resident, largest deviation from the city mean: "
        f"**{g['paced_max_district_deviation_pct']:.2f} %** (goal +-10 %: {'met' if g['district_within_10_pct'] else 'not met'})",
        "",
    ]
    return "\n".join(rows)


def run_experiment(
    data_dir: str | Path,
    out: str | Path,
    *,
    shares: tuple[float, ...] = (0.3, 0.5, 0.7),
    policy: Policy | None = None,
    prepared: Replay | None = None,
    preamble: str = "",
) -> Path:
    """Every scenario, written to ``out``.md and ``out``.json; returns the Markdown path."""
    policy = policy or load_policy()
    t0 = time.perf_counter()
    prepared = prepared or prepared_year(data_dir, policy)
    prep = time.perf_counter() - t0
    results = [scenario(prepared, policy, share) for share in shares]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "data": str(data_dir),
        "start": prepared.start.isoformat(),
        "end": prepared.end.isoformat(),
        "requests": prepared.requests,
        "pacing": policy.pacing.model_dump(),
        "prep_seconds": round(prep, 1),
    }
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "scenarios": results}, indent=2, default=str))
    head = (
        "# Pacing: fcfs vs paced vs the hindsight oracle over a programme year\n\n"
        f"Data `{data_dir}`; year {meta['start'][:10]} .. {meta['end'][:10]}, {meta['requests']} requests; "
        f"pacing config {meta['pacing']}.\n\n" + preamble
    )
    md = out.with_suffix(".md")
    md.write_text(head + "\n".join(_section(s) for s in results))
    _log.info("pacing experiment written to %s", md)
    return md
