from pathlib import Path

import polars as pl
import pytest

from features.docs import data_model_markdown
from features.schema import CLC_PATTERN, TABLES, conform

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-model.md"


def test_data_model_doc_in_sync():
    assert DOC.read_text() == data_model_markdown(), "run: python -m features.docs > docs/data-model.md"


def test_every_reference_points_to_a_primary_key():
    for t in TABLES.values():
        for name, col in t.columns.items():
            if col.ref:
                table, column = col.ref.split(".")
                assert TABLES[table].primary_key == column, f"{t.name}.{name} -> {col.ref}"


@pytest.mark.parametrize(
    "value,ok",
    [
        ("I247", True),
        ("TP3", True),
        ("K", True),
        ("I24.5", True),
        ("L1", False),
        ("W", False),
        ("", False),
        ("i24", False),
    ],
)
def test_clc_pattern(value, ok):
    assert (pl.Series([value]).str.contains(CLC_PATTERN)[0]) is ok


def test_conform_adds_optional_columns_and_casts():
    df = pl.DataFrame(
        {
            "hold_id": ["h1"],
            "reader_id": ["r"],
            "title_id": ["t"],
            "branch_id": ["b"],
            "placed_at": ["2024-01-01 10:00:00"],
        }
    ).with_columns(pl.col("placed_at").str.to_datetime())
    out = conform(df, "holds")
    assert out.columns == list(TABLES["holds"].columns)
    assert out["fulfilled_at"].null_count() == 1
    assert out.schema == TABLES["holds"].polars_schema
