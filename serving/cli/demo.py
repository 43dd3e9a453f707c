"""``yuedu demo --out DIR``: the main job end to end on the embedded sample city.

1. synthesise the small city (with a few malformed rows, so ingestion has something to reject);
2. ingest it with validation, print the reject and describe summaries;
3. train a recommender on the first 2.5 years and show a reader's top-10 with reasons;
4. decide a few "you choose, I buy" requests at a bookstore counter, with reason codes;
5. rank a round of online requests against the budget and collection gaps, with reasons;
6. leave what ``make serve`` needs: ``DIR/data``, ``DIR/yuedu.db``, ``DIR/model``, ``DIR/demo_tokens.json``.

The sample history ends on 2026-06-30, so the demo's clock is 2026-06-20 (inside the last budget month).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import date, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

# Wide enough for the tables when output is piped (CI, logs); a terminal keeps its own width.
console = Console() if sys.stdout.isatty() else Console(width=130)
DEMO_NOW = datetime(2026, 6, 20, 10, 30)
TRAIN_CUTOFF = datetime(2026, 1, 1)


def _step(n: int, title: str) -> None:
    console.rule(f"[bold cyan]{n}. {title}")


def _synth_and_ingest(out: Path, seed: int) -> Path:
    from features.ingest import ingest
    from features.synth import synthesize

    _step(1, "Synthesise the sample city")
    src, data = out / "src", out / "data"
    summary = synthesize(profile="small", seed=seed, out=src, dirty_rate=0.002, progress=True)
    console.print(f"small city, seed {seed}: {summary.counts} in {summary.seconds:.1f} s")

    _step(2, "Ingest with validation")
    report = ingest(src, data, now=datetime(2026, 7, 1))
    t = Table(title="ingestion: read / accepted / rejected by reason")
    for col in ("table", "read", "accepted", "rejected", "reasons"):
        t.add_column(col, justify="right" if col in ("read", "accepted", "rejected") else "left")
    for name, tr in report.tables.items():
        rejected = sum(tr.rejected.values())
        t.add_row(
            name,
            f"{tr.read:,}",
            f"{tr.accepted:,}",
            f"{rejected:,}",
            ", ".join(f"{k}={v}" for k, v in sorted(tr.rejected.items())) or "-",
        )
    console.print(t)
    console.print(f"rejected rows are kept with reasons in {data / 'rejects'}")
    from features.describe import describe
    from serving.cli.data_public import render_summary

    render_summary(describe(data), console)
    return data


def _train(out: Path, data: Path):
    from features.interactions import load_interactions
    from features.matrix import WeightingConfig, build_matrix
    from features.splits import temporal_split
    from recsys.metrics import evaluate
    from recsys.models import make_model

    _step(3, "Train a recommender (first 2.5 years) and check it on the last half-year")
    events = load_interactions(data).collect()
    split = temporal_split(events, cutoff=TRAIN_CUTOFF)
    weighting = WeightingConfig(half_life_days=365.0)
    mats = split.to_matrices(weighting)
    t0 = time.perf_counter()
    scores = {}
    for name, params in (("popular", {}), ("ease", {"lambda_": 100.0})):
        m = make_model(name, **params).fit(mats.train)
        fold = mats.folds["test"]
        recs, _ = m.recommend(None, 10, history=fold.foldin.matrix)
        scores[name] = evaluate(recs, fold.target.matrix, ks=[10]).row(0, named=True)
    console.print(
        f"test readers: {scores['ease']['readers']:,}; NDCG@10 EASE {scores['ease']['ndcg']:.3f} vs "
        f"popularity {scores['popular']['ndcg']:.3f}; recall@10 {scores['ease']['recall']:.3f} vs "
        f"{scores['popular']['recall']:.3f} ({time.perf_counter() - t0:.1f} s)"
    )
    # The served model learns from the whole history.
    full = build_matrix(events, weighting)
    model = make_model("ease", lambda_=100.0).fit(full)
    model_dir = out / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.save(model_dir)
    return model, full


def _show_recommendations(model, data: Path) -> str:
    import polars as pl

    from recsys.context import LibraryContext
    from recsys.service import RecommendationService

    ctx = LibraryContext.from_data_dir(data, model.titles_, model.readers_, DEMO_NOW.date())
    service = RecommendationService(model, ctx)
    readers = pl.read_parquet(data / "readers.parquet")
    loans = pl.read_parquet(data / "loans.parquet")
    # An adult reader with a real history, chosen deterministically.
    active = loans.group_by("reader_id").len().filter(pl.col("len") >= 15)
    reader_id = (
        readers.join(active, on="reader_id").filter(pl.col("age_band") == "adult").sort("reader_id")["reader_id"][0]
    )
    recs = service.recommend_for_reader(reader_id, n=10)
    t = Table(title="top-10 for one adult reader (pseudonymous id), with reasons")
    for col in ("#", "title", "author", "CLC", "why"):
        t.add_column(col)
    for i, r in enumerate(recs, 1):
        t.add_row(str(i), r.title[:24], (r.author or "")[:12], r.clc_class, "; ".join(x.text for x in r.reasons[:2]))
    console.print(t)
    return reader_id


def _counter(out: Path, data: Path):
    import polars as pl

    from acquisition.counter import CounterService, PurchaseRequestIn
    from acquisition.db import init_db, load_data_dir
    from acquisition.holdings import Holdings
    from acquisition.policy import load_policy

    _step(4, "'You choose, I buy' at the bookstore counter")
    db_path = out / "yuedu.db"
    db_path.unlink(missing_ok=True)
    db = init_db(f"sqlite:///{db_path}")
    load_data_dir(db, data)
    policy = load_policy(None)
    counter = CounterService(db, policy, Holdings.from_data_dir(data), clock=lambda: DEMO_NOW)
    requests = pl.read_parquet(data / "purchase_requests.parquet")
    titles = pl.read_parquet(data / "titles.parquet")
    held = titles.join(pl.read_parquet(data / "copies.parquet"), on="title_id").group_by("isbn13").len()
    reader = pl.read_parquet(data / "readers.parquet").filter(pl.col("age_band") == "adult").sort("reader_id")[0]
    store = pl.read_parquet(data / "bookstores.parquet").sort("bookstore_id")[0]
    good = requests.filter((pl.col("category") == "general") & (pl.col("price") < 60)).sort("request_id")[0]
    often_held = held.sort(["len", "isbn13"], descending=[True, False])["isbn13"][0]
    base = dict(reader_id=reader["reader_id"][0], bookstore_id=store["bookstore_id"][0], requested_at=DEMO_NOW)
    cases = [
        (
            "a new novel",
            dict(
                isbn=good["isbn"][0],
                price=float(good["price"][0]),
                title=good["title"][0],
                pub_year=2026,
                clc_class=good["clc_class"][0],
            ),
        ),
        ("the same request retried", None),
        (
            "an art book over the price cap",
            dict(isbn="9787020002207", price=268.0, title="Complete works", pub_year=2025, clc_class="J2"),
        ),
        (
            "an exam-prep workbook from 2019",
            dict(
                isbn="9787100000000",
                price=45.0,
                title="Gaokao drills",
                pub_year=2019,
                clc_class="G63",
                category="exam_prep",
            ),
        ),
        (
            "a title the network holds many copies of",
            dict(isbn=often_held, price=39.0, title="(already held)", pub_year=2025, clc_class="I247"),
        ),
        ("a mistyped ISBN", dict(isbn="9787020002208", price=30.0, title="Typo", pub_year=2026, clc_class="I")),
    ]
    t = Table(title=f"counter decisions at {store['name'][0]} (policy: price cap {policy.price_cap_yuan} yuan)")
    for col in ("request", "eligible", "reason codes", "reservation"):
        t.add_column(col)
    first = None
    for label, fields in cases:
        if fields is None:
            decision = counter.decide(first[0], first[1])
        else:
            req = PurchaseRequestIn(**base, **fields)
            key = f"demo-{label}"
            first = first or (req, key)
            decision = counter.decide(req, key)
        t.add_row(
            label,
            "yes" if decision.eligible else "no",
            ", ".join(decision.reason_codes) or "-",
            (decision.budget_reservation_id or "-")[:12] + (" (replayed)" if decision.replayed else ""),
        )
    console.print(t)
    return db, policy


def _round(data: Path, db, policy) -> None:
    import polars as pl

    from acquisition.ranking import RankingParams, rank_requests
    from acquisition.rounds import save_round

    _step(5, "Rank a month of online requests against the budget and collection gaps")
    requests = pl.read_parquet(data / "purchase_requests.parquet").filter(
        (pl.col("channel") == "online")
        & (pl.col("requested_at") >= datetime(2026, 3, 1))
        & (pl.col("requested_at") < datetime(2026, 6, 1))
    )
    budget = round(float(requests["price"].sum()) * 0.4, 2)
    result = rank_requests(requests, data, policy, budget, RankingParams(method="milp"), as_of=datetime(2026, 6, 1))
    s = result.summary()
    console.print(
        f"{s['lines']} requests, {s['eligible']} eligible; selected {s['selected']} for {s['spend_yuan']:.2f} of "
        f"{s['budget_yuan']:.2f} yuan (MILP {s['solver_status']}, {s['seconds']:.2f} s); "
        f"first-year loans the selected copies should serve: {s['predicted_loans']} "
        f"(one copy can serve at most ~{result.circulation.capacity:.0f} a year)"
    )
    assert s["spend_yuan"] <= s["budget_yuan"] + 1e-6, "budget overspent"
    t = Table(title="ranked purchase list (top 8) for staff approval")
    for col in ("rank", "title", "district", "yuan", "loans (1st year)", "why"):
        t.add_column(col)
    lines = result.lines.join(requests.select("request_id", "title"), on="request_id", how="left")
    for row in lines.sort("rank").head(8).iter_rows(named=True):
        t.add_row(
            str(row["rank"]),
            (row.get("title") or "")[:30],
            row["district"] or "-",
            f"{row['price']:.2f}",
            f"{row['predicted_loans']:.1f}",
            row["reasons"] or "",
        )
    console.print(t)
    with db.session_scope(write=True) as session:
        save_round(session, result, created_by="demo")


def _tokens(out: Path, reader_id: str, data: Path) -> None:
    import polars as pl

    from serving.security import issue_token

    secret = "demo-secret-" + date.today().isoformat()
    store = pl.read_parquet(data / "bookstores.parquet").sort("bookstore_id")["bookstore_id"][0]
    tokens = {
        "secret_key": secret,
        "reader": {"reader_id": reader_id, "token": issue_token("reader", reader_id, secret, ttl_s=30 * 86400)},
        "bookstore": {"bookstore_id": store, "token": issue_token("bookstore", store, secret, ttl_s=30 * 86400)},
        "staff": {"login": "staff", "password": "demo", "token": issue_token("staff", "staff", secret, 30 * 86400)},
        "admin": {"token": issue_token("admin", "admin", secret, ttl_s=30 * 86400)},
    }
    (out / "demo_tokens.json").write_text(json.dumps(tokens, indent=2))


def demo(
    out: Path = typer.Option(Path(".demo"), "--out", help="Working directory for the demo's files."),
    seed: int = typer.Option(7, help="Seed of the sample city."),
) -> None:
    """Run yuedu end to end on the embedded sample city."""
    t0 = time.perf_counter()
    # Logs name readers by keyed pseudonyms; the demo uses a fixed key so its logs are comparable run to run.
    os.environ.setdefault("YUEDU_PSEUDONYM_KEY", "yuedu-demo-pseudonym-key")
    out.mkdir(parents=True, exist_ok=True)
    data = _synth_and_ingest(out, seed)
    model, _ = _train(out, data)
    reader_id = _show_recommendations(model, data)
    db, policy = _counter(out, data)
    _round(data, db, policy)
    _tokens(out, reader_id, data)
    console.print(
        Panel.fit(
            f"Done in {time.perf_counter() - t0:.0f} s. Files in {out}/ (data, yuedu.db, model, demo_tokens.json).\n"
            "Next: [bold]make serve[/bold] starts the HTTP service on this data "
            "(API docs at http://127.0.0.1:8000/docs, staff page at /staff, login staff / demo).\n"
            "Experiments: yuedu experiment run experiments/movielens_*.toml",
            title="yuedu demo",
        )
    )


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    app.command("demo")(demo)
