"""The province profile: chunked generation to Parquet (no Spark needed)."""

from __future__ import annotations

import polars as pl
import pytest

from features.interactions import load_interactions
from features.schema import TABLES


@pytest.mark.parametrize("chunk_rows", [7_000, 25_000])
def test_province_in_chunks(tmp_path, chunk_rows):
    from features.synth_province import synthesize_province

    n = 20_000
    summary = synthesize_province(4, tmp_path, n_loans=n, chunk_rows=chunk_rows, readers=3_000, titles=3_000)
    assert summary.chunks == -(-n // chunk_rows)
    loans = pl.read_parquet(tmp_path / "loans.parquet")
    assert loans.height == n == summary.counts["loans"]
    assert loans["loan_id"].n_unique() == n  # ids numbered across chunks
    assert loans.schema == TABLES["loans"].polars_schema
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / "loans.parquet").metadata.num_row_groups >= summary.chunks
    # every loan points at a reader, a title and a copy of that title that exist
    copies = pl.read_parquet(tmp_path / "copies.parquet")
    assert loans.join(copies, on=["copy_id", "title_id"], how="anti").height == 0
    assert loans.join(pl.read_parquet(tmp_path / "readers.parquet"), on="reader_id", how="anti").height == 0
    holds = pl.read_parquet(tmp_path / "holds.parquet")
    assert 0 < holds.height < 0.1 * n and holds["hold_id"].n_unique() == holds.height
    # copies on an open loan are marked on_loan
    open_copies = loans.filter(pl.col("returned_at").is_null())["copy_id"].unique()
    assert (copies.filter(pl.col("copy_id").is_in(open_copies.implode()))["status"] == "on_loan").all()
    # the directory is a normal yuedu data directory
    assert load_interactions(tmp_path).select(pl.len()).collect().item() > n


def test_province_is_deterministic(tmp_path):
    from features.synth_province import synthesize_province

    a = synthesize_province(9, tmp_path / "a", n_loans=6_000, chunk_rows=2_500, readers=1_000, titles=3_000)
    b = synthesize_province(9, tmp_path / "b", n_loans=6_000, chunk_rows=2_500, readers=1_000, titles=3_000)
    assert a.counts == b.counts
    assert pl.read_parquet(a.out / "loans.parquet").equals(pl.read_parquet(b.out / "loans.parquet"))
    with pytest.raises(ValueError, match="must be > 0"):
        synthesize_province(9, tmp_path / "c", n_loans=0)
