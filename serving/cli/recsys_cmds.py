"""``yuedu evaluate``: offline evaluation of the recommenders.

Two modes:

* ``yuedu evaluate --dataset movielens|sco|city --protocol strong|temporal|leave-last --models ...``
  runs the protocol of :mod:`recsys.evaluation.study` over several seeds, prints one table (mean ±
  std per metric per model, baseline rows included) and writes
  ``experiments/results/<dataset>[-<protocol>].md`` and ``.json``;
* ``yuedu evaluate --data DIR ...`` does the same on any data directory (``--positive-threshold``,
  ``--min-positives`` and ``--temporal`` say what the built-in data sets' specs say; ``--dataset
  movielens`` is ``--data <its directory> --positive-threshold 4 --min-positives 5 --temporal
  per-reader``); results go to a new ``experiments/runs/evaluate-<name>-<time>/`` unless ``--out``;
* ``yuedu evaluate CONFIG|MODEL_URI`` (an experiment ``.toml`` or a ``runs:/`` / ``models:/`` URI)
  hands over to :func:`training.pipeline.evaluate_target`.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import typer

from serving.cli.errors import fail

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "experiments" / "results"
#: Where runs on a user's own data go by default (git-ignored: never a committed file).
RUNS_DIR = REPO_ROOT / "experiments" / "runs"
#: Synthetic-city profile evaluated as ``--dataset city`` (the full ``city`` profile, 200,000
#: readers x 180,000 titles, does not fit a 10-minute run on 2 cores).
CITY_PROFILE = "small"


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add this module's commands to the ``yuedu`` app."""
    app.command("evaluate")(evaluate_cmd)
    app.command("promotion-report")(promotion_report_cmd)
    app.command("recommend")(recommend_cmd)


def evaluate_cmd(
    target: str = typer.Argument(
        None, metavar="[CONFIG|MODEL_URI]", help="An experiment .toml or a runs:/ / models:/ URI (training mode)."
    ),
    dataset: str = typer.Option(None, "--dataset", help="movielens, sco or city (synthetic, small profile)."),
    data: Path = typer.Option(
        None, "--data", help="Any data directory `yuedu data ingest|interactions|sco|goodbooks` wrote."
    ),
    protocol: str = typer.Option(
        None, "--protocol", help="strong, temporal or leave-last (default: strong for movielens, else temporal)."
    ),
    positive_threshold: float = typer.Option(
        None, "--positive-threshold", help="Events with a value below this are not positives (ratings; movielens: 4)."
    ),
    min_positives: int = typer.Option(
        None, "--min-positives", help="Readers with fewer positives are dropped (movielens: 5; default 1)."
    ),
    temporal: str = typer.Option(
        None,
        "--temporal",
        help="How --protocol temporal cuts: per-reader (last 20 %% of each reader, movielens), global (one cut "
        "at the 80th percentile of times, sco; the default for --data) or last-days (the last 182 days, city).",
    ),
    models: str = typer.Option(
        None, "--models", help="Comma-separated models (default: all; on --profile city those that fit it)."
    ),
    inputs: str = typer.Option(
        "targets",
        "--inputs",
        help="targets: models see only the protocol's positives. all: every rating is input (ratings below 4 "
        "on their own channel, their weight tuned on validation), positives stay the only targets; the raw "
        "implicit baselines get the same input (MovieLens strong and temporal).",
    ),
    seeds: int = typer.Option(None, "--seeds", help="Seeds of the reader split (default 5; city profile 1)."),
    quick: bool = typer.Option(False, "--quick", help="One matrix choice and one parameter set per model."),
    path: Path = typer.Option(None, "--path", help="Source folder of the data set (default: ../shared/data/...)."),
    profile: str = typer.Option(CITY_PROFILE, "--profile", help="Synthetic city profile (city only)."),
    threads: int = typer.Option(0, "--threads", help="BLAS / implicit threads (0 = all cores)."),
    out: Path = typer.Option(
        None,
        "--out",
        help="Results folder (default: experiments/results for --dataset, experiments/runs/... for --data).",
    ),
    on: str = typer.Option("test", "--on", help="Fold for CONFIG|MODEL_URI mode."),
) -> None:
    """Evaluate recommenders on a data set (mean ± std over seeds, with raw implicit baselines), or
    evaluate an experiment config / trained model given as CONFIG|MODEL_URI."""
    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=150)
    err = Console(stderr=True)
    given = [name for name, value in (("CONFIG|MODEL_URI", target), ("--dataset", dataset), ("--data", data)) if value]
    if len(given) != 1:
        what = "give one of" if not given else f"{' and '.join(given)} exclude each other; give one of"
        err.print(f"error: {what} --dataset movielens|sco|city, --data DIR or a CONFIG|MODEL_URI", markup=False)
        raise typer.Exit(2)
    if target is not None:
        _evaluate_target(console, target, on)
        return
    spec = _spec_or_exit(err, dataset, data, positive_threshold, min_positives, temporal)
    name = dataset or data.resolve().name
    scale, models, seeds = _scale_defaults(dataset, profile, models, seeds)
    _evaluate_dataset(
        console,
        dataset=name,
        data=data,
        spec=spec,
        protocol=protocol or ("strong" if dataset == "movielens" else "temporal"),
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        seeds=seeds,
        quick=quick,
        path=path,
        profile=profile,
        threads=threads,
        out=out or (RESULTS_DIR if dataset else RUNS_DIR / f"evaluate-{name}-{time.strftime('%Y%m%d-%H%M%S')}"),
        inputs=inputs,
        scale=scale,
    )


