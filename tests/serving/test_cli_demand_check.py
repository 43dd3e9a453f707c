"""``yuedu acquisition demand-check`` on a slice of the real SCO loans, and its one-line refusals."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.datasets import SHARED_DATA
from serving.cli import app as cli

SCO = SHARED_DATA / "sco-lending-library"


@pytest.fixture
def sco_slice(tmp_path, monkeypatch) -> Path:
    """The SCO export with only the loans borrowed 1919-1924 (all books and members), cached in tmp."""
    if not SCO.is_dir():
        pytest.skip(f"{SCO}: SCO data not installed")
    monkeypatch.setattr("features.datasets.DEFAULT_CACHE", tmp_path / "cache")
    src = tmp_path / "sco"
    src.mkdir()
    for name in ("books.csv.gz", "members.csv.gz"):
        shutil.copy(SCO / name, src / name)
    with gzip.open(SCO / "loans.csv.gz", "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    keep = [lines[0]] + [
        x for x in lines[1:] if x.split(",")[3][:4] in {"1919", "1920", "1921", "1922", "1923", "1924"}
    ]
    with gzip.open(src / "loans.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(keep) + "\n")
    return src


def test_demand_check_writes_the_table_for_a_real_slice(sco_slice, tmp_path):
    out = tmp_path / "results"
    args = ["acquisition", "demand-check", "--data", "sco", "--path", str(sco_slice), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--resamples", "20"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "demand-real.json").read_text())["sco"]
    graded = {r["origin"] for r in saved["per_origin"]}
    assert graded == {"1922-01-01", "1923-01-01", "1924-01-01"}  # later origins have no loans in the slice
    assert [r["scorer"] for r in saved["table"]][0] == "model"
    assert all(-1 <= r["spearman"] <= 1 and 0 <= r["ndcg"] <= 1 for r in saved["table"])
    md = (out / "demand-real.md").read_text()
    assert "## sco" in md and "| author_loans_per_title |" in md and "Goal" in md
    assert "origin 1/19" in result.output  # progress, one line per origin


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "goodreads"], "--data must be sco or movielens"),
        (["--data", "sco", "--resamples", "3"], "at least 10"),
    ],
)
def test_demand_check_refuses_bad_options_in_one_line(args, message):
    result = CliRunner().invoke(cli, ["acquisition", "demand-check", *args])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
