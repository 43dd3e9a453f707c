"""Collection report on the small city: tables consistent, files written."""

from __future__ import annotations

import pytest

from acquisition.analytics import collection_metrics, write_report


def test_report_on_small_city(small_city, tmp_path):
    m = collection_metrics(small_city)
    assert m.by_class["share_of_collection"].sum() == pytest.approx(1.0)
    assert m.by_class["loans"].sum() == m.by_source["loans"].sum()
    assert set(m.by_source["source"]) <= {"regular_order", "reader_choice", "donation"}
    assert (m.holds_alerts["holds_per_copy"] > 3).all()
    assert 0 <= m.headline["dead_share"] <= 1
    md, html = write_report(m, tmp_path / "r.md")
    text = md.read_text()
    assert "Reader-chosen" in text and "Dead stock" in text
    assert (tmp_path / "r_gaps.png").stat().st_size > 1000
    assert "<table>" in html.read_text()
