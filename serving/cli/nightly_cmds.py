"""``yuedu nightly``: every model reader's list for the app's nightly refresh, honouring stored choices.

With ``--db`` (the service database) the readers who refused personalisation, or erased their
profile, get non-personalised lists (what the API shows them: filtered popularity), and those who
refused promotion the model's own ranking. ``--engine local`` ranks on this machine
(:func:`recsys.batch_lists.batch_lists`); ``--engine spark`` scores the personalised lists on Spark
(:func:`recsys.spark.nightly.nightly_top_n`, opted-out readers left out) and adds the
non-personalised ones as one more part file. Output: a folder of Parquet files with ``reader_id``,
``rank``, ``title_id``, ``score``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli.errors import fail

#: Part file holding the non-personalised lists (``--engine spark``) or every list (``--engine local``).
LOCAL_PART = "part-local.parquet"
REFUSED_PART = "part-not-personalised.parquet"


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add this module's commands to the ``yuedu`` app."""
    app.command("nightly")(nightly_cmd)


def stored_choices(db_url: str | None) -> tuple[set[str], set[str]]:
    """(readers not to personalise: opted out or erased, readers without promotion) from the service
    database; both empty without one."""
    if not db_url:
        return set(), set()
    from acquisition.db import init_db
    from serving.data_rights import DataRights
    from serving.preferences import ReaderPreferences

    db = init_db(db_url)
    try:
        prefs = ReaderPreferences(db)
        return set(prefs.opted_out()) | set(DataRights(db).excluded()), set(prefs.promotion_refused())
    finally:
        db.dispose()


def nightly_cmd(
    model: Path = typer.Option(..., "--model", help="Model directory (yuedu train / make demo)."),
    data: Path = typer.Option(..., "--data", help="Validated data directory (copies, booklists, readers)."),
    out: Path = typer.Option(..., "--out", help="Folder for the Parquet lists (replaced)."),
    n: int = typer.Option(20, "--n", min=1, max=200, help="List length."),
    today: str = typer.Option(None, "--today", help="ISO date for booklists and new arrivals (default: today)."),
    db_url: str = typer.Option(None, "--db", help="Service database URL: honour readers' stored choices."),
    engine: str = typer.Option("local", help="local (this machine) or spark (factorisation models)."),
    master: str = typer.Option("local[2]", help="Spark master URL (engine spark only)."),
) -> None:
    """Lists for every reader the model knows; opted-out readers get non-personalised lists."""
    from datetime import date

    from rich.console import Console

    from recsys.batch_lists import batch_lists
    from recsys.context import LibraryContext
    from recsys.models import ModelFormatError, load_model
    from recsys.service import RecommendationService

    if engine not in ("local", "spark"):
        fail(f"--engine must be local or spark, got {engine!r}")
    if not data.is_dir():
        fail(f"--data {data}: no such directory")
    try:
        on = date.fromisoformat(today) if today else date.today()
        m = load_model(model)
        ctx = LibraryContext.from_data_dir(data, m.titles_, m.readers_, on)
    except (ModelFormatError, FileNotFoundError, ValueError) as exc:
        fail(f"{exc}")
    refused, plain = stored_choices(db_url)
    readers = [str(r) for r in m.readers_.ids]
    service = RecommendationService(m, ctx)
    _clear(out)
    if engine == "local":
        lists = batch_lists(service, readers, n, not_personalised=refused, no_promotion=plain)
        lists.write_parquet(out / LOCAL_PART)
    else:
        personal = _spark_lists(m, data, out, n, on, master, refused)
        others = batch_lists(service, [r for r in readers if r in refused], n, not_personalised=refused)
        others.write_parquet(out / REFUSED_PART)
        lists = personal.vstack(others.select(personal.columns).cast(personal.schema))
    shown = sum(r in refused for r in readers)
    Console(stderr=True, soft_wrap=True).print(
        f"{lists['reader_id'].n_unique()} readers, {lists.height} rows to {out} "
        f"({shown} not personalised by their choice, {sum(r in plain for r in readers)} without promotion)",
        markup=False,
    )


def _clear(out: Path) -> None:
    """An empty ``out`` folder (earlier part files removed, so a rerun never mixes two nights)."""
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for part in out.glob("*.parquet"):
        part.unlink()


def _spark_lists(model, data: Path, out: Path, n: int, on, master: str, refused: set[str]):
    """The personalised lists on Spark (readers in ``refused`` left out), read back as one frame."""
    import polars as pl

    from recsys.models.factorization import FactorizationRecommender

    if not isinstance(model, FactorizationRecommender):
        fail(f"--engine spark needs a factorisation model (als, bpr), not {type(model).__name__}")
    from pyspark.sql import SparkSession

    from features.spark.session import spark_session
    from recsys.spark.nightly import nightly_top_n

    running = SparkSession.getActiveSession()  # a session already running (a notebook, tests) stays up
    spark = spark_session(master, "yuedu-nightly")
    try:
        nightly_top_n(spark, model, data, out, n=n, today=on, opted_out=sorted(refused))
    finally:
        if running is None:
            spark.stop()
    return pl.read_parquet(out / "*.parquet")
