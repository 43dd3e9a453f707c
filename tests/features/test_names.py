"""Branch names in zh-CN and en (features.names.branch_names)."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from features.names import BRANCH_KIND_NAMES, DISTRICT_ZH, branch_names
from features.schema import BRANCH_KINDS


def _han(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_every_kind_has_both_names():
    assert set(BRANCH_KIND_NAMES) == set(BRANCH_KINDS)


def test_the_datas_own_name_wins_in_its_language_and_the_other_is_derived():
    frame = pl.DataFrame(
        {
            "branch_id": ["CEN", "D-Dehui", "O-0007", "X-1", "X-2"],
            "name": ["Changchun Library (central)", "德惠市图书馆", "Kuancheng reading room 1", None, "Club 9"],
            "kind": ["central", "district_library", "reading_room", None, "cabinet"],
            "district": ["Chaoyang", "Dehui", "Kuancheng", None, None],
        }
    )
    got = {r["branch_id"]: (r["zh-CN"], r["en"]) for r in branch_names(frame).iter_rows(named=True)}
    assert got["CEN"] == ("长春市图书馆（中心馆）", "Changchun Library (central)")
    assert got["D-Dehui"] == ("德惠市图书馆", "Dehui District Library")
    assert got["O-0007"] == ("宽城区城市书房1号", "Kuancheng reading room 1")
    assert got["X-1"] == ("X-1", "X-1")  # nothing known: the id serves both
    assert got["X-2"] == ("自助借还柜9号", "Club 9")


def test_name_columns_of_the_data_are_used_as_given():
    frame = pl.DataFrame({"branch_id": ["B"], "name": ["x"], "name_zh": ["北区"], "name_en": ["North"]})
    assert branch_names(frame).row(0) == ("B", "北区", "North")


@given(
    st.lists(
        st.tuples(st.sampled_from(BRANCH_KINDS[1:]), st.sampled_from(sorted(DISTRICT_ZH)), st.integers(1, 999)),
        min_size=1,
        max_size=40,
        unique=True,
    )
)
def test_derived_names_are_never_empty_and_keep_branches_apart(rows):
    """Synthetic-style English names: each gets a Han zh-CN name; distinct English names stay distinct
    in zh-CN (kind, district and number all reach the name)."""
    frame = pl.DataFrame(
        {
            "branch_id": [f"O-{i}" for i in range(len(rows))],
            "name": [f"{d} {k.replace('_', ' ')} {n}" for k, d, n in rows],
            "kind": [k for k, _, _ in rows],
            "district": [d for _, d, _ in rows],
        }
    )
    names = branch_names(frame)
    assert names["en"].to_list() == frame["name"].to_list()
    assert all(_han(n) for n in names["zh-CN"])
    # Nong'an and Nongan are one county spelt two ways: the same Chinese name
    distinct = frame.with_columns(pl.col("district").replace("Nongan", "Nong'an")).select("kind", "district", "name")
    assert names["zh-CN"].n_unique() == distinct.with_columns(pl.col("name").str.extract(r"(\d+)$")).unique().height