def _scale_defaults(dataset: str | None, profile: str, models: str | None, seeds: int | None):
    """Whether this is the city-scale study (``--dataset city --profile city``), and the models and
    seeds to run when not given (there: the models that fit a city catalogue, one seed)."""
    scale = dataset == "city" and profile == "city"
    if models is None:
        from recsys.evaluation.scale import SCALE_MODELS

        models = ",".join(SCALE_MODELS) if scale else "popular,itemknn,als,bpr,ease,rp3beta,hybrid"
    return scale, models, seeds if seeds is not None else (1 if scale else 5)


def _spec_or_exit(err, dataset: str | None, data: Path | None, threshold, min_positives, temporal):
    """The data set's :class:`~recsys.evaluation.protocols.DataSpec` (a built-in one for ``--dataset``),
    with the options given on the command line replacing its fields; one error line and exit 2 if bad."""
    import dataclasses

    from recsys.evaluation.protocols import SPECS, DataSpec, EvaluationError

    if dataset is not None and dataset not in SPECS:
        err.print(f"error: unknown --dataset {dataset!r}; expected {', '.join(SPECS)} (or --data DIR)", markup=False)
        raise typer.Exit(2)
    if data is not None and not data.is_dir():
        err.print(f"error: --data {data}: no such directory", markup=False)
        raise typer.Exit(2)
    changes = {"positive_threshold": threshold, "min_positives": min_positives, "temporal": temporal}
    changes = {key: value for key, value in changes.items() if value is not None}
    try:
        return dataclasses.replace(SPECS[dataset] if dataset else DataSpec(), **changes)
    except EvaluationError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None


def _evaluate_target(console, target: str, on: str) -> None:
    from rich.console import Console

    try:
        from training.pipeline import evaluate_target
    except ImportError as exc:
        Console(stderr=True).print(
            f"error: evaluating a CONFIG|MODEL_URI needs training.pipeline.evaluate_target ({exc})", markup=False
        )
        raise typer.Exit(2) from None
    result = evaluate_target(target, on=on)
    console.print_json(json.dumps(result, default=str))


