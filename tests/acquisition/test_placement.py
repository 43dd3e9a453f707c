"""Placement: a returned reader-chosen copy goes where the demand after its requester is highest, as
known at t (the requester's own loans and holds, and anything after t, are left out)."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from acquisition import placement
from acquisition.errors import RequestNotFound
from features.schema import conform, table_path
from tests.acquisition._counter_data import HELD3, NOW, make_service, request, write_city

T = datetime(2026, 5, 1)


def _write(data, loans: list[tuple], holds: list[tuple]) -> None:
    conform(
        pl.DataFrame(
            [
                {
                    "loan_id": f"L{i}",
                    "reader_id": r,
                    "title_id": t,
                    "branch_id": b,
                    "channel": "counter",
                    "borrowed_at": at,
                }
                for i, (r, t, b, at) in enumerate(loans)
            ]
        ),
        "loans",
    ).write_parquet(table_path(data, "loans"))
    conform(
        pl.DataFrame(
            [
                {
                    "hold_id": f"H{i}",
                    "reader_id": r,
                    "title_id": t,
                    "branch_id": b,
                    "placed_at": at,
                    "fulfilled_at": None,
                }
                for i, (r, t, b, at) in enumerate(holds)
            ],
            schema={
                "hold_id": pl.String,
                "reader_id": pl.String,
                "title_id": pl.String,
                "branch_id": pl.String,
                "placed_at": pl.Datetime("us"),
                "fulfilled_at": pl.Datetime("us"),
            },
        ),
        "holds",
    ).write_parquet(table_path(data, "holds"))


def test_holds_on_the_title_after_the_requester_decide_the_branch(tmp_path):
    data = write_city(tmp_path)
    # the requester's own hold at B-N1 does not count; another reader waits at B-S1
    _write(data, [], [("R-req", "T1", "B-N1", T - timedelta(days=3)), ("R-ok2", "T1", "B-S1", T - timedelta(days=2))])
    p = placement.suggest(data, isbn13=HELD3, clc_class="I247", requester="R-req", at=T)
    assert p.suggested_branch == "B-S1"
    assert {b.branch_id: b.title_demand for b in p.branches} == {"B-S1": 1, "B-N1": 0}


def test_without_title_demand_the_class_turnover_per_copy_decides(tmp_path):
    data = write_city(tmp_path)
    # class I (T1): 3 held copies at B-S1 lent twice; B-N1 has no I copies but one I loan -> 1 per copy
    loans = [("R-ok", "T1", "B-S1", T - timedelta(days=10)), ("R-ok2", "T1", "B-S1", T - timedelta(days=20))]
    loans += [("R-south", "T1", "B-N1", T - timedelta(days=5))]
    _write(data, loans, [])
    p = placement.suggest(data, isbn13="9780000000000", clc_class="I313", requester="R-req", at=T)
    by = {b.branch_id: b for b in p.branches}
    assert by["B-S1"].class_loans == 2 and by["B-S1"].class_copies == 3
    assert by["B-N1"].class_turnover == 1.0 and p.suggested_branch == "B-N1"
    # known at t: the same loans seen from before they happened give no demand anywhere
    early = placement.suggest(
        data, isbn13="9780000000000", clc_class="I313", requester="R-req", at=T - timedelta(days=30)
    )
    assert all(b.class_loans == 0 for b in early.branches)


def test_for_a_request_the_requester_is_left_out(tmp_path):
    svc = make_service(tmp_path)
    data = tmp_path / "data"
    d = svc.decide(request(isbn=HELD3), "k")  # declined, but a request row to place from
    _write(
        data, [], [("R-ok", "T1", "B-N1", NOW - timedelta(days=1)), ("R-south", "T1", "B-S1", NOW - timedelta(days=1))]
    )
    p = placement.for_request(svc.db, data, d.request_id, at=NOW)
    assert p.request_id == d.request_id and p.suggested_branch == "B-S1" and p.clc_class == "I247"
    with pytest.raises(RequestNotFound):
        placement.for_request(svc.db, data, "nope", at=NOW)
