import json
from datetime import datetime

import polars as pl
from typer.testing import CliRunner

from serving.cli import app as cli


def test_yuedu_recommend_json_for_known_and_unknown_readers(small_city, model_dir):
    reader = pl.read_parquet(small_city / "loans.parquet")["reader_id"].sort()[0]
    out = CliRunner().invoke(
        cli,
        [
            "recommend",
            "--reader",
            reader,
            "--reader",
            "nobody",
            "--model",
            str(model_dir),
            "--data",
            str(small_city),
            "--n",
            "4",
            "--today",
            "2026-06-20",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    recs = json.loads(out.stdout)
    assert set(recs) == {reader, "nobody"}
    # the unknown reader is reported (a cold-start list), never silently replaced
    assert "'nobody' is not known to the model" in out.stderr and reader not in out.stderr
    borrowed = set(pl.read_parquet(small_city / "loans.parquet").filter(pl.col("reader_id") == reader)["title_id"])
    for items in recs.values():
        assert len(items) == 4 and all(item["reasons"] for item in items)
    assert not borrowed & {item["title_id"] for item in recs[reader]}  # already borrowed is filtered


def test_yuedu_recommend_bad_model_dir_is_a_clear_error(small_city, tmp_path):
    out = CliRunner().invoke(cli, ["recommend", "--reader", "x", "--model", str(tmp_path), "--data", str(small_city)])
    assert out.exit_code == 2 and "model.json missing" in out.output


def test_yuedu_recommend_honours_stored_opt_outs(small_city, model_dir, tmp_path):
    """A batch run with ``--db`` gives a reader who refused personalisation no history-based list."""
    from acquisition.db import init_db
    from serving.preferences import ReaderPreferences

    top = pl.read_parquet(small_city / "loans.parquet").group_by("reader_id").len().sort("len", descending=True)
    refused, other = top["reader_id"][0], top["reader_id"][1]
    url = f"sqlite:///{tmp_path / 'service.db'}"
    ReaderPreferences(init_db(url)).put(refused, False, True, datetime(2026, 6, 1))
    args = ["recommend", "--reader", refused, "--reader", other, "--model", str(model_dir), "--data", str(small_city)]
    args += ["--n", "8", "--today", "2026-06-20", "--json"]
    with_db = json.loads(CliRunner().invoke(cli, [*args, "--db", url]).stdout)
    without = json.loads(CliRunner().invoke(cli, args).stdout)
    history = {"because_you_borrowed", "also_borrowed"}

    def codes(items):
        return {x["code"] for item in items for x in item["reasons"]}

    assert list(with_db) == [refused, other]
    assert codes(without[refused]) & history and not codes(with_db[refused]) & history
    assert with_db[other] == without[other]


def test_yuedu_recommend_honours_stored_promotion_refusal_and_erasure(small_city, model_dir, tmp_path):
    """``--db``: a reader who refused promotion gets the ``--no-promotion`` list, an erased profile a
    non-personalised one; a reader without stored choices keeps the command's switches."""
    from acquisition.db import init_db
    from serving.data_rights import DataRights
    from serving.preferences import ReaderPreferences

    top = pl.read_parquet(small_city / "loans.parquet").group_by("reader_id").len().sort("len", descending=True)
    plain, erased, other = top["reader_id"][1], top["reader_id"][2], top["reader_id"][3]
    url = f"sqlite:///{tmp_path / 'service.db'}"
    db = init_db(url)
    ReaderPreferences(db).put(plain, True, False, datetime(2026, 6, 1))
    DataRights(db).exclude(erased, datetime(2026, 6, 2))
    args = ["recommend", "--model", str(model_dir), "--data", str(small_city), "--n", "6", "--today", "2026-06-20"]
    args += ["--json", *(x for r in (plain, erased, other) for x in ("--reader", r))]

    def run(*extra):
        result = CliRunner().invoke(cli, [*args, *extra])
        assert result.exit_code == 0, result.output
        return {r: [i["title_id"] for i in items] for r, items in json.loads(result.stdout).items()}

    with_db, promoted, unpromoted, popular = run("--db", url), run(), run("--no-promotion"), run("--no-personalised")
    assert with_db[plain] == unpromoted[plain] != promoted[plain]
    assert with_db[erased] == popular[erased] != promoted[erased]
    assert with_db[other] == promoted[other]
    # the command's switch still turns promotion off for everyone, whatever is stored
    assert run("--db", url, "--no-promotion")[other] == unpromoted[other]