def _evaluate_dataset(
    console,
    *,
    dataset: str,
    spec,
    protocol: str,
    models: tuple[str, ...],
    seeds: int,
    quick: bool,
    path: Path | None,
    profile: str,
    threads: int,
    out: Path,
    inputs: str = "targets",
    data: Path | None = None,
    scale: bool = False,
) -> None:
    """Run the study on a built-in data set (``dataset`` a name of ``SPECS``) or on the data directory
    ``data`` (then ``dataset`` is its name), under ``spec``; print the table and write the results.
    ``scale``: the city-scale study (:mod:`recsys.evaluation.scale`), written as ``city-scale``."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from features.datasets import DatasetError, load_dataset
    from recsys.evaluation.protocols import EvaluationError
    from recsys.evaluation.study import RunConfig, run_evaluation

    err = Console(stderr=True)
    if seeds < 1:
        err.print("error: --seeds must be >= 1", markup=False)
        raise typer.Exit(2)
    if inputs not in ("targets", "all"):
        err.print(f"error: --inputs must be targets or all, got {inputs!r}", markup=False)
        raise typer.Exit(2)
    config = RunConfig(
        dataset, protocol, models=models, seeds=tuple(range(seeds)), quick=quick, threads=threads, inputs=inputs
    )
    if scale:
        from recsys.evaluation.scale import scale_config

        config = scale_config(config)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"loading {dataset}", total=None)
        try:
            if data is not None:
                loaded = load_dataset("dir", path=data)
            else:
                loaded = load_dataset(dataset, path=path, profile=profile)
            report = run_evaluation(loaded, spec, config, progress=lambda msg: bar.update(task, description=msg))
        except (DatasetError, EvaluationError) as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(2) from None
    # results are named by the CLI's data set name (``city``), the source keeps its own (``synth-small``)
    report["source"], report["dataset"] = report["dataset"], dataset
    report["kind"] = "dir" if data is not None else dataset
    if data is not None:
        report["data_dir"] = str(data.resolve())
    report["command"] = "yuedu " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report["machine"] = {"python": platform.python_version(), "platform": platform.platform(), **report["threads"]}
    if dataset == "city" and data is None:
        report["profile"] = profile
    if scale:
        report["dataset"] = "city-scale"
    console.print(results_table(report))
    console.print(comparison_line(report.get("comparison", {})), markup=False)
    paths = write_results(report, out)
    console.print(f"wrote {paths[0]} and {paths[1]} ({report['wall_seconds']:.1f} s)")


def results_table(report: dict[str, Any]):
    """A rich table: one row per model, ``mean ± std`` per metric."""
    from rich.table import Table

    from recsys.evaluation.batch import METRICS

    table = Table(title=f"{report['dataset']} / {report['protocol']} ({len(report['seeds'])} seeds)")
    table.add_column("model")
    table.add_column("kind")
    for m in METRICS:
        table.add_column(m, justify="right")
    for row in report["summary"]:
        table.add_row(row["model"], row["kind"], *(f"{row[f'{m}_mean']:.4f} ± {row[f'{m}_std']:.4f}" for m in METRICS))
    return table


def markdown(report: dict[str, Any]) -> str:
    """The results report as Markdown: command, machine, table, comparison, chosen parameters."""
    from recsys.evaluation.batch import METRICS
    from recsys.evaluation.tuning import POOLED_SELECTION

    lines = [
        f"# Evaluation: {report['dataset']} / {report['protocol']}",
        "",
        f"- command: `{report.get('command', '')}`",
        f"- wall time: {report['wall_seconds']:.1f} s; machine: {report.get('machine', report['threads'])}",
        f"- data: {report['events']:,} events, {report['readers']:,} readers, {report['titles']:,} titles;"
        f" seeds {report['seeds']}; quick={report['quick']}",
        "",
        "| model | kind | " + " | ".join(METRICS) + " |",
        "|---|---|" + "---:|" * len(METRICS),
    ]
    for row in report["summary"]:
        cells = " | ".join(f"{row[f'{m}_mean']:.4f} ± {row[f'{m}_std']:.4f}" for m in METRICS)
        lines.append(f"| {row['model']} | {row['kind']} | {cells} |")
    line = comparison_line(report.get("comparison", {}))
    if line:
        lines += ["", line]
    pooled = any(POOLED_SELECTION in r["validation"] for r in report["results"] if r["kind"] == "yuedu")
    extra = f" {POOLED_SELECTION} (validation + internal splits) |" if pooled else ""
    lines += [
        "",
        "## Chosen on validation (per seed)",
        "",
        f"| seed | model | validation ndcg@10 |{extra} parameters |",
    ]
    lines.append("|---:|---|---:|" + ("---:|" if pooled else "") + "---|")
    for r in report["results"]:
        if r["kind"] == "yuedu":
            params = json.dumps(r["params"], sort_keys=True, default=str)
            cell = f" {r['validation'].get(POOLED_SELECTION, float('nan')):.4f} |" if pooled else ""
            lines.append(
                f"| {r['seed']} | {r['model']} | {r['validation'].get('ndcg@10', float('nan')):.4f} |{cell} `{params}` |"
            )
    lines += _cost_lines(report)
    lines += ["", "## Splits", ""]
    for s in report["splits"]:
        lines.append(f"- seed {s['seed']}: `{json.dumps(s['split'], default=str)}`")
    return "\n".join(lines) + "\n"


def _cost_lines(report: dict[str, Any]) -> list[str]:
    """The "Cost" section: per model (and seed) the final fit's wall time and peak resident memory,
    when the run measured them (city scale); and the sampled fold readers."""
    rows = [r for r in report["results"] if r.get("cost")]
    if not rows:
        return []
    lines = ["", "## Cost of the final fit (per model and seed)", ""]
    caps = report.get("max_readers") or [None, None]
    if any(caps):
        lines += [
            f"Scored readers: validation {caps[0] or 'all'}, test {caps[1] or 'all'} (seeded samples); training on all.",
            "",
        ]
    lines += [
        "| seed | model | kind | fit s | peak RSS GB (process) | above start GB |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for r in rows:
        c = r["cost"]
        shared = f" (the {c['shared_by']} raw models together)" if c.get("shared_by") else ""
        lines.append(
            f"| {r['seed']} | {r['model']} | {r['kind']} | {c['fit_seconds']:.1f}{shared} | {c['peak_rss_gb']:.2f} | {c['fit_extra_gb']:.2f} |"
        )
    return lines


def comparison_line(comp: dict[str, Any]) -> str:
    """One sentence: the model chosen on validation, its ratios with reader-bootstrap intervals."""
    if not comp or "chosen" not in comp:
        return ""
    by_model: dict[str, list[str]] = {}
    for seed, model in comp["chosen"].items():
        by_model.setdefault(model, []).append(seed)
    picks = ", ".join(f"{m} (seed {', '.join(s)})" for m, s in by_model.items())

    def ratio(key: str) -> str:
        if comp.get(key) is None:
            return "n/a"
        interval = comp.get(f"{key}_interval")
        band = f" (95 % reader-bootstrap interval {interval[0]:.2f}-{interval[1]:.2f}x)" if interval else ""
        return f"{comp[key]:.3f}x{band}"

    best = comp.get("best_by_test", {})
    return (
        f"Chosen on {comp.get('selected_on', 'validation')}: {picks}; test NDCG@10 **{comp['chosen_ndcg@10']:.4f}**; ratio to raw implicit ALS "
        f"defaults (`{comp.get('raw_als_row', 'raw-implicit-als')}`): **{ratio('ratio_to_raw_als')}**; to tuned "
        f"EASE: {ratio('ratio_to_ease')}. Best mean test NDCG@10 (for reference, not a selection): "
        f"{best.get('model')} {best.get('ndcg@10', float('nan')):.4f}."
    )


def write_results(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``<dataset>.md`` and ``<dataset>.json`` under ``out`` (a non-default protocol gets a
    ``-<protocol>`` suffix, so MovieLens keeps both its strong and temporal results; ``--inputs all``
    an ``-all-inputs`` suffix)."""
    out.mkdir(parents=True, exist_ok=True)
    default = "strong" if report["dataset"] == "movielens" else "temporal"
    stem = report["dataset"] if report["protocol"] == default else f"{report['dataset']}-{report['protocol']}"
    if report.get("inputs", "targets") != "targets":
        stem += f"-{report['inputs']}-inputs"
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    md.write_text(markdown(report))
    js.write_text(json.dumps(report, indent=1, default=str))
    return md, js


