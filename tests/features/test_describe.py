"""describe(): exact figures on a tiny hand-made data directory, and shape on other kinds of directory."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.describe import describe
from features.schema import conform, table_path


def _write(data_dir: Path, table: str, rows: dict) -> None:
    conform(pl.DataFrame(rows), table).write_parquet(table_path(data_dir, table))


@pytest.fixture()
def tiny_city(tmp_path: Path) -> Path:
    d = tmp_path / "tiny"
    d.mkdir()
    _write(
        d,
        "branches",
        {"branch_id": ["B1", "B2"], "name": ["Central", "Nanguan library"], "district": ["Chaoyang", "Nanguan"]},
    )
    _write(d, "readers", {"reader_id": ["r1", "r2", "r3", "r4", "r5"]})
    _write(
        d,
        "titles",
        {"title_id": ["t1", "t2", "t3", "t4"], "title": ["a", "b", "c", "d"], "clc_class": ["I247", "K81", "I", "TP3"]},
    )
    _write(
        d,
        "loans",
        {
            "loan_id": ["L1", "L2", "L3", "L4", "L5"],
            "reader_id": ["r1", "r1", "r2", "r2", "r3"],
            "title_id": ["t1", "t2", "t1", "t1", "t3"],
            "branch_id": ["B1", "B1", "B2", "B2", "B1"],
            "channel": ["counter", "counter", "self_service", "self_service", "counter"],
            "borrowed_at": [
                datetime(2024, 1, 5),
                datetime(2024, 1, 20),
                datetime(2024, 2, 1),
                datetime(2024, 2, 15),
                datetime(2024, 3, 1),
            ],
        },
    )
    _write(
        d,
        "ebook_events",
        {
            "event_id": ["E1", "E2"],
            "reader_id": ["r1", "r4"],
            "title_id": ["t3", "t2"],
            "occurred_at": [datetime(2024, 3, 2), datetime(2024, 3, 3)],
            "action": ["download", "read"],
        },
    )
    return d


def test_describe_tiny_city_exact(tiny_city: Path) -> None:
    s = describe(tiny_city)
    json.dumps(s)  # JSON-serialisable
    assert s["tables"] == {"branches": 2, "readers": 5, "titles": 4, "loans": 5, "ebook_events": 2}
    assert s["events"]["count"] == 7 and s["events"]["sources"] == ["loans", "ebook_events"]
    assert s["events"]["first"] == "2024-01-05T00:00:00" and s["events"]["last"] == "2024-03-03T00:00:00"
    # r1: t1 t2 t3 | r2: t1 (twice) | r3: t3 | r4: t2 -> 6 distinct pairs in a 4 x 3 matrix.
    assert s["matrix"] == {"readers": 4, "titles": 3, "pairs": 6, "density": 0.5}
    assert s["per_reader"]["max"] == 3 and s["per_reader"]["p50"] == 1.5
    assert s["per_title"]["max"] == 3 and s["per_title"]["p50"] == 2
    assert s["per_reader"]["p90"] == pytest.approx(np.percentile([3, 2, 1, 1], 90))
    assert [(b["branch_id"], b["loans"], b["district"]) for b in s["by_branch"]] == [
        ("B1", 3, "Chaoyang"),
        ("B2", 2, "Nanguan"),
    ]
    assert {r["channel"]: r["events"] for r in s["by_channel"]} == {
        "counter": 3,
        "self_service": 2,
        "ebook_download": 1,
        "ebook_read": 1,
    }
    assert s["by_month"] == [
        {"month": "2024-01", "events": 2},
        {"month": "2024-02", "events": 2},
        {"month": "2024-03", "events": 3},
    ]
    assert s["top_clc"] == [
        {"clc": "I", "name": "Literature", "events": 5, "titles": 2},
        {"clc": "K", "name": "History & geography", "events": 2, "titles": 1},
    ]


def test_describe_interactions_dir_and_unknown_titles(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "interactions",
        {
            "reader_id": ["u1", "u1", "u2"],
            "title_id": ["m1", "m2", "m1"],
            "value": [4.0, 3.0, 5.0],
            "channel": ["rating"] * 3,
        },
    )
    s = describe(tmp_path)
    assert s["matrix"]["pairs"] == 3 and s["matrix"]["density"] == pytest.approx(0.75)
    assert s["by_month"] == [] and s["events"]["first"] is None
    assert "by_branch" not in s and "top_clc" not in s
    _write(tmp_path, "titles", {"title_id": ["m1"], "title": ["x"], "clc_class": ["J"]})
    s = describe(tmp_path)
    assert s["top_clc"] == [
        {"clc": "J", "name": "Art", "events": 2, "titles": 1},
        {"clc": "?", "name": "unknown", "events": 1, "titles": 0},
    ]


def test_describe_catalogue_only_and_missing_dir(tmp_path: Path) -> None:
    _write(tmp_path, "titles", {"title_id": ["a"], "title": ["x"], "clc_class": ["I"]})
    s = describe(tmp_path)
    assert s["tables"] == {"titles": 1} and s["events"]["count"] == 0 and "matrix" not in s
    with pytest.raises(FileNotFoundError):
        describe(tmp_path / "absent")


def test_describe_cli_renders(tiny_city: Path) -> None:
    from typer.testing import CliRunner

    from serving.cli import app

    res = CliRunner().invoke(app, ["data", "describe", str(tiny_city)])
    assert res.exit_code == 0, res.output
    assert "Chaoyang" in res.output and "density 50.000%" in res.output


def test_describe_small_city(small_city: Path) -> None:
    s = describe(small_city)
    assert s["tables"]["loans"] > 0 and "ebook_events" in s["events"]["sources"]
    assert 0 < s["matrix"]["density"] <= 1
    assert s["events"]["count"] == s["tables"]["loans"] + s["tables"]["ebook_events"] + s["tables"].get(
        "interactions", 0
    )
    assert len(s["by_branch"]) <= 10 and s["top_clc"][0]["events"] >= s["top_clc"][-1]["events"]
