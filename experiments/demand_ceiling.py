"""How well CAN a requested book's first-year demand be ranked in the synthetic city? A ceiling study.

The acquisition backtest grades the demand model by Spearman of predicted against true first-year
borrowing intents per eligible ISBN of the held-out year (goal 0.7). In the generator
(``features/synth_programme.py``) a requested title's intents are ``weight / cluster_total x
cluster_intents``: its own latent ``weight`` (lognormal, sigma 1.4) within its taste cluster. No
library observes ``weight``; what it can observe is the requests themselves (drawn in proportion to
``weight``) and the taste of the readers who ask. This script scores predictors that are told MORE
than any decision at time t knows, on the backtest's own ISBNs:

* ``E[intents | true cluster, requests in the held-out year]``: the generator's latent cluster (which
  class rates and reader neighbours only estimate) and the count of the year's requests, including
  those after the decision; fitted in-sample on the scored ISBNs themselves;
* the same with every request of the three years (past and future);
* the raw request counts.

When the first of these stays below 0.7, the goal is above what the data carry, whatever the model.

Run: ``.venv/bin/python experiments/demand_ceiling.py --data DIR`` (a synthetic city with its
``truth/``); writes ``experiments/results/demand-ceiling.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import polars as pl
from scipy.stats import spearmanr


def scored_isbns(data: Path) -> pl.DataFrame:
    """The backtest's population: ISBNs with a rule-abiding request in the last 365 days, with their
    truth, request counts in that year, before it and in all."""
    requests = pl.read_parquet(data / "purchase_requests.parquet")
    truth = pl.read_parquet(data / "truth" / "request_titles.parquet")
    rules = pl.read_parquet(data / "truth" / "requests.parquet").select("request_id", "breaks_rule")
    start = requests["requested_at"].max() - timedelta(days=365)
    year = requests.filter(pl.col("requested_at") >= start).join(rules, on="request_id").filter(~pl.col("breaks_rule"))
    counts = year.group_by("isbn").agg(pl.len().alias("requests_year"))
    before = requests.filter(pl.col("requested_at") < start).group_by("isbn").agg(pl.len().alias("requests_before"))
    return (
        counts.join(truth, on="isbn")
        .join(before, on="isbn", how="left")
        .with_columns(pl.col("requests_before").fill_null(0))
    )


def _spearman(frame: pl.DataFrame, column: str) -> float:
    return float(spearmanr(frame[column], frame["intents_first_year"]).statistic)


def _conditional_mean(frame: pl.DataFrame, keys: list[str]) -> float:
    """Spearman of the in-sample mean of true intents given ``keys`` (a Bayes predictor fitted on the
    answers: an upper bound of any model that sees only ``keys``)."""
    means = frame.group_by(keys).agg(pl.col("intents_first_year").mean().alias("mean_given"))
    return _spearman(frame.join(means, on=keys), "mean_given")


def ceilings(data: Path) -> dict:
    d = scored_isbns(data)
    return {
        "data": str(data),
        "isbns": d.height,
        "requests_year": _spearman(d, "requests_year"),
        "requests_all": _spearman(d, "n_requests"),
        "cluster_only": _conditional_mean(d, ["cluster"]),
        "cluster_and_requests_year": _conditional_mean(d, ["cluster", "requests_year"]),
        "cluster_and_requests_all": _conditional_mean(d, ["cluster", "n_requests"]),
        "latent_weight": _spearman(d, "weight"),
    }


def markdown(c: dict) -> str:
    rows = [
        ("requests of the held-out year (count)", c["requests_year"]),
        ("all requests of the three years (count)", c["requests_all"]),
        ("E[intents | true cluster] (in-sample)", c["cluster_only"]),
        ("E[intents | true cluster, requests of the year] (in-sample)", c["cluster_and_requests_year"]),
        ("E[intents | true cluster, all requests] (in-sample)", c["cluster_and_requests_all"]),
        ("the title's latent weight (unobservable)", c["latent_weight"]),
    ]
    lines = [
        "# Demand ranking ceiling on the synthetic city",
        "",
        f"Data `{c['data']}`: {c['isbns']:,} ISBNs with a rule-abiding request in the held-out year "
        "(the backtest's population). Spearman against true first-year intents; every predictor below "
        "is told more than a decision at time t knows.",
        "",
        "| predictor | Spearman |",
        "|---|---:|",
        *[f"| {name} | {value:.3f} |" for name, value in rows],
        "",
        "Produced by `experiments/demand_ceiling.py`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("experiments/results/demand-ceiling.md"))
    args = ap.parse_args(argv)
    c = ceilings(args.data)
    md = markdown(c)
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    args.out.with_suffix(".json").write_text(json.dumps(c, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