def promotion_report_cmd(
    data: Path = typer.Option(None, "--data", help="A synthetic city directory (default: the small city, generated)."),
    profile: str = typer.Option("small", "--profile", help="Synthetic profile when --data is not given."),
    out: Path = typer.Option(None, "--out", help="Markdown file (default: experiments/results/city-promotion.md)."),
) -> None:
    """What filters and each reading-promotion setting cost in accuracy on the synthetic city (vs the oracle)."""
    import shlex

    from rich.console import Console
    from rich.table import Table

    from features.datasets import load_dataset
    from recsys.evaluation.promotion import promotion_costs, write_markdown

    data_dir = data or load_dataset("city", profile=profile).data_dir
    console = Console() if sys.stdout.isatty() else Console(width=150)
    with console.status("fitting, filtering, re-ranking"):
        table, info = promotion_costs(data_dir)
    t = Table(title=f"filters and promotion on the synthetic city ({info['readers']:,} test readers, @10)")
    for c in table.columns:
        t.add_column(c, justify="left" if c == "setting" else "right")
    for row in table.iter_rows():
        t.add_row(*(v if isinstance(v, str) else f"{v:.4f}" for v in row))
    console.print(t)
    target = out or RESULTS_DIR / "city-promotion.md"
    command = "yuedu promotion-report" + (f" --data {shlex.quote(str(data))}" if data else f" --profile {profile}")
    console.print(f"written: {write_markdown(table, info, target, command)}")


