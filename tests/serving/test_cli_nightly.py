"""``yuedu nightly``: batch lists for every model reader, with the stored opt-outs from ``--db``."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest
from typer.testing import CliRunner

from serving.cli import app as cli


@pytest.fixture(scope="module")
def choices(small_city, model_dir, tmp_path_factory):
    """A service database where one reader refused personalisation, one promotion, one erased their
    profile; the nightly lists with and without it."""
    from acquisition.db import init_db
    from serving.data_rights import DataRights
    from serving.preferences import ReaderPreferences

    tmp = tmp_path_factory.mktemp("nightly")
    top = pl.read_parquet(small_city / "loans.parquet").group_by("reader_id").len().sort("len", descending=True)
    refused, plain, erased = top["reader_id"][:3].to_list()
    url = f"sqlite:///{tmp / 'service.db'}"
    db = init_db(url)
    prefs = ReaderPreferences(db)
    prefs.put(refused, False, True, datetime(2026, 6, 1))
    prefs.put(plain, True, False, datetime(2026, 6, 1))
    DataRights(db).exclude(erased, datetime(2026, 6, 2))
    db.dispose()
    args = ["nightly", "--model", str(model_dir), "--data", str(small_city), "--n", "6", "--today", "2026-06-20"]
    runs = {}
    for name, extra in {"db": ["--db", url], "none": []}.items():
        result = CliRunner().invoke(cli, [*args, "--out", str(tmp / name), *extra])
        assert result.exit_code == 0, result.output
        runs[name] = (pl.read_parquet(tmp / name / "*.parquet"), result.stderr)
    return {"refused": refused, "plain": plain, "erased": erased, "runs": runs}


def _list(frame: pl.DataFrame, reader: str) -> list[str]:
    return frame.filter(pl.col("reader_id") == reader).sort("rank")["title_id"].to_list()


def _service(small_city, model_dir):
    from recsys.context import LibraryContext
    from recsys.models import load_model
    from recsys.service import RecommendationService

    m = load_model(model_dir)
    return RecommendationService(m, LibraryContext.from_data_dir(small_city, m.titles_, m.readers_, date(2026, 6, 20)))


def test_every_model_reader_gets_a_list(choices, model_dir):
    from recsys.models import load_model

    lists, said = choices["runs"]["db"]
    readers = set(load_model(model_dir).readers_.ids)
    assert set(lists["reader_id"]) == readers
    assert lists.group_by("reader_id").len()["len"].max() == 6
    assert lists.schema == {"reader_id": pl.String, "rank": pl.Int16, "title_id": pl.String, "score": pl.Float32}
    assert "2 not personalised by their choice, 1 without promotion" in said


def test_opted_out_and_erased_readers_get_non_personalised_lists(choices, small_city, model_dir):
    with_db, _ = choices["runs"]["db"]
    without, _ = choices["runs"]["none"]
    svc = _service(small_city, model_dir)
    for reader in (choices["refused"], choices["erased"]):
        popular = [r.title_id for r in svc.recommend_for_readers([reader], 6, None, True, personalised=False)[reader]]
        assert _list(with_db, reader) == popular != _list(without, reader)


def test_promotion_refusal_gives_the_models_own_ranking(choices, small_city, model_dir):
    with_db, _ = choices["runs"]["db"]
    reader = choices["plain"]
    own = [r.title_id for r in _service(small_city, model_dir).recommend_for_readers([reader], 6, None, False)[reader]]
    without, _ = choices["runs"]["none"]
    assert _list(with_db, reader) == own != _list(without, reader)


def test_readers_without_stored_choices_are_unchanged(choices):
    with_db, _ = choices["runs"]["db"]
    without, _ = choices["runs"]["none"]
    chose = [choices["refused"], choices["plain"], choices["erased"]]
    assert with_db.filter(~pl.col("reader_id").is_in(chose)).equals(without.filter(~pl.col("reader_id").is_in(chose)))


def test_spark_engine_needs_a_factorisation_model(small_city, model_dir, tmp_path):
    args = ["nightly", "--model", str(model_dir), "--data", str(small_city), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, [*args, "--engine", "spark"])
    assert result.exit_code == 2 and "factorisation model" in result.output
    result = CliRunner().invoke(cli, [*args, "--engine", "gpu"])
    assert result.exit_code == 2 and "local or spark" in result.output