def recommend_cmd(
    reader: list[str] = typer.Option(..., "--reader", help="Reader id (repeat for several)."),
    model: Path = typer.Option(..., "--model", help="Model directory (yuedu train / make demo)."),
    data: Path = typer.Option(..., "--data", help="Validated data directory (copies, booklists, readers)."),
    n: int = typer.Option(10, "--n", min=1, max=200, help="List length."),
    branch: str = typer.Option(None, "--branch", help="Branch the reader is at (default: home branch)."),
    today: str = typer.Option(None, "--today", help="ISO date for booklists and new arrivals (default: today)."),
    promotion: bool = typer.Option(True, help="Apply reading-promotion re-ranking."),
    personalised: bool = typer.Option(True, help="Personalise (off: filtered branch/city popularity)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    db_url: str = typer.Option(None, "--db", help="Service database URL: honour readers' stored opt-outs."),
) -> None:
    """Recommendations for readers, with filters, promotion and a reason for each title."""
    from dataclasses import asdict
    from datetime import date

    from rich.console import Console
    from rich.table import Table

    from recsys.context import LibraryContext
    from recsys.models import ModelFormatError, load_model
    from recsys.service import RecommendationService

    err = Console(stderr=True, soft_wrap=True)
    if not data.is_dir():
        fail(f"--data {data}: no such directory")
    try:
        on = date.fromisoformat(today) if today else date.today()
    except ValueError:
        fail(f"--today {today!r}: not an ISO date (YYYY-MM-DD)")
    try:
        m = load_model(model)
        ctx = LibraryContext.from_data_dir(data, m.titles_, m.readers_, on)
    except (ModelFormatError, FileNotFoundError, ValueError) as exc:
        fail(f"{exc}")
    if branch is not None and ctx.branches.get(branch) is None:
        known = ", ".join(ctx.branches.ids[:5]) if len(ctx.branches) else "none: the data has no branches table"
        fail(f"--branch {branch!r}: unknown branch (known: {known}{', ...' if len(ctx.branches) > 5 else ''})")
    readers = [_known_reader(err, rid, m, data) for rid in reader]
    for code, text in ctx.limitations():
        err.print(f"note ({code}): {text}", markup=False)
    service = RecommendationService(m, ctx)
    out = {}
    for (mine, promoted), ids in _by_choice(db_url, readers, personalised, promotion).items():
        out |= service.recommend_for_readers(ids, n, branch, promoted, personalised=mine)
    out = {r: out[r] for r in readers}
    if as_json:
        payload = {r: [asdict(x) for x in recs] for r, recs in out.items()}
        typer.echo(json.dumps(payload, default=str, indent=2, ensure_ascii=False))
        return
    console = Console() if sys.stdout.isatty() else Console(width=150)
    for rid, recs in out.items():
        cold = " (cold start: not in the model)" if m.readers_.get(rid) is None else ""
        t = Table(title=f"reader {rid}: top {len(recs)}{cold}")
        for col in ("#", "title", "author", "CLC", "available at", "why"):
            t.add_column(col)
        for i, r in enumerate(recs, 1):
            where = ", ".join(r.available_at[:2]) + ("…" if len(r.available_at) > 2 else "")
            unknown = "not checked (no holdings)" if not ctx.has_holdings else "e-book / on request"
            where = where or ("home delivery" if r.delivery else unknown)
            t.add_row(str(i), r.title, r.author or "", r.clc_class, where, "; ".join(x.text for x in r.reasons))
        console.print(t)


def _by_choice(
    db_url: str | None, readers: list[str], personalised: bool, promotion: bool
) -> dict[tuple[bool, bool], list[str]]:
    """Readers grouped by (personalised, promotion): the command's switches, turned off further for a
    reader whose stored preference (``serving.preferences``, with ``--db``) refuses either."""
    stored = _stored(db_url, readers) if db_url else {}
    groups: dict[tuple[bool, bool], list[str]] = {}
    for r in dict.fromkeys(readers):
        mine, promoted = stored.get(r, (True, True))
        groups.setdefault((personalised and mine, promotion and promoted), []).append(r)
    return groups


def _stored(db_url: str, readers: list[str]) -> dict[str, tuple[bool, bool]]:
    """(personalised, promotion) of each reader with a stored preference; an erased profile is not
    personalised either (until the next training leaves it out)."""
    from acquisition.db import init_db
    from serving.data_rights import DataRights
    from serving.preferences import ReaderPreferences

    db = init_db(db_url)
    try:
        prefs, erased = ReaderPreferences(db), set(DataRights(db).excluded())
        return {r: (p.personalised and r not in erased, p.promotion) for r in readers for p in [prefs.get(r)]}
    finally:
        db.dispose()


def _known_reader(err, reader_id: str, model, data: Path) -> str:
    """``reader_id`` as the model knows it. A member id of the SCO files is mapped to its pseudonym
    (``yuedu data sco`` never stores the slug); an id the model does not know is reported, and gets
    a cold-start list (what is popular), never silently someone else's."""
    if model.readers_.get(reader_id) is not None:
        return reader_id
    report = data / "adapter_report.json"
    if report.exists() and json.loads(report.read_text()).get("adapter") == "sco":
        from features.adapters.sco import pseudonym

        alias = pseudonym(reader_id)
        if model.readers_.get(alias) is not None:
            err.print(f"note: SCO member {reader_id!r} is reader {alias} in this data (slugs are pseudonymised)")
            return alias
    err.print(
        f"warning: reader {reader_id!r} is not known to the model: a cold-start list (popular titles)", markup=False
    )
    return reader_id
